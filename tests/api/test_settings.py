"""Signing settings: anvil's keys by default in development, refused in production, keys match addresses."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from eth_account import Account
from pydantic import SecretStr, ValidationError

from ledger_service.settings import ANVIL_ACCOUNTS, Settings, is_well_known_key

ROOT = Path(__file__).resolve().parents[2]
OWN_KEY = "0x" + "42" * 32
OWN_ADDRESS = Account.from_key(OWN_KEY).address


@pytest.fixture(autouse=True)
def _no_ledger_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("LEDGER_"):
            monkeypatch.delenv(name)


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def test_anvil_accounts_are_the_mnemonics_accounts() -> None:
    Account.enable_unaudited_hdwallet_features()
    mnemonic = "test test test test test test test test test test test junk"
    for index, (address, key) in enumerate(ANVIL_ACCOUNTS):
        derived = Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{index}")
        assert (derived.address, "0x" + derived.key.hex().removeprefix("0x")) == (address, key)


def test_development_signs_for_every_account_of_the_local_deploy_config() -> None:
    config = json.loads((ROOT / "scripts" / "deploy-config.local.json").read_text())
    s = settings()
    writers = {a for role, members in config["roles"].items() if role != "CONSUMER_AGENT_ROLE" for a in members}
    assert set(s.signer_keys) == writers
    for address, key in s.signer_keys.items():
        assert Account.from_key(key.get_secret_value()).address == address
    assert s.relayer_key is not None
    assert [Account.from_key(s.relayer_key.get_secret_value()).address] == config["roles"]["CONSUMER_AGENT_ROLE"]
    assert (s.api_host, s.api_port, s.wait_timeout_s) == ("127.0.0.1", 8000, 10.0)


def test_production_refuses_anvils_keys_with_a_clear_message() -> None:
    with pytest.raises(ValidationError, match="LEDGER_SIGNER_KEYS holds anvil's well-known development keys") as caught:
        settings(environment="production", relayer_key=SecretStr(OWN_KEY))
    assert ANVIL_ACCOUNTS[1][1] not in str(caught.value)  # the message never repeats a key
    with pytest.raises(ValidationError, match="LEDGER_RELAYER_KEY is anvil's well-known development key"):
        settings(environment="production", signer_keys={OWN_ADDRESS: OWN_KEY})


def test_production_accepts_its_own_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_ENVIRONMENT", "production")
    monkeypatch.setenv("LEDGER_SIGNER_KEYS", json.dumps({OWN_ADDRESS.lower(): OWN_KEY}))
    monkeypatch.setenv("LEDGER_RELAYER_KEY", "")
    monkeypatch.setenv("LEDGER_WEBHOOK_SECRETS_KEY", base64.b64encode(b"k" * 32).decode())  # its own, not the dev one
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert list(s.signer_keys) == [OWN_ADDRESS]  # checksummed
    assert s.relayer_key is None
    assert "42424242" not in repr(s)


def test_a_key_given_for_another_address_is_refused_without_echoing_it() -> None:
    other = ANVIL_ACCOUNTS[2][0]
    with pytest.raises(ValidationError, match=f"the key given for {other} belongs to {OWN_ADDRESS}") as caught:
        settings(signer_keys={other: OWN_KEY})
    assert OWN_KEY[2:] not in str(caught.value)
    with pytest.raises(ValidationError, match="not a private key"):
        settings(signer_keys={OWN_ADDRESS: "0x1234"})
    with pytest.raises(ValidationError, match="is not an address"):
        settings(signer_keys={"merchant": OWN_KEY})


def test_well_known_keys_are_recognised_in_any_spelling() -> None:
    key = ANVIL_ACCOUNTS[9][1]
    assert is_well_known_key(key) and is_well_known_key(key[2:].upper())
    assert not is_well_known_key(OWN_KEY)


def test_the_token_allowlist_takes_addresses_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    token = ANVIL_ACCOUNTS[3][0]
    monkeypatch.setenv("LEDGER_TOKEN_ALLOWLIST", json.dumps([token.lower()]))
    assert Settings(_env_file=None).token_allowlist == (token,)  # type: ignore[call-arg]
    letter = next(i for i, c in enumerate(token) if i > 1 and c.isalpha())
    miscased = token[:letter] + token[letter].swapcase() + token[letter + 1 :]  # a wrong EIP-55 checksum
    for wrong in ("0x1234", miscased):
        with pytest.raises(ValidationError, match="not a token address"):
            settings(token_allowlist=(wrong,))


def test_the_public_url_defaults_to_the_apis_own_address(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings(api_host="127.0.0.1", api_port=8123).public_base_url == "http://127.0.0.1:8123"
    monkeypatch.setenv("LEDGER_PUBLIC_URL", "https://returns.example.com/ledger/")
    assert settings().public_base_url == "https://returns.example.com/ledger"
    monkeypatch.setenv("LEDGER_PUBLIC_URL", "returns.example.com")
    with pytest.raises(ValidationError, match="public_url"):
        settings()
