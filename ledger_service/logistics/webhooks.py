"""Carrier webhooks in: verified, recorded once, and mapped onto the return's on-chain steps.

Invariants:
- nothing is recorded from a delivery whose signature or timestamp does not verify, or whose delivery id was
  processed before (a replay) or is being processed now (the same webhook delivered twice at once);
- a tracking event is recorded once, by the carrier's event id, however often it is delivered;
- the chain only moves forward, and only as far as the furthest event recorded for the shipment says (in
  transit, then delivered), whatever order the events came in: the step to take is read from the return's
  on-chain state each time, so a duplicate, late or out-of-order event sends nothing, and the contract
  refuses a second markInTransit anyway (a deposit is paid out once);
- a delivered event for a return never scanned in transit takes both steps, in order (the parcel travelled);
- a delivered event's scanned EPC (the first delivered event that carries one) goes with the receiving step, so
  the contract's unit check catches another unit than the one sold; a misread EPC refuses the whole delivery
  (422, nothing recorded) before anything is recorded, as the scans API does;
- a delivery that fails for a reason the carrier's retry can fix (node or database unavailable, a signer not
  configured) is forgotten, so the same delivery id is accepted again; its events stay recorded.

An ``exception`` event (damaged, lost, returned to sender, ...) moves nothing on-chain; it is told to the merchant's
webhooks, the consumer's e-mail and the return's event stream as a ``return.carrier_exception`` notification,
written with the event's record: once per carrier event, whatever the duplicates in the feed.

Unknown or malformed tracking numbers are accepted and ignored with a log line: carriers expect a 2xx for
every delivery they signed.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

import structlog

from ledger_service.chain.calls import call
from ledger_service.chain.reverts import ContractRevertError
from ledger_service.chain.signers import ChainContext
from ledger_service.core.codes import ReturnState
from ledger_service.core.notifications import RETURN_CARRIER_EXCEPTION
from ledger_service.errors import ConflictError
from ledger_service.logistics.interface import (
    MILESTONES,
    WEBHOOK_TOLERANCE_S,
    CarrierEvent,
    Milestone,
    TrackingStatus,
)
from ledger_service.logistics.shipments import adapter, carrier_settings
from ledger_service.returns import ScanKind, scan_return
from ledger_service.returns.actions import scanned_unit
from ledger_service.returns.exchanges import after_scan
from ledger_service.settings import Settings
from ledger_service.store.carriers import (
    CarrierNotice,
    DeliveryClaim,
    ShipmentRow,
    TrackingEventRow,
    claim_delivery,
    complete_delivery,
    record_events,
    release_delivery,
    shipments_by_tracking,
    tracking_events,
)
from ledger_service.store.handle import Store

log = structlog.get_logger(__name__)

DELIVERY_LEASE_S = 120
"""A delivery being processed longer than this (its process died) may be processed again."""
DELIVERY_KEEP_S = 24 * 3600
"""Delivery ids are remembered this long (far past the timestamp tolerance: older ones are refused anyway)."""
_RETURN_ID_STATE = 6
"""Index of ``state`` in ReturnsEscrow.returnOf's ReturnRecord."""


class DeliveryReplayedError(ConflictError):
    """A delivery id that was processed before (HTTP 409; nothing recorded again)."""


