"""Queries of the captured EPCIS events (``epcis_events``, ``epcis_event_epcs``, ``epcis_biz_transactions``).

Invariants:
- an event hash ID is in ``epcis_events`` at most once (unique): :func:`claim_events` inserts a capture's
  events before anything is sent, and an event another capture already holds, recorded or being sent, is
  not claimed again (that is how one document captured twice at the same time records each event once);
- a ``claimed`` row is either turned ``recorded`` (:func:`mark_recorded`, with its transaction and the
  item seqs the chain gave it) or deleted (:func:`release_claims`) by the capture that claimed it;
- the rows are the searchable part of the captured documents (the document store holds each as received,
  its digest is the on-chain ``document``), so they can be rebuilt from the chain and the document store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import BigInteger, Connection, and_, bindparam, delete, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from ledger_service.core.codes import ROLE_IDS
from ledger_service.core.keccak import keccak_text
from ledger_service.epcis.serialize import ChainRecord
from ledger_service.store._db import read_transaction, write_transaction
from ledger_service.store.batches import AnchorRow, BatchedScanRow, batches_at
from ledger_service.store.handle import Store
from ledger_service.store.tables import (
    BATCH_APPLIED,
    batch_anchors,
    batched_scans,
    epcis_biz_transactions,
    epcis_event_epcs,
    epcis_events,
    item_events,
    item_key,
    items,
    returns,
    roles,
    sales,
    sellers,
)

CLAIMED, RECORDED, BATCHED = "claimed", "recorded", "batched"
"""``batched``: sent to the scan batcher (its scans are anchored in batches, not as item events)."""
_PARENT_ROLE = 1
"""``epcis_event_epcs.role`` of a parentID (no item event is written for it)."""
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class EventClaim:
    """A captured event's row, before it is sent."""

    hash_id: str
    event_id: str | None
    event_index: int
    event_type: str
    action: str | None
    event_time: int
    time_zone_offset: str
    biz_step: str
    disposition: str
    read_point: str | None
    document: str
    body: str
    """The event's JSON as sent."""
    namespaces: str
    """The captured document's inline @context prefixes, JSON."""
    epcs: tuple[tuple[str, int, str], ...]
    """(item id, role, EPC)."""
    biz_transactions: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Recorded:
    """Where a claimed event went on-chain."""

    event_key: int
    tx_hash: str
    block_number: int
    seqs: Mapping[str, int]
    """item id -> the seq its ItemEventRecorded got."""


@dataclass(frozen=True, slots=True)
class ItemFacts:
    """What the capture's rules need of an item the index knows."""

    item_id: str
    merchant: str
    destroyed: bool
    event_count: int
    last_event_ms: int
    """The time of its last event, in unix ms: the eventTime of a captured one, the block time otherwise."""


@dataclass(frozen=True, slots=True)
class ActorFacts:
    roles: frozenset[str]
    """Role names (``MANUFACTURER_ROLE``...) the account holds."""
    sells_for: frozenset[str]
    """Merchants that made the account their seller."""


_ROLE_NAMES = {"0x" + value.hex(): name for name, value in ROLE_IDS.items()}


def actor_facts(store: Store, account: str) -> ActorFacts:
    with read_transaction(store.engine) as conn:
        return actor_facts_in(conn, account)


def actor_facts_in(conn: Connection, account: str) -> ActorFacts:
    """:func:`actor_facts` in the caller's transaction."""
    account = account.lower()
    held = conn.execute(select(roles.c.role).where(roles.c.account == account)).scalars().all()
    merchants = conn.execute(select(sellers.c.merchant).where(sellers.c.seller == account)).scalars().all()
    return ActorFacts(
        roles=frozenset(_ROLE_NAMES.get(r, r) for r in held), sells_for=frozenset(m.lower() for m in merchants)
    )


def item_facts(store: Store, item_ids: Iterable[str]) -> dict[str, ItemFacts]:
    """The indexed items among ``item_ids``, each with the time of its last event."""
    wanted = sorted({i.lower() for i in item_ids})
    found: dict[str, ItemFacts] = {}
    e = epcis_events.c
    p = epcis_event_epcs.c
    with read_transaction(store.engine) as conn:
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            rows = conn.execute(
                select(
                    items.c.item_id,
                    items.c.merchant,
                    items.c.destroyed,
                    items.c.event_count,
                    items.c.last_event_at,
                ).where(items.c.item_id.in_(chunk))
            ).all()
            captured = dict(
                conn.execute(
                    select(p.item_id, func.max(e.event_time))
                    .select_from(epcis_event_epcs.join(epcis_events, e.event_key == p.event_key))
                    .where(p.item_id.in_(chunk), e.state == RECORDED)
                    .group_by(p.item_id)
                ).all()
            )
            last_seq = dict(
                conn.execute(select(p.item_id, func.max(p.seq)).where(p.item_id.in_(chunk)).group_by(p.item_id)).all()
            )
            for row in rows:
                last_captured = captured.get(row.item_id)
                seq = last_seq.get(row.item_id)
                # An event after the last captured one (the escrow's, a script's) counts with its block time.
                uncaptured_after = seq is None or int(seq) < int(row.event_count) - 1
                times = [int(last_captured)] if last_captured is not None else []
                if uncaptured_after:
                    times.append(int(row.last_event_at) * 1000)
                found[row.item_id] = ItemFacts(
                    item_id=row.item_id,
                    merchant=row.merchant,
                    destroyed=bool(row.destroyed),
                    event_count=int(row.event_count),
                    last_event_ms=max(times) if times else 0,
                )
    return found


