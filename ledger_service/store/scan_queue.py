"""The scan batcher's queue: ``scan_batches``, ``queued_scans`` and ``scan_heads`` (issue #23).

Written by the API (:func:`enqueue_scans`, one transaction per request) and by ledger-batcher (the rest); the
indexer never reads them. A batch goes ``open`` -> ``full`` -> ``sealed`` -> ``anchored`` -> ``final``:

- ``open``: takes scans; at most one per submitter (a partial unique index). :func:`enqueue_scans` locks it
  (an UPDATE of its row) while it adds scans, so a batch closed by the batcher (:func:`close_batch`, an UPDATE
  of the same row) never gains a scan after it was closed: the two wait for each other on the row lock;
- ``full``: closed to new scans (the API closes a batch it filled, the batcher one that waited long enough);
  its scans are fixed, so the batcher reads and numbers them outside any lock;
- ``sealed``: numbered from ``scan_heads`` (moved in the same transaction), its document's bytes and root
  stored, so a restart resends exactly the same anchor (same root: the contract refuses a second one);
- ``anchored``: its anchor transaction mined in ``anchor_block`` (with that block's hash: a reorg that
  replaces the block sends the batch back to ``sealed`` unless the anchor is still on-chain);
- ``final``: the anchor's block is past the finality depth, and so are the blocks of the transit proofs sent
  from its scans (``batcher/transit.py``: until then the batch stays ``anchored``);
- ``failed``: the contract refused its anchor for good (:func:`give_up`): never anchored, its reason kept.
  Its items' heads go back to before it, and the sealed batches after it are sealed again from there, so the
  scans after it still form unbroken chains.

Invariants: an acknowledged scan is in exactly one batch at one position, and batches are sealed, and their
scans numbered, in id order; a batch's document never changes once it is sealed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import Connection, delete, func, or_, select, update

from ledger_service.core import batch_document
from ledger_service.core.hashchain import item_id as uri_item_id
from ledger_service.errors import ConflictError
from ledger_service.store._db import insert_ignore, key_in, read_transaction, upsert, write_transaction, write_tuples
from ledger_service.store._folds import chunks
from ledger_service.store.epcis_events import ActorFacts, actor_facts_in, mark_batched_in
from ledger_service.store.handle import Store
from ledger_service.store.tables import (
    BATCH_ANCHORED,
    BATCH_FAILED,
    BATCH_FINAL,
    BATCH_FULL,
    BATCH_OPEN,
    BATCH_SEALED,
    items,
    queued_scans,
    scan_batches,
    scan_heads,
)

__all__ = [
    "BATCH_FAILED",
    "BatchRow",
    "QueuedScan",
    "Receipt",
    "batch_by_id",
    "batches_in",
    "close_batch",
    "due_batches",
    "enqueue_scans",
    "give_up",
    "heads_of",
    "mark_anchored",
    "mark_final",
    "note_refusal",
    "note_send_failure",
    "scan_facts",
    "scans_of",
    "seal_batch",
    "unanchor",
]


class QueuedScan(NamedTuple):
    """An acknowledged scan, before it is numbered in its item's chain (a tuple: its fields are a
    ``queued_scans`` row's, in that order, and the API makes one per scan it acknowledges)."""

    item: str
    biz_step: int
    disposition: int
    read_point: str
    time: int
    document: str
    """0x + 64 hex."""
    biz_transaction: str


class Receipt(NamedTuple):
    """Where an acknowledged scan went: its batch and its place in it (the leaf index of its document)."""

    batch_id: int
    position: int


@dataclass(frozen=True, slots=True)
class BatchRow:
    id: int
    submitter: str
    state: str
    scan_count: int
    opened_at: int
    root: str | None
    document_digest: str | None
    document: bytes | None
    tx_hash: str | None
    anchor_block: int | None
    anchor_block_hash: str | None
    attempts: int
    problem: str | None
    refusals: int
    refused_since: int | None
    """Wall-clock unix ms of the first refusal by the contract."""


_BATCH_COLUMNS = (
    scan_batches.c.id,
    scan_batches.c.submitter,
    scan_batches.c.state,
    scan_batches.c.scan_count,
    scan_batches.c.opened_at,
    scan_batches.c.root,
    scan_batches.c.document_digest,
    scan_batches.c.document,
    scan_batches.c.tx_hash,
    scan_batches.c.anchor_block,
    scan_batches.c.anchor_block_hash,
    scan_batches.c.attempts,
    scan_batches.c.problem,
    scan_batches.c.refusals,
    scan_batches.c.refused_since,
)


