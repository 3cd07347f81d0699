"""An EPCIS 2.0 capture document read into :class:`EpcisEvent` values, with the rules that need no state.

:func:`read_document` runs, in order: JSON parsing (a malformed document is one error at its root), GS1's
JSON Schema (:mod:`.schema`), then per event the rules of this ledger that depend on nothing but the event:

- the business step and disposition must be CBV 2.0 codes the ledger records (short names, the
  ``urn:epcglobal:cbv:...`` URNs and the ``https://ref.gs1.org/cbv/...`` URIs are the same code); any
  other is refused by name, with the list of those recorded;
- ``commissioning`` only as an ``ObjectEvent`` with action ``ADD`` (that registers the items), and
  ``retail_selling`` not at all (sales are recorded by the escrow, ``POST /v1/sales``);
- every EPC of an item the event is written on (``epcList``, ``childEPCs``, ``inputEPCList``,
  ``outputEPCList``) is an SGTIN URI or a GS1 Digital Link of an individual item; ``parentID`` (a case, a
  pallet: an SSCC...) is any URI: it is kept in the event's document and searchable, not an item;
- an event names at least one item (a quantity-only event has nothing the per-item ledger can hold).

Every problem of every event is collected: the caller gets the whole list, not the first.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger_service.core.codes import BizStep, Disposition
from ledger_service.core.keccak import keccak_text
from ledger_service.epcis import gs1
from ledger_service.epcis.errors import DocumentRefusedError, EventError, event_pointer
from ledger_service.epcis.hashid import UnknownContextError, hash_ids
from ledger_service.epcis.schema import schema_errors

__all__ = [
    "EPC_LISTS",
    "EpcisEvent",
    "biz_step_of",
    "disposition_of",
    "read_document",
]

EPC_LISTS: tuple[tuple[str, int], ...] = (
    ("epcList", 0),
    ("parentID", 1),
    ("childEPCs", 2),
    ("inputEPCList", 3),
    ("outputEPCList", 4),
)
"""(field, ``epcis_event_epcs.role``): where an event names EPCs."""
PARENT = 1
_BIZ_STEP_PREFIXES = ("urn:epcglobal:cbv:bizstep:", "https://ref.gs1.org/cbv/BizStep-", "cbv:BizStep-")
_DISPOSITION_PREFIXES = ("urn:epcglobal:cbv:disp:", "https://ref.gs1.org/cbv/Disp-", "cbv:Disp-")
_SGLN = "urn:epc:id:sgln:"
_RECORDED_STEPS = ", ".join(s.cbv for s in BizStep if s not in (BizStep.RETAIL_SELLING,))
_RECORDED_DISPOSITIONS = ", ".join(d.cbv for d in Disposition)


@dataclass(frozen=True, slots=True)
class EpcisEvent:
    """One event of a document, as the ledger records it. ``body`` is the event's JSON as sent."""

    index: int
    body: dict[str, Any]
    event_type: str
    action: str | None
    event_time_ms: int
    time_zone_offset: str
    biz_step: BizStep
    biz_step_text: str
    disposition: Disposition
    disposition_text: str
    read_point: str | None
    location: str | None
    """The SGLN ``company.location.extension`` the contract's ``location`` holds; None when the read point
    is not an SGLN URN short enough (it is kept in the document either way)."""
    epcs: tuple[tuple[int, str], ...]
    """(role, EPC) in document order; role as :data:`EPC_LISTS`."""
    biz_transactions: tuple[tuple[str, str], ...]
    """(type, value); type empty when the partner gave none."""
    event_id: str | None
    hash_id: str

    @property
    def pointer(self) -> str:
        return event_pointer(self.index)

    @property
    def registers(self) -> bool:
        """An ObjectEvent ADD + commissioning: registers its items."""
        return self.biz_step is BizStep.COMMISSIONING

    def items(self) -> list[tuple[str, str]]:
        """(item id, EPC) of every item the event is written on, once each, in document order."""
        seen: dict[str, str] = {}
        for role, epc in self.epcs:
            if role != PARENT:
                seen.setdefault(item_id_of(epc), epc)
        return list(seen.items())

    def biz_transaction_digest(self) -> bytes:
        """The contract's ``bizTransaction``: sha256 of the first business transaction's value (as a sale's
        order reference is), zero when there is none."""
        if not self.biz_transactions:
            return b"\0" * 32
        return hashlib.sha256(self.biz_transactions[0][1].encode()).digest()


def item_id_of(epc: str) -> str:
    """The on-chain item id of an EPC: keccak256 of its text as sent (as registration computes it)."""
    return "0x" + keccak_text(epc).hex()


def _code(text: str, prefixes: Sequence[str]) -> str:
    for prefix in prefixes:
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def biz_step_of(text: str) -> BizStep | None:
    """The recorded code of a CBV business step in any of its forms; None if the ledger has none for it."""
    name = _code(text, _BIZ_STEP_PREFIXES)
    return next((s for s in BizStep if s.cbv == name), None)


