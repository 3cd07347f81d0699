"""Synthetic EPCIS index for bench/epcis_query.py: N item events on N / K items, written through the store's own
write functions: ``Store.apply`` for what the indexer writes (registrations, item events, sales), and
``claim_events`` + ``mark_recorded`` for what capture writes (the captured events' searchable rows).

Per item (items in the order of their ids, each item's events in consecutive blocks; block time advances
uniformly over ``SPAN_DAYS``), K item events:

- seq 0: commissioning, captured (ObjectEvent ADD, by the manufacturer), the item registered by it;
- seq 1: shipping, captured, with a purchase order ``EQ_bizTransaction_po`` finds
  (``urn:epcglobal:cbv:bt:0614141073467:PO-<n>``; on-chain: its sha256, as capture records it);
- seq 2 .. K-3: receiving, stocking, transporting..., captured, OBSERVE;
- seq K-2: retail_selling by the escrow (a SaleRecorded and its item event, business transaction the order
  reference): an event the chain holds without a capture document;
- seq K-1: arriving by the carrier with the order reference: chain-only too.

So 1 - 2/K of the events are captured (80% at K = 10). A captured event's eventTime is its block time less up
to a minute; its CBV hash ID is a synthetic one (computing GS1's would cost ~0.5 ms an event, and queries
never recompute it). Captured events are grouped into documents of ``PER_DOCUMENT`` events, as a capture of
1,000-event documents leaves them. Item references: items are spread over ``CLASSES`` item references
(``urn:epc:id:sgtin:0614141.<100000 + n % CLASSES>.<n>``), so that an ``idpat`` pattern names a class.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from _api_eligibility_fill import _Chain, role_id

from ledger_service.core.codes import BizStep, Disposition
from ledger_service.core.events import (
    DecodedEvent,
    ItemEventRecorded,
    ItemRegistered,
    LogPosition,
    RoleChanged,
    SaleRecorded,
)
from ledger_service.core.hashchain import event_hash_hex
from ledger_service.core.keccak import keccak
from ledger_service.epcis.serialize import iso_millis
from ledger_service.store import BlockRef, ChainPin, Store
from ledger_service.store.epcis_events import EventClaim, Recorded, claim_events, mark_recorded

DAY = 86_400
SPAN_DAYS = 150
CLASSES = 1_000
PER_DOCUMENT = 1_000
BATCH_EVENTS = 20_000
ZERO = "0x" + "00" * 32
READ_POINT = "urn:epc:id:sgln:0614141.00777.0"
LOCATION = "0x" + b"0614141.00777.0".ljust(32, b"\0").hex()
GTIN = 10614141007346
_CAPTURED_STEPS = (
    (BizStep.RECEIVING, Disposition.IN_PROGRESS, "receiving", "in_progress"),
    (BizStep.STOCKING, Disposition.SELLABLE_ACCESSIBLE, "stocking", "sellable_accessible"),
    (BizStep.TRANSPORTING, Disposition.IN_TRANSIT, "transporting", "in_transit"),
)


def item_uri(index: int) -> str:
    return f"urn:epc:id:sgtin:0614141.{100_000 + index % CLASSES}.{index}"


def class_pattern(index: int) -> str:
    """The ``idpat`` pattern of item ``index``'s item reference (every CLASSES-th item)."""
    return f"urn:epc:idpat:sgtin:0614141.{100_000 + index % CLASSES}.*"


def order_value(index: int) -> str:
    return f"urn:epcglobal:cbv:bt:0614141073467:PO-{index}"


def item_id_of(index: int) -> str:
    return "0x" + keccak(item_uri(index).encode()).hex()


@dataclass
class FillStats:
    items: int = 0
    item_events: int = 0
    captured: int = 0
    seconds: float = 0.0
    first_time_ms: int = 0
    last_time_ms: int = 0


@dataclass
class _Pending:
    events: list[DecodedEvent]
    claims: list[tuple[EventClaim, LogPosition, int]]
    """Each claim, where its item event is and the item seq it was written at."""


