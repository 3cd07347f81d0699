"""FastAPI dependencies, as ``Annotated`` aliases: the store, the chain, the caller, idempotency, freshness.

Callers:
- actors send ``Authorization: Bearer rlk_...`` (:data:`ActorDep`; a role check with
  :func:`require_role` or the aliases :data:`MerchantDep` ...);
- consumers send ``Authorization: ReturnToken rrt_...`` (:data:`ConsumerDep`);
- :data:`PrincipalDep` accepts either.
Missing, malformed, unknown or revoked credentials are a 401 problem with
``WWW-Authenticate``; a valid key of the wrong role is a 403 problem. A
request's credentials are verified once, however many dependencies ask, and a
verified credential is cached for a few seconds (:mod:`ledger_service.access._cache`;
a revocation made by another process empties the cache at the worker's next
revocation check, :mod:`api.upkeep`).

Writes: :data:`IdempotencyDep` makes a POST safe to retry with an
``Idempotency-Key`` header (per credential: two return tokens of one consumer, or
two API keys of one account, never share a key's answer); the stored answer is
sealed under the caller's credential (a sale's answer holds a return token) and
expires after ``LEDGER_IDEMPOTENCY_TTL_S``. :func:`wait_for_block` makes ``?wait=true``
answer only once the index reached the write's block.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import structlog
from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import Response

from api.problems import PROBLEM_JSON, problem_for, render
from ledger_service.access import (
    Actor,
    Consumer,
    Role,
    cached_api_key,
    cached_return_token,
    seal,
    unseal,
    verify_api_key,
    verify_return_token,
)
from ledger_service.access.tokens import SCHEME as RETURN_TOKEN_SCHEME
from ledger_service.chain.signers import ChainContext
from ledger_service.documents.store import DocumentStore
from ledger_service.errors import (
    AuthenticationError,
    ConflictError,
    IndexBehindError,
    InvalidRequestError,
    PermissionDeniedError,
)
from ledger_service.settings import IDEMPOTENCY_LEASE_S, Settings
from ledger_service.store import api_queries
from ledger_service.store.store import Store

log = structlog.get_logger("api")

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotency-Replayed"
IDEMPOTENCY_WAIT_S = 30.0
"""How long a duplicate waits for the first request with its key before it gets a 409."""
IDEMPOTENCY_POLL_S = 0.05
WAIT_POLL_S = 0.02


# ---- application state ------------------------------------------------------------------
#
# The dependencies below are ``async def`` (they do no I/O, or only on a cache miss, in a worker thread):
# a sync dependency costs FastAPI a hop to the thread pool per request, which a hot route feels.


async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_chain(request: Request) -> ChainContext:
    chain: ChainContext = request.app.state.chain
    return chain


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_documents(request: Request) -> DocumentStore:
    documents: DocumentStore = request.app.state.documents
    return documents


StoreDep = Annotated[Store, Depends(get_store)]
DocumentsDep = Annotated[DocumentStore, Depends(get_documents)]
ChainDep = Annotated[ChainContext, Depends(get_chain)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


@dataclass(frozen=True)
class Services:
    """Everything a domain function may need, in one argument."""

    store: Store
    chain: ChainContext
    settings: Settings
    documents: DocumentStore


async def get_services(store: StoreDep, chain: ChainDep, settings: SettingsDep, documents: DocumentsDep) -> Services:
    return Services(store=store, chain=chain, settings=settings, documents=documents)


ServicesDep = Annotated[Services, Depends(get_services)]


def services_of(request: Request) -> Services:
    """The request's :class:`Services`, without the four dependencies of :data:`ServicesDep` (for a hot
    route: FastAPI's work per dependency is a measurable share of a cached read)."""
    return services_of_state(request.app.state)


def services_of_state(state: Any) -> Services:
    """The :class:`Services` held by an application's ``state`` (set by its lifespan)."""
    return Services(store=state.store, chain=state.chain, settings=state.settings, documents=state.documents)


