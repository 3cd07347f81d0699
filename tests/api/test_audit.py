"""GET /v1/items/{id}/history on a real anvil with the indexer following: who may read it, the three formats,
and tampering with the real SQLite index or the stored documents, named exactly by the verdict.

Tampering tests change rows of one item in the module's shared index and put them back afterwards
(:func:`tampered`), so the other tests of the module see the index as the indexer wrote it.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, insert, select, text

from ledger_service.documents.cid import Cid
from ledger_service.documents.local import LocalDocumentStore
from ledger_service.store.handle import Store
from ledger_service.store.tables import item_events
from tests.api.conftest import ApiEnv, bearer, return_token
from tests.api.flows import Flow, Sold, ok, problem

EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"


@dataclass
class Returned:
    """An item sold, delivered, returned and inspected through the API (its report stored as a document)."""

    sold: Sold
    return_id: str

    @property
    def item_id(self) -> str:
        return self.sold.item_id


@pytest.fixture(scope="module")
def flow(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> Flow:
    return Flow(client, api_env, keys)


@pytest.fixture(scope="module")
def returned(flow: Flow) -> Returned:
    flow.publish(fast_refund=False)
    sold = flow.sold_and_delivered()
    rma = flow.approved(sold)
    flow.scan(rma, "in_transit")
    flow.scan(rma, "delivered_to_merchant")
    flow.inspect(rma, passed=True)
    flow.env.wait_indexed()
    return Returned(sold=sold, return_id=rma)


def _history(client: TestClient, item_id: str, key: str, **params: str) -> dict[str, Any]:
    return ok(client.get(f"/v1/items/{item_id}/history", headers=bearer(key), params=params))


@contextmanager
def tampered(store: Store, item_id: str) -> Iterator[None]:
    """Restores the item's item_events rows, as they were, when the block ends."""
    with store.engine.connect() as conn:
        saved = [dict(r) for r in conn.execute(select(item_events).where(item_events.c.item_id == item_id)).mappings()]
    try:
        yield
    finally:
        with store.engine.begin() as conn:
            conn.execute(delete(item_events).where(item_events.c.item_id == item_id))
            conn.execute(insert(item_events), saved)


def _sql(store: Store, statement: str, **params: Any) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(statement), params)


def _named(body: dict[str, Any]) -> set[tuple[str, int | None]]:
    """(kind, seq) of the errors naming an event (the registration's metadata document, which nobody uploaded
    here, is always a document-missing warning)."""
    return {(f["kind"], f["seq"]) for f in _errors(body) if f["seq"] is not None}


def _errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in body["verification"]["findings"] if f["severity"] == "error"]


# ---- the history --------------------------------------------------------------------------------------


def test_an_auditor_reads_the_whole_verified_history(
    client: TestClient, keys: dict[str, str], returned: Returned, api_env: ApiEnv
) -> None:
    body = _history(client, returned.item_id, keys["auditor"])
    verification = body["verification"]
    assert verification["intact"] is True and _errors(body) == []
    assert verification["index_count"] == verification["chain_count"] == body["count"] == len(body["events"])
    assert verification["index_head"] == verification["chain_head"] == body["events"][-1]["event_hash"]
    assert verification["blocks_checked"] >= 4 and verification["documents_checked"] >= 1
    assert body["uri"].startswith("urn:epc:id:sgtin:") and body["epc"] == body["uri"]
    steps = [(e["biz_step"], e["disposition"]) for e in body["events"]]
    assert steps[0] == ("commissioning", "active")
    assert ("retail_selling", "retail_sold") in steps and ("inspecting", "conformant") in steps
    inspection = next(e for e in body["events"] if e["biz_step"] == "inspecting")
    assert inspection["actor_roles"] == ["inspector"]
    assert inspection["biz_transaction"] == returned.return_id and inspection["biz_transaction_type"] == "rma"
    # the report the API stored is there and hashes to its CID
    assert inspection["document_cid"] == Cid.from_digest(inspection["document"]).v0
    assert not any(f["cid"] == inspection["document_cid"] for f in verification["findings"])
    w3 = api_env.deployed.w3
    for event in body["events"]:
        assert event["block_hash"] == "0x" + bytes(w3.eth.get_block(event["block_number"])["hash"]).hex()
    assert [e["seq"] for e in body["events"]] == list(range(body["count"]))


