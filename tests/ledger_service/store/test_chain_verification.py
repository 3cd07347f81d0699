"""The store verifies every item's hash chain as it indexes, and records every inconsistency."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak as eth_keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_service.core.codes import BizStep, Disposition
from ledger_service.core.hashchain import ChainLink, event_hash_hex, event_hash_matches_log, verify_chain
from ledger_service.core.keccak import keccak
from ledger_service.store import Store
from ledger_service.store.store import ChainBreakError
from tests.ledger_service.store.builders import ChainBuilder, headers_upto, upto

bytes32 = st.binary(min_size=32, max_size=32)
uint64 = st.integers(0, 2**64 - 1)
HASHED_FIELDS = {
    "prev": bytes32,
    "item": bytes32,
    "seq": uint64,
    "step": st.integers(0, 255),
    "disp": st.integers(0, 255),
    "actor": st.binary(min_size=20, max_size=20),
    "ts": uint64,
}
"""The event hash's inputs but the three hashed into dataHash."""


def _reference(
    prev: bytes,
    item: bytes,
    seq: int,
    step: int,
    disp: int,
    actor: bytes,
    location: bytes,
    document: bytes,
    btx: bytes,
    ts: int,
) -> bytes:
    """The eventHash as eth_abi encodes it, hashed by eth_utils' keccak: independent of the core's code."""
    data = eth_keccak(abi_encode(["bytes32", "bytes32", "bytes32"], [location, document, btx]))
    types = ["bytes32", "bytes32", "uint64", "uint8", "uint8", "address", "bytes32", "uint64"]
    return eth_keccak(abi_encode(types, [prev, item, seq, step, disp, actor, data, ts]))


@settings(max_examples=200, deadline=None)
@given(**HASHED_FIELDS, location=bytes32, document=bytes32, btx=bytes32)
def test_fast_event_hash_equals_the_reference(
    prev: bytes,
    item: bytes,
    seq: int,
    step: int,
    disp: int,
    actor: bytes,
    location: bytes,
    document: bytes,
    btx: bytes,
    ts: int,
) -> None:
    reference = _reference(prev, item, seq, step, disp, actor, location, document, btx, ts)
    fast = event_hash_hex(
        prev_hash="0x" + prev.hex(),
        item_id="0x" + item.hex(),
        seq=seq,
        biz_step=step,
        disposition=disp,
        actor="0x" + actor.hex(),
        location="0x" + location.hex(),
        document="0x" + document.hex(),
        biz_transaction="0x" + btx.hex(),
        timestamp=ts,
    )
    assert fast == "0x" + reference.hex()


def _log_of(
    *, prev: bytes, item: bytes, seq: int, step: int, disp: int, actor: bytes, docs: bytes, ts: int, event: bytes
) -> tuple[str, str, str]:
    """(itemId topic, actor topic, data hex) of an ItemEventRecorded log, as the contract emits it."""
    data = b"".join(
        (seq.to_bytes(32, "big"), step.to_bytes(32, "big"), disp.to_bytes(32, "big"), docs, ts.to_bytes(32, "big"))
    )
    return "0x" + item.hex(), "0x" + bytes(12).hex() + actor.hex(), (data + prev + event).hex()


