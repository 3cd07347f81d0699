"""Return policies through HTTP: a merchant publishes versions, anyone reads current and past ones."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ledger_service.documents.cid import Cid
from tests.api.conftest import ApiEnv, bearer
from tests.api.flows import POLICY, Flow, ok, problem
from tests.support.chain import MERCHANT2


@pytest.fixture(scope="module")
def flow(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> Flow:
    return Flow(client, api_env, keys)


def test_publish_versions_and_read_them_publicly(flow: Flow, api_env: ApiEnv) -> None:
    merchant = api_env.accounts[MERCHANT2].lower()
    assert problem(flow.client.get(f"/v1/merchants/{merchant}/policy"), 404)["detail"].endswith("no return policy")
    first = flow.publish("merchant2", window_days=14)
    assert first["version"] == 1 and first["policy"]["current"]["window_days"] == 14
    second = flow.publish("merchant2", window_days=45, accepted_reasons=["damaged"], title="Winter")
    assert second["version"] == 2 and second["document_digest"] != first["document_digest"]

    public = ok(flow.client.get(f"/v1/merchants/{merchant}/policy"))  # no credentials needed
    assert public["merchant"] == merchant and public["count"] == 2
    assert [v["version"] for v in public["data"]] == [2, 1]
    current = public["current"]
    assert current["version"] == 2 and current["window_days"] == 45
    assert current["terms"]["accepted_reasons"] == ["damaged"] and current["terms"]["title"] == "Winter"
    assert current["published_at"].endswith("Z") and current["tx_hash"] == second["tx_hash"]
    # the on-chain digest is the one of the document the service shows
    escrow = api_env.deployed.escrow.functions
    on_chain = escrow.policyOf(api_env.accounts[MERCHANT2], 2).call()
    assert "0x" + bytes(on_chain[-1]).hex() == current["document_digest"]
    upper = ok(flow.client.get(f"/v1/merchants/{api_env.accounts[MERCHANT2]}/policy"))
    assert upper == public


def test_the_digest_is_the_cid_of_the_canonical_json_of_the_document(flow: Flow, tmp_path: Path) -> None:
    body = {**POLICY, "non_returnable_categories": ["b", "a"], "fast_refund_max_value": "1000"}
    published = flow.publish("merchant2", **body)
    document = {
        "schema": "returns-ledger/policy/1",
        "window_days": 30,
        "restocking_fee_bps": 1000,
        "fast_refund": True,
        "fast_refund_max_value": "1000",
        "fast_refund_max_returns_90d": 0,
        "ship_by_days": 7,
        "inspect_by_days": 14,
        "dispute_window_days": 7,
        "non_returnable_categories": ["a", "b"],
        "accepted_reasons": [],
        "manual_review_reasons": [],
        "manual_review_above_value": "0",
        "title": POLICY["title"],
        "text": POLICY["text"],
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    # the digest is the one inside the CID `ipfs add` gives the canonical bytes, and the service serves them
    path = tmp_path / "policy.json"
    path.write_bytes(canonical)
    reference = json.loads(subprocess.run(["/usr/bin/ipfs_cid", str(path)], capture_output=True, check=True).stdout)
    assert Cid.from_digest(published["document_digest"]).v0 == reference["CIDv0"]
    served = flow.client.get(f"/v1/documents/{reference['CIDv0']}")
    assert served.status_code == 200, served.text
    assert served.content == canonical


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"window_days": 0}, "window_days"),
        ({"restocking_fee_bps": 5001}, "restocking_fee_bps"),
        ({"ship_by_days": 91}, "ship_by_days"),
        ({"fast_refund_max_value": "-1"}, "fast_refund_max_value"),
        ({"accepted_reasons": ["damaged"], "manual_review_reasons": ["changed_mind"]}, "manual_review_reasons"),
        ({"fast_refund_max_value": str(2**96)}, "fast_refund_max_value"),
    ],
)
def test_an_invalid_policy_is_a_422_naming_the_field(flow: Flow, change: dict[str, object], where: str) -> None:
    response = flow.client.post(
        "/v1/merchants/me/policy", headers=bearer(flow.keys["merchant"]), json={**POLICY, **change}
    )
    assert where in problem(response, 422)["detail"]


def test_publishing_needs_a_merchant_key(flow: Flow) -> None:
    problem(flow.client.post("/v1/merchants/me/policy", json=POLICY), 401)
    for key in ("carrier", "inspector", "arbiter", "auditor", "admin"):
        problem(flow.client.post("/v1/merchants/me/policy", headers=bearer(flow.keys[key]), json=POLICY), 403)
    flow.publish()
    sold = flow.sell()  # a consumer's return token is not an API key
    problem(flow.client.post("/v1/merchants/me/policy", headers=sold.auth, json=POLICY), 401)


def test_a_bad_address_is_a_422(flow: Flow) -> None:
    problem(flow.client.get("/v1/merchants/me/policy"), 422)
