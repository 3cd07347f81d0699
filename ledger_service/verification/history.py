"""An item's indexed history, and its verification against the chain and the document store.

:func:`item_history` reads the rows (no I/O beyond the store). :func:`verify_item`
(or :func:`audit_item`, which also returns the history it checked) replays them:

- every row's eventHash is recomputed from its own fields on its own prevHash
  (a changed field: ``event-altered``, naming the seq and transaction);
- seq numbers must run 0, 1, 2, ... (a gap: ``event-missing`` naming each
  missing seq; a row beyond the contract's count: ``event-not-on-chain``);
  a row whose fields hash only with another seq is ``event-reordered`` (swapped
  seq numbers), naming the seq whose fields it carries; and the self-consistent
  rows must follow chain order (block, log index): those outside the longest
  ordered run are ``event-reordered`` too (their position was altered);
- each prevHash must be the previous row's eventHash (``hash-chain-broken``,
  reported only when both rows are otherwise self-consistent, so one tampered
  row is named once, not as a cascade);
- the head recomputed from the rows' fields alone (each event on the hash of
  the one before, ignoring the stored hashes) and the number of rows must
  equal the contract's stored head and count, read with one ``itemOf`` call at
  the index's checkpoint block, so events the indexer has not reached yet are
  not missing (at the node's head if it has no state there) (``head-mismatch`` /
  ``count-mismatch``; events the contract has and the index lacks are
  ``event-missing`` too);
- with ``check_blocks``, each distinct block's stored hash must still be the
  node's canonical hash at that height (one ``eth_getBlockByNumber`` per
  distinct block, sent as JSON-RPC batches): otherwise ``block-not-canonical``
  for each event in it; a row without a stored block hash (indexed before
  revision 0003) is a ``block-unchecked`` warning;
- with a document store, every referenced document (``Cid.from_digest`` of the
  event's digest; zero means none) is re-hashed once: ``document-corrupt`` (an
  error) names the CID and each seq citing it; ``document-missing`` is a warning.

The item's batched scans (issue #23) form a chain of their own, beside the
on-chain events: each carries its batch (the anchor's position, root, anchor
transaction, document CID), its leaf index and its Merkle proof, computed from
the batch's leaves as the index holds them. They are checked too: each leaf is
recomputed from the row's fields (``batched-scan-altered``), seq numbers run
0, 1, 2, ... each prevHash the leaf before (``batched-chain-broken``), and the
proof must lead to the anchored root (``batched-proof-invalid``: a leaf of the
batch is missing or altered in the index).

An item neither the index nor the contract knows has no verdict (``None``).
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from eth_abi.exceptions import EncodingError
from web3.types import RPCEndpoint

from ledger_service.chain.signers import ChainContext
from ledger_service.core import batch_document, hashchain
from ledger_service.core.codes import ROLE_IDS, BizStep, Disposition, decode_location
from ledger_service.core.merkle import BatchTrees, process_proof
from ledger_service.documents.cid import Cid
from ledger_service.documents.interface import DocumentStatus, DocumentStore
from ledger_service.errors import InvalidRequestError, RetryableError
from ledger_service.store.batches import ItemBatchedRows, item_batched_rows
from ledger_service.store.exchanges import ExchangeRow, UnitMismatchRow
from ledger_service.store.handle import Store
from ledger_service.store.items import AuditItemRows, item_audit_rows
from ledger_service.verification.model import Finding, ItemVerdict, Severity

log = structlog.get_logger(__name__)

__all__ = [
    "ROLE_NAMES",
    "AuditResult",
    "BatchedHistoryScan",
    "HistoryEvent",
    "ItemHistory",
    "ItemRegistration",
    "VerificationUnavailableError",
    "audit_item",
    "item_history",
    "verify_item",
]

ZERO_HASH = "0x" + "00" * 32
GET_BLOCK = RPCEndpoint("eth_getBlockByNumber")
BLOCK_BATCH = 100
"""Blocks asked for in one JSON-RPC batch."""
MAX_CANDIDATES = 256
"""An altered row's fields are tried with at most this many other seq numbers (to tell a swap from an edit)."""
MISSING_LISTED = 20
"""Missing events named one by one; a longer gap is one finding naming its range."""


