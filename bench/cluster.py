"""Cluster drill and benchmark: three API replicas and two indexers on one PostgreSQL index, under a mixed load,
while the active indexer is SIGKILLed and one replica is killed and restarted.

Run from the repository root:
    .venv/bin/python bench/cluster.py [--duration 40] [--readers 6] [--return-rate 4] [--scan-rate 4]
        [--one-connections 1,2,4,8,16] [--three-connections 1,2,4,8] [--ratio-duration 8] [--no-ratio]
        [--no-same-workers] [--keep]

Steps, in one run:
1. a fresh anvil with the contracts deployed, a fresh PostgreSQL schema of its own on ``--postgres-url``
   (dropped afterwards: it never meets the tests' schemas), two ``ledger-indexer follow`` processes on it (the
   first holds the writer lock, the second waits for it) and three ``ledger-api`` processes with one worker each
   on ports of their own;
2. demo data through the API, spread over the replicas: the merchant's policy, items sold and delivered (each
   with its consumer's return token), some returns already approved;
3. the mixed load for ``--duration`` seconds, spread over the replicas as a load balancer does it (round robin
   over the replicas that answer; a connection refused takes the request to the next replica, since it never
   reached the first; a replica is taken back once its ``/healthz`` answers, probed every 0.25 s):
   a read whose connection breaks without an answer (a kept-alive connection to a replica that has just died)
   goes once more to the next replica, as a load balancer retries an idempotent request, and is counted apart;
   ``--readers`` closed-loop clients reading eligibility (85%) and item histories (15%) with an auditor's key;
   return requests (``?wait=true``, by consumers' return tokens) and carrier scans of approved returns
   (``?wait=true``: in transit, then delivered to the merchant) sent at ``--return-rate`` and ``--scan-rate`` per
   second whatever the answers (open loop). After each write its client reads the return on *another* replica
   (read-your-writes across replicas: the state the write made must be there). At a quarter of the load the
   active indexer gets SIGKILL; at half, one replica's processes get SIGKILL and the replica is started again a
   second later;
4. afterwards: the takeover time (from the SIGKILL to the standby's "writer lock acquired" and to its first
   indexed block, from its JSON log), and the index compared with a clean re-index of the chain
   (``ledger-indexer backfill`` into an empty SQLite file): rows lost and rows duplicated, per table, over the
   tables the indexer writes;
5. unless ``--no-ratio``: eligibility reads alone (wrk, bench/api_eligibility.lua, closed loop), as two
   throughput/latency curves: one replica (one worker) with each of ``--one-connections``, and the three
   replicas at once (one wrk per replica) with each of ``--three-connections`` to each, the two curves' points
   alternating (what else runs on the machine meanwhile falls on both alike); every point is 2 s of
   warm-up and ``--ratio-duration`` s measured: req/s answered 200, p99 (for the three: the largest of the three
   wrk's p99s, which bounds the p99 of all their requests together), p50, and the CPU cores the replicas'
   processes and PostgreSQL used meanwhile (so each configuration's cost shows: the single replica's one
   process cannot use more than one core, the three can use both).
   One closed-loop point per configuration compares two points of two different curves: more connections move a
   configuration along its curve, its throughput up to saturation and then only its latency. So the ratio is
   taken at one p99 bound for both: each configuration's knee is its first point (by connections) with 95% of
   its peak throughput, and its p99 there is its p99 at saturation; the bound is the larger of the two knees'
   p99s; each configuration is credited with its highest throughput among its points within the bound (the one
   with the smaller p99 at saturation gets its saturated throughput: more connections would only add latency).
   The ratio of the three's to the one's is the figure for the target ``>= 1.5x at the same p99``.
   Then, unless ``--no-same-workers``, replica 0 is restarted with three workers (the same API processes as the
   three replicas) and its curve measured with as many connections in all as the three had: the three's
   throughput against it at the bound of those two curves, a reference that gives both the same processes.

Errors are answers >= 500, unexpected statuses, and requests that failed after they were sent; those on the
killed replica that were in flight at its SIGKILL are counted apart (a load balancer cannot save those). Prints
the figures, the targets (TARGETS: PASS/MISS) and, last, one JSON line with every figure. Exits 0 whatever the
figures, 2 with a message when the setup fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import aiohttp  # noqa: E402
from common import (  # noqa: E402
    DEFAULT_PG_URL,
    SetupError,
    check_postgres,
    console_script,
    descendants,
    percentile,
    pg_schema,
    postgres_cpu,
    process_cpu,
    run_in_workdir,
    say,
    start_chain,
    stop,
    table,
    tail,
    verdict,
)
from eth_account import Account  # noqa: E402

from ledger_service.access import Role, create_api_key  # noqa: E402
from ledger_service.core.notifications import RETURN_REJECTED, RETURN_REQUESTED  # noqa: E402
from ledger_service.settings import ANVIL_ACCOUNTS, DEV_RELAYER_ACCOUNT  # noqa: E402
from ledger_service.store import Store  # noqa: E402
from ledger_service.store.handle import WALL_CLOCK_COLUMNS  # noqa: E402
from ledger_service.store.tables import (  # noqa: E402
    ANALYTICS_TABLES,
    API_TABLES,
    BATCHER_TABLES,
    consumer_contacts,
    deliveries,
    notifications,
    webhook_endpoints,
)
from tests.support.activity import Activity, write_manifest  # noqa: E402
from tests.support.chain import ADMIN, ARTIFACTS, CARRIER, MERCHANT, Anvil, Deployed, deploy_all, free_port  # noqa: E402

TARGETS = {"takeover_s": 2.0, "ratio": 1.5}
ONE_CONNECTIONS = (1, 2, 4, 8, 16)
"""wrk connections of the single replica's eligibility curve."""
THREE_CONNECTIONS = (1, 2, 4, 8)
"""wrk connections to each of the three replicas, for their curve."""
KNEE = 0.95
"""A configuration's knee: its first point (by connections) with this share of its peak throughput. Its p99 is
the configuration's p99 at saturation: more connections add latency, not throughput."""
REPLICAS = 3
KILLED_REPLICA = 2
"""The replica killed and restarted (the ratio's single replica is replica 0, never killed)."""
HISTORY_SHARE = 0.15
"""Share of the readers' requests that read an item's history; the others read its eligibility."""
START_TIMEOUT_S = 240.0
"""Longest wait for a replica to answer after its start."""
SERVED_AFTER_RESTART_S = 3.0
"""The load goes on at least this long after the restarted replica answers again."""
PROBE_S = 0.25
"""How often the balancer asks a replica it took out whether it answers again."""
IDEMPOTENT = frozenset({"GET", "HEAD"})
"""Methods the balancer sends once more to the next replica when their connection broke without an answer
(as nginx's ``proxy_next_upstream error``: never a write, which the first replica may have carried out)."""
LOCATION = "0614141.00888.0"
POLICY: dict[str, Any] = {
    "window_days": 30,
    "restocking_fee_bps": 1000,
    "fast_refund": True,
    "fast_refund_max_value": "0",
    "fast_refund_max_returns_90d": 0,
    "ship_by_days": 7,
    "inspect_by_days": 14,
    "dispute_window_days": 7,
    "non_returnable_categories": [],
    "accepted_reasons": [],
    "manual_review_reasons": [],
    "title": "Cluster bench policy",
    "text": "30 days from delivery; 10% restocking fee.",
}
STATE_AFTER = {"return": "authorized", "in_transit": "in_transit", "delivered_to_merchant": "received"}
"""The state a return must show on another replica after each write (read-your-writes)."""
NEXT_SCAN = {"in_transit": "delivered_to_merchant"}
NOT_INDEXER_TABLES = frozenset(
    t.name for t in (*API_TABLES, *ANALYTICS_TABLES, *BATCHER_TABLES, webhook_endpoints, consumer_contacts, deliveries)
) | {"blocks"}
"""Left out of the comparison with a clean re-index: what the API and the workers write, and the stored block
headers (their window depends on the head when each was written)."""
API_NOTIFICATIONS = frozenset({RETURN_REQUESTED, RETURN_REJECTED})
"""Notification types the API writes (store/returns.py: a return request's answer), not the indexer."""


