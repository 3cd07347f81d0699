"""Batched scans: carriers and manufacturers send observation scans; ledger-batcher anchors them in batches."""

from __future__ import annotations

import json
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from api.deps import IdempotencyDep, Services, ServicesDep, require_role, services_of
from api.idempotency import Encoded
from api.problems import problem_responses
from api.schemas.scans import ScanBatchPublic, ScanProofPublic, ScanReceiptsPublic, ScansCreate
from ledger_service.access import Actor, Role
from ledger_service.capture.scans import accept_scans, scan_proof
from ledger_service.core.batch_document import LEAF_ENCODING
from ledger_service.documents.cid import Cid
from ledger_service.errors import ConflictError, InvalidRequestError, NotFoundError
from ledger_service.metrics.http import SCANS_QUEUED
from ledger_service.store.scan_queue import BATCH_FAILED, BatchRow, batch_by_id

router = APIRouter(prefix="/scans", tags=["scans"])

ScannerDep = Annotated[Actor, Depends(require_role(Role.CARRIER, Role.MANUFACTURER))]


@router.post(
    "",
    status_code=202,
    response_model=ScanReceiptsPublic,
    responses=problem_responses(409, 422, 503),
    summary="Send observation scans to be anchored in a batch",
)
def create(body: ScansCreate, actor: ScannerDep, request: Request, idem: IdempotencyDep) -> Response:
    """Every scan is checked (a batchable step and disposition, the item registered, your account's on-chain
    role allows the step) and the request is accepted whole or refused whole (422 naming every problem). An
    accepted scan is stored durably before this answers; its receipt names the batch it will be anchored in.
    503: this deployment cannot anchor batches for your account (no BatchAnchor, or no signing key). Send an
    `Idempotency-Key` to retry safely: a retry with the same key and body gets the same receipts and queues
    nothing again; the same key with another body is a 422."""
    svc = services_of(request)  # not ServicesDep: FastAPI's work per dependency counts on this hot route
    return idem.run(lambda: _accept(body, actor, svc), status_code=202)


def _accept(body: ScansCreate, actor: Actor, svc: Services) -> Encoded:
    limit = svc.settings.scans_max_per_request
    if len(body.scans) > limit:
        raise InvalidRequestError(f"a request carries at most {limit} scans, this one {len(body.scans)}: split it")
    now_ms = time.time_ns() // 1_000_000
    chain = svc.chain
    anchors = chain.batch_anchor is not None and (actor.address or "") in chain.senders
    receipts = accept_scans(
        svc.store,
        actor=actor,
        scans=body.scans,
        max_per_batch=svc.settings.batch_max_scans,
        anchors=anchors,
        now_ms=now_ms,
    )
    SCANS_QUEUED.inc(len(receipts))
    # ScanReceiptsPublic, written directly: the generic encoder walks every field of every receipt
    data = [{"scan_id": f"{r.batch_id}-{r.position}", "batch_id": r.batch_id, "position": r.position} for r in receipts]
    return Encoded(json.dumps({"data": data, "count": len(data)}, separators=(",", ":")))


@router.get(
    "/batches/{batch_id}",
    response_model=ScanBatchPublic,
    responses=problem_responses(404),
    summary="A batch of scans and how far it is on its way to the chain",
)
def batch(batch_id: Annotated[int, Path(ge=1, le=2**62)], actor: ScannerDep, svc: ServicesDep) -> ScanBatchPublic:
    """Your own batches only (404 for another account's)."""
    row = _own_batch(svc, actor, batch_id)
    return ScanBatchPublic(
        batch_id=row.id,
        state=row.state,  # type: ignore[arg-type]
        submitter=row.submitter,
        scan_count=row.scan_count,
        root=row.root,
        document_cid=None if row.document_digest is None else str(Cid.from_digest(row.document_digest)),
        tx_hash=row.tx_hash,
        anchor_block=row.anchor_block,
        attempts=row.attempts,
        problem=row.problem,
    )


BatchId = Annotated[int, Path(ge=1, le=2**62)]


def _own_batch(svc: ServicesDep, actor: Actor, batch_id: int) -> BatchRow:
    row = batch_by_id(svc.store, batch_id)
    if row is None or row.submitter != (actor.address or ""):
        raise NotFoundError(f"no batch {batch_id} of yours: a receipt's batch_id names one")
    return row


@router.get(
    "/batches/{batch_id}/proofs/{position}",
    response_model=ScanProofPublic,
    responses=problem_responses(404, 409),
    summary="A batched scan's Merkle proof against its batch's root",
)
def proof(
    batch_id: BatchId, position: Annotated[int, Path(ge=0, le=65_535)], actor: ScannerDep, svc: ServicesDep
) -> ScanProofPublic:
    """The receipt's `batch_id` and `position` name the scan. 409 while the batch is still open (its root does
    not exist yet: it is sealed at the latest LEDGER_BATCH_SEAL_S after its first scan), and for a batch that
    failed (never anchored: no proof of it could be checked against the chain)."""
    row = _own_batch(svc, actor, batch_id)
    if row.state == BATCH_FAILED:
        raise ConflictError(f"batch {batch_id} failed and was never anchored, so it has no proof: {row.problem}")
    if row.document is None or row.root is None or row.document_digest is None:
        raise ConflictError(f"batch {batch_id} is not sealed yet: its proofs exist once it is (try again shortly)")
    made = scan_proof(row.document, position)
    return ScanProofPublic(
        batch_id=row.id,
        position=position,
        state=row.state,  # type: ignore[arg-type]
        submitter=row.submitter,
        root=made.root,
        document_cid=str(Cid.from_digest(row.document_digest)),
        tx_hash=row.tx_hash,
        anchor_block=row.anchor_block,
        encoding=list(LEAF_ENCODING),
        values=made.values,
        leaf=made.leaf,
        proof=made.proof,
        scan=made.scan,  # type: ignore[arg-type]
    )
