"""Read queries over the index tables (schema.py) for the domain and the API.

Every function runs in one read transaction (a consistent snapshot on both
databases) and returns frozen dataclasses, never rows. Addresses and ids are
compared in the index's form (``0x`` + lowercase hex): callers may pass any
case, this module lowers it. Two reads also join the API's own records
(api_schema.py, never written here): the reason code of the request behind a
return (:func:`list_returns`) and an item's category (:func:`eligibility_snapshot`).
The eligibility snapshot is a hot path: its statements are built once, with
bound parameters, and it reads everything in one transaction.

Derived facts, defined here once:

- *recalled*: the item has an event with disposition ``recalled`` and no later
  event (higher seq) with a disposition that puts it back in circulation
  (``sellable_accessible``, ``sellable_not_accessible``, ``conformant``).
- *open return*: a return the contract still counts as open for its item:
  Authorized, InTransit, Received, Disputed, or Rejected with its deposit not
  yet paid out (the consumer may still dispute).
- *closed sale*: a sale whose item came back by a return (Accepted, Resolved,
  Reclaimed, ConsumerClaimed, or Rejected after a payout): the contract ends
  the sale then, and no return of it can be authorized any more.
- *recent returns* of a consumer: returns authorized (``authorized_at``) in
  the 90 days up to ``now`` (``now - 90 days < authorized_at``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Select, and_, bindparam, exists, func, or_, select

from ledger_service.core.codes import Disposition, ReturnState
from ledger_service.store._db import read_transaction
from ledger_service.store.api_schema import item_categories, return_requests
from ledger_service.store.handle import Store
from ledger_service.store.schema import (
    blocks,
    checkpoint,
    escrow_payouts,
    item_events,
    item_key,
    items,
    policies,
    return_transitions,
    returns,
    sales,
)

__all__ = [
    "CLOSING_STATES",
    "OPEN_STATES",
    "EligibilitySnapshot",
    "IndexHead",
    "ItemEventRow",
    "ItemRow",
    "MerchantCounts",
    "PayoutRow",
    "PolicyRow",
    "ReturnDetail",
    "ReturnPage",
    "ReturnRow",
    "SalePage",
    "SaleRow",
    "TimelineEntry",
    "TransitionRow",
    "consumer_recent_returns",
    "current_sale",
    "eligibility_snapshot",
    "index_head",
    "item",
    "list_returns",
    "list_sales",
    "merchant_counts",
    "open_return",
    "policy_version",
    "policy_versions",
    "return_by_id",
    "return_detail",
]

DAY = 86_400
RECENT_DAYS = 90

OPEN_STATES = frozenset({ReturnState.AUTHORIZED, ReturnState.IN_TRANSIT, ReturnState.RECEIVED, ReturnState.DISPUTED})
"""Always open; Rejected is open too while its deposit is unpaid."""
CLOSING_STATES = frozenset(
    {ReturnState.ACCEPTED, ReturnState.RESOLVED, ReturnState.RECLAIMED, ReturnState.CONSUMER_CLAIMED}
)
"""States in which the item came back and its sale ended; Rejected too after a payout."""
_RECIRCULATING = (
    int(Disposition.SELLABLE_ACCESSIBLE),
    int(Disposition.SELLABLE_NOT_ACCESSIBLE),
    int(Disposition.CONFORMANT),
)


def _key(value: str) -> str:
    return value.lower()


# ---- result types ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndexHead:
    """The index checkpoint: every event up to this block is indexed."""

    block_number: int
    block_hash: str
    timestamp: int | None
    """The block's timestamp (None if its header is not stored)."""


@dataclass(frozen=True, slots=True)
class ItemRow:
    """An item as the index knows it."""

    item_id: str
    uri: str
    gtin: int
    manufacturer: str
    merchant: str
    registered_at: int
    event_count: int
    head_hash: str
    last_biz_step: int
    last_disposition: int
    last_event_at: int
    delivered_at: int | None
    destroyed: bool
    chain_ok: bool
    recalled: bool


