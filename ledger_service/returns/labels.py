"""The code printed on a return's label (and in its barcode): the return id in a scanner-friendly form.

``RMA-`` followed by the 32-byte return id in RFC 4648 base32 without padding
(52 characters, A-Z and 2-7 only: Code 128 and QR codes carry it, people can
read it out). It carries no secret and proves nothing by itself: anyone checks
it by looking the return up on-chain (``GET /v1/verify/{code}``); a forged code
names a return that does not exist.
"""

from __future__ import annotations

import base64
import binascii
import re

PREFIX = "RMA-"
_BODY = re.compile(r"^[A-Z2-7]{52}$")


def label_code(return_id: str | bytes) -> str:
    """The label code of a return id (``0x`` + 64 hex, or 32 bytes)."""
    raw = bytes.fromhex(return_id.removeprefix("0x")) if isinstance(return_id, str) else return_id
    if len(raw) != 32:
        raise ValueError("a return id has 32 bytes")
    return PREFIX + base64.b32encode(raw).decode().rstrip("=")


def parse_label_code(code: str) -> str | None:
    """The return id (``0x`` + 64 lower-case hex) a label code names, or None when ``code`` is not one.

    Case and surrounding spaces do not matter (scanners and people vary)."""
    text = code.strip().upper()
    if not text.startswith(PREFIX):
        return None
    body = text[len(PREFIX) :]
    if not _BODY.match(body):
        return None
    try:
        raw = base64.b32decode(body + "====")
    except binascii.Error:
        return None
    if len(raw) != 32 or base64.b32encode(raw).decode().rstrip("=") != body:
        return None  # non-canonical trailing bits: not a code we printed
    return "0x" + raw.hex()
