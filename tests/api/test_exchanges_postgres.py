"""Exchanges through HTTP once with the index in PostgreSQL: the instant and the standard story, the variants
read (the stock and reservation conditions are SQL on both databases) and the exchange's timeline."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.conftest import ApiEnv, make_client, make_keys
from tests.api.exchange_flows import (
    exchange_notifications,
    instant_exchange_for_a_cheaper_unit,
    publish_terms,
    read,
    standard_exchange_for_a_dearer_unit,
    stocked,
)
from tests.api.flows import PRICE, Flow, ok
from tests.api.test_returns_postgres import pg_env

pytestmark = pytest.mark.postgres
__all__ = ["pg_env"]  # the PostgreSQL environment fixture, shared with the returns module


@pytest.fixture(scope="module")
def flow(pg_env: ApiEnv) -> Iterator[Flow]:
    keys = make_keys(pg_env)
    with make_client(pg_env) as client:
        made = Flow(client, pg_env, keys)
        made.publish(fast_refund=False)
        publish_terms(made)
        yield made


def test_instant_and_standard_exchanges_on_postgres(flow: Flow) -> None:
    sold, cheaper, instant = instant_exchange_for_a_cheaper_unit(flow)
    _, dearer, standard = standard_exchange_for_a_dearer_unit(flow)
    kinds = [entry["kind"] for entry in read(flow, instant, sold.auth)["timeline"]]
    assert kinds.index("replacement_released") < kinds.index("collateral_settled")
    later = flow.sold_and_delivered()
    free = stocked(flow, PRICE)
    answer = ok(flow.client.get(f"/v1/items/{later.item_id}/eligibility/exchange", headers=later.auth))
    offered = {v["item_id"] for v in answer["variants"]}
    assert free in offered
    assert not {cheaper, dearer} & offered  # sold to the consumers of the exchanges
    assert standard != instant


def test_exchange_notifications_on_postgres(flow: Flow) -> None:
    """Last in the module: it publishes a new policy version."""
    exchange_notifications(flow)
