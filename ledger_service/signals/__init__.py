"""Fraud and abuse signals on a consumer's return: each a score from 0 to 1 with its reasons in Chinese and
English and the figures behind them, shown to the merchant reviewing the return; never an automatic penalty
(no rule of the eligibility review reads them).

The rules are pure functions (:mod:`ledger_service.signals.rules`) of facts the index holds
(:mod:`ledger_service.store.consumer_activity`), scoped to the merchant; :func:`signals_for` gathers the facts
and applies them. The rules and their thresholds are in docs/analytics-signals.md.
"""

from ledger_service.signals.gather import population_of, signals_for
from ledger_service.signals.rules import (
    BURST_WINDOW_S,
    LOOKBACK_S,
    Signal,
    SignalReason,
    burst,
    serial_returner,
    unit_mismatch,
    wardrobing,
)

__all__ = [
    "BURST_WINDOW_S",
    "LOOKBACK_S",
    "Signal",
    "SignalReason",
    "burst",
    "population_of",
    "serial_returner",
    "signals_for",
    "unit_mismatch",
    "wardrobing",
]
