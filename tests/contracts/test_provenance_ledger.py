"""ProvenanceLedger: registration, event recording, batches and the per-item hash chain.

The hash chain is recomputed here in Python from the emitted ItemEventRecorded
events, with the formula in the header of contracts/interfaces/IProvenanceLedger.sol,
the way an auditor who does not trust the contract would do it.
"""

from __future__ import annotations

from typing import Any

import brownie
import pytest
from brownie import web3
from conftest import (
    ACTIVE,
    ARRIVING,
    COMMISSIONING,
    CONFORMANT,
    DAMAGED,
    DECOMMISSIONING,
    DEPARTING,
    DESTROYED,
    DESTROYING,
    HOLDING,
    IN_PROGRESS,
    IN_TRANSIT,
    INSPECTING,
    LOCATION,
    PACKING,
    PRICE,
    RECALLED,
    RECEIVING,
    REPAIRING,
    RETAIL_SELLING,
    RETAIL_SOLD,
    RETURNED,
    SELLABLE_ACCESSIBLE,
    SHIPPING,
    STOCKING,
    ZERO32,
    event_input,
    item_id,
    item_uri,
)
from eth_abi.abi import encode

GTIN = 614141107346
METADATA = b"\x22" * 32
EVENT_TYPES = ["bytes32", "bytes32", "uint64", "uint8", "uint8", "address", "bytes32", "uint64"]


def revert_message(name: str, *args: Any) -> str:
    """The revert message brownie prints for custom error `name(args)`.

    bytes32 arguments appear as Python bytes reprs, addresses in lower case.
    """
    shown: list[str] = []
    for a in args:
        if isinstance(a, (bytes, bytearray)):
            shown.append(str(bytes(a)))
        elif isinstance(a, int):
            shown.append(str(a))
        else:  # an account or an address string
            shown.append(str(a).lower())
    return f"{name}: {', '.join(shown)}"


def data_hash(location: bytes, document: bytes, biz_transaction: bytes) -> bytes:
    return bytes(web3.keccak(encode(["bytes32", "bytes32", "bytes32"], [location, document, biz_transaction])))


def expected_event_hash(prev_hash: bytes, ev: Any) -> bytes:
    """eventHash of one emitted ItemEventRecorded, recomputed from its fields and `prev_hash`."""
    digest = data_hash(bytes(ev["location"]), bytes(ev["document"]), bytes(ev["bizTransaction"]))
    values = [
        prev_hash,
        bytes(ev["itemId"]),
        ev["seq"],
        ev["bizStep"],
        ev["disposition"],
        ev["actor"],
        digest,
        ev["timestamp"],
    ]
    return bytes(web3.keccak(encode(EVENT_TYPES, values)))


def replay(events: list[Any]) -> bytes:
    """Replays one item's events in order; checks seq and prevHash links; returns the recomputed head."""
    head = ZERO32
    for seq, ev in enumerate(events):
        assert ev["seq"] == seq
        assert bytes(ev["prevHash"]) == head
        head = expected_event_hash(head, ev)
        assert bytes(ev["eventHash"]) == head
    return head


def recorded(tx: Any) -> list[Any]:
    return list(tx.events["ItemEventRecorded"])


@pytest.fixture(scope="module")
def register_tx(ledger: Any, manufacturer: Any, merchant: Any) -> Any:
    def _register(uri: str, owner: Any = None, sender: Any = None) -> Any:
        return ledger.registerItem(uri, GTIN, owner or merchant, METADATA, LOCATION, {"from": sender or manufacturer})

    return _register


# --- registration ---------------------------------------------------------------------------------


