"""Fixtures of the verification tests: a real history on anvil, indexed once, and a fresh copy per test.

``audited`` (module): a fresh anvil with the contracts, the returns lifecycle of
tests/support/activity.py (sales, returns, roles), and one *subject* item with
five events: commissioning (seq 0), packing with a document (seq 1), departing
and arriving by the carrier (seq 2, 3, each in its own block), inspecting with
the same document (seq 4). Everything is indexed into a golden SQLite file.
``index`` (function): a :class:`Store` on a copy of that file, so a test may
tamper with its rows freely.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from web3 import Web3

from ledger_service.chain.artifacts import load_deployment
from ledger_service.chain.signers import ChainContext, connect_chain
from ledger_service.core.codes import BizStep, Disposition
from ledger_service.documents.local import LocalDocumentStore
from ledger_service.indexer.decode import load_abis
from ledger_service.indexer.rpc import RetryPolicy, RpcClient
from ledger_service.indexer.sync import make_indexer
from ledger_service.settings import Settings
from ledger_service.store.handle import Store
from tests.support.activity import HUB, LOCATION, ZERO32, Activity, write_manifest
from tests.support.chain import ARTIFACTS, CARRIER, INSPECTOR, MANUFACTURER, Anvil, Deployed, deploy_all, start_anvil

DOCUMENT = b'{"grade":"A","notes":"packed and sealed"}'


@dataclass
class Audited:
    """The chain, the golden index file and the subject item."""

    node: Anvil
    deployed: Deployed
    settings: Settings
    chain: ChainContext
    golden: Path
    subject: str
    """The subject item's id (0x + 64 hex)."""
    subject_uri: str
    document_digest: str
    """The digest (0x + 64 hex) of :data:`DOCUMENT` that seq 1 and seq 4 reference."""
    lifecycle_items: list[str]

    def index_to_head(self, url: str) -> None:
        """Indexes the node's whole chain into the database at ``url``."""
        index_chain(self.settings, url)


def index_chain(settings: Settings, url: str, *, finality: int = 12) -> None:
    assert settings.deployment_file is not None
    store = Store.open(url)
    rpc = RpcClient(str(settings.rpc_url), retry=RetryPolicy(attempts=5, base_delay=0.05))
    try:
        indexer = make_indexer(
            store=store,
            rpc=rpc,
            deployment=load_deployment(settings.deployment_file),
            abis=load_abis(ARTIFACTS),
            finality_depth=finality,
        )
        for _ in indexer.sync():
            pass
    finally:
        rpc.close()
        store.close()


def _record(activity: Activity, sender: int, item: bytes, step: int, disposition: int, **fields: bytes) -> None:
    ledger = activity.d.ledger.functions
    event = (
        item,
        step,
        disposition,
        fields.get("location", ZERO32),
        fields.get("document", ZERO32),
        fields.get("biz_transaction", ZERO32),
    )
    activity.send(ledger.recordEvent(event), sender)


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Audited]:
    if not (ARTIFACTS / "ReturnsEscrow.json").exists():
        pytest.fail("contracts are not compiled: run scripts/bootstrap.sh")
    tmp = tmp_path_factory.mktemp("verification")
    node = start_anvil()
    try:
        deployed = deploy_all(node)
        activity = Activity(deployed)
        activity.lifecycle()
        lifecycle_items = ["0x" + bytes(i).hex() for i in activity.items]
        (subject,) = activity.register(1)
        documents = LocalDocumentStore(tmp / "documents")
        digest = documents.put([DOCUMENT], content_type="application/json").cid.digest
        _record(activity, MANUFACTURER, subject, BizStep.PACKING, Disposition.ACTIVE, document=digest)
        _record(activity, CARRIER, subject, BizStep.DEPARTING, Disposition.IN_TRANSIT, location=HUB)
        _record(activity, CARRIER, subject, BizStep.ARRIVING, Disposition.IN_TRANSIT, location=LOCATION)
        _record(activity, INSPECTOR, subject, BizStep.INSPECTING, Disposition.CONFORMANT, document=digest)
        manifest = write_manifest(deployed, tmp / "deployments" / "31337.json")
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            rpc_url=node.url,  # type: ignore[arg-type]
            database_url=f"sqlite:///{tmp / 'golden.sqlite3'}",
            deployment_file=manifest,
            artifacts_dir=ARTIFACTS,
            documents_dir=tmp / "documents",
        )
        index_chain(settings, settings.database_url)
        uri = _uri_of(deployed, subject)
        yield Audited(
            node=node,
            deployed=deployed,
            settings=settings,
            chain=connect_chain(settings),
            golden=tmp / "golden.sqlite3",
            subject="0x" + bytes(subject).hex(),
            subject_uri=uri,
            document_digest="0x" + digest.hex(),
            lifecycle_items=lifecycle_items,
        )
    finally:
        node.stop()


def _uri_of(deployed: Deployed, item: bytes) -> str:
    logs = deployed.ledger.events.ItemRegistered().get_logs(from_block=0, argument_filters={"itemId": item})
    uri = str(logs[0]["args"]["uri"])
    assert Web3.keccak(text=uri) == item
    return uri


@pytest.fixture
def index(audited: Audited, tmp_path: Path) -> Iterator[Store]:
    """A Store on a private copy of the golden index."""
    copy = tmp_path / "index.sqlite3"
    shutil.copyfile(audited.golden, copy)
    store = Store.open(f"sqlite:///{copy}")
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def documents(tmp_path: Path) -> LocalDocumentStore:
    """A private document store holding :data:`DOCUMENT`."""
    store = LocalDocumentStore(tmp_path / "documents")
    store.put([DOCUMENT], content_type="application/json")
    return store
