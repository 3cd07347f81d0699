"""The local carrier without I/O: S10 tracking numbers and their check digit, Standard Webhooks signatures
checked against an HMAC computed here from the specification, and the settings that configure carriers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from ledger_service.errors import InvalidRequestError, RequestError
from ledger_service.logistics import ExceptionReason, TrackingStatus, WebhookSignatureError
from ledger_service.logistics.local import LocalCarrier, is_s10, new_tracking_number, s10_check_digit
from ledger_service.settings import ANVIL_ACCOUNTS, DEV_CARRIER_SECRET, Settings

SECRET_BYTES = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(SECRET_BYTES).decode()
CARRIER = LocalCarrier(name="local", webhook_secret=SECRET)
BODY = json.dumps(
    {
        "events": [
            {
                "id": "e1",
                "tracking_number": "lr473124829zz",
                "status": "delivered",
                "occurred_at": "2026-12-06T10:00:00+08:00",
            }
        ]
    }
).encode()


def test_s10_check_digit_of_the_upu_example() -> None:
    # UPU S10's worked example: serial 47312482 -> check digit 9 (AA473124829GB)
    assert s10_check_digit("47312482") == 9
    assert is_s10("AA473124829GB") and not is_s10("AA473124828GB") and not is_s10("AA47312482GB")
    assert s10_check_digit("00000000") == 5  # remainder 11 -> 5, 10 -> 0 (the standard's two special cases)


@given(st.integers(min_value=0, max_value=10**8 - 1), st.integers(min_value=0, max_value=7), st.integers(1, 9))
def test_a_one_digit_misread_fails_the_check_unless_both_digits_are_5(serial: int, position: int, shift: int) -> None:
    digits = f"{serial:08d}"
    number = f"LR{digits}{s10_check_digit(digits)}ZZ"
    assert is_s10(number)
    wrong = digits[:position] + str((int(digits[position]) + shift) % 10) + digits[position + 1 :]
    if is_s10(f"LR{wrong}{s10_check_digit(digits)}ZZ"):
        # S10 maps the weighted sums' remainders 0 and 6 both to check digit 5: the one misread it cannot see
        assert s10_check_digit(digits) == s10_check_digit(wrong) == 5


def test_issued_numbers_are_valid_and_distinct() -> None:
    numbers = {new_tracking_number() for _ in range(200)}
    assert len(numbers) == 200 and all(is_s10(n) and n.startswith("LR") and n.endswith("ZZ") for n in numbers)


def _spec_signature(delivery_id: str, timestamp: int, body: bytes) -> str:
    """The signature as the Standard Webhooks specification defines it, computed here without the library."""
    mac = hmac.new(SECRET_BYTES, f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def test_signatures_follow_the_specification() -> None:
    now = int(time.time())
    headers = CARRIER.sign(delivery_id="msg_1", timestamp=now, body=BODY)
    assert headers["webhook-signature"] == _spec_signature("msg_1", now, BODY)
    delivery = CARRIER.parse_webhook(body=BODY, headers={k.title(): v for k, v in headers.items()})
    [event] = delivery.events
    assert delivery.delivery_id == "msg_1" and event.status is TrackingStatus.DELIVERED
    assert event.tracking_number == "LR473124829ZZ"
    assert event.occurred_at == int(datetime(2026, 12, 6, 2, tzinfo=UTC).timestamp())  # 10:00 at +08:00
    # a rotated secret: the old and the new signature side by side, either passes
    rotated = {**headers, "webhook-signature": "v1,AAAA " + headers["webhook-signature"]}
    assert CARRIER.parse_webhook(body=BODY, headers=rotated).delivery_id == "msg_1"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"webhook-signature": "v1,c2lnbmF0dXJl"}, "does not match"),
        ({"webhook-signature": "not-a-signature"}, "malformed"),
        ({"webhook-signature": "v1,%%%"}, "malformed"),
        ({"webhook-timestamp": "yesterday"}, "unix seconds"),
        ({"webhook-id": "a b"}, "webhook-id must be"),
        ({"webhook-id": ""}, "no webhook-id header"),
    ],
)
def test_bad_headers_are_refused_with_a_sentence(change: dict[str, str], words: str) -> None:
    headers = {**CARRIER.sign(delivery_id="msg_1", timestamp=int(time.time()), body=BODY), **change}
    with pytest.raises(WebhookSignatureError, match=words):
        CARRIER.parse_webhook(body=BODY, headers=headers)


def test_bodies_that_are_not_deliveries() -> None:
    for body, error in ((b"[1,", RequestError), (b'{"events": [{"id": "e1"}]}', InvalidRequestError)):
        headers = CARRIER.sign(delivery_id="msg_2", timestamp=int(time.time()), body=body)
        with pytest.raises(error):
            CARRIER.parse_webhook(body=body, headers=headers)
    naive = BODY.replace(b"+08:00", b"")
    headers = CARRIER.sign(delivery_id="msg_3", timestamp=int(time.time()), body=naive)
    with pytest.raises(InvalidRequestError, match="occurred_at"):
        CARRIER.parse_webhook(body=naive, headers=headers)


def test_an_exception_says_its_reason_and_another_status_may_not() -> None:
    def parse(status: str, reason: str) -> tuple[str, object]:
        event = json.loads(BODY)["events"][0] | {"status": status, "reason": reason}
        body = json.dumps({"events": [event]}).encode()
        delivery = CARRIER.parse_webhook(
            body=body, headers=CARRIER.sign(delivery_id="m", timestamp=int(time.time()), body=body)
        )
        (parsed,) = delivery.events
        return str(parsed.status), parsed.reason

    assert parse("exception", "returned_to_sender") == ("exception", ExceptionReason.RETURNED_TO_SENDER)
    with pytest.raises(InvalidRequestError, match="reason is for an exception event only"):
        parse("delivered", "lost")
    with pytest.raises(InvalidRequestError, match="reason"):
        parse("exception", "stolen by pirates")


def test_carrier_settings() -> None:
    assert set(Settings(_env_file=None).carriers) == {"local"}  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="at least 16 bytes"):
        Settings(_env_file=None, carriers={"x": {"account": ANVIL_ACCOUNTS[3][0], "webhook_secret": "whsec_YWJj"}})  # type: ignore[call-arg, dict-item]  # raw input, validated
    with pytest.raises(ValidationError, match="carrier name"):
        Settings(_env_file=None, carriers={"Bad Name": {"account": ANVIL_ACCOUNTS[3][0], "webhook_secret": SECRET}})  # type: ignore[call-arg, dict-item]  # raw input, validated
    production: dict[str, Any] = {
        "environment": "production",
        "signer_keys": {},
        "relayer_key": None,
        "webhook_secrets_key": base64.b64encode(b"k" * 32).decode(),
    }
    assert Settings(_env_file=None, **production).carriers == {}  # type: ignore[call-arg]  # no default there
    public: dict[str, Any] = {"local": {"account": ANVIL_ACCOUNTS[3][0], "webhook_secret": DEV_CARRIER_SECRET}}
    with pytest.raises(ValidationError, match="public development webhook secret") as refused:
        Settings(_env_file=None, carriers=public, **production)  # type: ignore[call-arg]
    assert DEV_CARRIER_SECRET not in str(refused.value)
    own: dict[str, Any] = {"local": {"account": ANVIL_ACCOUNTS[3][0], "webhook_secret": SecretStr(SECRET)}}
    assert Settings(_env_file=None, carriers=own, **production).carriers["local"].account == ANVIL_ACCOUNTS[3][0]  # type: ignore[call-arg]
