"""A fault-injecting JSON-RPC proxy on 127.0.0.1, in front of a real node (anvil).

Each request is forwarded to the upstream node unless the proxy picks a fault
for it (seeded random, per-kind rates, a total budget so a test always ends):

- ``timeout``: answers only after ``delay`` seconds (longer than the client's timeout);
- ``429`` / ``500``: an HTTP error status;
- ``truncated``: announces the full Content-Length, sends half the body, closes;
- ``malformed``: a complete HTTP answer whose body is cut-off JSON;
- ``rpc_internal``: a JSON-RPC -32603 internal error;
- ``older_head``: for a few requests in a row, ``eth_blockNumber`` and
  ``eth_getBlockByNumber("latest")`` describe a block 1..3 below the real head
  (a load-balanced node that is briefly behind).

``first`` forces faults on the first eligible requests, so a short test sees each kind.
``reject_batches`` answers every batch request as a provider without batch support does.
``only_methods`` limits the random faults to requests of those methods (no batches).
Independently, ``max_log_blocks`` makes ``eth_getLogs`` refuse wider ranges with
the messages real providers use (infura, alchemy, geth, reth), as ``RangeTooLarge``,
and ``omit`` makes it lie by omission: each ``eth_getLogs`` answer's logs go
through it (e.g. :func:`drop_last`), for the first ``omit_answers`` answers it
changes (None: all), like a load-balanced node whose backends are behind.
Traffic goes only to the upstream URL given (loopback in tests).
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import httpx

FAULTS = ("timeout", "429", "500", "truncated", "malformed", "rpc_internal", "older_head")

TOO_LARGE = (
    (-32005, "query returned more than 10000 results"),  # infura
    (-32602, "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range"),  # alchemy
    (-32000, "exceed maximum block range: 5"),  # geth-style
    (-32602, "query exceeds max results 20000, retry with the range 1-2"),  # reth
)


class FaultProxy:
    """Start with ``with FaultProxy(upstream, rates={...}) as proxy: ... proxy.url``."""

    def __init__(
        self,
        upstream: str,
        *,
        rates: dict[str, float] | None = None,
        budget: int = 200,
        delay: float = 1.0,
        seed: int = 1,
        max_log_blocks: int | None = None,
        older_head_run: int = 4,
        first: Sequence[str] = (),
        reject_batches: bool = False,
        only_methods: Sequence[str] | None = None,
        omit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
        omit_answers: int | None = None,
    ) -> None:
        unknown = set(rates or {}) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {unknown}")
        self.upstream = upstream
        self.rates = dict(rates or {})
        self.budget = budget
        self.delay = delay
        self.max_log_blocks = max_log_blocks
        self.reject_batches = reject_batches
        self.older_head_run = older_head_run
        self.only_methods = None if only_methods is None else frozenset(only_methods)
        self.omit = omit
        self.omit_answers = omit_answers
        self.omitted: list[dict[str, Any]] = []
        """The logs left out of answers so far."""
        self.altered = 0
        """eth_getLogs answers changed so far."""
        self.injected: Counter[str] = Counter()
        self._first = list(first)  # faults forced on the first eligible requests, in order
        self.requests = 0
        self.methods: Counter[str | None] = Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._older_left = 0
        self._older_by = 0
        self._client = httpx.Client(timeout=30.0)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else header and body writes stall on delayed ACKs

            def log_message(self, format: str, *args: Any) -> None:  # silence
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                proxy._handle(self, body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="faultproxy", daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    # ---- fault choice --------------------------------------------------------

    def _pick(self, payload: Any) -> str | None:
        with self._lock:
            self.requests += 1
            self.methods[payload.get("method") if isinstance(payload, dict) else "batch"] += 1
            if self._older_left > 0 and _is_head_query(payload):
                self._older_left -= 1
                self.injected["older_head"] += 1
                return "older_head"
            if self._first and (self._first[0] != "older_head" or _is_head_query(payload)):
                fault = self._first.pop(0)
                if fault == "older_head":
                    self._older_left = self.older_head_run - 1
                    self._older_by = self._random.randint(1, 3)
                self.injected[fault] += 1
                return fault
            if sum(self.injected.values()) >= self.budget:
                return None
            if self.only_methods is not None and (
                not isinstance(payload, dict) or payload.get("method") not in self.only_methods
            ):
                return None
            for fault in FAULTS:
                rate = self.rates.get(fault, 0.0)
                if rate and self._random.random() < rate:
                    if fault == "older_head":
                        if not _is_head_query(payload):
                            continue
                        self._older_left = self.older_head_run - 1
                        self._older_by = self._random.randint(1, 3)
                    self.injected[fault] += 1
                    return fault
            return None

    # ---- answering -------------------------------------------------------------

    def _send(self, handler: BaseHTTPRequestHandler, status: int, body: bytes, *, length: int | None = None) -> None:
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(body) if length is None else length))
        if status == 429:
            handler.send_header("retry-after", "0")
        handler.end_headers()
        handler.wfile.write(body)
        handler.wfile.flush()

    def _forward(self, payload: Any) -> bytes:
        response = self._client.post(self.upstream, json=payload)
        return response.content

    def _handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        try:
            payload = json.loads(body)
        except ValueError:
            self._send(handler, 400, b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}')
            return
        if self.reject_batches and isinstance(payload, list):
            error = {"code": -32600, "message": "batch requests are not supported"}
            self._send(handler, 200, json.dumps({"jsonrpc": "2.0", "id": None, "error": error}).encode())
            return
        refusal = self._too_large(payload)
        if refusal is not None:
            self._send(handler, 200, refusal)
            return
        fault = self._pick(payload)
        if fault == "timeout":
            time.sleep(self.delay)
            handler.close_connection = True
            return
        if fault in ("429", "500"):
            self._send(handler, int(fault), b"busy")
            return
        if fault == "rpc_internal":
            rid = payload.get("id") if isinstance(payload, dict) else None
            error = {"jsonrpc": "2.0", "id": rid, "error": {"code": -32603, "message": "internal error"}}
            self._send(handler, 200, json.dumps(error).encode())
            return
        if fault == "older_head":
            older = self._older_head()
            if payload.get("method") == "eth_blockNumber":
                self._send(
                    handler, 200, json.dumps({"jsonrpc": "2.0", "id": payload.get("id"), "result": older}).encode()
                )
                return
            payload = {**payload, "params": [older, *payload["params"][1:]]}
        answer = self._forward(payload)
        answer = self._omitting(payload, answer)
        if fault == "truncated":
            handler.send_response(200)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(answer)))
            handler.end_headers()
            handler.wfile.write(answer[: len(answer) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "malformed":
            self._send(handler, 200, answer[: max(1, len(answer) * 2 // 3)])
            return
        self._send(handler, 200, answer)

    def _omitting(self, payload: Any, answer: bytes) -> bytes:
        """The answer, with ``omit`` applied to its logs when it is an eth_getLogs answer it may still change."""
        if self.omit is None or not isinstance(payload, dict) or payload.get("method") != "eth_getLogs":
            return answer
        parsed = json.loads(answer)
        logs = parsed.get("result")
        if not isinstance(logs, list):
            return answer
        with self._lock:
            if self.omit_answers is not None and self.altered >= self.omit_answers:
                return answer
            kept = self.omit(logs)
            if len(kept) == len(logs):
                return answer
            self.altered += 1
            kept_ids = {id(log) for log in kept}
            self.omitted.extend(log for log in logs if id(log) not in kept_ids)
        return json.dumps({**parsed, "result": kept}).encode()

    def _too_large(self, payload: Any) -> bytes | None:
        if self.max_log_blocks is None or not isinstance(payload, dict) or payload.get("method") != "eth_getLogs":
            return None
        params = payload.get("params") or [{}]
        span = int(params[0].get("toBlock", "0x0"), 16) - int(params[0].get("fromBlock", "0x0"), 16) + 1
        if span <= self.max_log_blocks:
            return None
        with self._lock:
            code, message = TOO_LARGE[self._random.randrange(len(TOO_LARGE))]
            self.injected["range_too_large"] += 1
        error = {"jsonrpc": "2.0", "id": payload.get("id"), "error": {"code": code, "message": message}}
        return json.dumps(error).encode()

    def _older_head(self) -> str:
        """The number of a block ``_older_by`` below the real head, as hex."""
        head = int(self._client.post(self.upstream, json=_request("eth_blockNumber", [])).json()["result"], 16)
        return hex(max(0, head - self._older_by))


def _request(method: str, params: Sequence[Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}


def _is_head_query(payload: Any) -> bool:
    if not isinstance(payload, dict):
        return False
    method = payload.get("method")
    params = payload.get("params") or []
    return method == "eth_blockNumber" or (method == "eth_getBlockByNumber" and params[:1] == ["latest"])


Logs = list[dict[str, Any]]


def drop_last(logs: Logs) -> Logs:
    """Leaves the answer's last log out."""
    return logs[:-1]


def drop_last_matching(match: Callable[[dict[str, Any]], bool]) -> Callable[[Logs], Logs]:
    """Leaves out the last log of the answer that ``match`` selects."""

    def omit(logs: Logs) -> Logs:
        for index in range(len(logs) - 1, -1, -1):
            if match(logs[index]):
                return logs[:index] + logs[index + 1 :]
        return logs

    return omit


def topic0_is(topic: str) -> Callable[[dict[str, Any]], bool]:
    """Selects logs whose first topic is ``topic``."""
    return lambda log: bool(log.get("topics")) and str(log["topics"][0]).lower() == topic.lower()
