"""A signer's sent transaction as the relayer's nonce books keep it (ledger_service/chain/nonces.py, and the
database's in ledger_service/store/sent_transactions.py, which cannot import the chain package)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SentRecord"]


@dataclass(frozen=True, slots=True)
class SentRecord:
    """One nonce's transaction as last sent (``hashes``: every hash sent for it, oldest first)."""

    nonce: int
    raw: bytes
    hashes: tuple[str, ...]
    max_fee_per_gas: int
    priority_fee_per_gas: int
    sent_at: float
    """Unix time of the first submission."""
