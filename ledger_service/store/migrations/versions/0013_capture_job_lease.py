"""capture_jobs: the owner of a running job and its heartbeat (a lease).

A job left ``running`` by a process that died (SIGKILL, a crash, a lost machine) was never finished: its
claims kept the events it had not sent from being captured again. Each running job now names the process
that runs it and the last time that process said it was alive; a job whose heartbeat is older than the
lease is taken over, reconciled with the chain and failed (ledger_service/capture/jobs.py). Jobs running
when this migration runs have no heartbeat: they are taken for abandoned.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("capture_jobs") as batch:
        batch.add_column(
            sa.Column("owner", sa.String(100), nullable=True, comment="the process running the job: host:pid:token")
        )
        batch.add_column(
            sa.Column(
                "heartbeat_at",
                sa.BigInteger(),
                nullable=True,
                comment="unix milliseconds of the owner's last heartbeat",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("capture_jobs") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("owner")
