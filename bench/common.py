"""What the benchmarks share: setup errors, output (progress lines, tables, the closing JSON line), child
processes, readings from /proc, throwaway PostgreSQL schemas and the local anvil.

Imported as ``common`` by the scripts in bench/ (Python puts a script's own folder first on sys.path).
Standard library at import time, so bench/gas.py can use it from the contract toolchain's venv; psycopg,
SQLAlchemy and the test support's anvil are imported by the functions that need them.

Every benchmark prints its figures as it goes, then a table, then one JSON line with every figure (the
last line of its output, for scripts that collect results). A benchmark exits 0 whatever its figures and
2 with a message when its setup fails (:class:`SetupError`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.chain import Anvil

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


class SetupError(Exception):
    """The benchmark could not run (not a slow result)."""


# ---- output ---------------------------------------------------------------------------------------------


def say(message: str) -> None:
    """One progress line, flushed at once (the benchmarks run for minutes)."""
    print(message, flush=True)


def json_line(figures: dict[str, Any]) -> None:
    """The closing line: every figure as compact JSON."""
    print(json.dumps(figures, separators=(",", ":")), flush=True)


def run_in_workdir(
    script: str, run: Callable[[Path], dict[str, Any]], *, keep: bool, report: Callable[[dict[str, Any]], None]
) -> int:
    """A benchmark's end: ``run`` in a new work directory, its ``report`` and the JSON line; 0, or 2 after a
    :class:`SetupError` (the directory is then kept, as with ``keep``)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{Path(script).stem}-"))
    try:
        figures = run(workdir)
    except SetupError as exc:
        print(f"{script}: setup failed: {exc}", file=sys.stderr)
        print(f"(work directory kept: {workdir})", file=sys.stderr)
        return 2
    report(figures)
    if keep:
        say(f"work directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    json_line(figures)
    return 0


def verdict(ok: bool | None) -> str:
    """A figure against its target: PASS, MISS, or n/a when it was not measured at the target's load."""
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def table(rows: Sequence[Sequence[str]], *, align: str, indent: str = "") -> list[str]:
    """``rows`` (the header first, if any) in columns as wide as their widest cell; ``align`` has one
    letter per column, ``l`` or ``r``. Trailing spaces are cut."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(align))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(width) if side == "r" else cell.ljust(width)
            for cell, width, side in zip(row, widths, align, strict=True)
        ]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by the nearest rank; nan when there are none."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# ---- child processes ------------------------------------------------------------------------------------


def tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log, for a setup error's message."""
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop(process: subprocess.Popen[bytes], *, timeout: float = 15.0) -> None:
    """SIGINT (the services stop cleanly on it), then SIGKILL after ``timeout`` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def console_script(name: str) -> list[str]:
    """The command of one of the project's console scripts (``ledger-indexer``, ``ledger-api``): the one
    beside this interpreter, else the one on PATH."""
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script)]
    found = shutil.which(name)
    if found:
        return [found]
    raise SetupError(f"the {name} console script is not installed (pip install -e . in the venv)")


# ---- CPU and memory of other processes, from /proc (Linux) ----------------------------------------------

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int | str) -> tuple[str, list[str]] | None:
    """(command name, fields after it) of /proc/<pid>/stat; None if the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a live process used so far; nan if unreadable."""
    stat = _stat_fields(pid)
    return float("nan") if stat is None else (int(stat[1][11]) + int(stat[1][12])) / TICK


def postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL server process on this machine, the exited ones included (the
    postmaster's reaped children count in its own cutime/cstime); nan without /proc."""
    proc = Path("/proc")
    if not proc.is_dir():
        return float("nan")
    ticks = 0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat_fields(entry.name)
        if stat is None or not stat[0].startswith("postgres"):
            continue
        ticks += sum(int(x) for x in stat[1][11:15])  # utime stime cutime cstime
    return ticks / TICK


def descendants(pid: int) -> list[int]:
    """The live descendants of ``pid`` (children of every thread, recursively)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            found += kids
            pending += kids
    return found


def pss_mb(pid: int) -> float:
    """Proportional set size of a process in MB (shared pages split between their users); 0 if gone."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class TreeMemory:
    """Samples the summed PSS of a process's descendants every ``every`` seconds; keeps the peak.

    The kernel's peak RSS (wait4) is the largest single process's: with the indexer's forked fetch
    process the two processes' memory is what counts, and their RSS would count shared pages twice.
    """

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.pid = pid
        self.every = every
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-memory", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, sum(pss_mb(p) for p in descendants(self.pid)))
            self._stop.wait(self.every)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mb


# ---- PostgreSQL -----------------------------------------------------------------------------------------


def libpq_dsn(url: str) -> str:
    """The libpq form of an SQLAlchemy URL (psycopg connects with it)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def check_postgres(base: str) -> None:
    """Fails early, with the URL (password hidden) and the way out, when the server is unreachable."""
    import psycopg

    try:
        with psycopg.connect(libpq_dsn(base), connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        raise SetupError(f"PostgreSQL at {_safe(base)} is unreachable: {exc} (or pass --no-postgres)") from None


@contextlib.contextmanager
def pg_schema(base: str) -> Iterator[str]:
    """A URL whose tables live in a fresh schema, dropped afterwards."""
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(libpq_dsn(base), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.Error as exc:
        raise SetupError(f"PostgreSQL at {_safe(base)} is unusable: {exc} (or pass --no-postgres)") from None
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(libpq_dsn(base), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# ---- the chain ------------------------------------------------------------------------------------------


def start_chain() -> Anvil:
    """A fresh anvil on a free port (tests/support/chain.py), once the contracts are known to be compiled."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.support.chain import ARTIFACTS, start_anvil

    if not (ARTIFACTS / "ProvenanceLedger.json").exists() or not (ARTIFACTS / "ReturnsEscrow.json").exists():
        raise SetupError(f"contracts are not compiled ({ARTIFACTS} is incomplete): run scripts/bootstrap.sh")
    try:
        return start_anvil()
    except RuntimeError as exc:
        raise SetupError(f"cannot start anvil: {exc}") from None
