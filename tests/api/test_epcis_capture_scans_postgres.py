"""The EPCIS query interface serving batched captured events once applied, with the index in PostgreSQL (the
match of a batched event to its applied scans, and the record-time filter on their anchors, are the database's)."""

from __future__ import annotations

import pytest

from tests.api.conftest import ApiEnv
from tests.api.test_epcis_capture_scans import (  # noqa: F401  (collected here too, on PostgreSQL)
    client,
    test_batched_events_are_served_by_the_query_interface_once_applied,
)
from tests.api.test_returns_postgres import pg_env  # noqa: F401

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def api_env(pg_env: ApiEnv) -> ApiEnv:  # noqa: F811
    return pg_env
