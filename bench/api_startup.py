"""A restarted API replica's start: ``ledger-api`` launched until its ``/readyz`` answers 200, and the import of
the application alone, for this checkout against the code of another git ref (issue #24).

Run from the repository root:
    .venv/bin/python bench/api_startup.py [--baseline-ref main] [--rounds 5]

One anvil with the contracts and an SQLite index at the chain's head for each checkout (its own
``ledger-indexer backfill``: its own migrations), then
``--rounds`` rounds; each round measures both checkouts, alternately first (the machine's load drifts):

- start: ``ledger-api`` with one worker (a console script written from the checkout's own ``pyproject.toml``
  entry, as pip writes it: the worker process re-runs it), from its launch until ``/readyz`` answers 200
  (probed every 50 ms), and the CPU seconds its supervisor and worker used until then; then SIGKILL to both;
- import: ``python -X importtime -c "import api.main"``, the module's cumulative import time.

The baseline is ``git archive <ref>`` of this repository run with this checkout's interpreter (its
``PYTHONPATH`` first): same packages, only the code differs. Prints each round, the medians and the ratios
after/before, then one JSON line. Wall times on a loaded machine are noisy (the CPU seconds less so): compare
the two within one run, not across runs. Exits 0 whatever the figures, 2 when the setup fails.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import statistics
import subprocess
import sys
import tarfile
import time
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import (  # noqa: E402
    SetupError,
    descendants,
    process_cpu,
    run_in_workdir,
    say,
    start_chain,
    table,
)

READY_TIMEOUT_S = 240.0
PROBE_S = 0.05
INDEXER = "import sys; from ledger_service.indexer.cli import run; sys.exit(run())"


def checkout(ref: str, into: Path) -> str:
    """``ref``'s tree (``git archive``) in ``into``; its commit."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if commit.returncode != 0:
        raise SetupError(f"--baseline-ref {ref}: not a commit of this repository ({commit.stderr.strip()})")
    archive = subprocess.run(["git", "archive", commit.stdout.strip()], cwd=ROOT, capture_output=True, check=True)
    into.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return commit.stdout.strip()


def api_script(tree: Path, into: Path) -> Path:
    """The ``ledger-api`` console script of ``tree``'s pyproject.toml, as pip writes it."""
    entry = tomllib.loads((tree / "pyproject.toml").read_text())["project"]["scripts"]["ledger-api"]
    module, function = entry.split(":")
    into.write_text(
        f"import sys\nfrom {module} import {function}\nif __name__ == '__main__':\n    sys.exit({function}())\n"
    )
    return into


