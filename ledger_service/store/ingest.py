"""Ingest: what the indexer's writer calls (through :meth:`Store.apply <ledger_service.store.handle.Store.apply>`).
Applies one batch of decoded events inside the caller's transaction.

The events come as objects (:mod:`ledger_service.core.events`) or in the core's row form
(:class:`~ledger_service.core.rows.EventRows`: ``(type index, position fields, own fields)``, fields in
dataclass order); the positions of the fields read from a row are computed once, at import, from those
dataclasses, so a field added to an event moves no index here.

Hot path of the indexer: per batch a fixed number of statements, whatever
its size: one SELECT (chunked IN) per state table for the touched keys, one
executemany INSERT per log table, one executemany upsert per state table.
No per-event SELECT, no ORM objects. Hash-chain verification folds each
ItemEventRecorded onto its item's state (the stored row, or an empty state for
a new item) exactly like :func:`ledger_service.core.hashchain.verify_chain`: the
seq must be the number of events seen, prevHash the previous event's
eventHash, and eventHash must recompute. A failing event is stored with
``chain_ok`` false, its item's ``chain_ok`` turns false, and a
``chain_problems`` row names the item, seq, block and reason: one per break, not
one per later event. An event whose seq is not the next one (events missing
before it, or reordered) is one break: its prevHash cannot link either, so no
second row is written for it, and the seq expected next follows it
(``ItemState.next_seq``), so the events after it are not flagged; the count
still counts the events stored (an auditor compares it with the contract's).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, select, tuple_, update

from ledger_service.core.events import (
    BatchAnchored,
    DecodedEvent,
    EscrowSettled,
    ExchangeAuthorized,
    ExchangeCollateralSettled,
    ExchangeExtraPaymentRecorded,
    ExchangeReplacementReleased,
    ExchangeTermsPublished,
    ItemEventRecorded,
    ItemRegistered,
    ListPriceSet,
    LogPosition,
    MerchantOfRecordChanged,
    PolicyPublished,
    ReturnAuthorized,
    ReturnStateChanged,
    ReturnUnitMismatch,
    RoleChanged,
    SaleRecorded,
    SellerSet,
)
from ledger_service.core.hashchain import event_hash_hex
from ledger_service.core.notifications import (
    AUTHORIZED_TYPES,
    EXCHANGE_APPROVED,
    EXCHANGE_COLLATERAL_CLAIMED,
    EXCHANGE_COLLATERAL_RELEASED,
    EXCHANGE_PAYMENT_RECORDED,
    EXCHANGE_REPLACEMENT_RELEASED,
    RETURN_REFUND_PAID,
    RETURN_UNIT_MISMATCH,
    STATE_NAMES,
    notification_id,
    transition_types,
)
from ledger_service.core.rows import ITEM_EVENT_RECORDED, EventRows, decode_event
from ledger_service.store._db import insert_rows, key_in, upsert, write_tuples
from ledger_service.store._errors import StoreError
from ledger_service.store._folds import (
    DAY,
    ITEM_MUTABLE_COLUMNS,
    ItemCache,
    ItemState,
    PairFolds,
    ReturnFold,
    chunks,
    load_items,
    load_returns,
    policy_ship_by_days,
    role_row,
    seller_row,
)
from ledger_service.store.tables import (
    BATCH_APPLIED,
    BATCH_PENDING,
    BATCH_REFUSED,
    WAITS_FOR_DOCUMENT,
    WAITS_FOR_SCANS,
    batch_anchors,
    batched_scans,
    chain_problems,
    escrow_payouts,
    exchange_collateral_payouts,
    exchange_payments,
    exchange_releases,
    exchange_terms,
    exchanges,
    item_events,
    item_registrations,
    items,
    list_prices,
    merchant_changes,
    notifications,
    policies,
    return_transitions,
    return_unit_mismatches,
    returns,
    role_changes,
    roles,
    sales,
    seller_changes,
    sellers,
)

SEQ_PROBLEM = "expected event #{expected}, found #{found} (missing or reordered)"
LINK_PROBLEM = "prevHash does not link to the previous event's hash"
HASH_PROBLEM = "eventHash does not match the event's fields (altered)"

_EVENT_OWN_COLUMNS = (
    "item_id",
    "seq",
    "biz_step",
    "disposition",
    "actor",
    "location",
    "document",
    "biz_transaction",
    "timestamp",
    "prev_hash",
    "event_hash",
)
"""The item_events columns that are ItemEventRecorded fields of the same name."""
_EVENT_POSITION_COLUMNS = ("block_number", "log_index", "tx_hash", "tx_index", "block_hash")
"""The item_events columns that are LogPosition fields of the same name."""
_ITEM_EVENT_COLUMNS = (*_EVENT_OWN_COLUMNS, "chain_ok", *_EVENT_POSITION_COLUMNS, "item_key")
"""The item_events columns, in the order of the row tuples :class:`_Batch` builds."""
_ROW_ITEM_ID = [f.name for f in fields(ItemEventRecorded)[1:]].index("item_id")
"""Where ``item_id`` is among an ItemEventRecorded row's own fields (every field after ``pos``)."""

