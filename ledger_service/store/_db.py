"""Engines, transactions, migrations and upserts: the only dialect-specific code of the store.

SQLite: WAL journal, ``synchronous=NORMAL`` (a process crash loses nothing, a power
loss at most the last commits, never consistency), a busy timeout, reads through a memory map
(``mmap_size``), and transactions begun by us
(``BEGIN``, or ``BEGIN IMMEDIATE`` for writes) instead of by the sqlite3
module, so reads and DDL are transactional too.

PostgreSQL: any SQLAlchemy URL (``postgresql+psycopg://...``). To keep the
index in a schema other than ``public``, name it in the URL's libpq options:
``postgresql+psycopg://user@host/db?options=-csearch_path%3Dmy_schema``
(every table, index and the ``alembic_version`` table then live there; the
schema is created if it does not exist). A pooled connection is checked before use without a round trip: an idle
connection has nothing to read, so a readable socket means the server said goodbye (a restart, a terminated
backend) or closed it; only then a ping decides, and the pool opens another if it fails (:func:`_closed_by_server`;
SQLAlchemy's ``pool_pre_ping`` sent a ``SELECT 1`` each time, a round trip as dear as the eligibility read's own
statement). Connections keep TCP keepalives and a send timeout (:data:`POSTGRES_CONNECT_DEFAULTS`, each
overridable in the URL's query), so a server gone silently is noticed too.
"""

from __future__ import annotations

import select
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    any_,
    bindparam,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.sql.expression import Insert, TextClause
from sqlalchemy.types import TypeDecorator

from ledger_service.store._errors import StoreError, StoreFullError, StoreUnavailableError
from ledger_service.store.tables import metadata

log = structlog.get_logger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_WRITER_AUTOCHECKPOINT_PAGES = 16_384
SQLITE_MMAP_BYTES = 256 * 2**20
"""How much of an SQLite index a reader (the API) maps into memory; writers map none (see create_store_engine)."""
SQLITE_CACHE_KIB = 65_536
"""SQLite's page cache per connection (64 MiB), unless a Store is opened with another size."""
SQLITE_INDEXER_CACHE_KIB = 32_768
"""The indexer's page cache (32 MiB). A backfill appends item_events and rewrites the items pages of each batch,
which fit; with 64 MiB the indexer's processes peaked at 287-312 MB (summed PSS, 1M events, two fetch threads)
against 273-278 MB with 32, at the same speed."""
_MIGRATION_LOCK_KEY = 0x6C65_6467_6D69_6772  # "ledgmigr": serializes concurrent Store.open on PostgreSQL
_BEGIN_OPTION = "ledger_sqlite_begin"


def sqlite_path(url: str) -> Path | None:
    """The database file of an SQLite URL (None: not SQLite, or in memory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


POSTGRES_POOL_SIZE = 5
"""Connections a process keeps open to a PostgreSQL index unless told otherwise (SQLAlchemy's default)."""

POSTGRES_CONNECT_DEFAULTS = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",
}
"""libpq parameters a PostgreSQL URL gets unless it sets them itself: a server that vanished without closing its
connections (a host down, a network cut) fails a statement within about a minute instead of the kernel's quarter
of an hour of retransmissions, and a connection attempt within 10 s, so the API answers 503 and every component
reconnects as after a restart."""


