"""Exchanges: a consumer swaps a sold item for another unit of the merchant's instead of a refund.

An exchange is a return of the original item (ExchangeEscrow opens it in ReturnsEscrow with the same id), so
its request is a return request with a replacement (``return_requests.replacement_item_id``) and shares the
item's slot: one refund return or exchange per item at a time (:mod:`ledger_service.returns.requests`).

A request is decided at once by the return rules with the exchange terms' window
(:func:`ledger_service.eligibility.decide_exchange`): *reject* (stored with its reasons, nothing on-chain),
*manual_review* (queued for the merchant), or *approve*: the merchant's account sends
``ExchangeEscrow.authorizeExchange`` with the difference the merchant's recorded list prices give (a cheaper
replacement's refund deposited in ReturnsEscrow; an instant exchange's collateral in ExchangeEscrow), then
whatever is due at once (:func:`follow_up`). A bad replacement (the same item, unknown, destroyed, another
merchant's, sold, not in stock, held for another exchange, not priced), an instant exchange the terms do not
offer and a price difference that does not match the recorded prices are refused before anything is stored
(4xx), in ExchangeEscrow's order.

What happens later is sent by :func:`follow_up`, from the chain's own state (the index may lag): the
replacement is released (its sale recorded for the consumer under the original's policy version) at once for
an instant exchange, once the original was scanned in transit for a standard one, and only after the
consumer's payment of a dearer replacement was recorded (:func:`record_payment`); an instant exchange's
collateral goes back to the merchant once the original was scanned in transit. The API calls it after each
carrier scan of an exchange's return, and the merchant may call it (``POST /v1/exchanges/{id}/release``).

Variants (what the eligibility answer offers): the merchant's units, in stock, unsold, not held for another
exchange, with a list price, in the original's product group: the original's manufacturer, without the units the
merchant put in another category than the original's (:func:`ledger_service.store.exchanges.exchange_variants`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import structlog

from ledger_service.chain.calls import call
from ledger_service.chain.reverts import ContractRevertError
from ledger_service.chain.signers import ChainContext
from ledger_service.core.codes import ReturnState
from ledger_service.core.keccak import keccak_text
from ledger_service.eligibility import (
    ExchangeDecision,
    ExchangeTerms,
    Outcome,
    PolicyTerms,
    ReplacementFacts,
    decide_exchange,
    instant_offered,
    replacement_problem,
)
from ledger_service.errors import ConfigurationError, ConflictError, InvalidRequestError, LedgerError, NotFoundError
from ledger_service.returns._chain import ZERO32, TxResult, bytes32, event_args, hex32, item_lock, wall_clock
from ledger_service.returns.decision import EligibilityCheck, check_eligibility, facts_of
from ledger_service.returns.requests import (
    AUTO,
    RequestResult,
    claim_queued,
    new_request_row,
    queued_request,
    record_authorized,
    refuse_if_busy,
    reject_request,
    send_authorization,
    send_funded,
)
from ledger_service.store import exchanges as exchanges_store
from ledger_service.store import items as items_store
from ledger_service.store import returns as returns_store
from ledger_service.store.exchanges import ExchangeDetail, ExchangeRow, ReplacementRow, VariantRow
from ledger_service.store.handle import Store
from ledger_service.store.returns import ReturnDetail, ReturnRequestRow
from ledger_service.store.sales import SaleRow

__all__ = [
    "ExchangeCheck",
    "ExchangeResult",
    "ExchangeStatus",
    "FollowUp",
    "Variant",
    "after_scan",
    "approve_exchange",
    "check_exchange",
    "exchange_status",
    "follow_up",
    "list_exchanges",
    "publish_exchange_terms",
    "record_payment",
    "reject_exchange",
    "request_exchange",
    "set_list_prices",
]

log = structlog.get_logger(__name__)

_SHIPPED = int(ReturnState.IN_TRANSIT)
_RETURN_STATE = 6
"""The position of ``state`` in IReturnsEscrow's ReturnRecord."""
_ENDED = (int(ReturnState.CANCELLED), int(ReturnState.EXPIRED))


