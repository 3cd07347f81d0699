"""Analytics by token, and exchanges apart from returns.

``analytics_returns`` gets a ``token`` in its key (the ERC-20 of the request's sale: amounts of two tokens are
never summed together) and two counts, ``exchanges`` (exchange requests, no longer counted in ``requests``) and
``exchanges_other_gtin`` (those whose replacement has another GTIN: another size or colour).
``analytics_facts`` keeps the token, whether the request is an exchange and its replacement's GTIN. Every
rollup is emptied with its facts and watermark: the next refresh folds the history from nothing, as after 0024.

Self-contained on purpose (no import of tables.py), like 0015 and 0024.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | Sequence[str] | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ADDRESS = sa.String(42)
VIEWS = "g gtin+category+outcome, s gtin+category+reason, c carrier+reason, r reason, o outcome"
COUNTS = (
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
DIMS = ("gtin", "category", "reason_code", "carrier", "outcome")
FACT_COLUMNS = ("replacement_gtin", "exchange", "token")


def _returns(*, tokens: bool) -> None:
    dims: list[sa.Column[object]] = [
        sa.Column("gtin", sa.BigInteger(), nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("reason_code", sa.String(64), nullable=False),
        sa.Column("carrier", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
    ]
    key = ["view", "grain", "bucket", "merchant", *DIMS]
    counts = [sa.Column(name, sa.BigInteger(), nullable=False) for name in COUNTS]
    if tokens:
        dims.append(sa.Column("token", ADDRESS, nullable=False, comment="the sale's ERC-20; '' if unknown"))
        key.append("token")
        counts[0].comment = "refund returns (exchanges apart)"
        counts += [
            sa.Column("exchanges", sa.BigInteger(), nullable=False, comment="exchange requests"),
            sa.Column("exchanges_other_gtin", sa.BigInteger(), nullable=False, comment="exchanges for another GTIN"),
        ]
    op.create_table(
        "analytics_returns",
        sa.Column(
            "view", sa.String(1), nullable=False, comment=f"which dimensions the row keeps (the others blank): {VIEWS}"
        ),
        sa.Column("grain", sa.String(1), nullable=False, comment="d: day, w: week, m: month"),
        sa.Column(
            "bucket", sa.Integer(), nullable=False, comment="unix day of the day, or of the week's or month's first day"
        ),
        sa.Column("merchant", ADDRESS, nullable=False),
        *dims,
        *counts,
        sa.PrimaryKeyConstraint(*key, name="pk_analytics_returns"),
        comment="return requests and their money by request day, each counted once in each view: a read sums the "
        "narrowest view that has its dimensions",
        sqlite_with_rowid=False,
    )
    op.create_index("ix_analytics_returns_merchant", "analytics_returns", ["merchant", "view", "grain", "bucket"])
    op.create_index("ix_analytics_returns_gtin", "analytics_returns", ["gtin", "view", "grain", "bucket"])


def _emptied() -> None:
    # the watermark goes with the facts: the next refresh folds everything again (the sales too, or twice)
    for table in ("analytics_facts", "analytics_watermark", "analytics_sales", "analytics_speed", "analytics_terms"):
        op.execute(f"DELETE FROM {table}")  # noqa: S608 - constant names only
    op.drop_table("analytics_returns")


def upgrade() -> None:
    _emptied()
    _returns(tokens=True)
    with op.batch_alter_table("analytics_facts") as batch:
        batch.add_column(
            sa.Column("token", ADDRESS, nullable=False, server_default="", comment="the sale's ERC-20; '' if unknown")
        )
        batch.add_column(
            sa.Column(
                "exchange", sa.Boolean(), nullable=False, server_default=sa.false(), comment="an exchange request"
            )
        )
        batch.add_column(
            sa.Column("replacement_gtin", sa.BigInteger(), nullable=True, comment="an exchange's replacement GTIN")
        )


def downgrade() -> None:
    _emptied()
    _returns(tokens=False)
    with op.batch_alter_table("analytics_facts") as batch:
        for name in FACT_COLUMNS:
            batch.drop_column(name)
