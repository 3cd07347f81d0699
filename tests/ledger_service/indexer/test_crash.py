"""Crash safety: SIGKILL the CLI backfill at random moments, restart it, and end with an exact index."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

from ledger_service.store.handle import Store
from tests.ledger_service.indexer.conftest import Chain, cli_env, reference_dump, run_cli, start_cli

KILLS = 10


def test_sigkill_during_backfill_at_random_moments_then_restart_gives_an_exact_index(
    chain: Chain, sqlite_url: str, procs: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    chain.activity.lifecycle()
    chain.activity.bulk(events=10_000, items=32)
    env = cli_env(chain, sqlite_url)
    args = ["--target-logs", "400", "backfill"]
    store = Store.open(sqlite_url)  # migrated once here, so each run starts indexing at once
    rng = random.Random(20240611)
    kills = finished = 0
    killed_at: list[int] = []
    try:
        while kills < KILLS:
            start = store.checkpoint()
            # every other run with two fetch processes: a kill also lands while chunks are fetched side by side
            log = tmp_path / f"run-{kills + finished}.log"  # what a run that exits on its own said, if it failed
            proc = start_cli(["--fetch-processes", str(1 + (kills + finished) % 2), *args], env, log=log)
            procs.append(proc)
            if rng.random() < 0.2:  # while it starts: imports, lock, migrations check, pin check
                time.sleep(rng.uniform(0.1, 0.8))
            else:  # while it indexes: some time after its first write
                deadline = time.monotonic() + 60
                while proc.poll() is None and store.checkpoint() == start and time.monotonic() < deadline:
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 0.12))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
                kills += 1
                checkpoint = store.checkpoint()
                killed_at.append(-1 if checkpoint is None else checkpoint.number)
            else:
                assert proc.returncode == 0, log.read_text()[-3000:]
                finished += 1
                # the backfill got to the head first: give the next runs more to do
                chain.activity.bulk(events=3_000, items=4)
        final = run_cli(args, env)
        assert final.returncode == 0, final.stderr
        assert store.checkpoint().number == chain.head  # type: ignore[union-attr]
        assert len(set(killed_at)) > 3, killed_at  # the kills landed at different places
        assert store.dump() == reference_dump(chain)
        assert store.deferred_indexes() == []  # the per-item index the killed first runs left out is built
    finally:
        store.close()
