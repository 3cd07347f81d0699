"""The node URLs: LEDGER_RPC_URL alone as before, LEDGER_RPC_URLS for a second node asked again."""

from __future__ import annotations

import os

import pytest

from ledger_service.settings import Settings


@pytest.fixture(autouse=True)
def _no_ledger_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("LEDGER_"):
            monkeypatch.delenv(name)


def _settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_rpc_url_alone_works_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_RPC_URL", "http://127.0.0.1:8545")
    settings = _settings()
    assert (str(settings.rpc_url), settings.fallback_rpc_url) == ("http://127.0.0.1:8545/", None)
    assert (settings.bloom_check, settings.reconcile, settings.receipts_proof) == (True, True, False)


@pytest.mark.parametrize(
    "value", ["http://127.0.0.1:1, http://127.0.0.1:2", '["http://127.0.0.1:1","http://127.0.0.1:2"]']
)
def test_rpc_urls_name_the_node_and_the_second_one(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("LEDGER_RPC_URLS", value)
    settings = _settings()
    assert (str(settings.rpc_url), settings.fallback_rpc_url) == ("http://127.0.0.1:1/", "http://127.0.0.1:2/")


def test_rpc_url_set_too_stays_the_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_RPC_URL", "http://127.0.0.1:2")
    monkeypatch.setenv("LEDGER_RPC_URLS", "http://127.0.0.1:2,http://127.0.0.1:3")
    settings = _settings()
    assert (str(settings.rpc_url), settings.fallback_rpc_url) == ("http://127.0.0.1:2/", "http://127.0.0.1:3/")


def test_a_bad_url_in_the_list_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_RPC_URLS", "http://127.0.0.1:1,not a url")
    with pytest.raises(ValueError, match="rpc_urls"):
        _settings()


def test_the_network_file_fills_what_is_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_NETWORK", "base-sepolia")
    settings = _settings()
    network = settings.network_config
    assert str(settings.rpc_url) == network.rpc_urls[0] + "/"
    assert settings.fallback_rpc_url == network.rpc_urls[1] + "/"
    assert settings.finality_depth == network.finality_depth
    monkeypatch.setenv("LEDGER_FINALITY_DEPTH", "7")
    monkeypatch.setenv("LEDGER_RPC_URL", "http://127.0.0.1:9")
    settings = _settings()
    assert (settings.finality_depth, str(settings.rpc_url), settings.fallback_rpc_url) == (
        7,
        "http://127.0.0.1:9/",
        None,
    )


def test_an_unknown_network_is_refused_with_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_NETWORK", "mainnet")
    with pytest.raises(ValueError, match=r"known networks: anvil, base-sepolia"):
        _settings()
