"""Store bookkeeping: chain pin, checkpoint, block headers, counts, dump, and apply()'s all-or-nothing."""

from __future__ import annotations

import inspect
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url, text, update

from ledger_service.core.codes import BizStep, Disposition, ReturnState
from ledger_service.core.events import BlockHeader, DecodedEvent, ItemEventRecorded, ItemRegistered
from ledger_service.core.hashchain import event_hash_hex
from ledger_service.core.rows import EVENT_TYPES, EventRows, encode_event
from ledger_service.errors import FatalError
from ledger_service.store import BlockRef, ChainPin, Store, StoreError
from ledger_service.store._db import POSTGRES_CONNECT_DEFAULTS
from ledger_service.store.handle import SQLITE_INDEXER_CACHE_KIB
from ledger_service.store.sales import eligibility_read
from ledger_service.store.tables import chain_pin, checkpoint, metadata
from tests.ledger_service.store.builders import DAY, ChainBuilder, addr, h
from tests.support.db import libpq_dsn, pg_base_url, terminate_backends, with_application_name

PIN = ChainPin(31337, "0x" + "ab" * 32, "0x" + "11" * 20, "0x" + "22" * 20, 5)


# ---- chain pin ---------------------------------------------------------------------------


def test_new_index_has_no_pin_and_takes_one(store: Store) -> None:
    assert store.pin() is None
    store.set_pin(PIN)
    assert store.pin() == PIN
    store.set_pin(PIN)  # the same pin again: fine
    assert store.counts()["chain_pin"] == 1


@pytest.mark.parametrize(
    "other",
    [
        replace(PIN, chain_id=1),
        replace(PIN, genesis_hash="0x" + "cd" * 32),
        replace(PIN, ledger_address="0x" + "33" * 20),
        replace(PIN, escrow_address="0x" + "44" * 20),
        replace(PIN, deploy_block=6),
    ],
    ids=["chain_id", "genesis", "ledger", "escrow", "deploy_block"],
)
def test_pin_refuses_another_chain_or_deployment(store: Store, other: ChainPin) -> None:
    store.set_pin(PIN)
    with pytest.raises(StoreError, match="another chain or deployment") as raised:
        store.set_pin(other)
    assert isinstance(raised.value, FatalError)
    assert store.pin() == PIN


# ---- checkpoint and headers -----------------------------------------------------------------


