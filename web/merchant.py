"""The merchant console (``/merchant``): sign in with the merchant's API key, then the manual-review queue
with approve and reject (with a reason).

The session is the API key in a cookie that only this console's paths receive (``Path=/merchant``), HttpOnly,
``SameSite=Strict`` and ``Secure`` when the page came over https; every form carries a CSRF token derived from
the key and a form key (:mod:`web.forms`). A key of another role, a wrong or revoked key: the sign-in page with
the reason, in the page's language. Decisions go through the same domain functions as
``POST /v1/returns/{id}/approve`` and ``/reject``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import anyio
from fastapi import APIRouter, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from api.deps import services_of
from ledger_service.access import Actor, Role
from ledger_service.documents.cid import Cid
from ledger_service.errors import InvalidRequestError, LedgerError
from ledger_service.returns import approve_request, chain_now, reject_request
from ledger_service.returns.views import ListState, list_merchant_returns
from ledger_service.signals import population_of, signals_for
from ledger_service.store.handle import Store
from web.console import KeyConsole
from web.consumer import PHOTO_TYPES, REASON_NAMES
from web.forms import csrf_token, form_hash, once, page_form, require_csrf
from web.i18n import Sentence
from web.render import error_sentence, new_form_key, page, redirect, translator

router = APIRouter(prefix="/merchant", include_in_schema=False)

KEY_COOKIE = "rl_merchant"
COOKIE_PATH = "/merchant"
NOTE_MAX_LENGTH = 500
QUEUE_LIMIT = 50
_REQUEST_ID = re.compile(r"^rr_[0-9a-f]{32}$")


CONSOLE = KeyConsole(
    roles=(Role.MERCHANT,),
    cookie=KEY_COOKIE,
    path=COOKIE_PATH,
    signin_template="merchant/signin.html",
    refusal="this console is for merchant keys; this key is a {role} key",
)
CONSOLE.add_routes(router)


def documents_shown(request: Request, cids: tuple[str, ...]) -> list[dict[str, Any]]:
    """A request's documents for the page: each opened by its CID (``/v1/documents/{cid}``), an image also
    shown small (the type the store recorded from its bytes; a document it no longer holds is listed as such)."""
    store = services_of(request).documents
    shown = []
    for number, cid in enumerate(cids, start=1):
        stat = store.stat(Cid.parse(cid))
        shown.append(
            {
                "number": number,
                "cid": cid,
                "url": f"/v1/documents/{cid}",
                "image": stat is not None and stat.content_type.split(";")[0] in PHOTO_TYPES,
                "missing": stat is None,
            }
        )
    return shown


SIGNAL_NAMES = {
    "serial_returner": "Returns much more than your other customers",
    "wardrobing": "Returns just before the window closes",
    "unit_mismatch": "Another unit was scanned for this return",
    "burst": "Many returns in a short time",
}
"""The fraud and abuse signals' names (ledger_service.signals), as the console shows them."""


def signals_shown(
    store: Store,
    lang: str,
    *,
    consumer: str,
    merchant: str,
    now: int,
    return_id: str | None = None,
    item_id: str | None = None,
    population: tuple[int, int] | None = None,
) -> list[dict[str, Any]]:
    """The signals on a consumer at this merchant, for the reviewer: name, score and reasons in ``lang``
    (``population``: the merchant's figures, read once for a whole queue)."""
    found = signals_for(
        store,
        consumer=consumer,
        merchant=merchant,
        now=now,
        return_id=return_id,
        item_id=item_id,
        population=population,
    )
    return [
        {
            "kind": signal.kind,
            "name": SIGNAL_NAMES[signal.kind],
            "score": f"{signal.score:.2f}",
            "reasons": [r.text_zh if lang == "zh" else r.text_en for r in signal.reasons],
        }
        for signal in found
    ]


