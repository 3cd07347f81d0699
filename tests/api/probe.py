"""Test-only routes that exercise the API core (auth, problems, idempotency, waiting) through HTTP."""

from __future__ import annotations

import threading
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from starlette.responses import Response

from api.deps import (
    ActorDep,
    CarrierDep,
    ChainDep,
    ConsumerDep,
    IdempotencyDep,
    MerchantDep,
    PrincipalDep,
    StoreDep,
    require_role,
)
from api.freshness import wait_for_block
from ledger_service.access import Actor, Consumer, Role
from ledger_service.core.hashchain import ZERO_HASH
from ledger_service.errors import ConflictError, RetryableError

router = APIRouter(prefix="/probe", tags=["probe"])
LOCATION = b"0614141.00777.0".ljust(32, b"\0")
HUB = b"0860001.00100.0".ljust(32, b"\0")


def _actor(actor: Actor) -> dict[str, Any]:
    return {"role": actor.role.value, "address": actor.address, "key_id": actor.key_id}


@router.get("/actor")
def who_is_the_actor(actor: ActorDep) -> dict[str, Any]:
    return _actor(actor)


@router.get("/merchant")
def merchants_only(actor: MerchantDep) -> dict[str, Any]:
    return _actor(actor)


@router.get("/readers")
def auditors_and_admins(actor: Annotated[Actor, Depends(require_role(Role.AUDITOR, Role.ADMIN))]) -> dict[str, Any]:
    return _actor(actor)


@router.get("/consumer")
def who_is_the_consumer(consumer: ConsumerDep) -> dict[str, Any]:
    return {"item_id": consumer.item_id, "address": consumer.address}


@router.get("/anyone")
def anyone(principal: PrincipalDep) -> dict[str, Any]:
    if isinstance(principal, Consumer):
        return {"consumer": principal.address}
    return _actor(principal)


@router.post("/in-transit/{return_id}")
def mark_in_transit(return_id: str, actor: CarrierDep, chain: ChainDep) -> dict[str, Any]:
    call = chain.escrow.functions.markInTransit(bytes.fromhex(return_id[2:]), HUB)
    sent = chain.sender_for(actor.account).send(call)
    return {"tx_hash": sent.tx_hash, "block_number": sent.block_number}


@router.post("/register")
def register_as_merchant(actor: MerchantDep, chain: ChainDep) -> dict[str, Any]:
    call = chain.ledger.functions.registerItem(
        "urn:epc:id:sgtin:0614141.107346.probe", 1, actor.account, ZERO_HASH, LOCATION
    )
    sent = chain.sender_for(actor.account).send(call)
    return {"tx_hash": sent.tx_hash}


@router.post("/relayer-cancel/{return_id}")
def cancel_as_relayer(return_id: str, consumer: ConsumerDep, chain: ChainDep) -> dict[str, Any]:
    sent = chain.relayer_sender().send(chain.escrow.functions.cancelReturn(bytes.fromhex(return_id[2:])))
    return {"tx_hash": sent.tx_hash, "block_number": sent.block_number}


@router.post("/wait")
def wait(block: int, store: StoreDep, timeout: float = 0.3) -> dict[str, Any]:
    wait_for_block(store, block, timeout=timeout)
    return {"reached": block}


@router.get("/boom")
def boom() -> dict[str, Any]:
    raise RuntimeError("secret internals: password=hunter2")


class CounterCreate(BaseModel):
    n: int
    outcome: Literal["ok", "conflict", "retryable", "crash"] = "ok"
    delay: float = 0.0


class Counter:
    """Counts how often the counter route's effect ran."""

    def __init__(self) -> None:
        self.runs = 0
        self.lock = threading.Lock()


COUNTER = Counter()


@router.post("/counter", status_code=201)
def count(
    body: CounterCreate, principal: PrincipalDep, idem: IdempotencyDep, store: StoreDep, wait_for: int | None = None
) -> Response:
    def effect() -> dict[str, Any]:
        time.sleep(body.delay)
        with COUNTER.lock:
            COUNTER.runs += 1
            runs = COUNTER.runs
        if body.outcome == "conflict":
            raise ConflictError(f"conflict number {runs}")
        if body.outcome == "retryable":
            raise RetryableError(f"node away ({runs})")
        if body.outcome == "crash":
            raise RuntimeError("bug")
        if wait_for is not None:
            wait_for_block(store, wait_for, timeout=0.1)
        return {"n": body.n, "run": runs}

    return idem.run(effect, status_code=201)
