"""Chinese and English: the page's language and the message catalogs.

The language comes from the ``lang`` cookie (set by the switch on every page, :data:`LANG_COOKIE`), else from
``Accept-Language``, else English. English is the source language: templates and code write English
``msgid`` texts with ``{name}`` placeholders, and ``i18n/zh.po`` holds their Chinese (read with Babel at
import; no compiled ``.mo`` file to keep in step).

The domain's sentences (eligibility reasons, the API's problem details) are English text with values inside.
:meth:`Translator.sentence` finds the catalog entry whose ``msgid`` pattern matches the whole sentence and
fills its ``msgstr`` with the same values, so those sentences are translated from the same catalog; a sentence
the catalog does not know is shown in English, marked ``lang="en"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from babel.dates import format_date, format_datetime
from babel.messages.pofile import read_po

LANGUAGES = ("en", "zh")
DEFAULT_LANGUAGE = "en"
LANG_COOKIE = "lang"
CATALOG_DIR = Path(__file__).parent / "i18n"
_BABEL_LOCALES = {"en": "en_GB", "zh": "zh_Hans_CN"}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")


@dataclass(frozen=True)
class Catalog:
    """One language's translations: exact texts, and the patterns of those with placeholders."""

    messages: dict[str, str]
    patterns: tuple[tuple[re.Pattern[str], str], ...]


def placeholders(text: str) -> set[str]:
    """The ``{name}`` placeholders of a catalog text."""
    return set(_PLACEHOLDER.findall(text))


def _pattern(msgid: str) -> re.Pattern[str]:
    parts: list[str] = []
    last = 0
    seen: set[str] = set()
    for match in _PLACEHOLDER.finditer(msgid):
        parts.append(re.escape(msgid[last : match.start()]))
        name = match.group(1)
        parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>.+?)")
        seen.add(name)
        last = match.end()
    parts.append(re.escape(msgid[last:]))
    return re.compile("".join(parts), re.DOTALL)


@cache
def catalog(lang: str) -> Catalog:
    """The catalog of ``lang`` (empty for English, the source language)."""
    path = CATALOG_DIR / f"{lang}.po"
    if lang == DEFAULT_LANGUAGE or not path.exists():
        return Catalog(messages={}, patterns=())
    with path.open("rb") as handle:
        po = read_po(handle, locale=_BABEL_LOCALES.get(lang, lang))
    messages = {str(m.id): str(m.string) for m in po if m.id and m.string and isinstance(m.id, str)}
    # longest first: a sentence matches its most specific pattern
    with_values = sorted((m for m in messages if placeholders(m)), key=len, reverse=True)
    return Catalog(messages=messages, patterns=tuple((_pattern(m), messages[m]) for m in with_values))


def negotiate(*, cookie: str | None, accept_language: str | None) -> str:
    """The page's language: the cookie's if it names one we have, else the best of ``Accept-Language``."""
    if cookie in LANGUAGES:
        return str(cookie)
    best, best_q = DEFAULT_LANGUAGE, 0.0
    for position, item in enumerate((accept_language or "").split(",")[:20]):
        tag, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        primary = tag.strip().lower().split("-")[0]
        # earlier entries win ties, as the header lists them in the client's order
        if primary in LANGUAGES and q > best_q and q > 0:
            best, best_q = primary, q - position * 1e-6
    return best


@dataclass(frozen=True)
class Sentence:
    """A sentence for the page and the language it is in (for ``lang`` attributes)."""

    text: str
    lang: str


class Translator:
    """The texts of one page in ``lang``."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGUAGES else DEFAULT_LANGUAGE
        self._catalog = catalog(self.lang)
        self._locale = _BABEL_LOCALES[self.lang]

    def __call__(self, msgid: str, **values: object) -> str:
        """``msgid`` in the page's language, its placeholders filled with ``values``."""
        text = self._catalog.messages.get(msgid, msgid)
        return text.format(**values) if values else text

    def sentence(self, english: str) -> Sentence:
        """A domain sentence (English, with values inside) in the page's language, if the catalog knows it."""
        if self.lang == DEFAULT_LANGUAGE:
            return Sentence(english, self.lang)
        exact = self._catalog.messages.get(english)
        if exact is not None:
            return Sentence(exact, self.lang)
        for pattern, translated in self._catalog.patterns:
            match = pattern.fullmatch(english)
            if match is not None:
                return Sentence(translated.format(**match.groupdict()), self.lang)
        return Sentence(english, DEFAULT_LANGUAGE)

    def date(self, timestamp: int | None) -> str:
        """A chain timestamp as a day in the page's language (UTC)."""
        if timestamp is None:
            return ""
        return format_date(datetime.fromtimestamp(timestamp, tz=UTC), format="long", locale=self._locale)

    def moment(self, timestamp: int | None) -> str:
        """A chain timestamp as a day and time in the page's language (UTC)."""
        if timestamp is None:
            return ""
        when = datetime.fromtimestamp(timestamp, tz=UTC)
        return format_datetime(when, format="medium", tzinfo=UTC, locale=self._locale) + " UTC"
