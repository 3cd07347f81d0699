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

from sqlalchemy import (
    BigInteger,
    Connection,
    Integer,
    Select,
    String,
    Text,
    and_,
    bindparam,
    func,
    insert,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from ledger_service.core.notifications import SALE_WINDOW_CLOSING, STATE_NAMES, notification_id
from ledger_service.store._db import (
    insert_ignore,
    key_in,
    read_transaction,
    single_statement,
    write_transaction,
)
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


def add_return_notice(
    conn: Connection, *, kind: str, subject: str, return_id: str, data: dict[str, Any], occurred_at: int, now: int
) -> bool:
    """Adds, in the caller's transaction, an off-chain ``kind`` notification about an indexed return (its item,
    sale, merchant and consumer read from the index), id ``notification_id(kind, subject)``: the API's record
    that caused it is written in the same transaction, so it is added once with that record. Whether it was
    new (none for a return not indexed)."""
    r = returns.c
    found = conn.execute(
        select(r.item_id, r.sale_seq, r.merchant, r.consumer, r.state).where(r.return_id == return_id.lower())
    ).first()
    if found is None:
        return False
    row = {
        "id": notification_id(kind, subject),
        "type": kind,
        "return_id": return_id.lower(),
        "item_id": found.item_id,
        "sale_seq": int(found.sale_seq),
        "merchant": found.merchant,
        "consumer": found.consumer,
        "occurred_at": occurred_at,
        "data": _json({"return_id": return_id.lower(), "state": STATE_NAMES.get(int(found.state)), **data}),
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


def replace_secret(store: Store, endpoint_id: str, *, stored: str, plaintext: str) -> bool:
    """Stores ``stored`` (the sealed form) as the endpoint's secret if it still holds ``plaintext``."""
    w = webhook_endpoints.c
    with write_transaction(store.engine) as conn:
        stmt = update(webhook_endpoints).where(w.id == endpoint_id, w.secret == plaintext).values(secret=stored)
        return bool(conn.execute(stmt).rowcount)


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
        out: list[tuple[Notification, str, list[str]]] = []
        for row in rows:
            targets = [e.id for e in endpoints.get(row.merchant, ()) if row.type in e.event_types]
            if row.type in email_types and (row.item_id, row.sale_seq) in contacts:
                targets.append(EMAIL_TARGET)
            if targets:
                out.append((row, render(row), targets))
        if out:
            _insert_deliveries(conn, out, now=now, retry_until=now + retry_for_s)
        seqs = [row.seq for row in rows]
        conn.execute(update(notifications).where(key_in(conn, n.seq, seqs)).values(dispatched_at=now))
    return len(rows)


_INSERT_DELIVERIES_PG = text(
    """
INSERT INTO deliveries (target, notification_id, event_type, return_id, item_id, sale_seq, body, state, attempts,
                        next_attempt_at, retry_until, created_at)
SELECT p.target, r.id, r.type, r.return_id, r.item_id, r.sale_seq, r.body, 'pending', 0, :now, :retry_until, :now
FROM unnest(CAST(:p_row AS bigint[]), CAST(:p_target AS text[])) AS p(n, target)
JOIN unnest(
    CAST(:r_id AS text[]), CAST(:r_type AS text[]), CAST(:r_return AS text[]), CAST(:r_item AS text[]),
    CAST(:r_sale AS integer[]), CAST(:r_body AS text[])
) WITH ORDINALITY AS r(id, type, return_id, item_id, sale_seq, body, n) ON r.n = p.n
ORDER BY p.n, p.target
ON CONFLICT (target, notification_id) DO NOTHING
"""
)
"""PostgreSQL: the deliveries of a dispatch page in one statement, each body sent once for all its targets
(an executemany is a round trip's worth of work per row even when pipelined)."""


def _insert_deliveries(
    conn: Connection, out: Sequence[tuple[Notification, str, list[str]]], *, now: int, retry_until: int
) -> None:
    """One pending delivery per (outbox row, target), the row's rendered body for all (existing ones stay)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            _INSERT_DELIVERIES_PG,
            {
                "p_row": [n for n, (_, _, targets) in enumerate(out, start=1) for _ in targets],
                "p_target": [target for _, _, targets in out for target in targets],
                "r_id": [row.id for row, _, _ in out],
                "r_type": [row.type for row, _, _ in out],
                "r_return": [row.return_id for row, _, _ in out],
                "r_item": [row.item_id for row, _, _ in out],
                "r_sale": [row.sale_seq for row, _, _ in out],
                "r_body": [body for _, body, _ in out],
                "now": now,
                "retry_until": retry_until,
            },
        )
        return
    values = [
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
            "retry_until": retry_until,
            "created_at": now,
        }
        for row, body, targets in out
        for target in targets
    ]
    conn.execute(sqlite.insert(deliveries).on_conflict_do_nothing(index_elements=["target", "notification_id"]), values)


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


def _relaxed(conn: Connection) -> None:
    """PostgreSQL: this transaction's commit does not wait for its WAL flush. Only the worker's leases and
    outcomes use it: one lost to a database crash leaves its delivery due again, sent again with the same id
    and body, which at-least-once delivery allows; nothing else in the transaction may depend on it."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")


def claim_due(
    store: Store,
    *,
    now: int,
    limit: int,
    per_target: int,
    lease_s: int,
    busy: Mapping[str, int] | None = None,
    outcomes: Sequence[Outcome] = (),
) -> list[Delivery]:
    """Records ``outcomes`` (as :func:`record_outcomes`), then leases up to ``limit`` due pending deliveries, at
    most ``per_target`` per target counting the ``busy`` ones the caller still has in flight (a slow or failing
    receiver cannot fill the slots), oldest due first: their ``next_attempt_at`` moves ``lease_s`` ahead, so
    another worker skips them, and a worker that dies leaves them due again then.

    Candidates are a window of a few times ``limit`` of the oldest due rows; when they fill fewer than ``limit``
    slots because their targets are at their caps (a receiver that was down has a backlog due before anyone
    else's new rows), the other targets with due rows are read one by one, so a backlog never starves them.
    Only the chosen rows are locked (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so rows another worker holds are
    left to it), checked still due and leased.

    On PostgreSQL the outcomes, the window and the lease are one statement (one round trip, its own
    transaction); the targets past the window, when needed, a second transaction. On SQLite one transaction."""
    per: dict[str, int] = dict(busy or {})
    window = limit * 4
    if store.engine.dialect.name == "postgresql":
        with single_statement(store.engine) as conn:
            taken, window_rows = _claim_window_pg(
                conn,
                now=now,
                limit=max(limit, 0),
                window=max(window, 0),
                per_target=per_target,
                lease_s=lease_s,
                busy=per,
                outcomes=outcomes,
            )
        if len(taken) >= limit or window_rows < window:
            return taken
        for delivery in taken:
            per[delivery.target] = per.get(delivery.target, 0) + 1
        with write_transaction(store.engine) as conn:
            _relaxed(conn)
            taken += _claim_past_window(
                conn, now=now, limit=limit - len(taken), per_target=per_target, per=per, lease_s=lease_s, chosen={}
            )
        return sorted(taken, key=lambda t: t.id)
    with write_transaction(store.engine) as conn:
        _record(conn, outcomes, now=now)
        if limit <= 0:
            return []
        d = deliveries.c
        chosen: dict[int, str] = {}
        oldest = select(d.id, d.target).where(*_due(now)).order_by(d.next_attempt_at, d.id).limit(window)
        rows = conn.execute(oldest).all()
        _choose(rows, chosen=chosen, per=per, limit=limit, per_target=per_target)
        if len(chosen) < limit and len(rows) == window:
            return _claim_past_window(
                conn, now=now, limit=limit, per_target=per_target, per=per, lease_s=lease_s, chosen=chosen
            )
        return _lease(conn, chosen, now=now, lease_s=lease_s)


def _due(now: int) -> tuple[ColumnElement[bool], ...]:
    d = deliveries.c
    return (d.state == PENDING, d.next_attempt_at <= now)


def _choose(rows: Any, *, chosen: dict[int, str], per: dict[str, int], limit: int, per_target: int) -> None:
    """Adds ``rows`` (oldest due first) to ``chosen`` while slots are free, at most ``per_target`` per target."""
    for row in rows:
        if len(chosen) >= limit:
            return
        if per.get(row.target, 0) >= per_target or row.id in chosen:
            continue
        per[row.target] = per.get(row.target, 0) + 1
        chosen[row.id] = row.target


def _claim_past_window(
    conn: Connection,
    *,
    now: int,
    limit: int,
    per_target: int,
    per: dict[str, int],
    lease_s: int,
    chosen: dict[int, str],
) -> list[Delivery]:
    """Fills the free slots from the targets that are not at their caps, the one with the oldest due row first,
    then leases ``chosen``."""
    d = deliveries.c
    full = sorted(target for target, n in per.items() if n >= per_target)
    others = (
        select(d.target)
        .where(*_due(now), d.target.not_in(full) if full else true())
        .group_by(d.target)
        .order_by(func.min(d.next_attempt_at))
        .limit(limit - len(chosen))
    )
    for target in conn.execute(others).scalars().all():
        room = min(per_target - per.get(target, 0), limit - len(chosen)) + per.get(target, 0)
        one = select(d.id, d.target).where(d.target == target, *_due(now)).order_by(d.next_attempt_at, d.id)
        _choose(conn.execute(one.limit(room)), chosen=chosen, per=per, limit=limit, per_target=per_target)
        if len(chosen) >= limit:
            break
    return _lease(conn, chosen, now=now, lease_s=lease_s)


def _lease(conn: Connection, chosen: Mapping[int, str], *, now: int, lease_s: int) -> list[Delivery]:
    if not chosen:
        return []
    d = deliveries.c
    free_now = _locked(conn, select(d.id).where(key_in(conn, d.id, list(chosen)), *_due(now)))
    lease = update(deliveries).where(d.id.in_(free_now.scalar_subquery())).values(next_attempt_at=now + lease_s)
    return sorted((_delivery(row) for row in conn.execute(lease.returning(*deliveries.c))), key=lambda t: t.id)


_CLAIM_PG = text(
    """
WITH outcome AS (
    SELECT * FROM unnest(
        CAST(:o_id AS bigint[]), CAST(:o_ok AS boolean[]), CAST(:o_status AS integer[]),
        CAST(:o_error AS text[]), CAST(:o_next AS bigint[])
    ) AS o(id, ok, status, error, next_at)
), recorded AS (
    UPDATE deliveries AS d
    SET attempts = d.attempts + 1,
        last_status = o.status,
        last_error = o.error,
        state = CASE WHEN o.ok THEN 'delivered' WHEN o.next_at IS NULL THEN 'dead' ELSE 'pending' END,
        next_attempt_at = COALESCE(o.next_at, d.next_attempt_at),
        finished_at = CASE WHEN o.ok OR o.next_at IS NULL THEN CAST(:now AS bigint) END
    FROM outcome AS o
    WHERE d.id = o.id AND d.state = 'pending'
    RETURNING d.id
), busy AS (
    SELECT * FROM unnest(CAST(:b_target AS text[]), CAST(:b_count AS integer[])) AS b(target, n)
), candidates AS (
    SELECT id, target, next_attempt_at FROM deliveries
    WHERE state = 'pending' AND next_attempt_at <= :now AND id <> ALL(CAST(:o_id AS bigint[]))
    ORDER BY next_attempt_at, id
    LIMIT :window
), chosen AS (
    SELECT id FROM (
        SELECT c.id, c.next_attempt_at,
               row_number() OVER (PARTITION BY c.target ORDER BY c.next_attempt_at, c.id) + COALESCE(b.n, 0) AS slot
        FROM candidates AS c LEFT JOIN busy AS b ON b.target = c.target
    ) AS ranked
    WHERE slot <= :per_target
    ORDER BY next_attempt_at, id
    LIMIT :limit
), leased AS (
    UPDATE deliveries AS d
    SET next_attempt_at = :lease_until
    WHERE d.id IN (
        SELECT f.id FROM deliveries AS f
        WHERE f.id IN (SELECT id FROM chosen) AND f.state = 'pending' AND f.next_attempt_at <= :now
        FOR UPDATE SKIP LOCKED
    )
    RETURNING d.*
)
SELECT set_config('synchronous_commit', 'off', true) AS relaxed,
       (SELECT count(*) FROM recorded) AS recorded,
       (SELECT count(*) FROM candidates) AS window_rows,
       (SELECT json_agg(leased) FROM leased) AS leased
"""
)
"""The PostgreSQL claim in one statement: it records the finished attempts, reads the window of the oldest due
rows (without the ones just recorded: one statement must not update a row twice), picks at most ``per_target``
per target counting the busy ones, and leases those no other worker holds. Its transaction commits without
waiting for the WAL flush (as :func:`_relaxed`)."""


def _claim_window_pg(
    conn: Connection,
    *,
    now: int,
    limit: int,
    window: int,
    per_target: int,
    lease_s: int,
    busy: Mapping[str, int],
    outcomes: Sequence[Outcome],
) -> tuple[list[Delivery], int]:
    """:data:`_CLAIM_PG` on ``conn`` (autocommit): the leased deliveries, and how many rows the window held."""
    row = conn.execute(
        _CLAIM_PG,
        {
            "o_id": [o.delivery_id for o in outcomes],
            "o_ok": [o.ok for o in outcomes],
            "o_status": [o.status for o in outcomes],
            "o_error": [o.error for o in outcomes],
            "o_next": [o.next_attempt_at for o in outcomes],
            "b_target": list(busy),
            "b_count": list(busy.values()),
            "now": now,
            "window": window,
            "per_target": per_target,
            "limit": limit,
            "lease_until": now + lease_s,
        },
    ).one()
    fields = Delivery.__dataclass_fields__
    taken = [Delivery(**{name: found[name] for name in fields}) for found in row.leased or ()]
    return sorted(taken, key=lambda t: t.id), int(row.window_rows)


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
    """Stores the attempts' results, all in one transaction: delivered, due again later, or dead. A delivery no
    longer pending (recorded by a worker whose lease had not run out) is left alone."""
    if not outcomes:
        return
    if store.engine.dialect.name == "postgresql":
        with single_statement(store.engine) as conn:
            _claim_window_pg(conn, now=now, limit=0, window=0, per_target=0, lease_s=0, busy={}, outcomes=outcomes)
        return
    with write_transaction(store.engine) as conn:
        _record(conn, outcomes, now=now)


def _record(conn: Connection, outcomes: Sequence[Outcome], *, now: int) -> None:
    """The successes as one statement per HTTP status (usually one), the failures as one executemany."""
    d = deliveries.c
    delivered: dict[int | None, list[int]] = {}
    for o in outcomes:
        if o.ok:
            delivered.setdefault(o.status, []).append(o.delivery_id)
    for status, ids in delivered.items():
        conn.execute(
            update(deliveries)
            .where(key_in(conn, d.id, ids), d.state == PENDING)
            .values(attempts=d.attempts + 1, last_status=status, last_error=None, state=DELIVERED, finished_at=now)
        )
    failed = [
        {
            "b_id": o.delivery_id,
            "b_status": o.status,
            "b_error": o.error,
            "b_state": DEAD if o.next_attempt_at is None else PENDING,
            "b_next": o.next_attempt_at,
            "b_finished": now if o.next_attempt_at is None else None,
        }
        for o in outcomes
        if not o.ok
    ]
    if failed:
        stmt = (
            update(deliveries)
            .where(d.id == bindparam("b_id"), d.state == PENDING)
            .values(
                attempts=d.attempts + 1,
                last_status=bindparam("b_status", type_=Integer()),
                last_error=bindparam("b_error", type_=Text()),
                state=bindparam("b_state", type_=String()),
                next_attempt_at=func.coalesce(bindparam("b_next", type_=BigInteger()), d.next_attempt_at),
                finished_at=bindparam("b_finished", type_=BigInteger()),
            )
        )
        conn.execute(stmt, failed)


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
