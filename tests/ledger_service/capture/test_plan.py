"""The capture's rules that need the index, on facts given as values: the contract's role rules, each item's
order (nothing before commissioning, nothing after destroying, no event dated before the item's last)."""

from __future__ import annotations

from typing import Any

import pytest

from ledger_service.capture.plan import plan_capture
from ledger_service.epcis.document import EpcisEvent, item_id_of, read_document
from ledger_service.epcis.errors import DocumentRefusedError
from ledger_service.store.epcis_events import ActorFacts, ItemFacts

MANUFACTURER = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
MERCHANT = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"
OTHER_MERCHANT = "0x23618e81e3f5cdf7f54c3d65f7fbc0abf5b21e8f"
CARRIER = "0x90f79bf6eb2c4f870365e785982e1f101e93b906"
ROLES = {
    MANUFACTURER: ActorFacts(frozenset({"MANUFACTURER_ROLE"}), frozenset()),
    MERCHANT: ActorFacts(frozenset({"MERCHANT_ROLE"}), frozenset()),
    OTHER_MERCHANT: ActorFacts(frozenset({"MERCHANT_ROLE"}), frozenset()),
    CARRIER: ActorFacts(frozenset({"CARRIER_ROLE"}), frozenset()),
}
KNOWN = "urn:epc:id:sgtin:0614141.107346.1"
NEW = "urn:epc:id:sgtin:0614141.107346.2"


def events(*bodies: dict[str, Any]) -> list[EpcisEvent]:
    return read_document(
        {
            "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", {"ledger": "urn:x:"}],
            "type": "EPCISDocument",
            "schemaVersion": "2.0",
            "creationDate": "2026-03-01T09:00:00Z",
            "epcisBody": {"eventList": list(bodies)},
        }
    )


def body(
    epc: str, step: str = "shipping", disposition: str = "in_transit", minute: int = 10, **extra: Any
) -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "eventTime": f"2026-03-01T10:{minute:02d}:00Z",
        "eventTimeZoneOffset": "+00:00",
        "epcList": [epc],
        "action": "ADD" if step == "commissioning" else "OBSERVE",
        "bizStep": step,
        "disposition": disposition,
        **extra,
    }


def plan(actor: str, *bodies: dict[str, Any], destroyed: bool = False) -> Any:
    read = events(*bodies)
    known = {item_id_of(KNOWN): ItemFacts(item_id_of(KNOWN), MERCHANT, destroyed, 3, 1772360100000)}  # 10:15 UTC
    return plan_capture(
        events=read,
        documents={e.hash_id: b"\x11" * 32 for e in read},
        actor=actor,
        actor_facts=ROLES[actor],
        items=known,
        merchant_role=lambda account: "MERCHANT_ROLE" in ROLES.get(account, ActorFacts(frozenset(), frozenset())).roles,
    )


def messages(actor: str, *bodies: dict[str, Any], destroyed: bool = False) -> list[tuple[int | None, str]]:
    with pytest.raises(DocumentRefusedError) as refused:
        plan(actor, *bodies, destroyed=destroyed)
    return [(e.index, e.message) for e in refused.value.errors]


def test_commissioning_then_steps_in_one_document_are_planned_in_order() -> None:
    planned = plan(
        MANUFACTURER,
        body(NEW, "commissioning", "active", minute=0, **{"ledger:merchant": MERCHANT}),
        body(NEW, minute=5),
        body(KNOWN, minute=20),
    )
    assert [r.uri for r in planned.registrations] == [NEW]
    assert planned.registrations[0].merchant.lower() == MERCHANT
    assert [s.item_id for s in planned.steps] == [item_id_of(NEW), item_id_of(KNOWN)]


def test_roles_decide_as_the_contract_does() -> None:
    [(index, message)] = messages(CARRIER, body(KNOWN, "receiving", "in_progress", minute=20))
    assert index == 0 and "needs the manufacturer role, or the merchant role" in message
    [(_, message)] = messages(OTHER_MERCHANT, body(KNOWN, minute=20))
    assert "neither the item's merchant of record" in message
    [(_, message)] = messages(MERCHANT, body(KNOWN, "departing", "in_transit", minute=20))
    assert "needs the carrier role on-chain" in message
    assert plan(CARRIER, body(KNOWN, "departing", "in_transit", minute=20)).steps
    [(_, message)] = messages(MERCHANT, body(NEW, "commissioning", "active", minute=0))
    assert "may not commission items" in message


def test_each_items_order_is_kept() -> None:
    [(_, message)] = messages(MERCHANT, body(NEW))
    assert "is not registered on the ledger" in message
    [(_, message)] = messages(MERCHANT, body(KNOWN, minute=5))
    assert "is before item" in message and "last event (2026-03-01T10:15:00.000Z)" in message
    found = messages(MERCHANT, body(KNOWN, "destroying", "destroyed", minute=20), body(KNOWN, minute=30))
    assert found == [(1, found[0][1])] and "was destroyed" in found[0][1]
    [(_, message)] = messages(MERCHANT, body(KNOWN, minute=20), destroyed=True)
    assert "was destroyed" in message
    merchant_field: dict[str, Any] = {"ledger:merchant": MERCHANT}
    [(_, message)] = messages(MANUFACTURER, body(KNOWN, "commissioning", "active", **merchant_field))
    assert "already registered" in message


def test_a_refused_event_does_not_count_for_the_next() -> None:
    """The second event is judged as if the refused first one were not there (it will not be recorded)."""
    found = messages(MERCHANT, body(KNOWN, "departing", "in_transit", minute=40), body(KNOWN, minute=20))
    assert [index for index, _ in found] == [0]
