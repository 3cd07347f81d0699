"""Return requests: automatic review, escrow authorization, the merchant's manual queue.

A request is decided at once by the eligibility rules:
- *reject*: stored with its reasons; nothing goes on-chain;
- *manual_review*: stored and queued for the item's merchant, who approves or rejects it;
- *approve*: the merchant's account authorizes the return and deposits the refund in escrow
  (``ReturnsEscrow.authorizeReturn``); the request then carries the return id (the RMA).

One return per item at a time, even under concurrent identical requests:
1. within a process, :func:`~ledger_service.returns._chain.item_lock` serializes the
   requests of one item, so the second request sees what the first did;
2. across processes, the request that is queued or being authorized holds the item's
   slot (``return_requests.active_item``, a unique column): a concurrent insert for the
   same item fails in the database, whichever replica it comes from;
3. on-chain, ``EscrowReturnAlreadyOpen`` refuses a second authorization and names the
   open return.
A request for an item that already has an open return (known to the index, or held by
an approved request the index has not caught up with) or a queued request is answered
with :class:`ReturnAlreadyOpenError` / :class:`ReviewPendingError` (HTTP 409) naming
it; nothing is stored. The slot is released when a request is rejected, or lazily once
the index shows its return closed.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger_service.chain.calls import failed
from ledger_service.chain.reverts import ContractRevertError
from ledger_service.chain.signers import ChainContext
from ledger_service.documents.cid import Cid
from ledger_service.documents.interface import DocumentStore
from ledger_service.eligibility import Decision, Outcome, Reason
from ledger_service.errors import ConflictError, InvalidRequestError, LedgerError, NotFoundError, RetryableError
from ledger_service.returns._chain import (
    TokenUnusableError,
    TxResult,
    bytes32,
    ensure_allowance,
    event_args,
    forget_allowance,
    hex32,
    item_lock,
    wall_clock,
)
from ledger_service.returns.decision import EligibilityCheck, check_eligibility, fast_refund_applies
from ledger_service.store import returns as returns_store
from ledger_service.store.handle import Store
from ledger_service.store.returns import ReturnRequestRow
from ledger_service.store.sales import SaleRow

AUTO = "auto"
MAX_REQUEST_DOCUMENTS = 10
"""Documents (photos, a receipt) one return request may reference."""
STALE_CLAIM_S = 120
"""An approved request still without a return after this long lost its authorization (crash, timeout)."""


class ReturnAlreadyOpenError(ConflictError):
    """The item already has an open return."""

    def __init__(self, item_id: str, return_id: str) -> None:
        super().__init__(f"A return for this item is already open (RMA {return_id}); follow that return instead.")
        self.item_id = item_id
        self.return_id = return_id


class ReviewPendingError(ConflictError):
    """The item already has a request waiting for the merchant, or one being authorized."""

    def __init__(self, item_id: str, request_id: str, *, queued: bool) -> None:
        what = "is waiting for the merchant's review" if queued else "is being processed"
        super().__init__(f"A return request for this item ({request_id}) {what}; try again later.")
        self.item_id = item_id
        self.request_id = request_id


@dataclass(frozen=True, slots=True)
class RequestResult:
    """A stored request, the decision behind it and, when it authorized a return, the transaction."""

    request: ReturnRequestRow
    decision: Decision | None
    """None for a merchant's decision on a queued request."""
    tx: TxResult | None


def new_request_id() -> str:
    return "rr_" + secrets.token_hex(16)


def _reasons_json(reasons: tuple[Reason, ...] | list[Reason]) -> list[dict[str, Any]]:
    return [{"code": r.code, "message": r.message} for r in reasons]


# ---- the consumer's request -------------------------------------------------------------


