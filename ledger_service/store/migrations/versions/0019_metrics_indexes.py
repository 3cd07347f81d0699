"""returns: the indexes the metrics' scrape-time counts read (returns by state, escrow still held by token).

Prometheus scrapes ``/metrics`` every few seconds; each scrape counts the returns by state and sums the
deposits not yet settled by token. These indexes let both be answered from an index alone, the second from
the unsettled returns only, instead of a scan of the whole table.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_returns_state", "returns", ["state"])
    op.create_index(
        "ix_returns_unsettled",
        "returns",
        ["token", "amount", "settled"],
        postgresql_where=sa.text("settled = false"),
        sqlite_where=sa.text("settled = 0"),
    )


def downgrade() -> None:
    op.drop_index("ix_returns_unsettled", table_name="returns")
    op.drop_index("ix_returns_state", table_name="returns")
