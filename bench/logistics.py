"""Webhook deliveries per second from the outbox to local receivers, 10% of them failing.

Run from the repository root:
    .venv/bin/python bench/logistics.py [--returns 500] [--endpoints 10] [--failing 1] [--postgres]

Steps:
1. a fresh index (an SQLite file, or a PostgreSQL schema with ``--postgres``) gets ``--returns`` authorized
   returns through ``Store.apply`` (two notifications each: approved, label ready), and ``--endpoints``
   webhook endpoints of their merchant, each subscribed to everything; ``--failing`` of them answer 500
   (10% with the defaults), the others 204. The receivers are one uvicorn process (httptools) on 127.0.0.1;
2. (ref) the ceiling, measured in the same run: the same number of POSTs of a same-sized body to the healthy
   receivers with the worker's concurrency, over one keep-alive aiohttp session (the worker's client), nothing
   else (no database, no signature);
3. the worker (``ledger_service.notify.worker.Worker``, in this process, default settings but the receivers'
   short backoff) from the first dispatch until every healthy delivery is delivered: deliveries/s =
   healthy deliveries / that wall time. Failing deliveries keep being retried meanwhile (their attempts are
   counted); they must not hold the healthy ones up. Also counted meanwhile, as figures a loaded machine does
   not change: the database statements, connection checkouts (each a ping on PostgreSQL) and commits of the
   worker per 100 deliveries, and the benchmark process's CPU time (the worker and its database driver) per
   1,000 deliveries.

Prints the figures against the target (1,000 deliveries/s) and the ratio to (ref), then one JSON line.
A measurement: exits 0 whatever the figures, 2 when the setup fails.

With ``--labels [--returns 200]`` it measures the issue's label target instead: each return's label rendered
in-process as the label route renders it (``ledger_service.returns.label_sheet``: Chinese and English in turn,
the PDF 4x6 in and A6, the 4x6 PNG at 600 dpi and the QR code alone), p50/p95/max per format against p95 <=
150 ms; the reference, in the same run, is a one-page reportlab PDF of the label code's text alone (the PDF
library's floor).

With ``--end-to-end [--returns 200]`` it measures the issue's latency target instead (bench/_logistics_e2e.py):
a carrier's signed "in transit" webhook -> refund paid on-chain -> indexed -> the consumer's e-mail handed to
SMTP and the merchant's webhook delivered, by ``ledger-notify`` as its own process: p95 <= 2 s, p50 reported.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import DEFAULT_PG_URL, SetupError, json_line, pg_schema, run_in_workdir, say, stop, verdict  # noqa: E402

from ledger_service.core.events import BlockHeader, LogPosition, ReturnAuthorized  # noqa: E402
from ledger_service.notify import webhooks  # noqa: E402
from ledger_service.notify.worker import Worker  # noqa: E402
from ledger_service.settings import Settings  # noqa: E402
from ledger_service.store import BlockRef, Store  # noqa: E402
from ledger_service.store.notifications import DELIVERED, deliveries_of  # noqa: E402

TARGET_PER_S = 1000
MERCHANT = "0x" + "22" * 20
CONSUMER = "0x" + "66" * 20
TOKEN = "0x" + "33" * 20

RECEIVER = r"""
import sys, uvicorn
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    status = 500 if scope["path"].startswith("/fail") else 204
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="error", http="httptools", loop="uvloop")
"""


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _seed(store: Store, returns: int) -> None:
    events = []
    for n in range(returns):
        pos = LogPosition(
            block_number=1,
            block_hash="0x" + "bb" * 32,
            tx_hash="0x" + f"{n:064x}",
            tx_index=n,
            log_index=n,
            address="0x" + "44" * 20,
        )
        rid = "0x" + secrets.token_hex(32)
        item = "0x" + secrets.token_hex(32)
        events.append(
            ReturnAuthorized(pos, rid, item, CONSUMER, MERCHANT, TOKEN, 10**6, 500, True, 1, 1, 2_000_000_000)
        )
    store.apply(
        events=events,
        headers=[BlockHeader(1, "0x" + "bb" * 32, "0x" + "aa" * 32, 1_700_000_000)],
        checkpoint=BlockRef(1, "0x" + "bb" * 32),
        prune_below=0,
    )


async def _reference(urls: list[str], count: int, body: bytes, concurrency: int) -> float:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as client:
        queue = list(range(count))
        began = time.perf_counter()

        async def one() -> None:
            while queue:
                n = queue.pop()
                url = urls[n % len(urls)]
                async with client.post(url, data=body, headers={"content-type": "application/json"}) as answer:
                    await answer.read()

        await asyncio.gather(*(one() for _ in range(concurrency)))
        return time.perf_counter() - began


class _Trips:
    """The worker's database traffic: statements, connection checkouts (PostgreSQL pings each) and commits
    (BEGIN and COMMIT round trips; a statement in autocommit mode has none)."""

    def __init__(self, store: Store) -> None:
        from sqlalchemy import event

        self.statements = self.checkouts = self.commits = 0
        event.listen(store.engine, "before_cursor_execute", self._statement)
        event.listen(store.engine, "commit", self._commit)
        event.listen(store.engine.pool, "checkout", self._checkout)

    def _statement(self, *_: object) -> None:
        self.statements += 1

    def _commit(self, *_: object) -> None:
        self.commits += 1

    def _checkout(self, *_: object) -> None:
        self.checkouts += 1


async def _deliver(worker: Worker, healthy: list[str], expected: int) -> tuple[float, int]:
    began = time.perf_counter()
    delivered = 0
    turns = 0
    while delivered < expected:
        await worker.turn(wait=0.05)
        turns += 1
        delivered = sum(worker.stats.by_target[target] for target in healthy)
        if turns % 200 == 0 and time.perf_counter() - began > 600:
            raise SetupError(f"only {delivered} of {expected} delivered after 10 minutes")
    wall = time.perf_counter() - began
    worker.abandon()  # the failing receivers' retries still in flight
    await worker.close()
    return wall, turns


def run(args: argparse.Namespace) -> int:
    port = _free_port()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)], stderr=subprocess.PIPE)
    try:
        import httpx

        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.post(f"http://127.0.0.1:{port}/ok/0", content=b"{}")
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or receiver.poll() is not None:
                    raise SetupError("the receivers did not start") from None
                time.sleep(0.1)
        with tempfile.TemporaryDirectory() as tmp:
            if args.postgres:
                with pg_schema(args.postgres_url) as url:
                    return _measure(args, url, port)
            return _measure(args, f"sqlite:///{tmp}/bench.sqlite3", port)
    finally:
        stop(receiver)


def _measure(args: argparse.Namespace, url: str, port: int) -> int:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        notify_backoff_base_s=1.0,
        notify_concurrency=args.concurrency,
        notify_window_scan_s=3600.0,
    )
    with Store.open(url) as store:
        _seed(store, args.returns)
        healthy: list[str] = []
        for n in range(args.endpoints):
            path = "fail" if n < args.failing else "ok"
            endpoint = webhooks.register(
                store,
                merchant=MERCHANT,
                url=f"http://127.0.0.1:{port}/{path}/{n}",
                event_types=["return.approved", "return.label_ready"],
                secret=None,
                service_urls=["http://127.0.0.1:1"],
                key=settings.webhook_secrets_key.get_secret_value(),
            )
            if path == "ok":
                healthy.append(endpoint.id)
        expected = 2 * args.returns * len(healthy)
        body = b"x" * 420  # about a notification's payload
        urls = [f"http://127.0.0.1:{port}/ok/{n}" for n in range(len(healthy))]
        say(f"(ref) {expected:,} plain POSTs to the healthy receivers, concurrency {args.concurrency} ...")
        ref_s = asyncio.run(_reference(urls, expected, body, args.concurrency))
        ref_rate = expected / ref_s
        say(f"  {ref_rate:,.0f}/s ({ref_s:.2f} s)")
        say(f"worker: {expected:,} healthy deliveries, {args.failing} of {args.endpoints} endpoints failing ...")
        worker = Worker(store, settings)
        trips = _Trips(store)
        cpu = time.process_time()
        wall, turns = asyncio.run(_deliver(worker, healthy, expected))
        cpu = time.process_time() - cpu
        attempts = sum(worker.stats.by_target.values())
        rate = expected / wall
        stored = sum(1 for target in healthy for d in deliveries_of(store, target, limit=10**6) if d.state == DELIVERED)
        failed_attempts = worker.stats.failed + worker.stats.dead
    ok = rate >= TARGET_PER_S
    say(f"  {rate:,.0f} deliveries/s ({wall:.2f} s, {turns} turns); failed attempts meanwhile {failed_attempts}")
    say("")
    say(f"deliveries/s {rate:,.0f}  target >= {TARGET_PER_S:,}  {verdict(ok)}  ratio to (ref) {rate / ref_rate:.2f}")
    say(f"database: {'postgresql' if args.postgres else 'sqlite'}; delivered rows in the index {stored:,}")
    per100 = 100 / attempts
    say(
        f"per 100 attempts: {trips.statements * per100:.1f} statements, {trips.checkouts * per100:.1f} checkouts, "
        f"{trips.commits * per100:.1f} commits; CPU of this process {cpu * 1000 / attempts * 1000:,.0f} ms per "
        f"1,000 attempts ({attempts:,} attempts)"
    )
    json_line(
        {
            "bench": "logistics",
            "database": "postgresql" if args.postgres else "sqlite",
            "returns": args.returns,
            "endpoints": args.endpoints,
            "failing": args.failing,
            "healthy_deliveries": expected,
            "deliveries_per_s": round(rate),
            "target_per_s": TARGET_PER_S,
            "pass": ok,
            "reference_per_s": round(ref_rate),
            "ratio_to_reference": round(rate / ref_rate, 3),
            "failed_attempts": failed_attempts,
            "stored_delivered": stored,
            "attempts": attempts,
            "statements_per_100": round(trips.statements * per100, 2),
            "checkouts_per_100": round(trips.checkouts * per100, 2),
            "commits_per_100": round(trips.commits * per100, 2),
            "cpu_ms_per_1000": round(cpu * 1000 / attempts * 1000),
        }
    )
    return 0


LABEL_TARGET_MS = 150


def _renders(data: Any, lang: Literal["zh", "en"], floor: Callable[[str], bytes]) -> dict[str, Callable[[], bytes]]:
    """What is timed for one label, by name."""
    from ledger_service.returns.label_sheet import label_pdf, pdf_to_png, qr_pdf

    return {
        "pdf 4x6": lambda: label_pdf(data, size="4x6", lang=lang),
        "pdf a6": lambda: label_pdf(data, size="a6", lang=lang),
        "png 4x6": lambda: pdf_to_png(label_pdf(data, size="4x6", lang=lang)),
        "qr": lambda: pdf_to_png(qr_pdf(data.verify_url)),
        "(ref) text-only pdf": lambda: floor(data.code),
    }


def labels(args: argparse.Namespace) -> int:
    """``--labels``: label rendering times (see the module docstring)."""
    import io

    from common import percentile
    from reportlab.pdfgen.canvas import Canvas

    from ledger_service.core.masking import mask_address
    from ledger_service.returns.label_sheet import LabelData

    def floor(code: str) -> bytes:
        out = io.BytesIO()
        pdf = Canvas(out, invariant=True)
        pdf.drawString(72, 720, code)
        pdf.showPage()
        pdf.save()
        return out.getvalue()

    times: dict[str, list[float]] = {"pdf 4x6": [], "pdf a6": [], "png 4x6": [], "qr": [], "(ref) text-only pdf": []}
    for n in range(args.returns + 1):
        lang: Literal["zh", "en"] = "zh" if n % 2 else "en"
        code = f"RMA-{secrets.token_hex(6).upper()}"
        data = LabelData(
            code=code,
            sender=mask_address("0x" + secrets.token_hex(20)),
            merchant=MERCHANT,
            return_address="Returns dept., 88 Century Avenue, Pudong, Shanghai 200120, China",
            tracking=f"LR{n:08d}5ZZ",
            verify_url=f"https://returns.example/verify/{code}",
        )
        for name, render in _renders(data, lang, floor).items():
            began = time.perf_counter()
            render()
            if n:  # the first of each is the warm-up: the CJK font is loaded once per process
                times[name].append((time.perf_counter() - began) * 1000)
    reference = percentile(times["(ref) text-only pdf"], 0.5)
    worst = max(percentile(v, 0.95) for k, v in times.items() if not k.startswith("(ref)"))
    for name, values in times.items():
        p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
        ratio = p50 / reference
        say(f"{name:20} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  max {max(values):7.1f} ms  p50 {ratio:,.0f}x (ref)")
    ok = worst <= LABEL_TARGET_MS
    say(f"label p95 (slowest format) {worst:.1f} ms  target <= {LABEL_TARGET_MS} ms  {verdict(ok)}")
    json_line(
        {
            "bench": "logistics-labels",
            "labels": args.returns,
            **{
                f"{name.replace(' ', '_')}_p{q}_ms": round(percentile(v, q / 100), 2)
                for name, v in times.items()
                for q in (50, 95)
            },
            "target_p95_ms": LABEL_TARGET_MS,
            "pass": ok,
        }
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=" ".join((__doc__ or "").split("\n\n")[0].split()))
    parser.add_argument("--returns", type=int, default=500, help="authorized returns (2 notifications each)")
    parser.add_argument("--endpoints", type=int, default=10, help="webhook endpoints (default 10)")
    parser.add_argument("--failing", type=int, default=1, help="of which answer 500 (default 1: 10%%)")
    parser.add_argument("--concurrency", type=int, default=64, help="LEDGER_NOTIFY_CONCURRENCY (default 64)")
    parser.add_argument("--postgres", action="store_true", help="the index in PostgreSQL instead of SQLite")
    parser.add_argument("--postgres-url", default=DEFAULT_PG_URL)
    parser.add_argument(
        "--end-to-end", action="store_true", help="carrier webhook -> refund e-mail and merchant webhook latency"
    )
    parser.add_argument("--labels", action="store_true", help="label rendering p50/p95 per format instead")
    parser.add_argument("--keep", action="store_true", help="--end-to-end: keep the work directory (logs, index)")
    args = parser.parse_args()
    if args.end_to_end:
        import _logistics_e2e as e2e  # the chain, the API and the services: only for this mode

        return run_in_workdir(
            "bench/logistics.py --end-to-end",
            lambda workdir: e2e.run(args, workdir),
            keep=args.keep,
            report=e2e.print_table,
        )
    if args.labels:
        return labels(args)
    if not 0 <= args.failing < args.endpoints:
        parser.error("--failing must be below --endpoints")
    try:
        return run(args)
    except SetupError as exc:
        print(f"logistics: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
