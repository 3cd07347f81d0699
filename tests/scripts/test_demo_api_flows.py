"""scripts/demo_api.py's flows against a real anvil: item 1005's label is written, its parcel is scanned through
the carrier simulator (signed webhooks), the fast refund is paid and the return reaches the merchant, and item
1006 ends rejected, then queued."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.testclient import TestClient

from ledger_service.core.codes import ReturnState
from tests.api.carriers import chain_state
from tests.api.conftest import ApiEnv, api_env, client, keys  # noqa: F401  (the API's fixtures)
from tests.api.flows import LOCATION, Flow
from tests.support.chain import MANUFACTURER, MERCHANT, MERCHANT2

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "demo_api.py"


@pytest.fixture(scope="module")
def demo_api() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_api_flows", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_demo_scans_its_return_through_the_carrier_simulator(
    demo_api: ModuleType,
    client: TestClient,  # noqa: F811
    api_env: ApiEnv,  # noqa: F811
    keys: dict[str, str],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(demo_api, "PHOTO_FILE", tmp_path / "demo-inspection.png")
    monkeypatch.setattr(demo_api, "LABEL_FILE", tmp_path / "demo-label-1005.pdf")
    monkeypatch.setattr(demo_api, "ROOT", tmp_path)
    ledger = api_env.deployed.ledger.functions
    for serial, merchant in ((1005, MERCHANT), (1006, MERCHANT2)):
        uri = f"urn:epc:id:sgtin:0614141.107346.{serial}"
        tx = ledger.registerItem(uri, 10614141007346, api_env.accounts[merchant], b"\x22" * 32, LOCATION).transact(
            {"from": api_env.accounts[MANUFACTURER]}
        )
        api_env.deployed.w3.eth.wait_for_transaction_receipt(tx)
    api_env.wait_indexed()
    results = demo_api.run_flows(client, keys)
    verify = results["verify"]
    assert (tmp_path / "demo-label-1005.pdf").read_bytes().startswith(b"%PDF")
    flow = Flow(client, api_env, keys)
    assert chain_state(flow, verify["return_id"]) is ReturnState.ACCEPTED
    assert flow.balance(demo_api.CONSUMER_1) == 45_000_000 - 4_500_000  # paid once, at the first scan
    tracking = client.get(
        f"/v1/returns/{verify['return_id']}/tracking", headers={"Authorization": f"Bearer {keys['merchant']}"}
    ).json()
    assert tracking["tracking_number"] == verify["tracking_number"]
    assert [line["status"] for line in tracking["data"] if line["source"] == "carrier"] == ["in_transit", "delivered"]