@settings(max_examples=200, deadline=None)
@given(
    **HASHED_FIELDS,
    docs=st.binary(min_size=96, max_size=96),
    part=st.sampled_from(["data", "item", "actor"]),
    bit=st.integers(0, 9 * 256 - 1),
)
def test_the_decoders_check_on_log_words_agrees_with_the_reference(
    prev: bytes, item: bytes, seq: int, step: int, disp: int, actor: bytes, docs: bytes, ts: int, part: str, bit: int
) -> None:
    reference = _reference(prev, item, seq, step, disp, actor, docs[:32], docs[32:64], docs[64:], ts)
    log = dict(
        zip(
            ("item", "actor", "data"),
            _log_of(
                prev=prev, item=item, seq=seq, step=step, disp=disp, actor=actor, docs=docs, ts=ts, event=reference
            ),
            strict=True,
        )
    )
    assert event_hash_matches_log(log["item"], log["actor"], log["data"])
    # one flipped bit anywhere in what is hashed (the actor: its low 20 bytes, the address) fails the check
    raw = bytearray.fromhex(log[part].removeprefix("0x"))
    width = {"data": 9 * 256, "item": 256, "actor": 160}[part]
    raw[len(raw) - 1 - (bit % width) // 8] ^= 1 << (bit % 8)
    log[part] = ("" if part == "data" else "0x") + raw.hex()
    assert not event_hash_matches_log(log["item"], log["actor"], log["data"])


@pytest.mark.parametrize("word", [0, 1, 2, 6])
def test_the_check_on_log_words_fails_an_integer_wider_than_its_type(word: int) -> None:
    """A word the decoder reads as an out-of-range integer fails, like event_hash_hex's OverflowError, even
    with an eventHash computed over the wide word."""
    zero = bytes(32)
    words = [zero] * 9
    words[word] = (1 << 255).to_bytes(32, "big") if word != 0 else (1 << 64).to_bytes(32, "big")
    prefix = zero + zero + b"".join(words[:3]) + zero
    preimage = prefix + keccak(b"".join(words[3:6])) + words[6]
    words[8] = keccak(preimage)
    assert not event_hash_matches_log("0x" + zero.hex(), "0x" + zero.hex(), b"".join(words).hex())


def test_the_check_on_log_words_fails_malformed_input() -> None:
    zero = "00" * 32
    assert not event_hash_matches_log("0x" + zero[:-2], "0x" + zero, zero * 9)
    assert not event_hash_matches_log("0x" + zero, "0x" + zero, zero * 8)
    assert not event_hash_matches_log("0x" + "zz" * 32, "0x" + zero, zero * 9)


@pytest.mark.parametrize(
    ("seq", "step", "actor"),
    [(2**64, 1, "0x" + "00" * 20), (-1, 1, "0x" + "00" * 20), (0, 256, "0x" + "00" * 20), (0, 1, "0x00")],
)
def test_fast_event_hash_refuses_what_abi_cannot_encode(seq: int, step: int, actor: str) -> None:
    zero = "0x" + "00" * 32
    with pytest.raises((ValueError, OverflowError)):
        event_hash_hex(
            prev_hash=zero,
            item_id=zero,
            seq=seq,
            biz_step=step,
            disposition=1,
            actor=actor,
            location=zero,
            document=zero,
            biz_transaction=zero,
            timestamp=0,
        )


def _apply_all(store: Store, chain: ChainBuilder) -> None:
    store.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)


def _problems(store: Store) -> list[tuple[Any, ...]]:
    return store.dump()["chain_problems"]  # (item_id, seq, block_number, reason)


def _chain_ok(store: Store) -> dict[tuple[str, int], bool]:
    return {(row[0], row[1]): row[11] for row in store.dump()["item_events"]}


def test_a_valid_chain_verifies(store: Store) -> None:
    chain = ChainBuilder()
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    for step in (BizStep.PACKING, BizStep.SHIPPING, BizStep.ARRIVING):
        chain.next_block()
        chain.record(item, step, Disposition.IN_PROGRESS)
    stats = store.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
    assert stats.problems == 0
    assert _problems(store) == []
    assert all(_chain_ok(store).values())
    assert store.dump()["items"][0][-1] is True


@pytest.mark.parametrize(
    ("tamper", "reasons"),
    [
        ("prev", ["prevHash does not link to the previous event's hash"]),
        ("hash", ["eventHash does not match the event's fields (altered)"]),
        ("field", ["eventHash does not match the event's fields (altered)"]),
        ("skip", ["expected event #2, found #3 (missing or reordered)"]),
    ],
)
def test_a_broken_link_is_stored_flagged_and_reported(store: Store, tamper: str, reasons: list[str]) -> None:
    chain = ChainBuilder()
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    chain.record(item, BizStep.PACKING, Disposition.IN_PROGRESS)
    chain.next_block()
    bad = chain.record(item, BizStep.SHIPPING, Disposition.IN_TRANSIT, tamper=tamper)
    chain.next_block()
    after = chain.record(item, BizStep.ARRIVING, Disposition.IN_TRANSIT)  # links to the bad event's hash
    stats = store.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)

    problems = _problems(store)
    assert [p for p in problems if p[1] == bad.seq] == [(item, bad.seq, 2, reason) for reason in reasons]
    ok = _chain_ok(store)
    assert ok[(item, bad.seq)] is False  # kept, flagged
    # the next event links to the (bad) event's emitted hash and follows its seq: only the bad one is reported
    assert ok[(item, after.seq)] is True
    assert len(problems) == len(reasons)
    assert stats.problems == len(problems)
    item_row = store.dump()["items"][0]
    assert item_row[-1] is False  # items.chain_ok
    assert item_row[7] == 4  # event_count: every event is counted