@dataclass(frozen=True, slots=True)
class Variant:
    """A unit the item may be exchanged for, and what the consumer would pay (> 0) or get back (< 0)."""

    item_id: str
    uri: str
    gtin: int
    list_price: int
    price_difference: int
    category: str | None


@dataclass(frozen=True, slots=True)
class ExchangeCheck:
    """The exchange decision for an item, the facts it was made from, and the variants in stock."""

    decision: ExchangeDecision
    check: EligibilityCheck
    terms: ExchangeTerms | None
    variants: tuple[Variant, ...]

    @property
    def sale(self) -> SaleRow | None:
        sale = self.check.snapshot.sale
        return sale if sale is not None and not sale.closed else None


@dataclass(frozen=True, slots=True)
class ExchangeResult:
    """A stored exchange request, the decision behind it and the transactions it sent."""

    request: ReturnRequestRow
    decision: ExchangeDecision | None
    """None for a merchant's decision on a queued request."""
    tx: TxResult | None
    """The authorization."""
    price_difference: int | None
    follow_up: FollowUp | None = None


@dataclass(frozen=True, slots=True)
class FollowUp:
    """What :func:`follow_up` sent (None: nothing was due)."""

    released: TxResult | None = None
    collateral_released: TxResult | None = None


def _exchange_terms(store: Store, policy: PolicyTerms | None, merchant: str) -> PolicyTerms | None:
    if policy is None:
        return None
    row = exchanges_store.exchange_terms_of(store, merchant=merchant, policy_version=policy.version)
    if row is None:
        return policy
    return replace(
        policy,
        exchange=ExchangeTerms(
            window_days=row.window_days, instant=row.instant, instant_max_value=row.instant_max_value
        ),
    )


def check_exchange(
    *, store: Store, item_id: str, requester: str, reason_code: str | None, now: int | None = None
) -> ExchangeCheck:
    """Whether ``requester`` may exchange the item now (for ``reason_code``; None leaves the reason rules out),
    and for which variants."""
    check = check_eligibility(store=store, item_id=item_id, requester=requester, reason_code=reason_code, now=now)
    snap = check.snapshot
    sale = snap.sale if snap.sale is not None and not snap.sale.closed else None
    policy = check.terms
    if policy is not None and reason_code is None:
        policy = replace(policy, accepted_reasons=frozenset(), manual_review_reasons=frozenset())
    policy = _exchange_terms(store, policy, sale.merchant if sale is not None else "")
    item, sale_facts, request = facts_of(snap, item_id=item_id, requester=requester, reason_code=reason_code)
    decision = decide_exchange(item=item, sale=sale_facts, policy=policy, request=request)
    variants: tuple[Variant, ...] = ()
    if decision.eligible and sale is not None and snap.item is not None:
        rows = exchanges_store.exchange_variants(
            store,
            merchant=sale.merchant,
            original_item_id=item_id,
            category=snap.category,
            manufacturer=snap.item.manufacturer,
        )
        variants = tuple(_variant(row, sale.price) for row in rows)
    return ExchangeCheck(
        decision=decision, check=check, terms=None if policy is None else policy.exchange, variants=variants
    )


def _variant(row: VariantRow, sale_price: int) -> Variant:
    return Variant(
        item_id=row.item_id,
        uri=row.uri,
        gtin=row.gtin,
        list_price=row.list_price,
        price_difference=row.list_price - sale_price,
        category=row.category,
    )


# ---- the merchant's terms and prices -------------------------------------------------------------------------


def publish_exchange_terms(
    *,
    chain: ChainContext,
    merchant: str,
    window_days: int,
    instant: bool,
    instant_max_value: int = 0,
    policy_version: int | None = None,
) -> tuple[TxResult, int]:
    """Publishes the merchant's exchange terms for a version of its return policy (default: the current one);
    terms never change once published: a new policy version gets its own. The transaction and the version."""
    exchange = _contract(chain)
    if policy_version is None:
        policy_version = int(
            call(
                chain.escrow.functions.currentPolicyVersion(merchant),
                decoder=chain.decoder,
                what="reading the merchant's policy version",
            )
        )
    terms = (window_days, instant, instant_max_value, ZERO32)
    sent = chain.sender_for(merchant).send(exchange.functions.publishExchangeTerms(policy_version, terms))
    return TxResult.of(sent), policy_version