def disposition_of(text: str) -> Disposition | None:
    """The recorded code of a CBV disposition in any of its forms; None if the ledger has none for it."""
    name = _code(text, _DISPOSITION_PREFIXES)
    return next((d for d in Disposition if d.cbv == name), None)


def _millis(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("z", "Z")).timestamp() * 1000)


def _epcs(body: dict[str, Any]) -> list[tuple[int, str, str]]:
    """(role, EPC, pointer path inside the event)."""
    found: list[tuple[int, str, str]] = []
    for field, role in EPC_LISTS:
        value = body.get(field)
        if isinstance(value, str):
            found.append((role, value, field))
        elif isinstance(value, list):
            found.extend((role, epc, f"{field}/{i}") for i, epc in enumerate(value) if isinstance(epc, str))
    return found


def _location(read_point: str | None) -> str | None:
    if read_point is None or not read_point.startswith(_SGLN):
        return None
    text = read_point[len(_SGLN) :]
    return text if text.isascii() and 0 < len(text) <= 32 else None


def _read_event(index: int, body: dict[str, Any], hash_id: str | None, errors: list[EventError]) -> EpcisEvent | None:
    before = len(errors)

    def refuse(message: str, *path: str | int) -> None:
        errors.append(EventError(index=index, pointer=event_pointer(index, *path), message=message))

    event_type = str(body.get("type"))
    action = body.get("action") if isinstance(body.get("action"), str) else None
    step_text = body.get("bizStep")
    step = biz_step_of(step_text) if isinstance(step_text, str) else None
    if not isinstance(step_text, str):
        refuse(f"event #{index} has no bizStep: the ledger records every event with a CBV business step")
    elif step is None:
        refuse(f"bizStep {step_text!r} is not one the ledger records; it records: {_RECORDED_STEPS}", "bizStep")
    elif step is BizStep.RETAIL_SELLING:
        refuse("retail_selling is recorded only with the sale itself (POST /v1/sales), not by capture", "bizStep")
    elif step is BizStep.COMMISSIONING and (event_type != "ObjectEvent" or action != "ADD"):
        refuse("commissioning registers items: it must be an ObjectEvent with action ADD", "bizStep")
    disp_text = body.get("disposition")
    disposition = disposition_of(disp_text) if isinstance(disp_text, str) else None
    if not isinstance(disp_text, str):
        refuse(f"event #{index} has no disposition: the ledger records every event with a CBV disposition")
    elif disposition is None:
        refuse(
            f"disposition {disp_text!r} is not one the ledger records; it records: {_RECORDED_DISPOSITIONS}",
            "disposition",
        )
    epcs = _epcs(body)
    named_items = 0
    for role, epc, path in epcs:
        if role == PARENT:
            continue
        named_items += 1
        try:
            key = gs1.parse_item_key(epc)
        except gs1.Gs1Error as exc:
            refuse(f"EPC {epc!r} is not an SGTIN URI or a GS1 Digital Link of one item: {exc}", *path.split("/"))
            continue
        if key is None or epc.startswith("("):
            refuse(
                f"EPC {epc!r} is not an SGTIN URI (urn:epc:id:sgtin:...) or a GS1 Digital Link "
                "(https://.../01/{GTIN}/21/{serial}) of one item",
                *path.split("/"),
            )
        elif len(epc.encode()) > 256:
            refuse(f"EPC {epc[:40]!r}... is longer than the 256 bytes the ledger accepts", *path.split("/"))
    if named_items == 0:
        refuse(
            f"event #{index} names no individual item (epcList, childEPCs, inputEPCList or outputEPCList): "
            "the ledger keeps histories per item"
        )
    if hash_id is None:
        refuse(f"event #{index} could not be read by the CBV 2.0 event hash algorithm")
    if len(errors) > before or step is None or disposition is None or hash_id is None:
        return None
    read_point = body.get("readPoint", {}).get("id") if isinstance(body.get("readPoint"), dict) else None
    transactions = tuple(
        (str(t.get("type", "")), str(t["bizTransaction"]))
        for t in body.get("bizTransactionList", [])
        if isinstance(t, dict) and "bizTransaction" in t
    )
    return EpcisEvent(
        index=index,
        body=body,
        event_type=event_type,
        action=action,
        event_time_ms=_millis(str(body["eventTime"])),
        time_zone_offset=str(body["eventTimeZoneOffset"]),
        biz_step=step,
        biz_step_text=step.cbv,
        disposition=disposition,
        disposition_text=disposition.cbv,
        read_point=read_point if isinstance(read_point, str) else None,
        location=_location(read_point if isinstance(read_point, str) else None),
        epcs=tuple((role, epc) for role, epc, _ in epcs),
        biz_transactions=transactions,
        event_id=body.get("eventID") if isinstance(body.get("eventID"), str) else None,
        hash_id=hash_id,
    )


