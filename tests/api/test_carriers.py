"""Carriers through HTTP against a real anvil and SQLite: the label's tracking number, signed tracking webhooks
mapped onto the on-chain scans (fast refund at the first in-transit event, delivered -> received), shuffled
and duplicated feeds, an exception told once to the merchant's webhook, the consumer's e-mail and the return's
event stream, concurrent deliveries, refused deliveries that record nothing, the tracking timeline
and the carrier simulator."""

from __future__ import annotations

import dataclasses
import json
import random
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from ledger_service.core.codes import ReturnState
from ledger_service.logistics.cli import main as carrier_cli
from ledger_service.logistics.local import LocalCarrier, is_s10, s10_check_digit
from ledger_service.settings import ANVIL_ACCOUNTS, DEV_CARRIER_SECRET, CarrierSettings
from tests.api.carriers import (
    WEBHOOK,
    chain_state,
    deliver,
    event,
    exception_notifies_once,
    label_barcode,
    labelled,
    signed,
)
from tests.api.conftest import ApiEnv, bearer, make_client
from tests.api.flows import PRICE, Flow, ok, problem

REFUND = PRICE - PRICE // 10  # the test policy's 10% restocking fee
RANK = {ReturnState.AUTHORIZED: 0, ReturnState.IN_TRANSIT: 1, ReturnState.RECEIVED: 2}


