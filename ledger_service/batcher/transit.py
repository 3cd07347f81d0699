"""Proves a return's first carrier scan from its anchored batch, so a carrier that only batches still moves the
return to in transit and triggers its fast refund (issue #23; ``ReturnsEscrow.markInTransitByProof``).

A batched scan counts when it is a carrier step (``departing``, ``arriving``, ``transporting``) with disposition
``in_transit`` and names the return's id as its business transaction: that is how a carrier says which return a
parcel is. Once the scan's batch is final (:meth:`Batcher.follow_anchored`), the batcher sends the scan's leaf,
root and Merkle proof from the submitter's account for each such scan whose return the escrow shows Authorized
for that item; the escrow checks everything again.

Invariants: the proofs of a batch are sent before the batch is marked final, so a crash between the two sends
them again, and the escrow refuses the second (the return is no longer Authorized): no return moves or pays
twice; a proof the escrow refuses for good (a revoked carrier, a scan dated before the authorization) is logged
and counted, never retried; a node that fails leaves the batch anchored, retried next turn.
"""

from __future__ import annotations

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


class TransitProver:
    """Sends ``markInTransitByProof`` for the in-transit scans of final batches that name an Authorized return."""

    def __init__(self, *, chain: ChainContext) -> None:
        if chain.batch_anchor is None:
            raise ValueError("TransitProver needs the deployment's BatchAnchor")
        self.chain = chain
        self.anchor = to_checksum_address(str(chain.batch_anchor.address))

    def prove(self, *, batch_id: int, document: bytes, scan_count: int) -> int:
        """Sends the batch's proofs; returns how many the escrow accepted."""
        if not may_prove(document, scan_count):
            return 0
        sealed = batch_document.decode(document)
        positions = transit_positions(sealed)
        if not positions:
            return 0
        tree = sealed.tree()
        submitter = to_checksum_address(sealed.submitter)
        sender = self.chain.sender_for(submitter)
        accepted = 0
        for i in positions:
            scan = sealed.scans[i]
            if not self._awaits_scan(sealed, i):  # asked per scan: an earlier one may have just moved it
                continue
            leaf = (*scan.leaf_values(sealed.submitter)[:-1], submitter)
            call = self.chain.escrow.functions.markInTransitByProof(
                scan.biz_transaction, self.anchor, leaf, sealed.root, tree.proof(i)
            )
            return_id = "0x" + scan.biz_transaction.hex()
            try:
                sent = sender.send(call)
            except ContractRevertError as exc:
                metrics.TRANSIT_PROOFS.labels(outcome="refused").inc()
                log.warning("transit_proof_refused", batch=batch_id, position=i, return_id=return_id, error=str(exc))
                continue
            accepted += 1
            metrics.TRANSIT_PROOFS.labels(outcome="accepted").inc()
            log.info("transit_proved", batch=batch_id, position=i, return_id=return_id, tx=sent.tx_hash)
        return accepted

    def _awaits_scan(self, sealed: BatchDocument, position: int) -> bool:
        """Whether the escrow shows the scan's return Authorized, for the scan's item (a cheap call that spares
        a send the escrow would refuse: most scans naming a return come after its first one)."""
        scan = sealed.scans[position]
        record = self.chain.escrow.functions.returnOf(scan.biz_transaction).call(block_identifier="latest")
        return bytes(record[0]) == scan.item_id and int(record[_STATE_FIELD]) == ReturnState.AUTHORIZED