def claim_events(store: Store, *, capture_id: str, actor: str, claims: Sequence[EventClaim]) -> dict[str, int]:
    """Claims each event by its hash ID, in one transaction; hash ID -> event_key of those this call claimed
    (the others are held by an earlier or a concurrent capture). The rows go in as batched statements (one
    compiled statement for all of them), not one statement each."""
    if not claims:
        return {}
    dialect = postgresql if store.engine.dialect.name == "postgresql" else sqlite
    e = epcis_events.c
    insert = (
        dialect.insert(epcis_events)
        .on_conflict_do_nothing(index_elements=["hash_id"])
        .returning(e.event_key, e.hash_id)
    )
    rows = [
        {
            "hash_id": claim.hash_id,
            "event_id": claim.event_id,
            "capture_id": capture_id,
            "event_index": claim.event_index,
            "event_type": claim.event_type,
            "action": claim.action,
            "event_time": claim.event_time,
            "time_zone_offset": claim.time_zone_offset,
            "record_time": None,
            "biz_step": claim.biz_step,
            "disposition": claim.disposition,
            "read_point": claim.read_point,
            "document": claim.document,
            "body": claim.body,
            "namespaces": claim.namespaces,
            "actor": actor.lower(),
            "state": CLAIMED,
            "tx_hash": None,
            "block_number": None,
        }
        for claim in claims
    ]
    claimed: dict[str, int] = {}
    with write_transaction(store.engine) as conn:
        inserted = {hash_id: int(key) for key, hash_id in conn.execute(insert, rows)}
        epc_rows: list[dict[str, Any]] = []
        transaction_rows: list[dict[str, Any]] = []
        for claim in claims:
            key = inserted.get(claim.hash_id)
            if key is None or claim.hash_id in claimed:  # held elsewhere, or twice in this document
                continue
            claimed[claim.hash_id] = key
            epcs = {(item_id, role): epc for item_id, role, epc in claim.epcs}
            epc_rows += [
                {
                    "event_key": key,
                    "item_id": item_id,
                    "item_key": item_key(item_id),
                    "role": role,
                    "epc": epc,
                    "seq": None,
                }
                for (item_id, role), epc in epcs.items()
            ]
            transaction_rows += [
                {"event_key": key, "type": kind, "value": value} for kind, value in sorted(set(claim.biz_transactions))
            ]
        if epc_rows:
            conn.execute(epcis_event_epcs.insert(), epc_rows)
        if transaction_rows:
            conn.execute(epcis_biz_transactions.insert(), transaction_rows)
    return claimed


def release_claims(store: Store, event_keys: Iterable[int]) -> None:
    """Deletes claimed (never recorded) events, so that a later capture of them is not taken for a duplicate."""
    keys = sorted(set(event_keys))
    with write_transaction(store.engine) as conn:
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            held = select(epcis_events.c.event_key).where(
                epcis_events.c.event_key.in_(chunk), epcis_events.c.state == CLAIMED
            )
            mine = conn.execute(held).scalars().all()
            if not mine:
                continue
            conn.execute(delete(epcis_event_epcs).where(epcis_event_epcs.c.event_key.in_(mine)))
            conn.execute(delete(epcis_biz_transactions).where(epcis_biz_transactions.c.event_key.in_(mine)))
            conn.execute(delete(epcis_events).where(epcis_events.c.event_key.in_(mine)))


@dataclass(frozen=True, slots=True)
class HeldClaim:
    """A claimed (not recorded) event of a capture."""

    event_key: int
    hash_id: str
    event_index: int
    document: str


def held_claims(store: Store, capture_id: str) -> list[HeldClaim]:
    """The events ``capture_id`` claimed and has not marked recorded, in document order."""
    e = epcis_events.c
    stmt = (
        select(e.event_key, e.hash_id, e.event_index, e.document)
        .where(e.capture_id == capture_id, e.state == CLAIMED)
        .order_by(e.event_index)
    )
    with read_transaction(store.engine) as conn:
        return [HeldClaim(int(r.event_key), r.hash_id, int(r.event_index), r.document) for r in conn.execute(stmt)]


def recorded_count(store: Store, capture_id: str) -> int:
    """How many events ``capture_id`` recorded."""
    e = epcis_events.c
    stmt = select(func.count()).where(e.capture_id == capture_id, e.state == RECORDED)
    with read_transaction(store.engine) as conn:
        return int(conn.execute(stmt).scalar_one())


