"""carrier_events.epc: the unit's EPC a carrier scanned at delivery to the merchant.

A delivered event may carry the EPC URI read from the unit in the parcel; the service passes it to the
on-chain receiving step (``markReceivedUnit``), whose unit check catches another unit than the one sold. The
step is taken from the recorded events (a delivery whose step failed is retried from them), so the EPC is
recorded with its event. NULL: not scanned, and every event recorded before this revision.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | Sequence[str] | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "carrier_events",
        sa.Column("epc", sa.Text, nullable=True, comment="a delivered event: the EPC URI scanned on the unit"),
    )


def downgrade() -> None:
    with op.batch_alter_table("carrier_events") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("epc")
