"""``ledger-carrier``: the local carrier's simulator. It sends tracking events as a carrier's system would, as
signed webhooks (Standard Webhooks, the carrier's secret from LEDGER_CARRIERS) to the API.

    ledger-carrier scan LR473124829ZZ in_transit [--location "Shanghai hub"] [--read-point 0614141.00888.0]
    ledger-carrier scan LR473124829ZZ delivered [--epc urn:epc:id:sgtin:0614141.107346.2017]

Each call is one delivery with a new delivery id and one event with a new event id (``--event-id`` sends a
given one again: the API records it once). Exit status: 0 accepted, 1 refused by the API (its sentence is
printed), 2 a command-line mistake (e.g. a tracking number whose check digit fails), 3 the API unreachable.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import ValidationError

from ledger_service.logistics.interface import ExceptionReason, TrackingStatus
from ledger_service.logistics.local import LocalCarrier, is_s10
from ledger_service.settings import Settings

PROG = "ledger-carrier"
EXIT_REFUSED, EXIT_USAGE, EXIT_UNAVAILABLE = 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="The local carrier's simulator: signed tracking webhooks.")
    commands = parser.add_subparsers(dest="command", required=True)
    scan = commands.add_parser("scan", help="report one tracking event of a parcel")
    scan.add_argument("tracking_number", help="the tracking number printed on the label (e.g. LR473124829ZZ)")
    scan.add_argument("status", choices=[s.value for s in TrackingStatus], help="what happened to the parcel")
    scan.add_argument("--location", help="where, in words (shown in the return's timeline)")
    scan.add_argument(
        "--reason",
        choices=[r.value for r in ExceptionReason],
        help="an exception's cause (what the consumer's notice tells them to do depends on it)",
    )
    scan.add_argument("--read-point", help="SGLN read point for the on-chain step (e.g. 0614141.00888.0)")
    scan.add_argument(
        "--epc",
        help="the EPC URI scanned on the unit at delivery (status delivered only): another unit than the one sold "
        "sends the return to the arbiter",
    )
    scan.add_argument("--event-id", help="the event's id (default: a new one); the same id is recorded once")
    scan.add_argument("--carrier", default=None, help="the carrier's name in LEDGER_CARRIERS (default: the first)")
    scan.add_argument(
        "--api-url", default=None, help="the API's address (default: http://LEDGER_API_HOST:LEDGER_API_PORT)"
    )
    return parser


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None, *, client: httpx.Client | None = None) -> int:
    """Runs the command; ``client`` sends the request (tests pass the application's test client)."""
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        return _fail(f"the settings are invalid: {exc.errors()[0].get('msg', exc)}", EXIT_USAGE)
    name = args.carrier or next(iter(settings.carriers), None)
    if name is None or name not in settings.carriers:
        known = ", ".join(settings.carriers) or "none"
        return _fail(f"no carrier {name!r} in LEDGER_CARRIERS (configured: {known})", EXIT_USAGE)
    number = args.tracking_number.strip().upper()
    if not is_s10(number):
        return _fail(
            f"{args.tracking_number!r} is not a tracking number of the local carrier (two letters, eight digits, a "
            "check digit, two letters; the check digit must hold): copy it from the label",
            EXIT_USAGE,
        )
    event: dict[str, Any] = {
        "id": args.event_id or f"evt_{secrets.token_hex(8)}",
        "tracking_number": number,
        "status": args.status,
        "occurred_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if args.location:
        event["location"] = args.location
    if args.read_point:
        event["read_point"] = args.read_point
    if args.epc:
        if args.status != TrackingStatus.DELIVERED:
            return _fail("--epc goes with the status delivered only (the unit is checked at the merchant)", EXIT_USAGE)
        event["epc"] = args.epc.strip()
    if args.reason:
        if args.status != TrackingStatus.EXCEPTION:
            return _fail("--reason goes with the status exception only", EXIT_USAGE)
        event["reason"] = args.reason
    body = json.dumps({"events": [event]}).encode()
    carrier = LocalCarrier(name=name, webhook_secret=settings.carriers[name].webhook_secret.get_secret_value())
    headers = carrier.sign(delivery_id=f"msg_{secrets.token_hex(12)}", timestamp=int(time.time()), body=body)
    url = f"{(args.api_url or settings.public_base_url).rstrip('/')}/v1/carriers/{name}/webhooks"
    sender = client or httpx.Client(timeout=60.0)
    try:
        answer = sender.post(url, content=body, headers={**headers, "content-type": "application/json"})
    except httpx.HTTPError as exc:
        return _fail(f"the API at {url} could not be reached ({type(exc).__name__}); is it running?", EXIT_UNAVAILABLE)
    finally:
        if client is None:
            sender.close()
    if answer.status_code >= 500:
        return _fail(
            f"the API could not take the delivery now ({answer.status_code}): {_detail(answer)}", EXIT_UNAVAILABLE
        )
    if answer.status_code >= 400:
        return _fail(f"the API refused the delivery ({answer.status_code}): {_detail(answer)}", EXIT_REFUSED)
    receipt = answer.json()
    for item in receipt.get("events", []):
        print(f"{item['event_id']} {item['tracking_number']} {item['status']}: {item['outcome']}")
    for step in receipt.get("steps", []):
        if step.get("tx_hash"):
            print(f"on-chain: {step['step']} for return {step['return_id']} (tx {step['tx_hash']})")
        else:
            print(f"on-chain: {step['step']} for return {step['return_id']} refused ({step.get('refused')})")
    return 0


def _detail(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("detail") or answer.text[:300])
    except ValueError:
        return answer.text[:300]


if __name__ == "__main__":
    sys.exit(main())