_ITEM_UPDATE_COLUMNS = ("item_id", *(name for name in ITEM_MUTABLE_COLUMNS if name != "merchant"))
"""The items update of a stored item whose merchant did not change (leaving it out spares its index)."""
_ITEM_UPDATE_MERCHANT_COLUMNS = (*_ITEM_UPDATE_COLUMNS, "merchant")

_ITEM_EVENTS = (ItemRegistered, ItemEventRecorded, MerchantOfRecordChanged)
_LOG_ONLY: dict[type[Any], Table] = {
    ReturnUnitMismatch: return_unit_mismatches,
    ExchangeTermsPublished: exchange_terms,
    ListPriceSet: list_prices,
    ExchangeAuthorized: exchanges,
    ExchangeExtraPaymentRecorded: exchange_payments,
    ExchangeReplacementReleased: exchange_releases,
    ExchangeCollateralSettled: exchange_collateral_payouts,
}
"""Events stored as one row of their table each, its columns named as the event's fields; no state table
folds them (an exchange's state is which of its rows exist), so a reorg only deletes their rows."""
_LOG_ONLY_FIELDS: dict[type[Any], tuple[str, ...]] = {cls: tuple(f.name for f in fields(cls)[1:]) for cls in _LOG_ONLY}
_RETURN_EVENTS = (ReturnAuthorized, ReturnStateChanged, EscrowSettled)
_EXCHANGE_EVENTS = (
    ExchangeAuthorized,
    ExchangeExtraPaymentRecorded,
    ExchangeReplacementReleased,
    ExchangeCollateralSettled,
)
"""Exchange events that notify: their exchange id is their return's id, whose fold names the parties."""


@dataclass(frozen=True, slots=True)
class BatchCounts:
    events: int
    items_touched: int
    returns_touched: int
    problems: int
    breaks: tuple[ChainBreak, ...] = ()
    """The problems themselves, in log order."""


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """One hash-chain problem of a batch: the item, the event's seq and block, and why."""

    item_id: str
    seq: int
    block_number: int
    reason: str