def set_list_prices(
    *, store: Store, chain: ChainContext, merchant: str, item_ids: list[str], price: int, category: str | None = None
) -> TxResult:
    """Records the list price of the merchant's units (0: not offered as replacements); an exchange's price
    difference is the replacement's list price minus the original's sale price. ``category``, once the chain
    accepted the prices (so the caller is the units' merchant), is stored as the units' category: the variants
    of a sold item leave out units of another category."""
    exchange = _contract(chain)
    keys = [bytes32(item, "item id") for item in item_ids]
    tx = TxResult.of(chain.sender_for(merchant).send(exchange.functions.setListPrices(keys, price)))
    if category is not None:
        for item in item_ids:
            items_store.set_item_category(
                store, item_id=item, category=category, set_by=merchant.lower(), set_at=wall_clock()
            )
    return tx


# ---- the consumer's request ---------------------------------------------------------------------------------


def _replacement(store: Store, *, original: str, merchant: str, replacement_id: str) -> ReplacementRow:
    """The replacement's facts; the first problem ExchangeEscrow would refuse it for, as a 4xx error."""
    row = exchanges_store.replacement_row(store, replacement_id)
    facts = ReplacementFacts(item_id=replacement_id.lower(), registered=False)
    if row is not None:
        facts = ReplacementFacts(
            item_id=row.item_id,
            registered=True,
            merchant=row.merchant,
            destroyed=row.destroyed,
            sold=row.sold,
            in_stock=row.in_stock,
            reserved_by=row.reserved_by,
            list_price=row.list_price,
        )
    problem = replacement_problem(original_item_id=original, merchant=merchant, replacement=facts)
    if problem is None:
        assert row is not None
        return row
    hint = " GET /v1/items/{id}/eligibility/exchange lists the units in stock."
    if problem.code == "replacement_unknown":
        raise NotFoundError(problem.message + hint)
    if problem.code in ("replacement_same_item", "replacement_not_merchants"):
        raise InvalidRequestError(problem.message + hint)
    raise ConflictError(problem.message + hint)


def _check_instant(terms: ExchangeTerms | None, sale: SaleRow, *, instant: bool) -> None:
    if instant and (terms is None or not instant_offered(terms, price=sale.price)):
        raise InvalidRequestError(
            "the merchant's exchange terms do not offer an instant exchange of this purchase; "
            "ask for a standard exchange (instant: false): the replacement then ships at the original's first "
            "carrier scan"
        )


def _check_difference(expected: int, given: int | None) -> None:
    if given is not None and given != expected:
        raise InvalidRequestError(
            f"the price difference {given} does not match the merchant's recorded prices: the replacement's list "
            f"price minus what you paid is {expected}; send that, or leave price_difference out"
        )


def request_exchange(
    *,
    store: Store,
    chain: ChainContext,
    consumer: str,
    item_id: str,
    replacement_item_id: str,
    reason_code: str,
    comment: str | None = None,
    instant: bool = False,
    price_difference: int | None = None,
    now: int | None = None,
) -> ExchangeResult:
    """Reviews a consumer's exchange request at once and acts on the outcome (see the module docstring).

    ``price_difference``, when given, must be what the recorded prices give (the consumer confirms what it
    pays or gets back). Raises :class:`~ledger_service.returns.requests.ReturnAlreadyOpenError` /
    ``ReviewPendingError`` when the item is busy, 4xx errors for a bad replacement, and the chain's errors when
    an approved exchange cannot be authorized (the request is then stored as rejected).
    """
    item_key = item_id.lower()
    with item_lock(item_key):
        found = check_exchange(store=store, item_id=item_key, requester=consumer, reason_code=reason_code, now=now)
        check, decision, sale = found.check, found.decision, found.sale
        if sale is not None and sale.consumer == consumer.lower():
            refuse_if_busy(store, check)
        difference: int | None = None
        if decision.eligible:
            assert sale is not None
            unit = _replacement(store, original=item_key, merchant=sale.merchant, replacement_id=replacement_item_id)
            _check_instant(found.terms, sale, instant=instant)
            difference = unit.list_price - sale.price
            _check_difference(difference, price_difference)
        row = new_request_row(
            check,
            item_id=item_key,
            consumer=consumer,
            reason_code=reason_code,
            comment=comment,
            outcome=decision.outcome,
            reasons=decision.reasons,
            replacement_item_id=replacement_item_id,
            instant=instant,
        )
        returns_store.insert_return_request(store, row)  # ItemBusyError: another replica holds the item
        if decision.outcome is not Outcome.APPROVE:
            return ExchangeResult(row, decision, None, difference)
        assert sale is not None
        assert difference is not None
        tx, after = _authorize(store=store, chain=chain, request=row, sale=sale, difference=difference, decided_by=AUTO)
        return ExchangeResult(_stored(store, row.id), decision, tx, difference, after)


