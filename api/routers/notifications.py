"""What a consumer hears about their return: the e-mail address they give with their return token, and each
return's live events (Server-Sent Events from the outbox)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Request
from pydantic import BaseModel, Field
from starlette.responses import Response, StreamingResponse

from api.deps import ConsumerDep, PrincipalDep, StoreDep
from api.problems import problem_responses
from api.schemas.common import Email, RequestModel
from ledger_service.access import Actor, Role
from ledger_service.errors import InvalidRequestError, NotFoundError
from ledger_service.notify.contacts import set_current_email
from ledger_service.notify.webhooks import render
from ledger_service.returns.views import return_status
from ledger_service.store.notifications import notifications_of_return

router = APIRouter(tags=["notifications"])

ItemIdPath = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{64}$", description="the item id")]
ReturnIdPath = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{64}$", description="the return id (RMA)")]
POLL_S = 0.25
"""How often a stream looks for new rows (a change reaches the outbox when the indexer applies its block)."""
HEARTBEAT_S = 15.0
"""A comment line this often keeps proxies from closing an idle stream."""
MAX_STREAM_S = 300.0
"""A followed stream ends after this long; EventSource clients reconnect with Last-Event-ID (nothing is lost),
and a stream nobody reads cannot hold a worker forever."""


class ContactUpdate(RequestModel):
    email: Email = Field(description="where to be told about this purchase's returns")
    lang: Literal["zh", "en"] = Field(default="en", description="the e-mails' language")


class ContactPublic(BaseModel):
    item_id: str
    sale_seq: int
    lang: str


@router.put(
    "/items/{item_id}/contact",
    response_model=ContactPublic,
    responses=problem_responses(404, 422),
    summary="Set my e-mail address for this purchase's return notifications",
)
def set_contact(item_id: ItemIdPath, body: ContactUpdate, consumer: ConsumerDep, store: StoreDep) -> ContactPublic:
    """The address is kept off-chain and never shown again (the answer leaves it out). 404: the return token is
    for another item (or the item's sale is not indexed yet)."""
    if consumer.item_id != item_id.lower():
        raise NotFoundError(f"your return token is not for item {item_id.lower()}; use the token of that purchase")
    sale_seq = set_current_email(store, item_id=item_id, email=body.email, lang=body.lang)
    return ContactPublic(item_id=item_id.lower(), sale_seq=sale_seq, lang=body.lang)


def _event(seq: int, kind: str, data: str) -> bytes:
    return f"id: {seq}\nevent: {kind}\ndata: {data}\n\n".encode()


@router.get(
    "/returns/{return_id}/events",
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "the return's notifications as they happen"},
        **problem_responses(404, 422),
    },
    response_class=StreamingResponse,
    summary="A return's live events (Server-Sent Events; resume with Last-Event-ID)",
)
async def events(
    return_id: ReturnIdPath,
    principal: PrincipalDep,
    store: StoreDep,
    request: Request,
    last_event_id: Annotated[str | None, Header(description="the id of the last event received")] = None,
    accept: Annotated[str | None, Header(description="text/event-stream: follow the return live")] = None,
) -> Response:
    """Each event is one notification (`event:` its type, `data:` the same JSON a webhook gets, `id:` its
    position, to resume after with `Last-Event-ID`): first the ones after that id (all, without it), then,
    when the request accepts `text/event-stream` (as EventSource does), each new one as the index sees it, for
    up to 5 minutes (EventSource reconnects and resumes); otherwise the stream ends after the ones so far.
    Consumers see their own returns, merchants theirs."""
    after = 0
    if last_event_id is not None:
        if not last_event_id.isdigit() or len(last_event_id) > 18:
            raise InvalidRequestError("Last-Event-ID must be the id of an event of this stream (digits)")
        after = int(last_event_id)
    if isinstance(principal, Actor):
        merchant = principal.account if principal.role is Role.MERCHANT else None
        await asyncio.to_thread(return_status, store, return_id, merchant=merchant)
    else:
        await asyncio.to_thread(return_status, store, return_id, consumer=principal.address, item_id=principal.item_id)
    rid = return_id.lower()
    follow = "text/event-stream" in (accept or "")

    async def stream() -> AsyncIterator[bytes]:
        nonlocal after
        yield b"retry: 2000\n\n"
        quiet = 0.0
        ends = asyncio.get_running_loop().time() + MAX_STREAM_S
        while not await request.is_disconnected():
            rows = await asyncio.to_thread(notifications_of_return, store, rid, after=after)
            for row in rows:
                after = row.seq
                yield _event(row.seq, row.type, render(row))
            if rows:
                quiet = 0.0
                continue
            if not follow or asyncio.get_running_loop().time() >= ends:
                return
            await asyncio.sleep(POLL_S)
            quiet += POLL_S
            if quiet >= HEARTBEAT_S:
                quiet = 0.0
                yield b": keep-alive\n\n"

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
