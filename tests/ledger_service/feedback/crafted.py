"""Crafted closed returns for the feedback tests: each with its reason, carrier and the days its steps took."""

from __future__ import annotations

from dataclasses import dataclass

from ledger_service.core.codes import BizStep, Disposition, ReturnState
from ledger_service.store import Store
from ledger_service.store.carriers import ShipmentRow, insert_shipment
from ledger_service.store.returns import ReturnRequestRow, insert_return_request
from tests.ledger_service.store.builders import DAY, ChainBuilder, addr, apply_new

MERCHANT_A = addr(2)
MERCHANT_B = addr(12)


@dataclass(frozen=True)
class Crafted:
    """One return to build: whose, why, with which carrier, and how many days received -> inspected took."""

    merchant: str
    consumer: str
    reason: str
    carrier: str
    inspect_days: int
    refund: bool = True


@dataclass(frozen=True)
class Built:
    spec: Crafted
    return_id: str
    item_id: str
    authorized_at: int
    refunded_at: int | None


def build(store: Store, specs: list[Crafted], *, open_one: bool = False) -> tuple[list[Built], str | None]:
    """Builds every return of ``specs`` as accepted (closed), with its request and shipment in the API's tables;
    with ``open_one`` one more return left in transit. Returns what was built and the open return's id."""
    chain = ChainBuilder()
    for merchant in (MERCHANT_A, MERCHANT_B):
        chain.policy(merchant, 1)
    built: list[Built] = []
    for n, spec in enumerate(specs):
        chain.next_block()
        item = chain.register(f"urn:epc:id:sgtin:0614141.107346.fb{n}", merchant=spec.merchant)
        chain.next_block()
        chain.sale(item, merchant=spec.merchant, consumer=spec.consumer)
        chain.next_block(seconds=DAY)
        chain.record(item, BizStep.ARRIVING, Disposition.RETAIL_SOLD)
        chain.next_block(seconds=DAY)
        return_id = chain.authorize(item, 1, merchant=spec.merchant, consumer=spec.consumer)
        authorized_at = chain.time
        chain.next_block(seconds=DAY)
        chain.transition(return_id, ReturnState.IN_TRANSIT, ReturnState.AUTHORIZED)
        chain.next_block(seconds=DAY)
        chain.transition(return_id, ReturnState.RECEIVED, ReturnState.IN_TRANSIT)
        chain.next_block(seconds=spec.inspect_days * DAY)
        chain.transition(return_id, ReturnState.ACCEPTED, ReturnState.RECEIVED)
        chain.settle(return_id, 100 if spec.refund else 0, 5)
        built.append(Built(spec, return_id, item, authorized_at, chain.time if spec.refund else None))
    open_id = None
    if open_one:
        chain.next_block()
        item = chain.register("urn:epc:id:sgtin:0614141.107346.open", merchant=MERCHANT_A)
        chain.next_block()
        chain.sale(item, merchant=MERCHANT_A, consumer=addr(6))
        chain.next_block()
        open_id = chain.authorize(item, 1, merchant=MERCHANT_A, consumer=addr(6))
        chain.next_block()
        chain.transition(open_id, ReturnState.IN_TRANSIT, ReturnState.AUTHORIZED)
    apply_new(store, chain)
    for n, one in enumerate(built):
        insert_return_request(
            store,
            ReturnRequestRow(
                id=f"rr_{n:032x}",
                item_id=one.item_id,
                consumer=one.spec.consumer,
                merchant=one.spec.merchant,
                reason_code=one.spec.reason,
                comment=None,
                outcome="approve",
                reasons=[],
                return_id=one.return_id,
                tx_hash=None,
                created_at=one.authorized_at,
                decided_at=one.authorized_at,
                decided_by="auto",
                active_item=None,
            ),
        )
        insert_shipment(store, ShipmentRow(one.spec.carrier, f"TRK{n:06d}", one.return_id, one.authorized_at))
    return built, open_id
