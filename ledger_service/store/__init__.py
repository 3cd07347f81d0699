"""The off-chain index: SQLAlchemy 2 Core tables, migrations and queries.

Only this package writes SQL. The same code runs on SQLite (embedded default,
a file in WAL mode) and PostgreSQL (a schema other than ``public`` through
the URL: ``?options=-csearch_path%3D<schema>``). :class:`Store` is the API of
the indexer; :func:`writer_lock` makes sure only one indexer writes.
"""

from ledger_service.store import api_schema as api_schema  # registers the API's tables on schema.metadata
from ledger_service.store.handle import (
    ApplyStats,
    BlockRef,
    ChainPin,
    RollbackStats,
    Store,
    StoreError,
    StoreUnavailableError,
)
from ledger_service.store.lock import WriterLock, writer_lock

__all__ = [
    "ApplyStats",
    "BlockRef",
    "ChainPin",
    "RollbackStats",
    "Store",
    "StoreError",
    "StoreUnavailableError",
    "WriterLock",
    "writer_lock",
]