@pytest.fixture(scope="module")
def flow(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> Flow:
    made = Flow(client, api_env, keys)
    made.publish()
    return made


def tracking(flow: Flow, return_id: str, headers: dict[str, str]) -> dict[str, Any]:
    return ok(flow.client.get(f"/v1/returns/{return_id}/tracking", headers=headers))


def transitions(flow: Flow, return_id: str, headers: dict[str, str]) -> list[str]:
    flow.env.wait_indexed()
    timeline = flow.status(return_id, headers)["timeline"]
    return [entry["state"] for entry in timeline if entry["kind"] == "state_changed"]


def test_the_label_prints_a_tracking_number_issued_once(flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    rma = flow.approved(sold)
    before = tracking(flow, rma, sold.auth)
    assert before["tracking_number"] is None and before["carrier"] is None
    assert [e["source"] for e in before["data"]] == ["chain"]

    number = label_barcode(flow.client, rma, sold.auth)
    assert is_s10(number) and number.startswith("LR")
    assert label_barcode(flow.client, rma, bearer(flow.keys["merchant"])) == number  # the same shipment
    after = tracking(flow, rma, sold.auth)
    assert after["tracking_number"] == number and after["carrier"] == "local"


def test_in_transit_pays_the_fast_refund_and_delivered_receives(flow: Flow) -> None:
    sold, rma, number = labelled(flow)
    escrow_before = flow.escrow_balance()
    answer = ok(
        deliver(flow.client, event(number, "in_transit", location="Shanghai hub", read_point="0614141.00888.0"))
    )
    assert [e["outcome"] for e in answer["events"]] == ["recorded"]
    [step] = answer["steps"]
    assert step["step"] == "in_transit" and step["return_id"] == rma and step["tx_hash"]
    assert chain_state(flow, rma) is ReturnState.IN_TRANSIT
    assert flow.balance(sold.consumer) == REFUND
    assert flow.escrow_balance() == escrow_before - PRICE  # the fee went to the merchant

    answer = ok(deliver(flow.client, event(number, "delivered")))
    assert [s["step"] for s in answer["steps"]] == ["delivered_to_merchant"]
    assert chain_state(flow, rma) is ReturnState.RECEIVED
    assert transitions(flow, rma, sold.auth) == ["in_transit", "received"]

    lines = tracking(flow, rma, sold.auth)["data"]
    sources = [(line["source"], line.get("status") or (line["chain"] or {}).get("state")) for line in lines]
    carrier_in_transit = sources.index(("carrier", "in_transit"))
    assert sources.index(("chain", "in_transit")) > carrier_in_transit  # the scan, then the step it caused
    assert sources.index(("chain", "received")) > sources.index(("carrier", "delivered"))
    [hub] = [line for line in lines if line.get("location")]
    assert hub["summary"] == "The carrier reports the parcel in transit at Shanghai hub."


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_shuffled_and_duplicated_feeds_neither_double_pay_nor_go_backwards(flow: Flow, seed: int) -> None:
    sold, rma, number = labelled(flow)
    rng = random.Random(seed)
    events = [
        event(number, "in_transit", location="pickup"),
        event(number, "in_transit", location="hub"),
        event(number, "out_for_delivery"),
        event(number, "exception", location="address unclear"),
        event(number, "delivered"),
    ]
    feed = [e for e in events for _ in range(rng.randint(1, 3))]
    rng.shuffle(feed)
    reached = 0
    recorded = 0
    for item in feed:
        answer = ok(deliver(flow.client, item))
        recorded += [e["outcome"] for e in answer["events"]].count("recorded")
        rank = RANK[chain_state(flow, rma)]
        assert rank >= reached, "the return moved backwards"
        reached = rank
    assert recorded == len(events)
    assert chain_state(flow, rma) is ReturnState.RECEIVED
    assert flow.balance(sold.consumer) == REFUND  # paid once
    assert transitions(flow, rma, sold.auth) == ["in_transit", "received"]
    lines = tracking(flow, rma, sold.auth)["data"]
    assert sum(line["source"] == "carrier" for line in lines) == len(events)


def test_a_carrier_exception_notifies_merchant_consumer_and_stream_once(flow: Flow) -> None:
    exception_notifies_once(flow)


def test_delivered_before_any_in_transit_takes_both_steps_in_order(flow: Flow) -> None:
    sold, rma, number = labelled(flow)
    answer = ok(deliver(flow.client, event(number, "delivered")))
    assert [s["step"] for s in answer["steps"]] == ["in_transit", "delivered_to_merchant"]
    assert flow.balance(sold.consumer) == REFUND
    late = ok(deliver(flow.client, event(number, "in_transit")))
    assert late["steps"] == [] and chain_state(flow, rma) is ReturnState.RECEIVED


def test_one_webhook_delivered_eight_times_at_once_is_processed_once(flow: Flow) -> None:
    sold, rma, number = labelled(flow)
    body = json.dumps({"events": [event(number, "in_transit")]}).encode()
    headers = signed(body)

    def send(_: int) -> tuple[int, dict[str, Any]]:
        answer = flow.client.post(WEBHOOK, content=body, headers=headers)
        return answer.status_code, answer.json()

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(send, range(8)))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200] + [409] * 7, answers
    [accepted] = [body for status, body in answers if status == 200]
    assert [s["step"] for s in accepted["steps"]] == ["in_transit"]
    assert flow.balance(sold.consumer) == REFUND
    assert transitions(flow, rma, sold.auth) == ["in_transit"]


def test_one_event_in_eight_concurrent_deliveries_is_recorded_once_and_pays_once(flow: Flow) -> None:
    sold, rma, number = labelled(flow)
    same = event(number, "in_transit")

    def send(_: int) -> dict[str, object]:
        return ok(deliver(flow.client, same))

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(send, range(8)))
    outcomes = sorted(a["events"][0]["outcome"] for a in answers)  # type: ignore[index]
    assert outcomes == ["duplicate"] * 7 + ["recorded"]
    steps = [s for a in answers for s in a["steps"]]  # type: ignore[attr-defined]
    assert [s["step"] for s in steps if s["tx_hash"]] == ["in_transit"]
    assert flow.balance(sold.consumer) == REFUND
    assert transitions(flow, rma, sold.auth) == ["in_transit"]


