"""An item's full history for auditors, with the verdict of its verification against the chain."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class FindingPublic(BaseModel):
    """One thing the verification found, naming the event (seq) or document (CID) it is about."""

    kind: str = Field(
        description="event-missing, event-not-on-chain, event-altered, event-reordered, event-duplicated, "
        "hash-chain-broken, head-mismatch, count-mismatch, block-not-canonical, block-unchecked, document-corrupt, "
        "document-missing, batched-scan-altered, batched-chain-broken, batched-anchor-missing, batched-proof-invalid, "
        "batched-scan-unchecked",
        examples=["event-altered"],
    )
    severity: str = Field(description="error: the history cannot be trusted as shown; warning: not checked")
    message: str
    seq: int | None = Field(description="the event it is about (null: the item as a whole)")
    cid: str | None = Field(description="the document it is about (CIDv0)")


class VerificationPublic(BaseModel):
    """The index rows replayed against the contract's stored head and count, the node's canonical blocks and
    the stored documents."""

    intact: bool = Field(description="no finding of severity error")
    errors: int
    warnings: int
    index_count: int = Field(description="events of the item in the index")
    index_head: str | None = Field(description="the hash chain recomputed from the index rows' fields")
    chain_count: int | None = Field(description="the contract's stored count, at the index's block (null: unknown)")
    chain_head: str | None = Field(description="the contract's stored head")
    blocks_checked: int = Field(description="distinct blocks compared with the node's canonical chain")
    documents_checked: int = Field(description="document references re-hashed against their CIDs")
    findings: list[FindingPublic]
    checked_at: datetime


class RegistrationPublic(BaseModel):
    """The item's registration on-chain."""

    uri: str = Field(description="the GS1 URI (EPC URN or Digital Link) whose keccak256 is the item id")
    gtin: int
    manufacturer: str
    merchant: str = Field(description="the merchant of record at registration")
    metadata_digest: str
    block_number: int
    tx_hash: str


class HistoryEventPublic(BaseModel):
    """One event of the item's hash chain, as indexed."""

    seq: int
    biz_step: str | None = Field(description="CBV 2.0 business step (null: a code outside the table)")
    biz_step_code: int
    disposition: str | None = Field(description="CBV 2.0 disposition (null: a code outside the table)")
    disposition_code: int
    actor: str
    actor_roles: list[str] = Field(description="the roles the actor held when the event was recorded")
    event_time: datetime
    timestamp: int = Field(description="unix seconds, as hashed")
    read_point: str | None = Field(description="SGLN company.location.extension (null: none)")
    location: str = Field(description="the read point as the chain's bytes32")
    document: str | None = Field(description="the document digest on-chain (null: none)")
    document_cid: str | None = Field(description="the document's CIDv0 (Qm...)")
    document_cid_v1: str | None = Field(description="the document's CIDv1 (bafy...)")
    biz_transaction: str | None
    biz_transaction_type: str | None = Field(description="rma (a return of the item) or po (a sale order)")
    prev_hash: str
    event_hash: str
    tx_hash: str
    tx_index: int
    block_number: int
    block_hash: str | None = Field(description="null: indexed before block hashes were kept")
    log_index: int


class HistoryBatchedScanPublic(BaseModel):
    """One batched scan of the item (docs/batching.md), with its batch's anchor and its Merkle proof: anyone can
    check it with `StandardMerkleTree.verify(root, encoding, values, proof)` and the `BatchAnchored` event
    (root and submitter) of `anchor_tx`, or on-chain with `BatchAnchor.verifyScan`."""

    seq: int = Field(description="its place in the item's chain of batched scans (apart from the events' seq)")
    biz_step: str | None
    disposition: str | None
    read_point: str = Field(description="SGLN company.location.extension")
    event_time: datetime
    time: int = Field(description="the scanner's clock, unix seconds, as hashed")
    document: str | None
    biz_transaction: str | None
    submitter: str = Field(description="the account that anchored the batch, accountable for the scan")
    prev_hash: str = Field(description="the leaf of the item's batched scan before (zero for the first)")
    batch_id: str = Field(description="`<block>-<log index>` of the batch's BatchAnchored event")
    leaf_index: int = Field(description="its place in the batch document's events")
    root: str | None = Field(description="the anchored Merkle root (null: the index lacks the anchor)")
    anchor_tx: str | None = Field(description="the BatchAnchored transaction")
    anchor_block: int
    anchor_log_index: int
    batch_document_cid: str | None = Field(description="the batch document's CIDv0, as anchored")
    encoding: list[str] = Field(description="the leaf's ABI types, in order")
    values: list[str] | None = Field(
        description="the leaf's values in StandardMerkleTree form (null when the item's URI is not indexed)"
    )
    leaf: str
    proof: list[str] = Field(description="sibling hashes from the leaf to the root (OpenZeppelin MerkleProof)")


class HistoryExchangePublic(BaseModel):
    """An exchange naming the item, as its original or its replacement (ExchangeEscrow)."""

    exchange_id: str = Field(description="the id of the original's return")
    role: Literal["original", "replacement"]
    original_item_id: str
    replacement_item_id: str
    merchant: str
    token: str
    replacement_price: str = Field(description="token base units, decimal")
    price_difference: str = Field(description="replacement price - sale price; negative: refunded")
    instant: bool
    extra_paid: bool
    released: bool
    collateral_settled: bool
    block_number: int
    tx_hash: str


class HistoryUnitMismatchPublic(BaseModel):
    """A return whose received or inspected unit was not the unit sold, naming the item as either."""

    return_id: str
    role: Literal["sold", "scanned"]
    sold_item_id: str
    scanned_item_id: str
    scanned_on_ledger: bool
    biz_step: str | None
    at: datetime
    block_number: int
    tx_hash: str


class AnchorsWaitingPublic(BaseModel):
    """Batch anchors whose document the index does not have yet: their scans may be of any item."""

    count: int = Field(description="anchors waiting for their document (0: the batched history is complete)")
    since: datetime | None = Field(description="the block time of the oldest of them (UTC)")
    note: str | None = Field(description="what it means for this history, when some wait")


class ItemHistoryPublic(BaseModel):
    """Every indexed event of an item, and whether they are the chain's."""

    item_id: str
    uri: str | None
    epc: str = Field(description="the item's identifier in the EPCIS export")
    merchant: str | None = Field(description="the current merchant of record")
    destroyed: bool
    registration: RegistrationPublic | None
    indexed_block: int | None = Field(description="the index's checkpoint when the history was read")
    events: list[HistoryEventPublic]
    count: int
    batched_scans: list[HistoryBatchedScanPublic] = Field(
        default_factory=list, description="the item's batched scans, by seq, each with its Merkle proof"
    )
    anchors_waiting: AnchorsWaitingPublic | None = Field(
        default=None,
        description="batch anchors still waiting for their document (GET /v1/scans/anchors): until each is read "
        "nobody can tell which items its scans are of, so `batched_scans` may be incomplete while count > 0",
    )
    exchanges: list[HistoryExchangePublic] = Field(default_factory=list)
    unit_mismatches: list[HistoryUnitMismatchPublic] = Field(default_factory=list)
    verification: VerificationPublic
