"""Batched scans: carriers and manufacturers send observation scans; ledger-batcher anchors them in batches."""

from __future__ import annotations

import json
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.responses import JSONResponse

from api.deps import IdempotencyDep, Services, ServicesDep, require_role, services_of
from api.idempotency import Encoded
from api.problems import problem_responses
from api.routers._present import csv_download
from api.schemas.common import DIGITS_ONLY, Address, at, utc
from api.schemas.scans import (
    AnchorListPublic,
    AnchorPublic,
    AnchorState,
    ScanBatchPublic,
    ScanProofPublic,
    ScanReceiptsPublic,
    ScansCreate,
)
from ledger_service.access import Actor, Role
from ledger_service.capture.scans import accept_scans, scan_proof
from ledger_service.core.batch_document import LEAF_ENCODING
from ledger_service.core.spreadsheet import csv_table
from ledger_service.documents.cid import Cid
from ledger_service.errors import ConflictError, InvalidRequestError, NotFoundError, PermissionDeniedError
from ledger_service.metrics.http import SCANS_QUEUED
from ledger_service.store.batches import ListedAnchor, anchor_at, anchor_page
from ledger_service.store.scan_queue import BATCH_FAILED, BatchRow, batch_by_id

router = APIRouter(prefix="/scans", tags=["scans"])

ScannerDep = Annotated[Actor, Depends(require_role(Role.CARRIER, Role.MANUFACTURER))]
_SUBMITTERS = (Role.CARRIER, Role.MANUFACTURER, Role.MERCHANT)
"""The roles whose accounts may anchor batches (the contract's scanning roles): they read their own anchors."""
AnchorReaderDep = Annotated[Actor, Depends(require_role(Role.AUDITOR, Role.ADMIN, *_SUBMITTERS))]


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
        max_age_s=svc.settings.batch_scan_max_age_s,
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


# ---- the anchors the index holds ------------------------------------------------------------------------


def anchor_public(listed: ListedAnchor) -> AnchorPublic:
    """An anchor of the index as the API shows it (also the auditor explorer's rows)."""
    row = listed.row
    pending = listed.waiting is not None
    return AnchorPublic(
        anchor_id=f"{row.block_number}-{row.log_index}",
        block_number=row.block_number,
        log_index=row.log_index,
        tx_hash=row.tx_hash,
        submitter=row.submitter,
        root=row.root,
        count=row.count,
        document_cid=Cid.from_digest(row.document_digest).v0,
        anchored_at=at(row.anchored_at),
        state=row.state,  # type: ignore[arg-type]
        waiting=listed.waiting,  # type: ignore[arg-type]
        waiting_since=utc(row.anchored_at) if pending else None,
        problem=row.problem,
        attempts=row.attempts,
    )


def _own_submitter(actor: Actor, submitter: str | None) -> str | None:
    """The submitter a request may list: a scanning role's key its own account's anchors only."""
    if actor.role not in _SUBMITTERS:
        return None if submitter is None else submitter.lower()
    mine = actor.address or ""
    if submitter is not None and submitter.lower() != mine:
        raise PermissionDeniedError(
            f"a {actor.role.value} key reads only its own account's anchors ({mine}); drop ?submitter= or use an "
            "auditor's key"
        )
    return mine


@router.get(
    "/anchors",
    response_model=AnchorListPublic,
    responses={
        200: {
            "description": 'The anchors: JSON ``{"data": [...], "count": n}``, or CSV with ``?format=csv``',
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **problem_responses(403, 422),
    },
    summary="The batch anchors the index holds: those waiting for their document first, with why they wait",
)
def list_anchors(
    actor: AnchorReaderDep,
    svc: ServicesDep,
    state: Annotated[list[AnchorState] | None, Query(description="any of these states")] = None,
    submitter: Annotated[Address | None, Query(description="only this account's anchors")] = None,
    limit: Annotated[int, Query(ge=1, le=200), DIGITS_ONLY] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000), DIGITS_ONLY] = 0,
    fmt: Annotated[Literal["json", "csv"], Query(alias="format", description="json, or csv for the table")] = "json",
) -> Response:
    """Every `BatchAnchored` event the indexer has seen (auditors and admins; a carrier's, manufacturer's or
    merchant's key: its own account's): block, transaction, submitter, root, scan count, the batch document's
    CID and what the indexer made of it. Those still waiting for their document come first, in the order the
    indexer settles them (oldest first: a missing document holds back every later anchor), each with why it
    waits and since when; then the settled ones, newest first. While an anchor waits nobody can tell which
    items its scans are of, so item histories may lack them (`GET /v1/items/{id}/history` says how many wait)."""
    found = anchor_page(
        svc.store, states=tuple(state or ()), submitter=_own_submitter(actor, submitter), limit=limit, offset=offset
    )
    data = [anchor_public(a) for a in found.anchors]
    if fmt == "csv":
        rows = [a.model_dump(mode="json") for a in data]
        table = csv_table(rows) if rows else ",".join(AnchorPublic.model_fields) + "\n"
        return csv_download(table, "batch-anchors.csv")
    return JSONResponse(AnchorListPublic(data=data, count=found.count).model_dump(mode="json"))


@router.get(
    "/anchors/{anchor_id}",
    response_model=AnchorPublic,
    responses=problem_responses(403, 404),
    summary="One batch anchor by its id (`<block>-<log index>`), and what the indexer made of its document",
)
def read_anchor(
    anchor_id: Annotated[
        str,
        Path(
            pattern=r"^[0-9]{1,18}-[0-9]{1,9}$",
            description="`<block>-<log index>` of its BatchAnchored event (an item history's `batch_id`)",
        ),
    ],
    actor: AnchorReaderDep,
    svc: ServicesDep,
) -> AnchorPublic:
    """Auditors and admins any anchor; a scanning role's key its own account's (404 for another's)."""
    block, _, index = anchor_id.partition("-")
    found = anchor_at(svc.store, block_number=int(block), log_index=int(index))
    mine = _own_submitter(actor, None)
    if found is None or (mine is not None and found.row.submitter != mine):
        raise NotFoundError(f"no batch anchor {anchor_id} that this key may read: GET /v1/scans/anchors lists them")
    return anchor_public(found)
