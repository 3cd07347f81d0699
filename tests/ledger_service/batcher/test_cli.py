"""``ledger-batcher`` as a command: a clear message and its exit code when it cannot run, one per SQLite index."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
from pathlib import Path

BATCHER = Path(sys.executable).parent / "ledger-batcher"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    return env | {"LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'index.sqlite3'}"} | extra


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BATCHER), "--once"], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_an_unreachable_node_is_exit_1_with_the_url(tmp_path: Path) -> None:
    done = _run(_env(tmp_path, LEDGER_RPC_URL="http://127.0.0.1:9"))
    assert done.returncode == 1, done.stderr
    assert "ledger-batcher: cannot reach the node at http://127.0.0.1:9" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_settings_and_a_second_batcher_are_exit_2(tmp_path: Path) -> None:
    done = _run(_env(tmp_path, LEDGER_BATCH_MAX_SCANS="70000"))
    assert done.returncode == 2
    assert done.stderr.startswith("ledger-batcher: configuration error:") and "65536" in done.stderr
    with (tmp_path / "index.sqlite3.batcher.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running batcher holds it
        second = _run(_env(tmp_path))
    assert second.returncode == 2
    assert "another scan batcher is writing" in second.stderr and "Traceback" not in second.stderr


def test_a_metrics_port_in_use_is_exit_2_naming_the_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run(_env(tmp_path, LEDGER_RPC_URL="http://127.0.0.1:9", LEDGER_BATCHER_METRICS_PORT=str(port)))
    assert done.returncode == 2, done.stderr
    assert f"ledger-batcher: cannot serve metrics on 127.0.0.1:{port}" in done.stderr
    assert "LEDGER_BATCHER_METRICS_PORT" in done.stderr and "Traceback" not in done.stderr
