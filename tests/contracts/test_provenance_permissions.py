"""ProvenanceLedger permissions: who may record which bizStep, register items, set sellers,
hand items over and grant roles; and who may record a sale through ReturnsEscrow.

The expected table is written out here from contracts/EpcisCodes.sol, independently
of the contract's own logic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import brownie
import pytest
from conftest import (
    COMMISSIONING,
    CONFORMANT,
    DEFAULT_POLICY,
    DEPARTING,
    IN_PROGRESS,
    INSPECTING,
    LOCATION,
    PRICE,
    RETAIL_SELLING,
    RETAIL_SOLD,
    SHIPPING,
    ZERO32,
    event_input,
    item_id,
    item_uri,
)
from test_provenance_ledger import revert_message

KINDS = ["admin", "manufacturer", "merchant", "carrier", "inspector", "arbiter", "consumer", "outsider"]
RESERVED = {1, 5}  # commissioning (registration only), retail_selling (ReturnsEscrow only)
PRODUCTION = {"manufacturer", "merchant"}
# bizStep code -> account kinds that may record it with recordEvent (EpcisCodes.sol table).
WHO_MAY: dict[int, set[str]] = {
    1: set(),
    2: PRODUCTION,
    3: PRODUCTION,
    4: PRODUCTION,
    5: set(),
    6: {"carrier"},
    7: {"carrier"},
    8: {"carrier"},
    9: {"inspector"},
    10: PRODUCTION,
    11: PRODUCTION,
    12: PRODUCTION,
    13: PRODUCTION,
    14: PRODUCTION,
}
ORDER = b"\x33" * 32


def unauthorized(account: Any, role: bytes) -> str:
    """OpenZeppelin AccessControl's error for a missing role."""
    return revert_message("AccessControlUnauthorizedAccount", account, bytes(role))


@pytest.fixture(scope="module")
def item(register: Callable[..., bytes]) -> bytes:
    """An item of `merchant`, registered once for the whole module."""
    return register(1)


@pytest.fixture(scope="module")
def recorder(ledger: Any, admin: Any, consumer2: Any) -> Any:
    """A plain account (otherwise consumer2) holding RECORDER_ROLE, to call recordEventFor directly."""
    ledger.grantRole(ledger.RECORDER_ROLE(), consumer2, {"from": admin})
    return consumer2


# --- recordEvent: the bizStep x account-kind matrix -----------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("step", range(1, 15))
def test_record_event_permission(ledger: Any, item: bytes, request: Any, step: int, kind: str) -> None:
    actor = request.getfixturevalue(kind)
    submit = event_input(item, step, IN_PROGRESS)
    if step in RESERVED:
        with brownie.reverts(revert_message("ProvenanceStepReserved", step)):
            ledger.recordEvent(submit, {"from": actor})
    elif kind in WHO_MAY[step]:
        tx = ledger.recordEvent(submit, {"from": actor})
        ev = tx.events["ItemEventRecorded"]
        assert (ev["actor"], ev["bizStep"], ev["seq"]) == (actor, step, 1)
        assert ledger.itemOf(item)[1] == 2
        return
    else:
        with brownie.reverts(revert_message("ProvenanceStepNotAllowed", actor, step)):
            ledger.recordEvent(submit, {"from": actor})
    assert ledger.itemOf(item)[1] == 1


@pytest.mark.parametrize("kind", KINDS)
def test_record_events_batch_applies_the_same_table(ledger: Any, item: bytes, request: Any, kind: str) -> None:
    actor = request.getfixturevalue(kind)
    allowed = [s for s in range(1, 15) if kind in WHO_MAY[s] and s != 12]  # keep the item alive
    forbidden = next(s for s in range(1, 15) if s not in RESERVED and kind not in WHO_MAY[s])
    # One forbidden step after the allowed ones (the batch caches checks per step) sinks the batch.
    batch = [event_input(item, s, IN_PROGRESS) for s in [*allowed, forbidden]]
    with brownie.reverts(revert_message("ProvenanceStepNotAllowed", actor, forbidden)):
        ledger.recordEvents(batch, {"from": actor})
    if allowed:
        tx = ledger.recordEvents(batch[:-1], {"from": actor})
        assert [ev["bizStep"] for ev in tx.events["ItemEventRecorded"]] == allowed
    assert ledger.itemOf(item)[1] == 1 + len(allowed)


def test_revoked_role_can_no_longer_record(ledger: Any, item: bytes, admin: Any, carrier: Any) -> None:
    ledger.recordEvent(event_input(item, DEPARTING, IN_PROGRESS), {"from": carrier})
    ledger.revokeRole(ledger.CARRIER_ROLE(), carrier, {"from": admin})
    with brownie.reverts(revert_message("ProvenanceStepNotAllowed", carrier, DEPARTING)):
        ledger.recordEvent(event_input(item, DEPARTING, IN_PROGRESS), {"from": carrier})


