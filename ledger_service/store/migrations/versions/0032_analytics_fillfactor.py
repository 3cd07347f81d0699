"""Room on each page of the analytics rollups for their updates (issue #21), PostgreSQL only.

A refresh adds to rows already stored (a week's or a month's row of every GTIN it folds): with full pages each
update writes a new row version on another page and a new entry in every index of the rollup. Pages kept 30%
free let PostgreSQL update a row in place on its page (a heap-only tuple: the indexes untouched). Pages written
from now on keep the room (a rebuild writes them all again); SQLite has no such setting. Self-contained on
purpose (no import of tables.py).

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0032"
down_revision: str | Sequence[str] | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROLLUPS = ("analytics_sales", "analytics_returns", "analytics_speed", "analytics_terms")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _ROLLUPS:
            op.execute(f"ALTER TABLE {table} SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _ROLLUPS:
            op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