def apply_events(
    conn: Connection, events: Sequence[DecodedEvent], *, now: int, cache: ItemCache | None = None
) -> tuple[BatchCounts, list[ItemState]]:
    """Inserts the log rows of ``events`` and updates the state tables, verifying hash chains.

    Returns the counts and the items states written (for ``cache.keep`` once committed).
    """
    # A fetch process's events (EventRows): each ItemEventRecorded stays its row (_add_item_row),
    # every other event is built; the order is kept
    ordered: Sequence[DecodedEvent | tuple[Any, ...]]
    if isinstance(events, EventRows):
        item_event = ITEM_EVENT_RECORDED
        ordered = [row if row[0] == item_event else decode_event(row) for row in events.rows]
    else:
        ordered = events
    item_keys: dict[str, None] = {}
    return_keys: dict[str, None] = {}
    wanted_policies: set[tuple[str, int]] = set()
    row_item_id = _ROW_ITEM_ID
    for ev in ordered:
        if type(ev) is tuple:
            item_keys[ev[2][row_item_id]] = None
        elif isinstance(ev, _ITEM_EVENTS):
            item_keys[ev.item_id] = None
        elif isinstance(ev, _RETURN_EVENTS):
            return_keys[ev.return_id] = None
            if isinstance(ev, ReturnAuthorized):
                wanted_policies.add((ev.merchant, ev.policy_version))
        elif isinstance(ev, _EXCHANGE_EVENTS):
            return_keys[ev.exchange_id] = None
        elif isinstance(ev, ReturnUnitMismatch):
            return_keys[ev.return_id] = None

    item_states = load_items(conn, list(item_keys), cache) if item_keys else {}
    return_folds = load_returns(conn, list(return_keys)) if return_keys else {}
    ship_by_days = policy_ship_by_days(conn, wanted_policies) if wanted_policies else {}
    batch = _Batch(item_states, return_folds, ship_by_days, now, int_flags=conn.dialect.name == "sqlite")
    add, add_row = batch.add, _add_item_row
    for ev in ordered:
        if type(ev) is tuple:
            add_row(batch, ev)
        else:
            add(cast(DecodedEvent, ev))
    batch.write(conn)
    breaks = tuple(ChainBreak(p["item_id"], p["seq"], p["block_number"], p["reason"]) for p in batch.problems)
    counts = BatchCounts(len(events), len(item_keys), len(return_keys), len(batch.problems), breaks)
    return counts, list(item_states.values())


def _exchange_notice(ev: DecodedEvent) -> tuple[str, str, int | None, dict[str, Any]] | None:
    """The notification a unit mismatch or an exchange event calls for: (type, return id, its time when the event
    carries one, payload data); None for the other log-only events. Exchange events carry no time: the return's
    latest step's block time stands for it (the authorization's is exact: the return's, in the same transaction)."""
    if isinstance(ev, ReturnUnitMismatch):
        data = {"sold_item_id": ev.sold_item_id, "scanned_on_ledger": int(ev.scanned_merchant, 16) != 0}
        return RETURN_UNIT_MISMATCH, ev.return_id, ev.at, data | {"state": "disputed"}
    if isinstance(ev, ExchangeAuthorized):
        data = {
            "exchange_id": ev.exchange_id,
            "replacement_item_id": ev.replacement_item_id,
            "token": ev.token,
            "price_difference": str(ev.price_difference),
            "collateral": str(ev.collateral),
            "instant": ev.instant,
        }
        return EXCHANGE_APPROVED, ev.exchange_id, None, data
    if isinstance(ev, ExchangeExtraPaymentRecorded):
        return EXCHANGE_PAYMENT_RECORDED, ev.exchange_id, None, {"exchange_id": ev.exchange_id, "paid": str(ev.amount)}
    if isinstance(ev, ExchangeReplacementReleased):
        data = {"exchange_id": ev.exchange_id, "replacement_item_id": ev.replacement_item_id, "instant": ev.instant}
        return EXCHANGE_REPLACEMENT_RELEASED, ev.exchange_id, None, data
    if isinstance(ev, ExchangeCollateralSettled):
        kind = EXCHANGE_COLLATERAL_RELEASED if ev.original_shipped else EXCHANGE_COLLATERAL_CLAIMED
        data = {"exchange_id": ev.exchange_id, "token": ev.token, "collateral": str(ev.amount)}
        return kind, ev.exchange_id, None, data | {"original_shipped": ev.original_shipped}
    return None