# --- recordEventFor -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["admin", "manufacturer", "merchant", "carrier", "outsider"])
def test_record_event_for_needs_recorder_role(ledger: Any, item: bytes, request: Any, kind: str) -> None:
    caller = request.getfixturevalue(kind)
    with brownie.reverts(unauthorized(caller, ledger.RECORDER_ROLE())):
        ledger.recordEventFor(caller, event_input(item, SHIPPING, IN_PROGRESS), {"from": caller})


def test_record_event_for_checks_the_actor_not_the_recorder(
    ledger: Any,
    item: bytes,
    recorder: Any,
    merchant: Any,
    merchant2: Any,
    carrier: Any,
    inspector: Any,
    manufacturer: Any,
) -> None:
    # The recorder itself has no other role; what counts is the actor it names.
    with brownie.reverts(revert_message("ProvenanceStepNotAllowed", carrier, INSPECTING)):
        ledger.recordEventFor(carrier, event_input(item, INSPECTING, CONFORMANT), {"from": recorder})
    # commissioning stays reserved for registration, even through a recorder.
    with brownie.reverts(revert_message("ProvenanceStepNotAllowed", manufacturer, COMMISSIONING)):
        ledger.recordEventFor(manufacturer, event_input(item, COMMISSIONING, IN_PROGRESS), {"from": recorder})
    # retail_selling: only the merchant of record or its sellers.
    with brownie.reverts(revert_message("ProvenanceNotMerchantOfRecord", item, merchant2)):
        ledger.recordEventFor(merchant2, event_input(item, RETAIL_SELLING, RETAIL_SOLD), {"from": recorder})
    tx = ledger.recordEventFor(inspector, event_input(item, INSPECTING, CONFORMANT), {"from": recorder})
    assert tx.events["ItemEventRecorded"]["actor"] == inspector
    tx = ledger.recordEventFor(merchant, event_input(item, RETAIL_SELLING, RETAIL_SOLD), {"from": recorder})
    assert tx.events["ItemEventRecorded"]["actor"] == merchant
    assert ledger.itemOf(item)[1] == 3


# --- registration, sellers, hand-over, roles ------------------------------------------------------


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "manufacturer"])
def test_register_item_needs_manufacturer_role(ledger: Any, merchant: Any, request: Any, kind: str) -> None:
    caller = request.getfixturevalue(kind)
    with brownie.reverts(unauthorized(caller, ledger.MANUFACTURER_ROLE())):
        ledger.registerItem(item_uri(2), 0, merchant, ZERO32, LOCATION, {"from": caller})
    assert ledger.itemOf(item_id(item_uri(2)))[1] == 0


@pytest.mark.parametrize("kind", ["admin", "manufacturer", "carrier", "inspector", "arbiter", "outsider"])
def test_set_seller_needs_merchant_role(ledger: Any, consumer: Any, request: Any, kind: str) -> None:
    caller = request.getfixturevalue(kind)
    with brownie.reverts(unauthorized(caller, ledger.MERCHANT_ROLE())):
        ledger.setSeller(consumer, True, {"from": caller})
    assert not ledger.isSeller(caller, consumer)


def test_set_seller_is_per_merchant(ledger: Any, merchant: Any, merchant2: Any, outsider: Any) -> None:
    tx = ledger.setSeller(outsider, True, {"from": merchant})
    ev = tx.events["SellerSet"]
    assert (ev["merchant"], ev["seller"], ev["allowed"]) == (merchant, outsider, True)
    assert ledger.isSeller(merchant, outsider)
    assert ledger.isSeller(merchant, merchant)
    assert not ledger.isSeller(merchant2, outsider)
    assert not ledger.isSeller(merchant, merchant2)
    ledger.setSeller(outsider, False, {"from": merchant})
    assert not ledger.isSeller(merchant, outsider)


@pytest.mark.parametrize("kind", ["admin", "manufacturer", "merchant2", "outsider"])
def test_transfer_merchant_of_record_only_by_current_merchant(
    ledger: Any, item: bytes, merchant: Any, merchant2: Any, request: Any, kind: str
) -> None:
    caller = request.getfixturevalue(kind)
    with brownie.reverts(revert_message("ProvenanceNotMerchantOfRecord", item, caller)):
        ledger.transferMerchantOfRecord(item, merchant2, {"from": caller})
    assert ledger.merchantOf(item) == merchant


@pytest.mark.parametrize("kind", ["outsider", "manufacturer", "carrier", "consumer"])
def test_transfer_merchant_of_record_to_non_merchant_reverts(
    ledger: Any, item: bytes, merchant: Any, request: Any, kind: str
) -> None:
    target = request.getfixturevalue(kind)
    with brownie.reverts(revert_message("ProvenanceNotMerchant", target)):
        ledger.transferMerchantOfRecord(item, target, {"from": merchant})
    assert ledger.merchantOf(item) == merchant


