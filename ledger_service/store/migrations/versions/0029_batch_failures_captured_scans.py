"""The scan batcher's give-up rule and EPCIS capture's batched events (issue #23).

``scan_batches.refusals`` counts the reverts of a batch's anchor (a node that does not answer is not counted in
it, only in ``attempts``) and ``refused_since`` holds when the first of them happened: ledger-batcher gives up on
a batch (state ``failed``, the reason in ``problem``) once both pass their settings. ``capture_jobs.batched``
lists the events a capture sent to the scan batcher instead of the chain (each item's batch and place), and an
``epcis_events`` row of such an event is in state ``batched``. Self-contained on purpose (no import of tables.py).

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029"
down_revision: str | Sequence[str] | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "scan_batches",
        sa.Column(
            "refusals",
            sa.Integer(),
            nullable=False,
            server_default="0",
            comment="reverts of its anchor by the contract",
        ),
    )
    op.add_column(
        "scan_batches",
        sa.Column("refused_since", sa.BigInteger(), nullable=True, comment="wall-clock unix ms of the first revert"),
    )

    op.add_column(
        "capture_jobs",
        sa.Column(
            "batched",
            sa.JSON(),
            nullable=False,
            server_default="[]",
            comment="events sent to the scan batcher: list of {index, scans: [{epc, batchId, position}]}",
        ),
    )


def downgrade() -> None:
    with op.batch_alter_table("capture_jobs") as batch:
        batch.drop_column("batched")
    with op.batch_alter_table("scan_batches") as batch:
        batch.drop_column("refused_since")
        batch.drop_column("refusals")