def _carrier_events(flow: Flow, return_id: str, headers: dict[str, str]) -> int:
    lines = tracking(flow, return_id, headers)["data"]
    return sum(line["source"] == "carrier" for line in lines)


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("unsigned", "no webhook-id, webhook-timestamp, webhook-signature header"),
        ("other secret", "does not match the body"),
        ("body changed", "does not match the body"),
        ("stale", "more than 5 minutes"),
        ("future", "more than 5 minutes"),
        ("malformed signature", "malformed"),
    ],
)
def test_a_delivery_without_a_valid_signature_is_401_and_records_nothing(flow: Flow, case: str, words: str) -> None:
    sold, rma, number = labelled(flow)
    body = json.dumps({"events": [event(number, "in_transit")]}).encode()
    delivery_id = f"msg_{secrets.token_hex(8)}"
    headers = signed(body, delivery_id=delivery_id)
    sent = body
    if case == "unsigned":
        headers = {"content-type": "application/json"}
    elif case == "other secret":
        other = LocalCarrier(name="local", webhook_secret="whsec_" + "QUJD" * 8)
        headers = signed(body, delivery_id=delivery_id, carrier=other)
    elif case == "body changed":
        sent = body.replace(b"in_transit", b"delivered")
    elif case == "stale":
        headers = signed(body, delivery_id=delivery_id, timestamp=int(time.time()) - 301)
    elif case == "future":
        headers = signed(body, delivery_id=delivery_id, timestamp=int(time.time()) + 400)
    elif case == "malformed signature":
        headers["webhook-signature"] = "v1"
    answer = flow.client.post(WEBHOOK, content=sent, headers=headers)
    assert words in problem(answer, 401)["detail"]
    assert answer.headers["www-authenticate"].startswith("WebhookSignature")
    assert chain_state(flow, rma) is ReturnState.AUTHORIZED
    assert _carrier_events(flow, rma, sold.auth) == 0
    # nothing of it was kept: the same delivery id, correctly signed, is taken
    retried = flow.client.post(WEBHOOK, content=body, headers=signed(body, delivery_id=delivery_id))
    assert ok(retried)["events"][0]["outcome"] == "recorded"


def test_a_replayed_delivery_is_409_and_records_nothing_again(flow: Flow) -> None:
    sold, rma, number = labelled(flow)
    body = json.dumps({"events": [event(number, "exception")]}).encode()
    headers = signed(body)
    ok(flow.client.post(WEBHOOK, content=body, headers=headers))
    again = flow.client.post(WEBHOOK, content=body, headers=headers)
    assert "was received before" in problem(again, 409)["detail"]
    assert _carrier_events(flow, rma, sold.auth) == 1


def test_unknown_and_misread_tracking_numbers_are_accepted_and_ignored_with_a_log_line(
    flow: Flow, caplog: pytest.LogCaptureFixture
) -> None:
    unknown = f"LR00000001{s10_check_digit('00000001')}ZZ"  # well-formed, nobody's shipment
    misread = f"LR00000001{(s10_check_digit('00000001') + 1) % 10}ZZ"  # its check digit fails
    answer = ok(deliver(flow.client, event(unknown, "in_transit"), event(misread, "delivered")))
    assert [e["outcome"] for e in answer["events"]] == ["unknown_tracking_number", "invalid_tracking_number"]
    assert answer["steps"] == []
    ignored = [r.getMessage() for r in caplog.records if "carrier event ignored" in r.getMessage()]
    assert len(ignored) == 2 and unknown in ignored[0] and misread in ignored[1]


