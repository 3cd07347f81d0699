"""Return analytics (``GET /v1/analytics/...``): rates, reasons, themes, outcomes and money, speed, suggestions.

A merchant key reads its own merchant's figures (``merchant`` may be omitted or must be its own); auditor and
admin keys read every merchant's together, or one merchant's with ``?merchant=``. Every table is also served
as CSV: ``?format=csv`` (``text/csv``, a header line, one row per line). Dates are UTC days, ``from`` and
``to`` both included (default: the 90 days up to today); the figures are as of the last refresh of the
rollups (``LEDGER_ANALYTICS_REFRESH_S``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from starlette.responses import JSONResponse, Response
from web3.exceptions import Web3Exception

from api.deps import ChainDep, StoreDep, require_role
from api.problems import problem_responses
from api.routers._present import csv_download
from api.schemas.common import Address
from api.suggestions import suggestions_of
from ledger_service.access import Actor, Role
from ledger_service.analytics import report
from ledger_service.core.spreadsheet import csv_table
from ledger_service.errors import PermissionDeniedError, RetryableError
from ledger_service.store.analytics import Scope

router = APIRouter(prefix="/analytics", tags=["analytics"])

ReaderDep = Annotated[Actor, Depends(require_role(Role.MERCHANT, Role.AUDITOR, Role.ADMIN))]
MerchantQuery = Annotated[
    Address | None, Query(description="one merchant's figures (auditors, admins); a merchant key: its own only")
]
GtinQuery = Annotated[int | None, Query(ge=0, lt=10**14, description="one GTIN's figures")]
FromQuery = Annotated[dt.date | None, Query(alias="from", description="first UTC day (default: 89 days before to)")]
ToQuery = Annotated[dt.date | None, Query(alias="to", description="last UTC day, included (default: today)")]
FormatQuery = Annotated[Literal["json", "csv"], Query(alias="format", description="json, or csv for the table")]

ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": 'The table: JSON ``{"data": [...], "count": n}``, or CSV with ``?format=csv``',
        "content": {"text/csv": {"schema": {"type": "string"}}},
    },
    **problem_responses(403, 404, 422),
}


def _scope(
    actor: ReaderDep,
    store: StoreDep,
    merchant: MerchantQuery = None,
    gtin: GtinQuery = None,
    first: FromQuery = None,
    last: ToQuery = None,
) -> Scope:
    """The figures a request may read: a merchant key its own merchant's only."""
    if actor.role == Role.MERCHANT:
        if merchant is not None and merchant.lower() != actor.address:
            raise PermissionDeniedError("a merchant key reads only its own merchant's analytics; drop ?merchant=")
        merchant = actor.address
    today = dt.datetime.now(dt.UTC).date()
    own = actor.role == Role.MERCHANT
    return report.scope(store, merchant=merchant, gtin=gtin, first=first, last=last, today=today, own=own)


ScopeDep = Annotated[Scope, Depends(_scope)]


def _answer(rows: Sequence[dict[str, Any]], fmt: str, name: str) -> Response:
    if fmt == "csv":
        return csv_download(csv_table(rows), f"analytics-{name}.csv")
    return JSONResponse({"data": list(rows), "count": len(rows)})


@router.get("/rates", responses=ANSWERS, summary="Return rate by GTIN, category, merchant, week or month")
def rates(
    scope: ScopeDep,
    store: StoreDep,
    by: Annotated[Literal["gtin", "category", "merchant", "week", "month"], Query()] = "gtin",
    fmt: FormatQuery = "json",
) -> Response:
    """Return requests ÷ items sold, both in the period, with the two counts (``rate`` is null when nothing
    was sold)."""
    return _answer(report.rates(store, scope, by=by), fmt, f"rates-{by}")


@router.get("/reasons", responses=ANSWERS, summary="Share of returns by reason code")
def reasons(
    scope: ScopeDep,
    store: StoreDep,
    fmt: FormatQuery = "json",
) -> Response:
    return _answer(report.reasons(store, scope), fmt, "reasons")


@router.get("/reasons/trend", responses=ANSWERS, summary="Returns by reason per week or month")
def reason_trend(
    scope: ScopeDep,
    store: StoreDep,
    period: Annotated[Literal["week", "month"], Query()] = "week",
    fmt: FormatQuery = "json",
) -> Response:
    return _answer(report.reason_trend(store, scope, period=period), fmt, f"reasons-{period}")


@router.get("/themes", responses=ANSWERS, summary="The return comments' top themes (zh and en)")
def themes(
    scope: ScopeDep,
    store: StoreDep,
    fmt: FormatQuery = "json",
) -> Response:
    return _answer(report.themes(store, scope), fmt, "themes")


Units = Callable[[str], tuple[str | None, int | None]]


def token_units(chain: ChainDep) -> Units:
    """A reader of a token's ``symbol`` and ``decimals`` (the chain caches both after the first read); (None,
    None) for a token that does not answer them, when the node is away, or for no token."""

    def read(token: str) -> tuple[str | None, int | None]:
        if not token:
            return None, None
        try:
            return chain.token_symbol(token), chain.token_decimals(token)
        except (Web3Exception, ValueError, OverflowError, RetryableError):
            return None, None

    return read


UnitsDep = Annotated[Units, Depends(token_units)]


def with_units(rows: Sequence[dict[str, Any]], units: Units) -> list[dict[str, Any]]:
    """Each row with its token's ``symbol`` and ``decimals``."""
    out = []
    for row in rows:
        symbol, decimals = units(str(row.get("token") or ""))
        out.append({**row, "symbol": symbol, "decimals": decimals})
    return out


@router.get("/outcomes", responses=ANSWERS, summary="Outcomes, refunds, fees kept, escrow outstanding, disputes")
def outcomes(
    scope: ScopeDep,
    store: StoreDep,
    units: UnitsDep,
    fmt: FormatQuery = "json",
) -> Response:
    """One row per outcome and token: refund returns (``requests``) and ``exchanges`` apart; amounts are
    integers in the token's smallest unit, as on-chain, with the token's ``symbol`` and ``decimals``."""
    return _answer(with_units(report.outcomes(store, scope), units), fmt, "outcomes")


@router.get("/speed", responses=ANSWERS, summary="Request→refund, first scan→refund, delivery→inspection")
def speed(
    scope: ScopeDep,
    store: StoreDep,
    fmt: FormatQuery = "json",
) -> Response:
    """p50 and p90 in whole hours, of the requests made in the period."""
    return _answer(report.speed(store, scope), fmt, "speed")


@router.get("/suggestions", responses=ANSWERS, summary="Suggestions in words, with the figures behind them")
def suggestions(
    scope: ScopeDep,
    store: StoreDep,
    fmt: FormatQuery = "json",
) -> Response:
    """The analytics rules (docs/analytics.md), then the feedback rules (docs/analytics-signals.md). In CSV,
    ``figures`` is one JSON cell."""
    found = suggestions_of(store, scope)
    if fmt == "csv":
        return _answer(report.suggestion_rows(found), fmt, "suggestions")
    return _answer([dict(report.as_mapping(x)) for x in found], fmt, "suggestions")
