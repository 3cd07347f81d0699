"""Which language a message is in: ``zh``, ``en`` or ``other`` (no I/O after the first call).

Rules, in order: kana or hangul is Japanese or Korean (other); any Han character is Chinese (consumers
mix English words into Chinese, rarely the reverse); no letters at all (emoji, digits) is other; letters
mostly outside the Latin script (Cyrillic, Arabic, Thai...) are other; Latin text is English unless
py3langid (restricted to common Latin-script languages) is confident it is another language *and* fewer
than half of its words are English words the model was trained on. Short Latin text is too ambiguous for
a language identifier ("ok", "refund?"), so it stays English: the service answers rather than refuses.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from py3langid.langid import LanguageIdentifier

Language = Literal["zh", "en", "other"]

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA_HANGUL = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_WORD = re.compile(r"[a-z']+")
LATIN_LANGUAGES = (
    "en", "fr", "es", "de", "pt", "it", "nl", "sv", "da", "no", "fi", "pl", "cs", "ro", "hu", "tr", "id", "ms",
    "vi", "tl", "sw", "ca", "hr",
)  # fmt: skip
OTHER_CONFIDENCE = 0.9


@functools.cache
def _identifier() -> LanguageIdentifier:
    # at the first message, not at the import: py3langid brings numpy (a tenth of a second of an API start)
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(LATIN_LANGUAGES))
    return identifier


def detect(text: str, *, english_words: Collection[str] = ()) -> Language:
    """The language of ``text`` (see the module docstring); ``english_words``: lower-case words known to be
    English (the training data's)."""
    if _KANA_HANGUL.search(text):
        return "other"
    if _HAN.search(text):
        return "zh"
    letters = [c for c in text if c.isalpha()]
    latin = sum(1 for c in letters if _LATIN.match(c))
    if not letters or latin * 2 <= len(letters):
        return "other"
    language, confidence = _identifier().classify(text)
    if language == "en" or confidence < OTHER_CONFIDENCE:
        return "en"
    words = _WORD.findall(text.lower())
    known = sum(1 for word in words if word in english_words)
    return "en" if words and known * 2 >= len(words) else "other"