def test_the_csv_and_the_epcis_document(client: TestClient, keys: dict[str, str], returned: Returned) -> None:
    url = f"/v1/items/{returned.item_id}/history"
    by_query = client.get(url, headers=bearer(keys["auditor"]), params={"format": "csv"})
    by_accept = client.get(url, headers=bearer(keys["auditor"]) | {"Accept": "text/csv"})
    for response in (by_query, by_accept):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert [r["seq"] for r in rows] == [str(i) for i in range(len(rows))]
        assert rows[0]["biz_step"] == "commissioning"
    epcis = client.get(url, headers=bearer(keys["auditor"]) | {"Accept": "application/ld+json"})
    assert epcis.status_code == 200 and epcis.headers["content-type"].startswith("application/ld+json")
    document = epcis.json()
    assert document["@context"][0] == EPCIS_CONTEXT and document["type"] == "EPCISDocument"
    assert document["schemaVersion"] == "2.0"
    events = document["epcisBody"]["eventList"]
    assert events[0]["action"] == "ADD" and all(e["type"] == "ObjectEvent" for e in events)
    assert any(
        t
        == {
            "type": "rma",
            "bizTransaction": f"https://returns-ledger.example/epcis/bizTransaction/{returned.return_id}",
        }
        for e in events
        for t in e.get("bizTransactionList", [])
    )
    assert client.get(url, headers=bearer(keys["auditor"]), params={"format": "epcis"}).json()["type"] == (
        "EPCISDocument"
    )
    # ?format= wins over Accept; a browser's Accept gets JSON
    assert client.get(url, headers=bearer(keys["auditor"]) | {"Accept": "text/csv"}, params={"format": "json"}).json()
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    assert client.get(url, headers=bearer(keys["auditor"]) | {"Accept": browser}).json()["item_id"] == returned.item_id


def test_unusable_formats_are_clear_4xx(client: TestClient, keys: dict[str, str], returned: Returned) -> None:
    url = f"/v1/items/{returned.item_id}/history"
    body = problem(client.get(url, headers=bearer(keys["auditor"]) | {"Accept": "application/xml"}), 406)
    assert "text/csv" in body["detail"]
    problem(client.get(url, headers=bearer(keys["auditor"]), params={"format": "xml"}), 422)
    problem(client.get("/v1/items/0x1234/history", headers=bearer(keys["auditor"])), 422)


# ---- who may read it -------------------------------------------------------------------------------------


def test_who_may_read_a_history(client: TestClient, keys: dict[str, str], returned: Returned, flow: Flow) -> None:
    url = f"/v1/items/{returned.item_id}/history"
    for name in ("auditor", "admin", "merchant"):
        assert client.get(url, headers=bearer(keys[name])).status_code == 200, name
    assert client.get(url, headers=returned.sold.auth).status_code == 200  # the consumer of the sale
    problem(client.get(url), 401)
    problem(client.get(url, headers=bearer("rlk_" + "x" * 43)), 401)
    for name in ("carrier", "inspector", "arbiter"):
        problem(client.get(url, headers=bearer(keys[name])), 403)
    problem(client.get(url, headers=bearer(keys["merchant2"])), 404)  # not its item: not disclosed
    other = flow.sell()
    problem(client.get(url, headers=return_token(other.token)), 404)  # another item's consumer
    assert client.get(f"/v1/items/{other.item_id}/history", headers=return_token(other.token)).status_code == 200


def test_an_unknown_item_is_a_404(client: TestClient, keys: dict[str, str]) -> None:
    body = problem(client.get(f"/v1/items/0x{secrets.token_hex(32)}/history", headers=bearer(keys["auditor"])), 404)
    assert "neither the index nor the contract" in body["detail"]


