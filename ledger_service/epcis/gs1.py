"""GS1 names of one individual item (GTIN + serial number) in the forms people and scanners produce.

Accepted forms, all reduced to an :class:`ItemKey` (GTIN-14 + serial number):

- the EPC pure-identity URI ``urn:epc:id:sgtin:CompanyPrefix.IndicatorItemRef.Serial`` (GS1 EPC Tag Data
  Standard): company prefix (6..12 digits) and indicator + item reference together have 13 digits; the
  GTIN-14 is the indicator digit, the company prefix, the item reference and the check digit, so it is
  found without knowing the prefix length. Serial characters ``" % & / < > ?`` appear %-escaped;
- a GS1 Digital Link URI on any host, with or without a path before the key:
  ``https://id.gs1.org/01/09506000134352/21/2017`` (also ``/gtin/.../ser/...`` of Digital Link 1.0,
  qualifiers such as ``/10/{lot}`` between, and a query or fragment after). GTIN-8, -12 and -13 are
  padded with zeros to 14 digits;
- a GS1 element string as printed under a barcode: ``(01)09506000134352(21)2017``.

Invariants: an ItemKey's GTIN is 14 digits with a correct check digit; its serial is 1..20 characters
of GS1's 82-character set (AI 21), %-escapes decoded. :func:`parse_item_key` answers None for text that
is not meant as a GS1 item name and raises :class:`Gs1Error` (a sentence naming the problem) for text
that is one but malformed (wrong check digit, no serial, bad escape, ...).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

__all__ = ["Gs1Error", "ItemKey", "check_digit", "key_of_uri", "normalize_gtin", "parse_item_key"]

SGTIN_PREFIX = "urn:epc:id:sgtin:"
CANONICAL_HOST = "https://id.gs1.org"
MAX_SERIAL = 20
_CS82 = frozenset(string.ascii_letters + string.digits + "!\"%&'()*+,-./:;<=>?_")
"""GS1 AI encodable character set 82: what a serial number (AI 21) may contain."""
_SGTIN_ESCAPED = '"%&/<>?'
"""Serial characters the EPC URI writes as %-escapes."""
_DL_SAFE = "-._~"
_SGTIN = re.compile(r"^urn:epc:id:sgtin:(\d+)\.(\d+)\.(.*)$", re.IGNORECASE)
_ELEMENT = re.compile(r"^\(01\)(\d{14})(?:\(\d{2,4}\)[^()]*)*?\(21\)([^()]+)(?:\(\d{2,4}\)[^()]*)*$")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_PRIMARY = ("01", "gtin")
_SERIAL = ("21", "ser")


class Gs1Error(ValueError):
    """Text that names a GS1 item but is malformed; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class ItemKey:
    """One individual item: its GTIN-14 and its serial number (decoded)."""

    gtin: str
    serial: str

    @property
    def gtin_int(self) -> int:
        return int(self.gtin)

    def sgtin_uris(self) -> tuple[str, ...]:
        """The item's EPC URI for each possible company prefix length (6..12 digits)."""
        indicator, body = self.gtin[0], self.gtin[1:13]
        serial = self._sgtin_serial()
        return tuple(f"{SGTIN_PREFIX}{body[:length]}.{indicator}{body[length:]}.{serial}" for length in range(6, 13))

    def digital_link(self, host: str = CANONICAL_HOST) -> str:
        """The item's Digital Link URI on ``host`` (scheme + authority, no trailing slash)."""
        return f"{host}/01/{self.gtin}/21/{quote(self.serial, safe=_DL_SAFE)}"

    def serial_forms(self) -> tuple[str, ...]:
        """The serial as it may be written inside a URI: as is, %-escaped for Digital Link, for the EPC URI."""
        forms = [self.serial, quote(self.serial, safe=_DL_SAFE), self._sgtin_serial()]
        return tuple(dict.fromkeys(forms))

    def _sgtin_serial(self) -> str:
        return "".join(f"%{ord(c):02X}" if c in _SGTIN_ESCAPED else c for c in self.serial)


def check_digit(digits: str) -> int:
    """The GS1 mod-10 check digit of ``digits`` (the GTIN without its last digit)."""
    if not digits.isdigit():
        raise Gs1Error(f"{digits!r} is not a string of digits")
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


