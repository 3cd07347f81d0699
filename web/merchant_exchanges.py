"""The merchant console's exchanges (``/merchant/exchanges``): the queue of exchange requests waiting for a
decision (each naming the replacement and the price difference the recorded prices give now; approve, choosing
an instant or a standard exchange when the terms offer instant ones, or reject with a reason), and the open
exchanges: the difference, the consumer's payment (recorded here when the replacement costs more), the
replacement's release, the instant exchanges' collateral outstanding and the original's ship-by deadline.

Every form is a console form (:func:`web.merchant.submit`: CSRF, sent once); actions go through the same domain
functions as ``POST /v1/exchanges/{id}/approve``, ``/reject``, ``/payment`` and ``/release``.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import anyio
from fastapi import APIRouter, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from api.deps import Services, services_of
from ledger_service.access import Actor
from ledger_service.errors import InvalidRequestError, LedgerError
from ledger_service.returns import chain_now
from ledger_service.returns.exchanges import (
    approve_exchange,
    check_exchange,
    list_exchanges,
    record_payment,
    reject_exchange,
    release_due,
)
from ledger_service.returns.views import state_name
from ledger_service.store import exchanges as exchanges_store
from ledger_service.store import returns as returns_store
from ledger_service.store.exchanges import ExchangeRow
from ledger_service.store.returns import ReturnRequestRow
from web.consumer import REASON_NAMES, difference_text, money, wait_indexed
from web.forms import csrf_token, page_form
from web.i18n import Sentence
from web.merchant import CONSOLE, NOTE_MAX_LENGTH, submit
from web.render import error_sentence, new_form_key, page, redirect
from web.words import merchant_state

router = APIRouter(prefix="/merchant", include_in_schema=False)

LIST_LIMIT = 50
PAYMENT_REF_MAX_LENGTH = 200
_REQUEST_ID = re.compile(r"^rr_[0-9a-f]{32}$")
_EXCHANGE_ID = re.compile(r"^0x[0-9a-f]{64}$")
_ACTIONS = ("approve", "reject", "payment", "release")


def _queued(svc: Services, row: ReturnRequestRow) -> dict[str, Any]:
    """A queued request as the queue shows it: the replacement and the difference the prices give now (None
    when the replacement is no longer available: approving then says why), whether instant can be chosen."""
    assert row.replacement_item_id is not None
    found = check_exchange(store=svc.store, item_id=row.item_id, requester=row.consumer, reason_code=None)
    unit = exchanges_store.replacement_row(svc.store, row.replacement_item_id)
    sale = found.sale
    difference: tuple[str, str] | None = None
    if sale is not None and unit is not None and unit.list_price:
        difference = difference_text(svc, sale.token, unit.list_price - sale.price)
    return {
        "id": row.id,
        "item_id": row.item_id,
        "replacement": row.replacement_item_id,
        "at": row.created_at,
        "reason": REASON_NAMES.get(row.reason_code, row.reason_code),
        "comment": row.comment,
        "asked_instant": bool(row.instant),
        "instant_offered": found.decision.instant_offered,
        "difference": difference,
    }


def _open(svc: Services, row: ReturnRequestRow, x: ExchangeRow, now: int) -> dict[str, Any]:
    """An authorized exchange: its money, what is still due and the original's deadline."""
    ret = returns_store.return_by_id(svc.store, x.exchange_id)
    state = state_name(ret.state) if ret is not None else "authorized"
    kind, amount = difference_text(svc, x.token, x.price_difference)
    outstanding = x.collateral if x.instant and not x.collateral_settled else 0
    ended = state in ("cancelled", "expired")
    shipped = ret is not None and state != "authorized" and not ended
    # what follow_up would send now: the button is shown only when pressing it can do something
    due = (not x.released and not ended and (x.instant or shipped)) or (outstanding > 0 and shipped)
    return {
        "id": x.exchange_id,
        "item_id": x.original_item_id,
        "replacement": x.replacement_item_id,
        "at": row.created_at,
        "instant": x.instant,
        "state": merchant_state(state),
        "kind": kind,
        "difference": amount,
        "extra_paid": x.extra_paid,
        "released": x.released,
        "collateral": money(svc, x.token, outstanding) if outstanding else None,
        "outstanding": outstanding,
        "token": x.token,
        "ship_by": ret.ship_by if ret is not None and state == "authorized" else None,
        "late": ret is not None and state == "authorized" and now > ret.ship_by,
        "needs_payment": x.price_difference > 0 and not x.extra_paid,
        "ended": ended,
        "due": due,
    }


