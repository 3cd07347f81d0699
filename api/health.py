"""``/healthz``, ``/readyz`` and ``/metrics``: what a load balancer and Prometheus ask every API process.

Outside ``/v1`` and outside the OpenAPI document (like the pages), without credentials:

- ``/healthz``: 200 while the process answers at all (liveness: restart it when this fails).
- ``/readyz``: 200 when this process can serve: the database answers, the node answers and serves the
  deployment's chain id, and the index is at most ``LEDGER_READY_MAX_LAG_BLOCKS`` behind the node's head;
  otherwise 503 problem+json whose ``detail`` names the failing check and ``checks`` gives each one's
  result (readiness: take the replica out of the load balancer, do not restart it). Each check waits at most
  ``LEDGER_READY_TIMEOUT_S``.
- ``/metrics``: the Prometheus text format (:mod:`ledger_service.metrics`: every worker's values), plus what
  is computed at scrape time from the index: returns by state and escrow still held by token, each read from
  an index (no scan of the returns table).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.responses import Response

from api.problems import TYPE_BASE, ProblemDetails, render
from ledger_service.chain.signers import ChainContext
from ledger_service.metrics import CONTENT_TYPE, ESCROW_OUTSTANDING, RETURNS_BY_STATE, exposition
from ledger_service.settings import Settings
from ledger_service.store.handle import Store
from ledger_service.store.returns import escrow_outstanding, return_counts_by_state

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True, slots=True)
class Check:
    """One readiness check's outcome."""

    name: str
    ok: bool
    detail: str


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "alive"}


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    """Readiness (see the module docstring)."""
    state = request.app.state
    settings: Settings = state.settings
    checks = await readiness(store=state.store, chain=state.chain, settings=settings)
    body: dict[str, Any] = {"checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks}}
    failing = [c for c in checks if not c.ok]
    if not failing:
        return JSONResponse({"status": "ready", **body})
    problem = ProblemDetails(
        status=503,
        title="Not ready",
        detail="not ready: " + "; ".join(f"{c.name}: {c.detail}" for c in failing),
        type=f"{TYPE_BASE}not-ready",
        extensions={"failing": [c.name for c in failing], **body},
        headers={"Retry-After": "5"},
    )
    return render(problem, instance=request.url.path)


async def readiness(*, store: Store, chain: ChainContext, settings: Settings) -> list[Check]:
    """The checks of ``/readyz``, in order: database, node, index lag (skipped while either of the first two
    fails: it needs both)."""
    timeout = settings.ready_timeout_s
    database = await _timed("database", timeout, functools.partial(_database, store))
    node = await _timed("node", timeout, functools.partial(_node, chain))
    checks = [database[0], node[0]]
    checkpoint, head = database[1], node[1]
    if database[0].ok and node[0].ok and isinstance(head, int):
        behind = head - (checkpoint if isinstance(checkpoint, int) else chain.deployment.deploy_block - 1)
        limit = settings.ready_max_lag_blocks
        checks.append(
            Check(
                "index_lag",
                behind <= limit,
                f"{max(behind, 0)} blocks behind the node (at most {limit}, LEDGER_READY_MAX_LAG_BLOCKS)"
                + ("" if behind <= limit else "; is ledger-indexer follow running?"),
            )
        )
    else:
        checks.append(Check("index_lag", False, "not checked: needs the database and the node"))
    return checks


def _database(store: Store) -> tuple[Check, int | None]:
    checkpoint = store.checkpoint()
    number = None if checkpoint is None else checkpoint.number
    where = "empty index" if number is None else f"checkpoint at block {number}"
    return Check("database", True, f"answers ({where})"), number


def _node(chain: ChainContext) -> tuple[Check, int | None]:
    chain_id = int(chain.w3.eth.chain_id)
    if chain_id != chain.chain_id:
        return (
            Check(
                "node",
                False,
                f"the node serves chain {chain_id}, the deployment is on chain {chain.chain_id}: point "
                "LEDGER_RPC_URL at a node of the deployment's chain",
            ),
            None,
        )
    head = int(chain.w3.eth.block_number)
    return Check("node", True, f"chain {chain_id}, head at block {head}"), head


async def _timed(name: str, timeout: float, work: Callable[[], tuple[Check, int | None]]) -> tuple[Check, Any]:
    """``work`` in a worker thread, at most ``timeout`` seconds; any failure is the check's failure, in words."""
    try:
        with anyio.fail_after(timeout):
            return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
    except TimeoutError:
        return Check(name, False, f"no answer within {timeout:g} s (LEDGER_READY_TIMEOUT_S)"), None
    except Exception as exc:  # a readiness check reports any failure; it never raises it
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        return Check(name, False, f"unreachable ({type(exc).__name__}: {reason})"), None


class IndexCollector(Collector):
    """Returns by state and escrow still held by token, read from the index when ``/metrics`` is scraped."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterable[GaugeMetricFamily]:
        by_state = GaugeMetricFamily(RETURNS_BY_STATE, "Returns in the index, by state", labels=("state",))
        for state, count in sorted(return_counts_by_state(self._store).items()):
            by_state.add_metric((state.name.lower(),), count)
        held = GaugeMetricFamily(
            ESCROW_OUTSTANDING,
            "Token amounts (base units) held in escrow by returns not yet settled, by token",
            labels=("token",),
        )
        for token, amount in sorted(escrow_outstanding(self._store).items()):
            held.add_metric((token,), float(amount))
        return [by_state, held]


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """The Prometheus text format (see the module docstring)."""
    state = request.app.state
    settings: Settings = state.settings
    body = await anyio.to_thread.run_sync(
        lambda: exposition(directory=settings.metrics_dir, extra=[IndexCollector(state.store)])
    )
    return Response(body, media_type=CONTENT_TYPE)