def normalize_gtin(text: str) -> str:
    """A GTIN-8, -12, -13 or -14 as GTIN-14, after checking its check digit."""
    if not text.isdigit() or not text.isascii() or len(text) not in (8, 12, 13, 14):
        raise Gs1Error(f"{text!r} is not a GTIN: a GTIN has 8, 12, 13 or 14 digits")
    expected = check_digit(text[:-1])
    if int(text[-1]) != expected:
        raise Gs1Error(f"GTIN {text} has a wrong check digit: it should end in {expected}")
    return text.zfill(14)


def _serial(raw: str, *, escaped: bool) -> str:
    if escaped:
        if re.search(r"%(?![0-9A-Fa-f]{2})", raw):
            raise Gs1Error(f"serial number {raw!r} has a '%' that is not followed by two hex digits")
        text = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), raw)
    else:
        text = raw
    if not text:
        raise Gs1Error("the serial number is empty")
    if len(text) > MAX_SERIAL:
        raise Gs1Error(f"serial number {text!r} is longer than {MAX_SERIAL} characters")
    bad = sorted({c for c in text if c not in _CS82})
    if bad:
        raise Gs1Error(f"serial number {text!r} has characters GS1 does not allow: {''.join(bad)!r}")
    return text


def parse_sgtin(uri: str) -> ItemKey:
    """An EPC pure-identity SGTIN URI as an ItemKey."""
    match = _SGTIN.match(uri)
    if match is None:
        raise Gs1Error(f"{uri!r} is not an SGTIN URI: urn:epc:id:sgtin:CompanyPrefix.IndicatorItemRef.Serial")
    prefix, indicator_ref, serial = match.groups()
    if not 6 <= len(prefix) <= 12 or len(prefix) + len(indicator_ref) != 13:
        raise Gs1Error(
            f"{uri!r} is not an SGTIN URI: the company prefix has 6 to 12 digits and, with the indicator and "
            "item reference, 13 digits"
        )
    body = indicator_ref[0] + prefix + indicator_ref[1:]
    gtin = body + str(check_digit(body))
    return ItemKey(gtin=gtin, serial=_serial(serial, escaped=True))


def parse_digital_link(url: str) -> ItemKey:
    """A GS1 Digital Link URI (``/01/{gtin}/21/{serial}`` on any host) as an ItemKey."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise Gs1Error(f"{url!r} is not a URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise Gs1Error(f"{url!r} is not a Digital Link: it must be an http(s) URL")
    segments = parts.path.split("/")
    for i, segment in enumerate(segments):
        if segment.lower() in _PRIMARY and i + 1 < len(segments):
            break
    else:
        raise Gs1Error(f"{url!r} is not a GS1 Digital Link: its path has no /01/{{GTIN}}")
    gtin = normalize_gtin(unquote(segments[i + 1]))
    pairs = segments[i + 2 :]
    for j in range(0, len(pairs) - 1, 2):
        if pairs[j].lower() in _SERIAL:
            return ItemKey(gtin=gtin, serial=_serial(pairs[j + 1], escaped=True))
    raise Gs1Error(
        f"{url!r} names a product (GTIN {gtin}) but no serial number: an individual item needs /21/{{serial}}"
    )


def parse_element_string(text: str) -> ItemKey:
    """A human-readable element string with AI (01) and (21) as an ItemKey."""
    match = _ELEMENT.match(text)
    if match is None:
        raise Gs1Error(f"{text!r} is not a GS1 element string with (01) GTIN-14 and (21) serial number")
    return ItemKey(gtin=normalize_gtin(match.group(1)), serial=_serial(match.group(2), escaped=False))


def parse_item_key(text: str) -> ItemKey | None:
    """The item a GS1 name designates; None if ``text`` is not meant as one, :class:`Gs1Error` if malformed."""
    lowered = text.lower()
    if lowered.startswith("urn:epc:"):
        if not lowered.startswith(SGTIN_PREFIX):
            raise Gs1Error(f"{text!r} is an EPC URI but not of an item with a serial number (urn:epc:id:sgtin:...)")
        return parse_sgtin(text)
    if lowered.startswith(("http://", "https://")):
        return parse_digital_link(text)
    if text.startswith("(01)"):
        return parse_element_string(text)
    return None


def key_of_uri(uri: str) -> ItemKey | None:
    """The ItemKey of a registered URI, or None when it is not a well-formed GS1 item name."""
    try:
        return parse_item_key(uri)
    except Gs1Error:
        return None
