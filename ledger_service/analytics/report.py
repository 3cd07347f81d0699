"""The analytics tables a dashboard shows, read from the rollups (store/analytics.py) and computed with the pure
modules: every function answers a list of flat rows (one table, exported as CSV as it is).

Scopes: a merchant sees its own rows; auditors and admins all, or one merchant's. Dates are UTC days, both
ends included; a range with no data answers no rows.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Literal

from ledger_service.analytics import suggestions as rules
from ledger_service.analytics.stats import percentile, rate, shares
from ledger_service.analytics.themes import label
from ledger_service.core.days import Grain, date_of, day_number
from ledger_service.core.suggestions import Suggestion
from ledger_service.errors import InvalidRequestError, NotFoundError
from ledger_service.store import analytics as rollups
from ledger_service.store.analytics import Scope
from ledger_service.store.handle import Store
from ledger_service.store.policies import policy_versions_of

Cell = int | float | str | None
Row = dict[str, Cell]
RateBy = Literal["gtin", "category", "merchant", "week", "month"]
Series = Literal["week", "month"]

MAX_DAYS = 5 * 365 + 1
DEFAULT_DAYS = 90


def scope(
    store: Store,
    *,
    merchant: str | None,
    gtin: int | None,
    first: dt.date | None,
    last: dt.date | None,
    today: dt.date,
    own: bool = False,
) -> Scope:
    """The scope of a read, checked: 422 for a reversed or longer than five years range, 404 for a merchant or
    GTIN the index does not know (a GTIN of another merchant is unknown to a merchant). ``own``: the merchant is
    the caller itself, which may have no data yet (its figures are then empty, not a 404)."""
    end = last or today
    start = first or end - dt.timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise InvalidRequestError(f"the range is reversed: from {start} is after to {end}; swap them")
    if (end - start).days + 1 > MAX_DAYS:
        raise InvalidRequestError(
            f"the range from {start} to {end} is longer than five years; ask for at most {MAX_DAYS} days"
        )
    if merchant is not None and not own and not rollups.merchant_known(store, merchant):
        raise NotFoundError(f"no merchant {merchant} in the index; check the address")
    if gtin is not None and not rollups.gtin_known(store, gtin, merchant=merchant):
        if merchant is not None:
            owner = merchant.lower()
            raise NotFoundError(f"no item with GTIN {gtin} of merchant {owner} in the index")
        raise NotFoundError(f"no item with GTIN {gtin} in the index")
    return Scope(
        first=day_number(start),
        last=day_number(end),
        merchant=None if merchant is None else merchant.lower(),
        gtin=gtin,
    )


def _rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _rate_row(n_sold: int, back: Mapping[str, int]) -> Row:
    n_back, n_swap = back.get("requests", 0), back.get("exchanges", 0)
    return {"sold": n_sold, "returns": n_back, "rate": _rounded(rate(n_back, n_sold)),
            "exchanges": n_swap, "exchange_rate": _rounded(rate(n_swap, n_sold))}  # fmt: skip


def rates(store: Store, s: Scope, *, by: RateBy) -> list[Row]:
    """Return rate (refund returns ÷ items sold, both in the period) and exchange rate (exchange requests ÷ items
    sold) by GTIN, category, merchant, week or month: an exchange is not a return here."""
    counted = ("requests", "exchanges")
    if by in ("week", "month"):
        grain: Grain = "w" if by == "week" else "m"
        sold = {c.dims[0]: c.values["sold"] for c in rollups.sold(store, s, dims=(), series=grain)}
        back = {c.dims[0]: c.values for c in rollups.returned(store, s, dims=(), values=counted, series=grain)}
        return [
            {"period_start": date_of(k).isoformat(), **_rate_row(sold.get(k, 0), back.get(k, {}))}
            for k in sorted(set(sold) | set(back))
        ]
    sold_by = {c.dims: c.values["sold"] for c in rollups.sold(store, s, dims=(by,))}
    back_by = {c.dims: c.values for c in rollups.returned(store, s, dims=(by,), values=counted)}
    return [
        {by: key[0], **_rate_row(sold_by.get(key, 0), back_by.get(key, {}))}
        for key in sorted(set(sold_by) | set(back_by))
    ]


def reasons(store: Store, s: Scope) -> list[Row]:
    """Share of the period's return requests by reason code."""
    counts = {
        c.dims[0]: c.values["requests"] for c in rollups.returned(store, s, dims=("reason_code",), values=("requests",))
    }
    share = shares(counts)
    return [
        {"reason_code": k, "returns": v, "share": _rounded(share.get(k))}
        for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        if v
    ]


