"""The consumer's authenticity check: is this item (or this return label) genuine, and what happened to it?

A *code* is what a consumer scans or types: an item's GS1 name (EPC URI, Digital Link, element string;
:mod:`ledger_service.epcis.gs1`), an item id (``0x`` + 64 hex), or a return's label code
(``RMA-...``, :mod:`ledger_service.returns.labels`). :func:`check_code` resolves it and answers.

Resolving an item, in order: the item registered under exactly the text given (``keccak256(code)``);
then, for a GS1 name, under the EPC URI or canonical Digital Link of the same GTIN + serial; then any
item of that GTIN whose registered URI names the same serial. A GTIN + serial registered more than
once (a cloned serial number) is never called genuine.

Invariants (a tampered index cannot make a forgery look genuine):

- an item is *genuine* only if the contract knows it (``itemOf`` count > 0), its indexed history
  replays to the contract's head and count (:func:`ledger_service.verification.history.verify_item`),
  its registrant is the actor of its commissioning event (the hash chain covers that actor, and the
  contract only registers items for MANUFACTURER_ROLE holders), and the registrant held that role;
- a return is *genuine* only if ``returnOf`` on the chain has it; its state, amount, deadlines and
  consumer are shown as the chain has them, and every disagreement of the index is a finding;
- nothing personal leaves this module: consumer addresses appear only masked (``0x7099…79c8``), and
  every address inside a finding's message is masked the same way. A manufacturer's address is a
  company's and is shown in full.

A code that is well-formed but names nothing is an answer (``genuine`` false: "may be a counterfeit",
"no such return"), not an error; a malformed code raises :class:`InvalidRequestError`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote

import requests
from web3.exceptions import Web3Exception

from ledger_service.chain.calls import unreachable
from ledger_service.chain.signers import ChainContext
from ledger_service.core.codes import ROLE_IDS, ReturnState
from ledger_service.core.hashchain import item_id as item_id_of
from ledger_service.core.masking import mask_address
from ledger_service.core.money import format_amount
from ledger_service.epcis import gs1
from ledger_service.errors import InvalidRequestError, RetryableError
from ledger_service.returns.labels import PREFIX as LABEL_PREFIX
from ledger_service.returns.labels import label_code, parse_label_code
from ledger_service.store import items, sales
from ledger_service.store import returns as returns_store
from ledger_service.store.checkpoint import index_head
from ledger_service.store.exchanges import return_unit_mismatched
from ledger_service.store.handle import Store
from ledger_service.store.returns import PayoutRow, ReturnRow
from ledger_service.verification.history import verify_item
from ledger_service.verification.model import Finding, Severity

__all__ = [
    "MANUFACTURER_ROLE",
    "MAX_CODE_LENGTH",
    "CodeCheck",
    "Decimals",
    "ItemCheck",
    "ReturnCheck",
    "check_code",
    "find_item_id",
    "format_amount",
    "mask_address",
]

MANUFACTURER_ROLE = "0x" + ROLE_IDS["MANUFACTURER_ROLE"].hex()
MAX_CODE_LENGTH = 2048
ZERO_ID = "0x" + "00" * 32
_HEX_ID = re.compile(r"^0x[0-9a-fA-F]{64}$")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}(?![0-9a-fA-F])")
_ENCODED = re.compile(r"^(https?|urn)%3a", re.IGNORECASE)
_CHAIN_ERRORS = (Web3Exception, requests.RequestException, OSError, ValueError)

Decimals = Callable[[str], int | None]
"""A token's ``decimals()``, None when unknown."""


# ---- results -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ItemCheck:
    """What the ledger says about one registered item (nothing personal in it)."""

    item_id: str
    uri: str
    gtin: int
    registered_at: int
    manufacturer: str
    manufacturer_role_at_registration: bool
    holds_manufacturer_role_now: bool
    on_chain: bool
    """The contract knows the item (``itemOf`` count > 0)."""
    history_intact: bool
    """The indexed history replays to the contract's head and count, with no error finding."""
    event_count: int
    state_summary: str
    findings: tuple[Finding, ...]

    @property
    def genuine(self) -> bool:
        return self.on_chain and self.history_intact and self.manufacturer_role_at_registration


