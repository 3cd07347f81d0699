"""The merchant console's analytics page (``/merchant/analytics``): why goods come back and what to change.

The merchant's own figures over a period (default: the 90 days up to today; ``?from=&to=`` as dates) from
:mod:`ledger_service.analytics.report`: the return rate per month and the reasons' shares as server-rendered
SVG bar charts (no JavaScript), the comments' themes, outcomes and money, speed, and the suggestions in the
page's language with the figures behind each. Each table is also a CSV download
(``/merchant/analytics/<table>.csv``, the same columns as ``GET /v1/analytics/...?format=csv``). A range
that is reversed or longer than five years is the page again with the rule in the page's language.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from api.deps import Services, services_of
from api.suggestions import suggestions_of
from ledger_service.access import Actor
from ledger_service.analytics import report
from ledger_service.analytics.suggestions import REASON_WORDS
from ledger_service.core.days import date_of
from ledger_service.core.spreadsheet import csv_table
from ledger_service.errors import InvalidRequestError
from ledger_service.store.analytics import Scope
from ledger_service.store.handle import Store
from web.consumer import money
from web.merchant import CONSOLE
from web.render import page, translator

router = APIRouter(prefix="/merchant", include_in_schema=False)

RATE_BAR, REASON_BAR = 160.0, 120.0
"""The longest bar of each chart, in the SVG's units: pixels. A chart is drawn at its own size, about 300 px wide
with its labels, so its text matches the page's on a desktop and stays readable on a 360 px phone (where it
would shrink if wider); each bar's figure follows it."""
ROW_HEIGHT = 28
Table = Literal["rates", "reasons", "themes", "outcomes", "speed", "suggestions"]
METRIC_NAMES = {
    "request_refund": "Request to refund",
    "scan_refund": "First scan to refund",
    "delivery_inspection": "Delivery to inspection",
}
OUTCOME_NAMES = {
    "approve": "Approved by the rules",
    "reject": "Refused by the rules",
    "manual_review": "Sent to manual review",
}


def _scope(store: Store, actor: Actor, first: dt.date | None, last: dt.date | None) -> Scope:
    today = dt.datetime.now(dt.UTC).date()
    return report.scope(store, merchant=actor.address, gtin=None, first=first, last=last, today=today, own=True)


def _reason(code: str, lang: str) -> str:
    words = REASON_WORDS.get(code)
    if words is None:
        return code
    return words[1] if lang == "zh" else words[0][:1].upper() + words[0][1:]


def _bars(values: list[tuple[str, float, str]], longest: float) -> list[dict[str, Any]]:
    """(label, value, shown) as bars scaled to the largest value, which is ``longest`` long."""
    top = max((v for _, v, _ in values), default=0.0) or 1.0
    return [
        {"label": label, "width": round(longest * value / top, 2), "shown": shown, "y": ROW_HEIGHT * i}
        for i, (label, value, shown) in enumerate(values)
    ]


def _amounts(svc: Services, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The outcomes' amounts as people read them (``45.00 dUSD``), each in its row's token; the integer base
    units for requests whose sale the index does not have."""
    return [
        {**r, **{f"{k}_shown": money(svc, str(r["token"]), int(r[k] or 0)) if r["token"] else str(r[k])
                 for k in ("refund", "fee_kept", "outstanding")}}
        for r in rows
    ]  # fmt: skip


def _tables(store: Store, scope: Scope) -> dict[str, list[dict[str, Any]]]:
    return {
        "rates": report.rates(store, scope, by="month"),
        "reasons": report.reasons(store, scope),
        "themes": report.themes(store, scope, limit=10),
        "outcomes": report.outcomes(store, scope),
        "speed": report.speed(store, scope),
        "suggestions": report.suggestion_rows(suggestions_of(store, scope)),
    }


@router.get("/analytics")
def analytics(
    request: Request,
    first: Annotated[dt.date | None, Query(alias="from")] = None,
    last: Annotated[dt.date | None, Query(alias="to")] = None,
) -> Response:
    """The merchant's analytics over the period."""
    session = CONSOLE.session(request)
    if isinstance(session, Response):
        return session
    actor, _ = session
    t = translator(request)
    store = services_of(request).store
    try:
        scope = _scope(store, actor, first, last)
    except InvalidRequestError as exc:
        return page(request, "merchant/analytics.html", status=422, actor=actor, problem=t.sentence(str(exc)),
                    first=first, last=last, tables=None)  # fmt: skip
    tables = _tables(store, scope)
    tables["outcomes"] = _amounts(services_of(request), tables["outcomes"])
    sold = sum(int(r["sold"] or 0) for r in tables["rates"])
    returned = sum(int(r["returns"] or 0) for r in tables["rates"])
    exchanged = sum(int(r["exchanges"] or 0) for r in tables["rates"])
    rate_bars = _bars(
        [(str(r["period_start"])[:7], float(r["rate"] or 0.0), f"{float(r['rate'] or 0.0) * 100:.1f}%")
         for r in tables["rates"]], RATE_BAR
    )  # fmt: skip
    reason_bars = _bars(
        [(_reason(str(r["reason_code"]), t.lang), float(r["share"] or 0.0), f"{float(r['share'] or 0.0) * 100:.0f}%")
         for r in tables["reasons"]], REASON_BAR
    )  # fmt: skip
    found = suggestions_of(store, scope)
    return page(
        request,
        "merchant/analytics.html",
        actor=actor,
        problem=None,
        first=date_of(scope.first),
        last=date_of(scope.last),
        tables=tables,
        sold=sold,
        returned=returned,
        exchanged=exchanged,
        rate=None if sold == 0 else f"{returned / sold * 100:.1f}%",
        rate_bars=rate_bars,
        reason_bars=reason_bars,
        rate_bar=int(RATE_BAR),
        reason_bar=int(REASON_BAR),
        row_height=ROW_HEIGHT,
        reason_name=lambda code: _reason(code, t.lang),
        suggestions=[{"text": x.text_zh if t.lang == "zh" else x.text_en, "figures": dict(x.figures)} for x in found],
        metric_names=METRIC_NAMES,
        outcome_names=OUTCOME_NAMES,
    )


@router.get("/analytics/{table}.csv")
def export(
    request: Request,
    table: Table,
    first: Annotated[dt.date | None, Query(alias="from")] = None,
    last: Annotated[dt.date | None, Query(alias="to")] = None,
) -> Response:
    """One table of the page as CSV."""
    session = CONSOLE.session(request)
    if isinstance(session, Response):
        return session
    actor, _ = session
    store = services_of(request).store
    rows = _tables(store, _scope(store, actor, first, last))[table]
    return Response(csv_table(rows), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="analytics-{table}.csv"'})  # fmt: skip
