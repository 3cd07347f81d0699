"""``GET /v1/scans/anchors`` and an item history's count of waiting anchors again, with the index in PostgreSQL
(the listing's order, filters and count are the database's)."""

from __future__ import annotations

import pytest

from tests.api.conftest import ApiEnv
from tests.api.test_returns_postgres import pg_env  # noqa: F401
from tests.api.test_scan_anchors import (  # noqa: F401  (collected here too, on PostgreSQL)
    test_a_submitter_reads_only_its_own_anchors,
    test_anchors_waiting_for_their_document_come_first_with_why_and_histories_say_so,
)

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def api_env(pg_env: ApiEnv) -> ApiEnv:  # noqa: F811
    return pg_env
