"""Every English text the pages show, found in their sources: what ``i18n/zh.po`` must translate.

Templates: the literal argument of each ``_("...")`` call. Python: the values of :mod:`web.words`'s tables and
:data:`web.consumer.REASON_NAMES`, the analytics page's names of metrics and outcomes, the consoles' refusals
of other roles' keys, and the literal sentences the page modules pass to ``.sentence(...)``.

The domain's and the API's sentences that a page shows through :meth:`web.i18n.Translator.sentence` (an
error's problem detail, an eligibility reason) are found by :func:`domain_sentences` in
:data:`DOMAIN_SOURCES`: the text of each ``...Error(...)``, ``Reason(...)`` and ``http_problem(...)`` call and
each contract error's sentence, with every f-string value as a ``{placeholder}``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from web import audit, consumer, consumer_exchanges, merchant, merchant_analytics, merchant_business, words

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
        words.CARRIER_STATUSES,
    ):
        found.update(table.values())
    found.update(consumer.REASON_NAMES.values())
    for texts in (consumer_exchanges.STEP_TEXTS, consumer_exchanges.EXCHANGE_STATES, consumer_exchanges.NEXT_STEPS):
        found.update(texts.values())
    found.add(consumer_exchanges.UNIT_MISMATCH)
    found.update((audit.CONSOLE.refusal, merchant.CONSOLE.refusal))
    found.update(merchant_business.POLICY_RULES.values())
    found.update((*merchant_analytics.METRIC_NAMES.values(), *merchant_analytics.OUTCOME_NAMES.values()))
    found.update(merchant.SIGNAL_NAMES.values())
    found.update((words.UNKNOWN_STEP, words.UNKNOWN_DISPOSITION, words.PAYOUT_SENTENCE, words.UNIT_MISMATCH_SENTENCE))
    return found


ROOT = WEB_DIR.parent
DOMAIN_SOURCES = (
    "ledger_service/access/keys.py",
    "ledger_service/access/tokens.py",
    "ledger_service/access/_model.py",
    "ledger_service/returns",
    "ledger_service/analytics/report.py",
    "ledger_service/eligibility",
    "ledger_service/verification",
    "ledger_service/documents/cid.py",
    "ledger_service/documents/content.py",
    "ledger_service/documents/local.py",
    "ledger_service/documents/kubo.py",
    "ledger_service/store/returns.py",
    "ledger_service/feedback/ratings.py",
    "ledger_service/chain/calls.py",
    "ledger_service/chain/reverts.py",
    "ledger_service/chain/sender.py",
    "ledger_service/chain/signers.py",
    "ledger_service/chain/tokens.py",
    "api/routers/documents.py",
    "api/limits.py",
    "api/freshness.py",
    "api/problems.py",
    "api/_reverts.py",
)
"""Where the sentences a page can show come from: the domain functions the pages call and what they call, the
API's own refusals of a page's body (the gate) and the contract errors' sentences. Left out: what only a command
line or the service's start says (``ledger-admin``, the contract artifacts and manifests)."""
_SENTENCE_CALLS = ("Error", "Reason", "http_problem")


def _placeholder(node: ast.expr, taken: set[str]) -> str:
    words = re.findall(r"[a-z]+", ast.unparse(node).lower().replace("show(", "("))
    base = next((w for w in reversed(words) if w not in {"p", "exc", "self", "str", "int", "lower", "v"}), "value")
    name, n = base, 0
    while name in taken:  # a second value of the same name: {id_b} (catalog placeholders are letters and _)
        name, n = f"{base}_{'bcdefgh'[n]}", n + 1
    taken.add(name)
    return "{" + name + "}"


def _template(node: ast.expr, taken: set[str]) -> str | None:
    """The text of a string literal, an f-string (each value a placeholder) or a sum of those; else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue):
                parts.append(_placeholder(value.value, taken))
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _template(node.left, taken), _template(node.right, taken)
        return None if left is None or right is None else left + right
    return None


def _sentences_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(_SENTENCE_CALLS):
            for argument in node.args[:2]:
                text = _template(argument, set())
                if text and " " in text:  # a sentence, not a code like "item_unknown"
                    found.add(text)
        elif path.name == "_reverts.py" and isinstance(node, ast.Tuple) and len(node.elts) == 2:
            status, sentence = node.elts
            if isinstance(status, ast.Constant) and isinstance(status.value, int):
                text = _template(sentence, {"error"})
                if text:  # the problem's detail is "<ErrorName>: <sentence>"
                    found.add("{error}: " + text)
    return found


def domain_sentences() -> dict[str, str]:
    """The sentences of :data:`DOMAIN_SOURCES` (placeholders for their values) -> where each is written."""
    found: dict[str, str] = {}
    for source in DOMAIN_SOURCES:
        path = ROOT / source
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            for text in sorted(_sentences_of(file)):
                found.setdefault(text, str(file.relative_to(ROOT)))
    return found
