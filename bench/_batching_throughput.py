"""bench/batching.py's throughput part: scans through ``POST /v1/scans``, ledger-batcher and the indexer.

On a fresh anvil with every contract (tests/support/chain.py) and a fresh SQLite index, with ``--items`` items
registered on-chain, ``ledger-api`` (``--workers`` processes, as production runs it), ``ledger-batcher`` and
``ledger-indexer follow`` (with its batch resolver) all running on the same index and document folder:

1. acknowledgements: wrk (bench/batching_scans.lua) posts requests of ``--per-request`` carrier scans (the
   same registered items, each scan valid) over ``--connections`` keep-alive connections for ``--duration``
   seconds, closed loop: acknowledged scans/s = 2xx answers/s x scans per request;
2. end to end at saturation: from the start of that load until the index has applied every batch holding
   the scans it acknowledged: acknowledged -> sealed -> anchored -> indexed, scans/s;
3. latency at the target rate: scans sent open-loop at ``--rate`` scans/s (requests of ``--per-request``, on
   four threads) for ``--latency-duration`` seconds; for each scan, the time from its acknowledgement (the
   ``accepted_at`` the API stored) to when the index showed its batch applied (polled every 50 ms): p50/p95;
4. the reference, in the same run: the same carrier scans recorded on-chain one by one, ``--per-request`` per
   ``recordEvents`` transaction sent back to back on the same anvil, scans/s.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from api_eligibility import api_server, indexer_follow
from common import ROOT, SetupError, console_script, percentile, say, stop, tail
from sqlalchemy import text

from ledger_service.access import Role, create_api_key
from ledger_service.core.codes import BizStep, Disposition, encode_location
from ledger_service.core.hashchain import item_id
from ledger_service.store import Store
from tests.support.activity import write_manifest
from tests.support.chain import ARTIFACTS, CARRIER, MANUFACTURER, MERCHANT, Anvil, Deployed, deploy_all

READ_POINT = "0614141.00777.0"
LUA = ROOT / "bench" / "batching_scans.lua"


def _register(deployed: Deployed, uris: list[str]) -> None:
    ledger = deployed.ledger.functions
    location = encode_location(READ_POINT)
    merchant = deployed.accounts[MERCHANT]
    for start in range(0, len(uris), 100):
        part = [(u, 0, merchant, bytes(32), location) for u in uris[start : start + 100]]
        tx = ledger.registerItems(part).transact({"from": deployed.accounts[MANUFACTURER]})
        if deployed.w3.eth.wait_for_transaction_receipt(tx)["status"] != 1:
            raise SetupError("registering the benchmark's items failed")


def transit_scan_inputs(uris: list[str]) -> list[tuple[bytes, int, int, bytes, bytes, bytes]]:
    """``recordEvents`` inputs: one carrier in-transit scan of each item at READ_POINT."""
    step, disposition = int(BizStep.TRANSPORTING), int(Disposition.IN_TRANSIT)
    location = encode_location(READ_POINT)
    return [(item_id(u), step, disposition, location, bytes(32), bytes(32)) for u in uris]


def _onchain_scans_per_s(deployed: Deployed, uris: list[str], per_tx: int, txs: int) -> float:
    """Carrier scans recorded on-chain, ``per_tx`` in one recordEvents, ``txs`` transactions back to back."""
    ledger = deployed.ledger.functions
    inputs = transit_scan_inputs(uris[:per_tx])
    carrier = deployed.accounts[CARRIER]
    began = time.perf_counter()
    for _ in range(txs):
        tx = ledger.recordEvents(inputs).transact({"from": carrier})
        if deployed.w3.eth.wait_for_transaction_receipt(tx)["status"] != 1:
            raise SetupError("an on-chain reference transaction failed")
    return per_tx * txs / (time.perf_counter() - began)


class AppliedWatch:
    """Polls the index: when each anchored batch becomes applied, and the acknowledgement times of its scans."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.seen: set[str] = set()
        self.latencies_ms: list[float] = []
        self.applied_scans = 0

    def poll(self) -> None:
        now_ms = time.time() * 1000
        with self.store.engine.connect() as conn:
            roots = [r for (r,) in conn.execute(text("SELECT root FROM batch_anchors WHERE state = 'applied'"))]
            new = [r for r in roots if r not in self.seen]
            for root in new:
                accepted = conn.execute(
                    text(
                        "SELECT q.accepted_at FROM queued_scans q JOIN scan_batches b ON q.batch_id = b.id "
                        "WHERE b.root = :root"
                    ),
                    {"root": root},
                ).all()
                self.latencies_ms.extend(now_ms - int(a) for (a,) in accepted)
                self.applied_scans += len(accepted)
                self.seen.add(root)

    @contextlib.contextmanager
    def polling(self) -> Iterator[None]:
        """Polls every 50 ms on a thread of its own for the ``with`` block."""
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(0.05):
                self.poll()

        poller = threading.Thread(target=run, name="applied-watch")
        poller.start()
        try:
            yield
        finally:
            stop.set()
            poller.join()

    def wait_for(self, scans: int, timeout: float) -> float:
        """Polls until ``scans`` scans are applied; the wall-clock time it happened (SetupError after timeout)."""
        deadline = time.monotonic() + timeout
        while self.applied_scans < scans:
            if time.monotonic() > deadline:
                raise SetupError(f"only {self.applied_scans} of {scans} scans were indexed within {timeout:.0f} s")
            time.sleep(0.05)
            self.poll()
        return time.time()


