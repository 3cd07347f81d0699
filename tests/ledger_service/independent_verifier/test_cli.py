"""``ledger-verify`` as an auditor runs it: the console script, its report, exit codes, and its independence."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledger_service.independent_verifier.cli import main
from tests.ledger_service.independent_verifier.conftest import (
    EVENT_COUNT,
    INSPECTION_SEQ,
    History,
    TamperProxy,
    ipfs_digest,
    log_seq,
    run_cli,
)
from tests.support.activity import write_manifest
from tests.support.chain import ARTIFACTS, ROOT, free_port

IPFS_CID = "/usr/bin/ipfs_cid"


def reference_cid(path: Path) -> str:
    out = subprocess.run([IPFS_CID, str(path)], capture_output=True, text=True, check=True).stdout
    return str(json.loads(out[: out.index("}") + 1])["CIDv0"])


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any of the service's settings (an auditor has no .env of ours)."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}, **extra}


def test_the_console_script_verifies_a_genuine_item_and_its_documents(history: History) -> None:
    result = run_cli(history.args("--file", str(history.datasheet), "--file", str(history.inspection)))
    assert result.returncode == 0, result.stdout + result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"VERIFIED: item 0x{history.item_id.hex()}: {EVENT_COUNT} events replay")
    out = result.stdout
    assert f"uri         {history.uri}" in out
    for seq, step in enumerate(["commissioning / active", "departing / in_transit", "transporting / in_transit"]):
        assert f"#{seq:<3} {step}" in out
    assert f"#{INSPECTION_SEQ:<3} inspecting / conformant" in out
    assert f"{history.datasheet}  {reference_cid(history.datasheet)}  event #0" in out
    assert f"{history.inspection}  {reference_cid(history.inspection)}  event #{INSPECTION_SEQ}" in out
    assert f"document {reference_cid(history.inspection)}" in out
    assert "UTC" in out and result.stderr == ""


def test_json_report(history: History, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(history.args("--json", "--file", str(history.inspection))) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verified"] is True and report["problems"] == []
    assert report["itemId"] == "0x" + history.item_id.hex()
    assert report["registration"]["uri"] == history.uri
    assert [e["seq"] for e in report["events"]] == list(range(EVENT_COUNT))
    assert report["contract"]["count"] == EVENT_COUNT and report["contract"]["head"] == report["replayedHead"]
    inspection = report["events"][INSPECTION_SEQ]
    assert (inspection["bizStep"], inspection["disposition"]) == ("inspecting", "conformant")
    assert inspection["document"] == reference_cid(history.inspection)
    assert inspection["documentDigest"] == "0x" + ipfs_digest(history.inspection).hex()
    assert report["files"] == [
        {
            "path": str(history.inspection),
            "cid": reference_cid(history.inspection),
            "cidV1": report["files"][0]["cidV1"],
            "events": [INSPECTION_SEQ],
        }
    ]


def test_a_file_no_event_references_fails(history: History, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(history.args("--file", str(history.inspection), "--file", str(history.unrelated))) == 1
    verdict, *_ = capsys.readouterr().out.splitlines()
    cid = reference_cid(history.unrelated)
    assert verdict == (
        f"NOT VERIFIED: item 0x{history.item_id.hex()}: "
        f"{history.unrelated} ({cid}) is not referenced by any event of this item"
    )


def test_an_unknown_item_fails(history: History, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(history.args(item="0x" + "42" * 32)) == 1
    out = capsys.readouterr().out
    assert out.startswith("NOT VERIFIED: ") and f"no item 0x{'42' * 32} on this ledger" in out


def test_a_lying_node_fails_naming_the_seq(history: History, capsys: pytest.CaptureFixture[str]) -> None:
    def drop_two(method: str, _params: object, result: object) -> object:
        return [log for log in result if log_seq(log) != 2] if method == "eth_getLogs" else result  # type: ignore[attr-defined]

    with TamperProxy(history.node.url, drop_two) as proxy:
        assert main(history.args("--json", rpc_url=proxy.url)) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["verified"] is False
    assert report["problems"][0] == {"kind": "event-missing", "seq": 2, "message": "event #2 is missing"}
    assert report["verdict"].startswith("NOT VERIFIED: ") and "event #2 is missing" in report["verdict"]


def assert_cannot_check(result: subprocess.CompletedProcess[str], message: str) -> None:
    """Exit 2, nothing on stdout, one line on stderr that says why (never a traceback)."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ledger-verify: ") and message in lines[0], result.stderr


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unreachable", "cannot reach http://127.0.0.1:"),
        ("not a contract", "there is no contract at"),
        ("not a ledger", "does not answer itemOf(bytes32) as a ProvenanceLedger does"),
        ("bad address", "--ledger must be a contract address"),
        ("bad checksum", "has a wrong checksum"),
        ("no url", "--rpc-url must be an http(s) URL"),
        ("bad item id", "not an item id (0x + 64 hex digits)"),
        ("missing file", "cannot read /nonexistent/report.pdf: No such file or directory"),
        ("from block above the head", "is above the chain's latest block"),
    ],
)
def test_what_cannot_be_checked_exits_2_with_one_line(history: History, case: str, message: str) -> None:
    node, uri = history.node.url, history.uri
    args = {
        "unreachable": history.args(rpc_url=f"http://127.0.0.1:{free_port()}"),
        "not a contract": ["--rpc-url", node, "--ledger", history.deployed.accounts[0], uri],
        "not a ledger": ["--rpc-url", node, "--ledger", history.deployed.escrow.address, uri],
        "bad address": ["--rpc-url", node, "--ledger", "0x1234", uri],
        "bad checksum": ["--rpc-url", node, "--ledger", history.ledger.swapcase().replace("0X", "0x"), uri],
        "no url": ["--ledger", history.ledger, uri],
        "bad item id": history.args(item="0x1234"),
        "missing file": history.args("--file", "/nonexistent/report.pdf"),
        "from block above the head": history.args("--from-block", "99999999"),
    }[case]
    assert_cannot_check(run_cli(args, env=clean_env()), message)