class _Batch:
    """Rows of one batch, built in log order."""

    def __init__(
        self,
        item_states: dict[str, ItemState],
        return_folds: dict[str, ReturnFold],
        ship_by_days: dict[tuple[str, int], int],
        now: int,
        *,
        int_flags: bool = False,
    ) -> None:
        self.item_states = item_states
        self.flags: tuple[Any, Any] = (0, 1) if int_flags else (False, True)
        """item_events.chain_ok as stored: SQLite's driver binds a bool through its adapter lookup (~0.4 us a
        row), an int directly, and stores both as the same integer; PostgreSQL's binary COPY wants a bool."""
        self.return_folds = return_folds
        self.ship_by_days = ship_by_days
        self.now = now
        self.logs: dict[Table, list[dict[str, Any]]] = {
            table: []
            for table in (
                item_registrations,
                merchant_changes,
                seller_changes,
                role_changes,
                policies,
                sales,
                return_transitions,
                escrow_payouts,
                *_LOG_ONLY.values(),
                batch_anchors,
            )
        }
        self.item_events: list[tuple[Any, ...]] = []
        """item_events rows as tuples of :data:`_ITEM_EVENT_COLUMNS` (the hot path)."""
        self.problems: list[dict[str, Any]] = []
        self.notices: list[dict[str, Any]] = []
        """The outbox rows of the batch's return events (written with them: see :meth:`_notify`)."""
        self.roles = PairFolds()
        self.sellers = PairFolds()

    def add(self, ev: DecodedEvent) -> None:
        if isinstance(ev, ItemEventRecorded):
            self._item_event(ev)
            return
        p = ev.pos
        position = {
            "block_number": p.block_number,
            "log_index": p.log_index,
            "tx_hash": p.tx_hash,
            "tx_index": p.tx_index,
        }
        if isinstance(ev, ItemRegistered):
            row = {
                "item_id": ev.item_id,
                "uri": ev.uri,
                "gtin": ev.gtin,
                "manufacturer": ev.manufacturer,
                "merchant": ev.merchant,
                "metadata_digest": ev.metadata_digest,
            }
            self.item_states[ev.item_id].register(
                uri=ev.uri,
                gtin=ev.gtin,
                manufacturer=ev.manufacturer,
                merchant=ev.merchant,
                metadata_digest=ev.metadata_digest,
            )
            self.logs[item_registrations].append(row | position)
        elif isinstance(ev, MerchantOfRecordChanged):
            row = {"item_id": ev.item_id, "previous_merchant": ev.previous_merchant, "new_merchant": ev.new_merchant}
            self.item_states[ev.item_id].change_merchant(ev.new_merchant)
            self.logs[merchant_changes].append(row | position)
        elif isinstance(ev, SellerSet):
            row = {"merchant": ev.merchant, "seller": ev.seller, "allowed": ev.allowed} | position
            self.sellers.set((ev.merchant, ev.seller), seller_row(row))
            self.logs[seller_changes].append(row)
        elif isinstance(ev, RoleChanged):
            row = {"role": ev.role, "account": ev.account, "sender": ev.sender, "granted": ev.granted} | position
            self.roles.set((ev.role, ev.account), role_row(row))
            self.logs[role_changes].append(row)
        elif isinstance(ev, PolicyPublished):
            self._policy(ev, position)
        elif isinstance(ev, SaleRecorded):
            # the contract records the sale's item event in the same transaction, so the item's state is loaded
            # for the batch: the analytics count the sale by its GTIN without looking the item up
            item = self.item_states.get(ev.item_id)
            row = {
                "item_id": ev.item_id,
                "sale_seq": ev.sale_seq,
                "merchant": ev.merchant,
                "consumer": ev.consumer,
                "token": ev.token,
                "price": ev.price,
                "policy_version": ev.policy_version,
                "order_ref": ev.order_ref,
                "sold_at": ev.sold_at,
                "gtin": item.gtin if item is not None and item.registered else None,
            }
            self.logs[sales].append(row | position)
        elif isinstance(ev, ReturnAuthorized):
            self._authorize(ev)
        elif isinstance(ev, BatchAnchored):
            # the scans come later, from the document (Store.apply_batch / refuse_batch): pending until then
            row = {
                "root": ev.root,
                "submitter": ev.submitter,
                "document_digest": ev.document_digest,
                "count": ev.count,
                "anchored_at": ev.anchored_at,
                "state": BATCH_PENDING,
                "problem": None,
                "attempts": 0,
                "waiting": None,
            }
            self.logs[batch_anchors].append(row | position)
        elif isinstance(ev, ReturnStateChanged):
            row = {
                "return_id": ev.return_id,
                "previous": ev.previous,
                "state": ev.state,
                "actor": ev.actor,
                "at": ev.at,
                "deadline": ev.deadline,
                "evidence": ev.evidence,
            }
            fold = self.return_folds[ev.return_id]
            fold.transition(state=ev.state, at=ev.at, deadline=ev.deadline)
            self.logs[return_transitions].append(row | position)
            data: dict[str, Any] = {
                "state": STATE_NAMES.get(ev.state, str(ev.state)),
                "previous": STATE_NAMES.get(ev.previous, ""),
            }
            if ev.deadline:
                data["deadline"] = ev.deadline
            for kind in transition_types(ev.state):
                self._notify(kind, fold.authorization, ev.pos, ev.at, data)
        elif isinstance(ev, EscrowSettled):
            paid_at = self._paid_at(ev)
            row = {
                "return_id": ev.return_id,
                "consumer": ev.consumer,
                "merchant": ev.merchant,
                "token": ev.token,
                "consumer_amount": ev.consumer_amount,
                "merchant_amount": ev.merchant_amount,
                "paid_at": paid_at,
            }
            fold = self.return_folds[ev.return_id]
            fold.settle()
            self.logs[escrow_payouts].append(row | position)
            if ev.consumer_amount > 0:
                amounts = {"token": ev.token, "amount": str(ev.consumer_amount), "fee": str(ev.merchant_amount)}
                self._notify(RETURN_REFUND_PAID, fold.authorization, ev.pos, paid_at, amounts)
        else:
            row = {name: getattr(ev, name) for name in _LOG_ONLY_FIELDS[type(ev)]}
            self.logs[_LOG_ONLY[type(ev)]].append(row | position)
            notice = _exchange_notice(ev)
            if notice is not None:
                kind, return_id, at, data = notice
                fold = self.return_folds[return_id]
                self._notify(kind, fold.authorization, ev.pos, at or fold.current_updated_at(), data)

    def _item_event(self, ev: ItemEventRecorded) -> None:
        state = self.item_states[ev.item_id]
        ok = True
        expected = state.event_count if state.next_seq is None else state.next_seq
        if ev.seq != expected:
            ok = self._problem(ev, SEQ_PROBLEM.format(expected=expected, found=ev.seq))
        elif ev.prev_hash != state.head_hash:  # (a seq break cannot link either: one problem, not two)
            ok = self._problem(ev, LINK_PROBLEM)
        hash_ok = ev.hash_ok
        if hash_ok is None:
            try:
                recomputed: str | None = event_hash_hex(
                    prev_hash=ev.prev_hash,
                    item_id=ev.item_id,
                    seq=ev.seq,
                    biz_step=ev.biz_step,
                    disposition=ev.disposition,
                    actor=ev.actor,
                    location=ev.location,
                    document=ev.document,
                    biz_transaction=ev.biz_transaction,
                    timestamp=ev.timestamp,
                )
            except (ValueError, OverflowError):
                recomputed = None
            hash_ok = recomputed == ev.event_hash
        if not hash_ok:
            ok = self._problem(ev, HASH_PROBLEM)
        state.record(
            biz_step=ev.biz_step,
            disposition=ev.disposition,
            timestamp=ev.timestamp,
            event_hash=ev.event_hash,
            chain_ok=ok,
        )
        state.follow_seq(ev.seq)
        p = ev.pos
        self.item_events.append(
            (
                ev.item_id,
                ev.seq,
                ev.biz_step,
                ev.disposition,
                ev.actor,
                ev.location,
                ev.document,
                ev.biz_transaction,
                ev.timestamp,
                ev.prev_hash,
                ev.event_hash,
                self.flags[ok],
                p.block_number,
                p.log_index,
                p.tx_hash,
                p.tx_index,
                p.block_hash,
                state.key,
            )
        )

    def _problem(self, ev: ItemEventRecorded, reason: str) -> bool:
        self.problems.append(
            {
                "item_id": ev.item_id,
                "seq": ev.seq,
                "block_number": ev.pos.block_number,
                "reason": reason,
                "detected_at": self.now,
            }
        )
        return False

    def _policy(self, ev: PolicyPublished, position: dict[str, Any]) -> None:
        self.ship_by_days[(ev.merchant, ev.version)] = ev.ship_by_days
        row = {
            "merchant": ev.merchant,
            "version": ev.version,
            "window_days": ev.window_days,
            "restocking_fee_bps": ev.restocking_fee_bps,
            "fast_refund": ev.fast_refund,
            "fast_refund_max_value": ev.fast_refund_max_value,
            "fast_refund_max_returns_90d": ev.fast_refund_max_returns_90d,
            "ship_by_days": ev.ship_by_days,
            "inspect_by_days": ev.inspect_by_days,
            "dispute_window_days": ev.dispute_window_days,
            "document_digest": ev.document_digest,
            "published_at": ev.published_at,
        }
        self.logs[policies].append(row | position)

    def _authorize(self, ev: ReturnAuthorized) -> None:
        fold = self.return_folds[ev.return_id]
        if fold.authorization is not None:
            raise StoreError(f"return {ev.return_id} authorized twice (block {ev.pos.block_number})")
        days = self.ship_by_days.get((ev.merchant, ev.policy_version))
        authorized_at = ev.ship_by if days is None else ev.ship_by - days * DAY
        fold.authorize(
            {
                "return_id": ev.return_id,
                "item_id": ev.item_id,
                "sale_seq": ev.sale_seq,
                "consumer": ev.consumer,
                "merchant": ev.merchant,
                "token": ev.token,
                "amount": ev.amount,
                "fee_bps": ev.fee_bps,
                "fast_refund": ev.fast_refund,
                "policy_version": ev.policy_version,
                "ship_by": ev.ship_by,
                "authorized_at": authorized_at,
                "block_number": ev.pos.block_number,
                "tx_hash": ev.pos.tx_hash,
            }
        )
        data = {"state": "authorized", "amount": str(ev.amount), "token": ev.token, "ship_by": ev.ship_by}
        for kind in AUTHORIZED_TYPES:
            self._notify(kind, fold.authorization, ev.pos, authorized_at, data)

    def _notify(
        self,
        kind: str,
        authorization: dict[str, Any] | None,
        pos: LogPosition,
        at: int,
        data: dict[str, Any],
    ) -> None:
        """Adds the outbox row of a return's ``kind`` notification (none for a return the index never saw
        authorized: the contract emits the authorization first, so only a partial index lacks it)."""
        if authorization is None:
            return
        return_id = authorization["return_id"]
        self.notices.append(
            {
                "id": notification_id(kind, return_id),
                "type": kind,
                "return_id": return_id,
                "item_id": authorization["item_id"],
                "sale_seq": authorization["sale_seq"],
                "merchant": authorization["merchant"],
                "consumer": authorization["consumer"],
                "occurred_at": at,
                "data": json.dumps(
                    {"return_id": return_id, "item_id": authorization["item_id"], **data, "tx_hash": pos.tx_hash},
                    separators=(",", ":"),
                    sort_keys=True,
                ),
                "block_number": pos.block_number,
                "log_index": pos.log_index,
                "created_at": self.now,
            }
        )

    def _paid_at(self, ev: EscrowSettled) -> int:
        """The settlement's block time: the contract always emits the return's transition first, in the
        same transaction, so it is the return's ``updated_at`` at this point of the fold."""
        return self.return_folds[ev.return_id].current_updated_at()

    def write(self, conn: Connection) -> None:
        write_tuples(conn, "insert", item_events, _ITEM_EVENT_COLUMNS, self.item_events)
        for table, rows in self.logs.items():
            insert_rows(conn, table, rows)
        states = self.item_states.values()
        same_merchant: list[tuple[Any, ...]] = []
        new_merchant: list[tuple[Any, ...]] = []
        for item in states:
            if item.stored:
                if item.merchant_changed:
                    new_merchant.append((*item.update_values(), item.merchant))
                else:
                    same_merchant.append(item.update_values())
        write_tuples(conn, "update", items, _ITEM_UPDATE_COLUMNS, same_merchant)
        write_tuples(conn, "update", items, _ITEM_UPDATE_MERCHANT_COLUMNS, new_merchant)
        insert_rows(conn, items, [row for state in states if (row := state.row()) is not None])
        upsert(conn, returns, [row for f in self.return_folds.values() if (row := f.row()) is not None])
        for state, folds, names in (
            (roles, self.roles, ("role", "account")),
            (sellers, self.sellers, ("merchant", "seller")),
        ):
            upsert(conn, state, list(folds.present.values()))
            absent = sorted(folds.absent)
            for part in chunks(conn, absent, pairs=True):
                conn.execute(delete(state).where(tuple_(state.c[names[0]], state.c[names[1]]).in_(part)))
        insert_rows(conn, chain_problems, self.problems)
        if self.notices:
            insert_rows(conn, notifications, _new_notices(conn, self.notices))