def _batch_row(row: Sequence[object]) -> BatchRow:
    return BatchRow(*row)  # type: ignore[arg-type]


def enqueue_scans(
    store: Store,
    *,
    submitter: str,
    key_id: int,
    scans: Sequence[QueuedScan],
    max_scans: int,
    now_ms: int,
    batched_events: Sequence[int] = (),
) -> list[Receipt]:
    """Adds ``scans`` to ``submitter``'s open batch, in order, in one transaction; a batch that reaches
    ``max_scans`` is closed (``full``) and the rest go into a new one. One receipt per scan, in order.

    ``batched_events``: the claimed EPCIS capture events (event keys) these scans come from, marked ``batched``
    in the same transaction, so a capture killed at any point has queued their scans and marked them, or neither
    (its claims then go back to the reaper, and the same document sent again queues them once). If one of them
    is no longer claimed (the capture was taken for abandoned and its claims released), nothing is queued:
    :class:`ConflictError`."""
    submitter = submitter.lower()
    b = scan_batches.c
    receipts: list[Receipt] = []
    with write_transaction(store.engine) as conn:
        done = 0
        while done < len(scans):
            # the row lock that keeps a closing batcher out until this transaction commits
            held = conn.execute(
                update(scan_batches)
                .where(b.submitter == submitter, b.state == BATCH_OPEN)
                .values(scan_count=b.scan_count)
                .returning(b.id, b.scan_count)
            ).first()
            if held is None:
                insert_ignore(conn, scan_batches, _new_batch(submitter, now_ms))
                continue
            batch_id, count = int(held[0]), int(held[1])
            take = min(max_scans - count, len(scans) - done)
            rows = [
                _scan_tuple(scan, batch_id, count + i, key_id, now_ms)
                for i, scan in enumerate(scans[done : done + take])
            ]
            write_tuples(conn, "insert", queued_scans, _SCAN_COLUMNS, rows)
            full = count + take >= max_scans
            conn.execute(
                update(scan_batches)
                .where(b.id == batch_id)
                .values(scan_count=count + take, state=BATCH_FULL if full else BATCH_OPEN)
            )
            receipts.extend(Receipt(batch_id, count + i) for i in range(take))
            done += take
        if batched_events and mark_batched_in(conn, batched_events) != len(set(batched_events)):
            raise ConflictError(
                "the capture's events were released while their scans were being queued (its job was taken for "
                "abandoned): nothing was queued; send the document again"
            )
    return receipts


def _new_batch(submitter: str, now_ms: int) -> dict[str, object]:
    return {
        "submitter": submitter,
        "state": BATCH_OPEN,
        "scan_count": 0,
        "opened_at": now_ms,
        "attempts": 0,
        "refusals": 0,
    }


_SCAN_COLUMNS = (
    "batch_id",
    "position",
    "item",
    "biz_step",
    "disposition",
    "read_point",
    "time",
    "document",
    "biz_transaction",
    "key_id",
    "accepted_at",
)


def _scan_tuple(scan: QueuedScan, batch_id: int, position: int, key_id: int, now_ms: int) -> tuple[object, ...]:
    """A ``queued_scans`` row in :data:`_SCAN_COLUMNS` order (the hot path: a tuple, no dict per scan)."""
    return (batch_id, position, *scan, key_id, now_ms)


def due_batches(store: Store, *, opened_before_ms: int) -> list[int]:
    """The batches to seal now, oldest first: the full ones and the open ones opened before ``opened_before_ms``
    (with at least one scan)."""
    b = scan_batches.c
    stmt = (
        select(b.id)
        .where(
            or_(b.state == BATCH_FULL, (b.state == BATCH_OPEN) & (b.opened_at <= opened_before_ms) & (b.scan_count > 0))
        )
        .order_by(b.id)
    )
    with read_transaction(store.engine) as conn:
        return [int(i) for i in conn.execute(stmt).scalars()]


def close_batch(store: Store, batch_id: int) -> None:
    """Closes an open batch to new scans (waits for a request adding to it to commit); no-op otherwise."""
    b = scan_batches.c
    with write_transaction(store.engine) as conn:
        conn.execute(update(scan_batches).where(b.id == batch_id, b.state == BATCH_OPEN).values(state=BATCH_FULL))


