"""return_requests.replacement_item_id and .instant: a consumer's exchange request is a return request.

An exchange is a return of the original item on-chain (ExchangeEscrow opens it in ReturnsEscrow), so its
request shares the return requests' table and their item slot (``active_item``): one refund return or exchange
per item at a time, across replicas. ``replacement_item_id`` is the unit the consumer chose (NULL: a refund
return, every request stored before this revision); ``instant`` whether an instant exchange was asked (NULL for a
refund return).

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | Sequence[str] | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "return_requests",
        sa.Column(
            "replacement_item_id",
            sa.String(66),
            nullable=True,
            comment="an exchange request: the unit chosen instead of a refund; NULL: a refund return",
        ),
    )
    op.add_column(
        "return_requests",
        sa.Column("instant", sa.Boolean, nullable=True, comment="an exchange request: instant exchange asked"),
    )


def downgrade() -> None:
    with op.batch_alter_table("return_requests") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("instant")
        batch.drop_column("replacement_item_id")