def reason_trend(store: Store, s: Scope, *, period: Series) -> list[Row]:
    """Return requests by reason per week (from its Monday) or month, with each reason's share of the period."""
    grain: Grain = "w" if period == "week" else "m"
    counted = rollups.returned(store, s, dims=("reason_code",), values=("requests",), series=grain)
    per: dict[int, dict[str, int]] = defaultdict(dict)
    for c in counted:
        if c.values["requests"]:
            per[c.dims[1]][c.dims[0]] = c.values["requests"]
    out: list[Row] = []
    for bucket in sorted(per):
        share = shares(per[bucket])
        for code in sorted(per[bucket]):
            out.append({"period_start": date_of(bucket).isoformat(), "reason_code": code,
                        "returns": per[bucket][code], "share": _rounded(share[code])})  # fmt: skip
    return out


def themes(store: Store, s: Scope, *, limit: int = 20) -> list[Row]:
    """The comments' most frequent themes and words, with the reason they come with most."""
    total_comments: dict[str, int] = defaultdict(int)
    by_reason: dict[str, dict[str, int]] = defaultdict(dict)
    for c in rollups.term_counts(store, s):
        term, code = c.dims
        total_comments[term] += c.values["n"]
        by_reason[term][code] = c.values["n"]
    requests = sum(c.values["requests"] for c in rollups.returned(store, s, dims=(), values=("requests",)))
    ranked = sorted(
        ((t, n) for t, n in total_comments.items() if n > 0),
        key=lambda tn: (not tn[0].startswith("theme:"), -tn[1], tn[0]),
    )[:limit]
    return [
        {
            "term": t,
            "label_en": label(t, "en"),
            "label_zh": label(t, "zh"),
            "comments": n,
            "share_of_returns": _rounded(rate(n, requests)),
            "top_reason": max(by_reason[t].items(), key=lambda kv: (kv[1], kv[0]))[0],
        }
        for t, n in ranked
    ]


def outcomes(store: Store, s: Scope) -> list[Row]:
    """Requests by review outcome and token: how many (refund returns and exchanges apart), what was refunded
    and kept, the escrow still held, disputes and how they ended. Amounts are in the token's smallest unit, as
    on-chain; two tokens are two rows (``token`` is '' for requests whose sale the index does not have)."""
    out: list[Row] = []
    for c in sorted(rollups.returned(store, s, dims=("outcome", "token")), key=lambda c: (str(c.dims[0]), c.dims[1])):
        if c.values["requests"] or c.values["exchanges"]:
            out.append({"outcome": c.dims[0], "token": c.dims[1], **{k: v for k, v in c.values.items()}})
    return out


def speed(store: Store, s: Scope) -> list[Row]:
    """p50 and p90 of request→refund, first scan→refund and delivery→inspection, in hours."""
    hist: dict[str, dict[int, int]] = defaultdict(dict)
    for c in rollups.durations(store, s):
        hist[c.dims[0]][int(c.dims[1])] = c.values["n"]
    return [
        {"metric": m, "count": sum(hist[m].values()), "p50_hours": percentile(hist[m], 0.5),
         "p90_hours": percentile(hist[m], 0.9)}
        for m in rollups.METRICS
        if sum(hist[m].values()) > 0
    ]  # fmt: skip


