"""How ``ledger-api`` serves: uvicorn's settings, its HTTP parser with a capped request head, and the supervisor.

- Workers: always under uvicorn's process manager (:class:`uvicorn.supervisors.Multiprocess`), one worker
  or many. The manager holds the listening socket and checks its workers every half second; a worker
  that died (a crash, the OOM killer, a SIGKILL) is replaced, and connections that arrive meanwhile wait
  in the socket's backlog for a live worker. Only requests in flight in the dead worker fail. A worker
  that fails during startup stops the whole service instead (it would fail the same way again).
- Proxies: ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are believed only from ``settings.trusted_proxies``
  (uvicorn's own default trusts 127.0.0.1, so any local client could pick its own address and escape
  the per-address limits); with none configured, proxy headers are ignored and the client is the peer.
- The request head: httptools buffers a request's headers whatever their size; :class:`CappedHttpToolsProtocol`
  answers 431 and closes the connection once the head passes ``settings.api_max_header_bytes`` (give or
  take one read from the socket), before the application sees the request. The application's own gate
  (:mod:`api.limits`) checks the same limit and the number of headers exactly.
- Start-up: the supervisor (``ledger-api``, :func:`main`) imports only this module, uvicorn and the settings,
  not the application: a restarted replica's worker, which imports the application (:func:`served_app`),
  starts that much sooner. The worker imports it with the garbage collector paused (a long import allocates
  hundreds of thousands of objects that all live as long as the process; the collections in between find no
  garbage); the lifespan collects once and freezes them (:func:`api.main.create_app`).
"""

from __future__ import annotations

import gc
import json
import sys
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from ledger_service.settings import Settings, get_settings

if TYPE_CHECKING:
    from api.observability import Observed

APP = "api.serving:served_app"
"""The application each worker serves: a factory (uvicorn calls it once in the worker) returning
:data:`api.main.asgi`."""
PROTOCOL = "api.serving:CappedHttpToolsProtocol"
WORKER_HEALTHCHECK_S = 30
"""Seconds a worker may take to answer the supervisor's health check (uvicorn's default is 5)."""


def uvicorn_config(settings: Settings) -> uvicorn.Config:
    """The server's configuration for ``settings`` (see the module docstring)."""
    trusted = list(settings.trusted_proxies)
    return uvicorn.Config(
        APP,
        host=settings.api_host,
        port=settings.api_port,
        workers=settings.api_workers,
        log_level=settings.log_level.lower(),
        factory=True,
        http=PROTOCOL,
        # the head cap of CappedHttpToolsProtocol (and of h11, if a deployment selects it)
        h11_max_incomplete_event_size=settings.api_max_header_bytes,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted if trusted else "",
        # A worker importing the application on a loaded 2-core machine answered the supervisor's ping late
        # and was killed, again and again, at the default 5 s; a hung worker is still replaced, later.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
    )


def served_app() -> Observed:
    """:data:`api.main.asgi`, imported with the garbage collector paused (see the module docstring)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        from api.main import asgi
    finally:
        if enabled:
            gc.enable()
    return asgi


def main() -> int:
    """``ledger-api``: serves the API on LEDGER_API_HOST:LEDGER_API_PORT with uvicorn, in LEDGER_API_WORKERS
    worker processes under a supervisor that replaces a dead one (each runs the lifespan: its own store
    connections and chain client), with uvloop and httptools; proxy headers only from LEDGER_TRUSTED_PROXIES
    (see the module docstring). Access log lines follow LEDGER_LOG_LEVEL (INFO: one per request; WARNING: none,
    the cheaper choice for a busy read API)."""
    from ledger_service.metrics import prepare_multiprocess_dir

    settings = get_settings()
    # before any worker starts: each worker's metrics go to files there, and any worker's /metrics adds them up
    metrics_dir = prepare_multiprocess_dir(settings.metrics_dir)
    get_settings.cache_clear()
    settings = get_settings()
    workers = settings.api_workers
    proxies = ", ".join(settings.trusted_proxies) or "none"
    print(
        f"ledger-api: serving on http://{settings.api_host}:{settings.api_port} (docs at /docs), "
        f"{workers} worker process{'es' if workers > 1 else ''} under a supervisor; trusted proxies: {proxies}; "
        f"metrics of the workers in {metrics_dir}",
        file=sys.stderr,
    )
    return serve(settings)


def serve(settings: Settings) -> int:
    """Serves until SIGINT or SIGTERM, under the supervisor; 0, or uvicorn's startup-failure code (3) when a
    worker could not start."""
    config = uvicorn_config(settings)
    supervisor = Multiprocess(config, sockets=[config.bind_socket()])
    supervisor.run()
    if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes):
        print("ledger-api: a worker failed to start (its error is above); stopped", file=sys.stderr)
        return STARTUP_FAILURE
    return 0


class CappedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request head larger than the configured cap with a 431
    problem (``config.h11_max_incomplete_event_size``, which :func:`uvicorn_config` sets to
    ``settings.api_max_header_bytes``). Counts the bytes received while a head is incomplete, so a head
    is cut off at most one socket read past the cap."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_limit: int = self.config.h11_max_incomplete_event_size or Settings.model_fields[
            "api_max_header_bytes"
        ].get_default(call_default_factory=True)
        self._in_head = True
        self._head_bytes = 0

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > self._head_limit and not self.transport.is_closing():
            self._refuse_head()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0

    def _refuse_head(self) -> None:
        from api.problems import PROBLEM_JSON, http_problem  # the worker's application imported it already

        problem = http_problem(
            431,
            f"the request's headers take more than {self._head_limit} bytes; send shorter headers or fewer of them",
        )
        body = json.dumps(problem.body(), separators=(",", ":")).encode()
        content = [STATUS_LINE[431]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: " + PROBLEM_JSON.encode() + b"\r\n",
                b"content-length: " + str(len(body)).encode() + b"\r\n",
                b"connection: close\r\n\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()
