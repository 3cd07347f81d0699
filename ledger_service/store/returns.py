"""Returns: the ``returns`` state table, its ``return_transitions`` and ``escrow_payouts``, and the API's
``return_requests`` (a consumer's request and the review's outcome).

Reads run in one read transaction each (a consistent snapshot on both databases) and return frozen
dataclasses, never rows. Addresses and ids are compared in the index's form (``0x`` + lowercase hex):
callers may pass any case, this module lowers it. The returns list joins the API's requests for the reason
given (:func:`list_returns`).

Derived facts, defined here once (the joined reads of :mod:`ledger_service.store.sales` use them):

- *open return*: a return the contract still counts as open for its item:
  Authorized, InTransit, Received, Disputed, or Rejected with its deposit not
  yet paid out (the consumer may still dispute) (:func:`is_open`).
- *closing states*: Accepted, Resolved, Reclaimed, ConsumerClaimed, or Rejected after a payout: the item
  came back and its sale ended (:data:`CLOSING_STATES`).
- *recent returns* of a consumer: returns authorized (``authorized_at``) in
  the 90 days up to ``now`` (``now - 90 days < authorized_at``) (:data:`RECENT_RETURNS`).

Concurrency guarantees of the return requests that callers rely on:
- :func:`insert_return_request` with ``active_item``: at most one request holds
  an item at a time; the loser gets :class:`ItemBusyError` naming the holder;
- :func:`record_decision` with ``expected_outcome``: compare-and-set, so two
  merchants deciding one manual request cannot both succeed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Select, and_, bindparam, false, func, or_, select, update
from sqlalchemy.sql.expression import ColumnCollection

from ledger_service.core.codes import ReturnState
from ledger_service.core.notifications import EXCHANGE_REJECTED, EXCHANGE_REQUESTED, RETURN_REJECTED, RETURN_REQUESTED
from ledger_service.errors import ConflictError
from ledger_service.store._db import read_transaction, write_transaction
from ledger_service.store._errors import StoreError
from ledger_service.store.handle import Store
from ledger_service.store.label_senders import LabelSenderRow
from ledger_service.store.notifications import add_request_notice
from ledger_service.store.tables import (
    escrow_payouts,
    item_events,
    item_key,
    label_senders,
    return_requests,
    return_transitions,
    returns,
)

__all__ = [
    "CLOSING_STATES",
    "OPEN_STATES",
    "ItemBusyError",
    "ItemEventRow",
    "PayoutRow",
    "ReturnDetail",
    "ReturnPage",
    "ReturnRequestRow",
    "ReturnRow",
    "TimelineEntry",
    "TransitionRow",
    "active_request_for_item",
    "escrow_outstanding",
    "insert_return_request",
    "list_return_requests",
    "list_returns",
    "record_decision",
    "release_item",
    "return_by_id",
    "return_counts_by_state",
    "return_detail",
    "return_request_by_id",
]

DAY = 86_400
RECENT_DAYS = 90

OPEN_STATES = frozenset({ReturnState.AUTHORIZED, ReturnState.IN_TRANSIT, ReturnState.RECEIVED, ReturnState.DISPUTED})
"""Always open; Rejected is open too while its deposit is unpaid."""
CLOSING_STATES = frozenset(
    {ReturnState.ACCEPTED, ReturnState.RESOLVED, ReturnState.RECLAIMED, ReturnState.CONSUMER_CLAIMED}
)
"""States in which the item came back and its sale ended; Rejected too after a payout."""


def is_open(r: ColumnCollection[str, Any]) -> ColumnElement[bool]:
    """The SQL condition "the return is open" on the columns ``r`` of ``returns`` (or an alias of it)."""
    return or_(
        r.state.in_(sorted(int(state) for state in OPEN_STATES)),
        and_(r.state == int(ReturnState.REJECTED), r.settled.is_(False)),
    )


def is_closing(r: ColumnCollection[str, Any]) -> ColumnElement[bool]:
    """The SQL condition "the return ended its sale" on the columns ``r`` of ``returns``."""
    return or_(
        r.state.in_(sorted(int(state) for state in CLOSING_STATES)),
        and_(r.state == int(ReturnState.REJECTED), r.settled.is_(True)),
    )


RECENT_RETURNS = (
    select(func.count())
    .select_from(returns)
    .where(
        returns.c.consumer == bindparam("consumer"),
        returns.c.authorized_at > bindparam("since"),
        returns.c.authorized_at <= bindparam("now"),
    )
)
"""How many returns ``consumer`` had authorized in the 90 days up to ``now`` (``since`` = ``now`` - 90 days);
bound parameters, compiled once per dialect."""


def _key(value: str) -> str:
    return value.lower()


def _lower(value: str | None) -> str | None:
    return None if value is None else value.lower()


def _decider(decided_by: str) -> str:
    """``auto`` as it is, an address lowercase."""
    return decided_by.lower() if decided_by.startswith("0x") else decided_by


# ---- result types ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReturnRow:
    """A return as the index folds it."""

    return_id: str
    item_id: str
    sale_seq: int
    consumer: str
    merchant: str
    token: str
    amount: int
    fee_bps: int
    fast_refund: bool
    policy_version: int
    state: ReturnState
    ship_by: int
    inspect_by: int | None
    dispute_by: int | None
    authorized_at: int
    updated_at: int
    settled: bool
    block_number: int
    tx_hash: str

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES or (self.state is ReturnState.REJECTED and not self.settled)

    @classmethod
    def from_row(cls, row: Any) -> ReturnRow:
        """From a ``returns`` row (anything with its column names as attributes)."""
        return cls(
            return_id=row.return_id,
            item_id=row.item_id,
            sale_seq=row.sale_seq,
            consumer=row.consumer,
            merchant=row.merchant,
            token=row.token,
            amount=int(row.amount),
            fee_bps=row.fee_bps,
            fast_refund=bool(row.fast_refund),
            policy_version=row.policy_version,
            state=ReturnState(row.state),
            ship_by=row.ship_by,
            inspect_by=row.inspect_by,
            dispute_by=row.dispute_by,
            authorized_at=row.authorized_at,
            updated_at=row.updated_at,
            settled=bool(row.settled),
            block_number=row.block_number,
            tx_hash=row.tx_hash,
        )


@dataclass(frozen=True, slots=True)
class TransitionRow:
    """One ReturnStateChanged."""

    return_id: str
    previous: ReturnState
    state: ReturnState
    actor: str
    at: int
    deadline: int
    evidence: str
    block_number: int
    log_index: int
    tx_hash: str

    @classmethod
    def from_row(cls, row: Any) -> TransitionRow:
        return cls(
            return_id=row.return_id,
            previous=ReturnState(row.previous),
            state=ReturnState(row.state),
            actor=row.actor,
            at=row.at,
            deadline=row.deadline,
            evidence=row.evidence,
            block_number=row.block_number,
            log_index=row.log_index,
            tx_hash=row.tx_hash,
        )


@dataclass(frozen=True, slots=True)
class PayoutRow:
    """A return's deposit paid out (EscrowSettled)."""

    return_id: str
    consumer: str
    merchant: str
    token: str
    consumer_amount: int
    merchant_amount: int
    paid_at: int
    block_number: int
    log_index: int
    tx_hash: str

    @classmethod
    def from_row(cls, row: Any) -> PayoutRow:
        """From an ``escrow_payouts`` row."""
        return cls(
            return_id=row.return_id,
            consumer=row.consumer,
            merchant=row.merchant,
            token=row.token,
            consumer_amount=int(row.consumer_amount),
            merchant_amount=int(row.merchant_amount),
            paid_at=row.paid_at,
            block_number=row.block_number,
            log_index=row.log_index,
            tx_hash=row.tx_hash,
        )


