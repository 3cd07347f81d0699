"""The merchant console's returns (``/merchant/returns``): the list with filters (state, authorization date),
and a return's page: its escrow (deposit, fee, deadlines, the payout with its transaction), its timeline, and
the actions the contract allows the merchant now (:func:`ledger_service.returns.views.merchant_actions`:
reclaiming the deposit of a return never shipped, or of a failed inspection nobody disputed).

Filters are a plain GET form (the page's address keeps them); a malformed date is the page with the reason and
the filters as typed. Reclaiming is a console form (:func:`web.merchant.submit`: CSRF, sent once).
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from api.deps import services_of
from ledger_service.access import Actor
from ledger_service.core.codes import ReturnState
from ledger_service.errors import InvalidRequestError, LedgerError
from ledger_service.logistics.tracking import return_tracking
from ledger_service.returns import chain_now, reclaim
from ledger_service.returns.labels import label_code
from ledger_service.returns.views import (
    ListState,
    list_merchant_returns,
    merchant_actions,
    return_status,
    state_name,
)
from ledger_service.store.returns import DAY
from web.consumer import REASON_NAMES, money, tracking_entry, wait_indexed
from web.forms import csrf_token, page_form
from web.i18n import Sentence
from web.merchant import CONSOLE, documents_shown, signals_shown, submit
from web.render import error_sentence, new_form_key, page, redirect, translator
from web.words import merchant_state

router = APIRouter(prefix="/merchant", include_in_schema=False)

PAGE_SIZE = 25
MAX_PAGE = 10_000
_RETURN_ID = re.compile(r"^0x[0-9a-f]{64}$")
STATES = tuple(s for s in ListState if s is not ListState.PENDING_REVIEW)
"""The states the list filters on (the queue of requests waiting for review is the console's first page)."""


def _day(text: str) -> int | None:
    """A filter's date (``YYYY-MM-DD``, as a date input sends it) as the first second of that UTC day."""
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        shown = text[:40]
        raise InvalidRequestError(f"{shown} is not a date like 2026-12-31") from None
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _list_page(request: Request, *, state: str, since: str, until: str, number: int) -> Response:
    session = CONSOLE.session(request)
    if isinstance(session, Response):
        return session
    actor, _ = session
    svc = services_of(request)
    filters = {"state": state, "from": since, "to": until}
    rows: list[dict[str, Any]] = []
    count = 0
    error: Sentence | None = None
    status = 200
    try:
        if state and state not in {s.value for s in STATES}:
            shown = state[:40]
            raise InvalidRequestError(f"there is no return state {shown}; pick one from the list")
        start, end = _day(since), _day(until)
        if start is not None and end is not None and end < start:
            raise InvalidRequestError("the to date is before the from date; swap them")
        listing = list_merchant_returns(
            svc.store,
            merchant=actor.account,
            states=(ListState(state),) if state else (),
            created_from=start,
            created_to=None if end is None else end + DAY - 1,
            limit=PAGE_SIZE,
            offset=(number - 1) * PAGE_SIZE,
        )
        count = listing.count
        rows = [
            {
                "id": r.return_id,
                "label": label_code(r.return_id),
                "item_id": r.item_id,
                "state": merchant_state(state_name(r.state)),
                "amount": money(svc, r.token, r.amount),
                "at": r.authorized_at,
                "reason": listing.reason_codes.get(r.return_id),
            }
            for r in listing.returns
        ]
    except LedgerError as exc:
        status, error = error_sentence(request, exc)
    pages = max(1, -(-count // PAGE_SIZE))
    return page(
        request,
        "merchant/returns.html",
        status=status,
        error=error,
        actor=actor,
        rows=rows,
        count=count,
        filters=filters,
        states=[(s.value, merchant_state(s.value)) for s in STATES],
        number=number,
        pages=pages,
    )


@router.get("/returns")
def returns_list(
    request: Request,
    state: Annotated[str, Query(max_length=40)] = "",
    since: Annotated[str, Query(alias="from", max_length=40)] = "",
    until: Annotated[str, Query(alias="to", max_length=40)] = "",
    number: Annotated[int, Query(alias="page", ge=1, le=MAX_PAGE)] = 1,
) -> Response:
    """The merchant's returns, newest authorization first, filtered by state and authorization day (UTC)."""
    return _list_page(request, state=state.strip(), since=since.strip(), until=until.strip(), number=number)


def _return_page(
    request: Request, actor: Actor, key: str, return_id: str, *, status: int = 200, error: Sentence | None = None
) -> Response:
    svc = services_of(request)
    t = translator(request)
    try:
        if not _RETURN_ID.match(return_id):
            shown = return_id[:80]
            raise InvalidRequestError(f"no return {shown} of this merchant")
        found = return_status(svc.store, return_id, merchant=actor.account)
    except LedgerError as exc:
        code, sentence = error_sentence(request, exc)
        return page(request, "merchant/return.html", status=code, error=sentence, actor=actor, ret=None)
    detail = found.detail
    assert detail is not None  # a return id names a return
    ret = detail.ret
    now = chain_now(svc.store)
    tracking = return_tracking(svc.store, return_id, merchant=actor.account)  # the carrier's events with the steps
    payout = None
    if detail.payout is not None:
        p = detail.payout
        payout = {
            "consumer": money(svc, p.token, p.consumer_amount),
            "merchant": money(svc, p.token, p.merchant_amount),
            "at": p.paid_at,
            "tx_hash": p.tx_hash,
            "block": p.block_number,
        }
    waiting = None
    if ret.state is ReturnState.AUTHORIZED and now <= ret.ship_by:
        waiting = t("If it is not shipped by {day}, you can take the deposit back.", day=t.moment(ret.ship_by))
    elif ret.state is ReturnState.REJECTED and ret.dispute_by is not None and now <= ret.dispute_by:
        waiting = t(
            "If the consumer does not dispute the inspection by {day}, you can take the deposit back.",
            day=t.moment(ret.dispute_by),
        )
    return page(
        request,
        "merchant/return.html",
        status=status,
        error=error,
        actor=actor,
        ret=ret,
        label=label_code(ret.return_id),
        state=merchant_state(state_name(ret.state)),
        amount=money(svc, ret.token, ret.amount),
        fee=money(svc, ret.token, ret.amount * ret.fee_bps // 10_000),
        payout=payout,
        timeline=[tracking_entry(e) for e in tracking.entries],
        shipment=tracking.shipment,
        actions=merchant_actions(ret, now=now),
        waiting=waiting,
        reason=found.request.reason_code if found.request is not None else None,
        reason_name=REASON_NAMES.get(found.request.reason_code) if found.request is not None else None,
        comment=found.request.comment if found.request is not None else None,
        documents=documents_shown(request, found.request.documents) if found.request is not None else [],
        signals=signals_shown(
            svc.store,
            t.lang,
            consumer=ret.consumer,
            merchant=ret.merchant,
            now=now,
            return_id=ret.return_id,
            item_id=ret.item_id,
        ),
        csrf=csrf_token(key),
        form_key=new_form_key(),
    )


@router.get("/returns/{return_id}")
def return_page(request: Request, return_id: str) -> Response:
    """One return: its escrow, its timeline, and what the merchant can do now."""
    session = CONSOLE.session(request)
    if isinstance(session, Response):
        return session
    actor, key = session
    return _return_page(request, actor, key, return_id.lower())


@router.post("/returns/{return_id}/reclaim")
async def reclaim_deposit(request: Request, return_id: str) -> Response:
    """Takes the deposit back (``reclaim`` on the escrow), when the contract allows it."""
    form = await page_form(request)
    return await anyio.to_thread.run_sync(functools.partial(_reclaim, request, return_id.lower(), form))


def _reclaim(request: Request, return_id: str, form: FormData) -> Response:
    session = CONSOLE.session(request)
    if isinstance(session, Response):
        return session
    actor, key = session
    svc = services_of(request)
    if not _RETURN_ID.match(return_id):
        return page(request, "not_found.html", status=404)

    def produce() -> str:
        tx = reclaim(store=svc.store, chain=svc.chain, merchant=actor.account, return_id=return_id)
        wait_indexed(svc, tx.block_number)
        return f"/merchant/returns/{return_id}"

    path = f"/merchant/returns/{return_id}/reclaim"
    try:
        location = submit(request, actor=actor, key=key, form=form, path=path, fields=[], produce=produce)
    except LedgerError as exc:
        status, sentence = error_sentence(request, exc)
        return _return_page(request, actor, key, return_id, status=status, error=sentence)
    return redirect(location)
