"""The application object: importing it connects to nothing; startup opens the store and the chain or
fails saying why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from ledger_service.errors import ConfigurationError
from tests.api.conftest import ApiEnv


def test_importing_the_app_reads_no_settings_and_connects_to_nothing() -> None:
    env = dict(os.environ, LEDGER_ENVIRONMENT="production", LEDGER_RPC_URL="http://127.0.0.1:1")
    code = "import api.main as m; assert not hasattr(m.app.state, 'store'); print(m.app.title)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Returns ledger API"


def test_a_start_imports_only_what_serving_needs() -> None:
    """A restarted replica answers sooner (issue #24): the supervisor of ``ledger-api`` imports neither the
    application nor the eth stack, and the application leaves out what only some requests need (labels, the
    assistant's model) and the PostgreSQL driver (an SQLite index never loads it)."""
    supervisor = ("api.main", "fastapi", "web3", "eth_account", "sqlalchemy")
    later = ("reportlab", "pypdfium2", "PIL", "py3langid", "numpy", "sklearn", "psycopg")
    code = (
        "import json, sys\n"
        "import api.serving\n"
        f"first = [m for m in {supervisor!r} if m in sys.modules]\n"
        "api.serving.served_app()\n"
        f"print(json.dumps([first, [m for m in {later!r} if m in sys.modules], 'api.main' in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [[], [], True]


def test_startup_fails_clearly_without_a_manifest(api_env: ApiEnv, tmp_path: Path) -> None:
    settings = api_env.settings.model_copy(
        update={"deployment_file": tmp_path / "missing.json", "database_url": f"sqlite:///{tmp_path}/x.sqlite3"}
    )
    with (
        pytest.raises(ConfigurationError, match=r"missing\.json not found: deploy first"),
        TestClient(create_app(settings)),
    ):
        pass


def test_the_default_app_serves_docs_and_problems(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "Returns ledger API" and "Problem" in spec["components"]["schemas"]
    missing = client.get("/v1/no-such-thing")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    store = client.app.state.store  # type: ignore[attr-defined]
    assert store.checkpoint() is not None or store.pin() is None


@pytest.mark.parametrize(("page", "asset"), [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")])
def test_the_docs_pages_need_no_cdn(client: TestClient, page: str, asset: str) -> None:
    """On a machine without internet the pages still work: every script and style comes from this server."""
    html = client.get(page)
    assert html.status_code == 200
    assert "cdn." not in html.text and "googleapis" not in html.text
    assert f"/static-offline-docs/{asset}" in html.text
    served = client.get(f"/static-offline-docs/{asset}")
    assert served.status_code == 200 and len(served.content) > 100_000


def test_startup_makes_the_openapi_document_the_request_gate_reads(api_env: ApiEnv) -> None:
    """The gate reads every route's policy from the OpenAPI document: made at startup, not by a worker's first
    request (which waited over half a second for it)."""
    app = create_app(api_env.settings)
    assert app.openapi_schema is None
    with TestClient(app):
        assert app.openapi_schema is not None and "/v1/returns" in app.openapi_schema["paths"]
