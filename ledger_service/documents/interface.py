"""Where documents live: the interface every document store implements.

A document is any file (photo, inspection report, label, policy text) addressed
by its IPFS CID (:mod:`ledger_service.documents.cid`); the chain records the
CID's digest. A store never returns bytes that do not hash to the CID asked for:
:meth:`DocumentStore.read` re-checks the content and raises
:class:`~ledger_service.errors.DocumentIntegrityError` instead.

Implementations: the embedded on-disk store (the default) and a Kubo node over
its HTTP RPC API (when ``LEDGER_IPFS_API_URL`` is set); :func:`open_document_store`
picks one from the settings.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from ledger_service.documents.cid import Cid


class DocumentStatus(enum.Enum):
    """What a store can say about a CID without serving it."""

    OK = "ok"
    """Present, and its bytes hash to the CID."""
    MISSING = "missing"
    """Not in this store."""
    CORRUPT = "corrupt"
    """Present, but its bytes hash to another CID (damaged or swapped)."""


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """A document in the store."""

    cid: Cid
    size: int
    content_type: str


class DocumentStore(Protocol):
    """A content-addressed store of documents."""

    def put(self, chunks: Iterable[bytes], *, content_type: str, max_bytes: int | None = None) -> StoredDocument:
        """Stores the concatenation of ``chunks`` (streamed, atomically) and returns its CID; storing the same
        bytes twice is harmless. More than ``max_bytes``: :class:`PayloadTooLargeError`, nothing stored."""
        ...

    def stat(self, cid: Cid) -> StoredDocument | None:
        """The document's size and content type, or None when the store does not hold it (no content check)."""
        ...

    def read(self, cid: Cid) -> bytes:
        """The document's bytes, checked against ``cid``: :class:`NotFoundError` when missing,
        :class:`DocumentIntegrityError` when the stored bytes hash to anything else."""
        ...

    def check(self, cid: Cid) -> DocumentStatus:
        """Whether the document is present and intact (reads and hashes it)."""
        ...

    def remove(self, cid: Cid) -> None:
        """Forgets the document (nothing happens if the store does not hold it). Only for a document stored for
        an action that then failed, and that nothing else references (see :mod:`ledger_service.returns.documents`)."""
        ...
