"""PostgreSQL: items and returns keep half of each page free (fillfactor 50), so their updates are HOT.

The indexer rewrites an item's row for every batch that touches it, and a
return's on every transition. With full pages (PostgreSQL's default fillfactor
100) none of those updates could stay on its page: each wrote a new row
elsewhere plus an entry in every index of the table (items has four, one of
them on the URI text), and left a dead row behind. At 1M events (~10k items)
that was 410k non-HOT updates and a 180 MB items table for 10k live rows. With
free room on the page an update is heap-only (no index is touched, none of the
updated columns is indexed) and later updates prune the dead versions in place:
all 460k updates HOT, 9 MB. SQLite updates rows in place: nothing to do there.

Pages written before this revision keep their rows; new and moved rows get the
room. ``VACUUM FULL items`` (an exclusive lock while it runs) rewrites an
existing table at once.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FILLFACTOR = 50
TABLES = ("items", "returns")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
