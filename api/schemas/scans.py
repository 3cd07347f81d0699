"""Batched observation scans: a carrier's or manufacturer's scans in, a receipt per scan out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StrictInt, StringConstraints

from api.schemas.common import Location, RequestModel

Hash32 = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{64}$")]
GS1Uri = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[\x21-\x7e]+$")]


class ScanCreate(RequestModel):
    """One observation scan (a batchable bizStep and disposition: docs/batching.md)."""

    item: GS1Uri = Field(description="the item's GS1 URI, e.g. urn:epc:id:sgtin:0614141.107346.2017")
    biz_step: Literal["packing", "shipping", "receiving", "departing", "arriving", "transporting", "stocking"]
    disposition: Literal["in_progress", "in_transit", "sellable_accessible", "sellable_not_accessible"]
    read_point: Location
    time: StrictInt | None = Field(
        default=None, ge=0, description="unix seconds on the scanner's clock (default: when it is received)"
    )
    document: Hash32 | None = Field(default=None, description="sha2-256 digest of a related document")
    biz_transaction: Hash32 | None = Field(default=None, description="a business transaction's id (32 bytes)")


class ScansCreate(RequestModel):
    """Scans to batch, all accepted or none."""

    scans: list[ScanCreate] = Field(min_length=1, description="at most LEDGER_SCANS_MAX_PER_REQUEST scans")


class ScanReceiptPublic(BaseModel):
    """Where an acknowledged scan went."""

    scan_id: str = Field(description="`<batch>-<position>`")
    batch_id: int = Field(description="the batch it will be anchored in (GET /v1/scans/batches/{batch_id})")
    position: int = Field(description="its place in the batch: the index of its event in the batch document")


class ScanReceiptsPublic(BaseModel):
    data: list[ScanReceiptPublic]
    count: int


class ScanBatchPublic(BaseModel):
    """A batch and how far it is on its way to the chain."""

    batch_id: int
    state: Literal["open", "full", "sealed", "anchored", "final", "failed"] = Field(
        description="`failed`: the contract refused its anchor for good; its scans are not anchored (see problem)"
    )
    submitter: str
    scan_count: int
    root: str | None = Field(description="its Merkle root, once sealed")
    document_cid: str | None = Field(description="its batch document, once sealed")
    tx_hash: str | None = Field(description="the anchor transaction, once anchored")
    anchor_block: int | None
    attempts: int = Field(description="anchor sends that failed so far (refused by the contract, or the node failed)")
    problem: str | None = Field(
        description="why the last anchor send failed, or, for a failed batch, why it was given up on"
    )


class ScanProofPublic(BaseModel):
    """One batched scan and its Merkle proof: with the anchor (``BatchAnchored``: root, submitter) anyone can check
    it, e.g. ``StandardMerkleTree.verify(root, encoding, values, proof)`` or ``BatchAnchor.verifyScan``."""

    batch_id: int
    position: int = Field(description="the scan's place in the batch document (its leaf index)")
    state: Literal["sealed", "anchored", "final"]
    submitter: str
    root: str
    document_cid: str
    tx_hash: str | None = Field(description="the anchor transaction (null until anchored, or found anchored)")
    anchor_block: int | None
    encoding: list[str] = Field(description="the leaf's ABI types, in order")
    values: list[str] = Field(description="the leaf's values (hex for bytes32 and address, decimal for integers)")
    leaf: str
    proof: list[str]
    scan: dict[str, str | int] = Field(description="the scan as the batch document lists it")


AnchorState = Literal["pending_document", "applied", "refused"]
AnchorWaiting = Literal["document_unavailable", "earlier_scans_not_applied", "behind_earlier_anchor", "not_read_yet"]


class AnchorPublic(BaseModel):
    """A ``BatchAnchored`` event as the index holds it, and what the indexer made of its batch document."""

    anchor_id: str = Field(description="`<block>-<log index>` of the BatchAnchored event: the batch id of its scans")
    block_number: int
    log_index: int
    tx_hash: str = Field(description="the anchor transaction")
    submitter: str = Field(description="the account that anchored it (and signed for every scan under its root)")
    root: str = Field(description="the anchored Merkle root")
    count: int = Field(description="scans the anchor announces")
    document_cid: str = Field(description="the batch document's CIDv0 (its digest is anchored)")
    anchored_at: datetime = Field(description="the anchor block's time (UTC)")
    state: AnchorState = Field(
        description="`pending_document`: the indexer does not have the document yet, so nobody can tell which items "
        "its scans are of; `applied`: its scans are in the items' histories; `refused`: none of them is (see problem)"
    )
    waiting: AnchorWaiting | None = Field(
        description="why a pending anchor waits: its own document could not be had (`problem` says why); its scans "
        "continue scans no applied batch has brought yet, so it is held until an earlier batch (re-anchored after a "
        "reorg) is applied (`problem` names them); an earlier anchor waits for its document (the indexer settles "
        "anchors in the chain's order and stops there); or not tried yet; null otherwise"
    )
    waiting_since: datetime | None = Field(
        description="a pending anchor waits since its block's time (UTC); null once settled"
    )
    problem: str | None = Field(description="why the document is not available yet, or why the batch was refused")
    attempts: int = Field(description="document fetches tried")


class AnchorListPublic(BaseModel):
    data: list[AnchorPublic]
    count: int = Field(description="matches overall (the page has at most `limit`)")
