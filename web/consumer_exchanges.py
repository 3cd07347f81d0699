"""The consumer's exchanges: ask to swap the purchase for another unit of the merchant's (the next size) on the
purchase page, then follow the exchange on its own page: what happened (requested, decided, authorized, the
original's shipment and scans, the replacement's release, the difference paid or recorded, a unit mismatch sent
to the arbiter) and what the consumer must do next.

The session is the purchase's (the return token's cookie, :mod:`web.consumer`); writes go through the same
domain function as ``POST /v1/exchanges``, reads through ``GET /v1/exchanges/{id}``'s
(:func:`ledger_service.returns.exchanges.exchange_status`), for the session's item only.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from api.deps import Services, services_of
from ledger_service.access import Consumer
from ledger_service.core.codes import ReturnState
from ledger_service.errors import InvalidRequestError, LedgerError
from ledger_service.returns import chain_now
from ledger_service.returns.exchanges import ExchangeStatus, exchange_status, request_exchange
from ledger_service.returns.views import state_name
from ledger_service.store import returns as returns_store
from ledger_service.store.exchanges import return_unit_mismatched
from web.consumer import (
    REASON_NAMES,
    _checked_form,
    _once,
    _purchase_page,
    _run,
    _session_or_page,
    _text,
    difference_text,
    money,
    timeline_entry,
    wait_indexed,
)
from web.forms import page_form
from web.i18n import Translator
from web.render import error_sentence, page, redirect, translator
from web.words import UNIT_MISMATCH_SENTENCE

router = APIRouter(include_in_schema=False)

_EXCHANGE_OR_REQUEST = re.compile(r"^(0x[0-9a-f]{64}|rr_[0-9a-f]{32})$")
_CHOICE = re.compile(r"^(0x[0-9a-f]{64}):(-?[0-9]{1,30})$")
"""A variant as the purchase page's form sends it: the unit's id and the difference the page showed (the
consumer confirms what it pays or gets back; other prices by now are a 422 naming the right one)."""
_SHIPPED = int(ReturnState.IN_TRANSIT)

STEP_TEXTS = {
    "requested": "You asked to exchange the item.",
    "approved_auto": "Approved at once by the merchant's published policy.",
    "approve": "Approved by the merchant.",
    "reject": "The request was declined.",
    "manual_review": "Sent to the merchant for review.",
    "authorized": "The merchant approved the exchange.",
    "authorized_instant": "The merchant approved the instant exchange and sends the replacement now.",
    "extra_payment_recorded": "The merchant recorded your payment of the price difference.",
    "replacement_released": "The replacement was released to you: its sale is recorded in your name.",
    "collateral_settled": "The instant exchange's collateral went back to the merchant.",
}
"""The exchange's timeline lines (catalog texts)."""
_BLANK: dict[str, Any] = {"carrier": None, "step": None, "tx_hash": None, "block": None}
UNIT_MISMATCH = UNIT_MISMATCH_SENTENCE


@router.post("/exchanges")
async def create_exchange(request: Request) -> Response:
    """Asks to exchange the session's purchase for the unit chosen: the decision at once, on the exchange's page;
    a refusal is the purchase page with the reason."""
    form = await page_form(request)
    return await _run(_create_exchange, request, form)


def _create_exchange(request: Request, form: FormData) -> Response:
    session = _session_or_page(request)
    if isinstance(session, Response):
        return session
    consumer, token = session
    svc = services_of(request)
    choice = (_text(form, "replacement") or "").strip()
    reason = (_text(form, "reason_code") or "").strip()
    instant = _text(form, "instant") == "1"
    try:
        key = _checked_form(request, form, token)
        chosen = _CHOICE.match(choice)
        if chosen is None:
            raise InvalidRequestError("Choose the unit you want instead.")
        if not reason:
            raise InvalidRequestError("Please give a reason for the exchange.")

        def produce() -> str:
            result = request_exchange(
                store=svc.store,
                chain=svc.chain,
                consumer=consumer.address,
                item_id=consumer.item_id,
                replacement_item_id=chosen.group(1),
                reason_code=reason,
                instant=instant,
                price_difference=int(chosen.group(2)),
            )
            last = result.follow_up.released if result.follow_up and result.follow_up.released else result.tx
            if last is not None:
                wait_indexed(svc, last.block_number)
            return f"/exchanges/{result.request.return_id or result.request.id}"

        fields = [("replacement", choice), ("reason_code", reason), ("instant", str(instant))]
        location = _once(request, consumer, token, key=key, path="/exchanges", fields=fields, produce=produce)
    except LedgerError as exc:
        status, sentence = error_sentence(request, exc)
        return _purchase_page(request, consumer, token, status=status, error=sentence)
    return redirect(location)


