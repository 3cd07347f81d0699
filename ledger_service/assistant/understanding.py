"""One message understood: its language, intent and reason, and whether to ask instead of guessing (pure).

Rules: a message in another language than Chinese or English is intent ``other`` with no reason (the reply
says which languages the assistant speaks). Below :data:`~ledger_service.assistant.model.INTENT_MIN_CONFIDENCE`
the intent is uncertain and the assistant asks which of its tasks is meant. A return or an exchange always
carries a reason code; below :data:`~ledger_service.assistant.model.REASON_MIN_CONFIDENCE` it asks for the
reason instead. A complaint carries one only above :data:`COMPLAINT_REASON_MIN_CONFIDENCE` (a complaint about the
service has none); the other intents never do.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ledger_service.assistant.dataset import Intent
from ledger_service.assistant.language import Language, detect
from ledger_service.assistant.model import INTENT_MIN_CONFIDENCE, REASON_MIN_CONFIDENCE, AssistantModel

REASONED = frozenset({Intent.RETURN, Intent.EXCHANGE})
COMPLAINT_REASON_MIN_CONFIDENCE = 0.6
"""A complaint's reason is optional (many are about the service): shown only above this."""


class Clarify(StrEnum):
    """What the assistant asks before it acts."""

    INTENT = "intent"
    REASON = "reason"


@dataclass(frozen=True, slots=True)
class Understanding:
    language: Language
    intent: Intent
    intent_confidence: float
    reason: str | None
    reason_confidence: float | None
    clarify: Clarify | None


def understand(text: str, model: AssistantModel) -> Understanding:
    """See the module docstring."""
    language = detect(text, english_words=model.english_words)
    if language == "other":
        return Understanding(language, Intent.OTHER, 1.0, None, None, None)
    prediction = model.predict(text)
    intent = Intent(prediction.intent.label)
    if prediction.intent.confidence < INTENT_MIN_CONFIDENCE:
        return Understanding(language, intent, prediction.intent.confidence, None, None, Clarify.INTENT)
    sure_reason = prediction.reason.confidence >= REASON_MIN_CONFIDENCE
    if intent in REASONED:
        return Understanding(
            language,
            intent,
            prediction.intent.confidence,
            prediction.reason.label,
            prediction.reason.confidence,
            None if sure_reason else Clarify.REASON,
        )
    if intent is Intent.COMPLAINT and prediction.reason.confidence >= COMPLAINT_REASON_MIN_CONFIDENCE:
        reason = prediction.reason
        return Understanding(language, intent, prediction.intent.confidence, reason.label, reason.confidence, None)
    return Understanding(language, intent, prediction.intent.confidence, None, None, None)
