"""The request gate: limits every request passes before any parsing or handler code runs.

The outermost ASGI application that is served (:func:`api.main.serving_app`), in front of the eligibility
shortcut (:mod:`api.fastpath`) and of FastAPI. For every HTTP request, in this order:

1. the head: at most ``settings.api_max_headers`` headers and ``settings.api_max_header_bytes`` bytes of
   request line and headers (431 otherwise);
2. an API path with a trailing slash that no route takes is a 404 (not a redirect); a request without a body (no
   ``Content-Length`` above 0, no ``Transfer-Encoding``) goes on: a GET,
   the shortcut's hot read included, costs one pass over its headers;
3. a request with a body, to a route whose OpenAPI operation has ``security``: its ``Authorization``
   header is verified first (the dependencies' functions and credential cache), and a missing, malformed,
   unknown or revoked credential is the same 401 problem the dependencies give, before a byte of the
   body is read (where ``security`` also lists the empty requirement ``{}``, credentials are optional: a
   request without an ``Authorization`` header goes on);
4. its ``Content-Type`` must be one of the operation's request body media types (415), JSON in UTF-8;
5. its size: ``Content-Length`` above the route's limit is a 413 at once; the bytes are also counted as
   they arrive (a chunked body), never buffered past the limit. The limit is
   ``settings.api_json_max_bytes``, except for a multipart upload route: the document limit
   (``settings.document_max_bytes``) plus the multipart envelope, and for an operation that names its own
   limit's setting in :data:`BODY_LIMIT_EXTENSION` (the EPCIS capture: ``settings.epcis_capture_max_bytes``);
6. a JSON body is read (bounded by 5.) and must be UTF-8 and nested at most ``settings.api_json_max_depth``
   deep (400), checked on its bytes before any JSON parser sees it; FastAPI then gets the same bytes.

Which routes need credentials and what body each takes come from the application's OpenAPI document (one
source of truth with /docs and the dependencies that add ``security``): a new route is covered without
touching this module. A route outside the document (a web page, :mod:`web`) is public; a page form that
uploads files declares ``multipart/form-data`` in its ``openapi_extra`` and gets the upload limit. Every
refusal is a problem+json (:mod:`api.problems`), except a page form's 413 or 415: the page gets the problem
and the start of the body, to answer in its reader's language with the form as typed. A verified principal is left
in the request's state, where the dependencies find it and do not verify it again.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.datastructures import State
from starlette.routing import compile_path

from api.auth import (
    PRINCIPAL_STATE_KEY,
    cached_principal,
    needs_api_key,
    needs_return_token,
    parse_authorization_headers,
    verify_principal,
)
from api.bodies import BODY_LIMIT_EXTENSION, MULTIPART_ENVELOPE, counting_receive
from api.problems import ProblemDetails, http_problem, problem_for, render
from ledger_service.access.tokens import SCHEME as RETURN_TOKEN_SCHEME
from ledger_service.errors import LedgerError
from ledger_service.settings import Settings, get_settings
from ledger_service.store.handle import Store

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]

ACTOR_SECURITY = "ApiKey"
CONSUMER_SECURITY = "ReturnToken"
JSON = "application/json"
MULTIPART = "multipart/form-data"
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class RoutePolicy:
    """What the gate asks of a request with a body to one operation."""

    schemes: frozenset[str]
    """The OpenAPI security schemes it accepts (empty: public)."""
    media_types: frozenset[str]
    """Its request body's media types (empty: it takes no body)."""
    limit_setting: str | None = None
    """The setting holding its body limit, when it is not the JSON or upload limit (the operation's
    :data:`BODY_LIMIT_EXTENSION`)."""
    optional: bool = False
    """Credentials are optional (an empty requirement ``{}`` in its ``security``): checked only when sent."""
    page: bool = False
    """A web page's form (outside the OpenAPI document): a refused body is left to the page to explain
    (:data:`REFUSED_STATE_KEY`), in the reader's language and with what was typed, not as problem+json."""

    @staticmethod
    def merge(policies: Iterable[RoutePolicy]) -> RoutePolicy:
        """One policy for a route serving several methods: the union of their schemes and media types (and the
        larger of their limits: the first named one)."""
        schemes: frozenset[str] = frozenset()
        media_types: frozenset[str] = frozenset()
        limit_setting: str | None = None
        optional = True
        page = False
        for policy in policies:
            schemes |= policy.schemes
            media_types |= policy.media_types
            limit_setting = limit_setting or policy.limit_setting
            optional = optional and (policy.optional or not policy.schemes)
            page = page or policy.page
        return RoutePolicy(
            schemes=schemes,
            media_types=media_types,
            limit_setting=limit_setting,
            optional=optional and bool(schemes),
            page=page,
        )

    @property
    def json(self) -> bool:
        return JSON in self.media_types

    @property
    def upload(self) -> bool:
        return MULTIPART in self.media_types


