"""Every error as an RFC 9457 problem (``application/problem+json``), from one place.

Members: ``type`` (``about:blank`` for plain HTTP problems, a tag URI for the
service's own kinds), ``title``, ``status``, ``detail`` (a sentence a person
can act on), ``instance`` (the request path), plus extensions: ``errors`` for
validation problems, ``error`` and ``params`` for a contract's custom error.

Mapping (:func:`problem_for`):
- :class:`AuthenticationError` 401 (with ``WWW-Authenticate``),
  :class:`PermissionDeniedError` 403, :class:`NotFoundError` 404,
  :class:`ConflictError` 409, :class:`InvalidRequestError` 422,
  :class:`PayloadTooLargeError` 413, :class:`UnsupportedMediaTypeError` 415,
  :class:`RateLimitedError` 429 (with ``Retry-After``), other :class:`RequestError` 400;
- :class:`StoreFullError` 503 with ``Retry-After`` (the database's disk is full; the detail does not say where);
- :class:`DocumentIntegrityError` 502 (a stored blob does not match its CID; never served);
- :class:`ContractRevertError`: its custom error translated (``api._reverts``), e.g.
  409 "EscrowDeadlinePassed: the ship-by deadline passed on 2026-11-01 12:00 UTC";
- :class:`IndexBehindError` 504; other :class:`RetryableError` 503 with ``Retry-After``;
- :class:`ConfigurationError` 503, e.g. :class:`NoSignerError` or a missing relayer key (an operator
  must fix a setting; the detail says which);
- FastAPI's ``RequestValidationError`` 422 with ``errors``, except a body that is not JSON at all: 400;
  Starlette's ``HTTPException`` its status;
- anything else 500 with no internals in the body; the traceback goes to the log.

The request gate (:mod:`api.limits`) renders its own refusals with :func:`render` before FastAPI runs:
431 (request head), 401 (credentials, before the body), 415 (media type), 413 (size), 400 (a JSON body
not UTF-8 or nested too deep).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from api._reverts import explain, show, title_of
from api.schemas.messages import issue_message
from ledger_service.chain.reverts import ContractRevertError
from ledger_service.chain.signers import ChainContext
from ledger_service.epcis.errors import DocumentRefusedError
from ledger_service.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    DocumentIntegrityError,
    IndexBehindError,
    InvalidRequestError,
    LedgerError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    RequestError,
    RetryableError,
    UnsupportedMediaTypeError,
)
from ledger_service.store import StoreFullError

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "tag:returns-ledger,2026:"
"""Prefix of the service's own problem types (RFC 4151 tag URIs: names, not links)."""
REALM = "returns-ledger"
PROBLEM_REF = "#/components/schemas/Problem"
RETRY_AFTER_S = 2
FULL_RETRY_AFTER_S = 60
"""A full disk is freed by a person: minutes, not seconds."""

log = structlog.get_logger("api")


class ValidationIssue(BaseModel):
    """One invalid part of a request."""

    loc: list[str | int] = Field(description="where: e.g. ['body', 'reason_code'] or ['query', 'limit']")
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(default="about:blank", description="the problem type (a URI)")
    title: str = Field(description="short summary of the problem type")
    status: int = Field(description="the HTTP status code")
    detail: str | None = Field(default=None, description="what happened here and what to do about it")
    instance: str | None = Field(default=None, description="the request path")
    errors: list[ValidationIssue] | None = Field(default=None, description="validation problems (422 only)")
    error: str | None = Field(default=None, description="the contract's custom error, if a transaction reverted")


