"""The outermost layer of the served API: a request id and the request metrics, for every answer.

:class:`Observed` wraps :func:`api.main.serving_app`'s stack (in front of the request gate, so the gate's
own refusals and the eligibility shortcut's answers are counted and carry the id too). Invariants:

- **Every answer carries ``X-Request-ID``**: the caller's, when it is 1 to 128 characters of
  ``A-Z a-z 0-9 . _ : -`` (a proxy's or a client's id, passed along), else a new random one. The id is bound
  to structlog's context variables for the request: every log line written while answering it, the
  transaction sender's included (routes run it in worker threads, which copy the context), carries
  ``request_id``.
- **How current the index is**: ``X-Index-Block`` and, while ``/readyz`` fails, ``X-Index-Stale``, from the
  application's ``state.freshness`` (:class:`api.staleness.IndexFreshness`, refreshed in the background).
- **Bounded labels**: each request is observed once in ``ledger_http_request_duration_seconds`` with its
  route's template (``/v1/returns/{return_id}``, not the path), method and status; a path no route
  matches is ``<unmatched>``. An answer never started (the client left, the worker died) is status 0.
"""

from __future__ import annotations

import itertools
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.datastructures import State
from starlette.routing import Mount, compile_path

from ledger_service.metrics.http import HTTP_IN_FLIGHT, HTTP_REQUEST_SECONDS

if TYPE_CHECKING:  # for the annotation only: the object comes from the application's state
    from api.staleness import IndexFreshness

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HEADER = "x-request-id"
ROUTE_TEMPLATE = "ledger.route_template"
"""A scope key a layer that answers before FastAPI's routing (the eligibility shortcut) sets to its route's
template."""
UNMATCHED = "<unmatched>"
_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# A new id is this process's random prefix and a counter: unique across processes and restarts, and without a
# call to the system's random source per request (os.urandom took tens of microseconds a call on a loaded host).
_PREFIX = uuid.uuid4().hex[:16]
_serial = itertools.count(1)


def request_id_of(scope: Scope) -> str:
    """The caller's ``X-Request-ID`` if it is well-formed, else a new one."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = str(value.decode("latin-1"))
            if _VALID_ID.fullmatch(text):
                return text
            break
    return f"{_PREFIX}{next(_serial):016x}"


class Observed:
    """See the module docstring. ``app`` is the stack to serve, ``api`` the FastAPI application at its bottom
    (its routes name the templates)."""

    def __init__(self, app: ASGIApp, *, api: FastAPI) -> None:
        self.app = app
        self.api = api
        self._children: dict[tuple[str, str, str], Any] = {}
        """The histogram's series by (route, method, status): ``labels()`` looked up once per series."""
        self._freshness: IndexFreshness | None = getattr(api.state, "freshness", None)
        self._table: (
            tuple[dict[tuple[str, str], str], list[tuple[re.Pattern[str], frozenset[str] | None, str]]] | None
        ) = None

    @property
    def state(self) -> State:
        """The application's state (its settings, store and chain client), as the layers below expose it."""
        return self.api.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        header = (b"x-request-id", request_id.encode("latin-1"))
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                fresh = () if self._freshness is None else self._freshness.headers(time.time())
                message["headers"] = [*message.get("headers", ()), header, *fresh]
            await send(message)

        began = time.perf_counter()
        HTTP_IN_FLIGHT.inc()
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)
            HTTP_IN_FLIGHT.dec()
            key = (self.template(scope), scope["method"], str(status))
            series = self._children.get(key)
            if series is None:
                series = self._children[key] = HTTP_REQUEST_SECONDS.labels(*key)
            series.observe(time.perf_counter() - began)

    def template(self, scope: Scope) -> str:
        """The template of the route that answers ``scope`` (see the module docstring)."""
        known = scope.get(ROUTE_TEMPLATE)
        if isinstance(known, str):
            return known
        static, dynamic = self._routes()
        path, method = scope.get("path", ""), scope.get("method", "")
        found = static.get((method, path)) or static.get(("", path))
        if found is not None:
            return found
        other_method = None
        for pattern, methods, template in dynamic:
            if pattern.fullmatch(path):
                if methods is None or method in methods:
                    return template
                other_method = other_method or template  # a 405: still that route's
        return other_method or static.get(("*", path)) or UNMATCHED

    def _routes(self) -> tuple[dict[tuple[str, str], str], list[tuple[re.Pattern[str], frozenset[str] | None, str]]]:
        """The application's routes in routing order: (method or "", path) of the fixed paths, and the patterns
        of the others (a mount matches its path and everything below it)."""
        if self._table is None:
            static: dict[tuple[str, str], str] = {}
            dynamic: list[tuple[re.Pattern[str], frozenset[str] | None, str]] = []
            for context in iter_route_contexts(self.api.router.routes):
                path = context.path_format or context.path
                if path is None:
                    continue
                methods = frozenset(context.methods) if context.methods else None
                if isinstance(context.original_route, Mount):
                    prefix = path.removesuffix("/{path}").rstrip("/")
                    dynamic.append((re.compile(re.escape(prefix) + "(/.*)?"), None, prefix + "/{path}"))
                elif "{" not in path:
                    for method in methods or {""}:
                        static.setdefault((method, path), path)
                    static.setdefault(("*", path), path)  # another method: a 405 of that route
                else:
                    dynamic.append((compile_path(path)[0], methods, path))
            self._table = (static, dynamic)
        return self._table
