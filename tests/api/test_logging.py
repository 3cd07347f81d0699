"""The API's logs never hold a secret it was sent or holds, and an error costs a bounded number of bytes.

The application is served as ``ledger-api`` serves it, its lifespan sets up logging (to ``LEDGER_LOG_FILE``),
and a test-only route fails the way a careless library does: the credential, the body's e-mail address and a
signing key in the exception's message and in its frames' local variables. Every byte the process wrote (the
log file, stdout and stderr) is then searched for each of those secrets.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Request
from fastapi.testclient import TestClient

from api.deps import PrincipalDep
from api.main import create_app, default_routers, serving_app
from ledger_service.access import Consumer
from ledger_service.logs import TRACEBACKS_PER_WINDOW
from ledger_service.settings import Settings
from tests.api.conftest import ApiEnv, bearer, return_token
from tests.support.chain import free_port

ROOT = Path(__file__).resolve().parents[2]
SIGNER = next(iter(Settings(_env_file=None).signer_keys.values())).get_secret_value()  # type: ignore[call-arg]
EMAIL = "jane.doe@example.org"
ERRORS = 3 * TRACEBACKS_PER_WINDOW

router = APIRouter(prefix="/leaky", tags=["leaky"])


def _sign(request_headers: dict[str, str], body: dict[str, Any], private_key: str) -> None:
    raise RuntimeError(
        f"could not sign for {body.get('email')} with {private_key} (headers {request_headers}, body {body})"
    )


@router.post("/fail")
async def fail(request: Request, principal: PrincipalDep) -> None:
    body = await request.json()
    headers = dict(request.headers)  # a local holding the Authorization header, as in the report
    who = principal.address if isinstance(principal, Consumer) else principal.key_id
    try:
        _sign(headers, body, SIGNER)
    except RuntimeError:
        # a library logging on its own, through the standard library (as uvicorn and web3 do)
        logging.getLogger("web3.providers").exception("provider failed for %s: %r", who, headers)
        raise


@pytest.fixture(scope="module")
def secret_token(api_env: ApiEnv) -> str:
    from ledger_service.access import issue_return_token

    return issue_return_token(store=api_env.store, item_id="0x" + "ab" * 32, consumer=api_env.accounts[5], sale_seq=1)


@pytest.fixture
def logged(
    api_env: ApiEnv, tmp_path: Path, keys: dict[str, str], secret_token: str, capfd: pytest.CaptureFixture[str]
) -> Iterator[tuple[Path, list[str]]]:
    log_file = tmp_path / "logs" / "api.log"
    handlers = list(logging.getLogger().handlers)
    settings = api_env.settings.model_copy(update={"log_file": log_file})
    app = serving_app(create_app(settings, routers=[*default_routers(), router]))
    secrets = [keys["merchant"], secret_token, EMAIL, SIGNER, SIGNER.removeprefix("0x")]
    with TestClient(app, raise_server_exceptions=False) as client:
        for n in range(ERRORS):
            headers = bearer(keys["merchant"]) if n % 2 else return_token(secret_token)
            body = {"email": EMAIL, "password": "hunter2-" + keys["merchant"], "n": n}
            response = client.post("/v1/leaky/fail", headers=headers, json=body)
            assert response.status_code == 500, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert not any(secret in response.text for secret in secrets)
        # the credential also reaches the logs through ordinary failures: a 401 for a revoked or unknown key
        unknown = client.get("/v1/items/0x" + "00" * 32 + "/eligibility", headers=bearer("rlk_" + "x" * 43))
        assert unknown.status_code == 401
    root = logging.getLogger()
    for handler in root.handlers:
        handler.flush()
    yield log_file, secrets
    for added in [h for h in root.handlers if h not in handlers]:
        added.close()
    root.handlers[:] = handlers


def test_no_secret_reaches_any_log(logged: tuple[Path, list[str]], capfd: pytest.CaptureFixture[str]) -> None:
    log_file, secrets = logged
    out, err = capfd.readouterr()
    everything = (log_file.read_text() if log_file.exists() else "") + out + err
    assert "could not sign for" in everything  # the errors were logged: the search below means something
    for secret in [*secrets, "hunter2"]:
        assert secret not in everything, f"{secret[:8]}... found in the logs"
    assert "[REDACTED" in everything


def test_tracebacks_are_plain_and_rate_limited(logged: tuple[Path, list[str]]) -> None:
    log_file, _ = logged
    written = log_file.read_text()
    # no local variables (rich's "locals" boxes), and only the first few identical tracebacks in full
    assert "locals" not in written and "╭" not in written
    assert written.count("Traceback (most recent call last)") <= 2 * TRACEBACKS_PER_WINDOW  # api + web3 loggers
    assert "traceback left out: seen" in written
    assert len(written.encode()) < ERRORS * 8_000, f"{len(written.encode())} bytes for {ERRORS} errors"


def test_the_log_file_is_private(logged: tuple[Path, list[str]]) -> None:
    log_file, _ = logged
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600


def leaky_asgi() -> object:
    """The served application with the failing route (``uvicorn --factory`` target of the test below)."""
    return serving_app(create_app(routers=[*default_routers(), router]))


def test_a_served_api_with_two_workers_logs_no_secret(
    api_env: ApiEnv, tmp_path: Path, keys: dict[str, str], secret_token: str
) -> None:
    """As ledger-api serves (uvicorn with its own log setup, two worker processes): uvicorn's "Exception in ASGI
    application" tracebacks go through the same rules."""
    log_file, port = tmp_path / "api.log", free_port()
    env = {
        **os.environ,
        "LEDGER_RPC_URL": api_env.anvil.url,
        "LEDGER_DATABASE_URL": api_env.settings.database_url,
        "LEDGER_DEPLOYMENT_FILE": str(api_env.manifest),
        "LEDGER_ARTIFACTS_DIR": str(api_env.settings.artifacts_dir),
        "LEDGER_DOCUMENTS_DIR": str(api_env.settings.documents_dir),
        "LEDGER_LOG_FILE": str(log_file),
    }
    serve = (
        "import uvicorn; uvicorn.run('tests.api.test_logging:leaky_asgi', factory=True, host='127.0.0.1', "
        f"port={port}, workers=2, log_level='info')"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", serve], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "the server exited"
            try:
                if httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not answer within 60 s"
            time.sleep(0.2)
        for n in range(8):  # new connections: both workers fail
            headers = bearer(keys["merchant"]) if n % 2 else return_token(secret_token)
            body = {"email": EMAIL, "password": "hunter2-" + keys["merchant"], "n": n}
            assert httpx.post(f"{url}/v1/leaky/fail", headers=headers, json=body).status_code == 500
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    written = log_file.read_text()
    assert "Exception in ASGI application" in written and "could not sign for" in written
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    everything = written + output.decode(errors="replace")
    for secret in [keys["merchant"], secret_token, EMAIL, SIGNER, SIGNER.removeprefix("0x"), "hunter2"]:
        assert secret not in everything, f"{secret[:8]}... found in the logs"
