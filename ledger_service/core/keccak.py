"""keccak256, the chain's hash function: one backend for all of the service's Python code.

safe-pysha3's C implementation, several times faster a call than eth_utils' ``keccak`` (eth-hash over
pycryptodome), which matters where the indexer and the writer recompute every event's eventHash. The
compiled accelerator (``indexer/_speedups.c``) has its own keccak; its tests compare it with this one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import sha3  # type: ignore[import-untyped]


class Hasher(Protocol):
    def digest(self) -> bytes: ...


keccak_256: Callable[[bytes], Hasher] = sha3.keccak_256
"""hashlib-style ``keccak_256(data).digest()``: the hash chain's hot loops call it without a wrapper."""


def keccak(data: bytes) -> bytes:
    """keccak256 of ``data``."""
    return keccak_256(data).digest()


def keccak_text(text: str) -> bytes:
    """keccak256 of ``text``'s UTF-8 bytes (an event or function signature, a role name, a GS1 URI)."""
    return keccak_256(text.encode("utf-8")).digest()
