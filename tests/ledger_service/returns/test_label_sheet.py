"""The label's pieces that need no chain: the masked sender, the font lookup, long text wrapped to the page."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pypdfium2
import pytest

from ledger_service.core.masking import mask_address
from ledger_service.returns import label_sheet
from ledger_service.returns.label_sheet import LabelData, LabelFontMissingError, Lang, label_pdf
from ledger_service.returns.labels import label_code

CODE = label_code("0x" + "3f" * 32)
DATA = LabelData(
    code=CODE,
    sender=mask_address("0x5ea0f1b2c3d4e5f60718293a4b5c6d7e8f902176"),
    merchant="0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
    return_address="",
    tracking=None,
    verify_url=f"https://returns.example/verify/{CODE}",
)


def test_a_missing_cjk_font_is_an_error_that_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(label_sheet, "_font_ready", False)
    monkeypatch.setattr(label_sheet, "FONT_CANDIDATES", (Path("/nonexistent/wqy-microhei.ttc"),))
    with pytest.raises(LabelFontMissingError, match="fonts-wqy-microhei"):
        label_pdf(DATA)


def _text_within_page(data: LabelData, lang: Lang) -> str:
    """The label's text, after checking that no character runs off the page's right edge."""
    document = pypdfium2.PdfDocument(label_pdf(data, size="a6", lang=lang))
    try:
        page = document[0]
        text_page = page.get_textpage()
        rights = [text_page.get_charbox(i)[2] for i in range(text_page.count_chars())]
        assert max(rights) <= page.get_width()
        return str(text_page.get_text_range())
    finally:
        document.close()


@pytest.mark.parametrize(("lang", "words"), [("zh", "商家尚未公布退货地址"), ("en", "no return address")])
def test_a_missing_return_address_is_said(lang: Lang, words: str) -> None:
    assert words in _text_within_page(DATA, lang)


def test_a_long_return_address_is_wrapped_onto_the_page() -> None:
    address = "Returns dept., " + "a very long street name " * 8
    text = _text_within_page(replace(DATA, return_address=address), "en")
    assert "".join(text.split()).count("averylongstreetname") == 8
