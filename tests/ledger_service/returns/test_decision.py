"""Eligibility facts built from the index and the API's records: the cases a live chain cannot produce
(a broken history, a sale bound to an unknown policy), documents that must match their on-chain digest,
and deliveries that belong to an earlier sale."""

from __future__ import annotations

import uuid
from dataclasses import replace

from ledger_service.core.codes import BizStep, Disposition, ReturnState
from ledger_service.core.events import PolicyPublished
from ledger_service.eligibility import Outcome
from ledger_service.returns import chain_now, check_eligibility
from ledger_service.returns.decision import forget_missing_document
from ledger_service.returns.documents import PolicyDocument
from ledger_service.store import Store, items, policies
from tests.ledger_service.store.builders import DAY, ESCROW, ChainBuilder, addr, apply_new, sold_and_delivered

MERCHANT, CONSUMER = addr(2), addr(6)
DOCUMENT = PolicyDocument(
    window_days=30,
    restocking_fee_bps=500,
    fast_refund=True,
    ship_by_days=14,
    inspect_by_days=7,
    dispute_window_days=5,
    accepted_reasons=frozenset({"damaged", "wrong_size"}),
    non_returnable_categories=frozenset({"food"}),
)


def _apply(store: Store, chain: ChainBuilder) -> None:
    apply_new(store, chain)
    chain.next_block()


def _publish(chain: ChainBuilder, document: PolicyDocument, version: int = 1) -> None:
    """A PolicyPublished whose digest is the document's (the builder's own policies carry a made-up one)."""
    params = document.on_chain()
    chain._emit(PolicyPublished(chain._pos(ESCROW), MERCHANT, version, *params[:8], "0x" + params[8].hex(), chain.time))


def _sold_and_delivered(chain: ChainBuilder, uri: str) -> str:
    return sold_and_delivered(chain, uri, merchant=MERCHANT, consumer=CONSUMER, selling_step=False)


def _check(store: Store, chain: ChainBuilder, item: str, reason: str | None = "damaged") -> list[str]:
    check = check_eligibility(store=store, item_id=item, requester=CONSUMER, reason_code=reason, now=chain.time)
    return [r.code for r in check.decision.reasons]


def _unique(document: PolicyDocument) -> PolicyDocument:
    """The document with a title of its own (verified documents are cached process-wide by digest)."""
    return replace(document, title=uuid.uuid4().hex)


def test_the_documents_terms_apply_only_with_the_published_digest(store: Store) -> None:
    chain = ChainBuilder()
    document = _unique(DOCUMENT)
    _publish(chain, document)
    item = _sold_and_delivered(chain, "urn:x:doc")
    _apply(store, chain)
    assert _check(store, chain, item, "bored") == []  # no document stored yet: any reason
    policies.put_policy_terms(
        store, merchant=MERCHANT, digest=document.digest, document=document.to_json(), created_at=1
    )
    forget_missing_document(merchant=MERCHANT, digest=document.digest)  # the miss above is cached
    assert _check(store, chain, item, "bored") == ["reason_not_accepted"]
    assert _check(store, chain, item, None) == []  # without a reason the reason rules are left out
    items.set_item_category(store, item_id=item, category="food", set_by=MERCHANT, set_at=1)
    assert _check(store, chain, item) == ["category_not_returnable"]


def test_an_edited_document_is_ignored(store: Store) -> None:
    chain = ChainBuilder()
    document = _unique(DOCUMENT)
    _publish(chain, document)
    item = _sold_and_delivered(chain, "urn:x:edited")
    _apply(store, chain)
    edited = {**document.to_json(), "accepted_reasons": ["nothing"]}
    policies.put_policy_terms(store, merchant=MERCHANT, digest=document.digest, document=edited, created_at=1)
    check = check_eligibility(store=store, item_id=item, requester=CONSUMER, reason_code="damaged", now=chain.time)
    assert check.document is None and check.decision.outcome is Outcome.APPROVE


def test_a_broken_history_and_a_missing_policy(store: Store) -> None:
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)
    broken = _sold_and_delivered(chain, "urn:x:broken")
    chain.record(broken, BizStep.RECEIVING, Disposition.RETURNED, tamper="hash")
    unbound = chain.register("urn:x:unbound", merchant=MERCHANT)
    chain.sale(unbound, merchant=MERCHANT, consumer=CONSUMER, policy_version=9)
    _apply(store, chain)
    assert _check(store, chain, broken) == ["history_broken"]
    assert _check(store, chain, unbound) == ["no_policy"]


def test_a_delivery_of_an_earlier_sale_does_not_open_the_window(store: Store) -> None:
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)
    item = _sold_and_delivered(chain, "urn:x:resold")
    chain.next_block()
    rid = chain.authorize(item, 1, consumer=CONSUMER)
    chain.transition(rid, ReturnState.IN_TRANSIT, ReturnState.AUTHORIZED, deadline=chain.time + DAY)
    chain.transition(rid, ReturnState.RECEIVED, ReturnState.IN_TRANSIT)
    chain.transition(rid, ReturnState.ACCEPTED, ReturnState.RECEIVED)
    chain.settle(rid, 1, 0)
    _apply(store, chain)
    assert _check(store, chain, item) == ["not_sold"]  # the item came back: that sale is over
    chain.sale(item, merchant=MERCHANT, consumer=CONSUMER)
    _apply(store, chain)
    assert _check(store, chain, item) == ["not_delivered"]
    chain.record(item, BizStep.ARRIVING, Disposition.RETAIL_SOLD)
    _apply(store, chain)
    assert _check(store, chain, item) == []


def test_rules_run_at_chain_time_when_it_is_ahead(store: Store) -> None:
    chain = ChainBuilder(time=4_000_000_000)  # year 2096: ahead of any wall clock running these tests
    chain.policy(MERCHANT, 1)
    item = _sold_and_delivered(chain, "urn:x:future")
    delivered = chain.time
    _apply(store, chain)
    assert chain_now(store) == chain.headers[-2].timestamp
    check = check_eligibility(store=store, item_id=item, requester=CONSUMER, reason_code="damaged", now=1)
    assert check.now >= delivered and check.decision.deadline == delivered + 30 * DAY
