"""deliveries: indexes in the worker's claim order, overall and per target.

``ledger-notify`` claims the oldest due deliveries by (next_attempt_at, id), and per target when one target's
backlog fills the first rows. ``ix_deliveries_due`` on (state, next_attempt_at) made PostgreSQL sort every due
row at each claim (a whole outbox of new rows is due at the same second); with ``id`` in the index the first
rows are read in order. ``ix_deliveries_target_due`` serves the per-target reads (``ix_deliveries_target`` on
(target, id) walks a target's whole history, delivered rows included).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_deliveries_due", table_name="deliveries")
    op.create_index("ix_deliveries_due", "deliveries", ["state", "next_attempt_at", "id"])
    op.create_index("ix_deliveries_target_due", "deliveries", ["target", "state", "next_attempt_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_target_due", table_name="deliveries")
    op.drop_index("ix_deliveries_due", table_name="deliveries")
    op.create_index("ix_deliveries_due", "deliveries", ["state", "next_attempt_at"])
