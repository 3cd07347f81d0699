"""An answer to one message: what it asks (:mod:`~ledger_service.assistant.understanding`), and the facts
that answer it, read from the index through the returns workflow's views.

Who asks: a consumer with a return token (the token names one sold item: its sale's merchant and policy
version, its returns), or anyone, naming a merchant's account, for a question about that merchant's
published policy. What is answered from where:

- return, exchange (and a complaint with a reason): a draft return request (reason code and the message as
  its free text), the body ``POST /v1/returns`` takes, for the portal to submit in one tap, and, for a
  consumer, what the shop's rules would answer if it were submitted now (:func:`would_decide`); the draft
  is given to anonymous callers too, with the sentence saying where to submit it;
- policy question: the terms of the policy version the consumer's sale is bound to, or the merchant's
  current version, quoted with the version, its transaction and document digest (the citation);
- refund status, tracking: the consumer's latest return or request for the token's item, its state,
  deadlines, the last parcel scan and whether the refund was paid (never anyone else's: the views filter
  by the token's consumer and item);
- other, or another language, or an uncertain intent or reason: one sentence, or one question.

Invariants: nothing here writes; a merchant that published no policy is a :class:`NotFoundError` (404)
whatever the message asks, a blank message an :class:`InvalidRequestError` (422).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ledger_service.access import Consumer
from ledger_service.assistant.dataset import Intent
from ledger_service.assistant.language import Language
from ledger_service.assistant.model import AssistantModel
from ledger_service.assistant.replies import OTHER_LANGUAGE, Lang, eligibility_name, reason_name, say, state_name
from ledger_service.assistant.understanding import REASONED, Clarify, Understanding, understand
from ledger_service.core.codes import BizStep, ReturnState, decode_location
from ledger_service.errors import InvalidRequestError, NotFoundError
from ledger_service.returns.decision import check_eligibility
from ledger_service.returns.labels import label_code
from ledger_service.returns.views import PolicyVersion, ReturnStatus, policy_history, return_status
from ledger_service.returns.views import state_name as chain_state_name
from ledger_service.store import returns as returns_store
from ledger_service.store import sales as sales_store
from ledger_service.store.handle import Store

MAX_MESSAGE_CHARS = 2000
"""Longest message understood (a request that long is a letter, not a chat message)."""
COMMENT_MAX_CHARS = 2000
"""The return request's free-text limit (``ReturnCreate.comment``): a draft's comment is cut to it."""
_SCANNED = frozenset({ReturnState.IN_TRANSIT, ReturnState.RECEIVED})
_CARRIER_STEPS = frozenset(
    {BizStep.SHIPPING, BizStep.DEPARTING, BizStep.TRANSPORTING, BizStep.ARRIVING, BizStep.RECEIVING}
)
_REQUEST_STATES = {"manual_review": "pending_review", "reject": "request_rejected", "approve": "processing"}

Decimals = Callable[[str], int | None]
"""A token's ``decimals()``, None when unknown."""


@dataclass(frozen=True, slots=True)
class Draft:
    """A return request the portal can submit as it is (the body of ``POST /v1/returns``)."""

    reason_code: str
    comment: str


@dataclass(frozen=True, slots=True)
class PolicyCitation:
    """The policy version an answer quotes, and where it is published."""

    merchant: str
    version: int
    window_days: int
    restocking_fee_bps: int
    fast_refund: bool
    fast_refund_max_value: int
    ship_by_days: int
    inspect_by_days: int
    dispute_window_days: int
    non_returnable_categories: tuple[str, ...]
    accepted_reasons: tuple[str, ...]
    document_digest: str
    tx_hash: str
    block_number: int


@dataclass(frozen=True, slots=True)
class ReturnFacts:
    """The consumer's latest return (or request without a return) as an answer reads it."""

    id: str
    return_id: str | None
    state: str
    token: str | None
    amount: int | None
    fast_refund: bool | None
    refund_paid: bool
    refund_amount: int | None
    paid_at: int | None
    payout_tx: str | None
    ship_by: int | None
    inspect_by: int | None
    last_scan_at: int | None
    last_scan_location: str | None


