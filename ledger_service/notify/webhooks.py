"""Merchant webhooks: subscriptions, their URLs and secrets, the payload and its Standard Webhooks signature.

The payload is the specification's ``{"type", "timestamp", "data"}``; it is rendered once, when the outbox row
is dispatched, and stored with the delivery, so every attempt sends the same bytes under the same
``webhook-id`` (the notification's stable id). The signature (``webhook-signature: v1,<base64 HMAC-SHA256 of
id.timestamp.body>``) is computed by the specification's own library, ``standardwebhooks``.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import ipaddress
import json
import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

from standardwebhooks.webhooks import Webhook

from ledger_service.access import seal, unseal
from ledger_service.core.notifications import EVENT_TYPES
from ledger_service.errors import InvalidRequestError
from ledger_service.store import Store
from ledger_service.store.notifications import (
    Delivery,
    Notification,
    WebhookEndpoint,
    delete_endpoint,
    deliveries_of,
    endpoint_by_id,
    endpoints_of,
    insert_endpoint,
    replace_secret,
    replay,
)

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 24
"""Random bytes of a generated secret (the specification asks for 24 to 64)."""
MAX_URL_LENGTH = 2000


class WebhookURLError(InvalidRequestError):
    """A webhook URL that is not http(s) or that points at this service."""


class WebhookSecretError(InvalidRequestError):
    """A given secret that is not ``whsec_`` + base64 of 24 to 64 bytes."""


class WebhookEventTypeError(InvalidRequestError):
    """An event type that is not one of :data:`~ledger_service.core.notifications.EVENT_TYPES`."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def check_secret(secret: str) -> str:
    """``secret`` if it is ``whsec_`` + base64 of 24 to 64 bytes, else :class:`WebhookSecretError`."""
    body = secret.removeprefix(SECRET_PREFIX)
    try:
        raw = base64.b64decode(body, validate=True)
    except ValueError:
        raw = b""
    if not secret.startswith(SECRET_PREFIX) or not 24 <= len(raw) <= 64:
        raise WebhookSecretError(
            "The webhook secret must be whsec_ followed by the base64 of 24 to 64 random bytes; "
            "leave it out to have one generated."
        )
    return secret


_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def _is_local(host: str) -> bool:
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return host, port


