"""The per-caller daily upload quota of POST /v1/documents (table ``document_quota``).

One row per caller and UTC day: the bytes it uploaded that day. Kept in the
database, not in a worker's memory, so that every API worker counts against one
total. Self-contained on purpose (no import of api_schema.py), like 0002.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "document_quota",
        sa.Column(
            "principal", sa.String(80), nullable=False, comment="key:<api key id> or token:<sha256 of the return token>"
        ),
        sa.Column("day", sa.Integer(), nullable=False, comment="UTC day number (unix seconds // 86400)"),
        sa.Column("bytes", sa.BigInteger(), nullable=False, comment="bytes of documents uploaded that day"),
        sa.PrimaryKeyConstraint("principal", "day", name="pk_document_quota"),
        comment="each caller's uploads per day, against LEDGER_DOCUMENT_QUOTA_BYTES (revision 0007)",
    )


def downgrade() -> None:
    op.drop_table("document_quota")