@dataclass(frozen=True, slots=True)
class Eligibility:
    """What the shop's rules would answer if the draft were submitted now (a consumer with a token)."""

    outcome: str
    """approve, manual_review or reject"""
    reasons: tuple[str, ...]
    """The rules' reason codes (ledger_service/eligibility/rules.py)."""
    fast_refund: bool


@dataclass(frozen=True, slots=True)
class Answer:
    """The assistant's answer to one message."""

    understanding: Understanding
    reply: str
    draft: Draft | None
    policy: PolicyCitation | None
    ret: ReturnFacts | None
    clarify: Clarify | None
    needs_merchant: bool
    eligibility: Eligibility | None = None


def answer(
    *,
    store: Store,
    model: AssistantModel,
    message: str,
    consumer: Consumer | None,
    merchant: str | None,
    decimals: Decimals,
) -> Answer:
    """The answer to ``message`` from ``consumer`` (None: anonymous), about ``merchant`` (an anonymous
    caller's policy question; with a token the sale's merchant is used, and another one is a 422)."""
    text = message.strip()
    if not text:
        raise InvalidRequestError("the message is empty: write what you need, in Chinese or English")
    if len(text) > MAX_MESSAGE_CHARS:
        raise InvalidRequestError(
            f"the message has {len(text)} characters; at most {MAX_MESSAGE_CHARS} are read: keep it to what you need"
        )
    policy = _policy_for(store, consumer=consumer, merchant=merchant)
    understood = understand(text, model)
    if understood.language == "other":
        return Answer(understood, OTHER_LANGUAGE, None, None, None, None, False)
    lang: Lang = "zh" if understood.language == "zh" else "en"
    if understood.clarify is not None:
        key = "clarify_intent" if understood.clarify is Clarify.INTENT else "clarify_reason"
        return Answer(understood, say(key, lang), None, None, None, understood.clarify, False)
    intent = understood.intent
    if intent in REASONED or (intent is Intent.COMPLAINT and understood.reason is not None):
        return _draft_answer(store, understood, lang, text, consumer=consumer, policy=policy)
    if intent is Intent.POLICY_QUESTION:
        if policy is None:
            return Answer(understood, say("clarify_merchant", lang), None, None, None, None, True)
        return Answer(understood, _policy_reply(policy, lang, decimals), None, _citation(policy), None, None, False)
    if intent in (Intent.REFUND_STATUS, Intent.TRACKING):
        if consumer is None:
            return Answer(understood, say("status_needs_token", lang), None, None, None, None, False)
        facts = latest_return(store, consumer)
        reply = say("no_return", lang) if facts is None else _status_reply(facts, intent, lang, decimals)
        return Answer(understood, reply, None, None, facts, None, False)
    key = "complaint" if intent is Intent.COMPLAINT else "other"
    return Answer(understood, say(key, lang), None, None, None, None, False)


# ---- facts ------------------------------------------------------------------------------------------------


def _policy_for(store: Store, *, consumer: Consumer | None, merchant: str | None) -> PolicyVersion | None:
    """The policy version an answer quotes: the consumer's sale's, else the named merchant's current one."""
    if consumer is not None:
        sale = sales_store.current_sale(store, consumer.item_id)
        if sale is None:
            return None
        if merchant is not None and merchant.lower() != sale.merchant.lower():
            raise InvalidRequestError(
                f"this return token is for a purchase from {sale.merchant.lower()}, not from {merchant.lower()}: "
                "leave out the merchant to ask about your purchase"
            )
        return next((v for v in policy_history(store, sale.merchant) if v.row.version == sale.policy_version), None)
    if merchant is None:
        return None
    versions = policy_history(store, merchant)
    if not versions:
        raise NotFoundError(f"merchant {merchant.lower()} has published no return policy")
    return versions[0]


def latest_return(store: Store, consumer: Consumer) -> ReturnFacts | None:
    """The consumer's latest return or request for the token's item (None if there is none)."""
    requests, _ = returns_store.list_return_requests(
        store, consumer=consumer.address, item_id=consumer.item_id, limit=1
    )
    if not requests:
        return None
    request = requests[0]
    status = return_status(store, request.return_id or request.id, consumer=consumer.address, item_id=consumer.item_id)
    return _facts(status, request.id, request.outcome)