def test_refused_bodies_and_carriers(flow: Flow) -> None:
    _, _, number = labelled(flow)
    body = json.dumps({"events": [event(number, "teleported")]}).encode()
    problem(flow.client.post(WEBHOOK, content=body, headers=signed(body)), 422)
    body = json.dumps({"events": []}).encode()
    problem(flow.client.post(WEBHOOK, content=body, headers=signed(body)), 422)
    for wrong in ({"zz_not_a_field": 1}, {"occurred_at": 1765000000}, {"location": ["depot"]}):
        body = json.dumps({"events": [{**event(number, "in_transit"), **wrong}]}).encode()
        named = problem(flow.client.post(WEBHOOK, content=body, headers=signed(body)), 422)["detail"]
        assert f"events.0.{next(iter(wrong))}" in named, named
    body = b'{"events": [unterminated'
    assert "not JSON" in problem(flow.client.post(WEBHOOK, content=body, headers=signed(body)), 400)["detail"]
    body = json.dumps({"events": [event(number, "in_transit")]}).encode()
    nobody = problem(flow.client.post("/v1/carriers/nobody/webhooks", content=body, headers=signed(body)), 404)
    assert "LEDGER_CARRIERS" in nobody["detail"]
    huge = json.dumps({"events": [event(number, "in_transit", location="x" * 70_000)]}).encode()
    problem(flow.client.post(WEBHOOK, content=huge, headers=signed(huge)), 413)


def test_who_may_read_the_tracking(flow: Flow) -> None:
    _, rma, _ = labelled(flow)
    for name in ("merchant", "auditor", "carrier", "admin"):
        ok(flow.client.get(f"/v1/returns/{rma}/tracking", headers=bearer(flow.keys[name])))
    problem(flow.client.get(f"/v1/returns/{rma}/tracking", headers=bearer(flow.keys["merchant2"])), 404)
    stranger = flow.sold_and_delivered()
    problem(flow.client.get(f"/v1/returns/{rma}/tracking", headers=stranger.auth), 404)
    problem(flow.client.get(f"/v1/returns/{rma}/tracking"), 401)
    problem(flow.client.get(f"/v1/returns/0x{'ab' * 32}/tracking", headers=bearer(flow.keys["admin"])), 404)


def test_the_simulator_signs_and_posts_scans(flow: Flow, capsys: pytest.CaptureFixture[str]) -> None:
    sold, rma, number = labelled(flow)
    url = ["--api-url", "http://testserver"]
    assert carrier_cli(["scan", number, "in_transit", "--location", "depot", *url], client=flow.client) == 0
    printed = capsys.readouterr().out
    assert "recorded" in printed and f"in_transit for return {rma}" in printed
    assert flow.balance(sold.consumer) == REFUND
    misread = number[:10] + str((int(number[10]) + 1) % 10) + number[11:]
    assert carrier_cli(["scan", misread, "delivered", *url]) == 2
    assert "check digit" in capsys.readouterr().err
    assert carrier_cli(["scan", number, "delivered", "--api-url", "http://127.0.0.1:9"]) == 3
    assert carrier_cli(["scan", number, "delivered", *url], client=flow.client) == 0
    assert chain_state(flow, rma) is ReturnState.RECEIVED


def test_a_delivery_that_fails_for_want_of_a_signer_is_503_and_its_retry_is_taken(flow: Flow) -> None:
    sold, rma, number = labelled(flow)
    keyless = {"local": CarrierSettings(account=ANVIL_ACCOUNTS[7][0], webhook_secret=SecretStr(DEV_CARRIER_SECRET))}
    broken = dataclasses.replace(flow.env, settings=flow.env.settings.model_copy(update={"carriers": keyless}))
    body = json.dumps({"events": [event(number, "in_transit")]}).encode()
    headers = signed(body)
    with make_client(broken) as misconfigured:
        answer = misconfigured.post(WEBHOOK, content=body, headers=headers)
    assert "LEDGER_SIGNER_KEYS" in problem(answer, 503)["detail"]
    assert chain_state(flow, rma) is ReturnState.AUTHORIZED
    # the operator fixed the setting; the carrier retries the same delivery: taken, the event already recorded
    retried = ok(flow.client.post(WEBHOOK, content=body, headers=headers))
    assert [e["outcome"] for e in retried["events"]] == ["duplicate"]
    assert [s["step"] for s in retried["steps"]] == ["in_transit"]
    assert flow.balance(sold.consumer) == REFUND


