"""A small raw JSON-RPC client for the indexer (httpx, keep-alive, no web3 objects).

Every failure is classified by what the caller should do:

- :class:`RangeTooLarge` (retryable): the node refused an ``eth_getLogs`` range as
  too large, or the response exceeded ``max_response_bytes``; ask for a smaller range.
- :class:`BlockOutOfRange` (retryable): ``eth_getLogs`` named a block beyond the
  node's head or one it does not know, which a reorg to a shorter chain between
  the head read and the request causes on every node; read the head again.
- :class:`RpcTimeoutError` (retryable): no answer in time; for ``eth_getLogs`` the caller
  shrinks the range, for other calls the client retries.
- :class:`RetryableError`: connection errors, HTTP 429/5xx, truncated or malformed
  JSON, JSON-RPC internal/server errors. Retried here with exponential backoff and
  full jitter, capped; raised once the attempts are used up.
- :class:`RpcFatalError` (:class:`FatalError`): anything retrying cannot fix (HTTP
  401/403/404, method not found, invalid request or params).

Results are returned as parsed JSON (dicts and lists of ``0x`` hex strings); the
decoder turns logs into events without web3.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from ledger_service.core.events import BlockHeader
from ledger_service.errors import FatalError, RetryableError
from ledger_service.metrics.indexer import INDEXER_RPC_ERRORS, INDEXER_RPC_RETRIES

log = structlog.get_logger("ledger_service.indexer.rpc")


class RpcRetryableError(RetryableError):
    """A transient RPC failure (connection, HTTP 429/5xx, malformed answer, node busy)."""


class RpcTimeoutError(RpcRetryableError):
    """The node did not answer within the timeout."""


class RangeTooLarge(RpcRetryableError):  # noqa: N818 (the name the indexer's callers know)
    """The node refused a log query as too large (results, response size or block span)."""


class BlockOutOfRange(RpcRetryableError):  # noqa: N818 (named like RangeTooLarge)
    """``eth_getLogs`` asked for blocks the node does not have (any more): the chain shrank since its head was
    read, a reorg racing the request. Not retried as it is: the caller reads the head again."""


class RpcFatalError(FatalError):
    """An RPC failure that retrying cannot fix (bad URL, auth, unsupported method, bad params)."""


# Messages by which nodes and providers refuse an eth_getLogs range as too large:
# infura "query returned more than 10000 results", alchemy "Log response size exceeded ...",
# geth "exceed maximum block range: 5000", erigon "too many logs", reth "query exceeds max
# results 20000, retry with the range ...", quicknode "eth_getLogs is limited to a 10,000
# range", ankr "block range is too wide", nethermind "too many blocks", generic "limit exceeded".
_RANGE_TOO_LARGE = re.compile(
    r"returned more than|response size|response is too big|result set too large|too many (results|logs|blocks)"
    r"|max(imum)? (block )?range|block range|range (is )?too (large|wide)|exceeds? (the )?(max|limit)"
    r"|max results|limit exceeded|is limited to|query timeout|too large",
    re.IGNORECASE,
)
# Messages by which nodes refuse eth_getLogs for blocks above their head or unknown to them: anvil
# "BlockOutOfRangeError: block height is 252 but requested was 253", geth "block range extends beyond current
# head block", "header not found", geth/reth "unknown block", erigon/besu "block not found", nethermind
# "Block 253 could not be found". Checked before _RANGE_TOO_LARGE, which "block range" would match.
_BEYOND_HEAD = re.compile(
    r"BlockOutOfRange|block height is \d+ but requested|beyond (the )?(current )?head|(block|header) not found"
    r"|unknown block|block \S+ could not be found",
    re.IGNORECASE,
)
# Server-side messages that mean "try again later".
_TRANSIENT = re.compile(
    r"header not found|unknown block|not found|timeout|timed out|rate limit|too many requests|busy|try again"
    r"|capacity|overload|unavailable|internal|syncing|temporar",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry a retryable failure."""

    attempts: int = 8
    base_delay: float = 0.1
    max_delay: float = 5.0

    def delay(self, attempt: int) -> float:
        """Full-jitter exponential backoff: uniform in [0, min(max, base * 2**attempt)]."""
        return random.uniform(0.0, min(self.max_delay, self.base_delay * (2**attempt)))  # noqa: S311


