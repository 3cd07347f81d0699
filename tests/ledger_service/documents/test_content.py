"""ledger_service.documents.content: declared types held to the bytes, and the served type from the bytes alone."""

from __future__ import annotations

import pytest

from ledger_service.documents.content import ContentCheck, extension_of, served_type
from ledger_service.errors import InvalidRequestError, UnsupportedMediaTypeError

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 32
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 32


def run(declared: str, *chunks: bytes) -> tuple[str, bytes]:
    check = ContentCheck(declared)
    served = check.start(chunks[0] if chunks else b"")
    return served, b"".join(check.stream(chunks))


def test_binary_types_are_recognised_by_their_magic_numbers() -> None:
    assert run("image/png", PNG) == ("image/png", PNG)
    assert run("image/webp", WEBP)[0] == "image/webp"
    with pytest.raises(UnsupportedMediaTypeError, match="starts as image/png"):
        run("image/webp", PNG)


def test_utf8_split_across_chunks_is_text() -> None:
    data = "prix: 12 €, naïve".encode()
    cut = data.index("€".encode()) + 1  # inside the euro sign's three bytes
    served, passed = run("text/plain", data[:cut], data[cut:])
    assert served == "text/plain; charset=utf-8" and passed == data


def test_invalid_utf8_in_a_later_chunk_is_refused_before_it_is_passed_on() -> None:
    check = ContentCheck("text/csv")
    check.start(b"a,b\n")
    stream = check.stream([b"a,b\n", b"\xffbad"])
    assert next(stream) == b"a,b\n"
    with pytest.raises(UnsupportedMediaTypeError, match="offset 4"):
        next(stream)


def test_a_truncated_utf8_sequence_at_the_end_is_refused() -> None:
    with pytest.raises(UnsupportedMediaTypeError):
        run("text/plain", "€".encode()[:2])


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="empty"):
        run("application/pdf")


def test_a_charset_other_than_utf8_is_refused_and_ascii_is_fine() -> None:
    with pytest.raises(UnsupportedMediaTypeError, match="UTF-8"):
        ContentCheck("text/plain; charset=latin-1")
    assert run('text/plain; charset="US-ASCII"', b"ok")[0] == "text/plain; charset=utf-8"


def test_the_served_type_depends_on_the_bytes_only() -> None:
    assert served_type(PNG) == "image/png"
    assert served_type(b'  {"a": 1}') == "application/json; charset=utf-8"
    assert served_type(b"a,b\n1,2\n") == "text/plain; charset=utf-8"
    assert served_type(b"<html></html>") == "text/plain; charset=utf-8"
    assert served_type(b"\x00\x01") == "application/octet-stream"
    assert [extension_of(t) for t in ("image/png", "application/json; charset=utf-8", "x/y")] == ["png", "json", "bin"]
