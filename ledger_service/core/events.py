"""Decoded contract events: the interface between the decoder and the store.

One dataclass per contract event, carrying every field of the event plus its
position (:class:`LogPosition`). They are values: nothing mutates them once
built. They are not declared frozen because a frozen dataclass's ``__init__``
sets every field through ``object.__setattr__``, about five times slower, and
the decoder builds one per log on the indexer's hot path. Hashes, ids and digests are
``0x``-prefixed lowercase hex strings (66 chars), addresses are lowercase hex
(42 chars), amounts and timestamps are ints. The store depends only on these
types, never on raw logs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class LogPosition:
    """Where a log sits in the chain's total order (block number, log index)."""

    block_number: int
    block_hash: str
    tx_hash: str
    tx_index: int
    log_index: int
    address: str


@dataclass(slots=True)
class BlockHeader:
    """The part of a block header the indexer keeps above finality."""

    number: int
    hash: str
    parent_hash: str
    timestamp: int


# ---- ProvenanceLedger -------------------------------------------------------


@dataclass(slots=True)
class ItemRegistered:
    pos: LogPosition
    item_id: str
    manufacturer: str
    merchant: str
    uri: str
    gtin: int
    metadata_digest: str


@dataclass(slots=True)
class ItemEventRecorded:
    pos: LogPosition
    item_id: str
    actor: str
    seq: int
    biz_step: int
    disposition: int
    location: str
    document: str
    biz_transaction: str
    timestamp: int
    prev_hash: str
    event_hash: str
    hash_ok: bool | None = None
    """Whether ``event_hash`` recomputes from the fields, as the decoder found; None: not checked yet (the
    store checks it). The seq and prevHash links need the item's history: the store checks those."""


@dataclass(slots=True)
class MerchantOfRecordChanged:
    pos: LogPosition
    item_id: str
    previous_merchant: str
    new_merchant: str


@dataclass(slots=True)
class SellerSet:
    pos: LogPosition
    merchant: str
    seller: str
    allowed: bool


@dataclass(slots=True)
class RoleChanged:
    """OpenZeppelin RoleGranted (granted=True) or RoleRevoked (granted=False)."""

    pos: LogPosition
    role: str
    account: str
    sender: str
    granted: bool


# ---- ReturnsEscrow ----------------------------------------------------------


@dataclass(slots=True)
class PolicyPublished:
    pos: LogPosition
    merchant: str
    version: int
    window_days: int
    restocking_fee_bps: int
    fast_refund: bool
    fast_refund_max_value: int
    fast_refund_max_returns_90d: int
    ship_by_days: int
    inspect_by_days: int
    dispute_window_days: int
    document_digest: str
    published_at: int


@dataclass(slots=True)
class SaleRecorded:
    pos: LogPosition
    item_id: str
    merchant: str
    consumer: str
    sale_seq: int
    token: str
    price: int
    policy_version: int
    order_ref: str
    sold_at: int


@dataclass(slots=True)
class ReturnAuthorized:
    pos: LogPosition
    return_id: str
    item_id: str
    consumer: str
    merchant: str
    token: str
    amount: int
    fee_bps: int
    fast_refund: bool
    policy_version: int
    sale_seq: int
    ship_by: int


@dataclass(slots=True)
class ReturnStateChanged:
    pos: LogPosition
    return_id: str
    state: int
    actor: str
    previous: int
    at: int
    deadline: int
    evidence: str


@dataclass(slots=True)
class EscrowSettled:
    pos: LogPosition
    return_id: str
    consumer: str
    merchant: str
    token: str
    consumer_amount: int
    merchant_amount: int


@dataclass(slots=True)
class ReturnUnitMismatch:
    """The unit scanned at receiving or inspection is not the unit sold: the return went to the arbiter."""

    pos: LogPosition
    return_id: str
    sold_item_id: str
    scanned_item_id: str
    scanned_merchant: str
    actor: str
    biz_step: int
    at: int


# ---- ExchangeEscrow ---------------------------------------------------------


@dataclass(slots=True)
class ExchangeTermsPublished:
    pos: LogPosition
    merchant: str
    policy_version: int
    window_days: int
    instant: bool
    instant_max_value: int
    document_digest: str


@dataclass(slots=True)
class ListPriceSet:
    pos: LogPosition
    item_id: str
    merchant: str
    price: int


@dataclass(slots=True)
class ExchangeAuthorized:
    pos: LogPosition
    exchange_id: str
    original_item_id: str
    replacement_item_id: str
    merchant: str
    token: str
    replacement_price: int
    price_difference: int
    """Signed: negative when the replacement is cheaper (the difference is refunded)."""
    collateral: int
    instant: bool


