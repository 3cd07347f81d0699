"""``/metrics``, ``/healthz``, ``/readyz`` and ``X-Request-ID`` of a served ``ledger-api`` (two worker processes,
multiprocess metrics) on a real anvil and index: real actions move the metrics, whichever worker answers the
scrape; a request's id comes back and is on the log lines of the transactions it sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from ledger_service.metrics import METRIC_NAMES
from tests.api.conftest import ApiEnv, make_client
from tests.api.flows import PRICE, Flow, ok, problem
from tests.api.served import Served, serve
from tests.support.metrics import Samples, parse, summed, value


@pytest.fixture(scope="module")
def served(api_env: ApiEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Path]]:
    log = tmp_path_factory.mktemp("served") / "api.log"
    with serve(api_env, API_WORKERS="2", LOG_LEVEL="INFO", LOG_JSON="true", LOG_FILE=str(log)) as running:
        yield running, log


@pytest.fixture(scope="module")
def http(served: tuple[Served, Path]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served[0].url, timeout=60) as client:
        yield client


def scrape(http: httpx.Client) -> Samples:
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def test_a_return_request_moves_the_request_transaction_and_index_metrics(
    api_env: ApiEnv, http: httpx.Client, keys: dict[str, str]
) -> None:
    flow = Flow(http, api_env, keys)  # type: ignore[arg-type]  # httpx.Client speaks TestClient's calls
    flow.publish()
    sold = flow.sold_and_delivered()
    before = scrape(http)
    token = api_env.deployed.token.address.lower()
    decision = ok(flow.request(sold), 201)
    assert decision["outcome"] == "approve"
    route = {"route": "/v1/returns", "method": "POST", "status": "201"}
    requests = value(before, "ledger_http_request_duration_seconds_count", **route)
    mined = value(before, "ledger_tx_total", outcome="mined")
    authorized = value(before, "ledger_returns", state="authorized")
    held = value(before, "ledger_escrow_outstanding", token=token)
    for _ in range(6):  # each scrape is answered by either worker: the workers' values are added up
        now = scrape(http)
        assert value(now, "ledger_http_request_duration_seconds_count", **route) == requests + 1, [
            k for k in now if k[0] == "ledger_http_request_duration_seconds_count"
        ]
        assert value(now, "ledger_tx_total", outcome="mined") > mined
        assert value(now, "ledger_tx_confirm_duration_seconds_count") >= value(now, "ledger_tx_total", outcome="mined")
        assert value(now, "ledger_returns", state="authorized") == authorized + 1
        assert value(now, "ledger_escrow_outstanding", token=token) == held + PRICE


def test_labels_are_route_templates_and_every_family_is_defined(api_env: ApiEnv, http: httpx.Client) -> None:
    item = "0x" + "ab" * 32
    assert http.get(f"/v1/items/{item}/eligibility").status_code == 401
    assert http.get("/no/such/path").status_code == 404
    samples = scrape(http)
    routes = {dict(labels).get("route") for name, labels in samples if name.startswith("ledger_http_request")}
    assert "/v1/items/{item_id}/eligibility" in routes
    assert "<unmatched>" in routes
    assert not any(route and item in route for route in routes)  # never a path: the labels stay bounded
    families = {family.name for family in text_string_to_metric_families(http.get("/metrics").text)}
    ours = {name for name in families if name.startswith("ledger_")}
    # the counters' families are named without _total by the parser
    assert ours <= {name.removesuffix("_total") for name in METRIC_NAMES} | METRIC_NAMES
    assert {"ledger_http_request_duration_seconds", "ledger_returns", "ledger_escrow_outstanding"} <= ours


def test_request_ids_come_back_and_reach_the_transactions_log_lines(
    api_env: ApiEnv, http: httpx.Client, keys: dict[str, str], served: tuple[Served, Path]
) -> None:
    given = http.get("/healthz", headers={"X-Request-ID": "lb-7f3a.1:2"})
    assert given.json() == {"status": "alive"}
    assert given.headers["x-request-id"] == "lb-7f3a.1:2"
    made = http.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"}).headers["x-request-id"]
    assert made != "bad id\twith spaces" and len(made) == 32
    assert http.get("/healthz").headers["x-request-id"] != made

    flow = Flow(http, api_env, keys)  # type: ignore[arg-type]
    item = flow.register()
    consumer = "0x" + "5e" * 20
    body = {"item_id": item, "consumer": consumer, "price": str(PRICE), "order_ref": "order-rid"}
    headers = {"Authorization": f"Bearer {keys['merchant']}", "X-Request-ID": "sale-42"}
    sale = http.post("/v1/sales?wait=true", headers=headers, json=body)
    assert sale.status_code == 201, sale.text
    assert sale.headers["x-request-id"] == "sale-42"
    lines = [json.loads(line) for line in served[1].read_text().splitlines() if line.startswith("{")]
    sent = [line for line in lines if line.get("event") in ("tx_sent", "tx_mined")]
    assert {line["event"] for line in sent if line.get("request_id") == "sale-42"} == {"tx_sent", "tx_mined"}


def test_readyz_is_ready_with_the_index_current(api_env: ApiEnv, http: httpx.Client) -> None:
    api_env.wait_indexed()
    body = ok(http.get("/readyz"))
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "node", "index_lag"}
    assert all(check["ok"] for check in body["checks"].values())
    assert ok(http.get("/healthz")) == {"status": "alive"}


def test_readyz_names_an_index_behind_and_a_node_down(api_env: ApiEnv, tmp_path: Path) -> None:
    # an empty index of its own: the chain is far ahead of it
    settings = api_env.settings.model_copy(
        update={"database_url": f"sqlite:///{tmp_path / 'empty.sqlite3'}", "ready_max_lag_blocks": 0}
    )
    behind = ApiEnv(**{**api_env.__dict__, "settings": settings})
    with make_client(behind) as client:
        body = problem(client.get("/readyz"), 503)
        assert body["failing"] == ["index_lag"]
        assert "index_lag" in body["detail"] and "LEDGER_READY_MAX_LAG_BLOCKS" in body["detail"]
        # the node goes away (a closed port): named as such, the lag not checked
        client.app.state.chain.w3.provider.endpoint_uri = "http://127.0.0.1:9"  # type: ignore[attr-defined]
        body = problem(client.get("/readyz"), 503)
        assert body["failing"] == ["node", "index_lag"]
        assert body["checks"]["database"]["ok"] is True
        assert "unreachable" in body["checks"]["node"]["detail"]
        assert ok(client.get("/healthz")) == {"status": "alive"}


def test_in_process_metrics_without_workers(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    samples = parse(client.get("/metrics").text)
    assert summed(samples, "ledger_http_request_duration_seconds_count", route="/healthz") >= 1