def mark_recorded(store: Store, recorded: Sequence[Recorded], *, record_time_ms: int) -> None:
    """Marks events on-chain, with their transaction and the seq each item got, in one transaction."""
    if not recorded:
        return
    e = epcis_events.c
    p = epcis_event_epcs.c
    events = (
        update(epcis_events)
        .where(e.event_key == bindparam("key_"))
        .values(state=RECORDED, tx_hash=bindparam("tx_"), block_number=bindparam("block_"), record_time=record_time_ms)
    )
    seqs = (
        update(epcis_event_epcs)
        .where(p.event_key == bindparam("key_"), p.item_id == bindparam("item_"), p.role != _PARENT_ROLE)
        .values(seq=bindparam("seq_"))
    )
    with write_transaction(store.engine) as conn:
        conn.execute(events, [{"key_": r.event_key, "tx_": r.tx_hash, "block_": r.block_number} for r in recorded])
        written = [
            {"key_": r.event_key, "item_": item_id, "seq_": seq} for r in recorded for item_id, seq in r.seqs.items()
        ]
        if written:
            conn.execute(seqs, written)


def mark_batched_in(conn: Connection, event_keys: Sequence[int]) -> int:
    """Marks claimed events as sent to the scan batcher (captured, but not as item events on-chain), inside the
    caller's transaction: the one that queues their scans (``scan_queue.enqueue_scans``), so a capture killed
    between the two leaves neither. How many of ``event_keys`` were still claimed and are now batched."""
    e = epcis_events.c
    keys = sorted(set(event_keys))
    marked = 0
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        result = conn.execute(
            update(epcis_events).where(e.event_key.in_(chunk), e.state == CLAIMED).values(state=BATCHED)
        )
        marked += result.rowcount
    return marked


def known_hash_ids(store: Store, hash_ids: Sequence[str]) -> set[str]:
    """The hash IDs among ``hash_ids`` already captured (recorded, or claimed by a capture under way)."""
    found: set[str] = set()
    with read_transaction(store.engine) as conn:
        for start in range(0, len(hash_ids), _CHUNK):
            chunk = hash_ids[start : start + _CHUNK]
            found.update(
                conn.execute(select(epcis_events.c.hash_id).where(epcis_events.c.hash_id.in_(chunk))).scalars()
            )
    return found


# ---- the query interface ----------------------------------------------------------------------------------

_ZERO = "0x" + "00" * 32
CAPTURED, CHAIN = 0, 1
"""The two sources of an answer: captured events, and events only the chain holds (no capture document)."""
_MATCH_EPC_ROLES = (0, 2)
"""MATCH_epc looks at epcList and childEPCs; MATCH_anyEPC at every list and parentID."""


@dataclass(frozen=True, slots=True)
class EventQuery:
    """A SimpleEventQuery's conditions (all given ones must hold), plus the reader's restriction."""

    event_types: tuple[str, ...] = ()
    biz_steps: tuple[str, ...] = ()
    """As stored: CBV short names, or URIs."""
    biz_step_codes: tuple[int, ...] = ()
    """The same steps' on-chain codes (for events without a capture document)."""
    dispositions: tuple[str, ...] = ()
    disposition_codes: tuple[int, ...] = ()
    epcs: tuple[str, ...] = ()
    epc_prefixes: tuple[str, ...] = ()
    any_epcs: tuple[str, ...] = ()
    any_epc_prefixes: tuple[str, ...] = ()
    ge_event_time: int | None = None
    """Unix milliseconds, inclusive."""
    lt_event_time: int | None = None
    ge_record_time: int | None = None
    read_points: tuple[str, ...] = ()
    read_point_locations: tuple[str, ...] = ()
    """The read points that are SGLN URNs, as the contract's bytes32 location (0x hex)."""
    biz_transactions: tuple[tuple[str, str], ...] = ()
    """(type, value); type empty: any type."""
    biz_transaction_digests: tuple[str, ...] = ()
    """The business transactions as the chain holds them (0x hex), for events without a capture document."""
    capture_id: str | None = None
    merchant: str | None = None
    """Only events on items whose merchant of record this is."""
    item_id: str | None = None
    """Only events on this item."""

    @property
    def chain_side(self) -> bool:
        """Whether events without a capture document can match at all."""
        if self.capture_id is not None or (self.event_types and "ObjectEvent" not in self.event_types):
            return False
        if self.biz_steps and not self.biz_step_codes:
            return False
        if self.dispositions and not self.disposition_codes:
            return False
        if self.read_points and not self.read_point_locations:
            return False
        return not (self.biz_transactions and not self.biz_transaction_digests)


@dataclass(frozen=True, slots=True, order=True)
class PageKey:
    """An event's place in the answer order: event time, source, then insertion (or chain) order."""

    time_ms: int
    source: int
    key: int


@dataclass(frozen=True, slots=True)
class ChainRow:
    """One indexed ItemEventRecorded (its ``document_cid`` left for the caller: CIDs are the documents
    package's), and the EPC it was written on."""

    epc: str
    record: ChainRecord