def _new_notices(conn: Connection, notices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``notices`` but those whose id is already in the outbox or earlier in the list: the first event that
    tells something keeps its row (the contracts reach a state once; an index of another emitter keeps the
    first). A rollback deletes a suffix of the log, so the rows kept are those a fresh index keeps."""
    by_id: dict[str, dict[str, Any]] = {}
    for notice in notices:
        by_id.setdefault(notice["id"], notice)
    ids = list(by_id)
    for part in chunks(conn, ids):
        for (stored,) in conn.execute(select(notifications.c.id).where(key_in(conn, notifications.c.id, part))):
            del by_id[stored]
    return list(by_id.values())


_ADD_ITEM_ROW = """
def add_item_row(batch, row):
    _, ({position},), ({own},) = row
    state = batch.item_states[item_id]
    if (
        hash_ok is not True
        or seq != state.event_count
        or prev_hash != state.head_hash
        or state.next_seq is not None
    ):
        batch._item_event(decode_event(row))
        return
    state.record(biz_step=biz_step, disposition=disposition, timestamp=timestamp, event_hash=event_hash, chain_ok=True)
    batch.item_events.append(({values},))
"""
"""The source of :func:`_add_item_row`, with the row form's field names and the item_events values filled in."""


def _compile_add_item_row() -> Callable[[_Batch, tuple[Any, ...]], None]:
    """``add_item_row(batch, row)``: an ItemEventRecorded in its row form
    (:func:`~ledger_service.core.rows.encode_event`) added to ``batch`` as :meth:`_Batch._item_event` adds the
    event, read from the tuples; an event that fails a check is built and takes that path (after a break, that
    path knows the seq expected).

    Generated from the dataclasses' field order, as :mod:`dataclasses` generates ``__init__``: the row is unpacked
    into the fields' names in one statement. It runs once per indexed event, where any call or slice to pick the
    fields by index made the writer measurably slower than this unpacking.
    """
    own = [f.name for f in fields(ItemEventRecorded)[1:]]  # a row's own fields: every field after ``pos``
    position = [f.name for f in fields(LogPosition)]
    read = {"item_id", "hash_ok", "seq", "prev_hash", "biz_step", "disposition", "timestamp", "event_hash"}
    taken = {*_EVENT_OWN_COLUMNS, *_EVENT_POSITION_COLUMNS, *read}
    names = [*own, *position]
    if len(set(names)) != len(names) or not taken <= set(names) or not all(n.isidentifier() for n in names):
        raise TypeError("ItemEventRecorded's row form lacks a field the writer reads")  # pragma: no cover
    values = {name: name for name in names} | {"chain_ok": "batch.flags[1]", "item_key": "state.key"}
    source = _ADD_ITEM_ROW.format(
        position=", ".join(position),
        own=", ".join(own),
        values=", ".join(values[column] for column in _ITEM_EVENT_COLUMNS),
    )
    namespace: dict[str, Any] = {"decode_event": decode_event}
    exec(source, namespace)  # noqa: S102 - the source is this module's template and dataclass field names
    add: Callable[[_Batch, tuple[Any, ...]], None] = namespace["add_item_row"]
    return add


_add_item_row = _compile_add_item_row()


# ---- batched scans ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnchorKey:
    """A BatchAnchored log by its position and content: after a reorg another anchor may sit at the same place."""

    block_number: int
    log_index: int
    root: str
    submitter: str
    document_digest: str


def _pending_anchor(key: AnchorKey) -> Any:
    ba = batch_anchors.c
    return (
        (ba.block_number == key.block_number)
        & (ba.log_index == key.log_index)
        & (ba.root == key.root)
        & (ba.submitter == key.submitter)
        & (ba.document_digest == key.document_digest)
        & (ba.state == BATCH_PENDING)
    )


BATCHED_SCAN_COLUMNS = (
    "item_id",
    "seq",
    "prev_hash",
    "leaf_hash",
    "biz_step",
    "disposition",
    "read_point",
    "document",
    "biz_transaction",
    "time",
    "submitter",
    "leaf_index",
)
"""The columns of a ``batched_scans`` row as :func:`settle_batch` takes it, a tuple in this order (up to 65,536
rows a batch: no dict per row); the anchor's position (``block_number``, ``log_index``) is added here."""
_BATCHED_SCAN_ROW = (*BATCHED_SCAN_COLUMNS, "block_number", "log_index")


def settle_batch(
    conn: Connection, key: AnchorKey, *, scans: Sequence[tuple[object, ...]] | None, problem: str | None
) -> bool:
    """Applies a pending anchor's scans (``scans``, rows of :data:`BATCHED_SCAN_COLUMNS`) or refuses it
    (``problem``), all or nothing in the caller's transaction. False if the anchor is no longer pending there (a
    reorg removed it, or another writer settled it)."""
    state = BATCH_REFUSED if scans is None else BATCH_APPLIED
    changed = conn.execute(
        update(batch_anchors).where(_pending_anchor(key)).values(state=state, problem=problem, waiting=None)
    ).rowcount
    if changed != 1:
        return False
    if scans:
        position = (key.block_number, key.log_index)
        # the store's bulk path (COPY on PostgreSQL, rows as tuples): a batch is up to 65,536 rows
        write_tuples(conn, "insert", batched_scans, _BATCHED_SCAN_ROW, [(*scan, *position) for scan in scans])
    return True


def reopen_batches(conn: Connection, *, from_block: int) -> int:
    """Puts every settled anchor at or above ``from_block`` back to pending and deletes their scans, in the
    caller's transaction: the resolver then settles them again, in the chain's order. How many were reopened."""
    ba = batch_anchors.c
    conn.execute(delete(batched_scans).where(batched_scans.c.block_number >= from_block))
    reopened = conn.execute(
        update(batch_anchors)
        .where(ba.block_number >= from_block, ba.state != BATCH_PENDING)
        .values(state=BATCH_PENDING, problem=None, attempts=0, waiting=None)
    ).rowcount
    return int(reopened)


def note_pending_batch(conn: Connection, key: AnchorKey, *, problem: str) -> None:
    """Counts one more failed fetch of a pending anchor's document, and says why."""
    conn.execute(
        update(batch_anchors)
        .where(_pending_anchor(key))
        .values(attempts=batch_anchors.c.attempts + 1, problem=problem, waiting=WAITS_FOR_DOCUMENT)
    )


def note_held_batch(conn: Connection, key: AnchorKey, *, problem: str) -> None:
    """Says why a pending anchor whose document was had is held: it continues scans not applied yet."""
    conn.execute(update(batch_anchors).where(_pending_anchor(key)).values(problem=problem, waiting=WAITS_FOR_SCANS))
