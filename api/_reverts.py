"""A contract's custom error as an HTTP status and a sentence a person can act on.

Every error of the ReturnsEscrow, ExchangeEscrow, ProvenanceLedger, BatchAnchor and token
ABIs has an entry; an error without one becomes 409 with its name. The sentence never
shows raw revert data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ledger_service.chain.reverts import ContractRevertError
from ledger_service.chain.signers import ChainContext
from ledger_service.core.codes import ROLE_IDS, BizStep, ReturnState

_ROLE_NAMES = {role: name for name, role in ROLE_IDS.items()}
_DEADLINES = (("shipBy", "ship-by"), ("inspectBy", "inspect-by"), ("disputeBy", "dispute"))
_STATE_DEADLINE = {
    ReturnState.AUTHORIZED: "shipBy",
    ReturnState.IN_TRANSIT: "inspectBy",
    ReturnState.RECEIVED: "inspectBy",
    ReturnState.REJECTED: "disputeBy",
}
"""The deadline the contract checks in each state (a reverted action leaves the state as it was)."""


def utc_text(timestamp: int) -> str:
    """``2026-11-01 12:00 UTC``."""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def show(value: Any) -> str:
    """A revert argument as text: bytes as 0x hex, everything else as str."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


MAX_REASON_CHARS = 200
_UNSHOWABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def reason_text(message: Any) -> str:
    """A contract's ``Error(string)`` reason as shown to people: any contract (a token, say) chooses that text,
    so control and bidirectional-formatting characters are dropped and it is cut at MAX_REASON_CHARS."""
    text = _UNSHOWABLE.sub("", str(message))
    return text if len(text) <= MAX_REASON_CHARS else text[:MAX_REASON_CHARS] + "…"


def title_of(error: str) -> str:
    """``EscrowDeadlinePassed`` -> ``Escrow deadline passed``."""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+", error) or [error]
    text = " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in words)
    return text[:1].upper() + text[1:]


def _role(value: Any) -> str:
    return _ROLE_NAMES.get(bytes(value), show(value)) if isinstance(value, bytes) else show(value)


def _step(value: Any) -> str:
    try:
        return BizStep(int(value)).cbv
    except ValueError:
        return f"bizStep {value}"


def _state(value: Any) -> str:
    try:
        return ReturnState(int(value)).name.lower().replace("_", " ")
    except ValueError:
        return f"state {value}"


def _deadline_kind(chain: ChainContext | None, return_id: Any, deadline: int) -> str:
    """Which of the return's deadlines ``deadline`` is ("ship-by ", ...), read from the contract; "" if unknown."""
    if chain is None or not isinstance(return_id, bytes):
        return ""
    try:
        function = chain.escrow.functions.returnOf(return_id)
        record = function.call()
        names = [c["name"] for c in function.abi["outputs"][0]["components"]]
        fields = dict(zip(names, record, strict=True))
    except Exception:  # an explanation must never fail: fall back to "the deadline"
        return ""
    labels = dict(_DEADLINES)
    try:
        own = _STATE_DEADLINE.get(ReturnState(int(fields.get("state", -1))))
    except ValueError:
        own = None
    # Two deadlines may fall on the same second: the one of the return's state is the one checked.
    candidates = ([own] if own is not None else []) + [field for field, _ in _DEADLINES if field != own]
    for field in candidates:
        if int(fields.get(field, -1)) == deadline:
            return labels[field] + " "
    return ""


Explain = Callable[[Mapping[str, Any], ChainContext | None], tuple[int, str]]


def _deadline_passed(p: Mapping[str, Any], chain: ChainContext | None) -> tuple[int, str]:
    deadline = int(p["deadline"])
    return 409, f"the {_deadline_kind(chain, p['returnId'], deadline)}deadline passed on {utc_text(deadline)}"


def _deadline_not_reached(p: Mapping[str, Any], chain: ChainContext | None) -> tuple[int, str]:
    deadline = int(p["deadline"])
    kind = _deadline_kind(chain, p["returnId"], deadline)
    return 409, f"this is possible only after the {kind}deadline, {utc_text(deadline)}"