@dataclass(frozen=True, slots=True)
class SaleRow:
    """One sale of an item, with what its returns did to it."""

    item_id: str
    sale_seq: int
    merchant: str
    consumer: str
    token: str
    price: int
    policy_version: int
    order_ref: str
    sold_at: int
    block_number: int
    tx_hash: str
    returns: int
    """Returns authorized for this sale so far."""
    closed: bool
    """The item came back by a return: the sale ended."""


@dataclass(frozen=True, slots=True)
class PolicyRow:
    """A published policy version (on-chain parameters)."""

    merchant: str
    version: int
    window_days: int
    restocking_fee_bps: int
    fast_refund: bool
    fast_refund_max_value: int
    fast_refund_max_returns_90d: int
    ship_by_days: int
    inspect_by_days: int
    dispute_window_days: int
    document_digest: str
    published_at: int
    block_number: int
    tx_hash: str


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


@dataclass(frozen=True, slots=True)
class ItemEventRow:
    """One event of an item's history."""

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


@dataclass(frozen=True, slots=True)
class SalePage:
    """One page of a merchant's sales, newest first, and the number of its sales overall."""

    rows: tuple[SaleRow, ...]
    count: int


@dataclass(frozen=True, slots=True)
class MerchantCounts:
    """What the index counts of one merchant's business (its dashboard)."""

    sales: int
    returns_by_state: Mapping[ReturnState, int]
    settled_returns: int
    """Returns whose deposit was paid out."""
    sales_by_day: Mapping[int, int]
    """Sales per UTC day (unix seconds // 86400) from ``since`` on."""
    returns_by_day: Mapping[int, int]
    """Returns authorized per UTC day from ``since`` on."""
    sales_by_policy: Mapping[int, int]
    """Sales bound to each policy version."""


@dataclass(frozen=True, slots=True)
class EligibilitySnapshot:
    """Everything the eligibility rules read from the index about one request, from one snapshot."""

    head: IndexHead | None
    now: int
    """The time the rules run at: the later of the caller's clock and the indexed head's timestamp."""
    item: ItemRow | None
    sale: SaleRow | None
    """The item's current (latest) sale, closed or not."""
    policy: PolicyRow | None
    """The policy version the sale is bound to."""
    open_return: ReturnRow | None
    consumer_returns_90d: int
    """Returns of the requesting consumer authorized in the 90 days up to ``now``."""
    category: str | None = None
    """The item's category, as its merchant set it (the API's record)."""


# ---- row mapping ----------------------------------------------------------------------


def _item(row: Any, recalled: bool) -> ItemRow:
    return ItemRow(
        item_id=row.item_id,
        uri=row.uri,
        gtin=row.gtin,
        manufacturer=row.manufacturer,
        merchant=row.merchant,
        registered_at=row.registered_at,
        event_count=row.event_count,
        head_hash=row.head_hash,
        last_biz_step=row.last_biz_step,
        last_disposition=row.last_disposition,
        last_event_at=row.last_event_at,
        delivered_at=row.delivered_at,
        destroyed=bool(row.destroyed),
        chain_ok=bool(row.chain_ok),
        recalled=recalled,
    )


def _policy(row: Any) -> PolicyRow:
    return PolicyRow(
        merchant=row.merchant,
        version=row.version,
        window_days=row.window_days,
        restocking_fee_bps=row.restocking_fee_bps,
        fast_refund=bool(row.fast_refund),
        fast_refund_max_value=int(row.fast_refund_max_value),
        fast_refund_max_returns_90d=row.fast_refund_max_returns_90d,
        ship_by_days=row.ship_by_days,
        inspect_by_days=row.inspect_by_days,
        dispute_window_days=row.dispute_window_days,
        document_digest=row.document_digest,
        published_at=row.published_at,
        block_number=row.block_number,
        tx_hash=row.tx_hash,
    )