def classify_error(error: Any, *, method: str) -> Exception:
    """Maps a JSON-RPC ``error`` object to the exception the caller should act on."""
    if not isinstance(error, dict):
        return RpcRetryableError(f"{method}: malformed JSON-RPC error {error!r}")
    code = error.get("code")
    message = str(error.get("message", ""))
    data = error.get("data")
    text = f"{method}: JSON-RPC error {code}: {message}" + (f" ({data})" if data else "")
    if method == "eth_getLogs" and _BEYOND_HEAD.search(message):
        return BlockOutOfRange(text)
    if method == "eth_getLogs" and (code == -32005 or _RANGE_TOO_LARGE.search(message)):
        return RangeTooLarge(text)
    if code in (-32600, -32601):  # invalid request, method not found
        return RpcFatalError(text)
    if code == -32602:  # invalid params
        return RpcFatalError(text)
    if code == -32603 or code == -32005 or code == -32700:  # internal, limit (rate), parse error
        return RpcRetryableError(text)
    if isinstance(code, int) and -32099 <= code <= -32000:
        return RpcRetryableError(text) if _TRANSIENT.search(message) or not message else RpcFatalError(text)
    if _TRANSIENT.search(message):
        return RpcRetryableError(text)
    return RpcFatalError(text)


def error_kind(exc: BaseException) -> str:
    """The ``kind`` label of a failed call in the indexer's RPC metrics."""
    if isinstance(exc, RangeTooLarge):
        return "range_too_large"
    if isinstance(exc, BlockOutOfRange):
        return "block_out_of_range"
    if isinstance(exc, RpcTimeoutError):
        return "timeout"
    if getattr(exc, "retry_after", None) is not None:
        return "rate_limited"
    if isinstance(exc, FatalError):
        return "fatal"
    return "unavailable"


def _hex(n: int) -> str:
    return hex(n)


