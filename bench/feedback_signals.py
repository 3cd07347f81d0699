"""Customer feedback's satisfaction read and the fraud and abuse signals of the review queue, at scale.

Fills an index with the eligibility benchmark's synthetic chain (``--items`` items, 40 merchants, consumers
buying several items each, 3% open and 1% cancelled returns) through ``Store.apply``, gives ``--feedback``
ratings with comments in Chinese and English to its returns through the store's own function, then times, on
SQLite and PostgreSQL:

- a review-queue page's signals: the merchant's 90-day figures once (``population_of``), then
  ``signals_for`` per queued request, for random consumers of the merchant (p50/p95 per call, and a page of
  50 requests: one population read plus 50 requests' signals, from the medians);
- ``satisfaction_of`` for one merchant and for everyone (p50/p95), which reads every rating of the period.

Target (issue 21: every analytics endpoint p95 <= 100 ms): the satisfaction read and a queue page's signals.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _api_eligibility_fill import Actors, fill
from common import (
    DEFAULT_PG_URL,
    check_postgres,
    percentile,
    pg_schema,
    run_in_workdir,
    say,
    table,
    verdict,
)

from ledger_service.feedback import groups_of, satisfaction_of
from ledger_service.signals import population_of, signals_for
from ledger_service.store import ChainPin, Store
from ledger_service.store.feedback import FeedbackRow, save_feedback
from ledger_service.store.returns import list_returns
from ledger_service.store.sales import list_sales

TARGET_MS = 100.0
YEAR_S = 365 * 86_400
QUEUE_PAGE = 50
COMMENTS = (
    "退款很快 很方便",
    "等了一个星期才检验 太慢了",
    "快递取件很顺利",
    "Quick refund, easy label",
    "I waited ages for the inspection",
    None,
)
PIN = ChainPin(31337, "0x" + "ab" * 32, "0x" + "11" * 20, "0x" + "22" * 20, 1)
ACTORS = Actors.make(
    manufacturer="0x" + "31" * 20, carrier="0x" + "32" * 20, token="0x" + "33" * 20, merchant="0x" + "34" * 20
)


def _timed(call: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def _summary(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(values, 0.5), 2), "p95_ms": round(percentile(values, 0.95), 2)}


def measure(store: Store, args: argparse.Namespace, name: str) -> dict[str, Any]:
    say(f"   {name}: fill {args.items:,} items")
    stats = fill(store, items=args.items, events_per_item=5, actors=ACTORS, pin=PIN, progress=lambda _: None)
    now = int(time.time())
    merchant = ACTORS.merchants[0]
    rng = random.Random(11)
    returns = list_returns(store, limit=args.feedback).rows
    # the ratings spread over the last year, so the satisfaction read sums a year of days
    spacing = max(1, YEAR_S // max(1, len(returns)))
    for n, ret in enumerate(returns):
        comment = rng.choice(COMMENTS)
        row = FeedbackRow(
            ret.return_id,
            ret.item_id,
            ret.merchant,
            ret.consumer,
            rng.randint(1, 5),
            comment,
            "zh" if comment and not comment.isascii() else "en",
            now - n * spacing,
            now - n * spacing,
        )
        save_feedback(store, feedback=row, editable_since=0, groups_of=groups_of)
    sold = list_sales(store, merchant=merchant, limit=1000).rows
    say(
        f"   {name}: {stats.items:,} items in {stats.seconds:.0f} s, {len(returns):,} ratings, {len(sold):,} sales read"
    )
    consumers = [s.consumer for s in sold]
    population = population_of(store, merchant=merchant, now=now)
    figures: dict[str, Any] = {"items": stats.items, "ratings": len(returns), "merchant_sales_90d": population[0]}
    figures["population"] = _summary(_timed(lambda: population_of(store, merchant=merchant, now=now), args.queries))
    picks = iter(rng.choice(consumers) for _ in range(args.queries))
    figures["signals"] = _summary(
        _timed(
            lambda: signals_for(store, consumer=next(picks), merchant=merchant, now=now, population=population),
            args.queries,
        )
    )
    figures["queue_page_ms"] = round(figures["population"]["p50_ms"] + QUEUE_PAGE * figures["signals"]["p50_ms"], 1)
    repeats = max(5, args.queries // 10)
    figures["satisfaction_merchant"] = _summary(_timed(lambda: satisfaction_of(store, merchant=merchant), repeats))
    figures["satisfaction_all"] = _summary(_timed(lambda: satisfaction_of(store, merchant=None), repeats))
    # a year up to now from a second that is no day's start: both edge days are read rating by rating
    year = {"given_from": now - YEAR_S + 1, "given_to": now + 1}
    figures["satisfaction_year"] = _summary(_timed(lambda: satisfaction_of(store, merchant=None, **year), repeats))
    return figures


@contextmanager
def _store(url: str) -> Iterator[Store]:
    store = Store.open(url)
    try:
        yield store
    finally:
        store.close()


def run(args: argparse.Namespace) -> Callable[[Path], dict[str, Any]]:
    def go(workdir: Path) -> dict[str, Any]:
        results: dict[str, Any] = {}
        say(f"bench/feedback_signals.py: work directory {workdir}")
        with _store(f"sqlite:///{workdir / 'feedback.sqlite3'}") as store:
            results["sqlite"] = measure(store, args, "SQLite")
        if not args.no_postgres:
            check_postgres(args.pg_url)
            with pg_schema(args.pg_url) as url, _store(url) as store:
                results["postgres"] = measure(store, args, "PostgreSQL")
        return results

    return go


def report(results: dict[str, Any]) -> None:
    rows = [["database", "read", "p50 ms", "p95 ms", f"target p95 <= {TARGET_MS:.0f} ms"]]
    for db, figures in results.items():
        for key, label in (
            ("population", "merchant's 90-day figures (once a page)"),
            ("signals", "signals of one queued request"),
            ("satisfaction_merchant", "satisfaction, one merchant"),
            ("satisfaction_all", "satisfaction, everyone"),
            ("satisfaction_year", "satisfaction, everyone, a year from a mid-day second"),
        ):
            one = figures[key]
            target = verdict(one["p95_ms"] <= TARGET_MS) if key.startswith("satisfaction") else ""
            rows.append([db, label, f"{one['p50_ms']:.2f}", f"{one['p95_ms']:.2f}", target])
        page_ms = figures["queue_page_ms"]
        rows.append(
            [db, f"a queue page of {QUEUE_PAGE} (from the p50s)", f"{page_ms:.1f}", "", verdict(page_ms <= TARGET_MS)]
        )
    for line in table(rows, align="lllll"):
        say(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--feedback", type=int, default=5_000, help="ratings given (at most the index's returns)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    return run_in_workdir(__file__, run(args), keep=args.keep, report=report)


if __name__ == "__main__":
    sys.exit(main())
