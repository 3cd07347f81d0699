"""FastAPI dependencies, as ``Annotated`` aliases: the store, the chain, the caller, idempotency.

Callers (checked by :mod:`api.auth`):
- actors send ``Authorization: Bearer rlk_...`` (:data:`ActorDep`; a role check with
  :func:`require_role` or the aliases :data:`MerchantDep` ...);
- consumers send ``Authorization: ReturnToken rrt_...`` (:data:`ConsumerDep`; :data:`OptionalConsumerDep`
  where anonymous callers are welcome too);
- :data:`PrincipalDep` accepts either.
Missing, malformed, unknown or revoked credentials are a 401 problem with
``WWW-Authenticate``; a valid key of the wrong role is a 403 problem. A
request's credentials are verified once, however many dependencies ask.

Writes: :data:`IdempotencyDep` makes a POST safe to retry with an ``Idempotency-Key`` header
(:mod:`api.idempotency`); ``?wait=true`` answers once the index reached the write's block
(:mod:`api.freshness`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.auth import authenticate, authenticate_async, needs_api_key, needs_return_token
from api.idempotency import Idempotency, idempotency
from ledger_service.access import Actor, Consumer, Role
from ledger_service.access.tokens import SCHEME as RETURN_TOKEN_SCHEME
from ledger_service.chain.signers import ChainContext
from ledger_service.documents.interface import DocumentStore
from ledger_service.errors import PermissionDeniedError
from ledger_service.settings import Settings
from ledger_service.store.handle import Store

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

# Security schemes: they only document the credentials in OpenAPI (/docs "Authorize"); api.auth checks them.
_api_key_scheme = HTTPBearer(
    scheme_name="ApiKey", description="An actor's API key: `Authorization: Bearer rlk_...`", auto_error=False
)
_return_token_scheme = APIKeyHeader(
    name="Authorization",
    scheme_name="ReturnToken",
    description="A consumer's return token, with its scheme: `Authorization: ReturnToken rrt_...`",
    auto_error=False,
)


async def current_actor(
    request: Request,
    _documented: Annotated[HTTPAuthorizationCredentials | None, Depends(_api_key_scheme)],
) -> Actor:
    """The actor holding the request's API key (401 otherwise)."""
    principal = await authenticate_async(request, wanted="Bearer")
    if not isinstance(principal, Actor):
        raise needs_api_key()
    return principal


async def current_consumer(
    request: Request,
    _documented: Annotated[str | None, Depends(_return_token_scheme)],
) -> Consumer:
    """The consumer holding the request's return token (401 otherwise)."""
    principal = await authenticate_async(request, wanted=RETURN_TOKEN_SCHEME)
    if not isinstance(principal, Consumer):
        raise needs_return_token()
    return principal


async def optional_consumer(
    request: Request,
    _documented: Annotated[str | None, Depends(_return_token_scheme)],
) -> Consumer | None:
    """The consumer holding the request's return token; None without an Authorization header (401 for a
    header that is not a valid return token). The route declares its OpenAPI ``security`` as
    ``[{}, {"ReturnToken": []}]`` (``openapi_extra``), so that the request gate lets anonymous requests in."""
    if not request.headers.getlist("Authorization"):
        return None
    return await current_consumer(request, _documented)


def current_principal(
    request: Request,
    store: StoreDep,
    _key: Annotated[HTTPAuthorizationCredentials | None, Depends(_api_key_scheme)],
    _token: Annotated[str | None, Depends(_return_token_scheme)],
) -> Actor | Consumer:
    """An actor or a consumer, whichever the credentials name (401 without valid ones). Blocking: for a
    caller outside FastAPI's dependencies (in a worker thread); :data:`PrincipalDep` uses
    :func:`current_principal_async`."""
    return authenticate(request, store, wanted="Bearer")


async def current_principal_async(
    request: Request,
    _key: Annotated[HTTPAuthorizationCredentials | None, Depends(_api_key_scheme)],
    _token: Annotated[str | None, Depends(_return_token_scheme)],
) -> Actor | Consumer:
    """:func:`current_principal`, as a dependency that stays on the event loop when it can."""
    return await authenticate_async(request, wanted="Bearer")


async def _principal_of(request: Request) -> Actor | Consumer:
    """The caller, actor or consumer (the eligibility shortcut, :mod:`api.fastpath`, does the same from the
    credential cache)."""
    return await authenticate_async(request, wanted="Bearer")


PRINCIPAL_SECURITY: dict[str, Any] = {"security": [{"ApiKey": []}, {"ReturnToken": []}]}
"""The OpenAPI ``security`` of :data:`PrincipalDep`, for a route that uses :data:`HotPrincipalDep` (pass it as
the route's ``openapi_extra``)."""

ActorDep = Annotated[Actor, Depends(current_actor)]
ConsumerDep = Annotated[Consumer, Depends(current_consumer)]
OptionalConsumerDep = Annotated[Consumer | None, Depends(optional_consumer)]
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


IdempotencyDep = Annotated[Idempotency, Depends(idempotency)]
""":class:`~api.idempotency.Idempotency`: a POST made safe to retry with an ``Idempotency-Key`` header."""