@router.get("/exchanges/{rid}")
def show_exchange(request: Request, rid: str) -> Response:
    """An exchange's state, what happened and what the consumer must do next (an e-mail's link signs in first)."""
    query = f"?{request.url.query}" if request.url.query else ""
    session = _session_or_page(request, after=f"/exchanges/{rid}{query}")
    if isinstance(session, Response):
        return session
    consumer, token = session
    svc = services_of(request)
    try:
        if not _EXCHANGE_OR_REQUEST.match(rid):
            shown = rid[:80]
            raise InvalidRequestError(f"no exchange {shown} of yours")
        status = exchange_status(svc.store, rid, consumer=consumer.address, item_id=consumer.item_id)
    except LedgerError as exc:
        code, sentence = error_sentence(request, exc)
        return _purchase_page(request, consumer, token, status=code, error=sentence)
    context = exchange_context(svc, translator(request), consumer, status)
    return page(request, "consumer/exchange.html", error=None, **context)


def exchange_context(svc: Services, t: Translator, consumer: Consumer, status: ExchangeStatus) -> dict[str, Any]:
    """The exchange page's facts: state, the units, the difference in money, the timeline and the next step."""
    req = status.request
    row = status.exchange.exchange if status.exchange is not None else None
    ret = status.ret.ret if status.ret is not None else None
    mismatch = ret is not None and return_unit_mismatched(svc.store, ret.return_id)
    if row is not None:
        state = _exchange_state(row.released, ret.state if ret else None, mismatch)
    else:
        assert req is not None
        state = {"manual_review": "pending_review", "reject": "request_rejected"}.get(req.outcome, "processing")
    kind, amount = ("same", "")
    if row is not None:
        kind, amount = difference_text(svc, row.token, row.price_difference)
    return {
        "id": row.exchange_id if row is not None else req.id if req else "",
        "state": state,
        "request_row": req,
        "exchange": row,
        "ret": ret,
        "mismatch": mismatch,
        "original": row.original_item_id if row else req.item_id if req else consumer.item_id,
        "replacement": row.replacement_item_id if row else req.replacement_item_id if req else None,
        "instant": row.instant if row is not None else bool(req.instant) if req else False,
        "difference_kind": kind,
        "difference": amount,
        "collateral": money(svc, row.token, row.collateral) if row is not None and row.collateral else None,
        "reason_name": REASON_NAMES.get(req.reason_code, req.reason_code) if req else None,
        "reasons": [t.sentence(str(r.get("message", ""))) for r in (req.reasons if req else [])],
        "timeline": _timeline(svc, status, mismatch),
        "next": _next_steps(svc, t, status, mismatch),
        "states": EXCHANGE_STATES,
        "unit_mismatch": UNIT_MISMATCH,
    }


def _exchange_state(released: bool, ret_state: ReturnState | None, mismatch: bool) -> str:
    """The exchange's state in the consumer's words (a catalog text of :data:`EXCHANGE_STATES`)."""
    if mismatch:
        return "unit_mismatch"
    if ret_state is not None and state_name(ret_state) in ("cancelled", "expired"):
        return state_name(ret_state)
    if ret_state is not None and int(ret_state) >= _SHIPPED:
        return "original_shipped_released" if released else "original_shipped"
    return "released" if released else "authorized"


EXCHANGE_STATES = {
    "pending_review": "Waiting for the merchant",
    "request_rejected": "Request declined",
    "processing": "Being approved",
    "authorized": "Exchange approved",
    "released": "Replacement on its way; send the original back",
    "original_shipped": "Original on its way back",
    "original_shipped_released": "Replacement sent, original on its way back",
    "unit_mismatch": "Another unit arrived: an arbiter decides",
    "cancelled": "Cancelled",
    "expired": "Original not shipped in time",
}
"""An exchange's state as the consumer reads it (catalog texts)."""


