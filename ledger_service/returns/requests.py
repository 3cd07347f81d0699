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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from web3.contract.contract import ContractFunction

from ledger_service.chain.calls import failed
from ledger_service.chain.reverts import ContractRevertError
from ledger_service.chain.sender import SentTx, TxSender
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
from ledger_service.returns.senders import LabelSender, sender_row
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
    label_sender: LabelSender | None = None,
    now: int | None = None,
) -> RequestResult:
    """Reviews a consumer's request at once and acts on the outcome (see the module docstring).

    ``document_cids``: documents the consumer uploaded for the merchant (photos), which ``documents`` must
    hold (:func:`request_documents`). ``label_sender``: how its label shows the sender, stored with the request
    (not for a rejected one: no label is printed). Raises :class:`ReturnAlreadyOpenError` / :class:`ReviewPendingError`
    when the item is busy, and the chain's errors when an approved return cannot be authorized (the
    request is then stored as rejected with reason ``authorization_failed``).
    """
    attached = request_documents(document_cids, documents)
    item_key = item_id.lower()
    with item_lock(item_key):
        check = check_eligibility(store=store, item_id=item_key, requester=consumer, reason_code=reason_code, now=now)
        sale = check.snapshot.sale
        if sale is not None and sale.consumer == consumer.lower():
            refuse_if_busy(store, check)
        decision = check.decision
        row = new_request_row(
            check,
            item_id=item_key,
            consumer=consumer,
            reason_code=reason_code,
            comment=comment,
            outcome=decision.outcome,
            reasons=decision.reasons,
            documents=attached,
        )
        chosen = None
        if label_sender is not None and decision.outcome is not Outcome.REJECT:
            chosen = sender_row(row.id, label_sender, now=row.created_at)
        # ItemBusyError: another replica holds the item
        returns_store.insert_return_request(store, row, label_sender=chosen)
        if decision.outcome is not Outcome.APPROVE:
            return RequestResult(row, decision, None)
        assert sale is not None
        tx = _authorize(
            store=store, chain=chain, request=row, sale=sale, fast_refund=decision.fast_refund, decided_by=AUTO
        )
        stored = returns_store.return_request_by_id(store, row.id)
        assert stored is not None
        return RequestResult(stored, decision, tx)


def new_request_row(
    check: EligibilityCheck,
    *,
    item_id: str,
    consumer: str,
    reason_code: str,
    comment: str | None,
    outcome: Outcome,
    reasons: tuple[Reason, ...],
    documents: tuple[str, ...] = (),
    replacement_item_id: str | None = None,
    instant: bool | None = None,
) -> ReturnRequestRow:
    """A new request decided now (queued: undecided), holding the item's slot unless rejected."""
    snap = check.snapshot
    item_key = item_id.lower()
    sale = snap.sale
    merchant = sale.merchant if sale is not None else (snap.item.merchant if snap.item else "")
    created = wall_clock()
    return ReturnRequestRow(
        id=new_request_id(),
        item_id=item_key,
        consumer=consumer.lower(),
        merchant=merchant or "0x" + "00" * 20,
        reason_code=reason_code,
        comment=comment,
        outcome=outcome.value,
        reasons=_reasons_json(reasons),
        return_id=None,
        tx_hash=None,
        created_at=created,
        decided_at=None if outcome is Outcome.MANUAL_REVIEW else created,
        decided_by=None if outcome is Outcome.MANUAL_REVIEW else AUTO,
        active_item=None if outcome is Outcome.REJECT else item_key,
        documents=documents,
        replacement_item_id=None if replacement_item_id is None else replacement_item_id.lower(),
        instant=instant,
    )


def refuse_if_busy(store: Store, check: EligibilityCheck) -> None:
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

    On failure the request is rejected or requeued and the error re-raised (:func:`send_authorization`).
    """
    sender = chain.sender_for(sale.merchant)
    call = chain.escrow.functions.authorizeReturn(bytes32(sale.item_id, "item id"), sale.price, fast_refund)
    sent = send_authorization(
        store=store,
        request=request,
        decided_by=decided_by,
        requeue=requeue,
        send=lambda: send_funded(chain=chain, sender=sender, call=call, deposits=[(None, sale.token, sale.price)]),
    )
    [authorized] = event_args(chain.escrow, "ReturnAuthorized", sent)
    record_authorized(store, request=request, decided_by=decided_by, return_id=hex32(authorized["returnId"]), sent=sent)
    return TxResult.of(sent)


Deposit = tuple[str | None, str, int]
"""What a transaction takes from the sender's account: (spender, None for the escrow; token; amount)."""


