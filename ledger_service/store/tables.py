"""Every table of the index (SQLAlchemy Core), grouped by the process that writes it.

Alembic migrations in store/migrations mirror this file. Two writers, and data flows one way:

- the indexer writes the chain-derived tables (chain -> indexer -> index) and nothing else;
- the API writes its own records (credentials, requests, idempotent answers, policy terms, categories,
  upload quota) and never a chain-derived table. Both read everything.

Conventions: hashes, ids and digests are ``0x`` + 64 lowercase hex chars;
addresses ``0x`` + 40 lowercase hex chars; token amounts are unbounded
integers (:class:`Amount`); times are unix seconds: chain time in the
chain-derived tables, wall-clock time (when the service saw something) in the
API's and in the columns marked so. Secrets are never stored: API keys and
return tokens only as the sha256 hex of the plaintext; an idempotent answer
(which may carry a new return token) only sealed with a key derived from the
caller's credential, which is not stored either
(:func:`ledger_service.access.seal`).

The indexer's tables are of three kinds:
- *bookkeeping*: the chain the index is pinned to, its checkpoint, the headers
  above finality, and what the completeness checks found about the node;
- *log tables* hold one row per contract event, keyed by their position
  (block_number, log_index); a reorg deletes the rows above the common
  ancestor;
- *state tables* (items, returns, roles, sellers) are a pure function of the
  log tables: the indexer updates them as it applies events, and after a
  reorg rebuilds the rows touched by the deleted events from what remains
  (:mod:`ledger_service.store._folds`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Dialect,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

HASH = String(66)
ZERO_HASH = "0x" + "00" * 32
ADDRESS = String(42)
SHA256_HEX = String(64)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class Amount(TypeDecorator[int]):
    """An unbounded non-negative integer (uint256 token amounts), exact on both databases.

    PostgreSQL: NUMERIC(78, 0). SQLite has no exact wide numeric, so the value
    is stored as decimal text there.
    """

    impl = Numeric(78, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(78))
        return dialect.type_descriptor(Numeric(78, 0, asdecimal=True))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)


def item_key(item_id: str) -> int:
    """``item_events.item_key`` of an item id: its first 8 bytes as a signed 64-bit integer.

    The item's events are found through the index on (item_key, seq): 16 bytes an
    entry instead of ~80 with the 66-character id, which keeps the pages a batch of
    events dirties (one entry per touched item, anywhere in the index) few. Item ids
    are keccak hashes, so keys spread evenly; two items may share a key, which only
    costs a look at the other item's rows: every query also filters on ``item_id``.
    A string that is not an item id gets key 0 (and matches no row by its id).
    """
    try:
        value = int(item_id[2:18], 16)
    except ValueError:
        return 0
    return value - (1 << 64) if value >= 1 << 63 else value


def _position() -> list[Column[Any]]:
    """Columns locating a log: block, transaction and log index."""
    return [
        Column("block_number", BigInteger, nullable=False),
        Column("log_index", Integer, nullable=False),
        Column("tx_hash", HASH, nullable=False),
        Column("tx_index", Integer, nullable=False),
    ]


# ==== written by the indexer: chain-derived ===================================
#
# Only ledger-indexer (through Store, store/handle.py and store/ingest.py) writes these tables; the API reads
# them. Each is a function of the chain (and of the node that answered, for node_faults).

# ---- bookkeeping -------------------------------------------------------------

chain_pin = Table(
    "chain_pin",
    metadata,
    Column("id", SmallInteger, primary_key=True, comment="always 1: one chain per index"),
    Column("chain_id", BigInteger, nullable=False),
    Column("genesis_hash", HASH, nullable=False),
    Column("ledger_address", ADDRESS, nullable=False),
    Column("escrow_address", ADDRESS, nullable=False),
    Column("deploy_block", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False, comment="wall-clock unix seconds"),
)

checkpoint = Table(
    "checkpoint",
    metadata,
    Column("id", SmallInteger, primary_key=True, comment="always 1"),
    Column("block_number", BigInteger, nullable=False, comment="every event up to this block is indexed"),
    Column("block_hash", HASH, nullable=False),
    Column("updated_at", BigInteger, nullable=False, comment="wall-clock unix seconds"),
)

blocks = Table(
    "blocks",
    metadata,
    Column("number", BigInteger, primary_key=True),
    Column("hash", HASH, nullable=False),
    Column("parent_hash", HASH, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    comment="indexed blocks above finality (pruned below head - finality_depth)",
)

node_faults = Table(
    "node_faults",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False, comment="the check: bloom, reconcile, chain_break or proof"),
    Column("from_block", BigInteger, nullable=False),
    Column("to_block", BigInteger, nullable=False),
    Column("item_id", HASH, nullable=True, comment="the item the check named, if any"),
    Column("detail", Text, nullable=False),
    Column("repaired", Boolean, nullable=False, comment="a re-fetched answer was complete and was indexed instead"),
    Column("detected_at", BigInteger, nullable=False, comment="wall-clock unix seconds"),
    Index("ix_node_faults_block", "from_block"),
    comment="incomplete node answers the indexer caught; a record of the node's behaviour, kept through reorgs",
)

# ---- log tables --------------------------------------------------------------

item_registrations = Table(
    "item_registrations",
    metadata,
    Column("item_id", HASH, primary_key=True),
    Column("uri", Text, nullable=False),
    Column("gtin", BigInteger, nullable=False),
    Column("manufacturer", ADDRESS, nullable=False),
    Column("merchant", ADDRESS, nullable=False),
    Column("metadata_digest", HASH, nullable=False),
    *_position(),
    Index("ix_item_registrations_block", "block_number"),
)

item_events = Table(
    "item_events",
    metadata,
    Column("item_id", HASH, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("biz_step", SmallInteger, nullable=False),
    Column("disposition", SmallInteger, nullable=False),
    Column("actor", ADDRESS, nullable=False),
    Column("location", HASH, nullable=False, comment="bytes32 as hex: SGLN ASCII right-padded"),
    Column("document", HASH, nullable=False),
    Column("biz_transaction", HASH, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("prev_hash", HASH, nullable=False),
    Column("event_hash", HASH, nullable=False),
    Column("chain_ok", Boolean, nullable=False, comment="prevHash links and eventHash recomputes"),
    *_position(),
    Column(
        "block_hash",
        HASH,
        nullable=True,
        comment="hash of the log's block (auditors check it is still canonical); NULL only for rows "
        "indexed before revision 0003 whose block header was no longer stored",
    ),
    Column(
        "item_key",
        BigInteger,
        nullable=False,
        comment="item_key(item_id): the index's compact key of the item; queries filter item_id too",
    ),
    PrimaryKeyConstraint("block_number", "log_index"),
    Index("ix_item_events_item", "item_key", "seq"),
    # EQ_bizTransaction_* on events without a capture document (the escrow's sale and return steps): only the
    # events that have a business transaction get an entry (revision 0014). No index on actor: no query reads
    # events by it alone, and it would cost every inserted event one more index entry.
    Index(
        "ix_item_events_biz_transaction",
        "biz_transaction",
        postgresql_where=text(f"biz_transaction <> '{ZERO_HASH}'"),
        sqlite_where=text(f"biz_transaction <> '{ZERO_HASH}'"),
    ),
)

merchant_changes = Table(
    "merchant_changes",
    metadata,
    Column("item_id", HASH, nullable=False),
    Column("previous_merchant", ADDRESS, nullable=False),
    Column("new_merchant", ADDRESS, nullable=False),
    *_position(),
    PrimaryKeyConstraint("block_number", "log_index"),
    Index("ix_merchant_changes_item", "item_id"),
)

seller_changes = Table(
    "seller_changes",
    metadata,
    Column("merchant", ADDRESS, nullable=False),
    Column("seller", ADDRESS, nullable=False),
    Column("allowed", Boolean, nullable=False),
    *_position(),
    PrimaryKeyConstraint("block_number", "log_index"),
)

role_changes = Table(
    "role_changes",
    metadata,
    Column("role", HASH, nullable=False),
    Column("account", ADDRESS, nullable=False),
    Column("sender", ADDRESS, nullable=False),
    Column("granted", Boolean, nullable=False),
    *_position(),
    PrimaryKeyConstraint("block_number", "log_index"),
)

policies = Table(
    "policies",
    metadata,
    Column("merchant", ADDRESS, nullable=False),
    Column("version", Integer, nullable=False),
    Column("window_days", Integer, nullable=False),
    Column("restocking_fee_bps", Integer, nullable=False),
    Column("fast_refund", Boolean, nullable=False),
    Column("fast_refund_max_value", Amount, nullable=False),
    Column("fast_refund_max_returns_90d", Integer, nullable=False),
    Column("ship_by_days", Integer, nullable=False),
    Column("inspect_by_days", Integer, nullable=False),
    Column("dispute_window_days", Integer, nullable=False),
    Column("document_digest", HASH, nullable=False),
    Column("published_at", BigInteger, nullable=False),
    *_position(),
    PrimaryKeyConstraint("merchant", "version"),
    Index("ix_policies_block", "block_number"),
)

sales = Table(
    "sales",
    metadata,
    Column("item_id", HASH, nullable=False),
    Column("sale_seq", Integer, nullable=False),
    Column("merchant", ADDRESS, nullable=False),
    Column("consumer", ADDRESS, nullable=False),
    Column("token", ADDRESS, nullable=False),
    Column("price", Amount, nullable=False),
    Column("policy_version", Integer, nullable=False),
    Column("order_ref", HASH, nullable=False),
    Column("sold_at", BigInteger, nullable=False),
    *_position(),
    PrimaryKeyConstraint("item_id", "sale_seq"),
    Index("ix_sales_consumer_time", "consumer", "sold_at"),
    Index("ix_sales_merchant_time", "merchant", "sold_at"),
    Index("ix_sales_block", "block_number"),
)

return_transitions = Table(
    "return_transitions",
    metadata,
    Column("return_id", HASH, nullable=False),
    Column("previous", SmallInteger, nullable=False),
    Column("state", SmallInteger, nullable=False),
    Column("actor", ADDRESS, nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("deadline", BigInteger, nullable=False),
    Column("evidence", HASH, nullable=False),
    *_position(),
    PrimaryKeyConstraint("block_number", "log_index"),
    Index("ix_return_transitions_return", "return_id", "block_number", "log_index"),
)

escrow_payouts = Table(
    "escrow_payouts",
    metadata,
    Column("return_id", HASH, primary_key=True, comment="a deposit is paid out once"),
    Column("consumer", ADDRESS, nullable=False),
    Column("merchant", ADDRESS, nullable=False),
    Column("token", ADDRESS, nullable=False),
    Column("consumer_amount", Amount, nullable=False),
    Column("merchant_amount", Amount, nullable=False),
    Column("paid_at", BigInteger, nullable=False, comment="block timestamp"),
    *_position(),
    Index("ix_escrow_payouts_block", "block_number"),
)

# ---- state tables (rebuilt from log tables after a reorg) --------------------

STATE_FILLFACTOR = 50
"""PostgreSQL keeps half of each page of the state tables free, so that rewriting a row (every batch that
touches an item, every transition of a return) is a HOT update: no index entries, dead versions pruned in
place (migration 0005 has the figures)."""

items = Table(
    "items",
    metadata,
    Column("item_id", HASH, primary_key=True),
    Column("uri", Text, nullable=False),
    Column("gtin", BigInteger, nullable=False),
    Column("manufacturer", ADDRESS, nullable=False),
    Column("merchant", ADDRESS, nullable=False, comment="current merchant of record"),
    Column("metadata_digest", HASH, nullable=False),
    Column("registered_at", BigInteger, nullable=False),
    Column("event_count", BigInteger, nullable=False),
    Column("head_hash", HASH, nullable=False),
    Column("last_biz_step", SmallInteger, nullable=False),
    Column("last_disposition", SmallInteger, nullable=False),
    Column("last_event_at", BigInteger, nullable=False),
    Column("delivered_at", BigInteger, nullable=True, comment="last arriving+retail_sold by a carrier"),
    Column("destroyed", Boolean, nullable=False),
    Column("chain_ok", Boolean, nullable=False, comment="every event of the item verified"),
    Index("ix_items_merchant", "merchant"),
    # text_pattern_ops on PostgreSQL: an EPC pattern (a prefix of the URI) is a range of it whatever the
    # database's collation (equality is served too).
    Index("ix_items_uri", "uri", postgresql_ops={"uri": "text_pattern_ops"}),
    Index("ix_items_gtin", "gtin"),
    postgresql_with={"fillfactor": STATE_FILLFACTOR},
)

returns = Table(
    "returns",
    metadata,
    Column("return_id", HASH, primary_key=True),
    Column("item_id", HASH, nullable=False),
    Column("sale_seq", Integer, nullable=False),
    Column("consumer", ADDRESS, nullable=False),
    Column("merchant", ADDRESS, nullable=False),
    Column("token", ADDRESS, nullable=False),
    Column("amount", Amount, nullable=False),
    Column("fee_bps", Integer, nullable=False),
    Column("fast_refund", Boolean, nullable=False),
    Column("policy_version", Integer, nullable=False),
    Column("state", SmallInteger, nullable=False),
    Column("ship_by", BigInteger, nullable=False),
    Column("inspect_by", BigInteger, nullable=True),
    Column("dispute_by", BigInteger, nullable=True),
    Column("authorized_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("settled", Boolean, nullable=False),
    Column("block_number", BigInteger, nullable=False, comment="block of the authorization"),
    Column("tx_hash", HASH, nullable=False),
    Index("ix_returns_item", "item_id"),
    Index("ix_returns_consumer_time", "consumer", "authorized_at"),
    Index("ix_returns_merchant_state_time", "merchant", "state", "updated_at"),
    Index("ix_returns_block", "block_number"),
    postgresql_with={"fillfactor": STATE_FILLFACTOR},
)

roles = Table(
    "roles",
    metadata,
    Column("role", HASH, nullable=False),
    Column("account", ADDRESS, nullable=False),
    Column("granted_block", BigInteger, nullable=False),
    PrimaryKeyConstraint("role", "account"),
    Index("ix_roles_account", "account"),
)

sellers = Table(
    "sellers",
    metadata,
    Column("merchant", ADDRESS, nullable=False),
    Column("seller", ADDRESS, nullable=False),
    PrimaryKeyConstraint("merchant", "seller"),
)

chain_problems = Table(
    "chain_problems",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item_id", HASH, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("block_number", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("detected_at", BigInteger, nullable=False, comment="wall-clock unix seconds"),
    Index("ix_chain_problems_item", "item_id"),
    Index("ix_chain_problems_block", "block_number"),
    comment="hash-chain inconsistencies found while indexing; never silently accepted",
)


# ---- the outbox (revision 0010) ------------------------------------------------------------------------------
#
# One row per notification (ledger_service/core/notifications.py), inserted in the same transaction as the change
# that caused it: by the indexer for the chain's events (block_number set; a reorg deletes the rows above the
# common ancestor with the log rows and the re-applied events insert them again, with the same id), by the
# notification worker's window scan (block_number NULL, insert-or-ignore by id). The worker only sets
# ``dispatched_at`` once it has turned a row into deliveries (unique per target and id: a row inserted again
# after a reorg is dispatched again and adds none).

EVENT_KEY = BigInteger().with_variant(Integer(), "sqlite")
"""An autoincrement key (SQLite gives autoincrement only to INTEGER PRIMARY KEY)."""

notifications = Table(
    "notifications",
    metadata,
    Column("seq", EVENT_KEY, primary_key=True, autoincrement=True, comment="insertion order; never reused"),
    Column("id", String(36), nullable=False, comment="msg_ + 32 hex: stable over reorgs, retries and re-scans"),
    Column("type", String(40), nullable=False),
    Column("return_id", HASH, nullable=True),
    Column("item_id", HASH, nullable=False),
    Column("sale_seq", Integer, nullable=False),
    Column("merchant", ADDRESS, nullable=False),
    Column("consumer", ADDRESS, nullable=False),
    Column("occurred_at", BigInteger, nullable=False, comment="chain time of the change (the scan's wall clock)"),
    Column("data", Text, nullable=False, comment="the payload's data object (JSON)"),
    Column("block_number", BigInteger, nullable=True, comment="the event's block; NULL: not chain-derived"),
    Column("log_index", Integer, nullable=True),
    Column("created_at", BigInteger, nullable=False, comment="wall-clock unix seconds"),
    Column("dispatched_at", BigInteger, nullable=True, comment="wall clock: turned into deliveries (the worker)"),
    UniqueConstraint("id"),
    Index("ix_notifications_return_id", "return_id", "seq"),
    Index("ix_notifications_block", "block_number"),
    Index(
        "ix_notifications_pending",
        "seq",
        postgresql_where=text("dispatched_at IS NULL"),
        sqlite_where=text("dispatched_at IS NULL"),
    ),
    sqlite_autoincrement=True,
    comment="the transactional outbox: one row per notification, written with the change that caused it",
)


# ==== written by the API: its own records =====================================
#
# Only the API's processes (and ledger-admin, for keys) write these tables; the indexer never touches them, so a
# reorg or a re-index leaves them as they are. Times are wall-clock unix seconds. Their migrations are revisions
# 0002 (0002_api_tables.py), 0006 (tokens bound to their sale and expiring, revocations, sealed idempotent
# answers), 0007 (document quota), 0009 (EPCIS capture jobs and the captured events' searchable fields), 0011
# (documents sent with a return request) and 0012 (carrier shipments, tracking events and webhook deliveries).

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
    Column(
        "documents",
        JSON,
        nullable=True,
        comment="CIDv0s of the documents (e.g. photos) sent with the request; NULL: none",
    ),
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
    Column("owner", String(100), nullable=True, comment="the process running the job: host:pid:token"),
    Column("heartbeat_at", BigInteger, nullable=True, comment="unix milliseconds of the owner's last heartbeat"),
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
    Column(
        "item_key", BigInteger, nullable=False, comment="item_key(item_id): joins item_events' (item_key, seq) index"
    ),
    PrimaryKeyConstraint("event_key", "item_id", "role"),
    # MATCH_epc on one item: an equality on item_id, in paging order.
    Index("ix_epcis_event_epcs_item_id", "item_id", "event_key"),
    # Whether an item event has a capture document (the events the chain holds without one): one probe.
    Index("ix_epcis_event_epcs_item_seq", "item_id", "seq"),
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

# ---- carriers (revision 0012) -------------------------------------------------------------------------------
#
# A return's shipment with a carrier (its tracking number, printed on the label), the carrier's tracking events
# as its webhooks reported them, and the webhook deliveries seen (replay protection). The chain holds only the
# steps these events lead to (markInTransit, markReceived): the rest is the carrier's word, kept here.

carrier_shipments = Table(
    "carrier_shipments",
    metadata,
    Column("carrier", String(32), nullable=False, comment="the carrier's name in LEDGER_CARRIERS"),
    Column("tracking_number", String(40), nullable=False, comment="as the carrier issued it"),
    Column("return_id", HASH, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("carrier", "tracking_number"),
    UniqueConstraint("return_id"),
    comment="one shipment per return, created with its first label",
)

carrier_events = Table(
    "carrier_events",
    metadata,
    Column("carrier", String(32), nullable=False),
    Column("event_id", String(100), nullable=False, comment="the carrier's id of the event: recorded once"),
    Column("tracking_number", String(40), nullable=False),
    Column("status", String(32), nullable=False, comment="in_transit|out_for_delivery|delivered|exception"),
    Column("occurred_at", BigInteger, nullable=False, comment="when the carrier says it happened (its clock)"),
    Column("location", Text, nullable=True, comment="the carrier's words for where"),
    Column("read_point", String(32), nullable=True, comment="SGLN read point sent on-chain with the step, if given"),
    Column("delivery_id", String(100), nullable=False, comment="the webhook delivery that brought it first"),
    Column("received_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("carrier", "event_id"),
    Index("ix_carrier_events_tracking", "carrier", "tracking_number", "occurred_at"),
)

carrier_deliveries = Table(
    "carrier_deliveries",
    metadata,
    Column("carrier", String(32), nullable=False),
    Column("delivery_id", String(100), nullable=False, comment="the webhook-id header"),
    Column("claimed_at", BigInteger, nullable=False, comment="when its processing started (a lease)"),
    Column("completed_at", BigInteger, nullable=True, comment="NULL: being processed (or its process died)"),
    PrimaryKeyConstraint("carrier", "delivery_id"),
    Index("ix_carrier_deliveries_claimed_at", "claimed_at"),
    comment="webhook deliveries seen: a delivery id is processed once (replays are refused)",
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
    carrier_shipments,
    carrier_events,
    carrier_deliveries,
)
"""The tables the API writes (the indexer never reads or writes them)."""


# ==== written by the API and the notification worker: webhooks, contacts, deliveries (revision 0010) ========
#
# The API writes the subscriptions and the consumers' contact addresses; ledger-notify writes the deliveries
# (one per notification and target, unique: a notification dispatched twice, e.g. inserted again after a
# reorg, adds no second delivery) and their attempts. Off-chain only; a reorg leaves them as they are.

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(40), primary_key=True, comment="wh_ + 32 hex"),
    Column("merchant", ADDRESS, nullable=False, comment="whose returns it hears about"),
    Column("url", Text, nullable=False),
    Column("event_types", Text, nullable=False, comment="JSON list of notification types"),
    Column(
        "secret",
        Text,
        nullable=False,
        comment="whsec_ + base64: the signing key itself (HMAC needs it); shown once, never logged",
    ),
    Column("created_at", BigInteger, nullable=False),
    Column("deleted_at", BigInteger, nullable=True, comment="DELETE: no new deliveries, history kept"),
    Index("ix_webhook_endpoints_merchant", "merchant"),
    comment="merchants' webhook subscriptions (POST /v1/webhooks)",
)

consumer_contacts = Table(
    "consumer_contacts",
    metadata,
    Column("item_id", HASH, nullable=False),
    Column("sale_seq", Integer, nullable=False),
    Column("email", String(254), nullable=False, comment="never on-chain, never logged"),
    Column("lang", String(5), nullable=False, comment="zh|en: the e-mails' language"),
    Column("set_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("item_id", "sale_seq"),
    comment="a sale's consumer e-mail for notifications, given with the sale or by the consumer",
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", EVENT_KEY, primary_key=True, autoincrement=True),
    Column("target", String(40), nullable=False, comment="a webhook endpoint's id, or email"),
    Column("notification_id", String(36), nullable=False, comment="the outbox row's id: the webhook-id"),
    Column("event_type", String(40), nullable=False),
    Column("return_id", HASH, nullable=True),
    Column("item_id", HASH, nullable=False),
    Column("sale_seq", Integer, nullable=False),
    Column("body", Text, nullable=False, comment="the payload, the same bytes on every attempt"),
    Column("state", String(12), nullable=False, comment="pending|delivered|dead"),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=False, comment="due time; a claim leases it ahead"),
    Column("retry_until", BigInteger, nullable=False, comment="dead-lettered after a failure past this time"),
    Column("last_status", Integer, nullable=True, comment="the receiver's last HTTP status"),
    Column("last_error", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=True, comment="delivered or dead-lettered"),
    UniqueConstraint("target", "notification_id"),
    Index("ix_deliveries_due", "state", "next_attempt_at"),
    Index("ix_deliveries_target", "target", "id"),
    sqlite_autoincrement=True,
    comment="one per notification and target: its attempts, retried with backoff, then dead-lettered",
)

NOTIFY_TABLES: tuple[Table, ...] = (notifications, webhook_endpoints, consumer_contacts, deliveries)
"""The tables of revision 0010 (the outbox, written with the index, and the worker's and API's own)."""
