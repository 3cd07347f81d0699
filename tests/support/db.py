"""Database fixtures: the same store tests run on SQLite and on PostgreSQL.

- ``store_url``: parametrized ``[sqlite]`` (a fresh file in tmp_path) and
  ``[postgres]`` (a fresh schema per test, dropped afterwards).
- ``make_store_url``: the same, as a factory, for tests that need several
  indexes on one database (``store_backend`` names it).
- ``pg_url``: the PostgreSQL URL alone, for PostgreSQL-only tests.

PostgreSQL is the server at 127.0.0.1:5432, database ``test``, trust auth
(override with ``TEST_POSTGRES_URL``). Each test gets its own schema through
the URL (``?options=-csearch_path%3D<schema>``), so tests never see each
other's rows. When the server is unreachable the PostgreSQL tests are skipped
with the reason, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pg_base_url() -> str:
    return os.environ.get("TEST_POSTGRES_URL", DEFAULT_PG_URL)


def libpq_dsn(url: str) -> str:
    """The libpq connection string of an SQLAlchemy URL (driver suffix dropped)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def schema_url(base: str, schema: str) -> str:
    """``base`` with every table in ``schema``."""
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def _pg_server() -> str:
    """The base URL of a reachable PostgreSQL server (skip, or fail under CI=true, if there is none)."""
    base = pg_base_url()
    try:
        with psycopg.connect(libpq_dsn(base), connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        reason = f"PostgreSQL at {make_url(base).render_as_string(hide_password=True)} is unreachable: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run)", pytrace=False)
        pytest.skip(reason)
    return base


@contextmanager
def _fresh_schema(base: str) -> Iterator[str]:
    schema = f"test_{uuid.uuid4().hex[:16]}"
    dsn = libpq_dsn(base)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema_url(base, schema)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def pg_url(_pg_server: str) -> Iterator[str]:
    """A URL of the test PostgreSQL whose search_path is a fresh, empty schema (dropped after the test)."""
    with _fresh_schema(_pg_server) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgres``: every test using it runs once per database."""
    backend: str = request.param
    return backend


@pytest.fixture
def make_store_url(store_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[], str]]:
    """Makes URLs of fresh, empty indexes on the test's database (for tests that need several)."""
    with ExitStack() as stack:
        base = request.getfixturevalue("_pg_server") if store_backend == "postgres" else ""
        made = 0

        def make() -> str:
            nonlocal made
            made += 1
            if store_backend == "sqlite":
                return f"sqlite:///{tmp_path / f'index{made}.sqlite3'}"
            return stack.enter_context(_fresh_schema(base))

        yield make


@pytest.fixture
def store_url(make_store_url: Callable[[], str]) -> str:
    """A URL of an empty index: an SQLite file (``[sqlite]``), or a fresh PostgreSQL schema (``[postgres]``)."""
    return make_store_url()


def with_application_name(url: str, name: str) -> str:
    """``url`` whose connections name themselves ``name`` (``pg_stat_activity.application_name``)."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}application_name={name}"


def terminate_backends(application_name: str) -> int:
    """What a PostgreSQL restart does to its clients, for the connections named ``application_name`` only:
    each backend terminated (``pg_terminate_backend``), so every client sees its connection closed mid-use.
    The machine's server cannot be restarted under the tests, and the test database is shared by tests running
    at the same time: a test names its connections and terminates those. Returns how many were terminated."""
    with psycopg.connect(libpq_dsn(pg_base_url()), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database() AND pid <> pg_backend_pid()",
            (application_name,),
        ).fetchall()
    return sum(1 for (done,) in rows if done)


def writer_lock_holders(admin: psycopg.Connection[Any], url: str) -> list[int]:
    """Backends holding the writer lock of the index at ``url`` (a :func:`pg_url`: its schema names the lock)."""
    from ledger_service.store.lock import _lock_key

    key = _lock_key(url.rsplit("%3D", 1)[1]) & 0xFFFF_FFFF_FFFF_FFFF
    rows = admin.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s AND objid = %s"
        " AND objsubid = 1",
        (key >> 32, key & 0xFFFF_FFFF),
    ).fetchall()
    return [int(pid) for (pid,) in rows]


def terminate_writer_lock(admin: psycopg.Connection[Any], url: str) -> None:
    """Ends the connection holding the writer lock of the index at ``url``, as a server restart or a network cut
    does to its holder (the server drops the lock with it), and returns once the lock is free."""
    (holder,) = writer_lock_holders(admin, url)
    assert admin.execute("SELECT pg_terminate_backend(%s)", (holder,)).fetchone() == (True,)
    deadline = time.monotonic() + 20
    while writer_lock_holders(admin, url) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert writer_lock_holders(admin, url) == []