def scans_of(store: Store, batch_id: int) -> tuple[str, list[QueuedScan]]:
    """A batch's submitter and scans, by position."""
    q = queued_scans.c
    with read_transaction(store.engine) as conn:
        submitter = conn.execute(select(scan_batches.c.submitter).where(scan_batches.c.id == batch_id)).scalar_one()
        rows = conn.execute(
            select(q.item, q.biz_step, q.disposition, q.read_point, q.time, q.document, q.biz_transaction)
            .where(q.batch_id == batch_id)
            .order_by(q.position)
        ).all()
    return str(submitter), [QueuedScan(*row) for row in rows]


def heads_of(store: Store, item_ids: Sequence[str]) -> dict[str, tuple[int, str]]:
    """(seq, leaf hash) of the last sealed scan of each of ``item_ids`` that has one."""
    h = scan_heads.c
    found: dict[str, tuple[int, str]] = {}
    ids = sorted(set(item_ids))
    with read_transaction(store.engine) as conn:
        for part in chunks(conn, ids):
            stmt = select(h.item_id, h.seq, h.leaf_hash).where(key_in(conn, h.item_id, part))
            found.update({item_id: (int(seq), leaf) for item_id, seq, leaf in conn.execute(stmt)})
    return found


def seal_batch(
    store: Store,
    *,
    batch_id: int,
    heads: dict[str, tuple[int, str]],
    root: str,
    document_digest: str,
    document: bytes,
    now_ms: int,
) -> bool:
    """Marks a full batch sealed with its document and moves the items' heads, in one transaction; False (and
    nothing written) if the batch is not full (already sealed by a run that crashed after committing)."""
    b = scan_batches.c
    with write_transaction(store.engine) as conn:
        sealed = conn.execute(
            update(scan_batches)
            .where(b.id == batch_id, b.state == BATCH_FULL)
            .values(state=BATCH_SEALED, sealed_at=now_ms, root=root, document_digest=document_digest, document=document)
        )
        if sealed.rowcount != 1:
            return False
        rows = [{"item_id": item_id, "seq": seq, "leaf_hash": leaf} for item_id, (seq, leaf) in heads.items()]
        for start in range(0, len(rows), 1000):
            upsert(conn, scan_heads, rows[start : start + 1000])
    return True


def batches_in(store: Store, *states: str) -> list[BatchRow]:
    """The batches in ``states``, by id."""
    b = scan_batches.c
    stmt = select(*_BATCH_COLUMNS).where(b.state.in_(states)).order_by(b.id)
    with read_transaction(store.engine) as conn:
        return [_batch_row(row) for row in conn.execute(stmt)]


def _set(conn: Connection, batch_id: int, from_state: str, /, **values: object) -> bool:
    """Updates the batch if it is (still) in ``from_state``; whether it was."""
    b = scan_batches.c
    result = conn.execute(update(scan_batches).where(b.id == batch_id, b.state == from_state).values(**values))
    return result.rowcount == 1


def mark_anchored(
    store: Store, *, batch_id: int, tx_hash: str | None, block_number: int, block_hash: str, now_ms: int
) -> bool:
    """A sealed batch's anchor was seen mined in ``block_number`` (``tx_hash``: None when a resend found it
    anchored already)."""
    with write_transaction(store.engine) as conn:
        return _set(
            conn,
            batch_id,
            BATCH_SEALED,
            state=BATCH_ANCHORED,
            tx_hash=tx_hash,
            anchor_block=block_number,
            anchor_block_hash=block_hash,
            anchored_at=now_ms,
            problem=None,
        )


def note_send_failure(store: Store, *, batch_id: int, problem: str) -> None:
    """A sealed batch's anchor could not be sent this time (kept sealed, tried again)."""
    b = scan_batches.c
    with write_transaction(store.engine) as conn:
        _set(conn, batch_id, BATCH_SEALED, attempts=b.attempts + 1, problem=problem)


def note_refusal(store: Store, *, batch_id: int, problem: str, now_ms: int) -> None:
    """The contract refused a sealed batch's anchor (a revert): counted towards giving up on it."""
    b = scan_batches.c
    with write_transaction(store.engine) as conn:
        _set(
            conn,
            batch_id,
            BATCH_SEALED,
            attempts=b.attempts + 1,
            refusals=b.refusals + 1,
            refused_since=func.coalesce(b.refused_since, now_ms),
            problem=problem,
        )


