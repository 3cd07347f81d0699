"""EPCIS capture with LEDGER_EPCIS_CAPTURE_BATCH_SCANS on, on a real anvil and SQLite: a document's observation
events go to the scan batcher (one scan per item, the job naming each item's batch and place), its other events
stay transactions, and once anchored and indexed the batched ones are in the items' histories with their proof;
the same document sent again queues nothing twice, and a capture that dies between queueing the scans and marking
their events queues them once when the document is sent again."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

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
