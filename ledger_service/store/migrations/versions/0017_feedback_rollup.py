"""Satisfaction kept current: ``feedback_rollup``, the ratings summed by merchant, day and group, written in the
same transaction as the rating, and ``return_feedback.rolled``, the groups a rating was added to (so a change
within the week takes out exactly what it added). A satisfaction read sums a few rows per group instead of
reading every rating with its return's facts.

No rating is summed here: ``return_feedback`` came with 0016 on the same unreleased branch, so no index holds
ratings without their sums (the groups' rules, themes among them, are code a migration runs without).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ADDRESS = sa.String(42)


def upgrade() -> None:
    op.add_column(
        "return_feedback",
        sa.Column(
            "rolled",
            sa.Text(),
            nullable=False,
            server_default="[]",
            comment="JSON list of [group, key] the rating is summed in (feedback_rollup)",
        ),
    )
    op.create_table(
        "feedback_rollup",
        sa.Column("merchant", ADDRESS, nullable=False),
        sa.Column("day", sa.Integer(), nullable=False, comment="UTC day number of the rating's first giving"),
        sa.Column("grp", sa.String(16), nullable=False, comment="all|reason|carrier|refund|theme|inspection"),
        sa.Column("key", sa.String(66), nullable=False, comment="the group's value ('' for all)"),
        *(sa.Column(f"s{n}", sa.BigInteger(), nullable=False, comment=f"ratings of {n}") for n in range(1, 6)),
        sa.PrimaryKeyConstraint("merchant", "day", "grp", "key", name="pk_feedback_rollup"),
        comment="ratings summed by merchant, day and group, kept current by each rating's write",
    )
    op.create_index("ix_feedback_rollup_day", "feedback_rollup", ["day"])


def downgrade() -> None:
    op.drop_index("ix_feedback_rollup_day", table_name="feedback_rollup")
    op.drop_table("feedback_rollup")
    op.drop_column("return_feedback", "rolled")
