"""ledger-notify killed with SIGKILL at random moments, again and again: every notification still reaches the
receiver at least once, and every copy of one carries the same webhook-id and body (receivers de-duplicate
by the id)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from ledger_service.core.notifications import EVENT_TYPES
from ledger_service.notify import webhooks
from ledger_service.store import Store
from ledger_service.store.notifications import DELIVERED, deliveries_of, outbox
from tests.ledger_service.notify.receivers import receiver
from tests.ledger_service.notify.test_worker import MERCHANT, _returns

NOTIFY = Path(sys.executable).parent / "ledger-notify"
KILLS = 12


@pytest.mark.slow
def test_sigkilled_workers_lose_nothing_and_repeat_the_same_ids(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    rng = random.Random(20)
    with Store.open(url) as store, receiver(delay=0.02) as hook:
        _returns(store, 30)  # 90 notifications
        endpoint = webhooks.register(
            store, merchant=MERCHANT, url=hook.url, event_types=EVENT_TYPES, secret=None, service_urls=[]
        )
        expected = {n.id for n in outbox(store)}
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")} | {
            "LEDGER_DATABASE_URL": url,
            "LEDGER_NOTIFY_TIMEOUT_S": "1",
            "LEDGER_NOTIFY_LEASE_S": "2",
            "LEDGER_NOTIFY_CONCURRENCY": "4",
            "LEDGER_NOTIFY_PER_TARGET": "4",
            "LEDGER_NOTIFY_POLL_S": "0.02",
        }
        for _ in range(KILLS):
            worker = subprocess.Popen([str(NOTIFY)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.3, 1.2))  # start-up takes ~0.5 s: some die before sending, some mid-flight
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        with hook.lock:
            before_last = len(hook.requests)
        last = subprocess.Popen([str(NOTIFY)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        lock = tmp_path / "index.sqlite3.notify.lock"
        try:
            deadline = time.monotonic() + 60
            while lock.read_text().strip() != str(last.pid) and time.monotonic() < deadline:
                time.sleep(0.05)  # started (its lock taken): a SIGTERM from now on is a clean stop
            while time.monotonic() < deadline:
                states = [d.state for d in deliveries_of(store, endpoint.id, limit=1000)]
                if len(states) == len(expected) and set(states) == {DELIVERED}:
                    break
                time.sleep(0.2)
        finally:
            last.send_signal(signal.SIGTERM)
            assert last.wait(timeout=30) == 0, last.stderr.read() if last.stderr else ""
        bodies: dict[str, set[bytes]] = defaultdict(set)
        with hook.lock:
            for request in hook.requests:
                bodies[request.headers["webhook-id"]].add(request.body)
    assert before_last > 0  # the killed workers were delivering when they were cut off
    assert set(bodies) == expected  # every notification at least once, nothing else
    assert all(len(copies) == 1 for copies in bodies.values())  # each id always with the same body
    assert sorted(set(states)) == [DELIVERED] and len(states) == len(expected)
