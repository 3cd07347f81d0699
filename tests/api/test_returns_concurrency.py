"""50 concurrent identical return requests for one item create exactly one return and one escrow deposit,
and every caller gets a consistent answer naming it."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from ledger_service.store import returns
from tests.api.conftest import ApiEnv, make_client
from tests.api.flows import PRICE, Flow, Sold

CALLERS = 50


@pytest.fixture(scope="module")
def flow(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> Flow:
    made = Flow(client, api_env, keys)
    made.publish(fast_refund=True)
    return made


def authorizations(flow: Flow, item_id: str, from_block: int) -> list[str]:
    """Return ids of the ReturnAuthorized events of ``item_id`` on-chain since ``from_block``."""
    escrow = flow.env.deployed.escrow
    logs = escrow.events.ReturnAuthorized().get_logs(
        from_block=from_block, argument_filters={"itemId": bytes.fromhex(item_id[2:])}
    )
    return ["0x" + bytes(log["args"]["returnId"]).hex() for log in logs]


def storm(flow: Flow, sold: Sold, headers: dict[str, str]) -> list[tuple[int, dict[str, object]]]:
    def send(_: int) -> tuple[int, dict[str, object]]:
        response = flow.client.post(
            "/v1/returns", headers=sold.auth | headers, json={"reason_code": "damaged", "comment": "same"}
        )
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=CALLERS) as pool:
        return list(pool.map(send, range(CALLERS)))


def test_without_an_idempotency_key_one_approval_and_49_conflicts_naming_it(flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    start = flow.w3.eth.block_number
    escrow_before = flow.escrow_balance()
    answers = storm(flow, sold, {})
    approvals = [body for status, body in answers if status == 201]
    assert len(approvals) == 1, answers
    rma = approvals[0]["return_id"]
    assert approvals[0]["outcome"] == "approve" and isinstance(rma, str)
    conflicts = [body for status, body in answers if status == 409]
    assert len(conflicts) == CALLERS - 1, [a for a in answers if a[0] not in (201, 409)]
    assert all(rma in str(body["detail"]) for body in conflicts)
    assert authorizations(flow, sold.item_id, start) == [rma]
    assert flow.escrow_balance() == escrow_before + PRICE
    flow.env.wait_indexed()
    assert returns.list_returns(flow.env.store, item_id=sold.item_id).count == 1


def test_with_one_idempotency_key_all_50_get_the_same_answer(flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    start = flow.w3.eth.block_number
    escrow_before = flow.escrow_balance()
    answers = storm(flow, sold, {"Idempotency-Key": str(uuid.uuid4())})
    assert {status for status, _ in answers} == {201}
    bodies = {str(body) for _, body in answers}
    assert len(bodies) == 1
    rma = answers[0][1]["return_id"]
    assert authorizations(flow, sold.item_id, start) == [rma]
    assert flow.escrow_balance() == escrow_before + PRICE


def test_a_second_replica_is_stopped_by_the_item_slot(flow: Flow, api_env: ApiEnv) -> None:
    """Two applications on one database (two API replicas): the shared item slot and the contract keep it to one."""
    sold = flow.sold_and_delivered()
    start = flow.w3.eth.block_number
    with make_client(api_env) as other:

        def send(n: int) -> int:
            client = flow.client if n % 2 else other
            return int(client.post("/v1/returns", headers=sold.auth, json={"reason_code": "damaged"}).status_code)

        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(pool.map(send, range(20)))
    assert statuses.count(201) == 1 and statuses.count(409) == 19, statuses
    assert len(authorizations(flow, sold.item_id, start)) == 1
