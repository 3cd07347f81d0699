"""Every error is an RFC 9457 problem: contract reverts sent by the real TxSender are translated into
sentences, validation errors list what is wrong, and an unexpected error shows no internals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from api._reverts import EXPLANATIONS, explain, utc_text
from api.problems import problem_for
from ledger_service.chain.artifacts import load_artifact
from ledger_service.chain.reverts import ContractRevertError
from ledger_service.store import StoreFullError
from ledger_service.store._db import create_store_engine, translate_errors
from tests.api.conftest import ApiEnv, bearer, make_client, return_token
from tests.api.probe import router
from tests.support.activity import Activity
from tests.support.chain import ARTIFACTS, CONSUMER, MERCHANT

DAY = 86_400


@pytest.fixture(scope="module")
def probe(api_env: ApiEnv) -> Iterator[TestClient]:
    with make_client(api_env, [router], raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def activity(api_env: ApiEnv) -> Activity:
    act = Activity(api_env.deployed)
    act.publish_policy()
    return act


def authorized_return(activity: Activity) -> bytes:
    """A return in state Authorized (sold, then authorized by the merchant)."""
    (item,) = activity.register(1)
    escrow = activity.d.escrow.functions
    activity.send(
        escrow.recordSale(item, activity.acc[CONSUMER], activity.d.token.address, 50_000_000, b"\x33" * 32, b"\0" * 32),
        MERCHANT,
    )
    return activity._authorize(item, fast_refund=False)


def problem(response: object) -> dict[str, object]:
    from httpx import Response

    assert isinstance(response, Response)
    assert response.headers["content-type"] == "application/problem+json", response.text
    body = json.loads(response.text)
    assert body["status"] == response.status_code
    return dict(body)


def test_every_custom_error_of_the_contracts_has_a_sentence() -> None:
    declared = {
        entry["name"]
        for name in ("ProvenanceLedger", "ReturnsEscrow", "ExchangeEscrow", "DevStablecoin", "BatchAnchor")
        for entry in load_artifact(name, ARTIFACTS).abi
        if entry["type"] == "error" and entry["name"].startswith(("Escrow", "Provenance", "Exchange", "BatchAnchor"))
    }
    assert {"BatchAnchorNotScanner", "EscrowUnknownReturn", "ProvenanceItemUnknown"} <= declared
    assert declared - set(EXPLANATIONS) == set()


def test_a_passed_ship_by_deadline_is_a_409_naming_the_deadline(
    probe: TestClient, api_env: ApiEnv, activity: Activity, keys: dict[str, str]
) -> None:
    return_id = authorized_return(activity)
    ship_by = activity.d.escrow.functions.returnOf(return_id).call()[4]
    api_env.anvil.rpc("evm_increaseTime", [8 * DAY])
    api_env.anvil.rpc("evm_mine")
    nonce = api_env.deployed.w3.eth.get_transaction_count(api_env.accounts[3])
    response = probe.post(f"/v1/probe/in-transit/0x{return_id.hex()}", headers=bearer(keys["carrier"]))
    body = problem(response)
    assert response.status_code == 409
    assert body["detail"] == f"EscrowDeadlinePassed: the ship-by deadline passed on {utc_text(ship_by)}"
    assert body["title"] == "Escrow deadline passed"
    assert body["type"] == "tag:returns-ledger,2026:revert/EscrowDeadlinePassed"
    assert body["error"] == "EscrowDeadlinePassed"
    assert body["params"] == {"returnId": "0x" + return_id.hex(), "deadline": str(ship_by)}
    assert api_env.deployed.w3.eth.get_transaction_count(api_env.accounts[3]) == nonce  # refused before sending


def test_a_wrong_state_says_which_state_the_return_is_in(
    probe: TestClient, api_env: ApiEnv, activity: Activity, keys: dict[str, str]
) -> None:
    return_id = authorized_return(activity)
    activity.send(activity.d.escrow.functions.cancelReturn(return_id), CONSUMER)
    body = problem(probe.post(f"/v1/probe/in-transit/0x{return_id.hex()}", headers=bearer(keys["carrier"])))
    assert body["status"] == 409
    assert body["detail"] == (
        f"EscrowInvalidState: return 0x{return_id.hex()} is cancelled, which does not allow this action"
    )


def test_a_missing_on_chain_role_is_a_403(probe: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> None:
    body = problem(probe.post("/v1/probe/register", headers=bearer(keys["merchant"])))
    assert body["status"] == 403
    merchant = api_env.accounts[MERCHANT].lower()
    assert body["detail"] == f"AccessControlUnauthorizedAccount: account {merchant} does not hold MANUFACTURER_ROLE"


def test_the_relayer_acts_for_a_consumer(probe: TestClient, api_env: ApiEnv, activity: Activity) -> None:
    from ledger_service.access import issue_return_token

    return_id = authorized_return(activity)
    token = issue_return_token(
        store=api_env.store, item_id="0x" + "cd" * 32, consumer=api_env.accounts[CONSUMER], sale_seq=1
    )
    response = probe.post(f"/v1/probe/relayer-cancel/0x{return_id.hex()}", headers=return_token(token))
    assert response.status_code == 200, response.text
    assert activity.d.escrow.functions.returnOf(return_id).call()[6] == 2  # Cancelled
    again = problem(probe.post(f"/v1/probe/relayer-cancel/0x{return_id.hex()}", headers=return_token(token)))
    assert str(again["detail"]).startswith("EscrowInvalidState:")


def test_explanations_fall_back_to_the_error_name() -> None:
    assert explain(ContractRevertError("SomethingNew", {"x": 1})) == (
        409,
        "the contract refused the transaction (SomethingNew)",
    )
    status, sentence = explain(ContractRevertError("EscrowDeadlinePassed", {"returnId": b"\1" * 32, "deadline": 0}))
    assert (status, sentence) == (409, "the deadline passed on 1970-01-01 00:00 UTC")  # no chain: no deadline name
    assert explain(ContractRevertError("EscrowInvalidState", {}))[0] == 409  # malformed params still explained


def test_validation_errors_are_422_problems_listing_each_error(probe: TestClient, keys: dict[str, str]) -> None:
    response = probe.post("/v1/probe/counter", headers=bearer(keys["merchant"]), json={"n": "many", "outcome": "x"})
    body = problem(response)
    assert response.status_code == 422
    locs = {tuple(e["loc"]) for e in body["errors"]}  # type: ignore[attr-defined]
    assert locs == {("body", "n"), ("body", "outcome")}
    assert str(body["detail"]).startswith("the request is invalid: body.n: ")


def test_unknown_paths_and_methods_are_problems(probe: TestClient) -> None:
    missing = problem(probe.get("/v1/nothing-here"))
    assert missing["status"] == 404 and missing["title"] == "Not Found" and missing["type"] == "about:blank"
    response = probe.delete("/v1/probe/boom")
    assert problem(response)["status"] == 405
    assert response.headers["allow"] == "GET"


def test_an_unexpected_error_is_a_500_without_internals(probe: TestClient) -> None:
    response = probe.get("/v1/probe/boom")
    body = problem(response)
    assert response.status_code == 500
    assert "hunter2" not in response.text and "Traceback" not in response.text and "RuntimeError" not in response.text
    assert body["detail"] == "an unexpected error occurred; it was logged and will be looked into"


def test_waiting_for_a_block_the_index_has_not_reached_is_a_504(probe: TestClient, api_env: ApiEnv) -> None:
    api_env.wait_indexed()
    head = api_env.deployed.w3.eth.block_number
    assert probe.post(f"/v1/probe/wait?block={head}").json() == {"reached": head}
    response = probe.post(f"/v1/probe/wait?block={head + 1000}&timeout=0.2")
    body = problem(response)
    assert response.status_code == 504
    assert body["block_number"] == head + 1000 and isinstance(body["indexed_block"], int)
    assert "the write succeeded" in str(body["detail"])
    assert response.headers["retry-after"] == "2"


def test_openapi_documents_problems_not_fastapis_validation_schema(probe: TestClient) -> None:
    spec = probe.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert "Problem" in schemas and "HTTPValidationError" not in schemas
    responses = spec["paths"]["/v1/probe/counter"]["post"]["responses"]
    assert responses["422"]["content"] == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
    }


def test_a_full_database_is_a_503_that_says_so_without_saying_where(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'tiny.sqlite3'}")
    event.listen(engine, "connect", lambda connection, _record: connection.execute("PRAGMA max_page_count=16"))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE filler (b BLOB)")
        with pytest.raises(StoreFullError) as caught, translate_errors(), engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO filler VALUES (randomblob(1000000))")
    finally:
        engine.dispose()
    problem = problem_for(caught.value)
    assert problem.detail is not None
    assert problem.status == 503 and "disk is full" in problem.detail and "try again later" in problem.detail
    assert str(tmp_path) not in problem.detail
    assert int(problem.headers["Retry-After"]) > 0