# ---- the cluster's processes ------------------------------------------------------------------------------


@dataclass
class Replica:
    number: int
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Cluster:
    """anvil + contracts, the PostgreSQL index, two indexers and three API replicas (see the module docstring)."""

    workdir: Path
    anvil: Anvil
    deployed: Deployed
    database_url: str
    env: dict[str, str]
    keys: dict[str, str] = field(default_factory=dict)
    replicas: list[Replica] = field(default_factory=list)
    indexers: list[tuple[subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def start_indexer(self, name: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.workdir / f"indexer-{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*console_script("ledger-indexer"), "follow"],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.indexers.append((process, log))
        return process, log

    def launch_replica(self, replica: Replica, *, workers: int = 1) -> None:
        env = self.env | {
            "LEDGER_API_HOST": "127.0.0.1",
            "LEDGER_API_PORT": str(replica.port),
            "LEDGER_API_WORKERS": str(workers),
            "LEDGER_LOG_LEVEL": "WARNING",
        }
        with replica.log.open("ab") as out:
            replica.process = subprocess.Popen(
                console_script("ledger-api"),
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its worker is killed with it, as a group
            )

    def wait_replica(self, replica: Replica) -> None:
        """Until the replica answers ``/healthz``. Starting takes long on a busy machine (the worker imports the
        whole service), hence the generous limit."""
        assert replica.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(replica.url):
            if replica.process.poll() is not None:
                raise SetupError(f"ledger-api (replica {replica.number}) exited:\n{tail(replica.log)}")
            if time.monotonic() > deadline:
                raise SetupError(f"ledger-api (replica {replica.number}) did not answer within {START_TIMEOUT_S:g} s")
            time.sleep(0.1)

    def start_replica(self, replica: Replica) -> None:
        self.launch_replica(replica)
        self.wait_replica(replica)

    def restart_replica(self, replica: Replica, *, workers: int) -> None:
        """The replica stopped (SIGTERM) and started again with ``workers`` worker processes."""
        assert replica.process is not None
        replica.process.send_signal(signal.SIGTERM)
        try:
            replica.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill_replica(replica)
        self.launch_replica(replica, workers=workers)
        self.wait_replica(replica)

    def kill_replica(self, replica: Replica) -> None:
        """SIGKILL to the replica's supervisor and worker: what a crashed machine or an OOM kill does."""
        assert replica.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(replica.process.pid, signal.SIGKILL)
        replica.process.wait()

    def head(self) -> int:
        return int(self.deployed.w3.eth.block_number)

    def checkpoint(self) -> int:
        with Store.open(self.database_url) as store:
            found = store.checkpoint()
        return -1 if found is None else found.number

    def wait_indexed(self, what: str, timeout: float = 120) -> None:
        """Until the index holds the chain's head."""
        deadline = time.monotonic() + timeout
        while self.checkpoint() < self.head():
            if time.monotonic() > deadline:
                logs = "\n".join(tail(log, 8) for _, log in self.indexers)
                raise SetupError(f"the index did not reach the head {what} within {timeout:g} s:\n{logs}")
            time.sleep(0.1)

    def stop_all(self) -> None:
        for replica in self.replicas:
            if replica.process is not None and replica.process.poll() is None:
                replica.process.send_signal(signal.SIGTERM)
        for replica in self.replicas:
            if replica.process is not None:
                try:
                    replica.process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.kill_replica(replica)
                with contextlib.suppress(ProcessLookupError):  # a worker left behind (none should be)
                    os.killpg(replica.process.pid, signal.SIGKILL)
        for process, _ in self.indexers:
            stop(process)


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def cluster(workdir: Path, *, postgres_url: str) -> Iterator[Cluster]:
    """The running cluster (step 1 of the module docstring); every process stopped afterwards."""
    check_postgres(postgres_url)
    with pg_schema(postgres_url) as database_url, contextlib.ExitStack() as stack:
        anvil = start_chain()
        stack.callback(anvil.stop)
        deployed = deploy_all(anvil)
        _grant_relayer(deployed)
        manifest = write_manifest(deployed, workdir / "deployments" / f"{deployed.w3.eth.chain_id}.json")
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")} | {
            "PYTHONPATH": str(ROOT),
            "LEDGER_RPC_URL": anvil.url,
            "LEDGER_DATABASE_URL": database_url,
            "LEDGER_DEPLOYMENT_FILE": str(manifest),
            "LEDGER_ARTIFACTS_DIR": str(ARTIFACTS),
            "LEDGER_DOCUMENTS_DIR": str(workdir / "documents"),
            "LEDGER_LOG_JSON": "true",
        }
        found = Cluster(workdir=workdir, anvil=anvil, deployed=deployed, database_url=database_url, env=env)
        stack.callback(found.stop_all)
        with Store.open(database_url) as store:  # creates the index's tables before anything else runs
            for name, role, account in (
                ("merchant", Role.MERCHANT, deployed.accounts[MERCHANT]),
                ("carrier", Role.CARRIER, deployed.accounts[CARRIER]),
                ("auditor", Role.AUDITOR, None),
            ):
                key = create_api_key(store=store, role=role, name=f"cluster-{name}", actor_address=account)
                found.keys[name] = key.plaintext
        _, active_log = found.start_indexer("a")
        found.wait_indexed("with the first indexer", timeout=60)
        _, standby_log = found.start_indexer("b")
        _wait_for_line(standby_log, "waiting for the active indexer", what="the second indexer to wait")
        if "writer lock" in active_log.read_text():
            raise SetupError("the first indexer waited for a lock it should have taken")
        found.replicas = [Replica(number=n, port=free_port(), log=workdir / f"api-{n}.log") for n in range(REPLICAS)]
        for replica in found.replicas:
            found.launch_replica(replica)
        for replica in found.replicas:
            found.wait_replica(replica)
        yield found


def _grant_relayer(deployed: Deployed) -> None:
    """The development relayer (the API's default LEDGER_RELAYER_KEY) may send consumers' actions."""
    ledger = deployed.ledger.functions
    tx = ledger.grantRole(ledger.CONSUMER_AGENT_ROLE().call(), ANVIL_ACCOUNTS[DEV_RELAYER_ACCOUNT][0]).transact(
        {"from": deployed.accounts[ADMIN]}
    )
    deployed.w3.eth.wait_for_transaction_receipt(tx)


def _wait_for_line(log: Path, text: str, *, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise SetupError(f"timed out waiting for {what}:\n{tail(log)}")
        time.sleep(0.05)


# ---- the load balancer and the records of every request ----------------------------------------------------


@dataclass
class Outcome:
    kind: str
    replica: int
    start: float
    end: float
    status: int | None
    """None: the request failed after it was sent (the connection broke or timed out)."""
    error: str | None


class Balancer:
    """Round robin over the replicas that answer, as a load balancer with passive and active health checks:
    a refused connection takes the replica out and the request to the next one (it never reached the first);
    a replica out is probed on ``/healthz`` every :data:`PROBE_S` and taken back when it answers."""

    def __init__(self, urls: list[str], session: aiohttp.ClientSession) -> None:
        self.urls = urls
        self.session = session
        self.up = [True] * len(urls)
        self.outcomes: list[Outcome] = []
        self.rerouted = 0
        self.retried: list[Outcome] = []
        """Reads whose connection broke without an answer, sent again to the next replica."""
        self._next = 0

    def pick(self, avoid: int | None = None) -> int:
        """The next replica that answers, other than ``avoid`` if any other does."""
        for _ in range(len(self.urls)):
            number = self._next % len(self.urls)
            self._next += 1
            if self.up[number] and number != avoid:
                return number
        if avoid is not None and self.up[avoid]:
            return avoid
        return self._next % len(self.urls)  # none is known to answer: try one (a refusal moves on)

    async def send(
        self,
        kind: str,
        method: str,
        path: str,
        *,
        headers: dict[str, str],
        json_body: Any = None,
        avoid: int | None = None,
        expect: int = 200,
    ) -> tuple[Outcome, Any]:
        """The request on the next replica (not ``avoid``, if another answers); its outcome and JSON body."""
        retried = False
        for _ in range(2 * len(self.urls)):
            number = self.pick(avoid)
            start = time.monotonic()
            try:
                async with self.session.request(
                    method, self.urls[number] + path, headers=headers, json=json_body
                ) as response:
                    body = await response.read()
                    status = response.status
            except aiohttp.ClientConnectorError:
                self.up[number] = False  # never reached the replica: the next one gets it
                self.rerouted += 1
                continue
            except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
                broken = Outcome(kind, number, start, time.monotonic(), None, f"{type(exc).__name__}: {exc}")
                if method not in IDEMPOTENT or retried:
                    self.outcomes.append(broken)
                    return broken, None
                # a connection broke without an answer (a kept-alive one to a replica that died since): a read
                # goes once to the next replica, as a load balancer retries an idempotent request
                self.up[number] = False
                self.retried.append(broken)
                retried = True  # taken out above: the next pick is another replica (and not ``avoid``)
                continue
            except (aiohttp.ClientError, TimeoutError) as exc:
                outcome = Outcome(kind, number, start, time.monotonic(), None, f"{type(exc).__name__}: {exc}")
                self.outcomes.append(outcome)
                return outcome, None
            error = None if status == expect else f"HTTP {status}: {body[:300].decode(errors='replace')}"
            outcome = Outcome(kind, number, start, time.monotonic(), status, error)
            self.outcomes.append(outcome)
            return outcome, json.loads(body) if status == expect else None
        outcome = Outcome(kind, -1, time.monotonic(), time.monotonic(), None, "no replica answers")
        self.outcomes.append(outcome)
        return outcome, None

    async def probe(self, stop_at: asyncio.Event) -> None:
        while not stop_at.is_set():
            for number, up in enumerate(self.up):
                if up:
                    continue
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with self.session.get(self.urls[number] + "/healthz") as response:
                        self.up[number] = response.status == 200
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_at.wait(), PROBE_S)


# ---- demo data --------------------------------------------------------------------------------------------


@dataclass
class Sold:
    item_id: str
    token: str


@dataclass
class Data:
    items: list[str]
    """Every sold item (the readers' draws)."""
    returnable: list[Sold]
    """Delivered items without a return: the load's return requests."""
    scans: list[tuple[str, str]]
    """(return id, scan kind) due: the load's carrier scans."""


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def return_token(token: str) -> dict[str, str]:
    return {"Authorization": f"ReturnToken {token}"}


async def demo_data(found: Cluster, *, items: int, approved: int, concurrency: int = 8) -> Data:
    """``items`` items sold and delivered through the API (``approved`` of them with an approved return)."""
    activity = Activity(found.deployed)
    ids = ["0x" + bytes(item).hex() for item in activity.register(items)]
    merchant, carrier = bearer(found.keys["merchant"]), bearer(found.keys["carrier"])
    async with _session(concurrency) as session:
        balancer = Balancer([r.url for r in found.replicas], session)

        async def must(kind: str, method: str, path: str, headers: dict[str, str], body: Any, expect: int) -> Any:
            outcome, answer = await balancer.send(kind, method, path, headers=headers, json_body=body, expect=expect)
            if outcome.error is not None:
                raise SetupError(f"demo data: {method} {path}: {outcome.error}")
            return answer

        await must("setup", "POST", "/v1/merchants/me/policy?wait=true", merchant, POLICY, 201)
        limit = asyncio.Semaphore(concurrency)

        async def sell(item: str) -> Sold:
            async with limit:
                sale = {"item_id": item, "consumer": Account.create().address, "price": "50000000", "order_ref": "c"}
                answer = await must("setup", "POST", "/v1/sales?wait=true", merchant, sale, 201)
                await must(
                    "setup", "POST", f"/v1/items/{item}/delivery?wait=true", carrier, {"location": LOCATION}, 201
                )
                return Sold(item_id=item, token=answer["return_token"])

        sold = await asyncio.gather(*(sell(item) for item in ids))

        async def approve(one: Sold) -> tuple[str, str]:
            async with limit:
                body = {"reason_code": "damaged", "comment": "arrived broken"}
                answer = await must("setup", "POST", "/v1/returns?wait=true", return_token(one.token), body, 201)
                if answer["outcome"] != "approve":
                    raise SetupError(f"demo data: a return request was not approved: {answer}")
                return answer["return_id"], "in_transit"

        scans = await asyncio.gather(*(approve(one) for one in sold[:approved]))
    return Data(items=ids, returnable=list(sold[approved:]), scans=list(scans))


@contextlib.asynccontextmanager
async def _session(connections: int) -> Any:
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        yield session


# ---- the mixed load with the kills -----------------------------------------------------------------------


@dataclass
class Drill:
    """What happened during the mixed load (step 3 of the module docstring)."""

    outcomes: list[Outcome]
    seconds: float
    indexer_killed_at: float
    """Wall-clock (the logs' clock) time of the active indexer's SIGKILL."""
    replica_killed_at: float
    """Monotonic time of the replica's SIGKILL."""
    replica_dead_at: float
    """Monotonic time its processes were gone (reaped)."""
    replica_back_at: float
    ryw_checked: int
    ryw_violations: list[str]
    rerouted: int
    retried: list[Outcome]
    returnable_left: int


async def mixed_load(
    found: Cluster, data: Data, *, duration: float, readers: int, return_rate: float, scan_rate: float, seed: int = 7
) -> Drill:
    rng = random.Random(seed)
    auditor, carrier = bearer(found.keys["auditor"]), bearer(found.keys["carrier"])
    returnable = list(data.returnable)
    scans: list[tuple[str, str]] = list(data.scans)
    violations: list[str] = []
    checked = 0
    done = asyncio.Event()
    marks: dict[str, float] = {}
    pending: set[asyncio.Task[None]] = set()

    async with _session(readers + 64) as session:
        balancer = Balancer([r.url for r in found.replicas], session)

        async def check_on_other(return_id: str, wrote_on: int, headers: dict[str, str], state: str) -> None:
            nonlocal checked
            outcome, answer = await balancer.send(
                "read_after_write", "GET", f"/v1/returns/{return_id}", headers=headers, avoid=wrote_on
            )
            if answer is None:
                return
            checked += 1
            if answer.get("state") != state:
                violations.append(
                    f"{return_id} on replica {outcome.replica} after a write on replica {wrote_on}: state "
                    f"{answer.get('state')!r}, expected {state!r}"
                )

        async def reader() -> None:
            while not done.is_set():
                item = data.items[rng.randrange(len(data.items))]
                if rng.random() < HISTORY_SHARE:
                    await balancer.send("history", "GET", f"/v1/items/{item}/history", headers=auditor)
                else:
                    await balancer.send("eligibility", "GET", f"/v1/items/{item}/eligibility", headers=auditor)

        async def request_return(one: Sold) -> None:
            body = {"reason_code": "damaged", "comment": "arrived broken"}
            headers = return_token(one.token)
            outcome, answer = await balancer.send(
                "return_request", "POST", "/v1/returns?wait=true", headers=headers, json_body=body, expect=201
            )
            if answer is None:
                return
            if answer.get("outcome") != "approve":
                outcome.error = f"not approved: {answer}"
                return
            await check_on_other(answer["return_id"], outcome.replica, headers, STATE_AFTER["return"])
            scans.append((answer["return_id"], "in_transit"))

        async def scan(return_id: str, kind: str) -> None:
            outcome, answer = await balancer.send(
                "carrier_scan",
                "POST",
                f"/v1/returns/{return_id}/scans?wait=true",
                headers=carrier,
                json_body={"kind": kind, "location": LOCATION},
            )
            if answer is None:
                return
            await check_on_other(return_id, outcome.replica, carrier, STATE_AFTER[kind])
            if kind in NEXT_SCAN:
                scans.append((return_id, NEXT_SCAN[kind]))

        def spawn(coroutine: Any) -> None:
            task = asyncio.create_task(coroutine)
            pending.add(task)
            task.add_done_callback(pending.discard)

        async def paced(rate: float, take: Any) -> None:
            """One write every 1/rate s from the start, whatever the answers (an open loop)."""
            if rate <= 0:
                return
            began, sent = time.monotonic(), 0
            while not done.is_set():
                job = take()
                if job is not None:
                    spawn(job)
                sent += 1
                delay = began + sent / rate - time.monotonic()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(done.wait(), delay)

        def next_return() -> Any:
            return request_return(returnable.pop()) if returnable else None

        def next_scan() -> Any:
            return scan(*scans.pop(0)) if scans else None

        async def kills() -> None:
            loop = asyncio.get_running_loop()
            await asyncio.sleep(duration / 4)
            active, _ = found.indexers[0]
            marks["indexer_killed_at"] = time.time()
            active.send_signal(signal.SIGKILL)
            await loop.run_in_executor(None, active.wait)
            await asyncio.sleep(duration / 4)
            replica = found.replicas[KILLED_REPLICA]
            marks["replica_killed_at"] = time.monotonic()
            await loop.run_in_executor(None, found.kill_replica, replica)
            marks["replica_dead_at"] = time.monotonic()
            await asyncio.sleep(1.0)
            await loop.run_in_executor(None, found.start_replica, replica)
            marks["replica_back_at"] = time.monotonic()

        began = time.monotonic()
        probe = asyncio.create_task(balancer.probe(done))
        killer = asyncio.create_task(kills())
        workers = [asyncio.create_task(reader()) for _ in range(readers)]
        workers += [
            asyncio.create_task(paced(return_rate, next_return)),
            asyncio.create_task(paced(scan_rate, next_scan)),
        ]
        await asyncio.sleep(duration)
        await killer  # a slow restart makes the load last longer: the restarted replica must serve some of it
        await asyncio.sleep(max(0.0, marks["replica_back_at"] + SERVED_AFTER_RESTART_S - time.monotonic()))
        done.set()
        await asyncio.gather(*workers)
        while pending:
            await asyncio.gather(*list(pending))
        seconds = time.monotonic() - began
        await probe
    return Drill(
        outcomes=balancer.outcomes,
        seconds=seconds,
        indexer_killed_at=marks["indexer_killed_at"],
        replica_killed_at=marks["replica_killed_at"],
        replica_dead_at=marks["replica_dead_at"],
        replica_back_at=marks["replica_back_at"],
        ryw_checked=checked,
        ryw_violations=violations,
        rerouted=balancer.rerouted,
        retried=balancer.retried,
        returnable_left=len(returnable),
    )


# ---- what the drill shows ---------------------------------------------------------------------------------


def takeover(standby_log: Path, killed_at: float) -> dict[str, float | None]:
    """Seconds from the active indexer's SIGKILL to the standby's lock and to its first indexed block."""
    locked = indexed = None
    for line in standby_log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or "timestamp" not in record:
            continue
        at = datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00")).timestamp()
        if record.get("event") == "writer lock acquired" and locked is None:
            locked = at
        elif record.get("event") == "indexed" and locked is not None and indexed is None:
            indexed = at
    return {
        "lock_s": None if locked is None else round(locked - killed_at, 3),
        "first_block_s": None if indexed is None else round(indexed - killed_at, 3),
    }


def errors_of(drill: Drill) -> dict[str, Any]:
    """Errors split: in flight on the killed replica at its SIGKILL, and every other."""
    in_flight: list[Outcome] = []
    other: list[Outcome] = []
    for outcome in drill.outcomes:
        if outcome.error is None:
            continue
        # sent before the replica's processes were gone, and broken without an answer
        if outcome.replica == KILLED_REPLICA and outcome.status is None and outcome.start <= drill.replica_dead_at:
            in_flight.append(outcome)
        else:
            other.append(outcome)
    return {
        "in_flight_on_killed_replica": len(in_flight),
        "in_flight_kinds": _count(o.kind for o in in_flight),
        "other": len(other),
        "other_samples": [f"{o.kind} on replica {o.replica}: {o.error}" for o in other[:5]],
    }


def _count(names: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return counts


def per_kind(drill: Drill) -> dict[str, dict[str, Any]]:
    kinds: dict[str, dict[str, Any]] = {}
    for kind in sorted({o.kind for o in drill.outcomes}):
        ok = [(o.end - o.start) * 1000 for o in drill.outcomes if o.kind == kind and o.error is None]
        failed = sum(1 for o in drill.outcomes if o.kind == kind and o.error is not None)
        kinds[kind] = {
            "ok": len(ok),
            "errors": failed,
            "rps": round(len(ok) / drill.seconds, 1),
            "p50_ms": round(percentile(ok, 0.5), 1),
            "p99_ms": round(percentile(ok, 0.99), 1),
        }
    return kinds


def compare_with_reindex(found: Cluster) -> dict[str, Any]:
    """The index against a clean re-index of the chain (``ledger-indexer backfill`` into a new SQLite file):
    per table, rows the index lacks (lost) and rows it has too often or that the chain does not make
    (duplicated), over the tables the indexer writes."""
    reference_url = f"sqlite:///{found.workdir / 'reindex.sqlite3'}"
    log = found.workdir / "reindex.log"
    with log.open("wb") as out:
        code = subprocess.run(
            [*console_script("ledger-indexer"), "backfill", "--no-progress"],
            env=found.env | {"LEDGER_DATABASE_URL": reference_url},
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=600,
            check=False,
        ).returncode
    if code != 0:
        raise SetupError(f"the clean re-index failed (exit code {code}):\n{tail(log)}")
    with Store.open(found.database_url) as live, Store.open(reference_url) as reference:
        ours, theirs = live.dump(), reference.dump()
    lost: dict[str, int] = {}
    duplicated: dict[str, int] = {}
    rows = 0
    for name in sorted(set(ours) | set(theirs)):
        if name in NOT_INDEXER_TABLES:
            continue
        mine, wanted = _multiset(_indexers_rows(name, ours)), _multiset(_indexers_rows(name, theirs))
        rows += sum(wanted.values())
        missing = sum((wanted - mine).values())
        extra = sum((mine - wanted).values())
        if missing:
            lost[name] = missing
        if extra:
            duplicated[name] = extra
    return {"rows": rows, "lost": lost, "duplicated": duplicated}


def _indexers_rows(name: str, dump: dict[str, list[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    """The rows of table ``name`` the indexer wrote: in the outbox, not the API's own notifications (a request
    answered by the API is notified by the API, in the same transaction as the request's row)."""
    rows = dump.get(name, [])
    if name != notifications.name:
        return rows
    kept = [c.name for c in notifications.c if c.name not in WALL_CLOCK_COLUMNS.get(name, frozenset())]
    kind = kept.index("type")
    return [row for row in rows if row[kind] not in API_NOTIFICATIONS]


def _multiset(rows: list[tuple[Any, ...]]) -> Any:
    from collections import Counter

    return Counter(rows)


# ---- eligibility throughput: three replicas against one -------------------------------------------------


def wrk_eligibility(
    urls: list[str], *, paths: Path, authorization: str, connections: int, seconds: int, workdir: Path, label: str
) -> list[dict[str, Any]]:
    """One closed-loop wrk per URL, all at once (bench/api_eligibility.lua); each one's figures."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SetupError("wrk is not installed: run scripts/bootstrap.sh (Debian package wrk)")
    env = {**os.environ, "BENCH_AUTHORIZATION": authorization}
    running = []
    for n, url in enumerate(urls):
        out = workdir / f"wrk-{label}-{n}.out"
        command = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s"]
        command += ["-s", str(ROOT / "bench" / "api_eligibility.lua"), url, "--", str(paths), "1"]
        with out.open("wb") as sink:
            running.append((subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT), out))
    figures = []
    for process, out in running:
        process.wait(timeout=seconds + 120)
        lines = out.read_text(errors="replace").strip().splitlines()
        if process.returncode != 0 or not lines:
            raise SetupError(f"wrk failed (exit code {process.returncode}):\n{tail(out)}")
        raw = json.loads(lines[-1])
        statuses = raw["statuses"] if isinstance(raw["statuses"], dict) else {}
        ok = int(statuses.get("200", 0))
        socket_errors = sum(int(v) for k, v in raw["errors"].items() if k != "status")
        figures.append(
            {
                "rps": ok / (raw["duration_us"] / 1e6),
                "p99_ms": raw["p99_us"] / 1000,
                "p50_ms": raw["p50_us"] / 1000,
                "errors": int(raw["requests"]) - ok + socket_errors,
            }
        )
    return figures


def _pg_sessions(database_url: str) -> int:
    """Connections the PostgreSQL server has accepted since its statistics were reset, over every database."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sqlalchemy.text("SELECT sum(sessions) FROM pg_stat_database")).scalar_one())
    finally:
        engine.dispose()


def _api_cpu(found: Cluster) -> float:
    """CPU seconds the replicas' processes (supervisors and workers) used so far."""
    pids = [r.process.pid for r in found.replicas if r.process is not None and r.process.poll() is None]
    return sum(process_cpu(pid) for top in pids for pid in (top, *descendants(top)))


def eligibility_ratio(
    found: Cluster,
    data: Data,
    *,
    one_connections: tuple[int, ...],
    three_connections: tuple[int, ...],
    seconds: int,
    same_workers: bool = True,
) -> dict[str, Any]:
    """Step 5 of the module docstring: each configuration's curve, the p99 bound and the ratio at it; with
    ``same_workers``, also against one replica with as many workers as the three have in all."""
    rng = random.Random(3)
    paths = found.workdir / "eligibility.paths"
    paths.write_text("".join(f"/v1/items/{rng.choice(data.items)}/eligibility\n" for _ in range(50_000)))
    authorization = f"Bearer {found.keys['auditor']}"
    urls = [r.url for r in found.replicas]

    def run(targets: list[str], connections: int, label: str) -> dict[str, Any]:
        wrk_eligibility(
            targets,
            paths=paths,
            authorization=authorization,
            connections=connections,
            seconds=2,
            workdir=found.workdir,
            label=f"{label}-warmup",
        )
        sessions = _pg_sessions(found.database_url)
        api_cpu, pg_cpu, began = _api_cpu(found), postgres_cpu(), time.monotonic()
        runs = wrk_eligibility(
            targets,
            paths=paths,
            authorization=authorization,
            connections=connections,
            seconds=seconds,
            workdir=found.workdir,
            label=label,
        )
        wall = time.monotonic() - began
        sessions = _pg_sessions(found.database_url) - sessions
        rps = sum(r["rps"] for r in runs)
        api_cores = (_api_cpu(found) - api_cpu) / wall
        return {
            "connections_each": connections,
            # cores busy meanwhile: the replicas' processes, and the whole PostgreSQL server (others' queries too)
            "api_cores": round(api_cores, 2),
            "postgres_cores": round((postgres_cpu() - pg_cpu) / wall, 2),
            "rps": round(rps, 1),
            "rps_per_api_core": round(rps / api_cores) if api_cores > 0 else None,
            # no larger than the p99 of all the requests together: each wrk's share has 99% of its answers within
            # its own p99
            "p99_ms": round(max(r["p99_ms"] for r in runs), 2),
            "p50_ms": round(max(r["p50_ms"] for r in runs), 2),
            "errors": sum(r["errors"] for r in runs),
            # connections PostgreSQL accepted meanwhile (every database's: other work too)
            "postgres_sessions": sessions,
        }

    curves: dict[str, list[dict[str, Any]]] = {"one": [], "three": []}
    # the two curves' points alternate, so what else the machine runs meanwhile falls on both alike
    plan = {"one": sorted(set(one_connections)), "three": sorted(set(three_connections))}
    for step in range(max(len(counts) for counts in plan.values())):
        for name, targets in (("one", urls[:1]), ("three", urls)):
            if step >= len(plan[name]):
                continue
            connections = plan[name][step]
            point = run(targets, connections, f"{name}-{connections}")
            curves[name].append(point)
            say(
                f"  {name} replica{'s' if name == 'three' else ''}, {connections} connection"
                f"{'s' if connections > 1 else ''}{' each' if name == 'three' else ''}: {point['rps']:,.0f} req/s, "
                f"p99 {point['p99_ms']:.1f} ms, p50 {point['p50_ms']:.1f} ms (cores busy: API {point['api_cores']}, "
                f"PostgreSQL {point['postgres_cores']}, {point['postgres_sessions']} sessions opened; load average "
                f"{os.getloadavg()[0]:.1f})"
            )
    found_ratio = compare_curves(curves["one"], curves["three"])
    if same_workers:
        # the same API processes as the three: one replica, three workers, as many connections in all
        found.restart_replica(found.replicas[0], workers=REPLICAS)
        run(urls[:1], REPLICAS, "workers-settle")
        workers_curve = []
        for connections in sorted({count * REPLICAS for count in three_connections}):
            point = run(urls[:1], connections, f"workers-{connections}")
            workers_curve.append(point)
            say(
                f"  one replica with {REPLICAS} workers, {connections} connections: {point['rps']:,.0f} req/s, "
                f"p99 {point['p99_ms']:.1f} ms, p50 {point['p50_ms']:.1f} ms (cores busy: API {point['api_cores']}, "
                f"PostgreSQL {point['postgres_cores']}, {point['postgres_sessions']} sessions opened; load average "
                f"{os.getloadavg()[0]:.1f})"
            )
        found_ratio["same_workers"] = compare_curves(workers_curve, curves["three"])
    return found_ratio


def compare_curves(one: list[dict[str, Any]], three: list[dict[str, Any]]) -> dict[str, Any]:
    """The ratio of the two configurations' throughputs at the same p99 bound (step 5 of the module docstring):
    each one's knee (the fewest connections reaching :data:`KNEE` of its peak throughput) and its p99, the bound
    (the larger of the two knees' p99s) and the highest throughput of each among its points within the bound."""

    def knee(curve: list[dict[str, Any]]) -> dict[str, Any]:
        peak = max(point["rps"] for point in curve)
        return next(point for point in curve if point["rps"] >= KNEE * peak)

    knees = {"one": knee(one), "three": knee(three)}
    bound = max(point["p99_ms"] for point in knees.values())
    best = {
        name: max((point for point in curve if point["p99_ms"] <= bound), key=lambda point: point["rps"])
        for name, curve in (("one", one), ("three", three))
    }
    return {
        "curves": {"one": one, "three": three},
        "knees": {name: point["connections_each"] for name, point in knees.items()},
        "p99_bound_ms": bound,
        "one": best["one"],
        "three": best["three"],
        "ratio": round(best["three"]["rps"] / best["one"]["rps"], 2),
    }


# ---- the benchmark ----------------------------------------------------------------------------------------


def drill_figures(
    workdir: Path,
    *,
    postgres_url: str,
    duration: float,
    readers: int,
    return_rate: float,
    scan_rate: float,
    ratio: bool,
    one_connections: tuple[int, ...] = ONE_CONNECTIONS,
    three_connections: tuple[int, ...] = THREE_CONNECTIONS,
    ratio_duration: int = 8,
    same_workers: bool = True,
) -> dict[str, Any]:
    """Every step of the module docstring; the figures."""
    with cluster(workdir, postgres_url=postgres_url) as found:
        needed = int(return_rate * duration * 1.2) + 10
        approved = int(scan_rate * duration / 4) + 5
        say(f"cluster up: anvil, PostgreSQL, 2 indexers, {REPLICAS} replicas; demo data: {needed + approved} items")
        data = asyncio.run(demo_data(found, items=needed + approved, approved=approved))
        found.wait_indexed("after the demo data")
        say(f"mixed load for {duration:g} s ({readers} readers, returns {return_rate:g}/s, scans {scan_rate:g}/s)")
        drill = asyncio.run(
            mixed_load(found, data, duration=duration, readers=readers, return_rate=return_rate, scan_rate=scan_rate)
        )
        standby, standby_log = found.indexers[1]
        if standby.poll() is not None:
            raise SetupError(f"the standby indexer exited (code {standby.returncode}):\n{tail(standby_log)}")
        found.wait_indexed("after the load, with the standby indexer")
        figures: dict[str, Any] = {
            "load_average_1min": round(os.getloadavg()[0], 1),  # the machine is shared: how busy it was
            "seconds": round(drill.seconds, 1),
            "requests": len(drill.outcomes),
            "throughput_rps": round(sum(1 for o in drill.outcomes if o.error is None) / drill.seconds, 1),
            "kinds": per_kind(drill),
            "errors": errors_of(drill),
            "rerouted": drill.rerouted,
            "retried": {
                "reads": len(drill.retried),
                "from_replicas": sorted({o.replica for o in drill.retried}),
                "samples": [f"{o.kind} on replica {o.replica}: {o.error}" for o in drill.retried[:5]],
            },
            "takeover": takeover(standby_log, drill.indexer_killed_at),
            "replica_down_s": round(drill.replica_back_at - drill.replica_killed_at, 1),
            "served_after_restart": sum(
                1
                for o in drill.outcomes
                if o.replica == KILLED_REPLICA and o.start >= drill.replica_back_at and o.error is None
            ),
            "read_your_writes": {
                "checked": drill.ryw_checked,
                "violations": drill.ryw_violations[:5],
                "violated": len(drill.ryw_violations),
            },
            "returnable_left": drill.returnable_left,
            "head": found.head(),
        }
        say("comparing the index with a clean re-index of the chain")
        figures["index"] = compare_with_reindex(found)
        if ratio:
            say("eligibility throughput, one replica against three")
            figures["eligibility_ratio"] = eligibility_ratio(
                found,
                data,
                one_connections=one_connections,
                three_connections=three_connections,
                seconds=ratio_duration,
                same_workers=same_workers,
            )
        return figures


def report(figures: dict[str, Any]) -> None:
    say("")
    say(f"machine load average (1 min) after the mixed load: {figures['load_average_1min']} on {os.cpu_count()} cores")
    say(
        f"mixed load: {figures['seconds']} s, {figures['requests']} requests, "
        f"{figures['throughput_rps']} req/s answered"
    )
    rows = [["kind", "ok", "errors", "req/s", "p50 ms", "p99 ms"]]
    for kind, k in figures["kinds"].items():
        rows.append([kind, str(k["ok"]), str(k["errors"]), f"{k['rps']:g}", f"{k['p50_ms']:g}", f"{k['p99_ms']:g}"])
    for line in table(rows, align="lrrrrr", indent="  "):
        say(line)
    errors, takeover_ = figures["errors"], figures["takeover"]
    say(
        f"errors: {errors['in_flight_on_killed_replica']} in flight on the killed replica {errors['in_flight_kinds']}, "
        f"{errors['other']} elsewhere {errors['other_samples']}; {figures['rerouted']} refused connections rerouted"
    )
    retried = figures["retried"]
    say(
        f"reads whose connection broke without an answer, sent again to the next replica: {retried['reads']} "
        f"(from replicas {retried['from_replicas']}) {retried['samples']}"
    )
    say(f"standby indexer: lock after {takeover_['lock_s']} s, first block after {takeover_['first_block_s']} s")
    ryw = figures["read_your_writes"]
    say(
        f"read-your-writes on another replica: {ryw['checked']} checked, {ryw['violated']} violated {ryw['violations']}"
    )
    index = figures["index"]
    say(
        f"index vs clean re-index: {index['rows']} rows, lost {index['lost'] or 0}, "
        f"duplicated {index['duplicated'] or 0}"
    )
    ratio = figures.get("eligibility_ratio")
    if ratio is not None:
        one, three = ratio["one"], ratio["three"]
        say(
            f"eligibility at the same p99 bound {ratio['p99_bound_ms']:g} ms (the larger of the knees' p99s; knees at "
            f"{ratio['knees']['one']} and {ratio['knees']['three']} connections): one replica {one['rps']:,.0f} req/s "
            f"(p99 {one['p99_ms']:g} ms, {one['connections_each']} connections, API cores {one['api_cores']}), "
            f"three {three['rps']:,.0f} req/s (p99 {three['p99_ms']:g} ms, {three['connections_each']} each, API "
            f"cores {three['api_cores']}): {ratio['ratio']}x; req/s per API core {one['rps_per_api_core']} and "
            f"{three['rps_per_api_core']}"
        )
    same = None if ratio is None else ratio.get("same_workers")
    if same is not None:
        say(
            f"three replicas against one replica with {REPLICAS} workers (the same API processes), at their bound "
            f"{same['p99_bound_ms']:g} ms: {same['one']['rps']:,.0f} req/s (p99 {same['one']['p99_ms']:g} ms, "
            f"{same['one']['connections_each']} connections, API cores {same['one']['api_cores']}) against the "
            f"three's {same['three']['rps']:,.0f}: {same['ratio']}x"
        )
    first = takeover_["first_block_s"]
    say("TARGETS:")
    say(
        f"  takeover <= {TARGETS['takeover_s']:g} s: "
        f"{verdict(None if first is None else first <= TARGETS['takeover_s'])}"
    )
    say(f"  no errors outside the killed replica's in-flight requests: {verdict(errors['other'] == 0)}")
    say(f"  index equal to a clean re-index: {verdict(not index['lost'] and not index['duplicated'])}")
    say(f"  read-your-writes across replicas: {verdict(ryw['violated'] == 0 and ryw['checked'] > 0)}")
    if ratio is not None:
        met = None if ratio["ratio"] is None else ratio["ratio"] >= TARGETS["ratio"]
        say(f"  eligibility ratio >= {TARGETS['ratio']:g}x: {verdict(met)}")


def _counts(text: str) -> tuple[int, ...]:
    """``--one-connections 1,2,4``: positive whole numbers separated by commas."""
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give connection counts separated by commas, e.g. 1,2,4") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: each connection count must be 1 or more")
    return counts


def _shown(counts: tuple[int, ...]) -> str:
    return ",".join(str(count) for count in counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--postgres-url", default=os.environ.get("TEST_POSTGRES_URL", DEFAULT_PG_URL))
    parser.add_argument("--duration", type=float, default=40.0, help="seconds of mixed load (default 40)")
    parser.add_argument("--readers", type=int, default=6, help="closed-loop reading clients (default 6)")
    parser.add_argument("--return-rate", type=float, default=2.0, help="return requests per second (default 2)")
    parser.add_argument("--scan-rate", type=float, default=2.0, help="carrier scans per second (default 2)")
    parser.add_argument(
        "--one-connections",
        type=_counts,
        default=ONE_CONNECTIONS,
        help=f"wrk connection counts of the single replica's curve (default {_shown(ONE_CONNECTIONS)})",
    )
    parser.add_argument(
        "--three-connections",
        type=_counts,
        default=THREE_CONNECTIONS,
        help=f"wrk connection counts to each of the three replicas (default {_shown(THREE_CONNECTIONS)})",
    )
    parser.add_argument("--ratio-duration", type=int, default=8, help="seconds of each measured wrk run")
    parser.add_argument("--no-ratio", action="store_true", help="skip the eligibility throughput ratio")
    parser.add_argument(
        "--no-same-workers",
        action="store_true",
        help="skip the reference of one replica with as many workers as the three have",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    return run_in_workdir(
        __file__,
        lambda workdir: drill_figures(
            workdir,
            postgres_url=args.postgres_url,
            duration=args.duration,
            readers=args.readers,
            return_rate=args.return_rate,
            scan_rate=args.scan_rate,
            ratio=not args.no_ratio,
            one_connections=args.one_connections,
            three_connections=args.three_connections,
            ratio_duration=args.ratio_duration,
            same_workers=not args.no_same_workers,
        ),
        keep=args.keep,
        report=report,
    )


if __name__ == "__main__":
    sys.exit(main())
