"""Verification of an item's indexed history against the chain and the stored documents.

:mod:`~ledger_service.verification.model` holds the verdict types,
:mod:`~ledger_service.verification.history` reads and checks a history, and
:mod:`~ledger_service.verification.exports` writes it as JSON, CSV or an EPCIS
2.0 JSON-LD document.

This is the service's own check, over its index (the API's audit and consumer
routes); the auditor's check of the chain alone, without the service, is
:mod:`ledger_service.independent_verifier` (``ledger-verify``).
"""

from ledger_service.verification.history import (
    AuditResult,
    HistoryEvent,
    ItemHistory,
    ItemRegistration,
    VerificationUnavailableError,
    audit_item,
    item_history,
    verify_item,
)
from ledger_service.verification.model import Finding, ItemVerdict, Severity

__all__ = [
    "AuditResult",
    "Finding",
    "HistoryEvent",
    "ItemHistory",
    "ItemRegistration",
    "ItemVerdict",
    "Severity",
    "VerificationUnavailableError",
    "audit_item",
    "item_history",
    "verify_item",
]
