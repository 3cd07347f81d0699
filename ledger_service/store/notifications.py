"""The outbox (``notifications``), webhook subscriptions, consumers' contacts and ``deliveries``.

Invariants:
- a notification is written in the transaction of the change that caused it (store/ingest.py for the chain's
  events; :func:`scan_return_windows` for a sale's closing window), once per id;
- :func:`dispatch` turns each outbox row into at most one delivery per target (unique (target, id)), and marks
  the row dispatched in the same transaction: a row deleted by a reorg and inserted again is dispatched again
  and adds nothing;
- a delivery is claimed by one worker at a time (PostgreSQL: ``FOR UPDATE SKIP LOCKED``; SQLite: one worker,
  see ledger_service/notify/cli.py) and leased: a worker that dies leaves it due again when the lease ends,
  so it is sent at least once, always with the same id and body.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, and_, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ledger_service.core.notifications import SALE_WINDOW_CLOSING, notification_id
from ledger_service.store._db import insert_ignore, key_in, read_transaction, write_transaction
from ledger_service.store.handle import Store
from ledger_service.store.tables import (
    consumer_contacts,
    deliveries,
    items,
    notifications,
    policies,
    returns,
    sales,
    webhook_endpoints,
)

EMAIL_TARGET = "email"
"""``deliveries.target`` of the consumer's e-mail (a webhook's target is its endpoint id)."""

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


@dataclass(frozen=True, slots=True)
class Notification:
    """One outbox row."""

    seq: int
    id: str
    type: str
    return_id: str | None
    item_id: str
    sale_seq: int
    merchant: str
    consumer: str
    occurred_at: int
    data: dict[str, Any]
    block_number: int | None


def _notification(row: Any) -> Notification:
    return Notification(
        seq=int(row.seq),
        id=row.id,
        type=row.type,
        return_id=row.return_id,
        item_id=row.item_id,
        sale_seq=int(row.sale_seq),
        merchant=row.merchant,
        consumer=row.consumer,
        occurred_at=int(row.occurred_at),
        data=json.loads(row.data),
        block_number=row.block_number,
    )


def notifications_of_return(store: Store, return_id: str, *, after: int = 0, limit: int = 100) -> list[Notification]:
    """The return's notifications with ``seq > after``, oldest first (the event stream's resume point)."""
    n = notifications.c
    stmt = select(notifications).where(n.return_id == return_id, n.seq > after).order_by(n.seq).limit(limit)
    with read_transaction(store.engine) as conn:
        return [_notification(row) for row in conn.execute(stmt)]


def outbox(store: Store) -> list[Notification]:
    """Every outbox row, oldest first (tests and the demo)."""
    with read_transaction(store.engine) as conn:
        return [_notification(row) for row in conn.execute(select(notifications).order_by(notifications.c.seq))]


# ---- the window scan ---------------------------------------------------------------------------------------

DAY = 86_400


def scan_return_windows(store: Store, *, now: int, notice_s: int) -> int:
    """Writes a ``sale.return_window_closing`` notification for every current sale whose return window
    (delivery + the sale's policy's window_days, as the eligibility rules count it) closes within ``notice_s``
    seconds after ``now`` and for which no return was authorized; returns how many were new. Idempotent: the
    id is the sale's, so a scan that runs again (or in two workers) adds nothing."""
    i, s, p, r = items.c, sales.c, policies.c, returns.c
    later = sales.alias("later")
    latest = select(func.max(later.c.sale_seq)).where(later.c.item_id == i.item_id).scalar_subquery()
    closes = i.delivered_at + p.window_days * DAY
    stmt = (
        select(i.item_id, s.sale_seq, s.merchant, s.consumer, closes.label("closes_at"), p.window_days)
        .select_from(items)
        .join(sales, and_(s.item_id == i.item_id, s.sale_seq == latest))
        .join(policies, and_(p.merchant == s.merchant, p.version == s.policy_version))
        .where(i.delivered_at.is_not(None), closes > now, closes <= now + notice_s)
        .where(~select(r.return_id).where(r.item_id == i.item_id, r.sale_seq == s.sale_seq).exists())
    )
    with write_transaction(store.engine) as conn:
        rows = [
            {
                "id": notification_id(SALE_WINDOW_CLOSING, f"{row.item_id}:{row.sale_seq}"),
                "type": SALE_WINDOW_CLOSING,
                "return_id": None,
                "item_id": row.item_id,
                "sale_seq": row.sale_seq,
                "merchant": row.merchant,
                "consumer": row.consumer,
                "occurred_at": now,
                "data": _json(
                    {
                        "item_id": row.item_id,
                        "sale_seq": row.sale_seq,
                        "closes_at": int(row.closes_at),
                        "window_days": row.window_days,
                    }
                ),
                "block_number": None,
                "log_index": None,
                "created_at": now,
            }
            for row in conn.execute(stmt)
        ]
        return sum(insert_ignore(conn, notifications, row) for row in rows)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def add_request_notice(
    conn: Connection,
    *,
    kind: str,
    request_id: str,
    item_id: str,
    consumer: str,
    merchant: str,
    data: dict[str, Any],
    now: int,
) -> bool:
    """Adds, in the caller's transaction, the outbox row of a return request's ``kind`` notification
    (``return.requested`` or ``return.rejected``: off-chain, the API's own records); the sale is the item's
    current one. Whether it was new (none for an item never sold)."""
    sale_seq = conn.execute(select(func.max(sales.c.sale_seq)).where(sales.c.item_id == item_id)).scalar()
    if sale_seq is None:
        return False
    row = {
        "id": notification_id(kind, request_id),
        "type": kind,
        "return_id": None,
        "item_id": item_id,
        "sale_seq": int(sale_seq),
        "merchant": merchant,
        "consumer": consumer,
        "occurred_at": now,
        "data": _json({"request_id": request_id, **data}),
        "block_number": None,
        "log_index": None,
        "created_at": now,
    }
    return insert_ignore(conn, notifications, row)


