"""return_requests.documents: the documents (photos) a consumer sends with a return request.

A JSON list of CIDv0 texts, in the order given; NULL for a request without documents (every request
stored before this revision). The documents themselves are in the document store; the merchant opens
them by CID.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "return_requests",
        sa.Column(
            "documents",
            sa.JSON,
            nullable=True,
            comment="CIDv0s of the documents (e.g. photos) sent with the request; NULL: none",
        ),
    )


def downgrade() -> None:
    with op.batch_alter_table("return_requests") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("documents")
