"""Customer feedback: ``return_feedback``, a consumer's 1-5 rating of a closed return with an optional comment.

One row per return (primary key ``return_id``), written by the API only, never by the indexer: a reorg or a
re-index leaves it as it is. The return's merchant and consumer are copied in when it is given, so satisfaction
reads filter by merchant without joining the index. Self-contained on purpose (no import of tables.py), like 0002.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HASH = sa.String(66)
ADDRESS = sa.String(42)


def upgrade() -> None:
    op.create_table(
        "return_feedback",
        sa.Column("return_id", HASH, nullable=False, comment="one feedback per return"),
        sa.Column("item_id", HASH, nullable=False),
        sa.Column("merchant", ADDRESS, nullable=False, comment="the return's merchant"),
        sa.Column("consumer", ADDRESS, nullable=False, comment="the return's consumer: the token holder who rated"),
        sa.Column("rating", sa.SmallInteger(), nullable=False, comment="1 (bad) to 5 (good)"),
        sa.Column("comment", sa.Text(), nullable=True, comment="optional, in Chinese or English, as written"),
        sa.Column("lang", sa.String(2), nullable=False, comment="zh|en: the comment's (or the form's) language"),
        sa.Column("created_at", sa.BigInteger(), nullable=False, comment="first given: editable for 7 days from it"),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("return_id", name="pk_return_feedback"),
        comment="consumers' ratings of closed returns (PUT /v1/returns/{id}/feedback)",
    )
    op.create_index("ix_return_feedback_merchant_created", "return_feedback", ["merchant", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_return_feedback_merchant_created", table_name="return_feedback")
    op.drop_table("return_feedback")
