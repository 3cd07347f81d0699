"""The raw decoder against web3's own ABI decoding of the same logs (real anvil, every event type)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak

from ledger_service.core.events import EVENT_SOURCES, ItemEventRecorded, RoleChanged
from ledger_service.core.rows import EventRows, encode_event
from ledger_service.errors import ConfigurationError
from ledger_service.indexer.decode import Decoder, MalformedLogError, load_abis, topic0
from ledger_service.indexer.rpc import RpcClient
from ledger_service.store import BlockRef, Store
from ledger_service.store.ingest import HASH_PROBLEM
from tests.support.activity import Activity
from tests.support.chain import ARTIFACTS, Anvil, Deployed, deploy_all


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower().replace("returns90d", "returns_90d")


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return value.lower()
    return value


def web3_fields(name: str, args: dict[str, Any], abi_event: dict[str, Any]) -> dict[str, Any]:
    """web3's decoded args renamed to the dataclass fields (structs flattened)."""
    fields: dict[str, Any] = {}
    for param in abi_event["inputs"]:
        value = args[param["name"]]
        if param["type"] == "tuple":
            for component in param["components"]:
                fields[_snake(component["name"])] = _plain(value[component["name"]])
        else:
            fields[_snake(param["name"])] = _plain(value)
    if name in ("RoleGranted", "RoleRevoked"):
        fields["granted"] = name == "RoleGranted"
    return fields


@pytest.fixture(scope="module")
def lifecycle(anvil: Anvil) -> tuple[Deployed, int, int]:
    deployed = deploy_all(anvil)
    start = deployed.deploy_block
    activity = Activity(deployed)
    activity.lifecycle()
    activity.bulk(events=300, items=3)
    activity.anchor_batch(b"\x01" * 32, 3, b"\x02" * 32)
    return deployed, start, deployed.w3.eth.block_number


def test_decodes_every_event_exactly_as_web3(lifecycle: tuple[Deployed, int, int]) -> None:
    deployed, start, end = lifecycle
    addresses = [deployed.ledger.address, deployed.escrow.address, deployed.exchange.address, deployed.anchor.address]
    abis = load_abis(ARTIFACTS)
    decoder = Decoder(
        abis=abis,
        ledger_address=deployed.ledger.address,
        escrow_address=deployed.escrow.address,
        exchange_address=deployed.exchange.address,
        batch_anchor_address=deployed.anchor.address,
    )
    with RpcClient(str(deployed.w3.provider.endpoint_uri)) as rpc:  # type: ignore[attr-defined]
        raw, _ = rpc.get_logs(addresses=addresses, from_block=start, to_block=end)
    ours = decoder.decode(raw)
    logs = deployed.w3.eth.get_logs({"address": addresses, "fromBlock": start, "toBlock": end})
    assert len(logs) == len(raw)

    by_topic: dict[str, tuple[Any, dict[str, Any]]] = {}
    contracts = (
        (deployed.ledger, "ProvenanceLedger"),
        (deployed.escrow, "ReturnsEscrow"),
        (deployed.exchange, "ExchangeEscrow"),
        (deployed.anchor, "BatchAnchor"),
    )
    for contract, name in contracts:
        for entry in abis[name]:
            if entry["type"] == "event":
                sig = f"{entry['name']}({','.join(_t(p) for p in entry['inputs'])})"
                by_topic["0x" + keccak(text=sig).hex()] = (getattr(contract.events, entry["name"]), entry)

    expected = []
    for log in logs:
        event_type, abi_event = by_topic["0x" + bytes(log["topics"][0]).hex()]
        if abi_event["name"] == "RoleAdminChanged":
            continue
        decoded = event_type().process_log(log)
        expected.append((abi_event["name"], log, web3_fields(abi_event["name"], dict(decoded["args"]), abi_event)))

    assert len(ours) == len(expected)
    seen = set()
    for event, (name, log, fields) in zip(ours, expected, strict=True):
        seen.add(name)
        mine = {f.name: getattr(event, f.name) for f in dataclasses.fields(event) if f.name not in ("pos", "hash_ok")}
        assert mine == fields, name
        if isinstance(event, ItemEventRecorded):
            assert event.hash_ok is True  # the contract's own events recompute
        if name in ("RoleGranted", "RoleRevoked"):
            assert isinstance(event, RoleChanged)
        assert type(event).__name__ in (name, "RoleChanged")
        pos = event.pos
        assert pos.block_number == log["blockNumber"]
        assert pos.block_hash == "0x" + bytes(log["blockHash"]).hex()
        assert pos.tx_hash == "0x" + bytes(log["transactionHash"]).hex()
        assert pos.tx_index == log["transactionIndex"]
        assert pos.log_index == log["logIndex"]
        assert pos.address == log["address"].lower()
    assert seen == {source.event for source in EVENT_SOURCES}


