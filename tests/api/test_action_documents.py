"""Documents the service writes for an action (policy terms, inspection report, dispute evidence, ruling) are
kept only when the action succeeds: a refused action leaves nothing in the document store or the terms table."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from ledger_service.access import Role, create_api_key
from ledger_service.documents.cid import Cid
from ledger_service.documents.local import LocalDocumentStore
from ledger_service.returns.documents import PolicyDocument, digest_of, inspection_report, note_document
from ledger_service.store.policies import policy_terms_of
from tests.api.conftest import ApiEnv, bearer
from tests.api.flows import POLICY, Flow, ok, problem
from tests.support.chain import CARRIER


@pytest.fixture(scope="module")
def flow(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> Flow:
    made = Flow(client, api_env, keys)
    made.publish(fast_refund=False)
    return made


@pytest.fixture(scope="module")
def disk(api_env: ApiEnv) -> LocalDocumentStore:
    return LocalDocumentStore(api_env.settings.documents_dir)


def stored(disk: LocalDocumentStore, document: dict[str, Any]) -> bool:
    return disk.stat(Cid.from_digest(digest_of(document))) is not None


def test_a_refused_inspection_leaves_no_report(flow: Flow, disk: LocalDocumentStore) -> None:
    rma = flow.approved(flow.sold_and_delivered())  # authorized, not received: nothing to inspect yet
    body = {"passed": False, "grade": "F", "notes": "refused inspection's report"}
    response = flow.client.post(f"/v1/returns/{rma}/inspection", headers=bearer(flow.keys["inspector"]), json=body)
    assert problem(response, 409)["error"] == "EscrowInvalidState"
    assert not stored(disk, inspection_report(passed=False, grade="F", notes="refused inspection's report"))

    flow.scan(rma, "in_transit")
    flow.scan(rma, "delivered_to_merchant")
    done = ok(flow.client.post(f"/v1/returns/{rma}/inspection", headers=bearer(flow.keys["inspector"]), json=body))
    assert stored(disk, inspection_report(passed=False, grade="F", notes="refused inspection's report"))
    assert done["digest"] == digest_of(inspection_report(passed=False, grade="F", notes="refused inspection's report"))


def test_a_refused_dispute_and_ruling_leave_no_documents(flow: Flow, disk: LocalDocumentStore) -> None:
    sold = flow.sold_and_delivered()
    rma = flow.approved(sold)  # not rejected: no dispute possible
    response = flow.client.post(f"/v1/returns/{rma}/dispute", headers=sold.auth, json={"comment": "too early"})
    assert problem(response, 409)["error"] == "EscrowInvalidState"
    assert not stored(disk, note_document("evidence", return_id=rma, comment="too early"))
    ruling = {"consumer_amount": "1", "notes": "no dispute to rule on"}
    response = flow.client.post(f"/v1/returns/{rma}/resolution", headers=bearer(flow.keys["arbiter"]), json=ruling)
    assert problem(response, 409)["error"] == "EscrowInvalidState"
    assert not stored(disk, note_document("ruling", return_id=rma, consumer_amount="1", notes="no dispute to rule on"))


def test_a_refused_publication_leaves_no_policy_document(flow: Flow, api_env: ApiEnv, disk: LocalDocumentStore) -> None:
    carrier = api_env.accounts[CARRIER]  # the service signs for it, but it holds no MERCHANT_ROLE on-chain
    key = create_api_key(store=api_env.store, role=Role.MERCHANT, name="not a merchant", actor_address=carrier)
    body = {**POLICY, "title": "a policy the chain refuses"}
    response = flow.client.post("/v1/merchants/me/policy", headers=bearer(key.plaintext), json=body)
    assert problem(response, 403)["error"] == "EscrowMissingRole"
    document = PolicyDocument.from_json({**body, "fast_refund_max_value": 0, "manual_review_above_value": 0})
    assert not stored(disk, document.to_json())
    assert policy_terms_of(api_env.store, merchant=carrier, digest=document.digest) is None
