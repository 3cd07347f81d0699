"""Documents addressed by their IPFS CID: computing CIDs (:mod:`.cid`), and the stores that keep the bytes.

See :mod:`ledger_service.documents.interface` for the interface and its invariant (nothing is
served that does not hash to the CID asked for); the stores are :mod:`.local` (embedded,
the default) and :mod:`.kubo`, chosen by :func:`ledger_service.documents.factory.open_document_store`.
This package's own namespace holds only the pure parts, so that the independent verifier
(:mod:`ledger_service.independent_verifier`) can compute CIDs without loading the service.
"""

from ledger_service.documents.cid import Cid, CidBuilder, cid_of_bytes, cid_of_chunks, cid_of_file, cid_of_stream
from ledger_service.documents.interface import DocumentStatus, DocumentStore, StoredDocument

__all__ = [
    "Cid",
    "CidBuilder",
    "DocumentStatus",
    "DocumentStore",
    "StoredDocument",
    "cid_of_bytes",
    "cid_of_chunks",
    "cid_of_file",
    "cid_of_stream",
]