def request_documents(cids: Sequence[str], documents: DocumentStore | None) -> tuple[str, ...]:
    """The CIDv0s of the documents a request references, in the order given, each once.

    :class:`InvalidRequestError` past :data:`MAX_REQUEST_DOCUMENTS`, for a text that is no CID, and for a
    document this service does not hold (the merchant could not open it): it must be uploaded first.
    """
    found: list[str] = []
    for text in cids:
        cid = Cid.parse(text).v0
        if cid not in found:
            found.append(cid)
    if len(found) > MAX_REQUEST_DOCUMENTS:
        raise InvalidRequestError(
            f"a return request may reference at most {MAX_REQUEST_DOCUMENTS} documents; this one names {len(found)}"
        )
    for cid in found:
        if documents is None or documents.stat(Cid.parse(cid)) is None:
            raise InvalidRequestError(
                f"document {cid} is not stored here; upload it with POST /v1/documents first, then send its CID"
            )
    return tuple(found)


def request_return(
    *,
    store: Store,
    chain: ChainContext,
    consumer: str,
    item_id: str,
    reason_code: str,
    comment: str | None = None,
    document_cids: Sequence[str] = (),
    documents: DocumentStore | None = None,
    now: int | None = None,
) -> RequestResult:
    """Reviews a consumer's request at once and acts on the outcome (see the module docstring).

    ``document_cids``: documents the consumer uploaded for the merchant (photos), which ``documents`` must
    hold (:func:`request_documents`). Raises :class:`ReturnAlreadyOpenError` / :class:`ReviewPendingError`
    when the item is busy, and the chain's errors when an approved return cannot be authorized (the
    request is then stored as rejected with reason ``authorization_failed``).
    """
    attached = request_documents(document_cids, documents)
    item_key = item_id.lower()
    with item_lock(item_key):
        check = check_eligibility(store=store, item_id=item_key, requester=consumer, reason_code=reason_code, now=now)
        sale = check.snapshot.sale
        if sale is not None and sale.consumer == consumer.lower():
            _refuse_if_busy(store, check)
        decision = check.decision
        created = wall_clock()
        merchant = sale.merchant if sale is not None else (check.snapshot.item.merchant if check.snapshot.item else "")
        row = ReturnRequestRow(
            id=new_request_id(),
            item_id=item_key,
            consumer=consumer.lower(),
            merchant=merchant or "0x" + "00" * 20,
            reason_code=reason_code,
            comment=comment,
            outcome=decision.outcome.value,
            reasons=_reasons_json(decision.reasons),
            return_id=None,
            tx_hash=None,
            created_at=created,
            decided_at=None if decision.outcome is Outcome.MANUAL_REVIEW else created,
            decided_by=None if decision.outcome is Outcome.MANUAL_REVIEW else AUTO,
            active_item=None if decision.outcome is Outcome.REJECT else item_key,
            documents=attached,
        )
        returns_store.insert_return_request(store, row)  # ItemBusyError: another replica holds the item
        if decision.outcome is not Outcome.APPROVE:
            return RequestResult(row, decision, None)
        assert sale is not None
        tx = _authorize(
            store=store, chain=chain, request=row, sale=sale, fast_refund=decision.fast_refund, decided_by=AUTO
        )
        stored = returns_store.return_request_by_id(store, row.id)
        assert stored is not None
        return RequestResult(stored, decision, tx)


def _refuse_if_busy(store: Store, check: EligibilityCheck) -> None:
    """Raises if the item has an open return or a request in progress; releases a slot whose return closed."""
    snap = check.snapshot
    assert snap.item is not None
    item_key = snap.item.item_id
    active = returns_store.active_request_for_item(store, item_key)
    if active is not None:
        if active.outcome == Outcome.MANUAL_REVIEW.value:
            raise ReviewPendingError(item_key, active.id, queued=True)
        if active.return_id is not None:
            indexed = returns_store.return_by_id(store, active.return_id)
            if indexed is None or indexed.is_open:
                raise ReturnAlreadyOpenError(item_key, active.return_id)
            returns_store.release_item(store, request_id=active.id)  # its return closed: the slot is free
        elif active.outcome == Outcome.APPROVE.value:
            if snap.open_return is not None:  # authorized, but the request never learnt its return id
                returns_store.record_decision(
                    store,
                    request_id=active.id,
                    outcome=active.outcome,
                    decided_at=active.decided_at or wall_clock(),
                    decided_by=active.decided_by or AUTO,
                    return_id=snap.open_return.return_id,
                    keep_item=True,
                )
                raise ReturnAlreadyOpenError(item_key, snap.open_return.return_id)
            if active.created_at > wall_clock() - STALE_CLAIM_S:
                raise ReviewPendingError(item_key, active.id, queued=False)
            returns_store.release_item(store, request_id=active.id)
        else:
            returns_store.release_item(store, request_id=active.id)
    if snap.open_return is not None:
        raise ReturnAlreadyOpenError(item_key, snap.open_return.return_id)


