"""The demo's local receivers of notifications (service venv; started by scripts/run.sh, stopped by stop.sh).

One process, two servers on 127.0.0.1, so ledger-notify has somewhere real to deliver to:
- a merchant webhook receiver: checks each request's Standard Webhooks signature with the secret in
  <dir>/webhooks/secret (made on first start), answers 204 and appends the delivery as one JSON line to
  <dir>/webhooks/received.jsonl; a bad or missing signature gets 401 and is not recorded;
- an SMTP sink (aiosmtpd): writes each message as an .eml file under <dir>/mail/.
Both keep running until SIGTERM or Ctrl-C.

Usage: .venv/bin/python scripts/demo_sinks.py [--dir var] [--webhook-port 8090] [--smtp-port 8025]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import signal
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

ROOT = Path(__file__).resolve().parents[1]
MAX_BODY = 1 << 20  # ledger-notify's bodies are a few hundred bytes: anything larger is not ours


def ensure_secret(path: Path) -> str:
    """The receiver's signing secret (``whsec_`` + base64, as the API generates them), kept in ``path`` (0600)."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    return secret


def append_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # consumers' personal data: owner only
    with os.fdopen(fd, "ab") as out:
        out.write(data)


def webhook_server(directory: Path, port: int) -> ThreadingHTTPServer:
    """The webhook receiver (not started), appending verified deliveries to ``directory``/received.jsonl."""
    verifier = Webhook(ensure_secret(directory / "secret"))
    journal = directory / "received.jsonl"
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY:
                self.close_connection = True
                return self.answer(413)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                payload: Any = verifier.verify(body, headers)
            except WebhookVerificationError as exc:
                print(f"demo_sinks: webhook refused (401): {exc}", file=sys.stderr, flush=True)
                return self.answer(401)
            line = {
                "webhook_id": headers["webhook-id"],
                "received_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                **payload,
            }
            with lock:
                append_private(journal, (json.dumps(line, ensure_ascii=False) + "\n").encode())
            self.answer(204)

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per delivery would bury the refusals above

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


def smtp_sink(directory: Path, port: int) -> Controller:
    """The SMTP sink (not started), writing each message to ``directory`` as <time>-<n>.eml."""
    counter = iter(range(1, 1 << 62))

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
            append_private(directory / f"{stamp}-{next(counter)}.eml", envelope.content)
            return "250 OK"

    return Controller(Handler(), hostname="127.0.0.1", port=port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The demo's webhook receiver and SMTP sink.")
    parser.add_argument("--dir", type=Path, default=ROOT / "var", help="where webhooks/ and mail/ go (var)")
    parser.add_argument("--webhook-port", type=int, default=8090)
    parser.add_argument("--smtp-port", type=int, default=8025)
    args = parser.parse_args(argv)
    hooks, mail = args.dir / "webhooks", args.dir / "mail"
    hooks.mkdir(parents=True, exist_ok=True)
    mail.mkdir(parents=True, exist_ok=True)
    try:
        server = webhook_server(hooks, args.webhook_port)
        controller = smtp_sink(mail, args.smtp_port)
        controller.start()
    except OSError as exc:  # the port is taken: say which, not a traceback
        print(f"demo_sinks: cannot listen: {exc} (another program uses the port?)", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(
        f"demo_sinks: webhooks on http://127.0.0.1:{args.webhook_port}/ -> {hooks / 'received.jsonl'}; "
        f"SMTP on 127.0.0.1:{args.smtp_port} -> {mail}/",
        flush=True,
    )
    stop.wait()
    server.shutdown()
    server.server_close()
    controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
