"""POST /v1/scans on a real anvil and SQLite: carriers' and manufacturers' observation scans acknowledged in one
transaction with a receipt each (the batch and the place in it), every bad scan refused with the reason and
nothing of the request kept, GET /v1/scans/batches/{id} showing the batch on its way, and a scan's Merkle proof
(GET .../proofs/{position}) holding on-chain once a batcher anchored it."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from web3 import Web3

from api.schemas.scans import ScanReceiptsPublic
from ledger_service.batcher import Batcher
from ledger_service.chain.signers import connect_chain
from ledger_service.documents.local import LocalDocumentStore
from ledger_service.indexer.batches import BatchResolver
from ledger_service.store.scan_queue import scans_of
from tests.api.conftest import ApiEnv, bearer
from tests.api.test_verify import register, serial, sgtin
from tests.ledger_service.batcher.test_worker import _typed
from tests.support.chain import ADMIN, CARRIER


def _scan(item: str, **fields: Any) -> dict[str, Any]:
    return {
        "item": item,
        "biz_step": "departing",
        "disposition": "in_transit",
        "read_point": "0614141.00777.0",
    } | fields


def anchor_queued(api_env: ApiEnv) -> int:
    """One ledger-batcher turn over the queued scans (sealed at once): the batches anchored."""
    settings = api_env.settings.model_copy(update={"batch_seal_s": 0.001})
    batcher = Batcher(
        store=api_env.store,
        chain=connect_chain(settings),
        documents=LocalDocumentStore(settings.documents_dir),
        settings=settings,
    )
    return batcher.turn().anchored


def apply_anchored(api_env: ApiEnv) -> int:
    """Indexes the anchors and applies their documents, as ledger-indexer does: the batches applied."""
    api_env.wait_indexed()
    resolver = BatchResolver(
        store=api_env.store,
        documents=LocalDocumentStore(api_env.settings.documents_dir),
        chain_id=31337,
        batch_anchor=api_env.deployed.anchor.address,
    )
    return resolver.run().applied


def test_scans_are_acknowledged_each_with_its_batch_and_place(
    api_env: ApiEnv, client: TestClient, keys: dict[str, str]
) -> None:
    items = [sgtin(serial()) for _ in range(3)]
    for item in items:
        register(api_env, item, 10614141007346)
    digest = "0x" + "Ab" * 32
    before = int(time.time())
    response = client.post(
        "/v1/scans",
        json={"scans": [_scan(items[0], document=digest), *(_scan(item) for item in items[1:])]},
        headers=bearer(keys["carrier"]),
    )
    assert response.status_code == 202, response.text
    body = response.json()
    # the route writes its answer itself: exactly the documented model, nothing more
    assert ScanReceiptsPublic.model_validate_json(response.content).model_dump() == body
    assert body["count"] == 3
    batch_id = body["data"][0]["batch_id"]
    first = body["data"][0]["position"]
    assert [(r["batch_id"], r["position"]) for r in body["data"]] == [(batch_id, first + i) for i in range(3)]
    assert body["data"][1]["scan_id"] == f"{batch_id}-{first + 1}"
    submitter, queued = scans_of(api_env.store, batch_id)
    assert submitter == api_env.accounts[3].lower()
    assert [scan.item for scan in queued[first:]] == items  # durable before the answer, in order
    # no time: when received; no document or business transaction: zero; hex as the leaf takes it, lowercase
    assert all(before <= scan.time <= time.time() for scan in queued[first:])
    assert queued[first].document == digest.lower() and queued[first + 1].document == "0x" + "00" * 32
    assert {scan.biz_transaction for scan in queued[first:]} == {"0x" + "00" * 32}

    # the manufacturer may pack; the batch is its own, apart from the carrier's
    packed = client.post(
        "/v1/scans", json={"scans": [_scan(items[0], biz_step="packing")]}, headers=bearer(keys["manufacturer"])
    )
    assert packed.status_code == 202, packed.text
    assert packed.json()["data"][0]["batch_id"] != batch_id

    shown = client.get(f"/v1/scans/batches/{batch_id}", headers=bearer(keys["carrier"]))
    assert shown.status_code == 200
    assert shown.json()["state"] == "open" and shown.json()["scan_count"] >= 3
    assert client.get(f"/v1/scans/batches/{batch_id}", headers=bearer(keys["manufacturer"])).status_code == 404
    # no proof before the batch is sealed (ledger-batcher does not run here): a 409 that says so
    early = client.get(f"/v1/scans/batches/{batch_id}/proofs/{first}", headers=bearer(keys["carrier"]))
    assert early.status_code == 409 and "not sealed yet" in early.json()["detail"]

    # sealed and anchored by a batcher turn, the scan's proof holds on-chain
    assert anchor_queued(api_env) >= 1
    answer = client.get(f"/v1/scans/batches/{batch_id}/proofs/{first + 2}", headers=bearer(keys["carrier"]))
    assert answer.status_code == 200, answer.text
    made = answer.json()
    assert made["state"] == "anchored" and made["tx_hash"] is not None and made["scan"]["item"] == items[2]
    leaf = tuple(_typed(kind, value) for kind, value in zip(made["encoding"], made["values"], strict=True))
    root, path = bytes.fromhex(made["root"][2:]), [bytes.fromhex(node[2:]) for node in made["proof"]]
    assert api_env.deployed.anchor.functions.verifyScan(leaf, root, path).call()

    # once indexed, the item's history (JSON and EPCIS) gives anyone who may read it the same proof
    assert apply_anchored(api_env) >= 1
    item_id = "0x" + bytes(Web3.keccak(text=items[2])).hex()
    history = client.get(f"/v1/items/{item_id}/history", headers=bearer(keys["auditor"]))
    assert history.status_code == 200, history.text
    assert history.json()["verification"]["intact"]
    [batched] = history.json()["batched_scans"]
    assert (batched["leaf"], batched["root"], batched["proof"]) == (made["leaf"], made["root"], made["proof"])
    assert batched["anchor_tx"] == made["tx_hash"] and batched["values"] == made["values"]
    epcis = client.get(f"/v1/items/{item_id}/history?format=epcis", headers=bearer(keys["auditor"]))
    [extension] = [e["ledger:batch"] for e in epcis.json()["epcisBody"]["eventList"] if "ledger:batch" in e]
    assert (extension["leafValues"], extension["proof"]) == (made["values"], made["proof"])


def test_a_request_with_a_bad_scan_is_refused_whole_with_every_reason(
    api_env: ApiEnv, client: TestClient, keys: dict[str, str]
) -> None:
    item = sgtin(serial())
    register(api_env, item, 10614141007346)
    never = sgtin(serial())
    scans = [
        _scan(item),
        _scan(never),  # not registered
        _scan(item, time=2**40),  # in the future
        _scan(item, biz_step="packing"),  # a carrier may not pack
        _scan(item, time=1_700_000_000),  # older than LEDGER_BATCH_SCAN_MAX_AGE_S allows
    ]
    response = client.post("/v1/scans", json={"scans": scans}, headers=bearer(keys["carrier"]))
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "scans[1]" in detail and "not registered" in detail
    assert "scans[2]" in detail and "scanner's clock" in detail
    assert "scans[3]" in detail and "packing" in detail
    assert "scans[4]" in detail and "older than a batched scan may be" in detail and "on-chain" in detail
    assert "scans[0]" not in detail

    # steps that move money or ownership are not batched: the schema refuses them with the allowed values
    sold = client.post(
        "/v1/scans", json={"scans": [_scan(item, disposition="retail_sold")]}, headers=bearer(keys["carrier"])
    )
    assert sold.status_code == 422 and "in_transit" in sold.text
    inspected = client.post(
        "/v1/scans", json={"scans": [_scan(item, biz_step="inspecting")]}, headers=bearer(keys["carrier"])
    )
    assert inspected.status_code == 422

    # only carriers' and manufacturers' keys send scans
    forbidden = client.post("/v1/scans", json={"scans": [_scan(item)]}, headers=bearer(keys["inspector"]))
    assert forbidden.status_code == 403 and "carrier or manufacturer" in forbidden.json()["detail"]
    limit = api_env.settings.scans_max_per_request
    many = client.post("/v1/scans", json={"scans": [_scan(item)] * (limit + 1)}, headers=bearer(keys["carrier"]))
    assert many.status_code == 422 and f"at most {limit} scans" in many.json()["detail"]


def check_idempotent_scans(env: ApiEnv, client: TestClient, keys: dict[str, str]) -> None:
    """A retry with the same Idempotency-Key and body: the same receipts, nothing queued twice; the same key
    with another body: the 422 that says so, nothing queued."""
    items = [sgtin(serial()) for _ in range(2)]
    for item in items:
        register(env, item, 10614141007346)
    key = f"scans-{serial()}"
    counted = REGISTRY.get_sample_value("ledger_scans_queued_total") or 0.0
    headers = bearer(keys["carrier"]) | {"Idempotency-Key": key}
    body = {"scans": [_scan(item) for item in items]}
    first = client.post("/v1/scans", json=body, headers=headers)
    assert first.status_code == 202, first.text
    batch_id = first.json()["data"][0]["batch_id"]
    queued = len(scans_of(env.store, batch_id)[1])

    again = client.post("/v1/scans", json=body, headers=headers)
    assert again.status_code == 202, again.text
    assert again.headers["Idempotency-Replayed"] == "true"
    assert again.json() == first.json()
    assert len(scans_of(env.store, batch_id)[1]) == queued

    other = client.post("/v1/scans", json={"scans": [_scan(items[0])]}, headers=headers)
    assert other.status_code == 422, other.text
    assert other.headers["content-type"].startswith("application/problem+json")
    assert "was used for a different request" in other.json()["detail"]
    assert len(scans_of(env.store, batch_id)[1]) == queued
    assert REGISTRY.get_sample_value("ledger_scans_queued_total") == counted + 2  # the replay queued nothing

    # without a key a retry is a new request: its scans are queued again, after the first ones
    plain = client.post("/v1/scans", json=body, headers=bearer(keys["carrier"]))
    assert plain.status_code == 202 and plain.json()["data"] != first.json()["data"]


def test_a_retried_request_with_its_idempotency_key_queues_nothing_twice(
    api_env: ApiEnv, client: TestClient, keys: dict[str, str]
) -> None:
    check_idempotent_scans(api_env, client, keys)


def test_a_batch_given_up_on_shows_failed_with_the_contracts_reason_and_has_no_proof(
    api_env: ApiEnv, client: TestClient, keys: dict[str, str]
) -> None:
    item = sgtin(serial())
    register(api_env, item, 10614141007346)
    sent = client.post("/v1/scans", json={"scans": [_scan(item)]}, headers=bearer(keys["carrier"]))
    assert sent.status_code == 202, sent.text
    batch_id, position = sent.json()["data"][0]["batch_id"], sent.json()["data"][0]["position"]
    deployed, admin = api_env.deployed, api_env.accounts[ADMIN]
    role = deployed.ledger.functions.CARRIER_ROLE().call()
    w3 = deployed.w3
    w3.eth.wait_for_transaction_receipt(
        deployed.ledger.functions.revokeRole(role, api_env.accounts[CARRIER]).transact({"from": admin})
    )
    try:
        settings = api_env.settings.model_copy(
            update={"batch_seal_s": 0.001, "batch_give_up_refusals": 1, "batch_give_up_s": 0}
        )
        batcher = Batcher(
            store=api_env.store,
            chain=connect_chain(settings),
            documents=LocalDocumentStore(settings.documents_dir),
            settings=settings,
        )
        assert batcher.turn().given_up == 1
    finally:
        w3.eth.wait_for_transaction_receipt(
            deployed.ledger.functions.grantRole(role, api_env.accounts[CARRIER]).transact({"from": admin})
        )
    shown = client.get(f"/v1/scans/batches/{batch_id}", headers=bearer(keys["carrier"]))
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["state"] == "failed" and body["tx_hash"] is None and body["attempts"] == 1
    assert "BatchAnchorNotScanner" in body["problem"] and "given up" in body["problem"]
    proof = client.get(f"/v1/scans/batches/{batch_id}/proofs/{position}", headers=bearer(keys["carrier"]))
    assert proof.status_code == 409 and "never anchored" in proof.json()["detail"]
