"""Idempotency records keep no secret, belong to one credential, and expire (purged by the running API)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ledger_service.access import issue_return_token
from ledger_service.store import idempotency
from tests.api.conftest import ApiEnv, bearer, make_client, return_token
from tests.api.flows import Flow, ok
from tests.api.probe import COUNTER, router


@pytest.fixture(scope="module")
def flow(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> Flow:
    made = Flow(client, api_env, keys)
    made.publish()
    return made


def _database_bytes(api_env: ApiEnv) -> bytes:
    """Every byte of the SQLite index as it is on disk (the file and its write-ahead log)."""
    path = Path(api_env.settings.database_url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*") if p.is_file())


def test_a_replayed_sale_gives_back_its_token_which_is_nowhere_at_rest(flow: Flow, api_env: ApiEnv) -> None:
    item = flow.register()
    body = {"item_id": item, "consumer": "0x" + "5a" * 20, "price": "1000000", "order_ref": "A-7"}
    headers = bearer(flow.keys["merchant"]) | {"Idempotency-Key": str(uuid.uuid4())}
    first = ok(flow.client.post("/v1/sales", headers=headers, json=body), 201)
    again = flow.client.post("/v1/sales", headers=headers, json=body)
    assert again.headers["idempotency-replayed"] == "true"
    assert ok(again, 201) == first  # the retrying client gets its token (it needs it)
    token = first["return_token"]
    assert ok(flow.client.get(f"/v1/items/{item}/eligibility", headers=return_token(token)))["item_id"] == item
    assert token.encode() not in _database_bytes(api_env)
    assert token[4:].encode() not in _database_bytes(api_env)


def test_another_credential_cannot_read_a_stored_answer(flow: Flow, api_env: ApiEnv) -> None:
    """The stored answer opens only with the credential that made it (which the database does not hold)."""
    item = flow.register()
    key = str(uuid.uuid4())
    body = {"item_id": item, "consumer": "0x" + "5b" * 20, "price": "1000000"}
    ok(flow.client.post("/v1/sales", headers=bearer(flow.keys["merchant"]) | {"Idempotency-Key": key}, json=body), 201)
    from ledger_service.access import unseal, verify_api_key

    actor = verify_api_key(store=api_env.store, presented=flow.keys["merchant"]).principal
    row = idempotency.get_idempotency_key(api_env.store, actor=actor, key=key)
    assert row is not None and row.response_body is not None and "rrt_" not in row.response_body
    context = f"{actor}\0{key}\0{row.request_hash}"
    assert unseal(row.response_body, credential=flow.keys["merchant2"], context=context) is None
    opened = unseal(row.response_body, credential=flow.keys["merchant"], context=context)
    assert opened is not None and opened.startswith("{") and '"return_token":"rrt_' in opened


@pytest.fixture(scope="module")
def probe(api_env: ApiEnv) -> Iterator[TestClient]:
    with make_client(api_env, [router], raise_server_exceptions=False) as client:
        yield client


def test_one_consumers_two_purchases_do_not_share_an_idempotency_key(probe: TestClient, api_env: ApiEnv) -> None:
    """The key is the credential's, not the consumer address's: a second purchase's request with the same key
    runs (it used to get the first purchase's answer)."""
    consumer = api_env.accounts[7]
    first = issue_return_token(store=api_env.store, item_id="0x" + "e1" * 32, consumer=consumer, sale_seq=1)
    second = issue_return_token(store=api_env.store, item_id="0x" + "e2" * 32, consumer=consumer, sale_seq=1)
    key = {"Idempotency-Key": "checkout-42"}
    before = COUNTER.runs
    mine = probe.post("/v1/probe/counter", headers=return_token(first) | key, json={"n": 1})
    theirs = probe.post("/v1/probe/counter", headers=return_token(second) | key, json={"n": 1})
    assert mine.status_code == theirs.status_code == 201
    assert "idempotency-replayed" not in theirs.headers
    assert mine.json()["run"] != theirs.json()["run"] and COUNTER.runs == before + 2
    again = probe.post("/v1/probe/counter", headers=return_token(second) | key, json={"n": 1})
    assert again.headers["idempotency-replayed"] == "true" and again.json() == theirs.json()


def test_an_expired_record_is_not_replayed(probe: TestClient, keys: dict[str, str], api_env: ApiEnv) -> None:
    from ledger_service.access import verify_api_key

    key = str(uuid.uuid4())
    headers = bearer(keys["merchant"]) | {"Idempotency-Key": key}
    assert probe.post("/v1/probe/counter", headers=headers, json={"n": 1}).status_code == 201
    _age(api_env, key, by=api_env.settings.idempotency_ttl_s)
    before = COUNTER.runs
    # another request under the expired key: a new request, not a 422 for reusing the key
    response = probe.post("/v1/probe/counter", headers=headers, json={"n": 2})
    assert response.status_code == 201 and "idempotency-replayed" not in response.headers
    assert COUNTER.runs == before + 1
    actor = verify_api_key(store=api_env.store, presented=keys["merchant"]).principal
    row = idempotency.get_idempotency_key(api_env.store, actor=actor, key=key)
    assert row is not None and row.created_at >= int(time.time()) - 60


def _age(api_env: ApiEnv, key: str, *, by: int) -> None:
    from sqlalchemy import update

    from ledger_service.store._db import write_transaction
    from ledger_service.store.tables import idempotency_keys

    with write_transaction(api_env.store.engine) as conn:
        conn.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.idempotency_key == key)
            .values(created_at=idempotency_keys.c.created_at - by)
        )


def test_the_running_api_purges_expired_records(api_env: ApiEnv, keys: dict[str, str]) -> None:
    settings = api_env.settings.model_copy(update={"idempotency_purge_interval_s": 0.05})
    old, fresh = str(uuid.uuid4()), str(uuid.uuid4())
    env = ApiEnv(**{**api_env.__dict__, "settings": settings})
    with make_client(env, [router]) as client:
        for key in (old, fresh):
            headers = bearer(keys["auditor"]) | {"Idempotency-Key": key}
            assert client.post("/v1/probe/counter", headers=headers, json={"n": 3}).status_code == 201
        _age(api_env, old, by=settings.idempotency_ttl_s)
        from ledger_service.access import verify_api_key

        actor = verify_api_key(store=api_env.store, presented=keys["auditor"]).principal
        deadline = time.monotonic() + 30
        while idempotency.get_idempotency_key(api_env.store, actor=actor, key=old) is not None:
            assert time.monotonic() < deadline, "the expired record was not purged"
            time.sleep(0.05)
        assert idempotency.get_idempotency_key(api_env.store, actor=actor, key=fresh) is not None
