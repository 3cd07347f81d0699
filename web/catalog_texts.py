"""Every English text the pages show, found in their sources: what ``i18n/zh.po`` must translate.

Templates: the literal argument of each ``_("...")`` call. Python: the values of :mod:`web.words`'s tables and
:data:`web.consumer.REASON_NAMES`, the consoles' refusals of other roles' keys, and the literal sentences the
page modules pass to ``.sentence(...)``.
"""

from __future__ import annotations

import re
from pathlib import Path

from web import audit, consumer, merchant, merchant_business, words

WEB_DIR = Path(__file__).parent
_TEMPLATE_CALL = re.compile(r"""\b_\(\s*(?:"([^"]*)"|'([^']*)')""")
_SENTENCE_CALL = re.compile(r"""\.sentence\(\s*f?"([^"]*)"\s*\)""")
# the page modules' own texts, passed to their translator (a call of t with a literal first argument)
_TRANSLATOR_CALL = re.compile(r"""\bt\(\s*"([^"]*)"\s*[,)]""")
# the sentences of the errors the page modules raise themselves (shown through Translator.sentence)
_ERROR_CALL = re.compile(r"""Error\(\s*((?:f?"[^"]*"\s*)+)""")
_PIECE = re.compile(r'f?"([^"]*)"')


def page_texts() -> set[str]:
    """The English texts of the templates and the page modules."""
    found: set[str] = set()
    for path in (WEB_DIR / "templates").rglob("*.html"):
        found.update(a or b for a, b in _TEMPLATE_CALL.findall(path.read_text(encoding="utf-8")))
    for path in WEB_DIR.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        found.update(_SENTENCE_CALL.findall(source))
        found.update(_TRANSLATOR_CALL.findall(source))
        found.update("".join(_PIECE.findall(call)) for call in _ERROR_CALL.findall(source))
    for table in (
        words.BIZ_STEPS,
        words.DISPOSITIONS,
        words.RETURN_STATES,
        words.STATE_SENTENCES,
        words.MERCHANT_STATES,
    ):
        found.update(table.values())
    found.update(consumer.REASON_NAMES.values())
    found.update((audit.CONSOLE.refusal, merchant.CONSOLE.refusal))
    found.update(merchant_business.POLICY_RULES.values())
    found.update((words.UNKNOWN_STEP, words.UNKNOWN_DISPOSITION, words.PAYOUT_SENTENCE))
    return found
