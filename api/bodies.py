"""Request body limits shared by the request gate (:mod:`api.limits`) and the routes with limits of their own.

A leaf module: the gate reads the routes' limits and the routes name theirs, so neither imports the other.
"""

from __future__ import annotations

from fastapi import HTTPException
from starlette.types import Message, Receive

MULTIPART_ENVELOPE = 64 * 1024
"""Bytes a multipart body may hold beyond the file itself (boundaries, part headers, a file name)."""
BODY_LIMIT_EXTENSION = "x-body-limit-setting"
"""An operation's OpenAPI extension naming the :class:`~ledger_service.settings.Settings` field that holds its
own body limit (an EPCIS document is larger than any other JSON body)."""


def counting_receive(receive: Receive, limit: int, message: str) -> Receive:
    """``receive`` that fails with a 413 (``message``) once more than ``limit`` body bytes arrived; also the
    request gate's count of a streamed body (:mod:`api.limits`)."""
    total = 0

    async def counted() -> Message:
        nonlocal total
        event = await receive()
        if event["type"] == "http.request":
            total += len(event.get("body", b""))
            if total > limit:  # an HTTPException: FastAPI passes it through its body parsing as is
                raise HTTPException(status_code=413, detail=message)
        return event

    return counted
