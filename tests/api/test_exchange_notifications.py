"""What an exchange tells the merchant's webhooks and the consumer's e-mail (real anvil, SQLite, a real webhook
receiver and SMTP server); the same on PostgreSQL in test_exchanges_postgres.py."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import ApiEnv
from tests.api.exchange_flows import exchange_notifications
from tests.api.flows import Flow


def test_exchange_events_notify_merchant_and_consumer(
    client: TestClient, api_env: ApiEnv, keys: dict[str, str]
) -> None:
    exchange_notifications(Flow(client, api_env, keys))
