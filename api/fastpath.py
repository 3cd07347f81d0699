"""A shortcut for the API's hot read, ``GET /v1/items/{id}/eligibility``, in front of FastAPI.

Served behind the request gate (:mod:`api.limits`, which caps every request's head first) by
:func:`api.main.serving_app`: it wraps the FastAPI application and passes it every request but one kind. It
answers the request itself only when everything is plain: a GET of exactly
``/v1/items/<0x + 64 hex>/eligibility``, no query or only one ``reason`` of at most 64 characters without
NUL, one Authorization header whose credential this process verified less than the cache's TTL ago
(:mod:`ledger_service.access._cache`). It then calls the route's own
:func:`api.routers.items.eligibility_body` with the same arguments FastAPI would pass, so a 200 body is the
route's, byte for byte. The shortcut skips FastAPI's and Starlette's middleware, routing, parameter
validation and dependency resolution: most of the CPU of a cached eligibility read.

Invariants:

- **Nothing is skipped by accident.** :data:`SKIPPABLE` is the one list of what FastAPI runs for this route
  (each middleware of the application's stack, each parameter and dependency of the route, the endpoint)
  with why the shortcut may skip it; :func:`unknown_work` names whatever FastAPI would run that the list
  does not. If there is any (a middleware or a dependency added later, FastAPI's OpenTelemetry switched
  on), the shortcut stays off and says so once in the log: every request goes to FastAPI; so does every
  request while a dependency override is set. :data:`IN_FRONT` lists the layers served in front of the
  shortcut (they run for every request); the tests check both lists against the application and
  :data:`api.main.asgi`.
- **Off by a setting.** ``LEDGER_API_ELIGIBILITY_SHORTCUT=false`` sends every request to FastAPI.
- **Errors are answered once, by the application's handler.** A refusal of the route (a
  :class:`~ledger_service.errors.LedgerError`: 401, 403, 404, 503...) is answered by the exception handler
  FastAPI would call for it (:func:`api.problems.handle`), without running the route again. Any other
  exception is a bug: logged once here (the logging of :mod:`ledger_service.logs`), then FastAPI answers the
  request, from the start.
- Anything not plain (another path or method, an unusual query, no or a not yet cached credential) goes on
  to FastAPI unchanged, which validates, authenticates and formats every error.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl

import structlog
from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State
from starlette.routing import NoMatchFound

from api.auth import cached_principal, parse_authorization
from api.deps import services_of_state
from api.observability import ROUTE_TEMPLATE
from api.routers.items import eligibility_body
from api.schemas.common import ITEM_ID, REASON_MAX_LENGTH
from ledger_service.errors import LedgerError
from ledger_service.settings import Settings

ASGIScope = dict[str, Any]
Receive = Any
Send = Any

log = structlog.get_logger("api")

ROUTE_NAME = "eligibility"

SKIPPABLE: Mapping[str, str] = {
    # the application's middleware stack, outermost first (Starlette's and FastAPI's own; no user middleware)
    "middleware starlette.middleware.errors.ServerErrorMiddleware": (
        "turns an exception no handler took into a 500; the shortcut sends only a complete 200 or a handler's "
        "answer, and hands any other exception to FastAPI, where this middleware runs"
    ),
    "middleware fastapi.telemetry._asgi.ExceptionTelemetryMiddleware": (
        "reports exceptions to FastAPI's OpenTelemetry telemetry, which is off here (telemetry switched on "
        "is work the shortcut does not know: it stays off)"
    ),
    "middleware fastapi._body_limit.AppBodyLimitMiddleware": (
        "limits the request body as it is read; the shortcut reads no body (the request gate counts one)"
    ),
    "middleware starlette.middleware.exceptions.ExceptionMiddleware": (
        "answers an exception with the application's handler for it; the shortcut calls the same handler, "
        "found the same way, for a LedgerError"
    ),
    "middleware fastapi.middleware.asyncexitstack.AsyncExitStackMiddleware": (
        "closes what dependencies with yield opened; the route has none (no other dependency is known)"
    ),
    # the route's parameters and dependencies, as FastAPI resolves them
    "path item_id": "the shortcut's path pattern is the parameter's (api.schemas.common.ITEM_ID, whole path)",
    "query reason": (
        "the shortcut takes only a query of one reason, non-empty, at most REASON_MAX_LENGTH characters, "
        "without NUL: what the parameter accepts; any other query goes to FastAPI"
    ),
    "request": "the Request object: no check, no work",
    "dependency api.deps._principal_of": (
        "the caller from the credential cache: the shortcut does the same (one Authorization header, "
        "api.auth.parse_authorization, api.auth.cached_principal) and leaves an uncached one to FastAPI"
    ),
    "endpoint api.routers.items.eligibility": "calls eligibility_body, as the shortcut does, with the same arguments",
}
"""What FastAPI runs for ``GET /v1/items/{item_id}/eligibility`` (as named by :func:`fastapi_work`), each with
why the shortcut may skip it."""

IN_FRONT: Mapping[str, str] = {
    "api.observability.Observed": "the request id (X-Request-ID, bound to the log context) and the request "
    "metrics; it runs before the shortcut for every request",
    "api.limits.RequestGate": "the request gate: head limits, and for a request with a body its credentials, "
    "media type and size; it runs before the shortcut for every request",
}
"""The layers :func:`api.main.serving_app` puts in front of the shortcut (they run for every request)."""


def _reason(query_string: bytes) -> tuple[bool, str | None]:
    """(whether the query is plain enough for the shortcut, the ``reason`` asked for)."""
    if not query_string:
        return True, None
    # Starlette parses the query the same way (latin-1, blank values kept).
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    if len(pairs) != 1 or pairs[0][0] != "reason":
        return False, None
    value = pairs[0][1]
    if not value or len(value) > REASON_MAX_LENGTH or "\x00" in value:
        return False, None
    return True, value


_SLOT = "ITEMID"


def _eligibility_path(app: FastAPI) -> re.Pattern[str] | None:
    """The path of ``app``'s eligibility route, with the item id captured; None when ``app`` has no such route
    (an application built with other routers)."""
    try:
        path = app.url_path_for(ROUTE_NAME, item_id=_SLOT)
    except NoMatchFound:
        return None
    return re.compile(re.escape(path).replace(_SLOT, f"({ITEM_ID})"))


def _name(call: Any) -> str:
    return f"{getattr(call, '__module__', '?')}.{getattr(call, '__qualname__', repr(call))}"


def _middleware(app: FastAPI) -> Iterator[str]:
    """The middleware of ``app``'s stack, outermost first, down to its router (one that hides what it wraps
    is named as such: the shortcut cannot know what it does)."""
    layer: Any = app.middleware_stack if app.middleware_stack is not None else app.build_middleware_stack()
    while layer is not app.router:
        yield f"middleware {type(layer).__module__}.{type(layer).__qualname__}"
        inner = getattr(layer, "app", None)
        if inner is None:
            yield f"middleware {type(layer).__module__}.{type(layer).__qualname__} wrapping an unknown application"
            return
        layer = inner


def _dependant_work(dependant: Dependant) -> Iterator[str]:
    for kind, params in (
        ("path", dependant.path_params),
        ("query", dependant.query_params),
        ("header", dependant.header_params),
        ("cookie", dependant.cookie_params),
        ("body", dependant.body_params),
    ):
        for param in params:
            yield f"{kind} {param.name}"
    for special in (
        "request_param_name",
        "websocket_param_name",
        "http_connection_param_name",
        "response_param_name",
        "background_tasks_param_name",
        "security_scopes_param_name",
    ):
        if getattr(dependant, special) is not None:
            yield special.removesuffix("_param_name")
    for sub in dependant.dependencies:
        yield f"dependency {_name(sub.call)}"
        yield from _dependant_work(sub)


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def fastapi_work(app: FastAPI) -> list[str]:
    """What FastAPI runs for ``app``'s eligibility route, named as :data:`SKIPPABLE` names it: the middleware,
    the route's parameters and dependencies, the endpoint; overrides of those dependencies and FastAPI's
    telemetry when they are on."""
    work = list(_middleware(app))
    for context in iter_route_contexts(app.router.routes):
        if context.name != ROUTE_NAME:
            continue
        dependant: Dependant = context.dependant
        work.extend(_dependant_work(dependant))
        work.append(f"endpoint {_name(context.endpoint)}")
        work.extend(f"override of {_name(call)}" for call in _calls(dependant) if call in app.dependency_overrides)
    telemetry = getattr(app, "_native_telemetry", None)
    if telemetry is not None and telemetry.enabled():
        work.append("FastAPI's OpenTelemetry telemetry (spans and metrics of every request)")
    return work


def unknown_work(app: FastAPI) -> list[str]:
    """What FastAPI would run for the eligibility route that :data:`SKIPPABLE` does not list (the shortcut is
    off while there is any)."""
    return [work for work in fastapi_work(app) if work not in SKIPPABLE]


def _handler(app: FastAPI, exc: Exception) -> Any:
    """The application's exception handler for ``exc``, looked up as Starlette's ExceptionMiddleware does
    (the nearest class of its MRO with a handler); None if there is none."""
    for kind in type(exc).__mro__:
        if kind in app.exception_handlers:
            return app.exception_handlers[kind]
    return None


class EligibilityShortcut:
    """See the module docstring. ``app`` is the FastAPI application (its lifespan sets ``app.state``)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._path = _eligibility_path(app)
        self._template = next(
            (str(c.path_format) for c in iter_route_contexts(app.router.routes) if c.name == ROUTE_NAME), ""
        )
        self._on: bool | None = None
        """Decided at the first request after the lifespan ran (settings known, middleware stack built)."""

    def blockers(self) -> list[str]:
        """Why the shortcut may not answer (empty: it may): ``app`` has no eligibility route, the setting turns
        the shortcut off, or FastAPI would run something for the route that the shortcut does not know."""
        if self._path is None:
            return ["the application has no eligibility route"]
        settings = getattr(self.app.state, "settings", None)
        if isinstance(settings, Settings) and not settings.api_eligibility_shortcut:
            return ["LEDGER_API_ELIGIBILITY_SHORTCUT is false"]
        return unknown_work(self.app)

    @property
    def active(self) -> bool:
        """Whether the shortcut may answer (see :meth:`blockers`)."""
        return not self.blockers()

    @property
    def state(self) -> State:
        """The wrapped application's state (the store, the chain client...)."""
        return self.app.state

    def _decide(self) -> bool | None:
        """Whether the shortcut answers from now on; None while the lifespan has not run (no settings)."""
        if self._path is not None and not isinstance(getattr(self.app.state, "settings", None), Settings):
            return None
        blockers = self.blockers()
        if self._path is not None and blockers:
            log.warning(
                "the eligibility shortcut is off: FastAPI answers every eligibility read (to let the shortcut "
                "skip something FastAPI runs, list it in api.fastpath.SKIPPABLE with why it may be skipped)",
                because=blockers,
            )
        return not blockers

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if self._path is not None and scope["type"] == "http" and scope["method"] == "GET":
            found = self._path.fullmatch(scope["path"])
            if found is not None:
                scope[ROUTE_TEMPLATE] = self._template  # the request metrics' route label, without routing
                on = self._on
                if on is None:
                    on = self._on = self._decide()
                # an override can be set at any time (tests do): the shortcut never skips one
                if on and not self.app.dependency_overrides and await self._answer(scope, receive, send, found[1]):
                    return
        await self.app(scope, receive, send)

    async def _answer(self, scope: ASGIScope, receive: Receive, send: Send, item_id: str) -> bool:
        """Answers the request if it is plain; False to let FastAPI answer it."""
        plain, reason = _reason(scope.get("query_string", b""))
        if not plain:
            return False
        authorization = [value for name, value in scope["headers"] if name == b"authorization"]
        if len(authorization) != 1:
            return False
        try:
            principal = cached_principal(*parse_authorization(authorization[0].decode("latin-1"), wanted="Bearer"))
            if principal is None:
                return False
            body = await eligibility_body(services_of_state(self.app.state), item_id, principal, reason)
        except LedgerError as exc:
            return await self._refuse(scope, receive, send, exc)
        except Exception:
            log.error("the eligibility shortcut failed; FastAPI answers the request", path=scope["path"], exc_info=True)
            return False
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return True

    async def _refuse(self, scope: ASGIScope, receive: Receive, send: Send, exc: LedgerError) -> bool:
        """Answers a refusal with the application's handler for it, as FastAPI would (False: no handler, let
        FastAPI answer)."""
        handler = _handler(self.app, exc)
        if handler is None:
            return False
        scope = {**scope, "app": self.app}  # as Starlette's application sets it for its handlers
        request = Request(scope, receive)
        if inspect.iscoroutinefunction(handler):
            response = await handler(request, exc)
        else:
            response = await run_in_threadpool(handler, request, exc)
        await response(scope, receive, send)
        return True