def _worded(error: EventError, document: Any) -> EventError:
    """A schema error about a bizStep or disposition in the words of our rule (which codes we record)."""
    field = error.pointer.rsplit("/", 1)[-1]
    if error.index is None or field not in ("bizStep", "disposition"):
        return error
    try:
        value = event_list(document)[error.index].get(field)
    except (KeyError, IndexError, TypeError, AttributeError):
        return error
    recorded = _RECORDED_STEPS if field == "bizStep" else _RECORDED_DISPOSITIONS
    if isinstance(value, str) and value.startswith("urn:epcglobal:cbv:"):
        message = (
            f"{field} {value!r}: EPCIS 2.0 JSON writes CBV terms by their bare name ({value.rsplit(':', 1)[-1]!r}), "
            f"not as URNs (EPCIS 2.0 schema); the ledger records: {recorded}"
        )
    else:
        message = (
            f"{field} {value!r} is neither a CBV 2.0 term nor a URI of your own (EPCIS 2.0 schema); the ledger "
            f"records: {recorded}"
        )
    return EventError(error.index, error.pointer, message)


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
"""A JSON escape of a UTF-16 surrogate: ``json.loads`` joins a pair into one character but keeps a lone one."""


def parse_json(raw: bytes) -> Any:
    """The document's JSON; :class:`DocumentRefusedError` (one error at the root) when it is not JSON, or when it
    holds a lone surrogate (``"\\ud800"``: no Unicode character, nothing downstream can encode it)."""
    try:
        document = json.loads(raw)
    except UnicodeDecodeError as exc:
        problem = f"the document is not UTF-8 text (invalid byte at offset {exc.start}); send JSON in UTF-8"
    except json.JSONDecodeError as exc:
        problem = f"the document is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
    except ValueError:  # after JSONDecodeError, its subclass: a number past Python's 4,300-digit int limit
        problem = "the document holds a number too long to read (over 4,300 digits); no EPCIS field needs one"
    except RecursionError:  # the API's request gate refuses such bodies first; another caller may not
        problem = "the document nests arrays and objects too deeply to be read; no EPCIS document needs that"
    else:
        pointer = _lone_surrogate(document) if _SURROGATE_ESCAPE.search(raw) else None
        if pointer is None:
            return document
        problem = (
            "the document holds a lone UTF-16 surrogate escape (\\ud800-\\udfff without its pair) at "
            f"{pointer or '/'}, which is no Unicode character; send the text as valid Unicode"
        )
    raise DocumentRefusedError([EventError(index=None, pointer="", message=problem)], malformed=True)


def _lone_surrogate(value: Any, pointer: str = "") -> str | None:
    """The JSON pointer of the first string (key or value) in ``value`` holding a lone surrogate, or None."""
    if isinstance(value, str):
        return pointer if any("\ud800" <= char <= "\udfff" for char in value) else None
    if isinstance(value, list):
        items: Any = ((str(i), v) for i, v in enumerate(value))
    elif isinstance(value, dict):
        for key in value:
            if _lone_surrogate(key) is not None:
                return pointer
        items = value.items()
    else:
        return None
    for key, item in items:
        found = _lone_surrogate(item, f"{pointer}/{_escaped(key)}")
        if found is not None:
            return found
    return None


def _escaped(key: str) -> str:
    """``key`` as a JSON pointer's reference token (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


def event_list(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The events of a schema-valid document (``eventList``, or the single ``event`` of a query answer)."""
    body = document["epcisBody"]
    events = body.get("eventList", [body["event"]] if "event" in body else [])
    return list(events)


def read_document(raw: bytes | Any) -> list[EpcisEvent]:
    """Every event of a capture document, checked as the module docstring says; :class:`DocumentRefusedError`
    with every problem otherwise. ``raw``: the bytes as received, or already parsed JSON."""
    document = parse_json(bytes(raw)) if isinstance(raw, bytes | bytearray) else raw
    errors = [_worded(e, document) for e in schema_errors(document)]
    if any(e.index is None for e in errors):
        raise DocumentRefusedError(errors)
    invalid = {e.index for e in errors}
    if document.get("type") != "EPCISDocument":
        raise DocumentRefusedError(
            [EventError(None, "/type", "capture takes an EPCISDocument (an EPCISQueryDocument is a query's answer)")]
        )
    bodies = event_list(document)
    if not bodies:
        raise DocumentRefusedError([EventError(None, "/epcisBody/eventList", "the document holds no event")])
    try:
        ids = hash_ids(document, len(bodies))
    except UnknownContextError as exc:
        raise DocumentRefusedError([EventError(None, "/@context", str(exc))]) from None
    except RecursionError:
        message = "the document nests too deeply for the CBV event hash algorithm; no EPCIS document needs that"
        raise DocumentRefusedError([EventError(None, "", message)]) from None
    events: list[EpcisEvent] = []
    for index, body in enumerate(bodies):
        if index in invalid:  # our rules read only what the schema accepted
            continue
        event = _read_event(index, body, ids[index], errors)
        if event is not None:
            events.append(event)
    if errors:
        raise DocumentRefusedError(sorted(errors, key=lambda e: (e.index or 0, e.pointer)))
    return events