def _authorize(
    *,
    store: Store,
    chain: ChainContext,
    request: ReturnRequestRow,
    sale: SaleRow,
    fast_refund: bool,
    decided_by: str,
    requeue: bool = False,
) -> TxResult:
    """The merchant authorizes the return and funds the escrow; the request records the return id.

    On failure the request is rejected (``authorization_failed`` with a fixed sentence, never an
    exception's text: it is shown to the consumer; slot released), or with ``requeue`` put back in
    the merchant's queue, and the error re-raised: ``EscrowReturnAlreadyOpen`` as
    :class:`ReturnAlreadyOpenError` (and always rejects), a token that is no ERC-20 as
    :class:`TokenUnusableError`, any exception of web3 itself as a ``ChainCallError``.
    """
    sender = chain.sender_for(sale.merchant)
    call = chain.escrow.functions.authorizeReturn(bytes32(sale.item_id, "item id"), sale.price, fast_refund)
    try:
        ensure_allowance(chain=chain, sender=sender, token=sale.token, amount=sale.price)
        try:
            sent = sender.send(call)
        except ContractRevertError as exc:
            if exc.error != "ERC20InsufficientAllowance":
                raise
            # the merchant lowered its allowance since we last looked: approve again, once
            forget_allowance(chain=chain, sender=sender, token=sale.token)
            ensure_allowance(chain=chain, sender=sender, token=sale.token, amount=sale.price)
            sent = sender.send(call)
    except ContractRevertError as exc:
        if exc.error == "EscrowReturnAlreadyOpen":
            open_id = hex32(exc.params["returnId"])
            _fail(store, request, decided_by, f"A return for this item is already open ({open_id}).", requeue=False)
            raise ReturnAlreadyOpenError(request.item_id, open_id) from None
        _fail(store, request, decided_by, _unfunded(_refusal(exc)), requeue=requeue)
        raise
    except TokenUnusableError as exc:
        _fail(
            store, request, decided_by, _unfunded(f"its token {exc.token} does not work as an ERC-20"), requeue=requeue
        )
        raise
    except RetryableError:
        _fail(store, request, decided_by, _unfunded("the chain could not be reached; try again later"), requeue=requeue)
        raise
    except LedgerError:
        _fail(store, request, decided_by, _unfunded("the service could not send the transaction"), requeue=requeue)
        raise
    except Exception as exc:  # web3's own exceptions: their text is not for people, nor to be stored
        _fail(store, request, decided_by, _unfunded("the service could not send the transaction"), requeue=requeue)
        raise failed("funding the escrow", exc) from None
    [authorized] = event_args(chain.escrow, "ReturnAuthorized", sent)
    return_id = hex32(authorized["returnId"])
    returns_store.record_decision(
        store,
        request_id=request.id,
        outcome=Outcome.APPROVE.value,
        decided_at=wall_clock(),
        decided_by=decided_by,
        return_id=return_id,
        tx_hash=sent.tx_hash,
        keep_item=True,  # released lazily once the index shows the return closed
    )
    return TxResult.of(sent)


_REFUSALS = {
    "ERC20InsufficientBalance": "the merchant's account does not hold enough of the sale's token",
    "ERC20InsufficientAllowance": "the escrow may not take the refund from the merchant's account",
    "SafeERC20FailedOperation": "the sale's token refused the transfer",
    "EscrowTokenTransferMismatch": "the sale's token charges a fee on transfers, which the escrow does not support",
    "EscrowMissingRole": "the merchant's account does not hold the merchant role",
    "AccessControlUnauthorizedAccount": "the merchant's account does not hold the merchant role",
}
"""What a stored reason says for the reverts that can stop an authorization (others: the error's name)."""


def _refusal(exc: ContractRevertError) -> str:
    return _REFUSALS.get(exc.error, f"the contract refused the transaction ({exc.error})")


