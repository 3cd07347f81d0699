"""A shortcut for the API's hot read, ``GET /v1/items/{id}/eligibility`` (issue 4), in front of FastAPI.

Served behind the request gate (:mod:`api.limits`, which caps every request's
head first) by :func:`api.main.serving_app`: it wraps the FastAPI application
and passes it every request but one kind. It answers
the request itself only when everything is plain: a GET of exactly
``/v1/items/<0x + 64 hex>/eligibility``, no query or
only one ``reason`` of at most 64 characters without NUL, one Authorization
header whose credential this process verified less than the cache's TTL ago
(:mod:`ledger_service.access._cache`), and an answer of 200. It then calls the
route's own :func:`api.routers.items.eligibility_body` with the same
arguments FastAPI would pass, so the body is the route's, byte for byte.

Anything else (another path or method, an unusual query, no or a not yet
cached credential, or any error while answering: 401, 403, 404, 503...) goes
on to FastAPI unchanged, which validates, authenticates and formats every
error in the one place that does so. The shortcut skips FastAPI's and
Starlette's middleware, routing, parameter validation and dependency
resolution: more than half of the CPU of a cached eligibility read.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from starlette.datastructures import State
from starlette.routing import NoMatchFound

from api.auth import cached_principal, parse_authorization
from api.deps import services_of_state
from api.routers.items import eligibility_body
from api.schemas.common import ITEM_ID, REASON_MAX_LENGTH

ASGIScope = dict[str, Any]
Receive = Any
Send = Any


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
        path = app.url_path_for("eligibility", item_id=_SLOT)
    except NoMatchFound:
        return None
    return re.compile(re.escape(path).replace(_SLOT, f"({ITEM_ID})"))


class EligibilityShortcut:
    """See the module docstring. ``app`` is the FastAPI application (its lifespan sets ``app.state``)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._path = _eligibility_path(app)

    @property
    def active(self) -> bool:
        """False when ``app`` does not serve the eligibility route."""
        return self._path is not None

    @property
    def state(self) -> State:
        """The wrapped application's state (the store, the chain client...)."""
        return self.app.state

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if self._path is not None and scope["type"] == "http" and scope["method"] == "GET":
            found = self._path.fullmatch(scope["path"])
            if found is not None:
                body = await self._answer(scope, found[1])
                if body is not None:
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 200,
                            "headers": [
                                (b"content-length", str(len(body)).encode()),
                                (b"content-type", b"application/json"),
                            ],
                        }
                    )
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)

    async def _answer(self, scope: ASGIScope, item_id: str) -> bytes | None:
        """The 200 body, or None to let FastAPI answer."""
        plain, reason = _reason(scope.get("query_string", b""))
        if not plain:
            return None
        authorization = [value for name, value in scope["headers"] if name == b"authorization"]
        if len(authorization) != 1:
            return None
        try:
            principal = cached_principal(*parse_authorization(authorization[0].decode("latin-1"), wanted="Bearer"))
            if principal is None:
                return None
            return await eligibility_body(services_of_state(self.app.state), item_id, principal, reason)
        except Exception:  # every error is FastAPI's to answer (it runs the same code again)
            return None
