"""Applies anchored scan batches: each ``BatchAnchored`` log's document, fetched by digest, checked, then written.

The sync loop (:mod:`ledger_service.indexer.sync`) writes a ``batch_anchors`` row per ``BatchAnchored`` log, in
state ``pending_document``, in the same transaction as the block's other events. :class:`BatchResolver` then
takes the pending anchors in the chain's order and, for each:

1. reads the document from the document store by the anchored digest (the store re-hashes what it serves); a
   document it does not hold (yet), or a store that does not answer, leaves the anchor pending with the reason,
   and the pass stops there: a later batch may continue the chains of this one's items, so it waits. Once the
   chain's clock (the newest indexed block's time) is ``document_wait_s`` past the anchor's block and the store
   still says it does not hold the document, the anchor is refused instead (given up on) and the pass goes on;
   a store that does not answer never gives up an anchor;
2. decodes it (``batch_document.decode``: canonical bytes, batchable steps, the root), checks it against the
   event (``check_anchor``: also no scan dated more than ``scan_max_age_s`` before the anchor's block), the
   submitter's roles and each item as of the anchor's position
   (``scan_refusals``), and each item's chain of batched scans (``check_continuity``);
3. writes every scan (with the anchor's position as the batch id and the scan's place in the document as its
   leaf index) and marks the anchor ``applied``, or marks it ``refused`` with every reason: one transaction,
   never half a batch. A batch whose only fault is that some items' first scans are numbered past their chains'
   heads (it continues scans not applied yet: its predecessor was re-anchored after it, after a reorg) is held
   pending instead, and the pass goes on to the later anchors, among which its predecessor may be. Right after
   each batch applied, before the pass goes on, the held ones are checked again in the chain's order (and again
   while that applies more). A held batch is refused (a broken chain) only when its predecessor can no longer
   come: just before the pass handles an anchor ``document_wait_s`` or more after it (block time), or at the end
   of a pass that read every pending anchor (not cut by ``limit``, not stopped at a missing document) once the
   newest indexed block is that far after it. So whether it is applied depends on the anchors within the wait
   after it, not on how far the index had got when the resolver ran: a backfill, which resolves after the head
   is far past it, applies what a follower that resolved after every block applies.

Invariants: an anchor is settled at most once (the store settles only a pending anchor with the same position
and content, so a reorg that replaced it in between settles nothing); batches are applied in the chain's order
(a held one right after the batch it waited for), so the index after any sequence of restarts equals a clean
re-index once every document is available. Both limits are measured by block times, not the wall clock, so a
re-index decides them the same way (except for a document published after its anchor was given up on, which a
re-index applies, and for ``limit`` held anchors in a row with nothing settled: the next pass would read the
same list, so the newest block's time refuses those past the wait, where a re-index reading further might not).
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from ledger_service.core import batch_document
from ledger_service.core.batch_document import BatchDocument, BatchDocumentError, ChainHead, ItemStanding
from ledger_service.core.hashchain import item_id as uri_item_id
from ledger_service.documents.cid import Cid
from ledger_service.documents.interface import DocumentStore
from ledger_service.errors import DocumentIntegrityError, NotFoundError, RetryableError
from ledger_service.metrics.indexer import INDEXER_BATCHES
from ledger_service.store.batches import AnchorRow, BatchContext, batch_context, pending_anchors
from ledger_service.store.checkpoint import index_head
from ledger_service.store.handle import AnchorKey, Store

log = structlog.get_logger(__name__)

MAX_REASONS = 20
"""A refused batch keeps this many reasons in full (and how many more there were)."""


@dataclass(slots=True)
class ResolveStats:
    """What one :meth:`BatchResolver.run` did."""

    applied: int = 0
    refused: int = 0
    waiting: int = 0
    """Anchors whose document could not be had (0 or 1: the pass stops at the first)."""
    given_up: int = 0
    """Anchors refused because their document did not appear in time (also counted in ``refused``)."""
    held: int = 0
    """Anchors the pass left pending because they continue items' chains from scans not applied yet."""


