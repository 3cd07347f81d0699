"""Batched scans: the ``batch_anchors`` the indexer has seen and the ``batched_scans`` of those it applied.

Reads only; the indexer writes both tables through :class:`~ledger_service.store.Store` (``store/ingest.py``).

- :func:`pending_anchors`: the anchors still waiting for their document, in the chain's order: the indexer
  resolves them in that order, because a batch's scans continue the chains the batches before it left;
- :func:`batch_context`: what the rules of a batch need, *as of its anchor's position* (block, log index): the
  submitter's roles and the merchants it sells for, each scanned item's merchant of record and whether it was
  destroyed, and the head of each item's chain of batched scans;
- :func:`anchors`, :func:`batched_scans_of`: what the index holds, for the API, the pages and the tests;
- :func:`anchor_page`, :func:`anchor_at`, :func:`waiting_anchors`: the anchors as the API and the auditor
  explorer list them (those waiting for their document first, each with why it waits);
- :func:`item_batched_rows`: an item's batched scans with their anchors and every leaf of those batches (from
  which an item history gives each scan its Merkle proof).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, Table, and_, case, func, or_, select

from ledger_service.core.codes import ROLE_IDS, BizStep
from ledger_service.store._db import read_transaction
from ledger_service.store._folds import chunks
from ledger_service.store.handle import Store
from ledger_service.store.ingest import AnchorKey
from ledger_service.store.tables import (
    BATCH_PENDING,
    WAITS_FOR_DOCUMENT,
    WAITS_FOR_SCANS,
    batch_anchors,
    batched_scans,
    item_events,
    item_key,
    item_registrations,
    items,
    merchant_changes,
    role_changes,
    seller_changes,
)

__all__ = [
    "WAIT_BEHIND",
    "WAIT_DOCUMENT",
    "WAIT_SCANS",
    "WAIT_UNREAD",
    "AnchorPage",
    "AnchorRow",
    "BatchContext",
    "BatchedScanRow",
    "ItemBatchedRows",
    "ListedAnchor",
    "Waiting",
    "anchor_at",
    "anchor_page",
    "anchors",
    "batch_context",
    "batched_scans_of",
    "batches_at",
    "item_batched_rows",
    "waiting_anchors",
]

_ROLE_NAMES = {"0x" + role_id.hex(): name for name, role_id in ROLE_IDS.items()}


@dataclass(frozen=True, slots=True)
class AnchorRow:
    """A BatchAnchored log and what the indexer made of its document."""

    block_number: int
    log_index: int
    tx_hash: str
    root: str
    submitter: str
    document_digest: str
    count: int
    anchored_at: int
    state: str
    """``pending_document``, ``applied`` or ``refused``."""
    problem: str | None
    attempts: int
    waiting: str | None
    """Why a pending anchor the indexer tried waits: ``WAITS_FOR_DOCUMENT`` or ``WAITS_FOR_SCANS`` (None otherwise)."""

    @property
    def key(self) -> AnchorKey:
        """What the store's settling writes check that the anchor still is."""
        return AnchorKey(self.block_number, self.log_index, self.root, self.submitter, self.document_digest)


@dataclass(frozen=True, slots=True)
class BatchedScanRow:
    item_id: str
    seq: int
    prev_hash: str
    leaf_hash: str
    biz_step: int
    disposition: int
    read_point: str
    document: str
    biz_transaction: str
    time: int
    submitter: str
    leaf_index: int
    block_number: int
    log_index: int


@dataclass(frozen=True, slots=True)
class ItemFacts:
    """A scanned item as of a batch's anchor."""

    merchant: str
    destroyed: bool


@dataclass(frozen=True, slots=True)
class BatchContext:
    """What a batch's rules read from the index, as of its anchor's position."""

    roles: frozenset[str]
    """The submitter's role names."""
    sells_for: frozenset[str]
    items: dict[str, ItemFacts]
    """By item id; an item not registered before the anchor is absent."""
    heads: dict[str, tuple[int, str]]
    """By item id: (seq, leaf hash) of its last batched scan, for items that have one."""


def _anchor_row(row: Sequence[object]) -> AnchorRow:
    """An :class:`AnchorRow` from a row of ``_ANCHOR_COLUMNS``."""
    return AnchorRow(*row)  # type: ignore[arg-type]


