"""``open_document_store(settings)``: the store the settings ask for."""

from __future__ import annotations

from ledger_service.documents.interface import DocumentStore
from ledger_service.documents.kubo import KuboDocumentStore
from ledger_service.documents.local import LocalDocumentStore
from ledger_service.settings import Settings


def open_document_store(settings: Settings) -> DocumentStore:
    """The embedded on-disk store in ``settings.documents_dir``, or the Kubo node at ``settings.ipfs_api_url``
    (then only the documents' content types are kept in ``settings.documents_dir``)."""
    if settings.ipfs_api_url is not None:
        return KuboDocumentStore(str(settings.ipfs_api_url), settings.documents_dir)
    return LocalDocumentStore(settings.documents_dir)
