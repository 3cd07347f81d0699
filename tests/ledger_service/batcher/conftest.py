"""Fixtures of the batcher tests: the indexer tests' fresh anvil with the contracts (``chain``), a batcher on it
writing into the index's database, and a way to queue scans as ``POST /v1/scans`` does."""

from __future__ import annotations

from pathlib import Path

from ledger_service.batcher import Batcher
from ledger_service.chain.signers import connect_chain
from ledger_service.core.codes import BizStep, Disposition
from ledger_service.documents.local import LocalDocumentStore
from ledger_service.settings import Settings
from ledger_service.store import Store
from ledger_service.store.scan_queue import QueuedScan, Receipt, enqueue_scans
from tests.ledger_service.indexer.conftest import Chain, chain, procs
from tests.support.chain import ARTIFACTS, CARRIER

__all__ = ["chain", "procs"]

ZERO = "0x" + "00" * 32


def batcher_settings(chain: Chain, database_url: str, documents: Path, **values: object) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        rpc_url=chain.node.url,  # type: ignore[arg-type]
        database_url=database_url,
        deployment_file=chain.manifest,
        artifacts_dir=ARTIFACTS,
        documents_dir=documents,
        **values,  # type: ignore[arg-type]
    )


def make_batcher(chain: Chain, store: Store, store_url: str, documents: Path, **values: object) -> Batcher:
    settings = batcher_settings(chain, store_url, documents, **values)
    return Batcher(
        store=store, chain=connect_chain(settings), documents=LocalDocumentStore(documents), settings=settings
    )


def queue(
    chain: Chain,
    store: Store,
    items: list[str],
    *,
    step: BizStep = BizStep.DEPARTING,
    sender: int = CARRIER,
    max_scans: int = 1000,
) -> list[Receipt]:
    """One scan of each item, acknowledged as the API does (dated at the chain's head)."""
    at = int(chain.deployed.w3.eth.get_block("latest")["timestamp"])
    scans = [
        QueuedScan(
            item=item,
            biz_step=int(step),
            disposition=int(Disposition.IN_TRANSIT),
            read_point="0614141.00777.0",
            time=at,
            document=ZERO,
            biz_transaction=ZERO,
        )
        for item in items
    ]
    return enqueue_scans(
        store,
        submitter=chain.deployed.accounts[sender],
        key_id=1,
        scans=scans,
        max_scans=max_scans,
        now_ms=at * 1000,
    )
