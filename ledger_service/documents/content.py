"""What a document's bytes are: the declared media type checked against the content, and the type it is served as.

Invariants:
- a binary type (PDF, JPEG, PNG, WebP) is accepted only when the content's magic number says so
  (``puremagic``'s signatures): an executable, a script or an HTML page declared as a PDF is refused;
- a text type (``text/plain``, ``text/csv``, ``application/json``) is accepted only as UTF-8 (ASCII
  included) with no control character but tab, line feed, form feed and carriage return; a declared
  ``charset`` other than ``utf-8`` / ``us-ascii`` is refused;
- an empty document is refused;
- the type a document is served with is a function of its bytes alone (:func:`served_type`), never
  of what an uploader declared, so the first uploader of some bytes cannot decide what everybody
  else gets. Text that starts with ``{`` or ``[`` is served as JSON, other text as ``text/plain``
  (bytes cannot tell CSV from plain text); both with ``charset=utf-8``.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator

import puremagic

from ledger_service.errors import InvalidRequestError, UnsupportedMediaTypeError

BINARY_TYPES: dict[str, str] = {
    "application/pdf": "pdf",
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
}
"""Binary media types whose magic number is checked, with the file extension they are served under."""
TEXT_TYPES: dict[str, str] = {"text/plain": "txt", "text/csv": "csv", "application/json": "json"}
"""Text media types (UTF-8 only), with their file extensions."""
TEXT_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
UNKNOWN_TYPE = "application/octet-stream"
"""What bytes that are neither a known binary type nor UTF-8 text are served as (stored before checks existed)."""
SNIFF_BYTES = 4096
"""Bytes from the start that the magic numbers are looked for in."""

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_JSON_START = (b"{", b"[")


def extension_of(media_type: str) -> str:
    """The file extension for a served media type (``bin`` for an unknown one)."""
    base = media_type.partition(";")[0].strip().lower()
    return BINARY_TYPES.get(base) or TEXT_TYPES.get(base) or "bin"


def sniff(head: bytes) -> str | None:
    """The binary media type among :data:`BINARY_TYPES` that ``head`` (a document's first bytes) starts as."""
    if not head:
        return None
    try:
        matches = puremagic.magic_string(head[:SNIFF_BYTES])
    except (puremagic.PureError, ValueError):
        return None
    for match in matches:
        if match.mime_type in BINARY_TYPES:
            return str(match.mime_type)
    return None


def _text_type(head: bytes) -> str:
    start = head.lstrip(b" \t\r\n").removeprefix(codecs.BOM_UTF8)[:1]
    return ("application/json" if start in _JSON_START else "text/plain") + "; charset=utf-8"


def is_text(data: bytes) -> bool:
    """Whether ``data`` is UTF-8 text without control characters (see the module docstring)."""
    try:
        return _CONTROL.search(data.decode("utf-8")) is None
    except UnicodeDecodeError:
        return False


def served_type(data: bytes) -> str:
    """The media type a document with these bytes is served as (from the bytes alone)."""
    return sniff(data) or (_text_type(data) if is_text(data) else UNKNOWN_TYPE)


class ContentCheck:
    """Checks one upload, streamed, against its declared media type (``type`` or ``type; charset=...``).

    :meth:`start` looks at the first chunk and answers the type the document will be served as;
    :meth:`stream` then yields every chunk, checking text as it goes. Refusals:
    :class:`UnsupportedMediaTypeError` (content not of the declared type, a charset other than UTF-8)
    and :class:`InvalidRequestError` (an empty file).
    """

    def __init__(self, declared: str) -> None:
        base, _, parameters = declared.partition(";")
        self.declared = base.strip().lower()
        if self.declared not in BINARY_TYPES and self.declared not in TEXT_TYPES:
            raise UnsupportedMediaTypeError(f"documents of type {self.declared!r} are not accepted")
        for parameter in parameters.split(";"):
            name, _, value = parameter.partition("=")
            charset = value.strip().strip('"').lower()
            if name.strip().lower() == "charset" and self.declared in TEXT_TYPES and charset not in TEXT_CHARSETS:
                raise UnsupportedMediaTypeError(
                    f"text documents must be UTF-8 (or ASCII), not {charset!r}: convert the file to UTF-8 and "
                    f"declare it as '{self.declared}; charset=utf-8'"
                )
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._offset = 0

    def start(self, head: bytes) -> str:
        """The served media type, from the first chunk; raises if the content is not what was declared."""
        if not head:
            raise InvalidRequestError("the file is empty: there is nothing to store")
        if self.declared in BINARY_TYPES:
            found = sniff(head)
            if found != self.declared:
                raise UnsupportedMediaTypeError(
                    f"the file was declared as {self.declared} but its content is not one ("
                    + (f"it starts as {found}" if found else "its first bytes are not that format's signature")
                    + "); upload it with the type it really has"
                )
            return found
        return _text_type(head)

    def stream(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """``chunks`` as they are, each checked (text: UTF-8 without control characters) before it is passed on."""
        for chunk in chunks:
            if self.declared in TEXT_TYPES:
                self._check_text(chunk, final=False)
            yield chunk
        if self.declared in TEXT_TYPES:
            self._check_text(b"", final=True)

    def _check_text(self, chunk: bytes, *, final: bool) -> None:
        try:
            text = self._decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            at = self._offset + exc.start
            raise UnsupportedMediaTypeError(
                f"the file was declared as {self.declared} but is not UTF-8 text (invalid bytes at offset {at}); "
                "text documents must be UTF-8"
            ) from None
        control = _CONTROL.search(text)
        if control is not None:
            raise UnsupportedMediaTypeError(
                f"the file was declared as {self.declared} but holds the control character "
                f"U+{ord(control.group()):04X}: text documents may hold no control characters but tab, "
                "line feed, form feed and carriage return"
            )
        self._offset += len(chunk)
