"""Analytics rollups (``analytics_*``, revision 0015): their incremental refresh and the dashboard's reads.

The refresh (:func:`refresh_rollups`) folds into the rollups what changed since its watermark, in short write
transactions under a lock held across them (PostgreSQL: a session advisory lock; SQLite: an ``flock`` beside the
database), so two API workers never fold the same change twice and the indexer never waits long on SQLite:

- sales in blocks above the watermark's block, up to the index's checkpoint, add to ``analytics_sales``;
- a return request is *touched* when it was created or decided since the watermark's request time (less
  :data:`SLACK_S`, for transactions that commit late), when its return has a transition or a payout in those
  blocks, or when its carrier shipment is that recent. A touched request's fact row is computed again from the
  index; the rollups get the new row's share minus the old row's share (both staged in a temporary table, summed
  into each rollup by one statement), so folding a request twice is harmless;
- a reorg under the watermark's block (the checkpoint went back, or the block's hash changed) rebuilds the
  rollups from nothing: reorgs stay above finality and are rare, and a rebuild is a background job.

Invariants: after a refresh, every rollup equals the sum over the fact rows (returns, speed, terms) or over the
sales up to the watermark (sales) of their shares; each row counted once per grain (``d``, ``w``, ``m``; the
sales' days are columns of their week's row, revision 0036).

Reads sum the rollups over a range of days split into whole months, weeks and days
(:func:`ledger_service.core.days.split`): a few rows per key whatever the length of the history. On PostgreSQL
the analytics tables are unlogged (revision 0036): a crash of the server empties them, and the next refresh,
finding no watermark, rebuilds them.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import threading
import weakref
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql.elements import ColumnElement

from ledger_service.core.codes import ReturnState
from ledger_service.core.days import GRAINS, Grain, bucket_of, day_of, month_of, next_month, split, week_of
from ledger_service.store._db import (
    insert_rows,
    key_in,
    read_transaction,
    sqlite_path,
    write_transaction,
    write_tuples,
)
from ledger_service.store.handle import Store
from ledger_service.store.tables import (
    analytics_facts,
    analytics_returns,
    analytics_sales,
    analytics_speed,
    analytics_terms,
    analytics_watermark,
    blocks,
    carrier_shipments,
    checkpoint,
    escrow_payouts,
    item_categories,
    items,
    return_requests,
    return_transitions,
    returns,
    sales,
)

__all__ = [
    "METRICS",
    "READ_THREADS",
    "RETURN_VALUES",
    "SLACK_S",
    "Counted",
    "Fact",
    "RefreshStats",
    "Scope",
    "at_once",
    "durations",
    "gtin_known",
    "merchant_known",
    "refresh_rollups",
    "refreshed_at",
    "returned",
    "sold",
    "term_counts",
]

SLACK_S = 300
"""Seconds before the watermark's request time that every refresh looks at again (late commits, clock skew)."""
SPLIT = 10**12
"""Rollup amounts are ``hi * SPLIT + lo``."""
REQUESTS_CHUNK: Mapping[str, int] = {"sqlite": 1000, "postgresql": 10_000}
"""Touched requests folded in one write transaction: on SQLite short, so that the indexer waits little for the
writer lock; PostgreSQL has no such lock, and each chunk costs its statements again and updates the week's and
month's rollup rows the chunk before updated."""
_CHUNK = 1000
SALES_CHUNK: Mapping[str, int] = {"sqlite": 20_000, "postgresql": 200_000}
"""Sales folded in one write transaction (about; whole blocks): on SQLite short enough that the indexer waits
little for the writer lock; on PostgreSQL each chunk adds to the week's and month's rows the chunk before added
(a backfill's 20,000 sales are about a week of history)."""
_ALL = ReturnState
METRICS = ("request_refund", "scan_refund", "delivery_inspection")


@dataclass(frozen=True)
class Fact:
    """What the rollups count of one return request."""

    request_id: str
    merchant: str
    gtin: int
    category: str
    reason_code: str
    carrier: str
    outcome: str
    day: int
    return_id: str | None
    requested_at: int
    scanned_at: int | None
    received_at: int | None
    inspected_at: int | None
    refunded_at: int | None
    refund: int
    fee_kept: int
    outstanding: int
    dispute: str
    terms: tuple[str, ...]
    token: str = ""
    exchange: bool = False
    replacement_gtin: int | None = None

    def durations(self) -> dict[str, int]:
        """Seconds of each speed metric the request has reached."""
        spans = {
            "request_refund": (self.requested_at, self.refunded_at),
            "scan_refund": (self.scanned_at, self.refunded_at),
            "delivery_inspection": (self.received_at, self.inspected_at),
        }
        return {m: max(0, b - a) for m, (a, b) in spans.items() if a is not None and b is not None}


@dataclass
class RefreshStats:
    rebuilt: bool = False
    sales: int = 0
    requests: int = 0
    block_number: int = -1


@dataclass(frozen=True)
class Scope:
    """What a read covers: one merchant (or all), optionally one GTIN, the days ``first..last`` inclusive."""

    first: int
    last: int
    merchant: str | None = None
    gtin: int | None = None


# ---- the refresh --------------------------------------------------------------------------------------------


