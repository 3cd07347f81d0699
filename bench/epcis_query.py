"""Benchmark of the EPCIS query interface (``GET /v1/epcis/events``) at 1M indexed events, on SQLite and
PostgreSQL: the time the server spends on one answer, from the index.

Run from the repository root (under the bench lock, so that measurements never overlap):
    .venv/bin/python bench/epcis_query.py [--events 1000000] [--queries 300] [--no-postgres]

Steps, in one run, for each database:
1. chain: its own anvil with the contracts deployed (bench/common.py), only so that the application starts as
   in production (it checks the index's pin against the node);
2. fill: ``--events`` item events (``--per-item`` an item, 80% of them captured at 10) through the store's own
   write functions, ``Store.apply`` for the indexer's rows and ``claim_events`` / ``mark_recorded`` for
   capture's (bench/_epcis_query_fill.py); on PostgreSQL then ``ANALYZE`` (what autovacuum does in time);
3. queries: the application as ``ledger-api`` serves it, in this process; one client asks, ``--queries`` of
   each, for random items / times / classes / orders (after ``--warmup`` of each):
   - ``MATCH_epc`` on one item (auditor): every event of the item, captured and chain-only;
   - ``GE_eventTime`` page of 100 (auditor), and the two following pages through the ``Link`` header;
   - ``MATCH_anyEPC`` with an ``idpat`` pattern (one item reference: 1/1,000 of the items), a page of 100;
   - ``EQ_bizTransaction_po`` of one order (the captured shipping event; the sale's chain events hold the
     order reference's digest, so they are asked with ``EQ_bizTransaction_po=<ledger URI of the digest>``);
   - a merchant's ``GE_eventTime`` page of 100 (its items only: 1 merchant of 40);
   each timed inside the server (from the ASGI call to the last body byte; bench/web_portal.py's clock);
4. reference, in the same run: the captured side of the first two as raw SQL on the same database (the
   event bodies of the item / of a page of 100, through the same indexes), the floor of an answer.

Prints p50/p95/p99 per query against the targets (MATCH_epc p99 <= 20 ms, GE_eventTime page p99 <= 50 ms:
PASS/MISS) and the ratio to the reference, then one JSON line with every figure. Exits 0 whatever the
figures; 2 with a message when setup fails.
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
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _epcis_query_fill import (  # noqa: E402
    class_pattern,
    fill,
    item_id_of,
    item_uri,
    order_value,
)
from api_eligibility import chain_pin  # noqa: E402
from common import (  # noqa: E402
    SetupError,
    check_postgres,
    percentile,
    pg_schema,
    run_in_workdir,
    say,
    start_chain,
    table,
    verdict,
)
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import text  # noqa: E402
from web_portal import ServerClock  # noqa: E402

from api.main import create_app, serving_app  # noqa: E402
from ledger_service.access import Role, create_api_key  # noqa: E402
from ledger_service.epcis.serialize import iso_millis  # noqa: E402
from ledger_service.settings import Settings  # noqa: E402
from ledger_service.store import Store  # noqa: E402
from tests.support.activity import write_manifest  # noqa: E402
from tests.support.chain import ARTIFACTS, CARRIER, MANUFACTURER, MERCHANT, Deployed, deploy_all  # noqa: E402

TARGETS_P99_MS = {"match_epc": 20.0, "page": 50.0}
MERCHANTS = 40
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SHAPES = ("match_epc", "page", "next_page", "any_epc_pattern", "biz_transaction", "merchant_page")
REFERENCE_SQL = {
    # The captured side of an item's events and of a time page, through the same indexes, bodies only.
    "match_epc": "SELECT e.body FROM epcis_event_epcs p JOIN epcis_events e ON e.event_key = p.event_key "
    "WHERE p.item_id = :item ORDER BY e.event_time, e.event_key",
    "page": "SELECT body FROM epcis_events WHERE event_time >= :since ORDER BY event_time, event_key LIMIT 100",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="item events in the synthetic index")
    parser.add_argument("--per-item", type=int, default=10, help="item events per item (at least 5)")
    parser.add_argument("--queries", type=int, default=300, help="queries of each shape, measured")
    parser.add_argument("--warmup", type=int, default=30, help="queries of each shape before measuring")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--postgres-url", default=PG_DEFAULT, help="server to make a throwaway schema in")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (the SQLite index)")
    args = parser.parse_args()
    if args.per_item < 5 or min(args.events, args.queries) < 1 or args.warmup < 0:
        parser.error("--per-item >= 5, --events and --queries positive, --warmup not negative")
    return run_in_workdir(
        "bench/epcis_query.py", lambda workdir: run(args, workdir), keep=args.keep, report=lambda figures: None
    )


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    say(f"bench/epcis_query.py: work directory {workdir}")
    if not args.no_postgres:
        check_postgres(args.postgres_url)
    say("1. chain: anvil and the contracts")
    anvil = start_chain()
    figures: dict[str, Any] = {"events": args.events, "per_item": args.per_item}
    try:
        try:
            deployed = deploy_all(anvil)
        except Exception as exc:  # a revert or an RPC failure while deploying: not a measurement
            raise SetupError(f"deploying the contracts failed: {type(exc).__name__}: {exc}") from exc
        manifest = write_manifest(deployed, workdir / "deployments" / f"{deployed.w3.eth.chain_id}.json")
        base = {
            "rpc_url": anvil.url,
            "deployment_file": manifest,
            "artifacts_dir": ARTIFACTS,
            "documents_dir": workdir / "documents",
            "environment": "development",
            "log_level": "WARNING",
        }
        if not args.no_sqlite:
            url = f"sqlite:///{workdir / 'epcis.sqlite3'}"
            figures["sqlite"] = one_database(args, "SQLite", url, deployed, {**base, "database_url": url})
        if not args.no_postgres:
            with pg_schema(args.postgres_url) as url:
                figures["postgresql"] = one_database(args, "PostgreSQL", url, deployed, {**base, "database_url": url})
    finally:
        anvil.stop()
    print_table(figures)
    return figures


def one_database(
    args: argparse.Namespace, name: str, url: str, deployed: Deployed, settings: dict[str, Any]
) -> dict[str, Any]:
    say(f"2. fill ({name}): {args.events:,} item events, {args.per_item} an item")
    merchant = deployed.accounts[MERCHANT].lower()
    try:
        store = Store.open(url)
    except Exception as exc:
        raise SetupError(f"cannot create the index at {name}: {exc}") from exc
    try:
        merchants = (merchant, *(f"0x{n:040x}" for n in range(1, MERCHANTS)))
        stats = fill(
            store,
            events=args.events,
            per_item=args.per_item,
            pin=chain_pin(deployed),
            manufacturer=deployed.accounts[MANUFACTURER].lower(),
            carrier=deployed.accounts[CARRIER].lower(),
            merchants=merchants,
            token=deployed.token.address.lower(),
            progress=say,
        )
        if store.engine.dialect.name == "postgresql":
            # The planner's statistics of tables that grew from nothing, as autovacuum gathers them in time.
            with store.engine.begin() as conn:
                conn.execute(text("ANALYZE"))
        auditor = create_api_key(store=store, role=Role.AUDITOR, name="bench auditor").plaintext
        merchant_key = create_api_key(store=store, role=Role.MERCHANT, name="bench", actor_address=merchant).plaintext
        say(
            f"   {stats.items:,} items, {stats.item_events:,} item events ({stats.captured:,} captured) "
            f"in {stats.seconds:.0f} s ({stats.item_events / stats.seconds:,.0f} events/s)"
        )
        references = reference(store, args, stats.items, (stats.first_time_ms, stats.last_time_ms))
    finally:
        store.close()
    say(f"3. queries ({name}): {args.warmup} warm-up + {args.queries} of each shape, one client")
    timings = measure(
        args,
        Settings.model_validate(settings),
        items=stats.items,
        span=(stats.first_time_ms, stats.last_time_ms),
        auditor=auditor,
        merchant_key=merchant_key,
    )
    out: dict[str, Any] = {"items": stats.items, "item_events": stats.item_events, "fill_s": round(stats.seconds)}
    for shape, values in timings.items():
        out[shape] = _summary(values)
    for shape, values in references.items():
        out[f"reference_{shape}"] = _summary(values)
    return out


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(values, 0.50), 2),
        "p95_ms": round(percentile(values, 0.95), 2),
        "p99_ms": round(percentile(values, 0.99), 2),
        "max_ms": round(max(values), 2),
        "n": len(values),
    }


def _random_time(rng: random.Random, span: tuple[int, int]) -> str:
    first, last = span
    return iso_millis(rng.randrange(first, last - (last - first) // 100))


def reference(store: Store, args: argparse.Namespace, items: int, span: tuple[int, int]) -> dict[str, list[float]]:
    """The raw SQL of REFERENCE_SQL, timed as many times as the queries, with fresh random arguments."""
    rng = random.Random(11)
    out: dict[str, list[float]] = {"match_epc": [], "page": []}
    with store.engine.connect() as conn:
        for n in range(args.warmup + args.queries):
            for shape, params in (
                ("match_epc", {"item": item_id_of(rng.randrange(items))}),
                ("page", {"since": rng.randrange(span[0], span[1] - (span[1] - span[0]) // 100)}),
            ):
                started = time.perf_counter()
                rows = conn.execute(text(REFERENCE_SQL[shape]), params).all()
                elapsed = (time.perf_counter() - started) * 1000
                if not rows:
                    raise SetupError(f"the reference {shape} found nothing: the fill is not what it should be")
                if n >= args.warmup:
                    out[shape].append(elapsed)
    return out


@contextmanager
def _client(settings: Settings) -> Iterator[tuple[TestClient, ServerClock]]:
    clock = ServerClock(serving_app(create_app(settings)))
    with TestClient(clock) as client:
        yield client, clock


def measure(
    args: argparse.Namespace, settings: Settings, *, items: int, span: tuple[int, int], auditor: str, merchant_key: str
) -> dict[str, list[float]]:
    rng = random.Random(5)
    times: dict[str, list[float]] = {shape: [] for shape in SHAPES}
    failures: list[str] = []
    as_auditor = {"Authorization": f"Bearer {auditor}"}
    as_merchant = {"Authorization": f"Bearer {merchant_key}"}

    def ask(client: TestClient, clock: ServerClock, shape: str, url: str, headers: dict[str, str], record: bool) -> Any:
        clock.recording = record
        before = len(clock.times_ms)
        answer = client.get(url, headers=headers)
        if record and len(clock.times_ms) > before:
            times[shape].append(clock.times_ms[-1])
        if answer.status_code != 200:
            failures.append(f"{url[:120]}: {answer.status_code} {answer.text[:200]}")
            return None
        # every shape but the merchant's page names events that exist (its merchant has 1/40 of the items)
        if shape != "merchant_page" and not answer.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]:
            failures.append(f"{url[:120]}: no events")
        return answer

    shapes: list[tuple[str, Callable[[], tuple[str, dict[str, str]]]]] = [
        ("match_epc", lambda: (f"MATCH_epc={quote(item_uri(rng.randrange(items)))}", as_auditor)),
        ("page", lambda: (f"GE_eventTime={quote(_random_time(rng, span))}&perPage=100", as_auditor)),
        ("any_epc_pattern", lambda: (f"MATCH_anyEPC={quote(class_pattern(rng.randrange(items)))}", as_auditor)),
        ("biz_transaction", lambda: (f"EQ_bizTransaction_po={quote(order_value(rng.randrange(items)))}", as_auditor)),
        ("merchant_page", lambda: (f"GE_eventTime={quote(_random_time(rng, span))}&perPage=100", as_merchant)),
    ]
    with _client(settings) as (client, clock):
        for n in range(args.warmup + args.queries):
            measuring = n >= args.warmup
            for shape, make in shapes:
                query, headers = make()
                answer = ask(client, clock, shape, f"/v1/epcis/events?{query}", headers, measuring)
                if shape == "page" and answer is not None:
                    for _ in range(2):  # the following pages, through the Link header
                        link = answer.headers.get("link")
                        if not link:
                            break
                        answer = ask(client, clock, "next_page", link[1:].split(">")[0], headers, measuring)
                        if answer is None:
                            break
    if failures:
        for sample in failures[:5]:
            say(f"   failure: {sample}")
        raise SetupError(f"{len(failures)} queries failed or found nothing (the first above)")
    return times


def print_table(figures: dict[str, Any]) -> None:
    rows: list[tuple[str, ...]] = [("database", "query", "p50 ms", "p95 ms", "p99 ms", "target", "", "x reference")]
    labels = {
        "match_epc": "MATCH_epc, one item",
        "page": "GE_eventTime, page of 100",
        "next_page": "  its next pages (Link)",
        "any_epc_pattern": "MATCH_anyEPC idpat, page",
        "biz_transaction": "EQ_bizTransaction_po",
        "merchant_page": "merchant's GE_eventTime page",
    }
    for database in ("sqlite", "postgresql"):
        found = figures.get(database)
        if found is None:
            continue
        at_scale = found["item_events"] >= 1_000_000
        for shape, label in labels.items():
            f = found[shape]
            target = TARGETS_P99_MS.get(shape)
            ok = None if target is None or not at_scale else f["p99_ms"] <= target
            ref = found.get(f"reference_{shape}")
            rows.append(
                (
                    database,
                    label,
                    f"{f['p50_ms']:.2f}",
                    f"{f['p95_ms']:.2f}",
                    f"{f['p99_ms']:.2f}",
                    "" if target is None else f"p99 <= {target:g}" + ("" if at_scale else " at 1M"),
                    verdict(ok) if target is not None and at_scale else "",
                    "" if ref is None else f"{f['p50_ms'] / max(ref['p50_ms'], 0.001):.1f}x ({ref['p50_ms']:.2f} ms)",
                )
            )
            if target is not None:
                found[f"{shape}_pass"] = ok
    for line in table(rows, align="llrrrlll"):
        say(line)


if __name__ == "__main__":
    sys.exit(main())
