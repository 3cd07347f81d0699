"""A document store backed by a Kubo (go-ipfs) node, over its HTTP RPC API, with httpx.

Calls (all ``POST``, as Kubo's RPC requires):
- ``/api/v0/add``: the document as a multipart file, with ``ipfs add``'s defaults spelled out
  (``cid-version=0``, ``raw-leaves=false``, ``chunker=size-262144``, ``hash=sha2-256``, no trickle) so
  a node whose ``Import.*`` configuration changed them still gives the CID we computed; not pinned yet;
- ``/api/v0/pin/add?arg=<cid>``: pins the document once Kubo's ``Hash`` equals our own CID, so the
  node never keeps a document under an address we did not check;
- ``/api/v0/cat?arg=<cid>&offline=true``: the bytes, which are re-hashed before anyone gets them
  (``offline``: a document this node does not hold is missing here, not searched for on the network).

Why not ``ipfshttpclient``: its last release (0.7) refuses any daemon of version 0.8.0 or newer
at ``connect()``, and Kubo is far past that; three RPC calls over httpx need no client library.

Kubo keeps no content type, so the documents' sizes and content types are kept in JSON sidecars
under ``metadata_root`` (``meta/<xx>/<cidv1>.json``). Errors: Kubo unreachable, timing out or
answering 5xx is a :class:`RetryableError` naming the URL; a node that stores the document under
another CID or serves other bytes is a :class:`DocumentIntegrityError`; an answer that is not
Kubo's RPC (a 404 from a gateway port, say) is a :class:`ConfigurationError`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import structlog

from ledger_service.documents._files import (
    copy_hashing,
    read_sidecar,
    shard,
    status_by_reading,
    temp_file,
    unlink_quietly,
    write_sidecar,
)
from ledger_service.documents.cid import CHUNK_SIZE, Cid, cid_of_bytes
from ledger_service.documents.interface import DocumentStatus, StoredDocument
from ledger_service.errors import (
    ConfigurationError,
    DocumentIntegrityError,
    NotFoundError,
    RetryableError,
)

ADD_PARAMS: dict[str, str] = {
    "cid-version": "0",
    "raw-leaves": "false",
    "chunker": f"size-{CHUNK_SIZE}",
    "hash": "sha2-256",
    "trickle": "false",
    "pin": "false",
    "progress": "false",
}
"""``/api/v0/add`` parameters: ``ipfs add``'s defaults, explicit (pinning follows the CID check)."""

_NOT_FOUND = re.compile(r"not found|could not find|no link named", re.IGNORECASE)
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
log = structlog.get_logger(__name__)