@dataclass(frozen=True, slots=True)
class BatchedFound:
    """The applied batched scans that may be a batched captured event's (one per EPC, matched by item, captured
    document, submitter and second; the caller checks the rest), with what their Merkle proofs need."""

    epcs: tuple[str, ...]
    """The event's EPCs as sent that got a scan each (every list but parentID)."""
    scans: tuple[tuple[str, BatchedScanRow], ...]
    """(EPC as sent, scan row)."""
    anchors: dict[tuple[int, int], AnchorRow]
    leaves: dict[tuple[int, int], tuple[str, ...]]
    """Each batch's leaf hashes in leaf index order."""


@dataclass(frozen=True, slots=True)
class FoundEvent:
    key: PageKey
    hash_id: str | None
    """A captured event's hash ID (None: a chain event)."""
    document: str | None
    """A captured event's document digest (the captured document's, shared by its events)."""
    event_index: int | None
    """A captured event's position in that document's eventList."""
    body: str | None
    """A captured event's JSON as sent, and its document's inline prefixes (JSON)."""
    namespaces: str | None
    record_time_ms: int | None
    rows: tuple[ChainRow, ...]
    batched: BatchedFound | None = None
    """A captured event sent to the scan batcher: its scans, once applied (``rows`` is then empty)."""


def _position(block_number: int, log_index: int) -> int:
    return block_number * (1 << 20) + log_index


_MANY_ITEMS = 1_000
"""Up to this many items named by an EPC pattern or held by a merchant, their events are found item by item
through the item indexes; more, and the events are read in time order and filtered by a join (then matches are
dense enough that a page is found after a short read)."""


def _prefix_condition(column: Any, prefix: str, dialect: str) -> Any:
    if dialect == "postgresql":
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return column.like(escaped + "%", escape="\\")
    # SQLite's LIKE ignores case and no index serves it: a range on the text does, and means "starts with".
    return and_(column >= prefix, column < prefix + "\U0010ffff")


def _item_of(epc: str) -> str:
    return "0x" + keccak_text(epc).hex()


@dataclass(frozen=True, slots=True)
class _Scope:
    """The items a query's events may be on, as far as they are few: ``items`` the intersection of every
    condition that names few items (None: no such condition), ``joined`` the conditions on ``items`` columns
    that name many (applied by joining the items table)."""

    items: frozenset[str] | None
    joined: tuple[Any, ...]


def _few(conn: Connection, condition: Any) -> frozenset[str] | None:
    """The ids of the items matching ``condition`` (an indexed one), or None when there are more than
    _MANY_ITEMS."""
    found = conn.execute(select(items.c.item_id).where(condition).limit(_MANY_ITEMS + 1)).scalars().all()
    return None if len(found) > _MANY_ITEMS else frozenset(found)


def _scope(conn: Connection, query: EventQuery, *, by_epc: bool) -> _Scope:
    """The scope of the reader's restriction (merchant, item), and with ``by_epc`` of the MATCH_ parameters
    too (the chain's events; a captured event is matched on its EPCs as sent, which are not always the URI
    its item was registered with)."""
    it = items.c
    dialect = conn.dialect.name
    sets: list[frozenset[str]] = []
    joined: list[Any] = []
    for exact, prefixes in ((query.epcs, query.epc_prefixes), (query.any_epcs, query.any_epc_prefixes)):
        if not by_epc or (not exact and not prefixes):
            continue
        named: set[str] | None = {_item_of(e) for e in exact}
        for prefix in prefixes:
            found = _few(conn, _prefix_condition(it.uri, prefix, dialect))
            named = None if found is None or named is None else named | found
        if named is not None and len(named) <= _MANY_ITEMS:
            sets.append(frozenset(named))
        else:
            ids = sorted({_item_of(e) for e in exact})
            joined.append(
                or_(*([it.item_id.in_(ids)] if ids else []), *(_prefix_condition(it.uri, p, dialect) for p in prefixes))
            )
    if query.item_id is not None:
        sets.append(frozenset({query.item_id}))
    if query.merchant is not None:
        mine = _few(conn, it.merchant == query.merchant)
        if mine is None:
            joined.append(it.merchant == query.merchant)
        else:
            sets.append(mine)
    return _Scope(frozenset.intersection(*sets) if sets else None, tuple(joined))


