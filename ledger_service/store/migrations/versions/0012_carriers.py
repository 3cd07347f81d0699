"""Carriers: a return's shipment (its tracking number), the carrier's tracking events, webhook deliveries seen.

``carrier_shipments`` holds one shipment per return (unique ``return_id``), keyed by the carrier and its
tracking number; ``carrier_events`` the carrier's tracking events, unique by the carrier's event id (an event
delivered twice is recorded once); ``carrier_deliveries`` the webhook deliveries seen, by delivery id, with
the lease of the process handling one (a replayed id is refused). Written by the API only. Self-contained on
purpose (no import of tables.py), like 0002.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HASH = sa.String(66)


def upgrade() -> None:
    op.create_table(
        "carrier_shipments",
        sa.Column("carrier", sa.String(32), nullable=False, comment="the carrier's name in LEDGER_CARRIERS"),
        sa.Column("tracking_number", sa.String(40), nullable=False, comment="as the carrier issued it"),
        sa.Column("return_id", HASH, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("carrier", "tracking_number", name="pk_carrier_shipments"),
        sa.UniqueConstraint("return_id", name="uq_carrier_shipments_return_id"),
        comment="one shipment per return, created with its first label",
    )
    op.create_table(
        "carrier_events",
        sa.Column("carrier", sa.String(32), nullable=False),
        sa.Column("event_id", sa.String(100), nullable=False, comment="the carrier's id of the event: recorded once"),
        sa.Column("tracking_number", sa.String(40), nullable=False),
        sa.Column("status", sa.String(32), nullable=False, comment="in_transit|out_for_delivery|delivered|exception"),
        sa.Column(
            "occurred_at", sa.BigInteger(), nullable=False, comment="when the carrier says it happened (its clock)"
        ),
        sa.Column("location", sa.Text(), nullable=True, comment="the carrier's words for where"),
        sa.Column(
            "read_point", sa.String(32), nullable=True, comment="SGLN read point sent on-chain with the step, if given"
        ),
        sa.Column("delivery_id", sa.String(100), nullable=False, comment="the webhook delivery that brought it first"),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("carrier", "event_id", name="pk_carrier_events"),
    )
    op.create_index("ix_carrier_events_tracking", "carrier_events", ["carrier", "tracking_number", "occurred_at"])
    op.create_table(
        "carrier_deliveries",
        sa.Column("carrier", sa.String(32), nullable=False),
        sa.Column("delivery_id", sa.String(100), nullable=False, comment="the webhook-id header"),
        sa.Column("claimed_at", sa.BigInteger(), nullable=False, comment="when its processing started (a lease)"),
        sa.Column(
            "completed_at",
            sa.BigInteger(),
            nullable=True,
            comment="NULL: being processed (or its process died)",
        ),
        sa.PrimaryKeyConstraint("carrier", "delivery_id", name="pk_carrier_deliveries"),
        comment="webhook deliveries seen: a delivery id is processed once (replays are refused)",
    )
    op.create_index("ix_carrier_deliveries_claimed_at", "carrier_deliveries", ["claimed_at"])


def downgrade() -> None:
    op.drop_index("ix_carrier_deliveries_claimed_at", table_name="carrier_deliveries")
    op.drop_table("carrier_deliveries")
    op.drop_index("ix_carrier_events_tracking", table_name="carrier_events")
    op.drop_table("carrier_events")
    op.drop_table("carrier_shipments")
