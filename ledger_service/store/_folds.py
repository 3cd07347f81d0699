"""State tables (items, returns, roles, sellers) as pure functions of the log tables.

Each state row is a left fold, in log order (block_number, log_index), of the
log rows of one key. The fold's accumulator *is* the state row, so
:meth:`Store.apply` can continue a fold from the stored row (incremental: one
upsert per touched key per batch) and :meth:`Store.rollback_to` can redo it
from the remaining log rows (``rebuild_*`` below) and get the same row.

Definitions:

- items: a row exists once the item is registered (item_registrations).
  ``merchant`` is the registration's merchant, then each MerchantOfRecordChanged's
  new merchant; ``registered_at`` the timestamp of the item's first event (the
  commissioning event the contract writes in the registering transaction);
  ``event_count``, ``head_hash`` (the last event's emitted eventHash),
  ``last_biz_step``, ``last_disposition``, ``last_event_at`` from its events;
  ``delivered_at`` the timestamp of the first arriving + retail_sold event after
  the item's latest retail_selling event (its current sale; the escrow writes
  that event with each sale), so a later "delivery" cannot move the return
  window of a sale, and a new sale starts with no delivery;
  ``destroyed`` once a destroying event was recorded; ``chain_ok`` while every
  event verified (item_events.chain_ok).
- returns: the row is written by ReturnAuthorized and is that event's log row
  (authorization columns). ``authorized_at`` = ``ship_by`` - shipByDays of the
  bound policy (the contract sets shipBy = block.timestamp + shipByDays days;
  the policy is the (merchant, policy_version) row published in a block at or
  before the authorization, else ``authorized_at`` = ``ship_by``). Then every
  ReturnStateChanged of the return, in log order, sets ``state`` and
  ``updated_at`` (its ``at``), InTransit's deadline sets ``inspect_by`` and
  Rejected's ``dispute_by``; an EscrowSettled sets ``settled``.
- roles: (role, account) is present iff its last RoleChanged granted it;
  ``granted_block`` is that grant's block.
- sellers: (merchant, seller) is present iff its last SellerSet allowed it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from sqlalchemy import Connection, Table, delete, select, tuple_

from ledger_service.core.codes import BizStep, Disposition, ReturnState
from ledger_service.store._db import key_in
from ledger_service.store.tables import (
    escrow_payouts,
    item_events,
    item_key,
    item_registrations,
    items,
    merchant_changes,
    policies,
    return_transitions,
    returns,
    role_changes,
    roles,
    seller_changes,
    sellers,
)

ZERO_HASH_HEX = "0x" + "00" * 32
CHUNK = {"sqlite": 2000, "postgresql": 100_000}
"""Keys per lookup (:func:`key_in`): SQLite binds one parameter per key (at most 32766 a statement),
PostgreSQL one array."""
PAIR_CHUNK = 2000
"""(a, b) pairs per ``tuple_(...).in_()`` lookup: two bound parameters per pair on both databases."""

_DESTROYING = int(BizStep.DESTROYING)
_ARRIVING = int(BizStep.ARRIVING)
_RETAIL_SELLING = int(BizStep.RETAIL_SELLING)
_RETAIL_SOLD = int(Disposition.RETAIL_SOLD)
_AUTHORIZED = int(ReturnState.AUTHORIZED)
_IN_TRANSIT = int(ReturnState.IN_TRANSIT)
_REJECTED = int(ReturnState.REJECTED)
DAY = 86_400


def chunks(conn: Connection, keys: Sequence[Any], *, pairs: bool = False) -> Iterator[Sequence[Any]]:
    """``keys`` in slices small enough for one lookup on this database."""
    size = PAIR_CHUNK if pairs else CHUNK.get(conn.dialect.name, 1000)
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


# ---- items ------------------------------------------------------------------


ITEM_MUTABLE_COLUMNS = (
    "merchant",
    "registered_at",
    "event_count",
    "head_hash",
    "last_biz_step",
    "last_disposition",
    "last_event_at",
    "delivered_at",
    "destroyed",
    "chain_ok",
)
"""The items columns that change after the row is created (the others come from the registration)."""


@dataclass(slots=True)
class ItemState:
    """The fold over one item's registration, events and merchant changes.

    ``item_id`` then the :data:`ITEM_MUTABLE_COLUMNS`, in that order, lead
    the fields so that a stored row of those columns unpacks into it
    (:meth:`from_stored`); ``stored`` marks such a state, whose registration
    columns but the GTIN are not loaded (they never change) and whose row is
    updated, not inserted.
    """

    item_id: str
    merchant: str = ""
    registered_at: int = 0
    event_count: int = 0
    head_hash: str = ZERO_HASH_HEX
    last_biz_step: int = 0
    last_disposition: int = 0
    last_event_at: int = 0
    delivered_at: int | None = None
    destroyed: bool = False
    chain_ok: bool = True
    uri: str = ""
    gtin: int = 0
    manufacturer: str = ""
    metadata_digest: str = ""
    registered: bool = False
    stored: bool = False
    merchant_changed: bool = False
    next_seq: int | None = None
    """The seq the next event must have when it is not ``event_count``: after a break (a seq gap or a repeat),
    the event after the one that broke the chain (see :meth:`follow_seq`)."""
    key: int = field(init=False, default=0)
    """``item_key(item_id)``, computed once per state (the item_events hot path needs it per event)."""

    def __post_init__(self) -> None:
        self.key = item_key(self.item_id)

    def register(self, *, uri: str, gtin: int, manufacturer: str, merchant: str, metadata_digest: str) -> None:
        self.registered = True
        self.uri = uri
        self.gtin = gtin
        self.manufacturer = manufacturer
        self.merchant = merchant
        self.metadata_digest = metadata_digest

    def change_merchant(self, new_merchant: str) -> None:
        self.merchant = new_merchant
        self.merchant_changed = True

    def record(self, *, biz_step: int, disposition: int, timestamp: int, event_hash: str, chain_ok: bool) -> None:
        if self.event_count == 0:
            self.registered_at = timestamp
        self.event_count += 1
        self.head_hash = event_hash
        self.last_biz_step = biz_step
        self.last_disposition = disposition
        self.last_event_at = timestamp
        if biz_step == _RETAIL_SELLING:
            self.delivered_at = None
        elif biz_step == _ARRIVING and disposition == _RETAIL_SOLD and self.delivered_at is None:
            self.delivered_at = timestamp
        if biz_step == _DESTROYING:
            self.destroyed = True
        if not chain_ok:
            self.chain_ok = False

    def follow_seq(self, seq: int) -> None:
        """The event just recorded had ``seq``: the next one must have ``seq + 1`` (after a break, that is not
        the count of events; one break is reported once, not once per later event)."""
        self.next_seq = None if seq + 1 == self.event_count else seq + 1

    def changes(self) -> dict[str, Any]:
        """``item_id`` and the mutable columns: the update of a stored row (``merchant`` only if it changed:
        leaving it out spares the update of its index)."""
        row = {
            "item_id": self.item_id,
            "registered_at": self.registered_at,
            "event_count": self.event_count,
            "head_hash": self.head_hash,
            "last_biz_step": self.last_biz_step,
            "last_disposition": self.last_disposition,
            "last_event_at": self.last_event_at,
            "delivered_at": self.delivered_at,
            "destroyed": self.destroyed,
            "chain_ok": self.chain_ok,
        }
        if self.merchant_changed or not self.stored:
            row["merchant"] = self.merchant
        return row

    def update_values(self) -> tuple[Any, ...]:
        """``item_id`` and the mutable columns but ``merchant``, as a tuple (the hot path of :meth:`changes`)."""
        return (
            self.item_id,
            self.registered_at,
            self.event_count,
            self.head_hash,
            self.last_biz_step,
            self.last_disposition,
            self.last_event_at,
            self.delivered_at,
            self.destroyed,
            self.chain_ok,
        )

    def row(self) -> dict[str, Any] | None:
        """The whole items row, or None while the item is not registered (or only partly loaded)."""
        if not self.registered or self.stored:
            return None
        return {
            **self.changes(),
            "uri": self.uri,
            "gtin": self.gtin,
            "manufacturer": self.manufacturer,
            "metadata_digest": self.metadata_digest,
        }

    @classmethod
    def from_stored(cls, row: Sequence[Any]) -> ItemState:
        """The state of a stored items row given as (item_id, *ITEM_MUTABLE_COLUMNS, gtin): of the registration's
        columns only the GTIN, which the item's sales are written with."""
        state = cls(*row[:-1])
        state.gtin = row[-1]
        state.registered = True
        state.stored = True
        return state


