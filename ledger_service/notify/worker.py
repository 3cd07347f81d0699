"""The delivery loop of ``ledger-notify``: outbox -> deliveries -> receivers, with retries and dead letters.

One asyncio loop per process. Each turn: the return-window scan when it is due, :func:`dispatch` of new outbox
rows, then as many due deliveries as there are free slots (at most ``per_target`` in flight per target, so a
receiver that is slow or down holds only its own slots), each sent as its own task. A turn does not wait for a
slow receiver: it waits for the first task to finish or for the poll interval, records what finished and goes
on. The database calls run in a worker thread (they are short), the sends on the loop.

Retries: after a failed attempt ``n`` (1, 2, ...) the next is due ``backoff_base * 2**(n-1)`` seconds later
(at most ``backoff_cap``, and never after the delivery's retry window, whose last attempt is at its end); a
failure at or after the end dead-letters it. A claim leases a delivery for longer than a request can take, so
a worker that dies mid-send leaves it due again at the lease's end: at least once, same id, same body.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

from ledger_service.core.notifications import EVENT_TYPES, RETURN_REQUESTED
from ledger_service.notify.email import Mailer, compose
from ledger_service.notify.webhooks import render, sign
from ledger_service.settings import Settings
from ledger_service.store import Store
from ledger_service.store.notifications import (
    EMAIL_TARGET,
    Delivery,
    Outcome,
    WebhookEndpoint,
    claim_due,
    contact_of,
    dispatch,
    endpoint_by_id,
    record_outcomes,
    scan_return_windows,
)

log = structlog.get_logger(__name__)

EMAIL_TYPES = frozenset(EVENT_TYPES) - {RETURN_REQUESTED}
"""What the consumer is told by e-mail (every type but the request's receipt, which they see at once)."""

ERROR_TEXT = 300
"""Characters of a receiver's error kept with the delivery."""


@dataclass
class Stats:
    """What a worker did since it started."""

    dispatched: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    turns: int = 0
    by_target: Counter[str] = field(default_factory=Counter)


def next_attempt(*, attempts: int, now: int, retry_until: int, base: float, cap: float) -> int | None:
    """When to try again after the ``attempts``-th failure at ``now``, or None: dead-letter it."""
    if now >= retry_until:
        return None
    delay: float = min(base * 2.0 ** (attempts - 1), cap)
    delay *= random.uniform(0.8, 1.0)  # noqa: S311 - spreading retries, not a secret
    return min(now + max(1, round(delay)), retry_until)


class Worker:
    """Delivers the outbox of ``store``; :meth:`run` until ``stop`` is set (or :meth:`turn` step by step)."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.client = client or httpx.AsyncClient(
            timeout=settings.notify_timeout_s,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=settings.notify_concurrency, max_keepalive_connections=256),
        )
        self.mailer = Mailer(settings) if settings.smtp_host else None
        self.email_types = EMAIL_TYPES if self.mailer is not None else frozenset()
        self.lease_s = settings.notify_lease_s
        self.stats = Stats()
        self._tasks: dict[asyncio.Task[Outcome], Delivery] = {}
        self._endpoints: dict[str, WebhookEndpoint | None] = {}
        self._next_scan = 0.0

    async def run(self, stop: asyncio.Event) -> Stats:
        try:
            while not stop.is_set():
                await self.turn(wait=self.settings.notify_poll_s, stop=stop)
            await self.drain()
        finally:
            await self.client.aclose()
        return self.stats

    async def turn(self, *, wait: float = 0.0, stop: asyncio.Event | None = None) -> int:
        """One round: scan, dispatch, claim and start sends, then wait up to ``wait`` seconds for sends to finish
        and record them. Returns the deliveries started."""
        s = self.settings
        now = self.clock()
        if now >= self._next_scan:
            self._next_scan = now + s.notify_window_scan_s
            notice = s.notify_window_notice_days * 86_400
            await asyncio.to_thread(scan_return_windows, self.store, now=int(now), notice_s=notice)
        self.stats.dispatched += await asyncio.to_thread(
            dispatch,
            self.store,
            now=int(now),
            retry_for_s=s.notify_retry_for_s,
            render=render,
            email_types=self.email_types,
        )
        started = 0
        free = s.notify_concurrency - len(self._tasks)
        if free > 0:
            busy = Counter(d.target for d in self._tasks.values())
            claimed = await asyncio.to_thread(
                claim_due,
                self.store,
                now=int(now),
                limit=free,
                per_target=s.notify_per_target,
                lease_s=self.lease_s,
                busy=busy,
            )
            for delivery in claimed:
                self._tasks[asyncio.create_task(self._attempt(delivery))] = delivery
            started = len(claimed)
        self.stats.turns += 1
        if self._tasks:
            waiter: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())] if stop is not None else []
            done, _ = await asyncio.wait(
                [*self._tasks, *waiter], timeout=wait if not started else 0.0, return_when=asyncio.FIRST_COMPLETED
            )
            for w in waiter:
                w.cancel()
            await self._record([t for t in self._tasks if t in done])
        elif not started and wait:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait) if stop is not None else await asyncio.sleep(wait)
        return started

    def in_flight(self) -> list[Delivery]:
        """The deliveries being sent now."""
        return list(self._tasks.values())

    def abandon(self) -> None:
        """Cancels the sends in flight without recording them: their leases make them due again later."""
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()

    async def drain(self) -> None:
        """Waits for every send in flight and records it."""
        if self._tasks:
            done, _ = await asyncio.wait(list(self._tasks))
            await self._record(list(done))

    async def _record(self, done: list[asyncio.Task[Outcome]]) -> None:
        outcomes = []
        for task in done:
            delivery = self._tasks.pop(task)
            outcome = task.result()
            outcomes.append(outcome)
            self.stats.by_target[delivery.target] += 1
            if outcome.ok:
                self.stats.delivered += 1
            elif outcome.next_attempt_at is None:
                self.stats.dead += 1
                log.warning("delivery dead-lettered", delivery=delivery.id, target=delivery.target, error=outcome.error)
            else:
                self.stats.failed += 1
        if outcomes:
            await asyncio.to_thread(record_outcomes, self.store, outcomes, now=int(self.clock()))

    async def _attempt(self, delivery: Delivery) -> Outcome:
        status: int | None = None
        try:
            if delivery.target == EMAIL_TARGET:
                error = await self._email(delivery)
            else:
                status, error = await self._post(delivery)
        except Exception as exc:  # a receiver's failure of any kind is a failed attempt, never a dead worker
            # an SMTP error's text may name the recipient: keep only its kind (and code) for e-mail
            code = getattr(exc, "smtp_code", None)
            error = (
                f"{type(exc).__name__}" + (f" {code}" if code else "")
                if delivery.target == EMAIL_TARGET
                else f"{type(exc).__name__}: {exc}"[:ERROR_TEXT]
            )
        if error is None:
            return Outcome(delivery.id, True, status, None, None)
        s = self.settings
        retry = next_attempt(
            attempts=delivery.attempts + 1,
            now=int(self.clock()),
            retry_until=delivery.retry_until,
            base=s.notify_backoff_base_s,
            cap=s.notify_backoff_cap_s,
        )
        return Outcome(delivery.id, False, status, error, retry)

    async def _endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        if endpoint_id not in self._endpoints:  # an endpoint's URL and secret never change; deletion is checked
            self._endpoints[endpoint_id] = await asyncio.to_thread(endpoint_by_id, self.store, endpoint_id)
        return self._endpoints[endpoint_id]

    async def _post(self, delivery: Delivery) -> tuple[int | None, str | None]:
        endpoint = await self._endpoint(delivery.target)
        if endpoint is None:
            return None, "the endpoint no longer exists"
        headers = sign(
            secret=endpoint.secret, msg_id=delivery.notification_id, body=delivery.body, now=int(self.clock())
        )
        try:
            answer = await self.client.post(endpoint.url, content=delivery.body.encode(), headers=headers)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:ERROR_TEXT] or type(exc).__name__
        if 200 <= answer.status_code < 300:
            return answer.status_code, None
        return answer.status_code, f"HTTP {answer.status_code}"

    async def _email(self, delivery: Delivery) -> str | None:
        contact = await asyncio.to_thread(contact_of, self.store, item_id=delivery.item_id, sale_seq=delivery.sale_seq)
        if contact is None or self.mailer is None:
            return "no e-mail address for this sale"
        message = compose(
            body=delivery.body,
            to=contact.email,
            lang=contact.lang,
            sender=self.settings.smtp_from,
            public_url=self.settings.public_base_url,
            msg_id=delivery.notification_id,
        )
        await asyncio.to_thread(self.mailer.send, message)
        return None
