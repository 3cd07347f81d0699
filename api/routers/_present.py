"""Domain results as the returns resources' public schemas (shared by the routers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Path, Query, Response
from web3.exceptions import Web3Exception

from api.deps import Services
from api.freshness import wait_for_block
from api.schemas.common import ITEM_ID, TRUE_OR_FALSE, ReasonPublic, at, utc
from api.schemas.feedback import SignalPublic, SignalReasonPublic
from api.schemas.returns import PayoutPublic, ReturnPublic, TimelineEntryPublic
from ledger_service.core.codes import BizStep, Disposition, ReturnState, decode_location
from ledger_service.returns import chain_now
from ledger_service.returns.labels import label_code
from ledger_service.returns.views import ReturnStatus, state_name
from ledger_service.signals import population_of, signals_for
from ledger_service.store.handle import Store
from ledger_service.store.returns import (
    ItemEventRow,
    PayoutRow,
    ReturnRequestRow,
    ReturnRow,
    TimelineEntry,
    TransitionRow,
)

BPS = 10_000
ItemPath = Annotated[str, Path(pattern=f"^{ITEM_ID}$", description="the item id (0x + 64 hex digits)")]
WaitQuery = Annotated[
    bool,
    Query(description="answer only once the index has the transaction's block, with the resource's new state"),
    TRUE_OR_FALSE,
]

_STATE_SENTENCES = {
    ReturnState.CANCELLED: "The consumer cancelled the return before it shipped.",
    ReturnState.EXPIRED: "The parcel did not ship by the deadline; the merchant took the deposit back.",
    ReturnState.IN_TRANSIT: "The carrier scanned the parcel: it is on its way back.",
    ReturnState.RECEIVED: "The parcel reached the merchant.",
    ReturnState.ACCEPTED: "The inspection passed.",
    ReturnState.REJECTED: "The inspection failed.",
    ReturnState.DISPUTED: "The consumer disputed the failed inspection.",
    ReturnState.RESOLVED: "The arbiter resolved the dispute.",
    ReturnState.RECLAIMED: "The dispute window closed; the merchant took the deposit back.",
    ReturnState.CONSUMER_CLAIMED: "The merchant did not inspect in time; the consumer claimed the deposit.",
}
_REQUEST_STATES = {"manual_review": "pending_review", "reject": "request_rejected", "approve": "processing"}


def csv_download(table: str, filename: str) -> Response:
    """A CSV table as a download named ``filename`` (``?format=csv`` of the list endpoints)."""
    return Response(
        table,
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


def token_decimals(svc: Services) -> Callable[[str], int | None]:
    """The chain's cached ``decimals()`` reader; None for a token that does not answer it (not an ERC-20)."""

    def read(token: str) -> int | None:
        try:
            return svc.chain.token_decimals(token)
        except (Web3Exception, ValueError, OverflowError):
            return None

    return read


def wait_if_asked(svc: Services, *, wait: bool, block_number: int) -> bool:
    """With ?wait=true: blocks until the index has ``block_number`` (504 problem after the timeout)."""
    if wait:
        wait_for_block(svc.store, block_number, timeout=svc.settings.wait_timeout_s)
    return wait


def refund_after_fee(amount: int, fee_bps: int) -> int:
    return amount - amount * fee_bps // BPS


def reasons_public(reasons: list[Any]) -> list[ReasonPublic]:
    return [ReasonPublic(code=str(r.get("code", "")), message=str(r.get("message", ""))) for r in reasons]


def _request_fields(request: ReturnRequestRow | None) -> dict[str, Any]:
    if request is None:
        return {"request_id": None, "reason_code": None}
    return {
        "request_id": request.id,
        "reason_code": request.reason_code,
        "comment": request.comment,
        "documents": list(request.documents),
        "outcome": request.outcome,
        "reasons": reasons_public(request.reasons),
        "requested_at": utc(request.created_at),
    }


def return_row_public(
    ret: ReturnRow,
    *,
    decimals: Callable[[str], int | None],
    request: ReturnRequestRow | None = None,
    reason_code: str | None = None,
) -> ReturnPublic:
    """An on-chain return (no timeline)."""
    fields = _request_fields(request)
    if request is None and reason_code is not None:
        fields["reason_code"] = reason_code
    return ReturnPublic(
        id=ret.return_id,
        return_id=ret.return_id,
        label_code=label_code(ret.return_id),
        item_id=ret.item_id,
        consumer=ret.consumer,
        merchant=ret.merchant,
        state=state_name(ret.state),
        token=ret.token,
        amount=str(ret.amount),
        decimals=decimals(ret.token),
        restocking_fee_bps=ret.fee_bps,
        refund_after_fee=str(refund_after_fee(ret.amount, ret.fee_bps)),
        fast_refund=ret.fast_refund,
        policy_version=ret.policy_version,
        ship_by=utc(ret.ship_by),
        inspect_by=utc(ret.inspect_by),
        dispute_by=utc(ret.dispute_by),
        authorized_at=utc(ret.authorized_at),
        updated_at=utc(ret.updated_at),
        settled=ret.settled,
        **fields,
    )


