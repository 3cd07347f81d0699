"""item_events keyed by log position, found by item through a compact integer key, and no unread indexes.

Before: primary key (item_id, seq), plus an index on (block_number, log_index).
Every batch of events adds one entry per touched item to the primary-key
index, anywhere in it, and an entry held the 66-character item id: a batch
dirtied most of that index's pages, and the indexer's commits wrote them all.

After: the primary key is the log's position (block_number, log_index), like
the other log tables (rows are appended in that order), and the item's events
are found through an index on (item_key, seq), where ``item_key`` is the item
id's first 8 bytes as a signed 64-bit integer (``schema.item_key``). The
index on (block_number, log_index) is the primary key now. (item_id, seq) is
no longer unique in the database: the indexer checks every event's seq and
records one out of order as a chain problem, as it did for a gap.

The indexes on (actor, timestamp) and on biz_transaction go: no query reads
item_events by either alone, and each cost every inserted event an entry.

Self-contained on purpose (no import of schema.py), like 0001.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HASH = sa.String(66)
ADDRESS = sa.String(42)
_SQLITE_KEY_FUNCTION = "ledger_item_key"


def _item_key(item_id: str | None) -> int:
    """schema.item_key as of this revision."""
    try:
        value = int((item_id or "")[2:18], 16)
    except ValueError:
        return 0
    return value - (1 << 64) if value >= 1 << 63 else value


def _columns(*, keyed: bool) -> list[sa.Column[Any]]:
    """item_events' columns at revision 0003, then item_key with ``keyed``."""
    columns: list[sa.Column[Any]] = [
        sa.Column("item_id", HASH, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("biz_step", sa.SmallInteger(), nullable=False),
        sa.Column("disposition", sa.SmallInteger(), nullable=False),
        sa.Column("actor", ADDRESS, nullable=False),
        sa.Column("location", HASH, nullable=False, comment="bytes32 as hex: SGLN ASCII right-padded"),
        sa.Column("document", HASH, nullable=False),
        sa.Column("biz_transaction", HASH, nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("prev_hash", HASH, nullable=False),
        sa.Column("event_hash", HASH, nullable=False),
        sa.Column("chain_ok", sa.Boolean(), nullable=False, comment="prevHash links and eventHash recomputes"),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("tx_hash", HASH, nullable=False),
        sa.Column("tx_index", sa.Integer(), nullable=False),
        sa.Column(
            "block_hash",
            HASH,
            nullable=True,
            comment="hash of the log's block (auditors check it is still canonical); NULL only for rows "
            "indexed before revision 0003 whose block header was no longer stored",
        ),
    ]
    if keyed:
        columns.append(
            sa.Column(
                "item_key",
                sa.BigInteger(),
                nullable=False,
                comment="item_key(item_id): the index's compact key of the item; queries filter item_id too",
            )
        )
    return columns


def _sqlite_rebuild(*, keyed: bool) -> None:
    """SQLite cannot change a primary key in place: copies item_events into a table of the wanted layout."""
    bind = op.get_bind()
    names = [column.name for column in _columns(keyed=False)]
    pk = ("block_number", "log_index") if keyed else ("item_id", "seq")
    op.create_table("item_events_rebuilt", *_columns(keyed=keyed), sa.PrimaryKeyConstraint(*pk, name="pk_item_events"))
    listed = ", ".join(names)
    if keyed:
        bind.connection.driver_connection.create_function(  # type: ignore[union-attr]
            _SQLITE_KEY_FUNCTION, 1, _item_key, deterministic=True
        )
        op.execute(
            f"INSERT INTO item_events_rebuilt ({listed}, item_key) "  # noqa: S608 - our identifiers
            f"SELECT {listed}, {_SQLITE_KEY_FUNCTION}(item_id) FROM item_events ORDER BY block_number, log_index"
        )
    else:
        op.execute(f"INSERT INTO item_events_rebuilt ({listed}) SELECT {listed} FROM item_events")  # noqa: S608
    op.drop_table("item_events")
    op.rename_table("item_events_rebuilt", "item_events")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_rebuild(keyed=True)  # the old table's indexes went with it
    else:
        op.drop_index("ix_item_events_actor_time", table_name="item_events")
        op.drop_index("ix_item_events_biz_transaction", table_name="item_events")
        op.add_column("item_events", sa.Column("item_key", sa.BigInteger(), nullable=True))
        # the first 16 hex digits as a bit string, read as a two's-complement bigint
        op.execute("UPDATE item_events SET item_key = ('x' || substr(item_id, 3, 16))::bit(64)::bigint")
        op.alter_column(
            "item_events",
            "item_key",
            nullable=False,
            comment="item_key(item_id): the index's compact key of the item; queries filter item_id too",
        )
        op.drop_index("ix_item_events_block", table_name="item_events")
        op.drop_constraint("pk_item_events", "item_events", type_="primary")
        op.create_primary_key("pk_item_events", "item_events", ["block_number", "log_index"])
    op.create_index("ix_item_events_item", "item_events", ["item_key", "seq"])


def downgrade() -> None:
    op.drop_index("ix_item_events_item", table_name="item_events")
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_rebuild(keyed=False)
    else:
        op.drop_constraint("pk_item_events", "item_events", type_="primary")
        op.create_primary_key("pk_item_events", "item_events", ["item_id", "seq"])
        op.drop_column("item_events", "item_key")
    op.create_index("ix_item_events_block", "item_events", ["block_number", "log_index"])
    op.create_index("ix_item_events_actor_time", "item_events", ["actor", "timestamp"])
    op.create_index("ix_item_events_biz_transaction", "item_events", ["biz_transaction"])