def test_a_server_that_is_not_a_node_exits_2(history: History) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while server.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.05)
        result = run_cli(history.args(rpc_url=f"http://127.0.0.1:{port}/"), env=clean_env())
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert_cannot_check(result, "did not answer JSON-RPC (HTTP 501)")


def test_usage_errors_exit_2(history: History) -> None:
    result = run_cli(["--rpc-url", history.node.url, "--ledger", history.ledger, "--from-block", "ten", "x"])
    assert result.returncode == 2 and "invalid int value" in result.stderr and "Traceback" not in result.stderr
    assert run_cli([]).returncode == 2


FORBIDDEN = (
    *("ledger_service.store", "ledger_service.indexer", "ledger_service.returns", "ledger_service.access"),
    *("ledger_service.chain", "ledger_service.verification", "api", "sqlalchemy", "alembic", "psycopg"),
    *("web3", "fastapi", "starlette"),
)
ALLOWED = ("ledger_service.independent_verifier", "ledger_service.core", "ledger_service.errors")
# the pure CID code only: not the document stores, their factory or the service's settings
ALLOWED_EXACTLY = {"ledger_service.documents", "ledger_service.documents.cid", "ledger_service.documents.interface"}


def test_the_verifier_imports_nothing_of_the_service_but_its_pure_modules(history: History) -> None:
    """Run in a fresh interpreter against the real node (every code path taken), then list what was imported."""
    program = (
        "import json, sys\n"
        "from ledger_service.independent_verifier.cli import main\n"
        f"code = main({history.args('--file', str(history.inspection))!r})\n"
        "print(json.dumps({'code': code, 'modules': sorted(sys.modules)}))\n"
    )
    # settings that the service would refuse to load: building a Settings would fail the run
    env = clean_env(LEDGER_FINALITY_DEPTH="0", LEDGER_DATABASE_URL="nosuchdb://x", PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.splitlines()[-1])
    assert loaded["code"] == 0
    modules: list[str] = loaded["modules"]
    assert {
        "ledger_service.independent_verifier.cli",
        "ledger_service.core.hashchain",
        "ledger_service.documents.cid",
    } <= set(modules)
    assert [m for m in modules if m.split(".")[0] in FORBIDDEN or m.startswith(FORBIDDEN)] == []
    ours = [m for m in modules if m.startswith("ledger_service.")]
    assert [m for m in ours if not m.startswith(ALLOWED) and m not in ALLOWED_EXACTLY] == []


def test_no_database_no_settings_and_a_tampered_index_change_nothing(history: History, tmp_path: Path) -> None:
    """Index the chain with ledger-indexer into SQLite, delete, alter and reorder the item's rows, then verify:
    the verifier never reads the index, so it still reports VERIFIED (and it runs with no database configured)."""
    database = tmp_path / "index.sqlite3"
    indexer_env = clean_env(
        LEDGER_RPC_URL=history.node.url,
        LEDGER_DATABASE_URL=f"sqlite:///{database}",
        LEDGER_DEPLOYMENT_FILE=str(write_manifest(history.deployed, tmp_path / "deployments" / "31337.json")),
        LEDGER_ARTIFACTS_DIR=str(ARTIFACTS),
        PYTHONPATH=str(ROOT),
    )
    backfill = subprocess.run(
        [sys.executable, "-m", "ledger_service.indexer.cli", "backfill"],
        env=indexer_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert backfill.returncode == 0, backfill.stderr
    item = "0x" + history.item_id.hex()
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        assert db.execute("SELECT count(*) FROM item_events WHERE item_id = ?", (item,)).fetchone() == (EVENT_COUNT,)
        db.execute("DELETE FROM item_events WHERE item_id = ? AND seq = 2", (item,))
        db.execute("UPDATE item_events SET biz_step = 12, disposition = 12 WHERE item_id = ? AND seq = 3", (item,))
        db.execute("UPDATE item_events SET seq = 9 WHERE item_id = ? AND seq = 1", (item,))
        db.execute("DELETE FROM item_registrations WHERE item_id = ?", (item,))
        rows = db.execute("SELECT seq, biz_step FROM item_events WHERE item_id = ? ORDER BY seq", (item,)).fetchall()
    assert rows == [(0, 1), (3, 12), (4, 7), (9, 6)]  # the index is thoroughly wrong now

    # the auditor's shell: the indexer's settings are still set, the node and ledger come from the environment
    auditor_env = {
        **indexer_env,
        "LEDGER_ADDRESS": history.ledger,
        "LEDGER_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none",
    }
    result = run_cli([history.uri], env=auditor_env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("VERIFIED: ")
    bare = run_cli(history.args(), env=clean_env(HOME=str(tmp_path)), cwd=tmp_path)  # no LEDGER_* at all
    assert bare.returncode == 0 and bare.stdout.startswith("VERIFIED: "), bare.stdout + bare.stderr