ROLE_NAMES: dict[str, str] = {
    "0x" + role.hex(): "admin" if name == "DEFAULT_ADMIN_ROLE" else name.removesuffix("_ROLE").lower()
    for name, role in ROLE_IDS.items()
}
"""Role ids of contracts/Roles.sol (and AccessControl's DEFAULT_ADMIN_ROLE) -> names."""


class VerificationUnavailableError(RetryableError):
    """The node could not be asked (down, timing out, refusing the call): the verdict cannot be given now."""


# ---- the history -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ItemRegistration:
    """How the item came on-chain (its ``ItemRegistered`` log)."""

    uri: str
    """The GS1 URI (``urn:epc:id:sgtin:...`` or a Digital Link) whose keccak256 is the item id."""
    gtin: int
    manufacturer: str
    merchant: str
    """The merchant of record at registration."""
    metadata_digest: str
    block_number: int
    tx_hash: str


class _CbvNames:
    """The CBV 2.0 names of an event's bizStep and disposition codes."""

    __slots__ = ()
    biz_step: int
    disposition: int

    @property
    def biz_step_name(self) -> str | None:
        """The CBV 2.0 term, or None for a code outside the table."""
        try:
            return BizStep(self.biz_step).cbv
        except ValueError:
            return None

    @property
    def disposition_name(self) -> str | None:
        """The CBV 2.0 term, or None for a code outside the table."""
        try:
            return Disposition(self.disposition).cbv
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class HistoryEvent(_CbvNames):
    """One indexed event of an item, every field as stored, plus the actor's roles at that point."""

    seq: int
    biz_step: int
    disposition: int
    actor: str
    actor_roles: tuple[str, ...]
    """Roles (:data:`ROLE_NAMES`) the actor held just before the event, per the indexed role changes."""
    location: str
    document: str
    biz_transaction: str
    biz_transaction_type: str | None
    """``rma`` when the business transaction is one of the item's returns, ``po`` when it is one of its sale
    orders, else None."""
    timestamp: int
    prev_hash: str
    event_hash: str
    block_number: int
    block_hash: str | None
    log_index: int
    tx_hash: str
    tx_index: int

    @property
    def read_point(self) -> str | None:
        """The SGLN ``company.location.extension``, or None when the location is zero."""
        try:
            raw = bytes.fromhex(self.location.removeprefix("0x"))
        except ValueError:
            return None
        text = decode_location(raw)
        return text or None

    @property
    def document_cid(self) -> Cid | None:
        """The attached document's CID, or None (zero digest, or not a digest at all)."""
        if self.document == ZERO_HASH:
            return None
        try:
            return Cid.from_digest(self.document)
        except (InvalidRequestError, ValueError):
            return None

    @property
    def has_biz_transaction(self) -> bool:
        return self.biz_transaction != ZERO_HASH


