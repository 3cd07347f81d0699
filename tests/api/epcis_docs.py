"""EPCIS 2.0 documents for the capture and query tests: a manufacturer's commissioning, a merchant's steps,
a carrier's, packing into a case. Each call makes new serial numbers, so tests do not see each other's items.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
READ_POINT = "urn:epc:id:sgln:0614141.00777.0"
_serials = itertools.count(int(datetime.now(tz=UTC).timestamp()) % 10_000_000 * 1000)
_clock = itertools.count(1)


def new_epc() -> str:
    return f"urn:epc:id:sgtin:0614141.107346.{next(_serials)}"


def new_sscc() -> str:
    return f"urn:epc:id:sscc:0614141.{next(_serials) % 10_000_000_000:010d}"


def when(minutes: int = 0) -> str:
    """An eventTime: a fixed day plus ``minutes`` (events of one item in order need increasing times)."""
    base = datetime(2026, 3, 1, 8, 0, tzinfo=UTC) + timedelta(minutes=minutes)
    return base.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def event(
    epcs: list[str],
    *,
    biz_step: str = "shipping",
    disposition: str = "in_transit",
    action: str = "OBSERVE",
    minutes: int = 10,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "eventTime": when(minutes),
        "eventTimeZoneOffset": "+00:00",
        "epcList": epcs,
        "action": action,
        "bizStep": biz_step,
        "disposition": disposition,
        "readPoint": {"id": READ_POINT},
        **extra,
    }


def commissioning(epcs: list[str], *, merchant: str, minutes: int = 0) -> dict[str, Any]:
    return event(
        epcs,
        biz_step="commissioning",
        disposition="active",
        action="ADD",
        minutes=minutes,
        **{"ledger:merchant": merchant},
    )


def aggregation(parent: str, children: list[str], *, minutes: int = 5) -> dict[str, Any]:
    return {
        "type": "AggregationEvent",
        "eventTime": when(minutes),
        "eventTimeZoneOffset": "+00:00",
        "parentID": parent,
        "childEPCs": children,
        "action": "ADD",
        "bizStep": "packing",
        "disposition": "in_progress",
        "readPoint": {"id": READ_POINT},
    }


def document(*events: dict[str, Any]) -> dict[str, Any]:
    return {
        "@context": [CONTEXT, {"ledger": "https://returns-ledger.example/epcis/"}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-03-01T09:00:00.000Z",
        "epcisBody": {"eventList": list(events)},
    }


def body(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()
