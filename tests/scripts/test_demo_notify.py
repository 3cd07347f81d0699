"""The run command's notification demo with real processes: scripts/demo_sinks.py (webhook receiver + SMTP sink)
and ledger-notify beside a real anvil and index; after scripts/demo_api.py registers the merchants' webhooks and
runs its flows, the receiver holds every step of item 1005's return, signed, and the sink the consumers' e-mails.
"""

from __future__ import annotations

import email
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import ApiEnv, api_env, client, keys  # noqa: F401  (the API's fixtures)
from tests.scripts.test_demo_api import demo_api, register_demo_items  # noqa: F401  (the script as a module)

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
NOTIFY = Path(sys.executable).parent / "ledger-notify"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(100):
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else "exited"
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture
def sinks(tmp_path: Path) -> Iterator[tuple[Path, int, int]]:
    """(their directory, the webhook port, the SMTP port), scripts/demo_sinks.py running as run.sh starts it."""
    hook_port, smtp_port = free_port(), free_port()
    command = [sys.executable, str(SCRIPTS / "demo_sinks.py"), "--dir", str(tmp_path)]
    command += ["--webhook-port", str(hook_port), "--smtp-port", str(smtp_port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_listening(hook_port, process)
        wait_listening(smtp_port, process)
        yield tmp_path, hook_port, smtp_port
    finally:
        process.terminate()
        assert process.wait(10) == 0  # SIGTERM is its ordinary stop


def test_a_wrongly_signed_webhook_is_refused_and_not_recorded(sinks: tuple[Path, int, int]) -> None:
    directory, hook_port, _ = sinks
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(time.time())), "webhook-signature": "v1,AAAA"}
    answer = httpx.post(f"http://127.0.0.1:{hook_port}/webhooks", content=b'{"type": "x"}', headers=headers)
    assert answer.status_code == 401
    assert not (directory / "webhooks" / "received.jsonl").exists()


def test_the_demo_flows_reach_the_webhook_receiver_and_the_smtp_sink(
    demo_api: ModuleType,  # noqa: F811
    client: TestClient,  # noqa: F811
    api_env: ApiEnv,  # noqa: F811
    keys: dict[str, str],  # noqa: F811
    sinks: tuple[Path, int, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    directory, hook_port, smtp_port = sinks
    for name, value in (("PHOTO_FILE", "demo-inspection.png"), ("LABEL_FILE", "demo-label-1005.pdf")):
        monkeypatch.setattr(demo_api, name, tmp_path / value)
    monkeypatch.setattr(demo_api, "ROOT", tmp_path)
    env = {**os.environ, **api_env.ledger_variables(), "LEDGER_SMTP_HOST": "127.0.0.1"}
    env["LEDGER_SMTP_PORT"] = str(smtp_port)
    worker = subprocess.Popen([str(NOTIFY)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        register_demo_items(api_env)
        url = f"http://127.0.0.1:{hook_port}/webhooks"
        secret = (directory / "webhooks" / "secret").read_text().strip()
        demo_api.register_webhooks(client, keys, url, secret)
        demo_api.register_webhooks(client, keys, url, secret)  # as a second run.sh does: registered once
        for name in ("merchant", "merchant2"):
            mine = client.get("/v1/webhooks", headers={"Authorization": f"Bearer {keys[name]}"}).json()
            assert [endpoint["url"] for endpoint in mine["data"]] == [url]
        rma = demo_api.run_flows(client, keys)["verify"]["return_id"]
        counts = (0, 0)
        for _ in range(300):
            counts = demo_api.notification_counts(directory / "webhooks", directory / "mail")
            if counts >= (demo_api.EXPECTED_WEBHOOKS, demo_api.EXPECTED_MAILS):
                break
            assert worker.poll() is None, worker.stderr.read().decode() if worker.stderr else "exited"
            time.sleep(0.1)
    finally:
        worker.terminate()
        worker.wait(10)
    assert counts[0] >= demo_api.EXPECTED_WEBHOOKS and counts[1] >= demo_api.EXPECTED_MAILS, counts
    lines = [json.loads(line) for line in (directory / "webhooks" / "received.jsonl").read_text().splitlines()]
    of_rma = {line["type"] for line in lines if line["data"].get("return_id") == rma}
    assert of_rma >= set(demo_api.RETURN_TYPES), of_rma
    mails = [
        email.message_from_bytes(path.read_bytes(), _class=EmailMessage, policy=default)
        for path in (directory / "mail").glob("*.eml")
    ]
    to_consumer_1 = [m for m in mails if m["To"] == demo_api.EMAILS[demo_api.CONSUMER_1][0]]
    assert len(to_consumer_1) >= len(demo_api.RETURN_TYPES)
    assert any(m["Subject"] == "Your refund has been paid" for m in to_consumer_1)
    assert any(m["To"] == demo_api.EMAILS[demo_api.CONSUMER_2][0] for m in mails)  # its refused request, in zh
