"""Webhook signing secrets at rest: sealed (AES-256-GCM) under LEDGER_WEBHOOK_SECRETS_KEY, so the database alone
does not give them away; the worker opens them to sign, a row stored in plaintext before is sealed the first
time it is read, a secret sealed under another key is not used, and production refuses the development key."""

from __future__ import annotations

import base64
import dataclasses
import secrets

import pytest
from pydantic import SecretStr, ValidationError
from standardwebhooks.webhooks import Webhook

from ledger_service.core.notifications import RETURN_IN_TRANSIT
from ledger_service.notify import webhooks
from ledger_service.notify.worker import Worker
from ledger_service.settings import DEV_WEBHOOK_SECRETS_KEY, Settings
from ledger_service.store import Store
from ledger_service.store.notifications import PENDING, deliveries_of, endpoint_by_id, insert_endpoint
from tests.ledger_service.notify.receivers import receiver, run_worker
from tests.ledger_service.notify.test_worker import MERCHANT, _register, _returns, _settings


def _key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def test_a_registered_secret_is_stored_sealed_and_still_signs(store: Store) -> None:
    _returns(store, 1)
    with receiver() as hook:
        endpoint = _register(store, hook.url, (RETURN_IN_TRANSIT,))
        stored = endpoint_by_id(store, endpoint.id)
        assert stored is not None and stored.secret.startswith("sealed:v1:")
        plain = endpoint.secret.removeprefix("whsec_")
        assert endpoint.secret not in stored.secret and plain not in stored.secret
        run_worker(Worker(store, _settings()), 5)
    (got,) = hook.requests
    assert Webhook(endpoint.secret).verify(got.body, got.headers)["type"] == RETURN_IN_TRANSIT


def test_a_secret_stored_in_plaintext_before_is_sealed_when_first_read(store: Store) -> None:
    _returns(store, 1)
    with receiver() as hook:
        sealed = _register(store, hook.url, (RETURN_IN_TRANSIT,))
        legacy = dataclasses.replace(sealed, id="wh_" + secrets.token_hex(16), secret=webhooks.new_secret())
        insert_endpoint(store, legacy)  # as an index from before sealing holds it
        run_worker(Worker(store, _settings()), 5)
    assert len(hook.requests) == 2  # one per endpoint, each signed with its own secret
    assert sum(_verifies(legacy.secret, r) for r in hook.requests) == 1
    stored = endpoint_by_id(store, legacy.id)
    assert stored is not None and stored.secret.startswith("sealed:v1:") and legacy.secret not in stored.secret
    assert webhooks.signing_secret(stored, key=DEV_WEBHOOK_SECRETS_KEY) == legacy.secret


def _verifies(secret: str, request: object) -> bool:
    try:
        Webhook(secret).verify(request.body, request.headers)  # type: ignore[attr-defined]
    except Exception:
        return False
    return True


def test_a_secret_sealed_under_another_key_is_not_used(store: Store) -> None:
    _returns(store, 1)
    with receiver() as hook:
        endpoint = _register(store, hook.url, (RETURN_IN_TRANSIT,))
        run_worker(Worker(store, _settings(webhook_secrets_key=SecretStr(_key()))), 3)
    assert hook.requests == []
    (waiting,) = deliveries_of(store, endpoint.id)
    assert waiting.state == PENDING and "cannot be opened" in (waiting.last_error or "")
    stored = endpoint_by_id(store, endpoint.id)
    assert stored is not None and webhooks.signing_secret(stored, key=_key()) is None


def test_the_key_must_be_long_and_not_the_development_one_in_production() -> None:
    with pytest.raises(ValidationError, match="at least 32 random bytes"):
        Settings(webhook_secrets_key=SecretStr(base64.b64encode(b"short").decode()))
    with pytest.raises(ValidationError, match="LEDGER_WEBHOOK_SECRETS_KEY is the public development key"):
        Settings(environment="production", carriers={}, relayer_key=None, signer_keys={})
    assert Settings(
        environment="production", carriers={}, relayer_key=None, signer_keys={}, webhook_secrets_key=SecretStr(_key())
    )


def test_the_registration_answer_is_the_only_place_the_secret_is_given(store: Store) -> None:
    endpoint = webhooks.register(
        store,
        merchant=MERCHANT,
        url="https://hooks.example/in",
        event_types=[RETURN_IN_TRANSIT],
        secret=None,
        service_urls=[],
        key=DEV_WEBHOOK_SECRETS_KEY,
    )
    assert endpoint.secret.startswith("whsec_")
    assert all(e.secret != endpoint.secret for e in webhooks.list_endpoints(store, merchant=MERCHANT))