@dataclass(frozen=True, slots=True)
class _Held:
    """A held anchor, its document, why it is held and ``BatchResolver._applied`` when it was checked."""

    anchor: AnchorRow
    document: BatchDocument
    problems: list[str]
    applied: int


class BatchResolver:
    """Settles pending anchors of one BatchAnchor contract on one chain from one document store."""

    def __init__(
        self,
        *,
        store: Store,
        documents: DocumentStore,
        chain_id: int,
        batch_anchor: str,
        document_wait_s: int | None = None,
        scan_max_age_s: int | None = None,
    ) -> None:
        """``document_wait_s``: give up on a document the store does not hold this long (by block times) after its
        anchor; ``scan_max_age_s``: refuse a batch with a scan dated this long before its anchor's block (None:
        never, no limit; ``ledger-indexer`` passes ``LEDGER_BATCH_DOCUMENT_WAIT_S`` and
        ``LEDGER_BATCH_SCAN_MAX_AGE_S``)."""
        self.store = store
        self.documents = documents
        self.chain_id = chain_id
        self.batch_anchor = bytes.fromhex(batch_anchor.lower().removeprefix("0x"))
        self.document_wait_s = document_wait_s
        self.scan_max_age_s = scan_max_age_s
        self._applied = 0
        """Batches this resolver applied: only an applied batch moves the chain heads a held batch waits for."""
        self._held: dict[AnchorKey, _Held] = {}
        """Held anchors as last checked: not fetched and decoded again, nor checked again until ``_applied`` moves."""

    def run(self, *, limit: int = 100) -> ResolveStats:
        """Reads up to ``limit`` pending anchors, oldest first, and settles or holds each; stops at one whose
        document is unavailable (unless it is given up on)."""
        stats = ResolveStats()
        pending = pending_anchors(self.store, limit=limit)
        self._held = {a.key: self._held[a.key] for a in pending if a.key in self._held}
        held: list[_Held] = []
        """This pass's held anchors, in the chain's order."""
        for anchor in pending:
            # an anchor the wait or more after a held one cannot be what that one waits for: it is refused first
            self._refuse_waited(held, anchor.anchored_at, stats)
            entry = self._held.get(anchor.key)
            if entry is not None and entry.applied == self._applied:
                held.append(entry)  # nothing was applied since it was checked: still held, not decoded again
                continue
            document = entry.document if entry is not None else self._fetch(anchor, stats)
            if document is None:
                if stats.waiting:
                    break
                continue
            applied = self._applied
            entry = self._decide(anchor, document, stats)
            if entry is not None:
                held.append(entry)
            elif self._applied != applied:
                self._recheck(held, stats)
        else:
            # the head closes the waits once the pass saw every pending anchor up to it; a full list of held ones
            # only would be read again as it is by the next pass, so the head closes theirs too
            if len(pending) < limit or not (stats.applied or stats.refused):
                now = self._head_time()
                if now is not None:
                    self._refuse_waited(held, now, stats)
        stats.held = len(held)
        return stats

    def _fetch(self, anchor: AnchorRow, stats: ResolveStats) -> BatchDocument | None:
        """The anchor's document, decoded; None if it was refused (or given up on), or is awaited (then
        ``stats.waiting`` is counted)."""
        cid = Cid.from_digest(anchor.document_digest)
        try:
            data = self.documents.read(cid)
        except (NotFoundError, RetryableError) as exc:
            # only a store that answered that it lacks the document counts: an outage gives nothing up
            waited = self._waited_out(anchor) if isinstance(exc, NotFoundError) else None
            if waited is not None:
                self._give_up(anchor, cid, waited, stats)
                return None
            reason = f"document {cid} not available yet: {exc}"
            self.store.note_pending_batch(anchor.key, reason)
            log.info("batch_document_pending", block=anchor.block_number, root=anchor.root, reason=reason)
            stats.waiting += 1
            return None
        except DocumentIntegrityError as exc:
            self._refuse(anchor.key, [f"the document's bytes do not have the anchored digest: {exc}"], stats)
            return None
        try:
            return batch_document.decode(data)
        except BatchDocumentError as exc:
            self._refuse(anchor.key, [f"not a valid batch document: {exc}"], stats)
            return None

    def _decide(self, anchor: AnchorRow, document: BatchDocument, stats: ResolveStats) -> _Held | None:
        """Checks a decoded batch and applies or refuses it, or holds it (its entry is returned)."""
        key = anchor.key
        self._held.pop(key, None)
        ids = item_ids(document)
        problems, ahead = self._check(anchor, document, ids)
        if ahead:
            # its predecessor may be anchored later (re-anchored after a reorg): wait, and let later ones go on
            reason = "waiting for the scans this batch continues, not applied yet: " + _joined(problems)
            self.store.note_held_batch(key, reason)
            log.info("batch_held", block=anchor.block_number, root=anchor.root, reason=reason)
            entry = _Held(anchor, document, problems, self._applied)
            self._held[key] = entry
            return entry
        if problems:
            self._refuse(key, problems, stats)
        elif self.store.apply_batch(key, scan_rows(document, ids)):
            self._applied += 1
            stats.applied += 1
            INDEXER_BATCHES.labels("applied").inc()
            log.info("batch_applied", block=anchor.block_number, root=anchor.root, scans=anchor.count)
        return None

    def _recheck(self, held: list[_Held], stats: ResolveStats) -> None:
        """Checks the held anchors again in the chain's order after a batch was applied, before the pass goes on:
        what was applied may be what they wait for, and so may each one applied now, for any other."""
        i = 0
        while i < len(held):
            if held[i].applied == self._applied:
                i += 1
                continue
            applied = self._applied
            entry = self._decide(held[i].anchor, held[i].document, stats)
            if entry is not None:
                held[i] = entry
                i += 1
            else:
                del held[i]
                if self._applied != applied:
                    i = 0

    def _refuse_waited(self, held: list[_Held], now: int, stats: ResolveStats) -> None:
        """Refuses (as a broken chain) the held anchors ``document_wait_s`` or more before ``now``, a block time."""
        if self.document_wait_s is None:
            return
        for entry in [h for h in held if now - h.anchor.anchored_at >= self.document_wait_s]:
            held.remove(entry)
            self._held.pop(entry.anchor.key, None)
            self._refuse(entry.anchor.key, entry.problems, stats)

    def _check(self, anchor: AnchorRow, document: BatchDocument, ids: dict[str, str]) -> tuple[list[str], bool]:
        """Every reason ``document`` may not be applied as the batch ``anchor`` announced (empty: it may; ``ids``:
        its :func:`item_ids`), and whether they are only items' first scans numbered past their chain's head in the
        index: scans continuing a scan not applied yet, which a batch anchored later may bring."""
        problems = batch_document.check_anchor(
            document,
            root=_bytes(anchor.root),
            submitter=_bytes(anchor.submitter),
            count=anchor.count,
            chain_id=self.chain_id,
            batch_anchor=self.batch_anchor,
            anchored_at=anchor.anchored_at,
            max_age_s=self.scan_max_age_s,
        )
        if problems:
            return problems, False
        context = batch_context(
            self.store,
            block_number=anchor.block_number,
            log_index=anchor.log_index,
            submitter=anchor.submitter,
            item_ids=list(ids.values()),
        )
        standings, heads = _by_uri(context, ids)
        problems = batch_document.scan_refusals(
            document, roles=context.roles, sells_for=context.sells_for, items=standings
        )
        links = batch_document.check_continuity(document, heads)
        ahead = bool(links) and not problems and len(links) == _ahead(document, heads)
        return problems + links, ahead

    def _refuse(self, key: AnchorKey, problems: list[str], stats: ResolveStats) -> None:
        reason = _joined(problems)
        if self.store.refuse_batch(key, reason):
            stats.refused += 1
            INDEXER_BATCHES.labels("refused").inc()
            log.warning("batch_refused", block=key.block_number, root=key.root, reason=reason)

    def _waited_out(self, anchor: AnchorRow) -> int | None:
        """How long after ``anchor`` the index's newest block is, if that is ``document_wait_s`` or more (else
        None; None too without a limit or before the newest block's header is stored)."""
        if self.document_wait_s is None:
            return None
        now = self._head_time()
        if now is None:
            return None
        waited = now - anchor.anchored_at
        return waited if waited >= self.document_wait_s else None

    def _head_time(self) -> int | None:
        """The newest indexed block's time (None before its header is stored)."""
        head = index_head(self.store)
        return None if head is None else head.timestamp

    def _give_up(self, anchor: AnchorRow, cid: Cid, waited: int, stats: ResolveStats) -> None:
        """Refuses an anchor whose document the store still does not hold ``document_wait_s`` after it."""
        reason = (
            f"document {cid} not available within {self.document_wait_s} s of its anchor: the document store "
            f"still did not hold it when the index reached a block {waited} s after the anchor's; the submitter "
            f"{anchor.submitter} anchored a root whose scans nobody can read"
        )
        if self.store.refuse_batch(anchor.key, reason):
            stats.refused += 1
            stats.given_up += 1
            INDEXER_BATCHES.labels("given_up").inc()
            log.warning(
                "batch_document_given_up",
                block=anchor.block_number,
                log_index=anchor.log_index,
                root=anchor.root,
                submitter=anchor.submitter,
                document=str(cid),
                waited_s=waited,
            )