def create_store_engine(
    url: str, *, mmap_bytes: int = 0, cache_kib: int = SQLITE_CACHE_KIB, pool_size: int = POSTGRES_POOL_SIZE
) -> Engine:
    """An engine for the index at ``url``, configured as the module docstring says.

    ``mmap_bytes`` (SQLite) maps that much of the file for reads. The API's store uses
    :data:`SQLITE_MMAP_BYTES`; the indexer none, because mapped pages count in its resident
    memory (bounded by its page cache instead, ``cache_kib``).
    ``pool_size`` (PostgreSQL): connections kept open; more at once (up to 10 more) are opened for one use and
    closed, a new server process each, which costs the server more than the query.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        connect_args = {k: v for k, v in POSTGRES_CONNECT_DEFAULTS.items() if k not in parsed.query}
        pg_engine = create_engine(parsed, pool_size=pool_size, connect_args=connect_args)

        @event.listens_for(pg_engine, "checkout")
        def _check_alive(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            if _closed_by_server(dbapi_connection) and not _answers_ping(pg_engine, dbapi_connection):
                raise DisconnectionError("the server closed this pooled connection")  # the pool opens another

        return pg_engine
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see "begin" below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute(f"PRAGMA cache_size=-{int(cache_kib)}")  # in KiB
        # Reads of the database file's first ``mmap_bytes`` through a memory map instead of read() into the page
        # cache: a page-cache miss then costs no syscall and no copy (the eligibility read's statement ~8%
        # faster on a 121 MiB index). Writes are unchanged: in WAL mode they go to the WAL with write(), and
        # checkpoints copy it back with write() too (sqlite3 is not built with SQLITE_MMAP_READWRITE).
        cursor.execute(f"PRAGMA mmap_size={int(mmap_bytes)}")
        # Checkpoints are the Checkpointer thread's job; a committing connection only checkpoints
        # itself when the WAL holds this many pages (64 MiB), if that thread falls behind.
        cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WRITER_AUTOCHECKPOINT_PAGES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get(_BEGIN_OPTION, "BEGIN"))

    return engine


def _closed_by_server(dbapi_connection: Any) -> bool:
    """Whether a pooled (idle) PostgreSQL connection is gone: closed by the driver after an error, or its socket
    readable. The server sends nothing to an idle connection we do not LISTEN on except its last words before
    it closes it (a restart, ``pg_terminate_backend``, an idle timeout) or the closing itself; so this costs a
    ``poll`` instead of a round trip. A readable socket is then pinged (:func:`_answers_ping`): a rare message
    sent unasked (a reloaded setting's ParameterStatus) costs one round trip, not the connection."""
    if dbapi_connection.closed:
        return True
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


def _answers_ping(engine: Engine, dbapi_connection: Any) -> bool:
    """Whether a connection whose socket is readable still answers (``pool_pre_ping``'s check, only then): the
    bytes may be a message the server may send unasked (a ParameterStatus, TLS housekeeping), not a goodbye, and a
    connection that keeps such bytes must not be thrown away at every checkout."""
    if dbapi_connection.closed:
        return False
    try:
        return bool(engine.dialect.do_ping(dbapi_connection))
    except Exception:  # any failure of the ping means the connection is unusable: the pool opens another
        return False


class Checkpointer:
    """Copies an SQLite WAL back into the database file on a thread of its own.

    SQLite's default makes the committing connection checkpoint whenever the
    WAL exceeds 1000 pages, so every large batch pays for the copy and its
    fsync in the writer's thread. Here the writer calls :meth:`committed`
    after each commit and this thread runs ``PRAGMA wal_checkpoint(PASSIVE)``
    (which never blocks readers or the writer) on its own connection, with
    the GIL released by sqlite3, in parallel with the indexer's Python work.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sqlite-checkpoint:{path.name}", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """Tells the thread that the WAL grew."""
        self._wake.set()

    def close(self) -> None:
        """Stops the thread after its current checkpoint."""
        self._stop.set()
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        connection = sqlite3.connect(self._path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            while True:
                self._wake.wait()
                if self._stop.is_set():
                    return
                self._wake.clear()
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # pragma: no cover - the writer's autocheckpoint still bounds the WAL
                    log.warning("sqlite checkpoint failed", database=str(self._path), error=str(exc))
        finally:
            connection.close()


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One write transaction (SQLite: BEGIN IMMEDIATE), committed on success, rolled back on any error.

    Database errors are translated: a constraint violation becomes
    :class:`StoreError`, a lost or busy database :class:`StoreUnavailableError`.
    """
    with translate_errors(), engine.connect() as conn:
        conn.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})
        with conn.begin():
            yield conn