@dataclass(frozen=True, slots=True)
class ReturnCheck:
    """A return as the chain has it (``exists_on_chain`` false: the other fields are None)."""

    return_id: str
    label_code: str
    exists_on_chain: bool
    item_id: str | None = None
    state: ReturnState | None = None
    token: str | None = None
    amount: int | None = None
    fee_bps: int | None = None
    ship_by: int | None = None
    inspect_by: int | None = None
    dispute_by: int | None = None
    settled: bool | None = None
    refund_paid: bool | None = None
    """True: the consumer was paid; False: not (yet, or the merchant got the deposit); None: not known."""
    refund_amount: int | None = None
    """What the consumer was paid, as the index recorded the payout."""
    consumer: str | None = None
    """Masked."""
    unit_mismatch: bool = False
    """A unit received or inspected for the return was not the unit sold (the return went to the arbiter)."""
    findings: tuple[Finding, ...] = ()


@dataclass(frozen=True, slots=True)
class CodeCheck:
    """The answer to one code."""

    code: str
    kind: Literal["item", "return"]
    genuine: bool
    verdict: tuple[str, ...]
    """Sentences a person reads, most important first."""
    item: ItemCheck | None
    ret: ReturnCheck | None
    checked_at: int
    indexed_block: int | None


# ---- small helpers ------------------------------------------------------------------------


def _mask_all(text: str) -> str:
    return _ADDRESS.sub(lambda m: mask_address(m.group(0)), text)


def _masked(finding: Finding) -> Finding:
    return replace(finding, message=_mask_all(finding.message))


def _day(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).date().isoformat()


