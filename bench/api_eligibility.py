"""Benchmark of GET /v1/items/{id}/eligibility: the API over a large index, the same decision read
from the chain directly, and the latency of a fast refund from the carrier's scan to the visible payout.

Run from the repository root:
    .venv/bin/python bench/api_eligibility.py [--items 1000000] [--events-per-item 5] [--clients 8] [--duration 30]
        [--rate 2000] [--connections 32]
        [--baseline DIR]

Steps, in one run:
1. chain: starts its own anvil, deploys the contracts (tests/support/chain.py), publishes the merchant's
   policy and writes ``--chain-items`` real items with histories (unsold, sold, delivered before and after
   a 40-day time jump so some windows are closed, recalled, destroyed, open returns), plus ``--refunds``
   delivered items whose returns the merchant authorizes with fast refund;
2. fill: a fresh SQLite index with ``--items`` items and ``--items`` x ``--events-per-item`` item events of a
   synthetic chain, written through ``Store.apply`` (the indexer's own write path, so the state tables are
   folded by the store itself), plus the API's policy documents and item categories
   (bench/_api_eligibility_fill.py; an auditor API key via ledger_service.access);
3. API: ``ledger-api`` as in production (api.main:main: uvicorn, uvloop + httptools, no access log) with
   ``--workers`` worker processes (LEDGER_API_WORKERS; default one per CPU core) on that index, with the
   anvil above as its chain; wrk (Debian's package, with bench/api_eligibility.lua) asks for the eligibility
   of uniformly random items (1% unknown ids) with an auditor's API key, each load for ``--duration`` seconds
   after a warm-up (whole seconds):
   a. saturation (closed loop): ``--clients`` concurrent keep-alive connections, each sending its next
      request when the previous answer is read: the maximum throughput (requests/s); its p50/p99 are only
      clients / throughput (Little's law), not the latency at a given load;
   b. target load (open loop, as wrk2 does it): requests scheduled at a constant ``--rate`` per second
      (default 2,000, the target throughput) over ``--connections`` keep-alive connections, latency measured
      from each request's *scheduled* send time (no coordinated omission): p50/p99/max, achieved rate,
      errors, sends late by more than 1 ms;
   c. one client alone (closed loop, one connection): the latency of a request without queueing;
4. direct chain (the reference, bench/_api_eligibility_chain.py): the same number of clients make the same
   decision from the chain alone (eth_call itemOf / saleOf / policyOf, eth_getLogs of the item's events
   and the consumer's authorizations, then the same pure rules) over the real items, for the same duration;
5. live: ``ledger-indexer follow`` on a second index of the anvil and a second API on it. First an
   agreement check: the API's decision for every real item equals the direct-chain one. Then, for each
   fast-refund return, the time from the carrier's ``POST /v1/returns/{id}/scans {"kind": "in_transit"}``
   (no ``?wait``) until ``GET /v1/returns/{id}`` shows the deposit settled with a payout: p50/p95;
6. with ``--baseline DIR`` (another checkout with its own .venv, e.g. main before a change): the loads of
   step 3 on the same index served by that checkout's ledger-api and by ours, alternately
   (``--baseline-rounds`` each), the median of each figure per side and the after/before ratio;
7. when the API misses its latency or throughput target (or with ``--profile``): a second, shorter load
   against an API process profiled in every thread (bench/_api_eligibility_serve.py), and a print of the
   functions that take the most time per request.

Prints a table with the targets (TARGETS: PASS/MISS), each figure with the load it was measured at
(throughput at saturation; p99 at the offered ``--rate``; the direct-chain ratio of the two saturation
throughputs) and, last, one JSON line with every figure. A
measurement: exits 0 whatever the figures; 2 with a message when setup (anvil, contracts, index, API,
indexer) fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from _api_eligibility_fill import Actors, fill, item_id_of  # noqa: E402
from common import (  # noqa: E402
    SetupError,
    console_script,
    json_line,
    percentile,
    say,
    start_chain,
    stop,
    table,
    tail,
    verdict,
)
from web3 import Web3  # noqa: E402
from web3.logs import DISCARD  # noqa: E402

from ledger_service.access import Role, create_api_key  # noqa: E402
from ledger_service.store import ChainPin, Store  # noqa: E402
from tests.support.activity import HUB, LOCATION, Activity, write_manifest  # noqa: E402
from tests.support.chain import (  # noqa: E402
    ARTIFACTS,
    CARRIER,
    MANUFACTURER,
    MERCHANT,
    Anvil,
    Deployed,
    deploy_all,
    free_port,
)

TARGETS = {"p99_ms": 5.0, "rps": 2000.0, "ratio": 10.0, "refund_p95_s": 2.0}
ZERO32 = b"\0" * 32
DAY = 86_400
SHIPPING, ARRIVING, HOLDING, DESTROYING = 3, 7, 14, 12
IN_TRANSIT, RETAIL_SOLD, RECALLED, DESTROYED = 3, 6, 11, 12
BATCH = 200
PYTHON = sys.executable


# ---- 1. the real chain ------------------------------------------------------------------------------


@dataclass
class RealChain:
    anvil: Anvil
    deployed: Deployed
    manifest: Path
    items: list[str] = field(default_factory=list)
    """Every real item id (0x hex), fast-refund items included."""
    refund_returns: list[str] = field(default_factory=list)
    profiles: dict[str, int] = field(default_factory=dict)


def build_chain(workdir: Path, *, chain_items: int, refunds: int) -> RealChain:
    """anvil + contracts + the merchant's policy + real items with varied histories."""
    anvil = start_chain()
    try:
        return _populate(anvil, workdir, chain_items=chain_items, refunds=refunds)
    except BaseException:
        anvil.stop()
        raise


