"""Store.open migrates any database to exactly the tables of tables.py."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from ledger_service.core.codes import BizStep, Disposition
from ledger_service.store import ChainPin, Store
from ledger_service.store._db import HEAD_REVISION, MIGRATIONS, SQLITE_MMAP_BYTES
from ledger_service.store.epcis_events import EventClaim, claim_events
from ledger_service.store.tables import (
    ANALYTICS_TABLES,
    API_TABLES,
    BATCHER_TABLES,
    EXCHANGE_TABLES,
    NOTIFY_TABLES,
    item_key,
    metadata,
)
from tests.ledger_service.store.builders import ChainBuilder
from tests.support.db import libpq_dsn


def _differences(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_open_creates_exactly_the_schema_tables(store_url: str) -> None:
    Store.open(store_url).close()
    assert _differences(store_url) == []
    engine = create_engine(store_url)
    try:
        tables = set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            head = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    finally:
        engine.dispose()
    assert tables == {*metadata.tables, "alembic_version"}
    assert head == HEAD_REVISION


def test_the_migrations_create_exactly_the_api_tables(store_url: str) -> None:
    Store.open(store_url).close()
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert list(compare_metadata(context, metadata)) == []
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD_REVISION
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0001")
        left = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    # 0001 made every indexer table but node_faults (0008), the outbox (0010), the analytics rollups (0015),
    # the exchanges' (0020), the batches' (0021), the batcher's queue (0022) and the writer epoch (0030)
    later = {t.name for t in (*API_TABLES, *NOTIFY_TABLES, *ANALYTICS_TABLES, *EXCHANGE_TABLES, *BATCHER_TABLES)} | {
        "node_faults",
        "batch_anchors",
        "batched_scans",
        "writer_epoch",
    }
    assert left == {*metadata.tables, "alembic_version"} - later
    Store.open(store_url).close()  # and up again


def test_a_new_index_is_created_at_head_without_alembic_and_the_migrations_build_the_same(
    store_url: str, make_store_url: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Store.open creates a new index from tables.py and stamps it; the migrations, run from an empty
    database, must build exactly that schema (or an index created one way would differ from the other)."""
    with monkeypatch.context() as patched:
        patched.setattr(command, "upgrade", lambda *_a, **_k: pytest.fail("Alembic ran for a new index"))
        Store.open(store_url).close()
    assert _differences(store_url) == []
    migrated = make_store_url()
    _migrate(migrated, "head", down=False)
    assert _differences(migrated) == []
    for url in (store_url, migrated):
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD_REVISION
                # key=str: SQLAlchemy types a reflected index's name as optional
                indexes = {
                    t: sorted((i["name"] for i in inspect(conn).get_indexes(t)), key=str) for t in metadata.tables
                }
        finally:
            engine.dispose()
        if url == store_url:
            created = indexes
    assert indexes == created
    with Store.open(migrated) as store:  # and Store.open takes the migrated one as it is
        assert store.checkpoint() is None


def test_open_twice_keeps_the_data(store_url: str) -> None:
    pin = ChainPin(31337, "0x" + "ab" * 32, "0x" + "11" * 20, "0x" + "22" * 20, 7)
    with Store.open(store_url) as store:
        store.set_pin(pin)
    with Store.open(store_url) as store:
        assert store.pin() == pin


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/wal.sqlite3"
    with Store.open(url) as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) >= 1000


def test_sqlite_maps_the_file_only_for_readers_that_ask(tmp_path: Path) -> None:
    """The indexer maps nothing (mapped pages would count in its resident memory); the API maps the file."""
    url = f"sqlite:///{tmp_path}/mmap.sqlite3"
    with Store.open(url) as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA mmap_size").scalar() == 0
    with Store.open(url, mmap_bytes=SQLITE_MMAP_BYTES) as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA mmap_size").scalar() == SQLITE_MMAP_BYTES


def test_sqlite_creates_the_database_folder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/var/deeper/index.sqlite3"
    with Store.open(url) as store:
        assert store.checkpoint() is None


