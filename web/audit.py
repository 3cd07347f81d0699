"""The auditor explorer (``/audit``): sign in with an auditor (or admin) API key, find an item by its EPC URI,
GS1 Digital Link, barcode text (element string) or id (a return's label code finds its item), and read its
whole indexed history verified against the chain.

The item page shows each event with its proof (block number and hash, transaction, log index, prevHash and
eventHash, so the hash chain can be followed by eye), each batched scan with its batch's anchor and its Merkle
proof, the verdict with every finding, each failing event
highlighted where it sits in the timeline, documents opened by CID (the public ``/v1/documents/{cid}``), the
exports of ``GET /v1/items/{id}/history`` (CSV, EPCIS 2.0 JSON-LD; the same domain code, in-process), and the
``ledger-verify`` command line that checks the item against the chain alone, without this service.

The session is the :class:`~web.console.KeyConsole` one, with its own cookie scoped to ``/audit``.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from api.deps import services_of
from api.routers.scans import anchor_public
from ledger_service.access import Actor, Role
from ledger_service.chain.artifacts import Deployment
from ledger_service.errors import LedgerError, NotFoundError
from ledger_service.store.batches import (
    WAIT_BEHIND,
    WAIT_DOCUMENT,
    WAIT_SCANS,
    WAIT_UNREAD,
    anchor_page,
    waiting_anchors,
)
from ledger_service.verification import AuditResult, HistoryEvent, Severity, audit_item
from ledger_service.verification.consumer import MAX_CODE_LENGTH, find_item_id
from ledger_service.verification.exports import history_csv, history_epcis
from ledger_service.verification.history import BatchedHistoryScan
from web.console import KeyConsole
from web.i18n import Sentence, Translator
from web.render import PAGE_HEADERS, error_sentence, page, redirect, translator
from web.words import biz_step, disposition

router = APIRouter(prefix="/audit", include_in_schema=False)

CONSOLE = KeyConsole(
    roles=(Role.AUDITOR, Role.ADMIN),
    cookie="rl_auditor",
    path="/audit",
    signin_template="audit/signin.html",
    refusal="this explorer is for auditor and admin keys; this key is a {role} key",
)
CONSOLE.add_routes(router)
_ITEM_ID = re.compile(r"^0x[0-9a-fA-F]{64}$")
RPC_PLACEHOLDER = "$LEDGER_RPC_URL"
BATCH_ANCHOR = "BatchAnchor"


@dataclass(frozen=True)
class EventView:
    """One event of the timeline, with the findings that name it."""

    event: HistoryEvent
    step: str
    disposition: str
    cid: str | None
    problems: tuple[Sentence, ...]
    links_to_previous: bool
    """Its prevHash is the eventHash of the row before it (the first: zero)."""


def _events(result: AuditResult, t: Translator) -> list[EventView]:
    by_seq: dict[int, list[Sentence]] = {}
    for finding in result.verdict.findings:
        if finding.seq is not None and finding.severity is Severity.ERROR:
            by_seq.setdefault(finding.seq, []).append(t.sentence(finding.message))
    views: list[EventView] = []
    previous = "0x" + "00" * 32
    for event in result.history.events:
        cid = event.document_cid
        views.append(
            EventView(
                event=event,
                step=biz_step(event.biz_step),
                disposition=disposition(event.disposition),
                cid=None if cid is None else cid.v0,
                problems=tuple(by_seq.get(event.seq, ())),
                links_to_previous=event.prev_hash == previous,
            )
        )
        previous = event.event_hash
    return views


@dataclass(frozen=True)
class BatchedView:
    """One batched scan with its proof, as the page shows it."""

    scan: BatchedHistoryScan
    step: str
    disposition: str
    cid: str | None
    """The batch document's CIDv0."""


def _batched(result: AuditResult) -> list[BatchedView]:
    views = []
    for scan in result.history.batched:
        cid = scan.document_cid
        views.append(
            BatchedView(
                scan=scan,
                step=biz_step(scan.biz_step),
                disposition=disposition(scan.disposition),
                cid=None if cid is None else cid.v0,
            )
        )
    return views