def give_up(store: Store, *, batch_id: int, problem: str, now_ms: int) -> list[int]:
    """Marks a sealed batch ``failed`` with ``problem`` (its last refusal counted), in one transaction with what
    that takes: its items' heads go back to before it, and every later sealed batch (none is anchored: anchors
    are sent in id order and stop at the first failure) goes back to ``full`` with the heads of its items before
    it, to be sealed again without the failed scans in their chains. Returns the batches sent back; [] if the
    batch was not sealed."""
    b = scan_batches.c
    with write_transaction(store.engine) as conn:
        failed = _set(
            conn,
            batch_id,
            BATCH_SEALED,
            state=BATCH_FAILED,
            problem=problem,
            attempts=b.attempts + 1,
            refusals=b.refusals + 1,
            refused_since=func.coalesce(b.refused_since, now_ms),
        )
        if not failed:
            return []
        later = conn.execute(
            select(b.id, b.document).where(b.state == BATCH_SEALED, b.id > batch_id).order_by(b.id)
        ).all()
        document_of_failed = conn.execute(select(b.document).where(b.id == batch_id)).scalar_one()
        rewound: dict[str, tuple[int, str] | None] = {}
        for document in [document_of_failed, *(row.document for row in later)]:
            for item_id, before in _heads_before(bytes(document)).items():
                rewound.setdefault(item_id, before)
        if later:
            conn.execute(
                update(scan_batches)
                .where(b.id.in_([row.id for row in later]))
                .values(state=BATCH_FULL, sealed_at=None, root=None, document_digest=None, document=None)
            )
        gone = sorted(item_id for item_id, before in rewound.items() if before is None)
        h = scan_heads.c
        for part in chunks(conn, gone):
            conn.execute(delete(scan_heads).where(key_in(conn, h.item_id, part)))
        rows = [
            {"item_id": item_id, "seq": before[0], "leaf_hash": before[1]}
            for item_id, before in rewound.items()
            if before is not None
        ]
        for start in range(0, len(rows), 1000):
            upsert(conn, scan_heads, rows[start : start + 1000])
    return [int(row.id) for row in later]


def _heads_before(document: bytes) -> dict[str, tuple[int, str] | None]:
    """Each item's head just before a sealed document's first scan of it (None: the item had no batched scan)."""
    heads: dict[str, tuple[int, str] | None] = {}
    for scan in batch_document.decode(document).scans:
        item_id = "0x" + uri_item_id(scan.item).hex()
        if item_id not in heads:
            heads[item_id] = None if scan.seq == 0 else (scan.seq - 1, "0x" + scan.prev_hash.hex())
    return heads


def unanchor(store: Store, *, batch_id: int, problem: str) -> bool:
    """A reorg dropped an anchored batch's transaction: back to sealed, to be anchored again."""
    with write_transaction(store.engine) as conn:
        return _set(
            conn,
            batch_id,
            BATCH_ANCHORED,
            state=BATCH_SEALED,
            tx_hash=None,
            anchor_block=None,
            anchor_block_hash=None,
            anchored_at=None,
            problem=problem,
        )


def mark_final(store: Store, *, batch_id: int) -> bool:
    """An anchored batch's block is final."""
    with write_transaction(store.engine) as conn:
        return _set(conn, batch_id, BATCH_ANCHORED, state=BATCH_FINAL)


def scan_facts(
    store: Store, *, account: str, item_ids: Iterable[str]
) -> tuple[ActorFacts, dict[str, tuple[str, bool]]]:
    """What checking ``account``'s scans of ``item_ids`` (0x + 64 lowercase hex) needs, read in one transaction:
    the account's roles and the merchants it sells for, and (merchant of record, destroyed) of each indexed
    item among ``item_ids``."""
    i = items.c
    found: dict[str, tuple[str, bool]] = {}
    ids = sorted(set(item_ids))
    with read_transaction(store.engine) as conn:
        facts = actor_facts_in(conn, account)
        for part in chunks(conn, ids):
            stmt = select(i.item_id, i.merchant, i.destroyed).where(key_in(conn, i.item_id, part))
            found.update({item_id: (merchant, bool(destroyed)) for item_id, merchant, destroyed in conn.execute(stmt)})
    return facts, found


def batch_by_id(store: Store, batch_id: int) -> BatchRow | None:
    with read_transaction(store.engine) as conn:
        row = conn.execute(select(*_BATCH_COLUMNS).where(scan_batches.c.id == batch_id)).first()
    return None if row is None else _batch_row(row)