def test_register_emits_item_and_commissioning_event(
    ledger: Any, register_tx: Any, manufacturer: Any, merchant: Any
) -> None:
    uri = item_uri(2017)
    tx = register_tx(uri)
    itemid = bytes(tx.return_value)
    assert itemid == bytes(web3.keccak(uri.encode())) == item_id(uri)

    reg = tx.events["ItemRegistered"]
    assert bytes(reg["itemId"]) == itemid
    assert reg["manufacturer"] == manufacturer
    assert reg["merchant"] == merchant
    assert reg["uri"] == uri
    assert reg["gtin"] == GTIN
    assert bytes(reg["metadataDigest"]) == METADATA

    (ev,) = recorded(tx)
    assert bytes(ev["itemId"]) == itemid
    assert ev["actor"] == manufacturer
    assert (ev["seq"], ev["bizStep"], ev["disposition"]) == (0, COMMISSIONING, ACTIVE)
    assert bytes(ev["location"]) == LOCATION
    assert bytes(ev["document"]) == METADATA
    assert bytes(ev["bizTransaction"]) == ZERO32
    assert ev["timestamp"] == tx.timestamp
    assert bytes(ev["prevHash"]) == ZERO32

    head, count, owner, destroyed = ledger.itemOf(itemid)
    assert bytes(head) == replay([ev]) == bytes(ev["eventHash"])
    assert (count, owner, destroyed) == (1, merchant, False)
    assert ledger.merchantOf(itemid) == merchant


def test_unknown_item_reads_as_zeros(ledger: Any) -> None:
    head, count, owner, destroyed = ledger.itemOf(item_id(item_uri(404)))
    assert (bytes(head), count, owner, destroyed) == (ZERO32, 0, "0x" + "00" * 20, False)
    assert ledger.merchantOf(item_id(item_uri(404))) == "0x" + "00" * 20


def test_register_duplicate_uri_reverts(register_tx: Any, merchant2: Any) -> None:
    uri = item_uri(7)
    register_tx(uri)
    with brownie.reverts(revert_message("ProvenanceItemAlreadyRegistered", item_id(uri))):
        register_tx(uri, owner=merchant2)


@pytest.mark.parametrize("length", [0, 257, 1000])
def test_register_invalid_uri_length_reverts(register_tx: Any, length: int) -> None:
    with brownie.reverts(revert_message("ProvenanceInvalidUri", length)):
        register_tx("u" * length)


def test_register_uri_of_max_length_is_accepted(ledger: Any, register_tx: Any) -> None:
    uri = "urn:epc:id:sgtin:" + "9" * (256 - len("urn:epc:id:sgtin:"))
    assert ledger.MAX_URI_LENGTH() == 256 == len(uri.encode())
    tx = register_tx(uri)
    assert tx.events["ItemRegistered"]["uri"] == uri
    assert ledger.itemOf(item_id(uri))[1] == 1


def test_register_multibyte_uri_length_counts_bytes(register_tx: Any) -> None:
    # 129 two-byte characters: 129 code points but 258 bytes.
    with brownie.reverts(revert_message("ProvenanceInvalidUri", 258)):
        register_tx("é" * 129)


@pytest.mark.parametrize("owner_name", ["outsider", "carrier", "manufacturer"])
def test_register_for_account_without_merchant_role_reverts(register_tx: Any, request: Any, owner_name: str) -> None:
    owner = request.getfixturevalue(owner_name)
    with brownie.reverts(revert_message("ProvenanceNotMerchant", owner)):
        register_tx(item_uri(8), owner=owner)


# --- recordEvent and the hash chain ---------------------------------------------------------------


def test_events_link_into_a_chain_that_replays_to_the_stored_head(
    ledger: Any, register_tx: Any, merchant: Any, carrier: Any, inspector: Any, manufacturer: Any
) -> None:
    tx = register_tx(item_uri(1))
    itemid = bytes(tx.return_value)
    events = recorded(tx)
    steps = [
        (manufacturer, PACKING, IN_PROGRESS, {}),
        (merchant, SHIPPING, IN_TRANSIT, {"document": b"\x44" * 32}),
        (carrier, DEPARTING, IN_TRANSIT, {"location": b"0614141.00888.0".ljust(32, b"\x00")}),
        (carrier, ARRIVING, SELLABLE_ACCESSIBLE, {}),
        (inspector, INSPECTING, CONFORMANT, {"biz_transaction": b"\x55" * 32}),
        (merchant, STOCKING, SELLABLE_ACCESSIBLE, {}),
    ]
    for actor, step, disposition, extra in steps:
        head_before = bytes(ledger.itemOf(itemid)[0])
        tx = ledger.recordEvent(event_input(itemid, step, disposition, **extra), {"from": actor})
        (ev,) = recorded(tx)
        assert (ev["seq"], ev["bizStep"], ev["disposition"], ev["actor"]) == (len(events), step, disposition, actor)
        assert bytes(ev["prevHash"]) == head_before
        assert ev["timestamp"] == tx.timestamp
        assert bytes(tx.return_value) == bytes(ev["eventHash"]) == bytes(ledger.itemOf(itemid)[0])
        events.append(ev)

    head, count, _, destroyed = ledger.itemOf(itemid)
    assert replay(events) == bytes(head)
    assert count == len(events) == 7
    assert not destroyed


