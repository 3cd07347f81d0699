"""Analytics: the rollups a dashboard reads, and indexes that let the refresh find what changed.

``analytics_facts`` holds one row per return request (what the rollups counted of it), ``analytics_sales``,
``analytics_returns``, ``analytics_speed`` and ``analytics_terms`` the rollups by day and by month,
``analytics_watermark`` how far the refresh has folded (ledger_service/store/analytics.py). The refresh starts
from an empty rollup and folds the whole history once, so nothing is back-filled here. New indexes on
``return_requests`` (created_at, decided_at) and ``carrier_shipments`` (created_at) let each refresh read only
the rows since its watermark. Self-contained on purpose (no import of tables.py), like 0002.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HASH = sa.String(66)
ADDRESS = sa.String(42)
AMOUNT = sa.Numeric(78, 0).with_variant(sa.String(78), "sqlite")


def _key() -> list[sa.Column[object]]:
    return [
        sa.Column("grain", sa.String(1), nullable=False, comment="d: day, w: week, m: month"),
        sa.Column(
            "bucket", sa.Integer(), nullable=False, comment="unix day of the day, or of the week's or month's first day"
        ),
        sa.Column("merchant", ADDRESS, nullable=False),
    ]


def upgrade() -> None:
    op.create_index("ix_return_requests_created_at", "return_requests", ["created_at"])
    op.create_index("ix_return_requests_decided_at", "return_requests", ["decided_at"])
    op.create_index("ix_carrier_shipments_created_at", "carrier_shipments", ["created_at"])
    op.create_table(
        "analytics_watermark",
        sa.Column("id", sa.SmallInteger(), nullable=False, comment="always 1"),
        sa.Column("block_number", sa.BigInteger(), nullable=False, comment="chain rows up to this block are folded"),
        sa.Column("block_hash", HASH, nullable=False, comment="its hash: a reorg under it is detected"),
        sa.Column(
            "request_time",
            sa.BigInteger(),
            nullable=False,
            comment="newest request created or decided, wall clock",
        ),
        sa.Column("shipment_time", sa.BigInteger(), nullable=False, comment="newest carrier shipment, wall clock"),
        sa.Column("refreshed_at", sa.BigInteger(), nullable=False, comment="wall-clock unix seconds"),
        sa.PrimaryKeyConstraint("id", name="pk_analytics_watermark"),
    )
    op.create_table(
        "analytics_facts",
        sa.Column("request_id", sa.String(40), nullable=False),
        sa.Column("merchant", ADDRESS, nullable=False),
        sa.Column("gtin", sa.BigInteger(), nullable=False),
        sa.Column("category", sa.String(100), nullable=False, comment="'' when the item has none"),
        sa.Column("reason_code", sa.String(64), nullable=False),
        sa.Column("carrier", sa.String(32), nullable=False, comment="'' before a label"),
        sa.Column("outcome", sa.String(16), nullable=False, comment="approve|reject|manual_review"),
        sa.Column("day", sa.Integer(), nullable=False, comment="unix day of the request"),
        sa.Column("return_id", HASH, nullable=True),
        sa.Column("requested_at", sa.BigInteger(), nullable=False),
        sa.Column("scanned_at", sa.BigInteger(), nullable=True, comment="first carrier scan (InTransit)"),
        sa.Column("received_at", sa.BigInteger(), nullable=True, comment="delivered to the merchant (Received)"),
        sa.Column("inspected_at", sa.BigInteger(), nullable=True, comment="Accepted or Rejected"),
        sa.Column("refunded_at", sa.BigInteger(), nullable=True, comment="payout with a consumer share"),
        sa.Column("refund", AMOUNT, nullable=False),
        sa.Column("fee_kept", AMOUNT, nullable=False),
        sa.Column("outstanding", AMOUNT, nullable=False, comment="deposit still in escrow"),
        sa.Column("dispute", sa.String(8), nullable=False, comment="''|open|consumer|merchant"),
        sa.Column("terms", sa.JSON(), nullable=False, comment="the comment's theme terms"),
        sa.PrimaryKeyConstraint("request_id", name="pk_analytics_facts"),
        comment="one row per return request: what the rollups hold of it (a change subtracts the old row's share)",
    )
    op.create_index("ix_analytics_facts_return_id", "analytics_facts", ["return_id"])
    op.create_table(
        "analytics_sales",
        *_key(),
        sa.Column("gtin", sa.BigInteger(), nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("sold", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("grain", "bucket", "merchant", "gtin", "category", name="pk_analytics_sales"),
    )
    op.create_index("ix_analytics_sales_merchant", "analytics_sales", ["merchant", "grain", "bucket"])
    op.create_index("ix_analytics_sales_gtin", "analytics_sales", ["gtin", "grain", "bucket"])
    op.create_table(
        "analytics_returns",
        sa.Column(
            "view",
            sa.String(1),
            nullable=False,
            comment="which dimensions the row keeps (the others blank): g gtin+category+reason+outcome, "
            "c carrier+reason, r reason, o outcome",
        ),
        *_key(),
        sa.Column("gtin", sa.BigInteger(), nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("reason_code", sa.String(64), nullable=False),
        sa.Column("carrier", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("refunds", sa.BigInteger(), nullable=False),
        sa.Column("refund_hi", sa.BigInteger(), nullable=False),
        sa.Column("refund_lo", sa.BigInteger(), nullable=False),
        sa.Column("fee_kept_hi", sa.BigInteger(), nullable=False),
        sa.Column("fee_kept_lo", sa.BigInteger(), nullable=False),
        sa.Column("outstanding_count", sa.BigInteger(), nullable=False),
        sa.Column("outstanding_hi", sa.BigInteger(), nullable=False),
        sa.Column("outstanding_lo", sa.BigInteger(), nullable=False),
        sa.Column("disputes", sa.BigInteger(), nullable=False),
        sa.Column("disputes_open", sa.BigInteger(), nullable=False),
        sa.Column("disputes_consumer", sa.BigInteger(), nullable=False),
        sa.Column("disputes_merchant", sa.BigInteger(), nullable=False),
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
    )
    op.create_index("ix_analytics_terms_merchant", "analytics_terms", ["merchant", "grain", "bucket"])


def downgrade() -> None:
    for table in ("analytics_terms", "analytics_speed", "analytics_returns", "analytics_sales", "analytics_facts"):
        op.drop_table(table)
    op.drop_table("analytics_watermark")
    op.drop_index("ix_carrier_shipments_created_at", table_name="carrier_shipments")
    op.drop_index("ix_return_requests_decided_at", table_name="return_requests")
    op.drop_index("ix_return_requests_created_at", table_name="return_requests")
