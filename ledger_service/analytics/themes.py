"""Themes of free-text return comments in Chinese and English (pure, no I/O).

A comment's *terms* are what the rollup counts (one per comment, however often it repeats):

- ``theme:<name>`` for each keyword cluster of :data:`THEMES` the comment matches (a cluster joins the
  Chinese and English ways of saying one thing: "too small", "偏小", "runs small");
- the comment's own words, so that what no cluster foresaw still shows: English words of three letters or
  more that are not stop words (a plural "s" dropped), and Chinese character bigrams (no segmentation
  needed, as the assistant's character n-grams) that contain no function character.

The tokenisation follows the assistant's (NFKC, lower case, whitespace collapsed); it is written here again
rather than imported because the assistant sits above this package.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

THEMES: Mapping[str, tuple[tuple[str, str], tuple[str, ...]]] = {
    "too_small": (("too small", "偏小"), ("too small", "runs small", "tight", "偏小", "太小", "小了", "紧")),
    "too_large": (("too large", "偏大"), ("too big", "too large", "runs large", "loose", "偏大", "太大", "大了")),
    "broken": (("arrived broken", "到货破损"), ("broken", "cracked", "smashed", "破", "碎", "裂", "坏了")),
    "packaging": (("poor packaging", "包装差"), ("packaging", "box", "包装", "盒子")),
    "quality": (("poor quality", "质量差"), ("quality", "cheap", "flimsy", "质量", "做工", "起球")),
    "colour": (("colour differs", "颜色不符"), ("color", "colour", "颜色", "色差")),
    "late": (("arrived late", "到货太慢"), ("late", "slow", "delay", "太慢", "迟", "延误")),
    "not_working": (("does not work", "无法使用"), ("doesn't work", "not working", "stopped", "不能用", "坏", "故障")),
    "wrong_item": (("wrong item", "发错货"), ("wrong item", "different item", "发错", "不是我买的")),
}
"""Keyword clusters: name -> ((English label, Chinese label), keywords in either language)."""

STOP_WORDS = frozenset(
    [
        "the",
        "and",
        "for",
        "but",
        "with",
        "this",
        "that",
        "was",
        "were",
        "are",
        "have",
        "has",
        "had",
        "not",
        "you",
        "your",
        "our",
        "its",
        "it's",
        "i'm",
        "can",
        "could",
        "would",
        "should",
        "just",
        "very",
        "too",
        "really",
        "also",
        "them",
        "they",
        "then",
        "than",
        "from",
        "into",
        "onto",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "how",
        "all",
        "any",
        "some",
        "one",
        "two",
        "get",
        "got",
        "want",
        "need",
        "like",
        "been",
        "being",
        "there",
        "here",
        "about",
        "after",
        "before",
        "please",
        "thanks",
        "thank",
        "item",
        "order",
        "return",
        "returned",
        "returning",
    ]
)
_FUNCTION_CHARS = frozenset("的了是我你他她它们在有和就都也很想要这那个一吗呢吧啊呀把被给让还")
_WORD = re.compile(r"[a-z][a-z']{2,}")
_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
MAX_TERM = 48
_THEME_PATTERNS = tuple((name, re.compile("|".join(map(re.escape, words)))) for name, (_, words) in THEMES.items())
"""Each cluster's keywords as one pattern: found anywhere in the normalised text, as a substring test would."""


def normalise(text: str) -> str:
    """NFKC, lower case, whitespace collapsed (the assistant's form)."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def terms(text: str) -> list[str]:
    """The comment's distinct terms, themes first, in a stable order."""
    norm = normalise(text)
    if not norm:
        return []
    found = [f"theme:{name}" for name, pattern in _THEME_PATTERNS if pattern.search(norm)]
    words: list[str] = []
    for word in _WORD.findall(norm):
        word = word.strip("'")
        if word in STOP_WORDS or len(word) < 3:
            continue
        if len(word) > 4 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        words.append(word)
    for run in _HAN_RUN.findall(norm):
        words.extend(
            run[i : i + 2]
            for i in range(len(run) - 1)
            if run[i] not in _FUNCTION_CHARS and run[i + 1] not in _FUNCTION_CHARS
        )
    seen: dict[str, None] = dict.fromkeys(found)
    seen.update(dict.fromkeys(w[:MAX_TERM] for w in words))
    return list(seen)


def label(term: str, lang: str) -> str:
    """A term in words: a theme's label in ``lang`` (zh or en), else the term itself."""
    if term.startswith("theme:"):
        labels = THEMES.get(term.removeprefix("theme:"))
        if labels is not None:
            return labels[0][1] if lang == "zh" else labels[0][0]
    return term