def test_compute_event_hash_matches_emitted_and_python_hashes(ledger: Any, register: Any, carrier: Any) -> None:
    itemid = register(3)
    tx = ledger.recordEvent(event_input(itemid, DEPARTING, IN_TRANSIT, document=b"\x01" * 32), {"from": carrier})
    (ev,) = recorded(tx)
    on_chain = ledger.computeEventHash(
        ev["prevHash"],
        ev["itemId"],
        ev["seq"],
        ev["bizStep"],
        ev["disposition"],
        ev["actor"],
        ev["location"],
        ev["document"],
        ev["bizTransaction"],
        ev["timestamp"],
    )
    assert bytes(on_chain) == bytes(ev["eventHash"]) == expected_event_hash(bytes(ev["prevHash"]), ev)


def test_altered_event_field_changes_the_hash(ledger: Any) -> None:
    # Every field is committed to: changing any one input of computeEventHash changes the result.
    base = [b"\x01" * 32, b"\x02" * 32, 3, 4, 5, "0x" + "66" * 20, b"\x07" * 32, b"\x08" * 32, b"\x09" * 32, 10]
    altered = [b"\x11" * 32, b"\x12" * 32, 13, 14, 6, "0x" + "77" * 20, b"\x17" * 32, b"\x18" * 32, b"\x19" * 32, 11]
    reference = bytes(ledger.computeEventHash(*base))
    for i in range(len(base)):
        changed = [*base[:i], altered[i], *base[i + 1 :]]
        assert bytes(ledger.computeEventHash(*changed)) != reference, f"field {i} is not hashed"


def test_sale_through_escrow_joins_the_chain(
    ledger: Any, escrow: Any, token: Any, policy: Any, register: Any, merchant: Any, consumer: Any, carrier: Any
) -> None:
    itemid = register(4)
    order = b"\x33" * 32
    sale = escrow.recordSale(itemid, consumer, token, PRICE, order, LOCATION, {"from": merchant})
    (sold,) = recorded(sale)
    assert (sold["seq"], sold["bizStep"], sold["disposition"]) == (1, RETAIL_SELLING, RETAIL_SOLD)
    assert sold["actor"] == merchant
    assert bytes(sold["bizTransaction"]) == order
    tx = ledger.recordEvent(event_input(itemid, ARRIVING, RETAIL_SOLD), {"from": carrier})
    # Rebuild the history the way an auditor would: from the logs alone.
    logs = ledger.events.get_sequence(from_block=0, event_type="ItemEventRecorded")
    history = [ev for ev in logs if bytes(ev.args["itemId"]) == itemid]
    assert [ev.args["seq"] for ev in history] == [0, 1, 2]
    assert replay([ev.args for ev in history]) == bytes(ledger.itemOf(itemid)[0]) == bytes(tx.return_value)


@pytest.mark.parametrize("step", [0, 15, 255])
def test_unknown_biz_step_reverts(ledger: Any, register: Any, merchant: Any, step: int) -> None:
    itemid = register(5)
    with brownie.reverts(revert_message("ProvenanceUnknownBizStep", step)):
        ledger.recordEvent(event_input(itemid, step, ACTIVE), {"from": merchant})


