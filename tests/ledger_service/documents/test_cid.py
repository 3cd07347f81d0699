"""CIDs against the reference: ``/usr/bin/ipfs_cid`` (Debian's ipfs-cid), which computes what ``ipfs add``
gives with default settings (256 KiB chunks, balanced DAG, CIDv0)."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger_service.documents.cid import (
    CHUNK_SIZE,
    MAX_LINKS,
    Cid,
    CidBuilder,
    cid_of_bytes,
    cid_of_chunks,
    cid_of_file,
    cid_of_stream,
)
from ledger_service.errors import InvalidRequestError
from tests.support.kubo import reference_cid, reference_cid_of_file

EMPTY_FILE_CID = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
"""``ipfs add`` of an empty file (a well-known CID)."""


@pytest.mark.parametrize("size", [0, 1, 11, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE + 7])
def test_sizes_around_the_chunk_boundary_match_ipfs_cid(size: int) -> None:
    data = random.Random(size).randbytes(size)
    expected = reference_cid(data)
    cid = cid_of_bytes(data)
    assert (cid.v0, cid.v1) == (expected.v0, expected.v1)


def test_the_empty_file_has_its_well_known_cid() -> None:
    assert cid_of_bytes(b"").v0 == EMPTY_FILE_CID == reference_cid(b"").v0


def test_a_10_mb_file_matches_ipfs_cid(tmp_path: Path) -> None:
    path = tmp_path / "ten.bin"
    path.write_bytes(os.urandom(10 * 1024 * 1024))
    expected = reference_cid_of_file(path)
    assert cid_of_file(path).v0 == expected.v0
    assert cid_of_file(path).v1 == expected.v1


def test_a_two_level_dag_matches_ipfs_cid(tmp_path: Path) -> None:
    """More than 174 chunks: the root links to internal nodes, not to the leaves."""
    path = tmp_path / "deep.bin"
    block = random.Random(7).randbytes(CHUNK_SIZE)
    with path.open("wb") as out:
        for i in range(MAX_LINKS + 1):
            out.write(block[i:] + block[:i])
        out.write(b"tail")
    assert cid_of_file(path).v0 == reference_cid_of_file(path).v0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.one_of(
        st.integers(min_value=0, max_value=600_000),
        st.sampled_from([CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE, 2 * CHUNK_SIZE + 1]),
    ),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    pieces=st.lists(st.integers(min_value=1, max_value=400_000), max_size=6),
)
def test_random_files_match_ipfs_cid_however_they_are_fed(size: int, seed: int, pieces: list[int]) -> None:
    data = random.Random(seed).randbytes(size)
    expected = reference_cid(data).v0
    builder = CidBuilder()
    at = 0
    for length in pieces:  # uneven pieces, then the rest
        builder.update(data[at : at + length])
        at += length
    builder.update(data[at:])
    assert builder.size == size
    assert builder.finish().v0 == expected
    assert cid_of_stream(io.BytesIO(data), read_size=65_537).v0 == expected


def test_chunks_and_bytes_agree() -> None:
    data = random.Random(3).randbytes(CHUNK_SIZE + 100)
    assert cid_of_chunks([data[:5], data[5:CHUNK_SIZE], data[CHUNK_SIZE:]]) == cid_of_bytes(data)


def test_parse_accepts_v0_and_v1_and_both_name_the_same_digest() -> None:
    cid = cid_of_bytes(b"hello documents")
    reference = reference_cid(b"hello documents")
    assert Cid.parse(reference.v0) == cid
    assert Cid.parse(reference.v1) == cid
    assert Cid.parse(reference.v1.upper()) == cid
    assert Cid.parse(f"  {reference.v0}\n") == cid
    assert Cid.from_digest(cid.hex_digest) == cid
    assert Cid.from_digest(cid.digest) == cid
    assert Cid.from_digest(cid.hex_digest.removeprefix("0x")) == cid
    assert cid.hex_digest == "0x" + cid.digest.hex() and len(cid.hex_digest) == 66
    assert str(cid) == cid.v0


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "Qm" + "1" * 44,  # base58 of the right length, but not a sha2-256 multihash
        EMPTY_FILE_CID[:-1],
        EMPTY_FILE_CID + "a",
        EMPTY_FILE_CID[:-1] + "0",  # 0 is not a base58 digit
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",  # raw leaves (codec 0x55)
        "zdj7WWeQ43G6JJvLWQWZpyHuAMq6uYWRjkBXFad11vE2LHhQ7",  # CIDv1 in base58, not base32
        "b" + "a" * 58,
    ],
)
def test_parse_refuses_text_that_is_not_a_document_cid(text: str) -> None:
    with pytest.raises(InvalidRequestError) as error:
        Cid.parse(text)
    assert "CID" in str(error.value)


def test_a_raw_leaves_cid_is_explained() -> None:
    with pytest.raises(InvalidRequestError, match="raw-leaves"):
        Cid.parse("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")


@pytest.mark.parametrize("digest", ["0x1234", "0x" + "zz" * 32, "0x" + "00" * 33, b"\x00" * 31])
def test_from_digest_refuses_what_is_not_32_bytes(digest: str | bytes) -> None:
    with pytest.raises(InvalidRequestError, match="digest"):
        Cid.from_digest(digest)
