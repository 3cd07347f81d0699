"""ledger-notify's worker against real HTTP receivers, a real SMTP server (aiosmtpd) and both databases: signed
deliveries, the same id on every retry, backoff then dead letters and replay, a slow receiver that does not
starve the others, e-mail in the consumer's language, and two workers sharing a PostgreSQL outbox."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from email.header import decode_header, make_header
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from standardwebhooks.webhooks import Webhook

from ledger_service.core.codes import BizStep, Disposition, ReturnState
from ledger_service.core.notifications import EVENT_TYPES, RETURN_IN_TRANSIT, notification_id
from ledger_service.notify import webhooks
from ledger_service.notify.worker import Worker, next_attempt
from ledger_service.settings import DEV_WEBHOOK_SECRETS_KEY, Settings
from ledger_service.store import Store
from ledger_service.store.notifications import DEAD, DELIVERED, WebhookEndpoint, deliveries_of, outbox, set_contact
from tests.ledger_service.notify.receivers import receiver, run_worker, smtp_sink
from tests.ledger_service.store.builders import DAY, ChainBuilder, addr
from tests.support.threads import together

MERCHANT = addr(2)
SERVICE = ["http://127.0.0.1:8000"]


def _settings(**overrides: Any) -> Settings:
    base = {"notify_backoff_base_s": 1.0, "notify_retry_for_s": 100, "notify_poll_s": 0.01, "notify_timeout_s": 5.0}
    return Settings(**(base | overrides))


def _returns(store: Store, count: int) -> tuple[str, list[str]]:
    """``count`` returns, each authorized then scanned in transit: 3 notifications each (approved, label ready,
    in transit). Returns the last item and the return ids."""
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)
    rids = []
    for n in range(count):
        item = chain.register(f"urn:epc:id:sgtin:0614141.107346.{n}")
        sale = chain.sale(item)
        chain.record(item, BizStep.ARRIVING, Disposition.RETAIL_SOLD)
        rids.append(chain.authorize(item, sale))
    chain.next_block(seconds=DAY)
    for rid in rids:
        chain.transition(rid, ReturnState.IN_TRANSIT, ReturnState.AUTHORIZED, deadline=chain.time + DAY)
    store.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
    return item, rids


class Clock:
    def __init__(self, now: float = 1_800_000_000) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _drive(worker: Worker, turns: int = 50) -> None:
    run_worker(worker, turns)


def _register(store: Store, url: str, types: tuple[str, ...] = EVENT_TYPES) -> WebhookEndpoint:
    return webhooks.register(
        store,
        merchant=MERCHANT,
        url=url,
        event_types=types,
        secret=None,
        service_urls=SERVICE,
        key=DEV_WEBHOOK_SECRETS_KEY,
    )


def test_a_delivery_is_signed_per_standard_webhooks_with_the_notification_id(store: Store) -> None:
    _, rids = _returns(store, 1)
    with receiver() as hook:
        endpoint = _register(store, hook.url, (RETURN_IN_TRANSIT,))
        _drive(Worker(store, _settings()), turns=5)
    (got,) = hook.requests
    assert got.headers["webhook-id"] == notification_id(RETURN_IN_TRANSIT, rids[0])
    payload = Webhook(endpoint.secret).verify(got.body, got.headers)
    assert payload["type"] == RETURN_IN_TRANSIT
    assert payload["data"]["return_id"] == rids[0] and payload["data"]["state"] == "in_transit"
    with pytest.raises(Exception, match="signature"):
        Webhook(webhooks.new_secret()).verify(got.body, got.headers)
    assert [d.state for d in deliveries_of(store, endpoint.id)] == [DELIVERED]


def test_a_failing_receiver_is_retried_with_the_same_id_then_dead_lettered_and_replayed(store: Store) -> None:
    _, rids = _returns(store, 1)
    clock = Clock()
    worker = Worker(store, _settings(notify_retry_for_s=60), clock=clock)
    with receiver(status=500) as down, receiver() as up:
        bad = _register(store, down.url, (RETURN_IN_TRANSIT,))
        good = _register(store, up.url, (RETURN_IN_TRANSIT,))
        for _ in range(12):  # the clock jumps past each backoff: 1, 2, 4, 8, 16, 32 s, then the window ends
            _drive_once(worker)
            clock.now += 40
        assert len(up.requests) == 1
        assert len(down.requests) >= 3 and set(down.ids()) == {notification_id(RETURN_IN_TRANSIT, rids[0])}
        (dead,) = deliveries_of(store, bad.id)
        assert dead.state == DEAD and dead.last_status == 500 and dead.attempts == len(down.requests)
        down.status = 204
        assert webhooks.replay_deliveries(store, bad.id, retry_for_s=60, delivery_id=None) == 1
        _drive_once(worker)
        assert deliveries_of(store, bad.id)[0].state == DELIVERED
        assert down.ids()[-1] == down.ids()[0]  # the replay carries the same webhook-id
    assert [d.state for d in deliveries_of(store, good.id)] == [DELIVERED]


def _drive_once(worker: Worker) -> None:
    async def go() -> None:
        await worker.turn()
        await worker.drain()
        await worker.close()

    asyncio.run(go())


def test_backoff_doubles_up_to_the_cap_and_stops_at_the_window() -> None:
    delays = [next_attempt(attempts=n, now=0, retry_until=10**6, base=5, cap=60) for n in range(1, 8)]
    assert [d is not None and d <= cap for d, cap in zip(delays, [5, 10, 20, 40, 60, 60, 60], strict=True)]
    assert all(d is not None and d >= 0.8 * cap - 1 for d, cap in zip(delays, [5, 10, 20, 40, 60, 60, 60], strict=True))
    assert next_attempt(attempts=3, now=100, retry_until=105, base=5, cap=60) == 105  # the last one at the end
    assert next_attempt(attempts=3, now=105, retry_until=105, base=5, cap=60) is None


def test_a_slow_receiver_does_not_starve_a_healthy_one(store: Store) -> None:
    _returns(store, 12)
    with receiver(delay=1.0) as slow, receiver() as fast:
        _register(store, slow.url)
        fast_endpoint = _register(store, fast.url)
        worker = Worker(store, _settings(notify_per_target=2, notify_concurrency=8))

        async def go() -> int:
            turns = 0
            while len(fast.requests) < 36 and turns < 500:
                await worker.turn(wait=0.01)
                turns += 1
            in_flight = sum(1 for d in worker.in_flight() if d.target != fast_endpoint.id)
            worker.abandon()
            await worker.close()
            return in_flight

        in_flight = asyncio.run(go())
    assert len(fast.requests) == 36  # 12 returns x (approved, label ready, in transit)
    assert len(slow.requests) < 36 and in_flight <= 2  # the slow one had its two slots, no more


@pytest.fixture
def smtp() -> Iterator[tuple[int, list[EmailMessage]]]:
    with smtp_sink() as sink:
        yield sink


def test_the_consumer_gets_e_mails_in_their_language(store: Store, smtp: tuple[int, list[EmailMessage]]) -> None:
    port, received = smtp
    item, rids = _returns(store, 1)
    set_contact(store, item_id=item, sale_seq=1, email="buyer@example.com", lang="zh", now=0)
    _drive(Worker(store, _settings(smtp_host="127.0.0.1", smtp_port=port)), turns=5)
    subjects = [str(make_header(decode_header(m["Subject"]))) for m in received]
    assert sorted(subjects) == sorted(["您的退货已获批准", "您的退货标签已可打印", "您的退货正在运输途中"])
    message = received[0]
    assert message["To"] == "buyer@example.com"
    kinds = [part.get_content_type() for part in message.walk() if not part.is_multipart()]
    assert kinds == ["text/plain", "text/html"]
    text = next(p for p in message.walk() if p.get_content_type() == "text/plain").get_payload(decode=True)
    assert isinstance(text, bytes)
    assert rids[0] in text.decode()


@pytest.mark.postgres
def test_two_workers_share_a_postgresql_outbox_without_sending_twice(make_store_url: Any, store_backend: str) -> None:
    if store_backend != "postgres":
        pytest.skip("several workers share an outbox on PostgreSQL only (SQLite: one worker, a lock)")
    url = make_store_url()
    with Store.open(url) as store, receiver() as hook:
        _returns(store, 40)
        _register(store, hook.url)
        expected = {n.id for n in outbox(store)}

        def work(_: int) -> None:
            with Store.open(url) as own:
                _drive(Worker(own, _settings(notify_concurrency=16)), turns=60)

        results = together(2, work)
    assert [r for r in results if isinstance(r, BaseException)] == []
    ids = hook.ids()
    assert len(ids) == len(expected) == 120 and set(ids) == expected  # each exactly once


def test_payload_is_the_specification_shape(store: Store) -> None:
    _returns(store, 1)
    (first, *_) = outbox(store)
    body = json.loads(webhooks.render(first))
    assert set(body) == {"type", "timestamp", "data"} and body["timestamp"].endswith("Z")


def test_a_refused_e_mail_is_retried_and_its_error_does_not_name_the_address(store: Store) -> None:
    item, _ = _returns(store, 1)
    set_contact(store, item_id=item, sale_seq=1, email="gone@example.com", lang="en", now=0)

    class Refusing:
        async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
            return "550 5.1.1 mailbox unavailable"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Refusing(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        _drive(Worker(store, _settings(smtp_host="127.0.0.1", smtp_port=port)), turns=3)
    finally:
        controller.stop()
    failed = deliveries_of(store, "email")
    assert len(failed) == 3 and all(d.state == "pending" and d.attempts >= 1 for d in failed)
    assert all(d.last_error and "gone@" not in d.last_error and "SMTP" in d.last_error for d in failed)
