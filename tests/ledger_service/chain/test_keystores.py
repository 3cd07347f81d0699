"""Encrypted keystores: the CLI writes them, the service signs with them, every mistake gets a clear message."""

from __future__ import annotations

import base64
import io
import json
import stat
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from ledger_service.chain.keystores import load_keystore, main
from ledger_service.chain.signers import connect_chain
from ledger_service.core.hashchain import ZERO_HASH
from ledger_service.errors import ConfigurationError
from ledger_service.settings import ANVIL_ACCOUNTS, Settings
from tests.support.activity import write_manifest
from tests.support.chain import ARTIFACTS, MERCHANT, Anvil, deploy_all

PASSPHRASE = "correct horse battery staple"
FAST = ["--kdf-iterations", "2"]  # scrypt's work factor made small: these tests check behaviour, not strength
LOCATION = b"0614141.00777.0".ljust(32, b"\0")


@pytest.fixture
def passphrase_file(tmp_path: Path) -> Path:
    path = tmp_path / "passphrase"
    path.write_text(PASSPHRASE + "\n")
    return path


def _import(out: Path, key: str, passphrase_file: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(key + "\n"))
    return main(["import", "--out", str(out), "--passphrase-file", str(passphrase_file), *FAST])


def test_create_writes_a_private_keystore_that_opens_with_its_passphrase(
    tmp_path: Path, passphrase_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "signer.json"
    assert main(["create", "--out", str(out), "--passphrase-file", str(passphrase_file), *FAST]) == 0
    address = capsys.readouterr().out.split()[0]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert load_keystore(out, SecretStr(PASSPHRASE), production=True).address == address
    assert main(["address", str(out), "--passphrase-file", str(passphrase_file)]) == 0
    assert capsys.readouterr().out.strip() == address
    # never overwritten
    assert main(["create", "--out", str(out), "--passphrase-file", str(passphrase_file), *FAST]) == 2
    assert "exists already" in capsys.readouterr().err


def test_import_reads_the_key_from_stdin_and_never_prints_it(
    tmp_path: Path, passphrase_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    address, key = ANVIL_ACCOUNTS[2]
    assert _import(tmp_path / "k.json", key, passphrase_file, monkeypatch) == 0
    printed = capsys.readouterr()
    assert printed.out.split()[0] == address
    assert key[2:] not in printed.out + printed.err
    assert _import(tmp_path / "bad.json", "0x1234", passphrase_file, monkeypatch) == 2
    assert "does not hold a private key" in capsys.readouterr().err
    assert not (tmp_path / "bad.json").exists()


def test_wrong_passphrase_missing_file_and_foreign_json_are_named(
    tmp_path: Path, passphrase_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "k.json"
    assert _import(out, ANVIL_ACCOUNTS[2][1], passphrase_file, monkeypatch) == 0
    with pytest.raises(ConfigurationError, match=r"wrong passphrase for keystore .*k\.json") as caught:
        load_keystore(out, SecretStr("not the passphrase"), production=False)
    assert "not the passphrase" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="not found: create it with `ledger-keystore create"):
        load_keystore(tmp_path / "nope.json", SecretStr(PASSPHRASE), production=False)
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ConfigurationError, match="is not a keystore"):
        load_keystore(tmp_path / "other.json", SecretStr(PASSPHRASE), production=False)
    # production refuses anvil's public key even when it arrives encrypted
    with pytest.raises(ConfigurationError, match="anvil's public development keys"):
        load_keystore(out, SecretStr(PASSPHRASE), production=True)
    capsys.readouterr()
    wrong = tmp_path / "wrong"
    wrong.write_text("something else entirely\n")
    assert main(["address", str(out), "--passphrase-file", str(wrong)]) == 2
    assert "wrong passphrase" in capsys.readouterr().err


def test_keystores_replace_the_development_keys_and_need_a_passphrase(tmp_path: Path) -> None:
    base = {"_env_file": None, "signer_keystores": f"{tmp_path}/a.json,{tmp_path}/b.json"}
    with pytest.raises(ValidationError, match="LEDGER_KEYSTORE_PASSPHRASE_FILE"):
        Settings(**base)  # type: ignore[arg-type]
    s = Settings(**base, keystore_passphrase_file=tmp_path / "p")  # type: ignore[arg-type]
    assert s.signer_keystores == (tmp_path / "a.json", tmp_path / "b.json")
    assert s.signer_keys == {}
    assert s.relayer_key is not None  # still the development relayer: only the signers came from keystores


@pytest.mark.parametrize(
    ("values", "refused"),
    [
        ({"rpc_url": "http://rpc.example.com"}, "LEDGER_RPC_URL"),
        ({"rpc_urls": "https://rpc.example.com,http://node2.example.com:8545"}, "LEDGER_RPC_URL"),
        ({"public_url": "http://returns.example.com"}, "LEDGER_PUBLIC_URL"),
        ({"rpc_url": "https://rpc.example.com", "public_url": "https://returns.example.com"}, None),
        ({"rpc_url": "http://10.0.0.5:8545", "public_url": "http://localhost:8000"}, None),
    ],
)
def test_production_refuses_plain_http_to_public_addresses(values: dict[str, str], refused: str | None) -> None:
    own_key = "0x" + "42" * 32
    from eth_account import Account

    settings = {
        "_env_file": None,
        "environment": "production",
        "signer_keys": {Account.from_key(own_key).address: own_key},
        "relayer_key": "",
        "webhook_secrets_key": base64.b64encode(b"k" * 32).decode(),
        **values,
    }
    if refused is None:
        Settings(**settings)  # type: ignore[arg-type]
        return
    with pytest.raises(ValidationError, match=f"{refused}.* is plain http to a public address"):
        Settings(**settings)  # type: ignore[arg-type]


def test_the_service_signs_with_a_keystore(
    fresh_anvil: Anvil, tmp_path: Path, passphrase_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployed = deploy_all(fresh_anvil)
    manifest = write_manifest(deployed, tmp_path / "31337.json")
    merchant_key = next(key for address, key in ANVIL_ACCOUNTS if address == deployed.accounts[MERCHANT])
    assert _import(tmp_path / "merchant.json", merchant_key, passphrase_file, monkeypatch) == 0
    relayer_key = ANVIL_ACCOUNTS[9][1]
    assert _import(tmp_path / "relayer.json", relayer_key, passphrase_file, monkeypatch) == 0
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        rpc_url=fresh_anvil.url,  # type: ignore[arg-type]
        deployment_file=manifest,
        artifacts_dir=ARTIFACTS,
        signer_keystores=(tmp_path / "merchant.json",),
        relayer_keystore=tmp_path / "relayer.json",
        keystore_passphrase_file=passphrase_file,
    )
    context = connect_chain(settings)
    assert list(context.senders) == [deployed.accounts[MERCHANT].lower()]
    assert context.relayer_sender().address == ANVIL_ACCOUNTS[9][0]
    # the merchant's account signs: refused by the contract for lack of a role, which proves whose call it was
    from ledger_service.chain.reverts import ContractRevertError

    sender = context.sender_for(deployed.accounts[MERCHANT])
    with pytest.raises(ContractRevertError) as caught:
        sender.send(context.ledger.functions.registerItem("urn:x", 1, sender.address, ZERO_HASH, LOCATION))
    assert caught.value.params["account"] == deployed.accounts[MERCHANT].lower()
    wrong = tmp_path / "wrong"
    wrong.write_text("not it at all, sorry\n")
    with pytest.raises(ConfigurationError, match="wrong passphrase for keystore"):
        connect_chain(settings.model_copy(update={"keystore_passphrase_file": wrong}))
