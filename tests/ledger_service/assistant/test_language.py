"""Language: Chinese, English, or another language (answered "I can help in Chinese or English")."""

from __future__ import annotations

import pytest

from ledger_service.assistant.language import detect
from ledger_service.assistant.model import AssistantModel


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("鞋码偏小，想换大一号", "zh"),
        ("杯子收到就broken了，能return吗", "zh"),
        ("size太大了😅", "zh"),
        ("arrived broken, can I get my money back?", "en"),
        ("refund?", "en"),
        ("ok", "en"),
        ("retrun plz, wrong colr", "en"),
        ("item damged", "en"),
        ("Bonjour, je voudrais retourner mes chaussures", "other"),
        ("Hola, quiero devolver mi pedido, llegó roto", "other"),
        ("Ich möchte meine Schuhe zurückgeben", "other"),
        ("Quero devolver o produto, veio quebrado", "other"),
        ("返品したいです", "other"),
        ("환불하고 싶어요", "other"),
        ("Я хочу вернуть товар", "other"),
        ("😡😡😡", "other"),
        ("12345", "other"),
    ],
)
def test_detect(model: AssistantModel, text: str, expected: str) -> None:
    assert detect(text, english_words=model.english_words) == expected