@contextmanager
def single_statement(engine: Engine) -> Iterator[Connection]:
    """A connection in autocommit mode, for one statement that is its own transaction: no BEGIN and COMMIT round
    trips around it (PostgreSQL; a hot path's statement that reads, writes and answers at once). Each statement
    executed on it commits by itself, so give it only one."""
    with translate_errors(), engine.connect() as conn:
        yield conn.execution_options(isolation_level="AUTOCOMMIT")


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """One read-only transaction: a consistent snapshot on both databases (PostgreSQL: REPEATABLE READ)."""
    with translate_errors(), engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def _with_driver_errors(error: type[Exception]) -> tuple[type[Exception], ...]:
    """SQLAlchemy's ``error`` and psycopg's class of the same name, once psycopg is loaded (a PostgreSQL
    engine loads it; an SQLite index never pays for importing it, ~40 ms of the CLI's start)."""
    psycopg = sys.modules.get("psycopg")
    return (error,) if psycopg is None else (error, getattr(psycopg, error.__name__))


@contextmanager
def translate_errors() -> Iterator[None]:
    """Database errors as the store's: conflicts -> StoreError, lost or busy database -> StoreUnavailableError.

    psycopg's own classes are caught too: the PostgreSQL COPY path talks to the driver directly.
    """
    try:
        yield
    except _with_driver_errors(IntegrityError) as exc:
        raise StoreError(f"the index refused rows that conflict with stored ones: {getattr(exc, 'orig', exc)}") from exc
    except _with_driver_errors(OperationalError) as exc:
        if _disk_full(exc):
            raise _full(exc) from exc
        raise StoreUnavailableError(f"database unavailable: {getattr(exc, 'orig', exc)}") from exc
    except DBAPIError as exc:
        if _disk_full(exc):
            raise _full(exc) from exc
        if exc.connection_invalidated:
            raise StoreUnavailableError(f"database connection lost: {exc.orig}") from exc
        raise


_SQLITE_FULL = 13
"""SQLite's primary result code for "database or disk is full" (also its page limit, ``max_page_count``)."""
_PG_DISK_FULL = "53100"
"""PostgreSQL's SQLSTATE ``disk_full``."""


def _disk_full(exc: Exception) -> bool:
    """Whether ``exc`` (SQLAlchemy's or a driver's) says the database's disk is full: a stop, not a retry."""
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF == _SQLITE_FULL:
        return True
    return getattr(orig, "sqlstate", None) == _PG_DISK_FULL


def _full(exc: Exception) -> StoreFullError:
    return StoreFullError(
        f"the database's disk is full ({getattr(exc, 'orig', exc)}): the transaction was rolled back and nothing "
        "committed is lost; free space on its volume (or grow it), then start again: it resumes where it stopped"
    )


HEAD_REVISION = "0036"
"""The newest migration (a test checks it is Alembic's head): an index already there is not migrated."""


def upgrade_to_head(engine: Engine) -> None:
    """Brings the index to the schema at head, in one transaction (serialized across processes).

    An index already at :data:`HEAD_REVISION` is left alone without loading Alembic or its scripts: that
    is every start of the indexer and the API but the first after an upgrade, and it spares ~0.1 s of
    each start. A new index (none of its tables yet) is created from tables.py and stamped at head, also
    without Alembic; any other runs the Alembic migrations up to head.
    """
    if _revision(engine) == HEAD_REVISION:
        return
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            _ensure_pg_schema(conn)
        if not set(inspect(conn).get_table_names()) & {*metadata.tables, _ALEMBIC_VERSION.name}:
            # A new index: the schema at head in one go and its revision stamped, as Alembic's recipe for a
            # new database does (without loading Alembic: ~0.2 s less for a new PostgreSQL index, ~0.08 s for
            # SQLite). tests/ledger_service/store/test_migrations.py checks that the migrations build the same.
            metadata.create_all(conn)
            _ALEMBIC_VERSION.create(conn)
            conn.execute(_ALEMBIC_VERSION.insert().values(version_num=HEAD_REVISION))
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


