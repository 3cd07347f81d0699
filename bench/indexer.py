"""End-to-end indexer benchmark on a local anvil: the raw eth_getLogs ceiling, backfill into SQLite and
PostgreSQL, and follow-mode latency, all in one run over the same chain.

Run from the repository root:
    .venv/bin/python bench/indexer.py [--events 1000000] [--postgres-url URL] [--profile]
    .venv/bin/python bench/indexer.py --baseline ../before [--repeats 3]

The default, 1M events (~6 min here, 3 of them generating the chain), is the scale the memory target is
set at, and where the throughput ratios measure the indexer's steady pace rather than the CLI's ~0.5 s
start-up (at 100k events that start-up is a quarter of a backfill).

Steps:
1. starts its own anvil on a free port, deploys the contracts, emits every event type once
   (tests/support/activity.py) and then at least ``--events`` ItemEventRecorded events by batched
   ``recordEvents`` calls (``--batch`` events per transaction, one transaction per block) over
   ``--items`` items (each transaction touches ``--batch`` distinct items);
2. (a) the ceiling: ``eth_getLogs`` over [deploy block, head] for the two contract addresses with the
   range sizes the indexer picks (its RangeSizer, same ``--target-logs``), over one keep-alive httpx
   client, each response parsed with ``json.loads`` (the indexer's parser) and nothing else. Median
   of ``--raw-repeats`` passes;
3. (b) ``ledger-indexer backfill`` into a fresh SQLite file, (c) into a fresh PostgreSQL schema (dropped
   afterwards), each a child process: wall time and peak RSS (``os.wait4``). Rates are the log
   count of (a) divided by the child's wall time (start to exit: interpreter start-up, migrations and
   pinning included); the CLI's own figure (first range to head) is shown next to it. Memory: after
   (d), each backfill runs a second time into another fresh index while a thread sums its processes'
   PSS every 50 ms; that run is not timed, because the sampling (a /proc walk of the indexer's memory,
   ~2 s of CPU per 1M events on a 2-core machine) competes with the indexer for the cores, as it does
   not with (a) (it also covers (d)'s few blocks). Peak RSS is the larger of the largest process's (both
   runs) and the sampled sum;
4. (d) ``ledger-indexer follow`` on each caught-up index, then ``--follow-txs`` transactions ``--spacing``
   seconds apart, each in its own block (automine); a read-only SQLAlchemy connection polls the index
   every ``--poll-every`` seconds: the delay of a transaction is from its receipt (polled every
   millisecond after the send: the block is mined) to its block's item_events rows being visible;
5. (e) with ``--checks-repeats N`` (default 1): SQLite backfills without the completeness checks, with the
   bloom check, with bloom + itemOf reconciliation (the default, as in (b) and (c)) and with the receipts
   proof too, interleaved N rounds; the median wall time of each and its ratio to the one without;
6. with ``--profile``: ``ledger-indexer backfill --profile DIR`` into a fresh SQLite file (and PostgreSQL
   unless ``--no-postgres``): the top functions by own time of its writer thread and of its fetch thread.

With ``--baseline DIR`` (another checkout with its own ``.venv``, e.g. the main branch before a change), the
run stops after (a): the chain is backfilled by that checkout's ``ledger-indexer`` and by ours, interleaved
``--repeats`` rounds (the order alternating), into fresh SQLite files and PostgreSQL schemas; it prints each
one's median wall time, its ratio to (a) and the after/before ratio.

The recovery drill "index lost, rebuilt from the chain alone" is (b) and (c): a backfill into an empty index;
the table also gives its time per 1M events (extrapolated, and saying so, when ``--events`` is smaller).

Prints a table (events/s, ratio to (a), peak RSS, follow p50/p95, PASS/MISS per target in TARGETS)
and, last, one JSON line with every figure. A measurement: exits 0 whatever the figures, 2 when
setup (anvil, contracts, PostgreSQL, the indexer itself) fails.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pstats
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from common import (  # noqa: E402
    DEFAULT_PG_URL,
    SetupError,
    TreeMemory,
    check_postgres,
    console_script,
    json_line,
    percentile,
    pg_schema,
    postgres_cpu,
    process_cpu,
    say,
    start_chain,
    table,
    verdict,
)
from sqlalchemy import Engine, create_engine, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from web3 import Web3  # noqa: E402

from ledger_service.indexer.sync import RangeSizer  # noqa: E402
from ledger_service.store.tables import item_events, item_key  # noqa: E402
from tests.support.activity import LOCATION, Activity, write_manifest  # noqa: E402
from tests.support.chain import ARTIFACTS, CARRIER, MANUFACTURER, MERCHANT, Anvil, deploy_all  # noqa: E402

TARGETS = {"sqlite_ratio": 0.60, "postgres_ratio": 0.40, "rss_mb": 300.0, "rss_at_events": 1_000_000, "p95_ms": 500.0}
BLOCK_GAS = 30_000_000
TX_GAS = 25_000_000
MB = 1024 * 1024


# ---- a bare JSON-RPC client for generation -------------------------------------------


class Rpc:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.Client(timeout=120.0, headers={"content-type": "application/json"})

    def call(self, method: str, params: list[Any] | None = None) -> Any:
        reply = self.client.post(
            self.url, content=json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
        ).json()
        if reply.get("error"):
            raise SetupError(f"{method}: {reply['error']}")
        return reply["result"]

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        payload = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
        replies = {r["id"]: r for r in self.client.post(self.url, content=json.dumps(payload)).json()}
        out = []
        for i, (method, _) in enumerate(calls):
            reply = replies[i]
            if reply.get("error"):
                raise SetupError(f"{method}: {reply['error']}")
            out.append(reply["result"])
        return out

    def receipt(self, tx_hash: str, *, timeout: float = 30.0) -> Any:
        """The receipt of ``tx_hash``, polled every millisecond (automine mines just after the send returns)."""
        deadline = time.monotonic() + timeout
        while True:
            receipt = self.call("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None or time.monotonic() > deadline:
                return receipt
            time.sleep(0.001)

    def close(self) -> None:
        self.client.close()


# ---- 1. the chain ----------------------------------------------------------------------


@dataclass
class Chain:
    node: Anvil
    manifest: Path
    ledger: str
    escrow: str
    deploy_block: int
    carrier: str
    follow_item: str
    follow_calldata: str
    generated_events: int = 0
    items: int = 0
    generation_s: float = 0.0


def _progress(done: int, total: int, started: float, what: str) -> None:
    elapsed = max(time.perf_counter() - started, 1e-9)
    say(f"  {what}: {done:,}/{total:,} ({done / elapsed:,.0f}/s, {elapsed:.0f} s)")


def calldata_of(call: Any) -> str:
    """The transaction data of a bound contract call (web3's ContractFunction), through the contract's public
    ``encode_abi``."""
    contract = call.w3.eth.contract(address=call.address, abi=call.contract_abi)
    data: str = contract.encode_abi(call.abi_element_identifier, args=call.args)
    return data


def register_items(rpc: Rpc, act: Activity, count: int) -> list[bytes]:
    """Registers ``count`` items, many per block (automine off while sending)."""
    d = act.d
    merchant, manufacturer = act.acc[MERCHANT], act.acc[MANUFACTURER]
    stamp = uuid.uuid4().hex[:8]
    uris = [f"urn:epc:id:sgtin:0614141.107346.{n}-{stamp}" for n in range(count)]
    calldata = [
        calldata_of(d.ledger.functions.registerItem(uri, 10614141007346, merchant, b"\x22" * 32, LOCATION))
        for uri in uris
    ]
    probe = {"from": manufacturer, "to": d.ledger.address, "data": calldata[0]}
    gas = int(int(rpc.call("eth_estimateGas", [probe]), 16) * 1.5)
    per_block = max(1, int(BLOCK_GAS * 0.9) // gas)
    started = time.perf_counter()
    rpc.call("evm_setAutomine", [False])
    try:
        for first in range(0, count, per_block):
            chunk = calldata[first : first + per_block]
            nonce = int(rpc.call("eth_getTransactionCount", [manufacturer, "latest"]), 16)
            txs = [
                {"from": manufacturer, "to": d.ledger.address, "data": data, "gas": hex(gas), "nonce": hex(nonce + i)}
                for i, data in enumerate(chunk)
            ]
            hashes = rpc.batch([("eth_sendTransaction", [tx]) for tx in txs])
            receipts: list[Any] = [None] * len(hashes)
            for _ in range(10):
                rpc.call("evm_mine")
                receipts = rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
                if all(r is not None for r in receipts):
                    break
            if any(r is None or r["status"] != "0x1" for r in receipts):
                raise SetupError("registerItem was not mined or reverted")
            done = first + len(chunk)
            if done == count or (first // per_block) % 20 == 19:
                _progress(done, count, started, "items registered")
    finally:
        rpc.call("evm_setAutomine", [True])
    return [Web3.keccak(text=uri) for uri in uris]


def generate(rpc: Rpc, act: Activity, *, events: int, items: int, batch: int) -> tuple[int, float]:
    """At least ``events`` ItemEventRecorded in batches of ``batch``, each batch on the next ``batch`` items."""
    started = time.perf_counter()
    ids = register_items(rpc, act, items)
    slices = max(1, len(ids) // batch)
    calldata: dict[int, str] = {}  # ABI-encoding a batch costs more than mining it: once per slice
    carrier, ledger = act.acc[CARRIER], act.d.ledger.address
    sent = txs = 0
    began, last_report = time.perf_counter(), time.perf_counter()
    while sent < events:
        k = txs % slices
        if k not in calldata:
            part = ids[k * batch : (k + 1) * batch]
            calldata[k] = calldata_of(act.record_batch_call(part, len(part)))
        tx_hash = rpc.call(
            "eth_sendTransaction", [{"from": carrier, "to": ledger, "data": calldata[k], "gas": hex(TX_GAS)}]
        )
        receipt = rpc.receipt(tx_hash)
        if receipt is None or receipt["status"] != "0x1":
            raise SetupError(f"recordEvents was not mined or reverted: {receipt}")
        sent += min(batch, len(ids))
        txs += 1
        if time.perf_counter() - last_report > 10 or sent >= events:
            _progress(sent, events, began, "item events")
            last_report = time.perf_counter()
    return sent, time.perf_counter() - started


def build_chain(args: argparse.Namespace, workdir: Path, stack: contextlib.ExitStack) -> Chain:
    node = start_chain()
    stack.callback(node.stop)
    say(f"anvil at {node.url}")
    deployed = deploy_all(node)
    act = Activity(deployed)
    act.lifecycle()  # every event type the indexer decodes, at least once
    manifest = write_manifest(deployed, workdir / "deployment.json")
    rpc = Rpc(node.url)
    stack.callback(rpc.close)
    follow_item = act.register(1)
    chain = Chain(
        node=node,
        manifest=manifest,
        ledger=deployed.ledger.address.lower(),
        escrow=deployed.escrow.address.lower(),
        deploy_block=deployed.deploy_block,
        carrier=act.acc[CARRIER],
        follow_item="0x" + follow_item[0].hex(),
        follow_calldata=calldata_of(act.record_batch_call(follow_item, 1)),
    )
    # default: about 10 events per item, in whole batches, at most 40 batches of distinct items
    per_ten = -(-args.events // 10 // args.batch) * args.batch
    chain.items = args.items or min(40 * args.batch, max(args.batch, per_ten))
    say(f"generating >= {args.events:,} item events over {chain.items:,} items, {args.batch} per transaction ...")
    chain.generated_events, chain.generation_s = generate(
        rpc, act, events=args.events, items=chain.items, batch=args.batch
    )
    say(f"generated in {chain.generation_s:.1f} s")
    return chain


# ---- 2. (a) the raw eth_getLogs ceiling ------------------------------------------------


@dataclass
class RawPass:
    logs: int
    seconds: float
    requests: int
    bytes: int
    client_cpu_s: float = float("nan")
    anvil_cpu_s: float = float("nan")

    @property
    def rate(self) -> float:
        return self.logs / self.seconds


def raw_fetch(
    url: str, addresses: list[str], start: int, end: int, target_logs: int, *, anvil_pid: int | None = None
) -> RawPass:
    """eth_getLogs over [start, end] in the indexer's range sizes; each response json.loads-ed, nothing else."""
    sizer = RangeSizer(target_logs=target_logs)
    logs = requests = nbytes = 0
    with httpx.Client(
        timeout=120.0,
        headers={"content-type": "application/json", "accept": "application/json"},
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
    ) as client:
        client.post(url, content=b'{"jsonrpc":"2.0","id":0,"method":"eth_chainId","params":[]}')  # connect
        n = start
        anvil0 = process_cpu(anvil_pid) if anvil_pid is not None else float("nan")
        began, began_cpu = time.perf_counter(), time.thread_time()
        while n <= end:
            last = min(end, n + sizer.size - 1)
            params = [{"address": addresses, "fromBlock": hex(n), "toBlock": hex(last)}]
            body = json.dumps({"jsonrpc": "2.0", "id": requests, "method": "eth_getLogs", "params": params})
            raw = client.post(url, content=body.encode()).content
            reply = json.loads(raw)
            if "result" not in reply:
                raise SetupError(f"eth_getLogs [{n}, {last}] failed: {reply.get('error')}")
            result = reply["result"]
            requests += 1
            nbytes += len(raw)
            sizer.observe(blocks=last - n + 1, logs=len(result), nbytes=len(raw))
            logs += len(result)
            n = last + 1
        seconds, cpu = time.perf_counter() - began, time.thread_time() - began_cpu
        anvil = process_cpu(anvil_pid) - anvil0 if anvil_pid is not None else float("nan")
    return RawPass(logs, seconds, requests, nbytes, client_cpu_s=cpu, anvil_cpu_s=anvil)


# ---- 3. backfill by the CLI --------------------------------------------------------------


@dataclass
class ChildRun:
    code: int
    wall_s: float
    peak_rss_mb: float
    cpu_s: float
    log: str
    tree_pss_mb: float = 0.0
    anvil_cpu_s: float = 0.0
    postgres_cpu_s: float = float("nan")


def cli_args(chain: Chain, url: str, args: argparse.Namespace, *, checkout: Path | None = None) -> list[str]:
    """``ledger-indexer`` and its options for ``chain`` and ``url``: ours, or the one of ``checkout`` (its .venv)."""
    command = console_script("ledger-indexer") if checkout is None else [str(checkout / ".venv/bin/ledger-indexer")]
    return [
        *command,
        "--rpc-url",
        chain.node.url,
        "--database-url",
        url,
        "--deployment-file",
        str(chain.manifest),
        "--target-logs",
        str(args.target_logs),
        "--fetch-processes",
        str(args.fetch_processes),
    ]


def child_env(extra: dict[str, str] | None = None, *, checkout: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["LEDGER_ARTIFACTS_DIR"] = str(ARTIFACTS if checkout is None else checkout / "build" / "contracts")
    env.update(extra or {})
    return env


# Peak RSS: os.wait4 on a child forked from this process is useless, because Linux carries the
# high-water mark of the pre-exec image (this process, web3 and all) into the child's ru_maxrss. A
# tiny launcher forks and execs the command instead, reaps it with wait4, writes its ru_maxrss (KiB)
# and CPU seconds to a file and forwards SIGTERM/SIGINT.
_LAUNCHER = r"""
import os, signal, sys
out, argv = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    try:
        os.execv(argv[0], argv)
    finally:
        os._exit(127)
for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda n, _f: os.kill(pid, n))
_, status, ru = os.wait4(pid, 0)
with open(out, "w") as f:
    f.write(f"{ru.ru_maxrss} {ru.ru_utime + ru.ru_stime}")
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


class Child:
    """A command run through the launcher: exit code, peak RSS and CPU time of the command itself."""

    def __init__(
        self,
        command: list[str],
        log_path: Path,
        *,
        sample_memory: bool = False,
        env: dict[str, str] | None = None,
        checkout: Path | None = None,
    ) -> None:
        self.log_path = log_path
        self.usage_path = log_path.with_suffix(".usage")
        self._log = log_path.open("wb")
        launcher = [sys.executable, "-S", "-c", _LAUNCHER, str(self.usage_path), *command]
        self.process = subprocess.Popen(
            launcher,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=checkout or ROOT,
            env=child_env(env, checkout=checkout),
        )
        self.memory = TreeMemory(self.process.pid) if sample_memory else None
        """The summed PSS of the command's processes, sampled (backfills; the follow-latency runs are left
        without a /proc walk every 50 ms beside them)."""

    def finish(self, *, terminate: bool = False, timeout: float = 30.0) -> tuple[int, float, float]:
        """(exit code, peak RSS in MB, CPU seconds); SIGTERM first with ``terminate``."""
        try:
            if terminate and self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            code = self.process.wait(timeout=None if not terminate else timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        finally:
            self._log.close()
            if self.memory is not None:
                self.memory.stop()
        try:
            rss_kib, cpu = self.usage_path.read_text().split()
        except (OSError, ValueError):
            return code, float("nan"), float("nan")
        return code, int(rss_kib) / 1024, float(cpu)

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])


def run_backfill(
    chain: Chain,
    url: str,
    args: argparse.Namespace,
    log_path: Path,
    *,
    postgres: bool = False,
    sample_memory: bool = False,
    env: dict[str, str] | None = None,
    checkout: Path | None = None,
    extra: tuple[str, ...] = (),
) -> ChildRun:
    """One ``ledger-indexer backfill`` into ``url``. With ``sample_memory`` its processes' summed PSS is
    sampled all along (a /proc walk every 50 ms, which costs this process ~2 s of CPU per 1M-event backfill
    and competes with the indexer for the cores): the timed runs go without."""
    anvil0, pg0 = process_cpu(chain.node.process.pid), postgres_cpu() if postgres else float("nan")
    began = time.perf_counter()
    child = Child(
        [*cli_args(chain, url, args, checkout=checkout), "backfill", "--no-progress", *extra],
        log_path,
        sample_memory=sample_memory,
        env=env,
        checkout=checkout,
    )
    code, rss_mb, cpu_s = child.finish()
    wall = time.perf_counter() - began
    anvil1, pg1 = process_cpu(chain.node.process.pid), postgres_cpu() if postgres else float("nan")
    if code != 0:
        raise SetupError(f"ledger-indexer backfill exited with {code}:\n{child.tail()}")
    return ChildRun(
        code,
        wall,
        rss_mb,
        cpu_s,
        log_path.read_text(errors="replace"),
        tree_pss_mb=child.memory.peak_mb if child.memory is not None else float("nan"),
        anvil_cpu_s=anvil1 - anvil0,
        postgres_cpu_s=pg1 - pg0,
    )


_SUMMARY = re.compile(r"backfill done: (\d+) blocks, (\d+) events in ([\d.]+) s")


def cli_summary(text: str) -> tuple[int, int, float] | None:
    """(blocks, events, seconds) of the CLI's own summary line."""
    found = _SUMMARY.search(text)
    return None if found is None else (int(found[1]), int(found[2]), float(found[3]))


# ---- PostgreSQL ----------------------------------------------------------------------------


# ---- 4. (d) follow latency -------------------------------------------------------------------


@dataclass
class FollowResult:
    sent: int
    seen: int
    delays_ms: list[float] = field(repr=False)
    p50_ms: float
    p95_ms: float
    max_ms: float
    peak_rss_mb: float
    poll_p50_ms: float
    poll_max_ms: float


def reader_engine(url: str) -> Engine:
    """A read-only engine on the index (SQLite: the file opened with mode=ro)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return create_engine(f"sqlite:///file:{parsed.database}?mode=ro&uri=true")
    return create_engine(url, isolation_level="AUTOCOMMIT")


class Visibility:
    """Polls the index for new item_events rows of one item; the time each row's block was first seen.

    The query is a range scan of the (item_key, seq) index, cheap whatever the size of the
    index and whatever the planner's statistics (a scan by block number was not, on PostgreSQL
    right after a large backfill).
    """

    def __init__(self, engine: Engine, *, item_id: str, every: float) -> None:
        self.engine = engine
        self.item_id = item_id
        self.every = every
        self.seen: dict[int, float] = {}
        self.durations: list[float] = []
        self.key = item_key(item_id)
        self.last_seq = -1
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="bench-poll", daemon=True)

    def poll(self) -> None:
        stmt = select(item_events.c.seq, item_events.c.block_number).where(
            item_events.c.item_key == self.key, item_events.c.item_id == self.item_id, item_events.c.seq > self.last_seq
        )
        began = time.perf_counter()
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        now = time.perf_counter()  # the end of the poll: conservative by the poll's duration
        self.durations.append(now - began)
        for seq, number in rows:
            self.seen.setdefault(number, now)
            self.last_seq = max(self.last_seq, seq)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.poll()
            self.stop.wait(self.every)

    def wait_for(self, block: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if block in self.seen:
                return True
            time.sleep(0.01)
        return block in self.seen


def send_follow_tx(rpc: Rpc, chain: Chain) -> tuple[int, float]:
    """Sends one recordEvents (1 event); (its block number, when its receipt was first seen: mined)."""
    tx = {"from": chain.carrier, "to": chain.ledger, "data": chain.follow_calldata, "gas": hex(1_000_000)}
    receipt = rpc.receipt(rpc.call("eth_sendTransaction", [tx]))
    mined = time.perf_counter()
    if receipt is None or receipt["status"] != "0x1":
        raise SetupError(f"follow transaction not mined or reverted: {receipt}")
    return int(receipt["blockNumber"], 16), mined


def measure_follow(chain: Chain, url: str, args: argparse.Namespace, log_path: Path) -> FollowResult:
    rpc = Rpc(chain.node.url)
    engine = reader_engine(url)
    poller = Visibility(engine, item_id=chain.follow_item, every=args.poll_every)
    child = Child([*cli_args(chain, url, args), "follow", "--poll-interval", str(args.follow_poll_interval)], log_path)
    sent: list[tuple[int, float]] = []
    try:
        poller.thread.start()
        for _ in range(3):  # warm-up: the follower started and caught up
            block, _ = send_follow_tx(rpc, chain)
            if not poller.wait_for(block, timeout=60):
                if child.process.poll() is not None:
                    raise SetupError(f"ledger-indexer follow exited with {child.process.returncode}:\n{child.tail()}")
                raise SetupError(f"ledger-indexer follow did not index a new block within 60 s:\n{child.tail()}")
        began = time.perf_counter()
        for i in range(args.follow_txs):
            pause = began + i * args.spacing - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            sent.append(send_follow_tx(rpc, chain))
        poller.wait_for(sent[-1][0], timeout=10)
        time.sleep(0.5)  # stragglers
    finally:
        poller.stop.set()
        if poller.thread.is_alive():
            poller.thread.join()
        _, rss_mb, _ = child.finish(terminate=True)
        rpc.close()
        engine.dispose()
    delays = [(poller.seen[b] - t) * 1000 for b, t in sent if b in poller.seen]
    return FollowResult(
        sent=len(sent),
        seen=len(delays),
        delays_ms=delays,
        p50_ms=percentile(delays, 0.50),
        p95_ms=percentile(delays, 0.95),
        max_ms=max(delays) if delays else float("nan"),
        peak_rss_mb=rss_mb,
        poll_p50_ms=percentile(poller.durations, 0.5) * 1000,
        poll_max_ms=max(poller.durations, default=float("nan")) * 1000,
    )


# ---- 5. profile of an in-process backfill ------------------------------------------------------


# (label, file suffix, function) of the calls worth a line in the profile summary
HOTSPOTS = (
    ("Prefetcher.__iter__ (writer waits for the fetcher)", "indexer/sync.py", "__iter__"),
    ("Store.apply", "store/handle.py", "apply"),
    ("  apply_events (rows + state + hash check)", "store/ingest.py", "apply_events"),
    ("    load_items (state of touched items)", "store/_folds.py", "load_items"),
    ("    _Batch.add (building rows)", "store/ingest.py", "add"),
    ("      event_hash_hex (keccak re-check)", "core/hashchain.py", "event_hash_hex"),
    ("    _Batch.write (inserts/upserts)", "store/ingest.py", "write"),
    ("  upsert (all tables)", "store/_db.py", "upsert"),
    ("  sqlite3 executemany", "~", "<method 'executemany' of 'sqlite3.Cursor' objects>"),
    ("  sqlite3 execute", "~", "<method 'execute' of 'sqlite3.Cursor' objects>"),
    ("  sqlite3 commit", "~", "<method 'commit' of 'sqlite3.Connection' objects>"),
    ("  psycopg copy (write_row)", "psycopg/_copy_base.py", "write_row"),
    ("  psycopg wait (server round trips)", "psycopg/connection.py", "wait"),
    ("Prefetcher._fetch", "indexer/sync.py", "_fetch"),
    ("  RpcClient.headers (eth_getBlockByNumber)", "indexer/rpc.py", "headers"),
    ("  RpcClient.get_logs", "indexer/rpc.py", "get_logs"),
    ("  RpcClient._post (every HTTP round trip + json.loads)", "indexer/rpc.py", "_post"),
    ("    json.loads", "json/__init__.py", "loads"),
    ("  Decoder.decode", "indexer/decode.py", "decode"),
    ("queue put (fetcher waits for the writer)", "indexer/sync.py", "_put"),
)


def time_split(stats: pstats.Stats, total: float) -> str:
    lines = []
    table = stats.stats  # type: ignore[attr-defined]
    for label, suffix, function in HOTSPOTS:
        cumulative = sum(
            row[3] for (filename, _, name), row in table.items() if name == function and filename.endswith(suffix)
        )
        if cumulative > 0:
            share = cumulative / total if total else 0.0
            lines.append(f"  {label:<58} {cumulative:8.2f} s  {share:6.1%}\n")
    return "".join(lines)


def profile_backfill(chain: Chain, url: str, args: argparse.Namespace, top: int, workdir: Path) -> str:
    """``ledger-indexer backfill --profile``: cProfile of its writer thread and of its fetch thread apart."""
    folder = workdir / f"profile-{uuid.uuid4().hex[:8]}"
    child = run_backfill(chain, url, args, folder.with_suffix(".log"), extra=("--profile", str(folder)))
    out = io.StringIO()
    out.write(f"backfill under cProfile: {child.wall_s:.1f} s wall, {child.cpu_s:.1f} s CPU (all threads)\n")
    groups = [("writer thread (main)", sorted(folder.glob("main.pstats")))]
    groups.append(("fetch thread(s)", sorted(folder.glob("thread-*-ledger-indexer-fetch*.pstats"))))
    for name, files in groups:
        if not files:
            continue
        stats = pstats.Stats(str(files[0]), stream=out)
        for extra in files[1:]:
            stats.add(str(extra))
        total = max(row[3] for row in stats.stats.values())  # type: ignore[attr-defined]
        out.write(f"\n--- {name}: {total:.2f} s in the thread; where it goes (cumulative time, share) ---\n")
        out.write(time_split(stats, total))
        out.write(f"--- {name}: top {top} by own time ---\n")
        stats.sort_stats("tottime").print_stats(top)
        out.write(f"--- {name}: top {top} by cumulative time ---\n")
        stats.sort_stats("cumulative").print_stats(top)
    return re.sub(r"\n{3,}", "\n\n", out.getvalue())


def stage_costs(chain: Chain, url: str, args: argparse.Namespace) -> str:
    """The indexer's stages one after the other, no threads, no profiler: fetch (eth_getLogs with the
    indexer's RpcClient, json.loads included), headers, decode, Store.apply; microseconds per event each."""
    from ledger_service.indexer.decode import Decoder
    from ledger_service.indexer.rpc import RpcClient
    from ledger_service.store import BlockRef, Store

    decoder = Decoder.from_artifacts(ARTIFACTS, ledger_address=chain.ledger, escrow_address=chain.escrow)
    sizer = RangeSizer(target_logs=args.target_logs)
    spent = dict.fromkeys(("eth_getLogs + json.loads", "headers", "decode", "Store.apply"), 0.0)
    events = 0
    with RpcClient(chain.node.url) as rpc, Store.open(url) as store:
        head = rpc.block_number()
        prune_below = head - 12
        n = chain.deploy_block
        while n <= head:
            last = min(head, n + sizer.size - 1)
            t0 = time.perf_counter()
            logs, nbytes = rpc.get_logs(addresses=[chain.ledger, chain.escrow], from_block=n, to_block=last)
            t1 = time.perf_counter()
            headers = rpc.headers(sorted({n, last, *range(max(n, prune_below), last + 1)}))
            t2 = time.perf_counter()
            decoded = decoder.decode(logs)
            t3 = time.perf_counter()
            window = [h for number, h in sorted(headers.items()) if number >= prune_below]
            checkpoint = BlockRef(number=last, hash=headers[last].hash)
            store.apply(events=decoded, headers=window, checkpoint=checkpoint, prune_below=prune_below)
            t4 = time.perf_counter()
            for key, seconds in zip(spent, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                spent[key] += seconds
            sizer.observe(blocks=last - n + 1, logs=len(logs), nbytes=nbytes)
            events += len(decoded)
            n = last + 1
    total = sum(spent.values())
    lines = [f"serial stages, no profiler: {events:,} events in {total:.2f} s ({events / total:,.0f} events/s)"]
    for key, seconds in spent.items():
        lines.append(
            f"  {key:<26} {seconds:7.2f} s  {seconds / total:6.1%}  {seconds / events * 1e6:6.1f} us/event  "
            f"({events / seconds:,.0f} events/s alone)"
        )
    return "\n".join(lines)


# ---- report ---------------------------------------------------------------------------------------


CHECK_VARIANTS: dict[str, dict[str, str]] = {
    "none": {"LEDGER_BLOOM_CHECK": "false", "LEDGER_RECONCILE": "false"},
    "bloom": {"LEDGER_RECONCILE": "false"},
    "bloom_reconcile": {},
    "bloom_reconcile_proof": {"LEDGER_RECEIPTS_PROOF": "true"},
}
"""(e): the completeness checks of ledger_service/indexer/completeness.py, off and on (the default is
bloom_reconcile: (b) and (c) run with it)."""


def _remove_sqlite(path: Path) -> None:
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()


def compare_baseline(
    chain: Chain, args: argparse.Namespace, workdir: Path, events: int, raw_rate: float
) -> dict[str, Any]:
    """Backfills of the same chain by ``args.baseline``'s ledger-indexer and by ours, interleaved (the order
    alternating each round) ``args.repeats`` rounds, into fresh SQLite files and PostgreSQL schemas: each
    one's median wall time, its ratio to the raw ceiling of this run, and the after/before ratio."""
    checkouts: dict[str, Path | None] = {"before": args.baseline.resolve(), "after": None}
    databases = ["sqlite"] + ([] if args.no_postgres else ["postgres"])
    walls: dict[tuple[str, str], list[float]] = {(db, who): [] for db in databases for who in checkouts}
    for round_ in range(args.repeats):
        for db in databases:
            order = list(checkouts) if round_ % 2 == 0 else list(reversed(checkouts))
            for who in order:
                log_path = workdir / f"compare-{db}-{who}-{round_}.log"
                with contextlib.ExitStack() as scope:
                    if db == "sqlite":
                        path = workdir / f"compare-{who}-{round_}.sqlite3"
                        scope.callback(_remove_sqlite, path)
                        url = f"sqlite:///{path}"
                    else:
                        url = scope.enter_context(pg_schema(args.postgres_url))
                    child = run_backfill(chain, url, args, log_path, postgres=db == "postgres", checkout=checkouts[who])
                walls[db, who].append(child.wall_s)
                say(f"  round {round_ + 1} {db:<8} {who:<6} {child.wall_s:7.2f} s ({events / child.wall_s:,.0f} ev/s)")
    out: dict[str, Any] = {"baseline": str(args.baseline), "repeats": args.repeats}
    for db in databases:
        before, after = (statistics.median(walls[db, who]) for who in ("before", "after"))
        out[db] = {
            "before_walls_s": [round(w, 2) for w in walls[db, "before"]],
            "after_walls_s": [round(w, 2) for w in walls[db, "after"]],
            "before_median_s": round(before, 2),
            "after_median_s": round(after, 2),
            "before_ratio": round(events / before / raw_rate, 3),
            "after_ratio": round(events / after / raw_rate, 3),
            "after_over_before": round(before / after, 3),
        }
    return out


def compare_checks(chain: Chain, args: argparse.Namespace, workdir: Path, events: int) -> dict[str, Any]:
    """(e) SQLite backfills with each set of completeness checks, the variants interleaved ``--checks-repeats``
    times so that the machine's load drifts across all of them alike: median wall time per variant and its
    ratio to the run without checks."""
    walls: dict[str, list[float]] = {name: [] for name in CHECK_VARIANTS}
    for repeat in range(args.checks_repeats):
        for name, env in CHECK_VARIANTS.items():
            url = f"sqlite:///{workdir / f'checks-{name}-{repeat}.sqlite3'}"
            child = run_backfill(chain, url, args, workdir / f"backfill-checks-{name}.log", env=env)
            walls[name].append(child.wall_s)
            for leftover in workdir.glob(f"checks-{name}-{repeat}.sqlite3*"):
                leftover.unlink()
            say(f"  {name}: {child.wall_s:.2f} s wall ({events / child.wall_s:,.0f} ev/s)")
    base = statistics.median(walls["none"])
    out: dict[str, Any] = {}
    for name, values in walls.items():
        median = statistics.median(values)
        out[name] = {
            "wall_s": [round(v, 2) for v in values],
            "median_wall_s": round(median, 2),
            "ratio_to_none": round(median / base, 3),
        }
    return out


def report(figures: dict[str, Any]) -> None:
    raw = figures["raw_events_per_s"]
    n = figures["events_in_range"]
    rows: list[tuple[str, str, str, str, str]] = [
        ("(a) raw eth_getLogs (ceiling)", f"{raw:,.0f} ev/s", "100%", "", ""),
    ]
    for key, label, target in (
        ("sqlite", "(b) backfill -> SQLite", TARGETS["sqlite_ratio"]),
        ("postgres", "(c) backfill -> PostgreSQL", TARGETS["postgres_ratio"]),
    ):
        run = figures.get(key)
        if run is None:
            rows.append((label, "skipped", "", f">= {target:.0%}", ""))
            continue
        ratio = run["events_per_s"] / raw
        rows.append(
            (label, f"{run['events_per_s']:,.0f} ev/s", f"{ratio:.0%}", f">= {target:.0%}", verdict(ratio >= target))
        )
        if run.get("cli_events_per_s"):
            cli_ratio = run["cli_events_per_s"] / raw
            rows.append(
                ("      the CLI's own loop figure", f"{run['cli_events_per_s']:,.0f} ev/s", f"{cli_ratio:.0%}", "", "")
            )
    scale = "" if n >= 1_000_000 else f" (extrapolated from {n:,})"
    for key, label in (
        ("sqlite", "rebuild from the chain, SQLite"),
        ("postgres", "rebuild from the chain, PostgreSQL"),
    ):
        run = figures.get(key)
        if run is not None:
            rows.append((label, f"{run['rebuild_s_per_1m_events']:,.1f} s per 1M events{scale}", "", "", ""))
    at_scale = n >= TARGETS["rss_at_events"]
    for key, label in (("sqlite", "peak RSS backfill SQLite"), ("postgres", "peak RSS backfill PostgreSQL")):
        run = figures.get(key)
        if run is None:
            continue
        ok = run["peak_rss_mb"] <= TARGETS["rss_mb"]
        status = verdict(ok) if at_scale or not ok else f"PASS at {n:,} (target is at 1M)"
        rows.append((label, f"{run['peak_rss_mb']:,.0f} MB", f"at {n:,} ev", "<= 300 MB at 1M", status))
    for key, label in (
        ("follow_sqlite", "follow SQLite p50 / p95"),
        ("follow_postgres", "follow PostgreSQL p50 / p95"),
    ):
        follow = figures.get(key)
        if follow is None:
            continue
        ok = follow["p95_ms"] <= TARGETS["p95_ms"] and follow["seen"] == follow["sent"]
        rows.append(
            (
                label,
                f"{follow['p50_ms']:,.0f} / {follow['p95_ms']:,.0f} ms",
                f"{follow['seen']}/{follow['sent']} seen",
                "p95 <= 500 ms",
                verdict(ok),
            )
        )
    say("")
    say(f"events in range: {n:,} logs in blocks {figures['from_block']}..{figures['to_block']}")
    for line in table([("", "figure", "vs (a)", "target", "status"), *rows], align="lllll"):
        say(line)
    cpu_budget(figures)


def cpu_budget(figures: dict[str, Any]) -> None:
    """CPU seconds every process spent on each measurement, against what the target's wall time offers.

    At the target ratio the same events must be indexed in ``events / (ratio * raw rate)`` seconds (the
    backfill's ``target_wall_s``); the machine offers ``cores`` times that. "cores needed" is the CPU
    measured (indexer with its fetch process, anvil serving eth_getLogs, the PostgreSQL server) divided by
    that wall time: above the machine's cores, no scheduling of the same work can meet the target.
    """
    raw = figures["raw_events_per_s"]
    n = figures["events_in_range"]
    cores = os.cpu_count() or 1
    say(f"\nCPU (this machine: {cores} cores), seconds:")
    rows = [("", "wall", "indexer", "anvil", "PostgreSQL", "total", "cores busy", "target wall", "cores needed")]
    raw_cpu = figures.get("raw_client_cpu_s", float("nan")) + figures.get("raw_anvil_cpu_s", float("nan"))
    raw_wall = n / raw
    rows.append(
        (
            "(a) raw eth_getLogs",
            f"{raw_wall:.2f}",
            f"{figures.get('raw_client_cpu_s', float('nan')):.2f}",
            f"{figures.get('raw_anvil_cpu_s', float('nan')):.2f}",
            "",
            f"{raw_cpu:.2f}",
            f"{raw_cpu / raw_wall:.2f}",
            "",
            "",
        )
    )
    for key, label in (("sqlite", "(b) backfill -> SQLite"), ("postgres", "(c) backfill -> PostgreSQL")):
        run = figures.get(key)
        if run is None:
            continue
        rows.append(
            (
                label,
                f"{run['wall_s']:.2f}",
                f"{run['cpu_s']:.2f}",
                f"{run['anvil_cpu_s']:.2f}",
                f"{run['postgres_cpu_s']:.2f}" if "postgres_cpu_s" in run else "",
                f"{run['total_cpu_s']:.2f}",
                f"{run['total_cpu_s'] / run['wall_s']:.2f}",
                f"{run['target_wall_s']:.2f}",
                f"{run['cores_needed_at_target']:.2f}",
            )
        )
    for line in table(rows, align="l" + "r" * (len(rows[0]) - 1), indent="  "):
        say(line)


# ---- main ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=" ".join((__doc__ or "").split("\n\n")[0].split()))
    parser.add_argument("--events", type=int, default=1_000_000, help="item events to generate (default 1000000)")
    parser.add_argument("--postgres-url", default=DEFAULT_PG_URL, help=f"PostgreSQL server (default {DEFAULT_PG_URL})")
    parser.add_argument("--no-postgres", action="store_true", help="skip (c) and the PostgreSQL follow")
    parser.add_argument("--items", type=int, default=0, help="items (default: events/10, at most 40 batches)")
    parser.add_argument("--batch", type=int, default=256, help="item events per transaction (default 256)")
    parser.add_argument("--target-logs", type=int, default=5000, help="the indexer's --target-logs (default 5000)")
    parser.add_argument(
        "--fetch-processes", type=int, default=1, help="the indexer's --fetch-processes (default 1, its default)"
    )
    parser.add_argument("--raw-repeats", type=int, default=3, help="passes of (a); the median counts (default 3)")
    parser.add_argument("--follow-txs", type=int, default=200, help="transactions in (d) (default 200)")
    parser.add_argument("--spacing", type=float, default=0.05, help="seconds between them (default 0.05)")
    parser.add_argument("--poll-every", type=float, default=0.005, help="index poll period in (d) (default 0.005)")
    parser.add_argument(
        "--follow-poll-interval", type=float, default=0.2, help="the follower's --poll-interval (default: its 0.2)"
    )
    parser.add_argument("--logs", type=Path, help="copy the indexer's logs into this folder at the end")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="another checkout with its own .venv (e.g. the main branch before a change): after (a), backfill the "
        "chain with its ledger-indexer and with ours, interleaved --repeats rounds, and print both medians, their "
        "ratios to (a) and after/before; then stop (no (b)-(e))",
    )
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the --baseline comparison (default 3)")
    parser.add_argument("--profile", action="store_true", help="also profile a backfill (ledger-indexer --profile)")
    parser.add_argument("--profile-top", type=int, default=25, help="functions per profile listing (default 25)")
    parser.add_argument(
        "--checks-repeats",
        type=int,
        default=1,
        help="(e) rounds of SQLite backfills with each set of completeness checks (none, bloom, bloom + reconcile, "
        "+ receipts proof), interleaved; 0 skips (default 1)",
    )
    args = parser.parse_args()
    if args.batch < 1 or args.events < 1 or args.fetch_processes < 1 or args.repeats < 1:
        parser.error("--events, --batch, --fetch-processes and --repeats must be positive")
    if args.baseline is not None and not (args.baseline / ".venv/bin/ledger-indexer").exists():
        parser.error(f"--baseline {args.baseline}: no .venv/bin/ledger-indexer there (bootstrap that checkout first)")
    try:
        return run(args)
    except SetupError as exc:
        print(f"bench/indexer.py: setup failed: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-indexer-")))
        if args.logs is not None:
            args.logs.mkdir(parents=True, exist_ok=True)
            stack.callback(lambda: [shutil.copy(log, args.logs) for log in workdir.glob("*.log")])
        if not args.no_postgres:  # fail early, before minutes of generation
            check_postgres(args.postgres_url)
        chain = build_chain(args, workdir, stack)
        rpc = stack.enter_context(contextlib.closing(Rpc(chain.node.url)))
        head = int(rpc.call("eth_blockNumber"), 16)
        addresses = [chain.ledger, chain.escrow]
        figures: dict[str, Any] = {
            "events_requested": args.events,
            "item_events_generated": chain.generated_events,
            "items": chain.items,
            "batch": args.batch,
            "generation_s": round(chain.generation_s, 1),
            "from_block": chain.deploy_block,
            "to_block": head,
            "target_logs": args.target_logs,
            "fetch_processes": args.fetch_processes,
        }

        say(f"\n(a) raw eth_getLogs, blocks {chain.deploy_block}..{head}, {args.raw_repeats} passes ...")
        passes = [
            raw_fetch(
                chain.node.url, addresses, chain.deploy_block, head, args.target_logs, anvil_pid=chain.node.process.pid
            )
            for _ in range(args.raw_repeats)
        ]
        for p in passes:
            say(
                f"  {p.logs:,} logs in {p.seconds:.2f} s = {p.rate:,.0f} logs/s "
                f"({p.requests} requests, {p.bytes / MB:.0f} MB; CPU: anvil {p.anvil_cpu_s:.2f} s, "
                f"client {p.client_cpu_s:.2f} s)"
            )
        n = passes[0].logs
        raw_rate = statistics.median(p.rate for p in passes)
        median_pass = sorted(passes, key=lambda p: p.rate)[len(passes) // 2]
        figures.update(
            events_in_range=n,
            raw_events_per_s=round(raw_rate),
            raw_anvil_cpu_s=round(median_pass.anvil_cpu_s, 2),
            raw_client_cpu_s=round(median_pass.client_cpu_s, 2),
            raw_passes_events_per_s=[round(p.rate) for p in passes],
            raw_requests=passes[0].requests,
        )

        if args.baseline is not None:
            say(f"\nbefore ({args.baseline}) and after (this checkout), {args.repeats} interleaved rounds ...")
            figures["compare"] = compare = compare_baseline(chain, args, workdir, n, raw_rate)
            rows = []
            for db in ("sqlite", "postgres"):
                if db in compare:
                    c = compare[db]
                    rows.append(
                        [
                            db,
                            f"{c['before_median_s']:.2f} s",
                            f"{c['after_median_s']:.2f} s",
                            f"{c['before_ratio']:.3f}",
                            f"{c['after_ratio']:.3f}",
                            f"{c['after_over_before']:.3f}",
                        ]
                    )
            say(f"\nraw ceiling (a): {raw_rate:,.0f} logs/s over {n:,} logs")
            header = ["index", "before median", "after median", "before/raw", "after/raw", "after/before"]
            say("\n".join(table([header, *rows], align="lrrrrr", indent="  ")))
            json_line({"bench": "indexer-compare", **figures})
            return 0

        def backfill(key: str, label: str, url: str) -> None:
            say(f"\n{label} ...")
            child = run_backfill(chain, url, args, workdir / f"backfill-{key}.log", postgres=key == "postgres")
            summary = cli_summary(child.log)
            entry: dict[str, Any] = {
                "wall_s": round(child.wall_s, 2),
                "events_per_s": round(n / child.wall_s),
                "largest_process_rss_mb": round(child.peak_rss_mb, 1),  # with the memory run's, see memory()
                "cpu_s": round(child.cpu_s, 2),
                "anvil_cpu_s": round(child.anvil_cpu_s, 2),
            }
            if key == "postgres":
                entry["postgres_cpu_s"] = round(child.postgres_cpu_s, 2)
            # at the target ratio these events get n / (ratio * raw rate) seconds: the cores that CPU would need
            total_cpu = child.cpu_s + child.anvil_cpu_s + (child.postgres_cpu_s if key == "postgres" else 0.0)
            target_wall = n / (TARGETS[f"{key}_ratio"] * raw_rate)
            entry.update(
                total_cpu_s=round(total_cpu, 2),
                target_wall_s=round(target_wall, 2),
                cores_needed_at_target=round(total_cpu / target_wall, 2),
            )
            # the index lost and rebuilt from the chain alone is this backfill: its time per 1M events
            entry["rebuild_s_per_1m_events"] = round(child.wall_s * 1_000_000 / n, 1)
            if summary is not None:
                entry.update(cli_events=summary[1], cli_s=summary[2], cli_events_per_s=round(summary[1] / summary[2]))
            figures[key] = entry
            server = f", PostgreSQL {child.postgres_cpu_s:.1f} s" if key == "postgres" else ""
            say(
                f"  {child.wall_s:.2f} s wall ({n / child.wall_s:,.0f} ev/s); CPU: indexer {child.cpu_s:.1f} s, "
                f"anvil {child.anvil_cpu_s:.1f} s{server}; peak RSS {child.peak_rss_mb:.0f} MB (largest process)"
                + (f"; CLI: {summary[1]:,} events in {summary[2]} s" if summary else "")
            )

        def memory(key: str, label: str, url: str) -> None:
            """The same backfill again into a fresh index, its processes' PSS sampled (not timed); last, so
            that neither its sampling nor its ~1 GB of writes run beside a measurement."""
            say(f"\n{label} ...")
            sampled = run_backfill(
                chain, url, args, workdir / f"backfill-{key}-memory.log", postgres=key == "postgres", sample_memory=True
            )
            for leftover in workdir.glob("memory.sqlite3*"):
                leftover.unlink()
            entry = figures[key]
            largest = max(entry["largest_process_rss_mb"], sampled.peak_rss_mb)
            entry.update(
                # the indexer's memory: its largest process's peak RSS, or its processes' summed PSS if larger
                peak_rss_mb=round(max(largest, sampled.tree_pss_mb), 1),
                largest_process_rss_mb=round(largest, 1),
                processes_pss_mb=round(sampled.tree_pss_mb, 1),
                memory_run_wall_s=round(sampled.wall_s, 2),
            )
            say(
                f"  {sampled.wall_s:.2f} s wall; peak RSS {largest:.0f} MB (largest process, both runs), "
                f"PSS {sampled.tree_pss_mb:.0f} MB (all its processes)"
            )

        def follow(key: str, label: str, url: str) -> None:
            say(f"\n{label}: {args.follow_txs} transactions {args.spacing * 1000:.0f} ms apart ...")
            result = measure_follow(chain, url, args, workdir / f"follow-{key}.log")
            figures[key] = {k: (round(v, 1) if isinstance(v, float) else v) for k, v in asdict(result).items()}
            del figures[key]["delays_ms"]
            say(
                f"  seen {result.seen}/{result.sent}; p50 {result.p50_ms:.0f} ms, p95 {result.p95_ms:.0f} ms, "
                f"max {result.max_ms:.0f} ms; follower peak RSS {result.peak_rss_mb:.0f} MB; "
                f"one poll of the index took {result.poll_p50_ms:.1f} ms (median), {result.poll_max_ms:.1f} ms (max)"
            )

        sqlite_url = f"sqlite:///{workdir / 'index.sqlite3'}"
        backfill("sqlite", "(b) ledger-indexer backfill -> SQLite", sqlite_url)
        if args.checks_repeats > 0:
            say(f"\n(e) completeness checks: SQLite backfills with each set, {args.checks_repeats} rounds ...")
            figures["checks"] = compare_checks(chain, args, workdir, n)
            for name, entry in figures["checks"].items():
                say(f"  {name}: median {entry['median_wall_s']:.2f} s, {entry['ratio_to_none']:.3f}x the run without")
        pg_url = None
        if not args.no_postgres:
            pg_url = stack.enter_context(pg_schema(args.postgres_url))
            backfill("postgres", "(c) ledger-indexer backfill -> PostgreSQL", pg_url)
        # (d) after both backfills: the follow transactions are not part of the backfilled range
        follow("follow_sqlite", "(d) ledger-indexer follow -> SQLite", sqlite_url)
        if pg_url is not None:
            follow("follow_postgres", "(d) ledger-indexer follow -> PostgreSQL", pg_url)
        memory(
            "sqlite", "memory of (b): the SQLite backfill again, PSS sampled", f"sqlite:///{workdir / 'memory.sqlite3'}"
        )
        if pg_url is not None:
            with pg_schema(args.postgres_url) as memory_url:
                memory("postgres", "memory of (c): the PostgreSQL backfill again, PSS sampled", memory_url)

        report(figures)
        if args.profile:
            profile_urls: list[tuple[str, Callable[[], str]]] = [
                ("SQLite", lambda: f"sqlite:///{workdir / f'profile-{uuid.uuid4().hex[:8]}.sqlite3'}")
            ]
            if not args.no_postgres:
                profile_urls.append(("PostgreSQL", lambda: stack.enter_context(pg_schema(args.postgres_url))))
            for name, make_url_ in profile_urls:
                say(f"\n===== profile: backfill -> {name} =====")
                say(stage_costs(chain, make_url_(), args))
                say(profile_backfill(chain, make_url_(), args, args.profile_top, workdir))
        json_line({"bench": "indexer", **figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())
