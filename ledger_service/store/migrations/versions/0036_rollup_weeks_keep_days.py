"""Fewer analytics rollup rows for a refresh to write (issue #21): sales kept by week with the week's days, and
one view of the returns by GTIN.

A backfill's batch of sales falls on many days, about one sale per GTIN and day: ``analytics_sales``' day rows
were nearly a row per sale. A week row now keeps its days' counts (``sold_0`` .. ``sold_6``, Monday first) and
the table holds weeks and months only; a read's days at a range's ends sum those columns of their weeks' rows.
``analytics_returns`` kept a request's GTIN in two views (``g`` by outcome, ``s`` by reason), each a row per
request, and every view had day rows, about a row per request each; ``g`` now keeps every dimension and is the
only view with day rows (a read of another view reads its days from ``g``'s; its months leave the carrier out)
and has no week rows (as many as its days), and ``s`` is gone. Every rollup is emptied with its facts and
watermark: the next refresh folds the history from nothing (about 15-20 s per
million items on the benchmark's machine), as after 0024 and 0026.

On PostgreSQL the analytics tables become UNLOGGED: derived data, rebuilt from the index, they need no
write-ahead log (a refresh after a backfill touches thousands of pages, each first change after a checkpoint a
full page in the log). A crash empties them all together (the watermark with them) and the next refresh folds
the history from nothing; a clean stop keeps them. Self-contained on purpose (no import of tables.py).

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0036"
down_revision: str | Sequence[str] | None = "0035"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROLLUPS = ("analytics_sales", "analytics_returns", "analytics_speed", "analytics_terms")
_ANALYTICS = ("analytics_watermark", "analytics_facts", *_ROLLUPS)
_VIEW_COMMENT = {
    "upgrade": "which dimensions the row keeps (the others blank): g all by day, all but carrier by month "
    "(the only view with days), c carrier+reason, r reason, o outcome",
    "downgrade": "which dimensions the row keeps (the others blank): g gtin+category+outcome, s gtin+category+reason, "
    "c carrier+reason, r reason, o outcome",
}


def _emptied() -> None:
    # the watermark goes with the facts: the next refresh folds everything again (the sales too, or twice)
    for table in _ANALYTICS:
        op.execute(f"DELETE FROM {table}")  # noqa: S608 - constant names only


def _view_comment(which: str) -> None:
    if op.get_bind().dialect.name == "postgresql":  # SQLite keeps no comments
        op.alter_column("analytics_returns", "view", existing_type=sa.String(1), comment=_VIEW_COMMENT[which])


def _persistence(logged: bool) -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _ANALYTICS:  # empty: nothing to rewrite
            op.execute(f"ALTER TABLE {table} SET {'LOGGED' if logged else 'UNLOGGED'}")


def upgrade() -> None:
    _emptied()
    _persistence(logged=False)
    for n in range(7):
        op.add_column(
            "analytics_sales",
            sa.Column(
                f"sold_{n}",
                sa.BigInteger(),
                nullable=False,
                server_default="0",
                comment=f"sold on the week's day {n} (0 Monday), on a week row; 0 on a month row",
            ),
        )
    _view_comment("upgrade")


def downgrade() -> None:
    _emptied()
    _persistence(logged=True)
    with op.batch_alter_table("analytics_sales") as batch:
        for n in range(7):
            batch.drop_column(f"sold_{n}")
    _view_comment("downgrade")
