"""The scan batcher: seals the queued scans into batches, stores their documents and anchors them, crash-safely.

One turn (:meth:`Batcher.turn`) does, in this order:

1. **seal** every due batch (full, or open for ``LEDGER_BATCH_SEAL_S``), oldest first: close it to new scans,
   number its scans in their items' chains from ``scan_heads`` (``batch_document.BatchBuilder``), build the
   document and its Merkle root, and record all of it (document bytes included) with the moved heads in one
   transaction. A crash before that commit leaves the batch full and the heads where they were: it is sealed
   again, identically;
2. **anchor** every sealed batch, oldest first: put its document into the document store (storing the same
   bytes twice is harmless), then send ``anchorBatch(root, count, digest)``. A batch this process did not
   just seal (a restart, a failed send, a reorg) is first looked up with ``isAnchored``: the contract keeps
   anchors per (submitter, root), so an anchor sent before a crash is found, and a resend that races one
   reverts with ``BatchAnchorAlreadyAnchored``, read as done. Sends stop at the first failure and are retried
   next turn, so batches reach the chain in the order their scans were numbered. A batch the contract keeps
   refusing (a revert, not a node that does not answer) is given up on after ``LEDGER_BATCH_GIVE_UP_REFUSALS``
   refusals over at least ``LEDGER_BATCH_GIVE_UP_S``, or at once for a reason that cannot change: it is marked
   ``failed`` with the reason, and the later sealed batches are sealed again without its scans in their chains
   (``scan_queue.give_up``), so one refused batch does not hold the others back forever;
3. **follow** the anchored batches: one whose block was replaced by a reorg goes back to sealed (and is
   anchored again) unless ``isAnchored`` still finds it; one past ``LEDGER_FINALITY_DEPTH`` becomes final,
   after its in-transit scans that name an authorized return were proved to the escrow and those proofs are
   ``LEDGER_FINALITY_DEPTH`` deep too, a proof a reorg dropped meanwhile sent again
   (:mod:`ledger_service.batcher.transit`, ``LEDGER_BATCH_TRANSIT_PROOFS``).

Invariants: no scan is numbered twice (heads move only with a seal's commit, and one batcher runs per index:
``store.batcher_lock``); a batch's root never changes once sealed, and the contract accepts one anchor per
(submitter, root), so no batch is anchored twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import requests
import structlog
from eth_utils.address import to_checksum_address
from web3.exceptions import Web3Exception

from ledger_service.batcher.transit import TransitProver
from ledger_service.chain.reverts import ContractRevertError
from ledger_service.chain.signers import ChainContext
from ledger_service.core import batch_document
from ledger_service.core.batch_document import BatchBuilder, ChainHead
from ledger_service.core.codes import BizStep, Disposition
from ledger_service.core.hashchain import item_id as uri_item_id
from ledger_service.documents.cid import cid_of_bytes
from ledger_service.documents.interface import DocumentStore
from ledger_service.errors import ConfigurationError, LedgerError, RetryableError
from ledger_service.metrics import batcher as metrics
from ledger_service.settings import Settings
from ledger_service.store import Store
from ledger_service.store.scan_queue import (
    BatchRow,
    batches_in,
    close_batch,
    due_batches,
    give_up,
    heads_of,
    mark_anchored,
    mark_final,
    note_refusal,
    note_send_failure,
    scans_of,
    seal_batch,
    unanchor,
)
from ledger_service.store.tables import BATCH_ANCHORED, BATCH_SEALED

log = structlog.get_logger(__name__)

DOCUMENT_TYPE = "application/json"
ALREADY_ANCHORED = "BatchAnchorAlreadyAnchored"
REFUSED_FOR_GOOD = frozenset({"BatchAnchorZeroCommitment", "BatchAnchorInvalidCount"})
"""Refusals that no retry can change: the same root, count and digest are sent every time."""


@dataclass(slots=True)
class TurnStats:
    sealed: int = 0
    anchored: int = 0
    reanchored: int = 0
    """Anchored batches a reorg sent back to sealed."""
    final: int = 0
    proved: int = 0
    """Returns moved to in transit by a proof of a batched scan."""
    reproved: int = 0
    """Of those, proofs sent again: a reorg had dropped the first after its batch was final."""
    failed: int = 0
    """Sends that failed (retried next turn)."""
    given_up: int = 0
    """Batches marked failed: the contract refused them for good."""

    @property
    def busy(self) -> bool:
        return bool(self.sealed or self.anchored or self.reanchored or self.final or self.given_up)


class Batcher:
    """Seals, stores and anchors the queued scans of one index on one chain."""

    def __init__(
        self,
        *,
        store: Store,
        chain: ChainContext,
        documents: DocumentStore,
        settings: Settings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if chain.batch_anchor is None:
            raise ConfigurationError(
                "the deployment has no BatchAnchor contract: deploy it (scripts/deploy.py) before starting the batcher"
            )
        self.store = store
        self.chain = chain
        self.anchor = chain.batch_anchor
        self.anchor_address = bytes.fromhex(str(chain.batch_anchor.address)[2:])
        self.documents = documents
        self.settings = settings
        self.clock = clock
        self.transit = (
            TransitProver(chain=chain, finality_depth=settings.finality_depth)
            if settings.batch_transit_proofs
            else None
        )
        self._sealed_here: set[int] = set()
        """Batches this process sealed and has not tried to send: no anchor of theirs can exist yet."""

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def turn(self) -> TurnStats:
        """Seals what is due, anchors what is sealed, follows what is anchored (see the module docstring)."""
        stats = TurnStats()
        self.seal_due(stats)
        self.anchor_sealed(stats)
        self.follow_anchored(stats)
        metrics.LAST_TURN.set(self.clock())
        return stats

    # ---- 1. seal ------------------------------------------------------------------------------------------

    def seal_due(self, stats: TurnStats) -> None:
        cutoff = self._now_ms() - int(self.settings.batch_seal_s * 1000)
        for batch_id in due_batches(self.store, opened_before_ms=cutoff):
            close_batch(self.store, batch_id)
            if self.seal(batch_id):
                stats.sealed += 1

    def seal(self, batch_id: int) -> bool:
        """Numbers, builds and records one full batch; False if another run sealed it already."""
        submitter, queued = scans_of(self.store, batch_id)
        submitter_raw = bytes.fromhex(submitter[2:])
        ids = {uri: "0x" + uri_item_id(uri).hex() for uri in dict.fromkeys(scan.item for scan in queued)}
        heads = {
            uri: ChainHead(seq, bytes.fromhex(leaf[2:]))
            for uri, (seq, leaf) in _by_uri(heads_of(self.store, list(ids.values())), ids).items()
        }
        builder = BatchBuilder(heads, submitter=submitter_raw)  # each leaf hashed once: to number and to seal
        for scan in queued:
            builder.add(
                item=scan.item,
                biz_step=BizStep(scan.biz_step),
                disposition=Disposition(scan.disposition),
                read_point=scan.read_point,
                time=scan.time,
                document=bytes.fromhex(scan.document[2:]),
                biz_transaction=bytes.fromhex(scan.biz_transaction[2:]),
            )
        document = builder.seal(chain_id=self.chain.chain_id, batch_anchor=self.anchor_address)
        data = batch_document.encode(document)
        moved = {ids[uri]: (head.seq, "0x" + head.hash.hex()) for uri, head in heads.items() if uri in ids}
        sealed = seal_batch(
            self.store,
            batch_id=batch_id,
            heads=moved,
            root="0x" + document.root.hex(),
            document_digest=cid_of_bytes(data).hex_digest,
            document=data,
            now_ms=self._now_ms(),
        )
        if sealed:
            metrics.BATCHES_SEALED.inc()
            self._sealed_here.add(batch_id)
            log.info("batch_sealed", batch=batch_id, scans=len(document.scans), root="0x" + document.root.hex())
        return sealed

    # ---- 2. anchor ----------------------------------------------------------------------------------------

    def anchor_sealed(self, stats: TurnStats) -> None:
        sealed = batches_in(self.store, BATCH_SEALED)
        for done, batch in enumerate(sealed):
            try:
                self._anchor(batch)
            except ContractRevertError as exc:
                stats.failed += 1
                metrics.ANCHOR_FAILURES.inc()
                if self._refused(batch, exc):
                    stats.given_up += 1
                    metrics.STUCK_BATCHES.set(0)
                else:
                    metrics.STUCK_BATCHES.set(len(sealed) - done)
                return  # in order; after a give-up the later batches are sealed again first
            except (LedgerError, requests.RequestException, Web3Exception, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                note_send_failure(self.store, batch_id=batch.id, problem=problem)
                log.warning("batch_anchor_failed", batch=batch.id, attempts=batch.attempts + 1, problem=problem)
                stats.failed += 1
                metrics.ANCHOR_FAILURES.inc()
                metrics.STUCK_BATCHES.set(len(sealed) - done)
                return  # in order: a later batch may continue the chains of this one's items
            stats.anchored += 1
        metrics.STUCK_BATCHES.set(0)

    def _refused(self, batch: BatchRow, exc: ContractRevertError) -> bool:
        """Counts a refusal by the contract; gives up on the batch (True) when the rule says so."""
        now_ms = self._now_ms()
        refusals = batch.refusals + 1
        since = now_ms if batch.refused_since is None else batch.refused_since
        waited_s = (now_ms - since) / 1000
        problem = f"the BatchAnchor contract refused the anchor: {exc}"
        log.warning("batch_anchor_refused", batch=batch.id, refusals=refusals, problem=problem)
        settings = self.settings
        if exc.error not in REFUSED_FOR_GOOD and (
            refusals < settings.batch_give_up_refusals or waited_s < settings.batch_give_up_s
        ):
            note_refusal(self.store, batch_id=batch.id, problem=problem, now_ms=now_ms)
            return False
        reason = (
            f"{problem} ({refusals} times over {waited_s:.0f} s; given up: its {batch.scan_count} scans are not "
            "anchored and will not be; send them again once the cause is fixed)"
        )
        resealed = give_up(self.store, batch_id=batch.id, problem=reason, now_ms=now_ms)
        metrics.BATCHES_FAILED.inc()
        log.error("batch_given_up", batch=batch.id, scans=batch.scan_count, problem=reason, resealed=resealed)
        return True

    def _anchor(self, batch: BatchRow) -> None:
        assert batch.document is not None
        assert batch.root is not None
        assert batch.document_digest is not None
        self.documents.put([batch.document], content_type=DOCUMENT_TYPE)
        submitter = to_checksum_address(batch.submitter)
        root = bytes.fromhex(batch.root[2:])
        fresh = batch.id in self._sealed_here
        self._sealed_here.discard(batch.id)
        if not fresh and self._is_anchored(submitter, root):
            self._found_anchored(batch)
            return
        sender = self.chain.sender_for(submitter)
        call = self.anchor.functions.anchorBatch(root, batch.scan_count, bytes.fromhex(batch.document_digest[2:]))
        try:
            sent = sender.send(call)
        except ContractRevertError as exc:
            if exc.error != ALREADY_ANCHORED:
                raise
            self._found_anchored(batch)
            return
        mark_anchored(
            self.store,
            batch_id=batch.id,
            tx_hash=sent.tx_hash,
            block_number=sent.block_number,
            block_hash=sent.block_hash,
            now_ms=self._now_ms(),
        )
        self._count_anchored(batch)
        log.info("batch_anchored", batch=batch.id, tx=sent.tx_hash, block=sent.block_number, gas=sent.gas_used)

    def _is_anchored(self, submitter: str, root: bytes) -> bool:
        try:
            return bool(self.anchor.functions.isAnchored(submitter, root).call(block_identifier="latest"))
        except (requests.RequestException, Web3Exception, OSError) as exc:
            raise RetryableError(f"cannot ask the node whether a batch is anchored: {exc}") from None

    def _found_anchored(self, batch: BatchRow) -> None:
        """The batch's anchor is on-chain already (sent before a crash, or mined late): counted from the head."""
        block = self.chain.w3.eth.get_block("latest")
        mark_anchored(
            self.store,
            batch_id=batch.id,
            tx_hash=batch.tx_hash,
            block_number=int(block["number"]),
            block_hash="0x" + bytes(block["hash"]).hex(),
            now_ms=self._now_ms(),
        )
        self._count_anchored(batch)
        log.info("batch_found_anchored", batch=batch.id, root=batch.root)

    def _count_anchored(self, batch: BatchRow) -> None:
        metrics.BATCHES_ANCHORED.inc()
        metrics.ANCHOR_LATENCY.observe(max(0.0, (self._now_ms() - batch.opened_at) / 1000))

    # ---- 3. follow ----------------------------------------------------------------------------------------

    def follow_anchored(self, stats: TurnStats) -> None:
        anchored = batches_in(self.store, BATCH_ANCHORED)
        if not anchored:
            return
        try:
            self._follow(anchored, stats)
        except (requests.RequestException, Web3Exception, OSError) as exc:
            raise RetryableError(f"cannot follow the anchored batches on the node: {exc}") from None

    def _follow(self, anchored: list[BatchRow], stats: TurnStats) -> None:
        w3 = self.chain.w3
        head = int(w3.eth.block_number)
        hashes: dict[int, str | None] = {}
        for batch in anchored:
            number = batch.anchor_block
            assert number is not None
            if number not in hashes:
                block = w3.eth.get_block(number) if number <= head else None
                hashes[number] = None if block is None else "0x" + bytes(block["hash"]).hex()
            if hashes[number] != batch.anchor_block_hash:
                self._after_reorg(batch, stats)
            elif number + self.settings.finality_depth <= head:
                if self.transit is not None and batch.document is not None:
                    proved = self.transit.prove(
                        batch_id=batch.id, document=batch.document, scan_count=batch.scan_count, head=head
                    )
                    stats.proved += proved.accepted
                    stats.reproved += proved.resent
                    if not self.transit.settled(batch.id, head=head):
                        continue  # watched until its proofs are as final as its anchor
                    self.transit.forget(batch.id)
                if mark_final(self.store, batch_id=batch.id):
                    stats.final += 1

    def _after_reorg(self, batch: BatchRow, stats: TurnStats) -> None:
        assert batch.root is not None
        problem = f"a reorg replaced block {batch.anchor_block}, which held the anchor"
        unanchor(self.store, batch_id=batch.id, problem=problem)
        if self._is_anchored(to_checksum_address(batch.submitter), bytes.fromhex(batch.root[2:])):
            self._found_anchored(batch)  # the new chain holds the anchor too, in another block
            return
        stats.reanchored += 1
        metrics.BATCHES_REORGED.inc()
        log.warning("batch_anchor_dropped", batch=batch.id, block=batch.anchor_block, tx=batch.tx_hash)


def _by_uri(heads: dict[str, tuple[int, str]], ids: dict[str, str]) -> dict[str, tuple[int, str]]:
    return {uri: heads[item_id] for uri, item_id in ids.items() if item_id in heads}
