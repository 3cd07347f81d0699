"""The built-in local carrier: works with no account. We issue its tracking numbers; its scans come from
``ledger-carrier`` (:mod:`ledger_service.logistics.cli`), which signs and posts webhooks as a carrier would.

Tracking numbers follow the UPU S10 layout that postal operators use: two letters, eight digits, a check
digit (weights 8 6 4 2 3 5 9 7, mod 11) and two letters, e.g. ``LR473124829ZZ``. The check digit catches a
mistyped or misread number before it reaches a return.

Webhooks follow the Standard Webhooks specification (``webhook-id``, ``webhook-timestamp`` and
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` with the carrier's ``whsec_`` secret;
verified by PyPI's ``standardwebhooks``), with this body::

    {"events": [{"id": "evt_1", "tracking_number": "LR473124829ZZ", "status": "in_transit",
                 "occurred_at": "2026-12-06T10:00:00Z", "location": "Shanghai hub", "read_point": "0614141.00888.0"}]}

An ``exception`` event may say what went wrong in ``reason`` (:class:`~.interface.ExceptionReason`: ``delayed``,
``damaged``, ``lost``, ``returned_to_sender``, ``delivery_failed``, ``held``, ``other``); another status may not.
A ``delivered`` event may carry ``epc``, the EPC URI scanned on the unit in the parcel (e.g.
``urn:epc:id:sgtin:0614141.107346.2017``): the receiving step sends it to the contract's unit check.
"""

from __future__ import annotations

import binascii
import json
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from ledger_service.errors import InvalidRequestError, RequestError
from ledger_service.logistics.interface import (
    CarrierEvent,
    ExceptionReason,
    Shipment,
    ShipmentRequest,
    TrackingStatus,
    WebhookDelivery,
    WebhookSignatureError,
)

SERVICE_INDICATOR = "LR"
COUNTRY = "ZZ"
"""S10's last two letters name the issuing operator's country; ZZ is the code left for private use."""
_S10 = re.compile(r"^[A-Z]{2}(\d{8})(\d)[A-Z]{2}$")
_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)
MAX_EVENTS = 100
DELIVERY_ID = r"^[A-Za-z0-9_.:-]{1,100}$"
SIGNATURES = re.compile(r"^v1,[A-Za-z0-9+/]+={0,2}( v1,[A-Za-z0-9+/]+={0,2})*$")
"""``webhook-signature``: one or more ``v1,<base64>``, space-separated (other schemes are not ours to verify)."""


def s10_check_digit(serial: str) -> int:
    """The S10 check digit of an eight-digit serial number."""
    if len(serial) != 8 or not serial.isdigit():
        raise ValueError("an S10 serial number has eight digits")
    remainder = 11 - sum(int(d) * w for d, w in zip(serial, _WEIGHTS, strict=True)) % 11
    return {10: 0, 11: 5}.get(remainder, remainder)


def is_s10(text: str) -> bool:
    """Whether ``text`` is an S10 number whose check digit holds."""
    found = _S10.match(text)
    return found is not None and s10_check_digit(found.group(1)) == int(found.group(2))


def new_tracking_number() -> str:
    """A fresh random S10 tracking number of the local carrier."""
    serial = f"{secrets.randbelow(10**8):08d}"
    return f"{SERVICE_INDICATOR}{serial}{s10_check_digit(serial)}{COUNTRY}"


def _date_time_text(value: object) -> object:
    """Only a string: a bare number would be read as unix seconds, which the format does not promise."""
    if not isinstance(value, str):
        raise ValueError("must be a date-time string with its UTC offset, e.g. 2026-12-06T10:00:00Z")
    return value


class _EventBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")]
    tracking_number: Annotated[str, Field(min_length=1, max_length=40)]
    status: Annotated[TrackingStatus, Field(strict=False)]
    occurred_at: Annotated[AwareDatetime, BeforeValidator(_date_time_text), Field(strict=False)]
    location: Annotated[str | None, Field(max_length=200)] = None
    read_point: Annotated[str | None, Field(max_length=32, pattern=r"^[\x21-\x7e]+$")] = None
    reason: Annotated[ExceptionReason | None, Field(strict=False)] = None
    epc: Annotated[str | None, Field(min_length=1, max_length=500, pattern=r"^[\x21-\x7e]+$")] = None

    @model_validator(mode="after")
    def _reason_of_an_exception(self) -> _EventBody:
        if self.reason is not None and self.status is not TrackingStatus.EXCEPTION:
            raise ValueError(f"reason is for an exception event only, not {self.status.value}")
        if self.epc is not None and self.status is not TrackingStatus.DELIVERED:
            raise ValueError(
                f"epc is for a delivered event only (the unit is checked at the merchant), not {self.status.value}"
            )
        return self


