"""Fixtures of the verifier tests: one item with a real history on anvil, and a lying node.

``history`` registers an item with a datasheet, then records transport and an
inspection with its report as document (5 events); the documents' on-chain
digests come from the reference ``/usr/bin/ipfs_cid``, not from our CID code.
``TamperProxy`` is a loopback JSON-RPC proxy in front of anvil that rewrites
the results of chosen methods (a node that alters, drops or reorders logs, or
lies about ``itemOf``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import base58
import httpx
import pytest
from web3 import Web3

from tests.support.chain import CARRIER, INSPECTOR, MANUFACTURER, MERCHANT, ROOT, Anvil, Deployed

DEPARTING, ARRIVING, TRANSPORTING, INSPECTING = 6, 7, 8, 9
IN_TRANSIT, CONFORMANT = 3, 9
ZERO32 = b"\0" * 32
HUB = b"0860001.00100.0".ljust(32, b"\0")
LAB = b"0614141.00999.0".ljust(32, b"\0")
EVENT_COUNT = 5
INSPECTION_SEQ = 3

Rewrite = Callable[[str, list[Any], Any], Any]
"""(method, params, result) -> the result the proxy answers instead."""


def ipfs_digest(path: Path) -> bytes:
    """The sha2-256 digest inside the CIDv0 that the reference tool gives ``path``."""
    out = subprocess.run(["/usr/bin/ipfs_cid", str(path)], capture_output=True, text=True, check=True).stdout
    cid = json.loads(out[: out.index("}") + 1])["CIDv0"]
    return bytes(base58.b58decode(cid))[2:]


@dataclass
class History:
    """An item with 5 events on a real anvil, and the documents two of them reference."""

    node: Anvil
    deployed: Deployed
    uri: str
    item_id: bytes
    datasheet: Path
    inspection: Path
    unrelated: Path

    @property
    def ledger(self) -> str:
        return str(self.deployed.ledger.address)

    def args(self, *extra: str, rpc_url: str | None = None, item: str | None = None) -> list[str]:
        """Command-line arguments for this item (``extra`` appended)."""
        return ["--rpc-url", rpc_url or self.node.url, "--ledger", self.ledger, item or self.uri, *extra]


@pytest.fixture(scope="session")
def history(anvil: Anvil, deployed: Deployed, tmp_path_factory: pytest.TempPathFactory) -> History:
    folder = tmp_path_factory.mktemp("documents")
    datasheet = folder / "datasheet.json"
    datasheet.write_text(json.dumps({"gtin": "10614141007346", "name": "Trail shoe, size 42"}))
    inspection = folder / "inspection-report.pdf"
    inspection.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 2000)  # > 256 KiB: a multi-chunk DAG
    unrelated = folder / "unrelated.txt"
    unrelated.write_text("not a document of this item")
    ledger, acc = deployed.ledger.functions, deployed.accounts
    uri = f"urn:epc:id:sgtin:0614141.107346.verifier-{os.getpid()}"
    item = Web3.keccak(text=uri)

    def send(call: Any, sender: int) -> None:
        receipt = deployed.w3.eth.wait_for_transaction_receipt(call.transact({"from": acc[sender]}))
        assert receipt["status"] == 1

    send(ledger.registerItem(uri, 10614141007346, acc[MERCHANT], ipfs_digest(datasheet), HUB), MANUFACTURER)
    send(ledger.recordEvent((item, DEPARTING, IN_TRANSIT, HUB, ZERO32, b"\x0a" * 32)), CARRIER)
    send(ledger.recordEvent((item, TRANSPORTING, IN_TRANSIT, HUB, ZERO32, b"\x0a" * 32)), CARRIER)
    send(ledger.recordEvent((item, INSPECTING, CONFORMANT, LAB, ipfs_digest(inspection), ZERO32)), INSPECTOR)
    send(ledger.recordEvent((item, ARRIVING, IN_TRANSIT, LAB, ZERO32, b"\x0b" * 32)), CARRIER)
    assert ledger.itemOf(item).call()[1] == EVENT_COUNT
    return History(anvil, deployed, uri, bytes(item), datasheet, inspection, unrelated)


def run_cli(
    args: list[str], *, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """The installed console script ``ledger-verify``, as an auditor runs it."""
    script = Path(sys.executable).with_name("ledger-verify")
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=120, env=env, cwd=cwd)


class TamperProxy:
    """A JSON-RPC proxy on 127.0.0.1 that forwards to ``upstream`` and passes each result through ``rewrite``."""

    def __init__(self, upstream: str, rewrite: Rewrite) -> None:
        self.rewritten = 0
        client = httpx.Client(timeout=30.0)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers["content-length"])))
                answer = client.post(upstream, json=request).json()
                if "result" in answer:
                    result = rewrite(request["method"], request["params"], answer["result"])
                    if result != answer["result"]:
                        proxy.rewritten += 1
                    answer["result"] = result
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._client = client
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> TamperProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()


@pytest.fixture
def tamper(history: History) -> Iterator[Callable[[Rewrite], TamperProxy]]:
    """Starts TamperProxy instances in front of the history's anvil; stops them after the test."""
    started: list[TamperProxy] = []

    def start(rewrite: Rewrite) -> TamperProxy:
        proxy = TamperProxy(history.node.url, rewrite).__enter__()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.__exit__()


EVENT_TOPIC = (
    "0x"
    + bytes(
        Web3.keccak(
            text="ItemEventRecorded(bytes32,address,uint64,uint8,uint8,bytes32,bytes32,bytes32,uint64,bytes32,bytes32)"
        )
    ).hex()
)


def log_seq(log: dict[str, Any]) -> int | None:
    """The seq of an ItemEventRecorded log (None for the ItemRegistered log)."""
    return int(log["data"][2:66], 16) if log["topics"][0] == EVENT_TOPIC else None
