"""The one shape of a suggestion in words, shared by every package that makes them (the analytics rules and the
feedback rules), so the API and the console list them together without converting one into the other.

Pure data, no I/O: it sits in the bottom layer so sibling domain packages may both use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Suggestion:
    """One suggestion: the rule that made it, what it is about, its words, and the figures behind them."""

    rule: str
    subject: str
    text_en: str
    text_zh: str
    figures: Mapping[str, int | float | str]
