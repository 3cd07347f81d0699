"""The merchant console's business pages: the dashboard (``/merchant/dashboard``), sales
(``/merchant/sales``) and the policy editor (``/merchant/policy``).

- Dashboard: the merchant's counts from the index (:func:`ledger_service.returns.views.merchant_dashboard`:
  sales, returns by state, the review queue, sales and returns per day over 30 days), as tables that need no
  JavaScript, and as Apache ECharts charts (from npm, served by ``/static/``) that this page alone loads.
- Sales: newest first, each with the policy version it is bound to (linked to that version) and its returns.
- Policy editor: publishes a new version (:func:`ledger_service.returns.publish_policy`, what
  ``POST /v1/merchants/me/policy`` does), checked as that route checks its body
  (:class:`api.schemas.policies.PolicyCreate`); a field out of range is the form again with the rule in the
  page's language and everything as typed. Every published version is listed with the number of sales bound
  to it, so the terms in force for a past sale stay readable.
"""

from __future__ import annotations

import functools
import re
import time
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Request
from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.responses import Response

from api.deps import services_of
from api.schemas.policies import PolicyCreate
from ledger_service.access import Actor
from ledger_service.errors import InvalidRequestError, LedgerError
from ledger_service.returns import chain_now, publish_policy
from ledger_service.returns.views import merchant_dashboard, merchant_sales, policy_history
from web.consumer import money, wait_indexed
from web.forms import csrf_token, page_form
from web.i18n import Sentence
from web.merchant import CONSOLE, submit
from web.render import error_sentence, new_form_key, page, redirect, translator
from web.words import MERCHANT_STATES

router = APIRouter(prefix="/merchant", include_in_schema=False)

SALES_PAGE_SIZE = 25
MAX_PAGE = 10_000
DASHBOARD_DAYS = 30

INTEGER_FIELDS = (
    "window_days",
    "restocking_fee_bps",
    "ship_by_days",
    "inspect_by_days",
    "dispute_window_days",
    "fast_refund_max_returns_90d",
)
AMOUNT_FIELDS = ("fast_refund_max_value", "manual_review_above_value")
LIST_FIELDS = ("non_returnable_categories", "accepted_reasons", "manual_review_reasons")
TEXT_FIELDS = ("title", "text", "return_address")
POLICY_RULES: dict[str, str] = {
    "window_days": "The return window is a whole number of days from 1 to 365.",
    "restocking_fee_bps": "The restocking fee is a whole number of basis points from 0 to 5000 (0 to 50%).",
    "ship_by_days": "Ship by is a whole number of days from 1 to 90.",
    "inspect_by_days": "Inspect by is a whole number of days from 1 to 90.",
    "dispute_window_days": "The dispute window is a whole number of days from 1 to 90.",
    "fast_refund_max_returns_90d": "The fast refund's returns limit is a whole number from 0 to 65535.",
    "fast_refund_max_value": "Amounts are whole numbers of the token's smallest unit, 0 or more.",
    "manual_review_above_value": "Amounts are whole numbers of the token's smallest unit, 0 or more.",
    "non_returnable_categories": "Categories and reasons are labels of letters, digits and _ . : - (at most 64 "
    "characters each, 100 in all), separated by commas.",
    "accepted_reasons": "Categories and reasons are labels of letters, digits and _ . : - (at most 64 characters "
    "each, 100 in all), separated by commas.",
    "manual_review_reasons": "Categories and reasons are labels of letters, digits and _ . : - (at most 64 "
    "characters each, 100 in all), separated by commas.",
    "title": "The title is one line of at most 200 characters.",
    "text": "The wording is at most 20000 characters.",
    "return_address": "The return address is at most 6 lines and 300 characters.",
}
"""The rule of each field of the policy form, shown when what was typed breaks it (catalog texts)."""
_LABELS = re.compile(r"[\s,]+")
FIRST_POLICY = {
    "window_days": "30",
    "restocking_fee_bps": "0",
    "ship_by_days": "14",
    "inspect_by_days": "14",
    "dispute_window_days": "14",
    "fast_refund_max_returns_90d": "0",
    "fast_refund_max_value": "0",
    "manual_review_above_value": "0",
}
"""The form's values before the merchant's first version."""


