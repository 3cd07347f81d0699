"""Every other write of the returns workflow, each one transaction signed by the acting account.

Who signs: a merchant, carrier, inspector or arbiter with the key of its own
account (``ChainContext.sender_for``); a consumer's cancel / dispute / claim
with the relayer (CONSUMER_AGENT_ROLE), after checking here that the return
is the authenticated consumer's (the contract pays the consumer whoever sends).

Checks made here are the ones the chain cannot make (is this return the
caller's?) or that give a clearer answer than a revert (unknown return: 404).
Everything else is left to the contracts, whose custom errors the API
translates. Documents whose digest goes on-chain (policy, inspection report,
evidence, ruling) are hashed as :mod:`ledger_service.returns.documents` says.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ledger_service.access import issue_return_token
from ledger_service.access.tokens import DEFAULT_TTL_S as DEFAULT_TOKEN_TTL_S
from ledger_service.chain.signers import ChainContext
from ledger_service.core.codes import BizStep, Disposition
from ledger_service.core.hashchain import item_id as item_id_of_uri
from ledger_service.documents.interface import DocumentStore
from ledger_service.epcis.gs1 import Gs1Error, parse_item_key
from ledger_service.errors import ConflictError, InvalidRequestError, NotFoundError
from ledger_service.returns._chain import (
    ZERO32,
    TxResult,
    bytes32,
    checksum,
    event_args,
    location_bytes,
    wall_clock,
)
from ledger_service.returns.decision import forget_missing_document
from ledger_service.returns.documents import (
    ZERO_DIGEST,
    PolicyDocument,
    digest_bytes,
    held,
    inspection_report,
    note_document,
)
from ledger_service.store import items, policies, sales
from ledger_service.store import returns as returns_store
from ledger_service.store.handle import Store
from ledger_service.store.returns import ReturnRow


class ScanKind(StrEnum):
    """What a carrier's scan of a returned parcel says."""

    IN_TRANSIT = "in_transit"
    DELIVERED_TO_MERCHANT = "delivered_to_merchant"


@dataclass(frozen=True, slots=True)
class PublishedPolicy:
    tx: TxResult
    version: int
    digest: str


@dataclass(frozen=True, slots=True)
class RecordedSale:
    tx: TxResult
    item_id: str
    sale_seq: int
    policy_version: int
    return_token: str
    """The consumer's credential for this item (plaintext, shown once)."""


@dataclass(frozen=True, slots=True)
class DocumentedTx:
    """A transaction that put a document's digest on-chain."""

    tx: TxResult
    digest: str


# ---- merchant: policy, sale, reclaim ------------------------------------------------------


def publish_policy(
    *,
    store: Store,
    chain: ChainContext,
    merchant: str,
    document: PolicyDocument,
    documents: DocumentStore | None = None,
) -> PublishedPolicy:
    """Stores the document under its digest (in the index, and its canonical JSON in ``documents``, so that
    its CID resolves), then publishes the parameters and digest on-chain.

    The document is stored first: a crash after the transaction still leaves it findable by the
    digest the chain holds (content-addressed, so storing it twice changes nothing). If publishing
    fails, what this call stored is removed again (:func:`held`; the terms row if this call added it).
    """
    document.validate()
    with held(documents, document.to_json()) as digest:
        added = policies.put_policy_terms(
            store, merchant=merchant, digest=digest, document=document.to_json(), created_at=wall_clock()
        )
        try:
            forget_missing_document(merchant=merchant, digest=digest)
            sent = chain.sender_for(merchant).send(chain.escrow.functions.publishPolicy(document.on_chain()))
        except BaseException:
            if added:
                policies.delete_policy_terms(store, merchant=merchant, digest=digest)
            raise
    [published] = event_args(chain.escrow, "PolicyPublished", sent)
    return PublishedPolicy(tx=TxResult.of(sent), version=int(published["version"]), digest=digest)