_ALEMBIC_VERSION = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)
"""Alembic's version table, as its MigrationContext defines it."""


def _revision(engine: Engine) -> str | None:
    """The index's Alembic revision; None for a new one (no ``alembic_version`` table in its schema)."""
    with read_transaction(engine) as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return versions[0] if len(versions) == 1 else None


def _ensure_pg_schema(conn: Connection) -> None:
    """Creates the first schema of the search_path when none of it exists yet."""
    if conn.execute(text("SELECT current_schema()")).scalar() is not None:
        return
    search_path = str(conn.execute(text("SHOW search_path")).scalar() or "")
    names = [name.strip().strip('"') for name in search_path.split(",") if name.strip() not in ("", '"$user"')]
    if not names:
        raise StoreError(f"no schema to create the index in (search_path {search_path!r})")
    quoted = conn.dialect.identifier_preparer.quote_identifier(names[0])
    conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {quoted}"))


# ---- bulk writes ----------------------------------------------------------------------
#
# insert_rows / update_rows / upsert take dicts that all have the same keys and
# write them in one go: on SQLite one DBAPI executemany of a statement compiled
# once (no per-row SQLAlchemy parameter processing, except for Amount columns,
# which go through Core); on PostgreSQL one COPY for inserts, and one statement
# for updates and upserts, each column sent as one binary array parameter and
# expanded server-side by unnest(): no round trip per row.


@dataclass(frozen=True, slots=True)
class _Prepared:
    stmt: Insert | TextClause
    sql: str | None
    """None: go through Core (a column needs SQLAlchemy's bind processing)."""
    to_params: Callable[[dict[str, Any]], Any] | None
    """dict row -> DBAPI parameters for positional paramstyles; None: the dict itself."""


_PREPARED: dict[tuple[str, str, str, tuple[str, ...]], _Prepared] = {}


def _sqlite_statement(kind: str, table: Table, columns: tuple[str, ...]) -> Insert | TextClause:
    keys = [column.name for column in table.primary_key.columns]
    if kind == "insert":
        return table.insert()
    if kind == "update":
        assignments = ", ".join(f'"{name}" = :{name}' for name in columns if name not in keys)
        condition = " AND ".join(f'"{name}" = :{name}' for name in keys)
        return text(f'UPDATE "{table.name}" SET {assignments} WHERE {condition}')  # noqa: S608 - our identifiers
    insert = sqlite.insert(table)
    if kind == "increment":
        added = {name: table.c[name] + insert.excluded[name] for name in columns if name not in keys}
        return insert.on_conflict_do_update(index_elements=keys, set_=added)
    updates = {name: insert.excluded[name] for name in columns if name not in keys}
    if updates:
        return insert.on_conflict_do_update(index_elements=keys, set_=updates)
    return insert.on_conflict_do_nothing(index_elements=keys)


