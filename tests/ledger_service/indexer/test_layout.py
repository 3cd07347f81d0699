"""Event layouts read from the ABI: a new field decodes through the generic readers with no other change, and a
dataclass that disagrees with the ABI stops the decoder at start-up with an error naming the field."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_service.core.events import LEDGER, EventSource, ItemEventRecorded, ItemRegistered, LogPosition, RoleChanged
from ledger_service.core.hashchain import event_hash_hex
from ledger_service.errors import ConfigurationError
from ledger_service.indexer import decode
from ledger_service.indexer.decode import DERIVATIONS, Decoder, load_abis, topic0
from ledger_service.indexer.layout import descriptor, event_layout, fields_function, read_signed, snake_case
from tests.support.chain import ARTIFACTS


@dataclass(slots=True)
class ItemEventRecordedWithGrade:
    """ItemEventRecorded with one more field, as a contract change would add it (before the hashes)."""

    pos: LogPosition
    item_id: str
    actor: str
    seq: int
    biz_step: int
    disposition: int
    location: str
    document: str
    biz_transaction: str
    timestamp: int
    grade: int
    carrier: str
    prev_hash: str
    event_hash: str
    hash_ok: bool | None = None


def _item_event_abi(abis: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return next(e for e in abis[LEDGER] if e.get("type") == "event" and e.get("name") == "ItemEventRecorded")


def _with_grade(abi_event: dict[str, Any]) -> dict[str, Any]:
    """The ABI event with ``grade`` (uint16) and ``carrier`` (an indexed address) inserted."""
    changed = copy.deepcopy(abi_event)
    inputs = changed["inputs"]
    at = next(i for i, p in enumerate(inputs) if p["name"] == "prevHash")
    inputs.insert(at, {"name": "grade", "type": "uint16", "indexed": False, "internalType": "uint16"})
    inputs.insert(2, {"name": "carrier", "type": "address", "indexed": True, "internalType": "address"})
    return changed


def test_snake_case_names_of_the_abi() -> None:
    assert snake_case("itemId") == "item_id"
    assert snake_case("fastRefundMaxReturns90d") == "fast_refund_max_returns_90d"
    assert snake_case("seq") == "seq"


def test_the_accelerator_reads_the_abi_layout_of_item_events() -> None:
    decoder = Decoder(abis=load_abis(ARTIFACTS), ledger_address="0x" + "11" * 20, escrow_address="0x" + "22" * 20)
    assert decoder.compiled is decode.COMPILED


@pytest.mark.skipif(not decode.COMPILED, reason="the accelerator is not built")
@pytest.mark.parametrize(
    ("source", "refused"),
    [
        (EventSource(LEDGER, "ItemRegistered", ItemRegistered), "string"),
        (EventSource(LEDGER, "RoleGranted", RoleChanged, constants=(("granted", True),)), "constant"),
    ],
)
def test_the_accelerator_refuses_a_kind_of_field_it_does_not_read(source: EventSource, refused: str) -> None:
    """The decoder then keeps the Python reader for that event."""
    abi = load_abis(ARTIFACTS)[LEDGER]
    layout = event_layout(source, abi)
    from ledger_service.indexer import _speedups  # built: see the skipif

    with pytest.raises(ValueError, match=f"fields of kind {refused} are not read"):
        _speedups.layout(layout.topics, layout.data_words, descriptor(layout, {}))


b32 = st.binary(min_size=32, max_size=32)


@settings(max_examples=60, deadline=None)
@given(
    item=b32,
    actor=st.binary(min_size=20, max_size=20),
    carrier=st.binary(min_size=20, max_size=20),
    seq=st.integers(0, 2**64 - 1),
    step=st.integers(0, 255),
    grade=st.integers(0, 2**16 - 1),
    docs=st.tuples(b32, b32, b32),
    ts=st.integers(0, 2**64 - 1),
    prev=b32,
)
def test_a_new_field_decodes_through_the_generic_reader(
    item: bytes,
    actor: bytes,
    carrier: bytes,
    seq: int,
    step: int,
    grade: int,
    docs: tuple[bytes, bytes, bytes],
    ts: int,
    prev: bytes,
) -> None:
    """Adding a field to the event and to its dataclass is all it takes: its offsets, and those of the fields
    after it, come from the ABI, and the eventHash check still finds its words."""
    abi_event = _with_grade(_item_event_abi(load_abis(ARTIFACTS)))
    source = EventSource(LEDGER, "ItemEventRecorded", ItemEventRecordedWithGrade, derived=("hash_ok",))  # type: ignore[arg-type]
    layout = event_layout(source, [abi_event])
    assert layout.topics == 4 and layout.data_words == 10
    read = fields_function(layout, DERIVATIONS[ItemEventRecorded])
    hexes = {
        "prev_hash": "0x" + prev.hex(),
        "item_id": "0x" + item.hex(),
        "actor": "0x" + actor.hex(),
        "location": "0x" + docs[0].hex(),
        "document": "0x" + docs[1].hex(),
        "biz_transaction": "0x" + docs[2].hex(),
    }
    event_hash = event_hash_hex(seq=seq, biz_step=step, disposition=3, timestamp=ts, **hexes)
    data = abi_encode(
        ["uint64", "uint8", "uint8", "bytes32", "bytes32", "bytes32", "uint64", "uint16", "bytes32", "bytes32"],
        [seq, step, 3, *docs, ts, grade, prev, bytes.fromhex(event_hash[2:])],
    ).hex()
    topics = [topic0(layout.signature), "0x" + item.hex(), "0x" + bytes(12).hex() + actor.hex()]
    topics.append("0x" + bytes(12).hex() + carrier.hex())
    event = ItemEventRecordedWithGrade(LogPosition(1, "0x", "0x", 0, 0, "0x"), *read(topics, data))
    assert event.grade == grade
    assert event.carrier == "0x" + carrier.hex()
    assert (event.seq, event.biz_step, event.disposition, event.timestamp) == (seq, step, 3, ts)
    assert (event.location, event.document, event.biz_transaction) == (
        hexes["location"],
        hexes["document"],
        hexes["biz_transaction"],
    )
    assert (event.prev_hash, event.event_hash) == (hexes["prev_hash"], event_hash)
    assert event.hash_ok is True
    # the compiled reader takes the same layout and reads the same fields
    if decode.COMPILED:
        from ledger_service.indexer import _speedups

        compiled = _speedups.layout(
            layout.topics, layout.data_words, descriptor(layout, DERIVATIONS[ItemEventRecorded])
        )
        fallback_calls: list[Any] = []

        def fallback(*args: Any) -> tuple[Any, ...]:
            fallback_calls.append(args)
            return ()

        fast = _speedups.event_fields(compiled, fallback, topics, data)
        assert fast == read(topics, data)
        assert fallback_calls == []


def _changed(abis: dict[str, list[dict[str, Any]]], name: str, change: Any) -> dict[str, list[dict[str, Any]]]:
    contract = next(c for c, abi in abis.items() if any(e.get("name") == name for e in abi))
    entries = copy.deepcopy(abis[contract])
    for entry in entries:
        if entry.get("name") == name:
            change(entry)
    return {**abis, contract: entries}


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        (
            "ItemEventRecorded",
            lambda e: e["inputs"].insert(3, {"name": "grade", "type": "uint16", "indexed": False}),
            r"ProvenanceLedger.ItemEventRecorded in the ABI has parameters that ItemEventRecorded does not: grade",
        ),
        (
            "SaleRecorded",
            lambda e: e["inputs"].pop(),
            r"ReturnsEscrow.SaleRecorded in the ABI has no parameter for SaleRecorded.sold_at",
        ),
        (
            "SellerSet",
            lambda e: e["inputs"][2].update(type="uint8"),
            r"SellerSet.allowed is uint8, which decodes to int, but the field is declared bool",
        ),
        (
            "ReturnStateChanged",
            lambda e: e["inputs"][0].update(name="returnKey"),
            r"ReturnStateChanged in the ABI has no parameter for ReturnStateChanged.return_id",
        ),
        ("EscrowSettled", lambda e: e["inputs"][4].update(type="bytes16"), r"bytes16, a type the indexer does not"),
        ("ItemRegistered", lambda e: e.update(name="ItemAdded"), r"has no event ItemRegistered"),
    ],
)
def test_a_dataclass_that_disagrees_with_the_abi_stops_the_decoder(name: str, change: Any, message: str) -> None:
    abis = _changed(load_abis(ARTIFACTS), name, change)
    with pytest.raises(ConfigurationError, match=message):
        Decoder(abis=abis, ledger_address="0x" + "11" * 20, escrow_address="0x" + "22" * 20)


def test_signed_words_read_as_twos_complement() -> None:
    """An int96 price difference arrives sign-extended to 256 bits: negative values must come back negative."""
    assert read_signed("ff" * 32) == -1
    assert read_signed(format((1 << 256) - 1_000_000, "064x")) == -1_000_000
    assert read_signed(format(2**95 - 1, "064x")) == 2**95 - 1
    assert read_signed("80" + "00" * 31) == -(2**255)
    assert read_signed("00" * 32) == 0


@given(st.integers(min_value=-(2**95), max_value=2**95 - 1))
@settings(max_examples=200, deadline=None)
def test_signed_words_read_what_eth_abi_encodes(value: int) -> None:
    assert read_signed(abi_encode(["int96"], [value]).hex()) == value