_PUBLIC = RoutePolicy(schemes=frozenset(), media_types=frozenset())
REFUSED_STATE_KEY = "refused_body"
"""Where the gate leaves the problem of a page form's refused body (request.state) for the page to show."""
PAGE_PREFIX_BYTES = 64 * 1024
"""What the gate passes on of a page form's refused body: its text fields, which browsers send before its
files, so the page can show the form again as typed."""
PAGE_DRAIN_FACTOR = 4
"""A refused page form's body is read and dropped up to this many times its limit before the page answers:
a browser still sending when the connection closes shows a network error instead of the answer."""


def policies_of(app: FastAPI) -> dict[tuple[str, str], RoutePolicy]:
    """(method, path template) -> policy, for every operation of ``app``'s OpenAPI document."""
    found: dict[tuple[str, str], RoutePolicy] = {}
    for path, item in app.openapi().get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            security = operation.get("security", [])
            schemes = frozenset(name for requirement in security for name in requirement)
            content = operation.get("requestBody", {}).get("content", {})
            found[(method.upper(), path)] = RoutePolicy(
                schemes=schemes,
                media_types=frozenset(content),
                limit_setting=operation.get(BODY_LIMIT_EXTENSION),
                optional=any(not requirement for requirement in security),
            )
    return found


def _undocumented_policy(route: object) -> RoutePolicy:
    """The policy of a route outside the OpenAPI document (a web page): public, taking the body media types
    its ``openapi_extra`` declares, as an operation's ``requestBody`` would (none: no body expected)."""
    extra = getattr(route, "openapi_extra", None) or {}
    content = extra.get("requestBody", {}).get("content", {})
    return RoutePolicy(schemes=frozenset(), media_types=frozenset(content), page=True)


def routes_of(app: FastAPI) -> list[tuple[re.Pattern[str], frozenset[str], RoutePolicy]]:
    """Every route of ``app`` in the order the application tries them: (path pattern with the route's own
    convertors, methods, policy from the OpenAPI document; for a route it does not list, public, with the
    body its ``openapi_extra`` declares)."""
    policies = policies_of(app)
    found = []
    for context in iter_route_contexts(app.router.routes):
        route = context.original_route
        methods = getattr(route, "methods", None)
        if context.path is None or not methods:
            continue
        pattern, path_format, _ = compile_path(context.path)
        undocumented = _undocumented_policy(route)
        found.append(
            (
                pattern,
                frozenset(methods),
                RoutePolicy.merge(policies.get((method, path_format), undocumented) for method in methods),
            )
        )
    return found


# ---- the JSON body's shape, from its bytes -------------------------------------------------------

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN = frozenset(b"[{")


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether the arrays and objects of JSON text ``body`` nest deeper than ``limit``: the brackets outside
    strings, counted without parsing (in an invalid text, brackets of an unterminated string count too)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    skeleton = _STRING.sub(b"", body).translate(None, _NOT_BRACKET)
    depth = 0
    for byte in skeleton:
        if byte in _OPEN:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _media_type(content_type: str) -> tuple[str, dict[str, str]]:
    kind, *parameters = content_type.split(";")
    params = {}
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        params[name.strip().lower()] = value.strip().strip('"').lower()
    return kind.strip().lower(), params


def media_type_problem(content_type: str | None, policy: RoutePolicy) -> ProblemDetails | None:
    """A 415 problem when a body of ``content_type`` is not what the operation takes."""
    kind, params = _media_type(content_type or "")
    if policy.json and (kind == JSON or (kind.startswith("application/") and kind.endswith("+json"))):
        if params.get("charset", "utf-8") in ("utf-8", "utf8"):
            return None
        return http_problem(415, f"JSON bodies must be UTF-8; this one was declared as charset={params['charset']}")
    if policy.upload and ((kind == MULTIPART and params.get("boundary")) or kind == FORM):
        return None  # a form route takes either form encoding, as FastAPI does (422 then names a missing file)
    wanted = " or ".join(sorted(policy.media_types)) or "no body"
    given = f"`{content_type}`" if content_type else "no Content-Type"
    return http_problem(415, f"this endpoint takes {wanted}; the request sent {given}")


# ---- the gate ---------------------------------------------------------------------------------------


_BODY_HEADERS = frozenset((b"content-length", b"transfer-encoding"))