# ---- callers ----------------------------------------------------------------------------------

# Security schemes: they only document the credentials in OpenAPI (/docs "Authorize"); checking is below.
_api_key_scheme = HTTPBearer(
    scheme_name="ApiKey", description="An actor's API key: `Authorization: Bearer rlk_...`", auto_error=False
)
_return_token_scheme = APIKeyHeader(
    name="Authorization",
    scheme_name="ReturnToken",
    description="A consumer's return token, with its scheme: `Authorization: ReturnToken rrt_...`",
    auto_error=False,
)
_STATE_KEY = "ledger_principal"


def _credentials(request: Request, *, wanted: str) -> tuple[str, str]:
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


def _authenticate(request: Request, store: Store, *, wanted: str) -> Actor | Consumer:
    """The caller of ``request`` (verified once per request); ``wanted`` names the scheme in messages.
    Blocking (may read the database): call it from a worker thread."""
    cached = getattr(request.state, _STATE_KEY, None)
    if isinstance(cached, Actor | Consumer):
        return cached
    kind, credentials = _credentials(request, wanted=wanted)
    if kind == "bearer":
        principal: Actor | Consumer = verify_api_key(store=store, presented=credentials)
    else:
        principal = verify_return_token(store=store, presented=credentials)
    setattr(request.state, _STATE_KEY, principal)
    return principal


async def _authenticate_async(request: Request, *, wanted: str) -> Actor | Consumer:
    """:func:`_authenticate` without leaving the event loop when the credential was verified recently
    (:mod:`ledger_service.access._cache`); otherwise in a worker thread (the application's store)."""
    cached = getattr(request.state, _STATE_KEY, None)
    if isinstance(cached, Actor | Consumer):
        return cached
    principal = cached_principal(*_credentials(request, wanted=wanted))
    if principal is None:
        store: Store = request.app.state.store
        return await anyio.to_thread.run_sync(functools.partial(_authenticate, request, store, wanted=wanted))
    setattr(request.state, _STATE_KEY, principal)
    return principal


def cached_principal(kind: str, credentials: str) -> Actor | Consumer | None:
    """The principal of credentials (from :func:`parse_authorization`) verified less than the cache's TTL ago,
    without I/O; None if they must be checked against the database; :class:`AuthenticationError` if malformed."""
    return cached_api_key(credentials) if kind == "bearer" else cached_return_token(credentials)


def _missing(wanted: str) -> str:
    if wanted == RETURN_TOKEN_SCHEME:
        return f"no credentials: send `Authorization: {RETURN_TOKEN_SCHEME} <return token>` (from the sale)"
    return "no credentials: send `Authorization: Bearer <API key>`"


async def current_actor(
    request: Request,
    _documented: Annotated[HTTPAuthorizationCredentials | None, Depends(_api_key_scheme)],
) -> Actor:
    """The actor holding the request's API key (401 otherwise)."""
    principal = await _authenticate_async(request, wanted="Bearer")
    if not isinstance(principal, Actor):
        raise AuthenticationError("this endpoint needs an API key (`Authorization: Bearer <API key>`)")
    return principal


async def current_consumer(
    request: Request,
    _documented: Annotated[str | None, Depends(_return_token_scheme)],
) -> Consumer:
    """The consumer holding the request's return token (401 otherwise)."""
    principal = await _authenticate_async(request, wanted=RETURN_TOKEN_SCHEME)
    if not isinstance(principal, Consumer):
        raise AuthenticationError(
            f"this endpoint needs a return token (`Authorization: {RETURN_TOKEN_SCHEME} <token>`)",
            scheme=RETURN_TOKEN_SCHEME,
        )
    return principal