def test_rows_for_a_fetch_process_are_the_wire_form_of_the_decoded_events(
    lifecycle: tuple[Deployed, int, int],
) -> None:
    """decode_rows skips the event objects for item events (the hot path): its output must still be exactly
    what the writer rebuilds the same events from, for every event type, in order even if the node's is not."""
    deployed, start, end = lifecycle
    addresses = [deployed.ledger.address, deployed.escrow.address]
    decoder = Decoder(
        abis=load_abis(ARTIFACTS), ledger_address=deployed.ledger.address, escrow_address=deployed.escrow.address
    )
    with RpcClient(str(deployed.w3.provider.endpoint_uri)) as rpc:  # type: ignore[attr-defined]
        raw, _ = rpc.get_logs(addresses=addresses, from_block=start, to_block=end)
    events = decoder.decode(raw)
    rows = decoder.decode_rows(raw)
    assert rows == [encode_event(event) for event in events]
    assert list(EventRows(rows)) == events
    assert {type(e).__name__ for e in events} >= {"ItemEventRecorded", "ItemRegistered", "EscrowSettled"}
    assert decoder.decode_rows(list(reversed(raw))) == rows
    with pytest.raises(MalformedLogError, match="block"):
        decoder.decode_rows([*raw[:3], {**raw[-1], "data": "0x" + "00" * 31}])


def test_an_item_event_whose_hash_does_not_recompute_is_flagged_and_stored_as_a_problem(
    lifecycle: tuple[Deployed, int, int], tmp_path: Path
) -> None:
    """The decoder's eventHash check on the log's words reaches the store: a log whose eventHash (or a hashed
    field) was altered is indexed with a chain problem, never silently accepted."""
    deployed, start, end = lifecycle
    decoder = Decoder(
        abis=load_abis(ARTIFACTS), ledger_address=deployed.ledger.address, escrow_address=deployed.escrow.address
    )
    with RpcClient(str(deployed.w3.provider.endpoint_uri)) as rpc:  # type: ignore[attr-defined]
        raw, _ = rpc.get_logs(addresses=[deployed.ledger.address], from_block=start, to_block=end)
    events = decoder.decode(raw)
    item_logs = [i for i, ev in enumerate(events) if isinstance(ev, ItemEventRecorded)]
    altered_hash, altered_document = item_logs[5], item_logs[9]
    for index, word in ((altered_hash, 8), (altered_document, 4)):
        data = raw[index]["data"]
        at = 2 + 64 * word
        raw[index] = {**raw[index], "data": data[:at] + ("1" if data[at] != "1" else "2") + data[at + 1 :]}
    tampered = decoder.decode(raw)
    flagged = [i for i, ev in enumerate(tampered) if isinstance(ev, ItemEventRecorded) and not ev.hash_ok]
    assert flagged == [altered_hash, altered_document]

    with Store.open(f"sqlite:///{tmp_path / 'index.db'}") as store:
        last = tampered[-1].pos
        store.apply(events=tampered, headers=[], checkpoint=BlockRef(last.block_number, last.block_hash), prune_below=0)
        reasons = {(row[1], row[3]) for row in store.dump()["chain_problems"]}
    for index in flagged:
        ev = tampered[index]
        assert isinstance(ev, ItemEventRecorded)
        assert (ev.seq, HASH_PROBLEM) in reasons


def _t(param: dict[str, Any]) -> str:
    if param["type"] == "tuple":
        return "(" + ",".join(_t(c) for c in param["components"]) + ")"
    return str(param["type"])


def _raw_log(**overrides: Any) -> dict[str, Any]:
    log = {
        "address": "0x" + "11" * 20,
        "topics": [
            topic0("SellerSet(address,address,bool)"),
            "0x" + "00" * 12 + "aa" * 20,
            "0x" + "00" * 12 + "bb" * 20,
        ],
        "data": "0x" + "00" * 31 + "01",
        "blockNumber": "0x10",
        "blockHash": "0x" + "cc" * 32,
        "transactionHash": "0x" + "dd" * 32,
        "transactionIndex": "0x0",
        "logIndex": "0x3",
        "removed": False,
    }
    log.update(overrides)
    return log


def test_other_contracts_and_unknown_events_are_skipped_not_guessed() -> None:
    decoder = Decoder(abis=load_abis(ARTIFACTS), ledger_address="0x" + "11" * 20, escrow_address="0x" + "22" * 20)
    good = _raw_log()
    events = decoder.decode(
        [
            good,
            _raw_log(address="0x" + "22" * 20),  # a ledger event from the escrow's address
            _raw_log(topics=["0x" + "ee" * 32]),  # an unknown event
        ]
    )
    assert len(events) == 1
    assert decoder.skipped == 2
    assert events[0].pos.log_index == 3


@pytest.mark.parametrize(
    "overrides",
    [
        {"data": "0x"},  # too short
        {"data": "0x" + "00" * 31},  # not whole words
        {"topics": [topic0("SellerSet(address,address,bool)")]},  # missing indexed topics
        {"blockNumber": None},
    ],
)
def test_a_log_that_does_not_fit_the_abi_is_an_error(overrides: dict[str, Any]) -> None:
    decoder = Decoder(abis=load_abis(ARTIFACTS), ledger_address="0x" + "11" * 20, escrow_address="0x" + "22" * 20)
    with pytest.raises(MalformedLogError, match="block"):
        decoder.decode([_raw_log(**overrides)])


def test_a_changed_abi_is_refused_when_the_table_is_built() -> None:
    abis = load_abis(ARTIFACTS)
    changed = [dict(e) for e in abis["ReturnsEscrow"]]
    for entry in changed:
        if entry.get("name") == "EscrowSettled":
            entry["inputs"] = entry["inputs"][:-1]
    with pytest.raises(ConfigurationError, match="EscrowSettled"):
        Decoder(
            abis={**abis, "ReturnsEscrow": changed}, ledger_address="0x" + "11" * 20, escrow_address="0x" + "22" * 20
        )
