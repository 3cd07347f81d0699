"""How personal details are shortened before they are printed or shown to someone else: a wallet address to
its ends, a person's name to initials. Pure functions (the label and the verify page both use them)."""

from __future__ import annotations

import unicodedata

__all__ = ["is_cjk", "mask_address", "name_initials"]

COMPOUND_SURNAMES = frozenset(
    {
        "欧阳",
        "司马",
        "上官",
        "诸葛",
        "东方",
        "皇甫",
        "尉迟",
        "公孙",
        "慕容",
        "令狐",
        "夏侯",
        "长孙",
        "宇文",
        "司徒",
        "端木",
        "南宫",
    }
)
"""Two-character Chinese surnames: kept whole in initials (欧阳娜娜 -> 欧阳**), as parcel labels in China do."""


def mask_address(address: str) -> str:
    """``0x70997970c51812dc3a010c7d01b50e0d17dc79c8`` -> ``0x7099…79c8``: enough to match a parcel to a
    return, not the whole wallet address."""
    return f"{address[:6]}…{address[-4:]}" if len(address) > 12 else address


def is_cjk(ch: str) -> bool:
    """Whether ``ch`` is written in a script without spaces between names (Han, kana, Hangul)."""
    name = unicodedata.name(ch, "")
    return name.startswith(("CJK ", "HIRAGANA", "KATAKANA", "HANGUL"))


def name_initials(name: str) -> str:
    """A name as initials: ``Zhiwei Wang`` -> ``Z. W.``; a Chinese name keeps its surname and masks the rest
    one star a character, as Chinese parcel labels do (``张伟`` -> ``张*``, ``欧阳娜娜`` -> ``欧阳**``)."""
    words = name.split()
    if not words:
        return ""
    joined = "".join(words)
    if is_cjk(joined[0]):
        keep = 2 if len(joined) > 2 and joined[:2] in COMPOUND_SURNAMES else 1
        return joined[:keep] + "*" * (len(joined) - keep)
    return " ".join(f"{word[0].upper()}." for word in words)
