"""The delivery loop of ``ledger-notify``: outbox -> deliveries -> receivers, with retries and dead letters.

One asyncio loop per process. Each turn: the return-window scan when it is due, :func:`dispatch` of new outbox
rows (at once while rows keep coming, else once per poll interval), then a wait until a batch of the sends in
flight has finished (a quarter of the concurrency, or all of them, or the poll interval has passed: a slow
receiver is never waited for), then one transaction that records every finished send and, when a batch of
slots is free or nothing is in flight, leases as many due deliveries as there are free slots (at most
``per_target`` in flight per target, so a receiver that is slow or down holds only its own slots; SKIP LOCKED
on PostgreSQL), each then sent as its own task. So the database sees one transaction per batch, not one per
delivery. The database calls run in a worker thread, the sends on the loop, over one aiohttp session whose
keep-alive connections are reused; an endpoint's secret is opened (it is sealed at rest) once per worker.

Retries: after a failed attempt ``n`` (1, 2, ...) the next is due ``backoff_base * 2**(n-1)`` seconds later
(at most ``backoff_cap``, and never after the delivery's retry window, whose last attempt is at its end); a
failure at or after the end dead-letters it. A claim leases a delivery for longer than a request can take, so
a worker that dies mid-send leaves it due again at the lease's end: at least once, same id, same body.

The database away (restarted, connections terminated) stops no worker: a round that fails is tried again after
a backoff (its finished sends recorded with the next round), and the store's pool reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog
from web3 import Web3

from ledger_service.chain.tokens import TokenUnits, token_units
from ledger_service.core.notifications import EVENT_TYPES, EXCHANGE_REQUESTED, MERCHANT_ONLY_TYPES, RETURN_REQUESTED
from ledger_service.errors import RetryableError
from ledger_service.notify.email import Mailer, compose
from ledger_service.notify.webhooks import render, seal_legacy, sign, signing_secret
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

EMAIL_TYPES = frozenset(EVENT_TYPES) - {RETURN_REQUESTED, EXCHANGE_REQUESTED} - MERCHANT_ONLY_TYPES
"""What the consumer is told by e-mail (every type but the requests' receipts, which they see at once, and the
merchant's own collateral)."""

ERROR_TEXT = 300
"""Characters of a receiver's error kept with the delivery."""

TOKEN_TIMEOUT_S = 5.0
"""Longest wait for the node's answer about a token's decimals and symbol."""

DATABASE_BACKOFF_CAP_S = 5.0
"""Longest wait between two rounds while the database is away."""
DISPATCH_ROWS = 500
"""Outbox rows turned into deliveries per transaction."""

ANSWER_BYTES = 65_536
"""Bytes of a receiver's answer read (and dropped): a longer answer closes its connection instead of being read."""


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

    def __init__(self, store: Store, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.mailer = Mailer(settings) if settings.smtp_host else None
        self.email_types = EMAIL_TYPES if self.mailer is not None else frozenset()
        self.lease_s = settings.notify_lease_s
        self.batch = max(1, settings.notify_concurrency // 4)
        self.stats = Stats()
        self._session: aiohttp.ClientSession | None = None
        self._tasks: dict[asyncio.Task[Outcome], Delivery] = {}
        self._finished = 0
        self._enough: tuple[asyncio.Future[None], int] | None = None
        self._endpoints: dict[str, WebhookEndpoint | None] = {}
        self._units: dict[str, TokenUnits | None] = {}
        self._w3: Web3 | None = None
        self._next_scan = 0.0
        self._next_dispatch = 0.0
        self._unrecorded: list[Outcome] = []
        """Outcomes of a round whose transaction failed (the database away): recorded with the next round's."""

    def session(self) -> aiohttp.ClientSession:
        """The HTTP session of the sends (made on the running loop at first use, again after :meth:`close`)."""
        if self._session is None or self._session.closed:
            s = self.settings
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=s.notify_concurrency, limit_per_host=0, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(total=s.notify_timeout_s),
                trust_env=False,
                auto_decompress=False,
            )
        return self._session

    async def close(self) -> None:
        """Closes the HTTP session (its keep-alive connections); a later send opens a new one."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def run(self, stop: asyncio.Event) -> Stats:
        poll = self.settings.notify_poll_s
        backoff = poll
        try:
            while not stop.is_set():
                try:
                    await self.turn(wait=poll, stop=stop)
                    backoff = poll
                except RetryableError as exc:  # the database away (restarted): the sends in flight go on meanwhile
                    log.warning("database unavailable", error=str(exc), retry_in=round(backoff, 2))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), backoff)
                    backoff = min(DATABASE_BACKOFF_CAP_S, backoff * 2)
            await self.drain()
        finally:
            await self.close()
        return self.stats

    async def turn(self, *, wait: float = 0.0, stop: asyncio.Event | None = None) -> int:
        """One round: scan and dispatch when due, wait up to ``wait`` seconds for a batch of the sends in flight to
        finish, then record every finished one and claim due deliveries for the free slots in one transaction,
        and start their sends. Returns the deliveries started."""
        s = self.settings
        now = self.clock()
        if now >= self._next_scan:
            self._next_scan = now + s.notify_window_scan_s
            notice = s.notify_window_notice_days * 86_400
            await asyncio.to_thread(scan_return_windows, self.store, now=int(now), notice_s=notice)
        if now >= self._next_dispatch:
            rows = await asyncio.to_thread(
                dispatch,
                self.store,
                now=int(now),
                retry_for_s=s.notify_retry_for_s,
                render=render,
                email_types=self.email_types,
                limit=DISPATCH_ROWS,
            )
            self.stats.dispatched += rows
            # more rows may be waiting when a full page came: look again next turn, else after the poll interval
            self._next_dispatch = now if rows >= DISPATCH_ROWS else now + s.notify_poll_s
        if self._tasks and wait:
            await self._batch_done(wait, stop)
        outcomes = self._finished_outcomes()
        try:
            now = self.clock()
            started = 0
            free = s.notify_concurrency - len(self._tasks)
            if free >= self.batch or (free > 0 and not self._tasks):
                busy = Counter(d.target for d in self._tasks.values())
                claimed = await asyncio.to_thread(
                    claim_due,
                    self.store,
                    now=int(now),
                    limit=free,
                    per_target=s.notify_per_target,
                    lease_s=self.lease_s,
                    busy=busy,
                    outcomes=outcomes,
                )
                for delivery in claimed:
                    task = asyncio.create_task(self._attempt(delivery))
                    task.add_done_callback(self._finish)
                    self._tasks[task] = delivery
                started = len(claimed)
            elif outcomes:
                await asyncio.to_thread(record_outcomes, self.store, outcomes, now=int(now))
        except RetryableError:
            self._unrecorded = outcomes
            raise
        self.stats.turns += 1
        if not self._tasks and not started and wait:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait) if stop is not None else await asyncio.sleep(wait)
        return started

    def _finish(self, task: asyncio.Task[Outcome]) -> None:
        self._finished += 1
        if self._enough is not None and self._finished >= self._enough[1] and not self._enough[0].done():
            self._enough[0].set_result(None)

    async def _batch_done(self, wait: float, stop: asyncio.Event | None) -> None:
        """Waits until a batch of the sends in flight has finished (all of them if fewer), ``stop`` is set or
        ``wait`` seconds have passed."""
        finished = sum(1 for t in self._tasks if t.done())
        goal = min(self.batch, len(self._tasks))
        if finished >= goal:
            return
        enough: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._finished = finished
        self._enough = (enough, goal)
        waiters: list[asyncio.Future[Any]] = [enough]
        if stop is not None:
            waiters.append(asyncio.ensure_future(stop.wait()))
        try:
            await asyncio.wait(waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._enough = None
            for w in waiters:
                w.cancel()

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
            await asyncio.wait(list(self._tasks))
        outcomes = self._finished_outcomes()
        if outcomes:
            try:
                await asyncio.to_thread(record_outcomes, self.store, outcomes, now=int(self.clock()))
            except RetryableError:
                self._unrecorded = outcomes
                raise

    def _finished_outcomes(self) -> list[Outcome]:
        """The outcomes not recorded yet: a failed round's and the finished sends', taken out of the ones in flight
        (and counted)."""
        outcomes, self._unrecorded = self._unrecorded, []
        for task in [t for t in self._tasks if t.done()]:
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
        return outcomes

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

    async def _token_units(self, body: str) -> TokenUnits | None:
        """The decimals and symbol of the payload's token, read from the chain once per token (an ERC-20's never
        change); None when there is no token or the node does not say (the e-mail then shows base units)."""
        token = str(json.loads(body).get("data", {}).get("token", "")).lower()
        if not token:
            return None
        if token not in self._units:
            if self._w3 is None:
                provider = Web3.HTTPProvider(str(self.settings.rpc_url), request_kwargs={"timeout": TOKEN_TIMEOUT_S})
                self._w3 = Web3(provider)
            try:
                units = await asyncio.to_thread(token_units, self._w3, token)
            except RetryableError:
                return None  # the node is away: this e-mail shows base units, a later one asks again
            if units is None:
                log.warning("token without ERC-20 decimals", token=token)
            self._units[token] = units
        return self._units[token]

    async def _endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        """The endpoint with its plaintext secret (kept in memory only), or None: deleted, or sealed under another
        key. An endpoint's URL and secret never change; deletion is checked by the store's claim."""
        if endpoint_id not in self._endpoints:
            self._endpoints[endpoint_id] = await asyncio.to_thread(self._open_endpoint, endpoint_id)
        return self._endpoints[endpoint_id]

    def _open_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        stored = endpoint_by_id(self.store, endpoint_id)
        if stored is None:
            return None
        key = self.settings.webhook_secrets_key.get_secret_value()
        secret = signing_secret(stored, key=key)
        if secret is None:
            log.error("webhook secret sealed under another key", endpoint=endpoint_id)
            return None
        seal_legacy(self.store, stored, key=key)
        return dataclasses.replace(stored, secret=secret)

    async def _post(self, delivery: Delivery) -> tuple[int | None, str | None]:
        endpoint = await self._endpoint(delivery.target)
        if endpoint is None:
            return None, "the endpoint no longer exists, or its secret cannot be opened with this key"
        body = delivery.body.encode()
        headers = sign(secret=endpoint.secret, msg_id=delivery.notification_id, body=body, now=int(self.clock()))
        try:
            async with self.session().post(endpoint.url, data=body, headers=headers, allow_redirects=False) as answer:
                status = answer.status
                await answer.content.read(ANSWER_BYTES)  # read, so the connection goes back to the pool
        except (aiohttp.ClientError, TimeoutError) as exc:
            return None, f"{type(exc).__name__}: {exc}"[:ERROR_TEXT] or type(exc).__name__
        if 200 <= status < 300:
            return status, None
        return status, f"HTTP {status}"

    async def _email(self, delivery: Delivery) -> str | None:
        contact = await asyncio.to_thread(contact_of, self.store, item_id=delivery.item_id, sale_seq=delivery.sale_seq)
        if contact is None or self.mailer is None:
            return "no e-mail address for this sale"
        message = compose(
            units=await self._token_units(delivery.body),
            body=delivery.body,
            to=contact.email,
            lang=contact.lang,
            sender=self.settings.smtp_from,
            public_url=self.settings.public_base_url,
            msg_id=delivery.notification_id,
        )
        await asyncio.to_thread(self.mailer.send, message)
        return None