def current_principal(
    request: Request,
    store: StoreDep,
    _key: Annotated[HTTPAuthorizationCredentials | None, Depends(_api_key_scheme)],
    _token: Annotated[str | None, Depends(_return_token_scheme)],
) -> Actor | Consumer:
    """An actor or a consumer, whichever the credentials name (401 without valid ones). Blocking: for a
    caller outside FastAPI's dependencies (in a worker thread); :data:`PrincipalDep` uses
    :func:`current_principal_async`."""
    return _authenticate(request, store, wanted="Bearer")


async def current_principal_async(
    request: Request,
    _key: Annotated[HTTPAuthorizationCredentials | None, Depends(_api_key_scheme)],
    _token: Annotated[str | None, Depends(_return_token_scheme)],
) -> Actor | Consumer:
    """:func:`current_principal`, as a dependency that stays on the event loop when it can."""
    return await _authenticate_async(request, wanted="Bearer")


async def _principal_of(request: Request) -> Actor | Consumer:
    return await _authenticate_async(request, wanted="Bearer")


PRINCIPAL_SECURITY: dict[str, Any] = {"security": [{"ApiKey": []}, {"ReturnToken": []}]}
"""The OpenAPI ``security`` of :data:`PrincipalDep`, for a route that uses :data:`HotPrincipalDep` (pass it as
the route's ``openapi_extra``)."""

ActorDep = Annotated[Actor, Depends(current_actor)]
ConsumerDep = Annotated[Consumer, Depends(current_consumer)]
PrincipalDep = Annotated[Actor | Consumer, Depends(current_principal_async)]
HotPrincipalDep = Annotated[Actor | Consumer, Depends(_principal_of)]
""":data:`PrincipalDep` without its two documentation-only sub-dependencies (the security schemes): for a hot
route, which declares ``openapi_extra=PRINCIPAL_SECURITY`` instead (same checks, same OpenAPI)."""


def require_role(*roles: Role) -> Callable[[Actor], Awaitable[Actor]]:
    """A dependency: the actor, if its key has one of ``roles`` (403 problem otherwise).

    ``actor: Annotated[Actor, Depends(require_role(Role.MERCHANT, Role.AUDITOR))]``
    """
    allowed = frozenset(roles)
    names = " or ".join(sorted(r.value for r in allowed))

    async def dependency(actor: ActorDep) -> Actor:
        if actor.role not in allowed:
            raise PermissionDeniedError(f"this endpoint is for {names} keys; this key is a {actor.role.value} key")
        return actor

    return dependency


MerchantDep = Annotated[Actor, Depends(require_role(Role.MERCHANT))]
CarrierDep = Annotated[Actor, Depends(require_role(Role.CARRIER))]
InspectorDep = Annotated[Actor, Depends(require_role(Role.INSPECTOR))]
ArbiterDep = Annotated[Actor, Depends(require_role(Role.ARBITER))]
AdminDep = Annotated[Actor, Depends(require_role(Role.ADMIN))]


# ---- idempotency ----------------------------------------------------------------------------


