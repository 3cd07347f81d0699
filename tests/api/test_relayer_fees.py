"""A write while the network's base fee is above the fee cap: a 503 that says so, and nothing sent."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.main import create_app, serving_app
from ledger_service.core.networks import GWEI
from ledger_service.settings import NETWORKS_DIR, Settings
from tests.api.conftest import ApiEnv, bearer
from tests.api.flows import POLICY, problem
from tests.support.chain import MERCHANT


def test_a_write_above_the_fee_cap_is_a_503_naming_the_cap(
    api_env: ApiEnv, keys: dict[str, str], tmp_path: Path
) -> None:
    networks = tmp_path / "networks"
    networks.mkdir()
    anvil = (NETWORKS_DIR / "anvil.toml").read_text().replace("max_fee_gwei = 100", "max_fee_gwei = 1")
    deploy_config = NETWORKS_DIR.parent / "scripts" / "deploy-config.local.json"
    (networks / "anvil.toml").write_text(anvil.replace("../scripts/deploy-config.local.json", str(deploy_config)))
    settings = Settings(**{**api_env.settings.model_dump(exclude={"networks_dir"}), "networks_dir": networks})
    assert settings.network_config.fees.max_fee_wei == GWEI
    w3 = api_env.deployed.w3
    merchant = api_env.accounts[MERCHANT]
    with TestClient(serving_app(create_app(settings))) as client:
        nonce = w3.eth.get_transaction_count(merchant, "pending")
        api_env.anvil.rpc("anvil_setNextBlockBaseFeePerGas", [hex(3 * GWEI)])
        body = problem(client.post("/v1/merchants/me/policy", headers=bearer(keys["merchant"]), json=POLICY), 503)
    assert "above the service's fee cap (1 gwei)" in body["detail"]
    assert "fees.max_fee_gwei" in body["detail"]
    assert w3.eth.get_transaction_count(merchant, "pending") == nonce  # nothing was sent
