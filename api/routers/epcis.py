"""EPCIS 2.0 over the ledger: the capture interface (jobs) and the query interface of GS1's REST binding.

Capture: ``POST /v1/epcis/capture`` takes an ``EPCISDocument`` with an API key of a writing role (its
account signs). The document is read at once (a body that is not JSON: 400; GS1's schema or our stateless
rules refused: 422, every problem with its JSON pointer); a readable document is answered ``202 Accepted``
with ``Location: /v1/epcis/capture/{captureID}``, and the job runs in a worker thread of this process
(:mod:`ledger_service.capture.jobs`). ``GET`` on that URL gives its state. The body limit is
``LEDGER_EPCIS_CAPTURE_MAX_BYTES``, checked by the request gate before the body is read.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from api._reverts import explain
from api.deps import ActorDep, Services, ServicesDep
from api.limits import BODY_LIMIT_EXTENSION
from api.problems import problem_responses
from api.schemas.common import at, utc
from api.schemas.epcis import CaptureErrorPublic, CaptureJobPublic, CaptureState
from ledger_service.access import Actor, Role
from ledger_service.capture.jobs import CaptureContext, open_job, run_job
from ledger_service.epcis.document import EpcisEvent, parse_json, read_document
from ledger_service.errors import NotFoundError, PermissionDeniedError
from ledger_service.store import capture_jobs
from ledger_service.store.capture_jobs import CaptureJobRow

router = APIRouter(prefix="/epcis", tags=["epcis"])

LD_JSON = "application/ld+json"
CAPTURE_WORKERS = 2
"""Capture jobs run at once in one API process (each account's captures run one at a time anyway)."""
_executor = ThreadPoolExecutor(max_workers=CAPTURE_WORKERS, thread_name_prefix="epcis-capture")

CapturePath = Annotated[
    str, Path(pattern=r"^cap_[0-9a-f]{32}$", description="the capture job's id (cap_ + 32 hex digits)")
]
_DOCUMENT_SCHEMA = {
    "type": "object",
    "description": "an EPCIS 2.0 EPCISDocument (JSON-LD), as GS1's EPCIS 2.0 JSON Schema defines it",
}
_CAPTURE_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {LD_JSON: {"schema": _DOCUMENT_SCHEMA}, "application/json": {"schema": _DOCUMENT_SCHEMA}},
    },
    BODY_LIMIT_EXTENSION: "epcis_capture_max_bytes",
}


def _writer(actor: Actor) -> str:
    if actor.address is None or not actor.role.writes:
        raise PermissionDeniedError(
            f"capture records events on-chain as the key's account; this {actor.role.value} key acts for none: "
            "use the key of a manufacturer's, merchant's, carrier's or inspector's account"
        )
    return actor.address


def _job_public(row: CaptureJobRow) -> CaptureJobPublic:
    return CaptureJobPublic.model_validate(
        {
            "captureID": row.capture_id,
            "state": CaptureState(row.state),
            "eventCount": row.event_count,
            "captured": row.captured,
            "duplicates": row.duplicates,
            "errors": [CaptureErrorPublic(**e) for e in row.errors],
            "createdAt": at(row.created_at),
            "finishedAt": utc(row.finished_at),
            "eventsUrl": f"/v1/epcis/events?captureID={row.capture_id}",
        }
    )


def _context(svc: Services) -> CaptureContext:
    chain = svc.chain
    return CaptureContext(
        store=svc.store,
        chain=chain,
        documents=svc.documents,
        explain=lambda exc: explain(exc, chain=chain)[1],
        max_events=svc.settings.epcis_capture_max_events,
        index_wait_s=svc.settings.wait_timeout_s,
    )


@router.post(
    "/capture",
    status_code=202,
    response_model=CaptureJobPublic,
    responses=problem_responses(400, 403, 422),
    summary="Capture an EPCIS 2.0 document: validated whole, then recorded on-chain (writing roles)",
    openapi_extra=_CAPTURE_OPENAPI,
)
async def capture(request: Request, actor: ActorDep, svc: ServicesDep) -> Response:
    """Answers 202 with the job (and its URL in `Location`) once the document passed GS1's schema and the
    rules that need no state; the roles, each item's order and a dry run of every transaction are checked
    by the job before the first transaction is sent. A document is captured whole or not at all; an event
    whose CBV event hash ID was captured before is not recorded again, so sending a document twice is safe."""
    account = _writer(actor)
    raw = await request.body()

    def read() -> tuple[Any, list[EpcisEvent]]:
        document = parse_json(raw)
        return document, read_document(document)

    document, events = await anyio.to_thread.run_sync(read)
    capture_id = await anyio.to_thread.run_sync(
        lambda: open_job(svc.store, key_id=actor.key_id, actor=account, raw=raw)
    )
    _executor.submit(run_job, _context(svc), capture_id=capture_id, actor=account, document=document, events=events)
    row = capture_jobs.job(svc.store, capture_id)
    assert row is not None
    location = f"/v1/epcis/capture/{capture_id}"
    body = _job_public(row).model_dump_json(by_alias=True)
    return Response(content=body, status_code=202, media_type="application/json", headers={"Location": location})


@router.get(
    "/capture/{capture_id}",
    response_model=CaptureJobPublic,
    responses=problem_responses(404),
    summary="A capture job's state, counts and refused events",
)
def capture_job(capture_id: CapturePath, actor: ActorDep, svc: ServicesDep) -> Response:
    """The job of one of the key's account captures (auditors and admins: any job)."""
    row = capture_jobs.job(svc.store, capture_id)
    mine = row is not None and (
        actor.role in (Role.AUDITOR, Role.ADMIN) or (actor.address is not None and row.actor == actor.address)
    )
    if row is None or not mine:
        raise NotFoundError(f"no capture job {capture_id} for this key")
    return Response(content=_job_public(row).model_dump_json(by_alias=True), media_type="application/json")