@pytest.mark.parametrize("disposition", [0, 14, 255])
def test_unknown_disposition_reverts(ledger: Any, register: Any, merchant: Any, disposition: int) -> None:
    itemid = register(6)
    with brownie.reverts(revert_message("ProvenanceUnknownDisposition", disposition)):
        ledger.recordEvent(event_input(itemid, SHIPPING, disposition), {"from": merchant})


def test_event_on_unknown_item_reverts(ledger: Any, merchant: Any) -> None:
    itemid = item_id(item_uri(999))
    with brownie.reverts(revert_message("ProvenanceItemUnknown", itemid)):
        ledger.recordEvent(event_input(itemid, SHIPPING, IN_TRANSIT), {"from": merchant})


def test_no_event_after_destroying(
    ledger: Any, escrow: Any, token: Any, policy: Any, register: Any, merchant: Any, carrier: Any, consumer: Any
) -> None:
    itemid = register(9)
    tx = ledger.recordEvent(event_input(itemid, DESTROYING, DESTROYED), {"from": merchant})
    head, count, _, destroyed = ledger.itemOf(itemid)
    assert (destroyed, count, bytes(head)) == (True, 2, bytes(tx.return_value))

    message = revert_message("ProvenanceItemDestroyed", itemid)
    with brownie.reverts(message):
        ledger.recordEvent(event_input(itemid, ARRIVING, IN_TRANSIT), {"from": carrier})
    with brownie.reverts(message):
        ledger.recordEvent(event_input(itemid, DESTROYING, DESTROYED), {"from": merchant})
    with brownie.reverts(message):
        ledger.recordEvents([event_input(itemid, HOLDING, RECALLED)], {"from": merchant})
    with brownie.reverts(message):
        escrow.recordSale(itemid, consumer, token, PRICE, ZERO32, LOCATION, {"from": merchant})
    assert ledger.itemOf(itemid)[1] == 2


# --- recordEvents (batch) -------------------------------------------------------------------------


def test_batch_of_100_events_on_distinct_items(ledger: Any, register: Any, merchant: Any) -> None:
    items = [register(1000 + n) for n in range(100)]
    heads = {itemid: bytes(ledger.itemOf(itemid)[0]) for itemid in items}
    dispositions = [SELLABLE_ACCESSIBLE, IN_PROGRESS, DAMAGED, RETURNED]
    inputs = [event_input(itemid, RECEIVING, dispositions[n % 4]) for n, itemid in enumerate(items)]
    tx = ledger.recordEvents(inputs, {"from": merchant})

    events = recorded(tx)
    assert [bytes(ev["itemId"]) for ev in events] == items
    for n, ev in enumerate(events):
        itemid = items[n]
        assert (ev["seq"], ev["bizStep"], ev["disposition"]) == (1, RECEIVING, dispositions[n % 4])
        assert ev["actor"] == merchant
        assert bytes(ev["prevHash"]) == heads[itemid]
        assert expected_event_hash(heads[itemid], ev) == bytes(ev["eventHash"])
        head, count, _, _ = ledger.itemOf(itemid)
        assert (bytes(head), count) == (bytes(ev["eventHash"]), 2)


def test_batch_on_one_item_increments_seq_in_order(ledger: Any, register_tx: Any, manufacturer: Any) -> None:
    tx = register_tx(item_uri(11))
    itemid = bytes(tx.return_value)
    steps = [PACKING, SHIPPING, RECEIVING, STOCKING, HOLDING, STOCKING]
    batch = ledger.recordEvents([event_input(itemid, s, IN_PROGRESS) for s in steps], {"from": manufacturer})
    events = recorded(tx) + recorded(batch)
    assert [ev["bizStep"] for ev in events[1:]] == steps
    assert replay(events) == bytes(ledger.itemOf(itemid)[0])
    assert ledger.itemOf(itemid)[1] == 7


def test_batch_of_max_size_is_accepted(ledger: Any, register: Any, merchant: Any) -> None:
    itemid = register(12)
    assert ledger.MAX_BATCH() == 256
    tx = ledger.recordEvents([event_input(itemid, STOCKING, SELLABLE_ACCESSIBLE)] * 256, {"from": merchant})
    assert len(recorded(tx)) == 256
    assert ledger.itemOf(itemid)[1] == 257


