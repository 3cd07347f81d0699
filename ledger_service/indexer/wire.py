"""How a fetch process hands decoded ranges to the writer: marshal frames over a pipe.

Decoded events travel in their row form (:mod:`ledger_service.core.rows`) and headers as
tuples of their fields, serialized with :mod:`marshal`: for these types
several times cheaper than pickle both ways (about 0.4 us to write and 0.6 us to
read an item event here). A frame is an 8-byte little-endian payload length, a kind byte and the payload.
"""

from __future__ import annotations

import marshal
import os
import select
import threading
from dataclasses import fields
from operator import attrgetter
from typing import Any

from ledger_service.core.events import BlockHeader
from ledger_service.errors import RetryableError

_HEADER = attrgetter(*(f.name for f in fields(BlockHeader)))


class WireError(RetryableError):
    """The fetch process sent something that is not a frame of this protocol, or went away mid-frame.

    Retryable: the pass is abandoned and fetched again, like a fetch process that ended between frames."""


def encode_header(header: BlockHeader) -> tuple[Any, ...]:
    return _HEADER(header)


def decode_header(row: tuple[Any, ...]) -> BlockHeader:
    return BlockHeader(*row)


RANGE, DONE, ERROR = b"R", b"D", b"E"
"""Frame kinds: a decoded range (marshal), the end of the ranges, a failure (pickled exception)."""


def send(fd: int, kind: bytes, payload: bytes = b"") -> None:
    """Writes one frame (blocks while the pipe is full). Raises BrokenPipeError when the reader is gone."""
    view = memoryview(len(payload).to_bytes(8, "little") + kind + payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def receive(fd: int, stop: threading.Event) -> tuple[bytes, bytes] | None:
    """Reads one frame: (kind, payload); None when the writer closed the pipe before a new frame, or once
    ``stop`` is set. Raises WireError on a frame cut short. Only os.read and select: the GIL is free while
    it waits, and it does not parse (the writer's thread does, see :func:`loads`)."""
    header = _read_exactly(fd, 9, stop, allow_eof=True)
    if header is None:
        return None
    payload = _read_exactly(fd, int.from_bytes(header[:8], "little"), stop, allow_eof=False)
    if payload is None:
        return None
    return header[8:], payload


def dumps(message: Any) -> bytes:
    return marshal.dumps(message)


def loads(payload: bytes) -> Any:
    try:
        return marshal.loads(payload)  # noqa: S302 - frames of our own fetch process, over a private pipe
    except (EOFError, ValueError, TypeError) as exc:
        raise WireError(f"unreadable frame: {exc}") from None


def _read_exactly(fd: int, size: int, stop: threading.Event, *, allow_eof: bool) -> bytes | None:
    parts: list[bytes] = []
    left = size
    while left:
        if stop.is_set():
            return None
        if not select.select([fd], [], [], 0.1)[0]:
            continue
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            if allow_eof and left == size:
                return None
            raise WireError(f"the fetch process's pipe closed {size - left} bytes into a {size}-byte read")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)