def test_transfer_merchant_of_record_hands_over(ledger: Any, item: bytes, merchant: Any, merchant2: Any) -> None:
    tx = ledger.transferMerchantOfRecord(item, merchant2, {"from": merchant})
    ev = tx.events["MerchantOfRecordChanged"]
    assert (bytes(ev["itemId"]), ev["previousMerchant"], ev["newMerchant"]) == (item, merchant, merchant2)
    assert ledger.merchantOf(item) == merchant2 == ledger.itemOf(item)[2]
    with brownie.reverts(revert_message("ProvenanceNotMerchantOfRecord", item, merchant)):
        ledger.transferMerchantOfRecord(item, merchant, {"from": merchant})
    missing = item_id(item_uri(404))
    with brownie.reverts(revert_message("ProvenanceItemUnknown", missing)):
        ledger.transferMerchantOfRecord(missing, merchant2, {"from": merchant})


@pytest.mark.parametrize("kind", ["manufacturer", "merchant", "arbiter", "outsider"])
def test_grant_role_needs_admin(ledger: Any, outsider: Any, request: Any, kind: str) -> None:
    caller = request.getfixturevalue(kind)
    with brownie.reverts(unauthorized(caller, ZERO32)):
        ledger.grantRole(ledger.MERCHANT_ROLE(), outsider, {"from": caller})
    assert not ledger.hasRole(ledger.MERCHANT_ROLE(), outsider)


# --- sales through ReturnsEscrow ------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop(token: Any, policy: Any, outsider: Any) -> Any:
    """A point-of-sale account with no role of its own; `merchant` has a token and a policy."""
    return outsider


def sell(escrow: Any, token: Any, itemid: bytes, consumer: Any, sender: Any) -> Any:
    return escrow.recordSale(itemid, consumer, token, PRICE, ORDER, LOCATION, {"from": sender})


def test_merchant_of_record_records_a_sale(
    ledger: Any, escrow: Any, token: Any, item: bytes, shop: Any, merchant: Any, consumer: Any
) -> None:
    tx = sell(escrow, token, item, consumer, merchant)
    ev = tx.events["ItemEventRecorded"]
    assert (ev["actor"], ev["bizStep"], ev["disposition"], ev["seq"]) == (merchant, RETAIL_SELLING, RETAIL_SOLD, 1)
    assert bytes(ev["bizTransaction"]) == ORDER
    assert tx.events["SaleRecorded"]["merchant"] == merchant


def test_seller_set_by_merchant_records_a_sale(
    ledger: Any, escrow: Any, token: Any, item: bytes, shop: Any, merchant: Any, consumer: Any
) -> None:
    ledger.setSeller(shop, True, {"from": merchant})
    tx = sell(escrow, token, item, consumer, shop)
    ev = tx.events["ItemEventRecorded"]
    assert (ev["actor"], ev["bizStep"], ev["disposition"]) == (shop, RETAIL_SELLING, RETAIL_SOLD)
    sale = tx.events["SaleRecorded"]
    assert (sale["merchant"], sale["consumer"]) == (merchant, consumer)
    assert ledger.itemOf(item)[1] == 2


def test_removed_seller_cannot_record_a_sale(
    ledger: Any, escrow: Any, token: Any, item: bytes, shop: Any, merchant: Any, consumer: Any
) -> None:
    ledger.setSeller(shop, True, {"from": merchant})
    ledger.setSeller(shop, False, {"from": merchant})
    with brownie.reverts(revert_message("EscrowNotSeller", item, shop)):
        sell(escrow, token, item, consumer, shop)
    assert ledger.itemOf(item)[1] == 1


@pytest.mark.parametrize("kind", ["merchant2", "manufacturer", "carrier", "consumer", "admin"])
def test_others_cannot_record_a_sale(
    ledger: Any, escrow: Any, token: Any, item: bytes, shop: Any, consumer: Any, request: Any, kind: str
) -> None:
    caller = request.getfixturevalue(kind)
    with brownie.reverts(revert_message("EscrowNotSeller", item, caller)):
        sell(escrow, token, item, consumer, caller)
    assert ledger.itemOf(item)[1] == 1


def test_seller_of_another_merchant_cannot_record_a_sale(
    ledger: Any, escrow: Any, token: Any, item: bytes, shop: Any, merchant2: Any, consumer: Any
) -> None:
    ledger.setSeller(shop, True, {"from": merchant2})
    with brownie.reverts(revert_message("EscrowNotSeller", item, shop)):
        sell(escrow, token, item, consumer, shop)


def test_sale_rights_follow_the_merchant_of_record(
    ledger: Any, escrow: Any, token: Any, item: bytes, shop: Any, merchant: Any, merchant2: Any, consumer: Any
) -> None:
    ledger.setSeller(shop, True, {"from": merchant})
    ledger.transferMerchantOfRecord(item, merchant2, {"from": merchant})
    escrow.publishPolicy(DEFAULT_POLICY, {"from": merchant2})
    for former in (merchant, shop):
        with brownie.reverts(revert_message("EscrowNotSeller", item, former)):
            sell(escrow, token, item, consumer, former)
    tx = sell(escrow, token, item, consumer, merchant2)
    assert tx.events["SaleRecorded"]["merchant"] == merchant2
    assert tx.events["ItemEventRecorded"]["actor"] == merchant2
