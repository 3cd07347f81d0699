"""Fixtures of the indexer tests: a fresh anvil with the contracts deployed and a manifest,
indexers in-process, the CLI as a subprocess, and the reference "fresh full re-index"."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledger_service.chain.artifacts import Deployment, load_deployment
from ledger_service.indexer.decode import load_abis
from ledger_service.indexer.rpc import RetryPolicy, RpcClient
from ledger_service.indexer.sync import DEFAULT_MAX_BATCH_EVENTS, Indexer, RangeSizer, SyncUpdate, make_indexer
from ledger_service.store.handle import Store
from tests.support.activity import Activity, write_manifest
from tests.support.chain import ARTIFACTS, ROOT, Anvil, Deployed, deploy_all

ABIS = load_abis(ARTIFACTS)


@dataclass
class Chain:
    """A fresh anvil with the contracts, a manifest for them and a transaction sender."""

    node: Anvil
    deployed: Deployed
    activity: Activity
    manifest: Path
    deployment: Deployment

    @property
    def head(self) -> int:
        return int(self.deployed.w3.eth.block_number)


@pytest.fixture
def chain(fresh_anvil: Anvil, tmp_path: Path) -> Chain:
    deployed = deploy_all(fresh_anvil)
    manifest = write_manifest(deployed, tmp_path / "deployments" / "31337.json")
    return Chain(fresh_anvil, deployed, Activity(deployed), manifest, load_deployment(manifest))


def make_indexer_for(
    chain: Chain,
    store: Store,
    *,
    rpc_url: str | None = None,
    finality: int = 12,
    target_logs: int = 5000,
    initial_blocks: int = 64,
    rpc: RpcClient | None = None,
    max_batch_events: int = DEFAULT_MAX_BATCH_EVENTS,
    fetch_process_min_blocks: int | None = None,
    **checks: Any,
) -> Indexer:
    """``checks``: make_indexer's completeness options (bloom_check, reconcile, receipts_proof, fallback_rpc)."""
    client = rpc or RpcClient(rpc_url or chain.node.url, retry=RetryPolicy(attempts=8, base_delay=0.02))
    return make_indexer(
        store=store,
        rpc=client,
        deployment=chain.deployment,
        abis=ABIS,
        finality_depth=finality,
        sizer=RangeSizer(size=initial_blocks, target_logs=target_logs),
        max_batch_events=max_batch_events,
        fetch_process_min_blocks=fetch_process_min_blocks,
        **checks,
    )


def run_sync(indexer: Indexer, **kwargs: Any) -> list[SyncUpdate]:
    return list(indexer.sync(**kwargs))


def reference_dump(chain: Chain, *, finality: int = 12) -> dict[str, list[tuple[Any, ...]]]:
    """The dump of a fresh full re-index of the node's current chain into an empty SQLite store."""
    with tempfile.TemporaryDirectory() as folder:
        store = Store.open(f"sqlite:///{folder}/reference.sqlite3")
        try:
            indexer = make_indexer_for(chain, store, finality=finality)
            run_sync(indexer)
            assert store.checkpoint() is not None
            return store.dump()
        finally:
            indexer.rpc.close()
            store.close()


def comparable(dump: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """A dump without the stored block headers (their window depends on the head when each was written)."""
    return {table: rows for table, rows in dump.items() if table != "blocks"}


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'index.sqlite3'}"


def cli_env(chain: Chain, database_url: str, rpc_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(
        LEDGER_RPC_URL=rpc_url or chain.node.url,
        LEDGER_DATABASE_URL=database_url,
        LEDGER_DEPLOYMENT_FILE=str(chain.manifest),
        LEDGER_ARTIFACTS_DIR=str(ARTIFACTS),
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


CLI = [sys.executable, "-m", "ledger_service.indexer.cli"]


def run_cli(args: list[str], env: dict[str, str], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def start_cli(args: list[str], env: dict[str, str], *, log: Path | None = None) -> subprocess.Popen[str]:
    """The CLI in the background; its output goes to ``log`` (a file, so a chatty process never blocks)."""
    out = log.open("w") if log is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen([*CLI, *args], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True)
    finally:
        if log is not None:
            out.close()  # type: ignore[union-attr]


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    """Subprocesses a test started; killed (by pid) if still running at the end."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def wait_until_indexed(chain: Chain, store: Store, errors: list[BaseException], timeout: float = 30) -> None:
    head = chain.deployed.w3.eth.get_block("latest")
    want = (head["number"], "0x" + bytes(head["hash"]).hex())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert not errors, errors
        checkpoint = store.checkpoint()
        if checkpoint is not None and (checkpoint.number, checkpoint.hash) == want:
            return
        time.sleep(0.02)
    raise AssertionError(f"the follower did not reach {want}; checkpoint {store.checkpoint()}")
