"""The eventHash's fast forms in the core agree with eth_abi's encoding: on hex fields (the writer's),
on a log's own words (the indexer's per-event check), and both refuse what the ABI cannot encode."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak as eth_keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_service.core.hashchain import event_hash_hex, event_hash_matches_words
from ledger_service.core.keccak import keccak

bytes32 = st.binary(min_size=32, max_size=32)
uint64 = st.integers(0, 2**64 - 1)
HASHED_FIELDS = {
    "prev": bytes32,
    "item": bytes32,
    "seq": uint64,
    "step": st.integers(0, 255),
    "disp": st.integers(0, 255),
    "actor": st.binary(min_size=20, max_size=20),
    "ts": uint64,
}
"""The event hash's inputs but the three hashed into dataHash."""


def event_hash_matches_log(item_topic: str, actor_topic: str, data: str) -> bool:
    """The check on an ItemEventRecorded log as the contract lays it out: topics itemId and actor, data words
    seq, bizStep, disposition, location, document, bizTransaction, timestamp, prevHash, eventHash."""
    d = [data[i : i + 64] for i in range(0, 576, 64)]
    return event_hash_matches_words(
        d[7], item_topic[2:], d[0], d[1], d[2], actor_topic[2:], d[3], d[4], d[5], d[6], d[8]
    )


def _reference(
    prev: bytes,
    item: bytes,
    seq: int,
    step: int,
    disp: int,
    actor: bytes,
    location: bytes,
    document: bytes,
    btx: bytes,
    ts: int,
) -> bytes:
    """The eventHash as eth_abi encodes it, hashed by eth_utils' keccak: independent of the core's code."""
    data = eth_keccak(abi_encode(["bytes32", "bytes32", "bytes32"], [location, document, btx]))
    types = ["bytes32", "bytes32", "uint64", "uint8", "uint8", "address", "bytes32", "uint64"]
    return eth_keccak(abi_encode(types, [prev, item, seq, step, disp, actor, data, ts]))


@settings(max_examples=200, deadline=None)
@given(**HASHED_FIELDS, location=bytes32, document=bytes32, btx=bytes32)
def test_fast_event_hash_equals_the_reference(
    prev: bytes,
    item: bytes,
    seq: int,
    step: int,
    disp: int,
    actor: bytes,
    location: bytes,
    document: bytes,
    btx: bytes,
    ts: int,
) -> None:
    reference = _reference(prev, item, seq, step, disp, actor, location, document, btx, ts)
    fast = event_hash_hex(
        prev_hash="0x" + prev.hex(),
        item_id="0x" + item.hex(),
        seq=seq,
        biz_step=step,
        disposition=disp,
        actor="0x" + actor.hex(),
        location="0x" + location.hex(),
        document="0x" + document.hex(),
        biz_transaction="0x" + btx.hex(),
        timestamp=ts,
    )
    assert fast == "0x" + reference.hex()


def _log_of(
    *, prev: bytes, item: bytes, seq: int, step: int, disp: int, actor: bytes, docs: bytes, ts: int, event: bytes
) -> tuple[str, str, str]:
    """(itemId topic, actor topic, data hex) of an ItemEventRecorded log, as the contract emits it."""
    data = b"".join(
        (seq.to_bytes(32, "big"), step.to_bytes(32, "big"), disp.to_bytes(32, "big"), docs, ts.to_bytes(32, "big"))
    )
    return "0x" + item.hex(), "0x" + bytes(12).hex() + actor.hex(), (data + prev + event).hex()


@settings(max_examples=200, deadline=None)
@given(
    **HASHED_FIELDS,
    docs=st.binary(min_size=96, max_size=96),
    part=st.sampled_from(["data", "item", "actor"]),
    bit=st.integers(0, 9 * 256 - 1),
)
def test_the_decoders_check_on_log_words_agrees_with_the_reference(
    prev: bytes, item: bytes, seq: int, step: int, disp: int, actor: bytes, docs: bytes, ts: int, part: str, bit: int
) -> None:
    reference = _reference(prev, item, seq, step, disp, actor, docs[:32], docs[32:64], docs[64:], ts)
    log = dict(
        zip(
            ("item", "actor", "data"),
            _log_of(
                prev=prev, item=item, seq=seq, step=step, disp=disp, actor=actor, docs=docs, ts=ts, event=reference
            ),
            strict=True,
        )
    )
    assert event_hash_matches_log(log["item"], log["actor"], log["data"])
    # one flipped bit anywhere in what is hashed (the actor: its low 20 bytes, the address) fails the check
    raw = bytearray.fromhex(log[part].removeprefix("0x"))
    width = {"data": 9 * 256, "item": 256, "actor": 160}[part]
    raw[len(raw) - 1 - (bit % width) // 8] ^= 1 << (bit % 8)
    log[part] = ("" if part == "data" else "0x") + raw.hex()
    assert not event_hash_matches_log(log["item"], log["actor"], log["data"])


@pytest.mark.parametrize("word", [0, 1, 2, 6])
def test_the_check_on_log_words_fails_an_integer_wider_than_its_type(word: int) -> None:
    """A word the decoder reads as an out-of-range integer fails, like event_hash_hex's OverflowError, even
    with an eventHash computed over the wide word."""
    zero = bytes(32)
    words = [zero] * 9
    words[word] = (1 << 255).to_bytes(32, "big") if word != 0 else (1 << 64).to_bytes(32, "big")
    prefix = zero + zero + b"".join(words[:3]) + zero
    preimage = prefix + keccak(b"".join(words[3:6])) + words[6]
    words[8] = keccak(preimage)
    assert not event_hash_matches_log("0x" + zero.hex(), "0x" + zero.hex(), b"".join(words).hex())


def test_the_check_on_log_words_fails_malformed_input() -> None:
    zero = "00" * 32
    assert not event_hash_matches_log("0x" + zero[:-2], "0x" + zero, zero * 9)
    assert not event_hash_matches_log("0x" + zero, "0x" + zero, zero * 8)
    assert not event_hash_matches_log("0x" + "zz" * 32, "0x" + zero, zero * 9)


@pytest.mark.parametrize(
    ("seq", "step", "actor"),
    [(2**64, 1, "0x" + "00" * 20), (-1, 1, "0x" + "00" * 20), (0, 256, "0x" + "00" * 20), (0, 1, "0x00")],
)
def test_fast_event_hash_refuses_what_abi_cannot_encode(seq: int, step: int, actor: str) -> None:
    zero = "0x" + "00" * 32
    with pytest.raises((ValueError, OverflowError)):
        event_hash_hex(
            prev_hash=zero,
            item_id=zero,
            seq=seq,
            biz_step=step,
            disposition=1,
            actor=actor,
            location=zero,
            document=zero,
            biz_transaction=zero,
            timestamp=0,
        )