def _populate(anvil: Anvil, workdir: Path, *, chain_items: int, refunds: int) -> RealChain:
    deployed = deploy_all(anvil)
    w3 = deployed.w3
    manifest = write_manifest(deployed, workdir / "deployments" / f"{w3.eth.chain_id}.json")
    act = Activity(deployed)
    real = RealChain(anvil=anvil, deployed=deployed, manifest=manifest)
    ledger, escrow = deployed.ledger.functions, deployed.escrow.functions
    act.publish_policy()  # window 30 days, fee 10%, fast refund without cap, at most 3 returns in 90 days

    rng = random.Random(11)
    consumers = [Web3.to_checksum_address("0x" + rng.randbytes(20).hex()) for _ in range(40)]
    ids = act.register(chain_items + refunds)
    profile_of: dict[bytes, str] = {}
    for j, item in enumerate(ids[:chain_items]):
        kind = {0: "unsold", 1: "undelivered", 3: "open_return"}.get(j % 10, "")
        if not kind:
            kind = {2: "recalled", 12: "destroyed"}.get(j % 20, "early" if j % 10 in (4, 5, 6) else "late")
        profile_of[item] = kind
    for item in ids[chain_items:]:
        profile_of[item] = "fast_refund"
    for kind in profile_of.values():
        real.profiles[kind] = real.profiles.get(kind, 0) + 1

    def record(sender: int, entries: list[tuple[bytes, int, int, bytes]]) -> None:
        for start in range(0, len(entries), BATCH):
            inputs = [(item, step, disp, HUB, ZERO32, btx) for item, step, disp, btx in entries[start : start + BATCH]]
            act.send(ledger.recordEvents(inputs), sender)

    record(MANUFACTURER, [(item, SHIPPING, IN_TRANSIT, ZERO32) for item in ids])
    sold = [item for item in ids if profile_of[item] != "unsold"]
    orders: dict[bytes, bytes] = {}
    prices: dict[bytes, int] = {}
    for item in sold:
        orders[item] = rng.randbytes(32)
        prices[item] = rng.randrange(10, 300) * 1_000_000
        consumer = consumers[rng.randrange(len(consumers))]
        act.send(
            escrow.recordSale(item, consumer, deployed.token.address, prices[item], orders[item], LOCATION), MERCHANT
        )
    record(CARRIER, [(item, ARRIVING, RETAIL_SOLD, orders[item]) for item in sold if profile_of[item] == "early"])
    anvil.rpc("evm_increaseTime", [40 * DAY])  # the early deliveries' 30-day windows close
    anvil.rpc("evm_mine", [])
    late = [item for item in sold if profile_of[item] not in ("early", "undelivered")]
    record(CARRIER, [(item, ARRIVING, RETAIL_SOLD, orders[item]) for item in late])
    record(MANUFACTURER, [(item, HOLDING, RECALLED, ZERO32) for item in ids if profile_of[item] == "recalled"])
    record(MERCHANT, [(item, DESTROYING, DESTROYED, ZERO32) for item in ids if profile_of[item] == "destroyed"])
    for item in ids:
        if profile_of[item] in ("open_return", "fast_refund"):
            fast = profile_of[item] == "fast_refund"
            receipt = act.send(escrow.authorizeReturn(item, prices[item], fast), MERCHANT)
            if fast:
                events = deployed.escrow.events.ReturnAuthorized().process_receipt(receipt, errors=DISCARD)
                real.refund_returns.append("0x" + bytes(events[0]["args"]["returnId"]).hex())
    real.items = ["0x" + bytes(item).hex() for item in ids]
    return real


# ---- processes ----------------------------------------------------------------------------------------


def chain_pin(deployed: Deployed) -> ChainPin:
    """What an index of ``deployed`` is pinned to (a synthetic index too: the API checks it against the node)."""
    w3 = deployed.w3
    return ChainPin(
        chain_id=w3.eth.chain_id,
        genesis_hash="0x" + bytes(w3.eth.get_block(0)["hash"]).hex(),
        ledger_address=deployed.ledger.address.lower(),
        escrow_address=deployed.escrow.address.lower(),
        deploy_block=deployed.deploy_block,
    )


def fill_actors(deployed: Deployed) -> Actors:
    """The synthetic chain's accounts: the deployment's manufacturer, carrier, merchant and stablecoin."""
    return Actors.make(
        manufacturer=deployed.accounts[MANUFACTURER],
        carrier=deployed.accounts[CARRIER],
        token=deployed.token.address,
        merchant=deployed.accounts[MERCHANT],
    )


def ledger_env(*, anvil: Anvil, database: Path, manifest: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "LEDGER_RPC_URL": anvil.url,
            "LEDGER_DATABASE_URL": f"sqlite:///{database}",
            "LEDGER_DEPLOYMENT_FILE": str(manifest),
            "LEDGER_ARTIFACTS_DIR": str(ARTIFACTS),
            "LEDGER_ENVIRONMENT": "development",
            "LEDGER_LOG_LEVEL": "WARNING",
        }
    )
    return env


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


UNSUPERVISED = (
    "import uvicorn; from api.serving import uvicorn_config; from ledger_service.settings import get_settings; "
    "uvicorn.Server(uvicorn_config(get_settings())).run()"
)
"""``ledger-api``'s one worker without uvicorn's supervisor (same app, protocol and settings): on a loaded
machine the supervisor's 5 s health check can kill a worker that is still importing, again and again."""