class EventOutcome(StrEnum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    """Recorded before (same event id)."""
    UNKNOWN_TRACKING = "unknown_tracking_number"
    """No shipment of ours has this tracking number: ignored."""
    INVALID_TRACKING = "invalid_tracking_number"
    """Not a tracking number of this carrier (its check digit fails): ignored."""


@dataclass(frozen=True, slots=True)
class ChainStep:
    """An on-chain step a delivery led to, or the contract's refusal of it."""

    return_id: str
    tracking_number: str
    kind: ScanKind
    tx_hash: str | None
    block_number: int | None
    refused: str | None = None
    """The contract's error when it refused the step (e.g. EscrowDeadlinePassed)."""


@dataclass(frozen=True, slots=True)
class WebhookResult:
    delivery_id: str
    events: tuple[tuple[CarrierEvent, EventOutcome], ...]
    steps: tuple[ChainStep, ...]


_STRIPES = 256
_return_locks = tuple(threading.Lock() for _ in range(_STRIPES))


@contextmanager
def _return_lock(return_id: str) -> Iterator[None]:
    """Serializes, in this process, the steps one return's carrier events lead to (other processes race on the
    chain, where the contract lets one step through)."""
    with _return_locks[zlib.crc32(return_id.encode()) % _STRIPES]:
        yield


def receive_webhook(
    *,
    store: Store,
    chain: ChainContext,
    settings: Settings,
    carrier: str,
    body: bytes,
    headers: Mapping[str, str],
) -> WebhookResult:
    """Verifies, records and applies one webhook delivery of ``carrier`` (see the module docstring)."""
    config = carrier_settings(settings, carrier)
    carrier_adapter = adapter(carrier, config)
    delivery = carrier_adapter.parse_webhook(body=body, headers=headers)
    now = int(time.time())
    claim = claim_delivery(
        store,
        carrier=carrier,
        delivery_id=delivery.delivery_id,
        now=now,
        lease_s=DELIVERY_LEASE_S,
        keep_s=max(DELIVERY_KEEP_S, 2 * WEBHOOK_TOLERANCE_S),
    )
    if claim is DeliveryClaim.DONE:
        raise DeliveryReplayedError(
            f"delivery {delivery.delivery_id} was received before; a delivery id is accepted once and nothing was "
            "recorded again (send a new delivery with a new webhook-id)"
        )
    if claim is DeliveryClaim.BUSY:
        raise DeliveryReplayedError(
            f"delivery {delivery.delivery_id} is being processed by another request; nothing was recorded again"
        )
    try:
        result = _apply(
            store=store,
            chain=chain,
            carrier=carrier,
            account=config.account,
            delivery_id=delivery.delivery_id,
            events=delivery.events,
            valid=carrier_adapter.is_tracking_number,
            now=now,
        )
    except BaseException:
        release_delivery(store, carrier=carrier, delivery_id=delivery.delivery_id)
        raise
    complete_delivery(store, carrier=carrier, delivery_id=delivery.delivery_id, now=int(time.time()))
    return result


def _apply(
    *,
    store: Store,
    chain: ChainContext,
    carrier: str,
    account: str,
    delivery_id: str,
    events: tuple[CarrierEvent, ...],
    valid: Callable[[str], bool],
    now: int,
) -> WebhookResult:
    shipments = shipments_by_tracking(
        store, carrier=carrier, tracking_numbers=[e.tracking_number for e in events if valid(e.tracking_number)]
    )
    for e in events:  # a misread EPC is refused before anything is recorded: the carrier scans it again
        if e.epc is not None and e.tracking_number in shipments:
            scanned_unit(store, e.epc)
    rows = [
        TrackingEventRow(
            carrier=carrier,
            event_id=e.event_id,
            tracking_number=e.tracking_number,
            status=str(e.status),
            occurred_at=e.occurred_at,
            location=e.location,
            read_point=e.read_point,
            delivery_id=delivery_id,
            received_at=now,
            epc=e.epc,
        )
        for e in events
        if e.tracking_number in shipments
    ]
    notices = {
        e.event_id: _exception_notice(e, carrier=carrier, return_id=shipments[e.tracking_number].return_id)
        for e in events
        if e.tracking_number in shipments and e.status is TrackingStatus.EXCEPTION
    }
    added = record_events(store, rows, notices=notices)
    outcomes: list[tuple[CarrierEvent, EventOutcome]] = []
    for event in events:
        if not valid(event.tracking_number):
            outcome = EventOutcome.INVALID_TRACKING
        elif event.tracking_number not in shipments:
            outcome = EventOutcome.UNKNOWN_TRACKING
        else:  # the same event twice in one delivery: its first copy was recorded, the other is a duplicate
            outcome = EventOutcome.RECORDED if event.event_id in added else EventOutcome.DUPLICATE
            added.discard(event.event_id)
        if outcome in (EventOutcome.INVALID_TRACKING, EventOutcome.UNKNOWN_TRACKING):
            log.warning(
                "carrier event ignored",
                carrier=carrier,
                delivery_id=delivery_id,
                event_id=event.event_id,
                tracking_number=event.tracking_number,
                reason=str(outcome),
            )
        outcomes.append((event, outcome))
    steps: list[ChainStep] = []
    # every shipment the delivery names, even with duplicate events only: an earlier delivery may have
    # recorded them and then failed before its step (the node was down)
    for shipment in sorted(
        {shipments[e.tracking_number] for e in events if e.tracking_number in shipments}, key=_by_id
    ):
        steps.extend(advance(store=store, chain=chain, account=account, shipment=shipment))
    return WebhookResult(delivery_id=delivery_id, events=tuple(outcomes), steps=tuple(steps))


def _exception_notice(event: CarrierEvent, *, carrier: str, return_id: str) -> CarrierNotice:
    """What the merchant and the consumer are told of a carrier's exception: the carrier's own words (reason,
    place, time) and the tracking number to quote to it."""
    return CarrierNotice(
        type=RETURN_CARRIER_EXCEPTION,
        return_id=return_id,
        data={
            "carrier": carrier,
            "tracking_number": event.tracking_number,
            "carrier_event_id": event.event_id,
            "status": str(event.status),
            "reason": None if event.reason is None else str(event.reason),
            "location": event.location,
            "carrier_occurred_at": event.occurred_at,
        },
    )


def _by_id(shipment: ShipmentRow) -> str:
    return shipment.return_id


def _chain_state(chain: ChainContext, return_id: str) -> ReturnState:
    record = call(
        chain.escrow.functions.returnOf(bytes.fromhex(return_id[2:])),
        decoder=chain.decoder,
        what="reading the return's state",
    )
    return ReturnState(int(record[_RETURN_ID_STATE]))


def _furthest(events: tuple[TrackingEventRow, ...]) -> tuple[Milestone, dict[Milestone, str | None], str | None]:
    """The furthest milestone the events reach, the read point of the first event reaching each, and the EPC of
    the first delivered event that carries one."""
    furthest = Milestone.NONE
    read_points: dict[Milestone, str | None] = {}
    epc: str | None = None
    for event in events:  # in the carrier's time order
        milestone = MILESTONES.get(TrackingStatus(event.status), Milestone.NONE)
        furthest = max(furthest, milestone)
        for reached in (Milestone.IN_TRANSIT, Milestone.DELIVERED):
            if milestone >= reached and reached not in read_points:
                read_points[reached] = event.read_point
        if epc is None and milestone is Milestone.DELIVERED:
            epc = event.epc
    return furthest, read_points, epc


_NEXT: dict[ReturnState, tuple[Milestone, ScanKind]] = {
    ReturnState.AUTHORIZED: (Milestone.IN_TRANSIT, ScanKind.IN_TRANSIT),
    ReturnState.IN_TRANSIT: (Milestone.DELIVERED, ScanKind.DELIVERED_TO_MERCHANT),
}
"""The step out of each state a carrier can take, and the milestone it needs."""


def advance(*, store: Store, chain: ChainContext, account: str, shipment: ShipmentRow) -> list[ChainStep]:
    """Takes the on-chain steps the shipment's recorded events call for and the chain has not taken yet."""
    steps: list[ChainStep] = []
    with _return_lock(shipment.return_id):
        furthest, read_points, epc = _furthest(
            tracking_events(store, carrier=shipment.carrier, tracking_number=shipment.tracking_number)
        )
        for _ in range(len(_NEXT) + 2):  # each step at most once, and a retry after losing a race
            state = _chain_state(chain, shipment.return_id)
            nxt = _NEXT.get(state)
            if nxt is None or furthest < nxt[0]:
                break
            milestone, kind = nxt
            try:
                tx = scan_return(
                    store=store,
                    chain=chain,
                    carrier=account,
                    return_id=shipment.return_id,
                    kind=kind,
                    location=read_points.get(milestone),
                    epc=epc if kind is ScanKind.DELIVERED_TO_MERCHANT else None,
                )
            except ContractRevertError as exc:
                if exc.error == "EscrowInvalidState":  # another process took this step first: read again
                    continue
                steps.append(
                    _logged(ChainStep(shipment.return_id, shipment.tracking_number, kind, None, None, exc.error))
                )
                break
            steps.append(
                _logged(ChainStep(shipment.return_id, shipment.tracking_number, kind, tx.tx_hash, tx.block_number))
            )
            if kind == ScanKind.IN_TRANSIT:  # an exchange's replacement and collateral may be due now
                after_scan(store=store, chain=chain, return_id=shipment.return_id)
    return steps


def _logged(step: ChainStep) -> ChainStep:
    fields = {"return_id": step.return_id, "tracking_number": step.tracking_number, "step": str(step.kind)}
    if step.refused is not None:
        log.warning("carrier step refused on-chain", error=step.refused, **fields)
    else:
        log.info("carrier step recorded on-chain", tx_hash=step.tx_hash, **fields)
    return step
