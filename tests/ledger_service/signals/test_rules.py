"""The signals' rules at their thresholds, on hand-made facts."""

from __future__ import annotations

import pytest

from ledger_service.signals import BURST_WINDOW_S, burst, serial_returner, unit_mismatch, wardrobing
from ledger_service.signals.rules import LATE_S, is_late
from ledger_service.store.consumer_activity import ConsumerReturn

DAY = 86_400


def _ret(authorized_at: int, *, delivered_at: int | None = 0, window_days: int | None = 30) -> ConsumerReturn:
    return ConsumerReturn("0x" + "ab" * 32, "0x" + "cd" * 32, authorized_at, delivered_at, window_days)


def test_serial_returner_fires_at_twice_the_merchants_rate_with_three_returns() -> None:
    # 3 of 6 purchases returned (50%) against 25% of the merchant's: twice, the threshold
    signal = serial_returner(returns=3, purchases=6, population_returns=10, population_purchases=40)
    assert signal is not None
    assert signal.figures["ratio"] == 2.0
    assert signal.score == 0.25  # (2 - 1) / 4
    assert "3 returns of 6 purchases in 90 days (50%)" in signal.reasons[0].text_en
    assert "是本商家顾客平均退货率 25% 的 2.0 倍" in signal.reasons[0].text_zh
    assert serial_returner(returns=3, purchases=7, population_returns=10, population_purchases=40) is None
    assert serial_returner(returns=2, purchases=2, population_returns=1, population_purchases=40) is None


def test_serial_returner_score_is_capped_at_one() -> None:
    signal = serial_returner(returns=5, purchases=5, population_returns=1, population_purchases=100)
    assert signal is not None
    assert signal.score == 1.0


@pytest.mark.parametrize(
    ("authorized_at", "late"),
    [
        (30 * DAY, True),  # the window's last second
        (30 * DAY + 1, False),  # closed: not a return the contract would authorize anyway
        (30 * DAY - LATE_S, True),
        (30 * DAY - LATE_S - 1, False),
    ],
)
def test_late_means_in_the_windows_last_two_days(authorized_at: int, late: bool) -> None:
    assert is_late(_ret(authorized_at)) is late


def test_short_windows_and_unknown_deliveries_are_never_late() -> None:
    assert not is_late(_ret(6 * DAY, window_days=6))
    assert not is_late(_ret(29 * DAY, delivered_at=None))
    assert not is_late(_ret(29 * DAY, window_days=None))


def test_wardrobing_needs_two_late_returns() -> None:
    assert wardrobing([_ret(29 * DAY), _ret(3 * DAY)]) is None
    signal = wardrobing([_ret(29 * DAY), _ret(3 * DAY), _ret(30 * DAY)])
    assert signal is not None
    assert signal.figures == {"late_returns": 2, "returns": 3, "min_days_held": 29, "max_days_held": 30}
    assert signal.score == 0.5


def test_burst_counts_returns_within_a_day() -> None:
    assert burst([0, 3600, BURST_WINDOW_S - 1]) is not None
    assert burst([0, 3600, BURST_WINDOW_S]) is None
    signal = burst([10 * DAY, 0, 3600, 7200, 10_800, 5 * DAY])
    assert signal is not None
    assert signal.figures["returns"] == 4
    assert signal.score == round(2 / 3, 2)


def test_unit_mismatch_names_the_other_units() -> None:
    assert unit_mismatch(item_id="0x01", other_units=()) is None
    signal = unit_mismatch(item_id="0x01", other_units=("0x02",))
    assert signal is not None
    assert signal.score == 1.0
    assert "0x02" in signal.reasons[0].text_en
    assert "0x02" in signal.reasons[0].text_zh
