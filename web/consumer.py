"""The consumer's returns portal: open a purchase with its return token, see the item, the policy and whether
it can be returned now (the eligibility reasons in words), request a return (reason, comment, refund
preview), and follow it (the decision, the state, the timeline, the refund with its on-chain proof); cancel,
dispute a failed inspection, claim when the merchant did not inspect in time.

The session is the return token in an HttpOnly cookie (:data:`TOKEN_COOKIE`), set from the order e-mail's
link (``/?token=...``, which redirects at once so the token leaves the address bar and the history) or from
the typed form; every form carries a CSRF token and a form key (:mod:`web.forms`). A bad, revoked or expired
token is the open page with the reason, in the page's language. Reads come from the index; writes go through
the same domain functions as ``POST /v1/returns`` and the consumer's steps.
"""

from __future__ import annotations

import contextlib
import functools
import re
from typing import Any

import anyio
from fastapi import APIRouter, Request
from starlette.datastructures import FormData, UploadFile
from starlette.responses import Response

from api.deps import Services, services_of
from api.freshness import wait_for_block
from api.limits import FORM, MULTIPART
from api.routers.documents import store_upload
from api.routers.notifications import events as return_events
from api.routers.returns import label_response
from ledger_service.access import Consumer, verify_return_token
from ledger_service.core.notifications import EVENT_TYPES, RETURN_CLOSED
from ledger_service.errors import (
    IndexBehindError,
    InvalidRequestError,
    LedgerError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from ledger_service.logistics.shipments import tracked_label
from ledger_service.logistics.tracking import TrackingEntry, return_tracking
from ledger_service.returns import cancel_return, chain_now, claim_uninspected, dispute_return, request_return
from ledger_service.returns.decision import EligibilityCheck, check_eligibility
from ledger_service.returns.label_sheet import Lang
from ledger_service.returns.labels import label_code
from ledger_service.returns.views import ReturnStatus, return_status, state_name
from ledger_service.store import returns as returns_store
from ledger_service.store.handle import Store
from ledger_service.store.notifications import notifications_of_return
from ledger_service.verification.consumer import format_amount
from web.forms import RefusedFormError, csrf_token, form_hash, once, page_form, require_csrf
from web.i18n import Sentence
from web.render import error_sentence, new_form_key, page, redirect, secure, translator
from web.words import CARRIER_STATUSES, PAYOUT_SENTENCE, STATE_SENTENCES, biz_step, disposition, return_state

router = APIRouter(include_in_schema=False)

TOKEN_COOKIE = "rl_token"  # noqa: S105 (the cookie's name, not a secret)
COMMENT_MAX_LENGTH = 2000
MAX_PHOTOS = 3
PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp")
REASONS = ("damaged", "defective", "wrong_item", "wrong_size", "not_as_described", "changed_mind", "other")
"""The reasons offered when the policy does not list its own."""
REASON_NAMES = {
    "damaged": "Arrived damaged",
    "defective": "Does not work",
    "wrong_item": "Wrong item sent",
    "wrong_size": "Wrong size or fit",
    "not_as_described": "Not as described",
    "changed_mind": "Changed my mind",
    "other": "Another reason",
}
_RETURN_OR_REQUEST = re.compile(r"^(0x[0-9a-f]{64}|rr_[0-9a-f]{32})$")
_RETURN_ID = re.compile(r"^0x[0-9a-f]{64}$")
_CID_V0 = re.compile(r"Qm[1-9A-HJ-NP-Za-km-z]{44}")
FINAL_STATES = frozenset(
    {"cancelled", "expired", "accepted", "resolved", "reclaimed", "consumer_claimed", "request_rejected"}
)
POLL_S = 5
RETURN_EVENTS = tuple(t for t in EVENT_TYPES if t.startswith("return."))
"""The event stream's types that can change a return's page (each one makes it fetch its status again)."""
_REQUEST_STATES = {"manual_review": "pending_review", "reject": "request_rejected", "approve": "processing"}
"""What a request without a return shows as its state (as the API's list does)."""


# ---- the session -------------------------------------------------------------------------------------


def _consumer(request: Request) -> tuple[Consumer, str] | None:
    """The session's consumer and token; None without a session; the token's error when it stopped working."""
    token = request.cookies.get(TOKEN_COOKIE)
    if not token:
        return None
    return verify_return_token(store=services_of(request).store, presented=token), token


def _session_or_page(request: Request) -> tuple[Consumer, str] | Response:
    """The session's consumer and token, or the open page saying why there is none (a form posted after the
    token stopped working, or without a session)."""
    try:
        session = _consumer(request)
    except LedgerError as exc:
        status, sentence = error_sentence(request, exc)
        return _open_page(request, status=status, error=sentence)
    if session is None:
        sentence = translator(request).sentence("Open your purchase with its return code first.")
        return _open_page(request, status=401, error=sentence)
    return session


def _with_session(response: Response, request: Request, token: str) -> Response:
    response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="lax", secure=secure(request), path="/")
    return response


