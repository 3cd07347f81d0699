"""Alembic environment of the index.

`Store.open` runs ``upgrade head`` programmatically and hands its open
connection in ``config.attributes["connection"]`` (already inside a
transaction, which the migrations join). From the command line
(``alembic -c ledger_service/store/migrations/alembic.ini upgrade head``) the
URL is ``LEDGER_DATABASE_URL`` through :class:`~ledger_service.settings.Settings`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from ledger_service.store.tables import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if isinstance(given, Connection):
        _run(given)
        return
    from ledger_service.settings import get_settings

    engine = create_engine(get_settings().database_url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run them against a database")
run_migrations_online()
