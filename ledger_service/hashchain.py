"""The per-item hash chain, computed exactly as ProvenanceLedger does.

For event ``seq`` of an item (seq 0 is the commissioning event written at
registration)::

    dataHash  = keccak256(abi.encode(location, document, bizTransaction))
    eventHash = keccak256(abi.encode(prevHash, itemId, seq, bizStep,
                                     disposition, actor, dataHash, timestamp))

with ``prevHash`` the previous event's eventHash (32 zero bytes for seq 0).
Pure functions, no I/O: the indexer, the API and the independent verifier use
the same code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from eth_abi.abi import encode
from eth_utils.address import to_canonical_address
from eth_utils.crypto import keccak

ZERO_HASH = b"\0" * 32


def item_id(uri: str) -> bytes:
    """The on-chain item id of a GS1 URI: keccak256 of its UTF-8 bytes."""
    return keccak(uri.encode("utf-8"))


def data_hash(*, location: bytes, document: bytes, biz_transaction: bytes) -> bytes:
    """keccak256(abi.encode(location, document, bizTransaction))."""
    return keccak(encode(["bytes32", "bytes32", "bytes32"], [location, document, biz_transaction]))


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
    """The eventHash the contract computes for these fields."""
    inner = data_hash(location=location, document=document, biz_transaction=biz_transaction)
    return keccak(
        encode(
            ["bytes32", "bytes32", "uint64", "uint8", "uint8", "address", "bytes32", "uint64"],
            [prev_hash, item_id, seq, biz_step, disposition, to_canonical_address(actor), inner, timestamp],
        )
    )


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
