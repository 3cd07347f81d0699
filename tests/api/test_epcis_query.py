"""GET /v1/epcis/events and /v1/epcis/events/{eventID} against a real anvil, SQLite and the indexer: captured
events as sent with their ledger proofs, the escrow's events from the chain, read rules, stable paging, and
every answer valid under GS1's official EPCIS 2.0 schema.
"""

from __future__ import annotations

import itertools
import re
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from ledger_service.epcis.document import item_id_of
from ledger_service.epcis.schema import schema_errors
from tests.api.conftest import ApiEnv, bearer
from tests.api.epcis_docs import aggregation, commissioning, document, event, new_epc, new_sscc
from tests.api.flows import Flow
from tests.api.test_epcis_capture import capture
from tests.support.chain import MERCHANT

LD = "application/ld+json"


def query(client: TestClient, key: str, **params: str) -> tuple[list[dict[str, Any]], str | None]:
    answer = client.get("/v1/epcis/events", params=params, headers=bearer(key))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith(LD)
    doc = answer.json()
    assert schema_errors(doc) == []
    assert doc["type"] == "EPCISQueryDocument"
    link = answer.headers.get("link")
    next_url = re.match(r"<([^>]+)>; rel=\"next\"", link).group(1) if link else None  # type: ignore[union-attr]
    return doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"], next_url


