"""Proves a return's first carrier scan from its anchored batch, so a carrier that only batches still moves the
return to in transit and triggers its fast refund (issue #23; ``ReturnsEscrow.markInTransitByProof``).

A batched scan counts when it is a carrier step (``departing``, ``arriving``, ``transporting``) with disposition
``in_transit`` and names the return's id as its business transaction: that is how a carrier says which return a
parcel is. Once the scan's batch is final (:meth:`Batcher.follow_anchored`), the batcher sends the scan's leaf,
root and Merkle proof from the submitter's account for each such scan whose return the escrow shows Authorized
for that item; the escrow checks everything again.

A proof's own transaction can be dropped by a reorg after its batch's anchor is final (the proof goes out in a
later block). So a batch with such scans is **watched** until its proofs are final too: it stays ``anchored``
until ``LEDGER_FINALITY_DEPTH`` blocks after its last proof was mined (or after this process first saw its anchor
final, when it sent none: it cannot know what a process before a restart sent), and on every turn meanwhile the
returns its scans name are asked again; one that the escrow shows Authorized again (its proof dropped) is proved
again, counted as ``resent``.

Invariants: the proofs of a batch are sent before the batch is marked final, so a crash between the two sends
them again, and the escrow refuses the second (the return is no longer Authorized): no return moves or pays
twice, resends included; a proof the escrow refuses for good (a revoked carrier, a scan dated before the
authorization) is logged and counted, not retried by this process; a node that fails leaves the batch anchored,
retried next turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog
from eth_utils.address import to_checksum_address

from ledger_service.chain.reverts import ContractRevertError
from ledger_service.chain.signers import ChainContext
from ledger_service.core import batch_document
from ledger_service.core.batch_document import BatchDocument
from ledger_service.core.codes import CARRIER_STEPS, Disposition, ReturnState
from ledger_service.metrics import batcher as metrics

log = structlog.get_logger(__name__)

ZERO32 = bytes(32)
_NO_TRANSACTION = b'"bizTransaction":"0x' + b"0" * 64 + b'"'
"""How the canonical document writes a scan without a business transaction (most of them)."""
_STATE_FIELD = 6
"""``state``'s place in ``returnOf``'s ReturnRecord tuple."""


def transit_positions(document: BatchDocument) -> list[int]:
    """The places of the scans that may prove a return's first carrier scan (see the module docstring)."""
    return [
        i
        for i, scan in enumerate(document.scans)
        if scan.biz_step in CARRIER_STEPS
        and scan.disposition == Disposition.IN_TRANSIT
        and scan.biz_transaction != ZERO32
    ]


def may_prove(data: bytes, scan_count: int) -> bool:
    """Whether a canonical batch document may hold such a scan, without decoding it: only if some scan names a
    business transaction (decoding checks every scan, too dear for the many batches that name none)."""
    return data.count(_NO_TRANSACTION) < scan_count


@dataclass(frozen=True, slots=True)
class _Proof:
    """One scan's ``markInTransitByProof`` arguments, decoded once per watched batch."""

    position: int
    return_id: bytes
    item_id: bytes
    leaf: tuple[object, ...]
    proof: list[bytes]


@dataclass(slots=True)
class _Watched:
    """A final-anchored batch whose proofs are not final yet (see the module docstring)."""

    submitter: str
    root: bytes
    proofs: list[_Proof]
    since: int
    """The block its proofs count from: the last one's, or the head when the watch began."""
    sent: set[int] = field(default_factory=set)
    """Positions whose proof this process saw mined."""


@dataclass(frozen=True, slots=True)
class Proved:
    """What one :meth:`TransitProver.prove` sent: proofs accepted, and among them the ones sent again because
    a reorg dropped the first."""

    accepted: int = 0
    resent: int = 0


class TransitProver:
    """Sends ``markInTransitByProof`` for the in-transit scans of final batches that name an Authorized return,
    and watches them until they are final themselves (see the module docstring)."""

    def __init__(self, *, chain: ChainContext, finality_depth: int) -> None:
        if chain.batch_anchor is None:
            raise ValueError("TransitProver needs the deployment's BatchAnchor")
        self.chain = chain
        self.anchor = to_checksum_address(str(chain.batch_anchor.address))
        self.finality_depth = finality_depth
        self._watched: dict[int, _Watched] = {}

    def prove(self, *, batch_id: int, document: bytes, scan_count: int, head: int) -> Proved:
        """Sends the proofs of a batch whose anchor is final (again, for one a reorg dropped)."""
        watched = self._watched.get(batch_id)
        if watched is None:
            watched = self._watch(document, scan_count, head)
            if watched is None:
                return Proved()
            self._watched[batch_id] = watched
        sender = self.chain.sender_for(watched.submitter)
        accepted = resent = 0
        for proof in list(watched.proofs):
            if not self._awaits_scan(proof):  # asked per scan: an earlier one may have just moved it
                continue
            call = self.chain.escrow.functions.markInTransitByProof(
                proof.return_id, self.anchor, proof.leaf, watched.root, proof.proof
            )
            said = log.bind(batch=batch_id, position=proof.position, return_id="0x" + proof.return_id.hex())
            try:
                sent = sender.send(call)
            except ContractRevertError as exc:
                watched.proofs.remove(proof)
                metrics.TRANSIT_PROOFS.labels(outcome="refused").inc()
                said.warning("transit_proof_refused", error=str(exc))
                continue
            accepted += 1
            watched.since = max(watched.since, sent.block_number)
            if proof.position in watched.sent:
                resent += 1
                metrics.TRANSIT_PROOFS.labels(outcome="resent").inc()
                said.warning("transit_proof_resent", tx=sent.tx_hash)  # a reorg dropped the first
            else:
                watched.sent.add(proof.position)
                metrics.TRANSIT_PROOFS.labels(outcome="accepted").inc()
                said.info("transit_proved", tx=sent.tx_hash)
        return Proved(accepted, resent)

    def settled(self, batch_id: int, *, head: int) -> bool:
        """Whether the batch's proofs are final (True for a batch with none): it may be marked final."""
        watched = self._watched.get(batch_id)
        return watched is None or watched.since + self.finality_depth <= head

    def forget(self, batch_id: int) -> None:
        """The batch was marked final: its proofs are no longer watched."""
        self._watched.pop(batch_id, None)

    def _watch(self, document: bytes, scan_count: int, head: int) -> _Watched | None:
        """The batch's proofs, or None when no scan of it may prove a return."""
        if not may_prove(document, scan_count):
            return None
        sealed = batch_document.decode(document)
        positions = transit_positions(sealed)
        if not positions:
            return None
        tree = sealed.tree()
        submitter = to_checksum_address(sealed.submitter)
        proofs = [
            _Proof(
                position=i,
                return_id=sealed.scans[i].biz_transaction,
                item_id=sealed.scans[i].item_id,
                leaf=(*sealed.scans[i].leaf_values(sealed.submitter)[:-1], submitter),
                proof=tree.proof(i),
            )
            for i in positions
        ]
        return _Watched(submitter=submitter, root=sealed.root, proofs=proofs, since=head)

    def _awaits_scan(self, proof: _Proof) -> bool:
        """Whether the escrow shows the scan's return Authorized, for the scan's item (a cheap call that spares
        a send the escrow would refuse: most scans naming a return come after its first one)."""
        record = self.chain.escrow.functions.returnOf(proof.return_id).call(block_identifier="latest")
        return bytes(record[0]) == proof.item_id and int(record[_STATE_FIELD]) == ReturnState.AUTHORIZED
