"""The reference CID tool and a stand-in Kubo RPC server, for the document tests.

:func:`reference_cid` runs ``/usr/bin/ipfs_cid`` (Debian package ``ipfs-cid``, installed by
scripts/bootstrap.sh), an implementation of ``ipfs add``'s default CID independent of ours.

:class:`FakeKubo` is a real HTTP server on a loopback port answering the three calls of Kubo's RPC
API that :class:`~ledger_service.documents.kubo.KuboDocumentStore` makes, the way Kubo does: POST
only (405 otherwise), ``/api/v0/add`` takes a multipart file and answers ``{"Name", "Hash", "Size"}``
(one JSON line), ``/api/v0/pin/add?arg=`` answers ``{"Pins": [cid]}`` (``pin/rm`` too, and drops the
block as a garbage collection would), ``/api/v0/cat?arg=`` streams
the bytes, errors are 500 with ``{"Message", "Code", "Type": "error"}``, unknown paths a plain 404.
Its hashes come from :func:`reference_cid`, never from the service's code. No Kubo binary can be
installed here (npm's ``kubo`` package downloads it at install time), hence the stand-in.

Misbehaviours, for the error paths: ``lie_about_hash`` (``add`` answers the CID of other bytes),
``wrong_bytes`` (``cat`` serves the document with one byte changed), ``fail_status`` (every call
answers that status), ``delay`` (every call answers after that many seconds).
"""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

IPFS_CID = Path("/usr/bin/ipfs_cid")
DEFAULT_ADD = {"cid-version": "0", "raw-leaves": "false", "chunker": "size-262144", "hash": "sha2-256"}
"""``add`` parameters the stand-in accepts (with these values, or absent): ``ipfs add``'s defaults."""


@dataclass(frozen=True)
class ReferenceCid:
    v0: str
    v1: str


def reference_cid_of_file(path: Path) -> ReferenceCid:
    """The CID of ``path`` by ``/usr/bin/ipfs_cid`` (the test fails, with the fix, if it is not installed)."""
    if not IPFS_CID.exists():
        pytest.fail(f"{IPFS_CID} is missing: install Debian's ipfs-cid package (scripts/bootstrap.sh does)")
    done = subprocess.run([str(IPFS_CID), str(path)], capture_output=True, check=True, timeout=120)
    answer = json.loads(done.stdout)
    return ReferenceCid(v0=answer["CIDv0"], v1=answer["CIDv1"])


def reference_cid(data: bytes) -> ReferenceCid:
    """The CID of ``data`` by ``/usr/bin/ipfs_cid``."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data"
        path.write_bytes(data)
        return reference_cid_of_file(path)


def free_port() -> int:
    """A loopback TCP port nobody listens on (just now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class FakeKubo:
    """Start with ``with FakeKubo() as kubo: ... kubo.url``; ``blocks`` and ``pins`` show what it holds."""

    lie_about_hash: bool = False
    wrong_bytes: bool = False
    fail_status: int | None = None
    delay: float = 0.0
    blocks: dict[str, bytes] = field(default_factory=dict)
    """What was added, by CIDv0."""
    pins: set[str] = field(default_factory=set)
    calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    """(path, query parameters) of every request, in order."""
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeKubo:
        kubo = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                self._send(405, b"405 - Method Not Allowed", "text/plain")

            def do_POST(self) -> None:
                split = urlsplit(self.path)
                params = {k: v[-1] for k, v in parse_qs(split.query).items()}
                kubo.calls.append((split.path, params))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if kubo.delay:
                    time.sleep(kubo.delay)
                if kubo.fail_status is not None:
                    self._error(kubo.fail_status, "stand-in failure")
                elif split.path == "/api/v0/add":
                    self._add(params, body)
                elif split.path == "/api/v0/pin/add":
                    self._pin(params)
                elif split.path == "/api/v0/pin/rm":
                    self._unpin(params)
                elif split.path == "/api/v0/cat":
                    self._cat(params)
                else:
                    self._send(404, b"404 page not found", "text/plain")

            def _add(self, params: dict[str, str], body: bytes) -> None:
                for name, value in params.items():
                    if name in DEFAULT_ADD and value != DEFAULT_ADD[name]:
                        self._error(400, f"the stand-in computes only default CIDs, not {name}={value}")
                        return
                if params.get("trickle", "false") != "false":
                    self._error(400, "the stand-in builds balanced DAGs only")
                    return
                name, data = _multipart_file(self.headers.get("Content-Type", ""), body)
                cid = reference_cid(data).v0
                kubo.blocks[cid] = data
                if params.get("pin", "true") == "true":
                    kubo.pins.add(cid)
                answered = reference_cid(data + b"\n").v0 if kubo.lie_about_hash else cid
                line = json.dumps({"Name": name, "Hash": answered, "Size": str(len(data))}) + "\n"
                self._send(200, line.encode(), "application/json")

            def _unpin(self, params: dict[str, str]) -> None:
                cid = params.get("arg", "").removeprefix("/ipfs/")
                if cid not in kubo.pins:
                    self._error(500, "not pinned or pinned indirectly")
                    return
                kubo.pins.discard(cid)
                kubo.blocks.pop(cid, None)  # as if the node's garbage collection ran at once
                self._send(200, json.dumps({"Pins": [cid]}).encode(), "application/json")

            def _pin(self, params: dict[str, str]) -> None:
                cid = params.get("arg", "").removeprefix("/ipfs/")
                if cid not in kubo.blocks:
                    self._error(500, f"pin: block was not found locally (offline): ipld: could not find {cid}")
                    return
                kubo.pins.add(cid)
                self._send(200, json.dumps({"Pins": [cid]}).encode(), "application/json")

            def _cat(self, params: dict[str, str]) -> None:
                cid = params.get("arg", "").removeprefix("/ipfs/")
                if cid not in kubo.blocks:
                    self._error(500, f"block was not found locally (offline): ipld: could not find {cid}")
                    return
                data = kubo.blocks[cid]
                if kubo.wrong_bytes:
                    data = bytes([data[0] ^ 1]) + data[1:] if data else b"?"
                self._send(200, data, "text/plain")

            def _error(self, status: int, message: str) -> None:
                body = json.dumps({"Message": message, "Code": 0, "Type": "error"}).encode()
                self._send(status, body, "application/json")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-kubo", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _multipart_file(content_type: str, body: bytes) -> tuple[str, bytes]:
    """(file name, bytes) of the one file part of a ``multipart/form-data`` body."""
    boundary = next(
        (p.strip().removeprefix("boundary=").strip('"') for p in content_type.split(";") if "boundary=" in p), ""
    )
    delimiter = b"--" + boundary.encode()
    assert boundary and body.startswith(delimiter), f"not a multipart body: {content_type!r}"
    for part in body[len(delimiter) :].split(b"\r\n" + delimiter):
        if part.startswith(b"--"):
            break
        head, _, data = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        disposition = next(
            (line for line in head.decode().split("\r\n") if line.lower().startswith("content-disposition")), ""
        )
        if "filename=" in disposition:
            name = disposition.split("filename=", 1)[1].split(";")[0].strip().strip('"')
            return name, data
    raise AssertionError("no file part in the multipart body")
