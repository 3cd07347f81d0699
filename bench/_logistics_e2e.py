"""bench/logistics.py --end-to-end: a carrier's signed "in transit" webhook to the consumer's refund e-mail handed
to SMTP and the merchant's webhook delivered.

On a fresh local anvil with the contracts, ``ledger-indexer follow``, ``ledger-api`` (one worker) and
``ledger-notify`` (default settings), each its own process, and in this process a webhook receiver (HTTP, checks
the Standard Webhooks signature) and an SMTP server (aiosmtpd):

1. setup (not timed): a fast-refund policy, the merchant's webhook endpoint for ``return.refund_paid``, then
   ``--returns`` items registered, sold with the consumer's e-mail address, delivered and returned (approved
   at once), each with its label fetched (bench/carriers.py's setup);
2. for each return, after a random pause (a random phase of the indexer's and the worker's polling): the local
   carrier's signed webhook with one ``in_transit`` event; the clock runs from that POST until both the
   ``return.refund_paid`` webhook of that return reached the receiver and its e-mail reached the SMTP server:
   received -> refund paid on-chain -> indexed (outbox row) -> ledger-notify -> delivered. The later of the two
   is the figure; each is reported too. The reference, in the same run and for the same returns: the same POST
   until ``GET /v1/returns/{id}`` shows the refund paid (bench/carriers.py's figure, polled every 5 ms while
   the notifications travel); the ratio says what the outbox and ledger-notify add.
"""

from __future__ import annotations

import argparse
import email
import random
import re
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from api_eligibility import api_server, indexer_follow
from carriers import deploy_with_keys, prepare, webhook
from common import SetupError, console_script, percentile, say, start_chain, stop, table, verdict
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.chain import free_port  # ROOT is on sys.path once api_eligibility is imported

TARGET_P95_S = 2.0
TIMEOUT_S = 30.0
SECRET = "whsec_" + "YmVuY2gtbG9naXN0aWNzLWVuZC10by1lbmQ="  # base64 of a fixed local string: a local receiver
RETURN_ID = re.compile(r"0x[0-9a-f]{64}")