def test_apply_moves_checkpoint_and_stores_headers(store: Store) -> None:
    chain = ChainBuilder()
    for _ in range(9):
        chain.next_block()
    assert store.checkpoint() is None
    store.apply(events=[], headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
    assert store.checkpoint() == chain.ref()
    assert store.stored_blocks(from_block=3, to_block=5) == {n: chain.header(n) for n in (3, 4, 5)}
    assert store.stored_blocks(from_block=20, to_block=30) == {}


def test_apply_prunes_headers_below(store: Store) -> None:
    chain = ChainBuilder()
    for _ in range(9):
        chain.next_block()
    store.apply(events=[], headers=chain.headers, checkpoint=chain.ref(), prune_below=7)
    assert sorted(store.stored_blocks(from_block=0, to_block=100)) == [7, 8, 9, 10]


def test_apply_replaces_a_header_with_the_same_number(store: Store) -> None:
    chain = ChainBuilder()
    store.apply(events=[], headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
    other = BlockHeader(1, "0x" + "99" * 32, chain.headers[0].parent_hash, chain.headers[0].timestamp)
    store.apply(events=[], headers=[other], checkpoint=BlockRef(1, other.hash), prune_below=0)
    assert store.stored_blocks(from_block=1, to_block=1) == {1: other}


# ---- apply() input checks -------------------------------------------------------------------------


def _two_blocks() -> ChainBuilder:
    chain = ChainBuilder()
    chain.register("urn:epc:id:sgtin:0614141.107346.1")
    chain.next_block()
    chain.register("urn:epc:id:sgtin:0614141.107346.2")
    return chain


def _in_form(form: str, events: Sequence[DecodedEvent]) -> Sequence[DecodedEvent]:
    """``events`` as objects ("objects") or in a fetch process's wire form ("wire")."""
    return list(events) if form == "objects" else EventRows([encode_event(ev) for ev in events])


FORMS = pytest.mark.parametrize("form", ["objects", "wire"])


@FORMS
def test_apply_refuses_events_at_or_below_the_checkpoint(store: Store, form: str) -> None:
    chain = _two_blocks()
    store.apply(events=chain.events[:2], headers=chain.headers[:1], checkpoint=chain.ref(1), prune_below=0)
    before = store.dump()
    with pytest.raises(StoreError, match="not above the checkpoint"):
        store.apply(events=_in_form(form, chain.events), headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
    assert store.dump() == before


@FORMS
def test_apply_refuses_events_above_the_new_checkpoint(store: Store, form: str) -> None:
    chain = _two_blocks()
    with pytest.raises(StoreError, match="above the new checkpoint"):
        store.apply(events=_in_form(form, chain.events), headers=chain.headers, checkpoint=chain.ref(1), prune_below=0)
    assert store.checkpoint() is None


@FORMS
def test_apply_refuses_unsorted_events(store: Store, form: str) -> None:
    chain = _two_blocks()
    shuffled = _in_form(form, [chain.events[1], chain.events[0], *chain.events[2:]])
    with pytest.raises(StoreError, match="out of order"):
        store.apply(events=shuffled, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
    assert store.checkpoint() is None


def test_apply_refuses_a_checkpoint_that_goes_back(store: Store) -> None:
    chain = _two_blocks()
    store.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
    with pytest.raises(StoreError, match="rollback_to"):
        store.apply(events=[], headers=[], checkpoint=chain.ref(1), prune_below=0)


# ---- all or nothing -------------------------------------------------------------------------


def test_failing_apply_leaves_nothing(store: Store) -> None:
    """An event that violates a primary key midway rolls back the whole batch: rows, state, headers, checkpoint."""
    chain = ChainBuilder()
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    store.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
    before = store.dump()

    chain.next_block()
    chain.policy(addr(2), 1)
    chain.record(item, BizStep.SHIPPING, Disposition.IN_TRANSIT)
    chain.role("0x" + "77" * 32, addr(5), True)
    chain.set_seller(addr(2), addr(5), True)
    received = chain.record(item, BizStep.RECEIVING, Disposition.SELLABLE_ACCESSIBLE)
    registration = next(ev for ev in chain.events if isinstance(ev, ItemRegistered))
    duplicate = replace(registration, pos=received.pos)
    chain.events[-1] = duplicate  # the item registered twice: the primary key of item_registrations refuses it
    chain.next_block()
    chain.record(item, BizStep.STOCKING, Disposition.SELLABLE_ACCESSIBLE)
    new = [ev for ev in chain.events if ev.pos.block_number > 1]
    with pytest.raises(StoreError, match="conflict"):
        store.apply(events=new, headers=chain.headers[1:], checkpoint=chain.ref(), prune_below=2)
    assert store.dump() == before
    assert store.checkpoint() == chain.ref(1)

    # the index is still usable: the valid stream applies
    chain.events[chain.events.index(duplicate)] = received
    store.apply(events=new[:4], headers=chain.headers[1:2], checkpoint=chain.ref(2), prune_below=0)
    assert store.checkpoint() == chain.ref(2)


def test_a_return_authorized_twice_is_refused(store: Store) -> None:
    chain = ChainBuilder()
    chain.policy(addr(2), 1)
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    sale = chain.sale(item)
    chain.authorize(item, sale)
    chain.next_block()
    chain.authorize(item, sale)
    with pytest.raises(StoreError, match="authorized twice"):
        store.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
    assert store.counts()["returns"] == 0


# ---- counts and dump -----------------------------------------------------------------------


def test_counts_cover_every_table(store: Store) -> None:
    chain = _two_blocks()
    store.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
    counts = store.counts()
    assert set(counts) == set(metadata.tables)
    assert counts["items"] == 2
    assert counts["item_events"] == 2
    assert counts["item_registrations"] == 2
    assert counts["blocks"] == 2
    assert counts["checkpoint"] == 1


def test_dump_leaves_out_wall_clock_columns(store: Store) -> None:
    chain = ChainBuilder()
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    chain.record(item, BizStep.SHIPPING, Disposition.IN_TRANSIT, tamper="hash")
    store.set_pin(PIN)
    store.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
    before = store.dump()
    # the node's record and the writers' epoch, not the chain's
    assert set(before) == set(metadata.tables) - {"node_faults", "writer_epoch"}
    later = int(time.time()) + 1000
    with store.engine.begin() as conn:
        conn.execute(update(chain_pin).values(created_at=later))
        conn.execute(update(checkpoint).values(updated_at=later))
    assert store.dump() == before
    assert before["chain_pin"] == [(1, *PIN.__dict__.values())]
    assert before["checkpoint"] == [(1, chain.ref().number, chain.ref().hash)]
    assert len(before["chain_problems"][0]) == 4  # item, seq, block, reason


def test_dump_does_not_depend_on_batching(make_store_url: Callable[[], str]) -> None:
    """One stream applied in one batch or block by block gives the same dump."""
    chain = ChainBuilder()
    for n in range(6):
        chain.register(f"urn:epc:id:sgtin:0614141.107346.{n}")
        chain.next_block()
    with Store.open(make_store_url()) as one, Store.open(make_store_url()) as many:
        one.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
        for header in chain.headers:
            events = [ev for ev in chain.events if ev.pos.block_number == header.number]
            many.apply(events=events, headers=[header], checkpoint=chain.ref(header.number), prune_below=0)
        assert one.dump() == many.dump()


def _every_kind_of_event() -> ChainBuilder:
    """Every event type, item events interleaved with the others, broken links of every kind, and item
    events whose eventHash the decoder checked (``hash_ok`` True or False) or left to the store (None)."""
    chain = ChainBuilder()
    merchant_role = h("MERCHANT_ROLE")
    chain.role(merchant_role, addr(2), True)
    chain.set_seller(addr(2), addr(4), True)
    chain.policy(addr(2), 1, ship_by_days=10)
    items = [chain.register(f"urn:epc:id:sgtin:0614141.107346.{n}") for n in range(3)]
    sale = chain.sale(items[0])
    for n, tamper in enumerate([None, "prev", None, "hash", "skip", None, "field", "repeat", None, None]):
        chain.next_block(seconds=DAY)
        chain.record(items[n % 3], BizStep.SHIPPING, Disposition.IN_TRANSIT, tamper=tamper)
        chain.record(items[(n + 1) % 3], BizStep.ARRIVING, Disposition.RETAIL_SOLD)
        if n == 4:
            rid = chain.authorize(items[0], sale, ship_by_days=10)
            chain.transition(rid, ReturnState.IN_TRANSIT, ReturnState.AUTHORIZED, deadline=chain.time + 7 * DAY)
            chain.settle(rid, 95, 5)
            chain.change_merchant(items[1], addr(2), addr(8))
            chain.role(merchant_role, addr(2), False)
            chain.anchor_batch(h("root", n), 100)
        if n == 6:
            chain.exchange(h("exchange"), items[2], items[1], difference=-5, instant=True)
            chain.exchange(h("dearer exchange"), items[1], items[0], difference=7, instant=False, terms=False)
            chain.unit_mismatch(rid, items[0], h("not on the ledger"))
    left = {True: 0, False: 0}
    for ev in chain.events:
        ev.pos.tx_index = ev.pos.log_index // 2  # not equal to the log index: a swap of the two must show
        if isinstance(ev, ItemEventRecorded):
            ok = event_hash_hex(**{name: getattr(ev, name) for name in HASHED}) == ev.event_hash
            left[ok] += 1
            ev.hash_ok = None if left[ok] % 3 == 1 else ok  # a third of each kind left to the store's check
    return chain


HASHED = tuple(inspect.signature(event_hash_hex).parameters)
"""The event fields eventHash covers (event_hash_hex's keyword arguments)."""


def test_events_in_wire_form_are_applied_exactly_like_event_objects(make_store_url: Callable[[], str]) -> None:
    """A fetch process's EventRows take the store's row path for item events whose checks pass; every
    table must come out as from the event objects, problems and chain_ok flags included."""
    chain = _every_kind_of_event()
    assert {type(ev) for ev in chain.events} == set(EVENT_TYPES)
    assert {getattr(ev, "hash_ok", "") for ev in chain.events} >= {True, False, None}
    half = chain.number // 2
    with Store.open(make_store_url()) as objects, Store.open(make_store_url()) as wire:
        for store, form in ((objects, "objects"), (wire, "wire")):
            first = [ev for ev in chain.events if ev.pos.block_number <= half]
            rest = chain.events[len(first) :]
            for events, headers, ref in (
                (first, chain.headers[:half], chain.ref(half)),
                (rest, chain.headers[half:], chain.ref()),
            ):
                store.apply(events=_in_form(form, events), headers=headers, checkpoint=ref, prune_below=0)
        dump = wire.dump()
        assert dump == objects.dump()
    assert len(dump["chain_problems"]) >= 5
    assert {row[11] for row in dump["item_events"]} == {True, False}  # chain_ok


# ---- the in-memory items cache never shows ------------------------------------------------------


def _items_stream() -> ChainBuilder:
    chain = ChainBuilder()
    items = [chain.register(f"urn:epc:id:sgtin:0614141.107346.{n}") for n in range(3)]
    for n in range(8):
        chain.next_block()
        chain.record(items[n % 3], BizStep.SHIPPING, Disposition.IN_TRANSIT)
        chain.record(items[(n + 1) % 3], BizStep.ARRIVING, Disposition.RETAIL_SOLD)
        if n % 3 == 0:
            chain.change_merchant(items[n % 3], addr(2), addr(2 + n))
    return chain


def _block(chain: ChainBuilder, store: Store, number: int) -> None:
    events = [ev for ev in chain.events if ev.pos.block_number == number]
    store.apply(events=events, headers=[chain.header(number)], checkpoint=chain.ref(number), prune_below=0)


def test_the_per_item_index_is_deferred_only_on_an_empty_sqlite_index(store: Store) -> None:
    sqlite = store.engine.dialect.name == "sqlite"
    assert store.deferred_indexes() == []
    assert store.defer_item_index() is sqlite  # PostgreSQL keeps it
    assert store.deferred_indexes() == (["ix_item_events_item"] if sqlite else [])
    assert store.defer_item_index() is False  # nothing left to drop
    chain = _items_stream()
    store.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
    dump = store.dump()
    assert store.build_deferred_indexes() is sqlite
    assert store.deferred_indexes() == []
    assert store.build_deferred_indexes() is False
    assert store.dump() == dump
    assert store.defer_item_index() is False  # not on an index that holds events


def test_two_store_objects_writing_in_turn_stay_exact(make_store_url: Callable[[], str]) -> None:
    """Each Store caches the items it wrote; another writer in between must not make it use stale rows."""
    chain = _items_stream()
    url = make_store_url()
    with Store.open(url) as one, Store.open(url) as other, Store.open(make_store_url()) as fresh:
        for number in range(1, 6):
            _block(chain, one if number % 2 else other, number)
        other.rollback_to(chain.ref(4))
        for number in range(5, chain.number + 1):
            _block(chain, one if number % 2 else other, number)
        fresh.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
        assert one.dump() == fresh.dump()


def test_a_failed_batch_leaves_no_trace_in_later_ones(make_store_url: Callable[[], str]) -> None:
    chain = _items_stream()
    with Store.open(make_store_url()) as store, Store.open(make_store_url()) as fresh:
        _block(chain, store, 1)
        _block(chain, store, 2)
        block3 = [ev for ev in chain.events if ev.pos.block_number == 3]
        registration = next(ev for ev in chain.events if isinstance(ev, ItemRegistered))
        # after the block's events have changed item states: a second registration of an item
        broken = [*block3, replace(registration, pos=replace(block3[-1].pos, log_index=99))]
        with pytest.raises(StoreError):
            store.apply(events=broken, headers=[chain.header(3)], checkpoint=chain.ref(3), prune_below=0)
        for number in range(3, chain.number + 1):
            _block(chain, store, number)
        fresh.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
        assert store.dump() == fresh.dump()


def test_sqlite_checkpoints_run_beside_the_writer_and_stop_on_close(tmp_path: Path) -> None:
    def checkpointers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("sqlite-checkpoint:")]

    before = len(checkpointers())
    chain = _items_stream()
    store = Store.open(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    assert len(checkpointers()) == before  # readers never start one
    for number in range(1, chain.number + 1):
        _block(chain, store, number)
    assert len(checkpointers()) == before + 1
    store.close()
    assert len(checkpointers()) == before
    with Store.open(f"sqlite:///{tmp_path / 'index.sqlite3'}") as reopened:
        assert reopened.checkpoint() == chain.ref()


def test_an_sqlite_index_does_not_import_the_postgresql_driver() -> None:
    """psycopg costs ~40 ms of every CLI start; only a PostgreSQL index needs it (the store loads it with the
    engine, and its errors are still translated then: tests/ledger_service/store on PostgreSQL)."""
    code = (
        "import sys, tempfile\n"
        "from ledger_service.indexer import cli\n"
        "from ledger_service.store.handle import Store\n"
        "Store.open(f'sqlite:///{tempfile.mkdtemp()}/x.sqlite3').close()\n"
        "assert 'psycopg' not in sys.modules, 'psycopg was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_an_sqlite_store_opens_with_the_page_cache_it_is_given(tmp_path: Path) -> None:
    """The indexer opens its index with a smaller page cache than readers (memory target of its processes)."""
    url = f"sqlite:///{tmp_path / 'cache.sqlite3'}"
    for kib in (SQLITE_INDEXER_CACHE_KIB, 1234):
        with Store.open(url, cache_kib=kib) as store, store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -kib
    with Store.open(url) as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -65_536


@pytest.mark.postgres
def test_a_postgresql_store_keeps_its_pool_size_of_connections_open_between_uses(pg_url: str) -> None:
    size = 8  # more than SQLAlchemy's default pool of 5
    store = Store.open(pg_url, pool_size=size)
    barrier = threading.Barrier(size)

    def backend() -> int:
        with store.engine.connect() as connection:
            barrier.wait(timeout=30)  # every one of them checked out at once
            return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())

    try:
        with ThreadPoolExecutor(size) as threads:
            first = set(threads.map(lambda _: backend(), range(size)))
            second = set(threads.map(lambda _: backend(), range(size)))
    finally:
        store.close()
    # the same server processes both times: none was closed after its use and opened again
    assert len(first) == size and second == first


@pytest.mark.postgres
def test_a_postgresql_store_connects_with_keepalives_and_a_send_timeout_the_url_may_override(pg_url: str) -> None:
    """A server gone without closing its connections (host down, network cut) is noticed within a minute, not the
    kernel's quarter of an hour of retransmissions; a URL's own libpq parameter wins over the default."""

    def parameters(url: str) -> dict[str, str]:
        with Store.open(url) as store, store.engine.connect() as conn:
            found: dict[str, str] = conn.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
            return found

    defaults = parameters(pg_url)
    assert {k: defaults.get(k) for k in POSTGRES_CONNECT_DEFAULTS} == POSTGRES_CONNECT_DEFAULTS
    overridden = parameters(str(make_url(pg_url).update_query_dict({"tcp_user_timeout": "5000"})))
    assert overridden["tcp_user_timeout"] == "5000" and overridden["keepalives_idle"] == "30"


_BACKENDS_NAMED = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"


@pytest.mark.postgres
def test_a_postgresql_store_replaces_pooled_connections_the_server_closed(pg_url: str) -> None:
    """A restarted server (here: every backend of the store terminated) leaves the pool's connections closed; each
    use after it gets a new one, the driver-cursor read (eligibility) and SQLAlchemy's alike, without an error."""
    name = f"pool_{uuid.uuid4().hex[:12]}"
    size = 4
    store = Store.open(with_application_name(pg_url, name), pool_size=size)
    barrier = threading.Barrier(size)

    def backend() -> int:
        with store.engine.connect() as connection:
            barrier.wait(timeout=30)  # the pool fills with `size` connections
            return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())

    def nobody(item: object, sale: object) -> str:
        return ""

    try:
        with ThreadPoolExecutor(size) as threads:
            before = set(threads.map(lambda _: backend(), range(size)))
        assert terminate_backends(name) == size
        with psycopg.connect(libpq_dsn(pg_base_url()), autocommit=True) as admin:
            # gone: their sockets closed (pg_terminate_backend only signals them)
            while admin.execute(_BACKENDS_NAMED, (name,)).fetchone() != (0,):
                time.sleep(0.01)
        for _ in range(size):
            snap = eligibility_read(store, item_id="0x" + "ab" * 32, now=0, requester=nobody)
            assert snap.item is None
        with ThreadPoolExecutor(size) as threads:
            after = set(threads.map(lambda _: backend(), range(size)))
    finally:
        store.close()
    assert not after & before
