"""File helpers shared by the document stores: atomic writes and the metadata sidecar.

A sidecar is a small JSON object ``{"size": n, "content_type": "..."}`` kept next to
(or, for Kubo, instead of) a document's bytes. It is written atomically and never
changed once in place: the first upload of some bytes fixes the content type recorded,
whoever uploads the same bytes again. What the API serves is the type the bytes have
(:func:`ledger_service.documents.content.served_type`), so the record cannot mislabel them.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from ledger_service.documents.cid import Cid, CidBuilder
from ledger_service.documents.interface import DocumentStatus
from ledger_service.errors import DocumentIntegrityError, NotFoundError, PayloadTooLargeError

TMP_PREFIX = ".tmp-"


def shard(root: Path, cid: Cid) -> Path:
    """The folder of ``cid`` under ``root``: ``root/<last 2 characters of the CIDv1>``."""
    return root / cid.v1[-2:]


def fsync_dir(folder: Path) -> None:
    """Makes the entries of ``folder`` (a rename into it) durable."""
    with contextlib.suppress(OSError):  # some filesystems cannot open or fsync a directory
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def temp_file(folder: Path) -> tuple[int, Path]:
    """A new private temporary file in ``folder`` (created if need be): (descriptor, path)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=TMP_PREFIX, dir=folder)
    return fd, Path(name)


def unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def write_sidecar(path: Path, *, size: int, content_type: str) -> None:
    """Writes the sidecar at ``path`` unless a readable one is already there (first upload wins)."""
    if read_sidecar(path) is not None:
        return
    fd, temp = temp_file(path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(json.dumps({"size": size, "content_type": content_type}, separators=(",", ":")).encode())
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temp, path)  # atomic, and fails if a concurrent upload placed its sidecar first
        except FileExistsError:
            if read_sidecar(path) is None:  # an unreadable leftover: replace it
                os.replace(temp, path)
        except OSError:  # a filesystem without hard links: last writer wins, still atomic
            os.replace(temp, path)
        fsync_dir(path.parent)
    finally:
        unlink_quietly(temp)


def read_sidecar(path: Path) -> tuple[int, str] | None:
    """(size, content type) from the sidecar at ``path``, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    size, content_type = data.get("size"), data.get("content_type")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0 or not isinstance(content_type, str):
        return None
    return size, content_type


def status_by_reading(read: Callable[[Cid], bytes], cid: Cid) -> DocumentStatus:
    """A store's ``check``: read (which re-hashes) and say what happened."""
    try:
        read(cid)
    except NotFoundError:
        return DocumentStatus.MISSING
    except DocumentIntegrityError:
        return DocumentStatus.CORRUPT
    return DocumentStatus.OK


def copy_hashing(chunks: Iterable[bytes], out: BinaryIO, *, max_bytes: int | None) -> CidBuilder:
    """Writes ``chunks`` to ``out`` while computing their CID; :class:`PayloadTooLargeError` as soon as
    more than ``max_bytes`` arrive (the caller removes what was written)."""
    builder = CidBuilder()
    for chunk in chunks:
        if max_bytes is not None and builder.size + len(chunk) > max_bytes:
            raise PayloadTooLargeError(f"the document is larger than the limit of {max_bytes} bytes")
        builder.update(chunk)
        out.write(chunk)
    return builder
