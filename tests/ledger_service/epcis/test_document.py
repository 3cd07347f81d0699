"""Reading an EPCIS document: GS1's schema, our stateless rules, the CBV hash IDs (pure: no index, no chain)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from ledger_service.core.codes import BizStep, Disposition
from ledger_service.epcis.document import parse_json, read_document
from ledger_service.epcis.errors import DocumentRefusedError
from ledger_service.recursion import restore_recursion_limit

CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
EPC = "urn:epc:id:sgtin:0614141.107346.2017"


def event(**changes: Any) -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "eventTime": "2026-03-01T10:00:00.000+01:00",
        "eventTimeZoneOffset": "+01:00",
        "epcList": [EPC],
        "action": "OBSERVE",
        "bizStep": "shipping",
        "disposition": "in_transit",
        "readPoint": {"id": "urn:epc:id:sgln:0614141.00777.0"},
        **changes,
    }


def document(*events: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return {
        "@context": context or [CONTEXT],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-03-01T09:00:00Z",
        "epcisBody": {"eventList": list(events)},
    }


def refusals(doc: dict[str, Any]) -> list[tuple[int | None, str, str]]:
    with pytest.raises(DocumentRefusedError) as refused:
        read_document(doc)
    return [(e.index, e.pointer, e.message) for e in refused.value.errors]


def test_an_event_is_read_with_its_codes_time_location_and_hash_id() -> None:
    [read] = read_document(json.dumps(document(event())).encode())
    assert (read.biz_step, read.disposition) == (BizStep.SHIPPING, Disposition.IN_TRANSIT)
    assert read.event_time_ms == 1772355600000  # 09:00 UTC
    assert read.location == "0614141.00777.0"
    assert read.hash_id.startswith("ni:///sha-256;") and read.hash_id.endswith("?ver=CBV2.0")
    assert read.items() == [
        ("0x" + __import__("ledger_service.core.keccak", fromlist=["x"]).keccak_text(EPC).hex(), EPC)
    ]


def test_the_hash_id_follows_the_cbv_canonical_form() -> None:
    [plain] = read_document(document(event()))
    urn = event(
        bizStep="https://ref.gs1.org/cbv/BizStep-shipping", disposition="https://ref.gs1.org/cbv/Disp-in_transit"
    )
    reordered = dict(reversed(list(event(eventID="urn:uuid:4f3a8c36-3c35-4d2b-bb5b-0a4b7c7c2a11").items())))
    [as_urn] = read_document(document(urn))
    [with_id] = read_document(document(reordered))
    [later] = read_document(document(event(eventTime="2026-03-01T10:00:01.000+01:00")))
    assert plain.hash_id == as_urn.hash_id == with_id.hash_id  # same event: names, key order, eventID aside
    assert later.hash_id != plain.hash_id


def test_every_refused_event_is_named_by_index_and_pointer() -> None:
    doc = document(
        event(),
        event(bizStep="flying"),
        event(epcList=["urn:epc:id:sscc:0614141.1234567890"]),
        event(bizStep="retail_selling"),
        event(bizStep="commissioning", disposition="active"),
        event(epcList=["(01)09506000134352(21)7"]),
    )
    found = refusals(doc)
    assert {index for index, _, _ in found} == {1, 2, 3, 4, 5}
    pointers = {index: pointer for index, pointer, _ in found}
    assert pointers[1] == "/epcisBody/eventList/1/bizStep"
    assert pointers[2] == "/epcisBody/eventList/2/epcList/0"
    messages = {index: message for index, _, message in found}
    assert "not an SGTIN URI or a GS1 Digital Link" in messages[2]
    assert "POST /v1/sales" in messages[3]
    assert "ObjectEvent with action ADD" in messages[4]


def test_a_digital_link_and_an_sscc_parent_are_accepted() -> None:
    link = "https://id.gs1.org/01/09506000134352/21/2017"
    aggregation = {
        "type": "AggregationEvent",
        "eventTime": "2026-03-01T10:00:00Z",
        "eventTimeZoneOffset": "+00:00",
        "parentID": "urn:epc:id:sscc:0614141.1234567890",
        "childEPCs": [link, EPC],
        "action": "ADD",
        "bizStep": "packing",
        "disposition": "in_progress",
    }
    [read] = read_document(document(aggregation))
    assert [epc for _, epc in read.items()] == [link, EPC]  # the parent is no item


def test_a_remote_context_is_refused_not_fetched() -> None:
    found = refusals(document(event(), context=[CONTEXT, "https://example.invalid/context.jsonld"]))
    assert found == [(None, "/@context", found[0][2])]
    assert "is not one this service knows" in found[0][2]


def test_malformed_json_is_one_error_at_the_root() -> None:
    with pytest.raises(DocumentRefusedError) as refused:
        read_document(b'{"type": "EPCISDocument",')
    assert refused.value.malformed
    [error] = refused.value.errors
    assert (error.index, error.pointer) == (None, "")


def test_a_number_past_pythons_digit_limit_is_refused_not_crashed() -> None:
    # json.loads raises a plain ValueError for it, not JSONDecodeError: the fuzzer found it as a 500
    with pytest.raises(DocumentRefusedError) as refused:
        read_document(b'{"type": "EPCISDocument", "schemaVersion": ' + b"9" * 5_000 + b"}")
    assert refused.value.malformed and "number too long" in refused.value.errors[0].message


def test_a_query_document_is_not_captured() -> None:
    doc = copy.deepcopy(document(event()))
    doc["type"] = "EPCISQueryDocument"
    doc["epcisBody"] = {"queryResults": {"queryName": "SimpleEventQuery", "resultsBody": {"eventList": [event()]}}}
    assert refusals(doc)[0][0] is None


def test_a_document_nested_past_the_parser_is_refused_not_crashed() -> None:
    restore_recursion_limit()  # as the API does at startup: py_ecc's 100,000 lets the C decoder overflow the stack
    with pytest.raises(DocumentRefusedError) as refused:
        read_document(b"[" * 5_000 + b"1" + b"]" * 5_000)
    assert refused.value.malformed and "nests arrays and objects too deeply" in refused.value.errors[0].message


@pytest.mark.parametrize(
    ("raw", "pointer"),
    [(rb'["\ud800"]', "/0"), (rb'{"a": [1, {"b/c": "x\uDC00"}]}', "/a/1/b~1c"), (rb'{"\udbff": 1}', "/")],
)
def test_a_lone_surrogate_escape_is_refused_with_where_it_is(raw: bytes, pointer: str) -> None:
    with pytest.raises(DocumentRefusedError) as refused:
        parse_json(raw)
    [error] = refused.value.errors
    assert f"lone UTF-16 surrogate escape (\\ud800-\\udfff without its pair) at {pointer}," in error.message


def test_a_surrogate_pair_escape_is_one_character_and_read() -> None:
    assert parse_json(rb'["\ud83d\ude00 \u00e9"]') == ["\U0001f600 \u00e9"]
