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
from tests.api.conftest import ApiEnv, bearer, return_token
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
    return {"epc": epc, "sibling": sibling, "case": case, "token": sold.token}


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


def _one(client: TestClient, event_id: str, headers: dict[str, str]) -> Any:
    return client.get(f"/v1/epcis/events/{quote(event_id, safe='')}", headers=headers)


def test_a_chain_event_is_found_by_its_event_id_as_the_history_export_gives_it(
    client: TestClient, keys: dict[str, str], story: dict[str, Any]
) -> None:
    item = item_id_of(story["epc"])
    exported = client.get(f"/v1/items/{item}/history?format=epcis", headers=bearer(keys["auditor"])).json()
    sale = next(e for e in exported["epcisBody"]["eventList"] if e["bizStep"] == "retail_selling")
    answer = _one(client, sale["eventID"], bearer(keys["auditor"]))
    assert answer.status_code == 200, answer.text
    assert schema_errors(answer.json()) == []
    [found] = answer.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert found == sale  # one serializer: the export's event, found by the ID the export gives
    upper = _one(client, "urn:uuid:" + sale["eventID"].removeprefix("urn:uuid:").upper(), bearer(keys["auditor"]))
    assert upper.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"] == [sale]
    # A captured event's item event, by the ID the history export gives it: the event as captured.
    shipping = next(e for e in exported["epcisBody"]["eventList"] if e["bizStep"] == "shipping")
    [captured] = _one(client, shipping["eventID"], bearer(keys["auditor"])).json()["epcisBody"]["queryResults"][
        "resultsBody"
    ]["eventList"]
    assert captured["ledger:hashID"].startswith("ni:///sha-256;")
    assert captured["ledger:eventHash"] == shipping["ledger:eventHash"]


def test_an_event_id_that_names_no_event_is_a_404(
    client: TestClient, keys: dict[str, str], story: dict[str, Any]
) -> None:
    events, _ = query(client, keys["auditor"], MATCH_epc=story["epc"], EQ_bizStep="retail_selling")
    event_id = events[0]["eventID"]
    # the same position with other eventHash bits: what another branch of the chain would have put there
    last = event_id[-1]
    other = event_id[:-1] + ("0" if last != "0" else "1")
    for unknown in (other, "urn:uuid:4f3a8c36-3c35-4d2b-bb5b-0a4b7c7c2a11", "ni:///sha-256;00ff?ver=CBV2.0"):
        answer = _one(client, unknown, bearer(keys["auditor"]))
        assert answer.status_code == 404, (unknown, answer.text)
        assert "no event" in answer.json()["detail"]
    assert _one(client, "urn:uuid:not-a-uuid", bearer(keys["auditor"])).status_code == 422


def test_one_chain_event_follows_the_read_rules_of_the_history(
    client: TestClient, keys: dict[str, str], story: dict[str, Any]
) -> None:
    events, _ = query(client, keys["auditor"], MATCH_epc=story["epc"], EQ_bizStep="retail_selling")
    event_id = events[0]["eventID"]
    for reader, status in (
        (bearer(keys["auditor"]), 200),
        (bearer(keys["admin"]), 200),
        (bearer(keys["merchant"]), 200),  # the item's merchant
        (bearer(keys["merchant2"]), 404),  # another merchant: the event is not disclosed
        (return_token(story["token"]), 200),  # the consumer of the item's sale
        (bearer(keys["carrier"]), 403),
        (bearer(keys["inspector"]), 403),
        (bearer(keys["manufacturer"]), 403),
    ):
        assert _one(client, event_id, reader).status_code == status, reader
    assert client.get(f"/v1/epcis/events/{quote(event_id, safe='')}").status_code == 401


def test_chain_events_are_found_by_pattern_business_transaction_and_time(
    client: TestClient, keys: dict[str, str], story: dict[str, Any]
) -> None:
    item = item_id_of(story["epc"])
    everything, _ = query(client, keys["auditor"], MATCH_epc=story["epc"])
    sale = next(e for e in everything if e["bizStep"] == "retail_selling")
    pattern = story["epc"].rsplit(".", 1)[0].replace("urn:epc:id:sgtin:", "urn:epc:idpat:sgtin:") + ".*"
    by_pattern, _ = query(client, keys["auditor"], MATCH_anyEPC=pattern, EQ_bizStep="retail_selling", perPage="1000")
    assert sale in by_pattern
    [order] = sale["bizTransactionList"]
    assert order["type"] == "po"
    by_order, _ = query(client, keys["auditor"], EQ_bizTransaction_po=order["bizTransaction"])
    assert sale in by_order and all(p["ledger:itemId"] == item for e in by_order for p in e.get("ledger:proofs", [e]))
    at_its_time, _ = query(
        client, keys["auditor"], MATCH_epc=story["epc"], GE_eventTime=sale["eventTime"], EQ_bizStep="retail_selling"
    )
    assert at_its_time == [sale]
    mine, _ = query(client, keys["merchant"], EQ_bizTransaction_po=order["bizTransaction"])
    theirs, _ = query(client, keys["merchant2"], EQ_bizTransaction_po=order["bizTransaction"])
    assert sale in mine and theirs == []
    consumers, _ = query_as(client, return_token(story["token"]), MATCH_anyEPC=pattern)
    assert sale in consumers  # every event on the consumer's item, none on another item alone:
    assert all(item in {p["ledger:itemId"] for p in e.get("ledger:proofs", [e])} for e in consumers)


def query_as(client: TestClient, headers: dict[str, str], **params: str) -> tuple[list[dict[str, Any]], str | None]:
    answer = client.get("/v1/epcis/events", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    assert schema_errors(answer.json()) == []
    return answer.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"], None


def test_paging_through_captured_and_chain_events_is_stable_while_both_are_added(
    client: TestClient, api_env: ApiEnv, keys: dict[str, str]
) -> None:
    merchant = api_env.accounts[MERCHANT]
    flow = Flow(client, api_env, keys)
    epc = new_epc()
    capture(client, keys["manufacturer"], document(commissioning([epc], merchant=merchant, minutes=300)))
    sold = flow.sell(item_id_of(epc))  # chain events: the sale, then the delivery
    flow.deliver(sold)
    capture(client, keys["merchant"], document(event([epc], minutes=24 * 60 * 365 * 5)))  # captured, dated later
    api_env.wait_indexed()
    before, _ = query(client, keys["auditor"], MATCH_epc=epc, perPage="1000")
    assert {"ledger:hashID" in e for e in before} == {True, False}  # both kinds on the pages
    seen: list[str] = []
    events, next_url = query(client, keys["auditor"], MATCH_epc=epc, perPage="1")
    seen += [e["eventID"] for e in events]
    round_ = 0
    while next_url is not None:
        if round_ < 2:  # a partner captures one more event between two pages (it sorts after all there were)
            capture(client, keys["merchant"], document(event([epc], minutes=24 * 60 * 365 * 5 + 1 + round_)))
        round_ += 1
        assert round_ < 20
        answer = client.get(next_url, headers=bearer(keys["auditor"]))
        assert answer.status_code == 200, answer.text
        seen += [e["eventID"] for e in answer.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]]
        link = answer.headers.get("link")
        next_url = re.match(r"<([^>]+)>", link).group(1) if link else None  # type: ignore[union-attr]
    assert len(seen) == len(set(seen))  # none twice
    assert {e["eventID"] for e in before} <= set(seen)  # none that existed skipped