def _timeline(svc: Services, status: ExchangeStatus, mismatch: bool) -> list[dict[str, Any]]:
    """What happened, in chain order after the request and its decision (which are the service's, not the
    chain's): the return steps of the original, and the exchange's own steps."""
    lines: list[tuple[tuple[int, int], dict[str, Any]]] = []
    req = status.request
    if req is not None:
        lines.append(((-1, 0), {**_BLANK, "at": req.created_at, "text": STEP_TEXTS["requested"]}))
        decided = "approved_auto" if req.outcome == "approve" and req.decided_by == "auto" else req.outcome
        if decided in STEP_TEXTS:
            at = req.decided_at or req.created_at
            lines.append(((-1, 1), {**_BLANK, "at": at, "text": STEP_TEXTS[decided]}))
    times: dict[int, int] = {}
    if status.ret is not None:
        for entry in status.ret.timeline:
            times.setdefault(entry.block_number, entry.at)
            if isinstance(entry.detail, returns_store.ReturnRow):
                continue  # the exchange's authorization says it
            line = {**_BLANK, **timeline_entry(entry)}
            disputed = (
                isinstance(entry.detail, returns_store.TransitionRow) and state_name(entry.detail.state) == "disputed"
            )
            if mismatch and disputed:
                line = {**line, "text": UNIT_MISMATCH}
            lines.append(((entry.block_number, entry.log_index), line))
    if status.exchange is not None:
        x = status.exchange.exchange
        authorized = {**_BLANK, "at": times.get(x.block_number), "tx_hash": x.tx_hash, "block": x.block_number}
        text = STEP_TEXTS["authorized_instant" if x.instant else "authorized"]
        lines.append(((x.block_number, status.exchange.log_index), {**authorized, "text": text}))
        for step in status.exchange.steps:
            line = {**_BLANK, "at": times.get(step.block_number), "tx_hash": step.tx_hash, "block": step.block_number}
            lines.append(((step.block_number, step.log_index), {**line, "text": STEP_TEXTS[step.kind]}))
    return [line for _, line in sorted(lines, key=lambda pair: pair[0])]


NEXT_STEPS = {
    "review": "The merchant reviews your request; this page shows the decision.",
    "declined": "You can still ask for a return of the item on the purchase page.",
    "processing": "The exchange is being approved; this page shows it in a moment.",
    "mismatch": "The merchant's scan found another unit than the one you bought. An arbiter decides; keep your "
    "shipping receipt.",
    "pay": "Pay the price difference of {amount} to the merchant: the replacement is released once the merchant "
    "records your payment.",
    "ship": "Send the original item back by {day} with the return label.",
    "standard": "The replacement ships when the carrier first scans your parcel.",
    "released": "The replacement is on its way to you.",
    "releasing": "The replacement is being released now that your parcel is on its way.",
    "refund": "You get {amount} back once the merchant has inspected the original.",
    "done": "Nothing to do: the exchange is complete.",
}
"""What the consumer must do next, or wait for (catalog texts)."""


def _next_steps(
    svc: Services, t: Translator, status: ExchangeStatus, mismatch: bool
) -> list[tuple[str, dict[str, str]]]:
    """What the consumer must do now (or wait for): :data:`NEXT_STEPS` texts with their values."""
    req, row = status.request, status.exchange.exchange if status.exchange is not None else None
    ret = status.ret.ret if status.ret is not None else None
    if row is None or ret is None:
        if req is not None and req.outcome == "manual_review":
            return [(NEXT_STEPS["review"], {})]
        if req is not None and req.outcome == "reject":
            return [(NEXT_STEPS["declined"], {})]
        return [(NEXT_STEPS["processing"], {})]
    if mismatch:
        return [(NEXT_STEPS["mismatch"], {})]
    state = state_name(ret.state)
    steps: list[tuple[str, dict[str, str]]] = []
    if row.price_difference > 0 and not row.extra_paid and state not in ("cancelled", "expired"):
        steps.append((NEXT_STEPS["pay"], {"amount": money(svc, row.token, row.price_difference) or ""}))
    if state == "authorized" and chain_now(svc.store) <= ret.ship_by:
        steps.append((NEXT_STEPS["ship"], {"day": t.date(ret.ship_by)}))
    if state == "authorized" and not row.released and not row.instant:
        steps.append((NEXT_STEPS["standard"], {}))
    if row.released:
        steps.append((NEXT_STEPS["released"], {}))
    elif state in ("in_transit", "received") and row.price_difference <= 0:
        steps.append((NEXT_STEPS["releasing"], {}))
    if state in ("in_transit", "received") and row.price_difference < 0:
        steps.append((NEXT_STEPS["refund"], {"amount": money(svc, row.token, -row.price_difference) or ""}))
    if not steps:
        steps.append((NEXT_STEPS["done"], {}))
    return steps
