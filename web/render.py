"""Rendering a page: the Jinja2 environment, the page's language, and the headers every page carries.

Every page answers with ``Content-Language``, ``Vary: Accept-Language, Cookie`` (the language depends on
both), a Content-Security-Policy that allows only our own scripts and styles (no inline script, nothing from
another origin), ``Referrer-Policy: no-referrer`` (a consumer's page must not leak its address) and
``Cache-Control: no-store`` (pages show one person's purchase).
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import Request
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse, Response

from api.problems import ProblemDetails, problem_for
from ledger_service.chain.signers import ChainContext
from web.i18n import LANG_COOKIE, Sentence, Translator, negotiate

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Vary": "Accept-Language, Cookie",
}

_env = Environment(
    loader=PackageLoader("web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def translator(request: Request) -> Translator:
    """The request's page language (:func:`web.i18n.negotiate`)."""
    return Translator(
        negotiate(cookie=request.cookies.get(LANG_COOKIE), accept_language=request.headers.get("accept-language"))
    )


def secure(request: Request) -> bool:
    """Whether the page was asked for over https (cookies then carry ``Secure``)."""
    return request.url.scheme == "https"


def new_form_key() -> str:
    """A fresh key for one rendering of a form: sent back with it, it makes a second submission of the same
    form (a double click, a second tab, a reload) answer what the first did instead of acting twice."""
    return secrets.token_urlsafe(18)


def page(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """``template`` rendered in the request's language with ``context``."""
    t = translator(request)
    html = _env.get_template(template).render(
        _=t,
        t=t,
        lang=t.lang,
        path=request.url.path,
        htmx=request.headers.get("hx-request") == "true",
        **context,
    )
    response = HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, "Content-Language": t.lang})
    return response


def error_sentence(request: Request, exc: BaseException) -> tuple[int, Sentence]:
    """The status and the sentence (in the page's language) of an error raised by the domain: the API's own
    mapping (:func:`api.problems.problem_for`), so a page says what the API would."""
    chain = getattr(request.app.state, "chain", None)
    problem: ProblemDetails = problem_for(exc, chain=chain if isinstance(chain, ChainContext) else None)
    return problem.status, translator(request).sentence(problem.detail or problem.title)


def redirect(location: str) -> Response:
    """A 303 to ``location`` (after a form post: a reload does not post again)."""
    return Response(status_code=303, headers={**PAGE_HEADERS, "Location": location})
