"""The analytics watermark's generation (issue #21).

``analytics_watermark.generation`` moves on with every write transaction of a refresh (a rebuild starts it at
random): the analytics reads keep their answers in memory under it (ledger_service/store/analytics.py), which the
refresh's wall-clock second could not key (two refreshes of one second). Self-contained on purpose (no import of
tables.py).

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0031"
down_revision: str | Sequence[str] | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "analytics_watermark",
        sa.Column(
            "generation",
            sa.BigInteger(),
            nullable=False,
            server_default="0",
            comment="moved by every write of a refresh: what the analytics reads keep their answers under",
        ),
    )


def downgrade() -> None:
    with op.batch_alter_table("analytics_watermark") as batch:
        batch.drop_column("generation")