def _postgres_sql(conn: Connection, kind: str, table: Table, columns: tuple[str, ...]) -> str:
    quote = conn.dialect.identifier_preparer.quote
    keys = [column.name for column in table.primary_key.columns]
    arrays = ", ".join(f"%({name})b::{table.c[name].type.compile(dialect=conn.dialect)}[]" for name in columns)
    names = ", ".join(quote(name) for name in columns)
    target = quote(table.name)
    if kind == "update":
        assignments = ", ".join(f"{quote(name)} = v.{quote(name)}" for name in columns if name not in keys)
        condition = " AND ".join(f"{target}.{quote(name)} = v.{quote(name)}" for name in keys)
        return f"UPDATE {target} SET {assignments} FROM unnest({arrays}) AS v({names}) WHERE {condition}"  # noqa: S608
    sql = f"INSERT INTO {target} ({names}) SELECT * FROM unnest({arrays})"  # noqa: S608 - our identifiers
    conflict = ", ".join(quote(name) for name in keys)
    if kind == "upsert":
        updates = ", ".join(f"{quote(name)} = EXCLUDED.{quote(name)}" for name in columns if name not in keys)
        sql += f" ON CONFLICT ({conflict}) " + (f"DO UPDATE SET {updates}" if updates else "DO NOTHING")
    elif kind == "increment":
        added = ", ".join(
            f"{quote(name)} = {target}.{quote(name)} + EXCLUDED.{quote(name)}" for name in columns if name not in keys
        )
        sql += f" ON CONFLICT ({conflict}) DO UPDATE SET {added}"
    return sql


def _prepare(conn: Connection, kind: str, table: Table, columns: tuple[str, ...]) -> _Prepared:
    key = (kind, table.name, conn.dialect.name, columns)
    prepared = _PREPARED.get(key)
    if prepared is not None:
        return prepared
    if conn.dialect.name == "postgresql":
        prepared = _Prepared(text(""), _postgres_sql(conn, kind, table, columns), None)
    else:
        stmt = _sqlite_statement(kind, table, columns)
        if any(isinstance(table.c[name].type, TypeDecorator) for name in columns):
            prepared = _Prepared(stmt, None, None)
        else:
            compiled = stmt.compile(dialect=conn.dialect, column_keys=None if kind == "update" else list(columns))
            to_params: Callable[[dict[str, Any]], Any] | None = None
            if compiled.positional:
                order = tuple(compiled.positiontup or ())
                to_params = (lambda row: (row[order[0]],)) if len(order) == 1 else itemgetter(*order)
            prepared = _Prepared(stmt, compiled.string, to_params)
    _PREPARED[key] = prepared
    return prepared