@dataclass(frozen=True, slots=True)
class ItemEventRow:
    """One event of an item's history (in a :class:`ReturnDetail`: one the return is the business
    transaction of)."""

    item_id: str
    seq: int
    biz_step: int
    disposition: int
    actor: str
    location: str
    document: str
    biz_transaction: str
    timestamp: int
    event_hash: str
    chain_ok: bool
    block_number: int
    log_index: int
    tx_hash: str

    @classmethod
    def from_row(cls, row: Any) -> ItemEventRow:
        """From an ``item_events`` row."""
        return cls(
            item_id=row.item_id,
            seq=row.seq,
            biz_step=row.biz_step,
            disposition=row.disposition,
            actor=row.actor,
            location=row.location,
            document=row.document,
            biz_transaction=row.biz_transaction,
            timestamp=row.timestamp,
            event_hash=row.event_hash,
            chain_ok=bool(row.chain_ok),
            block_number=row.block_number,
            log_index=row.log_index,
            tx_hash=row.tx_hash,
        )


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of a return's timeline, in chain order."""

    kind: str
    """``authorized``, ``state_changed``, ``settled`` or ``item_event``."""
    at: int
    block_number: int
    log_index: int
    tx_hash: str
    detail: TransitionRow | PayoutRow | ItemEventRow | ReturnRow


