"""Analytics rollups read by GTIN and reason without the outcome: ``analytics_returns`` gets a view ``s`` (GTIN,
category and reason) and its view ``g`` keeps GTIN, category and outcome (no longer the reason), so that the
suggestions' sector and the rates by GTIN sum a few rows per GTIN. The four rollups are made again (on SQLite
WITHOUT ROWID: a range of their key reads the values beside it) and emptied with their facts and watermark: the
next refresh folds the history from nothing, as it does after a reorg.

Self-contained on purpose (no import of tables.py), like 0015.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | Sequence[str] | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ADDRESS = sa.String(42)
ROLLUPS = ("analytics_terms", "analytics_speed", "analytics_returns", "analytics_sales")
VIEWS = "g gtin+category+outcome, s gtin+category+reason, c carrier+reason, r reason, o outcome"
OLD_VIEWS = "g gtin+category+reason+outcome, c carrier+reason, r reason, o outcome"


def _key() -> list[sa.Column[object]]:
    return [
        sa.Column("grain", sa.String(1), nullable=False, comment="d: day, w: week, m: month"),
        sa.Column(
            "bucket", sa.Integer(), nullable=False, comment="unix day of the day, or of the week's or month's first day"
        ),
        sa.Column("merchant", ADDRESS, nullable=False),
    ]


def _rollups(views: str, **kw: Any) -> None:
    op.create_table(
        "analytics_sales",
        *_key(),
        sa.Column("gtin", sa.BigInteger(), nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("sold", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("grain", "bucket", "merchant", "gtin", "category", name="pk_analytics_sales"),
        **kw,
    )
    op.create_index("ix_analytics_sales_merchant", "analytics_sales", ["merchant", "grain", "bucket"])
    op.create_index("ix_analytics_sales_gtin", "analytics_sales", ["gtin", "grain", "bucket"])
    op.create_table(
        "analytics_returns",
        sa.Column(
            "view", sa.String(1), nullable=False, comment=f"which dimensions the row keeps (the others blank): {views}"
        ),
        *_key(),
        sa.Column("gtin", sa.BigInteger(), nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("reason_code", sa.String(64), nullable=False),
        sa.Column("carrier", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        *(
            sa.Column(name, sa.BigInteger(), nullable=False)
            for name in (
                "requests",
                "refunds",
                "refund_hi",
                "refund_lo",
                "fee_kept_hi",
                "fee_kept_lo",
                "outstanding_count",
                "outstanding_hi",
                "outstanding_lo",
                "disputes",
                "disputes_open",
                "disputes_consumer",
                "disputes_merchant",
            )
        ),
        sa.PrimaryKeyConstraint(
            "view",
            "grain",
            "bucket",
            "merchant",
            "gtin",
            "category",
            "reason_code",
            "carrier",
            "outcome",
            name="pk_analytics_returns",
        ),
        comment="return requests and their money by request day, each counted once in each view: a read sums the "
        "narrowest view that has its dimensions",
        **kw,
    )
    op.create_index("ix_analytics_returns_merchant", "analytics_returns", ["merchant", "view", "grain", "bucket"])
    op.create_index("ix_analytics_returns_gtin", "analytics_returns", ["gtin", "view", "grain", "bucket"])
    op.create_table(
        "analytics_speed",
        *_key(),
        sa.Column("metric", sa.String(24), nullable=False, comment="request_refund|scan_refund|delivery_inspection"),
        sa.Column("hours", sa.Integer(), nullable=False, comment="the duration in whole hours"),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("grain", "bucket", "merchant", "metric", "hours", name="pk_analytics_speed"),
        comment="histograms of durations (hours) per request day: percentiles without the returns themselves",
        **kw,
    )
    op.create_index("ix_analytics_speed_merchant", "analytics_speed", ["merchant", "grain", "bucket"])
    op.create_table(
        "analytics_terms",
        *_key(),
        sa.Column("reason_code", sa.String(64), nullable=False),
        sa.Column("term", sa.String(48), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("grain", "bucket", "merchant", "reason_code", "term", name="pk_analytics_terms"),
        comment="how many comments used a theme term (ledger_service/analytics/themes.py)",
        **kw,
    )
    op.create_index("ix_analytics_terms_merchant", "analytics_terms", ["merchant", "grain", "bucket"])


def _again(views: str, **kw: Any) -> None:
    for table in ROLLUPS:
        op.drop_table(table)
    op.execute("DELETE FROM analytics_facts")
    op.execute("DELETE FROM analytics_watermark")
    _rollups(views, **kw)


def upgrade() -> None:
    _again(VIEWS, sqlite_with_rowid=False)


def downgrade() -> None:
    _again(OLD_VIEWS)