def request_public(request: ReturnRequestRow) -> ReturnPublic:
    """A request that has no return (yet)."""
    return ReturnPublic(
        id=request.id,
        return_id=request.return_id,
        label_code=None if request.return_id is None else label_code(request.return_id),
        item_id=request.item_id,
        consumer=request.consumer,
        merchant=request.merchant,
        state=_REQUEST_STATES.get(request.outcome, request.outcome),
        **_request_fields(request),
    )


def status_public(status: ReturnStatus, *, decimals: Callable[[str], int | None], timeline: bool) -> ReturnPublic:
    """A return with its payout (and timeline), or a request without a return."""
    detail = status.detail
    if detail is None:
        assert status.request is not None
        return request_public(status.request)
    public = return_row_public(detail.ret, decimals=decimals, request=status.request)
    if detail.payout is not None:
        p = detail.payout
        public.payout = PayoutPublic(
            consumer_amount=str(p.consumer_amount),
            merchant_amount=str(p.merchant_amount),
            paid_at=at(p.paid_at),
            tx_hash=p.tx_hash,
        )
    if timeline:
        public.timeline = [entry_public(e, decimals) for e in detail.timeline]
    return public


def entry_public(entry: TimelineEntry, decimals: Callable[[str], int | None]) -> TimelineEntryPublic:
    """One on-chain step of a return's timeline (also a line of its tracking timeline)."""
    base: dict[str, Any] = {
        "kind": entry.kind,
        "at": at(entry.at),
        "block_number": entry.block_number,
        "tx_hash": entry.tx_hash,
    }
    d = entry.detail
    if isinstance(d, ReturnRow):
        return TimelineEntryPublic(
            **base,
            summary=f"The merchant authorized the return and put {d.amount} token units in escrow.",
            state="authorized",
            actor=d.merchant,
            deadline=utc(d.ship_by),
        )
    if isinstance(d, TransitionRow):
        return TimelineEntryPublic(
            **base,
            summary=_STATE_SENTENCES.get(d.state, f"The return moved to {state_name(d.state)}."),
            state=state_name(d.state),
            previous=state_name(d.previous),
            actor=d.actor,
            deadline=utc(d.deadline) if d.deadline else None,
            evidence=None if int(d.evidence, 16) == 0 else d.evidence,
        )
    if isinstance(d, PayoutRow):
        return TimelineEntryPublic(
            **base,
            summary=(
                f"The escrow paid {d.consumer_amount} token units to the consumer and {d.merchant_amount} "
                "to the merchant."
            ),
            consumer_amount=str(d.consumer_amount),
            merchant_amount=str(d.merchant_amount),
        )
    assert isinstance(d, ItemEventRow)
    step, disposition = _code(BizStep, d.biz_step), _code(Disposition, d.disposition)
    location = decode_location(bytes.fromhex(d.location[2:])) if int(d.location, 16) else None
    return TimelineEntryPublic(
        **base,
        summary=f"Item event: {step} ({disposition})" + (f" at {location}." if location else "."),
        actor=d.actor,
        biz_step=step,
        disposition=disposition,
        location=location,
        evidence=None if int(d.document, 16) == 0 else d.document,
    )


def _code(kind: type[BizStep] | type[Disposition], value: int) -> str:
    try:
        return kind(value).cbv
    except ValueError:
        return str(value)


def signals_public(
    store: Store, public: ReturnPublic, *, now: int | None = None, populations: dict[str, tuple[int, int]] | None = None
) -> ReturnPublic:
    """``public`` with the fraud and abuse signals on its consumer at its merchant (and, for an on-chain return,
    on the unit scanned for it), for a merchant's review. ``populations``: the merchants' figures read so far
    for one page (filled as it goes: one read per merchant, not per row)."""
    now = chain_now(store) if now is None else now
    known = {} if populations is None else populations
    if public.merchant not in known:
        known[public.merchant] = population_of(store, merchant=public.merchant, now=now)
    found = signals_for(
        store,
        consumer=public.consumer,
        merchant=public.merchant,
        now=now,
        return_id=public.return_id,
        item_id=public.item_id if public.return_id else None,
        population=known[public.merchant],
    )
    public.signals = [
        SignalPublic(
            kind=signal.kind,
            score=signal.score,
            reasons=[SignalReasonPublic(code=r.code, text_en=r.text_en, text_zh=r.text_zh) for r in signal.reasons],
            figures=dict(signal.figures),
        )
        for signal in found
    ]
    return public
