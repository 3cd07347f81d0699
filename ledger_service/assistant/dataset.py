"""The assistant's labelled utterances (``data/en.txt``, ``data/zh.txt``) and their fixed split.

Format: a line ``## <intent> <reason>`` labels every utterance below it until the next one (``-``: no
reason code); other lines starting with ``#`` are comments; blank lines are skipped. Every utterance is
written for this project (docs/assistant.md says how).

Invariants: the split depends on an utterance's text alone (:func:`held_out`: the SHA-256 of its normalised
text, one in five held out), so adding or reordering lines never moves another line across it; the
training-data hash (:func:`data_hash`) covers the bytes of every data file, and a trained model records it.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal

DATA_DIR = Path(__file__).parent / "data"
DATA_FILES: tuple[tuple[Literal["en", "zh"], str], ...] = (("en", "en.txt"), ("zh", "zh.txt"))
HELD_OUT_ONE_IN = 5


class Intent(StrEnum):
    """What a message asks for."""

    RETURN = "return"
    EXCHANGE = "exchange"
    REFUND_STATUS = "refund_status"
    TRACKING = "tracking"
    POLICY_QUESTION = "policy_question"
    COMPLAINT = "complaint"
    OTHER = "other"


REASON_CODES: tuple[str, ...] = (
    "damaged",
    "defective",
    "wrong_item",
    "wrong_size",
    "not_as_described",
    "changed_mind",
    "other",
)
"""The return reason codes the portal offers (web/consumer.py ``REASONS``; a test keeps the two equal)."""


@dataclass(frozen=True, slots=True)
class Utterance:
    """One labelled message."""

    text: str
    lang: Literal["en", "zh"]
    intent: Intent
    reason: str | None


def normalise(text: str) -> str:
    """NFKC (full-width forms to their plain ones), lower case, inner whitespace collapsed: the form the model
    and the split see."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def parse(text: str, *, lang: Literal["en", "zh"], source: str = "<text>") -> list[Utterance]:
    """The utterances of one data file's text (ValueError naming the line when a label is unknown or a line
    comes before any label)."""
    found: list[Utterance] = []
    intent: Intent | None = None
    reason: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("## "):
            parts = line[3:].split()
            if len(parts) != 2 or parts[0] not in Intent.__members__.values():
                raise ValueError(f"{source}:{number}: expected '## <intent> <reason>', got {line!r}")
            if parts[1] != "-" and parts[1] not in REASON_CODES:
                raise ValueError(f"{source}:{number}: unknown reason code {parts[1]!r}")
            intent, reason = Intent(parts[0]), None if parts[1] == "-" else parts[1]
            continue
        if not line or line.startswith("#"):
            continue
        if intent is None:
            raise ValueError(f"{source}:{number}: an utterance before any '## <intent> <reason>' line")
        found.append(Utterance(line, lang, intent, reason))
    return found


def data_paths(directory: Path = DATA_DIR) -> list[tuple[Literal["en", "zh"], Path]]:
    return [(lang, directory / name) for lang, name in DATA_FILES]


def load(directory: Path = DATA_DIR) -> list[Utterance]:
    """Every utterance of the data files, without repeats (the first of two equal normalised texts is kept)."""
    seen: set[str] = set()
    kept: list[Utterance] = []
    for lang, path in data_paths(directory):
        for utterance in parse(path.read_text(encoding="utf-8"), lang=lang, source=path.name):
            key = normalise(utterance.text)
            if key not in seen:
                seen.add(key)
                kept.append(utterance)
    return kept


def data_hash(directory: Path = DATA_DIR) -> str:
    """SHA-256 over the data files' names and bytes: what a trained model records and is checked against."""
    digest = hashlib.sha256()
    for _, path in data_paths(directory):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def held_out(text: str) -> bool:
    """Whether an utterance belongs to the held-out split: one in :data:`HELD_OUT_ONE_IN` by the SHA-256 of its
    normalised text (deterministic, independent of file order)."""
    value = int.from_bytes(hashlib.sha256(normalise(text).encode()).digest()[:8], "big")
    return value % HELD_OUT_ONE_IN == 0


def split(utterances: Iterable[Utterance]) -> tuple[list[Utterance], list[Utterance]]:
    """(training, held-out)."""
    train: list[Utterance] = []
    test: list[Utterance] = []
    for utterance in utterances:
        (test if held_out(utterance.text) else train).append(utterance)
    return train, test


def with_reason(utterances: Sequence[Utterance]) -> list[Utterance]:
    """The utterances labelled with a reason code (what the reason classifier learns from)."""
    return [u for u in utterances if u.reason is not None]
