"""Comment terms in Chinese and English: clusters join both languages, words and bigrams keep the rest."""

from __future__ import annotations

from ledger_service.analytics.themes import label, terms


def test_the_same_complaint_in_both_languages_has_one_theme() -> None:
    zh, en = terms("鞋码偏小，想换大一号"), terms("Runs SMALL, need a bigger size")
    assert "theme:too_small" in zh and "theme:too_small" in en
    assert label("theme:too_small", "zh") == "偏小" and label("theme:too_small", "en") == "too small"


def test_words_and_bigrams_without_function_words() -> None:
    assert terms("The zipper broke after two days") == ["zipper", "broke", "days"]
    assert terms("Screens arrived broken!") == ["theme:broken", "screen", "arrived", "broken"]
    found = terms("拉链坏了")
    assert "拉链" in found and "链坏" in found and all("了" not in t for t in found)
    assert terms("") == [] and terms("   ") == []
    assert len(set(terms("small small small"))) == len(terms("small small small"))
