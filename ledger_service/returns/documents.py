"""Off-chain documents and their on-chain digests.

A document the service writes itself (a policy's full terms, an inspection
report, a ruling) is a JSON object stored as its *canonical* JSON: keys sorted,
no insignificant whitespace, UTF-8, no floats (amounts are decimal strings),
sets as sorted lists. Like every document, it is addressed by the IPFS CID of
those bytes (``ipfs add`` defaults, :mod:`ledger_service.documents.cid`), and
its on-chain digest is the sha2-256 digest inside that CID. Two documents with
the same content therefore have the same digest whatever the order their fields
were given in, and anyone holding the bytes recomputes the CID with ``ipfs add``
(or ``ipfs_cid``) and the bytes32 the chain stores.

A document written for an action (:func:`held`) stays stored only if the action
succeeded: a failed action removes what it added, never what something else holds.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog

from ledger_service.documents.cid import Cid, cid_of_bytes
from ledger_service.documents.interface import DocumentStore
from ledger_service.eligibility import PolicyTerms
from ledger_service.errors import InvalidRequestError, LedgerError

log = structlog.get_logger(__name__)

ZERO_DIGEST = "0x" + "00" * 32
POLICY_SCHEMA = "returns-ledger/policy/1"
REPORT_SCHEMA = "returns-ledger/inspection/1"

# Limits of ReturnPolicies.sol (checked here first so that the answer names the field in words).
MAX_WINDOW_DAYS = 365
MAX_PERIOD_DAYS = 90
MAX_RESTOCKING_FEE_BPS = 5000
MAX_UINT96 = 2**96 - 1
MAX_UINT16 = 2**16 - 1


def _storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a JSON object (see the module docstring)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def cid_of(document: Mapping[str, Any]) -> Cid:
    """The IPFS CID of the canonical JSON of ``document``."""
    return cid_of_bytes(canonical_json(document))


def digest_of(document: Mapping[str, Any]) -> str:
    """The on-chain digest of ``document``: ``0x`` + the hex sha2-256 digest of its CID."""
    return cid_of(document).hex_digest


@dataclass
class _Holding:
    """Actions of this process that stored one document and have not finished yet."""

    count: int
    was_there: bool
    """The store held the document before the first of them stored it."""
    referenced: bool = False
    """One of them succeeded: the chain references the document."""


_holdings: dict[Cid, _Holding] = {}
_holdings_lock = threading.Lock()


@contextmanager
def held(documents: DocumentStore | None, document: Mapping[str, Any]) -> Iterator[str]:
    """Stores ``document``'s canonical JSON in ``documents`` (when given, so that its CID resolves before the
    chain references it) for an action, and yields its on-chain digest.

    If the action fails (the block raises) the document is removed again, so failed actions leave
    nothing behind, unless something else holds it: it was in the store before (an upload, an earlier
    action), or another action of this process stored it meanwhile and succeeded or is still running.
    Stored before the action, not after: a crash right after the transaction still leaves the document
    the chain references. Other processes' actions on the very same bytes at the very same moment are
    not seen (a document they need could be removed; its CID is then missing, never wrong).
    """
    data = canonical_json(document)
    cid = cid_of_bytes(data)
    if documents is None:
        yield cid.hex_digest
        return
    with _holdings_lock:
        holding = _holdings.get(cid)
        if holding is None:
            holding = _holdings[cid] = _Holding(count=0, was_there=documents.stat(cid) is not None)
        holding.count += 1
    succeeded = False
    try:
        documents.put([data], content_type="application/json")
        yield cid.hex_digest
        succeeded = True
    finally:
        with _holdings_lock:
            holding.count -= 1
            holding.referenced = holding.referenced or succeeded
            done = holding.count == 0
            if done:
                del _holdings[cid]
            if done and not holding.referenced and not holding.was_there:
                try:
                    documents.remove(cid)
                except (LedgerError, OSError) as exc:  # the action's own error matters more: log this one
                    log.warning("could not remove a failed action's document", cid=cid.v0, error=str(exc)[:200])


def digest_bytes(digest: str) -> bytes:
    """A ``0x`` + 64 hex digest as the contract's bytes32."""
    raw = bytes.fromhex(digest.removeprefix("0x"))
    if len(raw) != 32:
        raise InvalidRequestError(f"a digest must be 32 bytes (0x + 64 hex digits), got {digest!r}")
    return raw