def _return(row: Any) -> ReturnRow:
    return ReturnRow(
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


def _transition(row: Any) -> TransitionRow:
    return TransitionRow(
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


def _payout(row: Any) -> PayoutRow:
    return PayoutRow(
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


def _event(row: Any) -> ItemEventRow:
    return ItemEventRow(
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


# ---- statements (built once: the eligibility read is a hot path) -------------------------
#
# Every statement takes bound parameters, so SQLAlchemy compiles it once per
# dialect and each call only binds values.

_ev, _r, _s, _p = item_events.c, returns.c, sales.c, policies.c
_HEAD = (
    select(checkpoint.c.block_number, checkpoint.c.block_hash, blocks.c.timestamp)
    .select_from(checkpoint.outerjoin(blocks, blocks.c.number == checkpoint.c.block_number))
    .where(checkpoint.c.id == 1)
)
_LAST_RECALL = (
    select(func.max(_ev.seq))
    .where(
        _ev.item_key == bindparam("item_key"),
        _ev.item_id == items.c.item_id,
        _ev.disposition == int(Disposition.RECALLED),
    )
    .scalar_subquery()
)
_LAST_BACK = (
    select(func.max(_ev.seq))
    .where(_ev.item_key == bindparam("item_key"), _ev.item_id == items.c.item_id, _ev.disposition.in_(_RECIRCULATING))
    .scalar_subquery()
)
_ITEM = (
    select(items, _LAST_RECALL.label("last_recall"), _LAST_BACK.label("last_back"), item_categories.c.category)
    .select_from(items.outerjoin(item_categories, item_categories.c.item_id == items.c.item_id))
    .where(items.c.item_id == bindparam("item_id"))
)
_SALE_RETURNS = (
    select(func.count())
    .select_from(returns)
    .where(_r.item_id == _s.item_id, _r.sale_seq == _s.sale_seq)
    .scalar_subquery()
)
_SALE_CLOSED = (
    exists()
    .where(
        _r.item_id == _s.item_id,
        _r.sale_seq == _s.sale_seq,
        or_(
            _r.state.in_(sorted(int(state) for state in CLOSING_STATES)),
            and_(_r.state == int(ReturnState.REJECTED), _r.settled.is_(True)),
        ),
    )
    .label("closed")
)
_SALE = (
    select(sales, _SALE_RETURNS.label("return_count"), _SALE_CLOSED)
    .where(_s.item_id == bindparam("item_id"))
    .order_by(_s.sale_seq.desc())
    .limit(1)
)
_POLICY = select(policies).where(_p.merchant == bindparam("merchant"), _p.version == bindparam("version"))
_OPEN_RETURN = (
    select(returns)
    .where(
        _r.item_id == bindparam("item_id"),
        or_(
            _r.state.in_(sorted(int(state) for state in OPEN_STATES)),
            and_(_r.state == int(ReturnState.REJECTED), _r.settled.is_(False)),
        ),
    )
    .order_by(_r.block_number.desc(), _r.return_id)
    .limit(1)
)
_RECENT = (
    select(func.count())
    .select_from(returns)
    .where(
        _r.consumer == bindparam("consumer"),
        _r.authorized_at > bindparam("since"),
        _r.authorized_at <= bindparam("now"),
    )
)


# ---- queries inside a connection ------------------------------------------------------


def _read_head(conn: Connection) -> IndexHead | None:
    row = conn.execute(_HEAD).first()
    if row is None:
        return None
    return IndexHead(block_number=row.block_number, block_hash=row.block_hash, timestamp=row.timestamp)


def _read_item(conn: Connection, item_id: str) -> tuple[ItemRow, str | None] | None:
    """The item and its category (the API's record), or None."""
    row = conn.execute(_ITEM, {"item_id": item_id, "item_key": item_key(item_id)}).first()
    if row is None:
        return None
    recall, back = row.last_recall, row.last_back
    return _item(row, recall is not None and (back is None or back < recall)), row.category


def _read_sale(conn: Connection, item_id: str) -> SaleRow | None:
    row = conn.execute(_SALE, {"item_id": item_id}).first()
    return None if row is None else _sale(row)


def _sale(row: Any) -> SaleRow:
    """A row of ``sales`` with ``return_count`` and ``closed`` (:data:`_SALE_RETURNS`, :data:`_SALE_CLOSED`)."""
    return SaleRow(
        item_id=row.item_id,
        sale_seq=row.sale_seq,
        merchant=row.merchant,
        consumer=row.consumer,
        token=row.token,
        price=int(row.price),
        policy_version=row.policy_version,
        order_ref=row.order_ref,
        sold_at=row.sold_at,
        block_number=row.block_number,
        tx_hash=row.tx_hash,
        returns=int(row.return_count),
        closed=bool(row.closed),
    )


def _read_policy(conn: Connection, merchant: str, version: int) -> PolicyRow | None:
    row = conn.execute(_POLICY, {"merchant": merchant, "version": version}).first()
    return None if row is None else _policy(row)


def _read_open_return(conn: Connection, item_id: str) -> ReturnRow | None:
    row = conn.execute(_OPEN_RETURN, {"item_id": item_id}).first()
    return None if row is None else _return(row)


def _read_recent_count(conn: Connection, consumer: str, now: int) -> int:
    params = {"consumer": consumer, "since": now - RECENT_DAYS * DAY, "now": now}
    return int(conn.execute(_RECENT, params).scalar_one())


# ---- public queries -------------------------------------------------------------------


def index_head(store: Store) -> IndexHead | None:
    """The checkpoint block (None before the indexer's first write)."""
    with read_transaction(store.engine) as conn:
        return _read_head(conn)


def item(store: Store, item_id: str) -> ItemRow | None:
    """The item, or None if it is not registered (as far as the index knows)."""
    with read_transaction(store.engine) as conn:
        found = _read_item(conn, _key(item_id))
    return None if found is None else found[0]


def current_sale(store: Store, item_id: str) -> SaleRow | None:
    """The item's latest sale (closed or not), or None if it was never sold."""
    with read_transaction(store.engine) as conn:
        return _read_sale(conn, _key(item_id))


def policy_version(store: Store, *, merchant: str, version: int) -> PolicyRow | None:
    """Version ``version`` of the merchant's policy, or None."""
    with read_transaction(store.engine) as conn:
        return _read_policy(conn, _key(merchant), version)


def policy_versions(store: Store, merchant: str) -> tuple[PolicyRow, ...]:
    """Every published version of the merchant's policy, newest first (the first is the current one)."""
    p = policies.c
    stmt = select(policies).where(p.merchant == _key(merchant)).order_by(p.version.desc())
    with read_transaction(store.engine) as conn:
        return tuple(_policy(row) for row in conn.execute(stmt))


def open_return(store: Store, item_id: str) -> ReturnRow | None:
    """The item's open return, or None."""
    with read_transaction(store.engine) as conn:
        return _read_open_return(conn, _key(item_id))


def consumer_recent_returns(store: Store, *, consumer: str, now: int) -> int:
    """How many returns the consumer had authorized in the 90 days up to ``now``."""
    with read_transaction(store.engine) as conn:
        return _read_recent_count(conn, _key(consumer), now)


def eligibility_snapshot(store: Store, *, item_id: str, requester: str, now: int) -> EligibilitySnapshot:
    """The facts :func:`ledger_service.eligibility.decide` needs from the index, read in one snapshot, one
    table at a time: the readable reference that the one-statement read the service uses
    (:func:`ledger_service.store.eligibility_queries.eligibility_read`) is tested against.

    ``now`` is the caller's clock; the snapshot runs the rules at the later of it and the indexed head's
    timestamp (chain time may run ahead of the wall clock, e.g. on a test chain).
    """
    wanted, requester_key = _key(item_id), _key(requester)
    with read_transaction(store.engine) as conn:
        head = _read_head(conn)
        if head is not None and head.timestamp is not None:
            now = max(now, head.timestamp)
        found = _read_item(conn, wanted)
        if found is None:
            return EligibilitySnapshot(head, now, None, None, None, None, 0)
        sale = _read_sale(conn, wanted)
        policy = None if sale is None else _read_policy(conn, sale.merchant, sale.policy_version)
        return EligibilitySnapshot(
            head=head,
            now=now,
            item=found[0],
            sale=sale,
            policy=policy,
            open_return=_read_open_return(conn, wanted),
            consumer_returns_90d=_read_recent_count(conn, requester_key, now),
            category=found[1],
        )


def return_by_id(store: Store, return_id: str) -> ReturnRow | None:
    """The return, or None if the index does not (yet) have it."""
    with read_transaction(store.engine) as conn:
        row = conn.execute(select(returns).where(returns.c.return_id == _key(return_id))).first()
        return None if row is None else _return(row)


def return_detail(store: Store, return_id: str) -> ReturnDetail | None:
    """The return with its transitions, payout and item events, or None if unknown."""
    key = _key(return_id)
    with read_transaction(store.engine) as conn:
        row = conn.execute(select(returns).where(returns.c.return_id == key)).first()
        if row is None:
            return None
        rt = return_transitions.c
        transitions = tuple(
            _transition(t)
            for t in conn.execute(
                select(return_transitions).where(rt.return_id == key).order_by(rt.block_number, rt.log_index)
            )
        )
        payout_row = conn.execute(select(escrow_payouts).where(escrow_payouts.c.return_id == key)).first()
        ev = item_events.c
        events = tuple(
            _event(e)
            for e in conn.execute(
                select(item_events)
                .where(ev.item_key == item_key(row.item_id), ev.item_id == row.item_id, ev.biz_transaction == key)
                .order_by(ev.seq, ev.block_number, ev.log_index)
            )
        )
        return ReturnDetail(
            ret=_return(row),
            transitions=transitions,
            payout=None if payout_row is None else _payout(payout_row),
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
    rows = tuple(_return(row) for row in fetched)
    reason_codes = {row.return_id: row.request_reason for row in fetched if row.request_reason is not None}
    return ReturnPage(rows, int(count), reason_codes)


def list_sales(store: Store, *, merchant: str, limit: int = 50, offset: int = 0) -> SalePage:
    """The merchant's sales, newest first (each with its returns so far and whether one closed it)."""
    where = _s.merchant == _key(merchant)
    page = (
        select(sales, _SALE_RETURNS.label("return_count"), _SALE_CLOSED)
        .where(where)
        .order_by(_s.sold_at.desc(), _s.block_number.desc(), _s.item_id)
        .limit(limit)
        .offset(offset)
    )
    with read_transaction(store.engine) as conn:
        count = conn.execute(select(func.count()).select_from(sales).where(where)).scalar_one()
        rows = tuple(_sale(row) for row in conn.execute(page))
    return SalePage(rows, int(count))


def merchant_counts(store: Store, *, merchant: str, since: int) -> MerchantCounts:
    """The merchant's sales and returns counted (by state, by policy version, per day from ``since``), from one
    snapshot of the index: grouped counts, never rows."""
    key = _key(merchant)
    sale_day = (_s.sold_at // DAY).label("day")
    return_day = (_r.authorized_at // DAY).label("day")
    with read_transaction(store.engine) as conn:
        by_policy = {
            int(v): int(n)
            for v, n in conn.execute(
                select(_s.policy_version, func.count()).where(_s.merchant == key).group_by(_s.policy_version)
            )
        }
        by_state = {
            ReturnState(int(state)): int(n)
            for state, n in conn.execute(select(_r.state, func.count()).where(_r.merchant == key).group_by(_r.state))
        }
        settled = conn.execute(
            select(func.count()).select_from(returns).where(_r.merchant == key, _r.settled.is_(True))
        ).scalar_one()
        sales_by_day = {
            int(d): int(n)
            for d, n in conn.execute(
                select(sale_day, func.count()).where(_s.merchant == key, _s.sold_at >= since).group_by(sale_day)
            )
        }
        returns_by_day = {
            int(d): int(n)
            for d, n in conn.execute(
                select(return_day, func.count())
                .where(_r.merchant == key, _r.authorized_at >= since)
                .group_by(return_day)
            )
        }
    return MerchantCounts(
        sales=sum(by_policy.values()),
        returns_by_state=by_state,
        settled_returns=int(settled),
        sales_by_day=sales_by_day,
        returns_by_day=returns_by_day,
        sales_by_policy=by_policy,
    )