class KuboDocumentStore:
    """Documents in the Kubo node whose RPC API is at ``api_url`` (e.g. ``http://127.0.0.1:5001``)."""

    def __init__(self, api_url: str, metadata_root: Path, *, timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> None:
        self.api_url = api_url.rstrip("/")
        self.metadata_root = Path(metadata_root)
        self._client = httpx.Client(base_url=self.api_url, timeout=timeout)

    def __repr__(self) -> str:
        return f"KuboDocumentStore({self.api_url!r})"

    def close(self) -> None:
        """Closes the HTTP connections."""
        self._client.close()

    def _sidecar_path(self, cid: Cid) -> Path:
        return shard(self.metadata_root / "meta", cid) / f"{cid.v1}.json"

    # ---- the DocumentStore protocol ----------------------------------------------------------

    def put(self, chunks: Iterable[bytes], *, content_type: str, max_bytes: int | None = None) -> StoredDocument:
        """Adds the concatenation of ``chunks`` to the node, checks the CID it gives, and pins it."""
        fd, temp = temp_file(self.metadata_root / "incoming")
        try:
            with os.fdopen(fd, "w+b") as spool:
                builder = copy_hashing(chunks, spool, max_bytes=max_bytes)
                spool.seek(0)
                cid = builder.finish()
                answer = self._post(
                    "add",
                    params=ADD_PARAMS,
                    files={"file": ("document", spool, "application/octet-stream")},
                )
        finally:
            unlink_quietly(temp)
        added = _last_json_line(answer, url=self._url("add"))
        if added.get("Hash") != cid.v0:
            raise DocumentIntegrityError(
                f"the IPFS node at {self.api_url} stored the document as {added.get('Hash')!r}, "
                f"not as {cid.v0} (its `ipfs add` settings differ from the defaults); it was not pinned"
            )
        pinned = _json_object(self._post("pin/add", params={"arg": cid.v0}).content, url=self._url("pin/add"))
        if cid.v0 not in (pinned.get("Pins") or []):
            raise DocumentIntegrityError(f"the IPFS node at {self.api_url} did not pin {cid.v0}: {pinned!r}")
        sidecar = self._sidecar_path(cid)
        write_sidecar(sidecar, size=builder.size, content_type=content_type)
        stored = read_sidecar(sidecar)
        return StoredDocument(cid=cid, size=builder.size, content_type=stored[1] if stored else content_type)

    def stat(self, cid: Cid) -> StoredDocument | None:
        """Size and content type of a document added through this service (from the local sidecar)."""
        meta = read_sidecar(self._sidecar_path(cid))
        if meta is None:
            return None
        return StoredDocument(cid=cid, size=meta[0], content_type=meta[1])

    def read(self, cid: Cid) -> bytes:
        """The bytes of ``cid`` from the node, re-hashed (NotFoundError / DocumentIntegrityError)."""
        meta = read_sidecar(self._sidecar_path(cid))
        limit = meta[0] + 1 if meta is not None else None  # a node serving more than the size is wrong
        data = self._cat(cid, limit=limit)
        actual = cid_of_bytes(data)
        if actual != cid:
            raise DocumentIntegrityError(
                f"the IPFS node at {self.api_url} served {len(data)} bytes for {cid.v0} that hash to "
                f"{actual.v0}; they are not served"
            )
        return data

    def check(self, cid: Cid) -> DocumentStatus:
        """Whether the node holds ``cid`` and serves its bytes intact."""
        return status_by_reading(self.read, cid)

    def remove(self, cid: Cid) -> None:
        """Unpins the document (the node's garbage collection frees it) and drops its metadata."""
        url = self._url("pin/rm")
        try:
            response = self._client.post("/api/v0/pin/rm", params={"arg": cid.v0})
        except httpx.TimeoutException:
            raise RetryableError(f"the IPFS node at {url} did not answer in time") from None
        except httpx.TransportError as exc:
            log.warning("ipfs node unreachable", url=url, error_type=type(exc).__name__)
            raise RetryableError(f"cannot reach the IPFS node at {url}") from None
        # Kubo answers 500 "not pinned or pinned indirectly" for a document it does not hold pinned
        if not (response.status_code == 500 and "not pinned" in _error_message(response)):
            _raise_for_status(response, url=url)
        unlink_quietly(self._sidecar_path(cid))

    # ---- RPC -----------------------------------------------------------------------------------

    def _url(self, command: str) -> str:
        return f"{self.api_url}/api/v0/{command}"

    def _post(self, command: str, *, params: dict[str, str], files: Any = None) -> httpx.Response:
        try:
            response = self._client.post(f"/api/v0/{command}", params=params, files=files)
        except httpx.TimeoutException:
            raise RetryableError(f"the IPFS node at {self._url(command)} did not answer in time") from None
        except httpx.TransportError as exc:
            log.warning("ipfs node unreachable", url=self._url(command), error_type=type(exc).__name__)
            raise RetryableError(f"cannot reach the IPFS node at {self._url(command)}") from None
        _raise_for_status(response, url=self._url(command))
        return response

    def _cat(self, cid: Cid, *, limit: int | None) -> bytes:
        url = self._url("cat")
        try:
            with self._client.stream("POST", "/api/v0/cat", params={"arg": cid.v0, "offline": "true"}) as response:
                if response.status_code >= 400:
                    response.read()
                    if response.status_code == 500 and _NOT_FOUND.search(_error_message(response)):
                        raise NotFoundError(f"no document {cid.v0} on the IPFS node")
                    _raise_for_status(response, url=url)
                data = bytearray()
                for piece in response.iter_bytes():
                    data += piece
                    if limit is not None and len(data) > limit:
                        break
                return bytes(data)
        except httpx.TimeoutException:
            raise RetryableError(f"the IPFS node at {url} did not answer in time") from None
        except httpx.TransportError as exc:
            log.warning("ipfs node unreachable", url=url, error_type=type(exc).__name__)
            raise RetryableError(f"cannot reach the IPFS node at {url}") from None


def _error_message(response: httpx.Response) -> str:
    """Kubo's error text: ``{"Message": ..., "Code": ..., "Type": "error"}``, or the raw body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict) and isinstance(body.get("Message"), str):
        return str(body["Message"])
    return response.text[:300]


def _raise_for_status(response: httpx.Response, *, url: str) -> None:
    status = response.status_code
    if status < 400:
        return
    message = _error_message(response)
    if status >= 500:
        log.warning("ipfs node failed", url=url, status=status, message=message[:300])
        raise RetryableError(f"the IPFS node at {url} failed ({status}); the detail is in the service's log")
    raise ConfigurationError(
        f"the IPFS node at {url} refused the call ({status}): {message}; LEDGER_IPFS_API_URL must be a Kubo "
        "RPC API (port 5001 by default, not the gateway)"
    )


def _json_object(content: bytes, *, url: str) -> dict[str, Any]:
    try:
        value = json.loads(content)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ConfigurationError(f"{url} did not answer like Kubo's RPC API (expected a JSON object)")
    return value


def _last_json_line(response: httpx.Response, *, url: str) -> dict[str, Any]:
    """The last object of an NDJSON answer (``add`` writes one line per file, the file last)."""
    lines = [line for line in response.content.splitlines() if line.strip()]
    if not lines:
        raise ConfigurationError(f"{url} gave an empty answer (expected Kubo's {{Name, Hash, Size}})")
    return _json_object(lines[-1], url=url)