@dataclass(frozen=True, slots=True)
class ReturnDetail:
    """A return with everything that happened to it."""

    ret: ReturnRow
    transitions: tuple[TransitionRow, ...]
    payout: PayoutRow | None
    item_events: tuple[ItemEventRow, ...]
    """The item's events with this return as business transaction."""

    @property
    def timeline(self) -> tuple[TimelineEntry, ...]:
        """Authorization, transitions, payout and item events sorted by (block, log index).

        The authorization's own log index is not kept in the returns row; it is
        placed first in its block (the contract emits it before anything else
        about the return).
        """
        ret = self.ret
        entries = [TimelineEntry("authorized", ret.authorized_at, ret.block_number, -1, ret.tx_hash, ret)]
        entries.extend(
            TimelineEntry("state_changed", t.at, t.block_number, t.log_index, t.tx_hash, t) for t in self.transitions
        )
        if self.payout is not None:
            p = self.payout
            entries.append(TimelineEntry("settled", p.paid_at, p.block_number, p.log_index, p.tx_hash, p))
        entries.extend(
            TimelineEntry("item_event", e.timestamp, e.block_number, e.log_index, e.tx_hash, e)
            for e in self.item_events
        )
        return tuple(sorted(entries, key=lambda e: (e.block_number, e.log_index)))


@dataclass(frozen=True, slots=True)
class ReturnPage:
    """One page of a filtered list and the number of matches overall."""

    rows: tuple[ReturnRow, ...]
    count: int
    reason_codes: Mapping[str, str] = field(default_factory=dict)
    """The reason given in the request behind each row, by return id (where the API has the request)."""


# ---- returns, transitions, payouts ---------------------------------------------------


def return_by_id(store: Store, return_id: str) -> ReturnRow | None:
    """The return, or None if the index does not (yet) have it."""
    with read_transaction(store.engine) as conn:
        row = conn.execute(select(returns).where(returns.c.return_id == _key(return_id))).first()
        return None if row is None else ReturnRow.from_row(row)


def return_counts_by_state(store: Store) -> dict[ReturnState, int]:
    """How many returns the index holds in each state (states without any are left out); read from the
    ``ix_returns_state`` index alone."""
    stmt = select(returns.c.state, func.count()).group_by(returns.c.state)
    with read_transaction(store.engine) as conn:
        return {ReturnState(int(state)): int(count) for state, count in conn.execute(stmt)}


def escrow_outstanding(store: Store) -> dict[str, int]:
    """Deposits held in escrow by returns not yet settled, summed by token (base units, exact); read from the
    partial index ``ix_returns_unsettled``, which holds only those returns."""
    stmt = select(returns.c.token, returns.c.amount).where(returns.c.settled == false())
    totals: dict[str, int] = {}
    with read_transaction(store.engine) as conn:
        for token, amount in conn.execute(stmt):
            totals[token] = totals.get(token, 0) + int(amount)
    return totals