def test_postgres_schema_from_the_url_holds_every_table(pg_url: str) -> None:
    """The index lives in the search_path's schema, not in public."""
    with Store.open(pg_url) as store, store.engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        in_schema = set(
            conn.execute(
                text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"), {"s": schema}
            ).scalars()
        )
        in_public = set(
            conn.execute(
                text("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
            ).scalars()
        )
    assert schema.startswith("test_")
    assert in_schema == {*metadata.tables, "alembic_version"}
    assert not in_public & set(metadata.tables)


def test_postgres_schema_is_created_when_missing(pg_url: str) -> None:
    missing = pg_url.replace("%3Dtest_", "%3Dmissing_")
    schema = missing.rsplit("%3D", 1)[1]
    try:
        with Store.open(missing) as store:
            assert store.counts()["items"] == 0
        assert _differences(missing) == []
    finally:
        with psycopg.connect(libpq_dsn(pg_url), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _column_names(url: str, table: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {column["name"] for column in inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def _migrate(url: str, revision: str, *, down: bool) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(config, revision)
    finally:
        engine.dispose()


def test_migrations_downgrade_to_nothing_and_back(store_url: str) -> None:
    Store.open(store_url).close()
    _migrate(store_url, "base", down=True)
    engine = create_engine(store_url)
    try:
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    finally:
        engine.dispose()
    Store.open(store_url).close()
    assert _differences(store_url) == []


def test_0004_keys_the_events_of_an_index_built_before_it(store_url: str) -> None:
    """Down to 0003 (item_events keyed by (item_id, seq), no item_key) and up again: every row comes back,
    item_key computed by the database (SQLite: a Python function; PostgreSQL: a bit-string cast) equal to
    tables.item_key, including the keys of ids whose first bit is set (negative keys)."""
    chain = ChainBuilder()
    ids = [chain.register(f"urn:epc:id:sgtin:0614141.107346.{n}") for n in range(12)]
    for step in (BizStep.PACKING, BizStep.SHIPPING):
        chain.next_block()
        for item in ids:
            chain.record(item, step, Disposition.IN_PROGRESS)
    with Store.open(store_url) as store:
        store.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
        before = store.dump()
    keys = {row[0]: row[-1] for row in before["item_events"]}
    assert keys == {item: item_key(item) for item in ids}
    assert min(keys.values()) < 0 < max(keys.values())

    _migrate(store_url, "0003", down=True)
    engine = create_engine(store_url)
    try:
        columns = {column["name"] for column in inspect(engine).get_columns("item_events")}
        assert "item_key" not in columns
        assert inspect(engine).get_pk_constraint("item_events")["constrained_columns"] == ["item_id", "seq"]
    finally:
        engine.dispose()

    with Store.open(store_url) as store:  # upgrades to head
        assert store.dump() == before
    assert _differences(store_url) == []


def _fillfactors(pg_url: str) -> dict[str, list[str] | None]:
    with psycopg.connect(libpq_dsn(pg_url)) as conn:
        rows = conn.execute(
            "SELECT relname, reloptions FROM pg_class WHERE relkind = 'r' AND relname = ANY(%s) "
            "AND relnamespace = current_schema()::regnamespace",
            (["items", "returns", "item_events"],),
        ).fetchall()
    return dict(rows)


def test_0005_leaves_room_for_hot_updates_of_the_state_tables(pg_url: str) -> None:
    """items and returns are rewritten row by row as events arrive: their pages keep half free (so updates
    stay on their page, HOT); log tables only grow and stay full. Down to 0004 and up with data."""
    chain = ChainBuilder()
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    chain.record(item, BizStep.PACKING, Disposition.IN_PROGRESS)
    with Store.open(pg_url) as store:
        store.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
        before = store.dump()
    wanted = {"items": ["fillfactor=50"], "returns": ["fillfactor=50"], "item_events": None}
    assert _fillfactors(pg_url) == wanted
    _migrate(pg_url, "0004", down=True)
    assert _fillfactors(pg_url) == dict.fromkeys(wanted)
    with Store.open(pg_url) as store:
        assert store.dump() == before
    assert _fillfactors(pg_url) == wanted
    assert _differences(pg_url) == []


def test_item_key_is_the_ids_first_eight_bytes_signed() -> None:
    assert item_key("0x" + "00" * 7 + "05" + "ff" * 24) == 5
    assert item_key("0x" + "ff" * 32) == -1
    assert item_key("0x8000000000000000" + "00" * 24) == -(2**63)
    assert item_key("0x7fffffffffffffff" + "00" * 24) == 2**63 - 1
    assert item_key("not an id") == 0


def test_head_revision_is_alembics_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD_REVISION]


def test_an_index_at_head_opens_without_running_alembic(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    Store.open(store_url).close()

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("Alembic ran on an index already at head")

    monkeypatch.setattr(command, "upgrade", refuse)
    with Store.open(store_url) as store:
        assert store.checkpoint() is None
    _migrate(store_url, "0003", down=True)
    with pytest.raises(AssertionError, match="already at head"):  # one revision behind: migrated
        Store.open(store_url)


def test_0006_keeps_tokens_working_and_drops_plaintext_answers(store_url: str) -> None:
    """Down to 0005 (tokens without sale or expiry, idempotent answers stored as sent), rows written as the
    API then wrote them, and up again: the token still verifies and now expires 730 days after its creation;
    the stored answers (which held return tokens in plaintext) are gone."""
    from ledger_service.access import verify_return_token
    from ledger_service.access._secrets import hash_secret

    Store.open(store_url).close()
    _migrate(store_url, "0005", down=True)
    token, created = "rrt_" + "T" * 43, 1_800_000_000
    engine = create_engine(store_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO return_tokens (token_hash, item_id, consumer, created_at) "
                    "VALUES (:hash, :item, :consumer, :created)"
                ),
                {
                    "hash": hash_secret(token),
                    "item": "0x" + "ab" * 32,
                    "consumer": "0x" + "cd" * 20,
                    "created": created,
                },
            )
            conn.execute(
                text(
                    "INSERT INTO idempotency_keys (actor, idempotency_key, method, path, request_hash, status, "
                    "response_body, created_at) VALUES ('key:1', 'k', 'POST', '/v1/sales', :hash, 201, :body, 1)"
                ),
                {"hash": "h" * 64, "body": f'{{"return_token":"{token}"}}'},
            )
    finally:
        engine.dispose()
    with Store.open(store_url) as store:  # upgrades to head
        consumer = verify_return_token(store=store, presented=token, now=created + 1)
        assert consumer.sale_seq is None and consumer.item_id == "0x" + "ab" * 32
        from ledger_service.store import credentials, idempotency

        row = credentials.return_token_by_hash(store, hash_secret(token))
        assert row is not None and row.expires_at == created + 730 * 24 * 3600
        assert idempotency.get_idempotency_key(store, actor="key:1", key="k") is None
        assert credentials.latest_revocation(store) == 0
    assert _differences(store_url) == []


def test_0014_keys_the_captured_events_epcs_of_an_index_built_before_it(store_url: str) -> None:
    """Down to 0013 (epcis_event_epcs without item_key) and up again: every captured row comes back with
    item_key = tables.item_key(item_id), negative keys included."""
    items = [ChainBuilder().register(f"urn:epc:id:sgtin:0614141.107346.{n}") for n in range(12)]
    claims = [
        EventClaim(
            hash_id=f"ni:///sha-256;{n:064x}?ver=CBV2.0",
            event_id=None,
            event_index=n,
            event_type="ObjectEvent",
            action="OBSERVE",
            event_time=n,
            time_zone_offset="+00:00",
            biz_step="shipping",
            disposition="in_transit",
            read_point=None,
            document="0x" + "00" * 32,
            body="{}",
            namespaces="[]",
            epcs=((item, 0, f"urn:epc:id:sgtin:0614141.107346.{n}"),),
            biz_transactions=(),
        )
        for n, item in enumerate(items)
    ]
    with Store.open(store_url) as store:
        claim_events(store, capture_id="cap_" + "0" * 32, actor="0x" + "11" * 20, claims=claims)
        before = store.dump()
    keys = {row[1]: row[-1] for row in before["epcis_event_epcs"]}
    assert keys == {item: item_key(item) for item in items}
    assert min(keys.values()) < 0 < max(keys.values())

    _migrate(store_url, "0013", down=True)
    assert "item_key" not in _column_names(store_url, "epcis_event_epcs")

    with Store.open(store_url) as store:  # upgrades to head
        assert store.dump() == before
    assert _differences(store_url) == []


def test_0034_writes_each_stored_sale_its_items_gtin(store_url: str) -> None:
    """Down to 0033 (sales without gtin) and up again: every sale row comes back with its item's GTIN, as the
    indexer writes it now (the dumps are equal); a sale whose item has no row keeps none."""
    chain = ChainBuilder()
    items = [chain.register(f"urn:x:{n}", gtin=10614141073464 + n) for n in range(5)]
    chain.next_block()
    for item in [*items, "0x" + "ab" * 32]:
        chain.sale(item)
    with Store.open(store_url) as store:
        store.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
        before = store.dump()
    assert sorted(row[-1] is None for row in before["sales"]) == [False] * 5 + [True]

    _migrate(store_url, "0033", down=True)
    assert "gtin" not in _column_names(store_url, "sales")

    with Store.open(store_url) as store:  # upgrades to head
        assert store.dump() == before
    assert _differences(store_url) == []


def _index_definitions(url: str, names: Sequence[str]) -> dict[str, str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                rows = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'index'"))
            else:
                rows = conn.execute(
                    text("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()")
                )
            return {name: sql for name, sql in rows if name in names}
    finally:
        engine.dispose()


def test_0035_keeps_the_rollups_merchant_and_gtin_indexes_of_weeks_and_months_only(store_url: str) -> None:
    """The four secondary indexes of analytics_sales and analytics_returns hold no day rows at head (a refresh's
    new day rows write no entry in them), and every row of every grain again after a downgrade to 0034."""
    names = (
        "ix_analytics_sales_merchant",
        "ix_analytics_sales_gtin",
        "ix_analytics_returns_merchant",
        "ix_analytics_returns_gtin",
    )
    Store.open(store_url).close()
    at_head = _index_definitions(store_url, names)
    assert sorted(at_head) == sorted(names)
    assert all("grain <> 'd'" in sql.replace("::text", "").replace("(grain)", "grain") for sql in at_head.values())

    _migrate(store_url, "0034", down=True)
    before = _index_definitions(store_url, names)
    assert sorted(before) == sorted(names)
    assert not any("WHERE" in sql.upper() for sql in before.values())

    Store.open(store_url).close()  # upgrades to head
    assert _index_definitions(store_url, names) == at_head
    assert _differences(store_url) == []


_ANALYTICS = {table.name for table in ANALYTICS_TABLES}


def _unlogged(url: str) -> set[str]:
    """The analytics tables PostgreSQL keeps without write-ahead log (none on SQLite, which has no such tables)."""
    engine = create_engine(url)
    try:
        if engine.dialect.name != "postgresql":
            return set()
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT relname FROM pg_class WHERE relpersistence = 'u' AND relkind = 'r' "
                    "AND relnamespace = current_schema()::regnamespace"
                )
            )
            return {name for (name,) in rows} & _ANALYTICS
    finally:
        engine.dispose()


def test_0036_keeps_the_sales_days_in_their_weeks_and_the_analytics_unlogged_on_postgresql(store_url: str) -> None:
    """At head a sales rollup row has its week's seven days and, on PostgreSQL, every analytics table is unlogged (a
    crash empties them together, for the next refresh to rebuild); down to 0035 both go, and the upgrade empties
    the analytics tables, the watermark with them (their layout changed: the next refresh folds from nothing)."""
    days = {f"sold_{n}" for n in range(7)}
    Store.open(store_url).close()
    postgres = store_url.startswith("postgresql")
    assert days <= _column_names(store_url, "analytics_sales")
    assert _unlogged(store_url) == (_ANALYTICS if postgres else set())

    _migrate(store_url, "0035", down=True)
    assert not days & _column_names(store_url, "analytics_sales")
    assert _unlogged(store_url) == set()
    engine = create_engine(store_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO analytics_watermark (id, block_number, block_hash, request_time, shipment_time, "
                    "refreshed_at, generation) VALUES (1, 7, '', 0, 0, 0, 0)"
                )
            )
        Store.open(store_url).close()  # upgrades to head
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM analytics_watermark")).scalar_one() == 0
    finally:
        engine.dispose()
    assert days <= _column_names(store_url, "analytics_sales")
    assert _unlogged(store_url) == (_ANALYTICS if postgres else set())
    assert _differences(store_url) == []
