"""scripts/demo_api.py writes the demo keys and consumers' tokens readable by their owner only, and its flows run
against a real anvil: item 1005's label is written, its parcel scanned through the carrier simulator (signed
webhooks), the fast refund paid once and the return accepted."""

from __future__ import annotations

import importlib.util
import os
import stat
from collections.abc import Iterator
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
    spec = importlib.util.spec_from_file_location("demo_api", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0o022)  # the usual default: new files world-readable
    yield
    os.umask(previous)


def register_demo_items(api_env: ApiEnv) -> None:  # noqa: F811
    """Items 1005 and 1006 on the chain and in the index, held by the merchants the demo's sales expect."""
    ledger = api_env.deployed.ledger.functions
    for serial, merchant in ((1005, MERCHANT), (1006, MERCHANT2)):
        uri = f"urn:epc:id:sgtin:0614141.107346.{serial}"
        tx = ledger.registerItem(uri, 10614141007346, api_env.accounts[merchant], b"\x22" * 32, LOCATION).transact(
            {"from": api_env.accounts[MANUFACTURER]}
        )
        api_env.deployed.w3.eth.wait_for_transaction_receipt(tx)
    api_env.wait_indexed()


def test_files_with_tokens_are_private_from_their_creation(
    demo_api: ModuleType, tmp_path: Path, open_umask: None
) -> None:
    fresh = tmp_path / "var" / "demo-api.json"
    demo_api.write_private(fresh, '{"return_tokens": {"boots": "rrt_x"}}\n')
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert fresh.read_text() == '{"return_tokens": {"boots": "rrt_x"}}\n'
    old = tmp_path / "demo-keys.json"
    old.write_text("before, world-readable")
    old.chmod(0o644)
    demo_api.write_private(old, "{}\n")
    assert stat.S_IMODE(old.stat().st_mode) == 0o600 and old.read_text() == "{}\n"


def test_the_script_writes_its_token_files_only_through_write_private() -> None:
    source = SCRIPT.read_text()
    assert "DONE_FILE.write_text" not in source and "KEYS_FILE.write_text" not in source
    assert source.count("write_private(KEYS_FILE") == 1 and source.count("write_private(DONE_FILE") == 1


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
    register_demo_items(api_env)
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


def test_the_demo_tells_both_exchange_stories(
    demo_api: ModuleType,
    client: TestClient,  # noqa: F811
    api_env: ApiEnv,  # noqa: F811
    keys: dict[str, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After the returns demo (its policy published): the instant exchange of a shoe for the next size through
    the API (supply captured as EPCIS), and a return whose parcel holds a unit nobody registered, caught."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    from demo_exchanges import run_exchange_flows

    results = run_exchange_flows(client, keys)
    merchant = {"Authorization": f"Bearer {keys['merchant']}"}
    exchange = client.get(f"/v1/exchanges/{results['exchange_id']}", headers=merchant).json()
    assert (exchange["released"], exchange["collateral_settled"], exchange["instant"]) == (True, True, True)
    sale = api_env.deployed.escrow.functions.saleOf(bytes.fromhex(results["replacement"][2:])).call()
    assert str(sale[0]).lower() == demo_api.CONSUMER_1.lower()  # the next size is consumer 1's now
    flow = Flow(client, api_env, keys)
    assert chain_state(flow, results["swapped_return"]) is ReturnState.DISPUTED
    verdict = client.get(f"/v1/verify/{results['swapped_return']}").json()
    assert verdict["return"]["unit_mismatch"] is True
    # the portal shows each consumer their story, the console the merchant's exchange
    first, second = results["tokens"].values()
    client.cookies.clear()
    client.get("/", params={"token": first})
    page = client.get(f"/exchanges/{results['exchange_id']}", headers={"Accept-Language": "en"})
    assert page.status_code == 200 and "Replacement sent, original on its way back" in page.text
    client.get("/", params={"token": second})
    page = client.get(f"/returns/{results['swapped_return']}", headers={"Accept-Language": "en"})
    assert "The unit received is not the one sold" in page.text
    client.cookies.clear()
    client.post("/merchant/signin", data={"api_key": keys["merchant"]})
    console = client.get("/merchant/exchanges")
    assert f'id="x-{results["exchange_id"]}"' in console.text
    client.cookies.clear()
