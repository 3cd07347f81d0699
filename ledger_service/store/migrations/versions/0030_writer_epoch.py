"""The indexer's writer epoch (issue #24): fencing of an old writer after a takeover on PostgreSQL.

``writer_epoch`` holds one row (``id`` 1): the indexer that takes the writer lock increments ``epoch`` and every
one of its write transactions reads it ``FOR SHARE`` first, refusing to go on when it is no longer its own
(ledger_service/store/lock.py). The row is made by the first lock taker, so none is inserted here. SQLite
(one writer per file by ``flock``) leaves it empty. Self-contained on purpose (no import of tables.py).

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0030"
down_revision: str | Sequence[str] | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "writer_epoch",
        sa.Column("id", sa.SmallInteger(), primary_key=True, comment="always 1"),
        sa.Column("epoch", sa.BigInteger(), nullable=False, comment="incremented by each taker of the writer lock"),
        comment="PostgreSQL: the writer lock's fencing epoch (store/lock.py); empty on SQLite",
    )


def downgrade() -> None:
    op.drop_table("writer_epoch")
