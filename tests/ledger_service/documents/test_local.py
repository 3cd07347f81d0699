"""The embedded on-disk store: what goes in comes out, checked; damage is reported, never served."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger_service.documents.cid import CHUNK_SIZE, cid_of_bytes
from ledger_service.documents.interface import DocumentStatus
from ledger_service.documents.local import STALE_UPLOAD_S, LocalDocumentStore
from ledger_service.errors import DocumentIntegrityError, NotFoundError, PayloadTooLargeError
from tests.support.kubo import reference_cid


@pytest.fixture
def store(tmp_path: Path) -> LocalDocumentStore:
    return LocalDocumentStore(tmp_path / "documents")


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def pieces(data: bytes, size: int = 100_000) -> Iterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at : at + size]


def test_put_then_read_gives_the_same_bytes_under_ipfs_add_s_cid(store: LocalDocumentStore) -> None:
    data = random.Random(1).randbytes(CHUNK_SIZE + 12_345)
    stored = store.put(pieces(data), content_type="application/pdf")
    assert stored.cid.v0 == reference_cid(data).v0
    assert stored.size == len(data)
    assert stored.content_type == "application/pdf"
    assert store.read(stored.cid) == data
    assert store.stat(stored.cid) == stored
    assert store.check(stored.cid) is DocumentStatus.OK
    assert store.blob_path(stored.cid).read_bytes() == data


def test_an_empty_document_is_a_document(store: LocalDocumentStore) -> None:
    stored = store.put([], content_type="text/plain")
    assert stored.cid.v0 == reference_cid(b"").v0
    assert store.read(stored.cid) == b""


def test_storing_the_same_bytes_again_keeps_one_copy_and_the_first_content_type(
    store: LocalDocumentStore,
) -> None:
    first = store.put([b"same bytes"], content_type="text/plain")
    again = store.put([b"same ", b"bytes"], content_type="application/json")
    assert again.cid == first.cid
    assert again.content_type == "text/plain"  # what readers are served: fixed by the first upload
    assert store.stat(first.cid) == first
    assert len(files_under(store.root)) == 2  # the blob and its metadata; no temporary file left


def test_missing_document(store: LocalDocumentStore) -> None:
    cid = cid_of_bytes(b"never stored")
    assert store.stat(cid) is None
    assert store.check(cid) is DocumentStatus.MISSING
    with pytest.raises(NotFoundError, match=cid.v0):
        store.read(cid)


def test_a_blob_deleted_behind_the_store_s_back_is_missing(store: LocalDocumentStore) -> None:
    stored = store.put([b"soon gone"], content_type="text/plain")
    store.blob_path(stored.cid).unlink()
    assert store.stat(stored.cid) is None
    assert store.check(stored.cid) is DocumentStatus.MISSING
    with pytest.raises(NotFoundError):
        store.read(stored.cid)


def test_a_corrupted_blob_is_reported_not_served(store: LocalDocumentStore) -> None:
    data = b"inspection report: item conformant"
    stored = store.put([data], content_type="text/plain")
    path = store.blob_path(stored.cid)
    path.write_bytes(data.replace(b"conformant", b"damaged!!!"))
    with pytest.raises(DocumentIntegrityError) as error:
        store.read(stored.cid)
    assert stored.cid.v0 in str(error.value)
    assert store.check(stored.cid) is DocumentStatus.CORRUPT
    assert store.stat(stored.cid) is not None  # stat does not read the content


def test_a_truncated_blob_is_corrupt(store: LocalDocumentStore) -> None:
    data = random.Random(2).randbytes(CHUNK_SIZE * 2)
    stored = store.put([data], content_type="image/png")
    with store.blob_path(stored.cid).open("r+b") as blob:
        blob.truncate(CHUNK_SIZE)
    assert store.check(stored.cid) is DocumentStatus.CORRUPT


def test_a_swapped_blob_is_corrupt_even_though_it_is_a_valid_document(store: LocalDocumentStore) -> None:
    one = store.put([b"policy v1"], content_type="application/json")
    two = store.put([b"policy v2"], content_type="application/json")
    os.replace(store.blob_path(two.cid), store.blob_path(one.cid))
    with pytest.raises(DocumentIntegrityError, match=one.cid.v0):
        store.read(one.cid)


def test_uploading_the_original_again_repairs_a_corrupted_copy(store: LocalDocumentStore) -> None:
    stored = store.put([b"original"], content_type="text/plain")
    store.blob_path(stored.cid).write_bytes(b"0riginal")
    assert store.check(stored.cid) is DocumentStatus.CORRUPT
    store.put([b"original"], content_type="text/plain")
    assert store.read(stored.cid) == b"original"


def test_too_large_leaves_nothing_behind_and_stops_reading(store: LocalDocumentStore) -> None:
    consumed: list[int] = []

    def endless() -> Iterator[bytes]:
        for i in range(1000):
            consumed.append(i)
            yield b"x" * 1000

    with pytest.raises(PayloadTooLargeError, match="5000 bytes"):
        store.put(endless(), content_type="text/plain", max_bytes=5000)
    assert len(consumed) == 6  # the sixth piece crosses the limit: nothing after it is read
    assert files_under(store.root) == []


def test_exactly_the_limit_is_accepted(store: LocalDocumentStore) -> None:
    stored = store.put([b"x" * 3000, b"y" * 2000], content_type="text/plain", max_bytes=5000)
    assert stored.size == 5000


def test_a_failing_upload_leaves_nothing_behind(store: LocalDocumentStore) -> None:
    def broken() -> Iterator[bytes]:
        yield b"first part"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        store.put(broken(), content_type="text/plain")
    assert files_under(store.root) == []


def test_concurrent_puts_of_the_same_content_are_safe(store: LocalDocumentStore) -> None:
    data = random.Random(3).randbytes(3 * CHUNK_SIZE + 5)
    barrier = threading.Barrier(8)
    results: list[str] = []
    errors: list[BaseException] = []

    def upload(n: int) -> None:
        try:
            barrier.wait()
            stored = store.put(pieces(data, 50_000 + n), content_type="image/jpeg")
            results.append(stored.cid.v0)
            assert store.read(stored.cid) == data  # readable at every moment, even while others rename
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert set(results) == {reference_cid(data).v0}
    assert len(files_under(store.root)) == 2


def test_a_damaged_metadata_file_hides_the_document_until_it_is_uploaded_again(
    store: LocalDocumentStore,
) -> None:
    stored = store.put([b"{}"], content_type="application/json")
    sidecar = store.blob_path(stored.cid).with_name(stored.cid.v1 + ".json")
    sidecar.write_text("not json")
    assert store.stat(stored.cid) is None
    assert store.put([b"{}"], content_type="application/json") == stored
    assert store.stat(stored.cid) == stored


def test_a_dead_uploads_leftover_is_swept_when_a_store_opens(tmp_path: Path) -> None:
    LocalDocumentStore(tmp_path).put([b"x"], content_type="text/plain")
    incoming = tmp_path / "incoming"
    incoming.mkdir(exist_ok=True)
    stale, fresh = incoming / "stale.part", incoming / "fresh.part"
    stale.write_bytes(b"half an upload")
    fresh.write_bytes(b"an upload in progress")
    old = time.time() - STALE_UPLOAD_S - 60
    os.utime(stale, (old, old))
    LocalDocumentStore(tmp_path)
    assert not stale.exists() and fresh.exists()


def test_remove_forgets_a_document_and_is_quiet_when_it_is_missing(store: LocalDocumentStore) -> None:
    kept = store.put([b"kept"], content_type="text/plain")
    gone = store.put([b"removed"], content_type="text/plain")
    store.remove(gone.cid)
    assert store.stat(gone.cid) is None and store.check(gone.cid) is DocumentStatus.MISSING
    assert not store.blob_path(gone.cid).exists()
    store.remove(gone.cid)  # again: nothing to do
    assert store.read(kept.cid) == b"kept"
