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
import time
from typing import Any

import anyio
from fastapi import APIRouter, Request
from starlette.datastructures import FormData, UploadFile
from starlette.responses import Response

from api.deps import Services, services_of
from api.freshness import wait_for_block
from api.limits import FORM, MULTIPART
from api.routers._present import token_decimals
from api.routers.assistant import enforce_rate_limit
from api.routers.documents import store_upload
from api.routers.notifications import events as return_events
from api.routers.returns import label_response
from ledger_service.access import Consumer, verify_return_token
from ledger_service.assistant.conversation import answer
from ledger_service.assistant.model import shared_model
from ledger_service.core.money import short_amount
from ledger_service.core.notifications import EVENT_TYPES, RETURN_CLOSED
from ledger_service.errors import (
    IndexBehindError,
    InvalidRequestError,
    LedgerError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from ledger_service.feedback import EDIT_WINDOW_S, give_feedback
from ledger_service.feedback.ratings import is_closed
from ledger_service.logistics.shipments import tracked_label
from ledger_service.logistics.tracking import TrackingEntry, return_tracking
from ledger_service.returns import cancel_return, chain_now, claim_uninspected, dispute_return, request_return
from ledger_service.returns.decision import EligibilityCheck, check_eligibility
from ledger_service.returns.exchanges import check_exchange
from ledger_service.returns.label_sheet import Lang
from ledger_service.returns.labels import label_code
from ledger_service.returns.senders import LOCALITY_MAX_LENGTH, NAME_MAX_LENGTH, label_sender
from ledger_service.returns.views import ReturnStatus, return_status, state_name
from ledger_service.store import returns as returns_store
from ledger_service.store.exchanges import return_unit_mismatched
from ledger_service.store.feedback import feedback_for
from ledger_service.store.handle import Store
from ledger_service.store.notifications import notifications_of_return
from web.forms import RefusedFormError, csrf_token, form_hash, once, page_form, require_csrf
from web.i18n import Sentence
from web.render import error_sentence, new_form_key, page, redirect, secure, translator
from web.words import (
    CARRIER_STATUSES,
    PAYOUT_SENTENCE,
    STATE_SENTENCES,
    UNIT_MISMATCH_SENTENCE,
    biz_step,
    disposition,
    return_state,
)

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
TYPED_FIELDS = ("reason_code", "comment", "show_as", "sender_name", "sender_locality")
"""The request form's text fields, shown again as typed when it is refused."""
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


def _session_or_page(request: Request, *, after: str | None = None) -> tuple[Consumer, str] | Response:
    """The session's consumer and token, or the open page saying why there is none (a form posted after the
    token stopped working, or without a session); ``after``: where its form leads once the code is typed."""
    try:
        session = _consumer(request)
    except LedgerError as exc:
        status, sentence = error_sentence(request, exc)
        return _open_page(request, status=status, error=sentence, after=after)
    if session is None:
        sentence = translator(request).sentence("Open your purchase with its return code first.")
        return _open_page(request, status=401, error=sentence, after=after)
    return session


def _with_session(response: Response, request: Request, token: str) -> Response:
    response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="lax", secure=secure(request), path="/")
    return response


_AFTER = re.compile(r"^/(returns|exchanges)/(0x[0-9a-f]{64}|rr_[0-9a-f]{32})(\?lang=(zh|en))?$")
"""Where the open form may lead after the code is typed: a return's or an exchange's page (never another site)."""


def _after(candidate: str | None) -> str | None:
    return candidate if candidate and _AFTER.match(candidate) else None


def _open_page(
    request: Request, *, status: int = 200, typed: str = "", error: Sentence | None = None, after: str | None = None
) -> Response:
    response = page(request, "consumer/open.html", status=status, typed=typed, error=error, after=_after(after))
    if error is not None and status == 401:
        response.delete_cookie(TOKEN_COOKIE, path="/")
    return response


def _open(request: Request, token: str, after: str | None = None) -> Response:
    """Checks ``token`` and starts a session with it (the open page with the reason when it does not work),
    then shows the purchase, or the return page ``after`` at its rating form (the feedback e-mail's link)."""
    token = token.strip()
    try:
        verify_return_token(store=services_of(request).store, presented=token)
    except LedgerError as exc:
        status, sentence = error_sentence(request, exc)
        return _open_page(request, status=status, typed=token, error=sentence, after=after)
    after = _after(after)
    return _with_session(redirect(f"{after}#feedback" if after else "/"), request, token)


# ---- the purchase page ----------------------------------------------------------------------------------


def money(svc: Services, token: str | None, amount: int | None) -> str | None:
    """``45.00 dUSD``: the exact amount in the token's units with its symbol (zeros past the cents dropped);
    the integer base units when the token does not answer ``decimals()``."""
    if token is None or amount is None:
        return None
    try:
        places = svc.chain.token_decimals(token)
        symbol = svc.chain.token_symbol(token)
    except Exception:  # not an ERC-20 that answers decimals(), or the node is away: the integer units
        return str(amount)
    return short_amount(amount, places, symbol)


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
                "exchange": r.is_exchange,
            }
            for r in requests
        ],
        "exchange": exchange_offer(svc, consumer),
        "csrf": csrf_token(token),
        "form_key": new_form_key(),
        "photos_max_bytes": svc.settings.document_max_bytes,
        "photos_max_size": size_text(svc.settings.document_max_bytes),
        "name_max_length": NAME_MAX_LENGTH,
        "locality_max_length": LOCALITY_MAX_LENGTH,
    }


