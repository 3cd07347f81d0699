"""The hash chain's eventHash computed from hex fields, fast.

Same function as :func:`ledger_service.hashchain.event_hash` (a test checks
they agree), without eth_abi: every hashed type is static, so ``abi.encode``
is the concatenation of 32-byte words (bytes32 as is, uintN and address
left-padded with zeros), which we build by hand from the events' hex strings.

keccak256 comes from safe-pysha3's C implementation (about 1 us a hash here)
when it is installed, else from eth_hash's backend (eth_utils' keccak, which
is pycryptodome here, about 8 us).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class _Hasher(Protocol):
    def digest(self) -> bytes: ...


_ZERO12 = bytes(12)

try:
    from sha3 import keccak_256 as _keccak_256  # type: ignore[import-untyped]

    _new: Callable[[bytes], _Hasher] = _keccak_256
except ImportError:  # pragma: no cover - the service's lock installs safe-pysha3
    from eth_hash.auto import keccak as _eth_keccak

    class _EthHash:
        def __init__(self, data: bytes) -> None:
            self._digest = _eth_keccak(data)

        def digest(self) -> bytes:
            return self._digest

    _new = _EthHash


def keccak(data: bytes) -> bytes:
    """keccak256 of ``data``."""
    return _new(data).digest()


def event_hash_hex(
    *,
    prev_hash: str,
    item_id: str,
    seq: int,
    biz_step: int,
    disposition: int,
    actor: str,
    location: str,
    document: str,
    biz_transaction: str,
    timestamp: int,
) -> str:
    """``0x``-hex of keccak256(abi.encode(prevHash, itemId, seq, bizStep, disposition, actor, dataHash, timestamp)).

    Hashes and addresses are ``0x``-prefixed hex. Raises ValueError on a
    malformed hex field and OverflowError on a negative or too wide integer.
    """
    if (
        len(prev_hash) != 66
        or len(item_id) != 66
        or len(location) != 66
        or len(document) != 66
        or len(biz_transaction) != 66
        or len(actor) != 42
    ):
        raise ValueError("a hash chain field is not a 0x-prefixed bytes32 or address")
    if seq >= 1 << 64 or timestamp >= 1 << 64 or biz_step > 255 or disposition > 255:
        raise OverflowError("hash chain integer out of range")
    data = _new(bytes.fromhex(location[2:] + document[2:] + biz_transaction[2:])).digest()
    words = b"".join(
        (
            bytes.fromhex(prev_hash[2:] + item_id[2:]),
            seq.to_bytes(32, "big"),
            biz_step.to_bytes(32, "big"),
            disposition.to_bytes(32, "big"),
            _ZERO12,
            bytes.fromhex(actor[2:]),
            data,
            timestamp.to_bytes(32, "big"),
        )
    )
    return "0x" + _new(words).digest().hex()


_ZEROS_24, _ZEROS_48, _ZEROS_62 = "0" * 24, "0" * 48, "0" * 62
"""Hex zeros: an address's padding, a uint64's and a uint8's high bytes in a 32-byte word."""


def event_hash_matches_log(item_topic: str, actor_topic: str, data: str) -> bool:
    """Whether an ItemEventRecorded log's eventHash recomputes from its own fields.

    The same check as comparing :func:`event_hash_hex` of the decoded fields with
    the logged eventHash, done on the log's words: ``data`` (lowercase hex, no
    ``0x``) holds seq, bizStep, disposition, location, document, bizTransaction,
    timestamp, prevHash, eventHash as 32-byte words, which are the preimage's
    words when the integers are canonically encoded. A word with bits above its
    type's width (which decoding would read as an out-of-range integer) fails,
    as :func:`event_hash_hex` does; the actor is taken from the topic's low 20
    bytes, as the decoder does.
    """
    if (
        len(item_topic) != 66
        or len(actor_topic) != 66
        or len(data) < 576
        or data[0:48] != _ZEROS_48
        or data[64:126] != _ZEROS_62
        or data[128:190] != _ZEROS_62
        or data[384:432] != _ZEROS_48
    ):
        return False
    try:
        data_hash = _new(bytes.fromhex(data[192:384])).digest()
        head = bytes.fromhex(data[448:512] + item_topic[2:] + data[0:192] + _ZEROS_24 + actor_topic[26:])
        tail = bytes.fromhex(data[384:448])
    except ValueError:
        return False
    return _new(head + data_hash + tail).digest().hex() == data[512:576]
