"""label_senders: how the sender appears on a return's label, as the consumer chose (wallet, initials, full name).

Personal data, off-chain only: one row per return request (``request_id``; the request names its return once
authorized), written by the API only, never by the indexer, so a reorg or a re-index leaves it as it is (like
``return_feedback``). No row: the masked wallet address, as before this revision. ``printed_at`` is set by the
first label: from then on the choice is fixed (a label in circulation would not match a second one).
Self-contained on purpose (no import of tables.py), like 0002.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027"
down_revision: str | Sequence[str] | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "label_senders",
        sa.Column("request_id", sa.String(40), nullable=False, comment="the return request (rr_ + 32 hex)"),
        sa.Column("show_as", sa.String(8), nullable=False, comment="wallet|initials|full"),
        sa.Column("name", sa.String(60), nullable=True, comment="as typed; never on-chain, never logged"),
        sa.Column("locality", sa.String(60), nullable=True, comment="optional city / postcode line, as typed"),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("printed_at", sa.BigInteger(), nullable=True, comment="first label printed: fixed from then on"),
        sa.PrimaryKeyConstraint("request_id"),
        comment="the sender on a return's label as its consumer chose (PUT /v1/returns/{id}/label-sender)",
    )


def downgrade() -> None:
    op.drop_table("label_senders")