def header_from_json(block: dict[str, Any]) -> BlockHeader:
    """The indexer's view of an ``eth_getBlockByNumber`` result."""
    try:
        return BlockHeader(
            number=int(block["number"], 16),
            hash=block["hash"].lower(),
            parent_hash=block["parentHash"].lower(),
            timestamp=int(block["timestamp"], 16),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RpcRetryableError(f"malformed block header from the node: {exc!r}") from None


Scan = Callable[[bytes, int], object | None]
"""Reads a successful answer from its bytes and the request's id (see :meth:`RpcClient.call_once`); None: declined."""


class RpcClient:
    """A keep-alive JSON-RPC client with retries. Safe to share between threads."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_response_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.max_response_bytes = max_response_bytes
        self._batches = True
        self.interrupt: threading.Event | None = None
        """When set, retries stop waiting and the call fails at once (e.g. on SIGTERM)."""
        self._ids = itertools.count(1)
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers={"content-type": "application/json", "accept": "application/json"},
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=4),
            # certificates are verified for https; a plain-http node (a local one) does not pay the ~30 ms of
            # loading the CA bundle per client (redirects are not followed, so no request can reach TLS)
            verify=not url.lower().startswith("http://"),
        )

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def fresh(self) -> RpcClient:
        """A client with the same settings and connections of its own (e.g. in a forked process)."""
        return RpcClient(self.url, timeout=self.timeout, retry=self.retry, max_response_bytes=self.max_response_bytes)

    # ---- transport ---------------------------------------------------------------

    def _post(
        self, payload: Any, *, what: str, scan: Callable[[bytes], object | None] | None = None
    ) -> tuple[Any, int]:
        """One HTTP round trip; returns (parsed JSON, response size). Raises classified errors.

        ``scan``: reads a successful answer from its bytes instead (returned as :class:`_Scanned`), or declines
        (None) and it is parsed as any other."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        try:
            with self._client.stream("POST", self.url, content=body) as response:
                status = response.status_code
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > self.max_response_bytes:
                        raise RangeTooLarge(f"{what}: response larger than {self.max_response_bytes} bytes")
                    chunks.append(chunk)
                retry_after = response.headers.get("retry-after")
        except httpx.TimeoutException as exc:
            raise RpcTimeoutError(f"{what}: no answer from {self.url} in time ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise RpcRetryableError(f"{what}: connection to {self.url} failed ({type(exc).__name__}: {exc})") from None
        except httpx.InvalidURL as exc:
            raise RpcFatalError(f"invalid RPC URL {self.url!r}: {exc}") from None
        raw = b"".join(chunks)
        del chunks
        if status == 429 or status >= 500:
            error = RpcRetryableError(f"{what}: HTTP {status} from {self.url}")
            if retry_after and retry_after.isdigit():
                error.retry_after = float(retry_after)  # type: ignore[attr-defined]
            raise error
        if scan is not None and status < 400:
            try:
                scanned = scan(raw)
            except Exception as exc:  # the scan's own verdict (e.g. a malformed log): not an RPC failure to retry
                raise _ScanError(exc) from None
            if scanned is not None:
                return _Scanned(scanned), len(raw)
        try:
            parsed = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            if status >= 400:
                raise RpcFatalError(f"{what}: HTTP {status} from {self.url}: {raw[:200]!r}") from None
            raise RpcRetryableError(f"{what}: malformed or truncated JSON from {self.url} ({len(raw)} bytes)") from None
        if status >= 400 and not (isinstance(parsed, dict | list) and _has_rpc_error(parsed)):
            raise RpcFatalError(f"{what}: HTTP {status} from {self.url}: {raw[:200]!r}")
        return parsed, len(raw)

    def _with_retries(self, fn: Any, *, what: str, immediate: tuple[type[Exception], ...] = ()) -> Any:
        attempt = 0
        while True:
            try:
                return fn()
            except immediate as exc:
                INDEXER_RPC_ERRORS.labels(error_kind(exc)).inc()
                raise
            except RetryableError as exc:
                kind = error_kind(exc)
                INDEXER_RPC_ERRORS.labels(kind).inc()
                attempt += 1
                if attempt >= self.retry.attempts:
                    raise RpcRetryableError(f"{exc} (gave up after {attempt} attempts)") from None
                delay = self.retry.delay(attempt)
                retry_after = getattr(exc, "retry_after", None)
                if isinstance(retry_after, float):
                    delay = max(delay, min(retry_after, self.retry.max_delay))
                # quiet for a blip, visible when the node stays unavailable
                emit = log.warning if attempt >= 3 else log.debug
                emit("rpc_retry", what=what, attempt=attempt, delay=round(delay, 3), error=str(exc))
                INDEXER_RPC_RETRIES.labels(kind).inc()
                if self.interrupt is None:
                    time.sleep(delay)
                elif self.interrupt.wait(delay):
                    raise RpcRetryableError(f"{exc} (interrupted while retrying)") from None

    # ---- calls -------------------------------------------------------------------

    def call_once(self, method: str, params: Sequence[Any], *, scan: Scan | None = None) -> tuple[Any, int]:
        """One attempt, no retries: (result, response bytes).

        ``scan(raw, request_id)`` reads a successful answer from its bytes: what it returns comes back wrapped in
        :class:`_Scanned` in place of the result. It returns None for an answer it does not read, which is then
        parsed and checked as usual."""
        request_id = next(self._ids)
        parsed, size = self._post(
            {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)},
            what=method,
            scan=None if scan is None else lambda raw: scan(raw, request_id),
        )
        if isinstance(parsed, _Scanned):
            return parsed, size
        if not isinstance(parsed, dict):
            raise RpcRetryableError(f"{method}: malformed JSON-RPC response (not an object)")
        if parsed.get("error") is not None:
            raise classify_error(parsed["error"], method=method)
        if "result" not in parsed or parsed.get("id") != request_id:
            raise RpcRetryableError(f"{method}: malformed JSON-RPC response (no result or wrong id)")
        return parsed["result"], size

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """A JSON-RPC call, retried on retryable failures."""
        return self._with_retries(lambda: self.call_once(method, params)[0], what=method)

    def batch_once(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """One JSON-RPC batch request, no retries; results in the order of ``calls``."""
        if not calls:
            return []
        ids = list(range(1, len(calls) + 1))  # unique within the request, which is all matching needs
        payload = [
            {"jsonrpc": "2.0", "id": rid, "method": method, "params": list(params)}
            for rid, (method, params) in zip(ids, calls, strict=True)
        ]
        what = f"batch of {len(calls)} {calls[0][0]}"
        parsed, _ = self._post(payload, what=what)
        if isinstance(parsed, dict) and parsed.get("error") is not None:
            raise classify_error(parsed["error"], method=calls[0][0])
        if not isinstance(parsed, list):
            raise RpcRetryableError(f"{what}: malformed JSON-RPC batch response (not a list)")
        by_id: dict[Any, Any] = {}
        for item in parsed:
            if isinstance(item, dict):
                by_id[item.get("id")] = item
        results: list[Any] = []
        for rid, (method, _params) in zip(ids, calls, strict=True):
            item = by_id.get(rid)
            if item is None:
                raise RpcRetryableError(f"{what}: the batch response lacks request {rid}")
            if item.get("error") is not None:
                raise classify_error(item["error"], method=method)
            if "result" not in item:
                raise RpcRetryableError(f"{what}: malformed batch item (no result)")
            results.append(item["result"])
        return results

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """A JSON-RPC batch request, retried as a whole on retryable failures."""
        results: list[Any] = self._with_retries(
            lambda: self.batch_once(calls), what=f"batch {calls[0][0] if calls else ''}"
        )
        return results

    # ---- typed helpers -------------------------------------------------------------

    def chain_id(self) -> int:
        return int(self.call("eth_chainId"), 16)

    def block_number(self) -> int:
        return int(self.call("eth_blockNumber"), 16)

    def header(self, block: int | str) -> BlockHeader | None:
        """The header of block ``block`` (a number or "latest"), None if the node does not have it."""
        tag = _hex(block) if isinstance(block, int) else block
        result = self.call("eth_getBlockByNumber", [tag, False])
        return None if result is None else header_from_json(result)

    def latest(self) -> BlockHeader:
        """The node's current head."""
        head = self.header("latest")
        if head is None:
            raise RpcRetryableError("eth_getBlockByNumber(latest) returned null")
        return head

    def headers(self, numbers: Sequence[int], *, chunk: int = 200) -> dict[int, BlockHeader]:
        """Headers of ``numbers`` by batch requests; blocks the node does not have are absent."""
        return {number: header_from_json(block) for number, block in self.blocks(numbers, chunk=chunk).items()}

    def blocks(self, numbers: Sequence[int], *, chunk: int = 200) -> dict[int, dict[str, Any]]:
        """The raw ``eth_getBlockByNumber`` answers (without transactions) of ``numbers`` by batch requests, each
        checked to be the block asked for (its number, hash and parentHash readable); blocks the node does not
        have are absent."""
        found: dict[int, dict[str, Any]] = {}
        for start in range(0, len(numbers), chunk):
            part = numbers[start : start + chunk]
            calls: list[tuple[str, Sequence[Any]]] = [("eth_getBlockByNumber", [_hex(n), False]) for n in part]
            if self._batches:
                try:
                    results = self.batch(calls)
                except RpcFatalError as exc:  # a node or provider without batch support: one call each
                    log.warning("rpc_batch_unsupported", error=str(exc))
                    self._batches = False
            if not self._batches:
                results = [self.call(method, params) for method, params in calls]
            for number, result in zip(part, results, strict=True):
                if result is not None:
                    header = header_from_json(result)
                    if header.number != number:
                        raise RpcRetryableError(f"asked for block {number}, the node answered block {header.number}")
                    found[number] = result
        return found

    def get_logs_once(
        self,
        *,
        addresses: Sequence[str],
        from_block: int,
        to_block: int,
        scan: Scan | None = None,
    ) -> tuple[Any, int]:
        """``eth_getLogs`` over [from_block, to_block] once: (raw logs, response bytes); with ``scan``, what it read
        from the answer where it did (see :meth:`call_once`), else the raw logs.

        Raises RangeTooLarge or RpcTimeoutError at once (the caller shrinks the range), BlockOutOfRange at
        once (the caller reads the head again), and other retryable errors as they come; what ``scan`` raises, as it is.
        """
        try:
            return self._get_logs_attempt(addresses, from_block, to_block, scan)
        except _ScanError as exc:
            raise exc.error from None

    def _get_logs_attempt(
        self,
        addresses: Sequence[str],
        from_block: int,
        to_block: int,
        scan: Scan | None,
    ) -> tuple[Any, int]:
        params = [{"address": list(addresses), "fromBlock": _hex(from_block), "toBlock": _hex(to_block)}]
        result, size = self.call_once("eth_getLogs", params, scan=scan)
        if isinstance(result, _Scanned):
            return result.value, size
        if not isinstance(result, list):
            raise RpcRetryableError("eth_getLogs: malformed result (not a list)")
        return result, size

    def get_logs(
        self,
        *,
        addresses: Sequence[str],
        from_block: int,
        to_block: int,
        scan: Scan | None = None,
    ) -> tuple[Any, int]:
        """``eth_getLogs`` retried on transient errors, except RangeTooLarge and RpcTimeoutError (shrink instead)
        and BlockOutOfRange (read the head again). What ``scan`` raises is raised at once, as it is (the caller
        retries a malformed log its own way)."""
        try:
            return self._with_retries(  # type: ignore[no-any-return]
                lambda: self._get_logs_attempt(addresses, from_block, to_block, scan),
                what="eth_getLogs",
                immediate=(RangeTooLarge, RpcTimeoutError, BlockOutOfRange),
            )
        except _ScanError as exc:
            raise exc.error from None


class _ScanError(Exception):
    """What a ``scan`` raised, carried past the retries (it is not an RPC failure)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True, slots=True)
class _Scanned:
    """What a ``scan`` read from an answer (see :meth:`RpcClient.call_once`)."""

    value: object


def _has_rpc_error(parsed: Any) -> bool:
    if isinstance(parsed, dict):
        return parsed.get("error") is not None
    return any(isinstance(item, dict) and item.get("error") is not None for item in parsed)