# ---- webhook endpoints -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    id: str
    merchant: str
    url: str
    event_types: tuple[str, ...]
    secret: str
    created_at: int
    deleted_at: int | None


def _endpoint(row: Any) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row.id,
        merchant=row.merchant,
        url=row.url,
        event_types=tuple(json.loads(row.event_types)),
        secret=row.secret,
        created_at=int(row.created_at),
        deleted_at=row.deleted_at,
    )


def insert_endpoint(store: Store, endpoint: WebhookEndpoint) -> None:
    row = {
        "id": endpoint.id,
        "merchant": endpoint.merchant.lower(),
        "url": endpoint.url,
        "event_types": json.dumps(list(endpoint.event_types)),
        "secret": endpoint.secret,
        "created_at": endpoint.created_at,
        "deleted_at": None,
    }
    with write_transaction(store.engine) as conn:
        conn.execute(insert(webhook_endpoints).values(**row))


def endpoint_by_id(store: Store, endpoint_id: str) -> WebhookEndpoint | None:
    with read_transaction(store.engine) as conn:
        row = conn.execute(select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)).first()
    return None if row is None else _endpoint(row)


def endpoints_of(store: Store, merchant: str) -> list[WebhookEndpoint]:
    """A merchant's endpoints that are not deleted, oldest first."""
    w = webhook_endpoints.c
    stmt = (
        select(webhook_endpoints).where(w.merchant == merchant.lower(), w.deleted_at.is_(None)).order_by(w.created_at)
    )
    with read_transaction(store.engine) as conn:
        return [_endpoint(row) for row in conn.execute(stmt)]


def delete_endpoint(store: Store, endpoint_id: str, *, now: int) -> bool:
    """Stops the endpoint's deliveries (pending ones are dead-lettered as deleted); whether it existed."""
    w = webhook_endpoints.c
    with write_transaction(store.engine) as conn:
        done = conn.execute(
            update(webhook_endpoints).where(w.id == endpoint_id, w.deleted_at.is_(None)).values(deleted_at=now)
        ).rowcount
        d = deliveries.c
        conn.execute(
            update(deliveries)
            .where(d.target == endpoint_id, d.state == PENDING)
            .values(state=DEAD, last_error="endpoint deleted", finished_at=now)
        )
    return bool(done)