if [f.name for f in fields(ItemState)][1 : 1 + len(ITEM_MUTABLE_COLUMNS)] != list(ITEM_MUTABLE_COLUMNS):
    raise RuntimeError("ItemState's fields must start with item_id and ITEM_MUTABLE_COLUMNS")  # pragma: no cover


def fold_items(conn: Connection, keys: Sequence[str], *, registrations: bool = True) -> dict[str, ItemState]:
    """Folds the stored log rows of ``keys`` from scratch (every key gets a state, possibly empty).

    ``registrations=False`` skips item_registrations: for keys known to have
    no items row, hence no registration.
    """
    logs: list[tuple[int, int, int, Any]] = []  # (block, log, kind, row)
    for part in chunks(conn, keys):
        if registrations:
            stmt = select(item_registrations).where(key_in(conn, item_registrations.c.item_id, part))
            logs.extend((r.block_number, r.log_index, 0, r) for r in conn.execute(stmt))
        ev = item_events.c
        stmt = select(
            ev.item_id,
            ev.seq,
            ev.biz_step,
            ev.disposition,
            ev.timestamp,
            ev.event_hash,
            ev.chain_ok,
            ev.block_number,
            ev.log_index,
        ).where(key_in(conn, ev.item_key, sorted({item_key(k) for k in part})), key_in(conn, ev.item_id, part))
        logs.extend((r.block_number, r.log_index, 1, r) for r in conn.execute(stmt))
        mc = merchant_changes.c
        stmt = select(mc.item_id, mc.new_merchant, mc.block_number, mc.log_index).where(key_in(conn, mc.item_id, part))
        logs.extend((r.block_number, r.log_index, 2, r) for r in conn.execute(stmt))
    logs.sort(key=lambda entry: (entry[0], entry[1]))
    states = {key: ItemState(key) for key in keys}
    for _, _, kind, r in logs:
        state = states[r.item_id]
        if kind == 0:
            state.register(
                uri=r.uri,
                gtin=r.gtin,
                manufacturer=r.manufacturer,
                merchant=r.merchant,
                metadata_digest=r.metadata_digest,
            )
        elif kind == 1:
            state.record(
                biz_step=r.biz_step,
                disposition=r.disposition,
                timestamp=r.timestamp,
                event_hash=r.event_hash,
                chain_ok=r.chain_ok,
            )
            state.follow_seq(r.seq)
        else:
            state.change_merchant(r.new_merchant)
    return states