class _DeliveryBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    events: Annotated[list[_EventBody], Field(min_length=1, max_length=MAX_EVENTS)]


def _sentence(error: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where or 'body'}: {error.get('msg', 'invalid')}"


class LocalCarrier:
    """The local carrier (see the module docstring)."""

    def __init__(self, *, name: str, webhook_secret: str) -> None:
        self._name = name
        self._webhook = Webhook(webhook_secret)

    @property
    def name(self) -> str:
        return self._name

    def create_shipment(self, request: ShipmentRequest) -> Shipment:
        return Shipment(tracking_number=new_tracking_number())

    def is_tracking_number(self, text: str) -> bool:
        return is_s10(text)

    def sign(self, *, delivery_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        """The headers of a delivery of ``body`` (the simulator's, and the tests')."""
        signature = self._webhook.sign(delivery_id, datetime.fromtimestamp(timestamp, UTC), body.decode())
        return {"webhook-id": delivery_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> WebhookDelivery:
        wanted = {k.lower(): v for k, v in headers.items() if k.lower().startswith("webhook-")}
        missing = [h for h in ("webhook-id", "webhook-timestamp", "webhook-signature") if not wanted.get(h)]
        if missing:
            raise WebhookSignatureError(
                f"the delivery has no {', '.join(missing)} header: carriers sign each delivery as Standard Webhooks "
                "says (webhook-id, webhook-timestamp, webhook-signature)"
            )
        if not re.match(DELIVERY_ID, wanted["webhook-id"]):
            raise WebhookSignatureError("webhook-id must be 1 to 100 letters, digits and _ . : -")
        # standardwebhooks >= 1.3 answers a malformed header as "no matching signature": say what is wrong.
        if not SIGNATURES.match(wanted["webhook-signature"]):
            raise WebhookSignatureError(
                "webhook-signature is malformed: expected v1,<base64 signature>, several separated by spaces"
            )
        try:
            self._webhook.verify(body, wanted, json_parse=False)
        except WebhookVerificationError as exc:
            raise WebhookSignatureError(_why(str(exc))) from None
        except (ValueError, binascii.Error, UnicodeDecodeError):  # a signature header that is not v1,<base64>
            raise WebhookSignatureError(
                "webhook-signature is malformed: expected v1,<base64 signature>, several separated by spaces"
            ) from None
        try:
            document = json.loads(body)
        except ValueError:
            raise RequestError("the delivery's body is not JSON; nothing was recorded") from None
        try:
            parsed = _DeliveryBody.model_validate(document)
        except ValidationError as exc:
            issues = "; ".join(_sentence(e) for e in exc.errors()[:5])
            raise InvalidRequestError(
                f"the delivery is not a tracking update ({issues}); nothing was recorded"
            ) from None
        return WebhookDelivery(
            delivery_id=wanted["webhook-id"],
            events=tuple(
                CarrierEvent(
                    event_id=e.id,
                    tracking_number=e.tracking_number.strip().upper(),
                    status=e.status,
                    occurred_at=int(e.occurred_at.timestamp()),
                    location=e.location,
                    read_point=e.read_point,
                    reason=e.reason,
                    epc=e.epc,
                )
                for e in parsed.events
            ),
        )


def _why(reason: str) -> str:
    """The library's reason as a sentence a carrier's engineer can act on."""
    if "too old" in reason or "too new" in reason:
        return (
            "webhook-timestamp is more than 5 minutes away from our clock: a delivery is signed when it is sent "
            "(check the sender's clock); nothing was recorded"
        )
    if "No matching signature" in reason:
        return (
            "webhook-signature does not match the body: sign webhook-id.webhook-timestamp.body with the carrier's "
            "webhook secret (HMAC-SHA256, base64) and send the body unchanged; nothing was recorded"
        )
    return "the delivery's signature headers are invalid (webhook-timestamp must be unix seconds); nothing was recorded"