RETURN_ADDRESS_MAX_LINES = 6
RETURN_ADDRESS_MAX_CHARS = 300


@dataclass(frozen=True, slots=True)
class PolicyDocument:
    """A merchant's full return policy: the on-chain parameters and the terms only the document holds."""

    window_days: int
    restocking_fee_bps: int
    fast_refund: bool
    ship_by_days: int
    inspect_by_days: int
    dispute_window_days: int
    fast_refund_max_value: int = 0
    fast_refund_max_returns_90d: int = 0
    non_returnable_categories: frozenset[str] = field(default_factory=frozenset)
    accepted_reasons: frozenset[str] = field(default_factory=frozenset)
    manual_review_reasons: frozenset[str] = field(default_factory=frozenset)
    manual_review_above_value: int = 0
    title: str = ""
    text: str = ""
    return_address: str = ""
    """Where returned parcels go, as printed on return labels (lines separated by newlines; empty: none)."""

    def problems(self) -> list[str]:
        """What the contract would refuse, in words (empty: publishable)."""
        found: list[str] = []
        if not 1 <= self.window_days <= MAX_WINDOW_DAYS:
            found.append(f"window_days must be between 1 and {MAX_WINDOW_DAYS}")
        if not 0 <= self.restocking_fee_bps <= MAX_RESTOCKING_FEE_BPS:
            found.append(f"restocking_fee_bps must be between 0 and {MAX_RESTOCKING_FEE_BPS} (50%)")
        for name in ("ship_by_days", "inspect_by_days", "dispute_window_days"):
            if not 1 <= getattr(self, name) <= MAX_PERIOD_DAYS:
                found.append(f"{name} must be between 1 and {MAX_PERIOD_DAYS}")
        if not 0 <= self.fast_refund_max_value <= MAX_UINT96:
            found.append("fast_refund_max_value must be between 0 and 2^96 - 1 token units")
        if not 0 <= self.fast_refund_max_returns_90d <= MAX_UINT16:
            found.append(f"fast_refund_max_returns_90d must be between 0 and {MAX_UINT16}")
        if self.manual_review_above_value < 0:
            found.append("manual_review_above_value must not be negative")
        lines = self.return_address.splitlines()
        if len(self.return_address) > RETURN_ADDRESS_MAX_CHARS or len(lines) > RETURN_ADDRESS_MAX_LINES:
            found.append(
                f"return_address must fit a label: at most {RETURN_ADDRESS_MAX_LINES} lines and "
                f"{RETURN_ADDRESS_MAX_CHARS} characters"
            )
        if self.return_address and not any(line.strip() for line in lines):
            found.append("return_address must not be only blank lines (leave it empty to publish none)")
        texts = [self.title, self.text, self.return_address, *self.non_returnable_categories, *self.accepted_reasons]
        if any(not _storable(t) for t in [*texts, *self.manual_review_reasons]):
            found.append("texts must be valid Unicode without NUL characters")
        if self.manual_review_reasons - self.accepted_reasons and self.accepted_reasons:
            extra = ", ".join(sorted(self.manual_review_reasons - self.accepted_reasons))
            found.append(f"manual_review_reasons must be accepted reasons too (not accepted: {extra})")
        return found

    def validate(self) -> None:
        """Raises :class:`InvalidRequestError` listing every problem."""
        found = self.problems()
        if found:
            raise InvalidRequestError("the policy cannot be published: " + "; ".join(found))

    def to_json(self) -> dict[str, Any]:
        """The document as stored and hashed (canonical field types)."""
        return {
            "schema": POLICY_SCHEMA,
            "window_days": self.window_days,
            "restocking_fee_bps": self.restocking_fee_bps,
            "fast_refund": self.fast_refund,
            "fast_refund_max_value": str(self.fast_refund_max_value),
            "fast_refund_max_returns_90d": self.fast_refund_max_returns_90d,
            "ship_by_days": self.ship_by_days,
            "inspect_by_days": self.inspect_by_days,
            "dispute_window_days": self.dispute_window_days,
            "non_returnable_categories": sorted(self.non_returnable_categories),
            "accepted_reasons": sorted(self.accepted_reasons),
            "manual_review_reasons": sorted(self.manual_review_reasons),
            "manual_review_above_value": str(self.manual_review_above_value),
            "title": self.title,
            "text": self.text,
            # only when set: documents published before the field existed keep their digest
            **({"return_address": self.return_address} if self.return_address else {}),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> PolicyDocument:
        """Inverse of :meth:`to_json`."""
        return cls(
            window_days=int(raw["window_days"]),
            restocking_fee_bps=int(raw["restocking_fee_bps"]),
            fast_refund=bool(raw["fast_refund"]),
            ship_by_days=int(raw["ship_by_days"]),
            inspect_by_days=int(raw["inspect_by_days"]),
            dispute_window_days=int(raw["dispute_window_days"]),
            fast_refund_max_value=int(raw.get("fast_refund_max_value", 0)),
            fast_refund_max_returns_90d=int(raw.get("fast_refund_max_returns_90d", 0)),
            non_returnable_categories=frozenset(raw.get("non_returnable_categories", ())),
            accepted_reasons=frozenset(raw.get("accepted_reasons", ())),
            manual_review_reasons=frozenset(raw.get("manual_review_reasons", ())),
            manual_review_above_value=int(raw.get("manual_review_above_value", 0)),
            title=str(raw.get("title", "")),
            text=str(raw.get("text", "")),
            return_address=str(raw.get("return_address", "")),
        )

    @property
    def digest(self) -> str:
        """The documentDigest published on-chain."""
        return digest_of(self.to_json())

    def on_chain(self) -> tuple[int, int, bool, int, int, int, int, int, bytes]:
        """The contract's ``Policy`` struct, in field order."""
        return (
            self.window_days,
            self.restocking_fee_bps,
            self.fast_refund,
            self.fast_refund_max_value,
            self.fast_refund_max_returns_90d,
            self.ship_by_days,
            self.inspect_by_days,
            self.dispute_window_days,
            digest_bytes(self.digest),
        )


def inspection_report(*, passed: bool, grade: str | None, notes: str | None) -> dict[str, Any]:
    """The inspection report document whose digest goes on-chain when the inspector gives none."""
    return {"schema": REPORT_SCHEMA, "passed": passed, "grade": grade or "", "notes": notes or ""}


def note_document(kind: str, **fields: Any) -> dict[str, Any]:
    """A small evidence or ruling document (``kind`` names it) whose digest goes on-chain."""
    return {"schema": f"returns-ledger/{kind}/1", **{k: ("" if v is None else v) for k, v in fields.items()}}


def terms_of(
    *,
    version: int,
    window_days: int,
    restocking_fee_bps: int,
    fast_refund: bool,
    fast_refund_max_value: int,
    fast_refund_max_returns_90d: int,
    ship_by_days: int,
    inspect_by_days: int,
    dispute_window_days: int,
    document: PolicyDocument | None,
) -> PolicyTerms:
    """The eligibility rules' view of a policy version: the on-chain parameters (authoritative) plus the
    document's off-chain terms (none when the document is unknown, e.g. published outside the API)."""
    return PolicyTerms(
        version=version,
        window_days=window_days,
        restocking_fee_bps=restocking_fee_bps,
        fast_refund=fast_refund,
        fast_refund_max_value=fast_refund_max_value,
        fast_refund_max_returns_90d=fast_refund_max_returns_90d,
        ship_by_days=ship_by_days,
        inspect_by_days=inspect_by_days,
        dispute_window_days=dispute_window_days,
        non_returnable_categories=document.non_returnable_categories if document else frozenset(),
        accepted_reasons=document.accepted_reasons if document else frozenset(),
        manual_review_reasons=document.manual_review_reasons if document else frozenset(),
        manual_review_above_value=document.manual_review_above_value if document else 0,
    )
