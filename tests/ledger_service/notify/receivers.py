"""Real receivers for notification tests: a threaded HTTP server on 127.0.0.1 that records every request, and
an SMTP server in-process (aiosmtpd) that keeps every message."""

from __future__ import annotations

import asyncio
import email
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """What one server saw; ``status`` answers every request, after ``delay`` seconds."""

    url: str = ""
    status: int = 204
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ids(self) -> list[str]:
        with self.lock:
            return [r.headers["webhook-id"] for r in self.requests]


@contextmanager
def receiver(*, status: int = 204, delay: float = 0.0, port: int = 0) -> Iterator[Receiver]:
    """A receiver on 127.0.0.1 (``port``, or a free one)."""
    state = Receiver(status=status, delay=delay)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            if len(body) < length:  # the sender died mid-request: not a delivery (HTTP servers drop it too)
                self.close_connection = True
                return
            if state.delay:
                time.sleep(state.delay)
            with state.lock:
                state.requests.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(state.status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def smtp_sink() -> Iterator[tuple[int, list[EmailMessage]]]:
    """A real SMTP server on a free port of 127.0.0.1, and the messages it received."""
    received: list[EmailMessage] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(email.message_from_bytes(envelope.content, _class=EmailMessage, policy=default))
            return "250 OK"

    with socket.socket() as probe:  # aiosmtpd's Controller needs a port number before it starts
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()


def closed_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (connections to it are refused) until someone binds it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_worker(worker: Any, turns: int = 10) -> None:
    """Runs a :class:`~ledger_service.notify.worker.Worker` for ``turns`` rounds, then waits for its sends."""

    async def go() -> None:
        for _ in range(turns):
            await worker.turn(wait=0.05)
        await worker.drain()
        await worker.close()

    asyncio.run(go())