def test_a_repeated_seq_is_stored_flagged_and_reported(store: Store) -> None:
    """(item_id, seq) is not a key of the index: an event repeating a seq is kept and reported, not refused."""
    chain = ChainBuilder()
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    chain.record(item, BizStep.PACKING, Disposition.IN_PROGRESS)
    chain.next_block()
    repeated = chain.record(item, BizStep.SHIPPING, Disposition.IN_TRANSIT, tamper="repeat")
    assert repeated.seq == 1
    stats = store.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)

    assert stats.problems == 1
    assert _problems(store) == [(item, 1, 2, "expected event #2, found #1 (missing or reordered)")]
    rows = sorted((row[1], row[12], row[11]) for row in store.dump()["item_events"])  # (seq, block, chain_ok)
    assert rows == [(0, 1, True), (1, 1, True), (1, 2, False)]
    item_row = store.dump()["items"][0]
    assert (item_row[7], item_row[-1]) == (3, False)  # event_count counts it; items.chain_ok


def test_verification_continues_across_batches(store: Store) -> None:
    chain = ChainBuilder()
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    store.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
    chain.next_block()
    chain.record(item, BizStep.PACKING, Disposition.IN_PROGRESS)
    chain.record(item, BizStep.SHIPPING, Disposition.IN_TRANSIT, tamper="prev")
    new = chain.events[2:]
    store.apply(events=new, headers=chain.headers[1:], checkpoint=chain.ref(), prune_below=0)
    assert [(p[1], p[3]) for p in _problems(store)] == [(2, "prevHash does not link to the previous event's hash")]


def test_a_malformed_event_is_kept_and_reported(store: Store) -> None:
    chain = ChainBuilder()
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    chain.next_block()
    event = chain.record(item, BizStep.PACKING, Disposition.IN_PROGRESS)
    chain.events[-1] = replace(event, location="0x1234")
    _apply_all(store, chain)
    assert [(p[1], p[3]) for p in _problems(store)] == [(1, "eventHash does not match the event's fields (altered)")]


def test_store_problems_equal_the_auditors(store: Store) -> None:
    """What the store reports per item is exactly what hashchain.verify_chain finds replaying the stored events."""
    chain = ChainBuilder()
    items = [chain.register(f"urn:epc:id:sgtin:0614141.107346.{n}") for n in range(4)]
    tampers = [None, "prev", None, "hash", "skip", None, "field", None]
    for n, tamper in enumerate(tampers):
        chain.next_block()
        chain.record(items[n % 4], BizStep.SHIPPING, Disposition.IN_TRANSIT, tamper=tamper)
        chain.record(items[(n + 1) % 4], BizStep.ARRIVING, Disposition.RETAIL_SOLD)
    # two batches
    half = chain.number // 2
    first = [ev for ev in chain.events if ev.pos.block_number <= half]
    store.apply(events=first, headers=chain.headers[:half], checkpoint=chain.ref(half), prune_below=0)
    store.apply(events=chain.events[len(first) :], headers=chain.headers[half:], checkpoint=chain.ref(), prune_below=0)

    dump = store.dump()
    by_item: dict[str, list[tuple[Any, ...]]] = {}
    for row in sorted(dump["item_events"], key=lambda r: (r[12], r[13])):
        by_item.setdefault(row[0], []).append(row)
    expected = []
    for item_id, rows in by_item.items():
        links = [
            ChainLink(
                item_id=bytes.fromhex(item_id[2:]),
                seq=r[1],
                biz_step=r[2],
                disposition=r[3],
                actor=r[4],
                location=bytes.fromhex(r[5][2:]),
                document=bytes.fromhex(r[6][2:]),
                biz_transaction=bytes.fromhex(r[7][2:]),
                timestamp=r[8],
                prev_hash=bytes.fromhex(r[9][2:]),
                event_hash=bytes.fromhex(r[10][2:]),
            )
            for r in rows
        ]
        _, count, problems = verify_chain(links)
        blocks = {r[1]: r[12] for r in rows}
        expected += [(item_id, p.seq, blocks[p.seq], p.reason) for p in problems]
        assert dict((row[0], row[7]) for row in dump["items"])[item_id] == count
    assert len(expected) >= 4
    assert dump["chain_problems"] == sorted(expected)


