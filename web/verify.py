"""The public verify page: ``/verify`` (a form), ``/verify/{code}`` (the answer), and the GS1 Digital Link
landing (``/01/{gtin}/21/{serial}``, what a product's QR code opens when it points at this service).

What ``GET /v1/verify/{code}`` says (:func:`ledger_service.verification.consumer.check_code`), for a person:
genuine or not, why, the item's journey as a timeline (from the index) and the return's state. Counted
against the same per-address rate limit as the API's verify route.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from api.deps import services_of
from api.routers._present import token_decimals
from api.routers.verify import enforce_rate_limit
from ledger_service.errors import LedgerError
from ledger_service.verification.consumer import MAX_CODE_LENGTH, check_code, format_amount
from ledger_service.verification.history import item_history
from web.i18n import Translator
from web.render import error_sentence, page, translator
from web.words import biz_step, disposition, return_state

router = APIRouter(include_in_schema=False)


def _journey(request: Request, item_id: str) -> list[dict[str, Any]]:
    history = item_history(store=services_of(request).store, item_id=item_id)
    if history is None:
        return []
    return [
        {
            "seq": event.seq,
            "at": event.timestamp,
            "step": biz_step(event.biz_step),
            "disposition": disposition(event.disposition),
            "place": event.read_point,
            "tx_hash": event.tx_hash,
            "block": event.block_number,
        }
        for event in history.events
    ]


def _answer(request: Request, code: str) -> Response:
    t: Translator = translator(request)
    svc = services_of(request)
    try:
        enforce_rate_limit(request, svc)
        decimals = token_decimals(svc)
        result = check_code(store=svc.store, chain=svc.chain, code=code, decimals=decimals)
    except LedgerError as exc:
        status, sentence = error_sentence(request, exc)
        return page(request, "verify/form.html", status=status, code=code, error=sentence)
    journey = _journey(request, result.item.item_id) if result.item is not None else []
    failing = {f.seq for f in result.item.findings if f.seq is not None} if result.item is not None else set()
    amount = None
    if result.ret is not None and result.ret.amount is not None and result.ret.token is not None:
        amount = format_amount(result.ret.amount, decimals(result.ret.token))
    return page(
        request,
        "verify/result.html",
        code=code,
        result=result,
        verdict=[t.sentence(line) for line in result.verdict],
        findings=[t.sentence(f.message) for f in (result.item.findings if result.item else ())]
        + [t.sentence(f.message) for f in (result.ret.findings if result.ret else ())],
        journey=journey,
        failing=failing,
        state=None if result.ret is None or result.ret.state is None else return_state(result.ret.state),
        amount=amount,
    )


@router.get("/verify")
def verify_form(request: Request, code: Annotated[str | None, Query(max_length=MAX_CODE_LENGTH)] = None) -> Response:
    """The form; with ``?code=`` (the form's own submission, which works without JavaScript) the answer."""
    if code is None or not code.strip():
        return page(request, "verify/form.html", code="", error=None)
    return _answer(request, code.strip())


@router.get("/verify/{code:verify_code}")
def verify_code(request: Request, code: str) -> Response:
    """The page a return label's or a product's QR code opens."""
    if len(code) > MAX_CODE_LENGTH:
        t = translator(request)
        sentence = t.sentence(f"the code is longer than {MAX_CODE_LENGTH} characters")
        return page(request, "verify/form.html", status=422, code=code[:MAX_CODE_LENGTH], error=sentence)
    return _answer(request, code)


@router.get("/01/{gtin}/21/{serial}")
def digital_link(
    request: Request,
    gtin: str,
    serial: str,
) -> Response:
    """A GS1 Digital Link pointing at this service: the verify page of that item (the link's own address is the
    code, so it is checked as the Digital Link it is)."""
    base = str(request.base_url).rstrip("/")
    return _answer(request, f"{base}/01/{gtin}/21/{serial}")


def verify_link(code: str) -> str:
    """The verify page of ``code`` (a label code, an item id)."""
    return f"/verify/{code}"
