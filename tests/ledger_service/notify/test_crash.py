"""ledger-notify killed with SIGKILL at random moments of a flow, again and again, on both databases: every
notification still reaches the receiver at least once, every copy of one carries the same webhook-id and body,
so a receiver that de-duplicates by the id ends up with exactly the outbox; the kills cut sends in flight (the
receiver saw copies again)."""

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
from ledger_service.settings import DEV_WEBHOOK_SECRETS_KEY
from ledger_service.store import Store
from ledger_service.store.notifications import DELIVERED, deliveries_of, outbox
from tests.ledger_service.notify.receivers import Receiver, receiver
from tests.ledger_service.notify.test_worker import MERCHANT, _returns

NOTIFY = Path(sys.executable).parent / "ledger-notify"
KILLS = 12


def _seen(hook: Receiver) -> int:
    with hook.lock:
        return len(hook.requests)


def _all_delivered(store: Store, endpoint_id: str, count: int) -> bool:
    states = [d.state for d in deliveries_of(store, endpoint_id, limit=10 * count)]
    return len(states) == count and set(states) == {DELIVERED}


@pytest.mark.slow
def test_sigkilled_workers_lose_nothing_and_repeat_the_same_ids(store_url: str) -> None:
    rng = random.Random(20)
    with Store.open(store_url) as store, receiver(delay=0.05) as hook:
        _returns(store, 100)  # 300 notifications: more than the killed workers can send between them
        endpoint = webhooks.register(
            store,
            merchant=MERCHANT,
            url=hook.url,
            event_types=EVENT_TYPES,
            secret=None,
            service_urls=[],
            key=DEV_WEBHOOK_SECRETS_KEY,
        )
        expected = {n.id for n in outbox(store)}
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")} | {
            "LEDGER_DATABASE_URL": store_url,
            "LEDGER_NOTIFY_TIMEOUT_S": "1",
            "LEDGER_NOTIFY_LEASE_S": "2",
            "LEDGER_NOTIFY_CONCURRENCY": "4",
            "LEDGER_NOTIFY_PER_TARGET": "4",
            "LEDGER_NOTIFY_POLL_S": "0.02",
        }
        kills = 0
        for _ in range(KILLS):
            before = _seen(hook)
            worker = subprocess.Popen([str(NOTIFY)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 60
            while _seen(hook) == before:  # wait until it delivers: it is in the middle of the flow
                assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
                assert time.monotonic() < deadline, "ledger-notify delivered nothing for a minute"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.25))  # a random moment of its sending
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            kills += 1
            assert not _all_delivered(store, endpoint.id, len(expected)), "the flow ended before the kills did"
        last = subprocess.Popen([str(NOTIFY)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 120
            while not _all_delivered(store, endpoint.id, len(expected)) and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            last.send_signal(signal.SIGTERM)
            assert last.wait(timeout=30) == 0, last.stderr.read() if last.stderr else ""
        with hook.lock:
            received = [(r.headers["webhook-id"], r.body) for r in hook.requests]
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for msg_id, body in received:
        bodies[msg_id].add(body)
    assert kills == KILLS
    assert set(bodies) == expected  # de-duplicated by webhook-id: exactly the outbox, every one at least once
    assert all(len(copies) == 1 for copies in bodies.values())  # each id always with the same body
    assert len(received) > len(expected)  # sends cut by the kills were sent again, under the same id
    assert _all_delivered(store, endpoint.id, len(expected))