def test_problems_name_the_block(store: Store) -> None:
    chain = ChainBuilder()
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    for _ in range(3):
        chain.next_block()
    chain.record(item, BizStep.SHIPPING, Disposition.IN_TRANSIT, tamper="hash")
    _apply_all(store, chain)
    assert _problems(store) == [(item, 1, 4, "eventHash does not match the event's fields (altered)")]


def test_a_missing_event_is_one_break_not_one_per_later_event(store_url: str) -> None:
    """A node that left out one event: one problem, at the event after the gap, across batches and a restart of
    the store; the later events link and are not flagged; the count is the events stored."""
    chain = ChainBuilder()
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    chain.next_block()
    chain.record(item, BizStep.PACKING, Disposition.IN_PROGRESS)
    chain.next_block()
    dropped = chain.record(item, BizStep.SHIPPING, Disposition.IN_TRANSIT)
    chain.events.remove(dropped)
    chain.next_block()
    for _ in range(3):
        chain.record(item, BizStep.ARRIVING, Disposition.IN_TRANSIT)
    first = upto(chain.events, 4)
    store = Store.open(store_url)
    try:
        store.apply(events=first, headers=headers_upto(chain.headers, 4), checkpoint=chain.ref(4), prune_below=0)
    finally:
        store.close()
    for _ in range(20):  # later batches, through a new Store (no cache): still no more problems
        chain.next_block()
        chain.record(item, BizStep.RECEIVING, Disposition.IN_PROGRESS)
    store = Store.open(store_url)
    try:
        rest = chain.events[len(first) :]
        stats = store.apply(events=rest, headers=chain.headers[4:], checkpoint=chain.ref(), prune_below=0)
        assert stats.problems == 0
        assert _problems(store) == [(item, 3, 4, "expected event #2, found #3 (missing or reordered)")]
        ok = _chain_ok(store)
        assert [seq for (_, seq), good in sorted(ok.items()) if not good] == [3]
        item_row = store.dump()["items"][0]
        assert (item_row[7], item_row[-1]) == (len(ok), False)  # the events stored; items.chain_ok
    finally:
        store.close()


def test_a_rollback_keeps_one_break_per_gap(store: Store) -> None:
    """The fold that rebuilds an item after a rollback checks seqs the same way as the batches did."""
    chain = ChainBuilder()
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    chain.next_block()
    dropped = chain.record(item, BizStep.SHIPPING, Disposition.IN_TRANSIT)
    chain.events.remove(dropped)
    chain.record(item, BizStep.ARRIVING, Disposition.IN_TRANSIT)
    chain.next_block()
    chain.record(item, BizStep.RECEIVING, Disposition.IN_PROGRESS)
    chain.next_block()
    last = chain.record(item, BizStep.RECEIVING, Disposition.IN_PROGRESS)
    _apply_all(store, chain)
    store.rollback_to(chain.ref(3))  # the item is rebuilt from its stored events (fold_items)
    stats = store.apply(events=[last], headers=chain.headers[-1:], checkpoint=chain.ref(), prune_below=0)
    assert stats.problems == 0
    assert [p[1] for p in _problems(store)] == [2]


def test_refused_breaks_write_nothing_and_name_the_item(store: Store) -> None:
    chain = ChainBuilder()
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    chain.next_block()
    dropped = chain.record(item, BizStep.SHIPPING, Disposition.IN_TRANSIT)
    chain.events.remove(dropped)
    chain.record(item, BizStep.ARRIVING, Disposition.IN_TRANSIT)
    with pytest.raises(ChainBreakError) as caught:
        store.apply(
            events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0, refuse_breaks=True
        )
    assert [(b.item_id, b.seq, b.block_number) for b in caught.value.breaks] == [(item, 2, 2)]
    assert item in str(caught.value) and "block 2" in str(caught.value)
    assert store.checkpoint() is None
    assert store.counts()["item_events"] == 0
