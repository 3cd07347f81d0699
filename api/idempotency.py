"""Idempotent writes: a POST with an ``Idempotency-Key`` header runs at most once per caller and key.

Invariants:
- the key is scoped to the credential that sent it: two return tokens of one consumer, or two API keys of
  one account, never share a key's answer;
- the stored answer (a 2xx, or a 4xx problem) is sealed under the caller's credential, the key and the
  request (:func:`~ledger_service.access.seal`; a sale's answer holds a return token), so the database alone
  cannot show it; it expires after ``LEDGER_IDEMPOTENCY_TTL_S``;
- a claim is always settled: completed with the answer, or released (a 5xx, an unexpected failure, or a
  request that never reached :meth:`Idempotency.run`), so a retry runs again instead of waiting for a lease.

Routes declare ``idem: IdempotencyDep`` (:mod:`api.deps`) and return ``idem.run(...)``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import structlog
from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from starlette.responses import Response

from api.auth import authenticate_async, credentials_of
from api.problems import PROBLEM_JSON, problem_for, render
from ledger_service.access import Actor, Consumer, seal, unseal
from ledger_service.chain.signers import ChainContext
from ledger_service.errors import ConflictError, IndexBehindError, InvalidRequestError
from ledger_service.settings import IDEMPOTENCY_LEASE_S, Settings
from ledger_service.store import idempotency as records
from ledger_service.store.handle import Store

log = structlog.get_logger("api")

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotency-Replayed"
IDEMPOTENCY_WAIT_S = 30.0
"""How long a duplicate waits for the first request with its key before it gets a 409."""
IDEMPOTENCY_POLL_S = 0.05


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
    :func:`api.freshness.wait_for_block`: the write happened, so that answer is stored and a
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
        replay: records.IdempotencyRow | None = None,
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
            records.complete_idempotency_key(
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
            records.release_idempotency_key(self._store, actor=self._actor, key=str(self.key))
        except Exception:
            log.error("could not release an idempotency key", key=self.key, exc_info=True)


@dataclass(frozen=True, slots=True)
class Encoded:
    """A result already encoded as JSON, answered as it is (a hot route that writes its body itself, without
    the generic encoder's walk over every field)."""

    json: str


def _json(result: Any, status_code: int) -> Response:
    if isinstance(result, Encoded):
        content = result.json
    else:
        content = json.dumps(jsonable_encoder(result), separators=(",", ":"), ensure_ascii=False)
    return Response(content=content, status_code=status_code, media_type="application/json")


def _replayed(row: records.IdempotencyRow, *, credential: str, context: str) -> Response:
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
    return await authenticate_async(request, wanted="Bearer")


async def idempotency(
    request: Request,
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
    store: Store = request.app.state.store
    actor = caller.principal
    if idempotency_key is None:
        yield Idempotency(request=request, store=store, actor=actor, key=None)
        return
    key: str = idempotency_key
    credential = credentials_of(request, wanted="Bearer")[1]  # verified above (``caller``): it parses
    request_hash = _request_hash(request, await request.body())
    ttl_s = _idempotency_ttl(request)

    def claim() -> records.IdempotencyRow | None:
        return records.claim_idempotency_key(
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

    def look() -> records.IdempotencyRow | None:
        """The key's row, read only (waiting duplicates must not queue for SQLite's write lock)."""
        row = records.get_idempotency_key(store, actor=actor, key=key)
        if row is None or (row.status is None and row.created_at <= time.time() - IDEMPOTENCY_LEASE_S):
            return claim()  # released, or its owner died: try to take it
        return row

    def ours(replay: records.IdempotencyRow | None = None) -> Idempotency:
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
