"""Tables the API owns (SQLAlchemy Core), on the same MetaData as the index (schema.py).

The indexer never reads or writes these tables and the API never writes the
index's: data still flows one way (chain -> indexer -> index), and these rows
are the API's own facts (credentials, requests, documents). Their migrations are
revisions 0002 (store/migrations/versions/0002_api_tables.py), 0006 (tokens
bound to their sale and expiring, revocations, sealed idempotent answers) and
0009 (EPCIS capture jobs and the captured events' searchable fields).

Conventions as in schema.py: ids and digests ``0x`` + 64 lowercase hex,
addresses ``0x`` + 40 lowercase hex. Times here are *wall-clock* unix seconds
(when the service saw something), not chain time. Secrets are never stored:
API keys and return tokens only as the sha256 hex of the plaintext; an
idempotent answer (which may carry a new return token) only sealed with a key
derived from the caller's credential, which is not stored either
(:func:`ledger_service.access.seal`).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ledger_service.store.schema import ADDRESS, HASH, metadata

SHA256_HEX = String(64)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, comment="who holds the key, for people"),
    Column("role", String(16), nullable=False, comment="manufacturer|merchant|carrier|inspector|arbiter|auditor|admin"),
    Column("actor_address", ADDRESS, nullable=True, comment="on-chain account of a writing role; else NULL"),
    Column("key_hash", SHA256_HEX, nullable=False, comment="sha256 hex of the plaintext key"),
    Column("key_prefix", String(16), nullable=False, comment="first characters of the key, to recognise it"),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    UniqueConstraint("key_hash"),
)

return_tokens = Table(
    "return_tokens",
    metadata,
    Column("token_hash", SHA256_HEX, primary_key=True, comment="sha256 hex of the plaintext token"),
    Column("item_id", HASH, nullable=False),
    Column("consumer", ADDRESS, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("sale_seq", BigInteger, nullable=True, comment="the item's sale the token is for; NULL: issued before 0006"),
    Column("expires_at", BigInteger, nullable=True, comment="when the token stops working (wall clock)"),
    Index("ix_return_tokens_item_id", "item_id"),
    comment="a consumer's credential for one sold item, returned once by POST /v1/sales",
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("actor", String(80), nullable=False, comment="key:<api key id> or token:<sha256 of the return token>"),
    Column("idempotency_key", String(255), nullable=False, comment="the client's Idempotency-Key header"),
    Column("method", String(8), nullable=False),
    Column("path", Text, nullable=False),
    Column("request_hash", SHA256_HEX, nullable=False, comment="sha256 of method, path, query and body"),
    Column("status", Integer, nullable=True, comment="HTTP status of the stored response; NULL: in progress"),
    Column(
        "response_body",
        Text,
        nullable=True,
        comment="the response body, sealed with a key from the caller's credential",
    ),
    Column("created_at", BigInteger, nullable=False),
    Column("completed_at", BigInteger, nullable=True),
    PrimaryKeyConstraint("actor", "idempotency_key"),
    Index("ix_idempotency_keys_created_at", "created_at"),
)

credential_revocations = Table(
    "credential_revocations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False, comment="api_key|return_token"),
    Column("subject", String(80), nullable=False, comment="the key's id, or the item id whose tokens were revoked"),
    Column("revoked_at", BigInteger, nullable=False),
    comment="one row per revocation: API workers watch max(id) to drop cached credentials at once",
)

return_requests = Table(
    "return_requests",
    metadata,
    Column("id", String(40), primary_key=True, comment="rr_ + 32 hex"),
    Column("item_id", HASH, nullable=False),
    Column("consumer", ADDRESS, nullable=False),
    Column("merchant", ADDRESS, nullable=False, comment="the item's merchant when the request came in"),
    Column("reason_code", String(64), nullable=False),
    Column("comment", Text, nullable=True),
    Column("outcome", String(16), nullable=False, comment="approve|reject|manual_review"),
    Column("reasons", JSON, nullable=False, comment="the review's reasons (list of objects)"),
    Column("return_id", HASH, nullable=True, comment="the on-chain return once authorized"),
    Column("tx_hash", HASH, nullable=True, comment="the authorizing transaction"),
    Column("created_at", BigInteger, nullable=False),
    Column("decided_at", BigInteger, nullable=True),
    Column("decided_by", String(64), nullable=True, comment="auto, or the deciding merchant's address"),
    Column(
        "active_item",
        HASH,
        nullable=True,
        comment="item_id while this request blocks another request for the item; NULL once it does not",
    ),
    UniqueConstraint("active_item"),
    Index("ix_return_requests_merchant_created", "merchant", "created_at"),
    Index("ix_return_requests_consumer_created", "consumer", "created_at"),
    Index("ix_return_requests_item_id", "item_id"),
    Index("ix_return_requests_return_id", "return_id"),
)

policy_terms = Table(
    "policy_terms",
    metadata,
    Column("merchant", ADDRESS, nullable=False),
    Column("digest", HASH, nullable=False, comment="the documentDigest published on-chain"),
    Column(
        "document",
        JSON,
        nullable=False,
        comment="categories, accepted reasons, manual review settings, fast-refund conditions, wording",
    ),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("merchant", "digest"),
)

item_categories = Table(
    "item_categories",
    metadata,
    Column("item_id", HASH, primary_key=True),
    Column("category", String(100), nullable=False),
    Column("set_by", ADDRESS, nullable=False, comment="the merchant that set it"),
    Column("set_at", BigInteger, nullable=False),
)

document_quota = Table(
    "document_quota",
    metadata,
    Column("principal", String(80), nullable=False, comment="key:<api key id> or token:<sha256 of the return token>"),
    Column("day", Integer, nullable=False, comment="UTC day number (unix seconds // 86400)"),
    Column("bytes", BigInteger, nullable=False, comment="bytes of documents uploaded that day"),
    PrimaryKeyConstraint("principal", "day"),
    comment="each caller's uploads per day, against LEDGER_DOCUMENT_QUOTA_BYTES (revision 0007)",
)

# ---- EPCIS capture (revision 0009) -------------------------------------------------------------------------
#
# What the chain cannot hold of a captured EPCIS event (eventTime and its offset, readPoint and bizLocation as
# sent, bizTransactionList, sensor data, extensions, the CBV hash ID) is in the captured document, stored in the
# document store; its digest is the ``document`` of the ItemEventRecorded the capture writes. These tables are
# the searchable part of those documents plus the capture jobs: all of it can be rebuilt from the chain's
# events and the document store (see ledger_service/capture/__init__.py).

EVENT_KEY = BigInteger().with_variant(Integer(), "sqlite")
"""An autoincrement key (SQLite gives autoincrement only to INTEGER PRIMARY KEY)."""

capture_jobs = Table(
    "capture_jobs",
    metadata,
    Column("capture_id", String(40), primary_key=True, comment="cap_ + 32 hex"),
    Column("key_id", Integer, nullable=False, comment="the API key that sent the document"),
    Column("actor", ADDRESS, nullable=False, comment="the on-chain account that signs the job's transactions"),
    Column("state", String(16), nullable=False, comment="running|succeeded|failed"),
    Column("document_digest", SHA256_HEX, nullable=False, comment="sha256 hex of the document's bytes"),
    Column("event_count", Integer, nullable=False, comment="events in the document's eventList"),
    Column("captured", Integer, nullable=False, comment="events this job recorded on-chain"),
    Column("duplicates", Integer, nullable=False, comment="events whose hash ID was captured before"),
    Column("errors", JSON, nullable=False, comment="refused or unsent events: list of {index, pointer, message}"),
    Column("created_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=True),
    Index("ix_capture_jobs_key_id_created_at", "key_id", "created_at"),
    comment="one row per POST /v1/epcis/capture: the job's state, counts and refusals",
)

epcis_events = Table(
    "epcis_events",
    metadata,
    Column("event_key", EVENT_KEY, primary_key=True, autoincrement=True, comment="insertion order; page cursor"),
    Column("hash_id", String(100), nullable=False, comment="CBV 2.0 event hash ID: ni:///sha-256;<hex>?ver=CBV2.0"),
    Column("event_id", Text, nullable=True, comment="the eventID the partner sent, if any"),
    Column("capture_id", String(40), nullable=False),
    Column("event_index", Integer, nullable=False, comment="position in the captured document's eventList"),
    Column("event_type", String(32), nullable=False),
    Column("action", String(8), nullable=True, comment="ADD|OBSERVE|DELETE; NULL for a TransformationEvent"),
    Column("event_time", BigInteger, nullable=False, comment="eventTime in unix milliseconds"),
    Column("time_zone_offset", String(6), nullable=False, comment="eventTimeZoneOffset as sent"),
    Column("record_time", BigInteger, nullable=True, comment="unix milliseconds when on-chain; NULL while claimed"),
    Column("biz_step", String(200), nullable=True, comment="CBV short name, or the URI as sent"),
    Column("disposition", String(200), nullable=True, comment="CBV short name, or the URI as sent"),
    Column("read_point", Text, nullable=True, comment="readPoint.id as sent"),
    Column("document", HASH, nullable=False, comment="digest of the captured document (the on-chain document)"),
    Column(
        "body",
        Text,
        nullable=False,
        comment="the event's JSON as sent: the query's copy (the captured document, whose digest the chain holds, "
        "is the record)",
    ),
    Column("namespaces", Text, nullable=False, comment="the captured document's inline @context prefixes (JSON)"),
    Column("actor", ADDRESS, nullable=False, comment="the account that recorded it"),
    Column("state", String(12), nullable=False, comment="claimed (being sent) | recorded (on-chain)"),
    Column("tx_hash", HASH, nullable=True, comment="the (last) transaction that wrote it"),
    Column("block_number", BigInteger, nullable=True),
    UniqueConstraint("hash_id"),
    # GE_eventTime / LT_eventTime pages: a range scan in (event_time, event_key), the paging order.
    Index("ix_epcis_events_event_time", "event_time", "event_key"),
    Index("ix_epcis_events_record_time", "record_time", "event_key"),
    Index("ix_epcis_events_capture_id", "capture_id", "event_index"),
    comment="captured EPCIS events (one per event, however many items it touched); claimed by hash ID",
)

EPC_ROLES = ("epc", "parent", "child", "input", "output")
"""``epcis_event_epcs.role``: the index of the list an EPC came from (epcList/parentID/childEPCs/...)."""

epcis_event_epcs = Table(
    "epcis_event_epcs",
    metadata,
    Column("event_key", BigInteger, nullable=False),
    Column("item_id", HASH, nullable=False, comment="keccak256 of the EPC as sent: the item it names on-chain"),
    Column("role", SmallInteger, nullable=False, comment="0 epcList, 1 parentID, 2 childEPCs, 3 input, 4 output"),
    Column("epc", Text, nullable=False, comment="as sent"),
    Column("seq", BigInteger, nullable=True, comment="the item's on-chain seq written for it; NULL: none (yet)"),
    PrimaryKeyConstraint("event_key", "item_id", "role"),
    # MATCH_epc on one item: an equality on item_id, in paging order.
    Index("ix_epcis_event_epcs_item_id", "item_id", "event_key"),
    # MATCH_epc with a pattern (urn:epc:idpat:...:*): a prefix range on the EPC text.
    Index("ix_epcis_event_epcs_epc", "epc", postgresql_ops={"epc": "text_pattern_ops"}),
)

epcis_biz_transactions = Table(
    "epcis_biz_transactions",
    metadata,
    Column("event_key", BigInteger, nullable=False),
    Column("type", String(200), nullable=False, comment="CBV short name (po, rma, ...) or URI; empty when untyped"),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("event_key", "type", "value"),
    Index("ix_epcis_biz_transactions_value", "value"),
)

API_TABLES: tuple[Table, ...] = (
    api_keys,
    return_tokens,
    idempotency_keys,
    credential_revocations,
    return_requests,
    policy_terms,
    item_categories,
    document_quota,
    capture_jobs,
    epcis_events,
    epcis_event_epcs,
    epcis_biz_transactions,
)
"""Every table of this module (written by the API only)."""