_ANCHOR_COLUMNS = (
    batch_anchors.c.block_number,
    batch_anchors.c.log_index,
    batch_anchors.c.tx_hash,
    batch_anchors.c.root,
    batch_anchors.c.submitter,
    batch_anchors.c.document_digest,
    batch_anchors.c.count,
    batch_anchors.c.anchored_at,
    batch_anchors.c.state,
    batch_anchors.c.problem,
    batch_anchors.c.attempts,
    batch_anchors.c.waiting,
)


def pending_anchors(store: Store, *, limit: int = 100) -> list[AnchorRow]:
    """The anchors whose document the indexer has not yet applied or refused, oldest first."""
    ba = batch_anchors.c
    stmt = (
        select(*_ANCHOR_COLUMNS).where(ba.state == BATCH_PENDING).order_by(ba.block_number, ba.log_index).limit(limit)
    )
    with read_transaction(store.engine) as conn:
        return [_anchor_row(tuple(r)) for r in conn.execute(stmt)]


def anchors(store: Store, *, state: str | None = None) -> list[AnchorRow]:
    """Every anchor (or those in ``state``), in the chain's order."""
    ba = batch_anchors.c
    stmt = select(*_ANCHOR_COLUMNS).order_by(ba.block_number, ba.log_index)
    if state is not None:
        stmt = stmt.where(ba.state == state)
    with read_transaction(store.engine) as conn:
        return [_anchor_row(tuple(r)) for r in conn.execute(stmt)]


WAIT_DOCUMENT, WAIT_SCANS = WAITS_FOR_DOCUMENT, WAITS_FOR_SCANS
WAIT_BEHIND, WAIT_UNREAD = "behind_earlier_anchor", "not_read_yet"
"""Why a ``pending_document`` anchor waits: its own document could not be had (``problem`` says why); it
continues item scans no applied batch has brought yet (held: its predecessor may be anchored later, after a
reorg; ``problem`` says which); an earlier anchor waits for its document (the indexer stops there: anchors are
settled in the chain's order); or the indexer has not tried it yet."""


@dataclass(frozen=True, slots=True)
class ListedAnchor:
    """An anchor as listed, with why it waits (None unless it is ``pending_document``)."""

    row: AnchorRow
    waiting: str | None


@dataclass(frozen=True, slots=True)
class AnchorPage:
    anchors: list[ListedAnchor]
    count: int
    """Matches overall (the page holds at most ``limit``)."""


def _waiting(row: AnchorRow, first_unavailable: tuple[int, int] | None) -> str | None:
    if row.state != BATCH_PENDING:
        return None
    if row.waiting is not None:
        return row.waiting
    if first_unavailable is not None and first_unavailable < (row.block_number, row.log_index):
        return WAIT_BEHIND
    return WAIT_UNREAD


def _first_pending(conn: Connection) -> tuple[int, int] | None:
    """The first anchor whose document could not be had: the indexer's pass stops there (a held one it passes)."""
    ba = batch_anchors.c
    row = conn.execute(
        select(ba.block_number, ba.log_index)
        .where(ba.state == BATCH_PENDING, ba.waiting == WAITS_FOR_DOCUMENT)
        .order_by(ba.block_number, ba.log_index)
        .limit(1)
    ).first()
    return None if row is None else (int(row[0]), int(row[1]))


def anchor_page(
    store: Store, *, states: Sequence[str] = (), submitter: str | None = None, limit: int, offset: int = 0
) -> AnchorPage:
    """The anchors in ``states`` (any: all) of ``submitter`` (None: everyone's): those waiting for their
    document first, in the order the indexer settles them (oldest first), then the settled ones newest first."""
    ba = batch_anchors.c
    conditions: list[ColumnElement[bool]] = []
    if states:
        conditions.append(ba.state.in_(sorted(set(states))))
    if submitter is not None:
        conditions.append(ba.submitter == submitter.lower())
    pending = ba.state == BATCH_PENDING
    stmt = (
        select(*_ANCHOR_COLUMNS)
        .where(*conditions)
        .order_by(
            case((pending, 0), else_=1),
            case((pending, ba.block_number), else_=-ba.block_number),
            case((pending, ba.log_index), else_=-ba.log_index),
        )
        .limit(limit)
        .offset(offset)
    )
    with read_transaction(store.engine) as conn:
        rows = [_anchor_row(tuple(r)) for r in conn.execute(stmt)]
        count = int(conn.execute(select(func.count()).select_from(batch_anchors).where(*conditions)).scalar_one())
        first = _first_pending(conn)
    return AnchorPage([ListedAnchor(r, _waiting(r, first)) for r in rows], count)