def _captured(
    conn: Connection, query: EventQuery, scope: _Scope, after: PageKey | None, limit: int
) -> list[tuple[PageKey, Any]]:
    e = epcis_events.c
    p = epcis_event_epcs.c
    dialect = conn.dialect.name
    on_chain = e.state == RECORDED
    if query.ge_record_time is not None:
        on_chain = and_(on_chain, e.record_time >= query.ge_record_time)
    conditions: list[Any] = [or_(on_chain, _batched_applied(e, query.ge_record_time))]
    for exact, prefixes, lists in (
        (query.epcs, query.epc_prefixes, _MATCH_EPC_ROLES),
        (query.any_epcs, query.any_epc_prefixes, None),
    ):
        if not exact and not prefixes:
            continue
        matches = [p.item_id.in_(sorted({_item_of(x) for x in exact}))] if exact else []
        matches += [_prefix_condition(p.epc, prefix, dialect) for prefix in prefixes]
        chosen = select(p.event_key).where(or_(*matches))
        if lists is not None:
            chosen = chosen.where(p.role.in_(lists))
        conditions.append(e.event_key.in_(chosen))
    if query.event_types:
        conditions.append(e.event_type.in_(query.event_types))
    if query.biz_steps:
        conditions.append(e.biz_step.in_(query.biz_steps))
    if query.dispositions:
        conditions.append(e.disposition.in_(query.dispositions))
    if query.ge_event_time is not None:
        conditions.append(e.event_time >= query.ge_event_time)
    if query.lt_event_time is not None:
        conditions.append(e.event_time < query.lt_event_time)
    if query.read_points:
        conditions.append(e.read_point.in_(query.read_points))
    if query.capture_id is not None:
        conditions.append(e.capture_id == query.capture_id)
    b = epcis_biz_transactions.c
    for kind, value in query.biz_transactions:
        chosen = select(b.event_key).where(b.value == value)
        if kind:
            chosen = chosen.where(b.type.in_(_transaction_types(kind)))
        conditions.append(e.event_key.in_(chosen))
    if scope.items is not None:
        conditions.append(e.event_key.in_(select(p.event_key).where(p.item_id.in_(sorted(scope.items)))))
    if scope.joined:
        # Many items: tested event by event as the time index is read (a list of their events would be long).
        on_them = select(p.event_key).join(items, items.c.item_id == p.item_id).where(p.event_key == e.event_key)
        conditions.append(on_them.where(*scope.joined).exists())
    if after is not None:
        later = e.event_time > after.time_ms
        if after.source == CAPTURED:
            later = or_(later, and_(e.event_time == after.time_ms, e.event_key > after.key))
        conditions.append(later)
    stmt = select(epcis_events).where(*conditions).order_by(e.event_time, e.event_key).limit(limit)
    return [(PageKey(int(r.event_time), CAPTURED, int(r.event_key)), r) for r in conn.execute(stmt)]


def _batched_matches() -> Any:
    """The applied batched scans of a batched captured event's items: the capture queued one scan per item with
    the captured document's digest, its account as submitter and the event's time in seconds (a batched scan
    row exists only once its batch was applied)."""
    e = epcis_events.c
    p = epcis_event_epcs.c
    bs = batched_scans.c
    return and_(
        p.event_key == e.event_key,
        p.role != _PARENT_ROLE,
        bs.item_id == p.item_id,
        bs.document == e.document,
        bs.submitter == e.actor,
        bs.time == e.event_time // 1000,
    )


def _batched_applied(e: Any, ge_record_time: int | None) -> Any:
    """A batched captured event whose scans are applied (anchored at or after ``ge_record_time``: a batched event's
    record time is its anchor's block time)."""
    ba = batch_anchors.c
    bs = batched_scans.c
    found = (
        select(bs.item_id)
        .select_from(epcis_event_epcs.join(batched_scans, batched_scans.c.item_id == epcis_event_epcs.c.item_id))
        .where(_batched_matches())
    )
    if ge_record_time is not None:
        anchored = select(ba.block_number).where(
            ba.block_number == bs.block_number,
            ba.log_index == bs.log_index,
            ba.state == BATCH_APPLIED,
            ba.anchored_at * 1000 >= ge_record_time,
        )
        found = found.where(anchored.exists())
    return and_(e.state == BATCHED, found.exists())


def _batched_found(conn: Connection, rows: Sequence[Any]) -> dict[int, BatchedFound]:
    """The applied batched scans of these batched captured event rows, by event key (see :class:`BatchedFound`)."""
    keys = sorted({int(r.event_key) for r in rows})
    if not keys:
        return {}
    e = epcis_events.c
    p = epcis_event_epcs.c
    bs = batched_scans.c
    stmt = (
        select(p.event_key, p.epc, *batched_scans.c)
        .select_from(
            epcis_event_epcs.join(epcis_events, e.event_key == p.event_key).join(batched_scans, bs.item_id == p.item_id)
        )
        .where(p.event_key.in_(keys), _batched_matches())
        .order_by(p.event_key, bs.item_id, bs.seq)
    )
    epcs: dict[int, set[str]] = {}
    named = select(p.event_key, p.epc).where(p.event_key.in_(keys), p.role != _PARENT_ROLE)
    for key, epc in conn.execute(named):
        epcs.setdefault(int(key), set()).add(str(epc))
    scans: dict[int, list[tuple[str, BatchedScanRow]]] = {}
    for row in conn.execute(stmt):
        scans.setdefault(int(row[0]), []).append((str(row[1]), BatchedScanRow(*row[2:])))
    positions = sorted({(s.block_number, s.log_index) for found in scans.values() for _, s in found})
    anchors, leaves = batches_at(conn, positions)
    return {
        key: BatchedFound(
            tuple(sorted(epcs.get(key, ()))),
            tuple(found),
            {at: a for at, a in anchors.items() if any((s.block_number, s.log_index) == at for _, s in found)},
            {at: v for at, v in leaves.items() if any((s.block_number, s.log_index) == at for _, s in found)},
        )
        for key, found in scans.items()
    }