def order_digest(order_ref: str) -> bytes:
    """The on-chain orderRef of a merchant's order reference: sha256 of its UTF-8 bytes."""
    return hashlib.sha256(order_ref.encode()).digest()


def record_sale(
    *,
    store: Store,
    chain: ChainContext,
    merchant: str,
    item_id: str,
    consumer: str,
    price: int,
    token: str | None = None,
    order_ref: str = "",
    location: str | None = None,
    category: str | None = None,
    token_ttl_s: int = DEFAULT_TOKEN_TTL_S,
) -> RecordedSale:
    """Records the sale on-chain (bound to the merchant's current policy) and issues the consumer's return token
    (for this sale, valid ``token_ttl_s`` seconds; the item's tokens of earlier sales are revoked).

    ``token`` defaults to the deployment's stablecoin and must pass
    :meth:`~ledger_service.chain.signers.ChainContext.check_sale_token` (allowed, and an ERC-20);
    ``category`` (for non-returnable categories) is stored for the item once the chain accepted the sale,
    i.e. once the caller proved it may sell it.
    """
    if token is None:
        if chain.token is None:
            raise ConflictError("this deployment has no default token: give the sale's ERC-20 token address")
        token = str(chain.token.address)
    token = checksum(token, "token")
    chain.check_sale_token(token, merchant=merchant)
    sent = chain.sender_for(merchant).send(
        chain.escrow.functions.recordSale(
            bytes32(item_id, "item id"),
            checksum(consumer, "consumer"),
            token,
            price,
            order_digest(order_ref) if order_ref else ZERO32,
            location_bytes(location),
        )
    )
    [sale] = event_args(chain.escrow, "SaleRecorded", sent)
    if category:
        items.set_item_category(store, item_id=item_id, category=category, set_by=merchant, set_at=wall_clock())
    token_plaintext = issue_return_token(
        store=store, item_id=item_id.lower(), consumer=consumer, sale_seq=int(sale["saleSeq"]), ttl_s=token_ttl_s
    )
    return RecordedSale(
        tx=TxResult.of(sent),
        item_id=item_id.lower(),
        sale_seq=int(sale["saleSeq"]),
        policy_version=int(sale["policyVersion"]),
        return_token=token_plaintext,
    )


@contextmanager
def _document(documents: DocumentStore | None, written: dict[str, Any] | None, *, given: str | None) -> Iterator[str]:
    """The digest an action puts on-chain: of the document ``written`` for it (stored while the action runs,
    kept only if it succeeds: :func:`held`), else the ``given`` one (a caller's upload, or zero)."""
    if written is None:
        yield (given or ZERO_DIGEST).lower()
        return
    with held(documents, written) as digest:
        yield digest


def _return_of(store: Store, return_id: str) -> ReturnRow:
    found = returns_store.return_by_id(store, return_id)
    if found is None:
        raise NotFoundError(f"no return {return_id.lower()} (if it was just authorized, retry with ?wait=true)")
    return found


def reclaim(*, store: Store, chain: ChainContext, merchant: str, return_id: str) -> TxResult:
    """The merchant takes the deposit back (never shipped by ship-by, or failed and undisputed)."""
    ret = _return_of(store, return_id)
    if ret.merchant != merchant.lower():
        raise NotFoundError(f"no return {return_id.lower()} of this merchant")
    sent = chain.sender_for(merchant).send(chain.escrow.functions.reclaim(bytes32(ret.return_id, "return id")))
    return TxResult.of(sent)


# ---- carrier: delivery and scans ------------------------------------------------------------