@dataclass(frozen=True, slots=True)
class BatchedHistoryScan(_CbvNames):
    """One batched scan of the item, as indexed, with what an outside party needs to check it against the chain:
    its batch's anchor and its Merkle proof."""

    seq: int
    """Its place in the item's chain of batched scans (apart from the on-chain events' seq)."""
    biz_step: int
    disposition: int
    read_point: str
    time: int
    document: str
    biz_transaction: str
    submitter: str
    prev_hash: str
    leaf_hash: str
    batch_id: str
    """``<anchor block>-<anchor log index>``: the ``BatchAnchored`` event's position."""
    leaf_index: int
    """Its place in the batch document's events (the StandardMerkleTree value index)."""
    root: str | None
    """The anchored Merkle root (None: the index lacks the anchor, itself a finding)."""
    anchor_tx: str | None
    anchor_block: int
    anchor_log_index: int
    document_digest: str | None
    """The batch document's sha2-256 digest, as anchored."""
    proof: tuple[str, ...]
    """Sibling hashes from the leaf to the root (OpenZeppelin ``MerkleProof`` order)."""

    @property
    def document_cid(self) -> Cid | None:
        """The batch document's CID (None without the anchor)."""
        return None if self.document_digest is None else Cid.from_digest(self.document_digest)

    def as_scan(self, uri: str) -> batch_document.BatchedScan | None:
        """The scan as its batch document lists it (``uri``: the item's GS1 URI); None when a stored field is
        not one a document could hold (itself a sign of tampering)."""
        try:
            return batch_document.BatchedScan(
                item=uri,
                seq=self.seq,
                prev_hash=_b32(self.prev_hash),
                biz_step=BizStep(self.biz_step),
                disposition=Disposition(self.disposition),
                read_point=self.read_point,
                time=self.time,
                document=_b32(self.document),
                biz_transaction=_b32(self.biz_transaction),
            )
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class ItemHistory:
    """What the index holds about one item, in seq order."""

    item_id: str
    registration: ItemRegistration | None
    merchant: str | None
    """The current merchant of record (None when the index has no state row)."""
    destroyed: bool
    events: tuple[HistoryEvent, ...]
    indexed_block: int | None
    """The index checkpoint when the history was read."""
    exchanges: tuple[ExchangeRow, ...] = ()
    """The exchanges naming the item as original or replacement, in chain order."""
    unit_mismatches: tuple[UnitMismatchRow, ...] = ()
    """The returns whose received unit was not the one sold, naming the item as either, in chain order."""
    batched: tuple[BatchedHistoryScan, ...] = ()
    """The item's batched scans, by seq in their own chain."""

    @property
    def uri(self) -> str | None:
        return None if self.registration is None else self.registration.uri


def item_history(*, store: Store, item_id: str) -> ItemHistory | None:
    """The item's indexed history, or None when the index knows nothing of it."""
    rows = item_audit_rows(store, item_id)
    if rows is None:
        return None
    history = _history(rows)
    batched = _batched(item_batched_rows(store, item_id=history.item_id))
    return history if not batched else dataclasses.replace(history, batched=batched)


def _batched(rows: ItemBatchedRows) -> tuple[BatchedHistoryScan, ...]:
    trees = BatchTrees(rows.leaves)
    out: list[BatchedHistoryScan] = []
    for scan in rows.scans:
        position = (scan.block_number, scan.log_index)
        anchor = rows.anchors.get(position)
        proof = trees.proof(position, scan.leaf_index)
        out.append(
            BatchedHistoryScan(
                seq=scan.seq,
                biz_step=scan.biz_step,
                disposition=scan.disposition,
                read_point=scan.read_point,
                time=scan.time,
                document=scan.document,
                biz_transaction=scan.biz_transaction,
                submitter=scan.submitter,
                prev_hash=scan.prev_hash,
                leaf_hash=scan.leaf_hash,
                batch_id=f"{scan.block_number}-{scan.log_index}",
                leaf_index=scan.leaf_index,
                root=None if anchor is None else anchor.root,
                anchor_tx=None if anchor is None else anchor.tx_hash,
                anchor_block=scan.block_number,
                anchor_log_index=scan.log_index,
                document_digest=None if anchor is None else anchor.document_digest,
                proof=proof,
            )
        )
    return tuple(out)