@dataclass(slots=True)
class ExchangeExtraPaymentRecorded:
    pos: LogPosition
    exchange_id: str
    amount: int
    payment_ref: str


@dataclass(slots=True)
class ExchangeReplacementReleased:
    pos: LogPosition
    exchange_id: str
    replacement_item_id: str
    instant: bool


@dataclass(slots=True)
class ExchangeCollateralSettled:
    pos: LogPosition
    exchange_id: str
    merchant: str
    token: str
    amount: int
    original_shipped: bool


# ---- BatchAnchor --------------------------------------------------------------


@dataclass(slots=True)
class BatchAnchored:
    """A batch of scans anchored by its Merkle root; the scans are in the document of digest ``document_digest``
    (core/batch_document.py), which the indexer fetches from the document store."""

    pos: LogPosition
    root: str
    submitter: str
    document_digest: str
    count: int
    anchored_at: int


DecodedEvent = (
    ItemRegistered
    | ItemEventRecorded
    | MerchantOfRecordChanged
    | SellerSet
    | RoleChanged
    | PolicyPublished
    | SaleRecorded
    | ReturnAuthorized
    | ReturnStateChanged
    | EscrowSettled
    | ReturnUnitMismatch
    | ExchangeTermsPublished
    | ListPriceSet
    | ExchangeAuthorized
    | ExchangeExtraPaymentRecorded
    | ExchangeReplacementReleased
    | ExchangeCollateralSettled
    | BatchAnchored
)


# ---- where each event comes from: the one table the decoder is built from ----------------------


@dataclass(frozen=True, slots=True)
class EventSource:
    """One contract event and the dataclass it decodes into.

    Each ABI parameter (a struct's components flattened) fills the dataclass field of its snake_case name
    (``itemId`` -> ``item_id``, ``fastRefundMaxReturns90d`` -> ``fast_refund_max_returns_90d``); the row
    form keeps the dataclass's order, not the ABI's. ``constants`` are fields that say which event it was
    (RoleGranted and RoleRevoked share RoleChanged), ``derived`` fields the decoder computes from the
    others (ItemEventRecorded's eventHash check). Every other field must be an ABI parameter and every
    ABI parameter a field: the decoder refuses to start otherwise.
    """

    contract: str
    event: str
    cls: type[DecodedEvent]
    constants: tuple[tuple[str, object], ...] = ()
    derived: tuple[str, ...] = ()


LEDGER, ESCROW, EXCHANGE, BATCH_ANCHOR = "ProvenanceLedger", "ReturnsEscrow", "ExchangeEscrow", "BatchAnchor"

EVENT_SOURCES: tuple[EventSource, ...] = (
    EventSource(LEDGER, "ItemRegistered", ItemRegistered),
    EventSource(LEDGER, "ItemEventRecorded", ItemEventRecorded, derived=("hash_ok",)),
    EventSource(LEDGER, "MerchantOfRecordChanged", MerchantOfRecordChanged),
    EventSource(LEDGER, "SellerSet", SellerSet),
    EventSource(LEDGER, "RoleGranted", RoleChanged, constants=(("granted", True),)),
    EventSource(LEDGER, "RoleRevoked", RoleChanged, constants=(("granted", False),)),
    EventSource(ESCROW, "PolicyPublished", PolicyPublished),
    EventSource(ESCROW, "SaleRecorded", SaleRecorded),
    EventSource(ESCROW, "ReturnAuthorized", ReturnAuthorized),
    EventSource(ESCROW, "ReturnStateChanged", ReturnStateChanged),
    EventSource(ESCROW, "EscrowSettled", EscrowSettled),
    EventSource(ESCROW, "ReturnUnitMismatch", ReturnUnitMismatch),
    EventSource(EXCHANGE, "ExchangeTermsPublished", ExchangeTermsPublished),
    EventSource(EXCHANGE, "ListPriceSet", ListPriceSet),
    EventSource(EXCHANGE, "ExchangeAuthorized", ExchangeAuthorized),
    EventSource(EXCHANGE, "ExchangeExtraPaymentRecorded", ExchangeExtraPaymentRecorded),
    EventSource(EXCHANGE, "ExchangeReplacementReleased", ExchangeReplacementReleased),
    EventSource(EXCHANGE, "ExchangeCollateralSettled", ExchangeCollateralSettled),
    EventSource(BATCH_ANCHOR, "BatchAnchored", BatchAnchored),
)
"""The contract events the indexer decodes, each with its dataclass: adding an event or a field is a change in
the contract, this module and the code that uses it."""