class PolicyFieldError(InvalidRequestError):
    """A field of the policy form breaks its rule (:data:`POLICY_RULES`)."""

    def __init__(self, field: str) -> None:
        super().__init__(POLICY_RULES[field])
        self.field = field


# ---- dashboard -------------------------------------------------------------------------------------------


@router.get("/dashboard")
def dashboard(request: Request) -> Response:
    """The merchant's counts, as tables and charts."""
    session = CONSOLE.session(request)
    if isinstance(session, Response):
        return session
    actor, _ = session
    t = translator(request)
    store = services_of(request).store
    board = merchant_dashboard(store, merchant=actor.account, now=chain_now(store), days=DASHBOARD_DAYS)
    by_state = [
        {"name": t(MERCHANT_STATES.get(state.name.lower(), state.name.lower())), "count": count}
        for state, count in sorted(board.returns_by_state.items(), key=lambda pair: int(pair[0]))
    ]
    days = [t.date(day) for day in board.days]
    chart = {
        "days": [time.strftime("%m-%d", time.gmtime(day)) for day in board.days],
        "sales": list(board.sales_per_day),
        "returns": list(board.returns_per_day),
        "states": [row["name"] for row in by_state],
        "stateCounts": [row["count"] for row in by_state],
        "labels": {"sales": t("Sales"), "returns": t("Returns"), "count": t("Count")},
    }
    per_day = [
        {"day": day, "sales": sold, "returns": returned}
        for day, sold, returned in zip(days, board.sales_per_day, board.returns_per_day, strict=True)
        if sold or returned
    ]
    rate = None if board.return_rate is None else f"{board.return_rate * 100:.1f}%"
    return page(
        request,
        "merchant/dashboard.html",
        actor=actor,
        board=board,
        rate=rate,
        by_state=by_state,
        per_day=per_day,
        chart=chart,
        days=DASHBOARD_DAYS,
    )


# ---- sales -----------------------------------------------------------------------------------------------