def check_url(url: str, *, service_urls: Sequence[str]) -> str:
    """``url`` if it is an absolute http(s) URL that does not point at this service (any of ``service_urls``,
    the API's public and listening addresses: a loopback or unspecified address on the same port counts as
    this machine), else :class:`WebhookURLError` with the reason."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise WebhookURLError(f"The webhook URL is not a valid URL: {url[:200]!r}.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookURLError("The webhook URL must be an absolute http:// or https:// URL with a host name.")
    if len(url) > MAX_URL_LENGTH:
        raise WebhookURLError(f"The webhook URL is longer than {MAX_URL_LENGTH} characters.")
    if parts.username is not None or parts.password is not None:
        raise WebhookURLError("The webhook URL must not carry a user name or password; use the signing secret.")
    host, port = _host_port(url)
    for service in service_urls:
        service_host, service_port = _host_port(service)
        same_machine = host == service_host or (_is_local(host) and (_is_local(service_host) or service_host == ""))
        if port == service_port and same_machine:
            raise WebhookURLError(
                "The webhook URL points at this service itself; give the address of your own receiver."
            )
    return url


def check_event_types(types: Sequence[str]) -> tuple[str, ...]:
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown or not types:
        raise WebhookEventTypeError(
            f"Unknown event type(s) {', '.join(map(repr, unknown[:5]))}; choose among {', '.join(EVENT_TYPES)}."
            if unknown
            else f"Give at least one event type among {', '.join(EVENT_TYPES)}."
        )
    return tuple(dict.fromkeys(types))


# ---- the subscriptions -------------------------------------------------------------------------------------


def _context(endpoint_id: str) -> str:
    return f"webhook signing secret {endpoint_id}"


def seal_secret(secret: str, *, endpoint_id: str, key: str) -> str:
    """``secret`` as stored: AES-256-GCM under ``key`` (LEDGER_WEBHOOK_SECRETS_KEY), bound to the endpoint."""
    return seal(secret, credential=key, context=_context(endpoint_id))


def signing_secret(endpoint: WebhookEndpoint, *, key: str) -> str | None:
    """The plaintext secret of a stored endpoint; None if it was sealed under another key (or altered). A row
    from before secrets were sealed holds the plaintext, given back as it is (:func:`seal_legacy` seals it)."""
    if endpoint.secret.startswith(SECRET_PREFIX):
        return endpoint.secret
    return unseal(endpoint.secret, credential=key, context=_context(endpoint.id))


def seal_legacy(store: Store, endpoint: WebhookEndpoint, *, key: str) -> None:
    """Seals the plaintext secret of an endpoint stored before secrets were sealed (nothing for a sealed one)."""
    if endpoint.secret.startswith(SECRET_PREFIX):
        sealed = seal_secret(endpoint.secret, endpoint_id=endpoint.id, key=key)
        replace_secret(store, endpoint.id, stored=sealed, plaintext=endpoint.secret)


def register(
    store: Store,
    *,
    merchant: str,
    url: str,
    event_types: Sequence[str],
    secret: str | None,
    service_urls: Sequence[str],
    key: str,
) -> WebhookEndpoint:
    """Registers a merchant's webhook endpoint, its secret sealed under ``key``; the answer carries the plaintext
    secret (the only time it is shown: it is never logged, listed or returned again)."""
    endpoint = WebhookEndpoint(
        id="wh_" + secrets.token_hex(16),
        merchant=merchant.lower(),
        url=check_url(url, service_urls=service_urls),
        event_types=check_event_types(event_types),
        secret=new_secret() if secret is None else check_secret(secret),
        created_at=int(time.time()),
        deleted_at=None,
    )
    insert_endpoint(
        store, dataclasses.replace(endpoint, secret=seal_secret(endpoint.secret, endpoint_id=endpoint.id, key=key))
    )
    return endpoint


def owned(store: Store, endpoint_id: str, *, merchant: str) -> WebhookEndpoint | None:
    """The endpoint if it exists, is not deleted and belongs to ``merchant`` (else None: not found to them)."""
    endpoint = endpoint_by_id(store, endpoint_id)
    if endpoint is None or endpoint.deleted_at is not None or endpoint.merchant != merchant.lower():
        return None
    return endpoint


def list_endpoints(store: Store, *, merchant: str) -> list[WebhookEndpoint]:
    return endpoints_of(store, merchant)


def remove(store: Store, endpoint_id: str) -> bool:
    return delete_endpoint(store, endpoint_id, now=int(time.time()))


def deliveries(store: Store, endpoint_id: str, *, state: str | None, limit: int) -> list[Delivery]:
    return deliveries_of(store, endpoint_id, state=state, limit=limit)


def replay_deliveries(store: Store, endpoint_id: str, *, retry_for_s: int, delivery_id: int | None) -> int:
    return replay(store, endpoint_id, now=int(time.time()), retry_for_s=retry_for_s, delivery_id=delivery_id)


# ---- payload and signature ---------------------------------------------------------------------------------


def render(notification: Notification) -> str:
    """The body of every delivery of ``notification`` (webhooks and e-mail read the same)."""
    stamp = datetime.fromtimestamp(notification.occurred_at, tz=UTC).isoformat().replace("+00:00", "Z")
    data = {
        **notification.data,
        "item_id": notification.item_id,
        "sale_seq": notification.sale_seq,
        "merchant": notification.merchant,
    }
    if notification.return_id is not None:
        data["return_id"] = notification.return_id
    return json.dumps(
        {"type": notification.type, "timestamp": stamp, "data": data}, separators=(",", ":"), sort_keys=True
    )


@functools.lru_cache(maxsize=4096)
def _signer(secret: str) -> Webhook:
    """The specification's signer of ``secret`` (its key decoded once, not per attempt)."""
    return Webhook(secret)


def sign(*, secret: str, msg_id: str, body: str | bytes, now: int) -> dict[str, str]:
    """The request headers of one attempt: ``webhook-id``, ``webhook-timestamp`` (this attempt's time) and
    ``webhook-signature``."""
    signature = _signer(secret).sign(msg_id, datetime.fromtimestamp(now, tz=UTC), body)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(now),
        "webhook-signature": signature,
    }
