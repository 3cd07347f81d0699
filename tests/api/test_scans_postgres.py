"""POST /v1/scans with an Idempotency-Key with the index in PostgreSQL: a retry replays the receipts and
queues nothing twice, the same key with another body is refused."""

from __future__ import annotations

import pytest

from tests.api.flows import Flow
from tests.api.test_returns_postgres import flow, pg_env  # noqa: F401 (the PostgreSQL environment's fixtures)
from tests.api.test_scans import check_idempotent_scans

pytestmark = pytest.mark.postgres


def test_a_retried_request_with_its_idempotency_key_queues_nothing_twice_on_postgres(flow: Flow) -> None:  # noqa: F811
    check_idempotent_scans(flow.env, flow.client, flow.keys)
