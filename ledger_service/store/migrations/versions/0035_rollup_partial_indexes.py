"""The analytics rollups' merchant and GTIN indexes of weeks and months only (issue #21).

A refresh after a backfill adds mostly new day rows to ``analytics_sales`` and ``analytics_returns`` (a row per
GTIN and day), and each of a new row's index entries is a write: the two secondary indexes made most of the cost
of those rows. Reads use them for the weeks and months of a range; the few days at its ends are found by the
primary key's prefix (grain, bucket) and filtered. The rollups' rows are unchanged. Self-contained on purpose (no
import of tables.py).

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0035"
down_revision: str | Sequence[str] | None = "0034"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = (
    ("ix_analytics_sales_merchant", "analytics_sales", ["merchant", "grain", "bucket"]),
    ("ix_analytics_sales_gtin", "analytics_sales", ["gtin", "grain", "bucket"]),
    ("ix_analytics_returns_merchant", "analytics_returns", ["merchant", "view", "grain", "bucket"]),
    ("ix_analytics_returns_gtin", "analytics_returns", ["gtin", "view", "grain", "bucket"]),
)


def upgrade() -> None:
    weeks_and_months = sa.text("grain <> 'd'")
    for name, table, columns in _INDEXES:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, columns, postgresql_where=weeks_and_months, sqlite_where=weeks_and_months)


def downgrade() -> None:
    for name, table, columns in _INDEXES:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, columns)
