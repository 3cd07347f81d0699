"""Builds the eligibility rules' facts from the index and the API's records, then applies the rules.

Reads only: the index (one snapshot) plus the item's category and the bound
policy's document. A document is used only if it hashes to the digest the
chain published for that version (so an edited row can never change the
terms); without it, the on-chain parameters alone apply (any reason, no
excluded categories, no manual review).

The item's last delivery counts only if it happened at or after the current
sale (a resold item's earlier delivery does not open the new buyer's window).
A closed sale (the item came back) is no sale for the rules.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

from ledger_service.eligibility import Decision, ItemFacts, PolicyTerms, ReturnRequestFacts, SaleFacts, decide
from ledger_service.returns._chain import wall_clock
from ledger_service.returns.documents import PolicyDocument, digest_of, terms_of
from ledger_service.store.handle import Store
from ledger_service.store.items import ItemRow
from ledger_service.store.policies import PolicyRow, policy_terms_of
from ledger_service.store.sales import EligibilitySnapshot, RequesterOf, SaleRow, eligibility_read

ANY_REASON = "unspecified"
"""The reason checked when the caller gives none (reason rules are then left out)."""

_documents: dict[tuple[str, str], PolicyDocument | None] = {}
_missing_until: dict[tuple[str, str], float] = {}
_documents_lock = threading.Lock()
_DOCUMENT_CACHE = 4096
MISSING_DOCUMENT_TTL_S = 30.0
"""How long "no document with this digest" is believed before the database is asked again (documents are
stored before their digest is published, so a miss is almost always a policy published outside the API)."""


@dataclass(frozen=True, slots=True)
class EligibilityCheck:
    """A decision and the facts it was made from."""

    decision: Decision
    snapshot: EligibilitySnapshot
    terms: PolicyTerms | None
    document: PolicyDocument | None
    category: str | None

    @property
    def now(self) -> int:
        return self.snapshot.now


def policy_document(store: Store, policy: PolicyRow) -> PolicyDocument | None:
    """The stored document of a policy version, if it hashes to the published digest.

    Cached: a verified document is immutable (content-addressed); a miss for
    :data:`MISSING_DOCUMENT_TTL_S`.
    """
    key = (policy.merchant, policy.document_digest)
    with _documents_lock:
        cached = _documents.get(key)
        if cached is not None or _missing_until.get(key, 0.0) > time.monotonic():
            return cached
    document = _load_document(store, policy)
    with _documents_lock:
        if len(_documents) >= _DOCUMENT_CACHE or len(_missing_until) >= _DOCUMENT_CACHE:
            _documents.clear()
            _missing_until.clear()
        if document is None:
            _missing_until[key] = time.monotonic() + MISSING_DOCUMENT_TTL_S
        else:
            _documents[key] = document
            _missing_until.pop(key, None)
    return document


def forget_missing_document(*, merchant: str, digest: str) -> None:
    """A document was just stored: stop believing it is missing."""
    with _documents_lock:
        _missing_until.pop((merchant.lower(), digest.lower()), None)


def _load_document(store: Store, policy: PolicyRow) -> PolicyDocument | None:
    row = policy_terms_of(store, merchant=policy.merchant, digest=policy.document_digest)
    if row is None:
        return None
    try:
        document = PolicyDocument.from_json(row.document)
    except (KeyError, TypeError, ValueError):
        return None
    return document if digest_of(document.to_json()) == policy.document_digest else None


def terms_of_row(policy: PolicyRow, document: PolicyDocument | None) -> PolicyTerms:
    """The rules' terms of a published version."""
    return terms_of(
        version=policy.version,
        window_days=policy.window_days,
        restocking_fee_bps=policy.restocking_fee_bps,
        fast_refund=policy.fast_refund,
        fast_refund_max_value=policy.fast_refund_max_value,
        fast_refund_max_returns_90d=policy.fast_refund_max_returns_90d,
        ship_by_days=policy.ship_by_days,
        inspect_by_days=policy.inspect_by_days,
        dispute_window_days=policy.dispute_window_days,
        document=document,
    )


