"""Notifications: the transactional outbox, webhook subscriptions, consumers' contacts and deliveries.

``notifications`` is the outbox: one row per notification, inserted in the transaction of the change that
caused it (the indexer's batch for the chain's events), keyed by a stable id. ``webhook_endpoints`` and
``consumer_contacts`` are written by the API, ``deliveries`` by ledger-notify. Self-contained on purpose (no
import of tables.py), like 0002.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_HASH = sa.String(66)
_ADDRESS = sa.String(42)


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("seq", _KEY, primary_key=True, autoincrement=True, comment="insertion order; never reused"),
        sa.Column(
            "id", sa.String(36), nullable=False, comment="msg_ + 32 hex: stable over reorgs, retries and re-scans"
        ),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("return_id", _HASH, nullable=True),
        sa.Column("item_id", _HASH, nullable=False),
        sa.Column("sale_seq", sa.Integer, nullable=False),
        sa.Column("merchant", _ADDRESS, nullable=False),
        sa.Column("consumer", _ADDRESS, nullable=False),
        sa.Column(
            "occurred_at",
            sa.BigInteger,
            nullable=False,
            comment="chain time of the change (the scan's wall clock)",
        ),
        sa.Column("data", sa.Text, nullable=False, comment="the payload's data object (JSON)"),
        sa.Column("block_number", sa.BigInteger, nullable=True, comment="the event's block; NULL: not chain-derived"),
        sa.Column("log_index", sa.Integer, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False, comment="wall-clock unix seconds"),
        sa.Column(
            "dispatched_at",
            sa.BigInteger,
            nullable=True,
            comment="wall clock: turned into deliveries (the worker)",
        ),
        sa.PrimaryKeyConstraint("seq", name="pk_notifications"),
        sa.UniqueConstraint("id", name="uq_notifications_id"),
        sqlite_autoincrement=True,
        comment="the transactional outbox: one row per notification, written with the change that caused it",
    )
    op.create_index("ix_notifications_return_id", "notifications", ["return_id", "seq"])
    op.create_index("ix_notifications_block", "notifications", ["block_number"])
    op.create_index(
        "ix_notifications_pending",
        "notifications",
        ["seq"],
        postgresql_where=sa.text("dispatched_at IS NULL"),
        sqlite_where=sa.text("dispatched_at IS NULL"),
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(40), nullable=False, comment="wh_ + 32 hex"),
        sa.Column("merchant", _ADDRESS, nullable=False, comment="whose returns it hears about"),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("event_types", sa.Text, nullable=False, comment="JSON list of notification types"),
        sa.Column(
            "secret",
            sa.Text,
            nullable=False,
            comment="whsec_ + base64: the signing key itself (HMAC needs it); shown once, never logged",
        ),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("deleted_at", sa.BigInteger, nullable=True, comment="DELETE: no new deliveries, history kept"),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_endpoints"),
        comment="merchants' webhook subscriptions (POST /v1/webhooks)",
    )
    op.create_index("ix_webhook_endpoints_merchant", "webhook_endpoints", ["merchant"])
    op.create_table(
        "consumer_contacts",
        sa.Column("item_id", _HASH, nullable=False),
        sa.Column("sale_seq", sa.Integer, nullable=False),
        sa.Column("email", sa.String(254), nullable=False, comment="never on-chain, never logged"),
        sa.Column("lang", sa.String(5), nullable=False, comment="zh|en: the e-mails' language"),
        sa.Column("set_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("item_id", "sale_seq", name="pk_consumer_contacts"),
        comment="a sale's consumer e-mail for notifications, given with the sale or by the consumer",
    )
    op.create_table(
        "deliveries",
        sa.Column("id", _KEY, primary_key=True, autoincrement=True),
        sa.Column("target", sa.String(40), nullable=False, comment="a webhook endpoint's id, or email"),
        sa.Column("notification_id", sa.String(36), nullable=False, comment="the outbox row's id: the webhook-id"),
        sa.Column("event_type", sa.String(40), nullable=False),
        sa.Column("return_id", _HASH, nullable=True),
        sa.Column("item_id", _HASH, nullable=False),
        sa.Column("sale_seq", sa.Integer, nullable=False),
        sa.Column("body", sa.Text, nullable=False, comment="the payload, the same bytes on every attempt"),
        sa.Column("state", sa.String(12), nullable=False, comment="pending|delivered|dead"),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=False, comment="due time; a claim leases it ahead"),
        sa.Column("retry_until", sa.BigInteger, nullable=False, comment="dead-lettered after a failure past this time"),
        sa.Column("last_status", sa.Integer, nullable=True, comment="the receiver's last HTTP status"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("finished_at", sa.BigInteger, nullable=True, comment="delivered or dead-lettered"),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.UniqueConstraint("target", "notification_id", name="uq_deliveries_target_notification_id"),
        sqlite_autoincrement=True,
        comment="one per notification and target: its attempts, retried with backoff, then dead-lettered",
    )
    op.create_index("ix_deliveries_due", "deliveries", ["state", "next_attempt_at"])
    op.create_index("ix_deliveries_target", "deliveries", ["target", "id"])


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("consumer_contacts")
    op.drop_table("webhook_endpoints")
    op.drop_table("notifications")
