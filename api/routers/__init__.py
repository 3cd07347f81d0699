"""The API's routers, one per resource; api.main mounts every router of :data:`ROUTERS` under /v1."""

from fastapi import APIRouter

from api.routers import audit, carriers, documents, epcis, items, policies, returns, sales, verify

ROUTERS: tuple[APIRouter, ...] = (
    policies.router,
    sales.router,
    items.router,
    audit.router,
    returns.router,
    documents.router,
    verify.router,
    epcis.router,
    carriers.router,
)

__all__ = ["ROUTERS"]