def rpc_url_to_show(url: str) -> str:
    """The node URL for the command line when it carries nothing secret (no user, password, query or path, where
    hosted nodes put their keys); else the placeholder the auditor fills with their own node."""
    parts = urlsplit(url)
    if parts.username or parts.password or parts.query or parts.fragment or parts.path not in ("", "/"):
        return RPC_PLACEHOLDER
    return url.rstrip("/")


def documents_gateway(public_url: str) -> str:
    """Where ``ledger-verify --gateway`` finds the batch documents: this service's public document endpoint, which
    answers a document by its CID (the verifier checks every byte against the anchored digest, so it need not
    trust the service)."""
    return f"{public_url.rstrip('/')}/v1/documents/{{cid}}"


def verify_command(
    *, rpc_url: str, ledger: str, item: str, from_block: int, batch_anchor: str | None = None, gateway: str = ""
) -> str:
    """The ``ledger-verify`` command line that checks ``item`` against the chain alone; with ``batch_anchor`` its
    batched scans too, every batch document fetched from ``gateway``."""
    node = rpc_url_to_show(rpc_url)
    shown_node = f'"{node}"' if node == RPC_PLACEHOLDER else shlex.quote(node)
    batches = "" if batch_anchor is None else f" --batch-anchor {batch_anchor} --gateway {shlex.quote(gateway)}"
    return (
        f"ledger-verify --rpc-url {shown_node} --ledger {ledger} --from-block {from_block}{batches} {shlex.quote(item)}"
    )


def _batch_anchor(deployment: Deployment, batched: Sequence[BatchedHistoryScan]) -> str | None:
    """The BatchAnchor address the command line names: when the item has batched scans to check."""
    return deployment.address_of(BATCH_ANCHOR) if batched and BATCH_ANCHOR in deployment.contracts else None


def _audited(request: Request, item_id: str) -> AuditResult:
    svc = services_of(request)
    result = audit_item(store=svc.store, chain=svc.chain, documents=svc.documents, item_id=item_id)
    if result is None:
        key = item_id.lower()
        raise NotFoundError(f"no item {key}: neither the index nor the contract knows it")
    return result


def _search_page(
    request: Request, *, actor: Actor, code: str, status: int = 200, error: Sentence | None = None
) -> Response:
    return page(request, "audit/search.html", status=status, actor=actor, code=code, error=error)


@router.get("")
def explorer(request: Request, q: Annotated[str | None, Query(max_length=MAX_CODE_LENGTH)] = None) -> Response:
    """The search form; with ``?q=`` (the form's own submission) the item's page, or the form with the reason."""
    session = CONSOLE.session(request)
    if isinstance(session, Response):
        return session
    actor, _ = session
    code = (q or "").strip()
    if not code:
        return _search_page(request, actor=actor, code="")
    svc = services_of(request)
    try:
        item_id = find_item_id(store=svc.store, chain=svc.chain, code=code)
        if item_id is None:
            shown = code[:80]
            raise NotFoundError(f"no registered item matches {shown}")
    except LedgerError as exc:
        status, sentence = error_sentence(request, exc)
        return _search_page(request, actor=actor, code=code, status=status, error=sentence)
    return redirect(f"/audit/items/{item_id}")