@contextmanager
def _refresh_lock(store: Store) -> Iterator[None]:
    """One refresh at a time across the API's workers, held over the refresh's several transactions
    (PostgreSQL: a session-level advisory lock on a connection of its own; SQLite: an ``flock`` beside the
    database file; in memory: this process's lock). A second refresh waits, then finds little new."""
    if store.engine.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(b"ledger analytics refresh").digest()[:8], "big", signed=True)
        with store.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                with suppress(SQLAlchemyError):  # the connection is gone: the server released the lock
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        return
    path = sqlite_path(store.engine.url.render_as_string(hide_password=False))
    if path is None:
        with _MEMORY_LOCK:
            yield
        return
    fd = os.open(f"{os.path.abspath(path)}.analytics.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


_MEMORY_LOCK = threading.Lock()


def refresh_rollups(store: Store, *, terms: Callable[[str], Sequence[str]], now: int) -> RefreshStats:
    """Folds what changed since the watermark into the rollups (see the module docstring); ``terms`` gives a
    comment's theme terms. Several short write transactions, so that on SQLite the indexer never waits long for
    the writer lock: the touched requests a chunk at a time (folding a request again is harmless), then the sales
    a chunk of blocks at a time, each chunk moving the watermark's block on."""
    stats = RefreshStats()
    with _refresh_lock(store):
        with write_transaction(store.engine) as conn:
            mark = conn.execute(select(analytics_watermark).where(analytics_watermark.c.id == 1)).first()
            head = conn.execute(select(checkpoint.c.block_number, checkpoint.c.block_hash)).first()
            head_block, head_hash = (-1, "") if head is None else (int(head.block_number), str(head.block_hash))
            if mark is not None and _reorged(conn, mark.block_number, mark.block_hash, head_block):
                mark, stats.rebuilt = None, True
            if mark is None:  # a first fold, or a rebuild: from nothing, or the sales would be counted twice
                for table in (analytics_sales, analytics_returns, analytics_speed, analytics_terms, analytics_facts):
                    conn.execute(table.delete())
                conn.execute(analytics_watermark.delete())
                conn.execute(
                    analytics_watermark.insert().values(
                        id=1,
                        block_number=-1,
                        block_hash="",
                        request_time=0,
                        shipment_time=0,
                        refreshed_at=now,
                        # a random start: no answer kept under an earlier row's generation can match this one's
                        generation=secrets.randbits(62),
                    )
                )
            since_block = -1 if mark is None else int(mark.block_number)
            since_time = int(mark.request_time) - SLACK_S if mark is not None else 0
            since_ship = int(mark.shipment_time) - SLACK_S if mark is not None else 0
            # read before the requests: a request made while they are folded is found again next time
            # one subquery each: SQLite reads a lone max() from its index, two in one SELECT by scanning the table
            request_time = conn.execute(
                select(
                    select(func.max(return_requests.c.created_at)).scalar_subquery(),
                    select(func.max(return_requests.c.decided_at)).scalar_subquery(),
                )
            ).one()
            shipment_time = conn.execute(select(func.max(carrier_shipments.c.created_at))).scalar()
            ids = _touched(conn, since_block, head_block, since_time, since_ship)
        size = REQUESTS_CHUNK.get(store.engine.dialect.name, _CHUNK)
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            with _refresh_transaction(store) as conn:
                new = _facts(conn, chunk, head_block, terms)
                old = _stored_facts(conn, chunk)
                _apply(conn, old, new)
                conn.execute(
                    analytics_watermark.update()
                    .where(analytics_watermark.c.id == 1)
                    .values(generation=analytics_watermark.c.generation + 1)
                )
            stats.requests += len(chunk)
        # every touched request is folded: the request times move on with the first chunk of sales (one commit
        # fewer; the sales do not depend on them)
        times: dict[str, Any] = {
            "request_time": max(int(request_time[0] or 0), int(request_time[1] or 0)),
            "shipment_time": int(shipment_time or 0),
        }
        while True:
            with _refresh_transaction(store) as conn:
                top, count = _sales_chunk_end(conn, since_block, head_block)
                _fold_sales(conn, since_block, top)
                stats.sales += count
                top_hash = head_hash if top == head_block else _block_hash(conn, top)
                conn.execute(
                    analytics_watermark.update()
                    .where(analytics_watermark.c.id == 1)
                    .values(
                        **times,
                        block_number=top,
                        block_hash=top_hash,
                        refreshed_at=now,
                        generation=analytics_watermark.c.generation + 1,
                    )
                )
            since_block, times = top, {}
            if top >= head_block:
                break
        if mark is None:
            _cluster(store)
        stats.block_number = head_block
    return stats


_PG_SETTINGS = (
    # a background job: the server's parallel workers would take the cores the indexer and the API need (and
    # were slower here than one process for a chunk's few thousand rows)
    "SET LOCAL max_parallel_workers_per_gather = 0",
    # a chunk's rollup changes are grouped in memory rather than spilled to disk in batches
    "SET LOCAL work_mem = '64MB'",
    # a chunk's few thousand keys are looked up in their indexes rather than matched against a scan of every
    # return, payout, label and transition (the pages the lookups need are mostly cached)
    "SET LOCAL random_page_cost = 1.1",
    # the rollups are derived (unlogged tables since revision 0036: a crash empties them, the watermark with them,
    # and the next refresh rebuilds them): a commit need not wait for the log's flush to disk
    "SET LOCAL synchronous_commit = off",
)


@contextmanager
def _refresh_transaction(store: Store) -> Iterator[Connection]:
    """One write transaction of the refresh, with the settings above on PostgreSQL."""
    with write_transaction(store.engine) as conn:
        if conn.dialect.name == "postgresql":
            for setting in _PG_SETTINGS:
                conn.exec_driver_sql(setting)
        yield conn


def _cluster(store: Store) -> None:
    """PostgreSQL, after the rollups are made from nothing: their rows rewritten in the order of its key, so that a
    read of a range of buckets reads a few pages of them rather than one page a row (the fold's upserts leave a
    bucket's rows scattered over the table; SQLite's tables without rowid are kept in key order already). The
    rewrite keeps the pages' free room (``fillfactor``) for the next refreshes' updates; it locks each table
    (reads wait) for its few seconds, once per rebuild."""
    if store.engine.dialect.name != "postgresql":
        return
    for table in (analytics_sales, analytics_returns, analytics_speed, analytics_terms):
        with write_transaction(store.engine) as conn:  # one table locked at a time
            conn.execute(text(f"CLUSTER {table.name} USING pk_{table.name}"))
            conn.execute(text(f"ANALYZE {table.name}"))


def _reorged(conn: Connection, block_number: int, block_hash: str, head_block: int) -> bool:
    if block_number > head_block:
        return True
    if not block_hash:  # a block folded part-way (its hash was pruned): only its number is checked
        return False
    stored = conn.execute(select(blocks.c.hash).where(blocks.c.number == block_number)).scalar()
    return stored is not None and stored != block_hash


def _block_hash(conn: Connection, number: int) -> str:
    return str(conn.execute(select(blocks.c.hash).where(blocks.c.number == number)).scalar() or "")


def _sales_chunk_end(conn: Connection, since_block: int, head_block: int) -> tuple[int, int]:
    """The block that ends the next chunk of sales to fold, and the chunk's sales: about :data:`SALES_CHUNK`
    sales after ``since_block`` (a whole block more), or up to ``head_block``."""
    s = sales.c
    size = SALES_CHUNK.get(conn.dialect.name, _CHUNK)

    def count(top: int, *, most: int | None = None) -> int:
        rows = select(literal(1)).where(s.block_number > since_block, s.block_number <= top).limit(most)
        return int(conn.execute(select(func.count()).select_from(rows.subquery())).scalar_one())

    # an incremental refresh's sales are mostly fewer than a chunk: counted once (reading at most a chunk's
    # index entries), and the chunk is all of them
    if (fewer := count(head_block, most=size + 1)) <= size:
        return head_block, fewer
    top = conn.execute(
        select(s.block_number)
        .where(s.block_number > since_block, s.block_number <= head_block)
        .order_by(s.block_number)
        .offset(size)
        .limit(1)
    ).scalar_one()
    return int(top), count(int(top))


_MONTH_OF_DAY: Mapping[str, str] = {
    # the first day of the month of unix day ``dd``
    "sqlite": "CAST(julianday(date(dd * 86400, 'unixepoch', 'start of month')) - 2440587.5 AS INTEGER)",
    "postgresql": "CAST(EXTRACT(EPOCH FROM date_trunc('month', to_timestamp(dd * 86400) AT TIME ZONE 'UTC'))"
    " / 86400 AS INTEGER)",
}


_WEEKDAY_SUMS = ", ".join(f"sum(CASE WHEN (dd + 3) % 7 = {n} THEN n ELSE 0 END)" for n in range(7))
_DAY_COLUMNS = ", ".join(f"sold_{n}" for n in range(7))
_DAYS_ADDED = ", ".join(f"sold_{n} = analytics_sales.sold_{n} + excluded.sold_{n}" for n in range(7))


def _fold_sales(conn: Connection, since_block: int, head_block: int) -> None:
    """Adds the sales of blocks ``since_block + 1 .. head_block`` to ``analytics_sales``, summed by the database
    itself in one statement: a week row with its days' counts (revision 0036: no day rows) and a month row per
    merchant, GTIN and category (no row of a sale crosses to Python, the bulk of a backfill's fold). A sale row
    has its item's GTIN (written at ingest, revision 0034): the items are not read; a sale without one (its item
    unknown) is left out, as a join with the items left it out before."""
    conn.execute(
        text(
            # the only interpolations: constant expressions; 1970-01-01 was a Thursday, (day + 3) % 7 is 0 on Mondays
            "WITH x AS MATERIALIZED (SELECT s.sold_at / 86400 AS dd, s.merchant AS merchant, s.gtin AS gtin, "  # noqa: S608
            "COALESCE(c.category, '') AS category, count(*) AS n "
            "FROM (SELECT sold_at, merchant, item_id, gtin FROM sales "
            "WHERE block_number > :since AND block_number <= :head AND gtin IS NOT NULL) AS s "
            "LEFT JOIN item_categories c ON c.item_id = s.item_id "
            "GROUP BY 1, 2, 3, 4) "
            f"INSERT INTO analytics_sales (grain, bucket, merchant, gtin, category, sold, {_DAY_COLUMNS}) "
            "SELECT * FROM (SELECT 'w' AS grain, dd - (dd + 3) % 7 AS bucket, merchant, gtin, category, "
            f"sum(n) AS sold, {_WEEKDAY_SUMS} FROM x GROUP BY 2, merchant, gtin, category UNION ALL "
            f"SELECT 'm', {_MONTH_OF_DAY[conn.dialect.name]}, merchant, gtin, category, sum(n), 0, 0, 0, 0, 0, 0, 0 "
            "FROM x GROUP BY 2, merchant, gtin, category) AS y "
            # SQLite: an upsert's SELECT needs a WHERE (its parser would read ON CONFLICT as a join's ON)
            "WHERE true ON CONFLICT (grain, bucket, merchant, gtin, category) "
            f"DO UPDATE SET sold = analytics_sales.sold + excluded.sold, {_DAYS_ADDED}"
        ),
        {"since": since_block, "head": head_block},
    )


def _touched(conn: Connection, since_block: int, head_block: int, since_time: int, since_ship: int) -> list[str]:
    rr = return_requests.c
    if since_block < 0:
        return list(conn.execute(select(rr.id).order_by(rr.id)).scalars())
    # found by their time: only those not folded yet or whose folded outcome or return changed (the only fields of
    # a request that change); what the chain or a label changed is found below. The time margin would otherwise
    # compute every request of its last minutes again at each refresh
    af = analytics_facts.c
    changed = (
        select(rr.id)
        .select_from(return_requests.outerjoin(analytics_facts, af.request_id == rr.id))
        .where(or_(af.request_id.is_(None), af.outcome != rr.outcome, af.return_id.is_distinct_from(rr.return_id)))
    )
    found: set[str] = set(conn.execute(changed.where(rr.created_at >= since_time)).scalars())
    found.update(conn.execute(changed.where(rr.decided_at >= since_time)).scalars())
    returned: set[str] = set()
    for table in (return_transitions, escrow_payouts):
        returned.update(
            conn.execute(
                select(table.c.return_id).where(table.c.block_number > since_block, table.c.block_number <= head_block)
            ).scalars()
        )
    # labels found by their time likewise: only where the folded carrier differs
    sc = carrier_shipments.c
    found.update(
        conn.execute(
            select(rr.id)
            .select_from(
                carrier_shipments.join(return_requests, rr.return_id == sc.return_id).outerjoin(
                    analytics_facts, af.request_id == rr.id
                )
            )
            .where(sc.created_at >= since_ship, or_(af.request_id.is_(None), af.carrier != sc.carrier))
        ).scalars()
    )
    keys = sorted(returned)
    for start in range(0, len(keys), _CHUNK):
        part = keys[start : start + _CHUNK]
        found.update(conn.execute(select(rr.id).where(key_in(conn, rr.return_id, part))).scalars())
    return sorted(found)


def _facts(
    conn: Connection, ids: Sequence[str], head_block: int, terms: Callable[[str], Sequence[str]]
) -> dict[str, Fact]:
    """The fact rows of ``ids`` computed from the index as of ``head_block``: two statements a chunk (the
    request with its one-to-one rows joined, then the return's transitions), not one per table."""
    rr = return_requests.c
    replacement = items.alias("replacement")

    def latest_sale(column: Any) -> Any:
        """``column`` of the item's latest sale up to the head."""
        where = (sales.c.item_id == rr.item_id, sales.c.block_number <= head_block)
        return select(column).where(*where).order_by(sales.c.sale_seq.desc()).limit(1).scalar_subquery()

    # the token of the item's latest sale (a request is priced in it until its deposit)
    sale_token = latest_sale(sales.c.token)
    # the item's GTIN from the same sale (its row has it since revision 0034: the probe above has its pages in
    # hand); the items row only for a request without a sale
    gtin = func.coalesce(
        latest_sale(sales.c.gtin), select(items.c.gtin).where(items.c.item_id == rr.item_id).scalar_subquery()
    )
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        # a chunk's keys looked up in each table's index: a hash or merge join would read all of its payouts
        # and labels, a cost that grows with the history rather than with the chunk
        conn.exec_driver_sql("SET LOCAL enable_hashjoin = off")
        conn.exec_driver_sql("SET LOCAL enable_mergejoin = off")
    requests = conn.execute(
        select(
            rr.id,
            rr.merchant,
            rr.reason_code,
            rr.comment,
            rr.outcome,
            rr.return_id,
            rr.created_at,
            rr.replacement_item_id,
            gtin.label("gtin"),
            func.coalesce(item_categories.c.category, "").label("category"),
            replacement.c.gtin.label("replacement_gtin"),
            sale_token.label("sale_token"),
            returns.c.amount.label("deposit"),
            returns.c.token.label("deposit_token"),
            escrow_payouts.c.consumer_amount,
            escrow_payouts.c.merchant_amount,
            escrow_payouts.c.paid_at,
            carrier_shipments.c.carrier,
        )
        .select_from(
            return_requests.outerjoin(item_categories, item_categories.c.item_id == rr.item_id)
            .outerjoin(replacement, replacement.c.item_id == rr.replacement_item_id)
            .outerjoin(returns, and_(returns.c.return_id == rr.return_id, returns.c.block_number <= head_block))
            .outerjoin(
                escrow_payouts,
                and_(escrow_payouts.c.return_id == rr.return_id, escrow_payouts.c.block_number <= head_block),
            )
            .outerjoin(carrier_shipments, carrier_shipments.c.return_id == rr.return_id)
        )
        .where(key_in(conn, rr.id, list(ids)))
    ).all()
    if postgres:
        conn.exec_driver_sql("SET LOCAL enable_hashjoin = on")
        conn.exec_driver_sql("SET LOCAL enable_mergejoin = on")
    return_ids = [row[5] for row in requests if row[5] is not None]
    moves: dict[str, list[tuple[int, int]]] = defaultdict(list)
    if return_ids:
        for return_id, state, at in conn.execute(
            select(return_transitions.c.return_id, return_transitions.c.state, return_transitions.c.at)
            .where(
                key_in(conn, return_transitions.c.return_id, return_ids),
                return_transitions.c.block_number <= head_block,
            )
            .order_by(return_transitions.c.block_number, return_transitions.c.log_index)
        ):
            moves[return_id].append((int(state), int(at)))
    facts: dict[str, Fact] = {}
    # the rows unpacked in the SELECT's order: a Row's attributes cost about 0.2 us each, thousands of rows a chunk
    for (
        request_id, merchant, reason_code, comment, outcome, rid, created_at, replacement_item_id, gtin_, category,
        replacement_gtin, sale_token, deposit, deposit_token, consumer_amount, merchant_amount, paid_at, carrier,
    ) in requests:  # fmt: skip
        steps = moves.get(rid, []) if rid else []
        paid = paid_at is not None
        refund = int(consumer_amount) if paid else 0
        facts[request_id] = Fact(
            request_id=request_id,
            merchant=merchant,
            gtin=int(gtin_ or 0),
            category=category,
            reason_code=reason_code,
            carrier=carrier or "",
            outcome=outcome,
            day=day_of(int(created_at)),
            return_id=rid,
            requested_at=int(created_at),
            scanned_at=_first(steps, {_ALL.IN_TRANSIT}),
            received_at=_first(steps, {_ALL.RECEIVED}),
            inspected_at=_first(steps, {_ALL.ACCEPTED, _ALL.REJECTED}),
            refunded_at=int(paid_at) if refund > 0 else None,
            refund=refund,
            fee_kept=int(merchant_amount) if refund > 0 else 0,
            outstanding=int(deposit) if deposit is not None and not paid else 0,
            dispute=_dispute(steps, paid=paid, refunded=refund > 0),
            terms=tuple(terms(comment or "")),
            # the deposit's token; before one, the sale's (a request is priced in it all along)
            token=deposit_token if deposit_token is not None else (sale_token or ""),
            exchange=replacement_item_id is not None,
            replacement_gtin=None if replacement_gtin is None else int(replacement_gtin),
        )
    return facts


def _first(steps: Sequence[tuple[int, int]], states: set[ReturnState]) -> int | None:
    return next((at for state, at in steps if state in states), None)


def _dispute(steps: Sequence[tuple[int, int]], *, paid: bool, refunded: bool) -> str:
    if not any(state == _ALL.DISPUTED for state, _ in steps):
        return ""
    if not paid:
        return "open"
    return "consumer" if refunded else "merchant"


def _stored_facts(conn: Connection, ids: Sequence[str]) -> dict[str, Fact]:
    rows = conn.execute(select(analytics_facts).where(key_in(conn, analytics_facts.c.request_id, list(ids))))
    return {
        r.request_id: Fact(
            **{k: v for k, v in r._mapping.items() if k != "terms"},
            terms=tuple(r.terms),
        )
        for r in rows
    }


def _halves(amount: int) -> tuple[int, int]:
    return divmod(amount, SPLIT)


_VIEWS: Mapping[str, tuple[str, ...]] = {
    # each request once in each view, with these dimensions (the others blank): a read sums the narrowest. Since
    # revision 0036 ``g`` is the only view with day rows, which keep the carrier too (_DAY_DIMS): a request is
    # about a row of each view a day (a GTIN has about one request a week), so the others' days are read from
    # ``g``'s; and the two views of GTINs (by outcome, by reason) are one (each was a row per request)
    "g": ("gtin", "category", "reason_code", "outcome"),
    "c": ("carrier", "reason_code"),
    "r": ("reason_code",),
    "o": ("outcome",),
}
_DIMS = ("gtin", "category", "reason_code", "carrier", "outcome")
_DAYS_VIEW = "g"
"""The view of ``analytics_returns`` with day rows, every dimension kept: a read of another view reads its days."""
_DAY_DIMS = ("carrier",)
"""What the day rows keep besides their view's dimensions (for the carriers' view's days): ``g``'s months by
carrier were 2.6 times as many rows, for reads that never ask a GTIN's carrier."""
_GRAINS_OF: Mapping[str, tuple[Grain, ...]] = {v: ("d", "m") if v == _DAYS_VIEW else ("w", "m") for v in _VIEWS}
"""The grains of each view's rows. The GTINs' view has no weeks: a GTIN has about a request a week, so its week
rows were as many as its day rows and a read of a range's weeks reads as many rows of its days."""
_BLANK = {"gtin": "0", "category": "''", "reason_code": "''", "carrier": "''", "outcome": "''"}
_COUNTS = (
    "requests",
    "refunds",
    "refund_hi",
    "refund_lo",
    "fee_kept_hi",
    "fee_kept_lo",
    "outstanding_count",
    "outstanding_hi",
    "outstanding_lo",
    "disputes",
    "disputes_open",
    "disputes_consumer",
    "disputes_merchant",
    "exchanges",
    "exchanges_other_gtin",
)

_scratch = MetaData()


def _buckets() -> list[Column[Any]]:
    return [Column("merchant", String(42)), Column("d", Integer), Column("w", Integer), Column("m", Integer)]


_delta = Table(
    "analytics_delta",
    _scratch,
    *_buckets(),
    Column("gtin", BigInteger),
    Column("category", String(100)),
    Column("reason_code", String(64)),
    Column("carrier", String(32)),
    Column("outcome", String(16)),
    Column("token", String(42)),
    # counts as 4-byte integers: PostgreSQL sums those in 8-byte integers, 8-byte ones in NUMERIC (slower); the
    # amounts' halves need 8 bytes
    *(Column(name, BigInteger if name.endswith(("_hi", "_lo")) else Integer) for name in _COUNTS),
    *(Column(f"h_{metric}", Integer) for metric in METRICS),
    Column("n", Integer),
    prefixes=["TEMPORARY"],
)
"""One row per fact added (``n`` = 1) or taken out (-1), its values times ``n``: the rollups' changes are summed
from it by the database, one statement a rollup."""
_delta_terms = Table(
    "analytics_delta_terms",
    _scratch,
    *_buckets(),
    Column("reason_code", String(64)),
    Column("term", String(48)),
    Column("n", Integer),
    prefixes=["TEMPORARY"],
)


def _upsert(table: str, keys: Sequence[str], values: Sequence[str], parts: Sequence[str]) -> str:
    """INSERT of the sums of ``values`` over the rows of ``parts`` (SELECTs with ``keys`` and ``values``),
    grouped by ``keys``, each added to the stored row; a group that sums to nothing writes nothing."""
    quoted = ", ".join(f'"{k}"' for k in keys)
    sums = ", ".join(f'sum("{v}")' for v in values)
    nonzero = " OR ".join(f'sum("{v}") <> 0' for v in values)
    added = ", ".join(f'"{v}" = {table}."{v}" + excluded."{v}"' for v in values)
    return (
        f"INSERT INTO {table} ({quoted}, {', '.join(values)}) "  # noqa: S608 - constant names only
        f"SELECT {quoted}, {sums} FROM ({' UNION ALL '.join(parts)}) AS x "
        f"GROUP BY {quoted} HAVING {nonzero} ON CONFLICT ({quoted}) DO UPDATE SET {added}"
    )


def _returns_sql() -> str:
    parts = []
    for view, kept in _VIEWS.items():
        for grain in _GRAINS_OF[view]:
            held = (*kept, *_DAY_DIMS) if grain == "d" else kept
            # every view keeps the token: amounts of two tokens are never summed together
            dims = ", ".join(f'{d if d in held else _BLANK[d]} AS "{d}"' for d in _DIMS) + ', "token"'
            parts.append(
                f"""SELECT '{view}' AS "view", '{grain}' AS grain, {grain} AS bucket, merchant, {dims}, """  # noqa: S608
                f"{', '.join(_COUNTS)} FROM analytics_delta"
            )
    return _upsert("analytics_returns", ("view", "grain", "bucket", "merchant", *_DIMS, "token"), _COUNTS, parts)


def _speed_sql() -> str:
    parts = [
        f"SELECT '{grain}' AS grain, {grain} AS bucket, merchant, '{metric}' AS metric, h_{metric} AS hours, n "  # noqa: S608
        f"FROM analytics_delta WHERE h_{metric} IS NOT NULL"
        for grain in GRAINS
        for metric in METRICS
    ]
    return _upsert("analytics_speed", ("grain", "bucket", "merchant", "metric", "hours"), ("n",), parts)


def _terms_sql() -> str:
    parts = [
        f"SELECT '{grain}' AS grain, {grain} AS bucket, merchant, reason_code, term, n FROM analytics_delta_terms"  # noqa: S608
        for grain in GRAINS
    ]
    return _upsert("analytics_terms", ("grain", "bucket", "merchant", "reason_code", "term"), ("n",), parts)


_RETURNS_SQL, _SPEED_SQL, _TERMS_SQL = _returns_sql(), _speed_sql(), _terms_sql()


_DELTA_COLUMNS = tuple(column.name for column in _delta.c)
_DELTA_TERMS_COLUMNS = tuple(column.name for column in _delta_terms.c)


def _delta_rows(fact: Fact, sign: int) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """The fact's row of ``analytics_delta`` (in :data:`_DELTA_COLUMNS` order) and its rows of
    ``analytics_delta_terms`` (:data:`_DELTA_TERMS_COLUMNS`), times ``sign``: tuples, as a refresh writes
    thousands of them."""
    refund, fee, outstanding = _halves(fact.refund), _halves(fact.fee_kept), _halves(fact.outstanding)
    at = (fact.merchant, fact.day, week_of(fact.day), month_of(fact.day))
    dispute = fact.dispute
    # an exchange is a return on-chain, but not one for the rates and reasons: it is counted apart
    counts = (
        int(not fact.exchange),
        int(fact.refunded_at is not None),
        *refund,
        *fee,
        int(fact.outstanding > 0),
        *outstanding,
        int(dispute != ""),
        int(dispute == "open"),
        int(dispute == "consumer"),
        int(dispute == "merchant"),
        int(fact.exchange),
        int(fact.exchange and fact.replacement_gtin is not None and fact.replacement_gtin != fact.gtin),
    )
    spans = fact.durations()
    row = (
        *at,
        fact.gtin,
        fact.category,
        fact.reason_code,
        fact.carrier,
        fact.outcome,
        fact.token,
        *(value * sign for value in counts),
        *(spans[m] // 3600 if m in spans else None for m in METRICS),
        sign,
    )
    return row, [(*at, fact.reason_code, t, sign) for t in sorted(set(fact.terms))]


def _apply(conn: Connection, old: Mapping[str, Fact], new: Mapping[str, Fact]) -> None:
    # a request found again only by the time margin, unchanged, adds nothing (most of them, refresh after refresh)
    same = {rid for rid, fact in new.items() if old.get(rid) == fact}
    if same:
        old = {k: v for k, v in old.items() if k not in same}
        new = {k: v for k, v in new.items() if k not in same}
    rows: list[tuple[Any, ...]] = []
    term_rows: list[tuple[Any, ...]] = []
    for facts, sign in ((old, -1), (new, 1)):
        for fact in facts.values():
            row, terms = _delta_rows(fact, sign)
            rows.append(row)
            term_rows.extend(terms)
    if rows:
        for scratch in (_delta, _delta_terms):
            conn.execute(CreateTable(scratch, if_not_exists=True))
            conn.execute(scratch.delete())
        write_tuples(conn, "insert", _delta, _DELTA_COLUMNS, rows)  # PostgreSQL: one COPY
        conn.execute(text(_RETURNS_SQL))
        conn.execute(text(_SPEED_SQL))
        if term_rows:
            write_tuples(conn, "insert", _delta_terms, _DELTA_TERMS_COLUMNS, term_rows)
            conn.execute(text(_TERMS_SQL))
    if old:
        conn.execute(analytics_facts.delete().where(key_in(conn, analytics_facts.c.request_id, list(old))))
    if new:
        insert_rows(  # PostgreSQL: one COPY
            conn,
            analytics_facts,
            [{**{k: getattr(f, k) for k in f.__dataclass_fields__}, "terms": list(f.terms)} for f in new.values()],
        )


# ---- reads ------------------------------------------------------------------------------------------------


def _segment(table: Table, scope: Scope, grain: Grain, lo: int, hi: int) -> ColumnElement[bool]:
    """One range of whole buckets: an equality and a range on the key's prefix (or the merchant's or GTIN's index,
    of weeks and months: their condition is stated, as SQLite needs to use a partial index)."""
    where: list[ColumnElement[bool]] = [table.c.grain == grain, table.c.bucket.between(lo, hi)]
    if grain != "d":
        where.append(table.c.grain.op("<>")(literal_column("'d'")))
    if scope.merchant is not None:
        where.append(table.c.merchant == scope.merchant.lower())
    if scope.gtin is not None and "gtin" in table.c:
        where.append(table.c.gtin == scope.gtin)
    return and_(*where)


@dataclass(frozen=True)
class Counted:
    """Summed rollup values for one combination of dimensions (``dims``, in the order asked)."""

    dims: tuple[Any, ...]
    values: Mapping[str, int] = field(default_factory=dict)


_AMOUNTS = ("refund", "fee_kept", "outstanding")


def _sum(
    store: Store,
    table: Table,
    scope: Scope,
    *,
    dims: Sequence[str],
    values: Sequence[str],
    grains: tuple[Grain, ...] = GRAINS,
    series: Grain | None = None,
    view: str | None = None,
) -> list[Counted]:
    """Sums ``values`` of ``table`` in ``scope`` grouped by ``dims`` (and by the bucket of ``series``), in one
    ``view`` of ``analytics_returns``; answered from the store's :class:`_Answers` while the watermark has not
    moved."""
    if scope.first > scope.last:  # no day
        return []
    if series is not None:
        grains = (series, "d")
    if view is not None:  # a grain the view does not keep is read from its finer rows
        grains = tuple(g for g in grains if g == "d" or g in _GRAINS_OF[view])
    key = (table.name, scope, tuple(dims), tuple(values), grains, series, view)
    answers = _answers_of(store)
    with read_transaction(store.engine) as conn:
        # the watermark and the rollups from one snapshot: an answer is kept under the watermark it was read with
        mark = conn.execute(select(*_MARK).where(analytics_watermark.c.id == 1)).first()
        mark_key = None if mark is None else tuple(mark)
        found = answers.get(mark_key, key)
        if found is not None:
            return found
        if conn.dialect.name == "postgresql":
            # a few thousand index rows: starting parallel workers costs more than they save, and they would take
            # the cores from the reads at_once runs beside this one
            conn.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
        rows = conn.execute(_sum_statement(table, scope, dims, values, grains, series, view)).all()
    # the row's columns by position (the dims, the series' grain and bucket, then each value's one or two sums):
    # a sector's read answers every GTIN and reason of the period, so this loop runs over thousands of rows
    n = len(dims)
    first = n + (2 if series is not None else 0)
    places: list[tuple[str, int, int | None]] = []
    for v in values:
        places.append((v, first, first + 1 if v in _AMOUNTS else None))
        first += 1 if v not in _AMOUNTS else 2
    merged: dict[tuple[Any, ...], dict[str, int]] = {}
    for row in rows:
        dims_ = tuple(row[:n])
        if series is not None:
            dims_ += (bucket_of(int(row[n + 1]), series),)
        into = merged.get(dims_)
        if into is None:
            into = merged[dims_] = dict.fromkeys(values, 0)
        for v, hi, lo in places:
            into[v] += int(row[hi] or 0) if lo is None else int(row[hi] or 0) * SPLIT + int(row[lo] or 0)
    # a fold that subtracted a request leaves a row of zeros behind: it counts nothing, so it is not answered
    answer = [Counted(k, v) for k, v in merged.items() if any(v.values())]
    answers.put(mark_key, key, answer)
    return list(answer)


def _sum_statement(
    table: Table,
    scope: Scope,
    dims: Sequence[str],
    values: Sequence[str],
    grains: tuple[Grain, ...],
    series: Grain | None,
    view: str | None,
) -> Any:
    columns: list[Any] = [table.c[d] for d in dims]
    if series is not None:
        columns += [table.c.grain, table.c.bucket]
    names = _columns(values)
    # a range of whole buckets is an index range each; the database sums them all in one statement (an OR of
    # them would scan on SQLite), so only the answer's rows cross to Python
    parts = []
    for grain, lo, hi in split(scope.first, scope.last, grains):
        if grain == "d" and table is analytics_sales:  # no day rows: the days' columns of their weeks
            parts.extend(_days_of_weeks(scope, dims, series, lo, hi))
            continue
        part = select(*columns, *(table.c[v] for v in names)).where(_segment(table, scope, grain, lo, hi))
        if view is not None:
            part = part.where(table.c.view == (_DAYS_VIEW if grain == "d" else view))
        parts.append(part)
    both = union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
    keys = [both.c[c.name] for c in columns]
    stmt = select(*keys, *(func.sum(both.c[v]).label(v) for v in names))
    if keys:
        stmt = stmt.group_by(*keys)
    return stmt


def _days_of_weeks(scope: Scope, dims: Sequence[str], series: Grain | None, lo: int, hi: int) -> list[Any]:
    """The sales of days ``lo..hi`` as parts of :func:`_sum_statement`: one per week and month the days fall in,
    each the sum of its days' columns of that week's rows (``analytics_sales`` keeps no day rows, revision 0036).
    A series' part says its first day as its bucket (a day row's bucket): the days of a part are in one week and
    one month, so that day is in the series bucket of each of them."""
    t = analytics_sales.c
    parts = []
    day = lo
    while day <= hi:
        week = week_of(day)
        last = min(hi, week + 6, next_month(month_of(day)) - 1)
        if series == "d":
            last = day
        sold = sum((t[f"sold_{d - week}"] for d in range(day + 1, last + 1)), start=t[f"sold_{day - week}"])
        columns: list[Any] = [t[d] for d in dims]
        if series is not None:
            columns += [literal_column("'d'").label("grain"), literal(day).label("bucket")]
        parts.append(select(*columns, sold.label("sold")).where(_segment(analytics_sales, scope, "w", week, week)))
        day = last + 1
    return parts


_MARK = (analytics_watermark.c.generation,)
"""What identifies the rollups' content: every write transaction of a refresh moves the watermark's generation
on, and a rebuild starts it anew at random; a
wall-clock second would not tell two refreshes of one second apart."""

ANSWER_ROWS = 50_000
"""Answered rows each store keeps in memory, across its reads (least recently used dropped first): some 40 MB
at about 800 bytes a row. An auditor's year of every GTIN by reason is 1,561 rows at 200k items."""


_Kept = tuple[tuple[str, ...], tuple[tuple[Any, ...], ...]]
"""A kept answer: its values' names, then one flat tuple a row (its dimensions, then its values in that order)."""


class _Answers:
    """The rollup reads answered since the watermark last moved, by what they asked, in one process: a dashboard
    asks the same ranges again and again between refreshes (every ``LEDGER_ANALYTICS_REFRESH_S``). A new
    watermark drops them all. The answers are shared: callers never change them.

    An answer is kept as one flat tuple of strings and integers a row, not as :class:`Counted`: the garbage
    collector stops tracking such tuples after its first pass, so tens of thousands of kept rows add nothing to
    its full collections (it walks every dataclass instance and dict each time: tens of ms, paid by the request
    that triggers it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mark: tuple[Any, ...] | None = None
        self._rows = 0
        self._kept: OrderedDict[tuple[Any, ...], _Kept] = OrderedDict()

    def get(self, mark: tuple[Any, ...] | None, key: tuple[Any, ...]) -> list[Counted] | None:
        with self._lock:
            if mark is None or mark != self._mark:
                return None
            found = self._kept.get(key)
            if found is None:
                return None
            self._kept.move_to_end(key)
        names, rows = found
        n = len(names)
        return [Counted(row[: len(row) - n], dict(zip(names, row[len(row) - n :], strict=True))) for row in rows]

    def put(self, mark: tuple[Any, ...] | None, key: tuple[Any, ...], answer: list[Counted]) -> None:
        if mark is None or len(answer) > ANSWER_ROWS:  # never refreshed: the rollups are being made
            return
        with self._lock:
            if mark != self._mark:
                self._mark, self._rows = mark, 0
                self._kept.clear()
            if key in self._kept:
                return
            names = tuple(answer[0].values) if answer else ()
            self._kept[key] = (names, tuple((*c.dims, *(c.values[v] for v in names)) for c in answer))
            self._rows += len(answer)
            while self._rows > ANSWER_ROWS:
                _, (_, dropped) = self._kept.popitem(last=False)
                self._rows -= len(dropped)


_ANSWERS: weakref.WeakKeyDictionary[Store, _Answers] = weakref.WeakKeyDictionary()
_ANSWERS_LOCK = threading.Lock()


def _answers_of(store: Store) -> _Answers:
    with _ANSWERS_LOCK:
        answers = _ANSWERS.get(store)
        if answers is None:
            answers = _ANSWERS[store] = _Answers()
        return answers


def _columns(values: Iterable[str]) -> list[str]:
    return [c for v in values for c in ((f"{v}_hi", f"{v}_lo") if v in _AMOUNTS else (v,))]


RETURN_VALUES = (
    "requests",
    "refunds",
    "refund",
    "fee_kept",
    "outstanding_count",
    "outstanding",
    "disputes",
    "disputes_open",
    "disputes_consumer",
    "disputes_merchant",
    "exchanges",
    "exchanges_other_gtin",
)


def sold(store: Store, scope: Scope, *, dims: Sequence[str], series: Grain | None = None) -> list[Counted]:
    """Items sold in ``scope``, by ``dims`` (of merchant, gtin, category)."""
    return _sum(store, analytics_sales, scope, dims=dims, values=("sold",), series=series)


def view_of(scope: Scope, dims: Sequence[str]) -> str:
    """The narrowest view of ``analytics_returns`` with ``dims`` (a GTIN's scope needs the GTIN's view, which has
    every dimension but the carrier)."""
    wanted = set(dims) - {"merchant", "token"}
    if "carrier" in wanted:  # the GTINs' view keeps carriers in its days only
        if not wanted <= {"carrier", "reason_code"} or scope.gtin is not None:
            raise ValueError(f"no view of the returns has {sorted(wanted)} for one GTIN")
        return "c"
    if scope.gtin is not None or wanted & {"gtin", "category"}:
        return "g"
    if {"reason_code", "outcome"} <= wanted:
        return "g"
    return "r" if "reason_code" in wanted else "o"


def returned(
    store: Store,
    scope: Scope,
    *,
    dims: Sequence[str],
    values: Sequence[str] = RETURN_VALUES,
    series: Grain | None = None,
) -> list[Counted]:
    """Return requests in ``scope`` (by request day) and what became of them, by ``dims`` (of merchant, gtin,
    category, reason_code, outcome; or carrier and reason_code, for all the merchant's GTINs; and token with any
    of them). ``requests`` counts refund returns, ``exchanges`` exchange requests; amounts are only meaningful
    by token."""
    return _sum(store, analytics_returns, scope, dims=dims, values=values, series=series, view=view_of(scope, dims))


def durations(store: Store, scope: Scope, *, dims: Sequence[str] = ()) -> list[Counted]:
    """The speed histograms in ``scope``: by (metric, hours, *dims), the count ``n``."""
    return _sum(store, analytics_speed, scope, dims=("metric", "hours", *dims), values=("n",))


READ_THREADS = 4
"""Threads that run the extra reads of :func:`at_once`, for the whole process (a read the pool cannot take at
once waits for one: never slower than reading one after another)."""
_readers = ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="analytics-read")


def at_once(store: Store, *reads: Callable[[], list[Counted]]) -> list[list[Counted]]:
    """The answers of ``reads`` (each its own read transaction), in their order. On PostgreSQL they are read side
    by side (each on its own server process): the database's time of a question that needs several independent
    sums is then that of its longest. SQLite reads them one after another: its reads of one file run in the
    caller's process and measured no faster side by side."""
    if len(reads) < 2 or store.engine.dialect.name != "postgresql":
        return [read() for read in reads]
    pending: list[Future[list[Counted]]] = [_readers.submit(read) for read in reads[1:]]
    first = reads[0]()  # the calling thread reads too, rather than waiting idle
    return [first, *(f.result() for f in pending)]


def term_counts(store: Store, scope: Scope) -> list[Counted]:
    """How many comments in ``scope`` used each term, by (term, reason_code)."""
    return _sum(store, analytics_terms, scope, dims=("term", "reason_code"), values=("n",))


def merchant_known(store: Store, merchant: str) -> bool:
    """Whether the index knows ``merchant``: it sold, registered an item or received a request."""
    m = merchant.lower()
    with read_transaction(store.engine) as conn:
        for column in (sales.c.merchant, items.c.merchant, return_requests.c.merchant):
            if conn.execute(select(literal(1)).where(column == m).limit(1)).first() is not None:
                return True
    return False


def gtin_known(store: Store, gtin: int, *, merchant: str | None = None) -> bool:
    """Whether an item with ``gtin`` is registered (for ``merchant``, if given)."""
    where = [items.c.gtin == gtin]
    if merchant is not None:
        where.append(items.c.merchant == merchant.lower())
    with read_transaction(store.engine) as conn:
        return conn.execute(select(literal(1)).where(*where).limit(1)).first() is not None


def refreshed_at(store: Store) -> tuple[int, int] | None:
    """(block folded, wall-clock time) of the last refresh; None before the first."""
    with read_transaction(store.engine) as conn:
        row = conn.execute(
            select(analytics_watermark.c.block_number, analytics_watermark.c.refreshed_at).where(
                analytics_watermark.c.id == 1
            )
        ).first()
    return None if row is None else (int(row.block_number), int(row.refreshed_at))