EXPLANATIONS: dict[str, Explain] = {
    # ---- ReturnsEscrow
    "EscrowMissingRole": lambda p, _: (403, f"account {show(p['account'])} does not hold {_role(p['role'])}"),
    "EscrowPolicyInvalid": lambda p, _: (422, f"the policy's {p['field']} is out of the allowed range"),
    "EscrowPolicyMissing": lambda p, _: (409, f"merchant {show(p['merchant'])} has not published a return policy"),
    "EscrowItemUnknown": lambda p, _: (404, f"no item {show(p['itemId'])} is registered"),
    "EscrowNotSeller": lambda p, _: (403, f"account {show(p['account'])} may not sell item {show(p['itemId'])}"),
    "EscrowItemAlreadySold": lambda p, _: (
        409,
        f"item {show(p['itemId'])} is sold already and has not come back by a return",
    ),
    "EscrowNoActiveSale": lambda p, _: (409, f"item {show(p['itemId'])} has no current sale"),
    "EscrowSaleInvalid": lambda p, _: (422, f"the sale's {p['field']} is invalid"),
    "EscrowNotMerchant": lambda p, _: (403, f"account {show(p['account'])} is not the merchant of {show(p['id'])}"),
    "EscrowNotConsumer": lambda p, _: (
        403,
        f"account {show(p['account'])} is not the consumer of return {show(p['returnId'])}",
    ),
    "EscrowReturnAlreadyOpen": lambda p, _: (
        409,
        f"item {show(p['itemId'])} already has an open return ({show(p['returnId'])})",
    ),
    "EscrowTooManyReturns": lambda p, _: (409, f"the sale of item {show(p['itemId'])} has had its maximum of returns"),
    "EscrowInvalidAmount": lambda p, _: (
        422,
        f"the amount {p['amount']} must be more than 0 and at most {p['maximum']} token units",
    ),
    "EscrowFastRefundNotAllowed": lambda p, _: (
        409,
        f"the policy bound to the sale of item {show(p['itemId'])} does not allow a fast refund",
    ),
    "EscrowTokenTransferMismatch": lambda p, _: (
        422,
        f"token {show(p['token'])} moved {p['received']} units instead of {p['expected']}: "
        "tokens that charge a fee on transfer are not supported",
    ),
    "EscrowUnknownReturn": lambda p, _: (404, f"there is no return {show(p['returnId'])}"),
    "EscrowInvalidState": lambda p, _: (
        409,
        f"return {show(p['returnId'])} is {_state(p['state'])}, which does not allow this action",
    ),
    "EscrowDeadlinePassed": _deadline_passed,
    "EscrowDeadlineNotReached": _deadline_not_reached,
    "EscrowAlreadySettled": lambda p, _: (409, f"the deposit of return {show(p['returnId'])} was paid out already"),
    "EscrowReportMissing": lambda p, _: (422, "an inspection result needs the digest of its report"),
    "EscrowUnitNotScanned": lambda p, _: (
        422,
        f"receiving or inspecting return {show(p['returnId'])} with a unit check needs the scanned unit's EPC",
    ),
    # ---- ReturnsEscrow: a first carrier scan proved from a scan batch (ITransitProofs)
    "EscrowUnknownBatchAnchor": lambda p, _: (
        422,
        f"contract {show(p['anchor'])} does not hold BATCH_ANCHOR_ROLE, so the escrow accepts no proof of its batches",
    ),
    "EscrowBatchNotAnchored": lambda p, _: (
        409,
        f"account {show(p['submitter'])} has not anchored a batch with root {show(p['root'])}: "
        "send the proof once the batch's anchor is mined",
    ),
    "EscrowBatchNotCarrier": lambda p, _: (
        403,
        f"the batch's submitter {show(p['submitter'])} does not hold CARRIER_ROLE, "
        "so its scans cannot start a return's transit",
    ),
    "EscrowScanNotInBatch": lambda p, _: (
        422,
        f"the Merkle proof does not lead from the scan to root {show(p['root'])}: the scan or the proof was altered",
    ),
    "EscrowScanWrongItem": lambda p, _: (
        422,
        f"the scan is of item {show(p['itemId'])}, not of the item of return {show(p['returnId'])}",
    ),
    "EscrowScanWrongReturn": lambda p, _: (
        422,
        f"the scan names {show(p['bizTransaction'])} as its business transaction, not return {show(p['returnId'])}",
    ),
    "EscrowScanWrongStep": lambda p, _: (
        422,
        f"{_step(p['bizStep'])} with disposition code {p['disposition']} is not a carrier's in-transit scan "
        "(departing, arriving or transporting with in_transit)",
    ),
    "EscrowScanOutOfWindow": lambda p, _: (
        422,
        f"the scan is dated {utc_text(int(p['time']))}, outside {utc_text(int(p['earliest']))} (the return's "
        f"authorization) to {utc_text(int(p['latest']))} (its batch's anchor)",
    ),
    # ---- ExchangeEscrow
    "ExchangeNotMerchant": lambda p, _: (403, f"account {show(p['account'])} is not the merchant of {show(p['id'])}"),
    "ExchangeNoActiveSale": lambda p, _: (409, f"item {show(p['itemId'])} has no current sale to exchange"),
    "ExchangeAlreadyOpen": lambda p, _: (
        409,
        f"the sale of item {show(p['itemId'])} already has an open exchange ({show(p['exchangeId'])})",
    ),
    "ExchangeSameItem": lambda p, _: (422, f"the replacement must be another unit than item {show(p['itemId'])}"),
    "ExchangeReplacementUnknown": lambda p, _: (404, f"no item {show(p['itemId'])} is registered to exchange for"),
    "ExchangeReplacementDestroyed": lambda p, _: (
        409,
        f"the replacement {show(p['itemId'])} was destroyed: choose another unit",
    ),
    "ExchangeReplacementNotMerchants": lambda p, _: (
        422,
        f"the replacement {show(p['itemId'])} belongs to merchant {show(p['merchantOfRecord'])}, not the seller",
    ),
    "ExchangeReplacementSold": lambda p, _: (409, f"the replacement {show(p['itemId'])} is sold: choose another unit"),
    "ExchangeReplacementNotInStock": lambda p, _: (
        409,
        f"the replacement {show(p['itemId'])} is not in stock (its last step is {_step(p['bizStep'])})",
    ),
    "ExchangeReplacementReserved": lambda p, _: (
        409,
        f"the replacement {show(p['itemId'])} is held for exchange {show(p['exchangeId'])}: choose another unit",
    ),
    "ExchangePriceMissing": lambda p, _: (
        409,
        f"the merchant has set no list price for {show(p['itemId'])}: it is not offered as a replacement",
    ),
    "ExchangePriceMismatch": lambda p, _: (
        422,
        f"the price difference must be {p['expected']} (the replacement's list price less the sale price), "
        f"not {p['given']}",
    ),
    "ExchangeTermsMissing": lambda p, _: (
        409,
        f"merchant {show(p['merchant'])} offers no exchanges under policy version {p['policyVersion']}",
    ),
    "ExchangeTermsInvalid": lambda p, _: (422, f"the exchange terms' {p['field']} is out of the allowed range"),
    "ExchangeTermsAlreadyPublished": lambda p, _: (
        409,
        f"exchange terms for policy version {p['policyVersion']} were published already and never change",
    ),
    "ExchangeInstantNotAllowed": lambda p, _: (
        409,
        f"the exchange terms do not allow an instant exchange of item {show(p['itemId'])}: ask for a standard one",
    ),
    "ExchangeUnknown": lambda p, _: (404, f"there is no exchange {show(p['exchangeId'])}"),
    "ExchangeExtraPaymentMissing": lambda p, _: (
        409,
        f"record the consumer's payment of the price difference of exchange {show(p['exchangeId'])} first",
    ),
    "ExchangeNoExtraPayment": lambda p, _: (
        409,
        f"exchange {show(p['exchangeId'])} has no price difference to pay, or it was recorded already",
    ),
    "ExchangeAlreadyReleased": lambda p, _: (
        409,
        f"the replacement of exchange {show(p['exchangeId'])} was released already",
    ),
    "ExchangeOriginalNotShipped": lambda p, _: (
        409,
        f"a standard exchange ships the replacement once the original of {show(p['exchangeId'])} was scanned in "
        "transit",
    ),
    "ExchangeEnded": lambda p, _: (
        409,
        f"exchange {show(p['exchangeId'])} ended without the original shipping (cancelled or expired)",
    ),
    "ExchangeNoCollateral": lambda p, _: (
        409,
        f"exchange {show(p['exchangeId'])} holds no collateral to pay now (not instant, paid, or not yet due)",
    ),
    "ExchangeDeadlineNotReached": lambda p, _: (
        409,
        f"exchange {show(p['exchangeId'])}'s collateral can be claimed only after {utc_text(int(p['deadline']))}",
    ),
    "ExchangeTokenTransferMismatch": lambda p, _: (
        409,
        f"token {show(p['token'])} delivered {p['received']} units instead of {p['expected']}",
    ),
    # ---- ProvenanceLedger
    "ProvenanceInvalidUri": lambda p, _: (422, f"the item URI must not be empty or too long (got {p['length']} bytes)"),
    "ProvenanceItemAlreadyRegistered": lambda p, _: (409, f"item {show(p['itemId'])} is registered already"),
    "ProvenanceItemUnknown": lambda p, _: (404, f"no item {show(p['itemId'])} is registered"),
    "ProvenanceItemDestroyed": lambda p, _: (409, f"item {show(p['itemId'])} was destroyed; its history is closed"),
    "ProvenanceNotMerchant": lambda p, _: (422, f"account {show(p['account'])} does not hold MERCHANT_ROLE"),
    "ProvenanceNotMerchantOfRecord": lambda p, _: (
        403,
        f"account {show(p['account'])} is not the merchant of record of item {show(p['itemId'])}",
    ),
    "ProvenanceUnknownBizStep": lambda p, _: (422, f"{p['bizStep']} is not a known bizStep code"),
    "ProvenanceUnknownDisposition": lambda p, _: (422, f"{p['disposition']} is not a known disposition code"),
    "ProvenanceStepNotAllowed": lambda p, _: (
        403,
        f"the roles of account {show(p['actor'])} do not allow recording {_step(p['bizStep'])}",
    ),
    "ProvenanceStepReserved": lambda p, _: (
        422,
        f"{_step(p['bizStep'])} is recorded only by registration or by the returns escrow",
    ),
    "ProvenanceInvalidBatch": lambda p, _: (422, f"a batch of {p['size']} events is empty or too large"),
    # ---- BatchAnchor
    "BatchAnchorNotScanner": lambda p, _: (
        403,
        f"account {show(p['account'])} holds none of CARRIER_ROLE, MANUFACTURER_ROLE and MERCHANT_ROLE, "
        "so it may not anchor scan batches",
    ),
    "BatchAnchorZeroCommitment": lambda p, _: (
        422,
        "a batch anchor needs its Merkle root and its document's digest, and neither may be zero",
    ),
    "BatchAnchorInvalidCount": lambda p, _: (
        422,
        f"a batch of {p['count']} scans is empty or larger than the 65,536 one anchor may hold",
    ),
    "BatchAnchorAlreadyAnchored": lambda p, _: (
        409,
        f"account {show(p['submitter'])} anchored the batch with root {show(p['root'])} already",
    ),
    # ---- OpenZeppelin
    "AccessControlUnauthorizedAccount": lambda p, _: (
        403,
        f"account {show(p['account'])} does not hold {_role(p['neededRole'])}",
    ),
    "ERC20InsufficientBalance": lambda p, _: (
        409,
        f"account {show(p['sender'])} holds {p['balance']} token units but {p['needed']} are needed",
    ),
    "ERC20InsufficientAllowance": lambda p, _: (
        409,
        f"the escrow may spend {p['allowance']} token units of the payer but {p['needed']} are needed",
    ),
    "SafeERC20FailedOperation": lambda p, _: (409, f"the transfer of token {show(p['token'])} failed"),
    "ReentrancyGuardReentrantCall": lambda p, _: (409, "the contract refused a re-entrant call"),
    # ---- Solidity builtins and undecodable data
    "Error": lambda p, _: (409, f"the contract refused: {reason_text(p.get('message', ''))}"),
    "Panic": lambda p, _: (500, f"the contract failed an internal check ({p.get('meaning', 'panic')})"),
}


def explain(exc: ContractRevertError, *, chain: ChainContext | None = None) -> tuple[int, str]:
    """The HTTP status and the sentence for ``exc`` (409 and its name if it has no entry)."""
    entry = EXPLANATIONS.get(exc.error)
    if entry is None:
        return 409, f"the contract refused the transaction ({exc.error})"
    try:
        return entry(exc.params, chain)
    except (KeyError, TypeError, ValueError):  # arguments not as declared: still say what happened
        return 409, f"the contract refused the transaction ({exc})"
