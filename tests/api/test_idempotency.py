"""Idempotency-Key: a retried POST is answered from the first run, never run twice."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from ledger_service.store import idempotency
from tests.api.conftest import ApiEnv, bearer, make_client
from tests.api.probe import COUNTER, router


@pytest.fixture(scope="module")
def probe(api_env: ApiEnv) -> Iterator[TestClient]:
    with make_client(api_env, [router], raise_server_exceptions=False) as client:
        yield client


def post(client: TestClient, key: str | None, api_key: str, body: dict[str, object]) -> object:
    headers = bearer(api_key) | ({"Idempotency-Key": key} if key else {})
    return client.post("/v1/probe/counter", headers=headers, json=body)


def test_without_a_key_every_request_runs(probe: TestClient, keys: dict[str, str]) -> None:
    before = COUNTER.runs
    first = probe.post("/v1/probe/counter", headers=bearer(keys["merchant"]), json={"n": 1})
    second = probe.post("/v1/probe/counter", headers=bearer(keys["merchant"]), json={"n": 1})
    assert first.status_code == second.status_code == 201
    assert COUNTER.runs == before + 2


def test_a_retry_replays_the_first_response(probe: TestClient, keys: dict[str, str]) -> None:
    key = str(uuid.uuid4())
    before = COUNTER.runs
    first = probe.post("/v1/probe/counter", headers=bearer(keys["merchant"]) | {"Idempotency-Key": key}, json={"n": 7})
    again = probe.post("/v1/probe/counter", headers=bearer(keys["merchant"]) | {"Idempotency-Key": key}, json={"n": 7})
    assert first.status_code == again.status_code == 201
    assert again.text == first.text and first.json() == {"n": 7, "run": before + 1}
    assert again.headers["idempotency-replayed"] == "true" and "idempotency-replayed" not in first.headers
    assert again.headers["content-type"] == "application/json"
    assert COUNTER.runs == before + 1


def test_the_same_key_for_another_request_is_a_422(probe: TestClient, keys: dict[str, str]) -> None:
    key = str(uuid.uuid4())
    headers = bearer(keys["merchant"]) | {"Idempotency-Key": key}
    assert probe.post("/v1/probe/counter", headers=headers, json={"n": 1}).status_code == 201
    response = probe.post("/v1/probe/counter", headers=headers, json={"n": 2})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "was used for a different request (POST /v1/probe/counter" in response.json()["detail"]


def test_keys_belong_to_their_caller(probe: TestClient, keys: dict[str, str]) -> None:
    key = str(uuid.uuid4())
    before = COUNTER.runs
    mine = probe.post("/v1/probe/counter", headers=bearer(keys["merchant"]) | {"Idempotency-Key": key}, json={"n": 3})
    theirs = probe.post("/v1/probe/counter", headers=bearer(keys["carrier"]) | {"Idempotency-Key": key}, json={"n": 3})
    assert mine.json()["run"] != theirs.json()["run"]
    assert COUNTER.runs == before + 2


def test_concurrent_duplicates_run_once_and_all_get_the_same_answer(probe: TestClient, keys: dict[str, str]) -> None:
    key = str(uuid.uuid4())
    before = COUNTER.runs
    headers = bearer(keys["merchant"]) | {"Idempotency-Key": key}

    def send(_: int) -> tuple[int, str]:
        response = probe.post("/v1/probe/counter", headers=headers, json={"n": 5, "delay": 0.3})
        return response.status_code, response.text

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(send, range(20)))
    assert COUNTER.runs == before + 1
    assert {status for status, _ in answers} == {201}
    assert len({text for _, text in answers}) == 1


def test_a_refusal_is_stored_and_replayed(probe: TestClient, keys: dict[str, str]) -> None:
    key = str(uuid.uuid4())
    headers = bearer(keys["merchant"]) | {"Idempotency-Key": key}
    before = COUNTER.runs
    first = probe.post("/v1/probe/counter", headers=headers, json={"n": 1, "outcome": "conflict"})
    again = probe.post("/v1/probe/counter", headers=headers, json={"n": 1, "outcome": "conflict"})
    assert first.status_code == again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json() == first.json() and first.json()["detail"] == f"conflict number {before + 1}"
    assert COUNTER.runs == before + 1


@pytest.mark.parametrize(("outcome", "status"), [("retryable", 503), ("crash", 500)])
def test_a_failure_of_the_service_is_not_stored(
    probe: TestClient, keys: dict[str, str], api_env: ApiEnv, outcome: str, status: int
) -> None:
    key = str(uuid.uuid4())
    headers = bearer(keys["merchant"]) | {"Idempotency-Key": key}
    before = COUNTER.runs
    assert probe.post("/v1/probe/counter", headers=headers, json={"n": 1, "outcome": outcome}).status_code == status
    assert idempotency.get_idempotency_key(api_env.store, actor=_principal(api_env, keys), key=key) is None
    assert probe.post("/v1/probe/counter", headers=headers, json={"n": 1, "outcome": outcome}).status_code == status
    assert COUNTER.runs == before + 2  # the retry ran again


def _as_if_still_running(api_env: ApiEnv, key: str, *, since: int) -> None:
    """Turns a stored response back into an in-progress claim, as if its request were still running."""
    from sqlalchemy import update

    from ledger_service.store._db import write_transaction
    from ledger_service.store.tables import idempotency_keys

    with write_transaction(api_env.store.engine) as conn:
        conn.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.idempotency_key == key)
            .values(status=None, response_body=None, created_at=since)
        )


def test_a_duplicate_of_a_request_still_running_waits_then_gets_a_409(
    probe: TestClient, keys: dict[str, str], api_env: ApiEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    import api.idempotency

    monkeypatch.setattr(api.idempotency, "IDEMPOTENCY_WAIT_S", 0.3)
    key = str(uuid.uuid4())
    headers = bearer(keys["merchant"]) | {"Idempotency-Key": key}
    assert probe.post("/v1/probe/counter", headers=headers, json={"n": 9}).status_code == 201
    _as_if_still_running(api_env, key, since=int(time.time()))
    before = COUNTER.runs
    started = time.monotonic()
    busy = probe.post("/v1/probe/counter", headers=headers, json={"n": 9})
    assert busy.status_code == 409 and time.monotonic() - started >= 0.3
    assert "still being processed" in busy.json()["detail"]
    assert COUNTER.runs == before


def test_a_claim_whose_process_died_is_taken_over_after_the_lease(
    probe: TestClient, keys: dict[str, str], api_env: ApiEnv
) -> None:
    from ledger_service.settings import IDEMPOTENCY_LEASE_S

    key = str(uuid.uuid4())
    headers = bearer(keys["merchant"]) | {"Idempotency-Key": key}
    assert probe.post("/v1/probe/counter", headers=headers, json={"n": 4}).status_code == 201
    _as_if_still_running(api_env, key, since=int(time.time()) - IDEMPOTENCY_LEASE_S - 1)
    before = COUNTER.runs
    response = probe.post("/v1/probe/counter", headers=headers, json={"n": 4})
    assert response.status_code == 201 and "idempotency-replayed" not in response.headers
    assert COUNTER.runs == before + 1


def _principal(api_env: ApiEnv, keys: dict[str, str]) -> str:
    from ledger_service.access import verify_api_key

    return verify_api_key(store=api_env.store, presented=keys["merchant"]).principal


def test_a_write_whose_wait_timed_out_is_not_run_again(
    probe: TestClient, keys: dict[str, str], api_env: ApiEnv
) -> None:
    key = str(uuid.uuid4())
    headers = bearer(keys["merchant"]) | {"Idempotency-Key": key}
    before = COUNTER.runs
    first = probe.post("/v1/probe/counter?wait_for=1000000", headers=headers, json={"n": 2})
    again = probe.post("/v1/probe/counter?wait_for=1000000", headers=headers, json={"n": 2})
    assert first.status_code == again.status_code == 504
    assert again.headers["idempotency-replayed"] == "true" and again.json() == first.json()
    assert COUNTER.runs == before + 1
