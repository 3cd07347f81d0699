"""The caller of a request: its ``Authorization`` header parsed, its credential verified once.

Actors send ``Authorization: Bearer rlk_...``, consumers ``Authorization: ReturnToken rrt_...``. Missing,
malformed, unknown or revoked credentials raise :class:`AuthenticationError` (a 401 problem with
``WWW-Authenticate``). A request's principal is verified once, however many dependencies ask (it is kept in
the request's state under :data:`PRINCIPAL_STATE_KEY`, where the request gate, :mod:`api.limits`, may
already have left it), and a verified credential is cached for a few seconds
(:mod:`ledger_service.access._cache`; a revocation made by another process empties the cache at the worker's
next revocation check, :mod:`api.upkeep`).

The dependencies of :mod:`api.deps`, the request gate, the eligibility shortcut (:mod:`api.fastpath`) and
the idempotency protocol (:mod:`api.idempotency`) all go through these functions: one rule for every way in.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import anyio
from fastapi import Request

from ledger_service.access import (
    Actor,
    Consumer,
    cached_api_key,
    cached_return_token,
    verify_api_key,
    verify_return_token,
)
from ledger_service.access.tokens import SCHEME as RETURN_TOKEN_SCHEME
from ledger_service.errors import AuthenticationError
from ledger_service.store.handle import Store

PRINCIPAL_STATE_KEY = "ledger_principal"
"""Where a request's verified principal is kept in its state (``request.state`` / ``scope["state"]``)."""


def credentials_of(request: Request, *, wanted: str) -> tuple[str, str]:
    """(``"bearer"`` or ``"token"``, the presented secret) of the request's Authorization header (401
    problem if it is missing, of another scheme, or sent more than once)."""
    return parse_authorization_headers(request.headers.getlist("Authorization"), wanted=wanted)


def parse_authorization_headers(values: Sequence[str], *, wanted: str) -> tuple[str, str]:
    """:func:`parse_authorization` of every Authorization header of a request (e.g. read from an ASGI
    scope); :class:`AuthenticationError` if there is more than one: which would count is up to each proxy
    and framework on the way, so none does."""
    if len(values) > 1:
        raise AuthenticationError(
            f"this request has {len(values)} Authorization headers: send one Authorization header, with one credential",
            scheme=wanted,
        )
    return parse_authorization(values[0] if values else "", wanted=wanted)


def parse_authorization(value: str, *, wanted: str) -> tuple[str, str]:
    """(``"bearer"`` or ``"token"``, the presented secret) of an Authorization header's value;
    :class:`AuthenticationError` if it is empty or of another scheme (``wanted`` names the scheme asked for)."""
    header = value.strip()
    scheme, _, credentials = header.partition(" ")
    credentials = credentials.strip()
    if not header:
        raise AuthenticationError(_missing(wanted), scheme=wanted)
    if scheme.lower() == "bearer" and credentials:
        return "bearer", credentials
    if scheme.lower() == RETURN_TOKEN_SCHEME.lower() and credentials:
        return "token", credentials
    raise AuthenticationError(
        f"the Authorization header must be `Bearer <API key>` or `{RETURN_TOKEN_SCHEME} <return token>`",
        scheme=wanted,
    )


def authenticate(request: Request, store: Store, *, wanted: str) -> Actor | Consumer:
    """The caller of ``request`` (verified once per request); ``wanted`` names the scheme in messages.
    Blocking (may read the database): call it from a worker thread."""
    cached = getattr(request.state, PRINCIPAL_STATE_KEY, None)
    if isinstance(cached, Actor | Consumer):
        return cached
    principal = verify_principal(store, *credentials_of(request, wanted=wanted))
    setattr(request.state, PRINCIPAL_STATE_KEY, principal)
    return principal


def verify_principal(store: Store, kind: str, credentials: str) -> Actor | Consumer:
    """The principal of credentials (from :func:`parse_authorization`), checked against the database (and
    cached); blocking."""
    if kind == "bearer":
        return verify_api_key(store=store, presented=credentials)
    return verify_return_token(store=store, presented=credentials)


def needs_api_key() -> AuthenticationError:
    """The 401 for a return token sent to an endpoint that takes API keys only."""
    return AuthenticationError("this endpoint needs an API key (`Authorization: Bearer <API key>`)")


def needs_return_token() -> AuthenticationError:
    """The 401 for an API key sent to an endpoint that takes return tokens only."""
    return AuthenticationError(
        f"this endpoint needs a return token (`Authorization: {RETURN_TOKEN_SCHEME} <token>`)",
        scheme=RETURN_TOKEN_SCHEME,
    )


async def authenticate_async(request: Request, *, wanted: str) -> Actor | Consumer:
    """:func:`authenticate` without leaving the event loop when the credential was verified recently
    (:mod:`ledger_service.access._cache`); otherwise in a worker thread (the application's store)."""
    cached = getattr(request.state, PRINCIPAL_STATE_KEY, None)
    if isinstance(cached, Actor | Consumer):
        return cached
    principal = cached_principal(*credentials_of(request, wanted=wanted))
    if principal is None:
        store: Store = request.app.state.store
        return await anyio.to_thread.run_sync(functools.partial(authenticate, request, store, wanted=wanted))
    setattr(request.state, PRINCIPAL_STATE_KEY, principal)
    return principal


def cached_principal(kind: str, credentials: str) -> Actor | Consumer | None:
    """The principal of credentials (from :func:`parse_authorization`) verified less than the cache's TTL ago,
    without I/O; None if they must be checked against the database; :class:`AuthenticationError` if malformed."""
    return cached_api_key(credentials) if kind == "bearer" else cached_return_token(credentials)


def _missing(wanted: str) -> str:
    if wanted == RETURN_TOKEN_SCHEME:
        return f"no credentials: send `Authorization: {RETURN_TOKEN_SCHEME} <return token>` (from the sale)"
    return "no credentials: send `Authorization: Bearer <API key>`"