class Arrivals:
    """When each return's refund notification reached each receiver (perf_counter of this process)."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.webhook: dict[str, float] = {}
        self.mail: dict[str, float] = {}
        self.refused = 0

    def note(self, kind: dict[str, float], return_id: str) -> None:
        with self.lock:
            kind.setdefault(return_id, time.perf_counter())
            self.lock.notify_all()

    def wait_both(self, return_id: str, timeout: float) -> tuple[float, float] | None:
        deadline = time.perf_counter() + timeout
        with self.lock:
            while return_id not in self.webhook or return_id not in self.mail:
                left = deadline - time.perf_counter()
                if left <= 0:
                    return None
                self.lock.wait(left)
            return self.webhook[return_id], self.mail[return_id]


@contextmanager
def receivers(arrivals: Arrivals) -> Iterator[tuple[str, int]]:
    """(the webhook URL, the SMTP port): both recording into ``arrivals``."""
    verifier = Webhook(SECRET)

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            try:
                payload: Any = verifier.verify(body, {k.lower(): v for k, v in self.headers.items()})
            except WebhookVerificationError:  # counted: the bench goes on
                arrivals.refused += 1
                payload = None
            if payload is not None and payload.get("type") == "return.refund_paid":
                arrivals.note(arrivals.webhook, payload["data"]["return_id"])
            self.send_response(204 if payload is not None else 401)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Mail:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd)
            message = email.message_from_bytes(envelope.content, _class=EmailMessage, policy=default)
            part = message.get_body(("plain",))
            found = RETURN_ID.search(part.get_content() if part is not None else "")
            if found and message["Subject"] == "Your refund has been paid":
                arrivals.note(arrivals.mail, found.group(0))
            return "250 OK"

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    smtp_port = free_port()
    controller = Controller(Mail(), hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks", smtp_port
    finally:
        controller.stop()
        server.shutdown()
        server.server_close()


@contextmanager
def notify_worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen([*console_script("ledger-notify")], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        stop(process)


def payout_visible(client: httpx.Client, rma: str, auditor: str, t0: float) -> float | None:
    """Seconds from ``t0`` until the API shows the return settled with its payout (None after the timeout)."""
    while time.perf_counter() - t0 <= TIMEOUT_S:
        seen = client.get(f"/v1/returns/{rma}", headers={"Authorization": f"Bearer {auditor}"})
        if seen.status_code == 200 and seen.json().get("settled") and seen.json().get("payout"):
            return time.perf_counter() - t0
        time.sleep(0.005)
    return None


def measure(client: httpx.Client, returns: list[tuple[str, str]], arrivals: Arrivals, auditor: str) -> dict[str, Any]:
    both: list[float] = []
    visible: list[float] = []
    hooks: list[float] = []
    mails: list[float] = []
    failures: list[str] = []
    rng = random.Random(20)
    for rma, number in returns:
        time.sleep(rng.uniform(0.05, 0.3))
        t0 = time.perf_counter()
        answer = webhook(client, number)
        if answer.status_code != 200:
            failures.append(f"{rma}: HTTP {answer.status_code} {answer.text[:200]}")
            continue
        paid = payout_visible(client, rma, auditor, t0)
        if paid is not None:
            visible.append(paid)
        seen = arrivals.wait_both(rma, TIMEOUT_S)
        if seen is None:
            failures.append(f"{rma}: webhook or e-mail missing after {TIMEOUT_S:g} s")
            continue
        hooks.append(seen[0] - t0)
        mails.append(seen[1] - t0)
        both.append(max(seen) - t0)

    def stats(values: list[float]) -> dict[str, Any]:
        ordered = sorted(values)
        if not ordered:
            return {"timed": 0, "p50_s": None, "p95_s": None, "max_s": None}
        return {
            "timed": len(ordered),
            "p50_s": round(statistics.median(ordered), 3),
            "p95_s": round(percentile(ordered, 0.95), 3),
            "max_s": round(ordered[-1], 3),
        }

    return {
        "both": stats(both),
        "webhook": stats(hooks),
        "email": stats(mails),
        "reference_payout_visible": stats(visible),
        "failed": len(failures),
        "failures": failures[:5],
        "refused_signatures": arrivals.refused,
    }


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    say(f"bench/logistics.py --end-to-end: {args.returns} fast-refund returns, carrier webhook to notifications")
    anvil = start_chain()
    arrivals = Arrivals()
    try:
        deployed, env, keys = deploy_with_keys(anvil, workdir)
        with receivers(arrivals) as (hook_url, smtp_port):
            env = {**env, "LEDGER_SMTP_HOST": "127.0.0.1", "LEDGER_SMTP_PORT": str(smtp_port)}
            with (
                indexer_follow(env, workdir / "indexer.log"),
                api_server(env, workdir / "api.log", supervised=False) as server,
                notify_worker(env, workdir / "notify.log") as worker,
                httpx.Client(base_url=server.url, timeout=60) as client,
            ):
                answer = client.post(
                    "/v1/webhooks",
                    headers={"Authorization": f"Bearer {keys['merchant']}"},
                    json={"url": hook_url, "event_types": ["return.refund_paid"], "secret": SECRET},
                )
                if answer.status_code != 201:
                    raise SetupError(f"registering the webhook: HTTP {answer.status_code} {answer.text[:300]}")
                say("1. setup: returns approved (consumers with e-mail addresses), labels fetched")
                extra = {"consumer_email": "consumer@example.com", "consumer_lang": "en"}
                returns = prepare(client, deployed, keys, args.returns, sale_extra=extra)
                say("2. in transit: signed carrier webhook, until the refund's webhook and e-mail both arrived")
                figures = measure(client, returns, arrivals, keys["auditor"])
                if worker.poll() is not None:
                    raise SetupError(f"ledger-notify exited with {worker.returncode}; see {workdir / 'notify.log'}")
    finally:
        anvil.stop()
    figures["returns"] = args.returns
    ref = figures["reference_payout_visible"]["p95_s"]
    end = figures["both"]["p95_s"]
    figures["ratio_p95_to_reference"] = round(end / ref, 2) if end and ref else None
    return figures


def print_table(f: dict[str, Any]) -> None:
    both, hook, mail, ref = f["both"], f["webhook"], f["email"], f["reference_payout_visible"]
    rows = [
        ("figure", "measured", "target", ""),
        (f"carrier webhook -> refund e-mail AND merchant webhook, p50 / p95 / max ({both['timed']} returns)",
         f"{both['p50_s']} / {both['p95_s']} / {both['max_s']} s", f"p95 <= {TARGET_P95_S:g} s",
         verdict(both["p95_s"] is not None and both["p95_s"] <= TARGET_P95_S)),
        ("  of which: merchant webhook delivered, p50 / p95", f"{hook['p50_s']} / {hook['p95_s']} s", "", ""),
        ("  of which: e-mail handed to SMTP, p50 / p95", f"{mail['p50_s']} / {mail['p95_s']} s", "", ""),
        ("reference: the same POST -> refund visible in the API, p50 / p95",
         f"{ref['p50_s']} / {ref['p95_s']} s", "", ""),
        ("end to end p95 / reference p95", f"{f['ratio_p95_to_reference']}x", "", ""),
        ("failures", str(f["failed"]), "0", verdict(f["failed"] == 0)),
        ("receiver: refused signatures", str(f["refused_signatures"]), "0", verdict(f["refused_signatures"] == 0)),
    ]  # fmt: skip
    for line in table(rows, align="lrrl"):
        say(line)
    for failure in f["failures"]:
        say(f"  {failure}")
