"""IPFS content identifiers, exactly as ``ipfs add`` with default settings computes them.

Defaults of ``ipfs add`` (Kubo): fixed-size chunks of 256 KiB, each chunk a dag-pb
node holding a UnixFS ``File`` (no raw leaves, since CIDv0), a *balanced* DAG of at
most 174 links per node, sha2-256, CIDv0. A file of one chunk (or empty) is its own
root; otherwise the root is an internal node whose UnixFS data lists the children's
file sizes and whose links carry the children's hashes and cumulative block sizes.

The on-chain document digest is the 32-byte sha2-256 digest inside the CID's
multihash, so a CID and its digest convert both ways without any lookup:
``CIDv0 = base58btc(0x12 0x20 || digest)`` and ``CIDv1 = "b" + base32(0x01 0x70 0x12 0x20 || digest)``.

Only protobuf's varint and length-delimited fields are needed; they are written here
by hand (dag-pb's canonical form: links before data, fields in number order).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import base58

from ledger_service.errors import InvalidRequestError

CHUNK_SIZE = 262_144
MAX_LINKS = 174
_SHA2_256 = b"\x12\x20"
_CIDV1_DAG_PB = b"\x01\x70"
_UNIXFS_FILE = 2


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _field_bytes(number: int, value: bytes) -> bytes:
    return _varint((number << 3) | 2) + _varint(len(value)) + value


@dataclass(frozen=True, slots=True)
class Cid:
    """A dag-pb / sha2-256 CID (what ``ipfs add`` gives), identified by its 32-byte digest."""

    digest: bytes

    def __post_init__(self) -> None:
        if len(self.digest) != 32:
            raise ValueError("a sha2-256 digest has 32 bytes")

    @property
    def v0(self) -> str:
        """CIDv0 text (``Qm...``): base58btc of the multihash."""
        return base58.b58encode(_SHA2_256 + self.digest).decode()

    @property
    def v1(self) -> str:
        """CIDv1 text (``bafy...``): multibase base32 (lower case, no padding) of version, codec, multihash."""
        raw = _CIDV1_DAG_PB + _SHA2_256 + self.digest
        return "b" + base64.b32encode(raw).decode().lower().rstrip("=")

    @property
    def hex_digest(self) -> str:
        """The on-chain document digest: ``0x`` + 64 hex digits."""
        return "0x" + self.digest.hex()

    def __str__(self) -> str:
        return self.v0

    @classmethod
    def from_digest(cls, digest: str | bytes) -> Cid:
        """The CID whose multihash digest is ``digest`` (bytes32 or ``0x`` + 64 hex)."""
        if isinstance(digest, str):
            text = digest.removeprefix("0x")
            try:
                raw = bytes.fromhex(text)
            except ValueError:
                raise InvalidRequestError(f"not a document digest (0x + 64 hex digits): {digest!r}") from None
        else:
            raw = digest
        if len(raw) != 32:
            raise InvalidRequestError(f"a document digest has 32 bytes, got {len(raw)}")
        return cls(raw)

    @classmethod
    def parse(cls, text: str) -> Cid:
        """A CID given as CIDv0 (``Qm...``) or CIDv1 base32 (``bafy...``) of a dag-pb sha2-256 node."""
        text = text.strip()
        if text.startswith("Qm") and len(text) == 46:
            try:
                raw = base58.b58decode(text)
            except ValueError:
                raw = b""
            if len(raw) == 34 and raw[:2] == _SHA2_256:
                return cls(raw[2:])
        elif text[:1] in ("b", "B") and len(text) == 59:
            body = text[1:].upper()
            try:
                raw = base64.b32decode(body + "=" * (-len(body) % 8))
            except ValueError:
                raw = b""
            if len(raw) == 36 and raw[:4] == _CIDV1_DAG_PB + _SHA2_256:
                return cls(raw[4:])
            if len(raw) == 36 and raw[:2] == b"\x01\x55":
                raise InvalidRequestError(
                    f"{text} is a raw-leaves CID; documents here are addressed as `ipfs add` gives by default (dag-pb)"
                )
        raise InvalidRequestError(
            f"not a document CID: {text!r} (expected CIDv0 'Qm...' (46 characters) "
            "or CIDv1 base32 'bafy...' (59 characters) of a dag-pb sha2-256 node)"
        )


@dataclass(frozen=True, slots=True)
class _Block:
    """A node of the DAG as its parent needs it: multihash, cumulative size, file bytes below it."""

    multihash: bytes
    tsize: int
    file_size: int


def _leaf(chunk: bytes) -> _Block:
    unixfs = _field_varint(1, _UNIXFS_FILE)
    if chunk:
        unixfs += _field_bytes(2, chunk)
    unixfs += _field_varint(3, len(chunk))
    node = _field_bytes(1, unixfs)
    return _Block(_SHA2_256 + hashlib.sha256(node).digest(), len(node), len(chunk))


def _internal(children: list[_Block]) -> _Block:
    file_size = sum(c.file_size for c in children)
    unixfs = _field_varint(1, _UNIXFS_FILE) + _field_varint(3, file_size)
    unixfs += b"".join(_field_varint(4, c.file_size) for c in children)
    links = b"".join(
        _field_bytes(2, _field_bytes(1, c.multihash) + _field_bytes(2, b"") + _field_varint(3, c.tsize))
        for c in children
    )
    node = links + _field_bytes(1, unixfs)
    return _Block(_SHA2_256 + hashlib.sha256(node).digest(), len(node) + sum(c.tsize for c in children), file_size)


def _balanced(leaves: list[_Block], depth: int) -> _Block:
    """The subtree of ``depth`` levels over ``leaves`` (filled left to right, as go-unixfs' balanced layout)."""
    if depth == 0:
        return leaves[0]
    span = MAX_LINKS ** (depth - 1)
    return _internal([_balanced(leaves[i : i + span], depth - 1) for i in range(0, len(leaves), span)])


class CidBuilder:
    """Computes a CID from bytes fed in pieces of any size (constant memory per 256 KiB chunk)."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self._leaves: list[_Block] = []
        self.size = 0

    def update(self, data: bytes) -> None:
        """Feeds the next bytes of the file."""
        self.size += len(data)
        self._pending += data
        while len(self._pending) >= CHUNK_SIZE:
            self._leaves.append(_leaf(bytes(self._pending[:CHUNK_SIZE])))
            del self._pending[:CHUNK_SIZE]

    def finish(self) -> Cid:
        """The CID of everything fed so far."""
        leaves = list(self._leaves)
        if self._pending or not leaves:
            leaves.append(_leaf(bytes(self._pending)))
        depth = 0
        while MAX_LINKS**depth < len(leaves):
            depth += 1
        return Cid(_balanced(leaves, depth).multihash[2:])


def cid_of_bytes(data: bytes) -> Cid:
    """The CID ``ipfs add`` gives a file with these bytes."""
    builder = CidBuilder()
    builder.update(data)
    return builder.finish()


def cid_of_stream(stream: BinaryIO, *, read_size: int = CHUNK_SIZE) -> Cid:
    """The CID of everything read from ``stream``."""
    builder = CidBuilder()
    while chunk := stream.read(read_size):
        builder.update(chunk)
    return builder.finish()


def cid_of_file(path: Path) -> Cid:
    """The CID ``ipfs add FILE`` gives."""
    with path.open("rb") as stream:
        return cid_of_stream(stream)


def cid_of_chunks(chunks: Iterable[bytes]) -> Cid:
    """The CID of the concatenation of ``chunks``."""
    builder = CidBuilder()
    for chunk in chunks:
        builder.update(chunk)
    return builder.finish()


def iter_file(path: Path, *, read_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The file's bytes in pieces (for streaming it out while checking it)."""
    with path.open("rb") as stream:
        while chunk := stream.read(read_size):
            yield chunk