@router.get("/items/{item_id}")
def item_page(request: Request, item_id: str) -> Response:
    """The item's verified history: the verdict, the timeline with each event's proof, exports, the command."""
    session = CONSOLE.session(request)
    if isinstance(session, Response):
        return session
    actor, _ = session
    if not _ITEM_ID.match(item_id):
        return page(request, "not_found.html", status=404)
    t = translator(request)
    svc = services_of(request)
    try:
        result = _audited(request, item_id)
    except LedgerError as exc:
        status, sentence = error_sentence(request, exc)
        return _search_page(request, actor=actor, code=item_id, status=status, error=sentence)
    verdict = result.verdict
    history = result.history
    deployment = svc.chain.deployment
    events = _events(result, t)
    findings = [
        {"sentence": t.sentence(f.message), "error": f.severity is Severity.ERROR, "seq": f.seq, "cid": f.cid}
        for f in verdict.findings
    ]
    return page(
        request,
        "audit/item.html",
        actor=actor,
        history=history,
        verdict=verdict,
        events=events,
        batched=_batched(result),
        findings=findings,
        present={e.seq for e in history.events},
        failing=sum(1 for e in events if e.problems),
        command=verify_command(
            rpc_url=str(svc.settings.rpc_url),
            ledger=deployment.address_of("ProvenanceLedger"),
            item=history.uri or history.item_id,
            from_block=deployment.deploy_block,
            batch_anchor=_batch_anchor(deployment, history.batched),
            gateway=documents_gateway(svc.settings.public_base_url),
        ),
        placeholder=RPC_PLACEHOLDER,
        waiting=waiting_anchors(svc.store),
        export_base=f"/audit/items/{history.item_id}/history",
    )


@router.get("/items/{item_id}/history.{fmt}")
def export(request: Request, item_id: str, fmt: str) -> Response:
    """The history as ``GET /v1/items/{id}/history`` exports it: CSV or an EPCIS 2.0 JSON-LD document."""
    session = CONSOLE.session(request)
    if isinstance(session, Response):
        return session
    if fmt not in ("csv", "jsonld") or not _ITEM_ID.match(item_id):
        return page(request, "not_found.html", status=404)
    try:
        result = _audited(request, item_id)
    except LedgerError as exc:
        status, sentence = error_sentence(request, exc)
        return _search_page(request, actor=session[0], code=item_id, status=status, error=sentence)
    name = f"item-{result.history.item_id[2:18]}-history.{fmt}"
    headers = {**PAGE_HEADERS, "Content-Disposition": f'attachment; filename="{quote(name)}"'}
    if fmt == "csv":
        return Response(
            history_csv(result.history, result.verdict), media_type="text/csv; charset=utf-8", headers=headers
        )
    document = history_epcis(result.history, result.verdict, created_at=int(time.time()))
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return Response(body, media_type="application/ld+json", headers=headers)


ANCHORS_PER_PAGE = 50
ANCHOR_STATES = {"pending_document": "Waiting for its document", "applied": "Applied", "refused": "Refused"}
WAITING_REASONS = {
    WAIT_DOCUMENT: "Its batch document could not be had yet; the indexer keeps trying.",
    WAIT_SCANS: "Its scans continue scans no applied batch has brought yet (an earlier batch re-anchored after a "
    "reorg): it is held until that batch is applied.",
    WAIT_BEHIND: "An earlier anchor is waiting for its document: anchors are settled in the chain's order.",
    WAIT_UNREAD: "The indexer has not read its document yet.",
}


@router.get("/anchors")
def anchors_page(request: Request, page_number: Annotated[int, Query(alias="page", ge=1, le=10_000)] = 1) -> Response:
    """The batch anchors of the index, those waiting for their document first with why (``GET /v1/scans/anchors``)."""
    session = CONSOLE.session(request)
    if isinstance(session, Response):
        return session
    actor, _ = session
    store = services_of(request).store
    found = anchor_page(store, limit=ANCHORS_PER_PAGE, offset=(page_number - 1) * ANCHORS_PER_PAGE)
    shown = [{**anchor_public(a).model_dump(), "anchored_at_s": a.row.anchored_at} for a in found.anchors]
    return page(
        request,
        "audit/anchors.html",
        actor=actor,
        anchors=shown,
        count=found.count,
        waiting=waiting_anchors(store),
        states=ANCHOR_STATES,
        reasons=WAITING_REASONS,
        more=page_number * ANCHORS_PER_PAGE < found.count,
        next_page=page_number + 1,
    )
