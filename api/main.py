"""The FastAPI application: ``create_app(settings)``, ``app``, and ``asgi`` (``app`` behind the eligibility
shortcut, :func:`serving_app`) for ``uvicorn api.main:asgi``.

Importing this module connects to nothing: the store (``Store.open``, which
migrates the database) and the chain (:func:`connect_chain`, which checks the
node, the manifest and the contracts) are opened by the lifespan, at startup,
and closed at shutdown. Every router of ``api.routers.ROUTERS`` is mounted
under ``/v1``; every error is a problem+json (:mod:`api.problems`). The web pages (:mod:`web`) are mounted
beside them, outside ``/v1`` and outside the OpenAPI document.
"""

from __future__ import annotations

import functools
import gc
import importlib
import importlib.util
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline

from api._links import links_in_openapi
from api.fastpath import EligibilityShortcut
from api.health import router as health_router
from api.limits import RequestGate
from api.observability import Observed
from api.problems import PROBLEM_JSON, PROBLEM_REF, Problem, install_problem_handlers, problem_response_spec
from api.serving import main as main  # ledger-api is api.serving:main; kept for scripts installed before
from api.staleness import IndexFreshness
from api.upkeep import upkeep
from ledger_service.chain.signers import connect_chain
from ledger_service.documents.factory import open_document_store
from ledger_service.logs import configure_logging
from ledger_service.metrics import forget_dead_processes, mark_process_dead
from ledger_service.recursion import restore_recursion_limit
from ledger_service.settings import Settings, get_settings
from ledger_service.store.handle import SQLITE_MMAP_BYTES, Store
from ledger_service.store.sent_transactions import SentTransactions
from web.app import mount_pages

# The eth stack raised it at import (py_ecc): at 100,000 a deeply nested JSON body overflows the C stack of
# the json decoder (a segfault, not a RecursionError). Restored here, after this module's imports, and again
# at each worker's startup, after the lifespan's.
restore_recursion_limit()

API_PREFIX = "/v1"
TITLE = "Returns ledger API"
DESCRIPTION = (
    "Published return policies, return requests answered at once with reasons, and refunds locked in an "
    "on-chain escrow and released by rules. Actors authenticate with `Authorization: Bearer <API key>`, "
    "consumers with `Authorization: ReturnToken <token>` (returned once by the merchant's sale call). "
    "Every error is an RFC 9457 problem (`application/problem+json`)."
)


def default_routers() -> Sequence[APIRouter]:
    """``api.routers.ROUTERS`` (each router with its own prefix, e.g. ``/returns``); none if that package
    does not exist yet."""
    if importlib.util.find_spec("api.routers") is None:
        return ()
    module = importlib.import_module("api.routers")
    routers: Sequence[APIRouter] = getattr(module, "ROUTERS", ())
    return routers


def create_app(settings: Settings | None = None, *, routers: Sequence[APIRouter] | None = None) -> FastAPI:
    """A new application; ``settings`` default to the environment's (read at startup, not here)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings if settings is not None else get_settings()
        configure_logging(resolved)
        store = await anyio.to_thread.run_sync(
            functools.partial(
                Store.open,
                resolved.database_url,
                mmap_bytes=SQLITE_MMAP_BYTES,
                pool_size=resolved.database_pool_size,
            )
        )
        try:
            # every worker and replica allocates its signers' nonces from the database's one record
            chain = await anyio.to_thread.run_sync(
                functools.partial(connect_chain, resolved, nonces=SentTransactions(store))
            )
        except BaseException:
            store.close()
            raise
        forget_dead_processes(resolved.metrics_dir)
        app.state.settings = resolved
        app.state.store = store
        app.state.chain = chain
        app.state.documents = open_document_store(resolved)
        restore_recursion_limit()
        # the request gate reads every route's policy from the OpenAPI document: made now (over half a second),
        # not in the first request each worker serves
        await anyio.to_thread.run_sync(app.openapi)
        freeze_startup_objects()
        try:
            async with upkeep(store=store, settings=resolved, chain=chain, freshness=app.state.freshness):
                yield
        finally:
            store.close()
            mark_process_dead(resolved.metrics_dir)

    # FastAPI's /docs and /redoc load Swagger UI and ReDoc from a CDN: a blank page without internet. These
    # serve the same pages with the assets bundled in fastapi-offline (under /static-offline-docs).
    app = FastAPIOffline(title=TITLE, description=DESCRIPTION, version="1.0.0", lifespan=lifespan)
    app.state.freshness = IndexFreshness()  # before the lifespan: the serving stack's headers read it
    install_problem_handlers(app)
    for router in default_routers() if routers is None else routers:
        app.include_router(router, prefix=API_PREFIX)
    # /healthz, /readyz and /metrics (outside /v1 and outside the OpenAPI document)
    app.include_router(health_router)
    # the web pages (outside /v1 and outside the OpenAPI document), served by the same process
    mount_pages(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = links_in_openapi(
                problems_in_openapi(
                    get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


_frozen = False


def freeze_startup_objects() -> None:
    """Once per process, after the first startup: everything allocated so far (modules, the app, the routes'
    models) lives as long as the process; moved out of the collector's sight (``gc.freeze``), a full
    collection walks only what requests allocate: shorter GC pauses, a smaller latency tail.

    Then a young collection every 10,000 allocations rather than 700: at 700, one ran many times within each
    request that builds thousands of rows (an analytics answer), moving its live temporaries to the old
    generation, which soon called a full collection (tens of ms, paid by whichever request triggered it);
    with the larger threshold most temporaries are freed by their reference counts first."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()
        gc.set_threshold(10_000, 10, 10)


def problems_in_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Documents every error response as a problem+json :class:`Problem`: replaces FastAPI's 422 schema,
    adds the request gate's answers (:mod:`api.limits`: 400 and 415 to operations with a body, 413 and 431
    to every operation), 401 to operations with security, 403 to those an API key opens and ``5XX`` to every
    operation."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(problem_schema.pop("$defs", {}))
    components["Problem"] = problem_schema
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses: dict[str, Any] = operation["responses"]
            if "requestBody" in operation:
                responses.setdefault(
                    "400",
                    problem_response_spec("The body could not be parsed (not JSON, not UTF-8, or nested too deep)"),
                )
                responses.setdefault("415", problem_response_spec("This endpoint does not take that media type"))
            # the gate measures a body before it knows the operation ignores it: any operation may answer 413
            responses.setdefault("413", problem_response_spec("The body is larger than this endpoint accepts"))
            responses.setdefault("431", problem_response_spec("The request's headers are too large or too many"))
            if operation.get("security"):
                responses.setdefault("401", problem_response_spec("Missing, invalid or revoked credentials"))
                # a 403 is an API key of another role: an operation open only to return tokens never answers it
                if any("ApiKey" in requirement for requirement in operation["security"]):
                    responses.setdefault("403", problem_response_spec("The credentials do not allow this"))
            responses.setdefault("5XX", problem_response_spec("The service could not answer"))
            for status, response in responses.items():
                if status[0] in "45":
                    response["content"] = {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}
    return schema


def serving_app(app: FastAPI) -> Observed:
    """The ASGI application to serve: the request id, request metrics and the index's block and staleness
    headers (:mod:`api.observability`, :mod:`api.staleness`), the request gate (:mod:`api.limits`: head and
    body limits, credentials before the body), then the eligibility shortcut (:mod:`api.fastpath`), which
    answers the plain, cached eligibility reads itself, then ``app``."""
    return Observed(RequestGate(EligibilityShortcut(app), api=app), api=app)


app = create_app()
asgi = serving_app(app)
