"""The API (``api.main:asgi``, one uvicorn worker) under cProfile in every thread, for bench/api_eligibility.py.

    python bench/_api_eligibility_serve.py --port PORT --out PROFILE.json

Every thread the server starts (the thread-pool workers that run the sync
routes and dependencies) gets its own ``cProfile.Profile`` from its first
Python call (``threading.setprofile``); the main thread (the event loop, HTTP
parsing, FastAPI's request handling) from the SIGUSR1 the load generator
sends when its warm-up ends. On SIGINT uvicorn stops, the profiles are
merged and the functions with the largest cumulative and own time are
written, per request (requests = calls of the eligibility route). A
deterministic profiler slows pure-Python code more than C calls (SQLite),
so the shares, not the absolute times, are the figures to read.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROUTE = ("api/routers/items.py", "eligibility_body")
IDLE = (
    "<method 'acquire' of '_thread.lock' objects>",
    "<method 'poll' of 'select.epoll' objects>",
    "select (selectors.py",
    "get (queue.py",
    "wait (threading.py",
)
"""A thread waiting for work: not time a request costs."""
OUTER = ("_bootstrap", "run (threading.py", "<method 'run' of", "run_forever", "_run_once", "_run (events.py")
"""Frames around everything a thread does."""


def _short(filename: str) -> str:
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1]
    if filename.startswith(str(ROOT)):
        return str(Path(filename).relative_to(ROOT))
    return Path(filename).name


class Profiles:
    """One cProfile.Profile per thread, merged at the end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._profiles: list[cProfile.Profile] = []

    def _new(self) -> cProfile.Profile:
        profile = cProfile.Profile()
        with self._lock:
            self._profiles.append(profile)
        return profile

    def thread_hook(self, _frame: FrameType, _event: str, _arg: Any) -> None:
        """threading.setprofile hook: replaces itself by a new profiler in the calling thread."""
        sys.setprofile(None)
        self._new().enable()

    def start_main(self) -> None:
        self._new().enable()

    def report(self, dump: Path | None = None) -> dict[str, Any]:
        with self._lock:
            profiles = list(self._profiles)
        for profile in profiles:
            profile.disable()
        profiles = [p for p in profiles if p.getstats()]
        if not profiles:
            return {"requests": 0, "lines": ["(no profile: no request was served)"]}
        stats = pstats.Stats(profiles[0])
        for profile in profiles[1:]:
            stats.add(profile)
        if dump is not None:
            stats.dump_stats(str(dump))
        table: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
        requests = max(
            (
                cc
                for (file, _line, name), (cc, _nc, _tt, _ct, _callers) in table.items()
                if (_short(file), name) == ROUTE
            ),
            default=0,
        )
        per = max(requests, 1)
        rows = [
            (f"{name} ({_short(file)}:{line})", nc / per, tt * 1000 / per, ct * 1000 / per)
            for (file, line, name), (_cc, nc, tt, ct, _callers) in table.items()
        ]
        idle = [r for r in rows if any(w in r[0] for w in IDLE)]
        busy = [r for r in rows if not any(w in r[0] for w in IDLE)]
        total_self = sum(r[2] for r in busy)
        lines = [
            f"{requests:,} requests profiled; own time of every function (threads waiting for work left out): "
            f"{total_self:.3f} ms per request (idle waits: {sum(r[2] for r in idle):.3f} ms)",
            "largest cumulative time per request (ms/request; calls/request, a coroutine counts each resumption):",
        ]
        cumulative = [r for r in sorted(busy, key=lambda r: -r[3]) if not any(s in r[0] for s in OUTER)]
        lines += [f"  {ct:7.3f} ms  {calls:6.1f}x  {name}" for name, calls, _tt, ct in cumulative[:30]]
        lines.append("largest own time per request:")
        lines += [
            f"  {tt:7.3f} ms  {calls:6.1f}x  {name}" for name, calls, tt, _ct in sorted(busy, key=lambda r: -r[2])[:20]
        ]
        return {"requests": requests, "ms_per_request": round(total_self, 3), "lines": lines}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import uvicorn

    profiles = Profiles()
    started = time.perf_counter()
    signal.signal(signal.SIGUSR1, lambda _signum, _frame: profiles.start_main())
    threading.setprofile(profiles.thread_hook)
    try:
        uvicorn.run("api.main:asgi", host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    finally:
        threading.setprofile(None)
        report = profiles.report(dump=args.out.with_suffix(".prof"))
        report["threads"] = len(profiles._profiles)
        report["seconds"] = round(time.perf_counter() - started, 1)
        args.out.write_text(json.dumps(report))


if __name__ == "__main__":
    main()
