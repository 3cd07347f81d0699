"""Auditors: an item's whole indexed history, verified against the chain, as JSON, CSV or EPCIS 2.0.

Who may read it: auditor and admin keys (any item), a merchant key for the
items whose merchant of record it is, and the consumer of the item's current
sale with its return token. Another merchant or a consumer of another item gets
a 404 (the item's existence is not disclosed); carrier, inspector and arbiter
keys a 403; no credentials a 401.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from api.deps import PrincipalDep, ServicesDep
from api.problems import problem_responses
from api.routers._present import ItemPath
from api.schemas.audit import AnchorsWaitingPublic, ItemHistoryPublic
from api.schemas.common import utc
from ledger_service.access import Actor, Consumer, Role
from ledger_service.errors import NotFoundError, PermissionDeniedError
from ledger_service.store import items, sales
from ledger_service.store.batches import Waiting, waiting_anchors
from ledger_service.verification import audit_item
from ledger_service.verification.exports import history_csv, history_epcis, history_json

router = APIRouter(prefix="/items", tags=["audit"])

Format = Literal["json", "csv", "epcis"]
CSV_TYPE = "text/csv"
EPCIS_TYPE = "application/ld+json"
JSON_TYPE = "application/json"
_BY_MEDIA_TYPE: dict[str, Format] = {
    JSON_TYPE: "json",
    "application/*": "json",
    "*/*": "json",
    CSV_TYPE: "csv",
    "text/*": "csv",
    EPCIS_TYPE: "epcis",
}
_READERS = (Role.AUDITOR, Role.ADMIN, Role.MERCHANT)
WAITING_HEADER = "Ledger-Anchors-Waiting"
"""On every history answer: how many batch anchors wait for their document (their scans may be of the item)."""


def waiting_note(waiting: Waiting) -> str | None:
    """What anchors still waiting for their document mean for any item's history (None when none waits)."""
    if not waiting.count:
        return None
    return (
        f"{waiting.count} batch anchor(s) are waiting for their documents: until each is read nobody can tell which "
        "items its scans are of, so this history may lack batched scans (GET /v1/scans/anchors lists them)"
    )


def _negotiate(fmt: Format | None, accept: str | None) -> Format:
    """``?format=`` wins; else the first media type of ``Accept`` (by q-value) that we serve; else JSON."""
    if fmt is not None:
        return fmt
    if not accept or not accept.strip():
        return "json"
    offered: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media and quality > 0:
            offered.append((-quality, position, media.lower()))
    for _, _, media in sorted(offered):
        found = _BY_MEDIA_TYPE.get(media)
        if found is not None:
            return found
    raise StarletteHTTPException(
        406,
        f"the history is served as {JSON_TYPE}, {CSV_TYPE} or {EPCIS_TYPE} (EPCIS 2.0 JSON-LD); the Accept header "
        f"asks for none of them ({accept[:200]}); or ask with ?format=json|csv|epcis",
    )


def _check_access(principal: Actor | Consumer, svc: ServicesDep, item_id: str) -> None:
    """Raises unless ``principal`` may read the item's history (see the module docstring)."""
    key = item_id.lower()
    if isinstance(principal, Actor):
        if principal.role not in _READERS:
            raise PermissionDeniedError(
                f"item histories are for auditors, admins, the item's merchant and its consumer; this is a "
                f"{principal.role.value} key"
            )
        if principal.role is Role.MERCHANT:
            item = items.item(svc.store, key)
            if item is None or item.merchant != principal.address:
                raise NotFoundError(f"no item {key} of this merchant")
        return
    sale = sales.current_sale(svc.store, key)
    if principal.item_id != key or sale is None or sale.consumer != principal.address:
        raise NotFoundError(f"no item {key} for this return token")


@router.get(
    "/{item_id}/history",
    response_model=ItemHistoryPublic,
    responses={
        200: {
            "description": "The history: JSON (default), CSV (`?format=csv` or `Accept: text/csv`), or an EPCIS 2.0 "
            "JSON-LD document (`?format=epcis` or `Accept: application/ld+json`)",
            "content": {
                CSV_TYPE: {"schema": {"type": "string"}},
                EPCIS_TYPE: {"schema": {"type": "object"}},
            },
        },
        **problem_responses(404, 406, 503),
    },
    summary="An item's every event with its chain data, and the verdict of checking it against the chain",
)
def history(
    item_id: ItemPath,
    principal: PrincipalDep,
    svc: ServicesDep,
    fmt: Annotated[
        Format | None,
        Query(alias="format", description="json, csv or epcis (EPCIS 2.0 JSON-LD); overrides Accept"),
    ] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """Each event with bizStep, disposition, actor and role, time, document CID, prevHash, eventHash,
    transaction, block number and hash, log index; and the verdict: the hash chain recomputed from the index
    rows against the contract's stored head and count, each block hash against the node's canonical chain,
    each stored document against its CID. Every finding names the event (seq) or document (CID) at fault.
    `anchors_waiting` (and the `Ledger-Anchors-Waiting` header, in every format) counts the batch anchors whose
    document the index does not have yet: their scans may be of this item, so while it is not 0 the batched
    scans listed may be incomplete."""
    wanted = _negotiate(fmt, accept)
    _check_access(principal, svc, item_id)
    result = audit_item(store=svc.store, chain=svc.chain, documents=svc.documents, item_id=item_id)
    if result is None:
        raise NotFoundError(f"no item {item_id.lower()}: neither the index nor the contract knows it")
    now = int(time.time())
    name = f"item-{result.history.item_id[2:18]}-history"
    waiting = waiting_anchors(svc.store)
    waits = {WAITING_HEADER: str(waiting.count)}
    if wanted == "csv":
        return Response(
            content=history_csv(result.history, result.verdict),
            media_type=f"{CSV_TYPE}; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"', **waits},
        )
    if wanted == "epcis":
        document = history_epcis(result.history, result.verdict, created_at=now)
        return Response(
            content=json.dumps(document, ensure_ascii=False, separators=(",", ":")),
            media_type=EPCIS_TYPE,
            headers={"Content-Disposition": f'inline; filename="{name}.jsonld"', **waits},
        )
    body = ItemHistoryPublic.model_validate(history_json(result.history, result.verdict, checked_at=now))
    body.anchors_waiting = AnchorsWaitingPublic(
        count=waiting.count, since=utc(waiting.since), note=waiting_note(waiting)
    )
    return Response(content=body.model_dump_json(), media_type=JSON_TYPE, headers=waits)