@contextlib.contextmanager
def api_server(
    env: dict[str, str],
    log: Path,
    *,
    workers: int = 1,
    profile_to: Path | None = None,
    checkout: Path = ROOT,
    supervised: bool = True,
) -> Iterator[Server]:
    """The API on a free loopback port, as production runs it: the ``ledger-api`` of ``checkout`` (its own
    ``.venv``; api.main:main: uvicorn with uvloop/httptools, no access log) with ``LEDGER_API_WORKERS=workers``;
    with ``profile_to``, one profiled process of ours (bench/_api_eligibility_serve.py). Stopped (SIGINT) on
    exit."""
    port = free_port()
    env = {**env, "LEDGER_API_HOST": "127.0.0.1", "LEDGER_API_PORT": str(port), "LEDGER_API_WORKERS": str(workers)}
    if not supervised:
        cmd = [PYTHON, "-c", UNSUPERVISED]
    elif profile_to is None:
        cmd = [str(checkout / ".venv" / "bin" / "ledger-api")]
    else:
        cmd = [PYTHON, str(ROOT / "bench" / "_api_eligibility_serve.py"), "--port", str(port), "--out", str(profile_to)]
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, cwd=checkout, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(process, port, log)
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise SetupError(f"the API exited with code {process.returncode} at startup:\n{tail(log)}")
            try:
                if httpx.get(f"{server.url}/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SetupError(f"the API did not answer within 90 s:\n{tail(log)}")
            time.sleep(0.2)
        yield server
    finally:
        stop(process)


@contextlib.contextmanager
def indexer_follow(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    cmd = [*console_script("ledger-indexer"), "follow"]
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        stop(process)


GENERATOR_NICE = -10
"""The load generator's scheduling priority (nice value). The generator shares the 2 cores with the API's
workers: at the default priority, whenever the 3 processes are runnable at once the kernel's fair scheduler
may hold a worker (and the requests queued on it) off the CPU for a whole time slice, several milliseconds,
and the generator's sends and reads slip the same way. A higher priority lets the generator (a quarter of a
core) run the moment it wakes, briefly, like the network card of a real server: its CPU still counts
against the API, its time-slice pauses no longer do. Applied to every load, the direct-chain reference too."""
_generator_nice = {"asked": GENERATOR_NICE, "applied": 0}


def _generator_priority() -> None:
    """In the generator process, before exec: raises its priority if this user may (root, CAP_SYS_NICE)."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, int(_generator_nice["asked"]))


def generator_nice(asked: int) -> int:
    """Sets the generator's nice value for the next loads; the value a child will actually get (0 if this
    user may not raise priorities)."""
    _generator_nice["asked"] = asked
    probe = subprocess.run(
        [PYTHON, "-c", "import os; print(os.getpriority(os.PRIO_PROCESS, 0))"],
        preexec_fn=_generator_priority,  # only os.setpriority, before exec
        capture_output=True,
        text=True,
        check=True,
    )
    _generator_nice["applied"] = int(probe.stdout.strip())
    return _generator_nice["applied"]


def _generator(command: list[str], stem: Path, *, timeout: float, what: str, env: dict[str, str] | None = None) -> str:
    """Runs a load generator at the generator's priority, its output in ``stem``.out/.err; its last line."""
    out, err = stem.with_suffix(".out"), stem.with_suffix(".err")
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=stdout,
            stderr=stderr,
            preexec_fn=_generator_priority,  # only os.setpriority, before exec
        )
        try:
            process.wait(timeout=timeout)
        except BaseException:
            process.kill()
            process.wait()
            raise
    lines = out.read_text(errors="replace").strip().splitlines()
    if process.returncode != 0 or not lines:
        raise SetupError(f"{what} failed (exit code {process.returncode}):\n{tail(err, 40)}\n{tail(out, 10)}")
    return lines[-1]


WRK_PATHS = 200_000
"""Request paths drawn for each wrk run, more than a run sends here: wrk walks them in order (each thread
from its own offset), so every request is an independent uniform draw as long as the list does not wrap."""
UNKNOWN_SHARE = 0.01
"""Share of the requests that ask for an item the index does not hold."""


