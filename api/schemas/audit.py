"""An item's full history for auditors, with the verdict of its verification against the chain."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class FindingPublic(BaseModel):
    """One thing the verification found, naming the event (seq) or document (CID) it is about."""

    kind: str = Field(
        description="event-missing, event-not-on-chain, event-altered, event-reordered, event-duplicated, "
        "hash-chain-broken, head-mismatch, count-mismatch, block-not-canonical, block-unchecked, document-corrupt, "
        "document-missing",
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
    verification: VerificationPublic