def _queue_page(
    request: Request, *, status: int = 200, error: Sentence | None = None, notes: dict[str, str] | None = None
) -> Response:
    """The queue; ``notes``: what was typed as the reason of a rejection that failed, by request id (kept)."""
    session = CONSOLE.session(request)
    if isinstance(session, Response):
        return session
    actor, key = session
    t = translator(request)
    store = services_of(request).store
    now = chain_now(store)
    population = population_of(store, merchant=actor.account, now=now)
    listing = list_merchant_returns(
        store,
        merchant=actor.account,
        states=(ListState.PENDING_REVIEW,),
        limit=QUEUE_LIMIT,
    )
    queue = [
        {
            "id": row.id,
            "item_id": row.item_id,
            "reason": REASON_NAMES.get(row.reason_code),
            "reason_code": row.reason_code,
            "comment": row.comment,
            "documents": documents_shown(request, row.documents),
            "at": row.created_at,
            "why": [t.sentence(str(r.get("message", ""))) for r in row.reasons],
            "signals": signals_shown(
                store, t.lang, consumer=row.consumer, merchant=row.merchant, now=now, population=population
            ),
        }
        for row in listing.requests
    ]
    return page(
        request,
        "merchant/queue.html",
        status=status,
        error=error,
        actor=actor,
        queue=queue,
        count=listing.count,
        csrf=csrf_token(key),
        form_key=new_form_key(),
        notes=notes or {},
    )


@router.get("")
def console(request: Request) -> Response:
    """The review queue of the signed-in merchant; the sign-in form without a session."""
    return _queue_page(request)


@router.post("/requests/{request_id}/{decision}")
async def decide(request: Request, request_id: str, decision: str) -> Response:
    """Approves (the escrow is funded on-chain) or rejects (with a note) a queued request."""
    form = await page_form(request)
    return await anyio.to_thread.run_sync(functools.partial(_decide, request, request_id, decision, form))


def submit(
    request: Request,
    *,
    actor: Actor,
    key: str,
    form: FormData,
    path: str,
    fields: list[tuple[str, str]],
    produce: Callable[[], str],
) -> str:
    """A console form's action: its CSRF field checked, then ``produce()`` (the address of the page to show
    next) run once for the form's key, a repeat of the same form answered with the first run's address.
    Raises the domain's errors (the caller shows them on its page). Blocking."""
    svc = services_of(request)
    require_csrf(key, form.get("csrf"))
    form_key = form.get("form_key")
    return once(
        store=svc.store,
        principal=actor.principal,
        credential=key,
        key=form_key if isinstance(form_key, str) else "",
        path=path,
        request_hash=form_hash(path, fields),
        ttl_s=svc.settings.idempotency_ttl_s,
        produce=produce,
    )


def _decide(request: Request, request_id: str, decision: str, form: FormData) -> Response:
    if decision not in ("approve", "reject") or not _REQUEST_ID.match(request_id):
        return page(request, "not_found.html", status=404)
    session = CONSOLE.session(request)
    if isinstance(session, Response):
        return session
    actor, key = session
    svc = services_of(request)
    note_value = form.get("note")
    note = note_value.strip() if isinstance(note_value, str) and note_value.strip() else None

    def produce() -> str:
        if note is not None and len(note) > NOTE_MAX_LENGTH:
            raise InvalidRequestError(f"the note is longer than {NOTE_MAX_LENGTH} characters; shorten it")
        if decision == "approve":
            approve_request(store=svc.store, chain=svc.chain, merchant=actor.account, request_id=request_id)
        else:
            reject_request(store=svc.store, merchant=actor.account, request_id=request_id, note=note)
        return COOKIE_PATH

    try:
        location = submit(
            request,
            actor=actor,
            key=key,
            form=form,
            path=f"/merchant/requests/{request_id}/{decision}",
            fields=[("note", note or "")],
            produce=produce,
        )
    except LedgerError as exc:
        status, sentence = error_sentence(request, exc)
        return _queue_page(request, status=status, error=sentence, notes={request_id: note or ""})
    return redirect(location)
