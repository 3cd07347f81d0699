"""Gathers a consumer's facts at a merchant from the index and applies every rule."""

from __future__ import annotations

from ledger_service.signals.rules import LOOKBACK_S, Signal, burst, serial_returner, unit_mismatch, wardrobing
from ledger_service.store import consumer_activity
from ledger_service.store.handle import Store


def population_of(store: Store, *, merchant: str, now: int) -> tuple[int, int]:
    """The merchant's (sales, returns) over the :data:`LOOKBACK_S` up to ``now``: what a consumer's return rate
    is compared with (one read per merchant for a whole page of the review queue)."""
    return consumer_activity.merchant_population(store, merchant=merchant, since=now - LOOKBACK_S, until=now)


def signals_for(
    store: Store,
    *,
    consumer: str,
    merchant: str,
    now: int,
    return_id: str | None = None,
    item_id: str | None = None,
    population: tuple[int, int] | None = None,
) -> tuple[Signal, ...]:
    """The signals that fire for ``consumer`` at ``merchant`` over the :data:`LOOKBACK_S` up to ``now`` (chain
    time), strongest first; with ``return_id`` and ``item_id`` also whether another unit was scanned for it.
    ``population``: :func:`population_of` the merchant at ``now``, when the caller already has it."""
    since = now - LOOKBACK_S
    activity = consumer_activity.consumer_activity(store, consumer=consumer, merchant=merchant, since=since, until=now)
    purchases, population_returns = population or population_of(store, merchant=merchant, now=now)
    found = [
        serial_returner(
            returns=len(activity.returns),
            purchases=activity.sales,
            population_returns=population_returns,
            population_purchases=purchases,
        ),
        wardrobing(activity.returns),
        burst([ret.authorized_at for ret in activity.returns]),
    ]
    if return_id is not None and item_id is not None:
        others = consumer_activity.other_units(store, return_id=return_id, item_id=item_id)
        found.append(unit_mismatch(item_id=item_id.lower(), other_units=others))
    return tuple(sorted((s for s in found if s is not None), key=lambda s: (-s.score, s.kind)))
