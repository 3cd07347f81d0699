"""The recursion limit stays the service's (:mod:`ledger_service.recursion`) whatever the service imports."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from ledger_service.recursion import SERVICE_RECURSION_LIMIT

ROOT = Path(__file__).resolve().parents[2]

# In a fresh interpreter: the entry points first (they restore the limit after their own imports), then every
# module of both packages; prints the limit after the entry points and the modules that changed it afterwards.
_WALK = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    import api.main
    import ledger_service.indexer.cli
    after_entry_points = sys.getrecursionlimit()
    changed = []
    for package in ("ledger_service", "api"):
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, package + "."):
            before = sys.getrecursionlimit()
            importlib.import_module(info.name)
            if sys.getrecursionlimit() != before:
                changed.append([info.name, sys.getrecursionlimit()])
    print(json.dumps({"after_entry_points": after_entry_points, "changed": changed, "final": sys.getrecursionlimit()}))
    """
)


def test_no_import_leaves_the_recursion_limit_raised() -> None:
    run = subprocess.run([sys.executable, "-c", _WALK], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["after_entry_points"] == SERVICE_RECURSION_LIMIT
    assert found["changed"] == []
    assert found["final"] == SERVICE_RECURSION_LIMIT


def test_the_indexer_cli_restores_the_limit_before_it_runs() -> None:
    probe = textwrap.dedent(
        """
        import sys
        import py_ecc  # raises the limit
        from ledger_service.indexer import cli
        try:
            cli.main(["--help"])
        except SystemExit:
            pass
        print(sys.getrecursionlimit())
        """
    )
    run = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == str(SERVICE_RECURSION_LIMIT)