def _open_page(request: Request, *, status: int = 200, typed: str = "", error: Sentence | None = None) -> Response:
    response = page(request, "consumer/open.html", status=status, typed=typed, error=error)
    if error is not None and status == 401:
        response.delete_cookie(TOKEN_COOKIE, path="/")
    return response


def _open(request: Request, token: str) -> Response:
    """Checks ``token`` and starts a session with it (the open page with the reason when it does not work)."""
    token = token.strip()
    try:
        verify_return_token(store=services_of(request).store, presented=token)
    except LedgerError as exc:
        status, sentence = error_sentence(request, exc)
        return _open_page(request, status=status, typed=token, error=sentence)
    return _with_session(redirect("/"), request, token)


# ---- the purchase page ----------------------------------------------------------------------------------


def money(svc: Services, token: str | None, amount: int | None) -> str | None:
    if token is None or amount is None:
        return None
    try:
        places = svc.chain.token_decimals(token)
    except Exception:  # not an ERC-20 that answers decimals(): show the integer units
        places = None
    return format_amount(amount, places) or str(amount)


def _purchase_context(request: Request, consumer: Consumer, token: str) -> dict[str, Any]:
    svc = services_of(request)
    t = translator(request)
    check: EligibilityCheck = check_eligibility(
        store=svc.store, item_id=consumer.item_id, requester=consumer.address, reason_code=None
    )
    decision, snap, terms = check.decision, check.snapshot, check.terms
    item = snap.item
    sale = snap.sale if snap.sale is not None and not snap.sale.closed else None
    fee = decision.restocking_fee
    reasons = tuple(sorted(terms.accepted_reasons)) if terms is not None and terms.accepted_reasons else REASONS
    requests, _ = returns_store.list_return_requests(
        svc.store, consumer=consumer.address, item_id=consumer.item_id, limit=20
    )
    return {
        "item": item,
        "sale": sale,
        "terms": terms,
        "document": check.document,
        "category": check.category,
        "eligible": decision.eligible,
        "outcome": decision.outcome.value,
        "reasons": [t.sentence(r.message) for r in decision.reasons],
        "deadline": decision.deadline,
        "refund": money(svc, sale.token if sale else None, decision.refund_amount),
        "fee": money(svc, sale.token if sale else None, fee),
        "refund_after_fee": money(svc, sale.token if sale else None, max(decision.refund_amount - fee, 0)),
        "fast_refund": decision.fast_refund,
        "reason_choices": [(code, REASON_NAMES.get(code)) for code in reasons],
        "requests": [
            {
                "id": r.return_id or r.id,
                "state": return_state(_request_state(svc, r)),
                "at": r.created_at,
                "reason": REASON_NAMES.get(r.reason_code, r.reason_code),
            }
            for r in requests
        ],
        "csrf": csrf_token(token),
        "form_key": new_form_key(),
        "photos_max_bytes": svc.settings.document_max_bytes,
        "photos_max_size": size_text(svc.settings.document_max_bytes),
    }


def _request_state(svc: Services, row: returns_store.ReturnRequestRow) -> str:
    """The state a request is in: its return's, once it has one."""
    if row.return_id is not None:
        found = returns_store.return_by_id(svc.store, row.return_id)
        if found is not None:
            return state_name(found.state)
    return _REQUEST_STATES.get(row.outcome, row.outcome)


def _purchase_page(
    request: Request,
    consumer: Consumer,
    token: str,
    *,
    status: int = 200,
    error: Sentence | None = None,
    typed: dict[str, str] | None = None,
    kept: list[str] | None = None,
) -> Response:
    """The purchase; after a failed request, the form as ``typed`` with the photos already stored (``kept``)."""
    context = _purchase_context(request, consumer, token)
    return page(
        request,
        "consumer/purchase.html",
        status=status,
        error=error,
        typed=typed or {"reason_code": "", "comment": ""},
        kept=kept or [],
        **context,
    )


