"""The settings pick the document store."""

from __future__ import annotations

from pathlib import Path

from pydantic import AnyHttpUrl

from ledger_service.documents.factory import open_document_store
from ledger_service.documents.kubo import KuboDocumentStore
from ledger_service.documents.local import LocalDocumentStore
from ledger_service.settings import Settings


def test_the_embedded_store_by_default(tmp_path: Path) -> None:
    store = open_document_store(Settings(documents_dir=tmp_path / "docs"))
    assert isinstance(store, LocalDocumentStore)
    assert store.root == tmp_path / "docs"


def test_kubo_when_its_url_is_set(tmp_path: Path) -> None:
    settings = Settings(documents_dir=tmp_path / "docs", ipfs_api_url=AnyHttpUrl("http://127.0.0.1:5001"))
    store = open_document_store(settings)
    assert isinstance(store, KuboDocumentStore)
    assert store.api_url == "http://127.0.0.1:5001"
    assert store.metadata_root == tmp_path / "docs"
    store.close()
