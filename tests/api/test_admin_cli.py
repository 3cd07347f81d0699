"""``ledger-admin keys``: create (key shown once), list, revoke; clear one-line errors, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledger_service.access import verify_api_key
from ledger_service.access.cli import main
from ledger_service.errors import AuthenticationError
from ledger_service.store.handle import Store

MERCHANT = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
UNSIGNED = "0x976EA74026E726554dB657fA54763abd0C3a0aa9"  # anvil account 6: no signing key by default
ADMIN = str(Path(sys.executable).with_name("ledger-admin"))


def run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["LEDGER_DATABASE_URL"] = url
    return subprocess.run([ADMIN, *args], capture_output=True, text=True, env=env, timeout=60, check=False)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'admin.sqlite3'}"


def test_create_prints_only_the_key_and_it_authenticates(url: str) -> None:
    done = run(url, "keys", "create", "--role", "merchant", "--name", "Acme returns desk", "--actor", MERCHANT)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert key.startswith("rlk_") and "\n" not in key
    assert "created key 1 (merchant 'Acme returns desk', account 0x3c44" in done.stderr
    assert "shown only once" in done.stderr and "note:" not in done.stderr
    with Store.open(url) as store:
        actor = verify_api_key(store=store, presented=key)
    assert (actor.role, actor.address, actor.name) == ("merchant", MERCHANT.lower(), "Acme returns desk")


def test_list_shows_keys_but_never_the_keys_themselves(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["--database-url", url, "keys", "create", "--role", "merchant", "--name", "desk", "--actor", MERCHANT])
        == 0
    )
    merchant = capsys.readouterr().out.strip()
    assert main(["--database-url", url, "keys", "create", "--role", "auditor", "--name", "audit firm"]) == 0
    capsys.readouterr()
    table = run(url, "keys", "list")
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "ROLE", "NAME", "ACCOUNT", "KEY", "CREATED", "REVOKED"]
    assert len(lines) == 3 and merchant not in table.stdout and merchant[:10] + "..." in table.stdout
    assert main(["--database-url", url, "keys", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(k["id"], k["role"], k["actor_address"], k["revoked_at"]) for k in listed] == [
        (1, "merchant", MERCHANT.lower(), None),
        (2, "auditor", None, None),
    ]


def test_revoke_refuses_the_key_from_then_on(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    key = run(url, "keys", "create", "--role", "carrier", "--name", "parcel co", "--actor", MERCHANT).stdout.strip()
    done = run(url, "keys", "revoke", "1")
    assert done.returncode == 0 and "revoked key 1 (carrier 'parcel co'" in done.stderr
    assert "running API workers within 1 s (LEDGER_REVOCATION_POLL_S" in done.stderr
    with Store.open(url) as store, pytest.raises(AuthenticationError, match="revoked on"):
        verify_api_key(store=store, presented=key)
    assert main(["--database-url", url, "keys", "revoke", "1"]) == 0
    assert "was already revoked" in capsys.readouterr().err
    assert main(["--database-url", url, "keys", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["revoked_at"] is not None


def test_a_writing_role_without_a_signing_key_gets_a_note(url: str) -> None:
    done = run(url, "keys", "create", "--role", "inspector", "--name", "lab", "--actor", UNSIGNED)
    assert done.returncode == 0
    assert f"note: LEDGER_SIGNER_KEYS has no key for {UNSIGNED.lower()}" in done.stderr


def test_a_refused_request_is_one_line_on_stderr_and_exit_1(url: str) -> None:
    done = run(url, "keys", "create", "--role", "merchant", "--name", "desk")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        "ledger-admin: error: merchant keys act on-chain: give the account the key acts for (0x...)\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["keys", "create", "--role", "merchant", "--name", "x", "--actor", "0x12"], "is not an account address"),
        (["keys", "create", "--role", "auditor", "--name", "x", "--actor", MERCHANT], "act for no on-chain account"),
        (["keys", "create", "--role", "merchant", "--name", "  ", "--actor", MERCHANT], "needs a name"),
        (["keys", "revoke", "42"], "there is no API key 42"),
    ],
)
def test_mistakes_are_explained(url: str, args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--database-url", url, *args]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("ledger-admin: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["keys", "create", "--role", "owner", "--name", "x"], "invalid choice: 'owner'"),
        (["keys", "revoke", "one"], "invalid int value"),
        (["keys"], "required: COMMAND"),
    ],
)
def test_usage_mistakes_exit_2(url: str, args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--database-url", url, *args])
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_a_bad_database_url_is_a_clear_error() -> None:
    done = run("nosuchdb://x", "keys", "list")
    assert done.returncode == 1
    assert done.stderr.startswith("ledger-admin: error: invalid database URL") and "Traceback" not in done.stderr


def test_an_unreachable_database_exits_3(tmp_path: Path) -> None:
    done = run("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2", "keys", "list")
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