# ---- tampering ------------------------------------------------------------------------------------------------


def test_a_deleted_row_is_named(client: TestClient, keys: dict[str, str], returned: Returned, api_env: ApiEnv) -> None:
    with tampered(api_env.store, returned.item_id):
        _sql(api_env.store, "DELETE FROM item_events WHERE item_id = :i AND seq = 1", i=returned.item_id)
        body = _history(client, returned.item_id, keys["auditor"])
    assert body["verification"]["intact"] is False
    assert _named(body) == {("event-missing", 1)}
    assert {f["kind"] for f in _errors(body)} == {"event-missing", "count-mismatch", "head-mismatch"}
    assert _history(client, returned.item_id, keys["auditor"])["verification"]["intact"] is True  # restored


def test_an_altered_row_is_named_with_its_transaction(
    client: TestClient, keys: dict[str, str], returned: Returned, api_env: ApiEnv
) -> None:
    before = _history(client, returned.item_id, keys["auditor"])["events"][2]
    for column, value in (("disposition", 8), ("actor", "0x" + "ab" * 20)):
        with tampered(api_env.store, returned.item_id):
            _sql(
                api_env.store,
                f"UPDATE item_events SET {column} = :v WHERE item_id = :i AND seq = 2",
                v=value,
                i=returned.item_id,
            )
            body = _history(client, returned.item_id, keys["auditor"])
        assert _named(body) == {("event-altered", 2)}, column
        altered = next(f for f in body["verification"]["findings"] if f["kind"] == "event-altered")
        assert before["tx_hash"] in altered["message"]


def test_swapped_rows_are_named(client: TestClient, keys: dict[str, str], returned: Returned, api_env: ApiEnv) -> None:
    with tampered(api_env.store, returned.item_id):
        for old, new in ((1, -1), (3, 1), (-1, 3)):
            _sql(
                api_env.store,
                "UPDATE item_events SET seq = :new WHERE item_id = :i AND seq = :old",
                new=new,
                old=old,
                i=returned.item_id,
            )
        body = _history(client, returned.item_id, keys["auditor"])
    assert _named(body) == {("event-reordered", 1), ("event-reordered", 3)}
    csv_text = client.get(
        f"/v1/items/{returned.item_id}/history", headers=bearer(keys["auditor"]), params={"format": "csv"}
    ).text
    assert "event-reordered" not in csv_text  # restored


def test_a_swapped_document_is_named_by_its_cid(client: TestClient, keys: dict[str, str], returned: Returned) -> None:
    inspection = next(
        e for e in _history(client, returned.item_id, keys["auditor"])["events"] if e["biz_step"] == "inspecting"
    )
    cid = Cid.parse(inspection["document_cid"])
    documents = client.app.state.documents  # type: ignore[attr-defined]
    assert isinstance(documents, LocalDocumentStore)
    path = documents.blob_path(cid)
    original = path.read_bytes()
    try:
        path.write_bytes(b'{"grade":"A","notes":"someone else\'s report","passed":true}')
        body = _history(client, returned.item_id, keys["auditor"])
    finally:
        path.write_bytes(original)
    corrupt = [f for f in body["verification"]["findings"] if f["kind"] == "document-corrupt"]
    assert [(f["seq"], f["cid"]) for f in corrupt] == [(inspection["seq"], cid.v0)]
    assert _errors(body) == corrupt and body["verification"]["intact"] is False


def test_a_block_hash_that_is_not_canonical_is_named(
    client: TestClient, keys: dict[str, str], returned: Returned, api_env: ApiEnv
) -> None:
    with tampered(api_env.store, returned.item_id):
        _sql(
            api_env.store,
            "UPDATE item_events SET block_hash = :h WHERE item_id = :i AND seq = 2",
            h="0x" + secrets.token_hex(32),
            i=returned.item_id,
        )
        body = _history(client, returned.item_id, keys["auditor"])
    assert [(f["kind"], f["seq"]) for f in _errors(body)] == [("block-not-canonical", 2)]