def _stored(store: Store, request_id: str) -> ReturnRequestRow:
    stored = returns_store.return_request_by_id(store, request_id)
    assert stored is not None
    return stored


def _contract(chain: ChainContext) -> Any:
    if chain.exchange is None:
        raise ConfigurationError(
            "exchanges need ExchangeEscrow: the deployment manifest names none; deploy it (scripts/deploy.py) and "
            "point LEDGER_DEPLOYMENT_FILE at the new manifest"
        )
    return chain.exchange


def _authorize(
    *,
    store: Store,
    chain: ChainContext,
    request: ReturnRequestRow,
    sale: SaleRow,
    difference: int,
    decided_by: str,
    requeue: bool = False,
) -> tuple[TxResult, FollowUp]:
    """The merchant authorizes the exchange (refund and collateral deposited); the request records its id; then
    what is due at once (an instant exchange's release) is sent."""
    exchange = _contract(chain)
    instant = bool(request.instant)
    assert request.replacement_item_id is not None
    sender = chain.sender_for(sale.merchant)
    refund = -difference if difference < 0 else 0
    collateral = sale.price - refund if instant else 0
    call = exchange.functions.authorizeExchange(
        bytes32(sale.item_id, "item id"), bytes32(request.replacement_item_id, "replacement"), difference, instant
    )
    deposits = [(None, sale.token, refund), (str(exchange.address), sale.token, collateral)]
    sent = send_authorization(
        store=store,
        request=request,
        decided_by=decided_by,
        requeue=requeue,
        send=lambda: send_funded(chain=chain, sender=sender, call=call, deposits=deposits),
    )
    [authorized] = event_args(exchange, "ExchangeAuthorized", sent)
    exchange_id = hex32(authorized["exchangeId"])
    record_authorized(store, request=request, decided_by=decided_by, return_id=exchange_id, sent=sent)
    return TxResult.of(sent), follow_up(chain=chain, exchange_id=exchange_id)


# ---- the merchant's queue -----------------------------------------------------------------------------------


def approve_exchange(
    *,
    store: Store,
    chain: ChainContext,
    merchant: str,
    request_id: str,
    now: int | None = None,
    instant: bool | None = None,
) -> ExchangeResult:
    """The merchant approves a queued exchange: authorized as an automatic approval would be. The approval
    overrides the rules that queued it; the sale must still be the consumer's and the replacement still
    available (else a 4xx, and the request stays queued for the merchant to reject). ``instant``: the merchant's
    choice of an instant or a standard exchange (None: what the consumer asked); the terms must offer an instant
    one. The chain's exchange records what was authorized; the request keeps what the consumer asked."""
    row = queued_request(store, merchant=merchant, request_id=request_id, exchange=True)
    with item_lock(row.item_id):
        row = queued_request(store, merchant=merchant, request_id=request_id, exchange=True)
        if instant is not None:
            row = replace(row, instant=instant)
        found = check_exchange(store=store, item_id=row.item_id, requester=row.consumer, reason_code=None, now=now)
        sale = found.sale
        if sale is None or sale.consumer != row.consumer:
            raise ConflictError(f"the item of exchange request {request_id} is no longer sold to its consumer")
        open_return = found.check.snapshot.open_return
        if open_return is not None:
            raise ConflictError(
                f"the item of exchange request {request_id} has an open return ({open_return.return_id}); "
                "reject this request"
            )
        assert row.replacement_item_id is not None
        unit = _replacement(store, original=row.item_id, merchant=sale.merchant, replacement_id=row.replacement_item_id)
        _check_instant(found.terms, sale, instant=bool(row.instant))
        claim_queued(store, row, merchant=merchant)
        difference = unit.list_price - sale.price
        tx, after = _authorize(
            store=store,
            chain=chain,
            request=row,
            sale=sale,
            difference=difference,
            decided_by=merchant.lower(),
            requeue=True,  # a failed approval leaves the request in the queue
        )
        return ExchangeResult(_stored(store, row.id), None, tx, difference, after)


