"""EPCIS capture with LEDGER_EPCIS_CAPTURE_BATCH_SCANS on, on a real anvil and SQLite: a document's observation
events go to the scan batcher (one scan per item, the job naming each item's batch and place), its other events
stay transactions, and once anchored and indexed the batched ones are in the items' histories with their proof;
the same document sent again queues nothing twice, and a capture that dies between queueing the scans and marking
their events queues them once when the document is sent again."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, func, select

from ledger_service.epcis.document import item_id_of
from ledger_service.store import scan_queue
from ledger_service.store.scan_queue import scans_of
from ledger_service.store.tables import queued_scans
from tests.api.conftest import ApiEnv, bearer, make_client
from tests.api.epcis_docs import commissioning, document, event, new_epc
from tests.api.test_epcis_capture import capture, count_events, merchant_of
from tests.api.test_scans import anchor_queued, apply_anchored
from tests.ledger_service.batcher.test_worker import _typed
from tests.support.chain import MERCHANT


@pytest.fixture(scope="module")
def client(api_env: ApiEnv) -> Iterator[TestClient]:
    # the documents' events are dated on a fixed day (epcis_docs.when): batched however old
    update = {"epcis_capture_batch_scans": True, "batch_scan_max_age_s": 100 * 365 * 86_400}
    settings = api_env.settings.model_copy(update=update)
    with make_client(dataclasses.replace(api_env, settings=settings)) as test_client:
        yield test_client


def test_observations_go_to_the_batcher_and_the_rest_stays_on_chain(
    client: TestClient, api_env: ApiEnv, keys: dict[str, str]
) -> None:
    a, b = new_epc(), new_epc()
    doc = document(
        commissioning([a, b], merchant=merchant_of(api_env)),
        event([a, b], biz_step="shipping", disposition="in_transit", minutes=10),  # an observation: batched
        event([a], biz_step="receiving", disposition="damaged", minutes=20),  # damaged stays on-chain
    )
    job = capture(client, keys["manufacturer"], doc)
    assert job["state"] == "succeeded", job
    assert (job["eventCount"], job["captured"], job["duplicates"], job["errors"]) == (3, 2, 0, [])
    [batched] = job["batched"]
    assert batched["index"] == 1 and [s["epc"] for s in batched["scans"]] == [a, b]
    batch_id = batched["scans"][0]["batchId"]
    submitter, queued = scans_of(api_env.store, batch_id)
    assert submitter == api_env.accounts[1].lower()  # the manufacturer's batch
    positions = [s["position"] for s in batched["scans"]]
    assert [queued[p].item for p in positions] == [a, b]
    shown = client.get(f"/v1/scans/batches/{batch_id}", headers=bearer(keys["manufacturer"]))
    assert shown.status_code == 200 and shown.json()["scan_count"] >= 2

    api_env.wait_indexed()
    assert count_events(api_env, a) == 2  # commissioning and receiving: the shipping scan is no item event
    assert count_events(api_env, b) == 1

    again = capture(client, keys["manufacturer"], doc)  # nothing twice: every event is known
    assert (again["captured"], again["duplicates"], again["batched"]) == (0, 3, [])

    assert anchor_queued(api_env) >= 1 and apply_anchored(api_env) >= 1
    history = client.get(f"/v1/items/{item_id_of(a)}/history", headers=bearer(keys["auditor"]))
    assert history.status_code == 200, history.text
    assert history.json()["verification"]["intact"]
    [scan] = history.json()["batched_scans"]
    assert (scan["biz_step"], scan["disposition"], scan["seq"]) == ("shipping", "in_transit", 0)
    assert scan["document"] is not None  # the captured document's digest, as an on-chain event would carry


def _queued(api_env: ApiEnv, epc: str) -> int:
    with api_env.store.engine.connect() as conn:
        return _queued_in(conn, epc)


def test_a_capture_dying_after_queueing_its_scans_before_marking_them_leaves_them_to_be_queued_once(
    client: TestClient, api_env: ApiEnv, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = new_epc(), new_epc()
    assert (
        capture(client, keys["manufacturer"], document(commissioning([a, b], merchant=merchant_of(api_env))))["state"]
        == "succeeded"
    )
    doc = document(event([a, b], biz_step="shipping", disposition="in_transit", minutes=10))

    def dies(conn: Connection, event_keys: object) -> int:  # the scans are in, the events not marked yet
        assert _queued_in(conn, a) == 1
        raise RuntimeError("the capture process died here")

    monkeypatch.setattr(scan_queue, "mark_batched_in", dies)
    failed = capture(client, keys["manufacturer"], doc)
    assert failed["state"] == "failed" and failed["batched"] == []
    assert (_queued(api_env, a), _queued(api_env, b)) == (0, 0)  # the queueing died with it
    monkeypatch.undo()

    again = capture(client, keys["manufacturer"], doc)
    assert again["state"] == "succeeded", again
    assert (again["captured"], again["duplicates"]) == (0, 0)  # captured counts on-chain events
    assert [s["epc"] for s in again["batched"][0]["scans"]] == [a, b]
    assert (_queued(api_env, a), _queued(api_env, b)) == (1, 1)
    assert capture(client, keys["manufacturer"], doc)["duplicates"] == 1  # and never again
    assert (_queued(api_env, a), _queued(api_env, b)) == (1, 1)


def _queued_in(conn: Connection, epc: str) -> int:
    stmt = select(func.count()).select_from(queued_scans).where(queued_scans.c.item == epc)
    return int(conn.execute(stmt).scalar_one())


def test_an_observation_older_than_a_batched_scan_may_be_stays_on_chain(api_env: ApiEnv, keys: dict[str, str]) -> None:
    """With the default LEDGER_BATCH_SCAN_MAX_AGE_S (a week) an observation dated on the documents' fixed day,
    months back, is recorded on-chain: batched, the indexer would refuse its whole batch for its age."""
    settings = api_env.settings.model_copy(update={"epcis_capture_batch_scans": True})
    a = new_epc()
    doc = document(
        commissioning([a], merchant=merchant_of(api_env)),
        event([a], biz_step="shipping", disposition="in_transit", minutes=10),
    )
    with make_client(dataclasses.replace(api_env, settings=settings)) as default_client:
        job = capture(default_client, keys["manufacturer"], doc)
    assert job["state"] == "succeeded", job
    assert (job["captured"], job["batched"]) == (2, [])
    assert _queued(api_env, a) == 0
    api_env.wait_indexed()
    assert count_events(api_env, a) == 2


def _events(answer: Any) -> list[dict[str, Any]]:
    assert answer.status_code == 200, answer.text
    return list(answer.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"])


def check_batched_events_served(client: TestClient, env: ApiEnv, keys: dict[str, str]) -> None:
    """A batched captured event is not served by the query interface until its scans are applied; then it is, as
    captured, with each item's batch, anchor and Merkle proof (`ledger:batch`), and the query's parameters hold."""
    a, b = new_epc(), new_epc()
    doc = document(
        commissioning([a, b], merchant=env.accounts[MERCHANT]),
        event([a, b], biz_step="shipping", disposition="in_transit", minutes=10),  # batched
        event([a], biz_step="receiving", disposition="damaged", minutes=20),  # on-chain
    )
    job = capture(client, keys["manufacturer"], doc)
    assert job["state"] == "succeeded" and job["batched"][0]["index"] == 1, job
    auditor = bearer(keys["auditor"])

    def steps(query: str, key: str = "auditor") -> list[str]:
        return [e["bizStep"] for e in _events(client.get(f"/v1/epcis/events?{query}", headers=bearer(keys[key])))]

    env.wait_indexed()
    assert steps(f"MATCH_epc={a}") == ["commissioning", "receiving"]  # not anchored yet: left out
    assert len(_events(client.get(f"/v1/epcis/events?captureID={job['captureID']}", headers=auditor))) == 2

    assert anchor_queued(env) >= 1 and apply_anchored(env) >= 1
    assert steps(f"MATCH_epc={a}") == ["commissioning", "shipping", "receiving"]
    [shipped] = _events(client.get(f"/v1/epcis/events?MATCH_epc={b}&EQ_bizStep=shipping", headers=auditor))
    assert shipped["epcList"] == [a, b] and shipped["ledger:hashID"].startswith("ni:///sha-256;")
    proofs = shipped["ledger:proofs"]
    assert sorted(p["ledger:itemId"] for p in proofs) == sorted([item_id_of(a), item_id_of(b)])
    anchor = env.deployed.anchor.functions
    for member in proofs:
        batch = member["ledger:batch"]
        leaf = tuple(
            _typed(kind, value) for kind, value in zip(batch["leafEncoding"], batch["leafValues"], strict=True)
        )
        root, path = bytes.fromhex(batch["root"][2:]), [bytes.fromhex(node[2:]) for node in batch["proof"]]
        assert anchor.verifyScan(leaf, root, path).call()  # the chain vouches for the served proof
        assert batch["anchorTx"].startswith("0x") and batch["batchDocument"].startswith("Qm")
    assert shipped["recordTime"].startswith("20")  # the anchor's block time

    # the query's parameters narrow batched events as any other
    assert steps(f"MATCH_epc={a}&EQ_bizStep=receiving") == ["receiving"]
    assert steps(f"MATCH_epc={a}&EQ_disposition=in_transit") == ["shipping"]
    assert steps(f"MATCH_epc={a}&eventType=AggregationEvent") == []
    assert steps(f"MATCH_epc={a}&GE_recordTime=2100-01-01T00:00:00Z") == []
    assert "shipping" in steps(f"MATCH_epc={a}&GE_recordTime=2000-01-01T00:00:00Z")
    assert steps(f"MATCH_epc={b}&LT_eventTime=2026-03-01T08:05:00Z") == ["commissioning"]
    assert steps(f"captureID={job['captureID']}") == ["commissioning", "shipping", "receiving"]
    assert steps(f"MATCH_epc={b}", key="merchant") == ["commissioning", "shipping"]  # the items' merchant
    assert steps(f"MATCH_epc={b}", key="merchant2") == []
    one = client.get(f"/v1/epcis/events/{quote(shipped['ledger:hashID'], safe='')}", headers=auditor)
    assert _events(one) == [shipped]


def test_batched_events_are_served_by_the_query_interface_once_applied(
    client: TestClient, api_env: ApiEnv, keys: dict[str, str]
) -> None:
    check_batched_events_served(client, api_env, keys)
