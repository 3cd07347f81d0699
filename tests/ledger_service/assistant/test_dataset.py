"""The shipped utterances: enough of them, in both languages, for every intent and reason code the project
uses, with a split that depends on the text alone."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from ledger_service.assistant import dataset
from ledger_service.assistant.dataset import REASON_CODES, Intent, Utterance

UTTERANCES = dataset.load()


def test_at_least_1500_utterances_in_both_languages() -> None:
    by_lang = Counter(u.lang for u in UTTERANCES)
    assert len(UTTERANCES) >= 1500
    assert by_lang["en"] >= 600 and by_lang["zh"] >= 600


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_intent_and_reason_in_each_language(lang: str) -> None:
    mine = [u for u in UTTERANCES if u.lang == lang]
    intents = Counter(u.intent for u in mine)
    assert set(intents) == set(Intent)
    assert min(intents.values()) >= 40, intents
    reasons = Counter(u.reason for u in mine if u.intent is Intent.RETURN)
    assert set(reasons) == set(REASON_CODES)
    assert min(reasons.values()) >= 15, reasons
    # held out too: each language's held-out split measures every intent
    held_out = Counter(u.intent for u in mine if dataset.held_out(u.text))
    assert set(held_out) == set(Intent)


def test_no_utterance_repeats() -> None:
    keys = Counter(dataset.normalise(u.text) for u in UTTERANCES)
    raw = sum(len(dataset.parse(p.read_text("utf-8"), lang=lang)) for lang, p in dataset.data_paths())
    assert max(keys.values()) == 1
    # the files themselves hold (almost) no repeats: load() drops them, they should not be needed
    assert raw - len(UTTERANCES) <= 10, raw - len(UTTERANCES)


def test_split_depends_on_the_text_only() -> None:
    train, test = dataset.split(UTTERANCES)
    assert 0.15 <= len(test) / len(UTTERANCES) <= 0.25
    reordered_train, reordered_test = dataset.split(list(reversed(UTTERANCES)))
    assert {u.text for u in test} == {u.text for u in reordered_test}
    assert {u.text for u in train} == {u.text for u in reordered_train}
    # case, width and spacing do not move a text across the split
    assert dataset.held_out("Where is my refund?") == dataset.held_out("  WHERE is my  refund？")


def test_parse_reads_labels_and_refuses_bad_ones() -> None:
    text = "# comment\n## return wrong_size\ntoo small\n\n## tracking -\nwhere is it\n"
    assert dataset.parse(text, lang="en") == [
        Utterance("too small", "en", Intent.RETURN, "wrong_size"),
        Utterance("where is it", "en", Intent.TRACKING, None),
    ]
    with pytest.raises(ValueError, match=r"<text>:1: an utterance before"):
        dataset.parse("no label yet\n", lang="en")
    with pytest.raises(ValueError, match=r"unknown reason code 'too_big'"):
        dataset.parse("## return too_big\nx\n", lang="en")
    with pytest.raises(ValueError, match=r"expected '## <intent> <reason>'"):
        dataset.parse("## refund\nx\n", lang="en")


def test_data_hash_follows_the_bytes(tmp_path: Path) -> None:
    for _, path in dataset.data_paths():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    assert dataset.data_hash(tmp_path) == dataset.data_hash()
    en = tmp_path / "en.txt"
    en.write_text(en.read_text("utf-8") + "## other -\nhello again\n", "utf-8")
    assert dataset.data_hash(tmp_path) != dataset.data_hash()
