"""``GET /v1/scans/anchors``: the batch anchors the index holds, those waiting for their document first with why
they wait; an item history's count of waiting anchors. On anvil and SQLite, the batcher and the resolver real."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from ledger_service.documents.local import LocalDocumentStore
from ledger_service.indexer.batches import BatchResolver
from tests.api.conftest import ApiEnv, bearer
from tests.api.test_scans import anchor_queued, apply_anchored
from tests.api.test_verify import register, serial, sgtin


def _scan(item: str) -> dict[str, str]:
    return {"item": item, "biz_step": "departing", "disposition": "in_transit", "read_point": "0614141.00777.0"}


def _resolve_without_documents(env: ApiEnv, empty: Path) -> None:
    """A resolver pass whose document store holds none of the batch documents (they are not published yet)."""
    env.wait_indexed()
    resolver = BatchResolver(
        store=env.store,
        documents=LocalDocumentStore(empty),
        chain_id=31337,
        batch_anchor=env.deployed.anchor.address,
    )
    assert resolver.run().waiting == 1


def test_anchors_waiting_for_their_document_come_first_with_why_and_histories_say_so(
    api_env: ApiEnv, client: TestClient, keys: dict[str, str], tmp_path: Path
) -> None:
    first, second = sgtin(serial()), sgtin(serial())
    item_id = register(api_env, first, 10614141007346)
    register(api_env, second, 10614141007346)
    auditor, carrier = bearer(keys["auditor"]), bearer(keys["carrier"])
    for item in (first, second):
        sent = client.post("/v1/scans", json={"scans": [_scan(item)]}, headers=carrier)
        assert sent.status_code == 202, sent.text
        assert anchor_queued(api_env) == 1
    _resolve_without_documents(api_env, tmp_path / "empty")

    listed = client.get("/v1/scans/anchors", headers=auditor)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    older, newer = body["data"][:2]  # waiting ones first (anchors of other tests are applied)
    assert older["block_number"] < newer["block_number"]  # the order the indexer settles them in
    assert [a["state"] for a in body["data"][:2]] == ["pending_document", "pending_document"]
    assert all(a["state"] != "pending_document" for a in body["data"][2:])
    assert older["waiting"] == "document_unavailable" and "not available yet" in older["problem"]
    assert older["attempts"] == 1 and older["waiting_since"] == older["anchored_at"]
    assert newer["waiting"] == "behind_earlier_anchor" and newer["problem"] is None
    assert older["submitter"] == api_env.accounts[3].lower() and older["count"] == 1
    assert older["anchor_id"] == f"{older['block_number']}-{older['log_index']}"
    assert older["document_cid"].startswith("Qm") and older["tx_hash"].startswith("0x")

    # an item's history cannot know whether the waiting batches hold its scans: it says how many wait
    history = client.get(f"/v1/items/{item_id}/history", headers=auditor)
    assert history.status_code == 200, history.text
    waiting = history.json()["anchors_waiting"]
    assert waiting["count"] == 2 and waiting["since"] == older["anchored_at"] and "may lack" in waiting["note"]
    assert history.json()["batched_scans"] == [] and history.headers["Ledger-Anchors-Waiting"] == "2"
    csv_history = client.get(f"/v1/items/{item_id}/history?format=csv", headers=auditor)
    assert csv_history.headers["Ledger-Anchors-Waiting"] == "2"

    # filters, paging, CSV, one anchor by id
    waiting_only = client.get("/v1/scans/anchors?state=pending_document", headers=auditor).json()
    assert waiting_only == {"data": [older, newer], "count": 2}
    page = client.get("/v1/scans/anchors?state=pending_document&limit=1&offset=1", headers=auditor).json()
    assert page["count"] == 2 and [a["anchor_id"] for a in page["data"]] == [newer["anchor_id"]]
    table = client.get("/v1/scans/anchors?format=csv&state=pending_document", headers=auditor)
    assert table.headers["content-type"].startswith("text/csv")
    lines = table.text.splitlines()
    assert lines[0].startswith("anchor_id,block_number") and len(lines) == 3
    one = client.get(f"/v1/scans/anchors/{newer['anchor_id']}", headers=auditor)
    assert one.status_code == 200 and one.json() == newer

    # once the documents are there, both are applied and nothing waits
    assert apply_anchored(api_env) == 2
    assert client.get("/v1/scans/anchors?state=pending_document", headers=auditor).json()["count"] == 0
    applied = client.get("/v1/scans/anchors?state=applied&state=refused", headers=auditor).json()
    assert applied["count"] == body["count"]
    assert [a["anchor_id"] for a in applied["data"][:2]] == [newer["anchor_id"], older["anchor_id"]]  # newest first
    assert all(a["waiting"] is None and a["waiting_since"] is None for a in applied["data"])
    after = client.get(f"/v1/items/{item_id}/history", headers=auditor).json()
    assert after["anchors_waiting"] == {"count": 0, "since": None, "note": None}
    assert len(after["batched_scans"]) == 1


def test_a_submitter_reads_only_its_own_anchors(api_env: ApiEnv, client: TestClient, keys: dict[str, str]) -> None:
    item = sgtin(serial())
    register(api_env, item, 10614141007346)
    sent = client.post("/v1/scans", json={"scans": [_scan(item)]}, headers=bearer(keys["carrier"]))
    assert sent.status_code == 202, sent.text
    assert anchor_queued(api_env) == 1 and apply_anchored(api_env) >= 1
    carrier = api_env.accounts[3].lower()

    own = client.get("/v1/scans/anchors", headers=bearer(keys["carrier"])).json()
    assert own["count"] >= 1 and {a["submitter"] for a in own["data"]} == {carrier}
    anchor_id = own["data"][0]["anchor_id"]
    assert client.get(f"/v1/scans/anchors/{anchor_id}", headers=bearer(keys["carrier"])).status_code == 200
    assert client.get("/v1/scans/anchors", headers=bearer(keys["manufacturer"])).json() == {"data": [], "count": 0}
    hidden = client.get(f"/v1/scans/anchors/{anchor_id}", headers=bearer(keys["manufacturer"]))
    assert hidden.status_code == 404 and hidden.headers["content-type"] == "application/problem+json"
    other = client.get(f"/v1/scans/anchors?submitter={carrier}", headers=bearer(keys["manufacturer"]))
    assert other.status_code == 403 and "its own account's anchors" in other.json()["detail"]
    mine = client.get(f"/v1/scans/anchors?submitter={carrier}", headers=bearer(keys["carrier"]))
    assert mine.status_code == 200 and mine.json()["count"] == own["count"]
    assert client.get("/v1/scans/anchors", headers=bearer(keys["inspector"])).status_code == 403
    assert client.get("/v1/scans/anchors").status_code == 401
    for bad in ("/v1/scans/anchors?state=lost", "/v1/scans/anchors?limit=0", "/v1/scans/anchors?submitter=0x12"):
        assert client.get(bad, headers=bearer(keys["auditor"])).status_code == 422, bad
    assert client.get("/v1/scans/anchors/12", headers=bearer(keys["auditor"])).status_code == 422
    assert client.get("/v1/scans/anchors/999999-0", headers=bearer(keys["auditor"])).status_code == 404
