"""The relayer's sent transactions (issue #24): one row per signer and nonce, shared by every API process.

Each API worker and replica allocates its signers' nonces from this table while holding the signer (an advisory
lock on PostgreSQL, the database's write lock on SQLite), and records what it sent, so that a stuck or dropped
transaction can be replaced or sent again by whichever process notices. Self-contained on purpose (no import of
tables.py), like 0007.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | Sequence[str] | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sent_transactions",
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("signer", sa.String(42), nullable=False, comment="the signing account, lowercase"),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False, comment="the signed transaction last sent for this nonce"),
        sa.Column(
            "hashes", sa.Text(), nullable=False, comment="every hash sent for this nonce, oldest first, comma-separated"
        ),
        sa.Column("max_fee_per_gas", sa.BigInteger(), nullable=False, comment="of the last one sent, wei"),
        sa.Column("priority_fee_per_gas", sa.BigInteger(), nullable=False, comment="of the last one sent, wei"),
        sa.Column("sent_at", sa.Float(), nullable=False, comment="wall-clock unix time of the first submission"),
        sa.Column(
            "mined_hash", sa.String(66), nullable=True, comment="the hash mined for this nonce, once its sender saw it"
        ),
        sa.PrimaryKeyConstraint("chain_id", "signer", "nonce", name="pk_sent_transactions"),
        comment="the API's transactions by signer and nonce: the nonce manager all workers and replicas share "
        "(revision 0023)",
    )


def downgrade() -> None:
    op.drop_table("sent_transactions")
