"""The token of a sale: checked when the sale is recorded, and a token that is no ERC-20 never breaks a return.

A sale's token is where the refund is escrowed. One that is not on the deployment's allow-list, or that does
not answer the ERC-20 calls the escrow makes, is refused at sale time with a 422 naming it. If one slips
through anyway (added to the allow-list by mistake), the return request and the merchant's approval answer
with a problem a person can act on, never a 500, and no raw exception text is stored or shown.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
import sqlalchemy as sa
from eth_account import Account
from fastapi.testclient import TestClient

from ledger_service.access import issue_return_token
from ledger_service.store.tables import return_requests
from tests.api.conftest import ApiEnv, bearer, make_client
from tests.api.flows import PRICE, Flow, Sold, ok, problem
from tests.support.chain import MERCHANT

RAW_MARKERS = ("execution reverted", "('", "0x')", "Traceback", "Error(", "BadFunctionCallOutput", "Web3")


@pytest.fixture(scope="module")
def flow(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> Flow:
    made = Flow(client, api_env, keys)
    made.publish(accepted_reasons=["damaged", "changed_mind"], manual_review_reasons=["changed_mind"])
    return made


def sale_body(item: str, **changes: object) -> dict[str, object]:
    return {"item_id": item, "consumer": Account.create().address, "price": str(PRICE), **changes}


def assert_not_raw(text: str) -> None:
    for marker in RAW_MARKERS:
        assert marker not in text, text


def stored_reasons(api_env: ApiEnv, request_id: str) -> Any:
    with api_env.store.engine.connect() as conn:
        row = conn.execute(sa.select(return_requests.c.reasons).where(return_requests.c.id == request_id)).one()
    return row.reasons


def test_a_contract_that_is_not_an_erc20_is_refused_at_sale_time(flow: Flow, api_env: ApiEnv) -> None:
    ledger = str(api_env.deployed.ledger.address)
    item = flow.register()
    response = flow.client.post("/v1/sales", headers=bearer(flow.keys["merchant"]), json=sale_body(item, token=ledger))
    detail = problem(response, 422)["detail"]
    assert ledger.lower() in detail.lower() and "allow" in detail
    assert_not_raw(detail)


def test_an_allowed_address_that_does_not_answer_erc20_calls_is_refused(api_env: ApiEnv, keys: dict[str, str]) -> None:
    ledger, account = str(api_env.deployed.ledger.address), api_env.accounts[7]  # a contract, an account
    settings = api_env.settings.model_copy(update={"token_allowlist": (ledger, account)})
    with make_client(dataclasses.replace(api_env, settings=settings)) as strict:
        flow = Flow(strict, api_env, keys)
        item = flow.register()
        response = strict.post("/v1/sales", headers=bearer(keys["merchant"]), json=sale_body(item, token=ledger))
        detail = problem(response, 422)["detail"]
        assert ledger.lower() in detail.lower() and "decimals()" in detail
        assert_not_raw(detail)
        response = strict.post("/v1/sales", headers=bearer(keys["merchant"]), json=sale_body(item, token=account))
        assert "no contract" in problem(response, 422)["detail"]


def test_the_deployments_stablecoin_is_always_allowed(flow: Flow, api_env: ApiEnv) -> None:
    token = str(api_env.deployed.token.address)
    sold = flow.sell(token=token)
    assert sold.token.startswith("rrt_")


def sold_on_chain(flow: Flow, *, token: str) -> Sold:
    """A sale the merchant recorded straight on-chain with ``token`` (the contract takes any address), delivered,
    with the consumer's return token issued as the API would."""
    env = flow.env
    item = flow.register()
    consumer = Account.create().address
    call = env.deployed.escrow.functions.recordSale(
        bytes.fromhex(item[2:]), consumer, token, PRICE, b"\x01" * 32, b"\0" * 32
    )
    flow.w3.eth.wait_for_transaction_receipt(call.transact({"from": env.accounts[MERCHANT]}))
    env.wait_indexed()
    sold = Sold(
        item, consumer.lower(), issue_return_token(store=env.store, item_id=item, consumer=consumer, sale_seq=1)
    )
    flow.deliver(sold)
    return sold


def test_a_non_erc20_token_that_slipped_through_gives_clear_problems(
    flow: Flow, api_env: ApiEnv, keys: dict[str, str]
) -> None:
    ledger = str(api_env.deployed.ledger.address)
    automatic = sold_on_chain(flow, token=ledger)
    response = flow.request(automatic)
    body = problem(response, 409)
    assert ledger.lower() in body["detail"].lower() and "ERC-20" in body["detail"]
    assert_not_raw(json.dumps(body))
    [request] = _requests_of(api_env, automatic.item_id)
    reasons = stored_reasons(api_env, request)
    assert [r["code"] for r in reasons] == ["authorization_failed"]
    assert_not_raw(json.dumps(reasons))
    assert_not_raw(json.dumps(ok(flow.client.get(f"/v1/returns/{request}", headers=automatic.auth))))

    queued = sold_on_chain(flow, token=ledger)
    decision = ok(flow.request(queued, "changed_mind"), 201)
    assert decision["outcome"] == "manual_review"
    approval = flow.client.post(f"/v1/returns/{decision['request_id']}/approve", headers=bearer(keys["merchant"]))
    body = problem(approval, 409)
    assert ledger.lower() in body["detail"].lower()
    assert_not_raw(json.dumps(body))
    assert_not_raw(json.dumps(stored_reasons(api_env, decision["request_id"])))
    assert_not_raw(json.dumps(ok(flow.client.get(f"/v1/returns/{decision['request_id']}", headers=queued.auth))))


def _requests_of(api_env: ApiEnv, item_id: str) -> list[str]:
    with api_env.store.engine.connect() as conn:
        rows = conn.execute(sa.select(return_requests.c.id).where(return_requests.c.item_id == item_id.lower()))
        return [r.id for r in rows]


def test_a_mixed_case_consumer_or_token_with_a_wrong_checksum_is_refused(flow: Flow, api_env: ApiEnv) -> None:
    consumer = Account.create().address
    letter = next(i for i, c in enumerate(consumer) if i > 1 and c.isalpha())
    mistyped = consumer[:letter] + consumer[letter].swapcase() + consumer[letter + 1 :]
    token = str(api_env.deployed.token.address)
    t_letter = next(i for i, c in enumerate(token) if i > 1 and c.isalpha())
    mistyped_token = token[:t_letter] + token[t_letter].swapcase() + token[t_letter + 1 :]
    merchant = bearer(flow.keys["merchant"])
    for body in (sale_body(flow.register(), consumer=mistyped), sale_body(flow.register(), token=mistyped_token)):
        assert "checksum" in problem(flow.client.post("/v1/sales", headers=merchant, json=body), 422)["detail"]
    sold = ok(
        flow.client.post("/v1/sales", headers=merchant, json=sale_body(flow.register(), consumer=consumer.lower())), 201
    )
    assert sold["consumer"] == consumer.lower()