def record_delivery(
    *, store: Store, chain: ChainContext, carrier: str, item_id: str, location: str | None = None
) -> TxResult:
    """The carrier delivered the sold item to the consumer (``arriving`` + ``retail_sold``, the order as
    business transaction): the return window starts now."""
    sale = sales.current_sale(store, item_id)
    if sale is None or sale.closed:
        raise ConflictError(
            f"item {item_id.lower()} has no open sale to deliver (if it was just sold, retry with ?wait=true)"
        )
    item = items.item(store, item_id)
    if item is not None and item.delivered_at is not None:
        # The index keeps the first delivery after the current sale (store/_folds.py); another one is refused.
        when = datetime.fromtimestamp(item.delivered_at, UTC)
        raise ConflictError(f"item {item_id.lower()} was already delivered for this sale ({when:%Y-%m-%d %H:%M} UTC)")
    event = (
        bytes32(sale.item_id, "item id"),
        int(BizStep.ARRIVING),
        int(Disposition.RETAIL_SOLD),
        location_bytes(location),
        ZERO32,
        bytes32(sale.order_ref, "order reference"),
    )
    sent = chain.sender_for(carrier).send(chain.ledger.functions.recordEvent(event))
    return TxResult.of(sent)


def scan_return(
    *,
    store: Store,
    chain: ChainContext,
    carrier: str,
    return_id: str,
    kind: ScanKind,
    location: str | None = None,
    epc: str | None = None,
) -> TxResult:
    """A carrier's scan of a returned parcel: first scan (fast refund pays now) or delivery to the merchant.

    ``epc``: the EPC URI scanned on the unit at delivery; the contract compares it with the unit sold (another
    unit sends the return to the arbiter and pays nothing)."""
    ret = _return_of(store, return_id)
    rid = bytes32(ret.return_id, "return id")
    escrow = chain.escrow.functions
    if epc is not None and kind is not ScanKind.DELIVERED_TO_MERCHANT:
        raise InvalidRequestError(
            "the unit's EPC is checked at delivery to the merchant: send it with kind delivered_to_merchant, "
            "or leave it out of the in-transit scan"
        )
    call = escrow.markInTransit(rid, location_bytes(location))
    if kind is ScanKind.DELIVERED_TO_MERCHANT:
        call = escrow.markReceived(rid, location_bytes(location))
        if epc is not None:
            call = escrow.markReceivedUnit(rid, location_bytes(location), scanned_unit(store, epc))
    return TxResult.of(chain.sender_for(carrier).send(call))


def scanned_unit(store: Store, epc: str) -> bytes:
    """The item id of a scanned EPC, for the contract's unit check.

    A well-formed GS1 item name (SGTIN URN, GS1 Digital Link) goes to the chain whether or not it is on the
    ledger: a unit nobody registered in the parcel is the swap the check is there to catch. Text that is a
    malformed GS1 name, or neither a GS1 name nor the URI of an item on the ledger, is a misread scan: a 422,
    nothing is sent.
    """
    try:
        key = parse_item_key(epc)
    except Gs1Error as exc:
        raise InvalidRequestError(f"the scanned EPC is malformed: {exc}; scan the unit's label again") from None
    item_id = item_id_of_uri(epc)
    if key is None and items.item(store, "0x" + item_id.hex()) is None:
        raise InvalidRequestError(
            f"the scanned EPC {epc!r} is not a GS1 item name (urn:epc:id:sgtin:... or a GS1 Digital Link) and no "
            "unit with that URI is on the ledger: scan the unit's label again"
        )
    return item_id


# ---- inspector ------------------------------------------------------------------------------------


def record_inspection(
    *,
    store: Store,
    chain: ChainContext,
    inspector: str,
    return_id: str,
    passed: bool,
    grade: str | None = None,
    notes: str | None = None,
    report_digest: str | None = None,
    location: str | None = None,
    documents: DocumentStore | None = None,
    epc: str | None = None,
) -> DocumentedTx:
    """The inspection result; the report's digest is the given one (e.g. an uploaded document's) or that of
    the report {passed, grade, notes}, which is then stored in ``documents`` (and removed if the transaction
    fails). ``epc``: the EPC URI scanned on the inspected unit, compared on-chain with the unit sold."""
    ret = _return_of(store, return_id)
    report = None if report_digest else inspection_report(passed=passed, grade=grade, notes=notes)
    with _document(documents, report, given=report_digest) as digest:
        args = (bytes32(ret.return_id, "return id"), passed, digest_bytes(digest), location_bytes(location))
        call = chain.escrow.functions.recordInspection(*args)
        if epc is not None:
            call = chain.escrow.functions.recordInspectionUnit(*args, scanned_unit(store, epc))
        sent = chain.sender_for(inspector).send(call)
    return DocumentedTx(tx=TxResult.of(sent), digest=digest)


