"""The demo's supply chain, recorded through the EPCIS 2.0 capture interface (service venv; called by
scripts/run.sh before scripts/demo.py, which records the sales and returns on top of it).

Three EPCIS documents, each sent with the key of the account that acts (as a partner's EPCIS system would):
the manufacturer commissions the six demo items (1001-1005 for the merchant, 1006 for the second merchant),
packs them into a case (an AggregationEvent, recorded on each item) and ships them against two purchase
orders; the merchant receives and stocks 1001-1005, the second merchant 1006. Event times count from the
chain's genesis block, so every run sends the same documents: a second run finds every event's hash ID
captured and records nothing. They are dated in the two days before the chain's first block (the goods were
made and shipped before this demo chain existed), so the sales and returns the chain records next come after
them. Prints the query that answers the items' histories.

Usage: .venv/bin/python scripts/demo_capture.py API_URL
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from demo_api import setup, wait_for_api

CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
COMPANY_PREFIX, ITEM_REF = "0614141", "107346"
SERIALS = (1001, 1002, 1003, 1004, 1005, 1006)
MERCHANT = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
MERCHANT2 = "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f"
FACTORY = "urn:epc:id:sgln:0614141.00777.0"
MERCHANT_DC = "urn:epc:id:sgln:4012345.00001.0"
STORE = "urn:epc:id:sgln:4012345.00010.0"
MERCHANT2_STORE = "urn:epc:id:sgln:4098765.00010.0"
CASE = "urn:epc:id:sscc:0614141.1000000001"
PO_1 = "urn:epcglobal:cbv:bt:4012345000009:PO-4012345-2026-0042"
PO_2 = "urn:epcglobal:cbv:bt:4098765000002:PO-4098765-2026-0007"
MINUTE = 60


def uri(serial: int) -> str:
    return f"urn:epc:id:sgtin:{COMPANY_PREFIX}.{ITEM_REF}.{serial}"


def at(start: int, minutes: int) -> str:
    return datetime.fromtimestamp(start + minutes * MINUTE, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def event(
    start: int, minutes: int, serials: tuple[int, ...], step: str, disposition: str, where: str, **extra: Any
) -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "eventTime": at(start, minutes),
        "eventTimeZoneOffset": "+00:00",
        "epcList": [uri(s) for s in serials],
        "action": "OBSERVE",
        "bizStep": step,
        "disposition": disposition,
        "readPoint": {"id": where},
        **extra,
    }


def document(start: int, *events: dict[str, Any]) -> dict[str, Any]:
    return {
        "@context": [CONTEXT, {"ledger": "https://returns-ledger.example/epcis/"}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": at(start, 0),
        "epcisBody": {"eventList": list(events)},
    }


def documents(start: int) -> list[tuple[str, dict[str, Any]]]:
    """(acting key's name, document), in the order they are captured."""
    first, second = SERIALS[:-1], SERIALS[-1:]
    po_1 = {"bizTransactionList": [{"type": "po", "bizTransaction": PO_1}]}
    po_2 = {"bizTransactionList": [{"type": "po", "bizTransaction": PO_2}]}
    manufacturer = document(
        start,
        {**event(start, 0, first, "commissioning", "active", FACTORY), "action": "ADD", "ledger:merchant": MERCHANT},
        {**event(start, 0, second, "commissioning", "active", FACTORY), "action": "ADD", "ledger:merchant": MERCHANT2},
        {
            "type": "AggregationEvent",
            "eventTime": at(start, 30),
            "eventTimeZoneOffset": "+00:00",
            "parentID": CASE,
            "childEPCs": [uri(s) for s in SERIALS],
            "action": "ADD",
            "bizStep": "packing",
            "disposition": "in_progress",
            "readPoint": {"id": FACTORY},
        },
        event(start, 90, first, "shipping", "in_transit", FACTORY, **po_1),
        event(start, 90, second, "shipping", "in_transit", FACTORY, **po_2),
    )
    merchant = document(
        start,
        event(start, 24 * 60, first, "receiving", "sellable_not_accessible", MERCHANT_DC, **po_1),
        event(start, 26 * 60, first, "stocking", "sellable_accessible", STORE),
    )
    merchant2 = document(
        start,
        event(start, 25 * 60, second, "receiving", "sellable_not_accessible", MERCHANT2_STORE, **po_2),
        event(start, 27 * 60, second, "stocking", "sellable_accessible", MERCHANT2_STORE),
    )
    return [("manufacturer", manufacturer), ("merchant", merchant), ("merchant2", merchant2)]


def genesis_time(rpc_url: str) -> int:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_getBlockByNumber", "params": ["0x0", False]}
    return int(httpx.post(rpc_url, json=body, timeout=10).json()["result"]["timestamp"], 16)


def capture(client: httpx.Client, key: str, doc: dict[str, Any]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/ld+json"}
    answer = client.post("/v1/epcis/capture", content=json.dumps(doc), headers=headers)
    if answer.status_code != 202:
        raise SystemExit(f"error: the capture was refused ({answer.status_code}): {answer.text}")
    deadline = time.monotonic() + 120
    job: dict[str, Any] = answer.json()
    while job["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
        job = client.get(answer.headers["location"], headers=headers).json()
    if job["state"] != "succeeded":
        raise SystemExit(f"error: the capture {answer.headers['location']} did not succeed: {json.dumps(job)}")
    return job


def main() -> int:
    found = setup(__doc__.strip().splitlines()[-1])
    if found is None:
        return 2
    url, settings, keys = found
    start = genesis_time(str(settings.rpc_url)) - 2 * 24 * 60 * MINUTE
    with httpx.Client(base_url=url, timeout=60) as client:
        if not wait_for_api(client):
            print(f"error: the API at {url} did not answer within 30 s (see var/api.log)", file=sys.stderr)
            return 1
        for name, doc in documents(start):
            job = capture(client, keys[name], doc)
            print(f"  {name}: {job['captured']} EPCIS events recorded, {job['duplicates']} already captured")
    print("  query the demo items' supply chain (EPCIS 2.0, with each event's ledger proof):")
    print(f"      curl -H 'Authorization: Bearer {keys['auditor']}' \\")
    print(f"      '{url}/v1/epcis/events?MATCH_epc=urn:epc:idpat:sgtin:{COMPANY_PREFIX}.{ITEM_REF}.*'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
