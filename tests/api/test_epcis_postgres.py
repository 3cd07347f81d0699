"""The EPCIS capture and query tests again, with the index in PostgreSQL: the claims by hash ID (a unique
constraint), the concurrent capture of one document, paging and the EPC pattern index are the database's."""

from __future__ import annotations

import pytest

from tests.api.conftest import ApiEnv
from tests.api.test_epcis_capture import (  # noqa: F401  (collected here too, on the PostgreSQL environment)
    test_a_document_mixing_valid_and_invalid_events_captures_nothing_and_names_every_invalid_one,
    test_an_event_dated_before_the_items_last_event_is_refused,
    test_an_item_the_actor_may_not_write_fails_the_job_and_records_nothing,
    test_commissioning_and_later_events_are_recorded_on_chain_and_indexed,
    test_one_document_captured_twice_at_the_same_time_records_each_event_once,
    test_the_same_document_sent_again_records_nothing_twice,
)
from tests.api.test_epcis_query import (  # noqa: F401
    story,
    test_a_chain_event_is_found_by_its_event_id_as_the_history_export_gives_it,
    test_an_event_id_that_names_no_event_is_a_404,
    test_an_items_events_come_in_time_order_with_their_proofs_and_the_escrows_events,
    test_chain_events_are_found_by_pattern_business_transaction_and_time,
    test_filters_narrow_the_answer,
    test_one_chain_event_follows_the_read_rules_of_the_history,
    test_one_event_by_its_hash_id,
    test_paging_is_stable_while_events_are_added,
    test_paging_through_captured_and_chain_events_is_stable_while_both_are_added,
    test_read_rules_follow_the_item_history,
)
from tests.api.test_returns_postgres import pg_env  # noqa: F401

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def api_env(pg_env: ApiEnv) -> ApiEnv:  # noqa: F811
    return pg_env