def reject_exchange(*, store: Store, merchant: str, request_id: str, note: str | None = None) -> ExchangeResult:
    """The merchant rejects a queued exchange (nothing on-chain); the item is free for another request."""
    result: RequestResult = reject_request(
        store=store, merchant=merchant, request_id=request_id, note=note, exchange=True
    )
    return ExchangeResult(result.request, None, None, None)


# ---- what follows the authorization --------------------------------------------------------------------------


def _on_chain(chain: ChainContext, exchange_id: str) -> tuple[Any, Any]:
    """The exchange and its return as the contracts hold them now (ExchangeRecord, ReturnRecord)."""
    key = bytes32(exchange_id, "exchange id")
    exchange = _contract(chain)
    record = call(exchange.functions.exchangeOf(key), decoder=chain.decoder, what="reading the exchange")
    ret = call(chain.escrow.functions.returnOf(key), decoder=chain.decoder, what="reading the exchange's return")
    return record, ret


def follow_up(*, chain: ChainContext, exchange_id: str) -> FollowUp:
    """Sends what is due now, from the merchant's account (see the module docstring); nothing when nothing is.

    Due: the replacement's release (not released; a dearer one's payment recorded; the return not ended
    unshipped; instant, or the original scanned in transit) and an instant exchange's collateral release (not
    settled; the original scanned in transit). Called again, it sends nothing twice: the contracts' state says
    what was done.
    """
    record, ret = _on_chain(chain, exchange_id)
    (_, _, merchant, _, _, difference, _, instant, extra_paid, released, settled) = record
    if int(merchant, 16) == 0:
        raise NotFoundError(f"there is no exchange {exchange_id.lower()} on the chain")
    state = int(ret[_RETURN_STATE])
    shipped = state >= _SHIPPED
    ended = state in _ENDED
    sender = chain.sender_for(merchant)
    exchange = _contract(chain)
    key = bytes32(exchange_id, "exchange id")
    released_tx = collateral_tx = None
    if not released and not ended and (difference <= 0 or extra_paid) and (instant or shipped):
        released_tx = TxResult.of(sender.send(exchange.functions.releaseReplacement(key, ZERO32)))
    if instant and not settled and shipped:
        collateral_tx = TxResult.of(sender.send(exchange.functions.releaseCollateral(key)))
    return FollowUp(released=released_tx, collateral_released=collateral_tx)


def record_payment(
    *, store: Store, chain: ChainContext, merchant: str, exchange_id: str, payment_ref: str
) -> tuple[TxResult, FollowUp]:
    """The merchant records the consumer's off-chain payment of a dearer replacement (``payment_ref``: its own
    reference, kept on-chain as a keccak256 digest only), then sends what is due."""
    row = _merchant_exchange(store, merchant=merchant, exchange_id=exchange_id)
    if row.price_difference <= 0:
        raise ConflictError(
            f"exchange {row.exchange_id} has no price difference for the consumer to pay "
            "(the replacement does not cost more)"
        )
    exchange = _contract(chain)
    digest = keccak_text(payment_ref)
    sent = chain.sender_for(merchant).send(
        exchange.functions.recordExtraPayment(bytes32(row.exchange_id, "exchange id"), digest)
    )
    return TxResult.of(sent), follow_up(chain=chain, exchange_id=row.exchange_id)


def release_due(*, store: Store, chain: ChainContext, merchant: str, exchange_id: str) -> FollowUp:
    """The merchant's trigger of :func:`follow_up` for its exchange."""
    row = _merchant_exchange(store, merchant=merchant, exchange_id=exchange_id)
    return follow_up(chain=chain, exchange_id=row.exchange_id)


