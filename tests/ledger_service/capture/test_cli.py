"""``ledger-capture`` as an operator runs it: the console script against a served ``ledger-api`` (real anvil,
SQLite, indexer), a document captured, a refused one named event by event, re-sending safe, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.api.conftest import ApiEnv, api_env, keys  # noqa: F401  (the API's fixtures)
from tests.api.epcis_docs import commissioning, document, event, new_epc
from tests.api.served import serve
from tests.support.chain import MERCHANT

SCRIPT = Path(sys.executable).with_name("ledger-capture")


def run(*args: str, key: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    if key is not None:
        env["LEDGER_API_KEY"] = key
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=300, check=False)


def test_files_are_captured_refusals_named_and_resending_is_safe(
    api_env: ApiEnv,  # noqa: F811
    keys: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    epcs = [new_epc() for _ in range(3)]
    good = tmp_path / "good.jsonld"
    good.write_text(json.dumps(document(commissioning(epcs, merchant=api_env.accounts[MERCHANT]))))
    bad = tmp_path / "bad.jsonld"
    bad.write_text(json.dumps(document(event([new_epc()], biz_step="flying"))))
    with serve(api_env) as served:
        first = run(good.as_posix(), bad.as_posix(), "--api-url", served.url, "--no-progress", key=keys["manufacturer"])
        assert first.returncode == 1, first.stderr
        assert f"{good}: 1 events recorded, 0 already captured" in first.stdout
        assert f"{bad}: refused (422)" in first.stderr
        assert "/epcisBody/eventList/0/bizStep: bizStep 'flying'" in first.stderr
        again = run(good.as_posix(), "--api-url", served.url, "--no-progress", key=keys["manufacturer"])
        assert again.returncode == 0, again.stderr
        assert f"{good}: 0 events recorded, 1 already captured" in again.stdout
        unknown = run(good.as_posix(), "--api-url", served.url, key="rlk_" + "x" * 43)
        assert unknown.returncode == 1 and "refused (401)" in unknown.stderr


def test_without_a_key_or_an_api_it_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "doc.jsonld"
    path.write_text("{}")
    no_key = run(path.as_posix(), key=None)
    assert no_key.returncode == 2 and "set LEDGER_API_KEY" in no_key.stderr
    nobody = run(path.as_posix(), "--api-url", "http://127.0.0.1:9", key="rlk_x")
    assert nobody.returncode == 3 and "did not answer" in nobody.stderr