@dataclass(frozen=True)
class ProblemDetails:
    """A problem before it is rendered."""

    status: int
    title: str
    detail: str | None = None
    type: str = "about:blank"
    extensions: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def body(self, instance: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail is not None:
            out["detail"] = self.detail
        if instance is not None:
            out["instance"] = instance
        out.update(self.extensions)
        return out


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def http_problem(status: int, detail: str | None = None, *, headers: dict[str, str] | None = None) -> ProblemDetails:
    """A plain HTTP problem (``about:blank``; the title is the status phrase)."""
    return ProblemDetails(status=status, title=_phrase(status), detail=detail, headers=dict(headers or {}))


_HTTP_DETAILS = {
    404: "there is nothing at this path; the API's paths are listed at /docs",
    405: "this path does not accept this method (the Allow header lists those it does)",
}

_REQUEST_STATUS: tuple[tuple[type[RequestError], int], ...] = (
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (InvalidRequestError, 422),
    (PayloadTooLargeError, 413),
    (UnsupportedMediaTypeError, 415),
    (RateLimitedError, 429),
)


def _revert_problem(exc: ContractRevertError, chain: ChainContext | None) -> ProblemDetails:
    status, sentence = explain(exc, chain=chain)
    return ProblemDetails(
        status=status,
        title=title_of(exc.error),
        detail=f"{exc.error}: {sentence}",
        type=f"{TYPE_BASE}revert/{exc.error}",
        extensions={"error": exc.error, "params": {k: show(v) for k, v in exc.params.items()}},
    )


def _token(token: str) -> str | int:
    """A JSON pointer's reference token as a ``loc`` entry (array indexes as numbers)."""
    text = token.replace("~1", "/").replace("~0", "~")
    return int(text) if text.isdigit() else text


def problem_for(exc: BaseException, *, chain: ChainContext | None = None) -> ProblemDetails:
    """The problem an exception becomes (see the module docstring); ``chain`` lets a revert name its deadline."""
    if isinstance(exc, DocumentRefusedError):
        issues = [
            {"loc": ["body", *(_token(t) for t in e.pointer.split("/")[1:])], "msg": e.message, "type": "epcis"}
            for e in exc.errors
        ]
        return ProblemDetails(
            status=400 if exc.malformed else 422,
            title=_phrase(400 if exc.malformed else 422),
            detail=str(exc),
            extensions={"errors": issues},
        )
    if isinstance(exc, RequestError):
        status = next((code for cls, code in _REQUEST_STATUS if isinstance(exc, cls)), 400)
        headers = {}
        if isinstance(exc, AuthenticationError):
            headers["WWW-Authenticate"] = f'{exc.scheme} realm="{REALM}"'
        if isinstance(exc, RateLimitedError):
            headers["Retry-After"] = str(exc.retry_after)
        return http_problem(status, str(exc), headers=headers)
    if isinstance(exc, ContractRevertError):
        return _revert_problem(exc, chain)
    if isinstance(exc, IndexBehindError):
        return ProblemDetails(
            status=504,
            title="Index behind",
            detail=str(exc),
            type=f"{TYPE_BASE}index-behind",
            extensions={"block_number": exc.block_number, "indexed_block": exc.indexed},
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    if isinstance(exc, RetryableError):
        return http_problem(503, f"{exc}; try again shortly", headers={"Retry-After": str(RETRY_AFTER_S)})
    if isinstance(exc, StoreFullError):  # nothing was written; it may work once an operator freed space
        return http_problem(
            503,
            "the service cannot store anything right now: its database's disk is full; nothing was changed, try "
            "again later",
            headers={"Retry-After": str(FULL_RETRY_AFTER_S)},
        )
    if isinstance(exc, DocumentIntegrityError):  # our stored copy is wrong: say so, never serve it
        return ProblemDetails(
            status=502, title="Stored document corrupt", detail=str(exc), type=f"{TYPE_BASE}document-corrupt"
        )
    if isinstance(exc, ConfigurationError):  # NoSignerError, no relayer key: the operator must set something
        return http_problem(503, str(exc))
    if isinstance(exc, RequestValidationError):
        unparseable = next((e for e in exc.errors() if e.get("type") == "json_invalid"), None)
        if unparseable is not None:  # not JSON at all: the request is malformed, not invalid
            return http_problem(400, _unparseable(unparseable))
        issues = [
            {
                "loc": [str(p) if not isinstance(p, int) else p for p in e.get("loc", ())],
                "msg": issue_message(e),
                "type": e["type"],
            }
            for e in exc.errors()
        ]
        where = "; ".join(f"{'.'.join(str(p) for p in i['loc'])}: {i['msg']}" for i in issues[:5])
        more = f" (and {len(issues) - 5} more)" if len(issues) > 5 else ""
        detail = f"the request is invalid: {where}{more}" if issues else "the request is invalid"
        return ProblemDetails(status=422, title=_phrase(422), detail=detail, extensions={"errors": issues})
    if isinstance(exc, StarletteHTTPException):
        given = exc.detail if isinstance(exc.detail, str) and exc.detail != _phrase(exc.status_code) else None
        return http_problem(
            exc.status_code, given or _HTTP_DETAILS.get(exc.status_code), headers=dict(exc.headers or {})
        )
    return http_problem(500, "an unexpected error occurred; it was logged and will be looked into")


def _unparseable(error: Any) -> str:
    reason = error.get("ctx", {}).get("error", "")
    where = error.get("loc", ())
    offset = f" at character {where[1]}" if len(where) > 1 and isinstance(where[1], int) else ""
    return f"the body is not valid JSON ({reason or 'decode error'}{offset}); send one JSON value in UTF-8"


def render(problem: ProblemDetails, *, instance: str | None = None) -> Response:
    """The problem as an ``application/problem+json`` response."""
    content = json.dumps(problem.body(instance), separators=(",", ":"), ensure_ascii=False)
    return Response(content=content, status_code=problem.status, media_type=PROBLEM_JSON, headers=problem.headers)


def _chain_of(request: Request) -> ChainContext | None:
    chain = getattr(request.app.state, "chain", None)
    return chain if isinstance(chain, ChainContext) else None


def handle(request: Request, exc: Exception) -> Response:
    """The one exception handler (sync: Starlette runs it in a worker thread, so a revert may read the chain)."""
    problem = problem_for(exc, chain=_chain_of(request))
    if problem.status >= 500:
        if isinstance(exc, LedgerError):
            log.warning("request failed", path=request.url.path, status=problem.status, error=str(exc))
        else:
            log.error("unhandled error", path=request.url.path, exc_info=exc)
    return render(problem, instance=request.url.path)


def install_problem_handlers(app: FastAPI) -> None:
    """Routes every error of ``app`` through :func:`handle`."""
    for kind in (LedgerError, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(kind, handle)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting problem+json answers with ``statuses``."""
    return {status: problem_response_spec(_phrase(status)) for status in statuses}


def problem_response_spec(description: str) -> dict[str, Any]:
    """One OpenAPI response object: a Problem as application/problem+json."""
    return {"description": description, "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}}