def _facts(status: ReturnStatus, request_id: str, outcome: str) -> ReturnFacts:
    detail = status.detail
    if detail is None:
        state = _REQUEST_STATES.get(outcome, outcome)
        return ReturnFacts(request_id, None, state, None, None, None, False, None, None, None, None, None, None, None)
    ret, payout = detail.ret, detail.payout
    # a carrier's scan is the escrow's transition to in_transit or received, and the item event it recorded
    moves: list[tuple[int, int, int, str | None]] = [
        (t.at, t.block_number, t.log_index, None) for t in detail.transitions if t.state in _SCANNED
    ]
    moves += [
        (e.timestamp, e.block_number, e.log_index, _place(e.location))
        for e in detail.item_events
        if e.biz_step in _CARRIER_STEPS
    ]
    last = max(moves, key=lambda move: (move[1], move[2]), default=None)
    paid = payout is not None and payout.consumer_amount > 0
    return ReturnFacts(
        id=ret.return_id,
        return_id=ret.return_id,
        state=chain_state_name(ret.state),
        token=ret.token,
        amount=ret.amount,
        fast_refund=ret.fast_refund,
        refund_paid=paid,
        refund_amount=payout.consumer_amount if payout is not None else None,
        paid_at=payout.paid_at if payout is not None else None,
        payout_tx=payout.tx_hash if payout is not None else None,
        ship_by=ret.ship_by,
        inspect_by=ret.inspect_by,
        last_scan_at=last[0] if last is not None else None,
        last_scan_location=last[3] if last is not None else None,
    )


def _place(location: str) -> str | None:
    """An item event's read point (hex of the contract's bytes32) as text; None when it names none."""
    if not location or int(location, 16) == 0:
        return None
    return decode_location(bytes.fromhex(location.removeprefix("0x"))) or None


# ---- replies --------------------------------------------------------------------------------------------------


def _draft_answer(
    store: Store,
    understood: Understanding,
    lang: Lang,
    text: str,
    *,
    consumer: Consumer | None,
    policy: PolicyVersion | None,
) -> Answer:
    reason = understood.reason or "other"
    key = {Intent.EXCHANGE: "exchange_draft", Intent.COMPLAINT: "complaint_reason"}.get(
        understood.intent, "return_draft"
    )
    reply = say(key, lang, reason=reason_name(reason, lang))
    draft = Draft(reason_code=reason, comment=text[:COMMENT_MAX_CHARS])
    if consumer is None:
        document = policy.document if policy is not None else None
        if document is not None and document.accepted_reasons and reason not in document.accepted_reasons:
            separator = ", " if lang == "en" else "、"
            names = separator.join(reason_name(r, lang) for r in sorted(document.accepted_reasons))
            reply += say("reason_not_accepted", lang, accepted=names)
        return Answer(understood, reply + say("needs_token", lang), draft, None, None, None, False)
    eligibility = would_decide(store, consumer, reason)
    return Answer(
        understood, reply + _eligibility_reply(eligibility, lang), draft, None, None, None, False, eligibility
    )


def would_decide(store: Store, consumer: Consumer, reason_code: str) -> Eligibility:
    """The shop's rules applied to the draft now, as POST /v1/returns would apply them (nothing is written)."""
    decision = check_eligibility(
        store=store, item_id=consumer.item_id, requester=consumer.address, reason_code=reason_code
    ).decision
    return Eligibility(decision.outcome.value, tuple(r.code for r in decision.reasons), decision.fast_refund)


def _eligibility_reply(eligibility: Eligibility, lang: Lang) -> str:
    if eligibility.outcome == "approve":
        return say("would_approve_fast" if eligibility.fast_refund else "would_approve", lang)
    if eligibility.outcome == "manual_review":
        return say("would_review", lang)
    separator = "; " if lang == "en" else "\uff1b"  # a full-width semicolon
    return say("would_reject", lang, reasons=separator.join(eligibility_name(c, lang) for c in eligibility.reasons))


