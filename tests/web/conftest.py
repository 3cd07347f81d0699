"""Fixtures of the web pages' tests: the API tests' chain, index and keys (:mod:`tests.api.conftest`), and a
:class:`~tests.api.flows.Flow` that seeds purchases through the API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser

from tests.api.conftest import ApiEnv, api_env, client, keys
from tests.api.flows import Flow
from tests.api.served import Served, serve
from tests.web.browser import chromium

__all__ = ["api_env", "client", "flow", "keys"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, started once for a module's browser tests."""
    yield from chromium()


@pytest.fixture(scope="module")
def served(api_env: ApiEnv) -> Iterator[Served]:
    """``ledger-api`` serving the module's chain and index, as ``scripts/run.sh`` starts it."""
    with serve(api_env) as running:
        yield running


@pytest.fixture(scope="module")
def flow(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> Flow:
    flow = Flow(client, api_env, keys)
    flow.publish()
    return flow