def start_once(tree: Path, script: Path, env: dict[str, str]) -> tuple[float, float]:
    """Seconds from launch to ``/readyz`` 200, and the CPU seconds of the supervisor and its worker until then."""
    import httpx

    from tests.support.chain import free_port

    port = free_port()
    variables = env | {"PYTHONPATH": str(tree), "LEDGER_API_HOST": "127.0.0.1", "LEDGER_API_PORT": str(port)}
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tree,
        env=variables,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None:
                raise SetupError(f"ledger-api ({tree}) exited:\n{process.stderr.read().decode()[-3000:]}")  # type: ignore[union-attr]
            if time.monotonic() - started > READY_TIMEOUT_S:
                raise SetupError(f"ledger-api ({tree}) was not ready within {READY_TIMEOUT_S:g} s")
            time.sleep(PROBE_S)
        ready = time.monotonic() - started
        cpu = sum(process_cpu(pid) for pid in [process.pid, *descendants(process.pid)])
        return ready, cpu
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def import_once(tree: Path, env: dict[str, str]) -> float:
    """Seconds ``import api.main`` took (``-X importtime``'s cumulative figure)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import api.main"],
        cwd=tree,
        env=env | {"PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SetupError(f"import api.main failed in {tree}:\n{done.stderr[-3000:]}")
    line = next(line for line in done.stderr.splitlines() if line.rstrip().endswith("| api.main"))
    return int(line.split("|")[1]) / 1e6


def run(workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    from tests.support.activity import write_manifest
    from tests.support.chain import ARTIFACTS, deploy_all

    trees = {"before": workdir / "before", "after": ROOT}
    commit = checkout(args.baseline_ref, trees["before"])
    scripts = {name: api_script(tree, workdir / f"ledger-api-{name}") for name, tree in trees.items()}
    anvil = start_chain()
    try:
        deployed = deploy_all(anvil)
        manifest = write_manifest(deployed, workdir / "deployments" / f"{deployed.w3.eth.chain_id}.json")
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")} | {
            "LEDGER_RPC_URL": anvil.url,
            "LEDGER_DEPLOYMENT_FILE": str(manifest),
            "LEDGER_ARTIFACTS_DIR": str(ARTIFACTS),
            "LEDGER_DOCUMENTS_DIR": str(workdir / "documents"),
            "LEDGER_METRICS_DIR": str(workdir / "metrics"),
            "LEDGER_API_WORKERS": "1",
            "LEDGER_LOG_LEVEL": "WARNING",
        }
        indexes = {n: env | {"LEDGER_DATABASE_URL": f"sqlite:///{workdir / f'index-{n}.sqlite3'}"} for n in trees}
        for name, tree in trees.items():  # each its own index, made by its own code (its own migrations)
            backfill = subprocess.run(
                [sys.executable, "-c", INDEXER, "backfill"],
                env=indexes[name] | {"PYTHONPATH": str(tree)},
                cwd=tree,
                capture_output=True,
                check=False,
            )
            if backfill.returncode != 0:
                raise SetupError(f"ledger-indexer backfill ({name}) failed:\n{backfill.stderr.decode()[-3000:]}")
        rounds: dict[str, dict[str, list[float]]] = {n: {"ready_s": [], "cpu_s": [], "import_s": []} for n in trees}
        for number in range(args.rounds):
            order = ["before", "after"] if number % 2 == 0 else ["after", "before"]
            for name in order:
                ready, cpu = start_once(trees[name], scripts[name], indexes[name])
                rounds[name]["ready_s"].append(ready)
                rounds[name]["cpu_s"].append(cpu)
                rounds[name]["import_s"].append(import_once(trees[name], indexes[name]))
            say(
                f"round {number + 1}: "
                + "; ".join(
                    f"{n} ready {rounds[n]['ready_s'][-1]:.2f} s (cpu {rounds[n]['cpu_s'][-1]:.2f} s), "
                    f"import {rounds[n]['import_s'][-1]:.2f} s"
                    for n in trees
                )
                + f"; load average {os.getloadavg()[0]:.1f}"
            )
    finally:
        anvil.stop()
    medians = {n: {k: statistics.median(v) for k, v in figures.items()} for n, figures in rounds.items()}
    return {
        "baseline_ref": args.baseline_ref,
        "baseline_commit": commit,
        "rounds": rounds,
        "median": medians,
        "ratio": {k: medians["after"][k] / medians["before"][k] for k in medians["after"]},
    }


def report(figures: dict[str, Any]) -> None:
    median, ratio = figures["median"], figures["ratio"]
    say(f"\nbefore: {figures['baseline_ref']} ({figures['baseline_commit'][:10]}); after: this checkout; medians")
    rows = [["figure", "before", "after", "after / before"]]
    for key, label in (
        ("ready_s", "launch to /readyz 200, s"),
        ("cpu_s", "CPU of supervisor + worker until then, s"),
        ("import_s", "import api.main, s"),
    ):
        rows.append([label, f"{median['before'][key]:.2f}", f"{median['after'][key]:.2f}", f"{ratio[key]:.2f}"])
    for line in table(rows, align="lrrr"):
        say(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-ref", default="main", help="the git ref to compare with (default main)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, each measuring both (default 5)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    return run_in_workdir(__file__, lambda workdir: run(workdir, args), keep=args.keep, report=report)


if __name__ == "__main__":
    sys.exit(main())
