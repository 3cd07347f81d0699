"""Batched scans for tests: scans numbered in their items' chains as ledger-batcher numbers them, dated at the
chain's head (a scan dated after its anchor's block is refused), sealed into a document for the BatchAnchor."""

from __future__ import annotations

from ledger_service.core import batch_document
from ledger_service.core.batch_document import BatchDocument, BatchedScan, ChainHead
from ledger_service.core.codes import BizStep, Disposition
from tests.support.chain import Deployed


def next_scans(
    deployed: Deployed,
    heads: dict[str, ChainHead],
    items: list[str],
    *,
    sender: int,
    step: BizStep,
    age_s: int = 0,
) -> list[BatchedScan]:
    """One in-transit scan of each item by account ``sender``, continuing ``heads`` (moved past them), dated
    ``age_s`` before the chain's head."""
    at = int(deployed.w3.eth.get_block("latest")["timestamp"]) - age_s
    return [
        batch_document.append_scan(
            heads,
            submitter=bytes.fromhex(deployed.accounts[sender][2:]),
            item=item,
            biz_step=step,
            disposition=Disposition.IN_TRANSIT,
            read_point="0614141.00777.0",
            time=at,
        )
        for item in items
    ]


def seal_for(deployed: Deployed, scans: list[BatchedScan], *, sender: int) -> BatchDocument:
    """The document of ``scans`` for ``sender`` on the deployment's BatchAnchor (anvil's chain id)."""
    return batch_document.seal(
        chain_id=31337,
        batch_anchor=bytes.fromhex(deployed.anchor.address[2:]),
        submitter=bytes.fromhex(deployed.accounts[sender][2:]),
        scans=scans,
    )