def return_detail(store: Store, return_id: str) -> ReturnDetail | None:
    """The return with its transitions, payout and item events, or None if unknown."""
    key = _key(return_id)
    with read_transaction(store.engine) as conn:
        row = conn.execute(select(returns).where(returns.c.return_id == key)).first()
        if row is None:
            return None
        rt = return_transitions.c
        transitions = tuple(
            TransitionRow.from_row(t)
            for t in conn.execute(
                select(return_transitions).where(rt.return_id == key).order_by(rt.block_number, rt.log_index)
            )
        )
        payout_row = conn.execute(select(escrow_payouts).where(escrow_payouts.c.return_id == key)).first()
        ev = item_events.c
        events = tuple(
            ItemEventRow.from_row(e)
            for e in conn.execute(
                select(item_events)
                .where(ev.item_key == item_key(row.item_id), ev.item_id == row.item_id, ev.biz_transaction == key)
                .order_by(ev.seq, ev.block_number, ev.log_index)
            )
        )
        return ReturnDetail(
            ret=ReturnRow.from_row(row),
            transitions=transitions,
            payout=None if payout_row is None else PayoutRow.from_row(payout_row),
            item_events=events,
        )


def list_returns(
    store: Store,
    *,
    merchant: str | None = None,
    consumer: str | None = None,
    item_id: str | None = None,
    states: Sequence[ReturnState] = (),
    authorized_from: int | None = None,
    authorized_to: int | None = None,
    reason_code: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> ReturnPage:
    """Returns matching every given filter, newest authorization first, and how many match overall.

    ``authorized_from`` / ``authorized_to`` bound ``authorized_at`` (both
    inclusive); an empty ``states`` means any state. ``reason_code`` keeps the
    returns whose request (the API's ``return_requests`` row that authorized
    it) gave that reason; each page row's reason, when known, is in
    :attr:`ReturnPage.reason_codes`.
    """
    r = returns.c
    reasons = (
        select(return_requests.c.return_id, func.max(return_requests.c.reason_code).label("reason_code"))
        .where(return_requests.c.return_id.is_not(None))
        .group_by(return_requests.c.return_id)
        .subquery()
    )
    conditions: list[Any] = []
    if merchant is not None:
        conditions.append(r.merchant == _key(merchant))
    if consumer is not None:
        conditions.append(r.consumer == _key(consumer))
    if item_id is not None:
        conditions.append(r.item_id == _key(item_id))
    if states:
        conditions.append(r.state.in_(sorted({int(s) for s in states})))
    if authorized_from is not None:
        conditions.append(r.authorized_at >= authorized_from)
    if authorized_to is not None:
        conditions.append(r.authorized_at <= authorized_to)
    if reason_code is not None:
        conditions.append(reasons.c.reason_code == reason_code)
    joined = returns.outerjoin(reasons, reasons.c.return_id == r.return_id)
    page: Select[Any] = (
        select(returns, reasons.c.reason_code.label("request_reason"))
        .select_from(joined)
        .where(*conditions)
        .order_by(r.authorized_at.desc(), r.block_number.desc(), r.return_id)
        .limit(limit)
        .offset(offset)
    )
    total = select(func.count()).select_from(joined).where(*conditions)
    with read_transaction(store.engine) as conn:
        count = conn.execute(total).scalar_one()
        fetched = list(conn.execute(page))
    rows = tuple(ReturnRow.from_row(row) for row in fetched)
    reason_codes = {row.return_id: row.request_reason for row in fetched if row.request_reason is not None}
    return ReturnPage(rows, int(count), reason_codes)


# ---- return_requests (written by the API) ---------------------------------------------


class ItemBusyError(ConflictError):
    """Another return request holds the item (it is being decided or waits for manual review)."""

    def __init__(self, item_id: str, holder: str) -> None:
        super().__init__(f"item {item_id} already has a return request in progress ({holder})")
        self.item_id = item_id
        self.holder = holder


@dataclass(frozen=True, slots=True)
class ReturnRequestRow:
    """A consumer's return request and the review's outcome."""

    id: str
    item_id: str
    consumer: str
    merchant: str
    reason_code: str
    comment: str | None
    outcome: str
    """``approve``, ``reject`` or ``manual_review``."""
    reasons: list[Any]
    return_id: str | None
    tx_hash: str | None
    created_at: int
    decided_at: int | None
    decided_by: str | None
    """``auto`` or the deciding merchant's address."""
    active_item: str | None
    """The item id while this request blocks other requests for the item."""
    documents: tuple[str, ...] = ()
    """CIDv0s of the documents (photos) the consumer sent with the request, in the order given."""
    replacement_item_id: str | None = None
    """An exchange request: the unit the consumer chose instead of a refund (None: a refund return)."""
    instant: bool | None = None
    """An exchange request: whether an instant exchange was asked."""

    @property
    def is_exchange(self) -> bool:
        return self.replacement_item_id is not None


def _request(row: Row[Any]) -> ReturnRequestRow:
    return ReturnRequestRow(
        id=row.id,
        item_id=row.item_id,
        consumer=row.consumer,
        merchant=row.merchant,
        reason_code=row.reason_code,
        comment=row.comment,
        outcome=row.outcome,
        reasons=list(row.reasons),
        return_id=row.return_id,
        tx_hash=row.tx_hash,
        created_at=row.created_at,
        decided_at=row.decided_at,
        decided_by=row.decided_by,
        active_item=row.active_item,
        documents=tuple(row.documents or ()),
        replacement_item_id=row.replacement_item_id,
        instant=None if row.instant is None else bool(row.instant),
    )


def insert_return_request(store: Store, row: ReturnRequestRow, *, label_sender: LabelSenderRow | None = None) -> None:
    """Stores a new request (and, in the same transaction, the ``label_senders`` row ``label_sender`` of how its
    label shows the sender). With ``row.active_item`` set it takes the item's slot, or raises
    :class:`ItemBusyError` if another request holds it."""
    values = {
        "id": row.id,
        "item_id": row.item_id.lower(),
        "consumer": row.consumer.lower(),
        "merchant": row.merchant.lower(),
        "reason_code": row.reason_code,
        "comment": row.comment,
        "outcome": row.outcome,
        "reasons": row.reasons,
        "return_id": _lower(row.return_id),
        "tx_hash": _lower(row.tx_hash),
        "created_at": row.created_at,
        "decided_at": row.decided_at,
        "decided_by": None if row.decided_by is None else _decider(row.decided_by),
        "active_item": _lower(row.active_item),
        "documents": list(row.documents) or None,
        "replacement_item_id": _lower(row.replacement_item_id),
        "instant": row.instant,
    }
    try:
        with write_transaction(store.engine) as conn:
            conn.execute(return_requests.insert().values(**values))
            if label_sender is not None:
                conn.execute(label_senders.insert().values(**asdict(label_sender)))
            exchange = row.replacement_item_id is not None
            requested, rejected = (
                (EXCHANGE_REQUESTED, EXCHANGE_REJECTED) if exchange else (RETURN_REQUESTED, RETURN_REJECTED)
            )
            for kind in (requested, rejected) if row.outcome == "reject" else (requested,):
                _notice(conn, kind, values, now=row.created_at)
    except StoreError:
        if row.active_item is not None:
            holder = active_request_for_item(store, row.active_item)
            if holder is not None:
                raise ItemBusyError(row.item_id.lower(), holder.id) from None
        raise


def return_request_by_id(store: Store, request_id: str) -> ReturnRequestRow | None:
    with read_transaction(store.engine) as conn:
        row = conn.execute(select(return_requests).where(return_requests.c.id == request_id)).first()
    return None if row is None else _request(row)


def active_request_for_item(store: Store, item_id: str) -> ReturnRequestRow | None:
    """The request holding the item's slot, if any."""
    with read_transaction(store.engine) as conn:
        row = conn.execute(select(return_requests).where(return_requests.c.active_item == item_id.lower())).first()
    return None if row is None else _request(row)


def list_return_requests(
    store: Store,
    *,
    merchant: str | None = None,
    consumer: str | None = None,
    item_id: str | None = None,
    outcomes: Sequence[str] | None = None,
    reason_code: str | None = None,
    created_from: int | None = None,
    created_to: int | None = None,
    exchanges: bool | None = None,
    return_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[ReturnRequestRow], int]:
    """Requests matching every given filter, newest first, and the total count of matches.

    ``created_from`` is inclusive and ``created_to`` exclusive (wall-clock unix seconds); ``exchanges`` True
    keeps the exchange requests only, False the refund requests only.
    """
    conditions: list[Any] = []
    if return_id is not None:
        conditions.append(return_requests.c.return_id == return_id.lower())
    if exchanges is not None:
        replacement = return_requests.c.replacement_item_id
        conditions.append(replacement.is_not(None) if exchanges else replacement.is_(None))
    if merchant is not None:
        conditions.append(return_requests.c.merchant == merchant.lower())
    if consumer is not None:
        conditions.append(return_requests.c.consumer == consumer.lower())
    if item_id is not None:
        conditions.append(return_requests.c.item_id == item_id.lower())
    if outcomes is not None:
        conditions.append(return_requests.c.outcome.in_(list(outcomes)))
    if reason_code is not None:
        conditions.append(return_requests.c.reason_code == reason_code)
    if created_from is not None:
        conditions.append(return_requests.c.created_at >= created_from)
    if created_to is not None:
        conditions.append(return_requests.c.created_at < created_to)
    page = (
        select(return_requests)
        .where(*conditions)
        .order_by(return_requests.c.created_at.desc(), return_requests.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    total = select(func.count()).select_from(return_requests).where(*conditions)
    with read_transaction(store.engine) as conn:
        rows = [_request(row) for row in conn.execute(page)]
        count = int(conn.execute(total).scalar_one())
    return rows, count


def record_decision(
    store: Store,
    *,
    request_id: str,
    outcome: str,
    decided_at: int,
    decided_by: str,
    reasons: list[Any] | None = None,
    return_id: str | None = None,
    tx_hash: str | None = None,
    keep_item: bool = False,
    expected_outcome: str | None = None,
) -> bool:
    """Sets the request's outcome (and the reasons, return and transaction when given; None: unchanged).

    The item's slot is released unless ``keep_item``. With ``expected_outcome`` the update happens only
    if the stored outcome still is that one; returns whether the request was updated.
    """
    values: dict[str, Any] = {"outcome": outcome, "decided_at": decided_at, "decided_by": _decider(decided_by)}
    if reasons is not None:
        values["reasons"] = reasons
    if return_id is not None:
        values["return_id"] = return_id.lower()
    if tx_hash is not None:
        values["tx_hash"] = tx_hash.lower()
    if not keep_item:
        values["active_item"] = None
    conditions: list[Any] = [return_requests.c.id == request_id]
    if expected_outcome is not None:
        conditions.append(return_requests.c.outcome == expected_outcome)
    with write_transaction(store.engine) as conn:
        updated = conn.execute(update(return_requests).where(*conditions).values(**values)).rowcount == 1
        if updated and outcome == "reject":
            found = conn.execute(select(return_requests).where(return_requests.c.id == request_id)).first()
            if found is not None:
                kind = RETURN_REJECTED if found.replacement_item_id is None else EXCHANGE_REJECTED
                _notice(conn, kind, dict(found._mapping), now=decided_at)
        return updated


def _notice(conn: Connection, kind: str, request: dict[str, Any], *, now: int) -> None:
    """The outbox row of a request's notification, in the transaction that stores the request's change."""
    data = {"reason_code": request["reason_code"], "outcome": request["outcome"]}
    if request.get("replacement_item_id") is not None:
        data |= {"replacement_item_id": request["replacement_item_id"], "instant": bool(request.get("instant"))}
    add_request_notice(
        conn,
        kind=kind,
        request_id=request["id"],
        item_id=request["item_id"],
        consumer=request["consumer"],
        merchant=request["merchant"],
        data=data,
        now=now,
    )


def release_item(store: Store, *, request_id: str) -> None:
    """The request stops blocking other requests for its item."""
    with write_transaction(store.engine) as conn:
        conn.execute(update(return_requests).where(return_requests.c.id == request_id).values(active_item=None))