def _amount(amount: int, token: str | None, decimals: Decimals) -> str:
    places = decimals(token) if token is not None else None
    if not places:
        return str(amount)
    whole, fraction = divmod(amount, 10**places)
    shown = f"{fraction:0{places}d}".rstrip("0").ljust(2, "0")
    return f"{whole}.{shown}"


def _day(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d")


def _status_reply(facts: ReturnFacts, intent: Intent, lang: Lang, decimals: Decimals) -> str:
    reply = say("return_state", lang, id=facts.id, state=state_name(facts.state, lang))
    if facts.return_id is None:
        return reply
    now = int(time.time())
    if intent is Intent.TRACKING:
        reply += say("label", lang, code=label_code(facts.return_id))
        if facts.last_scan_at is not None:
            where = "" if facts.last_scan_location is None else f" ({facts.last_scan_location})"
            reply += say("last_scan", lang, date=_day(facts.last_scan_at), where=where)
        elif facts.state == "authorized":
            reply += say("no_scan", lang)
    if facts.state == "authorized" and facts.ship_by is not None and facts.ship_by >= now:
        reply += say("ship_by", lang, date=_day(facts.ship_by))
    if facts.state in ("in_transit", "received") and facts.inspect_by:
        reply += say("inspect_by", lang, date=_day(facts.inspect_by))
    if facts.refund_paid and facts.refund_amount is not None and facts.paid_at is not None:
        amount = _amount(facts.refund_amount, facts.token, decimals)
        reply += say("refund_paid", lang, amount=amount, date=_day(facts.paid_at), tx=str(facts.payout_tx))
    elif facts.refund_amount is not None:
        reply += say("refund_none", lang)
    elif facts.amount is not None:
        reply += say("refund_held", lang, amount=_amount(facts.amount, facts.token, decimals))
        if facts.fast_refund and facts.state == "authorized":
            reply += say("fast_refund_pending", lang)
    return reply


def _policy_reply(policy: PolicyVersion, lang: Lang, decimals: Decimals) -> str:
    row, document = policy.row, policy.document
    if row.restocking_fee_bps:
        fee = say("fee", lang, percent=f"{row.restocking_fee_bps / 100:g}")
    else:
        fee = say("no_fee", lang)
    if row.fast_refund:
        # the cap is in the sale token's units; a policy names no token, so it is shown as a plain number
        cap = say("fast_cap", lang, amount=str(row.fast_refund_max_value)) if row.fast_refund_max_value else ""
        fast = say("fast", lang, cap=cap)
    else:
        fast = say("no_fast", lang)
    reply = say(
        "policy",
        lang,
        version=str(row.version),
        window=str(row.window_days),
        fee=fee,
        fast=fast,
        ship=str(row.ship_by_days),
        inspect=str(row.inspect_by_days),
        dispute=str(row.dispute_window_days),
    )
    if document is not None and document.non_returnable_categories:
        separator = ", " if lang == "en" else "、"
        reply += say("categories", lang, categories=separator.join(sorted(document.non_returnable_categories)))
    return reply + say("cite", lang, version=str(row.version), tx=row.tx_hash, digest=row.document_digest)


def _citation(policy: PolicyVersion) -> PolicyCitation:
    row, document = policy.row, policy.document
    return PolicyCitation(
        merchant=row.merchant.lower(),
        version=row.version,
        window_days=row.window_days,
        restocking_fee_bps=row.restocking_fee_bps,
        fast_refund=row.fast_refund,
        fast_refund_max_value=row.fast_refund_max_value,
        ship_by_days=row.ship_by_days,
        inspect_by_days=row.inspect_by_days,
        dispute_window_days=row.dispute_window_days,
        non_returnable_categories=tuple(sorted(document.non_returnable_categories)) if document else (),
        accepted_reasons=tuple(sorted(document.accepted_reasons)) if document else (),
        document_digest=row.document_digest,
        tx_hash=row.tx_hash,
        block_number=row.block_number,
    )


__all__ = [
    "MAX_MESSAGE_CHARS",
    "Answer",
    "Decimals",
    "Draft",
    "Eligibility",
    "Language",
    "PolicyCitation",
    "ReturnFacts",
    "answer",
    "latest_return",
    "would_decide",
]