@router.get("/")
def home(request: Request, token: str | None = None) -> Response:
    """The purchase of the session's token; the open form without one; ``?token=`` (the e-mail's link) starts
    a session and redirects here without it."""
    if token is not None:
        return _open(request, token)
    try:
        session = _consumer(request)
    except LedgerError as exc:
        status, sentence = error_sentence(request, exc)
        return _open_page(request, status=status, error=sentence)
    if session is None:
        return _open_page(request)
    return _purchase_page(request, *session)


@router.post("/open")
async def open_purchase(request: Request) -> Response:
    form = await page_form(request)
    typed = str(form.get("token") or "")
    if not typed.strip():
        sentence = translator(request).sentence("Type the return code from your order e-mail.")
        return _open_page(request, status=422, error=sentence)
    return await _run(_open, request, typed)


@router.post("/signout")
def sign_out() -> Response:
    response = redirect("/")
    response.delete_cookie(TOKEN_COOKIE, path="/")
    return response


async def _run(function: Any, *args: Any) -> Response:
    """A blocking page function in a worker thread (it reads the index, may send a transaction)."""
    result: Response = await anyio.to_thread.run_sync(functools.partial(function, *args))
    return result


def _checked_form(request: Request, form: FormData, token: str) -> str:
    """The form's key, once its CSRF token is checked (:class:`PermissionDeniedError` otherwise)."""
    require_csrf(token, form.get("csrf"))
    return _text(form, "form_key") or ""


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


@router.post("/returns", openapi_extra={"requestBody": {"content": {MULTIPART: {}, FORM: {}}}})
async def create_return(request: Request) -> Response:
    """Requests a return of the session's purchase: the decision at once, on the return's page. A body the
    gate refused (photos too large, a wrong type) is the purchase page with the reason and the form as typed."""
    try:
        form = await page_form(request)
    except RefusedFormError as refused:
        return await _run(_create_return, request, refused.typed, refused.error)
    return await _run(_create_return, request, form, None)


def _photos(form: FormData, *, kept: int) -> list[UploadFile]:
    """The photos chosen (a browser sends one empty part when none is); :class:`InvalidRequestError` past
    :data:`MAX_PHOTOS` with the ``kept`` ones of an earlier try, :class:`UnsupportedMediaTypeError` for a file
    that is not a JPEG, PNG or WebP image."""
    photos = [p for p in form.getlist("photos") if isinstance(p, UploadFile) and (p.filename or p.size)]
    if len(photos) + kept > MAX_PHOTOS:
        raise InvalidRequestError(f"at most {MAX_PHOTOS} photos can be sent with a return request")
    for photo in photos:
        declared = (photo.content_type or "").split(";")[0].strip().lower()
        if declared not in PHOTO_TYPES:
            name = photo.filename or "?"
            raise UnsupportedMediaTypeError(f"photos must be JPEG, PNG or WebP images; {name} is not one")
    return photos


def size_text(size: int) -> str:
    """A size limit as people read it: whole MB, else whole KB (``25 MB``, ``64 KB``)."""
    mib = 1024 * 1024
    return f"{size // mib} MB" if size >= mib else f"{max(size // 1024, 1)} KB"


def _kept_photos(form: FormData) -> list[str]:
    """The photos stored by an earlier try of this form (its ``document`` fields: CIDs), each once; a field
    that is no CID is dropped (the form is ours; a changed one loses only that field)."""
    kept: list[str] = []
    for value in form.getlist("document")[:MAX_PHOTOS]:
        if isinstance(value, str) and _CID_V0.fullmatch(value) and value not in kept:
            kept.append(value)
    return kept


