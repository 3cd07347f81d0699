"""The age a batched scan may have when it is sent: the indexer's tolerance less the time its batch may take to
be anchored."""

from __future__ import annotations

from ledger_service.capture.scans import accepted_age_s
from ledger_service.settings import Settings

DAY = 86_400


def test_a_scan_may_be_as_old_as_the_tolerance_less_a_day_or_less_half_of_a_short_one() -> None:
    assert accepted_age_s(Settings.model_fields["batch_scan_max_age_s"].default) == 6 * DAY  # a week's default
    assert accepted_age_s(2 * DAY) == DAY
    assert accepted_age_s(3_600) == 1_800  # an hour: half of it left for the anchor