# ---- consumers' contacts -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Contact:
    email: str
    lang: str


def set_contact(store: Store, *, item_id: str, sale_seq: int, email: str, lang: str, now: int) -> None:
    """Sets (or replaces) the e-mail address of a sale's consumer."""
    dialect = postgresql if store.engine.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(consumer_contacts).values(
        item_id=item_id, sale_seq=sale_seq, email=email, lang=lang, set_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["item_id", "sale_seq"], set_={"email": email, "lang": lang, "set_at": now}
    )
    with write_transaction(store.engine) as conn:
        conn.execute(stmt)


def contact_of(store: Store, *, item_id: str, sale_seq: int) -> Contact | None:
    c = consumer_contacts.c
    with read_transaction(store.engine) as conn:
        row = conn.execute(select(c.email, c.lang).where(c.item_id == item_id, c.sale_seq == sale_seq)).first()
    return None if row is None else Contact(row.email, row.lang)


# ---- dispatch: outbox rows -> deliveries -------------------------------------------------------------------


def _locked(conn: Connection, stmt: Select[Any]) -> Select[Any]:
    """``stmt`` FOR UPDATE SKIP LOCKED on PostgreSQL (rows another worker holds are left to it); SQLite has one
    writer at a time and one worker."""
    return stmt.with_for_update(skip_locked=True) if conn.dialect.name == "postgresql" else stmt


def dispatch(
    store: Store,
    *,
    now: int,
    retry_for_s: int,
    render: Callable[[Notification], str],
    email_types: frozenset[str],
    limit: int = 500,
) -> int:
    """Turns up to ``limit`` undispatched outbox rows into deliveries: one per subscribed, not deleted webhook
    endpoint of the row's merchant (body ``render(row)``), and one to the consumer's e-mail when the sale has
    a contact and the type is in ``email_types``; marks the rows dispatched. Returns the rows dispatched."""
    n, w, c = notifications.c, webhook_endpoints.c, consumer_contacts.c
    with write_transaction(store.engine) as conn:
        stmt = select(notifications).where(n.dispatched_at.is_(None)).order_by(n.seq).limit(limit)
        rows = [_notification(found) for found in conn.execute(_locked(conn, stmt))]
        if not rows:
            return 0
        merchants = sorted({row.merchant for row in rows})
        endpoints: dict[str, list[WebhookEndpoint]] = {}
        subscribed = select(webhook_endpoints).where(key_in(conn, w.merchant, merchants), w.deleted_at.is_(None))
        for stored in conn.execute(subscribed):
            endpoint = _endpoint(stored)
            endpoints.setdefault(endpoint.merchant, []).append(endpoint)
        wanted = [row for row in rows if row.type in email_types]
        contacts: set[tuple[str, int]] = set()
        if wanted:
            item_ids = sorted({row.item_id for row in wanted})
            stmt_c = select(c.item_id, c.sale_seq).where(key_in(conn, c.item_id, item_ids))
            contacts = {(r.item_id, int(r.sale_seq)) for r in conn.execute(stmt_c)}
        out: list[dict[str, Any]] = []
        for row in rows:
            targets = [e.id for e in endpoints.get(row.merchant, ()) if row.type in e.event_types]
            if row.type in email_types and (row.item_id, row.sale_seq) in contacts:
                targets.append(EMAIL_TARGET)
            if not targets:
                continue
            body = render(row)
            out.extend(
                {
                    "target": target,
                    "notification_id": row.id,
                    "event_type": row.type,
                    "return_id": row.return_id,
                    "item_id": row.item_id,
                    "sale_seq": row.sale_seq,
                    "body": body,
                    "state": PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "retry_until": now + retry_for_s,
                    "created_at": now,
                }
                for target in targets
            )
        if out:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            conn.execute(
                dialect.insert(deliveries).on_conflict_do_nothing(index_elements=["target", "notification_id"]), out
            )
        seqs = [row.seq for row in rows]
        conn.execute(update(notifications).where(key_in(conn, n.seq, seqs)).values(dispatched_at=now))
    return len(rows)


