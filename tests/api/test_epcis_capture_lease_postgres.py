"""The capture lease and batch-registration tests again, with the index in PostgreSQL: the take-over of a dead
job, its reconciliation and the multi-row claims are the database's."""

from __future__ import annotations

import pytest

from tests.api.conftest import ApiEnv
from tests.api.test_epcis_capture_batches import (  # noqa: F401  (collected here too, on PostgreSQL)
    test_a_commissioning_of_many_items_takes_two_transactions_and_verifies,
)
from tests.api.test_epcis_capture_lease import (  # noqa: F401
    test_a_job_taken_over_while_alive_stops_before_sending,
    test_a_job_whose_process_died_before_sending_is_failed_with_nothing_recorded,
    test_a_killed_capture_is_failed_by_its_lease_and_sending_again_captures_the_rest,
    test_a_live_jobs_heartbeat_keeps_it_from_being_reaped,
)
from tests.api.test_returns_postgres import pg_env  # noqa: F401

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def api_env(pg_env: ApiEnv) -> ApiEnv:  # noqa: F811
    return pg_env
