"""Benchmark of the analytics endpoints (``GET /v1/analytics/...``) at 1M items / 5M logs, on SQLite and
PostgreSQL, and of what keeping the rollups current costs next to the indexer's own writes.

Run from the repository root (under the bench lock, so that measurements never overlap):
    .venv/bin/python bench/analytics.py [--items 1000000] [--queries 200] [--no-postgres] [--refill]

Steps, for each database:
1. fill, once: ``--items`` items of 40 merchants (five logs each: registration, commissioning, sale and its
   event, delivery; 2,000 GTINs in 20 categories), one in ten asked back (bench/_analytics_fill.py), through
   the store's own write functions. The filled index is kept between runs (SQLite: a file under
   ``.cache/bench-analytics/``; PostgreSQL: a schema named after the size), ``--refill`` makes it again,
   ``--rebuild`` only its rollup tables (after a change of their layout);
2. rebuild: the rollups folded from nothing (the first refresh of an index), timed;
3. queries: the analytics router as ``ledger-api`` serves it, in this process (no chain needed: these routes
   read the index only); ``--queries`` of each endpoint after ``--warmup``, alternating a merchant key (its
   own data) and an auditor key (all merchants), each over a random 90-day or 365-day range; each timed from
   the client's call to the answer's last byte (HTTP framing in-process included);
4. cost: a backfill batch of ``--cost-items`` more items (and their returns) applied with ``Store.apply`` as
   the indexer would, timed; then the incremental refresh that folds it, timed. The indexer's own path is
   unchanged (the refresh runs in the API workers' upkeep, not in the ingest transaction), so its cost to the
   indexer is the database time the refresh takes for the same events: refresh ÷ apply. Measured here rather
   than with bench/indexer.py (the issue's "backfill throughput"): that chain is ItemEventRecorded events (and
   one event of each other type), with no sales or return requests, so a refresh would fold next to nothing;
   this batch has the index's own mix (a sale per item, one in ten asked back, their returns on-chain), its
   chain time spread over as many days as the fill gives that many items (a backfill reads history, so its
   sales and requests fall on many days: the rollups get a row per GTIN and day rather than one per GTIN).
   ``--cost-rounds`` batches (5), each followed by its refresh: the verdict is on the median ratio (a batch's
   apply and its refresh both swing with the server's checkpoints, which the default PostgreSQL settings make
   every few seconds during a backfill), every round printed. A batch is what the
   indexer applies in a few seconds, so this is a refresh far more often than the API's default of once a
   minute (``LEDGER_ANALYTICS_REFRESH_S``), whose larger batches cost less per event: the strict case.

Prints p50/p95/p99 per endpoint against the target (p95 <= 100 ms: PASS/MISS); the p95 of the questions asked
for the first time in the run (path, parameters, range and key not asked before: the API keeps each rollup
answer until the next refresh, so these are mostly read from the database; the 365-day range ends today, so it
is asked again and again); the refresh cost against its target (<= 10% of the backfill's time); then one JSON
line with every figure. Exits 0 whatever the figures; 2 with a message when setup fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _analytics_fill import DAY, SPAN_DAYS, fill  # noqa: E402
from common import SetupError, check_postgres, libpq_dsn, percentile, run_in_workdir, say, table, verdict  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import text  # noqa: E402

from api.main import create_app, freeze_startup_objects  # noqa: E402
from api.routers import analytics as analytics_router  # noqa: E402
from ledger_service.access import Role, create_api_key  # noqa: E402
from ledger_service.analytics.refresh import refresh  # noqa: E402
from ledger_service.settings import Settings  # noqa: E402
from ledger_service.store import ChainPin, Store  # noqa: E402
from ledger_service.store.analytics import SLACK_S, refreshed_at  # noqa: E402
from ledger_service.store.tables import ANALYTICS_TABLES  # noqa: E402

TARGET_P95_MS = 100.0
TARGET_COST = 0.10
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CACHE = ROOT / ".cache" / "bench-analytics"
MERCHANTS = tuple(f"0x{n:040x}" for n in range(0x100, 0x100 + 40))
MANUFACTURER = "0x" + "0a" * 20
CARRIER = "0x" + "0c" * 20
TOKEN = "0x" + "70" * 20
PIN = ChainPin(31337, "0x" + "ab" * 32, "0x" + "11" * 20, "0x" + "22" * 20, 0)
ENDPOINTS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("rates by gtin", "/v1/analytics/rates", {"by": "gtin"}),
    ("rates by category", "/v1/analytics/rates", {"by": "category"}),
    ("rates by month", "/v1/analytics/rates", {"by": "month"}),
    ("reasons", "/v1/analytics/reasons", {}),
    ("reasons by week", "/v1/analytics/reasons/trend", {"period": "week"}),
    ("themes", "/v1/analytics/themes", {}),
    ("outcomes", "/v1/analytics/outcomes", {}),
    ("speed", "/v1/analytics/speed", {}),
    ("suggestions", "/v1/analytics/suggestions", {}),
    ("outcomes csv", "/v1/analytics/outcomes", {"format": "csv"}),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000, help="items in the synthetic index (5 logs each)")
    parser.add_argument("--queries", type=int, default=200, help="measured queries of each endpoint")
    parser.add_argument("--warmup", type=int, default=20, help="queries of each endpoint before measuring")
    parser.add_argument("--cost-items", type=int, default=20_000, help="items of the backfill batch (step 4)")
    parser.add_argument("--cost-rounds", type=int, default=5, help="backfill batches, each refreshed (step 4)")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--postgres-url", default=PG_DEFAULT, help="server to keep the filled schema in")
    parser.add_argument("--refill", action="store_true", help="fill the cached indexes again")
    parser.add_argument(
        "--rebuild", action="store_true", help="make the cached indexes' rollup tables again (a new rollup layout)"
    )
    parser.add_argument(
        "--fill-only", action="store_true", help="fill (and keep) the index, measure nothing: a long fill ahead of time"
    )
    args = parser.parse_args()
    if min(args.items, args.queries, args.cost_items, args.cost_rounds) < 1 or args.warmup < 0:
        parser.error("--items, --queries, --cost-items and --cost-rounds positive, --warmup not negative")
    return run_in_workdir("bench/analytics.py", lambda workdir: run(args), keep=False, report=print_table)


def run(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {"items": args.items, "logs": args.items * 5}
    if not args.no_sqlite:
        CACHE.mkdir(parents=True, exist_ok=True)
        path = CACHE / f"analytics-{args.items}.sqlite3"
        if args.refill:
            for leftover in CACHE.glob(f"{path.name}*"):
                leftover.unlink()
        figures["sqlite"] = one_database(args, "SQLite", f"sqlite:///{path}")
    if not args.no_postgres:
        check_postgres(args.postgres_url)
        schema = f"bench_analytics_{args.items}"
        import psycopg

        with psycopg.connect(libpq_dsn(args.postgres_url), autocommit=True) as conn:
            if args.refill:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        separator = "&" if "?" in args.postgres_url else "?"
        url = f"{args.postgres_url}{separator}options=-csearch_path%3D{schema}"
        figures["postgresql"] = one_database(args, "PostgreSQL", url)
    return figures


def one_database(args: argparse.Namespace, name: str, url: str) -> dict[str, Any]:
    try:
        store = Store.open(url)
    except Exception as exc:
        raise SetupError(f"cannot open the index at {name}: {exc}") from exc
    out: dict[str, Any] = {}
    try:
        if store.checkpoint() is None:
            say(f"1. fill ({name}): {args.items:,} items, 5 logs each")
            stats = fill(store, items=args.items, pin=PIN, manufacturer=MANUFACTURER, carrier=CARRIER,
                         merchants=MERCHANTS, token=TOKEN, progress=say)  # fmt: skip
            say(f"   {stats.logs:,} logs, {stats.requests:,} return requests in {stats.seconds:.0f} s")
            out["fill_s"] = round(stats.seconds)
        else:
            say(f"1. fill ({name}): the cached index (--refill to make it again)")
        if args.fill_only:
            return out
        if store.engine.dialect.name == "postgresql":
            with store.engine.begin() as conn:
                conn.execute(text("ANALYZE"))
        if args.rebuild:
            with store.engine.begin() as conn:
                for table in reversed(ANALYTICS_TABLES):
                    table.drop(conn, checkfirst=True)
                for table in ANALYTICS_TABLES:
                    table.create(conn)
        if refreshed_at(store) is None:
            say(f"2. rebuild ({name}): the rollups from nothing")
            started = time.perf_counter()
            stats_ = refresh(store)
            out["rebuild_s"] = round(time.perf_counter() - started, 1)
            say(f"   {stats_.sales:,} sales, {stats_.requests:,} requests folded in {out['rebuild_s']} s")
            if store.engine.dialect.name == "postgresql":
                with store.engine.begin() as conn:
                    conn.execute(text("ANALYZE"))
        say(f"3. queries ({name}): {args.warmup} warm-up + {args.queries} of each endpoint")
        out["endpoints"] = measure(args, store, url)
        say(f"4. cost ({name}): {args.cost_rounds} backfill batches of {args.cost_items:,} items, each followed "
            "by the refresh that folds it")  # fmt: skip
        rounds = [cost(args, store) for _ in range(args.cost_rounds)]
        ratios = [r["ratio"] for r in rounds]
        out["cost"] = {"rounds": rounds, "ratio": round(statistics.median(ratios), 4)}
    finally:
        store.close()
    return out


def measure(args: argparse.Namespace, store: Store, url: str) -> dict[str, dict[str, float | None]]:
    merchant = MERCHANTS[3]
    keys = {
        "merchant": create_api_key(store=store, role=Role.MERCHANT, name="bench", actor_address=merchant).plaintext,
        "auditor": create_api_key(store=store, role=Role.AUDITOR, name="bench auditor").plaintext,
    }
    app = create_app(routers=[analytics_router.router])
    app.state.store, app.state.settings = store, Settings(database_url=url, environment="development")
    # no lifespan: these routes need the store only, and the tokens' symbol and decimals, which the API reads
    # from the node once per token (ChainContext caches them): answered here as the cache would
    app.dependency_overrides[analytics_router.token_units] = lambda: lambda token: ("dUSD", 6)
    client = TestClient(app)
    freeze_startup_objects()  # as ledger-api's lifespan does (not run here): the collector's pauses as served
    rng = random.Random(21)
    today = dt.datetime.now(dt.UTC).date()
    out: dict[str, dict[str, float | None]] = {}
    asked: set[tuple[str, ...]] = set()
    for label, path, params in ENDPOINTS:
        timings: list[float] = []
        first: list[float] = []  # of a question not asked before in this run: its rollup reads not kept yet
        for n in range(args.warmup + args.queries):
            days = rng.choice((90, 365))
            end = today - dt.timedelta(days=rng.randrange(0, SPAN_DAYS - days + 1))
            query = {**params, "from": str(end - dt.timedelta(days=days - 1)), "to": str(end)}
            who = "merchant" if n % 2 else "auditor"
            started = time.perf_counter()
            answer = client.get(path, params=query, headers={"Authorization": f"Bearer {keys[who]}"})
            elapsed = (time.perf_counter() - started) * 1000
            if answer.status_code != 200:
                raise SetupError(f"{path} answered {answer.status_code}: {answer.text[:300]}")
            question = (path, who, *sorted(f"{k}={v}" for k, v in query.items()))
            if n >= args.warmup:
                timings.append(elapsed)
                if question not in asked:
                    first.append(elapsed)
            asked.add(question)
        out[label] = {
            "p50_ms": round(percentile(timings, 0.5), 2),
            "p95_ms": round(percentile(timings, 0.95), 2),
            "p99_ms": round(percentile(timings, 0.99), 2),
            "n": len(timings),
            "first_p95_ms": round(percentile(first, 0.95), 2) if first else None,
            "first_n": len(first),
        }
    return out


def cost(args: argparse.Namespace, store: Store) -> dict[str, float]:
    """Step 4 on the filled index itself (it keeps the batch: each run adds ``--cost-items`` items)."""
    with store.engine.connect() as conn:
        first = int(conn.execute(text("SELECT count(*) FROM items")).scalar_one())
        newest = int(conn.execute(text("SELECT max(decided_at) FROM return_requests")).scalar_one() or 0)
    # the batch's chain time spans as many days as the fill gives that many items (a backfill reads history:
    # its sales and requests fall on many days, so the rollups get a row per GTIN and day, not per GTIN)
    span_s = round(args.cost_items / first * SPAN_DAYS * DAY)
    # the batch's requests come after the index's newest by more than the refresh's margin (a run minutes after
    # another would otherwise fold the previous batch's requests again, which a backfill does not)
    now = max(int(time.time()), newest + 8 * DAY + SLACK_S + 1 + span_s)
    stats = fill(store, items=args.cost_items, first=first, pin=PIN, manufacturer=MANUFACTURER, carrier=CARRIER,
                 merchants=MERCHANTS, token=TOKEN, progress=say, now=now, span_s=span_s)  # fmt: skip
    started = time.perf_counter()
    folded = refresh(store)
    refresh_s = time.perf_counter() - started
    say(f"   apply {stats.apply_seconds:.2f} s ({stats.logs:,} logs); refresh {refresh_s:.2f} s "
        f"({folded.sales:,} sales, {folded.requests:,} requests)")  # fmt: skip
    return {
        "items_before": first,
        "span_days": round(span_s / DAY, 1),
        "batch_logs": stats.logs,
        "apply_s": round(stats.apply_seconds, 3),
        "refresh_s": round(refresh_s, 3),
        "ratio": round(refresh_s / stats.apply_seconds, 4),
    }


def print_table(figures: dict[str, Any]) -> None:
    for name in ("sqlite", "postgresql"):
        if name not in figures:
            continue
        db = figures[name]
        rows = [("endpoint", "p50 ms", "p95 ms", "p99 ms", "target p95", "", "first asked: p95 ms (n)")]
        for label, values in db.get("endpoints", {}).items():
            first = values["first_p95_ms"]  # None: every question was asked in the warm-up
            fresh = "-" if first is None else f"{first:.1f} ({values['first_n']})"
            rows.append((label, f"{values['p50_ms']:.1f}", f"{values['p95_ms']:.1f}", f"{values['p99_ms']:.1f}",
                         f"<= {TARGET_P95_MS:.0f}", verdict(values["p95_ms"] <= TARGET_P95_MS),
                         fresh))  # fmt: skip
        say(f"\n{name} ({figures['items']:,} items, {figures['logs']:,} logs)")
        for line in table(rows, align="lrrrrlr", indent="  "):
            say(line)
        c = db.get("cost")
        if c:  # --fill-only measured nothing
            each = ", ".join(f"{r['refresh_s']:.2f} s / {r['apply_s']:.2f} s = {r['ratio']:.1%}" for r in c["rounds"])
            say(f"  refresh after a backfill batch of {c['rounds'][0]['batch_logs']:,} logs "
                f"({c['rounds'][0]['span_days']} days of chain time), share of Store.apply's "
                f"time: median {c['ratio']:.1%} (target <= {TARGET_COST:.0%}: {verdict(c['ratio'] <= TARGET_COST)}); "
                f"each: {each}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