def difference_text(svc: Services, token: str, difference: int) -> tuple[str, str]:
    """A price difference as the consumer reads it: what they pay (``pay``), get back (``back``) or neither
    (``same``), and the amount in money."""
    kind = "pay" if difference > 0 else "back" if difference < 0 else "same"
    return kind, money(svc, token, abs(difference)) or ""


def exchange_offer(svc: Services, consumer: Consumer) -> dict[str, Any] | None:
    """What the purchase page offers beside the return: the units the item may be exchanged for now (the
    eligibility answer's variants, in stock at the merchant), each with its price difference in money, and
    whether an instant exchange is offered; None when no exchange is possible now (no terms, the window closed,
    nothing in stock, no ExchangeEscrow deployed)."""
    if svc.chain.exchange is None:
        return None
    found = check_exchange(store=svc.store, item_id=consumer.item_id, requester=consumer.address, reason_code=None)
    sale = found.sale
    if not found.decision.eligible or sale is None or not found.variants:
        return None
    variants = []
    for v in found.variants:
        kind, amount = difference_text(svc, sale.token, v.price_difference)
        variants.append(
            {
                "item_id": v.item_id,
                "uri": v.uri,
                "gtin": v.gtin,
                "difference": v.price_difference,
                "kind": kind,
                "amount": amount,
                "price": money(svc, sale.token, v.list_price),
            }
        )
    return {"variants": variants, "instant": found.decision.instant_offered, "deadline": found.decision.deadline}


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
    asked: str = "",
    assistant: dict[str, Any] | None = None,
) -> Response:
    """The purchase; after a failed request, the form as ``typed`` with the photos already stored (``kept``);
    after a message to the assistant, the message (``asked``) and its answer (``assistant``)."""
    context = _purchase_context(request, consumer, token)
    return page(
        request,
        "consumer/purchase.html",
        status=status,
        error=error,
        typed={name: "wallet" if name == "show_as" else "" for name in TYPED_FIELDS} | (typed or {}),
        kept=kept or [],
        asked=asked,
        assistant=assistant,
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
    after = str(form.get("after") or "") or None
    if not typed.strip():
        sentence = translator(request).sentence("Type the return code from your order e-mail.")
        return _open_page(request, status=422, error=sentence, after=after)
    return await _run(_open, request, typed, after)


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


def _once(
    request: Request,
    consumer: Consumer,
    token: str,
    *,
    key: str,
    path: str,
    fields: list[tuple[str, str]],
    produce: Any,
) -> str:
    """A consumer form's action run once for its form key (:func:`web.forms.once`): a repeat of the same form
    answers the first run's address instead of acting twice."""
    svc = services_of(request)
    return once(
        store=svc.store,
        principal=consumer.principal,
        credential=token,
        key=key,
        path=path,
        request_hash=form_hash(path, fields),
        ttl_s=svc.settings.idempotency_ttl_s,
        produce=produce,
    )


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
    typed = {name: _text(form, name) or "" for name in TYPED_FIELDS}
    if typed["show_as"] not in ("initials", "full"):
        typed["show_as"], typed["sender_name"] = "wallet", ""  # a name typed, then wallet chosen: not kept
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
        sender = label_sender(
            show_as=typed["show_as"], name=typed["sender_name"] or None, locality=typed["sender_locality"] or None
        )

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
                label_sender=sender,
            )
            if result.tx is not None:
                wait_indexed(svc, result.tx.block_number)
            return f"/returns/{result.request.return_id or result.request.id}"

        fields = [*typed.items(), *(("document", cid) for cid in stored)]
        fields += [(f"photo{i}", f"{p.filename}:{p.size}") for i, p in enumerate(photos)]
        location = _once(request, consumer, token, key=key, path="/returns", fields=fields, produce=produce)
    except LedgerError as exc:
        status, sentence = error_sentence(request, exc)
        return _purchase_page(request, consumer, token, status=status, error=sentence, typed=typed, kept=stored)
    return redirect(location)


# ---- a return ---------------------------------------------------------------------------------------------


def _feedback_context(store: Store, ret: returns_store.ReturnRow, typed: dict[str, str] | None) -> dict[str, Any]:
    """The rating form of a closed return: the feedback given so far, whether it can still change (a week from
    when it was first given, wall clock, as the API's rule) and what was typed in a refused form."""
    given = feedback_for(store, ret.return_id)
    until = given.created_at + EDIT_WINDOW_S if given else None
    return {
        "given": given,
        "until": until,
        "editable": until is None or int(time.time()) <= until,
        "rating": (typed or {}).get("rating") or (str(given.rating) if given else ""),
        "comment": (typed or {}).get("comment", given.comment if given and given.comment else ""),
    }