OTHER_UNIT = "urn:epc:id:sgtin:0614141.107346.not-the-unit-sold"


def test_a_delivered_scan_of_another_unit_sends_the_return_to_the_arbiter(flow: Flow) -> None:
    _, rma, number = labelled(flow)
    ok(deliver(flow.client, event(number, "in_transit")))
    answer = ok(deliver(flow.client, event(number, "delivered", epc=OTHER_UNIT)))
    assert [e["outcome"] for e in answer["events"]] == ["recorded"]
    assert [s["step"] for s in answer["steps"]] == ["delivered_to_merchant"]
    assert chain_state(flow, rma) is ReturnState.DISPUTED
    flow.env.wait_indexed()
    verified = ok(flow.client.get(f"/v1/verify/{rma}"))
    assert verified["return"]["unit_mismatch"] is True
    assert any("The unit received is not the one sold" in line for line in verified["verdict"])


def test_a_delivered_scan_of_the_unit_sold_receives_it(flow: Flow) -> None:
    sold, rma, number = labelled(flow)
    # delivered without an in-transit scan: both steps, the EPC with the second
    answer = ok(deliver(flow.client, event(number, "delivered", epc=flow.uris[sold.item_id])))
    assert [s["step"] for s in answer["steps"]] == ["in_transit", "delivered_to_merchant"]
    assert chain_state(flow, rma) is ReturnState.RECEIVED
    flow.env.wait_indexed()
    assert ok(flow.client.get(f"/v1/verify/{rma}"))["return"]["unit_mismatch"] is False


def test_a_misread_or_misplaced_epc_refuses_the_delivery_and_records_nothing(flow: Flow) -> None:
    sold, rma, number = labelled(flow)
    ok(deliver(flow.client, event(number, "in_transit")))
    before = _carrier_events(flow, rma, sold.auth)
    for epc, words in (("urn:epc:id:sgtin:0614141.107346", "malformed"), ("LR473124829ZZ", "not a GS1 item name")):
        delivery = f"msg_{secrets.token_hex(8)}"
        refused = problem(deliver(flow.client, event(number, "delivered", epc=epc), delivery_id=delivery), 422)
        assert words in refused["detail"] and "scan the unit's label again" in refused["detail"]
        # nothing recorded, and the delivery id is free: the carrier resends it with the EPC read again
        assert _carrier_events(flow, rma, sold.auth) == before
        assert chain_state(flow, rma) is ReturnState.IN_TRANSIT
        fixed = event(number, "delivered", epc=flow.uris[sold.item_id])
        if epc == "LR473124829ZZ":
            ok(deliver(flow.client, fixed, delivery_id=delivery))
    assert chain_state(flow, rma) is ReturnState.RECEIVED
    named = problem(deliver(flow.client, event(number, "in_transit", epc=OTHER_UNIT)), 422)["detail"]
    assert "epc is for a delivered event only" in named


def test_the_simulator_sends_the_scanned_epc(flow: Flow, capsys: pytest.CaptureFixture[str]) -> None:
    _, rma, number = labelled(flow)
    url = ["--api-url", "http://testserver"]
    assert carrier_cli(["scan", number, "in_transit", "--epc", OTHER_UNIT, *url], client=flow.client) == 2
    assert "--epc goes with the status delivered only" in capsys.readouterr().err
    assert carrier_cli(["scan", number, "delivered", "--epc", OTHER_UNIT, *url], client=flow.client) == 0
    assert f"delivered_to_merchant for return {rma}" in capsys.readouterr().out
    assert chain_state(flow, rma) is ReturnState.DISPUTED
    assert carrier_cli(["scan", number, "delivered", "--epc", "urn:epc:id:sgtin:1.2", *url], client=flow.client) == 1
    assert "malformed" in capsys.readouterr().err