class Idempotency:
    """Runs a POST's effect at most once per (caller, ``Idempotency-Key``) and replays its response.

    Use in a route that declares ``idem: IdempotencyDep`` and returns ``idem.run(...)``:

        @router.post("", status_code=201, response_model=ReturnDecisionPublic)
        def create(body: ReturnCreate, consumer: ConsumerDep, idem: IdempotencyDep, svc: ServicesDep) -> Response:
            return idem.run(lambda: open_return(...), status_code=201)

    Without the header ``run`` just runs. With it: the first request runs and its
    response is stored (a 2xx, or a 4xx problem); a retry with the same key and
    the same request gets that response again (header ``Idempotency-Replayed: true``)
    without running anything; the same key with a different request is a 422; a
    duplicate that arrives while the first still runs waits for it (then replays),
    or gets a 409 after :data:`IDEMPOTENCY_WAIT_S`. The stored response is sealed with
    :func:`~ledger_service.access.seal` under the caller's credential (which is not stored), the key and the
    request: the database alone cannot show it. A 5xx or unexpected failure
    is not stored: the claim is dropped so a retry runs again; so is the claim of a request that never
    reached ``run`` (e.g. its body failed validation after the key was claimed). Except the 504 of
    :func:`wait_for_block`: the write happened, so that answer is stored and a
    retry does not write again (the problem tells the client to read instead).
    """

    def __init__(
        self,
        *,
        request: Request,
        store: Store,
        actor: str,
        key: str | None,
        credential: str = "",
        request_hash: str = "",
        replay: api_queries.IdempotencyRow | None = None,
    ) -> None:
        self._request = request
        self._store = store
        self._actor = actor
        self._credential = credential
        self._context = f"{actor}\0{key}\0{request_hash}"
        self.key = key
        self.replay = replay
        self.settled = key is None or replay is not None
        """Whether the claim on ``key`` (if any) was completed or released."""

    def run(self, produce: Callable[[], Any], *, status_code: int = 200) -> Response:
        """``produce()``'s result as JSON with ``status_code``, or the stored response of an earlier run."""
        if self.replay is not None:
            return _replayed(self.replay, credential=self._credential, context=self._context)
        if self.key is None:
            return _json(produce(), status_code)
        try:
            result = produce()
        except Exception as exc:
            chain = getattr(self._request.app.state, "chain", None)
            problem = problem_for(exc, chain=chain if isinstance(chain, ChainContext) else None)
            if problem.status >= 500 and not isinstance(exc, IndexBehindError):
                self._release()
                raise
            response = render(problem, instance=self._request.url.path)
            self._complete(response)
            return response
        response = _json(result, status_code)
        self._complete(response)
        return response

    def _complete(self, response: Response) -> None:
        self.settled = True
        try:
            api_queries.complete_idempotency_key(
                self._store,
                actor=self._actor,
                key=str(self.key),
                status=response.status_code,
                response_body=seal(
                    bytes(response.body).decode("utf-8"), credential=self._credential, context=self._context
                ),
                now=int(time.time()),
            )
        except Exception:  # the effect happened: answer anyway; a retry waits for the lease, then runs again
            log.error("could not store an idempotent response", key=self.key, exc_info=True)

    def _release(self) -> None:
        self.settled = True
        try:
            api_queries.release_idempotency_key(self._store, actor=self._actor, key=str(self.key))
        except Exception:
            log.error("could not release an idempotency key", key=self.key, exc_info=True)


def _json(result: Any, status_code: int) -> Response:
    content = json.dumps(jsonable_encoder(result), separators=(",", ":"), ensure_ascii=False)
    return Response(content=content, status_code=status_code, media_type="application/json")


def _replayed(row: api_queries.IdempotencyRow, *, credential: str, context: str) -> Response:
    status = int(row.status or 200)
    body = unseal(row.response_body or "", credential=credential, context=context)
    if body is None:
        raise ConflictError(
            f"the answer stored for this {IDEMPOTENCY_HEADER} cannot be read back; send a new key for this request"
        )
    media_type = PROBLEM_JSON if status >= 400 else "application/json"
    return Response(content=body, status_code=status, media_type=media_type, headers={REPLAYED_HEADER: "true"})


