"""The index's read/write API for the indexer: one :class:`Store` per database URL.

Invariants kept by every write method (each runs in one transaction):
- every event up to the checkpoint's block is indexed and none above it;
- the state tables (items, returns, roles, sellers) equal the fold of the
  log tables (see :mod:`ledger_service.store._folds`), also after a rollback;
- every ItemEventRecorded is stored, verified or not: a failed check is in
  ``item_events.chain_ok``, ``items.chain_ok`` and ``chain_problems`` (once per
  break); unless the caller asked to refuse breaks (``refuse_breaks``: the
  indexer, which re-fetches the range instead of storing a history with holes),
  then nothing of the batch is written and :class:`ChainBreakError` names them;
- ``node_faults`` records what the indexer's completeness checks found; no
  rollback deletes its rows and :meth:`Store.dump` leaves them out (they describe
  the node that answered, not the chain).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, Table, delete, func, insert, inspect, select

from ledger_service.core.events import BlockHeader, DecodedEvent
from ledger_service.core.rows import EventRows, row_order
from ledger_service.store._db import (
    POSTGRES_POOL_SIZE,
    SQLITE_CACHE_KIB,
    SQLITE_INDEXER_CACHE_KIB,
    SQLITE_MMAP_BYTES,
    Checkpointer,
    create_store_engine,
    read_transaction,
    sqlite_path,
    upgrade_to_head,
    write_transaction,
)
from ledger_service.store._errors import StoreError, StoreFullError, StoreUnavailableError
from ledger_service.store._folds import (
    ItemCache,
    ItemState,
    rebuild_items,
    rebuild_returns,
    rebuild_roles,
    rebuild_sellers,
)
from ledger_service.store.checkpoint import (
    BlockRef,
    ChainPin,
    insert_pin,
    read_checkpoint,
    read_headers,
    read_pin,
    store_headers,
    write_checkpoint,
)
from ledger_service.store.ingest import (
    AnchorKey,
    BatchCounts,
    ChainBreak,
    apply_events,
    note_held_batch,
    note_pending_batch,
    reopen_batches,
    settle_batch,
)
from ledger_service.store.lock import WriterLock, next_epoch
from ledger_service.store.tables import (
    EXCHANGE_TABLES,
    batch_anchors,
    batched_scans,
    blocks,
    chain_problems,
    escrow_payouts,
    item_events,
    item_key,
    item_registrations,
    merchant_changes,
    metadata,
    node_faults,
    notifications,
    policies,
    return_transitions,
    returns,
    role_changes,
    sales,
    seller_changes,
    writer_epoch,
)

__all__ = [
    "SQLITE_INDEXER_CACHE_KIB",
    "SQLITE_MMAP_BYTES",
    "AnchorKey",
    "ApplyStats",
    "BlockRef",
    "ChainBreak",
    "ChainBreakError",
    "ChainPin",
    "NodeFault",
    "RollbackStats",
    "Store",
    "StoreError",
    "StoreFullError",
    "StoreUnavailableError",
]

ITEM_CACHE_SIZE = 50_000
"""Items states a Store keeps in memory between batches (about 0.5 kB each)."""

WALL_CLOCK_COLUMNS: dict[str, frozenset[str]] = {
    "chain_pin": frozenset({"created_at"}),
    "checkpoint": frozenset({"updated_at"}),
    "chain_problems": frozenset({"id", "detected_at"}),
    "notifications": frozenset({"seq", "created_at", "dispatched_at"}),
    "batch_anchors": frozenset({"attempts"}),
}
"""Columns that differ between two indexes of the same chain: left out of :meth:`Store.dump`."""

NODE_TABLES = frozenset({node_faults.name, writer_epoch.name})
"""Tables about the node that answered or the processes that wrote (the writer epoch), not about the chain:
left out of :meth:`Store.dump`."""

LOG_TABLES: tuple[Table, ...] = (
    item_registrations,
    item_events,
    merchant_changes,
    seller_changes,
    role_changes,
    policies,
    sales,
    return_transitions,
    escrow_payouts,
    *EXCHANGE_TABLES,
    batch_anchors,
    batched_scans,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ApplyStats:
    """What one :meth:`Store.apply` wrote."""

    events: int
    items_touched: int
    returns_touched: int
    problems: int
    breaks: tuple[ChainBreak, ...] = ()
    """The hash-chain problems recorded, in log order (one per break)."""


class ChainBreakError(StoreError):
    """A batch applied with ``refuse_breaks`` broke an item's hash chain; nothing of it was written."""

    def __init__(self, breaks: Sequence[ChainBreak]) -> None:
        first = breaks[0]
        super().__init__(
            f"item {first.item_id}: event #{first.seq} in block {first.block_number}: {first.reason}"
            + (f" (and {len(breaks) - 1} more)" if len(breaks) > 1 else "")
        )
        self.breaks = tuple(breaks)


