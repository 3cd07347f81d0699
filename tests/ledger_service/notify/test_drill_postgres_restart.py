"""Drill: PostgreSQL restarted while ``ledger-notify``'s loop delivers. The worker (its production loop,
:meth:`Worker.run`) waits the database out and delivers every notification, none lost; the restart is every
backend of its connections terminated (see :func:`tests.support.db.terminate_backends`)."""

from __future__ import annotations

import asyncio
import threading
import uuid

from ledger_service.notify.worker import Worker
from ledger_service.store import Store
from ledger_service.store.notifications import DELIVERED, deliveries_of, outbox
from tests.api.drills import until
from tests.ledger_service.notify.receivers import receiver
from tests.ledger_service.notify.test_worker import _register, _returns, _settings
from tests.support.db import terminate_backends, with_application_name


def test_a_postgres_restart_mid_delivery_loses_nothing_and_the_worker_goes_on(pg_url: str) -> None:
    name = f"drill_{uuid.uuid4().hex[:12]}"
    store = Store.open(with_application_name(pg_url, name))
    try:
        _returns(store, 12)
        expected = {n.id for n in outbox(store)}
        stop = asyncio.Event()
        loop = asyncio.new_event_loop()
        with receiver(delay=0.05) as hook:
            endpoint = _register(store, hook.url)
            worker = Worker(store, _settings(notify_concurrency=4, notify_retry_for_s=3600))
            thread = threading.Thread(target=lambda: loop.run_until_complete(worker.run(stop)), daemon=True)
            thread.start()
            try:
                until("some deliveries", lambda: len(hook.ids()) >= 4)
                assert len(set(hook.ids())) < len(expected)  # still delivering when the database goes
                assert terminate_backends(name) >= 1
                until("every delivery", lambda: set(hook.ids()) == expected, timeout=120)
                until(
                    "every delivery recorded",
                    lambda: {d.state for d in deliveries_of(store, endpoint.id, limit=1000)} == {DELIVERED},
                )
                assert thread.is_alive()  # the same loop went on
            finally:
                loop.call_soon_threadsafe(stop.set)
                thread.join(timeout=60)
                loop.close()
    finally:
        store.close()