def after_scan(*, store: Store, chain: ChainContext, return_id: str) -> FollowUp | None:
    """After a carrier scan of ``return_id``: :func:`follow_up` if it is an exchange's return (known to the index
    or to the API's requests), else None. Never raises for the follow-up: the scan itself was recorded, and what
    could not be sent now is sent by the next scan or the merchant's ``POST /v1/exchanges/{id}/release``."""
    key = return_id.lower()
    if not exchanges_store.exchanges_by_id(store, [key]):
        rows, _ = returns_store.list_return_requests(store, exchanges=True, limit=1, return_id=key)
        if not rows:
            return None
    try:
        return follow_up(chain=chain, exchange_id=key)
    except (LedgerError, ContractRevertError) as exc:
        log.warning("exchange follow-up after a scan not sent", exchange_id=key, error=type(exc).__name__)
        return None


def _merchant_exchange(store: Store, *, merchant: str, exchange_id: str) -> ExchangeRow:
    found = exchanges_store.exchanges_by_id(store, [exchange_id]).get(exchange_id.lower())
    if found is None or found.merchant != merchant.lower():
        raise NotFoundError(
            f"no exchange {exchange_id.lower()} of this merchant (if it was just authorized, retry shortly)"
        )
    return found


# ---- what is shown ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExchangeStatus:
    """An exchange request and, once authorized and indexed, the exchange and its return."""

    request: ReturnRequestRow | None
    exchange: ExchangeDetail | None
    ret: ReturnDetail | None


def exchange_status(
    store: Store,
    exchange_or_request_id: str,
    *,
    consumer: str | None = None,
    item_id: str | None = None,
    merchant: str | None = None,
) -> ExchangeStatus:
    """An exchange by its id (``0x`` + 64 hex) or its request's (``rr_...``), if the caller may see it (a
    consumer: its token's item; a merchant: its own); :class:`NotFoundError` otherwise."""
    wanted = exchange_or_request_id.lower()
    request: ReturnRequestRow | None
    if wanted.startswith("rr_"):
        request = returns_store.return_request_by_id(store, wanted)
        exchange_id = None if request is None else request.return_id
        if request is not None and not request.is_exchange:
            request = None
    else:
        rows, _ = returns_store.list_return_requests(store, exchanges=True, limit=1, return_id=wanted)
        request = rows[0] if rows else None
        exchange_id = wanted
    detail = None if exchange_id is None else exchanges_store.exchange_detail(store, exchange_id)
    ret = None if detail is None else returns_store.return_detail(store, detail.exchange.exchange_id)
    if request is None and detail is None:
        raise NotFoundError(f"no exchange {wanted} (if it was just authorized, retry shortly)")
    owner_merchant = detail.exchange.merchant if detail is not None else request.merchant if request else ""
    owner_item = detail.exchange.original_item_id if detail is not None else request.item_id if request else ""
    owner = ret.ret.consumer if ret is not None else request.consumer if request is not None else ""
    if (merchant is not None and owner_merchant != merchant.lower()) or (
        consumer is not None and (owner != consumer.lower() or (item_id is not None and owner_item != item_id.lower()))
    ):
        raise NotFoundError(f"no exchange {wanted} (if it was just authorized, retry shortly)")
    return ExchangeStatus(request=request, exchange=detail, ret=ret)


def list_exchanges(
    store: Store,
    *,
    merchant: str | None,
    outcomes: tuple[str, ...] = (),
    created_from: int | None = None,
    created_to: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[tuple[ReturnRequestRow, ExchangeRow | None]], int]:
    """A merchant's exchange requests (``merchant=None``: everyone's), newest first, each with its indexed
    exchange (None before authorization or before the index has it), and the count of matches."""
    rows, count = returns_store.list_return_requests(
        store,
        merchant=merchant,
        exchanges=True,
        outcomes=list(outcomes) or None,
        created_from=created_from,
        created_to=None if created_to is None else created_to + 1,
        limit=limit,
        offset=offset,
    )
    indexed = exchanges_store.exchanges_by_id(store, [row.return_id for row in rows if row.return_id])
    return [(row, indexed.get(row.return_id) if row.return_id else None) for row in rows], count