class ItemCache:
    """The items states a Store wrote last, so that the next batches need not read them back.

    Only valid while nobody else writes the index: :meth:`Store.apply` clears
    it when the checkpoint it finds is not the one it left (``valid_at``), on
    any failure (the states are mutated during a batch), and on rollback.
    Holds at most ``capacity`` states, the most recently written.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.valid_at: tuple[int, str] | None = None
        self._states: dict[str, ItemState] = {}

    def __len__(self) -> int:
        return len(self._states)

    def get(self, key: str) -> ItemState | None:
        return self._states.get(key)

    def clear(self) -> None:
        self._states.clear()
        self.valid_at = None

    def keep(self, states: Iterable[ItemState], *, valid_at: tuple[int, str]) -> None:
        """Remembers the registered ``states`` just committed (their rows now exist)."""
        cached = self._states
        for state in states:
            if not state.registered:
                continue
            state.stored = True
            state.merchant_changed = False
            state.uri = state.manufacturer = state.metadata_digest = ""  # not needed for updates
            cached.pop(state.item_id, None)
            cached[state.item_id] = state
        excess = len(cached) - self.capacity
        if excess > 0:
            for key in list(itertools.islice(cached, excess)):
                del cached[key]
        self.valid_at = valid_at


def load_items(conn: Connection, keys: Sequence[str], cache: ItemCache | None = None) -> dict[str, ItemState]:
    """Current fold state of ``keys``: from the cache, else the items row (mutable columns only), else
    the key's log rows (usually none: a new item)."""
    states: dict[str, ItemState] = {}
    wanted = list(keys)
    if cache is not None and len(cache):
        wanted = []
        for key in keys:
            state = cache.get(key)
            if state is None:
                wanted.append(key)
            else:
                states[key] = state
    columns = [items.c.item_id, *(items.c[name] for name in ITEM_MUTABLE_COLUMNS), items.c.gtin]
    for part in chunks(conn, wanted):
        for row in conn.execute(select(*columns).where(key_in(conn, items.c.item_id, part))):
            states[row[0]] = ItemState.from_stored(row)
    broken = [key for key in wanted if key in states and not states[key].chain_ok]
    if broken:  # items whose chain broke before: the seq expected next follows their last event
        _load_next_seqs(conn, {key: states[key] for key in broken})
    missing = [key for key in wanted if key not in states]
    if missing:
        states.update(fold_items(conn, missing, registrations=False))
    return states