def fill(
    store: Store,
    *,
    events: int,
    per_item: int,
    pin: ChainPin,
    manufacturer: str,
    carrier: str,
    merchants: tuple[str, ...],
    token: str,
    now: int | None = None,
    progress: Callable[[str], None] = print,
) -> FillStats:
    """Writes about ``events`` item events (whole items of ``per_item``) into a fresh index pinned to ``pin``."""
    if per_item < 5:
        raise ValueError("at least 5 events per item (commissioning, shipping, one more, the sale, the delivery)")
    started = time.perf_counter()
    now = int(time.time()) if now is None else now
    store.set_pin(pin)
    items = max(1, events // per_item)
    chain = _Chain(
        start=now - SPAN_DAYS * DAY,
        end=now - 60,
        total_logs=items * (per_item + 2),
        ledger=pin.ledger_address,
        escrow=pin.escrow_address,
    )
    stats = FillStats(first_time_ms=chain.start * 1000)
    pending = _Pending([], [])
    applied_to = 0
    document_of = 0
    in_document = 0
    last_report = started

    def flush(*, final: bool) -> None:
        nonlocal applied_to
        top = chain.number if final else chain.number - 1
        split = len(pending.events)
        if not final:
            while split and pending.events[split - 1].pos.block_number > top:
                split -= 1
        ready = pending.events[:split]
        del pending.events[:split]
        if ready:
            headers = [h for h in chain.headers if applied_to < h.number <= top]
            store.apply(events=ready, headers=headers, checkpoint=BlockRef(top, headers[-1].hash), prune_below=top - 64)
            applied_to = top
            chain.headers = chain.headers[-1:]
        # The captured rows: claimed, then marked recorded with the transaction and seq the chain gave them.
        claims = [c for c, _, _ in pending.claims]
        keys = claim_events(store, capture_id="cap_" + "0" * 32, actor=manufacturer, claims=claims)
        mark_recorded(
            store,
            [
                Recorded(keys[claim.hash_id], pos.tx_hash, pos.block_number, {claim.epcs[0][0]: seq})
                for claim, pos, seq in pending.claims
            ],
            record_time_ms=now * 1000,
        )
        pending.claims.clear()

    chain.tx()
    for name, account in (("MANUFACTURER_ROLE", manufacturer), ("CARRIER_ROLE", carrier)):
        pending.events.append(RoleChanged(chain.pos(), role_id(name), account, manufacturer, True))
    for merchant in merchants:
        pending.events.append(RoleChanged(chain.pos(), role_id("MERCHANT_ROLE"), merchant, manufacturer, True))
    ids = [item_id_of(n) for n in range(items)]
    for count, index in enumerate(sorted(range(items), key=ids.__getitem__)):
        iid, uri = ids[index], item_uri(index)
        merchant = merchants[index % len(merchants)]
        order_ref = "0x" + keccak(f"order:{index}".encode()).hex()
        po = order_value(index)
        steps: list[tuple[BizStep, Disposition, str, str, str | None]] = [
            (BizStep.COMMISSIONING, Disposition.ACTIVE, "commissioning", "active", None),
            (BizStep.SHIPPING, Disposition.IN_TRANSIT, "shipping", "in_transit", po),
        ]
        steps += [(*_CAPTURED_STEPS[k % 3], None) for k in range(per_item - 4)]
        prev = ZERO
        for seq in range(per_item):
            chain.tx()
            ts = chain.timestamp
            chain_only = seq >= per_item - 2
            if seq == 0:
                pending.events.append(ItemRegistered(chain.pos(), iid, manufacturer, merchant, uri, GTIN, ZERO))
            if chain_only:
                step, disposition = (
                    (BizStep.RETAIL_SELLING, Disposition.RETAIL_SOLD)
                    if seq == per_item - 2
                    else (BizStep.ARRIVING, Disposition.RETAIL_SOLD)
                )
                actor = merchant if seq == per_item - 2 else carrier
                if seq == per_item - 2:
                    pending.events.append(
                        SaleRecorded(
                            chain.pos(escrow=True), iid, merchant, _consumer(index), 1, token, 10**7, 1, order_ref, ts
                        )
                    )
                document, biz_tx = ZERO, order_ref
            else:
                code_step, code_disposition, name_step, name_disposition, transaction = steps[seq]
                step, disposition, actor = code_step, code_disposition, manufacturer
                if in_document == PER_DOCUMENT:
                    document_of, in_document = document_of + 1, 0
                document = "0x" + hashlib.sha256(f"bench document {document_of}".encode()).hexdigest()
                biz_tx = ZERO if transaction is None else "0x" + hashlib.sha256(transaction.encode()).hexdigest()
                event_ms = ts * 1000 - (index * 7919 + seq * 104_729) % 60_000
                body: dict[str, Any] = {
                    "type": "ObjectEvent",
                    "eventTime": iso_millis(event_ms),
                    "eventTimeZoneOffset": "+00:00",
                    "epcList": [uri],
                    "action": "ADD" if seq == 0 else "OBSERVE",
                    "bizStep": name_step,
                    "disposition": name_disposition,
                    "readPoint": {"id": READ_POINT},
                }
                if transaction is not None:
                    body["bizTransactionList"] = [{"type": "po", "bizTransaction": transaction}]
                claim = EventClaim(
                    hash_id=f"ni:///sha-256;{hashlib.sha256(f'bench:{index}:{seq}'.encode()).hexdigest()}?ver=CBV2.0",
                    event_id=None,
                    event_index=in_document,
                    event_type="ObjectEvent",
                    action=body["action"],
                    event_time=event_ms,
                    time_zone_offset="+00:00",
                    biz_step=name_step,
                    disposition=name_disposition,
                    read_point=READ_POINT,
                    document=document,
                    body=json.dumps(body, separators=(",", ":")),
                    namespaces="[]",
                    epcs=((iid, 0, uri),),
                    biz_transactions=() if transaction is None else (("po", transaction),),
                )
                in_document += 1
            pos = chain.pos()
            event_hash = event_hash_hex(
                prev_hash=prev,
                item_id=iid,
                seq=seq,
                biz_step=int(step),
                disposition=int(disposition),
                actor=actor,
                location=LOCATION,
                document=document,
                biz_transaction=biz_tx,
                timestamp=ts,
            )
            pending.events.append(
                ItemEventRecorded(
                    pos, iid, actor, seq, int(step), int(disposition), LOCATION, document, biz_tx, ts, prev, event_hash
                )
            )
            if not chain_only:
                pending.claims.append((claim, pos, seq))
                stats.captured += 1
            prev = event_hash
        stats.items += 1
        stats.item_events += per_item
        if len(pending.events) >= BATCH_EVENTS:
            flush(final=False)
            if time.perf_counter() - last_report >= 10:
                last_report = time.perf_counter()
                progress(
                    f"   fill: {count + 1:>9,}/{items:,} items, {stats.item_events:>10,} item events, "
                    f"{stats.item_events / (last_report - started):,.0f} events/s"
                )
    flush(final=True)
    stats.last_time_ms = chain.timestamp * 1000
    stats.seconds = time.perf_counter() - started
    return stats


def _consumer(index: int) -> str:
    return "0x" + keccak(f"consumer:{index % 5000}".encode()).hex()[-40:]
