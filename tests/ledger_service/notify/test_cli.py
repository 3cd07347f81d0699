"""ledger-notify as a process: it starts on an index, a second one on the same SQLite file is refused with a
message and exit code 2, SIGTERM stops it cleanly (exit 0)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ledger_service.store import Store

NOTIFY = Path(sys.executable).parent / "ledger-notify"


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    return env | {"LEDGER_DATABASE_URL": url}


def test_one_worker_per_sqlite_index_and_sigterm_stops_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    Store.open(url).close()
    first = subprocess.Popen([str(NOTIFY)], env=_env(url), stderr=subprocess.PIPE, text=True)
    try:
        lock = tmp_path / "index.sqlite3.notify.lock"
        deadline = time.monotonic() + 20
        while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            assert time.monotonic() < deadline, "ledger-notify did not take its lock"
            time.sleep(0.05)
        second = subprocess.run([str(NOTIFY)], env=_env(url), capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert "another notification worker" in second.stderr and str(first.pid) in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0


def test_once_delivers_and_exits(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    Store.open(url).close()
    done = subprocess.run([str(NOTIFY), "--once"], env=_env(url), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