def _load_next_seqs(conn: Connection, states: dict[str, ItemState]) -> None:
    """Sets :attr:`ItemState.next_seq` of stored ``states`` from each one's last stored event."""
    ev = item_events.c
    keys = sorted(states)
    last: dict[str, tuple[int, int, int]] = {}
    for part in chunks(conn, keys):
        stmt = select(ev.item_id, ev.block_number, ev.log_index, ev.seq).where(
            key_in(conn, ev.item_key, sorted({item_key(k) for k in part})), key_in(conn, ev.item_id, part)
        )
        for item_id, block_number, log_index, seq in conn.execute(stmt):
            if item_id not in last or (block_number, log_index) > last[item_id][:2]:
                last[item_id] = (block_number, log_index, seq)
    for item_id, (_, _, seq) in last.items():
        states[item_id].follow_seq(seq)


def rebuild_items(conn: Connection, keys: Sequence[str]) -> None:
    """Replaces the items rows of ``keys`` by the fold of their remaining log rows."""
    rows = [row for state in fold_items(conn, keys).values() if (row := state.row()) is not None]
    for part in chunks(conn, keys):
        conn.execute(delete(items).where(key_in(conn, items.c.item_id, part)))
    if rows:
        conn.execute(items.insert(), rows)


# ---- returns ----------------------------------------------------------------


@dataclass(slots=True)
class ReturnFold:
    """The fold over one return: its authorization's columns, then its transitions and payout.

    The result does not depend on where the authorization sits among the
    transitions (the contract always emits it first).
    """

    return_id: str
    authorization: dict[str, Any] | None = None
    transitioned: bool = False
    state: int = 0
    updated_at: int = 0
    inspect_by: int | None = None
    dispute_by: int | None = None
    settled: bool = False

    def authorize(self, authorization: dict[str, Any]) -> None:
        self.authorization = authorization

    def transition(self, *, state: int, at: int, deadline: int) -> None:
        self.transitioned = True
        self.state = state
        self.updated_at = at
        if state == _IN_TRANSIT:
            self.inspect_by = deadline
        elif state == _REJECTED:
            self.dispute_by = deadline

    def settle(self) -> None:
        self.settled = True

    def current_updated_at(self) -> int:
        """``updated_at`` as the row shows it now (0 before both authorization and any transition)."""
        if self.transitioned or self.authorization is None:
            return self.updated_at
        return int(self.authorization["authorized_at"])

    def row(self) -> dict[str, Any] | None:
        """The returns row, or None while the return is not authorized."""
        auth = self.authorization
        if auth is None:
            return None
        return {
            **auth,
            "state": self.state if self.transitioned else _AUTHORIZED,
            "updated_at": self.updated_at if self.transitioned else auth["authorized_at"],
            "inspect_by": self.inspect_by,
            "dispute_by": self.dispute_by,
            "settled": self.settled,
        }

    @classmethod
    def from_row(cls, row: Any) -> ReturnFold:
        mapping = dict(row._mapping)
        return cls(
            return_id=row.return_id,
            transitioned=True,
            state=mapping.pop("state"),
            updated_at=mapping.pop("updated_at"),
            inspect_by=mapping.pop("inspect_by"),
            dispute_by=mapping.pop("dispute_by"),
            settled=mapping.pop("settled"),
            authorization=mapping,
        )


AUTHORIZATION_COLUMNS = tuple(
    c.name for c in returns.c if c.name not in {"state", "updated_at", "inspect_by", "dispute_by", "settled"}
)


def _fold_return_logs(conn: Connection, folds: dict[str, ReturnFold]) -> None:
    """Applies the stored transitions and payouts of ``folds``' keys, in log order."""
    keys = list(folds)
    logs: list[tuple[int, int, int, Any]] = []  # (block, log, kind, row)
    for part in chunks(conn, keys):
        rt = return_transitions.c
        stmt = select(rt.return_id, rt.state, rt.at, rt.deadline, rt.block_number, rt.log_index).where(
            key_in(conn, rt.return_id, part)
        )
        logs.extend((r.block_number, r.log_index, 0, r) for r in conn.execute(stmt))
        ep = escrow_payouts.c
        stmt = select(ep.return_id, ep.block_number, ep.log_index).where(key_in(conn, ep.return_id, part))
        logs.extend((r.block_number, r.log_index, 1, r) for r in conn.execute(stmt))
    logs.sort(key=lambda entry: (entry[0], entry[1]))
    for _, _, kind, r in logs:
        fold = folds[r.return_id]
        if kind == 0:
            fold.transition(state=r.state, at=r.at, deadline=r.deadline)
        else:
            fold.settle()


