"""Mounting the pages into the API's application: :func:`mount_pages` (called by :func:`api.main.create_app`).

Adds the page routers (none of them in the OpenAPI document), the ``/static/`` files (our own CSS and JS from
``web/static``, htmx from ``node_modules`` as ``npm ci`` installed it: nothing is loaded from a CDN), and the
language switch (``/lang``), a plain link that sets the ``lang`` cookie and goes back to the page.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from api.problems import handle as problem_answer
from web import (
    audit,
    consumer,
    consumer_exchanges,
    merchant,
    merchant_analytics,
    merchant_business,
    merchant_exchanges,
    merchant_returns,
    verify,
)
from web.forms import RefusedFormError
from web.i18n import LANG_COOKIE, LANGUAGES
from web.render import error_sentence, page, redirect

STATIC_DIR = Path(__file__).parent / "static"
NODE_MODULES = Path(__file__).resolve().parents[1] / "node_modules"
STATIC_FILES: dict[str, tuple[Path, str]] = {
    "app.css": (STATIC_DIR / "app.css", "text/css; charset=utf-8"),
    "app.js": (STATIC_DIR / "app.js", "text/javascript; charset=utf-8"),
    "htmx.min.js": (NODE_MODULES / "htmx.org" / "dist" / "htmx.min.js", "text/javascript; charset=utf-8"),
    # htmx's sse extension: a return's page follows the return's event stream
    "sse.min.js": (NODE_MODULES / "htmx-ext-sse" / "dist" / "sse.min.js", "text/javascript; charset=utf-8"),
    # only the merchant dashboard loads these two
    "dashboard.js": (STATIC_DIR / "dashboard.js", "text/javascript; charset=utf-8"),
    "echarts.min.js": (NODE_MODULES / "echarts" / "dist" / "echarts.min.js", "text/javascript; charset=utf-8"),
}
"""Every file ``/static/`` serves: name -> (path, media type). Nothing else is reachable there."""
LANG_COOKIE_MAX_AGE_S = 365 * 86_400

router = APIRouter(include_in_schema=False)


@cache
def _static(name: str) -> tuple[bytes, str] | None:
    path, _ = STATIC_FILES[name]
    try:
        content = path.read_bytes()
    except OSError:
        return None
    return content, '"' + hashlib.sha256(content).hexdigest()[:32] + '"'


@router.get("/static/{name}")
def static_file(request: Request, name: str) -> Response:
    """One of :data:`STATIC_FILES` (revalidated by its ETag: a new release changes it)."""
    found = _static(name) if name in STATIC_FILES else None
    if found is None:
        return page(request, "not_found.html", status=404)
    content, etag = found
    headers = {"ETag": etag, "Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(content, media_type=STATIC_FILES[name][1], headers=headers)


def _same_site_path(target: str | None) -> str:
    """``target`` when it is a path on this site, else ``/`` (the switch must not redirect elsewhere)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/lang")
def switch_language(
    to: Annotated[str, Query(max_length=8)] = "en", next: Annotated[str | None, Query(max_length=2000)] = None
) -> Response:
    """Sets the page language (``zh`` or ``en``) for a year and goes back to ``next``."""
    response = redirect(_same_site_path(next))
    if to in LANGUAGES:
        response.set_cookie(LANG_COOKIE, to, max_age=LANG_COOKIE_MAX_AGE_S, samesite="lax", httponly=True)
    return response


async def refused_form(request: Request, exc: Exception) -> Response:
    """A form whose body the request gate refused, on a page that does not show its own form again: why, in
    the page's language (the browser's Back button returns to the form as typed)."""
    assert isinstance(exc, RefusedFormError)
    status, sentence = error_sentence(request, exc.error)
    return page(request, "error.html", status=status, error=sentence)


def not_found(request: Request, exc: Exception) -> Response:
    """An address nothing answers, outside the API (``/v1/``), asked for by a browser: the page saying so, in
    the reader's language; everything else as the API answers it (problem+json)."""
    if (
        isinstance(exc, StarletteHTTPException)
        and exc.status_code == 404
        and not request.url.path.startswith("/v1/")
        and request.method in ("GET", "HEAD")
        and "text/html" in request.headers.get("accept", "")  # a browser; an API client gets problem+json
    ):
        return page(request, "not_found.html", status=404)
    return problem_answer(request, exc)


def mount_pages(app: FastAPI) -> None:
    """Adds the pages and their static files to ``app`` (after the API's routers)."""
    app.add_exception_handler(RefusedFormError, refused_form)
    app.include_router(router)
    app.include_router(verify.router)
    app.include_router(consumer.router)
    app.include_router(consumer_exchanges.router)
    app.include_router(merchant.router)
    app.include_router(merchant_returns.router)
    app.include_router(merchant_exchanges.router)
    app.include_router(merchant_business.router)
    app.include_router(merchant_analytics.router)
    app.include_router(audit.router)

    app.add_exception_handler(StarletteHTTPException, not_found)