@pytest.fixture(scope="module")
def story(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> dict[str, Any]:
    """An item commissioned, shipped and packed by capture, then sold, delivered and returned through the API."""
    epc, sibling, case = new_epc(), new_epc(), new_sscc()
    merchant = api_env.accounts[MERCHANT]
    assert (
        capture(client, keys["manufacturer"], document(commissioning([epc, sibling], merchant=merchant)))["state"]
        == "succeeded"
    )
    shipped = capture(
        client,
        keys["merchant"],
        document(
            event(
                [epc],
                minutes=10,
                bizTransactionList=[{"type": "po", "bizTransaction": "urn:epcglobal:cbv:bt:0614141073467:PO-7"}],
            ),
            aggregation(case, [epc, sibling], minutes=20),
        ),
    )
    assert shipped["state"] == "succeeded", shipped
    flow = Flow(client, api_env, keys)
    flow.publish()
    sold = flow.sell(item_id_of(epc))
    flow.deliver(sold)
    flow.approved(sold)
    api_env.wait_indexed()
    return {"epc": epc, "sibling": sibling, "case": case}


def test_an_items_events_come_in_time_order_with_their_proofs_and_the_escrows_events(
    client: TestClient, keys: dict[str, str], story: dict[str, Any]
) -> None:
    events, _ = query(client, keys["auditor"], MATCH_epc=story["epc"])
    steps = [e["bizStep"] for e in events]
    assert steps[:3] == ["commissioning", "shipping", "packing"]
    assert "retail_selling" in steps[3:]  # written by the escrow: no capture document, answered from the chain
    captured, chain = events[:3], events[3:]
    assert all(e["ledger:hashID"].startswith("ni:///sha-256;") for e in captured)
    assert all("ledger:hashID" not in e for e in chain)
    assert captured[1]["bizTransactionList"][0]["bizTransaction"] == "urn:epcglobal:cbv:bt:0614141073467:PO-7"
    packed = captured[2]
    assert packed["type"] == "AggregationEvent" and packed["parentID"] == story["case"]
    assert {p["ledger:itemId"] for p in packed["ledger:proofs"]} == {
        item_id_of(story["epc"]),
        item_id_of(story["sibling"]),
    }
    item = item_id_of(story["epc"])
    proofs = [p for e in events for p in e.get("ledger:proofs", [e]) if p["ledger:itemId"] == item]
    assert [p["ledger:seq"] for p in proofs] == list(range(len(proofs)))  # every event of the item, in order
    assert all(re.fullmatch(r"0x[0-9a-f]{64}", p["ledger:txHash"]) for p in proofs)
    assert all(p["ledger:prevHash"] == before["ledger:eventHash"] for before, p in itertools.pairwise(proofs))


def test_filters_narrow_the_answer(client: TestClient, keys: dict[str, str], story: dict[str, Any]) -> None:
    epc = story["epc"]
    packed, _ = query(client, keys["auditor"], MATCH_anyEPC=story["case"])
    assert [e["type"] for e in packed] == ["AggregationEvent"]
    shipping, _ = query(client, keys["auditor"], MATCH_epc=epc, EQ_bizStep="urn:epcglobal:cbv:bizstep:shipping")
    assert [e["bizStep"] for e in shipping] == ["shipping"]
    po, _ = query(client, keys["auditor"], EQ_bizTransaction_po="urn:epcglobal:cbv:bt:0614141073467:PO-7")
    assert [e["ledger:hashID"] for e in po] == [shipping[0]["ledger:hashID"]]
    early, _ = query(
        client, keys["auditor"], MATCH_epc=epc, GE_eventTime="2026-03-01T08:10:00Z", LT_eventTime="2026-03-01T08:20:00Z"
    )
    assert [e["bizStep"] for e in early] == ["shipping"]
    pattern, _ = query(
        client, keys["auditor"], MATCH_epc="urn:epc:idpat:sgtin:0614141.107346.*", eventType="AggregationEvent"
    )
    assert any(e.get("parentID") == story["case"] for e in pattern)


def test_read_rules_follow_the_item_history(client: TestClient, keys: dict[str, str], story: dict[str, Any]) -> None:
    mine, _ = query(client, keys["merchant"], MATCH_epc=story["epc"])
    theirs, _ = query(client, keys["merchant2"], MATCH_epc=story["epc"])
    assert mine and theirs == []
    refused = client.get("/v1/epcis/events", params={"MATCH_epc": story["epc"]}, headers=bearer(keys["carrier"]))
    assert refused.status_code == 403


def test_one_event_by_its_hash_id(client: TestClient, keys: dict[str, str], story: dict[str, Any]) -> None:
    events, _ = query(client, keys["auditor"], MATCH_epc=story["epc"], EQ_bizStep="shipping")
    hash_id = events[0]["ledger:hashID"]
    answer = client.get(f"/v1/epcis/events/{quote(hash_id, safe='')}", headers=bearer(keys["auditor"]))
    assert answer.status_code == 200, answer.text
    assert schema_errors(answer.json()) == []
    [found] = answer.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert found == events[0]
    other = client.get(f"/v1/epcis/events/{quote(hash_id, safe='')}", headers=bearer(keys["merchant2"]))
    assert other.status_code == 404


def test_paging_is_stable_while_events_are_added(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> None:
    epcs = [new_epc() for _ in range(5)]
    merchant = api_env.accounts[MERCHANT]
    capture(client, keys["manufacturer"], document(commissioning(epcs, merchant=merchant, minutes=100)))
    capture(client, keys["merchant"], document(*(event([e], minutes=110 + i) for i, e in enumerate(epcs))))
    pattern = epcs[0].rsplit(".", 1)[0] + ".*"
    seen: list[str] = []
    params = {"MATCH_epc": ",".join(epcs), "perPage": "2"}
    events, next_url = query(client, keys["auditor"], **params)
    seen += [e["ledger:hashID"] for e in events]
    added = 0
    while next_url is not None:
        # Another writer adds events (one before the cursor, one after) between two pages.
        capture(client, keys["merchant"], document(event([epcs[added]], minutes=200 + added)))
        added += 1
        answer = client.get(next_url, headers=bearer(keys["auditor"]))
        assert answer.status_code == 200, answer.text
        seen += [e["ledger:hashID"] for e in answer.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]]
        link = answer.headers.get("link")
        next_url = re.match(r"<([^>]+)>", link).group(1) if link else None  # type: ignore[union-attr]
    assert len(seen) == len(set(seen))
    everything, _ = query(client, keys["auditor"], MATCH_epc=",".join(epcs), perPage="1000")
    first_ten = [e["ledger:hashID"] for e in everything][:10]
    assert set(first_ten) <= set(seen)
    assert pattern.endswith(".*")


def test_bad_parameters_are_named(client: TestClient, keys: dict[str, str]) -> None:
    for params, words in (
        ({"MATCH_EPC": "x"}, "unknown query parameter(s) MATCH_EPC"),
        ({"GE_eventTime": "yesterday"}, "GE_eventTime must be a time in ISO 8601"),
        ({"GE_eventTime": "2026-03-01T08:00:00"}, "needs a UTC offset"),
        ({"nextPageToken": "garbage"}, "nextPageToken is not a token this API gave"),
        ({"MATCH_epc": "urn:epc:idpat:sgtin:*.107346.1"}, "is not an SGTIN pattern"),
    ):
        answer = client.get("/v1/epcis/events", params=params, headers=bearer(keys["auditor"]))
        assert answer.status_code == 422, (params, answer.text)
        assert words in answer.json()["detail"], answer.json()


def test_the_history_export_is_valid_under_the_official_schema(
    client: TestClient, keys: dict[str, str], story: dict[str, Any]
) -> None:
    answer = client.get(f"/v1/items/{item_id_of(story['epc'])}/history?format=epcis", headers=bearer(keys["auditor"]))
    assert answer.status_code == 200, answer.text
    assert schema_errors(answer.json()) == []
    events, _ = query(client, keys["auditor"], MATCH_epc=story["epc"])
    chain_events = [e for e in events if "ledger:hashID" not in e]
    exported = {e["ledger:eventHash"]: e for e in answer.json()["epcisBody"]["eventList"]}
    for chain_event in chain_events:  # one serializer: the same event reads the same in both
        assert exported[chain_event["ledger:eventHash"]] == chain_event
