"""Credentials at rest: return tokens bound to their sale and expiring, revocations, sealed idempotent answers.

- ``return_tokens`` gets ``sale_seq`` (the sale a token is for: a resale of the
  item ends it) and ``expires_at``. Tokens issued before this revision keep
  working for the default lifetime from their creation (730 days) and, having
  no sale, are ended by a resale only through the revocation made at the new sale.
- ``credential_revocations``: one row per revocation, so every API worker sees
  a revocation made anywhere (``max(id)`` changes) and drops its cached credentials.
- ``idempotency_keys``: answers are now stored sealed with a key derived from
  the caller's credential, and a consumer's records are keyed by its token,
  not its address. Stored answers were plaintext (a sale's answer holds the
  consumer's return token): they are deleted; a retry of one of those requests
  runs again (its key is unknown, not conflicting).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_TOKEN_TTL_S = 730 * 24 * 3600
_ACTOR_COMMENT = ("key:<api key id> or consumer:<address>", "key:<api key id> or token:<sha256 of the return token>")
_BODY_COMMENT = ("the response body as sent", "the response body, sealed with a key from the caller's credential")


def _comments(index: int) -> None:
    """The idempotency columns' comments (PostgreSQL keeps them; SQLite has none)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column("idempotency_keys", "actor", existing_type=sa.String(80), comment=_ACTOR_COMMENT[index])
    op.alter_column("idempotency_keys", "response_body", existing_type=sa.Text(), comment=_BODY_COMMENT[index])


def upgrade() -> None:
    op.add_column(
        "return_tokens",
        sa.Column(
            "sale_seq",
            sa.BigInteger(),
            nullable=True,
            comment="the item's sale the token is for; NULL: issued before 0006",
        ),
    )
    op.add_column(
        "return_tokens",
        sa.Column("expires_at", sa.BigInteger(), nullable=True, comment="when the token stops working (wall clock)"),
    )
    tokens = sa.table(
        "return_tokens", sa.column("created_at", sa.BigInteger()), sa.column("expires_at", sa.BigInteger())
    )
    op.execute(tokens.update().values(expires_at=tokens.c.created_at + DEFAULT_TOKEN_TTL_S))
    op.create_table(
        "credential_revocations",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False, comment="api_key|return_token"),
        sa.Column(
            "subject",
            sa.String(80),
            nullable=False,
            comment="the key's id, or the item id whose tokens were revoked",
        ),
        sa.Column("revoked_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_credential_revocations"),
        comment="one row per revocation: API workers watch max(id) to drop cached credentials at once",
    )
    op.execute(sa.table("idempotency_keys").delete())
    _comments(1)


def downgrade() -> None:
    _comments(0)
    op.drop_table("credential_revocations")
    with op.batch_alter_table("return_tokens") as batch:
        batch.drop_column("expires_at")
        batch.drop_column("sale_seq")
