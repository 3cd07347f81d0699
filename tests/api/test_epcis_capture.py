"""POST /v1/epcis/capture and its job, against a real anvil, SQLite and the indexer: documents captured whole
or not at all, every bad input named, re-sending safe, the same document captured twice at once recorded once.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ledger_service.capture import jobs, ledger_tx
from ledger_service.epcis.document import item_id_of
from ledger_service.store.tables import epcis_events, item_events, items
from tests.api.conftest import ApiEnv, bearer
from tests.api.epcis_docs import aggregation, body, commissioning, document, event, new_epc, when
from tests.support.chain import MERCHANT, MERCHANT2

LD = {"Content-Type": "application/ld+json"}


def submit(client: TestClient, key: str, doc: dict[str, Any] | bytes) -> Any:
    raw = doc if isinstance(doc, bytes) else body(doc)
    return client.post("/v1/epcis/capture", content=raw, headers={**bearer(key), **LD})


def finished(client: TestClient, key: str, location: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = client.get(location, headers=bearer(key))
        assert answer.status_code == 200, answer.text
        job: dict[str, Any] = answer.json()
        if job["state"] != "running":
            return job
        time.sleep(0.05)
    raise AssertionError(f"capture {location} still running after {timeout} s")


def capture(client: TestClient, key: str, doc: dict[str, Any]) -> dict[str, Any]:
    answer = submit(client, key, doc)
    assert answer.status_code == 202, answer.text
    assert answer.headers["location"] == f"/v1/epcis/capture/{answer.json()['captureID']}"
    return finished(client, key, answer.headers["location"])


def merchant_of(api_env: ApiEnv) -> str:
    return api_env.accounts[MERCHANT]


def count_events(api_env: ApiEnv, epc: str) -> int:
    with api_env.store.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(item_events).where(item_events.c.item_id == item_id_of(epc))
            ).scalar_one()
        )


def test_commissioning_and_later_events_are_recorded_on_chain_and_indexed(
    client: TestClient, api_env: ApiEnv, keys: dict[str, str]
) -> None:
    a, b = new_epc(), new_epc()
    job = capture(client, keys["manufacturer"], document(commissioning([a, b], merchant=merchant_of(api_env))))
    assert job["state"] == "succeeded", job
    assert (job["eventCount"], job["captured"], job["duplicates"], job["errors"]) == (1, 1, 0, [])
    shipped = capture(
        client,
        keys["merchant"],
        document(event([a, b], minutes=10), aggregation("urn:epc:id:sscc:0614141.1234567890", [a], minutes=20)),
    )
    assert shipped["state"] == "succeeded", shipped
    api_env.wait_indexed()
    assert count_events(api_env, a) == 3  # commissioning, shipping, packing
    assert count_events(api_env, b) == 2
    with api_env.store.engine.connect() as conn:
        row = conn.execute(select(items).where(items.c.item_id == item_id_of(a))).one()
    assert row.merchant == merchant_of(api_env).lower()


def test_the_same_document_sent_again_records_nothing_twice(
    client: TestClient, api_env: ApiEnv, keys: dict[str, str]
) -> None:
    epc = new_epc()
    doc = document(commissioning([epc], merchant=merchant_of(api_env)))
    assert capture(client, keys["manufacturer"], doc)["captured"] == 1
    again = capture(client, keys["manufacturer"], doc)
    assert (again["state"], again["captured"], again["duplicates"]) == ("succeeded", 0, 1)
    api_env.wait_indexed()
    assert count_events(api_env, epc) == 1


def test_one_document_captured_twice_at_the_same_time_records_each_event_once(
    client: TestClient, api_env: ApiEnv, keys: dict[str, str]
) -> None:
    epcs = [new_epc() for _ in range(3)]
    capture(client, keys["manufacturer"], document(commissioning(epcs, merchant=merchant_of(api_env))))
    doc = document(*(event([epc], minutes=30 + i) for i, epc in enumerate(epcs)))
    locations: list[str] = []
    start = threading.Barrier(2)

    def send() -> None:
        start.wait()
        answer = submit(client, keys["merchant"], doc)
        assert answer.status_code == 202, answer.text
        locations.append(answer.headers["location"])

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    jobs = [finished(client, keys["merchant"], location) for location in locations]
    assert all(job["state"] == "succeeded" for job in jobs), jobs
    assert sorted(job["captured"] for job in jobs) == [0, 3]
    assert sum(job["duplicates"] for job in jobs) == 3
    api_env.wait_indexed()
    assert [count_events(api_env, epc) for epc in epcs] == [2, 2, 2]


def problem_of(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    found: dict[str, Any] = answer.json()
    return found


def test_malformed_json_is_a_400(client: TestClient, keys: dict[str, str]) -> None:
    problem = problem_of(submit(client, keys["merchant"], b'{"type": "EPCISDocument", "epcisBody": '), 400)
    assert "not valid JSON" in problem["detail"]


@pytest.mark.parametrize(
    "body",
    [b'["\\ud800"]', b'{"type": "EPCISDocument", "epcisBody": {"eventList": [{"x\\udc00y": 1}]}}'],
    ids=["value", "key"],
)
def test_a_lone_surrogate_escape_is_a_400_not_a_crash(client: TestClient, keys: dict[str, str], body: bytes) -> None:
    # JSON may escape a UTF-16 surrogate alone, which is no character: the schema check could not encode it
    problem = problem_of(submit(client, keys["merchant"], body), 400)
    assert "lone UTF-16 surrogate" in problem["detail"]


def test_a_schema_violation_names_each_value_by_its_pointer(client: TestClient, keys: dict[str, str]) -> None:
    bad = event([new_epc()])
    bad["eventTime"] = "yesterday"
    del bad["eventTimeZoneOffset"]
    problem = problem_of(submit(client, keys["merchant"], document(event([new_epc()]), bad)), 422)
    locs = {tuple(e["loc"]) for e in problem["errors"]}
    assert ("body", "epcisBody", "eventList", 1, "eventTime") in locs
    assert ("body", "epcisBody", "eventList", 1) in locs  # the missing eventTimeZoneOffset
    assert "#1" in problem["detail"] and "#0" not in problem["detail"]


def test_an_unknown_bizstep_or_disposition_is_refused_by_name(client: TestClient, keys: dict[str, str]) -> None:
    doc = document(
        event([new_epc()], biz_step="urn:epcglobal:cbv:bizstep:flying"),
        event([new_epc()], disposition="https://ref.gs1.org/cbv/Disp-lost_in_space"),
    )
    problem = problem_of(submit(client, keys["merchant"], doc), 422)
    messages = " ".join(e["msg"] for e in problem["errors"])
    assert "bizStep 'urn:epcglobal:cbv:bizstep:flying': EPCIS 2.0 JSON writes CBV terms by their bare name" in messages
    assert "lost_in_space" in messages


def test_an_epc_that_is_not_an_sgtin_or_digital_link_is_refused(client: TestClient, keys: dict[str, str]) -> None:
    problem = problem_of(submit(client, keys["merchant"], document(event(["urn:epc:id:sscc:0614141.1234567890"]))), 422)
    [error] = problem["errors"]
    assert error["loc"] == ["body", "epcisBody", "eventList", 0, "epcList", 0]
    assert "not an SGTIN URI or a GS1 Digital Link" in error["msg"]


def test_an_item_the_actor_may_not_write_fails_the_job_and_records_nothing(
    client: TestClient, api_env: ApiEnv, keys: dict[str, str]
) -> None:
    epc = new_epc()
    capture(client, keys["manufacturer"], document(commissioning([epc], merchant=merchant_of(api_env))))
    other = new_epc()
    capture(client, keys["manufacturer"], document(commissioning([other], merchant=merchant_of(api_env))))
    job = capture(client, keys["merchant2"], document(event([other], minutes=40), event([epc], minutes=40)))
    assert job["state"] == "failed"
    assert [e["index"] for e in job["errors"]] == [0, 1]
    assert "neither the item's merchant of record" in job["errors"][0]["message"]
    assert job["captured"] == 0
    api_env.wait_indexed()
    assert count_events(api_env, epc) == 1


def test_an_event_dated_before_the_items_last_event_is_refused(
    client: TestClient, api_env: ApiEnv, keys: dict[str, str]
) -> None:
    epc = new_epc()
    capture(client, keys["manufacturer"], document(commissioning([epc], merchant=merchant_of(api_env), minutes=60)))
    job = capture(client, keys["merchant"], document(event([epc], minutes=30)))
    assert job["state"] == "failed"
    [error] = job["errors"]
    assert error["pointer"] == "/epcisBody/eventList/0/eventTime"
    assert f"before item {epc}'s last event ({when(60)[:19]}" in error["message"]


def test_a_document_mixing_valid_and_invalid_events_captures_nothing_and_names_every_invalid_one(
    client: TestClient, api_env: ApiEnv, keys: dict[str, str]
) -> None:
    good, unregistered = new_epc(), new_epc()
    doc = document(
        commissioning([good], merchant=merchant_of(api_env)),
        event([unregistered], minutes=10),
        event([good], minutes=20),
        event([new_epc()], minutes=30),
    )
    job = capture(client, keys["manufacturer"], doc)
    assert job["state"] == "failed"
    assert [e["index"] for e in job["errors"]] == [1, 3]
    assert all("is not registered on the ledger" in e["message"] for e in job["errors"])
    api_env.wait_indexed()
    assert count_events(api_env, good) == 0
    with api_env.store.engine.connect() as conn:
        assert (
            conn.execute(
                select(func.count()).select_from(epcis_events).where(epcis_events.c.state == "claimed")
            ).scalar_one()
            == 0
        )


def test_a_document_over_the_limit_is_a_413_before_it_is_read(
    client: TestClient, keys: dict[str, str], api_env: ApiEnv
) -> None:
    limit = api_env.settings.epcis_capture_max_bytes
    answer = client.post(
        "/v1/epcis/capture",
        content=b" " * (limit + 1),
        headers={**bearer(keys["merchant"]), **LD},
    )
    problem = problem_of(answer, 413)
    assert str(limit) in problem["detail"]


def test_keys_without_an_account_cannot_capture(client: TestClient, keys: dict[str, str]) -> None:
    problem_of(submit(client, keys["auditor"], document(event([new_epc()]))), 403)


def test_a_race_after_sending_began_is_reported_per_event_and_healed_by_sending_again(
    client: TestClient, api_env: ApiEnv, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer moves an item to another merchant between the dry run and the sending: the event on the
    other item is on-chain, the moved item's is not and is named; once the item is back, the same document
    captures exactly the missing event."""
    first, moved = new_epc(), new_epc()
    merchant, other = api_env.accounts[MERCHANT], api_env.accounts[MERCHANT2]
    capture(client, keys["manufacturer"], document(commissioning([first, moved], merchant=merchant)))
    ledger = api_env.deployed.ledger.functions
    w3 = api_env.deployed.w3

    def transfer(to: str, by: str) -> None:
        w3.eth.wait_for_transaction_receipt(
            ledger.transferMerchantOfRecord(item_id_of(moved), to).transact({"from": by})
        )

    real_send = ledger_tx.send  # what jobs calls

    def racing_send(*args: Any, **kwargs: Any) -> Any:
        transfer(other, merchant)  # the race: after every check and the dry run, before the first transaction
        monkeypatch.setattr(jobs, "send", real_send)
        return real_send(*args, **kwargs)

    monkeypatch.setattr(jobs, "send", racing_send)
    monkeypatch.setattr(jobs, "read_max_batch", lambda chain: 1)  # one transaction per event
    doc = document(event([first], minutes=10), event([moved], minutes=10))
    raced = capture(client, keys["merchant"], doc)
    assert (raced["state"], raced["captured"]) == ("failed", 1), raced
    [error] = raced["errors"]
    assert error["index"] == 1 and error["pointer"] == "/epcisBody/eventList/1"
    assert "send the same document again" in error["message"]
    transfer(merchant, other)
    api_env.wait_indexed()
    healed = capture(client, keys["merchant"], doc)
    assert (healed["state"], healed["captured"], healed["duplicates"]) == ("succeeded", 1, 1), healed
    api_env.wait_indexed()
    assert (count_events(api_env, first), count_events(api_env, moved)) == (2, 2)
