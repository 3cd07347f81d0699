"""What the consumer hears, on a real anvil: the e-mail address given with the sale or with the return token
(validated, kept off-chain, never shown again), the e-mails a real SMTP server receives, and the return's
Server-Sent Events read by a real streaming client from a served ledger-api, resumed with Last-Event-ID."""

from __future__ import annotations

import re
from email.header import decode_header, make_header
from email.message import EmailMessage
from typing import Any

import httpx
from fastapi.testclient import TestClient

from ledger_service.core.notifications import (
    RETURN_APPROVED,
    RETURN_IN_TRANSIT,
    RETURN_LABEL_READY,
    RETURN_REFUND_PAID,
)
from ledger_service.notify.worker import Worker
from tests.api.conftest import ApiEnv, bearer, return_token
from tests.api.flows import Flow, ok, problem
from tests.api.served import serve
from tests.ledger_service.notify.receivers import run_worker, smtp_sink


def _text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def _deliver(env: ApiEnv, **settings: Any) -> None:
    worker = Worker(env.store, env.settings.model_copy(update=settings))

    run_worker(worker)


def test_an_address_that_is_not_one_is_refused(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> None:
    flow = Flow(client, api_env, keys)
    flow.publish()
    item = flow.register()
    body = {"item_id": item, "consumer": "0x" + "12" * 20, "price": "1000", "consumer_email": "buyer at example"}
    refused = problem(client.post("/v1/sales", headers=bearer(keys["merchant"]), json=body), 422)
    assert "consumer_email" in refused["detail"] and "buyer at example" not in str(refused.get("errors", ""))
    sold = flow.sell(item)
    bad = client.put(f"/v1/items/{item}/contact", headers=sold.auth, json={"email": "@example.com"})
    problem(bad, 422)
    other = flow.sell()
    problem(client.put(f"/v1/items/{item}/contact", headers=other.auth, json={"email": "a@example.com"}), 404)


def test_the_consumer_is_e_mailed_at_the_sale_s_address_in_their_language(
    client: TestClient, api_env: ApiEnv, keys: dict[str, str]
) -> None:
    flow = Flow(client, api_env, keys)
    flow.publish()
    with smtp_sink() as (port, received):
        sold = flow.sell(consumer_email="buyer@example.com", consumer_lang="zh")
        flow.deliver(sold)
        rid = flow.approved(sold)
        _deliver(api_env, smtp_host="127.0.0.1", smtp_port=port)
        mine = [m for m in received if rid in _text(m)]
    subjects = sorted(str(make_header(decode_header(m["Subject"]))) for m in mine)
    assert subjects == sorted(["您的退货已获批准", "您的退货标签已可打印"])
    # the deposit in the sale token's units with its symbol, read from the chain; the state in words
    assert all(re.search(r"退款金额: \d+\.\d{2,} dUSD\n", _text(m)) and "已批准：请寄回商品" in _text(m) for m in mine)  # noqa: RUF001
    assert {m["To"] for m in mine} == {"buyer@example.com"}
    # the consumer changes the address with their token: the next step goes there, in English
    answer = ok(client.put(f"/v1/items/{sold.item_id}/contact", headers=sold.auth, json={"email": "new@example.com"}))
    assert "email" not in answer
    with smtp_sink() as (port, received):
        flow.scan(rid, "in_transit")
        _deliver(api_env, smtp_host="127.0.0.1", smtp_port=port)
        mine = [m for m in received if rid in _text(m)]
    assert {(m["To"], m["Subject"]) for m in mine} >= {("new@example.com", "Your return is on its way")}
    assert any("Status: On its way back" in _text(m) for m in mine)


def _read_events(url: str, headers: dict[str, str], want: int) -> list[tuple[str, str]]:
    """(id, event type) of the first ``want`` events of a stream, read with a real streaming HTTP client."""
    events: list[tuple[str, str]] = []
    current: dict[str, str] = {}
    live = headers | {"Accept": "text/event-stream"}
    with httpx.Client(timeout=30) as http, http.stream("GET", url, headers=live) as answer:
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            if not line:
                if "event" in current:
                    events.append((current["id"], current["event"]))
                    if len(events) == want:
                        return events
                current = {}
                continue
            name, _, value = line.partition(": ")
            current[name] = value
    return events


def test_a_return_s_events_stream_and_resume_with_last_event_id(
    client: TestClient, api_env: ApiEnv, keys: dict[str, str]
) -> None:
    flow = Flow(client, api_env, keys)
    flow.publish()
    sold = flow.sold_and_delivered()
    rid = flow.approved(sold)
    with serve(api_env) as served:
        url = f"{served.url}/v1/returns/{rid}/events"
        first = _read_events(url, return_token(sold.token), 2)
        assert [kind for _, kind in first] == [RETURN_APPROVED, RETURN_LABEL_READY]
        flow.scan(rid, "in_transit")
        resumed = _read_events(url, return_token(sold.token) | {"Last-Event-ID": first[-1][0]}, 1)
        assert [kind for _, kind in resumed] == [RETURN_IN_TRANSIT]
        merchant = _read_events(url, bearer(keys["merchant"]), 3)
        assert [kind for _, kind in merchant][:3] == [RETURN_APPROVED, RETURN_LABEL_READY, RETURN_IN_TRANSIT]
        with httpx.Client(timeout=30) as http:
            other = http.get(url, headers=bearer(keys["merchant2"]))
            assert other.status_code == 404 and other.headers["content-type"] == "application/problem+json"
            bad = http.get(url, headers=return_token(sold.token) | {"Last-Event-ID": "x1"})
            assert bad.status_code == 422
            # without Accept: text/event-stream the answer is the events so far, and it ends
            so_far = http.get(url, headers=return_token(sold.token) | {"Last-Event-ID": first[0][0]})
            kinds = [line.removeprefix("event: ") for line in so_far.text.splitlines() if line.startswith("event: ")]
            assert so_far.status_code == 200
            assert kinds == [RETURN_LABEL_READY, RETURN_IN_TRANSIT, RETURN_REFUND_PAID]