def load_returns(conn: Connection, keys: Sequence[str]) -> dict[str, ReturnFold]:
    """Current fold state of ``keys``: from the returns row, else the key's stored transitions (usually none)."""
    folds: dict[str, ReturnFold] = {}
    for part in chunks(conn, keys):
        for row in conn.execute(select(returns).where(key_in(conn, returns.c.return_id, part))):
            folds[row.return_id] = ReturnFold.from_row(row)
    missing = {key: ReturnFold(key) for key in keys if key not in folds}
    if missing:
        _fold_return_logs(conn, missing)
        folds.update(missing)
    return folds


def rebuild_returns(conn: Connection, keys: Sequence[str]) -> None:
    """Recomputes the returns rows of ``keys`` from their authorization columns and remaining transitions.

    A return whose authorization was deleted has no row (the caller deleted it).
    """
    folds = {key: ReturnFold(key) for key in keys}
    for part in chunks(conn, keys):
        cols = [returns.c[name] for name in AUTHORIZATION_COLUMNS]
        for stored in conn.execute(select(*cols).where(key_in(conn, returns.c.return_id, part))):
            folds[stored.return_id].authorize(dict(stored._mapping))
    _fold_return_logs(conn, folds)
    rows = [row for fold in folds.values() if (row := fold.row()) is not None]
    for part in chunks(conn, keys):
        conn.execute(delete(returns).where(key_in(conn, returns.c.return_id, part)))
    if rows:
        conn.execute(returns.insert(), rows)


def policy_ship_by_days(conn: Connection, wanted: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """(merchant, version) -> ship_by_days of the stored policies among ``wanted``."""
    keys = sorted(set(wanted))
    found: dict[tuple[str, int], int] = {}
    p = policies.c
    for part in chunks(conn, keys, pairs=True):
        stmt = select(p.merchant, p.version, p.ship_by_days).where(tuple_(p.merchant, p.version).in_(part))
        for r in conn.execute(stmt):
            found[(r.merchant, r.version)] = r.ship_by_days
    return found


# ---- roles and sellers ------------------------------------------------------


@dataclass(slots=True)
class PairFolds:
    """Last-event-wins state of (role, account) or (merchant, seller) pairs."""

    present: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    absent: set[tuple[str, str]] = field(default_factory=set)

    def set(self, key: tuple[str, str], row: dict[str, Any] | None) -> None:
        if row is None:
            self.present.pop(key, None)
            self.absent.add(key)
        else:
            self.absent.discard(key)
            self.present[key] = row


def _rebuild_pairs(
    conn: Connection,
    keys: Sequence[tuple[str, str]],
    *,
    log: Table,
    state: Table,
    names: tuple[str, str],
    row_of: Callable[[Mapping[str, Any]], dict[str, Any] | None],
) -> None:
    first, second = names
    folds = PairFolds()
    for key in keys:
        folds.set(key, None)
    logged: list[Any] = []
    for part in chunks(conn, list(keys), pairs=True):
        stmt = select(log).where(tuple_(log.c[first], log.c[second]).in_(part))
        logged.extend(conn.execute(stmt))
    logged.sort(key=lambda r: (r.block_number, r.log_index))
    for r in logged:
        folds.set((r._mapping[first], r._mapping[second]), row_of(r._mapping))
    for part in chunks(conn, list(keys), pairs=True):
        conn.execute(delete(state).where(tuple_(state.c[first], state.c[second]).in_(part)))
    if folds.present:
        conn.execute(state.insert(), list(folds.present.values()))


def role_row(log: Mapping[str, Any]) -> dict[str, Any] | None:
    """The roles row a role_changes row leaves (None: revoked)."""
    if not log["granted"]:
        return None
    return {"role": log["role"], "account": log["account"], "granted_block": log["block_number"]}


def seller_row(log: Mapping[str, Any]) -> dict[str, Any] | None:
    """The sellers row a seller_changes row leaves (None: not allowed)."""
    return {"merchant": log["merchant"], "seller": log["seller"]} if log["allowed"] else None


def rebuild_roles(conn: Connection, keys: Sequence[tuple[str, str]]) -> None:
    """Replaces the roles rows of ``keys`` by what their remaining role_changes leave."""
    _rebuild_pairs(conn, keys, log=role_changes, state=roles, names=("role", "account"), row_of=role_row)


def rebuild_sellers(conn: Connection, keys: Sequence[tuple[str, str]]) -> None:
    """Replaces the sellers rows of ``keys`` by what their remaining seller_changes leave."""
    _rebuild_pairs(conn, keys, log=seller_changes, state=sellers, names=("merchant", "seller"), row_of=seller_row)