def check_eligibility(
    *, store: Store, item_id: str, requester: str, reason_code: str | None, now: int | None = None
) -> EligibilityCheck:
    """Whether ``requester`` may return the item now, for ``reason_code``.

    ``reason_code=None`` checks everything but the reason (which reasons the
    policy accepts, and which ones go to manual review).
    """
    check, _ = check_eligibility_for(
        store=store, item_id=item_id, requester=lambda _item, _sale: requester, reason_code=reason_code, now=now
    )
    return check


def check_eligibility_for(
    *, store: Store, item_id: str, requester: RequesterOf, reason_code: str | None, now: int | None = None
) -> tuple[EligibilityCheck, str]:
    """:func:`check_eligibility` for a requester decided from the item and its latest sale (the API's
    eligibility route: who asks depends on the sale), with one read of the index
    (:func:`~ledger_service.store.sales.eligibility_read`); the check and the requester.

    The snapshot's ``consumer_returns_90d`` is left 0 when the policy does not read it.
    """
    chosen: list[str] = []

    def requester_of(item: ItemRow | None, sale: SaleRow | None) -> str:
        chosen.append(requester(item, sale))
        return chosen[0]

    snap = eligibility_read(store, item_id=item_id, now=wall_clock() if now is None else now, requester=requester_of)
    check = _check(store, snap, item_id=item_id, requester=chosen[0], reason_code=reason_code)
    return check, chosen[0]


def _check(
    store: Store, snap: EligibilitySnapshot, *, item_id: str, requester: str, reason_code: str | None
) -> EligibilityCheck:
    category = snap.category
    document = None if snap.policy is None else policy_document(store, snap.policy)
    terms = None if snap.policy is None else terms_of_row(snap.policy, document)
    rules_terms = terms
    if reason_code is None and terms is not None:
        rules_terms = replace(terms, accepted_reasons=frozenset(), manual_review_reasons=frozenset())
    item, sale, request = facts_of(snap, item_id=item_id, requester=requester, reason_code=reason_code)
    decision = decide(item=item, sale=sale, policy=rules_terms, request=request)
    return EligibilityCheck(decision=decision, snapshot=snap, terms=terms, document=document, category=category)


def facts_of(
    snap: EligibilitySnapshot, *, item_id: str, requester: str, reason_code: str | None
) -> tuple[ItemFacts, SaleFacts | None, ReturnRequestFacts]:
    """The rules' facts of a snapshot (a return's and an exchange's rules read the same)."""
    sale = snap.sale if snap.sale is not None and not snap.sale.closed else None
    item = snap.item
    # the index's delivered_at is the first delivery after the item's latest sale (store/_folds.py)
    delivered_at = item.delivered_at if item is not None and sale is not None else None
    return (
        ItemFacts(
            item_id=item_id.lower(),
            registered=item is not None,
            destroyed=item.destroyed if item else False,
            recalled=item.recalled if item else False,
            history_intact=item.chain_ok if item else True,
            delivered_at=delivered_at,
            category=snap.category,
        ),
        None
        if sale is None
        else SaleFacts(
            consumer=sale.consumer,
            merchant=sale.merchant,
            price=sale.price,
            sold_at=sale.sold_at,
            policy_version=sale.policy_version,
        ),
        ReturnRequestFacts(
            requester=requester.lower(),
            reason_code=ANY_REASON if reason_code is None else reason_code,
            now=snap.now,
            open_return_id=None if snap.open_return is None else snap.open_return.return_id,
            consumer_returns_90d=snap.consumer_returns_90d,
        ),
    )


def fast_refund_applies(*, terms: PolicyTerms, price: int, recent_returns: int) -> bool:
    """The fast-refund condition of :mod:`ledger_service.eligibility.rules` alone (for a merchant's manual
    approval, which overrides the other rules)."""
    return (
        terms.fast_refund
        and (terms.fast_refund_max_value == 0 or price <= terms.fast_refund_max_value)
        and (terms.fast_refund_max_returns_90d == 0 or recent_returns < terms.fast_refund_max_returns_90d)
    )