# ---- consumer (through the relayer) ---------------------------------------------------------------


def _consumers_return(store: Store, *, consumer: str, item_id: str, return_id: str) -> ReturnRow:
    """The return, if it is this consumer's return of this item (else 404: another party's is not shown)."""
    ret = returns_store.return_by_id(store, return_id)
    if ret is None or ret.consumer != consumer.lower() or ret.item_id != item_id.lower():
        raise NotFoundError(f"no return {return_id.lower()} of yours (if it was just authorized, retry shortly)")
    return ret


def cancel_return(*, store: Store, chain: ChainContext, consumer: str, item_id: str, return_id: str) -> TxResult:
    """The consumer withdraws the return before it ships; the deposit goes back to the merchant."""
    ret = _consumers_return(store, consumer=consumer, item_id=item_id, return_id=return_id)
    call = chain.escrow.functions.cancelReturn(bytes32(ret.return_id, "return id"))
    return TxResult.of(chain.relayer_sender().send(call))


def dispute_return(
    *,
    store: Store,
    chain: ChainContext,
    consumer: str,
    item_id: str,
    return_id: str,
    comment: str | None = None,
    evidence_digest: str | None = None,
    documents: DocumentStore | None = None,
) -> DocumentedTx:
    """The consumer disputes a failed inspection; the evidence digest is the given one or that of the comment
    (then stored in ``documents``, and removed if the transaction fails)."""
    ret = _consumers_return(store, consumer=consumer, item_id=item_id, return_id=return_id)
    evidence = None
    if not evidence_digest and comment:
        evidence = note_document("evidence", return_id=ret.return_id, comment=comment)
    with _document(documents, evidence, given=evidence_digest or ZERO_DIGEST) as digest:
        call = chain.escrow.functions.dispute(bytes32(ret.return_id, "return id"), digest_bytes(digest))
        sent = chain.relayer_sender().send(call)
    return DocumentedTx(tx=TxResult.of(sent), digest=digest)


def claim_uninspected(*, store: Store, chain: ChainContext, consumer: str, item_id: str, return_id: str) -> TxResult:
    """The consumer takes the whole deposit because the merchant did not inspect by the deadline."""
    ret = _consumers_return(store, consumer=consumer, item_id=item_id, return_id=return_id)
    call = chain.escrow.functions.claimUninspected(bytes32(ret.return_id, "return id"))
    return TxResult.of(chain.relayer_sender().send(call))


# ---- arbiter ----------------------------------------------------------------------------------------


def resolve_dispute(
    *,
    store: Store,
    chain: ChainContext,
    arbiter: str,
    return_id: str,
    consumer_amount: int,
    notes: str | None = None,
    ruling_digest: str | None = None,
    documents: DocumentStore | None = None,
) -> DocumentedTx:
    """The arbiter splits a disputed deposit: ``consumer_amount`` to the consumer, the rest to the merchant."""
    ret = _return_of(store, return_id)
    ruling = None
    if not ruling_digest:
        ruling = note_document("ruling", return_id=ret.return_id, consumer_amount=str(consumer_amount), notes=notes)
    with _document(documents, ruling, given=ruling_digest) as digest:
        call = chain.escrow.functions.resolveDispute(
            bytes32(ret.return_id, "return id"), consumer_amount, digest_bytes(digest)
        )
        sent = chain.sender_for(arbiter).send(call)
    return DocumentedTx(tx=TxResult.of(sent), digest=digest)
