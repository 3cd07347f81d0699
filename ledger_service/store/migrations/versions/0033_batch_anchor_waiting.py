"""Why a pending batch anchor waits, as a value (issue #23): ``batch_anchors.waiting``.

The indexer leaves an anchor pending for two reasons: its document could not be had (``document_unavailable``),
or its scans continue scans no applied batch has brought yet (``earlier_scans_not_applied``: held until its
predecessor, re-anchored after a reorg, is applied). Both wrote only a sentence to ``problem``, so the anchors'
list called a held anchor's document unavailable, and every anchor after it "behind" although the indexer goes
on past a held one. The pending anchors already tried are classified here once, by the sentence the indexer
wrote for a held one. Self-contained on purpose (no import of tables.py).

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0033"
down_revision: str | Sequence[str] | None = "0032"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "batch_anchors",
        sa.Column(
            "waiting",
            sa.String(32),
            nullable=True,
            comment="a pending anchor the indexer tried: document_unavailable | earlier_scans_not_applied (0033)",
        ),
    )
    anchors = sa.table("batch_anchors", sa.column("state"), sa.column("problem"), sa.column("waiting"))
    tried = sa.and_(anchors.c.state == "pending_document", anchors.c.problem.is_not(None))
    held = anchors.c.problem.like("waiting for the scans this batch continues%")
    op.execute(anchors.update().where(tried, held).values(waiting="earlier_scans_not_applied"))
    op.execute(anchors.update().where(tried, anchors.c.waiting.is_(None)).values(waiting="document_unavailable"))


def downgrade() -> None:
    with op.batch_alter_table("batch_anchors") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("waiting")