def item_ids(document: BatchDocument) -> dict[str, str]:
    """Each scanned item's id (0x + hex), by URI: hashed once per item, not once per scan."""
    return {uri: "0x" + uri_item_id(uri).hex() for uri in dict.fromkeys(scan.item for scan in document.scans)}


def scan_rows(document: BatchDocument, ids: dict[str, str]) -> list[tuple[object, ...]]:
    """The batched_scans rows of a document's scans, tuples of ``BATCHED_SCAN_COLUMNS`` (the store adds the
    anchor's position); ``ids``: the document's :func:`item_ids`. The leaves are the ones decode checked."""
    submitter = "0x" + document.submitter.hex()
    return [
        (
            ids[scan.item],
            scan.seq,
            "0x" + scan.prev_hash.hex(),
            "0x" + leaf.hex(),
            int(scan.biz_step),
            int(scan.disposition),
            scan.read_point,
            "0x" + scan.document.hex(),
            "0x" + scan.biz_transaction.hex(),
            scan.time,
            submitter,
            index,
        )
        for index, (scan, leaf) in enumerate(zip(document.scans, document.leaf_hashes, strict=True))
    ]


def _joined(problems: list[str]) -> str:
    """The first ``MAX_REASONS`` problems (and how many more there were)."""
    reason = "; ".join(problems[:MAX_REASONS])
    if len(problems) > MAX_REASONS:
        reason += f"; and {len(problems) - MAX_REASONS} more"
    return reason


def _ahead(document: BatchDocument, heads: dict[str, ChainHead]) -> int:
    """How many items' first scans in ``document`` are numbered past the next one their chain's head expects."""
    firsts: dict[str, int] = {}
    for scan in document.scans:
        firsts.setdefault(scan.item, scan.seq)
    return sum(seq > (heads[uri].seq + 1 if uri in heads else 0) for uri, seq in firsts.items())


def _bytes(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text.removeprefix("0x"))


def _by_uri(context: BatchContext, ids: dict[str, str]) -> tuple[dict[str, ItemStanding], dict[str, ChainHead]]:
    """The context's items and chain heads keyed by item URI, as the document's checks take them."""
    standings: dict[str, ItemStanding] = {}
    heads: dict[str, ChainHead] = {}
    for uri, item_id in ids.items():
        facts = context.items.get(item_id)
        if facts is not None:
            standings[uri] = ItemStanding(merchant=facts.merchant, destroyed=facts.destroyed)
        head = context.heads.get(item_id)
        if head is not None:
            heads[uri] = ChainHead(head[0], _bytes(head[1]))
    return standings, heads