@dataclass
class ApiLoad:
    """The loads on one served API (bench/api_eligibility.lua on wrk): GET /v1/items/{id}/eligibility of
    uniformly random synthetic items (:data:`UNKNOWN_SHARE` unknown ids) with an auditor's key."""

    server: Server
    authorization: str
    items: int
    workdir: Path

    def _paths(self, label: str, seed: int) -> Path:
        rng = random.Random(seed)
        lines = []
        for _ in range(WRK_PATHS):
            if rng.random() < UNKNOWN_SHARE:
                item = "0x" + rng.randbytes(32).hex()
            else:
                item = item_id_of(rng.randrange(self.items))
            lines.append(f"/v1/items/{item}/eligibility\n")
        path = self.workdir / f"{label}.paths"
        path.write_text("".join(lines))
        return path

    def _wrk(
        self, label: str, *, seed: int, threads: int, connections: int, seconds: int, script_args: list[str]
    ) -> dict[str, Any]:
        wrk = shutil.which("wrk")
        if wrk is None:
            raise SetupError("wrk is not installed: run scripts/bootstrap.sh (Debian package wrk)")
        paths = self._paths(label, seed)
        command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s"]
        command += ["--timeout", "30s", "-s", str(ROOT / "bench" / "api_eligibility.lua"), self.server.url]
        command += ["--", str(paths), str(threads), *script_args]
        env = {**os.environ, "BENCH_AUTHORIZATION": self.authorization}
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        raw: dict[str, Any] = json.loads(
            _generator(command, self.workdir / label, timeout=seconds + 120, what=f"wrk ({label})", env=env)
        )
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        raw["client_cpu_s"] = round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 2)
        return raw

    def closed(
        self, name: str, *, clients: int, warmup: float, duration: float, signal_after_warmup: Server | None = None
    ) -> dict[str, Any]:
        """``clients`` keep-alive connections on one wrk thread (one process, as small beside the API as a
        generator can be), each sending its next request when the previous answer is read: a warm-up run,
        then the measured run, each on its own draw of items (so the warm-up does not warm the measured
        run's rows); wrk counts whole seconds, both are rounded up. Latency is wrk's, from each request's
        send to its answer. ``signal_after_warmup`` gets SIGUSR1 between the two (the profiling server
        starts profiling its main thread then)."""
        if math.ceil(warmup):
            self._wrk(
                f"{name}-warmup", seed=1, threads=1, connections=clients, seconds=math.ceil(warmup), script_args=[]
            )
        if signal_after_warmup is not None:
            signal_after_warmup.process.send_signal(signal.SIGUSR1)
        seconds = max(1, math.ceil(duration))
        raw = self._wrk(name, seed=2, threads=1, connections=clients, seconds=seconds, script_args=[])
        seconds = raw["duration_us"] / 1e6
        statuses = {str(k): int(v) for k, v in _mapping(raw["statuses"]).items()}
        socket_errors = {f"socket {k}": int(v) for k, v in raw["errors"].items() if k != "status" and v}
        ok = statuses.get("200", 0)
        samples = raw["error_samples"] if isinstance(raw["error_samples"], list) else []
        return {
            "generator": "wrk",
            "clients": clients,
            "seconds": round(seconds, 3),
            "requests": int(raw["requests"]),
            "errors": int(raw["requests"]) - ok + sum(socket_errors.values()),
            "error_samples": samples + [f"{k}: {v}" for k, v in socket_errors.items()][: 5 - len(samples)],
            "rps": round(ok / seconds, 1) if seconds > 0 else 0.0,
            "p50_ms": round(raw["p50_us"] / 1000, 3),
            "p90_ms": round(raw["p90_us"] / 1000, 3),
            "p99_ms": round(raw["p99_us"] / 1000, 3),
            "max_ms": round(raw["max_us"] / 1000, 3),
            "statuses": {**statuses, **socket_errors},
            "outcomes": _mapping(raw["outcomes"]),
            "reason_codes": dict(sorted(_mapping(raw["reason_codes"]).items(), key=lambda kv: -kv[1])),
            "client_cpu_s": raw["client_cpu_s"],
        }

    def open(self, name: str, *, rate: float, connections: int, warmup: float, duration: float) -> dict[str, Any]:
        """Requests scheduled at ``rate`` per second over ``connections`` keep-alive connections (one per wrk
        thread), latency from each request's scheduled send time (see bench/api_eligibility.lua); the requests
        scheduled in the ``duration`` after the ``warmup`` count, those unanswered when wrk stops, 2 s after
        that window, are errors."""
        t0 = time.monotonic() + 0.5 + connections * 0.002  # wrk's threads connect first
        seconds = math.ceil(t0 - time.monotonic() + warmup + duration + 2)
        args = [f"{rate!r}", f"{t0!r}", f"{warmup!r}", f"{duration!r}"]
        raw = self._wrk(name, seed=3, threads=connections, connections=connections, seconds=seconds, script_args=args)
        scheduled = math.ceil((warmup + duration) * rate) - math.ceil(warmup * rate)
        ms = [us / 1000 for us in _sequence(raw["from_scheduled_us"])]
        sent_ms = [us / 1000 for us in _sequence(raw["from_sent_us"])]
        late_ms = [us / 1000 for us in _sequence(raw["late_us"])]
        statuses = {str(k): int(v) for k, v in _mapping(raw["statuses"]).items()}
        answered = sum(statuses.values())
        samples = raw["error_samples"] if isinstance(raw["error_samples"], list) else []
        if scheduled > answered:
            samples.append(f"{scheduled - answered} requests unanswered when wrk stopped, 2 s after the window")
        if raw["threads_unfinished"]:
            # a connection still waiting for its last counted answer: its answered requests count as errors too
            samples.append(f"{raw['threads_unfinished']} of {connections} connections had not finished the window")
        return {
            "generator": "wrk",
            "loop": "open",
            "offered_rps": rate,
            "seconds": duration,
            "scheduled": scheduled,
            "requests": answered,
            "errors": scheduled - len(ms),
            "error_samples": samples[:5],
            "achieved_rps": round(int(raw["answered_in_window"]) / duration, 1),
            "p50_ms": round(percentile(ms, 0.50), 3),
            "p90_ms": round(percentile(ms, 0.90), 3),
            "p99_ms": round(percentile(ms, 0.99), 3),
            "p999_ms": round(percentile(ms, 0.999), 3),
            "max_ms": round(max(ms), 3) if ms else None,
            "from_send_p50_ms": round(percentile(sent_ms, 0.50), 3),
            "from_send_p99_ms": round(percentile(sent_ms, 0.99), 3),
            "late_p50_ms": round(percentile(late_ms, 0.50), 3),
            "late_p99_ms": round(percentile(late_ms, 0.99), 3),
            "late_max_ms": round(max(late_ms), 3) if late_ms else None,
            "late_over_1ms": sum(1 for x in late_ms if x > 1.0),
            "connections": connections,
            "statuses": statuses,
            "client_cpu_s": raw["client_cpu_s"],
        }


def _mapping(value: Any) -> dict[str, int]:
    """A count table from the Lua script's JSON (an empty Lua table is encoded as ``{}``)."""
    return dict(value) if isinstance(value, dict) else {}


def _sequence(value: Any) -> list[int]:
    """A list from the Lua script's JSON (an empty Lua table is encoded as ``{}``)."""
    return list(value) if isinstance(value, list) else []


