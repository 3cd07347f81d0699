"""GET /v1/analytics/...: who sees what, CSV, and bad input, on a real chain and index (crafted through the
API: the figures expected are counted from the sales and requests this module makes)."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from fastapi.testclient import TestClient

from ledger_service.analytics.refresh import refresh
from tests.api.conftest import ApiEnv, bearer
from tests.api.exchange_flows import ask, publish_terms, stocked
from tests.api.flows import PRICE, Flow, ok, problem
from tests.support.chain import MERCHANT

TODAY = dt.datetime.now(dt.UTC).date()
AROUND = {"from": str(TODAY - dt.timedelta(days=2)), "to": str(TODAY + dt.timedelta(days=2))}


@pytest.fixture(scope="module")
def made(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> Flow:
    """Four items sold by the merchant: two returned as damaged (approved), one asked back for a changed mind
    (manual review), one exchanged for a cheaper unit (an exchange, not a return)."""
    flow = Flow(client, api_env, keys)
    flow.publish(manual_review_reasons=["changed_mind"])
    publish_terms(flow)
    for _ in range(2):
        flow.approved(flow.sold_and_delivered())
    decision = ok(flow.request(flow.sold_and_delivered(), "changed_mind"), 201)
    assert decision["outcome"] == "manual_review"
    swapped = ok(
        ask(flow, flow.sold_and_delivered(), stocked(flow, PRICE - 1_000_000), price_difference="-1000000"), 201
    )
    assert swapped["outcome"] == "approve"
    api_env.wait_indexed()
    refresh(api_env.store)
    return flow


def test_a_merchant_reads_its_rates_reasons_and_outcomes(made: Flow, client: TestClient, keys: dict[str, str]) -> None:
    mine = bearer(keys["merchant"])
    rates = ok(client.get("/v1/analytics/rates", params={"by": "merchant", **AROUND}, headers=mine), 200)
    assert rates["count"] == 1
    assert rates["data"][0] | {"merchant": None} == {
        "merchant": None, "sold": 4, "returns": 3, "rate": 0.75, "exchanges": 1, "exchange_rate": 0.25
    }  # fmt: skip
    reasons = ok(client.get("/v1/analytics/reasons", params=AROUND, headers=mine), 200)["data"]
    assert reasons == [
        {"reason_code": "damaged", "returns": 2, "share": round(2 / 3, 4)},
        {"reason_code": "changed_mind", "returns": 1, "share": round(1 / 3, 4)},
    ]
    rows = ok(client.get("/v1/analytics/outcomes", params=AROUND, headers=mine), 200)["data"]
    outcomes = {r["outcome"]: r for r in rows}
    assert len(outcomes) == len(rows)  # one token: one row per outcome
    assert outcomes["approve"]["requests"] == 2 and outcomes["manual_review"]["requests"] == 1
    assert outcomes["approve"]["exchanges"] == 1 and outcomes["manual_review"]["exchanges"] == 0
    # authorized, not yet shipped: the two returns' deposits are held, and the exchange's (the difference owed)
    assert outcomes["approve"]["outstanding_count"] == 3
    assert outcomes["approve"]["outstanding"] == 2 * PRICE + 1_000_000
    token = made.env.deployed.token.address.lower()
    assert {(r["token"], r["symbol"], r["decimals"]) for r in rows} == {(token, "dUSD", 6)}
    themes = ok(client.get("/v1/analytics/themes", params=AROUND, headers=mine), 200)["data"]
    assert themes[0]["term"] == "theme:broken" and themes[0]["comments"] == 3
    assert themes[0]["label_zh"] == "到货破损"


def test_every_table_is_served_as_csv(made: Flow, client: TestClient, keys: dict[str, str]) -> None:
    mine = bearer(keys["merchant"])
    for path in ("rates", "reasons", "reasons/trend", "themes", "outcomes", "speed", "suggestions"):
        answer = client.get(f"/v1/analytics/{path}", params={**AROUND, "format": "csv"}, headers=mine)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
        as_json = ok(client.get(f"/v1/analytics/{path}", params=AROUND, headers=mine), 200)
        assert len(list(csv.DictReader(io.StringIO(answer.text)))) == as_json["count"]


def test_auditors_see_all_or_one_merchant_and_merchants_only_their_own(
    made: Flow, client: TestClient, keys: dict[str, str], api_env: ApiEnv
) -> None:
    merchant = api_env.accounts[MERCHANT].lower()
    auditor = bearer(keys["auditor"])
    one = ok(client.get("/v1/analytics/rates", params={"by": "merchant", "merchant": merchant, **AROUND},
                        headers=auditor), 200)  # fmt: skip
    assert [r["merchant"] for r in one["data"]] == [merchant]
    other = bearer(keys["merchant2"])
    answer = client.get("/v1/analytics/rates", params={"merchant": merchant, **AROUND}, headers=other)
    assert problem(answer, 403)
    assert ok(client.get("/v1/analytics/rates", params=AROUND, headers=other), 200)["count"] == 0
    assert problem(client.get("/v1/analytics/rates", params=AROUND, headers=bearer(keys["carrier"])), 403)


def test_bad_input_is_a_clear_4xx_and_an_empty_period_an_empty_series(
    made: Flow, client: TestClient, keys: dict[str, str]
) -> None:
    auditor = bearer(keys["auditor"])
    unknown = client.get("/v1/analytics/reasons", params={"merchant": "0x" + "e4" * 20}, headers=auditor)
    assert "no merchant" in problem(unknown, 404)["detail"]
    assert "GTIN" in problem(client.get("/v1/analytics/rates", params={"gtin": 1}, headers=auditor), 404)["detail"]
    reversed_ = client.get("/v1/analytics/speed", params={"from": "2026-02-01", "to": "2026-01-01"}, headers=auditor)
    assert "reversed" in problem(reversed_, 422)["detail"]
    too_long = client.get("/v1/analytics/speed", params={"from": "2018-01-01", "to": "2026-01-01"}, headers=auditor)
    assert "five years" in problem(too_long, 422)["detail"]
    empty = client.get(
        "/v1/analytics/reasons/trend", params={"from": "2020-01-01", "to": "2020-12-31"}, headers=auditor
    )
    assert ok(empty, 200) == {"data": [], "count": 0}
