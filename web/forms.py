"""What every page form carries: a CSRF token and a form key.

- CSRF: the consumer's session is its return token in an HttpOnly cookie; a form's ``csrf`` field is an HMAC
  of the word "csrf" under that token, which another site cannot compute (it never sees the token), and the
  cookie is ``SameSite=Lax``, so a cross-site form post carries no session either.
- Form key (``form_key``, fresh at each rendering, :func:`web.render.new_form_key`): a second submission of
  the same form (a double click, a second tab, a reload of the answer) is answered with the first one's result
  instead of acting twice. The key is claimed in the API's idempotency table, scoped to the credential like
  an ``Idempotency-Key`` (prefixed ``page:`` so a page's key never meets an API client's), and the answer
  kept (the page to go to) is sealed under the credential.
- A body the request gate refused (too large, or of a type the form does not send): :func:`page_form` raises
  :class:`RefusedFormError` with the gate's reason and the text fields found at the start of the body, so the
  page says why in its reader's language and shows the form again as typed.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import time
from collections.abc import Callable
from urllib.parse import parse_qsl

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.datastructures import FormData, UploadFile

from api.limits import REFUSED_STATE_KEY
from api.problems import ProblemDetails
from ledger_service.access import seal, unseal
from ledger_service.errors import (
    ConflictError,
    InvalidRequestError,
    LedgerError,
    PayloadTooLargeError,
    PermissionDeniedError,
    UnsupportedMediaTypeError,
)
from ledger_service.settings import IDEMPOTENCY_LEASE_S
from ledger_service.store import idempotency
from ledger_service.store.handle import Store

FORM_KEY_MAX_LENGTH = 64
FORM_WAIT_S = 30.0
_POLL_S = 0.05


def csrf_token(secret: str) -> str:
    """The CSRF field value for a session whose secret is ``secret``."""
    return hmac.new(secret.encode(), b"csrf", hashlib.sha256).hexdigest()[:32]


def require_csrf(secret: str, presented: object) -> None:
    """:class:`PermissionDeniedError` unless ``presented`` is the CSRF field of the session ``secret``."""
    if not isinstance(presented, str) or not hmac.compare_digest(csrf_token(secret), presented):
        raise PermissionDeniedError(
            "this form did not come from this site's page (its security code does not match); reload the page "
            "and send it again"
        )


def form_hash(path: str, fields: list[tuple[str, str]]) -> str:
    digest = hashlib.sha256(path.encode())
    for name, value in sorted(fields):
        for part in (name, value):
            digest.update(len(part.encode()).to_bytes(8, "big"))
            digest.update(part.encode())
    return digest.hexdigest()


def once(
    *,
    store: Store,
    principal: str,
    credential: str,
    key: str,
    path: str,
    request_hash: str,
    ttl_s: int,
    produce: Callable[[], str],
) -> str:
    """``produce()`` (the address of the page that shows the result) run at most once for ``key``; a repeat
    gets the first run's address. A failure releases the key. Blocking."""
    if not key or len(key) > FORM_KEY_MAX_LENGTH:
        raise InvalidRequestError("the form is incomplete (its key is missing); reload the page and send it again")
    stored_key = f"page:{key}"
    context = f"{principal}\0{stored_key}\0{request_hash}"
    deadline = time.monotonic() + FORM_WAIT_S
    while True:
        existing = idempotency.claim_idempotency_key(
            store,
            actor=principal,
            key=stored_key,
            method="POST",
            path=path,
            request_hash=request_hash,
            now=int(time.time()),
            lease_s=IDEMPOTENCY_LEASE_S,
            ttl_s=ttl_s,
        )
        if existing is None:
            break
        if existing.request_hash != request_hash:
            raise InvalidRequestError("this form was already sent with other values; reload the page to send new ones")
        if existing.status is not None:
            location = unseal(existing.response_body or "", credential=credential, context=context)
            if location is None:
                raise ConflictError("this form was already sent; reload the page to see the result")
            return location
        if time.monotonic() >= deadline:
            raise ConflictError("the same form is still being processed; reload the page in a moment")
        time.sleep(_POLL_S)
    try:
        location = produce()
    except BaseException:  # nothing to replay: a corrected form may be sent again
        idempotency.release_idempotency_key(store, actor=principal, key=stored_key)
        raise
    idempotency.complete_idempotency_key(
        store,
        actor=principal,
        key=stored_key,
        status=303,
        response_body=seal(location, credential=credential, context=context),
        now=int(time.time()),
    )
    return location


# ---- a body the gate refused -------------------------------------------------------------------------


class RefusedFormError(Exception):
    """The request gate refused the form's body: ``error`` says why (as the API would), ``typed`` holds the
    text fields found before the refusal (files are never kept)."""

    def __init__(self, error: LedgerError, typed: FormData) -> None:
        super().__init__(str(error))
        self.error = error
        self.typed = typed


def _refusal_error(problem: ProblemDetails) -> LedgerError:
    detail = problem.detail or problem.title
    if problem.status == 413:
        return PayloadTooLargeError(detail)
    if problem.status == 415:
        return UnsupportedMediaTypeError(detail)
    return InvalidRequestError(detail)


async def page_form(request: Request) -> FormData:
    """The posted form; :class:`RefusedFormError` when the gate refused its body (see the module docstring)."""
    problem = getattr(request.state, REFUSED_STATE_KEY, None)
    if not isinstance(problem, ProblemDetails):
        return await request.form()
    prefix = await request.body()
    fields: list[tuple[str, str | UploadFile]] = [*text_fields(prefix, request.headers.get("content-type"))]
    typed = FormData(fields)
    raise RefusedFormError(_refusal_error(problem), typed)


def text_fields(prefix: bytes, content_type: str | None) -> list[tuple[str, str]]:
    """The text fields complete within ``prefix``, the start of a form body (multipart or urlencoded):
    file parts and a field cut off by the end of ``prefix`` are left out."""
    kind, params = parse_options_header(content_type or "")
    if kind == b"application/x-www-form-urlencoded":
        pairs = prefix.decode("utf-8", errors="replace").split("&")
        return parse_qsl("&".join(pairs[:-1] if len(pairs) > 1 else pairs), keep_blank_values=True)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        return []
    found: list[tuple[str, str]] = []
    part: dict[str, bytearray] = {}
    header = bytearray()
    value = bytearray()

    def on_part_begin() -> None:
        part.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        value.extend(data[start:end])

    def on_header_end() -> None:
        part[bytes(header).decode("latin-1").lower()] = bytearray(value)
        header.clear()
        value.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part.setdefault("\0data", bytearray()).extend(data[start:end])

    def on_part_end() -> None:
        _, disposition = parse_options_header(bytes(part.get("content-disposition", b"")))
        name = disposition.get(b"name")
        if name is not None and b"filename" not in disposition:
            found.append(
                (name.decode("utf-8", errors="replace"), part.get("\0data", b"").decode("utf-8", errors="replace"))
            )

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    with contextlib.suppress(MultipartParseError):  # what was found before the damage is still what was typed
        parser.write(prefix)
    return found
