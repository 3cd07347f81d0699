"""The per-item hash chain, computed exactly as ProvenanceLedger does: the one implementation.

For event ``seq`` of an item (seq 0 is the commissioning event written at
registration)::

    dataHash  = keccak256(abi.encode(location, document, bizTransaction))
    eventHash = keccak256(abi.encode(prevHash, itemId, seq, bizStep,
                                     disposition, actor, dataHash, timestamp))

with ``prevHash`` the previous event's eventHash (32 zero bytes for seq 0).
Every hashed type is static, so ``abi.encode`` is the concatenation of 32-byte
words (bytes32 as is, uintN and address left-padded with zeros): built here by
hand, without eth_abi, because the writer recomputes every event's hash.
:func:`event_hash_hex` is the computation; :func:`event_hash` is the same on
bytes (the verifier's and the API's form), and :func:`event_hash_matches_words`
the same check on a log's own words (the indexer's per-event check; the
compiled accelerator mirrors it, and tests compare the three with eth_abi's
encoding and the contract). Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from eth_utils.address import to_canonical_address

from ledger_service.core.keccak import keccak, keccak_256

ZERO_HASH = b"\0" * 32

_ZERO12 = bytes(12)


def item_id(uri: str) -> bytes:
    """The on-chain item id of a GS1 URI: keccak256 of its UTF-8 bytes."""
    return keccak(uri.encode("utf-8"))


def data_hash(*, location: bytes, document: bytes, biz_transaction: bytes) -> bytes:
    """keccak256(abi.encode(location, document, bizTransaction)). Raises ValueError unless each is 32 bytes."""
    if len(location) != 32 or len(document) != 32 or len(biz_transaction) != 32:
        raise ValueError("a hash chain field is not 32 bytes")
    return keccak(location + document + biz_transaction)


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
    data = keccak_256(bytes.fromhex(location[2:] + document[2:] + biz_transaction[2:])).digest()
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
    return "0x" + keccak_256(words).digest().hex()


def event_hash(
    *,
    prev_hash: bytes,
    item_id: bytes,
    seq: int,
    biz_step: int,
    disposition: int,
    actor: str | bytes,
    location: bytes,
    document: bytes,
    biz_transaction: bytes,
    timestamp: int,
) -> bytes:
    """The eventHash the contract computes for these fields (:func:`event_hash_hex` on bytes).

    ``actor`` is an address as 20 bytes or hex text. Raises ValueError on a field of the wrong size
    and OverflowError on a negative or too wide integer.
    """
    if len(prev_hash) != 32 or len(item_id) != 32:
        raise ValueError("a hash chain field is not 32 bytes")
    data_hash(location=location, document=document, biz_transaction=biz_transaction)  # checks the sizes
    hashed = event_hash_hex(
        prev_hash="0x" + prev_hash.hex(),
        item_id="0x" + item_id.hex(),
        seq=seq,
        biz_step=biz_step,
        disposition=disposition,
        actor="0x" + to_canonical_address(actor).hex(),
        location="0x" + location.hex(),
        document="0x" + document.hex(),
        biz_transaction="0x" + biz_transaction.hex(),
        timestamp=timestamp,
    )
    return bytes.fromhex(hashed[2:])


_ZEROS_24, _ZEROS_48, _ZEROS_62 = "0" * 24, "0" * 48, "0" * 62
"""Hex zeros: an address's padding, a uint64's and a uint8's high bytes in a 32-byte word."""

EVENT_HASH_WORDS: tuple[str, ...] = (
    "prev_hash",
    "item_id",
    "seq",
    "biz_step",
    "disposition",
    "actor",
    "location",
    "document",
    "biz_transaction",
    "timestamp",
    "event_hash",
)
"""The ItemEventRecorded fields :func:`event_hash_matches_words` reads, in its argument order."""