@router.get("/sales")
def sales(request: Request, number: Annotated[int, Query(alias="page", ge=1, le=MAX_PAGE)] = 1) -> Response:
    """The merchant's sales, newest first."""
    session = CONSOLE.session(request)
    if isinstance(session, Response):
        return session
    actor, _ = session
    svc = services_of(request)
    found = merchant_sales(
        svc.store, merchant=actor.account, limit=SALES_PAGE_SIZE, offset=(number - 1) * SALES_PAGE_SIZE
    )
    rows = [
        {
            "item_id": s.item_id,
            "at": s.sold_at,
            "price": money(svc, s.token, s.price),
            "policy_version": s.policy_version,
            "returns": s.returns,
            "closed": s.closed,
            "tx_hash": s.tx_hash,
        }
        for s in found.rows
    ]
    pages = max(1, -(-found.count // SALES_PAGE_SIZE))
    return page(request, "merchant/sales.html", actor=actor, rows=rows, count=found.count, number=number, pages=pages)


# ---- policy ----------------------------------------------------------------------------------------------


def _typed_from_current(request: Request, actor: Actor) -> dict[str, str]:
    """The form's starting values: the current version's, or the API's defaults before the first one."""
    versions = policy_history(services_of(request).store, actor.account)
    if not versions:
        return dict(FIRST_POLICY)
    row, document = versions[0].row, versions[0].document
    typed = {name: str(getattr(row, name)) for name in (*INTEGER_FIELDS, "fast_refund_max_value")}
    typed["fast_refund"] = "on" if row.fast_refund else ""
    if document is not None:
        typed["manual_review_above_value"] = str(document.manual_review_above_value)
        for name in LIST_FIELDS:
            typed[name] = ", ".join(sorted(getattr(document, name)))
        typed["title"], typed["text"] = document.title, document.text
        typed["return_address"] = document.return_address
    return typed


def _policy_page(
    request: Request,
    actor: Actor,
    key: str,
    *,
    typed: dict[str, str] | None = None,
    status: int = 200,
    error: Sentence | None = None,
    field: str | None = None,
) -> Response:
    store = services_of(request).store
    versions = policy_history(store, actor.account)
    bound = merchant_dashboard(store, merchant=actor.account, now=chain_now(store), days=1).sales_by_policy
    return page(
        request,
        "merchant/policy.html",
        status=status,
        error=error,
        field=field,
        actor=actor,
        typed=typed if typed is not None else _typed_from_current(request, actor),
        versions=[{"v": v, "sales": bound.get(v.row.version, 0)} for v in versions],
        csrf=csrf_token(key),
        form_key=new_form_key(),
    )


@router.get("/policy")
def policy(request: Request) -> Response:
    """The form to publish a new version, prefilled with the current one, and every published version."""
    session = CONSOLE.session(request)
    if isinstance(session, Response):
        return session
    actor, key = session
    return _policy_page(request, actor, key)


def policy_body(typed: dict[str, str]) -> PolicyCreate:
    """The typed form as the API's request body; :class:`InvalidRequestError` with the broken field's rule
    (its ``field`` attribute names the field)."""
    body: dict[str, Any] = {"fast_refund": typed.get("fast_refund") == "on"}
    for name in INTEGER_FIELDS:
        value = typed.get(name, "").strip()
        if not re.fullmatch(r"-?\d{1,9}", value):
            raise PolicyFieldError(name)
        body[name] = int(value)
    for name in AMOUNT_FIELDS:
        value = typed.get(name, "").strip() or "0"
        if not re.fullmatch(r"\d{1,78}", value):
            raise PolicyFieldError(name)
        body[name] = value
    for name in LIST_FIELDS:
        body[name] = [label for label in _LABELS.split(typed.get(name, "")) if label]
    for name in TEXT_FIELDS:
        body[name] = typed.get(name, "").strip()
    try:
        return PolicyCreate.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]["loc"]
        name = str(first[0]) if first else "text"
        raise PolicyFieldError(name if name in POLICY_RULES else "text") from None


@router.post("/policy")
async def publish(request: Request) -> Response:
    """Publishes the form as a new version (on-chain), then shows the versions with the new one."""
    form = await page_form(request)
    return await anyio.to_thread.run_sync(functools.partial(_publish, request, form))


def _publish(request: Request, form: FormData) -> Response:
    session = CONSOLE.session(request)
    if isinstance(session, Response):
        return session
    actor, key = session
    svc = services_of(request)
    names = (*INTEGER_FIELDS, *AMOUNT_FIELDS, *LIST_FIELDS, *TEXT_FIELDS, "fast_refund")
    typed = {name: value for name in names if isinstance(value := form.get(name), str)}

    def produce() -> str:
        body = policy_body(typed)
        published = publish_policy(
            store=svc.store,
            chain=svc.chain,
            merchant=actor.account,
            document=body.to_document(),
            documents=svc.documents,
        )
        wait_indexed(svc, published.tx.block_number)
        return f"/merchant/policy#v{published.version}"

    try:
        location = submit(
            request,
            actor=actor,
            key=key,
            form=form,
            path="/merchant/policy",
            fields=sorted(typed.items()),
            produce=produce,
        )
    except LedgerError as exc:
        status, sentence = error_sentence(request, exc)
        field = exc.field if isinstance(exc, PolicyFieldError) else None
        return _policy_page(request, actor, key, typed=typed, status=status, error=sentence, field=field)
    return redirect(location)