def _return_context(
    request: Request,
    consumer: Consumer,
    token: str,
    status: ReturnStatus,
    *,
    rid: str,
    live: bool,
    typed: dict[str, str] | None = None,
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
        "feedback": None,
        "mismatch": False,
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
        # the unit check, not the consumer, sent it to the arbiter: say so instead of "the inspection was disputed"
        context["mismatch"] = state == "disputed" and return_unit_mismatched(svc.store, ret.return_id)
        if context["mismatch"]:
            disputed = STATE_SENTENCES["disputed"]
            context["timeline"] = [
                {**line, "text": UNIT_MISMATCH_SENTENCE} if line.get("text") == disputed else line
                for line in context["timeline"]
            ]
        context["shipment"] = tracking.shipment
        if state == "authorized" and now <= ret.ship_by:
            context["actions"].append("cancel")
        if state == "rejected" and ret.dispute_by is not None and now <= ret.dispute_by:
            context["actions"].append("dispute")
        if state == "received" and ret.inspect_by is not None and now > ret.inspect_by:
            context["actions"].append("claim")
        if is_closed(ret.state):
            context["feedback"] = _feedback_context(svc.store, ret, typed)
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


def _return_page(
    request: Request,
    rid: str,
    *,
    status: int = 200,
    error: Sentence | None = None,
    typed: dict[str, str] | None = None,
) -> Response:
    query = f"?{request.url.query}" if request.url.query else ""
    session = _session_or_page(request, after=f"/returns/{rid}{query}")
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
    context = _return_context(request, consumer, token, found, rid=rid, live=live, typed=typed)
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
    if action not in ("cancel", "dispute", "claim", "feedback"):
        return page(request, "not_found.html", status=404)
    session = _session_or_page(request)
    if isinstance(session, Response):
        return session
    consumer, token = session
    svc = services_of(request)
    if action == "feedback":
        return _feedback_action(request, rid, form, consumer, token)
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
        fields = [("comment", comment or "")]
        location = _once(request, consumer, token, key=key, path=path, fields=fields, produce=produce)
    except LedgerError as exc:
        code, sentence = error_sentence(request, exc)
        return _return_page(request, rid, status=code, error=sentence)
    return redirect(location)


def _feedback_action(request: Request, rid: str, form: FormData, consumer: Consumer, token: str) -> Response:
    """Stores the rating of a closed return (or changes it within the week): back to the return's page, which
    shows it; a refused form is that page with the reason and what was typed."""
    rating, comment = (_text(form, "rating") or "").strip(), _text(form, "comment") or ""
    try:
        _checked_form(request, form, token)
        if not _RETURN_ID.match(rid):
            raise InvalidRequestError(f"no return {rid} of yours")
        if rating not in ("1", "2", "3", "4", "5"):
            raise InvalidRequestError("choose a rating from 1 to 5 stars")
        give_feedback(
            store=services_of(request).store,
            return_id=rid,
            consumer=consumer.address,
            item_id=consumer.item_id,
            rating=int(rating),
            comment=comment,
            lang=translator(request).lang,
            now=int(time.time()),
        )
    except LedgerError as exc:
        code, sentence = error_sentence(request, exc)
        return _return_page(request, rid, status=code, error=sentence, typed={"rating": rating, "comment": comment})
    return redirect(f"/returns/{rid}#feedback")


# ---- the assistant's draft ----------------------------------------------------------------------------


@router.post("/assistant")
async def ask_assistant(request: Request) -> Response:
    """The consumer describes the problem in their words (Chinese or English); the assistant's answer is shown
    on the purchase page, and a return's draft (reason and text) fills the request form, sent in one tap."""
    form = await page_form(request)
    return await _run(_ask_assistant, request, form)


def _ask_assistant(request: Request, form: FormData) -> Response:
    session = _session_or_page(request)
    if isinstance(session, Response):
        return session
    consumer, token = session
    svc = services_of(request)
    message = _text(form, "message") or ""
    try:
        _checked_form(request, form, token)
        enforce_rate_limit(request, svc)  # the same limits as POST /v1/assistant/messages
        result = answer(
            store=svc.store,
            model=shared_model(),
            message=message,
            consumer=consumer,
            merchant=None,
            decimals=token_decimals(svc),
        )
    except LedgerError as exc:
        code, sentence = error_sentence(request, exc)
        return _purchase_page(request, consumer, token, status=code, error=sentence, asked=message)
    draft = result.draft
    said = {
        "reply": result.reply,
        "lang": result.understanding.language,
        "draft": None if draft is None else {"reason_code": draft.reason_code, "comment": draft.comment},
        "reason_name": None if draft is None else REASON_NAMES.get(draft.reason_code, draft.reason_code),
    }
    typed = None if draft is None else {"reason_code": draft.reason_code, "comment": draft.comment}
    return _purchase_page(request, consumer, token, typed=typed, asked=message, assistant=said)