def _transaction_types(kind: str) -> list[str]:
    """A bizTransaction type as sent in its forms (short name, CBV URN, GS1 web URI)."""
    return [kind, f"urn:epcglobal:cbv:btt:{kind}", f"https://ref.gs1.org/cbv/BTT-{kind}"]


_FIRST_BLOCK_AT = text(
    """
    WITH RECURSIVE search(lo, hi) AS (
        SELECT CAST(0 AS BIGINT), CAST((SELECT COALESCE(MAX(block_number), -1) + 1 FROM item_events) AS BIGINT)
      UNION ALL
        SELECT
            CAST(CASE WHEN :probe_ts IS NULL OR :probe_ts >= :at THEN lo ELSE :probe_block + 1 END AS BIGINT),
            CAST(CASE WHEN :probe_ts IS NULL OR :probe_ts >= :at THEN (lo + hi) / 2 ELSE hi END AS BIGINT)
        FROM search WHERE lo < hi
    )
    SELECT MAX(lo) AS first_block, (SELECT MAX(block_number) FROM item_events) AS head FROM search
    """.replace(
        ":probe_ts",
        "(SELECT timestamp FROM item_events WHERE block_number >= (lo + hi) / 2 ORDER BY block_number LIMIT 1)",
    ).replace(
        ":probe_block",
        "(SELECT block_number FROM item_events WHERE block_number >= (lo + hi) / 2 ORDER BY block_number LIMIT 1)",
    )
).bindparams(bindparam("at", type_=BigInteger()))
"""A binary search for the first block at a time, run by the database in one statement (a recursive query
whose every step is a read of item_events' primary key): sent step by step it cost a few dozen round trips,
most of a time page's cost on PostgreSQL."""


def _first_block_at(conn: Connection, timestamp: int) -> int | None:
    """The first block holding an item event at or after ``timestamp`` (block times only grow): a binary search
    over the events' primary key; None when there is none."""
    row = conn.execute(_FIRST_BLOCK_AT, {"at": timestamp}).one()
    if row.head is None or int(row.first_block) > int(row.head):
        return None
    return int(row.first_block)


