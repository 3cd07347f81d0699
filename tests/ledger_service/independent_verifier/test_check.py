"""The checks against a real anvil: a genuine history holds; every way a node can lie is named by seq."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from web3 import Web3

from ledger_service.core.hashchain import event_hash
from ledger_service.independent_verifier._rpc import Rpc
from ledger_service.independent_verifier.check import Report, parse_item, verify
from tests.ledger_service.independent_verifier.conftest import (
    EVENT_COUNT,
    INSPECTION_SEQ,
    History,
    Rewrite,
    TamperProxy,
    ipfs_digest,
    log_seq,
)
from tests.support.chain import MANUFACTURER, MERCHANT
from tests.support.faultproxy import FaultProxy

Tamper = Callable[[Rewrite], TamperProxy]


def check(history: History, url: str | None = None, *, item: str | None = None, from_block: int = 0) -> Report:
    with Rpc(url or history.node.url) as rpc:
        return verify(rpc, ledger=history.ledger, item=item or history.uri, from_block=from_block)


def found(report: Report) -> list[tuple[str, int | None]]:
    return [(p.kind, p.seq) for p in report.problems]


def on_logs(change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> Rewrite:
    """A rewrite that changes only eth_getLogs answers (on a copy)."""
    return lambda method, _params, result: change(copy.deepcopy(result)) if method == "eth_getLogs" else result


def by_seq(logs: list[dict[str, Any]], seq: int) -> dict[str, Any]:
    return next(log for log in logs if log_seq(log) == seq)


def set_word(log: dict[str, Any], index: int, value: int) -> None:
    """Replaces 32-byte word ``index`` of the log's data."""
    data = log["data"][2:]
    log["data"] = "0x" + data[: 64 * index] + f"{value:064x}" + data[64 * (index + 1) :]


def test_a_genuine_history_verifies(history: History) -> None:
    report = check(history)
    assert report.verified, report.problems
    ledger = history.deployed.ledger.functions
    head, count, merchant, destroyed = ledger.itemOf(history.item_id).call()
    assert (report.record.head, report.record.count, report.record.destroyed) == (bytes(head), count, destroyed)
    assert report.replayed_head == bytes(head)
    assert [e.link.seq for e in report.events] == list(range(EVENT_COUNT))
    registration = report.registration
    assert registration is not None and registration.uri == history.uri
    assert registration.manufacturer == history.deployed.accounts[MANUFACTURER]
    assert registration.merchant == merchant == history.deployed.accounts[MERCHANT]
    assert report.events[INSPECTION_SEQ].link.document == ipfs_digest(history.inspection)
    assert report.events[0].link.document == ipfs_digest(history.datasheet)
    by_id = check(history, item="0x" + history.item_id.hex())
    assert by_id.verified and by_id.events == report.events


def test_an_unknown_item_does_not_verify(history: History) -> None:
    report = check(history, item="urn:epc:id:sgtin:0614141.107346.never-registered")
    assert found(report) == [("item-unknown", None)]
    assert "urn:epc:id:sgtin:0614141.107346.never-registered" in report.problems[0].message


