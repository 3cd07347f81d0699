"""``ledger-api`` as production runs it: LEDGER_API_WORKERS worker processes, each with its own credential cache
(a key revoked elsewhere stops working within the cache's TTL), answering as the in-process app does."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from ledger_service.access import Role, create_api_key, revoke_api_key
from ledger_service.access._cache import VERIFIED_TTL_S
from ledger_service.settings import Settings
from tests.api.conftest import ApiEnv, bearer
from tests.api.flows import Flow, ok, problem
from tests.support.chain import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_workers_are_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).api_workers == 1  # type: ignore[call-arg]
    monkeypatch.setenv("LEDGER_API_WORKERS", "4")
    assert Settings(_env_file=None).api_workers == 4  # type: ignore[call-arg]
    monkeypatch.setenv("LEDGER_API_WORKERS", "0")
    with pytest.raises(ValidationError, match="api_workers"):
        Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def served(api_env: ApiEnv) -> Iterator[str]:
    """``ledger-api`` (api.main:main) with two workers on the test chain and database; its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "LEDGER_RPC_URL": api_env.anvil.url,
        "LEDGER_DATABASE_URL": api_env.settings.database_url,
        "LEDGER_DEPLOYMENT_FILE": str(api_env.manifest),
        "LEDGER_ARTIFACTS_DIR": str(api_env.settings.artifacts_dir),
        "LEDGER_DOCUMENTS_DIR": str(api_env.settings.documents_dir),
        "LEDGER_API_HOST": "127.0.0.1",
        "LEDGER_API_PORT": str(port),
        "LEDGER_API_WORKERS": "2",
        "LEDGER_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from api.main import main; sys.exit(main())"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"ledger-api exited: {process.stderr.read().decode() if process.stderr else ''}")
            try:
                if httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("ledger-api did not answer within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _without_clock(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "checked_at"}


def test_the_workers_answer_as_the_app_does(
    served: str, client: TestClient, api_env: ApiEnv, keys: dict[str, str]
) -> None:
    flow = Flow(client, api_env, keys)
    flow.publish()
    sold = flow.sold_and_delivered()
    url = f"/v1/items/{sold.item_id}/eligibility"
    with httpx.Client(base_url=served, timeout=10) as http:
        for headers in (sold.auth, bearer(keys["merchant"]), bearer(keys["auditor"])):
            expected = _without_clock(ok(client.get(url, headers=headers)))
            for _ in range(6):  # keep-alive: one worker; new connections: either
                assert _without_clock(ok(http.get(url, headers=headers))) == expected
                assert _without_clock(ok(httpx.get(served + url, headers=headers))) == expected
        problem(http.get(url, headers=bearer(keys["carrier"])), 403)
        problem(http.get(url, headers=bearer(keys["merchant2"])), 404)
        problem(http.get(url, headers=bearer("rlk_" + "A" * 43)), 401)


def test_a_key_revoked_elsewhere_stops_working_within_the_ttl(served: str, api_env: ApiEnv) -> None:
    created = create_api_key(store=api_env.store, role=Role.AUDITOR, name="soon revoked")
    url = f"{served}/v1/items/{'0x' + '42' * 32}/eligibility"
    for _ in range(6):  # new connections: both workers verify (and cache) the key
        assert httpx.get(url, headers=bearer(created.plaintext)).status_code == 200
    revoke_api_key(store=api_env.store, key_id=created.key.id)  # this process: the workers do not know
    time.sleep(VERIFIED_TTL_S + 0.5)
    for _ in range(6):
        answer = httpx.get(url, headers=bearer(created.plaintext))
        assert answer.status_code == 401 and "revoked" in answer.json()["detail"]