@dataclass(frozen=True)
class NodeFault:
    """An incomplete node answer the indexer caught (a ``node_faults`` row)."""

    kind: str
    """The check that found it: ``bloom``, ``reconcile``, ``chain_break`` or ``proof``."""
    from_block: int
    to_block: int
    item_id: str | None
    detail: str
    repaired: bool
    """A re-fetched answer was complete and was indexed instead."""


@dataclass(frozen=True)
class RollbackStats:
    """What one :meth:`Store.rollback_to` undid."""

    events: int
    """Log rows deleted (one per event, authorizations included)."""
    items_touched: int
    returns_touched: int
    blocks: int
    """Stored block headers deleted."""


class Store:
    """The off-chain index in one SQLite file or PostgreSQL database (schema).

    Thread-safe as SQLAlchemy engines are; meant for one writer (see
    :func:`ledger_service.store.lock.writer_lock`) and any number of readers.
    """

    def __init__(self, engine: Engine, *, item_cache_size: int = ITEM_CACHE_SIZE) -> None:
        self._engine = engine
        self._write_lock = threading.Lock()
        self._item_cache = ItemCache(item_cache_size)
        self._sqlite_file = sqlite_path(str(engine.url))
        self._checkpointer: Checkpointer | None = None
        self._writer: WriterLock | None = None

    @classmethod
    def open(
        cls, url: str, *, mmap_bytes: int = 0, cache_kib: int = SQLITE_CACHE_KIB, pool_size: int = POSTGRES_POOL_SIZE
    ) -> Store:
        """Connects to the index at ``url`` and migrates it to the current schema (Alembic head).

        ``mmap_bytes``, ``cache_kib``, ``pool_size``: see :func:`create_store_engine` (readers such as the API
        map the file; the indexer keeps a smaller page cache, :data:`SQLITE_INDEXER_CACHE_KIB`; the API keeps
        as many PostgreSQL connections as its requests use at once, ``LEDGER_DATABASE_POOL_SIZE``)."""
        engine = create_store_engine(url, mmap_bytes=mmap_bytes, cache_kib=cache_kib, pool_size=pool_size)
        try:
            upgrade_to_head(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for read queries of other ledger_service.store modules."""
        return self._engine

    def close(self) -> None:
        """Stops the checkpoint thread (SQLite) and closes every pooled connection."""
        with self._write_lock:
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None
        self._engine.dispose()

    def _committed(self) -> None:
        """After a write: let the SQLite checkpoint thread (started by the first write) copy the WAL back."""
        if self._sqlite_file is None:
            return
        if self._checkpointer is None:
            self._checkpointer = Checkpointer(self._sqlite_file)
        self._checkpointer.committed()

    def fence_writes(self, lock: WriterLock) -> None:
        """Makes every write transaction of this Store first check that ``lock`` is still the index's writer
        (PostgreSQL's indexer lock: its writer epoch, see :mod:`ledger_service.store.lock`); raises
        :class:`~ledger_service.store.lock.WriterFencedError` from a write once another indexer took over. Nothing
        for an unfenced lock (SQLite's ``flock`` admits no second writer): no query is added to its writes."""
        if not lock.fenced:
            return
        if lock.epoch is None:  # the lock was taken before this Store created the index's tables
            with write_transaction(self._engine) as conn:
                epoch = next_epoch(conn)
            lock.epoch = epoch
        self._writer = lock

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction, fenced by :meth:`fence_writes`' lock if any (its first statement)."""
        with write_transaction(self._engine) as conn:
            if self._writer is not None:
                self._writer.fence(conn)
            yield conn

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ---- the per-item index of item_events, deferred during an initial backfill ------

    def defer_item_index(self) -> bool:
        """SQLite, empty index: drops ``ix_item_events_item`` until :meth:`build_deferred_indexes`.

        Each indexed event inserts an entry at a random place of that B-tree (items interleave), and every
        commit then rewrites most of its pages into the WAL: about 2.4 us of the writer's ~15 per event
        (3 s of a 1M-event backfill), where building it once at the end takes ~0.7 s. Only for an empty
        index (nothing reads it yet); PostgreSQL keeps it (there the saving was within noise). Returns
        whether it dropped the index (False if the index was not empty, is PostgreSQL, or has none).
        """
        if self._sqlite_file is None:
            return False
        with self._write() as conn:
            if conn.execute(select(item_events.c.block_number).limit(1)).first() is not None:
                return False
            if not _has_index(conn, _DEFERRED_NAME):
                return False
            _DEFERRED_INDEX.drop(conn)
        log.info("item_index_deferred", index=_DEFERRED_NAME)
        return True

    def build_deferred_indexes(self) -> bool:
        """Creates ``ix_item_events_item`` if it is missing (deferred by :meth:`defer_item_index`, also by a
        backfill that was killed); returns whether it had to. Queries by item are slow until it exists."""
        with self._write() as conn:
            if _has_index(conn, _DEFERRED_NAME):
                return False
            began = time.monotonic()
            _DEFERRED_INDEX.create(conn)
        self._committed()
        log.info("item_index_built", index=_DEFERRED_NAME, seconds=round(time.monotonic() - began, 2))
        return True

    def deferred_indexes(self) -> list[str]:
        """The indexes :meth:`build_deferred_indexes` would create (for ``status``)."""
        with read_transaction(self._engine) as conn:
            return [] if _has_index(conn, _DEFERRED_NAME) else [_DEFERRED_NAME]

    # ---- chain pin and checkpoint --------------------------------------------

    def pin(self) -> ChainPin | None:
        """The pinned chain, or None for a new index."""
        with read_transaction(self._engine) as conn:
            return read_pin(conn)

    def set_pin(self, pin: ChainPin) -> None:
        """Pins a new index to ``pin``; raises :class:`StoreError` if it is pinned to anything else."""
        with self._write() as conn:
            current = read_pin(conn)
            if current is None:
                insert_pin(conn, pin)
            elif current != pin:
                diffs = ", ".join(
                    f"{name} {getattr(current, name)!r} (wanted {getattr(pin, name)!r})"
                    for name in ChainPin.__dataclass_fields__
                    if getattr(current, name) != getattr(pin, name)
                )
                raise StoreError(f"this index was built from another chain or deployment: {diffs}")

    def checkpoint(self) -> BlockRef | None:
        """The last block whose events are all indexed, or None before the first apply."""
        with read_transaction(self._engine) as conn:
            return read_checkpoint(conn)

    def stored_blocks(self, *, from_block: int, to_block: int) -> dict[int, BlockHeader]:
        """Stored headers with ``from_block <= number <= to_block``."""
        with read_transaction(self._engine) as conn:
            return read_headers(conn, from_block=from_block, to_block=to_block)

    # ---- writes ----------------------------------------------------------------

    def apply(
        self,
        *,
        events: Sequence[DecodedEvent],
        headers: Sequence[BlockHeader],
        checkpoint: BlockRef,
        prune_below: int,
        refuse_breaks: bool = False,
        before_commit: Callable[[], None] | None = None,
    ) -> ApplyStats:
        """Indexes ``events`` (sorted by block, log index; all above the current checkpoint and at most at
        ``checkpoint``), stores ``headers``, drops headers below ``prune_below`` and moves the checkpoint,
        in one transaction. Raises :class:`StoreError` (nothing written) on input that breaks these rules
        or conflicts with stored rows; with ``refuse_breaks``, :class:`ChainBreakError` (nothing written)
        when an item's hash chain breaks instead of recording the break. ``before_commit`` runs once
        everything is written, before the commit: what it raises rolls the transaction back and is raised."""
        cache = self._item_cache
        with self._write_lock:
            try:
                counts, written = self._apply(events, headers, checkpoint, prune_below, refuse_breaks, before_commit)
            except BaseException:
                cache.clear()  # its states may hold this failed batch's changes
                raise
            cache.keep(written, valid_at=(checkpoint.number, checkpoint.hash))
            self._committed()
        return ApplyStats(counts.events, counts.items_touched, counts.returns_touched, counts.problems, counts.breaks)

    def _apply(
        self,
        events: Sequence[DecodedEvent],
        headers: Sequence[BlockHeader],
        checkpoint: BlockRef,
        prune_below: int,
        refuse_breaks: bool = False,
        before_commit: Callable[[], None] | None = None,
    ) -> tuple[BatchCounts, list[ItemState]]:
        cache = self._item_cache
        with self._write() as conn:
            current = read_checkpoint(conn)
            if cache.valid_at != (None if current is None else (current.number, current.hash)):
                cache.clear()  # someone else wrote the index since this Store did
            _check_batch(events, current, checkpoint)
            counts, written = apply_events(conn, events, now=int(time.time()), cache=cache)
            if refuse_breaks and counts.breaks:
                raise ChainBreakError(counts.breaks)  # the transaction rolls back: nothing of the batch is kept
            store_headers(conn, headers)
            conn.execute(delete(blocks).where(blocks.c.number < prune_below))
            write_checkpoint(conn, checkpoint)
            if before_commit is not None:
                before_commit()
        return counts, written

    def rollback_to(self, ref: BlockRef, *, headers: Sequence[BlockHeader] = ()) -> RollbackStats:
        """Undoes everything above block ``ref.number`` (log rows, headers, chain problems), rebuilds the
        state rows those rows had touched from what remains, stores ``headers`` (of blocks at or below
        ``ref``: those the index needs below its new checkpoint) and sets the checkpoint to ``ref``; one
        transaction."""
        above = ref.number
        if any(h.number > above for h in headers):
            raise StoreError(f"cannot store headers above block {above} while rolling back to it")
        with self._write_lock:
            self._item_cache.clear()
            stats = self._rollback(ref, above, headers)
            self._committed()
            return stats

    def restore_headers(self, headers: Sequence[BlockHeader], *, checkpoint: BlockRef) -> int:
        """Stores ``headers`` of indexed blocks (at or below ``checkpoint``) that the index lacks; nothing if the
        checkpoint is no longer ``checkpoint`` (another writer moved it). Returns the headers written."""
        if any(h.number > checkpoint.number for h in headers):
            raise StoreError(f"cannot store headers above the checkpoint {checkpoint.number}")
        with self._write_lock:
            with self._write() as conn:
                if read_checkpoint(conn) != checkpoint:
                    return 0
                store_headers(conn, headers)
            self._committed()
            return len(headers)

    def _rollback(self, ref: BlockRef, above: int, headers: Sequence[BlockHeader]) -> RollbackStats:
        with self._write() as conn:
            current = read_checkpoint(conn)
            if current is not None and above > current.number:
                raise StoreError(f"cannot roll back to block {above}: the checkpoint is at {current.number}")
            item_keys = _keys_above(conn, above, (item_registrations, item_events, merchant_changes), "item_id")
            return_keys = _keys_above(conn, above, (returns, return_transitions, escrow_payouts), "return_id")
            role_keys = _pairs_above(conn, above, role_changes, ("role", "account"))
            seller_keys = _pairs_above(conn, above, seller_changes, ("merchant", "seller"))
            deleted = 0
            for table in (*LOG_TABLES, returns):
                deleted += conn.execute(delete(table).where(table.c.block_number > above)).rowcount
            blocks_deleted = conn.execute(delete(blocks).where(blocks.c.number > above)).rowcount
            store_headers(conn, headers)
            conn.execute(delete(chain_problems).where(chain_problems.c.block_number > above))
            # the outbox follows the log rows: the events a new branch applies again insert their rows again
            # with the same ids, and the worker's deliveries (unique per id) are not made twice
            conn.execute(delete(notifications).where(notifications.c.block_number > above))
            rebuild_items(conn, item_keys)
            rebuild_returns(conn, return_keys)
            rebuild_roles(conn, role_keys)
            rebuild_sellers(conn, seller_keys)
            write_checkpoint(conn, ref)
        return RollbackStats(deleted, len(item_keys), len(return_keys), blocks_deleted)

    # ---- batched scans -----------------------------------------------------------

    def apply_batch(self, key: AnchorKey, scans: Sequence[tuple[object, ...]]) -> bool:
        """Writes every scan of a pending anchor's document (``batched_scans`` rows without the anchor's position,
        tuples of ``ingest.BATCHED_SCAN_COLUMNS``) and marks it applied, in one transaction; False if the anchor is
        no longer pending."""
        return self._settle_batch(key, scans=scans, problem=None)

    def refuse_batch(self, key: AnchorKey, problem: str) -> bool:
        """Marks a pending anchor refused, with the reason; none of its scans is written."""
        return self._settle_batch(key, scans=None, problem=problem)

    def _settle_batch(self, key: AnchorKey, *, scans: Sequence[tuple[object, ...]] | None, problem: str | None) -> bool:
        with self._write_lock:
            with self._write() as conn:
                done = settle_batch(conn, key, scans=scans, problem=problem)
            self._committed()
        return done

    def note_pending_batch(self, key: AnchorKey, problem: str) -> None:
        """Records a failed fetch of a pending anchor's document (it stays pending, to be retried)."""
        with self._write_lock:
            with self._write() as conn:
                note_pending_batch(conn, key, problem=problem)
            self._committed()

    def note_held_batch(self, key: AnchorKey, problem: str) -> None:
        """Records why a pending anchor is held (it continues scans not applied yet); its fetches are not counted."""
        with self._write_lock:
            with self._write() as conn:
                note_held_batch(conn, key, problem=problem)
            self._committed()

    def reopen_batches(self, *, from_block: int) -> int:
        """Every applied or refused anchor at or above ``from_block`` back to pending, its scans deleted (one
        transaction), for the resolver to settle again: how an operator re-applies a batch given up on once its
        document is published. How many anchors were reopened."""
        with self._write_lock:
            with self._write() as conn:
                reopened = reopen_batches(conn, from_block=from_block)
            self._committed()
        return reopened

    # ---- node faults -------------------------------------------------------------

    def record_node_faults(self, faults: Sequence[NodeFault]) -> None:
        """Adds ``node_faults`` rows (their own transaction: they stay whatever happens to the batch)."""
        if not faults:
            return
        now = int(time.time())
        rows = [
            {
                "kind": f.kind,
                "from_block": f.from_block,
                "to_block": f.to_block,
                "item_id": f.item_id,
                "detail": f.detail,
                "repaired": f.repaired,
                "detected_at": now,
            }
            for f in faults
        ]
        with self._write_lock, self._write() as conn:
            conn.execute(insert(node_faults), rows)

    def gaps(self) -> list[tuple[str, int]]:
        """Stored seq gaps (an item event missing before a stored one, as an index written before the indexer
        refused breaks could hold): (item, the block after which its events must be fetched again), lowest
        block first. Each gap's missing events lie after the item's last event before the gap (in its block
        or later), so everything above the block before that one is to be fetched again."""
        gaps: list[tuple[str, int]] = []
        ev = item_events.c
        with read_transaction(self._engine) as conn:
            rows = conn.execute(
                select(chain_problems.c.item_id, chain_problems.c.reason).where(
                    chain_problems.c.reason.like("expected event #%")
                )
            ).all()
            for item_id, reason in rows:
                found = _SEQ_GAP.match(reason)
                if found is None or int(found[2]) <= int(found[1]):
                    continue  # a repeat or reordering, not a gap
                before = int(found[1]) - 1
                if before >= 0:
                    stmt = select(func.min(ev.block_number)).where(
                        ev.item_key == item_key(item_id), ev.item_id == item_id, ev.seq == before
                    )
                else:
                    stmt = select(func.min(item_registrations.c.block_number)).where(
                        item_registrations.c.item_id == item_id
                    )
                block = conn.execute(stmt).scalar_one_or_none()
                if block is not None:
                    gaps.append((item_id, int(block) - 1))
        return sorted(gaps, key=lambda gap: gap[1])

    def node_faults(self) -> list[NodeFault]:
        """The recorded node faults, oldest first."""
        nf = node_faults.c
        stmt = select(nf.kind, nf.from_block, nf.to_block, nf.item_id, nf.detail, nf.repaired).order_by(nf.id)
        with read_transaction(self._engine) as conn:
            return [NodeFault(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in conn.execute(stmt)]

    def node_fault_counts(self) -> tuple[int, int]:
        """(node faults recorded, of which repaired by a re-fetch)."""
        stmt = select(func.count(), func.count().filter(node_faults.c.repaired.is_(True)))
        with read_transaction(self._engine) as conn:
            total, repaired = conn.execute(stmt.select_from(node_faults)).one()
        return int(total), int(repaired or 0)

    # ---- inspection --------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Rows per table, by table name."""
        with read_transaction(self._engine) as conn:
            return {
                table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
                for table in sorted(metadata.tables.values(), key=lambda t: t.name)
            }

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every table's rows, sorted, without wall-clock columns (:data:`WALL_CLOCK_COLUMNS`).

        Two indexes of the same chain have equal dumps, whatever the database,
        batching, restarts or reorgs they went through.
        """
        out: dict[str, list[tuple[Any, ...]]] = {}
        with read_transaction(self._engine) as conn:
            for table in sorted(metadata.tables.values(), key=lambda t: t.name):
                if table.name in NODE_TABLES:
                    continue
                skip = WALL_CLOCK_COLUMNS.get(table.name, frozenset())
                columns = [column for column in table.c if column.name not in skip]
                rows = [tuple(row) for row in conn.execute(select(*columns))]
                out[table.name] = sorted(rows, key=_sort_key)
        return out


_SEQ_GAP = re.compile(r"expected event #(\d+), found #(\d+)")

_DEFERRED_NAME = "ix_item_events_item"
_DEFERRED_INDEX = next(index for index in item_events.indexes if index.name == _DEFERRED_NAME)


def _has_index(conn: Connection, name: str) -> bool:
    return name in {index["name"] for index in inspect(conn).get_indexes(item_events.name)}


def _sort_key(row: tuple[Any, ...]) -> tuple[tuple[bool, Any], ...]:
    return tuple((value is None, value) for value in row)


def _check_batch(events: Sequence[DecodedEvent], current: BlockRef | None, target: BlockRef) -> None:
    """Refuses a batch that would index an event twice, skip ordering, or move the checkpoint back."""
    floor = -1 if current is None else current.number
    if current is not None and target.number < current.number:
        raise StoreError(f"checkpoint {target.number} is below the current one ({current.number}): use rollback_to")
    previous = (floor, 1 << 62)
    keys = (
        map(row_order, events.rows)
        if isinstance(events, EventRows)
        else ((ev.pos.block_number, ev.pos.log_index) for ev in events)
    )
    for key in keys:
        if key <= previous:
            if key[0] <= floor:
                raise StoreError(f"event at block {key[0]} is not above the checkpoint (block {floor})")
            raise StoreError(f"events out of order at block {key[0]} log {key[1]}")
        previous = key
    if events and previous[0] > target.number:
        raise StoreError(f"event at block {previous[0]} is above the new checkpoint (block {target.number})")


def _keys_above(conn: Connection, above: int, tables: Sequence[Table], column: str) -> list[str]:
    keys: set[str] = set()
    for table in tables:
        stmt = select(table.c[column]).where(table.c.block_number > above).distinct()
        keys.update(conn.execute(stmt).scalars())
    return sorted(keys)


def _pairs_above(conn: Connection, above: int, table: Table, names: tuple[str, str]) -> list[tuple[str, str]]:
    stmt = select(table.c[names[0]], table.c[names[1]]).where(table.c.block_number > above).distinct()
    return sorted((r[0], r[1]) for r in conn.execute(stmt))