def _ceil_s(ms: int) -> int:
    return -(-ms // 1000)


def _chain_only(
    conn: Connection, query: EventQuery, scope: _Scope, after: PageKey | None, limit: int, until_ms: int | None
) -> list[tuple[PageKey, Any]]:
    """Item events without a capture document, in chain order (= time order: block times only grow). Found
    through an index whatever the parameters: the items' (item_key, seq) when the query names few items, the
    business transaction's partial index, else the primary key in chain order from the first block in time."""
    ie = item_events.c
    it = items.c
    p = epcis_event_epcs.c
    captured = select(p.event_key).where(p.item_id == ie.item_id, p.seq == ie.seq, p.role != _PARENT_ROLE)
    conditions: list[Any] = [~captured.exists(), *scope.joined]
    if query.biz_step_codes:
        conditions.append(ie.biz_step.in_(query.biz_step_codes))
    if query.disposition_codes:
        conditions.append(ie.disposition.in_(query.disposition_codes))
    if query.read_point_locations:
        conditions.append(ie.location.in_(query.read_point_locations))
    by_item = scope.items is not None
    if scope.items is not None:
        if not scope.items:
            return []
        ids = sorted(scope.items)
        conditions += [ie.item_key.in_(sorted({item_key(i) for i in ids})), ie.item_id.in_(ids)]
    if query.biz_transaction_digests:
        # The partial index's own condition spelled out: SQLite uses a partial index only when the query says so.
        conditions += [ie.biz_transaction.in_(query.biz_transaction_digests), ie.biz_transaction != _ZERO]
        by_item = True
    lower_s = max((_ceil_s(t) for t in (query.ge_event_time, query.ge_record_time) if t is not None), default=None)
    if after is not None:
        lower_s = max(lower_s or 0, _ceil_s(after.time_ms))
    uppers = [_ceil_s(query.lt_event_time) if query.lt_event_time is not None else None]
    # Not after the captured side's last event of this page: nothing later can be on it.
    uppers.append(until_ms // 1000 + 1 if until_ms is not None else None)
    upper_s = min((s for s in uppers if s is not None), default=None)
    if lower_s is not None:
        conditions.append(ie.timestamp >= lower_s)
        if not by_item:  # a block bound too, so that the read starts there (block times only grow)
            first = _first_block_at(conn, lower_s)
            if first is None:
                return []
            conditions.append(ie.block_number >= first)
    if upper_s is not None:
        conditions.append(ie.timestamp < upper_s)
        if not by_item:
            beyond = _first_block_at(conn, upper_s)
            if beyond is not None:
                conditions.append(ie.block_number < beyond)
    if after is not None and after.time_ms % 1000 == 0:
        # Events at the cursor's very second: those after it in chain order (captured ones sort first).
        at_cursor = ie.timestamp == after.time_ms // 1000
        if after.source == CHAIN:
            block, index = divmod(after.key, 1 << 20)
            at_cursor = and_(
                at_cursor, or_(ie.block_number > block, and_(ie.block_number == block, ie.log_index > index))
            )
        conditions.append(or_(ie.timestamp > after.time_ms // 1000, at_cursor))
    stmt = (
        select(item_events, it.uri)
        .select_from(item_events.join(items, it.item_id == ie.item_id))
        .where(*conditions)
        .order_by(ie.block_number, ie.log_index)
        .limit(limit)
    )
    return [
        (PageKey(int(r.timestamp) * 1000, CHAIN, _position(int(r.block_number), int(r.log_index))), r)
        for r in conn.execute(stmt)
    ]


def _chain_row(row: Any, epc: str, types: Mapping[str, str]) -> ChainRow:
    return ChainRow(
        epc,
        ChainRecord(
            item_id=row.item_id,
            seq=int(row.seq),
            biz_step=int(row.biz_step),
            disposition=int(row.disposition),
            actor=row.actor,
            location=row.location,
            document=row.document,
            document_cid=None,
            biz_transaction=row.biz_transaction,
            biz_transaction_type=types.get(row.biz_transaction),
            timestamp=int(row.timestamp),
            prev_hash=row.prev_hash,
            event_hash=row.event_hash,
            tx_hash=row.tx_hash,
            block_number=int(row.block_number),
            block_hash=row.block_hash,
            log_index=int(row.log_index),
        ),
    )


def _types(conn: Connection, rows: Iterable[Any]) -> dict[str, str]:
    """The business transactions of these item event rows that the index can name: sale orders ``po``, returns
    ``rma`` (looked up by the rows' items)."""
    ids = sorted({r.item_id for r in rows if r.biz_transaction != _ZERO})
    types: dict[str, str] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        types.update(
            {r: "po" for r in conn.execute(select(sales.c.order_ref).where(sales.c.item_id.in_(chunk))).scalars()}
        )
        types.update(
            {r: "rma" for r in conn.execute(select(returns.c.return_id).where(returns.c.item_id.in_(chunk))).scalars()}
        )
    return types


def _proofs(conn: Connection, event_keys: Sequence[int]) -> dict[int, list[tuple[Any, str]]]:
    """The indexed ItemEventRecorded rows of captured events (each with the EPC it was written for), by event
    key, in chain order: one join through item_events' (item_key, seq) index."""
    if not event_keys:
        return {}
    p = epcis_event_epcs.c
    ie = item_events.c
    on = and_(ie.item_key == p.item_key, ie.seq == p.seq, ie.item_id == p.item_id)
    stmt = (
        select(p.event_key, p.epc, item_events)
        .select_from(epcis_event_epcs.join(item_events, on))
        .where(p.event_key.in_(event_keys), p.role != _PARENT_ROLE)
        .order_by(p.event_key, ie.block_number, ie.log_index)
    )
    found: dict[int, list[tuple[Any, str]]] = {}
    seen: set[tuple[int, int, int]] = set()
    for row in conn.execute(stmt):
        place = (int(row.event_key), int(row.block_number), int(row.log_index))
        if place not in seen:  # an item in two of the event's lists was written once
            seen.add(place)
            found.setdefault(int(row.event_key), []).append((row, row.epc))
    return found


def _captured_found(key: PageKey, row: Any, rows: Sequence[ChainRow]) -> FoundEvent:
    return FoundEvent(
        key, row.hash_id, row.document, row.event_index, row.body, row.namespaces, row.record_time, tuple(rows)
    )


def _chain_found(key: PageKey, row: Any, types: Mapping[str, str]) -> FoundEvent:
    return FoundEvent(key, None, None, None, None, None, int(row.timestamp) * 1000, (_chain_row(row, row.uri, types),))


def query_events(
    store: Store, query: EventQuery, *, after: PageKey | None, limit: int
) -> tuple[list[FoundEvent], PageKey | None]:
    """One page of the events matching ``query`` after ``after``, in (event time, source, key) order, and where
    the next page starts (None: none follows). A page is read in one snapshot: an event inserted meanwhile is
    on a later page or, when it sorts before the cursor, on none; no event appears twice and none that existed
    is skipped.

    A captured event appears once the indexer has its transactions (its proof is in the answer); one whose
    proof is not indexed yet is left out of the page (it sorts where it will appear)."""
    with read_transaction(store.engine) as conn:
        captured = _captured(conn, query, _scope(conn, query, by_epc=False), after, limit + 1)
        until = captured[-1][0].time_ms if len(captured) > limit else None
        chain = []
        if query.chain_side:
            chain = _chain_only(conn, query, _scope(conn, query, by_epc=True), after, limit + 1, until)
        merged = sorted(captured + chain, key=lambda entry: entry[0])
        page, more = merged[:limit], len(merged) > limit
        proofs = _proofs(conn, [k.key for k, r in page if k.source == CAPTURED and r.state == RECORDED])
        batched = _batched_found(conn, [r for k, r in page if k.source == CAPTURED and r.state == BATCHED])
        types = _types(
            conn, [*(r for k, r in page if k.source == CHAIN), *(r for rows in proofs.values() for r, _ in rows)]
        )
    found: list[FoundEvent] = []
    for key, row in page:
        if key.source == CHAIN:
            found.append(_chain_found(key, row, types))
        elif (scans := batched.get(key.key)) is not None:
            found.append(replace(_captured_found(key, row, []), batched=scans))
        elif rows := proofs.get(key.key):
            found.append(_captured_found(key, row, [_chain_row(r, epc, types) for r, epc in rows]))
    return found, (page[-1][0] if more else None)


def event_by_hash_id(store: Store, hash_id: str) -> FoundEvent | None:
    """A recorded captured event by its hash ID, with its proofs (a batched one once its scans are applied)."""
    with read_transaction(store.engine) as conn:
        row = conn.execute(
            select(epcis_events).where(epcis_events.c.hash_id == hash_id, epcis_events.c.state.in_((RECORDED, BATCHED)))
        ).first()
        if row is None:
            return None
        if row.state == BATCHED:
            scans = _batched_found(conn, [row]).get(int(row.event_key))
            key = PageKey(int(row.event_time), CAPTURED, int(row.event_key))
            return None if scans is None else replace(_captured_found(key, row, []), batched=scans)
        return _captured_with_proofs(conn, row)


def _captured_with_proofs(conn: Connection, row: Any) -> FoundEvent | None:
    rows = _proofs(conn, [int(row.event_key)]).get(int(row.event_key), [])
    if not rows:
        return None
    types = _types(conn, [r for r, _ in rows])
    key = PageKey(int(row.event_time), CAPTURED, int(row.event_key))
    return _captured_found(key, row, [_chain_row(r, epc, types) for r, epc in rows])


def event_at(
    store: Store, *, block_number: int, log_index: int, event_hash_ok: Callable[[str], bool]
) -> FoundEvent | None:
    """The event whose ItemEventRecorded is at this position (a primary-key read) if its eventHash passes
    ``event_hash_ok``: a chain event, or the captured event that wrote it (as the query answers it)."""
    ie = item_events.c
    p = epcis_event_epcs.c
    with read_transaction(store.engine) as conn:
        row = conn.execute(
            select(item_events, items.c.uri)
            .select_from(item_events.join(items, items.c.item_id == ie.item_id))
            .where(ie.block_number == block_number, ie.log_index == log_index)
        ).first()
        if row is None or not event_hash_ok(row.event_hash):
            return None
        writer = conn.execute(
            select(epcis_events)
            .join(epcis_event_epcs, p.event_key == epcis_events.c.event_key)
            .where(p.item_id == row.item_id, p.seq == row.seq, p.role != _PARENT_ROLE)
            .where(epcis_events.c.state == RECORDED)
            .limit(1)
        ).first()
        if writer is not None:
            return _captured_with_proofs(conn, writer)
        key = PageKey(int(row.timestamp) * 1000, CHAIN, _position(block_number, log_index))
        return _chain_found(key, row, _types(conn, [row]))


# ---- rebuilding the EPCIS rows from the chain's events and the document store ---------------------------


@dataclass(frozen=True, slots=True)
class DocumentedRow:
    """An indexed ItemEventRecorded that names a document and that no EPCIS row accounts for."""

    item_id: str
    seq: int
    actor: str
    tx_hash: str
    block_number: int
    timestamp: int


def unaccounted_documents(store: Store, document: str | None = None) -> dict[str, list[DocumentedRow]]:
    """Document digest -> the indexed item events naming it that no ``epcis_event_epcs`` row claims, in chain
    order (one pass over ``item_events``: a rebuild, or a dead capture's reconciliation with ``document``
    given, is rare, and no index serves ``document``)."""
    ie = item_events.c
    p = epcis_event_epcs.c
    claimed = select(p.event_key).where(p.item_id == ie.item_id, p.seq == ie.seq, p.role != _PARENT_ROLE)
    stmt = (
        select(ie.document, ie.item_id, ie.seq, ie.actor, ie.tx_hash, ie.block_number, ie.timestamp)
        .where(ie.document != _ZERO if document is None else ie.document == document, ~claimed.exists())
        .order_by(ie.block_number, ie.log_index)
    )
    found: dict[str, list[DocumentedRow]] = {}
    with read_transaction(store.engine) as conn:
        for row in conn.execute(stmt):
            found.setdefault(row.document, []).append(
                DocumentedRow(
                    row.item_id, int(row.seq), row.actor, row.tx_hash, int(row.block_number), int(row.timestamp)
                )
            )
    return found
