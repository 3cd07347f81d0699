"""The Chinese catalog against the pages' sources: every English text a page shows has its Chinese, with the
same placeholders; the domain's sentences are found by their patterns."""

from __future__ import annotations

import re

import pytest

from web.catalog_texts import domain_sentences, page_texts
from web.i18n import Translator, catalog, negotiate, placeholders


def test_every_text_of_the_pages_has_its_chinese() -> None:
    messages = catalog("zh").messages
    missing = sorted(text for text in page_texts() if not messages.get(text))
    assert not missing, missing


def test_every_sentence_of_the_domain_a_page_can_show_has_its_chinese() -> None:
    """Errors' problem details and eligibility reasons, found in their sources (web.catalog_texts), each with
    sample values in its placeholders, must match a catalog pattern."""
    sentences = domain_sentences()
    assert len(sentences) > 100  # the sources were read (a moved module would otherwise pass unnoticed)
    zh = Translator("zh")
    missing = {}
    for text, where in sentences.items():
        sample = re.sub(r"\{[a-z0-9_]+\}", lambda m: f"V{len(m.group(0))}", text)
        if zh.sentence(sample).lang != "zh":
            missing[text] = where
    assert not missing, "\n".join(f"{where}: {text}" for text, where in sorted(missing.items(), key=lambda i: i[1]))


def test_translations_keep_their_placeholders() -> None:
    wrong = {m: s for m, s in catalog("zh").messages.items() if placeholders(m) != placeholders(s)}
    assert not wrong, wrong


@pytest.mark.parametrize(
    ("english", "chinese"),
    [
        ("The 30-day return window closed on 2026-11-01.", "30 天的退货期限已于 2026-11-01 结束。"),
        ("Items in the category 'underwear' cannot be returned.", "“underwear”类别的商品不能退货。"),
        (
            "the return token expired on 2026-01-02 03:04 UTC; ask the merchant for help with this purchase",
            "退货码已于 2026-01-02 03:04 UTC 过期；请联系商家处理此订单",
        ),
        (
            "EscrowDeadlinePassed: the ship-by deadline passed on 2026-11-01 12:00 UTC",
            "EscrowDeadlinePassed：ship-by 截止时间已于 2026-11-01 12:00 UTC 过去",
        ),
        (
            "document QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG is not stored here; upload it with POST "
            "/v1/documents first, then send its CID",
            "本站没有保存文件 QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG；"
            "请先用 POST /v1/documents 上传，再提交其 CID",
        ),
    ],
)
def test_domain_sentences_are_translated_with_their_values(english: str, chinese: str) -> None:
    sentence = Translator("zh").sentence(english)
    assert (sentence.text, sentence.lang) == (chinese, "zh")
    assert Translator("en").sentence(english).text == english


def test_an_unknown_sentence_stays_english_and_says_so() -> None:
    sentence = Translator("zh").sentence("Something the catalog has never seen.")
    assert (sentence.text, sentence.lang) == ("Something the catalog has never seen.", "en")


@pytest.mark.parametrize(
    ("cookie", "header", "expected"),
    [
        (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        (None, "en-US,zh;q=0.5", "en"),
        (None, "fr-FR,zh-TW;q=0.4", "zh"),
        (None, "fr", "en"),
        (None, None, "en"),
        ("zh", "en", "zh"),
        ("xx", "zh", "zh"),
        (None, "zh;q=0", "en"),
        (None, "zh;q=bad,en;q=0.1", "en"),
    ],
)
def test_the_page_language(cookie: str | None, header: str | None, expected: str) -> None:
    assert negotiate(cookie=cookie, accept_language=header) == expected