def anchor_at(store: Store, *, block_number: int, log_index: int) -> ListedAnchor | None:
    """The anchor logged at (``block_number``, ``log_index``): its batch id."""
    ba = batch_anchors.c
    stmt = select(*_ANCHOR_COLUMNS).where(ba.block_number == block_number, ba.log_index == log_index)
    with read_transaction(store.engine) as conn:
        found = conn.execute(stmt).first()
        if found is None:
            return None
        row = _anchor_row(tuple(found))
        return ListedAnchor(row, _waiting(row, _first_pending(conn)))


@dataclass(frozen=True, slots=True)
class Waiting:
    """The anchors still waiting for their document: how many, and the anchor time of the oldest."""

    count: int
    since: int | None
    """Unix seconds: the block time of the oldest waiting anchor (None when none waits)."""


def waiting_anchors(store: Store) -> Waiting:
    """How many anchors wait for their document. Until a document is read nobody can know which items its scans
    are of, so any item's batched history may be missing their scans."""
    ba = batch_anchors.c
    stmt = select(func.count(), func.min(ba.anchored_at)).where(ba.state == BATCH_PENDING)
    with read_transaction(store.engine) as conn:
        count, since = conn.execute(stmt).one()
    return Waiting(int(count), None if since is None else int(since))


def batched_scans_of(store: Store, *, item_id: str) -> list[BatchedScanRow]:
    """An item's batched scans, by seq."""
    bs = batched_scans.c
    stmt = select(*batched_scans.c).where(bs.item_id == item_id.lower()).order_by(bs.seq)
    with read_transaction(store.engine) as conn:
        return [BatchedScanRow(*r) for r in conn.execute(stmt)]


@dataclass(frozen=True, slots=True)
class ItemBatchedRows:
    """An item's batched scans (by seq), the anchors of their batches and every leaf of those batches."""

    scans: tuple[BatchedScanRow, ...]
    anchors: dict[tuple[int, int], AnchorRow]
    """By the anchor's position (block, log index), which is the batch id."""
    leaves: dict[tuple[int, int], tuple[str, ...]]
    """Each batch's leaf hashes in leaf index order, as the index holds them."""


def item_batched_rows(store: Store, *, item_id: str) -> ItemBatchedRows:
    """An item's batched scans with what their proofs need (see :class:`ItemBatchedRows`), in one read."""
    bs = batched_scans.c
    with read_transaction(store.engine) as conn:
        scans = tuple(
            BatchedScanRow(*r)
            for r in conn.execute(select(*batched_scans.c).where(bs.item_id == item_id.lower()).order_by(bs.seq))
        )
        found, leaves = batches_at(conn, sorted({(s.block_number, s.log_index) for s in scans}))
    return ItemBatchedRows(scans=scans, anchors=found, leaves=leaves)


def batches_at(
    conn: Connection, positions: Sequence[tuple[int, int]]
) -> tuple[dict[tuple[int, int], AnchorRow], dict[tuple[int, int], tuple[str, ...]]]:
    """The anchors at ``positions`` (block, log index: batch ids) and each batch's leaf hashes in leaf index order,
    as the index holds them: what Merkle proofs of their scans need."""
    bs, ba = batched_scans.c, batch_anchors.c
    found: dict[tuple[int, int], AnchorRow] = {}
    leaves: dict[tuple[int, int], tuple[str, ...]] = {}
    for block_number, log_index in positions:
        row = conn.execute(
            select(*_ANCHOR_COLUMNS).where(ba.block_number == block_number, ba.log_index == log_index)
        ).first()
        if row is not None:
            found[(block_number, log_index)] = _anchor_row(tuple(row))
        stmt = select(bs.leaf_hash).where(bs.block_number == block_number, bs.log_index == log_index)
        leaves[(block_number, log_index)] = tuple(
            str(leaf) for leaf in conn.execute(stmt.order_by(bs.leaf_index)).scalars()
        )
    return found, leaves


def _before(table: Table, block_number: int, log_index: int) -> ColumnElement[bool]:
    c = table.c
    return or_(c.block_number < block_number, and_(c.block_number == block_number, c.log_index < log_index))