@pytest.mark.parametrize(
    ("field", "word", "value"),
    [("bizStep", 1, 12), ("disposition", 2, 12), ("document", 4, 0xD0C), ("timestamp", 6, 1_700_000_000)],
)
def test_a_node_that_alters_a_log_is_caught_at_that_seq(
    history: History, tamper: Tamper, field: str, word: int, value: int
) -> None:
    def alter(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        set_word(by_seq(logs, 2), word, value)
        return logs

    proxy = tamper(on_logs(alter))
    report = check(history, proxy.url)
    assert found(report) == [("event-altered", 2)], field
    assert "event #2 was altered" in report.problems[0].message


def test_a_node_that_swaps_the_actor_is_caught(history: History, tamper: Tamper) -> None:
    def alter(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        by_seq(logs, 1)["topics"][2] = "0x" + "00" * 12 + "ab" * 20
        return logs

    assert found(check(history, tamper(on_logs(alter)).url)) == [("event-altered", 1)]


def test_a_forged_event_with_a_matching_hash_breaks_the_link_or_the_head(history: History, tamper: Tamper) -> None:
    """A node that also recomputes the forged event's hash is caught by the next link, or by the contract's head."""

    def forge(seq: int) -> Rewrite:
        def change(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            log = by_seq(logs, seq)
            set_word(log, 4, 0xF0F0)  # another document
            words = [bytes.fromhex(log["data"][2 + 64 * i : 66 + 64 * i]) for i in range(9)]
            forged = event_hash(
                prev_hash=words[7], item_id=history.item_id, seq=seq, biz_step=words[1][-1], disposition=words[2][-1],
                actor="0x" + log["topics"][2][-40:], location=words[3], document=words[4], biz_transaction=words[5],
                timestamp=int.from_bytes(words[6], "big"),
            )  # fmt: skip
            set_word(log, 8, int.from_bytes(forged, "big"))
            return logs

        return on_logs(change)

    assert found(check(history, tamper(forge(2)).url)) == [("hash-chain-broken", 3)]
    assert found(check(history, tamper(forge(EVENT_COUNT - 1)).url)) == [("head-mismatch", EVENT_COUNT - 1)]


def test_a_node_that_drops_a_log_is_caught(history: History, tamper: Tamper) -> None:
    middle = on_logs(lambda logs: [log for log in logs if log_seq(log) != 2])
    report = check(history, tamper(middle).url)
    assert found(report) == [("event-missing", 2), ("count-mismatch", None)]
    assert "event #2 is missing" in report.problems[0].message
    last = on_logs(lambda logs: [log for log in logs if log_seq(log) != EVENT_COUNT - 1])
    report = check(history, tamper(last).url)
    assert found(report) == [("event-missing", 4), ("count-mismatch", None), ("head-mismatch", 3)]
    registration = on_logs(lambda logs: [log for log in logs if log_seq(log) is not None])
    assert found(check(history, tamper(registration).url)) == [("registration-missing", None)]


def test_a_node_that_reorders_logs_is_caught(history: History, tamper: Tamper) -> None:
    """Swapping two events' places on the chain (block, log index, tx) is named; the chain order is the logs'."""

    def swap(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        second, third = by_seq(logs, 2), by_seq(logs, 3)
        for key in ("blockNumber", "blockHash", "transactionHash", "transactionIndex", "logIndex"):
            second[key], third[key] = third[key], second[key]
        return logs

    report = check(history, tamper(on_logs(swap)).url)
    assert found(report) == [("event-reordered", 2)]
    assert report.problems[0].message == "event #2 comes after event #3 on the chain"
    # the JSON array's order is not evidence: the logs' own positions are
    assert check(history, tamper(on_logs(lambda logs: logs[::-1])).url).verified


def test_a_node_that_repeats_or_garbles_a_log_is_caught(history: History, tamper: Tamper) -> None:
    repeated = on_logs(lambda logs: [*logs, by_seq(logs, 1)])
    assert found(check(history, tamper(repeated).url)) == [("event-duplicate", 1)]

    def garble(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        by_seq(logs, 3)["data"] = by_seq(logs, 3)["data"][:100]
        return logs

    assert found(check(history, tamper(on_logs(garble)).url)) == [
        ("log-malformed", None),
        ("event-missing", 3),
        ("count-mismatch", None),
    ]

    def foreign(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        by_seq(logs, 1)["topics"][1] = "0x" + "11" * 32
        return logs

    assert found(check(history, tamper(on_logs(foreign)).url))[:2] == [("log-mismatch", None), ("event-missing", 1)]


def test_a_node_that_lies_about_item_of_is_caught(history: History, tamper: Tamper) -> None:
    def item_of(change: Callable[[str], str]) -> Rewrite:
        return lambda method, _params, result: change(result) if method == "eth_call" else result

    other_head = item_of(lambda result: "0x" + "ee" * 32 + result[66:])
    report = check(history, tamper(other_head).url)
    assert found(report) == [("head-mismatch", EVENT_COUNT - 1)]
    assert "0x" + "ee" * 32 in report.problems[0].message
    more_events = item_of(lambda result: result[:66] + f"{EVENT_COUNT + 2:064x}" + result[130:])
    report = check(history, tamper(more_events).url)
    assert found(report) == [("event-missing", EVENT_COUNT), ("count-mismatch", None)]
    assert f"events #{EVENT_COUNT}..#{EVENT_COUNT + 1} are missing" in report.problems[0].message


def test_ranges_the_node_refuses_are_halved_and_transient_errors_retried(history: History) -> None:
    with FaultProxy(history.node.url, max_log_blocks=3) as proxy:
        assert check(history, proxy.url).verified
        assert proxy.injected["range_too_large"] > 0
    with FaultProxy(history.node.url, first=["429", "500"], budget=2) as proxy:
        assert check(history, proxy.url).verified
        assert proxy.injected["429"] == proxy.injected["500"] == 1


def test_logs_before_from_block_are_reported_missing(history: History) -> None:
    registered = check(history).registration
    assert registered is not None
    report = check(history, from_block=registered.position.block + 1)
    assert found(report)[:2] == [("registration-missing", None), ("event-missing", 0)]
    assert f"(logs before block {registered.position.block + 1} were not fetched)" in report.problems[1].message


def test_parse_item() -> None:
    uri = "urn:epc:id:sgtin:0614141.107346.2017"
    assert parse_item(uri) == bytes(Web3.keccak(text=uri))
    assert parse_item(" 0x" + "AB" * 32) == b"\xab" * 32
    for bad in ("0x12", "0x" + "zz" * 32, "  "):
        with pytest.raises(ValueError, match="item"):
            parse_item(bad)
