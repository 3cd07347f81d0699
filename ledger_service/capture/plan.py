"""What a capture will write, and the rules that need the index: roles, items, and each item's order.

:func:`plan_capture` turns a document's events (already read by :mod:`ledger_service.epcis.document`) into
the transactions' contents, in document order, or refuses the document with every problem:

- the acting account's on-chain roles allow each step as the contract decides (``commissioning``: the
  manufacturer role; ``departing`` / ``arriving`` / ``transporting``: carrier; ``inspecting``: inspector;
  every other step: a manufacturer, or the item's merchant of record or one of its sellers);
- ``commissioning`` registers an item not registered before, for a merchant of record holding the merchant
  role: the event's ``ledger:merchant`` (an account), else the acting account if it is a merchant;
- every other event is on items registered before it (in the index, or earlier in the document), none
  destroyed, and dated no earlier than the item's last event.

Pure: the index's facts come in as arguments (:class:`~ledger_service.store.epcis_events.ActorFacts`,
:class:`~ledger_service.store.epcis_events.ItemFacts`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from eth_utils.address import is_address, to_checksum_address

from ledger_service.core.codes import BizStep, encode_location, step_refusal
from ledger_service.epcis import gs1
from ledger_service.epcis.document import EPC_LISTS, PARENT, EpcisEvent
from ledger_service.epcis.errors import DocumentRefusedError, EventError, event_pointer
from ledger_service.store.epcis_events import ActorFacts, ItemFacts

MERCHANT_FIELD = "ledger:merchant"
"""The extension of a commissioning event naming the item's merchant of record (an account address)."""
ZERO32 = b"\0" * 32


@dataclass(frozen=True, slots=True)
class Registration:
    """One item of a commissioning event, as registered by ``registerItems`` (the arguments of ``registerItem``)."""

    event: EpcisEvent
    item_id: str
    uri: str
    gtin: int
    merchant: str
    location: bytes
    document: bytes


@dataclass(frozen=True, slots=True)
class Step:
    """One ``EventInput`` of ``recordEvents``: the event written on one item."""

    event: EpcisEvent
    item_id: str
    location: bytes
    document: bytes
    biz_transaction: bytes

    def as_input(self) -> tuple[bytes, int, int, bytes, bytes, bytes]:
        return (
            bytes.fromhex(self.item_id[2:]),
            int(self.event.biz_step),
            int(self.event.disposition),
            self.location,
            self.document,
            self.biz_transaction,
        )


@dataclass(frozen=True, slots=True)
class Plan:
    registrations: tuple[Registration, ...]
    steps: tuple[Step, ...]
    events: tuple[EpcisEvent, ...] = field(default=())
    """The events the plan writes (duplicates left out), in document order."""


@dataclass
class _ItemState:
    merchant: str
    destroyed: bool
    last_ms: int


def epc_pointer(event: EpcisEvent, epc: str) -> str:
    """The JSON pointer of ``epc`` inside ``event``."""
    for name, role in EPC_LISTS:
        value = event.body.get(name)
        if role == PARENT or value is None:
            continue
        if isinstance(value, list) and epc in value:
            return event_pointer(event.index, name, value.index(epc))
    return event_pointer(event.index)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def _merchant_of(event: EpcisEvent, actor: str, actor_facts: ActorFacts) -> str | None:
    named = event.body.get(MERCHANT_FIELD)
    if isinstance(named, str):
        return named
    return actor if "MERCHANT_ROLE" in actor_facts.roles else None


