"""An HTTP JSON-RPC provider that moves to the network's next RPC URL when the current one does not answer.

The API's chain reads and writes use it when the network has several URLs (``rpc_urls`` of the network's file,
or LEDGER_RPC_URLS): a node that refuses connections or times out is left for the next, in order, and the
provider stays on the one that answered. A node that answers, even with an error, is kept: only the transport
failing is a reason to move (an error answer is the chain's, and another node would give the same).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import requests
import structlog
from eth_typing import URI
from web3 import HTTPProvider
from web3.types import RPCEndpoint

log = structlog.get_logger(__name__)


class FallbackHTTPProvider(HTTPProvider):
    """Asks ``urls[i]``; on a connection failure or timeout, ``urls[i + 1]`` (wrapping around once)."""

    def __init__(self, urls: Sequence[str], **kwargs: Any) -> None:
        if not urls:
            raise ValueError("at least one RPC URL is needed")
        super().__init__(urls[0], **kwargs)
        self._urls = [URI(url) for url in urls]
        self._current = 0
        self._switch = threading.Lock()

    def _make_request(self, method: RPCEndpoint, request_data: bytes) -> bytes:
        start = self._current
        last: Exception | None = None
        for step in range(len(self._urls)):
            index = (start + step) % len(self._urls)
            url = self._urls[index]
            try:
                answer: bytes = self._request_session_manager.make_post_request(
                    url, request_data, **self.get_request_kwargs()
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = exc
                log.warning("rpc_fallback", failed=str(url), method=str(method), error=type(exc).__name__)
                continue
            if index != self._current:
                with self._switch:
                    self._current = index
                    self.endpoint_uri = url
            return answer
        assert last is not None
        raise last
