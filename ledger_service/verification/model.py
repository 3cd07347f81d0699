"""The verdict on an item's history: what was checked, and every finding that names what is wrong.

Shared by the auditor's history (``GET /v1/items/{id}/history``) and the
consumer's check (``GET /v1/verify/{code}``). A finding always names the exact
event (by seq, and transaction where known) or document (by CID) it is about.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Severity(enum.Enum):
    """``error``: the history cannot be trusted as shown; ``warning``: nothing is wrong, but something
    could not be checked (e.g. a document the service does not hold)."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a check found."""

    kind: str
    """Stable, machine-readable: e.g. ``event-missing``, ``event-altered``, ``hash-chain-broken``,
    ``head-mismatch``, ``count-mismatch``, ``block-not-canonical``, ``document-corrupt``, ``document-missing``."""
    message: str
    """A sentence a person understands, naming the event or document."""
    severity: Severity = Severity.ERROR
    seq: int | None = None
    cid: str | None = None


@dataclass(frozen=True, slots=True)
class ItemVerdict:
    """The result of verifying one item's indexed history against the chain (and its documents)."""

    item_id: str
    index_count: int
    """Events of the item in the index."""
    index_head: str | None
    """The eventHash recomputed from the index rows (None when there are none)."""
    chain_count: int | None
    """The contract's stored count (None: the contract does not know the item)."""
    chain_head: str | None
    """The contract's stored head."""
    blocks_checked: int
    """Distinct blocks whose hash was compared with the node's canonical chain."""
    documents_checked: int
    """Document references re-hashed against their CIDs."""
    findings: tuple[Finding, ...]

    @property
    def intact(self) -> bool:
        """True when nothing of severity ``error`` was found."""
        return not any(f.severity is Severity.ERROR for f in self.findings)