def _request_hash(request: Request, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.url.path.encode(), request.url.query.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


async def _caller(request: Request) -> Actor | Consumer:
    """The caller, whichever credentials it sent (not documented in OpenAPI: the route's own auth is)."""
    return await _authenticate_async(request, wanted="Bearer")


async def idempotency(
    request: Request,
    store: StoreDep,
    caller: Annotated[Actor | Consumer, Depends(_caller)],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=IDEMPOTENCY_HEADER,
            min_length=1,
            max_length=255,
            description="Any unique string (e.g. a UUID): a retry with the same key and body is answered, "
            "not run again",
        ),
    ] = None,
) -> AsyncIterator[Idempotency]:
    """The :class:`Idempotency` of this request: claims the key, or waits for / replays its first use.
    A claim the request did not settle through :meth:`Idempotency.run` is released when it ends."""
    actor = caller.principal
    if idempotency_key is None:
        yield Idempotency(request=request, store=store, actor=actor, key=None)
        return
    key: str = idempotency_key
    credential = _credentials(request, wanted="Bearer")[1]  # verified above (``caller``): it parses
    request_hash = _request_hash(request, await request.body())
    ttl_s = _idempotency_ttl(request)

    def claim() -> api_queries.IdempotencyRow | None:
        return api_queries.claim_idempotency_key(
            store,
            actor=actor,
            key=key,
            method=request.method,
            path=request.url.path,
            request_hash=request_hash,
            now=int(time.time()),
            lease_s=IDEMPOTENCY_LEASE_S,
            ttl_s=ttl_s,
        )

    def look() -> api_queries.IdempotencyRow | None:
        """The key's row, read only (waiting duplicates must not queue for SQLite's write lock)."""
        row = api_queries.get_idempotency_key(store, actor=actor, key=key)
        if row is None or (row.status is None and row.created_at <= time.time() - IDEMPOTENCY_LEASE_S):
            return claim()  # released, or its owner died: try to take it
        return row

    def ours(replay: api_queries.IdempotencyRow | None = None) -> Idempotency:
        return Idempotency(
            request=request,
            store=store,
            actor=actor,
            key=key,
            credential=credential,
            request_hash=request_hash,
            replay=replay,
        )

    deadline = time.monotonic() + IDEMPOTENCY_WAIT_S
    existing = await anyio.to_thread.run_sync(claim)
    while True:
        if existing is None:
            idem = ours()
            break
        if existing.request_hash != request_hash:
            raise InvalidRequestError(
                f"this {IDEMPOTENCY_HEADER} was used for a different request ({existing.method} {existing.path} "
                "with another body or query); send a new key for a new request"
            )
        if existing.status is not None:
            yield ours(replay=existing)
            return
        if time.monotonic() >= deadline:
            raise ConflictError(
                f"the first request with this {IDEMPOTENCY_HEADER} is still being processed; retry in a moment"
            )
        await anyio.sleep(IDEMPOTENCY_POLL_S)
        existing = await anyio.to_thread.run_sync(look)
    try:
        yield idem
    finally:
        # The request ended without reaching idem.run (e.g. a 422 for its body, found after this dependency
        # claimed the key): drop the claim, or a retry would wait for it and get a 409 until the lease ends.
        if not idem.settled:
            await anyio.to_thread.run_sync(idem._release)


def _idempotency_ttl(request: Request) -> int:
    settings: Settings = request.app.state.settings
    return settings.idempotency_ttl_s


IdempotencyDep = Annotated[Idempotency, Depends(idempotency)]


# ---- read-your-writes -----------------------------------------------------------------------


def wait_for_block(store: Store, block_number: int, *, timeout: float) -> None:
    """Returns once the index's checkpoint is at or above ``block_number``.

    Raises :class:`IndexBehindError` (a 504 problem) after ``timeout`` seconds; the write itself
    succeeded, only the fresh read is not available yet. Blocking: call it from a sync route.
    """
    deadline = time.monotonic() + timeout
    while True:
        checkpoint = store.checkpoint()
        if checkpoint is not None and checkpoint.number >= block_number:
            return
        if time.monotonic() >= deadline:
            indexed = None if checkpoint is None else checkpoint.number
            raise IndexBehindError(
                f"the transaction is in block {block_number}, but the index reached only "
                f"{'no block' if indexed is None else f'block {indexed}'} within {timeout:g} s; the write "
                "succeeded: read the resource again in a moment",
                block_number=block_number,
                indexed=indexed,
            )
        time.sleep(WAIT_POLL_S)