def batch_context(
    store: Store, *, block_number: int, log_index: int, submitter: str, item_ids: Sequence[str]
) -> BatchContext:
    """The facts :func:`~ledger_service.core.batch_document.scan_refusals` and ``check_continuity`` need for the
    batch anchored at (``block_number``, ``log_index``) by ``submitter``, scanning ``item_ids``."""
    submitter = submitter.lower()
    ids = sorted({i.lower() for i in item_ids})
    with read_transaction(store.engine) as conn:
        roles = _roles(conn, submitter, block_number, log_index)
        sells_for = _sells_for(conn, submitter, block_number, log_index)
        facts = _items(conn, ids, block_number, log_index)
        heads = _heads(conn, ids)
    return BatchContext(frozenset(roles), frozenset(sells_for), facts, heads)


def _roles(conn: Connection, account: str, block_number: int, log_index: int) -> set[str]:
    rc = role_changes.c
    held = _still_set(conn, rc.role, rc.granted, rc.account == account, role_changes, block_number, log_index)
    return {_ROLE_NAMES.get(role, role) for role in held}


def _sells_for(conn: Connection, seller: str, block_number: int, log_index: int) -> set[str]:
    sc = seller_changes.c
    return _still_set(conn, sc.merchant, sc.allowed, sc.seller == seller, seller_changes, block_number, log_index)


def _still_set(
    conn: Connection,
    key: ColumnElement[str],
    flag: ColumnElement[bool],
    where: ColumnElement[bool],
    table: Table,
    block_number: int,
    log_index: int,
) -> set[str]:
    """The keys whose last change before the position (of ``table``'s rows matching ``where``) set ``flag``."""
    stmt = (
        select(key, flag)
        .where(where, _before(table, block_number, log_index))
        .order_by(table.c.block_number, table.c.log_index)
    )
    last: dict[str, bool] = {}
    for name, value in conn.execute(stmt):
        last[name] = bool(value)
    return {name for name, value in last.items() if value}


def _items(conn: Connection, ids: list[str], block_number: int, log_index: int) -> dict[str, ItemFacts]:
    merchant: dict[str, str] = {}
    destroyed: set[str] = set()
    ir, mc, ie = item_registrations.c, merchant_changes.c, item_events.c
    for part in chunks(conn, ids):
        stmt = select(ir.item_id, ir.merchant).where(
            ir.item_id.in_(part), _before(item_registrations, block_number, log_index)
        )
        merchant.update({item_id: m for item_id, m in conn.execute(stmt)})
        changes = (
            select(mc.item_id, mc.new_merchant)
            .where(mc.item_id.in_(part), _before(merchant_changes, block_number, log_index))
            .order_by(mc.block_number, mc.log_index)
        )
        for item_id, new_merchant in conn.execute(changes):
            merchant[item_id] = new_merchant
        # Destroying is final (nothing is recorded after it), so an item not destroyed in the index now was not
        # destroyed at the anchor either: only the few destroyed ones are looked up among their events, by the
        # item_key index (item_events has none on item_id: a filter on it alone read every event of the index).
        gone = sorted(
            conn.execute(select(items.c.item_id).where(items.c.item_id.in_(part), items.c.destroyed)).scalars()
        )
        if gone:
            ends = select(ie.item_id).where(
                ie.item_key.in_(sorted({item_key(item_id) for item_id in gone})),
                ie.item_id.in_(gone),
                ie.biz_step == int(BizStep.DESTROYING),
                _before(item_events, block_number, log_index),
            )
            destroyed.update(item_id for (item_id,) in conn.execute(ends))
    return {item_id: ItemFacts(m, item_id in destroyed) for item_id, m in merchant.items()}


def _heads(conn: Connection, ids: list[str]) -> dict[str, tuple[int, str]]:
    bs = batched_scans.c
    heads: dict[str, tuple[int, str]] = {}
    # Each item's last seq by the (item_id, seq) key, one index probe per item: a GROUP BY on batched_scans read
    # every batched scan of the items, ever more as their chains grow. The item's registration drives the lookup:
    # a batched scan's item was registered before its anchor (a batch of an unregistered item is refused).
    later = batched_scans.alias("later")
    ir = item_registrations.c
    last = select(func.max(later.c.seq)).where(later.c.item_id == ir.item_id).scalar_subquery()
    for part in chunks(conn, ids):
        stmt = (
            select(bs.item_id, bs.seq, bs.leaf_hash)
            .select_from(item_registrations)
            .join(batched_scans, and_(bs.item_id == ir.item_id, bs.seq == last))
            .where(ir.item_id.in_(part))
        )
        heads.update({item_id: (seq, leaf) for item_id, seq, leaf in conn.execute(stmt)})
    return heads
