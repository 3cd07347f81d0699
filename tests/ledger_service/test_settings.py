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
