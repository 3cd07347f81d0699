"""Two checkouts of the project run side by side on one machine: each run command on its own ports (from its
./run.env), both healthy, each API on its own chain and index, then both stopped with nothing left behind.

Heavy (two full ``scripts/run.sh --detach``, about a minute and a half each): marked ``heavy``, which
``scripts/test.sh`` runs as a stage of its own, after the others; alone: ``.venv/bin/pytest -m heavy tests/scripts``.
The two checkouts are copies of this one's files (tracked and new, as they are in the working tree) sharing
its installed environments (.venv, .venv-brownie, node_modules, build/) through symlinks, so the copies'
bootstrap finds everything installed; everything a run writes (var/, .brownie/, deployments/) is the copy's own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.chain import free_port

pytestmark = pytest.mark.heavy

ROOT = Path(__file__).resolve().parents[2]
SHARED = (".venv", ".venv-brownie", "node_modules", "build")
PORTS = (
    "LEDGER_ANVIL_PORT",
    "LEDGER_API_PORT",
    "LEDGER_INDEXER_METRICS_PORT",
    "LEDGER_BATCHER_METRICS_PORT",
    "LEDGER_DEMO_WEBHOOK_PORT",
    "LEDGER_DEMO_SMTP_PORT",
    "LEDGER_TEST_ANVIL_PORT",
    "LEDGER_BENCH_ANVIL_PORT",
)


def copy_checkout(dest: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    for name in SHARED:
        (dest / name).symlink_to(ROOT / name)
    # what the bootstrap made once: its stamps, and the assistant's model (not in git)
    shutil.copytree(ROOT / ".cache" / "bootstrap", dest / ".cache" / "bootstrap")
    model = Path("ledger_service/assistant/data/model.joblib")
    shutil.copy2(ROOT / model, dest / model)


def environment() -> dict[str, str]:
    """This process's environment without the service's settings and ports: each run reads its own run.env."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_") and k != "PROMETHEUS_MULTIPROC_DIR"}


def rpc(port: int, method: str, params: list[object] | None = None) -> object:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    headers = {"content-type": "application/json"}
    request = urllib.request.Request(f"http://127.0.0.1:{port}", data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.load(answer)["result"]


def port_open(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
    except OSError:
        return False
    return True


@pytest.fixture
def checkouts(tmp_path: Path) -> Iterator[list[tuple[Path, dict[str, int]]]]:
    # this checkout's installs and their stamps current (idempotent: seconds when they are), for the copies
    boot = subprocess.run(
        [str(ROOT / "scripts" / "bootstrap.sh")], env=environment(), capture_output=True, text=True, check=False
    )
    assert boot.returncode == 0, boot.stdout[-2000:] + boot.stderr[-2000:]
    made: list[tuple[Path, dict[str, int]]] = []
    for name in ("a", "b"):
        root = tmp_path / name
        copy_checkout(root)
        ports = {variable: free_port() for variable in PORTS}
        (root / "run.env").write_text("".join(f"{k}={v}\n" for k, v in ports.items()))
        made.append((root, ports))
    try:
        yield made
    finally:
        for root, _ in made:  # whatever happened, nothing of theirs keeps running
            subprocess.run([str(root / "scripts" / "stop.sh")], env=environment(), capture_output=True, check=False)


def test_two_checkouts_run_side_by_side_and_stop(checkouts: list[tuple[Path, dict[str, int]]]) -> None:
    for root, _ in checkouts:
        run = subprocess.run(
            [str(root / "scripts" / "run.sh"), "--detach"],
            cwd=root,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    heads = []
    for root, ports in checkouts:
        api = f"http://127.0.0.1:{ports['LEDGER_API_PORT']}"
        assert httpx.get(f"{api}/healthz", timeout=10).status_code == 200
        ready = httpx.get(f"{api}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        metrics = httpx.get(f"http://127.0.0.1:{ports['LEDGER_INDEXER_METRICS_PORT']}/metrics", timeout=10).text
        assert "ledger_indexer_checkpoint_block" in metrics
        # the checkout's brownie knows its own chain's port, not the default one
        config = (root / ".brownie" / ".brownie" / "network-config.yaml").read_text()
        assert f"port: {ports['LEDGER_ANVIL_PORT']}" in config
        assert not (root / ".brownie" / ".brownie").resolve().is_relative_to(Path.home() / ".brownie")
        heads.append(int(str(rpc(ports["LEDGER_ANVIL_PORT"], "eth_blockNumber")), 16))

    # each API follows its own chain: blocks mined on the first move only the first index
    first, second = (ports for _, ports in checkouts)
    rpc(first["LEDGER_ANVIL_PORT"], "anvil_mine", [5])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        detail = httpx.get(f"http://127.0.0.1:{first['LEDGER_API_PORT']}/readyz", timeout=10).json()
        if f"checkpoint at block {heads[0] + 5})" in detail["checks"]["database"]["detail"]:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"the first index did not reach block {heads[0] + 5}: {detail}")
    other = httpx.get(f"http://127.0.0.1:{second['LEDGER_API_PORT']}/readyz", timeout=10).json()
    assert f"checkpoint at block {heads[1]})" in other["checks"]["database"]["detail"]

    for root, ports in checkouts:
        pids = [int(p.read_text()) for p in [*(root / "var").glob("*.pid"), root / "var" / "anvil" / "anvil.pid"]]
        stopped = subprocess.run(
            [str(root / "scripts" / "stop.sh")], env=environment(), capture_output=True, text=True, check=False
        )
        assert stopped.returncode == 0, stopped.stderr
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
            time.sleep(0.2)
        assert [pid for pid in pids if _alive(pid)] == []
        assert [name for name, port in ports.items() if port_open(port)] == []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie of ours is dead too
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "zombie" not in status.read_text()