@pytest.mark.parametrize("size", [0, 257])
def test_batch_of_invalid_size_reverts(ledger: Any, register: Any, merchant: Any, size: int) -> None:
    itemid = register(13)
    with brownie.reverts(revert_message("ProvenanceInvalidBatch", size)):
        ledger.recordEvents([event_input(itemid, STOCKING, SELLABLE_ACCESSIBLE)] * size, {"from": merchant})


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ("unknown_item", "ProvenanceItemUnknown"),
        ("step_not_allowed", "ProvenanceStepNotAllowed"),
        ("reserved_step", "ProvenanceStepReserved"),
        ("unknown_disposition", "ProvenanceUnknownDisposition"),
        ("after_destroying", "ProvenanceItemDestroyed"),
    ],
)
def test_batch_failing_in_the_middle_reverts_entirely(
    ledger: Any, register: Any, merchant: Any, bad: str, error: str
) -> None:
    a, b, c = register(21), register(22), register(23)
    before = [tuple(ledger.itemOf(i)) for i in (a, b, c)]
    missing = item_id(item_uri(29))
    middle = {
        "unknown_item": (event_input(missing, SHIPPING, IN_TRANSIT), (missing,)),
        "step_not_allowed": (event_input(b, INSPECTING, CONFORMANT), (merchant, INSPECTING)),
        "reserved_step": (event_input(b, RETAIL_SELLING, RETAIL_SOLD), (RETAIL_SELLING,)),
        "unknown_disposition": (event_input(b, SHIPPING, 99), (99,)),
        "after_destroying": (event_input(a, SHIPPING, IN_TRANSIT), (a,)),
    }[bad]
    batch = [
        event_input(a, DESTROYING, DESTROYED),
        event_input(b, SHIPPING, IN_TRANSIT),
        middle[0],
        event_input(c, SHIPPING, IN_TRANSIT),
    ]
    with brownie.reverts(revert_message(error, *middle[1])):
        ledger.recordEvents(batch, {"from": merchant})
    assert [tuple(ledger.itemOf(i)) for i in (a, b, c)] == before


def test_batch_starting_with_biz_step_zero_reverts(ledger: Any, register: Any, outsider: Any) -> None:
    itemid = register(14)
    with brownie.reverts(revert_message("ProvenanceUnknownBizStep", 0)):
        ledger.recordEvents([event_input(itemid, 0, ACTIVE)], {"from": outsider})


def test_batch_with_unknown_biz_step_later_reverts(ledger: Any, register: Any, merchant: Any) -> None:
    itemid = register(15)
    batch = [event_input(itemid, SHIPPING, IN_TRANSIT), event_input(itemid, 15, IN_TRANSIT)]
    with brownie.reverts(revert_message("ProvenanceUnknownBizStep", 15)):
        ledger.recordEvents(batch, {"from": merchant})


@pytest.mark.parametrize(
    "step", [PACKING, SHIPPING, RECEIVING, REPAIRING, STOCKING, DESTROYING, DECOMMISSIONING, HOLDING]
)
def test_merchant_cannot_record_on_another_merchants_item(
    ledger: Any, register: Any, merchant: Any, merchant2: Any, step: int
) -> None:
    itemid = register(16)  # merchant of record: `merchant`
    with brownie.reverts(revert_message("ProvenanceNotMerchantOfRecord", itemid, merchant2)):
        ledger.recordEvent(event_input(itemid, step, ACTIVE), {"from": merchant2})
    with brownie.reverts(revert_message("ProvenanceNotMerchantOfRecord", itemid, merchant2)):
        ledger.recordEvents([event_input(itemid, step, ACTIVE)], {"from": merchant2})
    ledger.setSeller(merchant2, True, {"from": merchant})
    ledger.recordEvent(event_input(itemid, step, ACTIVE), {"from": merchant2})
    assert ledger.itemOf(itemid)[1] == 2