def plan_capture(
    *,
    events: Sequence[EpcisEvent],
    documents: Mapping[str, bytes],
    actor: str,
    actor_facts: ActorFacts,
    items: Mapping[str, ItemFacts],
    merchant_role: Callable[[str], bool],
) -> Plan:
    """See the module docstring. ``documents``: hash ID -> the digest of the event's captured document (the on-chain
    ``document``); ``merchant_role``: whether an account holds the merchant role (index); ``actor`` lower
    case. :class:`DocumentRefusedError` with every problem otherwise."""
    errors: list[EventError] = []
    state: dict[str, _ItemState] = {
        item_id: _ItemState(merchant=f.merchant.lower(), destroyed=f.destroyed, last_ms=f.last_event_ms)
        for item_id, f in items.items()
    }
    registrations: list[Registration] = []
    steps: list[Step] = []
    planned: list[EpcisEvent] = []
    for event in events:
        problems: list[EventError] = []

        def refuse(
            message: str, pointer: str, event: EpcisEvent = event, problems: list[EventError] = problems
        ) -> None:
            problems.append(EventError(index=event.index, pointer=pointer, message=message))

        document = documents[event.hash_id]
        location = encode_location(event.location) if event.location is not None else ZERO32
        changes: dict[str, _ItemState] = {}
        new_registrations: list[Registration] = []
        new_steps: list[Step] = []
        if event.registers:
            if "MANUFACTURER_ROLE" not in actor_facts.roles:
                refuse(
                    f"account {actor} may not commission items: that needs the manufacturer role on-chain",
                    event_pointer(event.index, "bizStep"),
                )
            merchant = _merchant_of(event, actor, actor_facts)
            if merchant is None:
                refuse(
                    f"commissioning needs a merchant of record: name its account in {MERCHANT_FIELD!r}, "
                    "or capture with a key whose account holds the merchant role",
                    event_pointer(event.index),
                )
            elif not is_address(merchant) or not merchant_role(merchant.lower()):
                refuse(
                    f"{MERCHANT_FIELD} {merchant!r} is not an account holding the merchant role on-chain",
                    event_pointer(event.index, MERCHANT_FIELD),
                )
            for item_id, epc in event.items():
                if item_id in state or item_id in changes:
                    refuse(f"item {epc} is already registered: commission each item once", epc_pointer(event, epc))
                    continue
                key = gs1.key_of_uri(epc)
                changes[item_id] = _ItemState(
                    merchant=(merchant or "").lower(), destroyed=False, last_ms=event.event_time_ms
                )
                if merchant is not None and is_address(merchant):
                    new_registrations.append(
                        Registration(
                            event=event,
                            item_id=item_id,
                            uri=epc,
                            gtin=key.gtin_int if key is not None else 0,
                            merchant=to_checksum_address(merchant),
                            location=location,
                            document=document,
                        )
                    )
        else:
            for item_id, epc in event.items():
                item = changes.get(item_id) or state.get(item_id)
                pointer = epc_pointer(event, epc)
                if item is None:
                    refuse(
                        f"item {epc} is not registered on the ledger: capture its commissioning "
                        "(an ObjectEvent ADD with bizStep commissioning) before its other events",
                        pointer,
                    )
                    continue
                if item.destroyed:
                    refuse(f"item {epc} was destroyed: nothing is recorded after destroying", pointer)
                    continue
                if event.event_time_ms < item.last_ms:
                    refuse(
                        f"eventTime {_iso(event.event_time_ms)} is before item {epc}'s last event "
                        f"({_iso(item.last_ms)}): an item's events are recorded in time order",
                        event_pointer(event.index, "eventTime"),
                    )
                    continue
                why_not = step_refusal(
                    event.biz_step,
                    roles=actor_facts.roles,
                    actor=actor,
                    merchant=item.merchant,
                    sells_for=actor_facts.sells_for,
                )
                if why_not is not None:
                    refuse(f"account {actor} may not record {event.biz_step.cbv} on item {epc}: {why_not}", pointer)
                    continue
                changes[item_id] = _ItemState(
                    merchant=item.merchant,
                    destroyed=event.biz_step is BizStep.DESTROYING,
                    last_ms=event.event_time_ms,
                )
                new_steps.append(
                    Step(
                        event=event,
                        item_id=item_id,
                        location=location,
                        document=document,
                        biz_transaction=event.biz_transaction_digest(),
                    )
                )
        if problems:
            errors.extend(problems)
            continue
        state.update(changes)
        registrations.extend(new_registrations)
        steps.extend(new_steps)
        planned.append(event)
    if errors:
        raise DocumentRefusedError(errors)
    return Plan(registrations=tuple(registrations), steps=tuple(steps), events=tuple(planned))
