"""Every sentence in both languages, with the same placeholders; every reason code and state named."""

from __future__ import annotations

import string

import pytest

from ledger_service.assistant.dataset import REASON_CODES
from ledger_service.assistant.replies import ELIGIBILITY_NAMES, REASON_NAMES, SENTENCES, STATE_NAMES, reason_name, say
from ledger_service.core.codes import ReturnState


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@pytest.mark.parametrize("key", sorted(SENTENCES))
def test_both_languages_take_the_same_fields(key: str) -> None:
    en, zh = SENTENCES[key]
    assert en.strip() and zh.strip()
    assert _fields(en) == _fields(zh)
    assert any("\u4e00" <= c <= "\u9fff" for c in zh)
    assert not any("\u4e00" <= c <= "\u9fff" for c in en)


def test_every_reason_and_state_has_words() -> None:
    assert set(REASON_NAMES) == set(REASON_CODES)
    states = {s.name.lower() for s in ReturnState if s is not ReturnState.NONE}
    assert states | {"pending_review", "request_rejected", "processing"} == set(STATE_NAMES)
    assert reason_name("wrong_size", "zh") == "尺码不合适"
    assert say("return_draft", "en", reason="x").startswith("I've drafted a return request")


def test_every_rejection_of_the_rules_has_words() -> None:
    """A draft's "would be declined" names the rules' reasons: each rejection code of the rules has words
    (the review codes only ever lead to manual review, which has its own sentence)."""
    import re
    from pathlib import Path

    import ledger_service.eligibility.rules as rules

    codes = set(re.findall(r'Reason\(\s*"([a-z_]+)"', Path(rules.__file__).read_text("utf-8")))
    assert {"window_closed", "not_delivered"} <= codes
    assert codes - {"review_reason", "review_value", "reason_missing"} == set(ELIGIBILITY_NAMES)
