"""The verifier's only contact with the outside world: JSON-RPC calls over HTTP.

Connection failures and HTTP 429/5xx (500, 502, 503, 504) are retried a few times; anything
else the node answers is handed to the caller as it is: a JSON-RPC error as
:class:`RpcRefusedError` (``eth_getLogs`` callers shrink the block range on it), a
timeout as :class:`RpcTimeoutError`, and everything that makes the node unusable as
:class:`NodeError`, which the CLI reports with exit code 2.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

import httpx

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class NodeError(Exception):
    """The node cannot be used: unreachable, not speaking JSON-RPC, or refusing what the check needs."""


class RpcRefusedError(NodeError):
    """The node answered a call with a JSON-RPC error."""

    def __init__(self, method: str, code: object, message: str) -> None:
        super().__init__(f"{method}: the node answered error {code}: {message}")
        self.code = code


class RpcTimeoutError(NodeError):
    """The node did not answer in time."""


class Rpc:
    """A JSON-RPC client for one node URL (``with Rpc(url) as rpc: rpc.call("eth_chainId")``)."""

    def __init__(self, url: str, *, timeout: float = 30.0, attempts: int = 3) -> None:
        self.url = url
        self.attempts = attempts
        self._client = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)))
        self._ids = 0

    def __enter__(self) -> Rpc:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._client.close()

    def call(self, method: str, params: list[Any]) -> Any:
        """The ``result`` of one call; raises :class:`NodeError` (or a subclass) on any failure."""
        self._ids += 1
        payload = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params}
        for attempt in range(1, self.attempts + 1):
            retry: str
            try:
                response = self._client.post(self.url, json=payload)
            except httpx.TimeoutException:
                raise RpcTimeoutError(f"{method}: no answer from {self.url} in time") from None
            except httpx.TransportError as exc:
                retry = f"cannot reach {self.url} ({type(exc).__name__}: {exc})"
            except httpx.HTTPError as exc:  # invalid URL and the like
                raise NodeError(f"cannot use RPC URL {self.url!r}: {exc}") from None
            else:
                if response.status_code not in _RETRY_STATUS:
                    return _result(response, method=method, request_id=self._ids)
                retry = f"{method}: HTTP {response.status_code} from {self.url}"
            if attempt == self.attempts:
                raise NodeError(f"{retry} (tried {attempt} times)")
            time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")


def _result(response: httpx.Response, *, method: str, request_id: int) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise NodeError(f"{method}: {response.url} did not answer JSON-RPC (HTTP {response.status_code})")
    error = body.get("error")
    if error is not None:
        code, message = (error.get("code"), str(error.get("message"))) if isinstance(error, dict) else (None, error)
        raise RpcRefusedError(method, code, str(message))
    if body.get("id") != request_id or "result" not in body:
        raise NodeError(f"{method}: malformed JSON-RPC answer from {response.url} (no result or wrong id)")
    return body["result"]
