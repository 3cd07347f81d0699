"""EPCIS queries through indexes only: captured events' proofs joined by item key, chain-only events found by
item and by business transaction.

- ``epcis_event_epcs.item_key`` (``item_key(item_id)``, as ``item_events.item_key``): a captured event's
  ItemEventRecorded rows are joined through item_events' (item_key, seq) index in one statement; before, a
  page asked for them as a list of (item_key, seq) pairs, which SQLite answered by scanning item_events.
- ``ix_epcis_event_epcs_item_seq`` (item_id, seq): whether an item event has a capture document (the query's
  test for events the chain holds without one) is one probe, not a read of every captured row of the item.
- ``ix_item_events_biz_transaction``, partial (``biz_transaction`` not zero): ``EQ_bizTransaction_*`` finds
  the escrow's sale and return steps by the digest the chain holds. Only events with a business transaction
  get an entry (revision 0004 dropped the full index: most events have none, and each entry costs ingest).
- ``ix_items_uri`` with ``text_pattern_ops`` on PostgreSQL: an EPC pattern's prefix of ``items.uri`` is an index
  range whatever the database's collation.

Self-contained on purpose (no import of tables.py), like 0004.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ZERO = "0x" + "00" * 32
_PARTIAL = sa.text(f"biz_transaction <> '{ZERO}'")


def _item_key(item_id: str) -> int:
    """tables.item_key as of this revision."""
    try:
        value = int(item_id[2:18], 16)
    except ValueError:
        return 0
    return value - (1 << 64) if value >= 1 << 63 else value


def _uri_index(ops: dict[str, str]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_items_uri", table_name="items")
        op.create_index("ix_items_uri", "items", ["uri"], postgresql_ops=ops)


def upgrade() -> None:
    _uri_index({"uri": "text_pattern_ops"})
    op.add_column("epcis_event_epcs", sa.Column("item_key", sa.BigInteger(), nullable=True))
    conn = op.get_bind()
    epcs = sa.table("epcis_event_epcs", sa.column("item_id", sa.String()), sa.column("item_key", sa.BigInteger()))
    ids = conn.execute(sa.select(epcs.c.item_id).distinct()).scalars().all()
    if ids:
        conn.execute(
            epcs.update().where(epcs.c.item_id == sa.bindparam("id_")).values(item_key=sa.bindparam("key_")),
            [{"id_": item_id, "key_": _item_key(item_id)} for item_id in ids],
        )
    with op.batch_alter_table("epcis_event_epcs") as batch:
        batch.alter_column(
            "item_key",
            existing_type=sa.BigInteger(),
            nullable=False,
            comment="item_key(item_id): joins item_events' (item_key, seq) index",
        )
    op.create_index("ix_epcis_event_epcs_item_seq", "epcis_event_epcs", ["item_id", "seq"])
    op.create_index(
        "ix_item_events_biz_transaction",
        "item_events",
        ["biz_transaction"],
        postgresql_where=_PARTIAL,
        sqlite_where=_PARTIAL,
    )


def downgrade() -> None:
    _uri_index({})
    op.drop_index("ix_item_events_biz_transaction", table_name="item_events")
    op.drop_index("ix_epcis_event_epcs_item_seq", table_name="epcis_event_epcs")
    with op.batch_alter_table("epcis_event_epcs") as batch:
        batch.drop_column("item_key")
