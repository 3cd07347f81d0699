"""Return tokens end with their sale and expire; a revocation reaches a running API without waiting for its cache."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from httpx import Response

from ledger_service.access import Role, _cache, create_api_key, issue_return_token
from ledger_service.access._secrets import hash_secret
from ledger_service.store import credentials
from tests.api.conftest import ApiEnv, bearer, make_client, return_token
from tests.api.flows import LOCATION, PRICE, Flow, Sold, ok, problem
from tests.support.chain import MERCHANT


@pytest.fixture(scope="module")
def flow(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> Flow:
    made = Flow(client, api_env, keys)
    made.publish()
    return made


def _came_back(flow: Flow, sold: Sold) -> None:
    """A return of ``sold`` that went all the way: the item came back and its sale ended."""
    flow.deliver(sold)
    rma = ok(flow.request(sold), 201)["return_id"]
    flow.scan(rma, "in_transit")
    flow.scan(rma, "delivered_to_merchant")
    flow.inspect(rma, passed=True)


def _eligibility(flow: Flow, sold: Sold) -> Response:
    response: Response = flow.client.get(f"/v1/items/{sold.item_id}/eligibility", headers=sold.auth)
    return response


def test_a_resale_through_the_api_ends_the_earlier_token(flow: Flow) -> None:
    first = flow.sell()
    _came_back(flow, first)
    ok(_eligibility(flow, first))  # the sale ended, but the token still shows the buyer their item
    second = flow.sell(first.item_id)
    detail = problem(_eligibility(flow, first), 401)["detail"]
    assert "revoked" in detail and "sold again" in detail
    ok(_eligibility(flow, second))


def test_a_resale_recorded_on_chain_without_the_api_ends_the_earlier_token(flow: Flow, api_env: ApiEnv) -> None:
    first = flow.sell()
    _came_back(flow, first)
    _cache.clear()  # a worker that has not seen the token for a while
    escrow = api_env.deployed.escrow.functions
    tx = escrow.recordSale(
        bytes.fromhex(first.item_id[2:]),
        Account.create().address,
        api_env.deployed.token.address,
        PRICE,
        b"\0" * 32,
        LOCATION,
    ).transact({"from": api_env.accounts[MERCHANT]})
    api_env.wait_indexed(api_env.deployed.w3.eth.wait_for_transaction_receipt(tx)["blockNumber"])
    assert "for an earlier sale of this item" in problem(_eligibility(flow, first), 401)["detail"]


def test_a_sales_token_expires_after_the_configured_lifetime(api_env: ApiEnv, keys: dict[str, str]) -> None:
    settings = api_env.settings.model_copy(update={"return_token_ttl_s": 7200})
    with make_client(ApiEnv(**{**api_env.__dict__, "settings": settings})) as client:
        flow = Flow(client, api_env, keys)
        flow.publish()
        before = int(time.time())
        sold = flow.sell()
        row = credentials.return_token_by_hash(api_env.store, hash_secret(sold.token))
        assert row is not None and row.expires_at is not None
        assert before + 7200 <= row.expires_at <= int(time.time()) + 7200
        expired = issue_return_token(
            store=api_env.store, item_id=sold.item_id, consumer=sold.consumer, sale_seq=1, ttl_s=60, now=before - 61
        )
        detail = problem(client.get(f"/v1/items/{sold.item_id}/eligibility", headers=return_token(expired)), 401)
        assert "expired on" in detail["detail"]


@pytest.fixture
def watching(api_env: ApiEnv, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The API with a fast revocation poll and a credential cache that would otherwise believe a key for an hour."""
    monkeypatch.setattr(_cache, "VERIFIED_TTL_S", 3600.0)
    settings = api_env.settings.model_copy(update={"revocation_poll_s": 0.05})
    with make_client(ApiEnv(**{**api_env.__dict__, "settings": settings})) as client:
        yield client


def _refused_soon(client: TestClient, url: str, headers: dict[str, str], before: int) -> str:
    """The detail of the 401 that ``url`` answers once the revocation reached the API (until then it answers
    ``before``, what it answered before the revocation: read by the caller before revoking, since the poll may
    see the revocation at once)."""
    assert before != 401
    deadline = time.monotonic() + 30  # only a bound for failing: the poll runs every 0.05 s
    while True:
        answer = client.get(url, headers=headers)
        if answer.status_code == 401:
            return str(answer.json()["detail"])
        assert answer.status_code == before and time.monotonic() < deadline, "the revocation did not reach the API"
        time.sleep(0.02)


def test_a_key_revoked_by_another_process_is_refused_without_waiting_for_the_cache(
    watching: TestClient, api_env: ApiEnv
) -> None:
    created = create_api_key(store=api_env.store, role=Role.AUDITOR, name="revoked elsewhere")
    url = "/v1/items/0x" + "00" * 32 + "/eligibility"  # the hot read: answered from the cache by the shortcut
    headers = bearer(created.plaintext)
    before = watching.get(url, headers=headers).status_code
    assert before != 401  # verified, cached
    # what `ledger-admin keys revoke` does in its own process: the database only, not this process's cache
    credentials.revoke_api_key(api_env.store, key_id=created.key.id, revoked_at=int(time.time()))
    assert "revoked on" in _refused_soon(watching, url, headers, before)


def test_tokens_revoked_by_another_process_are_refused_without_waiting_for_the_cache(
    watching: TestClient, api_env: ApiEnv
) -> None:
    item = "0x" + "f7" * 32
    token = issue_return_token(store=api_env.store, item_id=item, consumer=api_env.accounts[7], sale_seq=1)
    url = f"/v1/items/{item}/eligibility"
    assert watching.get(url, headers=return_token(token)).status_code == 200
    credentials.revoke_return_tokens(api_env.store, item_id=item, revoked_at=int(time.time()))
    assert "revoked" in _refused_soon(watching, url, return_token(token), 200)