def _unfunded(why: str) -> str:
    """A stored reason: a fixed sentence, never an exception's text (it is shown to the consumer)."""
    return f"The merchant's escrow could not be funded: {why}."


def _fail(store: Store, request: ReturnRequestRow, decided_by: str, message: str, *, requeue: bool) -> None:
    if requeue:
        returns_store.record_decision(
            store,
            request_id=request.id,
            outcome=Outcome.MANUAL_REVIEW.value,
            decided_at=wall_clock(),
            decided_by=decided_by,
            keep_item=True,
        )
        return
    returns_store.record_decision(
        store,
        request_id=request.id,
        outcome=Outcome.REJECT.value,
        decided_at=wall_clock(),
        decided_by=decided_by,
        reasons=[{"code": "authorization_failed", "message": message}],
    )


# ---- the merchant's queue ---------------------------------------------------------------------


def _queued(store: Store, *, merchant: str, request_id: str) -> ReturnRequestRow:
    row = returns_store.return_request_by_id(store, request_id)
    if row is None or row.merchant != merchant.lower():
        raise NotFoundError(f"no return request {request_id} for this merchant")
    if row.outcome != Outcome.MANUAL_REVIEW.value:
        raise ConflictError(
            f"return request {request_id} is not waiting for review: it was already decided ({row.outcome})"
        )
    return row


def approve_request(
    *, store: Store, chain: ChainContext, merchant: str, request_id: str, now: int | None = None
) -> RequestResult:
    """The merchant approves a queued request: its return is authorized and funded as for an automatic approval.

    The merchant's approval overrides the rules that sent it to review; the sale must still be the
    consumer's, and fast refund applies if the bound policy's conditions hold.
    """
    row = _queued(store, merchant=merchant, request_id=request_id)
    with item_lock(row.item_id):
        row = _queued(store, merchant=merchant, request_id=request_id)
        check = check_eligibility(
            store=store, item_id=row.item_id, requester=row.consumer, reason_code=row.reason_code, now=now
        )
        sale = check.snapshot.sale
        if sale is None or sale.closed or sale.consumer != row.consumer:
            raise ConflictError(f"the item of request {request_id} is no longer sold to its consumer")
        if check.snapshot.open_return is not None:
            raise ReturnAlreadyOpenError(row.item_id, check.snapshot.open_return.return_id)
        claimed = returns_store.record_decision(
            store,
            request_id=row.id,
            outcome=Outcome.APPROVE.value,
            decided_at=wall_clock(),
            decided_by=merchant.lower(),
            keep_item=True,
            expected_outcome=Outcome.MANUAL_REVIEW.value,
        )
        if not claimed:
            raise ConflictError(f"return request {request_id} was decided meanwhile")
        fast = check.terms is not None and fast_refund_applies(
            terms=check.terms, price=sale.price, recent_returns=check.snapshot.consumer_returns_90d
        )
        tx = _authorize(
            store=store,
            chain=chain,
            request=row,
            sale=sale,
            fast_refund=fast,
            decided_by=merchant.lower(),
            requeue=True,  # a failed approval leaves the request in the queue
        )
        stored = returns_store.return_request_by_id(store, row.id)
        assert stored is not None
        return RequestResult(stored, None, tx)


def reject_request(*, store: Store, merchant: str, request_id: str, note: str | None = None) -> RequestResult:
    """The merchant rejects a queued request (nothing on-chain); the item is free for another request."""
    row = _queued(store, merchant=merchant, request_id=request_id)
    message = note.strip() if note and note.strip() else "The merchant reviewed the request and declined it."
    done = returns_store.record_decision(
        store,
        request_id=row.id,
        outcome=Outcome.REJECT.value,
        decided_at=wall_clock(),
        decided_by=merchant.lower(),
        reasons=[*row.reasons, {"code": "merchant_declined", "message": message}],
        expected_outcome=Outcome.MANUAL_REVIEW.value,
    )
    if not done:
        raise ConflictError(f"return request {request_id} was decided meanwhile")
    stored = returns_store.return_request_by_id(store, row.id)
    assert stored is not None
    return RequestResult(stored, None, None)
