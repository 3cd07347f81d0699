"""A receiver that is down for an hour gets everything when it is back, and one down for longer than the retry
window has everything dead-lettered, visible and replayable; its backlog never holds up a healthy receiver.

Simulated time: the worker's clock is injected and moved to the next attempt's due time, so an hour (or a day)
of retries runs in seconds; the receivers are real HTTP servers, the one that is down a closed port of
127.0.0.1 (connections refused), brought back by listening on that same port."""

from __future__ import annotations

import asyncio

from ledger_service.core.notifications import EVENT_TYPES
from ledger_service.notify import webhooks
from ledger_service.notify.worker import Worker
from ledger_service.store import Store
from ledger_service.store.notifications import DEAD, DELIVERED, PENDING, Outcome, claim_due, deliveries_of, outbox
from tests.ledger_service.notify.receivers import closed_port, receiver
from tests.ledger_service.notify.test_worker import Clock, _register, _returns, _settings

HOUR, DAY = 3600, 86_400


def _step(worker: Worker) -> None:
    """One round of the worker: claim what is due at its clock, send it, record the outcomes."""

    async def go() -> None:
        await worker.turn()
        await worker.drain()
        await worker.close()

    asyncio.run(go())


def _next_due(store: Store, target: str) -> int | None:
    due = [d.next_attempt_at for d in deliveries_of(store, target, state=PENDING, limit=10_000)]
    return min(due) if due else None


def _run_until(worker: Worker, clock: Clock, store: Store, target: str, *, until: float) -> None:
    """Runs the worker, its clock jumping to each next attempt of ``target``, until none is pending or the
    clock reaches ``until``."""
    while clock.now < until:
        _step(worker)
        due = _next_due(store, target)
        if due is None:
            return
        clock.now = max(clock.now + 1, min(due, until))


def test_a_receiver_down_for_an_hour_gets_every_delivery_with_its_id_when_it_is_back(store: Store) -> None:
    _returns(store, 10)
    expected = {n.id for n in outbox(store)}
    clock = Clock()
    start = clock.now
    worker = Worker(store, _settings(notify_retry_for_s=DAY, notify_backoff_base_s=5.0), clock=clock)
    port = closed_port()
    down = _register(store, f"http://127.0.0.1:{port}/hook")
    with receiver() as up:
        healthy = _register(store, up.url)
        _run_until(worker, clock, store, down.id, until=start + HOUR)
        assert set(up.ids()) == expected  # the healthy one had everything at once, the outage aside
        assert {d.state for d in deliveries_of(store, healthy.id)} == {DELIVERED}
    waiting = deliveries_of(store, down.id)
    assert {d.state for d in waiting} == {PENDING} and min(d.attempts for d in waiting) >= 5
    assert all("ClientConnector" in (d.last_error or "") for d in waiting)  # refused, not an HTTP answer
    with receiver(port=port) as back:
        _run_until(worker, clock, store, down.id, until=start + DAY)
        ids = back.ids()
    assert clock.now < start + DAY  # within the retry window
    assert set(ids) == expected and len(ids) == len(expected)  # everything, each once, with its webhook-id
    assert {d.state for d in deliveries_of(store, down.id)} == {DELIVERED}


def test_after_the_retry_window_deliveries_are_dead_visible_and_replayable(store: Store) -> None:
    _returns(store, 4)
    expected = {n.id for n in outbox(store)}
    clock = Clock()
    start = clock.now
    worker = Worker(store, _settings(notify_retry_for_s=DAY, notify_backoff_base_s=5.0), clock=clock)
    port = closed_port()
    down = _register(store, f"http://127.0.0.1:{port}/hook")
    _run_until(worker, clock, store, down.id, until=start + DAY + HOUR)
    dead = webhooks.deliveries(store, down.id, state=DEAD, limit=100)  # what GET .../deliveries?state=dead lists
    assert {d.notification_id for d in dead} == expected
    assert all(d.finished_at is not None and start + DAY <= d.finished_at < start + DAY + HOUR for d in dead)
    assert clock.now - start > DAY
    with receiver(port=port) as back:
        replayed = webhooks.replay_deliveries(store, down.id, retry_for_s=DAY, delivery_id=None)
        _run_until(worker, clock, store, down.id, until=clock.now + HOUR)  # due now (real time: in the past)
        ids = back.ids()
    assert replayed == len(expected)
    assert set(ids) == expected and len(ids) == len(expected)
    assert {d.state for d in deliveries_of(store, down.id)} == {DELIVERED}


def test_a_backlog_due_first_does_not_starve_another_target_in_the_claim(store: Store) -> None:
    _returns(store, 12)  # 36 notifications to each endpoint
    clock = Clock()
    worker = Worker(store, _settings(), clock=clock)
    backlog = _register(store, "http://127.0.0.1:9/backlog", EVENT_TYPES)
    other = _register(store, "http://127.0.0.1:9/other", EVENT_TYPES)
    _step(worker)  # dispatch (the sends to port 9 fail, whatever they do)
    now = int(clock.now) + 100
    leased = claim_due(store, now=now, limit=1000, per_target=1000, lease_s=10)
    # the backlog's retries are due before the other target's: they fill the oldest rows
    retry = [Outcome(d.id, False, 500, "HTTP 500", now + (5 if d.target == backlog.id else 10)) for d in leased]
    claim_due(store, now=now, limit=0, per_target=1, lease_s=10, outcomes=retry)
    taken = claim_due(store, now=now + 10, limit=4, per_target=2, lease_s=10)
    assert sorted(d.target for d in taken) == sorted([backlog.id, backlog.id, other.id, other.id])
