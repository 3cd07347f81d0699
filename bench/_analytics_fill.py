"""Synthetic index for bench/analytics.py: ``items`` items of 40 merchants, written through the store's own
write functions (``Store.apply`` for the indexer's rows, the return requests' and categories' own functions for
the API's), over the ``SPAN_DAYS`` days before now.

Per item, five logs: ItemRegistered, commissioning, the sale (SaleRecorded and its retail_selling event) and
the carrier's arriving, with a valid hash chain. Items are spread over ``GTINS`` GTINs (50 a merchant) in
``CATEGORIES`` categories. One item in ``RETURN_EVERY`` (spread over every merchant and GTIN) is asked back,
a week after its sale, with a reason and a comment (Chinese or English) from small pools; of those, by the
item's number: 80% approved and
authorized on-chain (then, in turn, left authorized, in transit, received, or accepted and paid out with a
restocking fee; one in 50 disputed), 10% rejected, 10% waiting for manual review.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from _api_eligibility_fill import _Chain, _hash, role_id
from sqlalchemy import Table

from ledger_service.core.codes import BizStep, Disposition, ReturnState
from ledger_service.core.events import (
    BlockHeader,
    DecodedEvent,
    EscrowSettled,
    ItemEventRecorded,
    ItemRegistered,
    ReturnAuthorized,
    ReturnStateChanged,
    RoleChanged,
    SaleRecorded,
)
from ledger_service.core.hashchain import event_hash_hex
from ledger_service.core.keccak import keccak
from ledger_service.store import BlockRef, ChainPin, Store
from ledger_service.store.returns import ReturnRequestRow
from ledger_service.store.tables import carrier_shipments, return_requests

DAY = 86_400
SPAN_DAYS = 365
MERCHANTS = 40
GTINS = 2_000
CATEGORIES = 20
RETURN_EVERY = 10
BATCH_EVENTS = 20_000
BULK_ROWS = 20_000
ZERO = "0x" + "00" * 32
LOCATION = "0x" + b"0614141.00777.0".ljust(32, b"\0").hex()
REASONS = ("wrong_size", "wrong_size", "damaged", "defective", "not_as_described", "changed_mind", "wrong_item")
COMMENTS = (
    "too small, need a bigger size",
    "鞋码偏小，想换大一号",
    "arrived broken, the box was crushed",
    "到货破损，包装太差",
    "colour differs from the photos",
    "stopped working after two days",
    "质量一般，做工粗糙",
    None,
)
CARRIERS = ("sf", "ems", "jd")


@dataclass
class FillStats:
    items: int = 0
    logs: int = 0
    requests: int = 0
    seconds: float = 0.0
    apply_seconds: float = 0.0
    """Of ``seconds``, the time in ``Store.apply`` (the indexer's share of the work)."""


def gtin_of(index: int) -> int:
    return 10614141000000 + index % GTINS


def merchant_of(index: int, merchants: tuple[str, ...]) -> str:
    # a GTIN belongs to one merchant
    return merchants[(index % GTINS) % len(merchants)]


def fill(
    store: Store,
    *,
    items: int,
    first: int = 0,
    pin: ChainPin,
    manufacturer: str,
    carrier: str,
    merchants: tuple[str, ...],
    token: str,
    now: int | None = None,
    span_s: int = 0,
    progress: Callable[[str], None] = print,
) -> FillStats:
    """Writes items ``first .. first + items - 1`` (their logs and return requests) into an index pinned to
    ``pin``: a fresh one, or with ``first`` > 0 one this function filled, whose chain it continues over the
    ``span_s`` seconds before ``now`` less 8 days (0: every block at that time)."""
    from ledger_service.store.carriers import ShipmentRow
    from ledger_service.store.items import set_item_category

    started = time.perf_counter()
    now = int(time.time()) if now is None else now
    head = store.checkpoint()
    if head is None:
        store.set_pin(pin)
    chain = _Chain(
        start=now - SPAN_DAYS * DAY, end=now - 8 * DAY, total_logs=items * 5, ledger=pin.ledger_address,
        escrow=pin.escrow_address,
    )  # fmt: skip
    if head is not None:  # continue the stored chain: the next block's parent is the checkpoint
        chain.start, chain.end = now - 8 * DAY - span_s, now - 8 * DAY
        chain.number = head.number + 1
        chain.headers = [BlockHeader(chain.number, _hash("block", "more", chain.number), head.hash, chain.start)]
    stats = FillStats()
    pending: list[DecodedEvent] = []
    requests: list[ReturnRequestRow] = []
    shipments: list[ShipmentRow] = []
    applied_to = 0
    last_report = started

    def flush(*, final: bool) -> None:
        nonlocal applied_to
        top = chain.number if final else chain.number - 1
        split = len(pending)
        if not final:
            while split and pending[split - 1].pos.block_number > top:
                split -= 1
        ready = pending[:split]
        del pending[:split]
        if ready:
            headers = [h for h in chain.headers if applied_to < h.number <= top]
            timer = time.perf_counter()
            store.apply(events=ready, headers=headers, checkpoint=BlockRef(top, headers[-1].hash), prune_below=top - 64)
            stats.apply_seconds += time.perf_counter() - timer
            applied_to = top
            chain.headers = chain.headers[-1:]

    chain.tx()
    for name, account in (("MANUFACTURER_ROLE", manufacturer), ("CARRIER_ROLE", carrier)):
        pending.append(RoleChanged(chain.pos(), role_id(name), account, manufacturer, True))
    for merchant in merchants:
        pending.append(RoleChanged(chain.pos(), role_id("MERCHANT_ROLE"), merchant, manufacturer, True))
    returns_due: list[tuple[int, str, str, str, int]] = []  # (due time, item id, merchant, consumer, index)
    for index in range(first, first + items):
        uri = f"urn:epc:id:sgtin:0614141.{index % GTINS}.{index}"
        iid = "0x" + keccak(uri.encode()).hex()
        merchant = merchant_of(index, merchants)
        consumer = "0x" + keccak(f"consumer:{index % 50_000}".encode()).hex()[-40:]
        order_ref = "0x" + keccak(f"order:{index}".encode()).hex()
        chain.tx()
        ts = chain.timestamp
        pending.append(ItemRegistered(chain.pos(), iid, manufacturer, merchant, uri, gtin_of(index), ZERO))
        prev = ZERO
        steps = (
            (BizStep.COMMISSIONING, Disposition.ACTIVE, manufacturer, ZERO),
            (BizStep.RETAIL_SELLING, Disposition.RETAIL_SOLD, merchant, order_ref),
            (BizStep.ARRIVING, Disposition.RETAIL_SOLD, carrier, order_ref),
        )
        for seq, (step, disposition, actor, biz_tx) in enumerate(steps):
            if seq == 1:
                pending.append(SaleRecorded(chain.pos(escrow=True), iid, merchant, consumer, 1, token, 10**8, 1,
                                            order_ref, ts))  # fmt: skip
            event_hash = event_hash_hex(
                prev_hash=prev, item_id=iid, seq=seq, biz_step=int(step), disposition=int(disposition), actor=actor,
                location=LOCATION, document=ZERO, biz_transaction=biz_tx, timestamp=ts,
            )  # fmt: skip
            pending.append(ItemEventRecorded(chain.pos(), iid, actor, seq, int(step), int(disposition), LOCATION, ZERO,
                                             biz_tx, ts, prev, event_hash))  # fmt: skip
            prev = event_hash
        stats.items += 1
        stats.logs += 5
        if (index // 7) % RETURN_EVERY == 0:  # not index % 10: with 2,000 GTINs of 40 merchants that picks 4 of them
            returns_due.append((ts + (7 * DAY if head is None else 0), iid, merchant, consumer, index))
        # the returns whose request time the chain has reached: authorized and moved on in this block
        while returns_due and returns_due[0][0] <= ts:
            _, rid_item, r_merchant, r_consumer, r_index = returns_due.pop(0)
            n = r_index
            requests.append(_return(chain, pending, shipments, n, rid_item, r_merchant, r_consumer, token, carrier, ts))
        if len(pending) >= BATCH_EVENTS:
            flush(final=False)
            if time.perf_counter() - last_report >= 10:
                last_report = time.perf_counter()
                done = index + 1 - first
                progress(f"   fill: {done:>9,}/{items:,} items, {stats.logs / (last_report - started):,.0f} logs/s")
    flush(final=True)
    progress(f"   fill: {len(requests):,} return requests, {len(shipments):,} shipments, categories")
    _bulk(store, return_requests, [_request_values(row) for row in requests])
    _bulk(store, carrier_shipments, [{"carrier": x.carrier, "tracking_number": x.tracking_number,
                                      "return_id": x.return_id.lower(), "created_at": x.created_at}
                                     for x in shipments])  # fmt: skip
    for gtin_index in range(
        GTINS if first == 0 else 0
    ):  # one item of each GTIN gets its category: enough for the rollups' join
        uri = f"urn:epc:id:sgtin:0614141.{gtin_index}.{gtin_index}"
        if gtin_index < items:
            set_item_category(
                store, item_id="0x" + keccak(uri.encode()).hex(), category=f"category-{gtin_index % CATEGORIES}",
                set_by=merchant_of(gtin_index, merchants), set_at=now,
            )  # fmt: skip
    stats.requests = len(requests)
    stats.seconds = time.perf_counter() - started
    return stats


def _request_values(row: ReturnRequestRow) -> dict[str, Any]:
    """The ``return_requests`` row ``insert_return_request`` writes for ``row`` (addresses in lower case)."""
    return {
        "id": row.id, "item_id": row.item_id.lower(), "consumer": row.consumer.lower(),
        "merchant": row.merchant.lower(), "reason_code": row.reason_code, "comment": row.comment,
        "outcome": row.outcome, "reasons": row.reasons, "return_id": row.return_id and row.return_id.lower(),
        "tx_hash": None, "created_at": row.created_at, "decided_at": row.decided_at, "decided_by": row.decided_by,
        "active_item": None, "documents": None,
    }  # fmt: skip


def _bulk(store: Store, table: Table, rows: list[dict[str, Any]]) -> None:
    """``rows`` into ``table``, ``BULK_ROWS`` a transaction: the API writes these one request at a time (with
    its notices, which analytics do not read), which would be most of a million-item fill."""
    for start in range(0, len(rows), BULK_ROWS):
        with store.engine.begin() as conn:
            conn.execute(table.insert(), rows[start : start + BULK_ROWS])


def _return(
    chain: _Chain,
    pending: list[DecodedEvent],
    shipments: list,  # type: ignore[type-arg]
    n: int,
    item_id: str,
    merchant: str,
    consumer: str,
    token: str,
    carrier: str,
    ts: int,
) -> ReturnRequestRow:
    from ledger_service.store.carriers import ShipmentRow

    kind = (n + n // 70) % 10  # the requested items are runs of 7 in 70: spread the outcomes over them
    outcome = "approve" if kind < 8 else ("reject" if kind == 8 else "manual_review")
    return_id = None
    if outcome == "approve":
        return_id = "0x" + keccak(f"return:{n}".encode()).hex()
        chain.tx()
        amount = 10**8
        pending.append(ReturnAuthorized(chain.pos(escrow=True), return_id, item_id, consumer, merchant, token, amount,
                                        500, True, 1, 1, ts + 14 * DAY))  # fmt: skip
        shipments.append(ShipmentRow(carrier=CARRIERS[n % 3], tracking_number=f"T{n}", return_id=return_id,
                                     created_at=ts))  # fmt: skip
        stage = n % 4
        states = [ReturnState.AUTHORIZED]
        path = (ReturnState.IN_TRANSIT, ReturnState.RECEIVED, ReturnState.ACCEPTED)[:stage]
        for k, state in enumerate(path):
            at = ts - (len(path) - k) * (n % 5 + 1) * 12 * 3600
            pending.append(ReturnStateChanged(chain.pos(escrow=True), return_id, int(state), carrier, int(states[-1]),
                                              at, 0, ZERO))  # fmt: skip
            states.append(state)
        if n % 50 == 7:
            pending.append(ReturnStateChanged(chain.pos(escrow=True), return_id, int(ReturnState.DISPUTED), consumer,
                                              int(states[-1]), ts, 0, ZERO))  # fmt: skip
        elif stage == 3:
            pending.append(EscrowSettled(chain.pos(escrow=True), return_id, consumer, merchant, token,
                                         amount * 95 // 100, amount * 5 // 100))  # fmt: skip
    return ReturnRequestRow(
        id=f"rr_{n:032x}", item_id=item_id, consumer=consumer, merchant=merchant, reason_code=REASONS[n % len(REASONS)],
        comment=COMMENTS[n % len(COMMENTS)], outcome=outcome, reasons=[], return_id=return_id, tx_hash=None,
        created_at=ts - 4 * (n % 5 + 1) * 12 * 3600, decided_at=ts, decided_by="auto", active_item=None,
    )  # fmt: skip
