"""Carrier webhooks with the index in PostgreSQL: the fast refund at the first in-transit event, one webhook
delivered eight times at once processed once, a shuffled, duplicated feed that pays once and ends received, and
an exception notified once (webhook, e-mail, event stream)."""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from ledger_service.core.codes import ReturnState
from tests.api.carriers import WEBHOOK, chain_state, deliver, event, exception_notifies_once, labelled, signed
from tests.api.flows import PRICE, Flow, ok
from tests.api.test_returns_postgres import flow, pg_env  # noqa: F401 (the PostgreSQL environment's fixtures)

pytestmark = pytest.mark.postgres
REFUND = PRICE - PRICE // 10


def test_one_webhook_delivered_eight_times_at_once_pays_once_on_postgres(flow: Flow) -> None:  # noqa: F811
    sold, rma, number = labelled(flow)
    body = json.dumps({"events": [event(number, "in_transit")]}).encode()
    headers = signed(body)
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(
            pool.map(lambda _: flow.client.post(WEBHOOK, content=body, headers=headers).status_code, range(8))
        )
    assert statuses == [200] + [409] * 7
    assert chain_state(flow, rma) is ReturnState.IN_TRANSIT
    assert flow.balance(sold.consumer) == REFUND


def test_a_shuffled_duplicated_feed_ends_received_and_pays_once_on_postgres(flow: Flow) -> None:  # noqa: F811
    sold, rma, number = labelled(flow)
    events = [event(number, s) for s in ("in_transit", "out_for_delivery", "delivered", "in_transit")]
    feed = events * 2
    random.Random(7).shuffle(feed)
    for item in feed:
        ok(deliver(flow.client, item))
    assert chain_state(flow, rma) is ReturnState.RECEIVED
    assert flow.balance(sold.consumer) == REFUND
    flow.env.wait_indexed()
    lines = ok(flow.client.get(f"/v1/returns/{rma}/tracking", headers=sold.auth))["data"]
    assert sum(line["source"] == "carrier" for line in lines) == len(events)
    assert [
        line["chain"]["state"]
        for line in lines
        if line["source"] == "chain" and line["chain"]["kind"] == "state_changed"
    ] == ["in_transit", "received"]


def test_a_carrier_exception_notifies_once_on_postgres(flow: Flow) -> None:  # noqa: F811
    exception_notifies_once(flow)