def _history(rows: AuditItemRows) -> ItemHistory:
    changes = sorted(rows.role_changes, key=lambda c: (c.block_number, c.log_index))
    events: list[HistoryEvent] = []
    # Roles at each event: fold the role changes in chain order up to the event's position.
    held: dict[str, set[str]] = {}
    applied = 0
    for row in sorted(rows.events, key=lambda r: (r.block_number, r.log_index)):
        while applied < len(changes) and (changes[applied].block_number, changes[applied].log_index) < (
            row.block_number,
            row.log_index,
        ):
            change = changes[applied]
            roles = held.setdefault(change.account, set())
            name = ROLE_NAMES.get(change.role, change.role)
            if change.granted:
                roles.add(name)
            else:
                roles.discard(name)
            applied += 1
        events.append(
            HistoryEvent(
                seq=row.seq,
                biz_step=row.biz_step,
                disposition=row.disposition,
                actor=row.actor,
                actor_roles=tuple(sorted(held.get(row.actor, ()))),
                location=row.location,
                document=row.document,
                biz_transaction=row.biz_transaction,
                biz_transaction_type=rows.biz_transaction_types.get(row.biz_transaction),
                timestamp=row.timestamp,
                prev_hash=row.prev_hash,
                event_hash=row.event_hash,
                block_number=row.block_number,
                block_hash=row.block_hash,
                log_index=row.log_index,
                tx_hash=row.tx_hash,
                tx_index=row.tx_index,
            )
        )
    events.sort(key=lambda e: (e.seq, e.block_number, e.log_index))
    reg = rows.registration
    return ItemHistory(
        item_id=rows.item_id,
        registration=None
        if reg is None
        else ItemRegistration(
            uri=reg.uri,
            gtin=reg.gtin,
            manufacturer=reg.manufacturer,
            merchant=reg.merchant,
            metadata_digest=reg.metadata_digest,
            block_number=reg.block_number,
            tx_hash=reg.tx_hash,
        ),
        merchant=rows.current_merchant,
        destroyed=rows.destroyed,
        events=tuple(events),
        indexed_block=rows.indexed_block,
        exchanges=rows.exchanges,
        unit_mismatches=rows.unit_mismatches,
    )


# ---- verification ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditResult:
    """An item's history and the verdict on it."""

    history: ItemHistory
    verdict: ItemVerdict


class _ChainReader:
    """The two reads verification makes of the node, with failures as :class:`VerificationUnavailableError`."""

    def __init__(self, chain: ChainContext) -> None:
        self._chain = chain

    def item_record(self, item_id: str, block: int | None) -> tuple[str, int]:
        """The contract's (head, count) for the item at ``block``; at the node's head when ``block`` is None or
        the node has no state there (pruned, or it rolled back below the index's block)."""
        call = self._chain.ledger.functions.itemOf(_b32(item_id))
        try:
            try:
                record = call.call(block_identifier="latest" if block is None else block)
            except Exception as exc:
                if block is None or not _is_state_unavailable(exc):
                    raise
                record = call.call(block_identifier="latest")
        except Exception as exc:
            log.warning("verification read failed", call="itemOf", error_type=type(exc).__name__, error=str(exc)[:200])
            raise VerificationUnavailableError("the chain node did not answer itemOf") from exc
        head, count = record[0], record[1]
        return "0x" + bytes(head).hex(), int(count)

    def block_hashes(self, numbers: Sequence[int]) -> dict[int, str | None]:
        """The node's canonical hash at each height (None: no such block yet)."""
        out: dict[int, str | None] = {}
        provider = self._chain.w3.provider
        try:
            for start in range(0, len(numbers), BLOCK_BATCH):
                part = numbers[start : start + BLOCK_BATCH]
                requests = [(GET_BLOCK, [hex(n), False]) for n in part]
                batch = getattr(provider, "make_batch_request", None)
                answered: Any = (
                    batch(requests) if batch is not None else [provider.make_request(m, p) for m, p in requests]
                )
                if not isinstance(answered, list) or len(answered) != len(part):
                    raise ValueError(f"the node answered a batch of {len(part)} requests with {answered!r:.200}")
                by_id = _in_request_order(answered)
                for number, response in zip(part, by_id, strict=True):
                    if "error" in response:
                        raise ValueError(f"eth_getBlockByNumber({number}): {response['error']}")
                    block = response.get("result")
                    out[number] = None if block is None else str(block["hash"]).lower()
        except Exception as exc:
            log.warning(
                "verification read failed",
                call="eth_getBlockByNumber",
                error_type=type(exc).__name__,
                error=str(exc)[:200],
            )
            raise VerificationUnavailableError("the chain node did not answer eth_getBlockByNumber") from exc
        return out


