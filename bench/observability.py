"""What the request layer of api/observability.py costs a request, and what a /metrics scrape costs, in-process.

Run from the repository root:
    .venv/bin/python bench/observability.py [--requests 50000]

- Per request: the same trivial ASGI application called ``--requests`` times bare and behind
  :class:`api.observability.Observed` (request id, context variables, the latency histogram, in-flight gauge),
  interleaved in rounds; the difference per request, with the route template found three ways: set by a layer
  in front (the eligibility shortcut), a fixed path, the deepest dynamic path of the application.
- Per scrape: :func:`ledger_service.metrics.exposition` with every route's series present, in memory (one
  process) and in multiprocess mode across two worker processes' files.

Prints the figures, then one JSON line. A measurement, not a test: it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import json_line  # noqa: E402

from api.main import create_app  # noqa: E402
from api.observability import ROUTE_TEMPLATE, Observed  # noqa: E402
from ledger_service.metrics import exposition  # noqa: E402
from ledger_service.metrics.http import HTTP_REQUEST_SECONDS  # noqa: E402

ROUNDS = 5


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


async def _noop_send(message: Any) -> None:
    return None


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b""}


def _scope(path: str, *, template: str | None = None) -> dict[str, Any]:
    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}
    if template is not None:
        scope[ROUTE_TEMPLATE] = template
    return scope


async def _time(app: Any, scope: dict[str, Any], n: int) -> float:
    began = time.perf_counter()
    for _ in range(n):
        await app(dict(scope), _receive, _noop_send)
    return (time.perf_counter() - began) / n


def per_request(n: int) -> dict[str, float]:
    api = create_app()
    observed = Observed(_ok, api=api)
    cases = {
        "template set in front": _scope("/v1/items/0x" + "ab" * 32 + "/eligibility", template="/v1/items/{item_id}"),
        "fixed path": _scope("/v1/returns"),
        "deepest dynamic path": _scope("/audit/items/0x" + "ab" * 32 + "/history.csv"),
    }
    figures: dict[str, float] = {}
    for name, scope in cases.items():
        bare, wrapped = [], []
        for _ in range(ROUNDS):
            bare.append(asyncio.run(_time(_ok, scope, n)))
            wrapped.append(asyncio.run(_time(observed, scope, n)))
        figures[name] = (statistics.median(wrapped) - statistics.median(bare)) * 1e6
    return figures


_WORKER = """
import os, sys
from ledger_service.metrics.http import HTTP_REQUEST_SECONDS
for route in sys.argv[1:]:
    for status in ("200", "401", "404"):
        HTTP_REQUEST_SECONDS.labels(route, "GET", status).observe(0.01)
os._exit(0)
"""


def per_scrape(routes: list[str]) -> dict[str, float]:
    for route in routes:
        for status in ("200", "401", "404"):
            HTTP_REQUEST_SECONDS.labels(route, "GET", status).observe(0.01)
    memory = []
    for _ in range(20):
        began = time.perf_counter()
        size = len(exposition())
        memory.append(time.perf_counter() - began)
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": folder, "PYTHONPATH": str(ROOT)}
        for _ in range(2):
            subprocess.run([sys.executable, "-c", _WORKER, *routes], env=env, check=True)
        code = (
            "import sys, time; from pathlib import Path; from ledger_service.metrics import exposition\n"
            "times = []\n"
            "for _ in range(20):\n"
            "    t = time.perf_counter()\n"
            "    exposition(directory=Path(sys.argv[1]))\n"
            "    times.append(time.perf_counter() - t)\n"
            "times.sort(); print(times[len(times) // 2])"
        )
        answer = subprocess.run(
            [sys.executable, "-c", code, folder], env=env, capture_output=True, text=True, check=True
        )
        shared = float(answer.stdout)
    return {"memory_ms": statistics.median(memory) * 1e3, "workers_ms": shared * 1e3, "bytes": size}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50_000)
    args = parser.parse_args()
    overhead = per_request(args.requests)
    print(f"request layer overhead per request ({args.requests:,} requests x {ROUNDS} rounds, medians):")
    for name, micros in overhead.items():
        print(f"  {name:<24} {micros:6.1f} us")
    routes = sorted(set(_all_templates(create_app())))
    scrape = per_scrape(routes)
    print(
        f"/metrics with {len(routes)} routes x 3 statuses: {scrape['memory_ms']:.2f} ms in memory, "
        f"{scrape['workers_ms']:.2f} ms across two workers' files ({scrape['bytes']:,.0f} bytes)"
    )
    json_line({"overhead_us": overhead, "scrape": scrape, "routes": len(routes)})
    return 0


def _all_templates(api: Any) -> list[str]:
    from fastapi.routing import iter_route_contexts

    return [str(c.path_format) for c in iter_route_contexts(api.router.routes) if c.path_format]


if __name__ == "__main__":
    sys.exit(main())