# ---- deliveries --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    target: str
    notification_id: str
    event_type: str
    return_id: str | None
    item_id: str
    sale_seq: int
    body: str
    state: str
    attempts: int
    next_attempt_at: int
    retry_until: int
    last_status: int | None
    last_error: str | None
    created_at: int
    finished_at: int | None


def _delivery(row: Any) -> Delivery:
    return Delivery(**{name: getattr(row, name) for name in Delivery.__dataclass_fields__})


def claim_due(
    store: Store, *, now: int, limit: int, per_target: int, lease_s: int, busy: Mapping[str, int] | None = None
) -> list[Delivery]:
    """Leases up to ``limit`` due pending deliveries, at most ``per_target`` per target counting the ``busy``
    ones the caller still has in flight (a slow or failing receiver cannot fill the slots), oldest due first:
    their ``next_attempt_at`` moves ``lease_s`` ahead, so another worker skips them, and a worker that dies
    leaves them due again then."""
    d = deliveries.c
    taken: list[Delivery] = []
    per: dict[str, int] = dict(busy or {})
    with write_transaction(store.engine) as conn:
        stmt = (
            select(deliveries)
            .where(d.state == PENDING, d.next_attempt_at <= now)
            .order_by(d.next_attempt_at, d.id)
            .limit(limit * 4)
        )
        for row in conn.execute(_locked(conn, stmt)):
            if per.get(row.target, 0) >= per_target:
                continue
            per[row.target] = per.get(row.target, 0) + 1
            taken.append(_delivery(row))
            if len(taken) >= limit:
                break
        if taken:
            ids = [t.id for t in taken]
            conn.execute(update(deliveries).where(key_in(conn, d.id, ids)).values(next_attempt_at=now + lease_s))
    return taken


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt of a delivery did."""

    delivery_id: int
    ok: bool
    status: int | None
    error: str | None
    next_attempt_at: int | None
    """When to try again; None with ``ok`` False: dead-lettered."""


def record_outcomes(store: Store, outcomes: Sequence[Outcome], *, now: int) -> None:
    """Stores the attempts' results: delivered, due again later, or dead."""
    if not outcomes:
        return
    d = deliveries.c
    with write_transaction(store.engine) as conn:
        for o in outcomes:
            values: dict[str, Any] = {"attempts": d.attempts + 1, "last_status": o.status, "last_error": o.error}
            if o.ok:
                values |= {"state": DELIVERED, "finished_at": now}
            elif o.next_attempt_at is None:
                values |= {"state": DEAD, "finished_at": now}
            else:
                values |= {"next_attempt_at": o.next_attempt_at}
            conn.execute(update(deliveries).where(d.id == o.delivery_id, d.state == PENDING).values(**values))


def deliveries_of(store: Store, target: str, *, state: str | None = None, limit: int = 100) -> list[Delivery]:
    """A target's deliveries, newest first (``state`` filters)."""
    d = deliveries.c
    stmt = select(deliveries).where(d.target == target)
    if state is not None:
        stmt = stmt.where(d.state == state)
    with read_transaction(store.engine) as conn:
        return [_delivery(row) for row in conn.execute(stmt.order_by(d.id.desc()).limit(limit))]


def replay(store: Store, target: str, *, now: int, retry_for_s: int, delivery_id: int | None = None) -> int:
    """Makes the target's dead deliveries (or the one ``delivery_id``, whatever its state) due now again, with
    a new retry window; returns how many. The id and body stay: receivers de-duplicate as on any retry."""
    d = deliveries.c
    cond = [d.target == target]
    cond.append(d.id == delivery_id if delivery_id is not None else d.state == DEAD)
    stmt = (
        update(deliveries)
        .where(*cond)
        .values(state=PENDING, next_attempt_at=now, retry_until=now + retry_for_s, finished_at=None)
    )
    with write_transaction(store.engine) as conn:
        return int(conn.execute(stmt).rowcount)