def _in_request_order(responses: list[Any]) -> list[dict[str, Any]]:
    """Batch responses may come in any order: sort them by their JSON-RPC id when they carry one."""
    items = [dict(r) for r in responses]
    if all(isinstance(r.get("id"), int) for r in items):
        items.sort(key=lambda r: int(r["id"]))
    return items


_NO_STATE_AT_BLOCK = (
    "missing trie node",
    "historical state",
    "state is not available",
    "pruned",
    "header not found",
    "out of range",
    "outofrange",
    "unknown block",
)
"""Node errors meaning "no state at that block" (pruned, or the index is ahead of a node that rolled back)."""


def _is_state_unavailable(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(words in text for words in _NO_STATE_AT_BLOCK)


def verify_item(
    *,
    store: Store,
    chain: ChainContext,
    documents: DocumentStore | None,
    item_id: str,
    check_blocks: bool = True,
) -> ItemVerdict | None:
    """The verdict on the item's indexed history; None when neither the index nor the contract knows it.

    Raises :class:`InvalidRequestError` for an ``item_id`` that is not 0x + 64 hex digits and
    :class:`VerificationUnavailableError` (retryable) when the node cannot be read.
    """
    result = audit_item(store=store, chain=chain, documents=documents, item_id=item_id, check_blocks=check_blocks)
    return None if result is None else result.verdict


def audit_item(
    *,
    store: Store,
    chain: ChainContext,
    documents: DocumentStore | None,
    item_id: str,
    check_blocks: bool = True,
) -> AuditResult | None:
    """The item's history with its verdict (see :func:`verify_item`); None for an item nobody knows."""
    key = item_id.lower()
    if len(key) != 66 or not key.startswith("0x") or any(c not in "0123456789abcdef" for c in key[2:]):
        raise InvalidRequestError(f"an item id is 0x + 64 hex digits, got {item_id[:80]!r}")
    history = item_history(store=store, item_id=key)
    indexed = history.indexed_block if history is not None else _checkpoint(store)
    reader = _ChainReader(chain)
    chain_head, chain_count = reader.item_record(key, indexed)
    if history is None:
        if chain_count == 0:
            return None
        history = ItemHistory(
            item_id=key, registration=None, merchant=None, destroyed=False, events=(), indexed_block=indexed
        )
    verdict = _verify(
        history=history,
        chain_head=chain_head,
        chain_count=chain_count,
        reader=reader if check_blocks else None,
        documents=documents,
    )
    return AuditResult(history=history, verdict=verdict)


def _checkpoint(store: Store) -> int | None:
    checkpoint = store.checkpoint()
    return None if checkpoint is None else checkpoint.number


def _b32(text: str) -> bytes:
    raw = bytes.fromhex(text.removeprefix("0x"))
    if len(raw) != 32:
        raise ValueError(f"not a bytes32: {text!r}")
    return raw


def _tx(event: HistoryEvent) -> str:
    return f"event #{event.seq} (tx {event.tx_hash}, block {event.block_number})"


class _Verification:
    """One pass over one item's history; collects the findings."""

    def __init__(self, history: ItemHistory) -> None:
        self.history = history
        self.findings: list[Finding] = []

    def error(self, kind: str, message: str, *, seq: int | None = None, cid: str | None = None) -> None:
        self.findings.append(Finding(kind=kind, message=message, severity=Severity.ERROR, seq=seq, cid=cid))

    def warning(self, kind: str, message: str, *, seq: int | None = None, cid: str | None = None) -> None:
        self.findings.append(Finding(kind=kind, message=message, severity=Severity.WARNING, seq=seq, cid=cid))

    def event_hash(self, event: HistoryEvent, *, prev_hash: str, seq: int | None = None) -> str | None:
        """The eventHash of ``event``'s fields on ``prev_hash`` (with ``seq`` instead of its own when given);
        None when a stored field cannot be encoded at all (itself a sign of tampering)."""
        try:
            return (
                "0x"
                + hashchain.event_hash(
                    prev_hash=_b32(prev_hash),
                    item_id=_b32(self.history.item_id),
                    seq=event.seq if seq is None else seq,
                    biz_step=event.biz_step,
                    disposition=event.disposition,
                    actor=event.actor,
                    location=_b32(event.location),
                    document=_b32(event.document),
                    biz_transaction=_b32(event.biz_transaction),
                    timestamp=event.timestamp,
                ).hex()
            )
        except (ValueError, OverflowError, TypeError, EncodingError):
            return None

    # -- the hash chain --

    def chain(self, chain_count: int) -> str | None:
        """Checks the rows; returns the head recomputed from their fields alone (None without rows)."""
        events = self.history.events
        flagged: set[int] = set()

        expected = 0
        for i, event in enumerate(events):
            if event.seq < expected:  # a duplicate seq (only possible without the primary key)
                self.error("event-duplicated", f"{_tx(event)} repeats seq {event.seq}", seq=event.seq)
                flagged.add(i)
                continue
            if event.seq > expected:
                self.missing(expected, event.seq)
            expected = event.seq + 1
        if expected < chain_count:
            self.missing(expected, chain_count)
        extra = [(i, e) for i, e in enumerate(events) if e.seq >= chain_count and i not in flagged]
        if len(extra) > MISSING_LISTED:
            self.error(
                "event-not-on-chain",
                f"{len(extra)} index rows (from event #{extra[0][1].seq}) are beyond the {chain_count} events the "
                "contract counts",
                seq=extra[0][1].seq,
            )
        else:
            for _, event in extra:
                self.error(
                    "event-not-on-chain",
                    f"{_tx(event)} is in the index, but the contract counts only {chain_count} events of this item",
                    seq=event.seq,
                )
        flagged.update(i for i, _ in extra)

        candidates = sorted({e.seq for e in events} | set(range(min(chain_count, MAX_CANDIDATES))))
        for i, event in enumerate(events):
            if i in flagged or self.event_hash(event, prev_hash=event.prev_hash) == event.event_hash:
                continue
            flagged.add(i)
            true_seq = self.true_seq(event, candidates)
            if true_seq is not None:
                self.error(
                    "event-reordered",
                    f"the index row numbered event #{event.seq} is event #{true_seq} of the chain (tx "
                    f"{event.tx_hash}, block {event.block_number}): its fields and eventHash recompute only with "
                    f"seq {true_seq}; the index's seq numbers were swapped or reordered",
                    seq=event.seq,
                )
            else:
                self.error(
                    "event-altered",
                    f"{_tx(event)} does not hash to its eventHash {event.event_hash}: a field of the index row "
                    "(bizStep, disposition, actor, location, document, bizTransaction, time or prevHash) was "
                    "altered",
                    seq=event.seq,
                )

        # Self-consistent rows must follow chain order: those outside the longest run in (block, log index)
        # order had their position altered.
        kept = [i for i in range(len(events)) if i not in flagged]
        in_order = set(_longest_increasing(kept, key=lambda i: (events[i].block_number, events[i].log_index)))
        for i in kept:
            if i not in in_order:
                event = events[i]
                self.error(
                    "event-reordered",
                    f"{_tx(event)} is out of chain order: its block and log index do not fall between those of "
                    "the events numbered around it (the row's position was altered)",
                    seq=event.seq,
                )
                flagged.add(i)

        previous: HistoryEvent | None = None
        for i, event in enumerate(events):
            if previous is None:
                link_ok = event.seq != 0 or event.prev_hash == ZERO_HASH
                before = "zero (the first event)"
            else:
                link_ok = event.seq != previous.seq + 1 or event.prev_hash == previous.event_hash
                before = f"event #{previous.seq}'s eventHash {previous.event_hash}"
            if not link_ok and i not in flagged and (previous is None or (i - 1) not in flagged):
                self.error(
                    "hash-chain-broken",
                    f"{_tx(event)} has prevHash {event.prev_hash}, not {before}: the two rows do not belong to "
                    "one chain",
                    seq=event.seq,
                )
            previous = event

        head: str | None = None
        running = ZERO_HASH
        for event in events:
            running = self.event_hash(event, prev_hash=running) or "0x" + "ff" * 32
            head = running
        return head

    def true_seq(self, event: HistoryEvent, candidates: Sequence[int]) -> int | None:
        """The other seq with which ``event``'s fields hash to its eventHash (nearest first), if any."""
        for seq in sorted(candidates, key=lambda s: (abs(s - event.seq), s)):
            if seq != event.seq and self.event_hash(event, prev_hash=event.prev_hash, seq=seq) == event.event_hash:
                return seq
        return None

    def missing(self, first: int, end: int) -> None:
        """Events ``first`` .. ``end - 1`` are on the chain but not in the index."""
        if end - first > MISSING_LISTED:
            self.error(
                "event-missing",
                f"events #{first} to #{end - 1} ({end - first} events) are missing from the index",
                seq=first,
            )
            return
        for seq in range(first, end):
            self.error("event-missing", f"event #{seq} is missing from the index", seq=seq)

    # -- blocks --

    def blocks(self, reader: _ChainReader) -> int:
        """Compares the rows' block hashes with the node's canonical chain; returns the blocks checked."""
        by_block: dict[int, list[HistoryEvent]] = {}
        for event in self.history.events:
            if event.block_hash is None:
                self.warning(
                    "block-unchecked",
                    f"{_tx(event)} was indexed before block hashes were kept: its block was not checked",
                    seq=event.seq,
                )
            else:
                by_block.setdefault(event.block_number, []).append(event)
        canonical = reader.block_hashes(sorted(by_block))
        for number, events in sorted(by_block.items()):
            node_hash = canonical.get(number)
            for event in events:
                if event.block_hash is not None and event.block_hash.lower() == node_hash:
                    continue
                now = "the node has no such block" if node_hash is None else f"the node's block is {node_hash}"
                self.error(
                    "block-not-canonical",
                    f"{_tx(event)} is indexed in block {number} with hash {event.block_hash}, but {now}: that "
                    "block is no longer (or never was) part of the chain",
                    seq=event.seq,
                )
        return len(by_block)

    # -- documents --

    def documents(self, documents: DocumentStore) -> int:
        """Re-hashes every referenced document once; returns the references checked."""
        cited: dict[Cid, list[HistoryEvent]] = {}
        for event in self.history.events:
            cid = event.document_cid
            if cid is not None:
                cited.setdefault(cid, []).append(event)
        checked = 0
        for cid, events in cited.items():
            status = documents.check(cid)
            checked += len(events)
            for event in events:
                if status is DocumentStatus.CORRUPT:
                    self.error(
                        "document-corrupt",
                        f"document {cid.v0} of {_tx(event)} is stored, but its bytes hash to another CID: the "
                        "stored copy was damaged or swapped",
                        seq=event.seq,
                        cid=cid.v0,
                    )
                elif status is DocumentStatus.MISSING:
                    self.warning(
                        "document-missing",
                        f"document {cid.v0} of {_tx(event)} is not held by this service: it could not be checked",
                        seq=event.seq,
                        cid=cid.v0,
                    )
        return checked


def _batch_tag(scan: BatchedHistoryScan) -> str:
    return f"batched scan #{scan.seq} (batch {scan.batch_id}, leaf {scan.leaf_index})"


def _leaf_of(scan: BatchedHistoryScan, uri: str) -> str | None:
    """The leaf recomputed from the row's fields (None: a field no document could hold)."""
    made = scan.as_scan(uri)
    try:
        submitter = bytes.fromhex(scan.submitter.removeprefix("0x"))
        if made is None or len(submitter) != 20:
            return None
        return "0x" + made.leaf_hash(submitter).hex()
    except (ValueError, OverflowError):
        return None


def _check_batched(run: _Verification) -> None:
    """The item's chain of batched scans: each leaf from its fields, the links, each proof to its anchored root."""
    history = run.history
    uri = history.uri
    previous: BatchedHistoryScan | None = None
    for scan in history.batched:
        tag = _batch_tag(scan)
        if uri is None:
            run.warning("batched-scan-unchecked", f"{tag}: the item's URI is not indexed, its leaf was not recomputed")
        else:
            if _leaf_of(scan, uri) != scan.leaf_hash:
                run.error(
                    "batched-scan-altered",
                    f"{tag} does not hash to its leaf {scan.leaf_hash}: a field of the index row was altered",
                )
        expected_seq = 0 if previous is None else previous.seq + 1
        expected_prev = ZERO_HASH if previous is None else previous.leaf_hash
        if scan.seq != expected_seq or scan.prev_hash != expected_prev:
            run.error(
                "batched-chain-broken",
                f"{tag} has seq {scan.seq} and prevHash {scan.prev_hash}, not seq {expected_seq} on {expected_prev}: "
                "a batched scan is missing, repeated or out of order",
            )
        if scan.root is None:
            run.error("batched-anchor-missing", f"{tag}: the index has no BatchAnchored event at {scan.batch_id}")
        elif "0x" + process_proof(_b32(scan.leaf_hash), [_b32(p) for p in scan.proof]).hex() != scan.root:
            run.error(
                "batched-proof-invalid",
                f"{tag}: the proof from the batch's leaves in the index does not lead to the anchored root "
                f"{scan.root}: a leaf of the batch is missing or altered in the index",
            )
        previous = scan


def _longest_increasing(indices: Sequence[int], *, key: Callable[[int], tuple[int, int]]) -> list[int]:
    """The longest subsequence of ``indices`` whose keys strictly increase (patience sorting, O(n log n))."""
    tails: list[int] = []  # tails[k]: position in ``indices`` ending the best run of length k + 1
    parent: list[int] = [-1] * len(indices)
    tail_keys: list[tuple[int, int]] = []
    for pos, index in enumerate(indices):
        k = bisect.bisect_left(tail_keys, key(index))
        if k > 0:
            parent[pos] = tails[k - 1]
        if k == len(tails):
            tails.append(pos)
            tail_keys.append(key(index))
        else:
            tails[k] = pos
            tail_keys[k] = key(index)
    run: list[int] = []
    pos = tails[-1] if tails else -1
    while pos >= 0:
        run.append(indices[pos])
        pos = parent[pos]
    return run[::-1]


def _verify(
    *,
    history: ItemHistory,
    chain_head: str,
    chain_count: int,
    reader: _ChainReader | None,
    documents: DocumentStore | None,
) -> ItemVerdict:
    run = _Verification(history)
    index_head = run.chain(chain_count)
    index_count = len(history.events)
    if chain_count == 0:
        if index_count:
            run.error(
                "count-mismatch",
                f"the index has {index_count} events of this item, but the contract does not know it",
            )
    else:
        if index_count != chain_count:
            run.error(
                "count-mismatch",
                f"the index has {index_count} events of this item, the contract counts {chain_count}",
            )
        if index_head != chain_head:
            run.error(
                "head-mismatch",
                f"the hash chain recomputed from the index rows ends in {index_head}, but the contract's stored "
                f"head is {chain_head}",
            )
    _check_batched(run)
    blocks_checked = run.blocks(reader) if reader is not None else 0
    documents_checked = run.documents(documents) if documents is not None else 0
    findings = sorted(run.findings, key=_finding_order)
    return ItemVerdict(
        item_id=history.item_id,
        index_count=index_count,
        index_head=index_head,
        chain_count=chain_count if chain_count else None,
        chain_head=chain_head if chain_count else None,
        blocks_checked=blocks_checked,
        documents_checked=documents_checked,
        findings=tuple(findings),
    )


def _finding_order(finding: Finding) -> tuple[int, int, str]:
    return (0 if finding.severity is Severity.ERROR else 1, -1 if finding.seq is None else finding.seq, finding.kind)
