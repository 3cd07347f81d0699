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
  above finality, what the completeness checks found about the node, and the
  writer lock's fencing epoch (PostgreSQL);
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
    DDL,
    JSON,
    BigInteger,
    Boolean,
    Column,
    Dialect,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    false,
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
    Column("exchange_address", ADDRESS, nullable=True, comment="ExchangeEscrow (revision 0020); NULL before it"),
    Column("batch_anchor_address", ADDRESS, nullable=True, comment="null: a deployment without BatchAnchor"),
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

# revision 0030
writer_epoch = Table(
    "writer_epoch",
    metadata,
    Column("id", SmallInteger, primary_key=True, comment="always 1"),
    Column("epoch", BigInteger, nullable=False, comment="incremented by each taker of the writer lock"),
    comment="PostgreSQL: the writer lock's fencing epoch (store/lock.py); empty on SQLite",
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
    # after the position: revision 0034 added it (a column added goes last)
    Column("gtin", BigInteger, nullable=True, comment="the sold item's GTIN, written at ingest (0034)"),
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

# ---- exchanges and the unit check (revision 0020) ------------------------------------------------------------
#
# Log tables only: an exchange's state (paid extra, released, collateral settled) is read from which of its
# rows exist, so a reorg needs no rebuild here, only the delete above the common ancestor. The original's
# return lifecycle is in returns/return_transitions (an exchange is a return with the same id).


class SignedAmount(Amount):
    """A signed unbounded integer (a price difference), stored as :class:`Amount` is."""

    cache_ok = True


exchange_terms = Table(
    "exchange_terms",
    metadata,
    Column("merchant", ADDRESS, nullable=False),
    Column("policy_version", Integer, nullable=False),
    Column("window_days", Integer, nullable=False),
    Column("instant", Boolean, nullable=False),
    Column("instant_max_value", Amount, nullable=False, comment="0: no limit"),
    Column("document_digest", HASH, nullable=False),
    *_position(),
    PrimaryKeyConstraint("merchant", "policy_version"),
    Index("ix_exchange_terms_block", "block_number"),
)

list_prices = Table(
    "list_prices",
    metadata,
    Column("item_id", HASH, nullable=False),
    Column("merchant", ADDRESS, nullable=False),
    Column("price", Amount, nullable=False, comment="0: not offered as a replacement"),
    *_position(),
    PrimaryKeyConstraint("block_number", "log_index"),
    Index("ix_list_prices_item", "item_id", "block_number", "log_index"),
    comment="every ListPriceSet; an item's price is its latest row",
)

exchanges = Table(
    "exchanges",
    metadata,
    Column("exchange_id", HASH, primary_key=True, comment="the id of its return"),
    Column("original_item_id", HASH, nullable=False),
    Column("replacement_item_id", HASH, nullable=False),
    Column("merchant", ADDRESS, nullable=False),
    Column("token", ADDRESS, nullable=False),
    Column("replacement_price", Amount, nullable=False),
    Column("price_difference", SignedAmount, nullable=False, comment="< 0: refunded to the consumer"),
    Column("collateral", Amount, nullable=False),
    Column("instant", Boolean, nullable=False),
    *_position(),
    Index("ix_exchanges_original", "original_item_id"),
    Index("ix_exchanges_replacement", "replacement_item_id"),
    Index("ix_exchanges_merchant", "merchant"),
    Index("ix_exchanges_block", "block_number"),
)

exchange_payments = Table(
    "exchange_payments",
    metadata,
    Column("exchange_id", HASH, primary_key=True, comment="recorded once"),
    Column("amount", Amount, nullable=False),
    Column("payment_ref", HASH, nullable=False),
    *_position(),
    Index("ix_exchange_payments_block", "block_number"),
)

exchange_releases = Table(
    "exchange_releases",
    metadata,
    Column("exchange_id", HASH, primary_key=True, comment="released once"),
    Column("replacement_item_id", HASH, nullable=False),
    Column("instant", Boolean, nullable=False),
    *_position(),
    Index("ix_exchange_releases_block", "block_number"),
)

exchange_collateral_payouts = Table(
    "exchange_collateral_payouts",
    metadata,
    Column("exchange_id", HASH, primary_key=True, comment="a collateral is paid out once"),
    Column("merchant", ADDRESS, nullable=False),
    Column("token", ADDRESS, nullable=False),
    Column("amount", Amount, nullable=False),
    Column("original_shipped", Boolean, nullable=False),
    *_position(),
    Index("ix_exchange_collateral_payouts_block", "block_number"),
)

return_unit_mismatches = Table(
    "return_unit_mismatches",
    metadata,
    Column("return_id", HASH, nullable=False),
    Column("sold_item_id", HASH, nullable=False),
    Column("scanned_item_id", HASH, nullable=False),
    Column("scanned_merchant", ADDRESS, nullable=False, comment="zero address: not on the ledger"),
    Column("actor", ADDRESS, nullable=False),
    Column("biz_step", SmallInteger, nullable=False),
    Column("at", BigInteger, nullable=False),
    *_position(),
    PrimaryKeyConstraint("block_number", "log_index"),
    Index("ix_return_unit_mismatches_return", "return_id"),
    Index("ix_return_unit_mismatches_scanned", "scanned_item_id"),
)

EXCHANGE_TABLES: tuple[Table, ...] = (
    exchange_terms,
    list_prices,
    exchanges,
    exchange_payments,
    exchange_releases,
    exchange_collateral_payouts,
    return_unit_mismatches,
)
"""The tables of revision 0020: log tables of ExchangeEscrow's events and of ReturnUnitMismatch."""

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
    # the metrics' scrape-time counts (store/returns.py: return_counts_by_state, escrow_outstanding): answered
    # from these indexes alone, the unsettled ones from the few rows still holding a deposit
    Index("ix_returns_state", "state"),
    Index(
        "ix_returns_unsettled",
        "token",
        "amount",
        "settled",  # in the index too: SQLite reads it to check the partial index's condition
        postgresql_where=text("settled = false"),
        sqlite_where=text("settled = 0"),
    ),
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


# ---- batched scans (issue #23) ----------------------------------------------------------------------------
#
# A BatchAnchored log becomes a batch_anchors row in state "pending_document"; the indexer then fetches the
# batch document by its digest and, in one transaction, either writes every scan of it into batched_scans and
# marks the anchor "applied", or marks it "refused" with the reason (never half a batch). A document the store
# cannot give yet leaves the anchor pending (retried). A reorg deletes both tables' rows above the common
# ancestor by the anchor's block, like the other log tables.

BATCH_PENDING, BATCH_APPLIED, BATCH_REFUSED = "pending_document", "applied", "refused"
WAITS_FOR_DOCUMENT, WAITS_FOR_SCANS = "document_unavailable", "earlier_scans_not_applied"
"""Why a pending anchor the indexer tried waits (``batch_anchors.waiting``): its document could not be had, or
it continues item scans no applied batch has brought yet (it is held)."""

batch_anchors = Table(
    "batch_anchors",
    metadata,
    Column("root", HASH, nullable=False),
    Column("submitter", ADDRESS, nullable=False),
    Column("document_digest", HASH, nullable=False),
    Column("count", Integer, nullable=False),
    Column("anchored_at", BigInteger, nullable=False, comment="block timestamp"),
    Column("state", String(16), nullable=False, comment="pending_document | applied | refused"),
    Column("problem", Text, nullable=True, comment="why a refused batch was refused, or why a document is pending"),
    Column("attempts", Integer, nullable=False, comment="document fetches tried"),
    Column(
        "waiting",
        String(32),
        nullable=True,
        comment="a pending anchor the indexer tried: document_unavailable | earlier_scans_not_applied (0033)",
    ),
    *_position(),
    PrimaryKeyConstraint("block_number", "log_index"),
    Index("ix_batch_anchors_state", "state"),
    Index("ix_batch_anchors_submitter_root", "submitter", "root"),
)

batched_scans = Table(
    "batched_scans",
    metadata,
    Column("item_id", HASH, nullable=False),
    Column("seq", BigInteger, nullable=False, comment="the item's chain of batched scans"),
    Column("prev_hash", HASH, nullable=False),
    Column("leaf_hash", HASH, nullable=False, comment="the scan's Merkle leaf, also its hash in the item's chain"),
    Column("biz_step", SmallInteger, nullable=False),
    Column("disposition", SmallInteger, nullable=False),
    Column("read_point", String(32), nullable=False),
    Column("document", HASH, nullable=False),
    Column("biz_transaction", HASH, nullable=False),
    Column("time", BigInteger, nullable=False, comment="the scanner's clock, unix seconds"),
    Column("submitter", ADDRESS, nullable=False),
    Column("leaf_index", Integer, nullable=False, comment="the scan's place in its batch document's events"),
    Column("block_number", BigInteger, nullable=False, comment="the anchor's position: the batch id"),
    Column("log_index", Integer, nullable=False),
    PrimaryKeyConstraint("item_id", "seq"),
    Index("ix_batched_scans_batch", "block_number", "log_index"),
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
# (documents sent with a return request), 0012 (carrier shipments, tracking events and webhook deliveries),
# 0025 (exchange requests: the replacement chosen and whether instant), 0027 (the sender on a label) and 0028
# (the EPC a carrier scanned at delivery).

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
    Column(
        "replacement_item_id",
        HASH,
        nullable=True,
        comment="an exchange request: the unit chosen instead of a refund; NULL: a refund return",
    ),
    Column("instant", Boolean, nullable=True, comment="an exchange request: instant exchange asked"),
    UniqueConstraint("active_item"),
    Index("ix_return_requests_merchant_created", "merchant", "created_at"),
    Index("ix_return_requests_consumer_created", "consumer", "created_at"),
    Index("ix_return_requests_item_id", "item_id"),
    Index("ix_return_requests_return_id", "return_id"),
    # the analytics refresh finds what changed since its watermark (revision 0015)
    Index("ix_return_requests_created_at", "created_at"),
    Index("ix_return_requests_decided_at", "decided_at"),
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
    Column(
        "batched",
        JSON,
        nullable=False,
        server_default="[]",
        comment="events sent to the scan batcher: list of {index, scans: [{epc, batchId, position}]}",
    ),
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
    Index("ix_carrier_shipments_created_at", "created_at"),
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
    Column("epc", Text, nullable=True, comment="a delivered event: the EPC URI scanned on the unit"),
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

# ---- customer feedback (revision 0016) ------------------------------------------------------------------------
#
# The consumer's rating of a closed return's process (1-5) with an optional comment: one row per return, written
# by the API from the consumer's return token and changeable for a week after it was first given. The return's
# merchant and consumer are copied from the index when it is given, so a satisfaction read filters without a join.

return_feedback = Table(
    "return_feedback",
    metadata,
    Column("return_id", HASH, primary_key=True, comment="one feedback per return"),
    Column("item_id", HASH, nullable=False),
    Column("merchant", ADDRESS, nullable=False, comment="the return's merchant"),
    Column("consumer", ADDRESS, nullable=False, comment="the return's consumer: the token holder who rated"),
    Column("rating", SmallInteger, nullable=False, comment="1 (bad) to 5 (good)"),
    Column("comment", Text, nullable=True, comment="optional, in Chinese or English, as written"),
    Column("lang", String(2), nullable=False, comment="zh|en: the comment's (or the form's) language"),
    Column("created_at", BigInteger, nullable=False, comment="first given: editable for 7 days from it"),
    Column("updated_at", BigInteger, nullable=False),
    Column(
        "rolled",
        Text,
        nullable=False,
        server_default="[]",
        comment="JSON list of [group, key] the rating is summed in (feedback_rollup)",
    ),
    Index("ix_return_feedback_merchant_created", "merchant", "created_at"),
    comment="consumers' ratings of closed returns (PUT /v1/returns/{id}/feedback)",
)

# ==== written by the API: the sender a return's label prints (revision 0027) ===================================
# Personal data (a name the consumer typed), off-chain only: one row per return request, by its consumer's
# token; no row prints the masked wallet address. Never read by the indexer, so a re-index keeps it.

label_senders = Table(
    "label_senders",
    metadata,
    Column("request_id", String(40), primary_key=True, comment="the return request (rr_ + 32 hex)"),
    Column("show_as", String(8), nullable=False, comment="wallet|initials|full"),
    Column("name", String(60), nullable=True, comment="as typed; never on-chain, never logged"),
    Column("locality", String(60), nullable=True, comment="optional city / postcode line, as typed"),
    Column("updated_at", BigInteger, nullable=False),
    Column("printed_at", BigInteger, nullable=True, comment="first label printed: fixed from then on"),
    comment="the sender on a return's label as its consumer chose (PUT /v1/returns/{id}/label-sender)",
)

# ==== the ratings summed (revision 0017): written with each rating, in its transaction ========================
feedback_rollup = Table(
    "feedback_rollup",
    metadata,
    Column("merchant", ADDRESS, primary_key=True),
    Column("day", Integer, primary_key=True, comment="UTC day number of the rating's first giving"),
    Column("grp", String(16), primary_key=True, comment="all|reason|carrier|refund|theme|inspection"),
    Column("key", String(66), primary_key=True, comment="the group's value ('' for all)"),
    *(Column(f"s{n}", BigInteger, nullable=False, comment=f"ratings of {n}") for n in range(1, 6)),
    Index("ix_feedback_rollup_day", "day"),
    comment="ratings summed by merchant, day and group, kept current by each rating's write",
)

# ---- the relayer's sent transactions (revision 0023, ledger_service/chain/nonces.py) -----------------------

sent_transactions = Table(
    "sent_transactions",
    metadata,
    Column("chain_id", BigInteger, nullable=False),
    Column("signer", ADDRESS, nullable=False, comment="the signing account, lowercase"),
    Column("nonce", BigInteger, nullable=False),
    Column("raw", LargeBinary, nullable=False, comment="the signed transaction last sent for this nonce"),
    Column("hashes", Text, nullable=False, comment="every hash sent for this nonce, oldest first, comma-separated"),
    Column("max_fee_per_gas", BigInteger, nullable=False, comment="of the last one sent, wei"),
    Column("priority_fee_per_gas", BigInteger, nullable=False, comment="of the last one sent, wei"),
    Column("sent_at", Float, nullable=False, comment="wall-clock unix time of the first submission"),
    Column("mined_hash", HASH, nullable=True, comment="the hash mined for this nonce, once its sender saw it"),
    PrimaryKeyConstraint("chain_id", "signer", "nonce"),
    comment="the API's transactions by signer and nonce: the nonce manager all workers and replicas share "
    "(revision 0023)",
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
    return_feedback,
    feedback_rollup,
    sent_transactions,
    label_senders,
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
    Index("ix_deliveries_due", "state", "next_attempt_at", "id"),  # the claim's order (revision 0018)
    Index("ix_deliveries_target", "target", "id"),
    Index("ix_deliveries_target_due", "target", "state", "next_attempt_at", "id"),
    sqlite_autoincrement=True,
    comment="one per notification and target: its attempts, retried with backoff, then dead-lettered",
)

NOTIFY_TABLES: tuple[Table, ...] = (notifications, webhook_endpoints, consumer_contacts, deliveries)
"""The tables of revision 0010 (the outbox, written with the index, and the worker's and API's own)."""


# ==== written by the analytics refresh: rollups (revision 0015) ==============================================
#
# A materialized rollup of the index and the API's return requests, refreshed incrementally by
# ledger_service.analytics.refresh (store/analytics.py): each refresh folds only what changed since its
# watermark, so a dashboard reads these small tables and never the whole history. Every rollup row is keyed by
# a grain and a bucket: 'd' a UTC day, 'w' an ISO week, 'm' a calendar month; the bucket is the unix day number
# of the day, of the week's Monday or of the month's first day. A range of dates reads whole months from the 'm'
# rows, whole weeks from the 'w' rows and the days left at either end from the 'd' rows. Return rows are bucketed
# by the day the consumer asked; sales by the day of the sale. Token amounts are split as ``hi * 10**12 + lo`` (both
# BigInteger) so that SQL sums them exactly on both databases (SQLite has no wide exact numeric). On SQLite the
# rollups are WITHOUT ROWID (revision 0024): a read of a range of the key finds the values beside it. Revision 0026:
# return rows by token (amounts of two tokens are never summed), exchange requests counted apart from returns.
# Revision 0031: the watermark's generation, moved by every write of a refresh (the reads' kept answers).
# Revision 0032: on PostgreSQL the rollups' pages keep 30% free (ROLLUP_PAGES), so that a refresh's additions to
# stored rows are updated in place on their page without a new entry in each index. Revision 0036: on PostgreSQL
# the analytics tables are UNLOGGED (derived: a crash empties them, the watermark with them, and the next refresh
# rebuilds them); analytics_sales keeps weeks (with their days' counts) and months, no day rows.

analytics_watermark = Table(
    "analytics_watermark",
    metadata,
    Column("id", SmallInteger, primary_key=True, comment="always 1"),
    Column("block_number", BigInteger, nullable=False, comment="chain rows up to this block are folded"),
    Column("block_hash", HASH, nullable=False, comment="its hash: a reorg under it is detected"),
    Column("request_time", BigInteger, nullable=False, comment="newest request created or decided, wall clock"),
    Column("shipment_time", BigInteger, nullable=False, comment="newest carrier shipment, wall clock"),
    Column("refreshed_at", BigInteger, nullable=False, comment="wall-clock unix seconds"),
    Column(
        "generation",
        BigInteger,
        nullable=False,
        server_default="0",
        comment="moved by every write of a refresh: what the analytics reads keep their answers under",
    ),
)

analytics_facts = Table(
    "analytics_facts",
    metadata,
    Column("request_id", String(40), primary_key=True),
    Column("merchant", ADDRESS, nullable=False),
    Column("gtin", BigInteger, nullable=False),
    Column("category", String(100), nullable=False, comment="'' when the item has none"),
    Column("reason_code", String(64), nullable=False),
    Column("carrier", String(32), nullable=False, comment="'' before a label"),
    Column("outcome", String(16), nullable=False, comment="approve|reject|manual_review"),
    Column("day", Integer, nullable=False, comment="unix day of the request"),
    Column("return_id", HASH, nullable=True),
    Column("requested_at", BigInteger, nullable=False),
    Column("scanned_at", BigInteger, nullable=True, comment="first carrier scan (InTransit)"),
    Column("received_at", BigInteger, nullable=True, comment="delivered to the merchant (Received)"),
    Column("inspected_at", BigInteger, nullable=True, comment="Accepted or Rejected"),
    Column("refunded_at", BigInteger, nullable=True, comment="payout with a consumer share"),
    Column("refund", Amount, nullable=False),
    Column("fee_kept", Amount, nullable=False),
    Column("outstanding", Amount, nullable=False, comment="deposit still in escrow"),
    Column("dispute", String(8), nullable=False, comment="''|open|consumer|merchant"),
    Column("terms", JSON, nullable=False, comment="the comment's theme terms"),
    Column("token", ADDRESS, nullable=False, server_default="", comment="the sale's ERC-20; '' if unknown"),
    Column("exchange", Boolean, nullable=False, server_default=false(), comment="an exchange request"),
    Column("replacement_gtin", BigInteger, nullable=True, comment="an exchange's replacement GTIN"),
    Index("ix_analytics_facts_return_id", "return_id"),
    comment="one row per return request: what the rollups hold of it (a change subtracts the old row's share)",
)


ROLLUP_PAGES: dict[str, Any] = {"postgresql_with": {"fillfactor": 70}}
"""The rollups' storage on PostgreSQL (revision 0032): room on each page for the refresh's updates."""


def _rollup_key() -> list[Column[Any]]:
    return [
        Column("grain", String(1), nullable=False, comment="d: day, w: week, m: month"),
        Column("bucket", Integer, nullable=False, comment="unix day of the day, or of the week's or month's first day"),
        Column("merchant", ADDRESS, nullable=False),
    ]


_NOT_DAYS = text("grain <> 'd'")
WEEKS_AND_MONTHS: dict[str, Any] = {"postgresql_where": _NOT_DAYS, "sqlite_where": _NOT_DAYS}
"""A rollup index of the week and month rows only: a read of them repeats the condition (SQLite uses a partial
index only for a query that states its condition)."""

_SOLD_ON = "sold on the week's day {} (0 Monday), on a week row; 0 on a month row"

analytics_sales = Table(
    "analytics_sales",
    metadata,
    *_rollup_key(),
    Column("gtin", BigInteger, nullable=False),
    Column("category", String(100), nullable=False),
    Column("sold", BigInteger, nullable=False),
    # revision 0036: a week row keeps its days (there are no day rows): a backfill's sales are about one per GTIN
    # and day, so day rows were nearly a row per sale; a read's days at a range's ends sum these columns
    *(
        Column(f"sold_{n}", BigInteger, nullable=False, server_default="0", comment=_SOLD_ON.format(n))
        for n in range(7)
    ),
    PrimaryKeyConstraint("grain", "bucket", "merchant", "gtin", "category"),
    # weeks and months only (revision 0035; since 0036 the table has no other rows): a read states the condition
    Index("ix_analytics_sales_merchant", "merchant", "grain", "bucket", **WEEKS_AND_MONTHS),
    Index("ix_analytics_sales_gtin", "gtin", "grain", "bucket", **WEEKS_AND_MONTHS),
    sqlite_with_rowid=False,
    **ROLLUP_PAGES,
)

analytics_returns = Table(
    "analytics_returns",
    metadata,
    Column(
        "view",
        String(1),
        nullable=False,
        comment="which dimensions the row keeps (the others blank): g all by day, all but carrier by month "
        "(the only view with days), c carrier+reason, r reason, o outcome",
    ),
    *_rollup_key(),
    Column("gtin", BigInteger, nullable=False),
    Column("category", String(100), nullable=False),
    Column("reason_code", String(64), nullable=False),
    Column("carrier", String(32), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("token", ADDRESS, nullable=False, comment="the sale's ERC-20; '' if unknown"),
    Column("requests", BigInteger, nullable=False, comment="refund returns (exchanges apart)"),
    Column("refunds", BigInteger, nullable=False),
    Column("refund_hi", BigInteger, nullable=False),
    Column("refund_lo", BigInteger, nullable=False),
    Column("fee_kept_hi", BigInteger, nullable=False),
    Column("fee_kept_lo", BigInteger, nullable=False),
    Column("outstanding_count", BigInteger, nullable=False),
    Column("outstanding_hi", BigInteger, nullable=False),
    Column("outstanding_lo", BigInteger, nullable=False),
    Column("disputes", BigInteger, nullable=False),
    Column("disputes_open", BigInteger, nullable=False),
    Column("disputes_consumer", BigInteger, nullable=False),
    Column("disputes_merchant", BigInteger, nullable=False),
    Column("exchanges", BigInteger, nullable=False, comment="exchange requests"),
    Column("exchanges_other_gtin", BigInteger, nullable=False, comment="exchanges for another GTIN"),
    PrimaryKeyConstraint(
        "view", "grain", "bucket", "merchant", "gtin", "category", "reason_code", "carrier", "outcome", "token"
    ),
    Index("ix_analytics_returns_merchant", "merchant", "view", "grain", "bucket", **WEEKS_AND_MONTHS),
    Index("ix_analytics_returns_gtin", "gtin", "view", "grain", "bucket", **WEEKS_AND_MONTHS),
    comment="return requests and their money by request day, each counted once in each view: a read sums the "
    "narrowest view that has its dimensions",
    sqlite_with_rowid=False,
    **ROLLUP_PAGES,
)

analytics_speed = Table(
    "analytics_speed",
    metadata,
    *_rollup_key(),
    Column("metric", String(24), nullable=False, comment="request_refund|scan_refund|delivery_inspection"),
    Column("hours", Integer, nullable=False, comment="the duration in whole hours"),
    Column("n", BigInteger, nullable=False),
    PrimaryKeyConstraint("grain", "bucket", "merchant", "metric", "hours"),
    Index("ix_analytics_speed_merchant", "merchant", "grain", "bucket"),
    comment="histograms of durations (hours) per request day: percentiles without the returns themselves",
    sqlite_with_rowid=False,
    **ROLLUP_PAGES,
)

analytics_terms = Table(
    "analytics_terms",
    metadata,
    *_rollup_key(),
    Column("reason_code", String(64), nullable=False),
    Column("term", String(48), nullable=False),
    Column("n", BigInteger, nullable=False),
    PrimaryKeyConstraint("grain", "bucket", "merchant", "reason_code", "term"),
    Index("ix_analytics_terms_merchant", "merchant", "grain", "bucket"),
    comment="how many comments used a theme term (ledger_service/analytics/themes.py)",
    sqlite_with_rowid=False,
    **ROLLUP_PAGES,
)

ANALYTICS_TABLES: tuple[Table, ...] = (
    analytics_watermark,
    analytics_facts,
    analytics_sales,
    analytics_returns,
    analytics_speed,
    analytics_terms,
)
"""The tables of revision 0015 (the analytics refresh writes them and nothing else)."""

for _table in ANALYTICS_TABLES:
    # derived data, unlogged on PostgreSQL (revision 0036; see above): made so as a new index creates them too
    event.listen(
        _table,
        "after_create",
        DDL(f"ALTER TABLE {_table.name} SET UNLOGGED").execute_if(dialect="postgresql"),  # type: ignore[no-untyped-call]
    )


# ---- the scan batcher's queue (revision 0022) ---------------------------------------------------------------
#
# Owned by the API (which acknowledges scans into the open batch of their submitter) and ledger-batcher (which
# seals, stores and anchors batches), never by the indexer: the index learns of a batch only from its anchor.
# A batch goes open -> full (closed to new scans) -> sealed (document built, its bytes kept here, heads moved:
# a resend needs nothing else) -> anchored (the anchor transaction mined) -> final (its block is past the
# finality depth); a reorg that drops the anchor transaction takes an anchored batch back to sealed; a sealed
# batch the contract keeps refusing becomes failed (revision 0029: refusals, refused_since). A submitter has at
# most one open batch (store/scan_queue.py).

BATCH_OPEN, BATCH_FULL, BATCH_SEALED, BATCH_ANCHORED, BATCH_FINAL = "open", "full", "sealed", "anchored", "final"
BATCH_FAILED = "failed"

scan_batches = Table(
    "scan_batches",
    metadata,
    Column("id", EVENT_KEY, primary_key=True, autoincrement=True, comment="the batch number receipts name"),
    Column("submitter", ADDRESS, nullable=False, comment="the account that anchors it"),
    Column("state", String(12), nullable=False, comment="open | full | sealed | anchored | final"),
    Column("scan_count", Integer, nullable=False),
    Column("opened_at", BigInteger, nullable=False, comment="wall-clock unix ms of its first scan"),
    Column("sealed_at", BigInteger, nullable=True, comment="wall-clock unix ms"),
    Column("root", HASH, nullable=True),
    Column("document_digest", HASH, nullable=True, comment="sha2-256 of the document, as anchored"),
    Column("document", LargeBinary, nullable=True, comment="the sealed document's canonical bytes"),
    Column("tx_hash", HASH, nullable=True, comment="the anchor transaction"),
    Column("anchor_block", BigInteger, nullable=True),
    Column("anchor_block_hash", HASH, nullable=True),
    Column("anchored_at", BigInteger, nullable=True, comment="wall-clock unix ms the anchor was seen mined"),
    Column("attempts", Integer, nullable=False, comment="anchor sends tried"),
    Column("problem", Text, nullable=True, comment="why the last send failed"),
    Column("refusals", Integer, nullable=False, server_default="0", comment="reverts of its anchor by the contract"),
    Column("refused_since", BigInteger, nullable=True, comment="wall-clock unix ms of the first revert"),
    Index(
        "ux_scan_batches_open",
        "submitter",
        unique=True,
        postgresql_where=text("state = 'open'"),
        sqlite_where=text("state = 'open'"),
    ),
    Index("ix_scan_batches_state", "state", "id"),
    comment="scan batches, from acknowledged to anchored (the API and ledger-batcher)",
)

queued_scans = Table(
    "queued_scans",
    metadata,
    Column("batch_id", BigInteger, nullable=False),
    Column("position", Integer, nullable=False, comment="its place in the batch: the document's event index"),
    Column("item", String(256), nullable=False, comment="the item's GS1 URI"),
    Column("biz_step", SmallInteger, nullable=False),
    Column("disposition", SmallInteger, nullable=False),
    Column("read_point", String(32), nullable=False),
    Column("time", BigInteger, nullable=False, comment="the scanner's clock, unix seconds"),
    Column("document", HASH, nullable=False),
    Column("biz_transaction", HASH, nullable=False),
    Column("key_id", Integer, nullable=False, comment="the API key that sent it"),
    Column("accepted_at", BigInteger, nullable=False, comment="wall-clock unix ms of its acknowledgement"),
    PrimaryKeyConstraint("batch_id", "position"),
    comment="acknowledged scans, each in the batch its receipt named",
)

scan_heads = Table(
    "scan_heads",
    metadata,
    Column("item_id", HASH, primary_key=True),
    Column("seq", BigInteger, nullable=False, comment="the item's last sealed batched scan"),
    Column("leaf_hash", HASH, nullable=False),
    comment="each item's chain of batched scans as ledger-batcher sealed it",
)

BATCHER_TABLES: tuple[Table, ...] = (scan_batches, queued_scans, scan_heads)
"""The tables the API and ledger-batcher write (the indexer never reads or writes them)."""
