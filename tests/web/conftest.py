"""Fixtures of the web pages' tests: the API tests' chain, index and keys (:mod:`tests.api.conftest`), and a
:class:`~tests.api.flows.Flow` that seeds purchases through the API."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import ApiEnv, api_env, client, keys
from tests.api.flows import Flow

__all__ = ["api_env", "client", "flow", "keys"]


@pytest.fixture(scope="module")
def flow(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> Flow:
    flow = Flow(client, api_env, keys)
    flow.publish()
    return flow