def _exchanges_page(
    request: Request, actor: Actor, key: str, *, status: int = 200, error: Sentence | None = None
) -> Response:
    svc = services_of(request)
    now = chain_now(svc.store)
    queued_rows, queued_count = list_exchanges(
        svc.store, merchant=actor.account, outcomes=("manual_review",), limit=LIST_LIMIT
    )
    approved_rows, approved_count = list_exchanges(
        svc.store, merchant=actor.account, outcomes=("approve",), limit=LIST_LIMIT
    )
    open_ = [_open(svc, r, x, now) for r, x in approved_rows if x is not None]
    totals: dict[str, int] = {}
    for x in open_:
        if x["outstanding"]:
            totals[x["token"]] = totals.get(x["token"], 0) + x["outstanding"]
    return page(
        request,
        "merchant/exchanges.html",
        status=status,
        error=error,
        actor=actor,
        queue=[_queued(svc, r) for r, _ in queued_rows],
        queued_count=queued_count,
        exchanges=open_,
        approved_count=approved_count,
        outstanding=[money(svc, token, amount) for token, amount in sorted(totals.items())],
        csrf=csrf_token(key),
        form_key=new_form_key(),
        note_max=NOTE_MAX_LENGTH,
    )


@router.get("/exchanges")
def exchanges(request: Request) -> Response:
    """The exchange queue and the open exchanges."""
    session = CONSOLE.session(request)
    if isinstance(session, Response):
        return session
    actor, key = session
    return _exchanges_page(request, actor, key)


@router.post("/exchanges/{exchange_id}/{action}")
async def exchange_action(request: Request, exchange_id: str, action: str) -> Response:
    """Approve or reject a queued request (by its request id); record a payment or send what is due on an
    authorized exchange (by its exchange id)."""
    form = await page_form(request)
    return await anyio.to_thread.run_sync(functools.partial(_act, request, exchange_id.lower(), action, form))


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _act(request: Request, target: str, action: str, form: FormData) -> Response:
    by_request = action in ("approve", "reject")
    if action not in _ACTIONS or not (_REQUEST_ID if by_request else _EXCHANGE_ID).match(target):
        return page(request, "not_found.html", status=404)
    session = CONSOLE.session(request)
    if isinstance(session, Response):
        return session
    actor, key = session
    svc = services_of(request)
    note, payment_ref, instant = _text(form, "note"), _text(form, "payment_ref"), _text(form, "instant")
    fields = [("note", note), ("payment_ref", payment_ref), ("instant", instant)]

    def produce() -> str:
        block: int | None = None
        if action == "approve":
            result = approve_exchange(
                store=svc.store,
                chain=svc.chain,
                merchant=actor.account,
                request_id=target,
                instant=None if instant == "" else instant == "1",
            )
            last = result.follow_up.released if result.follow_up and result.follow_up.released else result.tx
            block = None if last is None else last.block_number
        elif action == "reject":
            reject_exchange(store=svc.store, merchant=actor.account, request_id=target, note=note or None)
        elif action == "payment":
            tx, after = record_payment(
                store=svc.store, chain=svc.chain, merchant=actor.account, exchange_id=target, payment_ref=payment_ref
            )
            block = (after.collateral_released or after.released or tx).block_number
        else:
            after = release_due(store=svc.store, chain=svc.chain, merchant=actor.account, exchange_id=target)
            last = after.collateral_released or after.released
            block = None if last is None else last.block_number
        if block is not None:
            wait_indexed(svc, block)
        return "/merchant/exchanges"

    try:
        if action == "reject" and len(note) > NOTE_MAX_LENGTH:
            raise InvalidRequestError(f"the note is longer than {NOTE_MAX_LENGTH} characters; shorten it")
        if action == "payment" and not payment_ref:
            raise InvalidRequestError("Type the reference of the consumer's payment (your order or receipt number).")
        if action == "payment" and len(payment_ref) > PAYMENT_REF_MAX_LENGTH:
            raise InvalidRequestError(
                f"the payment reference is longer than {PAYMENT_REF_MAX_LENGTH} characters; shorten it"
            )
        path = f"/merchant/exchanges/{target}/{action}"
        location = submit(request, actor=actor, key=key, form=form, path=path, fields=fields, produce=produce)
    except LedgerError as exc:
        status, sentence = error_sentence(request, exc)
        return _exchanges_page(request, actor, key, status=status, error=sentence)
    return redirect(location)