def event_hash_matches_words(
    prev_hash: str,
    item_id: str,
    seq: str,
    biz_step: str,
    disposition: str,
    actor: str,
    location: str,
    document: str,
    biz_transaction: str,
    timestamp: str,
    event_hash: str,
) -> bool:
    """Whether an ItemEventRecorded log's eventHash recomputes from its own fields, read as the log's words.

    The same check as comparing :func:`event_hash_hex` of the decoded fields with the logged eventHash, done
    on the 32-byte words (64 hex digits, no ``0x``; ``event_hash`` lowercase) as the log carries them, in
    topics or data: they are the preimage's words when the integers are canonically encoded. A word with
    bits above its type's width (which decoding would read as an out-of-range integer) fails, as
    :func:`event_hash_hex` does; the actor is the word's low 20 bytes, as the decoder reads an address.
    """
    if not (
        len(prev_hash)
        == len(item_id)
        == len(seq)
        == len(biz_step)
        == len(disposition)
        == len(actor)
        == len(location)
        == len(document)
        == len(biz_transaction)
        == len(timestamp)
        == len(event_hash)
        == 64
    ):
        return False
    if seq[:48] != _ZEROS_48 or timestamp[:48] != _ZEROS_48:
        return False
    if biz_step[:62] != _ZEROS_62 or disposition[:62] != _ZEROS_62:
        return False
    try:
        inner = keccak_256(bytes.fromhex(location + document + biz_transaction)).digest()
        head = bytes.fromhex(prev_hash + item_id + seq + biz_step + disposition + _ZEROS_24 + actor[24:])
        tail = bytes.fromhex(timestamp)
    except ValueError:
        return False
    return keccak_256(head + inner + tail).digest().hex() == event_hash


@dataclass(frozen=True, slots=True)
class ChainLink:
    """The fields of one recorded item event that the hash chain covers, plus its claimed hashes."""

    item_id: bytes
    seq: int
    biz_step: int
    disposition: int
    actor: str
    location: bytes
    document: bytes
    biz_transaction: bytes
    timestamp: int
    prev_hash: bytes
    event_hash: bytes


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """Why an item's chain does not verify, pointing at the first bad event."""

    seq: int
    reason: str


def recompute(link: ChainLink, prev_hash: bytes) -> bytes:
    """Recomputes ``link``'s eventHash on top of ``prev_hash``."""
    return event_hash(
        prev_hash=prev_hash,
        item_id=link.item_id,
        seq=link.seq,
        biz_step=link.biz_step,
        disposition=link.disposition,
        actor=link.actor,
        location=link.location,
        document=link.document,
        biz_transaction=link.biz_transaction,
        timestamp=link.timestamp,
    )


def verify_chain(links: Iterable[ChainLink]) -> tuple[bytes, int, list[ChainProblem]]:
    """Replays an item's events in seq order.

    Returns the head (the last event's recomputed hash), the number of events,
    and every problem found, each pinned to the event at fault: a gap or
    reordering in seq, a prevHash that does not link to the previous event's
    hash, an eventHash that does not match the event's own fields. Each event
    is recomputed on its own prevHash and its seq checked against the event
    before it, so one altered or missing event is reported once, not as a
    cascade. An auditor compares the head and count with the
    contract's stored ones.
    """
    expected_prev = ZERO_HASH
    expected_seq = 0
    head = ZERO_HASH
    count = 0
    problems: list[ChainProblem] = []
    for link in links:
        if link.seq != expected_seq:
            reason = f"expected event #{expected_seq}, found #{link.seq} (missing or reordered)"
            problems.append(ChainProblem(link.seq, reason))
        elif link.prev_hash != expected_prev:  # a seq break cannot link either: one problem per break
            problems.append(ChainProblem(link.seq, "prevHash does not link to the previous event's hash"))
        head = recompute(link, link.prev_hash)
        if head != link.event_hash:
            problems.append(ChainProblem(link.seq, "eventHash does not match the event's fields (altered)"))
        expected_prev = link.event_hash
        expected_seq = link.seq + 1  # the events after a break are checked against it, not flagged with it
        count += 1
    return head, count, problems
