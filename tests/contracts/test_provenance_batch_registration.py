"""ProvenanceLedger.registerItems: many items in one transaction, each exactly as registerItem registers it.

"Exactly" is checked on the logs themselves: the same registrations sent one by one and as a batch, from
the same state and at the same block time, must leave byte-identical ItemRegistered and ItemEventRecorded
logs (topics and data), so the indexer, the index and ledger-verify cannot tell them apart.
"""

from __future__ import annotations

from typing import Any

import brownie
import pytest
from brownie import chain, web3
from conftest import LOCATION, SELLABLE_ACCESSIBLE, STOCKING, ZERO32, event_input, item_id, item_uri
from test_provenance_ledger import recorded, replay, revert_message
from test_provenance_permissions import KINDS, unauthorized

GTIN = 614141107346
METADATA = b"\x22" * 32


def registration(n: int, merchant: Any, *, uri: str | None = None) -> tuple[Any, ...]:
    return (uri if uri is not None else item_uri(n), GTIN + n, merchant, METADATA, LOCATION)


def logs_in_block(txids: list[Any], at: int) -> list[tuple[tuple[bytes, ...], bytes]]:
    """Mines the pending ``txids`` in one block at time ``at``; their logs (topics, data) in order."""
    web3.provider.make_request("evm_mine", [at])
    web3.provider.make_request("evm_setAutomine", [True])
    logs: list[tuple[tuple[bytes, ...], bytes]] = []
    for txid in txids:
        receipt = web3.eth.get_transaction_receipt(txid)
        assert receipt["status"] == 1
        logs.extend((tuple(bytes(t) for t in log["topics"]), bytes(log["data"])) for log in receipt["logs"])
    return logs


def send_pending(ledger: Any, sender: Any, data: list[str]) -> list[Any]:
    web3.provider.make_request("evm_setAutomine", [False])
    return [
        web3.eth.send_transaction(
            {"from": sender.address, "to": ledger.address, "data": d, "gas": 30_000_000 // len(data)}
        )
        for d in data
    ]


def test_batch_leaves_the_same_logs_as_one_by_one(ledger: Any, manufacturer: Any, merchant: Any) -> None:
    regs = [registration(n, merchant) for n in range(100, 105)]
    at = int(chain[-1].timestamp) + 100
    chain.snapshot()
    singles = logs_in_block(
        send_pending(ledger, manufacturer, [ledger.registerItem.encode_input(*r) for r in regs]), at
    )
    heads = [ledger.itemOf(item_id(reg[0])) for reg in regs]
    chain.revert()
    batch = logs_in_block(send_pending(ledger, manufacturer, [ledger.registerItems.encode_input(regs)]), at)
    assert len(singles) == 10
    assert batch == singles
    assert [ledger.itemOf(item_id(reg[0])) for reg in regs] == heads


def test_batch_registered_items_chain_on(ledger: Any, manufacturer: Any, merchant: Any) -> None:
    regs = [registration(n, merchant) for n in range(3)]
    tx = ledger.registerItems(regs, {"from": manufacturer})
    for reg, ev in zip(regs, recorded(tx), strict=True):
        assert (bytes(ev["itemId"]), ev["seq"], ev["actor"]) == (item_id(reg[0]), 0, manufacturer)
    itemid = item_id(regs[1][0])
    more = ledger.recordEvents([event_input(itemid, STOCKING, SELLABLE_ACCESSIBLE)] * 2, {"from": merchant})
    history = [ev for ev in recorded(tx) if bytes(ev["itemId"]) == itemid] + recorded(more)
    assert replay(history) == bytes(ledger.itemOf(itemid)[0])
    assert ledger.merchantOf(itemid) == merchant


@pytest.mark.parametrize("size", [0, 257])
def test_batch_of_invalid_size_reverts(ledger: Any, manufacturer: Any, merchant: Any, size: int) -> None:
    with brownie.reverts(revert_message("ProvenanceInvalidBatch", size)):
        ledger.registerItems([registration(n, merchant) for n in range(size)], {"from": manufacturer})


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ("empty_uri", ("ProvenanceInvalidUri", 0)),
        ("long_uri", ("ProvenanceInvalidUri", 257)),
        ("not_merchant", ("ProvenanceNotMerchant",)),
        ("registered_before", ("ProvenanceItemAlreadyRegistered",)),
        ("twice_in_batch", ("ProvenanceItemAlreadyRegistered",)),
    ],
)
def test_one_bad_registration_reverts_the_whole_batch(
    ledger: Any, manufacturer: Any, merchant: Any, outsider: Any, bad: str, error: tuple[Any, ...]
) -> None:
    regs = [registration(n, merchant) for n in range(10, 14)]
    if bad == "empty_uri":
        regs[2] = registration(0, merchant, uri="")
    elif bad == "long_uri":
        regs[2] = registration(0, merchant, uri="u" * 257)
    elif bad == "not_merchant":
        regs[2] = registration(12, outsider)
        error = (*error, outsider)
    elif bad == "registered_before":
        ledger.registerItem(*registration(12, merchant), {"from": manufacturer})
        error = (*error, item_id(item_uri(12)))
    else:
        regs[3] = registration(11, merchant)
        error = (*error, item_id(item_uri(11)))
    with brownie.reverts(revert_message(*error)):
        ledger.registerItems(regs, {"from": manufacturer})
    fresh = regs[:2] + ([] if bad == "registered_before" else [regs[3]])
    assert all(ledger.itemOf(item_id(r[0]))[1] == 0 for r in fresh)


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "manufacturer"])
def test_register_items_needs_manufacturer_role(ledger: Any, merchant: Any, request: Any, kind: str) -> None:
    caller = request.getfixturevalue(kind)
    with brownie.reverts(unauthorized(caller, ledger.MANUFACTURER_ROLE())):
        ledger.registerItems([registration(2, merchant)], {"from": caller})
    assert ledger.itemOf(item_id(item_uri(2)))[1] == 0


def test_revoked_manufacturer_can_no_longer_register(ledger: Any, admin: Any, manufacturer: Any, merchant: Any) -> None:
    ledger.revokeRole(ledger.MANUFACTURER_ROLE(), manufacturer, {"from": admin})
    with brownie.reverts(unauthorized(manufacturer, ledger.MANUFACTURER_ROLE())):
        ledger.registerItems([registration(2, merchant)], {"from": manufacturer})


def test_full_batch_fits_in_a_block_and_costs_less_per_item(ledger: Any, manufacturer: Any, merchant: Any) -> None:
    # Long URIs (Digital Links of 60 bytes) make the log data, the part of the cost that grows with the URI.
    uris = [f"https://id.gs1.org/01/10614141073467/21/{n:020d}" for n in range(256)]
    assert ledger.MAX_BATCH() == 256
    tx = ledger.registerItems([registration(0, merchant, uri=u) for u in uris], {"from": manufacturer})
    assert len(tx.events["ItemRegistered"]) == 256
    assert tx.gas_used < chain[-1].gasLimit
    single = ledger.registerItem(*registration(0, merchant, uri=uris[0] + "x"), {"from": manufacturer})
    assert tx.gas_used / 256 < single.gas_used
    assert bytes(ledger.itemOf(item_id(uris[-1]))[0]) != ZERO32