def _write_rows(conn: Connection, kind: str, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = tuple(rows[0])
    prepared = _prepare(conn, kind, table, columns)
    if conn.dialect.name == "postgresql":
        if kind == "insert":
            _copy_rows(conn, table, columns, rows)
            return
        assert prepared.sql is not None
        conn.exec_driver_sql(prepared.sql, {name: [row[name] for row in rows] for name in columns})
    elif prepared.sql is None:
        conn.execute(prepared.stmt, list(rows))
    elif prepared.to_params is None:
        conn.exec_driver_sql(prepared.sql, list(rows))
    else:
        conn.exec_driver_sql(prepared.sql, [prepared.to_params(row) for row in rows])


_TUPLE_SQL: dict[tuple[str, str, str, tuple[str, ...]], str] = {}


def write_tuples(
    conn: Connection, kind: str, table: Table, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Like :func:`insert_rows` (``kind`` "insert") or :func:`update_rows` ("update") with each row given as
    a tuple of ``columns`` in that order (the hot path: no dict per row). No column may need SQLAlchemy's
    bind processing (no Amount columns)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        if kind == "insert":
            _copy_tuples(conn, table, columns, rows)
            return
        sql = _prepare(conn, kind, table, columns).sql
        assert sql is not None
        conn.exec_driver_sql(sql, {name: [row[i] for row in rows] for i, name in enumerate(columns)})
        return
    key = (kind, table.name, conn.dialect.name, columns)
    sql = _TUPLE_SQL.get(key)
    if sql is None:
        if any(isinstance(table.c[name].type, TypeDecorator) for name in columns):
            raise TypeError(f"write_tuples: a column of {table.name} needs bind processing")
        names = [column.name for column in table.primary_key.columns]
        if kind == "insert":
            listed = ", ".join(f'"{name}"' for name in columns)
            marks = ", ".join("?" for _ in columns)
            sql = f'INSERT INTO "{table.name}" ({listed}) VALUES ({marks})'  # noqa: S608 - our identifiers
        elif kind == "update":
            # keys lead the tuple in ``columns`` order; the parameters are numbered to reuse them
            index = {name: i + 1 for i, name in enumerate(columns)}
            assignments = ", ".join(f'"{name}" = ?{index[name]}' for name in columns if name not in names)
            condition = " AND ".join(f'"{name}" = ?{index[name]}' for name in names)
            sql = f'UPDATE "{table.name}" SET {assignments} WHERE {condition}'  # noqa: S608 - our identifiers
        else:
            raise ValueError(f"write_tuples: unknown kind {kind!r}")
        _TUPLE_SQL[key] = sql
    conn.exec_driver_sql(sql, list(rows))


_COPY: dict[tuple[str, tuple[str, ...]], tuple[str, list[str]]] = {}


def _copy_statement(conn: Connection, table: Table, columns: tuple[str, ...]) -> tuple[str, list[str]]:
    """The binary COPY statement into ``table``'s ``columns``, and their PostgreSQL type names.

    Binary: the server takes each value as it is stored (no text parsing of every integer and string), and
    the driver encodes it from the Python value with the column's type (``set_types``).
    """
    key = (table.name, columns)
    found = _COPY.get(key)
    if found is None:
        quote = conn.dialect.identifier_preparer.quote
        sql = f"COPY {quote(table.name)} ({', '.join(quote(name) for name in columns)}) FROM STDIN (FORMAT BINARY)"
        types = [table.c[name].type.compile(dialect=conn.dialect).split("(")[0].strip().lower() for name in columns]
        found = _COPY[key] = (sql, types)
    return found


def _copy_tuples(conn: Connection, table: Table, columns: tuple[str, ...], rows: Iterable[tuple[Any, ...]]) -> None:
    """PostgreSQL: COPY ``rows`` (tuples of ``columns``) into ``table`` on the connection's current transaction."""
    sql, types = _copy_statement(conn, table, columns)
    raw: Any = conn.connection.dbapi_connection
    with raw.cursor() as cursor, cursor.copy(sql) as copy:
        copy.set_types(types)
        write_row = copy.write_row
        for row in rows:
            write_row(row)


def _copy_rows(conn: Connection, table: Table, columns: tuple[str, ...], rows: Sequence[dict[str, Any]]) -> None:
    """PostgreSQL: COPY ``rows`` (dicts with the keys ``columns``) like :func:`_copy_tuples`."""
    values: Callable[[dict[str, Any]], tuple[Any, ...]] = (
        itemgetter(*columns) if len(columns) > 1 else (lambda row: (row[columns[0]],))
    )
    _copy_tuples(conn, table, columns, map(values, rows))


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dicts with the same keys)."""
    _write_rows(conn, "insert", table, rows)


def update_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """UPDATE the rows with these primary keys (dicts with the same keys: the key columns and the new values)."""
    _write_rows(conn, "update", table, rows)


def upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ... ON CONFLICT (primary key) DO UPDATE ``rows`` (dicts with the same keys, distinct keys)."""
    _write_rows(conn, "upsert", table, rows)


def increment_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Adds ``rows``' values (the columns other than the primary key) to the rows with their keys, inserting the
    missing ones at those values (dicts with the same keys, distinct keys): one statement on PostgreSQL."""
    _write_rows(conn, "increment", table, rows)


def insert_ignore(conn: Connection, table: Table, row: dict[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING of one row; whether it was inserted."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).values(**row).on_conflict_do_nothing()
    return conn.execute(stmt.execution_options(preserve_rowcount=True)).rowcount == 1


def key_in(conn: Connection, column: ColumnElement[Any], keys: Sequence[Any]) -> ColumnElement[bool]:
    """``column IN keys``; on PostgreSQL ``column = ANY(array)``, one parameter however many keys."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(keys), type_=postgresql.ARRAY(column.type)))
    return column.in_(keys)