def send_funded(*, chain: ChainContext, sender: TxSender, call: ContractFunction, deposits: list[Deposit]) -> SentTx:
    """Sends ``call`` once every spender may take its deposit (approving it if not); approves again, once, when the
    account lowered an allowance since it was last read."""
    for spender, token, amount in deposits:
        if amount:
            ensure_allowance(chain=chain, sender=sender, token=token, amount=amount, spender=spender)
    try:
        return sender.send(call)
    except ContractRevertError as exc:
        if exc.error != "ERC20InsufficientAllowance":
            raise
        for spender, token, amount in deposits:
            if amount:
                forget_allowance(chain=chain, sender=sender, token=token, spender=spender)
                ensure_allowance(chain=chain, sender=sender, token=token, amount=amount, spender=spender)
        return sender.send(call)


def send_authorization(
    *,
    store: Store,
    request: ReturnRequestRow,
    decided_by: str,
    requeue: bool,
    send: Callable[[], SentTx],
) -> SentTx:
    """Sends the merchant's authorization of ``request`` (a return's or an exchange's).

    On failure the request is rejected (``authorization_failed`` with a fixed sentence, never an
    exception's text: it is shown to the consumer; slot released), or with ``requeue`` put back in
    the merchant's queue, and the error re-raised: ``EscrowReturnAlreadyOpen`` as
    :class:`ReturnAlreadyOpenError` (and always rejects), a token that is no ERC-20 as
    :class:`TokenUnusableError`, any exception of web3 itself as a ``ChainCallError``.
    """
    try:
        return send()
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


def record_authorized(
    store: Store, *, request: ReturnRequestRow, decided_by: str, return_id: str, sent: SentTx
) -> None:
    """The request is approved and names its return (the item's slot is kept until the index shows it closed)."""
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


def queued_request(store: Store, *, merchant: str, request_id: str, exchange: bool = False) -> ReturnRequestRow:
    """The merchant's queued request (an exchange's with ``exchange``); 404 otherwise, 409 once decided."""
    row = returns_store.return_request_by_id(store, request_id)
    if (row is None or row.merchant != merchant.lower()) and exchange:
        raise NotFoundError(f"no exchange request {request_id} for this merchant")
    if row is None or row.merchant != merchant.lower():
        raise NotFoundError(f"no return request {request_id} for this merchant")
    if row.is_exchange and not exchange:
        raise ConflictError(f"request {request_id} is an exchange request: decide it under /v1/exchanges/{request_id}")
    if exchange and not row.is_exchange:
        raise ConflictError(f"request {request_id} is a return request: decide it under /v1/returns/{request_id}")
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
    row = queued_request(store, merchant=merchant, request_id=request_id)
    with item_lock(row.item_id):
        row = queued_request(store, merchant=merchant, request_id=request_id)
        check = check_eligibility(
            store=store, item_id=row.item_id, requester=row.consumer, reason_code=row.reason_code, now=now
        )
        sale = check.snapshot.sale
        if sale is None or sale.closed or sale.consumer != row.consumer:
            raise ConflictError(f"the item of request {request_id} is no longer sold to its consumer")
        if check.snapshot.open_return is not None:
            raise ReturnAlreadyOpenError(row.item_id, check.snapshot.open_return.return_id)
        claim_queued(store, row, merchant=merchant)
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


def claim_queued(store: Store, row: ReturnRequestRow, *, merchant: str) -> None:
    """The merchant's approval of a queued request, compare-and-set: a 409 when it was decided meanwhile."""
    claimed = returns_store.record_decision(
        store,
        request_id=row.id,
        outcome=Outcome.APPROVE.value,
        decided_at=wall_clock(),
        decided_by=merchant.lower(),
        keep_item=True,
        expected_outcome=Outcome.MANUAL_REVIEW.value,
    )
    if not claimed and row.is_exchange:
        raise ConflictError(f"exchange request {row.id} was decided meanwhile")
    if not claimed:
        raise ConflictError(f"return request {row.id} was decided meanwhile")


def reject_request(
    *, store: Store, merchant: str, request_id: str, note: str | None = None, exchange: bool = False
) -> RequestResult:
    """The merchant rejects a queued request (an exchange's with ``exchange``; nothing on-chain); the item is free
    for another request."""
    row = queued_request(store, merchant=merchant, request_id=request_id, exchange=exchange)
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