def _moment(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _chain_read(what: str, read: Callable[[], Any]) -> Any:
    try:
        return read()
    except _CHAIN_ERRORS as exc:
        raise unreachable(f"reading {what}", exc) from None  # the library's text goes to the log only


# ---- the code -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Target:
    kind: Literal["item", "return"]
    item_id: str | None
    return_id: str | None
    duplicates: tuple[str, ...] = ()
    """Other items registered with the same GTIN + serial."""


def _clean(code: str) -> str:
    text = code.strip()
    if _ENCODED.match(text):  # URL-encoded once more than the path needed
        text = unquote(text).strip()
    if not text:
        raise InvalidRequestError("the code is empty: give an item's GS1 URI or Digital Link, or a return label code")
    if len(text) > MAX_CODE_LENGTH:
        raise InvalidRequestError(f"the code is longer than {MAX_CODE_LENGTH} characters")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text):
        raise InvalidRequestError("the code contains control characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequestError("the code is not valid Unicode text") from None
    return text


def _item_known_on_chain(chain: ChainContext, item_id: str) -> bool:
    record = _chain_read("the item", lambda: chain.ledger.functions.itemOf(bytes.fromhex(item_id[2:])).call())
    return int(record[1]) > 0


def _return_record(chain: ChainContext, return_id: str) -> dict[str, Any] | None:
    """The chain's ReturnRecord by field name, or None if the contract has no such return."""

    def read() -> dict[str, Any]:
        function = chain.escrow.functions.returnOf(bytes.fromhex(return_id[2:]))
        names = [c["name"] for c in function.abi["outputs"][0]["components"]]
        return dict(zip(names, function.call(), strict=True))

    record: dict[str, Any] = _chain_read("the return", read)
    return None if int(record["state"]) == int(ReturnState.NONE) else record


def _index_behind(what: str) -> RetryableError:
    return RetryableError(f"the chain has this {what} but the service's index has not caught up yet; try again shortly")


def _resolve(*, store: Store, chain: ChainContext, text: str) -> _Target:
    if text.upper().startswith(LABEL_PREFIX):
        return_id = parse_label_code(text)
        if return_id is None:
            raise InvalidRequestError(
                f"{text[:80]!r} is not a return label code: RMA- followed by 52 characters A-Z and 2-7"
            )
        return _Target("return", None, return_id)
    if _HEX_ID.match(text):
        key = text.lower()
        exact = items.items_by_ids(store, [key])
        if exact:
            return _with_clones(store=store, exact=exact[0])
        if _item_known_on_chain(chain, key):
            raise _index_behind("item")
        if returns_store.return_by_id(store, key) is not None or _return_record(chain, key) is not None:
            return _Target("return", None, key)
        return _Target("item", key, None)
    direct = "0x" + item_id_of(text).hex()
    exact = items.items_by_ids(store, [direct])
    if exact:
        return _with_clones(store=store, exact=exact[0])
    try:
        key_of_code = gs1.parse_item_key(text)
    except gs1.Gs1Error as exc:
        raise InvalidRequestError(str(exc)) from None
    if key_of_code is None:
        raise InvalidRequestError(
            f"{text[:80]!r} is not a code this check reads: give an item's GS1 URI (urn:epc:id:sgtin:...), its "
            "Digital Link (https://.../01/{GTIN}/21/{serial}), its 0x item id, or a return label code (RMA-...)"
        )
    if _item_known_on_chain(chain, direct):
        raise _index_behind("item")
    found = _by_key(store=store, key=key_of_code, text=text)
    if not found:
        return _Target("item", None, None)
    return _Target("item", found[0].item_id, None, tuple(m.item_id for m in found[1:]))


def _with_clones(*, store: Store, exact: items.ItemMatch) -> _Target:
    """The item registered under exactly the code, and the other items registered with its GTIN + serial."""
    key = gs1.key_of_uri(exact.uri)
    others = () if key is None else _by_key(store=store, key=key, text=exact.uri)
    return _Target("item", exact.item_id, None, tuple(m.item_id for m in others if m.item_id != exact.item_id))


def _by_key(*, store: Store, key: gs1.ItemKey, text: str) -> list[items.ItemMatch]:
    """Items registered under a name of ``key``: its EPC URIs and Digital Links, then any URI of its GTIN that
    names its serial; earliest registration first."""
    candidates = [*key.sgtin_uris(), key.digital_link()]
    scheme_host = re.match(r"^https?://[^/?#]+", text, re.IGNORECASE)
    if scheme_host is not None:
        candidates.append(key.digital_link(scheme_host.group(0)))
    ids = ["0x" + item_id_of(uri).hex() for uri in candidates]
    found = list(items.items_by_ids(store, ids))
    seen = {m.item_id for m in found}
    found += [
        m
        for m in items.items_by_gtin(store, gtin=key.gtin_int, serial_forms=key.serial_forms())
        if m.item_id not in seen and gs1.key_of_uri(m.uri) == key
    ]
    found.sort(key=lambda m: (m.block_number, m.log_index))
    return found


# ---- items --------------------------------------------------------------------------------

_RETURN_PHRASES = {
    ReturnState.AUTHORIZED: "return authorized",
    ReturnState.CANCELLED: "return cancelled",
    ReturnState.EXPIRED: "return expired (not shipped in time)",
    ReturnState.IN_TRANSIT: "return in transit",
    ReturnState.RECEIVED: "return received by the merchant",
    ReturnState.ACCEPTED: "return accepted",
    ReturnState.REJECTED: "return rejected at inspection",
    ReturnState.DISPUTED: "return disputed",
    ReturnState.RESOLVED: "return dispute resolved",
    ReturnState.RECLAIMED: "return rejected, deposit back to the merchant",
    ReturnState.CONSUMER_CLAIMED: "return claimed by the consumer after the inspection deadline",
}


def _refund_phrase(ret: ReturnRow, payout: PayoutRow | None) -> str | None:
    if ret.state is ReturnState.CANCELLED:
        return None
    if payout is not None:
        return "refund paid" if payout.consumer_amount > 0 else "no refund"
    if ret.settled:
        return None
    return "refund held in escrow"


def _state_summary(facts: sales.ItemFacts) -> str:
    item, sale, ret = facts.item, facts.sale, facts.last_return
    parts: list[str] = []
    if sale is None:
        parts.append(f"registered {_day(item.registered_at)}, not sold yet")
    else:
        parts.append(f"sold {_day(sale.sold_at)}")
        if item.delivered_at is not None and item.delivered_at >= sale.sold_at:
            parts.append(f"delivered {_day(item.delivered_at)}")
        if ret is not None:
            parts.append(_RETURN_PHRASES.get(ret.state, f"return {ret.state.name.lower()}"))
            refund = _refund_phrase(ret, facts.payout)
            if refund is not None:
                parts.append(refund)
    if item.recalled:
        parts.append("recalled")
    if item.destroyed:
        parts.append("destroyed")
    return ", ".join(parts)


def _has_role(chain: ChainContext, account: str) -> bool:
    role = ROLE_IDS["MANUFACTURER_ROLE"]
    checksummed = chain.w3.to_checksum_address(account)
    return bool(
        _chain_read("the manufacturer's role", lambda: chain.ledger.functions.hasRole(role, checksummed).call())
    )


def _check_item(*, store: Store, chain: ChainContext, item_id: str) -> ItemCheck | None:
    facts = sales.item_facts(store, item_id=item_id, role=MANUFACTURER_ROLE)
    if facts is None:
        return None
    verdict = verify_item(store=store, chain=chain, documents=None, item_id=item_id, check_blocks=False)
    if verdict is None:  # the index lost the item between the two reads (a reorg): as if unknown
        return None
    findings = [_masked(f) for f in verdict.findings]
    on_chain = bool(verdict.chain_count)
    if not on_chain and not any(f.kind == "item-unknown" for f in findings):
        findings.append(
            Finding(kind="item-unknown", message="The contract does not know this item: it was never registered.")
        )
    actor = facts.commissioning_actor
    if actor is not None and actor.lower() != facts.manufacturer.lower():
        findings.append(
            Finding(
                kind="manufacturer-mismatch",
                message="The registration names a different manufacturer than the one who recorded event #0 "
                "(commissioning).",
                seq=0,
            )
        )
    intact = verdict.intact and not any(f.severity is Severity.ERROR for f in findings)
    role_at_registration = facts.role_at_registration
    if not role_at_registration and on_chain and intact:
        # The contract registers items only for MANUFACTURER_ROLE holders, and the hash chain proves event #0's
        # actor: the index's role history is incomplete, the registration is not in doubt.
        role_at_registration = True
        findings.append(
            Finding(
                kind="role-history-incomplete",
                message="The index's role history does not show the manufacturer role at registration, but the "
                "contract only registers items for holders of that role.",
                severity=Severity.WARNING,
            )
        )
    return ItemCheck(
        item_id=facts.item.item_id,
        uri=facts.item.uri,
        gtin=facts.item.gtin,
        registered_at=facts.item.registered_at,
        manufacturer=facts.manufacturer,
        manufacturer_role_at_registration=role_at_registration,
        holds_manufacturer_role_now=_has_role(chain, facts.manufacturer),
        on_chain=on_chain,
        history_intact=intact,
        event_count=verdict.chain_count if verdict.chain_count else verdict.index_count,
        state_summary=_state_summary(facts),
        findings=tuple(findings),
    )


def _item_sentences(item: ItemCheck, duplicates: tuple[str, ...]) -> list[str]:
    sentences: list[str] = []
    if item.genuine and not duplicates:
        sentences.append(
            f"Genuine: registered on the ledger on {_day(item.registered_at)} by manufacturer {item.manufacturer}, "
            "which held the manufacturer role at the time."
        )
    elif not item.on_chain:
        sentences.append("Not registered on the ledger: this may be a counterfeit.")
    elif duplicates:
        sentences.append(
            f"Not confirmed: this GTIN and serial number are registered {len(duplicates) + 1} times, a sign of a "
            "copied serial number."
        )
    elif not item.history_intact:
        sentences.append("Not confirmed: the item is registered, but its history cannot be trusted as shown.")
    elif not item.manufacturer_role_at_registration:
        sentences.append(
            "Not confirmed: the address that registered this item did not hold the manufacturer role at the time."
        )
    if item.on_chain:
        if item.history_intact:
            sentences.append(f"Its history of {item.event_count} events is intact: it matches the chain.")
        else:
            errors = sum(1 for f in item.findings if f.severity is Severity.ERROR)
            sentences.append(
                f"Its history as this service shows it does not match the chain ({errors} problem"
                f"{'' if errors == 1 else 's'} found): do not rely on it."
            )
        if not item.holds_manufacturer_role_now:
            sentences.append("The manufacturer no longer holds the manufacturer role.")
        sentences.append(f"Now: {item.state_summary}.")
    return sentences


# ---- returns ------------------------------------------------------------------------------

UNIT_MISMATCH_SENTENCE = (
    "The unit received is not the one sold: its scanned EPC differs from the item sold, so no refund was paid by "
    "the normal path and an independent arbiter decides."
)
"""Said of a return with a unit mismatch (no one's identity: the public answer names neither consumer nor unit)."""

_RETURN_SENTENCES = {
    ReturnState.AUTHORIZED: "authorized; the parcel has not shipped yet",
    ReturnState.CANCELLED: "cancelled by the consumer before it shipped",
    ReturnState.EXPIRED: "expired: the parcel did not ship by the deadline",
    ReturnState.IN_TRANSIT: "in transit back to the merchant",
    ReturnState.RECEIVED: "received by the merchant, waiting for inspection",
    ReturnState.ACCEPTED: "accepted after inspection",
    ReturnState.REJECTED: "rejected at inspection",
    ReturnState.DISPUTED: "disputed, waiting for the arbiter",
    ReturnState.RESOLVED: "resolved by the arbiter",
    ReturnState.RECLAIMED: "closed: rejected, and the merchant took the deposit back",
    ReturnState.CONSUMER_CLAIMED: "closed: not inspected in time, the consumer claimed the deposit",
}
_PAID_BY_STATE = {
    ReturnState.ACCEPTED: True,
    ReturnState.CONSUMER_CLAIMED: True,
    ReturnState.IN_TRANSIT: True,  # settled while in transit or received: a fast refund
    ReturnState.RECEIVED: True,
    ReturnState.EXPIRED: False,
    ReturnState.RECLAIMED: False,
    ReturnState.CANCELLED: False,
}


def _deadline(value: Any) -> int | None:
    return int(value) or None


def _index_findings(record: dict[str, Any], row: ReturnRow) -> list[Finding]:
    chain_values = {
        "item": "0x" + bytes(record["itemId"]).hex(),
        "consumer": str(record["consumer"]).lower(),
        "merchant": str(record["merchant"]).lower(),
        "token": str(record["token"]).lower(),
        "amount": int(record["amount"]),
        "state": int(record["state"]),
        "settled": bool(record["settled"]),
        "ship-by deadline": int(record["shipBy"]),
        "inspect-by deadline": _deadline(record["inspectBy"]),
        "dispute-by deadline": _deadline(record["disputeBy"]),
    }
    index_values = {
        "item": row.item_id.lower(),
        "consumer": row.consumer.lower(),
        "merchant": row.merchant.lower(),
        "token": row.token.lower(),
        "amount": row.amount,
        "state": int(row.state),
        "settled": row.settled,
        "ship-by deadline": row.ship_by,
        "inspect-by deadline": row.inspect_by,
        "dispute-by deadline": row.dispute_by,
    }
    differ = [name for name, value in chain_values.items() if index_values[name] != value]
    if not differ:
        return []
    # A state or payout the indexer has not applied yet is not tampering: a warning, the chain's values are shown.
    lagging = set(differ) <= {"state", "settled", "inspect-by deadline", "dispute-by deadline"}
    return [
        Finding(
            kind="index-mismatch",
            message=f"The service's index disagrees with the chain on the return's {', '.join(differ)}; the "
            "chain's values are shown.",
            severity=Severity.WARNING if lagging else Severity.ERROR,
        )
    ]


def _check_return(*, store: Store, chain: ChainContext, return_id: str) -> ReturnCheck:
    rma = label_code(return_id)
    record = _return_record(chain, return_id)
    detail = returns_store.return_detail(store, return_id)
    if record is None:
        findings: tuple[Finding, ...] = ()
        if detail is not None:
            findings = (
                Finding(
                    kind="return-not-on-chain",
                    message="The service's index lists this return, but the chain has no such return: it is not "
                    "genuine.",
                ),
            )
        return ReturnCheck(return_id=return_id, label_code=rma, exists_on_chain=False, findings=findings)
    state = ReturnState(int(record["state"]))
    settled = bool(record["settled"])
    found: list[Finding] = []
    refund_paid: bool | None = False if not settled else _PAID_BY_STATE.get(state)
    refund_amount: int | None = None
    if detail is None:
        found.append(
            Finding(
                kind="index-behind",
                message="The service's index does not have this return yet; the chain's record is shown.",
                severity=Severity.WARNING,
            )
        )
    else:
        found += _index_findings(record, detail.ret)
        if settled and detail.payout is not None:
            refund_amount = detail.payout.consumer_amount
            refund_paid = refund_amount > 0
    return ReturnCheck(
        return_id=return_id,
        label_code=rma,
        exists_on_chain=True,
        item_id="0x" + bytes(record["itemId"]).hex(),
        state=state,
        token=str(record["token"]).lower(),
        amount=int(record["amount"]),
        fee_bps=int(record["feeBps"]),
        ship_by=_deadline(record["shipBy"]),
        inspect_by=_deadline(record["inspectBy"]),
        dispute_by=_deadline(record["disputeBy"]),
        settled=settled,
        refund_paid=refund_paid,
        refund_amount=refund_amount,
        consumer=mask_address(str(record["consumer"]).lower()),
        unit_mismatch=detail is not None and return_unit_mismatched(store, return_id),
        findings=tuple(found),
    )


def _return_sentences(ret: ReturnCheck, decimals: Decimals) -> list[str]:
    if not ret.exists_on_chain:
        return [f"No such return: {ret.label_code} is not a return on the ledger; the label may be forged."]
    assert ret.state is not None
    assert ret.amount is not None
    assert ret.token is not None
    amount = format_amount(ret.amount, decimals(ret.token)) or f"{ret.amount} token units"
    sentences = [
        f"Genuine return {ret.label_code}: it exists on-chain, {amount} held in escrow for the refund.",
        f"State: {_RETURN_SENTENCES.get(ret.state, ret.state.name.lower())}.",
    ]
    deadlines = {
        ReturnState.AUTHORIZED: ("The parcel must ship by", ret.ship_by),
        ReturnState.IN_TRANSIT: ("The merchant must inspect by", ret.inspect_by),
        ReturnState.RECEIVED: ("The merchant must inspect by", ret.inspect_by),
        ReturnState.REJECTED: ("The consumer may dispute until", ret.dispute_by),
    }
    if ret.unit_mismatch:
        sentences.append(UNIT_MISMATCH_SENTENCE)
    pending = deadlines.get(ret.state)
    if pending is not None and pending[1] is not None:
        sentences.append(f"{pending[0]} {_moment(pending[1])}.")
    if ret.refund_paid:
        sentences.append("The refund was paid.")
    elif ret.settled and ret.refund_paid is False:
        sentences.append("No refund was paid: the deposit went back to the merchant.")
    if any(f.severity is Severity.ERROR for f in ret.findings):
        sentences.append("The service's own records disagree with the chain; the chain's values are shown.")
    return sentences


# ---- the check ----------------------------------------------------------------------------


def find_item_id(*, store: Store, chain: ChainContext, code: str) -> str | None:
    """The item a code names, resolved as :func:`check_code` resolves it (an item's GS1 URI, Digital Link, element
    string or id; a return label code or return id names its item); None when nothing registered matches.

    :class:`InvalidRequestError` for a malformed code; a retryable error while the index is behind the chain.
    """
    target = _resolve(store=store, chain=chain, text=_clean(code))
    if target.kind == "item":
        return target.item_id
    assert target.return_id is not None
    found = returns_store.return_by_id(store, target.return_id)
    return None if found is None else found.item_id


def check_code(
    *, store: Store, chain: ChainContext, code: str, decimals: Decimals, now: int | None = None
) -> CodeCheck:
    """The answer to ``code`` (see the module docstring); :class:`InvalidRequestError` if it is malformed.

    ``decimals`` formats amounts in the sentences; ``now`` (unix seconds) is when the check ran.
    """
    text = _clean(code)
    target = _resolve(store=store, chain=chain, text=text)
    head = index_head(store)
    checked_at = int(time.time()) if now is None else now
    indexed = None if head is None else head.block_number
    if target.kind == "return":
        assert target.return_id is not None
        ret = _check_return(store=store, chain=chain, return_id=target.return_id)
        item = None
        sentences = _return_sentences(ret, decimals)
        if ret.item_id is not None and int(ret.item_id, 16):
            item = _check_item(store=store, chain=chain, item_id=ret.item_id)
            if item is not None:
                sentences.append(
                    "The returned item is genuine and its history intact."
                    if item.genuine
                    else "The returned item could not be confirmed as genuine: see the item's findings."
                )
        return CodeCheck(text, "return", ret.exists_on_chain, tuple(sentences), item, ret, checked_at, indexed)
    item = None if target.item_id is None else _check_item(store=store, chain=chain, item_id=target.item_id)
    if item is None:
        sentences = ["Not registered on the ledger: this may be a counterfeit."]
        return CodeCheck(text, "item", False, tuple(sentences), None, None, checked_at, indexed)
    if target.duplicates:
        others = ", ".join(target.duplicates)
        duplicated = Finding(
            kind="serial-duplicated",
            message=f"The same GTIN and serial number are also registered as item {others}.",
        )
        item = replace(item, findings=(*item.findings, duplicated))
    genuine = item.genuine and not target.duplicates
    return CodeCheck(
        text, "item", genuine, tuple(_item_sentences(item, target.duplicates)), item, None, checked_at, indexed
    )
