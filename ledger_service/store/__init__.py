"""The off-chain index: SQLAlchemy 2 Core tables, migrations and queries.

Only this package writes SQL. The same code runs on SQLite (embedded default,
a file in WAL mode) and PostgreSQL (a schema other than ``public`` through
the URL: ``?options=-csearch_path%3D<schema>``). Every table is in
:mod:`~ledger_service.store.tables`, marked by the process that writes it.
:class:`Store` (:mod:`~ledger_service.store.handle`) opens an index and is the
indexer's API; what its writer applies is in :mod:`~ledger_service.store.ingest`;
:func:`writer_lock` makes sure only one indexer writes.

Where a query goes: in the module named after the table it mainly reads or writes (``items``,
``returns``, ``policies``, ``sales``, ``credentials``, ``idempotency``, ``document_quota``,
``checkpoint``), next to the frozen row dataclass it returns; a read that joins several starts from
one of them and goes there (the joined reads that start from an item's current sale are in ``sales``).
A new table goes into ``tables.py`` under its writer, with its migration, and gets its module.
"""

from ledger_service.store.handle import (
    ApplyStats,
    BlockRef,
    ChainPin,
    RollbackStats,
    Store,
    StoreError,
    StoreFullError,
    StoreUnavailableError,
)
from ledger_service.store.lock import WriterFencedError, WriterLock, batcher_lock, notify_lock, writer_lock

__all__ = [
    "ApplyStats",
    "BlockRef",
    "ChainPin",
    "RollbackStats",
    "Store",
    "StoreError",
    "StoreFullError",
    "StoreUnavailableError",
    "WriterFencedError",
    "WriterLock",
    "batcher_lock",
    "notify_lock",
    "writer_lock",
]
