"""The record of each signer's sent transactions that every sender of that signer shares (the nonce manager).

A :class:`TxSender` allocates a nonce, signs, submits and records the transaction while it holds its signer in a
:class:`NonceBook`. The book the API uses is ``ledger_service.store.sent_transactions.SentTransactions``: on
PostgreSQL an advisory lock per signer and a table, so that all workers and replicas of the service share one
sequence of nonces; on SQLite a lock file beside the database (not its single writer lock, which would make every
other write wait while the holder waits on the node). :class:`LocalNonceBook` keeps the same record in
memory for a single process (tests, tools).

Invariants: at most one holder per signer at a time (across processes for a shared book); a new transaction is
recorded, durably, before it is broadcast, so a process killed at any point leaves no transaction the record lacks:
the next send of the signer finds the recorded ones the node does not know and sends them again first (one the
node refused outright is taken back, :meth:`HeldSigner.forget`); a nonce's record keeps every hash sent for it,
since a receipt may come for any of them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from ledger_service.core.transactions import SentRecord

__all__ = ["HeldSigner", "LocalNonceBook", "NonceBook", "SentRecord"]


class HeldSigner(Protocol):
    """A signer's record, while its holder alone may send for it."""

    def next_nonce(self) -> int | None:
        """One above the highest nonce recorded (None: nothing recorded)."""
        ...

    def unsettled(self) -> Sequence[SentRecord]:
        """The recorded transactions not known to be mined, by nonce."""
        ...

    def get(self, nonce: int) -> SentRecord | None: ...

    def record(self, sent: SentRecord) -> None:
        """Records a new nonce's transaction, or a replacement of a recorded one (its hashes then extended)."""
        ...

    def forget(self, nonce: int, tx_hash: str) -> None:
        """Takes back the record of a new nonce's transaction ``tx_hash`` that the node refused (a record with
        other hashes, or a mined one, is kept)."""
        ...


class NonceBook(Protocol):
    def hold(self, chain_id: int, signer: str) -> AbstractContextManager[HeldSigner]:
        """Holds ``signer`` (lowercase address) on ``chain_id`` for the ``with`` block."""
        ...

    def settle(self, chain_id: int, signer: str, nonce: int, tx_hash: str) -> None:
        """Marks ``nonce`` mined by ``tx_hash`` (no longer re-sent, no longer watched)."""
        ...


@dataclass
class _Held:
    records: dict[int, SentRecord] = field(default_factory=dict)
    next: int | None = None

    def next_nonce(self) -> int | None:
        return self.next

    def unsettled(self) -> list[SentRecord]:
        return [self.records[n] for n in sorted(self.records)]

    def get(self, nonce: int) -> SentRecord | None:
        return self.records.get(nonce)

    def record(self, sent: SentRecord) -> None:
        known = self.records.get(sent.nonce)
        kept = SentRecord(
            nonce=sent.nonce,
            raw=sent.raw,
            hashes=(known.hashes if known else ()) + sent.hashes,
            max_fee_per_gas=sent.max_fee_per_gas,
            priority_fee_per_gas=sent.priority_fee_per_gas,
            sent_at=known.sent_at if known else sent.sent_at,
        )
        self.records[sent.nonce] = kept
        self.next = max(sent.nonce + 1, self.next or 0)

    def forget(self, nonce: int, tx_hash: str) -> None:
        known = self.records.get(nonce)
        if known is not None and known.hashes == (tx_hash,):
            del self.records[nonce]
            if self.next == nonce + 1:
                self.next = nonce  # free again


class LocalNonceBook:
    """An in-memory :class:`NonceBook` for senders of one process."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._held: dict[tuple[int, str], _Held] = {}

    @contextmanager
    def hold(self, chain_id: int, signer: str) -> Iterator[HeldSigner]:
        with self._lock:
            held = self._held.setdefault((chain_id, signer), _Held())
            # a failure inside the block records nothing, as a rolled back transaction would
            snapshot, next_nonce = dict(held.records), held.next
            try:
                yield held
            except BaseException:
                held.records, held.next = snapshot, next_nonce
                raise

    def settle(self, chain_id: int, signer: str, nonce: int, tx_hash: str) -> None:
        with self._lock:
            held = self._held.get((chain_id, signer))
            if held is not None:
                held.records.pop(nonce, None)