def chain_load(spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """The direct-chain decisions (bench/_api_eligibility_chain.py) in their own process."""
    spec_file = workdir / "load-chain.json"
    spec_file.write_text(json.dumps(spec))
    result: dict[str, Any] = json.loads(
        _generator(
            [PYTHON, str(ROOT / "bench" / "_api_eligibility_chain.py"), str(spec_file)],
            workdir / "load-chain",
            timeout=float(spec["warmup"]) + float(spec["duration"]) + 600,
            what="the direct-chain clients",
        )
    )
    return result


def api_loads(
    load: ApiLoad, args: argparse.Namespace, name: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The three loads on one served API, printed as they finish: (saturation, open loop, one client)."""
    api = load.closed(name, clients=args.clients, warmup=args.warmup, duration=args.duration)
    say(
        f"   a. saturation, {args.clients} closed-loop clients: {api['rps']:,.0f} req/s, "
        f"p50 {api['p50_ms']:.2f} ms, p99 {api['p99_ms']:.2f} ms, errors {api['errors']}; "
        f"outcomes {api['outcomes']}; load generator CPU {api['client_cpu_s']} s"
    )
    for sample in api["error_samples"]:
        say(f"   error: {sample}")
    paced = load.open(
        f"{name}-open", rate=args.rate, connections=args.connections, warmup=args.warmup, duration=args.duration
    )
    say(
        f"   b. offered {paced['offered_rps']:,.0f} req/s (open loop, latency from the scheduled send): "
        f"achieved {paced['achieved_rps']:,.0f} req/s, p50 {paced['p50_ms']:.2f} ms, p99 {paced['p99_ms']:.2f} ms, "
        f"max {paced['max_ms']} ms, errors {paced['errors']} of {paced['scheduled']:,}"
    )
    say(
        f"      from the actual send: p50 {paced['from_send_p50_ms']:.2f} ms, "
        f"p99 {paced['from_send_p99_ms']:.2f} ms; sends late by > 1 ms: {paced['late_over_1ms']:,} "
        f"(late p99 {paced['late_p99_ms']:.2f} ms, max {paced['late_max_ms']} ms); "
        f"{paced['connections']} connections; load generator CPU {paced['client_cpu_s']} s"
    )
    for sample in paced["error_samples"]:
        say(f"   error: {sample}")
    single = load.closed(f"{name}-1", clients=1, warmup=1.0, duration=min(args.duration, 10.0))
    say(
        f"   c. one client alone: {single['rps']:,.0f} req/s, p50 {single['p50_ms']:.2f} ms, "
        f"p99 {single['p99_ms']:.2f} ms"
    )
    return api, paced, single


COMPARED: tuple[tuple[str, str, Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], float]], ...] = (
    ("saturation throughput", "req/s", lambda api, paced, one: api["rps"]),
    ("saturation p99", "ms", lambda api, paced, one: api["p99_ms"]),
    ("p99 at the offered rate", "ms", lambda api, paced, one: paced["p99_ms"]),
    ("one client p50", "ms", lambda api, paced, one: one["p50_ms"]),
)
"""The figures of the before/after comparison: (name, unit, figure from the three loads' results)."""


def compare_with_baseline(
    args: argparse.Namespace, env: dict[str, str], *, authorization: str, workdir: Path, baseline: Path
) -> dict[str, Any]:
    """The three loads on the same index served by ``baseline``'s ledger-api (another checkout, with its own
    .venv) and by ours, alternately, ``--baseline-rounds`` times each (before, after, before, after...): the
    median of each figure per side and the after/before ratio."""
    say(f"6. before/after: {baseline}'s ledger-api and ours on the same index, alternately, {args.baseline_rounds}x")
    runs: dict[str, list[tuple[float, ...]]] = {"before": [], "after": []}
    for number in range(args.baseline_rounds):
        for side, checkout in (("before", baseline), ("after", ROOT)):
            say(f"   round {number + 1}, {side}:")
            log = workdir / f"api-{side}-{number}.log"
            with api_server(env, log, workers=args.workers, checkout=checkout) as server:
                results = api_loads(ApiLoad(server, authorization, args.items, workdir), args, f"{side}-{number}")
            runs[side].append(tuple(float(figure(*results)) for _name, _unit, figure in COMPARED))
    rows = [("figure", "before", "after", "after/before")]
    summary: dict[str, Any] = {"checkout": str(baseline), "rounds": args.baseline_rounds, "runs": runs}
    for index, (name, unit, _figure) in enumerate(COMPARED):
        before = statistics.median(run[index] for run in runs["before"])
        after = statistics.median(run[index] for run in runs["after"])
        ratio = after / before if before else float("nan")
        summary[name] = {"before": before, "after": after, "ratio": round(ratio, 3)}
        rows.append((name, f"{before:,.2f} {unit}", f"{after:,.2f} {unit}", f"{ratio:.2f}x"))
    say("   medians per side:")
    for line in table(rows, align="lrrr", indent="   "):
        say(line)
    return summary


# ---- 5. live index: agreement and fast refunds ----------------------------------------------------------


def wait_indexed(database: Path, block: int, *, timeout: float, indexer: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    store: Store | None = None
    try:
        while True:
            if indexer.poll() is not None:
                raise SetupError(f"ledger-indexer follow exited with code {indexer.returncode}:\n{tail(log)}")
            if store is None and database.exists():
                with contextlib.suppress(Exception):
                    store = Store.open(f"sqlite:///{database}")
            checkpoint = store.checkpoint() if store is not None else None
            if checkpoint is not None and checkpoint.number >= block:
                return
            if time.monotonic() > deadline:
                raise SetupError(f"the indexer did not reach block {block} within {timeout:g} s:\n{tail(log)}")
            time.sleep(0.1)
    finally:
        if store is not None:
            store.close()


def agreement(api: Server, auditor: str, decisions: dict[str, list[Any]]) -> tuple[int, int, list[str]]:
    """(items whose API decision equals the direct-chain one, items compared, first differences)."""
    same, differences = 0, []
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {auditor}"}, timeout=30) as client:
        for item, (outcome, codes) in decisions.items():
            response = client.get(f"/v1/items/{item}/eligibility")
            if response.status_code != 200:
                differences.append(f"{item}: HTTP {response.status_code} {response.text[:200]}")
                continue
            body = response.json()
            api_codes = sorted(r["code"] for r in body["reasons"])
            if body["outcome"] == outcome and api_codes == sorted(codes):
                same += 1
            elif len(differences) < 5:
                differences.append(f"{item}: API {body['outcome']} {api_codes} / chain {outcome} {sorted(codes)}")
    return same, len(decisions), differences


def fast_refunds(api: Server, *, carrier: str, auditor: str, returns: list[str]) -> dict[str, Any]:
    """For each return: carrier's in-transit scan (no ?wait) -> GET shows it settled with a payout."""
    latencies: list[float] = []
    post_times: list[float] = []
    failures: list[str] = []
    rng = random.Random(5)
    with httpx.Client(base_url=api.url, timeout=30) as client:
        for return_id in returns:
            time.sleep(rng.uniform(0.05, 0.3))  # a random phase against the indexer's polling
            t0 = time.perf_counter()
            response = client.post(
                f"/v1/returns/{return_id}/scans",
                json={"kind": "in_transit"},
                headers={"Authorization": f"Bearer {carrier}"},
            )
            post_times.append(time.perf_counter() - t0)
            if response.status_code != 200:
                failures.append(f"{return_id}: scan HTTP {response.status_code} {response.text[:300]}")
                continue
            while True:
                seen = client.get(f"/v1/returns/{return_id}", headers={"Authorization": f"Bearer {auditor}"})
                if seen.status_code == 200:
                    body = seen.json()
                    if body.get("settled") and body.get("payout"):
                        latencies.append(time.perf_counter() - t0)
                        break
                if time.perf_counter() - t0 > 30:
                    failures.append(f"{return_id}: no payout visible after 30 s (last: {seen.text[:300]})")
                    break
                time.sleep(0.005)
    latencies.sort()
    return {
        "returns": len(returns),
        "paid_visible": len(latencies),
        "failures": failures[:5],
        "failed": len(failures),
        "p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "p95_s": round(percentile(latencies, 0.95), 3) if latencies else None,
        "max_s": round(latencies[-1], 3) if latencies else None,
        "scan_post_p50_s": round(statistics.median(post_times), 3) if post_times else None,
    }


# ---- report -------------------------------------------------------------------------------------------------


def print_table(figures: dict[str, Any]) -> None:
    api, paced, chain, refund = figures["api"], figures["api_open_loop"], figures["chain"], figures["fast_refund"]
    one = figures["api_one_client"]
    ratio = figures["ratio"]
    saturation = f"saturation: {figures['clients']} closed-loop clients"
    offered = f"offered {paced['offered_rps']:,.0f} req/s, open loop"
    rows = [
        (
            f"eligibility throughput (API, {saturation})",
            f"{api['rps']:,.0f} req/s",
            f">= {TARGETS['rps']:,.0f} req/s",
            verdict(figures["pass"]["rps"]),
        ),
        (f"eligibility p50 / p99 (API, {saturation})", f"{api['p50_ms']:.2f} / {api['p99_ms']:.2f} ms", "", ""),
        (f"errors (API, {saturation})", f"{api['errors']} of {api['requests']:,}", "0", verdict(api["errors"] == 0)),
        (
            f"eligibility p99 from scheduled send (API, {offered})",
            f"{paced['p99_ms']:.2f} ms",
            f"<= {TARGETS['p99_ms']:g} ms",
            verdict(figures["pass"]["p99"]),
        ),
        (
            f"eligibility p50 / max from scheduled send (API, {offered})",
            f"{paced['p50_ms']:.2f} / {paced['max_ms']} ms",
            "",
            "",
        ),
        (f"achieved rate (API, {offered})", f"{paced['achieved_rps']:,.0f} req/s", "", ""),
        (
            f"errors (API, {offered})",
            f"{paced['errors']} of {paced['scheduled']:,}",
            "0",
            verdict(paced["errors"] == 0),
        ),
        (
            f"sends late > 1 ms; connections ({offered})",
            f"{paced['late_over_1ms']:,}; {paced['connections']}",
            "",
            "",
        ),
        ("eligibility p50 / p99 (API, 1 client alone)", f"{one['p50_ms']:.2f} / {one['p99_ms']:.2f} ms", "", ""),
        (
            f"direct chain p50 / p99 ({saturation})",
            f"{chain['p50_ms']:.1f} / {chain['p99_ms']:.1f} ms",
            "",
            "",
        ),
        (f"direct chain throughput ({saturation})", f"{chain['rps']:,.0f} decisions/s", "", ""),
        (
            "API / direct chain throughput (both at saturation)",
            f"{ratio:.1f}x" if ratio else "-",
            f">= {TARGETS['ratio']:g}x",
            verdict(figures["pass"]["ratio"]),
        ),
        (
            "API = chain decisions",
            f"{figures['agreement']['same']}/{figures['agreement']['compared']}",
            "all",
            verdict(figures["pass"]["agreement"]),
        ),
        ("fast refund p50", f"{refund['p50_s']} s", "", ""),
        (
            "fast refund p95",
            f"{refund['p95_s']} s",
            f"<= {TARGETS['refund_p95_s']:g} s",
            verdict(figures["pass"]["refund_p95"]),
        ),
    ]
    say("")
    for line in table([("figure", "value", "target", "result"), *rows], align="lrll"):
        say(line)


def print_profile(report: dict[str, Any]) -> None:
    say("\nwhere the API's time goes (cProfile in every server thread, under the same load; a deterministic")
    say("profiler inflates pure-Python code more than SQLite's C calls: read the shares):")
    for line in report["lines"]:
        say(f"  {line}")


# ---- main ----------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000, help="items in the synthetic index")
    parser.add_argument("--events-per-item", type=int, default=5, help="item events per item (at least 5)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (API and direct chain)")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="API worker processes (LEDGER_API_WORKERS; default: one per CPU core, as in production)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=TARGETS["rps"],
        help="requests/s offered in the open-loop phase (latency at this load; default: the target throughput)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=32,
        help="open-loop phase: keep-alive connections, one per wrk thread, each sending every connections/rate s",
    )
    parser.add_argument("--duration", type=float, default=30.0, help="seconds measured per load, after warm-up")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load before measuring")
    parser.add_argument("--chain-items", type=int, default=300, help="real items on anvil (direct-chain reference)")
    parser.add_argument("--refunds", type=int, default=30, help="fast-refund returns timed end to end")
    parser.add_argument("--profile", action="store_true", help="profile the API under load even if it meets targets")
    parser.add_argument("--no-profile", action="store_true", help="never profile")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (indexes, logs)")
    parser.add_argument(
        "--generator-nice",
        type=int,
        default=GENERATOR_NICE,
        help=f"nice value of the load generator (default {GENERATOR_NICE}: see GENERATOR_NICE; 0 = as the API)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="another checkout with its own .venv (e.g. main before a change): its ledger-api and ours serve the "
        "same index alternately, each figure printed for both with the after/before ratio",
    )
    parser.add_argument("--baseline-rounds", type=int, default=2, help="loads per side with --baseline")
    args = parser.parse_args()
    if args.events_per_item < 5:
        parser.error("--events-per-item must be at least 5")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.rate <= 0:
        parser.error("--rate must be positive")
    if args.connections < 1:
        parser.error("--connections must be at least 1")
    if args.baseline is not None:
        args.baseline = args.baseline.resolve()
        if not (args.baseline / ".venv" / "bin" / "ledger-api").is_file():
            parser.error(f"--baseline {args.baseline}: no .venv/bin/ledger-api there (bootstrap that checkout first)")
        if args.baseline_rounds < 1:
            parser.error("--baseline-rounds must be at least 1")
    workdir = Path(tempfile.mkdtemp(prefix="bench-eligibility-"))
    try:
        figures = run(args, workdir)
    except SetupError as exc:
        print(f"bench/api_eligibility.py: setup failed: {exc}", file=sys.stderr)
        print(f"(work directory kept: {workdir})", file=sys.stderr)
        return 2
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        say(f"work directory kept: {workdir}")
    json_line(figures)
    return 0


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    say(f"bench/api_eligibility.py: work directory {workdir}")
    say(f"1. chain: anvil, contracts, {args.chain_items} real items + {args.refunds} fast-refund returns")
    t0 = time.perf_counter()
    try:
        real = build_chain(workdir, chain_items=args.chain_items, refunds=args.refunds)
    except SetupError:
        raise
    except Exception as exc:  # a revert or an RPC failure while building the chain: not a measurement
        raise SetupError(f"building the chain failed: {type(exc).__name__}: {exc}") from exc
    try:
        return _run(args, workdir, real, started, chain_seconds=time.perf_counter() - t0)
    finally:
        real.anvil.stop()


def _run(
    args: argparse.Namespace, workdir: Path, real: RealChain, started: float, *, chain_seconds: float
) -> dict[str, Any]:
    d = real.deployed
    w3 = d.w3
    head = w3.eth.block_number
    say(f"   {len(real.items)} items {real.profiles}, head block {head}, {chain_seconds:.1f} s")
    pin = chain_pin(d)

    # 2. the big index
    big = workdir / "big.sqlite3"
    say(f"2. fill: {args.items:,} items x {args.events_per_item} item events into {big.name} through Store.apply")
    try:
        store = Store.open(f"sqlite:///{big}")
    except Exception as exc:
        raise SetupError(f"cannot create the index {big}: {exc}") from exc
    try:
        stats = fill(
            store, items=args.items, events_per_item=args.events_per_item, actors=fill_actors(d), pin=pin, progress=say
        )
        auditor = create_api_key(store=store, role=Role.AUDITOR, name="bench auditor").plaintext
    finally:
        store.close()
    size_mb = sum(p.stat().st_size for p in workdir.glob("big.sqlite3*")) / 2**20
    say(
        f"   {stats.items:,} items, {stats.item_events:,} item events, {stats.logs:,} logs in {stats.seconds:.0f} s "
        f"({stats.logs / stats.seconds:,.0f} logs/s; Store.apply {stats.apply_seconds:.0f} s); {size_mb:,.0f} MiB"
    )
    say(
        f"   profiles {stats.profiles}; returns open {stats.returns_open:,}, cancelled {stats.returns_cancelled:,}; "
        f"tampered histories {stats.tampered}; non-returnable category {stats.categorized:,}"
    )

    # 3. the API over the big index
    env_big = ledger_env(anvil=real.anvil, database=big, manifest=real.manifest)
    say(
        f"3. API: ledger-api with {args.workers} worker process(es); {args.warmup:g} s warm-up + {args.duration:g} s "
        f"at saturation ({args.clients} closed-loop clients), then at an offered {args.rate:,.0f} req/s (open loop)"
    )
    applied = generator_nice(args.generator_nice)
    say(
        f"   load generator at nice {applied}"
        + ("" if applied == args.generator_nice else f" (asked for {args.generator_nice}: not permitted here)")
    )
    authorization = f"Bearer {auditor}"
    with api_server(env_big, workdir / "api-big.log", workers=args.workers) as server:
        api, paced, single = api_loads(ApiLoad(server, authorization, args.items, workdir), args, "load-api")

    # 4. the direct-chain reference
    say(f"4. direct chain: {len(real.items)} real items on anvil, {args.clients} clients")
    chain = chain_load(
        {
            "clients": args.clients,
            "duration": args.duration,
            "warmup": args.warmup,
            "host": "127.0.0.1",
            "port": real.anvil.port,
            "item_ids": real.items,
            "ledger": d.ledger.address,
            "escrow": d.escrow.address,
            "chain_id": w3.eth.chain_id,
            "deploy_block": d.deploy_block,
            "artifacts_dir": str(ARTIFACTS),
        },
        workdir,
    )
    say(
        f"   {chain['rps']:,.1f} decisions/s, p50 {chain['p50_ms']:.1f} ms, p99 {chain['p99_ms']:.1f} ms, "
        f"errors {chain['errors']}; outcomes {chain['outcomes']}"
    )
    for sample in chain["error_samples"]:
        say(f"   error: {sample}")

    # 5. live index: agreement and fast refunds
    live = workdir / "live.sqlite3"
    env_live = ledger_env(anvil=real.anvil, database=live, manifest=real.manifest)
    say("5. live: ledger-indexer follow + API on a second index; agreement, then fast refunds")
    with indexer_follow(env_live, workdir / "indexer.log") as indexer:
        wait_indexed(live, w3.eth.block_number, timeout=120, indexer=indexer, log=workdir / "indexer.log")
        store = Store.open(f"sqlite:///{live}")
        try:
            live_auditor = create_api_key(store=store, role=Role.AUDITOR, name="bench auditor").plaintext
            carrier = create_api_key(
                store=store, role=Role.CARRIER, name="bench carrier", actor_address=d.accounts[CARRIER]
            ).plaintext
        finally:
            store.close()
        with api_server(env_live, workdir / "api-live.log") as server:
            same, compared, differences = agreement(server, live_auditor, chain["decisions"])
            say(f"   API on the live index = direct-chain decision for {same}/{compared} items")
            for line in differences:
                say(f"   differs: {line}")
            refund = fast_refunds(server, carrier=carrier, auditor=live_auditor, returns=real.refund_returns)
    say(
        f"   {refund['paid_visible']}/{refund['returns']} payouts visible: p50 {refund['p50_s']} s, "
        f"p95 {refund['p95_s']} s, max {refund['max_s']} s (the scan call itself: p50 {refund['scan_post_p50_s']} s)"
    )
    for line in refund["failures"]:
        say(f"   failed: {line}")

    ratio = api["rps"] / chain["rps"] if chain["rps"] else None
    passes = {
        # p99 at the target load: judged only when the open loop offered at least the target throughput
        "p99": None if args.rate < TARGETS["rps"] else paced["p99_ms"] <= TARGETS["p99_ms"] and paced["errors"] == 0,
        "rps": api["rps"] >= TARGETS["rps"],
        "ratio": None if ratio is None else ratio >= TARGETS["ratio"],
        "agreement": same == compared,
        "refund_p95": None
        if refund["p95_s"] is None
        else refund["p95_s"] <= TARGETS["refund_p95_s"] and refund["failed"] == 0,
    }
    chain.pop("decisions", None)
    api.pop("decisions", None)
    figures: dict[str, Any] = {
        "items": stats.items,
        "item_events": stats.item_events,
        "logs": stats.logs,
        "fill_s": round(stats.seconds, 1),
        "fill_logs_per_s": round(stats.logs / stats.seconds),
        "index_mib": round(size_mb),
        "clients": args.clients,
        "workers": args.workers,
        "duration_s": args.duration,
        "rate": args.rate,
        "connections": args.connections,
        "api": api,
        "api_open_loop": paced,
        "api_one_client": {k: single[k] for k in ("rps", "p50_ms", "p90_ms", "p99_ms", "errors")},
        "chain": chain,
        "ratio": round(ratio, 1) if ratio else None,
        "agreement": {"same": same, "compared": compared},
        "fast_refund": refund,
        "targets": TARGETS,
        "pass": passes,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "generator_nice": _generator_nice["applied"],
    }

    # 6. before/after: the same index served by another checkout's ledger-api and by ours, alternately
    if args.baseline is not None:
        figures["baseline"] = compare_with_baseline(
            args, env_big, authorization=authorization, workdir=workdir, baseline=args.baseline
        )

    # 7. profile
    if not args.no_profile and (args.profile or passes["p99"] is False or not passes["rps"]):
        say("7. profile: the API under the same load, cProfile in every thread")
        out = workdir / "profile.json"
        with api_server(env_big, workdir / "api-profile.log", profile_to=out) as server:
            ApiLoad(server, authorization, args.items, workdir).closed(
                "load-profile",
                clients=args.clients,
                warmup=args.warmup,
                duration=min(args.duration, 15.0),
                signal_after_warmup=server,
            )
        if out.exists():
            report = json.loads(out.read_text())
            print_profile(report)
            figures["profile_top"] = report["lines"][:15]
    figures["total_s"] = round(time.perf_counter() - started, 1)
    print_table(figures)
    return figures


if __name__ == "__main__":
    sys.exit(main())