def _acknowledged(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM queued_scans")).scalar_one())


def _wrk(url: str, key: str, body: Path, *, connections: int, seconds: int, log: Path) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SetupError("wrk is not installed: run scripts/bootstrap.sh (Debian package wrk)")
    env = {**os.environ, "SCANS_KEY": key, "SCANS_BODY": str(body)}
    command = [wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(LUA), f"{url}/v1/scans"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 120, check=False)
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SetupError(f"wrk failed:\n{done.stdout}{done.stderr}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    count = re.search(r"(\d+) requests in", done.stdout)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    if rate is None or count is None:
        raise SetupError(f"cannot read wrk's answer:\n{done.stdout}")
    return {
        "requests_per_s": float(rate.group(1)),
        "requests": int(count.group(1)),
        "errors": int(bad.group(1)) if bad else 0,
    }


def _open_loop(url: str, key: str, body: bytes, *, requests_per_s: float, seconds: float) -> int:
    """Posts ``body`` at a constant rate on four threads for ``seconds``; the number of 202 answers."""
    threads, accepted = 4, [0]
    lock = threading.Lock()
    began = time.monotonic() + 0.2

    def send(offset: int) -> None:
        interval = threads / requests_per_s
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            n = 0
            while True:
                due = began + (offset / requests_per_s) + n * interval
                if due - began >= seconds:
                    return
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                if client.post("/v1/scans", content=body).status_code == 202:
                    with lock:
                        accepted[0] += 1
                n += 1

    workers = [threading.Thread(target=send, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return accepted[0]


def service_env(anvil: Anvil, manifest: Path, database: str, workdir: Path) -> dict[str, str]:
    """The environment of the services' processes: this one's without its LEDGER_ settings, then the chain, the
    index, the deployment and the document folder (``workdir/documents``) of the run; warnings and errors logged."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")} | {
        "LEDGER_RPC_URL": anvil.url,
        "LEDGER_DATABASE_URL": database,
        "LEDGER_DEPLOYMENT_FILE": str(manifest),
        "LEDGER_ARTIFACTS_DIR": str(ARTIFACTS),
        "LEDGER_DOCUMENTS_DIR": str(workdir / "documents"),
        "LEDGER_LOG_LEVEL": "WARNING",
    }


def deployed_with_items(anvil: Anvil, workdir: Path, items: int, *, tag: str) -> tuple[Deployed, Path, list[str]]:
    """Every contract deployed on ``anvil``, its manifest written in ``workdir``, and ``items`` items registered
    (their URIs, serial numbers prefixed with ``tag``)."""
    deployed = deploy_all(anvil)
    manifest = write_manifest(deployed, workdir / "deployments" / "31337.json")
    uris = [f"urn:epc:id:sgtin:0614141.107346.{tag}{i}" for i in range(items)]
    _register(deployed, uris)
    return deployed, manifest, uris


def throughput(args: Any, workdir: Path, start_chain: Any) -> dict[str, Any]:
    anvil: Anvil = start_chain()
    try:
        deployed, manifest, uris = deployed_with_items(anvil, workdir, args.items, tag="t")
        say(f"  throughput: {args.items} items registered; the API, ledger-batcher and the indexer start")
        database = f"sqlite:///{workdir / 'index.sqlite3'}"
        env = service_env(anvil, manifest, database, workdir) | {
            "LEDGER_BATCH_MAX_SCANS": str(args.batch_scans),
            "LEDGER_BATCH_SEAL_S": str(args.seal_s),
        }
        store = Store.open(database)
        key = create_api_key(
            store=store, role=Role.CARRIER, name="bench carrier", actor_address=deployed.accounts[CARRIER]
        ).plaintext
        per = args.per_request
        scans = [
            {
                "item": uris[i % len(uris)],
                "biz_step": "transporting",
                "disposition": "in_transit",
                "read_point": READ_POINT,
            }
            for i in range(per)
        ]
        body = json.dumps({"scans": scans}).encode()
        (workdir / "body.json").write_bytes(body)
        batcher_log = workdir / "batcher.log"
        with (
            indexer_follow(env, workdir / "indexer.log"),
            api_server(env, workdir / "api.log", workers=args.workers) as api,
        ):
            with batcher_log.open("wb") as out:
                batcher = subprocess.Popen(
                    console_script("ledger-batcher"), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
                )
            try:
                watch = AppliedWatch(store)
                # 1 and 2: saturation, then until everything acknowledged is indexed
                began = time.time()
                load = _wrk(
                    api.url,
                    key,
                    workdir / "body.json",
                    connections=args.connections,
                    seconds=args.duration,
                    log=workdir / "wrk.txt",
                )
                acked = _acknowledged(store)
                if batcher.poll() is not None:
                    raise SetupError(f"ledger-batcher exited:\n{tail(batcher_log)}")
                say(f"  acknowledged {acked:,} scans in {args.duration} s; waiting for the index")
                indexed_at = watch.wait_for(acked, timeout=600)
                e2e = acked / (indexed_at - began)
                # 3: latency at the target rate, on an idle pipeline
                watch.latencies_ms.clear()
                before = watch.applied_scans
                # polled while the load runs too: a batch applied meanwhile is timed when it was, not at the end
                with watch.polling():
                    sent = _open_loop(api.url, key, body, requests_per_s=args.rate / per, seconds=args.latency_duration)
                watch.wait_for(before + sent * per, timeout=600)
                latencies = watch.latencies_ms
            finally:
                stop(batcher)
        onchain = _onchain_scans_per_s(deployed, uris, per, args.reference_txs)
        store.close()
    finally:
        anvil.stop()
    return {
        "ack_scans_per_s": round(load["requests_per_s"] * per),
        "ack_errors": load["errors"],
        "ack_requests": load["requests"],
        "e2e_scans_per_s": round(e2e),
        "latency_rate": args.rate,
        "latency_p50_ms": round(percentile(latencies, 0.5)),
        "latency_p95_ms": round(percentile(latencies, 0.95)),
        "latency_target_ms": round((2 * args.seal_s + 1) * 1000),
        "onchain_scans_per_s": round(onchain),
        "per_request": per,
        "batch_scans": args.batch_scans,
        "seal_s": args.seal_s,
        "workers": args.workers,
        "connections": args.connections,
        "duration_s": args.duration,
    }
