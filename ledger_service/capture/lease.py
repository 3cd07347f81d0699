"""Who runs a capture job, and in which order: the owner and heartbeat of a running job (its lease), and one
account's captures queued in the order they were accepted.

- :func:`owner` names this process (host, pid, a token); :data:`heartbeat` renews, every :data:`HEARTBEAT_S`
  seconds, the heartbeat of every running job this process owns, from :func:`~.jobs.open_job` until the job
  ends. A job whose heartbeat is older than the lease is abandoned (:func:`is_abandoned`): its process died.
- :data:`turns` lets one account's jobs run one at a time, in the order they were opened.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from ledger_service.store import capture_jobs
from ledger_service.store.handle import Store

log = structlog.get_logger(__name__)

HEARTBEAT_S = 5.0
"""How often a process renews the heartbeat of its running jobs (the lease must be several times longer)."""
_owner_of_pid: dict[int, str] = {}


def owner() -> str:
    """This process, as a job's owner: host, pid and a token (a pid reused after a restart is another owner)."""
    pid = os.getpid()
    if pid not in _owner_of_pid:
        _owner_of_pid[pid] = f"{socket.gethostname()[:60]}:{pid}:{secrets.token_hex(4)}"
    return _owner_of_pid[pid]


def reaper() -> str:
    """This process as the owner of a job it took over: not :func:`owner`, so that a job this same process
    still runs (its heartbeat lapsed in a database outage) sees it lost the job."""
    return owner() + "/reaper"


def now_ms() -> int:
    return int(time.time() * 1000)


class Heartbeat:
    """Renews the heartbeat of this process's running jobs, one statement per store, while it has any."""

    def __init__(self) -> None:
        self._jobs: dict[str, Store] = {}
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, store: Store, capture_id: str) -> None:
        with self._guard:
            self._jobs[capture_id] = store
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="capture-heartbeat", daemon=True)
                self._thread.start()

    def discard(self, capture_id: str) -> None:
        with self._guard:
            self._jobs.pop(capture_id, None)

    def _run(self) -> None:
        while True:
            time.sleep(HEARTBEAT_S)
            with self._guard:
                stores = list({id(store): store for store in self._jobs.values()}.values())
                if not stores:
                    self._thread = None
                    return
            for store in stores:
                try:
                    capture_jobs.heartbeat(store, owners=(owner(), reaper()), now=now_ms())
                except Exception as exc:  # the next beat tries again (a missed one only shortens the lease): the
                    # thread must outlive a database outage
                    log.warning("capture heartbeat failed", error=str(exc))


heartbeat = Heartbeat()


def is_abandoned(job: capture_jobs.CaptureJobRow, *, lease_s: float) -> bool:
    """Whether ``job`` is running with no heartbeat of its owner within ``lease_s`` seconds."""
    stale_before = now_ms() - int(lease_s * 1000)
    return job.state == capture_jobs.RUNNING and (job.heartbeat_at is None or job.heartbeat_at < stale_before)


class Turns:
    """Captures of one account run one at a time, in the order their jobs were opened (a client may send the
    next document before the last is captured, and it may need the items the last one commissions)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._queues: dict[str, list[str]] = {}

    def join(self, actor: str, capture_id: str) -> None:
        with self._changed:
            self._queues.setdefault(actor.lower(), []).append(capture_id)

    @contextmanager
    def turn(self, actor: str, capture_id: str) -> Iterator[None]:
        """Waits until every job of the account opened before this one has ended (a job not opened in this
        process joins the queue now)."""
        with self._changed:
            queue = self._queues.setdefault(actor.lower(), [])
            if capture_id not in queue:
                queue.append(capture_id)
            while queue[0] != capture_id:
                self._changed.wait()
        try:
            yield
        finally:
            self.leave(actor, capture_id)

    def leave(self, actor: str, capture_id: str) -> None:
        """Takes the job out of the account's queue (it ended, or its process is gone)."""
        with self._changed:
            queue = self._queues.get(actor.lower(), [])
            if capture_id in queue:
                queue.remove(capture_id)
                self._changed.notify_all()


turns = Turns()
