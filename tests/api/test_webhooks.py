"""Webhooks through the API, end to end on a real anvil: a merchant registers an endpoint, a return moves on the
chain, the indexer writes the outbox, ledger-notify's worker signs and delivers; bad URLs, types and secrets are
refused with a sentence; deliveries and dead letters are visible and replayable; another merchant sees nothing."""

from __future__ import annotations

import time
from typing import Any, get_args

from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook

from api.schemas.webhooks import EventType
from ledger_service.core.notifications import (
    EVENT_TYPES,
    RETURN_APPROVED,
    RETURN_IN_TRANSIT,
    RETURN_LABEL_READY,
    RETURN_REFUND_PAID,
    notification_id,
)
from ledger_service.notify.worker import Worker
from tests.api.conftest import ApiEnv, bearer
from tests.api.flows import Flow, ok, problem
from tests.ledger_service.notify.receivers import receiver, run_worker


def _deliver(env: ApiEnv, **settings: Any) -> None:
    """Runs ledger-notify's worker on the test index until nothing is due."""
    worker = Worker(env.store, env.settings.model_copy(update={"notify_backoff_base_s": 1.0, **settings}))

    run_worker(worker)


def _register(client: TestClient, key: str, **body: Any) -> dict[str, Any]:
    return ok(client.post("/v1/webhooks", headers=bearer(key), json=body), 201)


def test_a_return_s_steps_reach_the_merchant_signed_with_stable_ids(
    client: TestClient, api_env: ApiEnv, keys: dict[str, str]
) -> None:
    flow = Flow(client, api_env, keys)
    flow.publish()
    with receiver() as hook:
        created = _register(client, keys["merchant"], url=hook.url)
        assert created["secret"].startswith("whsec_")
        listed = ok(client.get("/v1/webhooks", headers=bearer(keys["merchant"])))
        assert created["id"] in [w["id"] for w in listed["data"]]
        assert all("secret" not in w for w in listed["data"])  # shown once
        sold = flow.sold_and_delivered()
        rid = flow.approved(sold)
        flow.scan(rid, "in_transit")
        _deliver(api_env)
        mine = {r.headers["webhook-id"]: r for r in hook.requests if rid[2:] in r.body.decode()}
    expected = {notification_id(t, rid): t for t in (RETURN_APPROVED, RETURN_LABEL_READY, RETURN_IN_TRANSIT)}
    expected[notification_id(RETURN_REFUND_PAID, rid)] = RETURN_REFUND_PAID  # the policy's fast refund
    assert set(mine) == set(expected)
    for msg_id, got in mine.items():
        payload = Webhook(created["secret"]).verify(got.body, got.headers)
        assert payload["type"] == expected[msg_id] and payload["data"]["return_id"] == rid
    deliveries = ok(client.get(f"/v1/webhooks/{created['id']}/deliveries", headers=bearer(keys["merchant"])))
    states = {d["webhook_id"]: d["state"] for d in deliveries["data"]}
    assert all(states[msg_id] == "delivered" for msg_id in expected)


def test_a_down_receiver_s_dead_letters_are_listed_and_replayed(
    client: TestClient, api_env: ApiEnv, keys: dict[str, str]
) -> None:
    flow = Flow(client, api_env, keys)
    flow.publish()
    with receiver(status=503) as hook:
        created = _register(client, keys["merchant"], url=hook.url, event_types=[RETURN_APPROVED])
        sold = flow.sold_and_delivered()
        rid = flow.approved(sold)
        _deliver(api_env, notify_retry_for_s=1)  # a one-second retry window: failed, due again at its end
        time.sleep(2.1)
        _deliver(api_env, notify_retry_for_s=1)  # failed again past the window: dead-lettered
        path = f"/v1/webhooks/{created['id']}"
        dead = ok(client.get(f"{path}/deliveries?state=dead", headers=bearer(keys["merchant"])))["data"]
        (letter,) = [d for d in dead if d["return_id"] == rid]
        assert letter["last_status"] == 503 and letter["attempts"] >= 1
        hook.status = 200
        replayed = ok(client.post(f"{path}/replay", headers=bearer(keys["merchant"]), json={}))
        assert replayed["replayed"] >= 1
        _deliver(api_env)
        ids = hook.ids()
    assert ids.count(letter["webhook_id"]) == letter["attempts"] + 1  # the same id, once more
    one = client.post(f"{path}/replay", headers=bearer(keys["merchant"]), json={"delivery_id": 10**9})
    problem(one, 404)


def test_bad_webhooks_are_refused_with_a_sentence(client: TestClient, keys: dict[str, str]) -> None:
    merchant = bearer(keys["merchant"])
    for url, words in (
        ("ftp://merchant.example/hook", "http:// or https://"),
        ("http://127.0.0.1:8000/v1/hook", "this service itself"),
        ("http://testserver/v1/hook", "this service itself"),
        ("http://user:pw@merchant.example/hook", "user name or password"),
    ):
        body = problem(client.post("/v1/webhooks", headers=merchant, json={"url": url}), 422)
        assert words in body["detail"], body
    wrong_type = client.post(
        "/v1/webhooks", headers=merchant, json={"url": "https://m.example/h", "event_types": ["return.teleported"]}
    )
    problem(wrong_type, 422)
    short = client.post("/v1/webhooks", headers=merchant, json={"url": "https://m.example/h", "secret": "whsec_abc"})
    problem(short, 422)
    problem(client.post("/v1/webhooks", headers=bearer(keys["carrier"]), json={"url": "https://m.example/h"}), 403)


def test_another_merchant_cannot_see_or_delete_my_webhook(client: TestClient, keys: dict[str, str]) -> None:
    created = _register(client, keys["merchant"], url="https://merchant.example/hook")
    path = f"/v1/webhooks/{created['id']}"
    problem(client.get(path, headers=bearer(keys["merchant2"])), 404)
    problem(client.delete(path, headers=bearer(keys["merchant2"])), 404)
    assert client.delete(path, headers=bearer(keys["merchant"])).status_code == 204
    problem(client.get(path, headers=bearer(keys["merchant"])), 404)


def test_the_api_offers_exactly_the_core_s_event_types() -> None:
    assert list(get_args(EventType)) == list(EVENT_TYPES)


def test_a_lone_surrogate_in_a_refused_body_is_shown_escaped(client: TestClient, keys: dict[str, str]) -> None:
    headers = bearer(keys["merchant"]) | {"content-type": "application/json"}
    body = problem(client.post("/v1/webhooks", headers=headers, content=b'["\\ud800"]'), 422)
    assert "\\ud800" in body["detail"]
