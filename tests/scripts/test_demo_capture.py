"""scripts/demo_capture.py's documents go through the capture interface as they are (valid, in an order the
ledger accepts, each with the key of its acting account), leave each demo item with the events scripts/demo.py
expects before its sales, and a second run records nothing."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ledger_service.epcis.document import item_id_of
from ledger_service.store import items
from tests.api.conftest import ApiEnv, api_env, bearer, client, keys  # noqa: F401  (the API's fixtures)

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture(scope="module")
def demo_capture() -> ModuleType:
    sys.path.insert(0, str(SCRIPTS))  # it imports its sibling demo_api, as it does when run
    try:
        spec = importlib.util.spec_from_file_location("demo_capture", SCRIPTS / "demo_capture.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPTS))
    return module


def captured(client: TestClient, key: str, doc: dict[str, Any]) -> dict[str, Any]:  # noqa: F811
    answer = client.post(
        "/v1/epcis/capture", content=json.dumps(doc), headers={**bearer(key), "Content-Type": "application/ld+json"}
    )
    assert answer.status_code == 202, answer.text
    for _ in range(600):
        job: dict[str, Any] = client.get(answer.headers["location"], headers=bearer(key)).json()
        if job["state"] != "running":
            return job
        time.sleep(0.05)
    raise AssertionError("capture still running")


def test_the_demo_supply_chain_is_captured_once(
    demo_capture: ModuleType,
    client: TestClient,  # noqa: F811
    api_env: ApiEnv,  # noqa: F811
    keys: dict[str, str],  # noqa: F811
) -> None:
    start = api_env.deployed.w3.eth.get_block(0)["timestamp"] - 2 * 24 * 3600
    for name, doc in demo_capture.documents(start):
        job = captured(client, keys[name], doc)
        assert job["state"] == "succeeded" and job["duplicates"] == 0, (name, job)
    api_env.wait_indexed()
    for serial in demo_capture.SERIALS:
        item = items.item(api_env.store, item_id_of(demo_capture.uri(serial)))
        assert item is not None and item.event_count == 5  # what scripts/demo.py checks before selling
        assert item.last_disposition == 4  # sellable_accessible
    for name, doc in demo_capture.documents(start):
        job = captured(client, keys[name], doc)
        assert (job["state"], job["captured"]) == ("succeeded", 0), (name, job)