def _create_return(request: Request, form: FormData, refused: LedgerError | None) -> Response:
    typed = {"reason_code": _text(form, "reason_code") or "", "comment": _text(form, "comment") or ""}
    session = _session_or_page(request)
    if isinstance(session, Response):
        return session
    consumer, token = session
    svc = services_of(request)
    stored = _kept_photos(form)  # grows as this try stores photos: kept for the next one if it fails
    try:
        key = _checked_form(request, form, token)
        if isinstance(refused, PayloadTooLargeError):  # the photos made the body too large: say so in words
            size = size_text(svc.settings.document_max_bytes)
            raise PayloadTooLargeError(f"These photos are larger than {size} together; choose fewer or smaller ones.")
        if refused is not None:
            raise refused
        reason = typed["reason_code"].strip()
        comment = typed["comment"].strip() or None
        if not reason:
            raise InvalidRequestError("Please give a reason for the return.")
        if comment is not None and len(comment) > COMMENT_MAX_LENGTH:
            raise InvalidRequestError(f"the comment is longer than {COMMENT_MAX_LENGTH} characters; shorten it")
        photos = _photos(form, kept=len(stored))

        def produce() -> str:
            for photo in photos:
                uploaded = store_upload(
                    file=photo,
                    principal=consumer.principal,
                    documents=svc.documents,
                    settings=svc.settings,
                    store=svc.store,
                )
                if uploaded.cid.v0 not in stored:
                    stored.append(uploaded.cid.v0)
            result = request_return(
                store=svc.store,
                chain=svc.chain,
                consumer=consumer.address,
                item_id=consumer.item_id,
                reason_code=reason,
                comment=comment,
                document_cids=stored,
                documents=svc.documents,
            )
            if result.tx is not None:
                wait_indexed(svc, result.tx.block_number)
            return f"/returns/{result.request.return_id or result.request.id}"

        fields = [*typed.items(), *(("document", cid) for cid in stored)]
        fields += [(f"photo{i}", f"{p.filename}:{p.size}") for i, p in enumerate(photos)]
        location = once(
            store=svc.store,
            principal=consumer.principal,
            credential=token,
            key=key,
            path="/returns",
            request_hash=form_hash("/returns", fields),
            ttl_s=svc.settings.idempotency_ttl_s,
            produce=produce,
        )
    except LedgerError as exc:
        status, sentence = error_sentence(request, exc)
        return _purchase_page(request, consumer, token, status=status, error=sentence, typed=typed, kept=stored)
    return redirect(location)


# ---- a return ---------------------------------------------------------------------------------------------


