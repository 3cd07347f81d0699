"""Multiprocess mode as the API's workers use it, with real processes: each worker's values land in the shared
folder and one scrape adds them up; a worker killed without stopping leaves its counters (they happened) but
not its live gauges once a new worker starts; the supervisor empties the folder of an earlier run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[3]

WORKER = """
import os
from ledger_service.metrics.chain import TX_PENDING, TX_TOTAL
TX_TOTAL.labels("mined").inc(3)
TX_PENDING.inc()
os._exit(0)  # killed: no mark_process_dead
"""

SCRAPE = """
import sys
from pathlib import Path
from ledger_service.metrics import exposition, forget_dead_processes
directory = Path(sys.argv[1])
if sys.argv[2] == "forget":
    forget_dead_processes(directory)
sys.stdout.write(exposition(directory=directory).decode())
"""


def _run(code: str, directory: Path, *args: str) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code, str(directory), *args], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def _values(text: str) -> dict[str, float]:
    return {
        sample.name + "".join(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k != "pid"): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_workers_add_up_and_a_dead_workers_live_gauges_go(tmp_path: Path) -> None:
    from ledger_service.metrics import prepare_multiprocess_dir

    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_1.db").write_bytes(b"an earlier run")
    assert prepare_multiprocess_dir(directory) == directory.resolve()
    assert list(directory.iterdir()) == []
    assert os.environ.pop("PROMETHEUS_MULTIPROC_DIR") == str(directory.resolve())
    assert os.environ.pop("LEDGER_METRICS_DIR") == str(directory.resolve())

    for _ in range(2):
        _run(WORKER, directory)
    before = _values(_run(SCRAPE, directory, "keep"))
    assert before["ledger_tx_totaloutcome=mined"] == 6  # both workers' counts, in one answer
    assert before["ledger_tx_pending"] == 2
    after = _values(_run(SCRAPE, directory, "forget"))
    assert after["ledger_tx_totaloutcome=mined"] == 6
    assert after.get("ledger_tx_pending", 0) == 0
    assert list(directory.glob("gauge_live*")) == []
