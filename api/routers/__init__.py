"""The API's routers, one per resource; api.main mounts every router of :data:`ROUTERS` under /v1."""

from fastapi import APIRouter

from api.routers import (
    assistant,
    audit,
    carriers,
    documents,
    epcis,
    items,
    notifications,
    policies,
    returns,
    sales,
    verify,
    webhooks,
)

ROUTERS: tuple[APIRouter, ...] = (
    policies.router,
    sales.router,
    items.router,
    audit.router,
    returns.router,
    documents.router,
    verify.router,
    epcis.router,
    webhooks.router,
    notifications.router,
    assistant.router,
    carriers.router,
)

__all__ = ["ROUTERS"]
