"""``ledger-api`` as a real process, for tests of what only a served API shows: worker processes, the
supervisor that replaces them, the HTTP server's own limits and proxy headers.

:func:`serve` starts ``api.serving:main`` on a free port against an :class:`~tests.api.conftest.ApiEnv`'s chain,
database and documents (:func:`serve_with`: against given ``LEDGER_*`` variables), with extra ``LEDGER_*``
settings, and stops it (SIGTERM, then SIGKILL) afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import ApiEnv
from tests.support.chain import free_port

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90.0


@dataclass
class Served:
    """A running ``ledger-api``: its base URL and its (supervisor) process."""

    url: str
    process: subprocess.Popen[bytes]

    def alive(self) -> bool:
        return self.process.poll() is None


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/openapi.json", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def serve(env: ApiEnv, **settings: str) -> Iterator[Served]:
    """``ledger-api`` serving ``env`` with ``settings`` (e.g. ``API_WORKERS="2"`` for LEDGER_API_WORKERS), once
    it answers."""
    with serve_with(env.ledger_variables(), **settings) as served:
        yield served


@contextmanager
def serve_with(ledger: dict[str, str], **settings: str) -> Iterator[Served]:
    """``ledger-api`` with the ``LEDGER_*`` variables ``ledger`` (chain, index, documents) and ``settings``."""
    port = free_port()
    variables = {
        **os.environ,
        **ledger,
        "LEDGER_API_HOST": "127.0.0.1",
        "LEDGER_API_PORT": str(port),
        "LEDGER_API_WORKERS": "1",
        "LEDGER_LOG_LEVEL": "WARNING",
        **{f"LEDGER_{name}": value for name, value in settings.items()},
    }
    # its log in a file, not a pipe: a pipe nobody reads fills up in a long test and then blocks the server
    errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed in the finally below)
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from api.serving import main; sys.exit(main())"],
        cwd=ROOT,
        env=variables,
        stdout=subprocess.DEVNULL,
        stderr=errors,
        start_new_session=True,  # its workers can be stopped with it, as a group
    )
    served = Served(url=f"http://127.0.0.1:{port}", process=process)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(served.url):
            if process.poll() is not None:
                errors.seek(0)
                pytest.fail(f"ledger-api exited: {errors.read().decode(errors='replace')}")
            if time.monotonic() > deadline:
                pytest.fail(f"ledger-api did not answer within {START_TIMEOUT_S:g} s")
            time.sleep(0.2)
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        with contextlib.suppress(ProcessLookupError):  # a worker the supervisor left behind (none should be)
            os.killpg(process.pid, signal.SIGKILL)
        errors.close()
