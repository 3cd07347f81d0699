"""Every module of the service imports on its own, first: a circular import hides while a test imports the
modules in a friendly order, and shows only in the process (or the tool) that imports one of them first.

A fresh interpreter imports only third-party packages, then forks a child per module that imports it: each
child starts from none of our modules, at the cost of a fork rather than a new interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECK = r"""
import ast, importlib, json, os, pathlib, sys, traceback
PACKAGES = ("ledger_service", "api", "web")
modules = []
for package in PACKAGES:  # from the files: pkgutil.walk_packages would import the packages it walks
    for path in sorted(pathlib.Path(package).rglob("*.py")):
        parts = path.with_suffix("").parts
        if "migrations" not in parts:  # alembic's scripts run inside alembic, not as imports
            modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
# every third-party module they name, imported once here rather than in each child
named = set()
for name in modules:
    path = pathlib.Path(*name.split("."))
    source = path.with_suffix(".py") if path.with_suffix(".py").is_file() else path / "__init__.py"
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            named.add(node.module)
for third_party in sorted(n for n in named if n.split(".")[0] not in PACKAGES):
    try:
        importlib.import_module(third_party)
    except Exception:
        pass  # an optional one, or one only a child's import reaches: the child tells
assert not [m for m in sys.modules if m.split(".")[0] in PACKAGES]
failed = {}
for name in sorted(modules):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        code = 0
        try:
            importlib.import_module(name)
        except BaseException:
            os.write(write, traceback.format_exc().encode())
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        output = pipe.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        failed[name] = output or f"exit status {status}"
print(json.dumps({"modules": sorted(modules), "failed": failed}))
"""


def test_every_module_imports_on_its_own() -> None:
    done = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"api.limits", "web.app", "ledger_service.store.handle"} <= set(answer["modules"])
    failed: dict[str, str] = answer["failed"]
    assert not failed, "\n\n".join(f"{name}:\n{error}" for name, error in failed.items())
