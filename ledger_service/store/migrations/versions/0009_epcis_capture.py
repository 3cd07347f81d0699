"""EPCIS 2.0 capture: capture jobs and the searchable fields of captured events.

``capture_jobs`` holds one row per ``POST /v1/epcis/capture`` (state, counts, the refused events);
``epcis_events`` one row per captured event, unique by its CBV 2.0 event hash ID (the claim that keeps a
document captured twice at once from recording an event twice), with ``epcis_event_epcs`` (the items each
event names, and the on-chain seq written for each) and ``epcis_biz_transactions``. The indexes serve the
query interface: MATCH_epc on one item (``item_id, event_key``), EPC patterns (a prefix range on ``epc``),
eventTime and recordTime pages (``event_time, event_key``). API keys' ``role`` comment names the new
manufacturer role. Self-contained on purpose (no import of
api_schema.py), like 0002.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HASH = sa.String(66)
ADDRESS = sa.String(42)


ROLES_BEFORE = "merchant|carrier|inspector|arbiter|auditor|admin"
ROLES = "manufacturer|merchant|carrier|inspector|arbiter|auditor|admin"


def _role_comment(comment: str) -> None:
    """API keys gain the manufacturer role (commissioning registers items); SQLite keeps no comments."""
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("api_keys", "role", comment=comment, existing_type=sa.String(16), existing_nullable=False)


def upgrade() -> None:
    _role_comment(ROLES)
    op.create_table(
        "capture_jobs",
        sa.Column("capture_id", sa.String(40), nullable=False, comment="cap_ + 32 hex"),
        sa.Column("key_id", sa.Integer(), nullable=False, comment="the API key that sent the document"),
        sa.Column("actor", ADDRESS, nullable=False, comment="the on-chain account that signs the job's transactions"),
        sa.Column("state", sa.String(16), nullable=False, comment="running|succeeded|failed"),
        sa.Column("document_digest", sa.String(64), nullable=False, comment="sha256 hex of the document's bytes"),
        sa.Column("event_count", sa.Integer(), nullable=False, comment="events in the document's eventList"),
        sa.Column("captured", sa.Integer(), nullable=False, comment="events this job recorded on-chain"),
        sa.Column("duplicates", sa.Integer(), nullable=False, comment="events whose hash ID was captured before"),
        sa.Column(
            "errors", sa.JSON(), nullable=False, comment="refused or unsent events: list of {index, pointer, message}"
        ),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("capture_id", name="pk_capture_jobs"),
        comment="one row per POST /v1/epcis/capture: the job's state, counts and refusals",
    )
    op.create_index("ix_capture_jobs_key_id_created_at", "capture_jobs", ["key_id", "created_at"])
    op.create_table(
        "epcis_events",
        sa.Column(
            "event_key",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
            comment="insertion order; page cursor",
        ),
        sa.Column(
            "hash_id", sa.String(100), nullable=False, comment="CBV 2.0 event hash ID: ni:///sha-256;<hex>?ver=CBV2.0"
        ),
        sa.Column("event_id", sa.Text(), nullable=True, comment="the eventID the partner sent, if any"),
        sa.Column("capture_id", sa.String(40), nullable=False),
        sa.Column("event_index", sa.Integer(), nullable=False, comment="position in the captured document's eventList"),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("action", sa.String(8), nullable=True, comment="ADD|OBSERVE|DELETE; NULL for a TransformationEvent"),
        sa.Column("event_time", sa.BigInteger(), nullable=False, comment="eventTime in unix milliseconds"),
        sa.Column("time_zone_offset", sa.String(6), nullable=False, comment="eventTimeZoneOffset as sent"),
        sa.Column(
            "record_time", sa.BigInteger(), nullable=True, comment="unix milliseconds when on-chain; NULL while claimed"
        ),
        sa.Column("biz_step", sa.String(200), nullable=True, comment="CBV short name, or the URI as sent"),
        sa.Column("disposition", sa.String(200), nullable=True, comment="CBV short name, or the URI as sent"),
        sa.Column("read_point", sa.Text(), nullable=True, comment="readPoint.id as sent"),
        sa.Column("document", HASH, nullable=False, comment="digest of the captured document (the on-chain document)"),
        sa.Column(
            "body",
            sa.Text(),
            nullable=False,
            comment="the event's JSON as sent: the query's copy (the captured document, whose digest the chain "
            "holds, is the record)",
        ),
        sa.Column(
            "namespaces", sa.Text(), nullable=False, comment="the captured document's inline @context prefixes (JSON)"
        ),
        sa.Column("actor", ADDRESS, nullable=False, comment="the account that recorded it"),
        sa.Column("state", sa.String(12), nullable=False, comment="claimed (being sent) | recorded (on-chain)"),
        sa.Column("tx_hash", HASH, nullable=True, comment="the (last) transaction that wrote it"),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("event_key", name="pk_epcis_events"),
        sa.UniqueConstraint("hash_id", name="uq_epcis_events_hash_id"),
        comment="captured EPCIS events (one per event, however many items it touched); claimed by hash ID",
    )
    op.create_index("ix_epcis_events_event_time", "epcis_events", ["event_time", "event_key"])
    op.create_index("ix_epcis_events_record_time", "epcis_events", ["record_time", "event_key"])
    op.create_index("ix_epcis_events_capture_id", "epcis_events", ["capture_id", "event_index"])
    op.create_table(
        "epcis_event_epcs",
        sa.Column("event_key", sa.BigInteger(), nullable=False),
        sa.Column("item_id", HASH, nullable=False, comment="keccak256 of the EPC as sent: the item it names on-chain"),
        sa.Column(
            "role",
            sa.SmallInteger(),
            nullable=False,
            comment="0 epcList, 1 parentID, 2 childEPCs, 3 input, 4 output",
        ),
        sa.Column("epc", sa.Text(), nullable=False, comment="as sent"),
        sa.Column(
            "seq", sa.BigInteger(), nullable=True, comment="the item's on-chain seq written for it; NULL: none (yet)"
        ),
        sa.PrimaryKeyConstraint("event_key", "item_id", "role", name="pk_epcis_event_epcs"),
    )
    op.create_index("ix_epcis_event_epcs_item_id", "epcis_event_epcs", ["item_id", "event_key"])
    op.create_index("ix_epcis_event_epcs_epc", "epcis_event_epcs", ["epc"], postgresql_ops={"epc": "text_pattern_ops"})
    op.create_table(
        "epcis_biz_transactions",
        sa.Column("event_key", sa.BigInteger(), nullable=False),
        sa.Column(
            "type",
            sa.String(200),
            nullable=False,
            comment="CBV short name (po, rma, ...) or URI; empty when untyped",
        ),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("event_key", "type", "value", name="pk_epcis_biz_transactions"),
    )
    op.create_index("ix_epcis_biz_transactions_value", "epcis_biz_transactions", ["value"])


def downgrade() -> None:
    op.drop_table("epcis_biz_transactions")
    op.drop_table("epcis_event_epcs")
    op.drop_table("epcis_events")
    op.drop_table("capture_jobs")
    _role_comment(ROLES_BEFORE)
