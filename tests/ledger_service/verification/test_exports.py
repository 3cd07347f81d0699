"""The history as JSON, CSV and EPCIS 2.0 JSON-LD: every field present, and the EPCIS document valid against
the parts of GS1's EPCIS 2.0 JSON schema it relies on."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import jsonschema_rs
import pytest
from sqlalchemy import text

from ledger_service.core.codes import BizStep, Disposition, encode_location
from ledger_service.documents.cid import Cid
from ledger_service.store.handle import Store
from ledger_service.verification import ItemHistory, ItemVerdict, audit_item
from ledger_service.verification.exports import (
    CSV_COLUMNS,
    EPCIS_CONTEXT,
    LEDGER_NS,
    event_uuid,
    history_csv,
    history_epcis,
    history_json,
)
from ledger_service.verification.history import HistoryEvent
from tests.ledger_service.verification.conftest import Audited

# ---- the EPCIS 2.0 JSON schema, the parts this export relies on ----------------------------------------
# Transcribed from GS1's EPCIS 2.0 JSON schema (github.com/gs1/EPCIS, JSON-Schema/: EPCIS-Document,
# ObjectEvent, event-definitions, bizStep, disposition, bizTransaction-type, definitions), which is not
# available offline here. CBV 2.0 lists as published.

CBV_BIZ_STEPS = [
    "accepting", "arriving", "assembling", "collecting", "commissioning", "consigning", "creating_class_instance",
    "cycle_counting", "decommissioning", "departing", "destroying", "disassembling", "dispensing", "encoding",
    "entering_exiting", "holding", "inspecting", "installing", "killing", "loading", "other", "packing", "picking",
    "receiving", "removing", "repackaging", "repairing", "replacing", "reserving", "retail_selling", "sampling",
    "sensor_reporting", "shipping", "staging_outbound", "stock_taking", "stocking", "storing", "transporting",
    "unloading", "unpacking", "void_shipping",
]  # fmt: skip
CBV_DISPOSITIONS = [
    "active", "available", "completeness_inferred", "completeness_verified", "conformant", "container_closed",
    "container_open", "damaged", "destroyed", "dispensed", "disposed", "encoded", "expired", "in_progress",
    "in_transit", "inactive", "mismatch_class", "mismatch_instance", "mismatch_quantity", "needs_replacement",
    "no_pedigree_match", "non_conformant", "non_sellable_other", "partially_dispensed", "recalled", "reserved",
    "retail_sold", "returned", "sellable_accessible", "sellable_not_accessible", "stolen", "unavailable", "unknown",
]  # fmt: skip
CBV_BIZ_TRANSACTION_TYPES = [
    "bol", "cert", "desadv", "inv", "pedigree", "po", "poc", "prodorder", "recadv", "rma", "testprd", "testres",
    "upevt",
]  # fmt: skip
DOCUMENT_KEYS = [
    "@context", "id", "type", "schemaVersion", "creationDate", "instanceIdentifier", "sender", "receiver",
    "epcisHeader", "epcisBody",
]  # fmt: skip
URI: dict[str, Any] = {"type": "string", "format": "uri"}
NON_CBV_URI: dict[str, Any] = {
    "allOf": [URI, {"not": {"pattern": "^(https:\\/\\/ns\\.gs1\\.org\\/cbv\\/|urn:epcglobal:cbv:)"}}]
}
EVENT_KEYS = [
    "@context", "type", "eventTime", "recordTime", "eventTimeZoneOffset", "eventID", "errorDeclaration", "epcList",
    "quantityList", "action", "bizStep", "disposition", "persistentDisposition", "readPoint", "bizLocation",
    "bizTransactionList", "sourceList", "destinationList", "sensorElementList", "ilmd", "certificationInfo",
]  # fmt: skip
OBJECT_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["type", "eventTime", "eventTimeZoneOffset", "action"],
    "properties": {
        "type": {"const": "ObjectEvent"},
        "eventTime": {"type": "string", "format": "date-time"},
        "eventTimeZoneOffset": {"type": "string", "pattern": "^([+]|[-])((0[0-9]|1[0-3]):([0-5][0-9])|14:00)$"},
        "eventID": URI,
        "epcList": {"type": "array", "items": URI, "uniqueItems": True, "minItems": 1},
        "action": {"enum": ["OBSERVE", "ADD", "DELETE"]},
        "bizStep": {"anyOf": [NON_CBV_URI, {"enum": CBV_BIZ_STEPS}]},
        "disposition": {"anyOf": [NON_CBV_URI, {"enum": CBV_DISPOSITIONS}]},
        "readPoint": {"type": "object", "required": ["id"], "properties": {"id": URI}},
        "bizTransactionList": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["bizTransaction"],
                "additionalProperties": False,
                "properties": {
                    "type": {"anyOf": [URI, {"enum": CBV_BIZ_TRANSACTION_TYPES}]},
                    "bizTransaction": URI,
                },
            },
        },
    },
    # extension fields must be compact IRIs / URIs of a declared namespace
    "propertyNames": {"anyOf": [{"enum": EVENT_KEYS}, URI]},
}
EPCIS_DOCUMENT: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["@context", "type", "schemaVersion", "creationDate", "epcisBody"],
    "properties": {
        "@context": {
            "type": "array",
            "uniqueItems": True,
            "items": {"anyOf": [URI, {"type": "object"}]},
            "contains": {"const": EPCIS_CONTEXT},
        },
        "type": {"const": "EPCISDocument"},
        "schemaVersion": {"const": "2.0"},
        "creationDate": {"type": "string", "format": "date-time"},
        "epcisBody": {
            "type": "object",
            "required": ["eventList"],
            "properties": {"eventList": {"type": "array", "items": OBJECT_EVENT}},
        },
    },
    "propertyNames": {"anyOf": [{"enum": DOCUMENT_KEYS}, URI]},
}
VALIDATOR = jsonschema_rs.Draft7Validator(EPCIS_DOCUMENT, validate_formats=True)


def _audit(audited: Audited, store: Store, item_id: str | None = None) -> tuple[ItemHistory, ItemVerdict]:
    result = audit_item(store=store, chain=audited.chain, documents=None, item_id=item_id or audited.subject)
    assert result is not None
    return result.history, result.verdict


def _errors(document: dict[str, Any]) -> list[str]:
    return [f"{e.instance_path}: {e.message}" for e in VALIDATOR.iter_errors(document)]


# ---- EPCIS --------------------------------------------------------------------------------------------


def test_the_schema_subset_rejects_what_gs1_rejects() -> None:
    """The transcribed schema has teeth: wrong names, offsets, actions and undeclared keys are refused."""
    history_doc: dict[str, Any] = {
        "@context": [EPCIS_CONTEXT],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-01-01T00:00:00Z",
        "epcisBody": {"eventList": []},
    }
    good_event = {
        "type": "ObjectEvent",
        "eventTime": "2026-01-01T00:00:00Z",
        "eventTimeZoneOffset": "+00:00",
        "epcList": ["urn:epc:id:sgtin:0614141.107346.2017"],
        "action": "OBSERVE",
        "bizStep": "shipping",
    }
    assert _errors({**history_doc, "epcisBody": {"eventList": [good_event]}}) == []
    for bad in (
        {"bizStep": "urn:epcglobal:cbv:bizstep:shipping"},  # 2.0 JSON uses the bare CBV names
        {"bizStep": "returning"},
        {"disposition": "broken"},
        {"eventTimeZoneOffset": "Z"},
        {"action": "UPDATE"},
        {"eventTime": "yesterday"},
        {"eventHash": "0x00"},  # an extension key that is no URI / compact IRI
        {"bizTransactionList": [{"type": "po"}]},
    ):
        assert _errors({**history_doc, "epcisBody": {"eventList": [{**good_event, **bad}]}}), bad


def test_the_epcis_document_is_valid_epcis_2_0(audited: Audited, index: Store) -> None:
    for item_id in [audited.subject, *audited.lifecycle_items]:
        history, verdict = _audit(audited, index, item_id)
        document = history_epcis(history, verdict, created_at=1_800_000_000)
        assert _errors(document) == [], item_id
        json.dumps(document)  # plain JSON


def test_the_epcis_events_carry_the_item_the_cbv_terms_and_the_chain_data(audited: Audited, index: Store) -> None:
    history, verdict = _audit(audited, index)
    document = history_epcis(history, verdict, created_at=1_800_000_000)
    assert document["@context"] == [EPCIS_CONTEXT, {"ledger": LEDGER_NS}]
    assert document["creationDate"] == "2027-01-15T08:00:00Z"
    events = document["epcisBody"]["eventList"]
    assert [e["epcList"] for e in events] == [[audited.subject_uri]] * 5
    assert audited.subject_uri.startswith("urn:epc:id:sgtin:")
    assert [(e["action"], e["bizStep"], e["disposition"]) for e in events] == [
        ("ADD", "commissioning", "active"),
        ("OBSERVE", "packing", "active"),
        ("OBSERVE", "departing", "in_transit"),
        ("OBSERVE", "arriving", "in_transit"),
        ("OBSERVE", "inspecting", "conformant"),
    ]
    assert events[2]["readPoint"] == {"id": "urn:epc:id:sgln:0860001.00100.0"}
    assert "readPoint" not in events[1]
    for event, row in zip(events, history.events, strict=True):
        assert event["eventTimeZoneOffset"] == "+00:00"
        assert event["eventTime"].endswith("Z")
        assert event["ledger:eventHash"] == row.event_hash
        assert event["ledger:prevHash"] == row.prev_hash
        assert event["ledger:txHash"] == row.tx_hash
        assert event["ledger:blockNumber"] == row.block_number
        assert event["eventID"] == event_uuid(row.block_number, row.log_index, row.event_hash)
    assert events[1]["ledger:document"] == Cid.from_digest(audited.document_digest).v0
    assert len({e["eventID"] for e in events}) == 5


def test_returns_and_sales_are_typed_business_transactions(audited: Audited, index: Store) -> None:
    with index.engine.connect() as conn:
        return_ids = set(conn.execute(text("SELECT return_id FROM returns")).scalars())
    typed: list[dict[str, str]] = []
    for item_id in audited.lifecycle_items:
        history, verdict = _audit(audited, index, item_id)
        for event in history_epcis(history, verdict, created_at=0)["epcisBody"]["eventList"]:
            typed.extend(event.get("bizTransactionList", []))
    rmas = {t["bizTransaction"] for t in typed if t.get("type") == "rma"}
    assert rmas and rmas <= {f"{LEDGER_NS}bizTransaction/{r}" for r in return_ids}


def _event(**changes: Any) -> HistoryEvent:
    fields: dict[str, Any] = {
        "seq": 0,
        "biz_step": int(BizStep.DESTROYING),
        "disposition": int(Disposition.DESTROYED),
        "actor": "0x" + "11" * 20,
        "actor_roles": ("manufacturer",),
        "location": "0x" + "00" * 32,
        "document": "0x" + "00" * 32,
        "biz_transaction": "0x" + "00" * 32,
        "biz_transaction_type": None,
        "timestamp": 0,
        "prev_hash": "0x" + "00" * 32,
        "event_hash": "0x" + "ee" * 32,
        "block_number": 7,
        "block_hash": "0x" + "bb" * 32,
        "log_index": 0,
        "tx_hash": "0x" + "aa" * 32,
        "tx_index": 0,
    }
    return HistoryEvent(**(fields | changes))


def _history(*events: HistoryEvent, uri: str | None = None) -> ItemHistory:
    from ledger_service.verification.history import ItemRegistration

    registration = None if uri is None else ItemRegistration(uri, 1, "0x" + "22" * 20, "0x" + "33" * 20, "0x", 1, "0x")
    return ItemHistory("0x" + "44" * 32, registration, None, False, tuple(events), 10)


def _verdict(*findings: Any) -> ItemVerdict:
    return ItemVerdict("0x" + "44" * 32, 1, None, None, None, 0, 0, tuple(findings))


@pytest.mark.parametrize(
    ("step", "action"),
    [(BizStep.DESTROYING, "DELETE"), (BizStep.DECOMMISSIONING, "DELETE"), (BizStep.COMMISSIONING, "ADD")],
)
def test_the_action_follows_the_step(step: BizStep, action: str) -> None:
    history = _history(_event(biz_step=int(step)), uri="https://id.gs1.org/01/09506000134352/21/2017")
    document = history_epcis(history, _verdict(), created_at=0)
    (event,) = document["epcisBody"]["eventList"]
    assert event["action"] == action
    assert event["epcList"] == ["https://id.gs1.org/01/09506000134352/21/2017"]  # a Digital Link, as is
    assert _errors(document) == []


def test_codes_outside_the_table_become_ledger_uris_not_fake_cbv_terms() -> None:
    document = history_epcis(_history(_event(biz_step=99, disposition=98)), _verdict(), created_at=0)
    (event,) = document["epcisBody"]["eventList"]
    assert (event["bizStep"], event["disposition"]) == (f"{LEDGER_NS}bizStep/99", f"{LEDGER_NS}disposition/98")
    assert event["epcList"] == [f"{LEDGER_NS}item/0x{'44' * 32}"]  # no registration indexed
    assert _errors(document) == []


# ---- CSV and JSON -------------------------------------------------------------------------------------


def test_the_csv_has_one_line_per_event_in_seq_order(audited: Audited, index: Store) -> None:
    history, verdict = _audit(audited, index)
    rows = list(csv.reader(io.StringIO(history_csv(history, verdict))))
    assert tuple(rows[0]) == CSV_COLUMNS
    lines = [dict(zip(CSV_COLUMNS, r, strict=True)) for r in rows[1:]]
    assert [line["seq"] for line in lines] == ["0", "1", "2", "3", "4"]
    assert [line["biz_step"] for line in lines] == ["commissioning", "packing", "departing", "arriving", "inspecting"]
    assert lines[2]["actor_roles"] == "carrier" and lines[2]["read_point"] == "0860001.00100.0"
    assert lines[1]["document_cid"] == Cid.from_digest(audited.document_digest).v0
    for line, event in zip(lines, history.events, strict=True):
        assert (line["event_hash"], line["tx_hash"], line["block_hash"]) == (
            event.event_hash,
            event.tx_hash,
            event.block_hash,
        )
        assert line["findings"] == ""


def test_the_csv_shows_a_missing_event_as_a_line_of_its_own(audited: Audited, index: Store) -> None:
    with index.engine.begin() as conn:
        conn.execute(text("DELETE FROM item_events WHERE item_id = :i AND seq = 2"), {"i": audited.subject})
    history, verdict = _audit(audited, index)
    rows = list(csv.DictReader(io.StringIO(history_csv(history, verdict))))
    assert [(r["seq"], r["findings"]) for r in rows] == [
        ("0", ""),
        ("1", ""),
        ("2", "event-missing"),
        ("3", ""),
        ("4", ""),
    ]
    assert rows[2]["event_hash"] == ""


def test_csv_cells_never_run_as_spreadsheet_formulas() -> None:
    event = _event(location="0x" + encode_location("=HYPERLINK(1)").hex())
    rows = list(csv.DictReader(io.StringIO(history_csv(_history(event), _verdict()))))
    assert rows[0]["read_point"] == "'=HYPERLINK(1)"


def test_the_json_has_every_field_and_the_verdict(audited: Audited, index: Store) -> None:
    history, verdict = _audit(audited, index)
    body = history_json(history, verdict, checked_at=1_800_000_000)
    assert body["uri"] == body["epc"] == audited.subject_uri
    assert body["count"] == len(body["events"]) == 5
    assert body["verification"]["intact"] is True and body["verification"]["checked_at"] == "2027-01-15T08:00:00Z"
    first, packing = body["events"][0], body["events"][1]
    assert first["biz_transaction"] is None and first["prev_hash"] == "0x" + "00" * 32
    assert packing["document_cid"] == Cid.from_digest(audited.document_digest).v0
    assert packing["document_cid_v1"].startswith("bafy")
    assert set(packing) >= {
        "seq", "biz_step", "disposition", "actor", "actor_roles", "event_time", "document_cid", "prev_hash",
        "event_hash", "tx_hash", "block_number", "block_hash", "log_index",
    }  # fmt: skip
    json.dumps(body)