def _head_problem(scope: Scope, settings: Settings) -> tuple[ProblemDetails | None, bool]:
    """(a 431 problem if the request's head is over the limits, whether the request has a body): one pass
    over the headers, the only work the gate does for a request without a body."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    size = len(scope.get("raw_path") or scope["path"]) + len(scope.get("query_string", b"")) + 4 * len(headers)
    has_body = False
    for name, value in headers:
        size += len(name) + len(value)
        if name in _BODY_HEADERS and (value != b"0" or name == b"transfer-encoding"):
            has_body = True
    if len(headers) > settings.api_max_headers:
        detail = f"the request has {len(headers)} headers; at most {settings.api_max_headers} are accepted"
        return http_problem(431, detail), has_body
    if size > settings.api_max_header_bytes:
        detail = (
            f"the request's headers and target take {size} bytes; at most {settings.api_max_header_bytes} "
            "are accepted: send shorter headers or fewer of them"
        )
        return http_problem(431, detail), has_body
    return None, has_body


@dataclass(frozen=True)
class _BodyHeaders:
    """The headers the gate reads of a request with a body."""

    content_length: int | None
    content_type: str | None
    authorization: list[str]


def _body_headers(scope: Scope) -> _BodyHeaders:
    content_length: int | None = None
    content_type: str | None = None
    authorization: list[str] = []
    for name, value in scope["headers"]:
        if name == b"content-length":
            content_length = int(value) if value.isdigit() else None
        elif name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"authorization":
            authorization.append(value.decode("latin-1"))
    return _BodyHeaders(content_length, content_type, authorization)


def _wanted(schemes: frozenset[str]) -> str:
    return "Bearer" if ACTOR_SECURITY in schemes else RETURN_TOKEN_SCHEME


def _route_path(scope: Scope) -> str:
    """The path the routes match: ``scope``'s without its root path."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class RequestGate:
    """See the module docstring. ``app`` is what the gate passes requests to (the eligibility shortcut);
    ``api`` the FastAPI application behind it (its OpenAPI document, its state: settings, store)."""

    def __init__(self, app: ASGIApp, *, api: FastAPI) -> None:
        self.app = app
        self.api = api
        self._routes: list[tuple[re.Pattern[str], frozenset[str], RoutePolicy]] | None = None
        self._started: Settings | None = None

    @property
    def state(self) -> State:
        """The FastAPI application's state (the store, the chain client...)."""
        return self.api.state

    def _settings(self) -> Settings:
        if self._started is not None:
            return self._started
        settings = getattr(self.api.state, "settings", None)
        if isinstance(settings, Settings):  # the lifespan ran: these are the settings for good
            self._started = settings
            return settings
        return get_settings()

    def policy(self, scope: Scope) -> RoutePolicy:
        """The policy of the operation ``scope`` reaches (public and bodiless when it reaches none: the
        application answers 404 or 405 without reading a body)."""
        path, method = _route_path(scope), scope["method"]
        for pattern, methods, policy in self._table():
            if method in methods and pattern.match(path) is not None:
                return policy
        return _PUBLIC

    def routes_path(self, scope: Scope) -> bool:
        """Whether some route, for any method, takes the path of ``scope`` (then the application answers it:
        the route's own answer, or 405 naming the methods it allows)."""
        path = _route_path(scope)
        return any(pattern.match(path) is not None for pattern, _, _ in self._table())

    def _table(self) -> list[tuple[re.Pattern[str], frozenset[str], RoutePolicy]]:
        if self._routes is None:
            self._routes = routes_of(self.api)
        return self._routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self._settings()
        too_large_head, has_body = _head_problem(scope, settings)
        if too_large_head is not None:
            await _refuse(too_large_head, scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/v1/") and path.endswith("/") and not self.routes_path(scope):
            # No route takes it (a route whose last parameter is a path does, for its own method, and another
            # method of that path is answered 405 like any other path's): Starlette
            # would answer a redirect to the path without the slash, undocumented in the API and blind to the
            # request's credentials. The API's paths have no trailing slash, and it says so.
            detail = f"there is no {path}: the API's paths have no trailing slash (try {path.rstrip('/')})"
            await _refuse(http_problem(404, detail), scope, receive, send)
            return
        if not has_body:
            await self.app(scope, receive, send)
            return
        head = _body_headers(scope)
        policy = self.policy(scope)
        if policy.schemes and (head.authorization or not policy.optional):
            try:
                await self._authenticate(scope, head.authorization, policy.schemes)
            except LedgerError as exc:
                await _refuse(problem_for(exc), scope, receive, send)
                return
        if policy.media_types:
            unsupported = media_type_problem(head.content_type, policy)
            if unsupported is not None:
                await self._refuse(policy, unsupported, scope, receive, send, limit=settings.api_json_max_bytes)
                return
        if policy.limit_setting is not None:
            limit = int(getattr(settings, policy.limit_setting))
        elif policy.upload:
            limit = settings.document_max_bytes + MULTIPART_ENVELOPE
        else:
            limit = settings.api_json_max_bytes
        too_large_detail = f"the request body is larger than the limit of {limit} bytes for {_what(policy)}"
        too_large = http_problem(413, too_large_detail)
        if head.content_length is not None and head.content_length > limit:
            await self._refuse(policy, too_large, scope, receive, send, limit=limit)
            return
        if not policy.json:
            await self.app(scope, counting_receive(receive, limit, too_large_detail), send)
            return
        body = await _read(receive, limit)
        if body is None:  # the client left
            return
        if isinstance(body, int):
            await _refuse(too_large, scope, receive, send)
            return
        malformed = json_body_problem(body, max_depth=settings.api_json_max_depth)
        if malformed is not None:
            await _refuse(malformed, scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _refuse(
        self, policy: RoutePolicy, problem: ProblemDetails, scope: Scope, receive: Receive, send: Send, *, limit: int
    ) -> None:
        """Refuses the body: the problem+json, or for a page form the page itself, given the problem
        (:data:`REFUSED_STATE_KEY`) and the body's first :data:`PAGE_PREFIX_BYTES` (the rest is read and
        dropped, up to :data:`PAGE_DRAIN_FACTOR` times ``limit``; the connection then closes)."""
        if not policy.page:
            await _refuse(problem, scope, receive, send)
            return
        prefix = await _prefix_and_drain(receive, keep=PAGE_PREFIX_BYTES, drain=PAGE_DRAIN_FACTOR * limit)
        if prefix is None:  # the client left
            return
        scope.setdefault("state", {})[REFUSED_STATE_KEY] = problem

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, _replay(prefix, receive), closing)

    async def _authenticate(self, scope: Scope, authorization: list[str], schemes: frozenset[str]) -> None:
        """Verifies the request's credentials for an operation accepting ``schemes`` (AuthenticationError with
        the dependencies' sentences otherwise) and leaves the principal in the request's state."""
        wanted = _wanted(schemes)
        kind, credentials = parse_authorization_headers(authorization, wanted=wanted)
        if kind == "bearer" and ACTOR_SECURITY not in schemes:
            raise needs_return_token()
        if kind == "token" and CONSUMER_SECURITY not in schemes:
            raise needs_api_key()
        principal = cached_principal(kind, credentials)
        if principal is None:
            store: Store = self.api.state.store
            principal = await anyio.to_thread.run_sync(functools.partial(verify_principal, store, kind, credentials))
        scope.setdefault("state", {})[PRINCIPAL_STATE_KEY] = principal


def json_body_problem(body: bytes, *, max_depth: int) -> ProblemDetails | None:
    """A 400 problem when a JSON body is not UTF-8 or nests deeper than ``max_depth``."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return http_problem(400, f"the body is not UTF-8 text (invalid byte at offset {exc.start}); send JSON in UTF-8")
    if json_depth_exceeds(body, max_depth):
        return http_problem(
            400, f"the JSON body is nested more than {max_depth} levels deep; no request of this API needs that"
        )
    return None


def _what(policy: RoutePolicy) -> str:
    if policy.limit_setting is not None:
        return f"this endpoint (LEDGER_{policy.limit_setting.upper()}): split the content into several requests"
    return "an upload (the document limit plus the multipart envelope)" if policy.upload else "a JSON body"


async def _refuse(problem: ProblemDetails, scope: Scope, receive: Receive, send: Send) -> None:
    response = render(problem, instance=scope["path"])
    # The rest of the body is not read: the server closes the connection after the answer instead of
    # draining a body it was just told to refuse.
    response.headers["connection"] = "close"
    await response(scope, receive, send)


async def _read(receive: Receive, limit: int) -> bytes | int | None:
    """The whole body; the byte count once it passes ``limit`` (not read further); None if the client left."""
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk: bytes = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            return total
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _prefix_and_drain(receive: Receive, *, keep: int, drain: int) -> bytes | None:
    """The body's first ``keep`` bytes, the rest read and dropped until its end or ``drain`` bytes in all;
    None if the client left."""
    kept = bytearray()
    total = 0
    while total <= drain:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk: bytes = message.get("body", b"")
        total += len(chunk)
        if len(kept) < keep:
            kept += chunk[: keep - len(kept)]
        if not message.get("more_body", False):
            break
    return bytes(kept)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` that gives ``body`` first, as one message, then whatever comes next (a disconnect)."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
