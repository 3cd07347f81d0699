"""ledger-batcher: seals acknowledged scans into Merkle batches and anchors them on BatchAnchor (issue #23)."""

from ledger_service.batcher.worker import Batcher, TurnStats

__all__ = ["Batcher", "TurnStats"]
