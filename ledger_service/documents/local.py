"""The embedded document store: a content-addressed folder on local disk.

Layout under ``root``: ``blobs/<xx>/<cidv1>`` holds a document's bytes and
``blobs/<xx>/<cidv1>.json`` its size and content type (``xx``: the CIDv1's last
two characters, which spreads documents over 32² folders).

Invariants:
- a blob path only ever holds a complete file: :meth:`LocalDocumentStore.put`
  streams into a temporary file under ``root/incoming`` (the same filesystem),
  computing the CID as it goes, fsyncs it and renames it into place
  (``os.replace``); an upload that fails or is too large leaves nothing behind;
- the metadata is written the same way, once (the first upload of some bytes
  fixes the content type recorded; the API serves the type the bytes have,
  :func:`ledger_service.documents.content.served_type`, whatever was recorded);
- the same bytes always land at the same path, so concurrent uploads of one
  document are harmless (each renames identical content over the other);
- nothing is served without being re-hashed: :meth:`read` recomputes the CID of
  the bytes on disk and raises :class:`DocumentIntegrityError` if the file was
  damaged or swapped;
- a temporary file left by a process killed mid-upload is removed when a store
  is next opened on the folder, once it is older than :data:`STALE_UPLOAD_S`
  (an upload in progress elsewhere keeps writing, so its file stays younger).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

from ledger_service.documents._files import (
    copy_hashing,
    fsync_dir,
    read_sidecar,
    shard,
    status_by_reading,
    temp_file,
    unlink_quietly,
    write_sidecar,
)
from ledger_service.documents.cid import Cid, cid_of_bytes
from ledger_service.documents.interface import DocumentStatus, StoredDocument
from ledger_service.errors import DocumentIntegrityError, NotFoundError

STALE_UPLOAD_S = 3600.0
"""Age after which a file in ``incoming/`` is a dead upload's leftover."""


class LocalDocumentStore:
    """Documents as files under ``root`` (created on first use)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._blobs = self.root / "blobs"
        self._sweep_stale_uploads()

    def _sweep_stale_uploads(self) -> None:
        cutoff = time.time() - STALE_UPLOAD_S
        try:
            leftovers = list((self.root / "incoming").iterdir())
        except OSError:
            return
        for path in leftovers:
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                continue  # another process removed or renamed it meanwhile

    def __repr__(self) -> str:
        return f"LocalDocumentStore({str(self.root)!r})"

    def blob_path(self, cid: Cid) -> Path:
        """Where the bytes of ``cid`` are (or would be) kept."""
        return shard(self._blobs, cid) / cid.v1

    def _sidecar_path(self, cid: Cid) -> Path:
        return shard(self._blobs, cid) / f"{cid.v1}.json"

    def put(self, chunks: Iterable[bytes], *, content_type: str, max_bytes: int | None = None) -> StoredDocument:
        """Stores the concatenation of ``chunks`` and returns its CID (see the module docstring)."""
        incoming = self.root / "incoming"
        fd, temp = temp_file(incoming)
        try:
            with os.fdopen(fd, "wb") as out:
                builder = copy_hashing(chunks, out, max_bytes=max_bytes)
                out.flush()
                os.fsync(out.fileno())
            cid = builder.finish()
            target = self.blob_path(cid)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, target)  # same bytes as any file already there: also repairs a damaged copy
            fsync_dir(target.parent)
        finally:
            unlink_quietly(temp)
        sidecar = self._sidecar_path(cid)
        write_sidecar(sidecar, size=builder.size, content_type=content_type)
        stored = read_sidecar(sidecar)
        return StoredDocument(cid=cid, size=builder.size, content_type=stored[1] if stored else content_type)

    def stat(self, cid: Cid) -> StoredDocument | None:
        """Size and content type of ``cid``, or None when its blob or metadata is missing (no content check)."""
        meta = read_sidecar(self._sidecar_path(cid))
        if meta is None or not self.blob_path(cid).is_file():
            return None
        return StoredDocument(cid=cid, size=meta[0], content_type=meta[1])

    def read(self, cid: Cid) -> bytes:
        """The bytes of ``cid``, re-hashed: NotFoundError when missing, DocumentIntegrityError when altered."""
        try:
            data = self.blob_path(cid).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFoundError(f"no document {cid.v0} in this store") from None
        actual = cid_of_bytes(data)
        if actual != cid:
            raise DocumentIntegrityError(
                f"the stored copy of document {cid.v0} is corrupt: its {len(data)} bytes hash to {actual.v0}; "
                "it is not served (restore it by uploading the original file again)"
            )
        return data

    def check(self, cid: Cid) -> DocumentStatus:
        """Whether ``cid`` is here and intact."""
        return status_by_reading(self.read, cid)

    def remove(self, cid: Cid) -> None:
        """Deletes the blob, then its metadata (a blob without metadata is not served: :meth:`stat` is None)."""
        unlink_quietly(self.blob_path(cid))
        unlink_quietly(self._sidecar_path(cid))
        fsync_dir(self.blob_path(cid).parent)
