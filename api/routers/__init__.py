"""The API's routers, one per resource; api.main mounts every router of :data:`ROUTERS` under /v1."""

from fastapi import APIRouter

from api.routers import (
    analytics,
    assistant,
    audit,
    carriers,
    documents,
    epcis,
    exchanges,
    feedback,
    items,
    notifications,
    policies,
    returns,
    sales,
    scans,
    verify,
    webhooks,
)

ROUTERS: tuple[APIRouter, ...] = (
    policies.router,
    sales.router,
    items.router,
    audit.router,
    returns.router,
    exchanges.router,
    documents.router,
    verify.router,
    epcis.router,
    webhooks.router,
    notifications.router,
    assistant.router,
    carriers.router,
    analytics.router,
    feedback.router,
    scans.router,
)

__all__ = ["ROUTERS"]