def _gtins(returned: Sequence[rollups.Counted], sold_rows: Sequence[rollups.Counted]) -> list[rules.GtinReturns]:
    """Every GTIN's returns by reason in the period, for all merchants (the sector, ``returned``), with the sales
    of the scope's own GTINs (``sold_rows``)."""
    reasons_of: dict[tuple[int, str, str], dict[str, int]] = defaultdict(dict)
    swaps: dict[tuple[int, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for c in returned:
        gtin, merchant, category, code = c.dims
        key = (int(gtin), merchant, category)
        if c.values["requests"]:
            reasons_of[key][code] = c.values["requests"]
        swaps[key][0] += c.values["exchanges"]
        swaps[key][1] += c.values["exchanges_other_gtin"]
    sold = {(int(c.dims[0]), c.dims[1], c.dims[2]): c.values["sold"] for c in sold_rows}
    return [
        rules.GtinReturns(
            gtin=k[0],
            merchant=k[1],
            category=k[2],
            reasons=reasons_of.get(k, {}),
            sold=sold.get(k, 0),
            exchanges=swaps[k][0],
            exchanges_other_gtin=swaps[k][1],
        )
        for k in sorted(set(reasons_of) | set(swaps))
    ]


def suggestions(store: Store, s: Scope) -> list[Suggestion]:
    """Every rule of :mod:`ledger_service.analytics.suggestions` over the period, for the scope's subjects."""
    since = max(s.first, s.last - rules.RECENT_DAYS + 1)
    carriers = since > s.first and s.gtin is None  # carriers carry every GTIN of the merchant together
    # the reads are independent: PostgreSQL answers them side by side (the sector's and, for an auditor,
    # every GTIN's sales are the long ones)
    sector, sold, speed, *carrier_rows = rollups.at_once(
        store,
        lambda: rollups.returned(
            store,
            Scope(first=s.first, last=s.last),
            dims=("gtin", "merchant", "category", "reason_code"),
            values=("requests", "exchanges", "exchanges_other_gtin"),
        ),
        # the sales of the scope's own GTINs only: the rate rule reads no other (the sector's rule reads reasons)
        lambda: rollups.sold(store, s, dims=("gtin", "merchant", "category")),
        lambda: rollups.durations(store, s, dims=("merchant",)),
        *(
            (
                lambda: _carrier_reads(store, replace(s, last=since - 1)),
                lambda: _carrier_reads(store, replace(s, first=since)),
            )
            if carriers
            else ()
        ),
    )
    gtins = _gtins(sector, sold)
    mine = [
        g for g in gtins if (s.merchant is None or g.merchant == s.merchant) and (s.gtin is None or g.gtin == s.gtin)
    ]
    found = rules.reason_above_sector(gtins, report={g.gtin for g in mine})
    found += rules.return_rate_above_merchant([g for g in mine if g.reasons])  # as before exchanges were apart
    found += rules.exchanges_for_other_gtin(mine)
    inspections: dict[str, dict[int, int]] = defaultdict(dict)
    for c in speed:
        if c.dims[0] == "delivery_inspection":
            inspections[c.dims[2]][int(c.dims[1])] = c.values["n"]
    merchants = []
    published = policy_versions_of(store, inspections)
    for merchant, hist in inspections.items():
        versions = published.get(merchant, ())
        merchants.append(
            rules.MerchantInspections(
                merchant=merchant,
                p50_hours=percentile(hist, 0.5),
                inspections=sum(hist.values()),
                inspect_by_days=versions[0].inspect_by_days if versions else None,  # newest first
            )
        )
    found += rules.inspection_slower_than_policy(merchants)
    if carriers:
        before, recent = (_by_carrier(rows) for rows in carrier_rows)
        found += rules.reason_rising_for_carrier(
            [
                rules.CarrierReasons(carrier=c, since=date_of(since).isoformat(), before=before.get(c, {}), recent=r)
                for c, r in recent.items()
            ]
        )
    return found


def _carrier_reads(store: Store, s: Scope) -> list[rollups.Counted]:
    return rollups.returned(store, s, dims=("carrier", "reason_code"), values=("requests",))


def _by_carrier(rows: Sequence[rollups.Counted]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for c in rows:
        out[c.dims[0]][c.dims[1]] = c.values["requests"]
    return out


def suggestion_rows(found: Sequence[Suggestion]) -> list[Row]:
    """Suggestions as flat rows (their figures as one JSON cell), for the CSV export."""
    return [
        {"rule": x.rule, "subject": x.subject, "text_en": x.text_en, "text_zh": x.text_zh,
         "figures": json.dumps(dict(x.figures), ensure_ascii=False, sort_keys=True)}
        for x in found
    ]  # fmt: skip


def as_mapping(found: Suggestion) -> Mapping[str, object]:
    return {"rule": found.rule, "subject": found.subject, "text_en": found.text_en, "text_zh": found.text_zh,
            "figures": dict(found.figures)}  # fmt: skip