def _return_context(
    request: Request, consumer: Consumer, token: str, status: ReturnStatus, *, rid: str, live: bool
) -> dict[str, Any]:
    svc = services_of(request)
    t = translator(request)
    detail, req = status.detail, status.request
    now = chain_now(svc.store)  # the contract's clock decides what is allowed, as on the merchant's page
    context: dict[str, Any] = {
        "request_row": req,
        "reasons": [t.sentence(str(r.get("message", ""))) for r in (req.reasons if req else [])],
        "reason_name": REASON_NAMES.get(req.reason_code, req.reason_code) if req else None,
        "photos": len(req.documents) if req else 0,
        "csrf": csrf_token(token),
        "form_key": new_form_key(),
        "timeline": [],
        "payout": None,
        "actions": [],
    }
    if detail is None:
        assert req is not None
        state = _REQUEST_STATES.get(req.outcome, req.outcome)
        context.update(id=req.id, state=state, ret=None, label=None)
    else:
        ret = detail.ret
        state = state_name(ret.state)
        context.update(
            id=ret.return_id,
            state=state,
            ret=ret,
            label=label_code(ret.return_id),
            amount=money(svc, ret.token, ret.amount),
            refund_after_fee=money(svc, ret.token, ret.amount - ret.amount * ret.fee_bps // 10_000),
        )
        if detail.payout is not None:
            p = detail.payout
            context["payout"] = {
                "consumer": money(svc, p.token, p.consumer_amount),
                "refunded": p.consumer_amount > 0,
                "at": p.paid_at,
                "tx_hash": p.tx_hash,
                "block": p.block_number,
            }
        tracking = return_tracking(svc.store, ret.return_id, consumer=consumer.address, item_id=consumer.item_id)
        context["timeline"] = [tracking_entry(e) for e in tracking.entries]
        context["shipment"] = tracking.shipment
        if state == "authorized" and now <= ret.ship_by:
            context["actions"].append("cancel")
        if state == "rejected" and ret.dispute_by is not None and now <= ret.dispute_by:
            context["actions"].append("dispute")
        if state == "received" and ret.inspect_by is not None and now > ret.inspect_by:
            context["actions"].append("claim")
    context["refresh"] = status_refresh(rid, live=live)
    context["state_name"] = return_state(context["state"])
    context["final"] = context["state"] in FINAL_STATES
    return context


def status_refresh(rid: str, *, live: bool) -> dict[str, str]:
    """The htmx attributes that keep a return's status part (``#status``) current while it can still change.

    ``live``: on each event of the return's stream (:func:`live_stream`, on the part's parent so that a swap
    does not reconnect it) the part is fetched again; ``data-poll`` is the polling that ``app.js`` puts in
    instead when the browser has no EventSource. Otherwise (a request that has no return yet, so no stream)
    polling every :data:`POLL_S` seconds."""
    poll = f"every {POLL_S}s"
    if not live:
        return {"hx-get": f"/returns/{rid}", "hx-trigger": poll, "hx-swap": "outerHTML"}
    trigger = ", ".join(f"sse:{t}" for t in RETURN_EVENTS)
    return {"hx-get": f"/returns/{rid}", "hx-trigger": trigger, "hx-swap": "outerHTML", "data-poll": poll}


def live_stream(store: Store, rid: str) -> dict[str, str]:
    """The attributes of the element that holds a return's event stream (htmx's sse extension): the page's
    relay (:func:`return_event_stream`) from the last notification before the page was rendered, so that the
    stream tells only what the page does not show yet, until the return is closed."""
    last, rows = 0, notifications_of_return(store, rid)
    while rows:  # a page of 100 at a time; a return has a handful
        last = rows[-1].seq
        rows = notifications_of_return(store, rid, after=last)
    # every final state is told as return.closed: the extension closes the stream then
    return {"hx-ext": "sse", "sse-connect": f"/returns/{rid}/events?after={last}", "sse-close": RETURN_CLOSED}


def tracking_entry(entry: TrackingEntry) -> dict[str, Any]:
    """A line of the tracking timeline: a carrier's event (its status in words, where) or an on-chain step."""
    if entry.chain is not None:
        return {**timeline_entry(entry.chain), "carrier": None}
    assert entry.carrier is not None
    e = entry.carrier
    text = CARRIER_STATUSES.get(e.status, CARRIER_STATUSES["exception"])
    return {"at": entry.at, "carrier": text, "location": e.location, "text": None, "step": None, "tx_hash": None}


def timeline_entry(entry: returns_store.TimelineEntry) -> dict[str, Any]:
    d = entry.detail
    base: dict[str, Any] = {"at": entry.at, "tx_hash": entry.tx_hash, "block": entry.block_number}
    if isinstance(d, returns_store.ReturnRow):
        return {**base, "text": STATE_SENTENCES["authorized"], "step": None}
    if isinstance(d, returns_store.TransitionRow):
        name = state_name(d.state)
        return {**base, "text": STATE_SENTENCES.get(name, return_state(name)), "step": None}
    if isinstance(d, returns_store.PayoutRow):
        return {**base, "text": PAYOUT_SENTENCE, "step": None}
    return {**base, "text": None, "step": biz_step(d.biz_step), "disposition": disposition(d.disposition)}


def wait_indexed(svc: Services, block_number: int) -> None:
    """Waits until the index has a write's block, so the page shown next shows it. An index that stays behind
    is not a failure of the write (which happened): that page then says to retry shortly."""
    with contextlib.suppress(IndexBehindError):
        wait_for_block(svc.store, block_number, timeout=svc.settings.wait_timeout_s)


def _return_page(request: Request, rid: str, *, status: int = 200, error: Sentence | None = None) -> Response:
    session = _session_or_page(request)
    if isinstance(session, Response):
        return session
    consumer, token = session
    svc = services_of(request)
    try:
        if not _RETURN_OR_REQUEST.match(rid):
            raise InvalidRequestError(f"no return or return request {rid}")
        found = return_status(svc.store, rid, consumer=consumer.address, item_id=consumer.item_id)
    except LedgerError as exc:
        code, sentence = error_sentence(request, exc)
        return _purchase_page(request, consumer, token, status=code, error=sentence)
    live = _RETURN_ID.match(rid) is not None  # a request's page has no stream until it is a return
    stream = live_stream(svc.store, rid) if live else {}  # read before the status: nothing falls in between
    context = _return_context(request, consumer, token, found, rid=rid, live=live)
    template = "consumer/_status.html" if request.headers.get("hx-request") == "true" else "consumer/return.html"
    return page(request, template, status=status, error=error, stream=stream, **context)


@router.get("/returns/{rid}/label")
def return_label_file(request: Request, rid: str, format: str = "pdf", size: str = "4x6") -> Response:
    """The signed-in consumer's label (PDF in the page's language) or its QR code alone (PNG)."""
    session = _session_or_page(request)
    if isinstance(session, Response):
        return session
    consumer, token = session
    svc = services_of(request)
    try:
        if not _RETURN_ID.match(rid) or format not in ("pdf", "qr") or size not in ("4x6", "a6"):
            raise InvalidRequestError(f"no label {rid} as {format} in size {size}: labels are pdf or qr, 4x6 or a6")
        found = return_status(svc.store, rid, consumer=consumer.address, item_id=consumer.item_id)
        if found.detail is None:
            raise InvalidRequestError(f"return request {rid} has no return yet: a label comes with approval")
        lang: Lang = "zh" if translator(request).lang == "zh" else "en"
        rendered = tracked_label(
            store=svc.store,
            settings=svc.settings,
            ret=found.detail.ret,
            size="a6" if size == "a6" else "4x6",
            format="qr" if format == "qr" else "pdf",
            lang=lang,
        )
    except LedgerError as exc:
        code, sentence = error_sentence(request, exc)
        return _purchase_page(request, consumer, token, status=code, error=sentence)
    return label_response(rendered)


@router.get("/returns/{rid}/events")
async def return_event_stream(request: Request, rid: str, after: int = 0) -> Response:
    """The return's event stream for its page: the API's ``GET /v1/returns/{id}/events`` with the session's
    token (EventSource cannot send one), from ``after`` unless the browser resumes with Last-Event-ID."""
    session = _session_or_page(request)
    if isinstance(session, Response):
        return session
    consumer, _ = session
    svc = services_of(request)
    if not _RETURN_ID.match(rid):
        shown = rid[:80]
        raise InvalidRequestError(f"no return {shown}: an event stream is a return's (0x and 64 hex digits)")
    found = await anyio.to_thread.run_sync(
        functools.partial(return_status, svc.store, rid, consumer=consumer.address, item_id=consumer.item_id)
    )
    if found.detail is not None and state_name(found.detail.ret.state) in FINAL_STATES:
        return Response(status_code=204)  # nothing more will happen: 204 tells EventSource not to reconnect
    resume = request.headers.get("last-event-id") or (str(after) if after > 0 else None)
    return await return_events(
        rid,
        consumer,
        svc.store,
        request,
        last_event_id=resume,
        accept=request.headers.get("accept"),
    )


@router.get("/returns/{rid}")
def show_return(request: Request, rid: str) -> Response:
    """A return's decision, state, timeline and refund; htmx asks for the status part again while it moves."""
    return _return_page(request, rid)


_ACTIONS = {"cancel": cancel_return, "claim": claim_uninspected}


@router.post("/returns/{rid}/{action}")
async def return_action(request: Request, rid: str, action: str) -> Response:
    """Cancel, dispute or claim (the consumer's steps, sent by the service's relayer)."""
    form = await page_form(request)
    return await _run(_return_action, request, rid, action, form)


def _return_action(request: Request, rid: str, action: str, form: FormData) -> Response:
    if action not in ("cancel", "dispute", "claim"):
        return page(request, "not_found.html", status=404)
    session = _session_or_page(request)
    if isinstance(session, Response):
        return session
    consumer, token = session
    svc = services_of(request)
    comment = (_text(form, "comment") or "").strip() or None
    try:
        key = _checked_form(request, form, token)
        if not re.fullmatch(r"0x[0-9a-f]{64}", rid):
            raise InvalidRequestError(f"no return {rid} of yours")

        def produce() -> str:
            if action == "dispute":
                tx = dispute_return(
                    store=svc.store,
                    chain=svc.chain,
                    consumer=consumer.address,
                    item_id=consumer.item_id,
                    return_id=rid,
                    comment=comment,
                    evidence_digest=None,
                    documents=svc.documents,
                ).tx
            else:
                tx = _ACTIONS[action](
                    store=svc.store, chain=svc.chain, consumer=consumer.address, item_id=consumer.item_id, return_id=rid
                )
            wait_indexed(svc, tx.block_number)
            return f"/returns/{rid}"

        path = f"/returns/{rid}/{action}"
        location = once(
            store=svc.store,
            principal=consumer.principal,
            credential=token,
            key=key,
            path=path,
            request_hash=form_hash(path, [("comment", comment or "")]),
            ttl_s=svc.settings.idempotency_ttl_s,
            produce=produce,
        )
    except LedgerError as exc:
        code, sentence = error_sentence(request, exc)
        return _return_page(request, rid, status=code, error=sentence)
    return redirect(location)
