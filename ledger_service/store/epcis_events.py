"""Queries of the captured EPCIS events (``epcis_events``, ``epcis_event_epcs``, ``epcis_biz_transactions``).

Invariants:
- an event hash ID is in ``epcis_events`` at most once (unique): :func:`claim_events` inserts a capture's
  events before anything is sent, and an event another capture already holds, recorded or being sent, is
  not claimed again (that is how one document captured twice at the same time records each event once);
- a ``claimed`` row is either turned ``recorded`` (:func:`mark_recorded`, with its transaction and the
  item seqs the chain gave it) or deleted (:func:`release_claims`) by the capture that claimed it;
- the rows are the searchable part of each event's document (the document store holds the event as sent,
  its digest is the on-chain ``document``), so they can be rebuilt from the chain and the document store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ledger_service.core.codes import ROLE_IDS
from ledger_service.store._db import read_transaction, write_transaction
from ledger_service.store.api_schema import epcis_biz_transactions, epcis_event_epcs, epcis_events
from ledger_service.store.handle import Store
from ledger_service.store.schema import items, roles, sellers

CLAIMED, RECORDED = "claimed", "recorded"
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
    account = account.lower()
    with read_transaction(store.engine) as conn:
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


def _insert_ignore(conn: Connection, row: dict[str, Any]) -> int | None:
    """Inserts an epcis_events row unless its hash ID is there; its event_key, or None."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = (
        dialect.insert(epcis_events)
        .values(**row)
        .on_conflict_do_nothing(index_elements=["hash_id"])
        .returning(epcis_events.c.event_key)
    )
    key = conn.execute(stmt).scalar_one_or_none()
    return None if key is None else int(key)


def claim_events(store: Store, *, capture_id: str, actor: str, claims: Sequence[EventClaim]) -> dict[str, int]:
    """Claims each event by its hash ID, in one transaction; hash ID -> event_key of those this call claimed
    (the others are held by an earlier or a concurrent capture)."""
    claimed: dict[str, int] = {}
    with write_transaction(store.engine) as conn:
        for claim in claims:
            key = _insert_ignore(
                conn,
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
                    "actor": actor.lower(),
                    "state": CLAIMED,
                    "tx_hash": None,
                    "block_number": None,
                },
            )
            if key is None:
                continue
            claimed[claim.hash_id] = key
            epcs = {(item_id, role): epc for item_id, role, epc in claim.epcs}
            conn.execute(
                epcis_event_epcs.insert(),
                [
                    {"event_key": key, "item_id": item_id, "role": role, "epc": epc, "seq": None}
                    for (item_id, role), epc in epcs.items()
                ],
            )
            transactions = set(claim.biz_transactions)
            if transactions:
                conn.execute(
                    epcis_biz_transactions.insert(),
                    [{"event_key": key, "type": kind, "value": value} for kind, value in sorted(transactions)],
                )
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


def mark_recorded(store: Store, recorded: Sequence[Recorded], *, record_time_ms: int) -> None:
    """Marks events on-chain, with their transaction and the seq each item got, in one transaction."""
    with write_transaction(store.engine) as conn:
        for entry in recorded:
            conn.execute(
                update(epcis_events)
                .where(epcis_events.c.event_key == entry.event_key)
                .values(
                    state=RECORDED,
                    tx_hash=entry.tx_hash,
                    block_number=entry.block_number,
                    record_time=record_time_ms,
                )
            )
            for item_id, seq in entry.seqs.items():
                conn.execute(
                    update(epcis_event_epcs)
                    .where(
                        and_(
                            epcis_event_epcs.c.event_key == entry.event_key,
                            epcis_event_epcs.c.item_id == item_id,
                            epcis_event_epcs.c.role != 1,
                        )
                    )
                    .values(seq=seq)
                )


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
