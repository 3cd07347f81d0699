"""Fixtures for API tests: a real anvil with the contracts, an SQLite index kept current by an indexer
thread, the application, and one API key per role.

- ``api_env`` (module): :class:`ApiEnv` — a fresh anvil per test module (tests may move its clock),
  contracts deployed with tests/support/chain.py's roles plus CONSUMER_AGENT_ROLE for anvil account 9
  (the development relayer), a manifest file, an SQLite database in tmp, the indexer following it in a
  background thread, and the :class:`Settings` that point at all of it.
- ``client`` (module): a ``TestClient`` of ``create_app(api_env.settings)`` with the default routers
  (its lifespan ran: store and chain are open).
- ``keys`` (module): plaintext API keys by name: manufacturer, merchant, merchant2, carrier, inspector, arbiter (the
  on-chain accounts of tests/support/chain.py), auditor, admin. Send them with :func:`bearer`.

:func:`make_client` builds a client with other routers (e.g. test-only routes).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from eth_typing import ChecksumAddress
from fastapi import APIRouter
from fastapi.testclient import TestClient

from api.main import create_app, serving_app
from ledger_service.access import Role, create_api_key
from ledger_service.chain.artifacts import load_deployment
from ledger_service.indexer.decode import load_abis
from ledger_service.indexer.rpc import RetryPolicy, RpcClient
from ledger_service.indexer.sync import make_indexer
from ledger_service.settings import ANVIL_ACCOUNTS, DEV_RELAYER_ACCOUNT, Settings
from ledger_service.store.handle import Store
from tests.support.activity import write_manifest
from tests.support.chain import (
    ADMIN,
    ARBITER,
    ARTIFACTS,
    CARRIER,
    INSPECTOR,
    MANUFACTURER,
    MERCHANT,
    MERCHANT2,
    Anvil,
    Deployed,
    deploy_all,
    start_anvil,
)

RELAYER = DEV_RELAYER_ACCOUNT
KEY_ACCOUNTS: dict[str, tuple[Role, int | None]] = {
    "manufacturer": (Role.MANUFACTURER, MANUFACTURER),
    "merchant": (Role.MERCHANT, MERCHANT),
    "merchant2": (Role.MERCHANT, MERCHANT2),
    "carrier": (Role.CARRIER, CARRIER),
    "inspector": (Role.INSPECTOR, INSPECTOR),
    "arbiter": (Role.ARBITER, ARBITER),
    "auditor": (Role.AUDITOR, None),
    "admin": (Role.ADMIN, None),
}
"""The ``keys`` fixture's keys: name -> (role, index of the anvil account it acts for)."""


def bearer(key: str) -> dict[str, str]:
    """Headers that authenticate with API key ``key``."""
    return {"Authorization": f"Bearer {key}"}


def return_token(token: str) -> dict[str, str]:
    """Headers that authenticate with a consumer's return token."""
    return {"Authorization": f"ReturnToken {token}"}


class IndexerThread:
    """``ledger-indexer follow`` in a thread of the test process (stopped by :meth:`stop`)."""

    def __init__(self, settings: Settings) -> None:
        assert settings.deployment_file is not None
        self.store = Store.open(settings.database_url)
        self.rpc = RpcClient(str(settings.rpc_url), timeout=10.0, retry=RetryPolicy(attempts=3, base_delay=0.05))
        self.indexer = make_indexer(
            store=self.store,
            rpc=self.rpc,
            deployment=load_deployment(settings.deployment_file),
            abis=load_abis(settings.artifacts_dir),
            finality_depth=settings.finality_depth,
        )
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-indexer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for _ in self.indexer.follow(stop=self._stop, poll_interval=0.02):
                pass
        except BaseException as exc:  # surfaced by ApiEnv.wait_indexed and at teardown
            self.error = exc

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.rpc.close()
        self.store.close()


@dataclass
class ApiEnv:
    """Everything an API test runs against."""

    anvil: Anvil
    deployed: Deployed
    manifest: Path
    settings: Settings
    store: Store
    """A Store on the test database, for tests that read or seed it directly."""
    indexer: IndexerThread
    accounts: list[ChecksumAddress] = field(default_factory=list)

    def ledger_variables(self) -> dict[str, str]:
        """The ``LEDGER_*`` variables that make a process of the service use this env's chain, index and
        documents."""
        return {
            "LEDGER_RPC_URL": self.anvil.url,
            "LEDGER_DATABASE_URL": self.settings.database_url,
            "LEDGER_DEPLOYMENT_FILE": str(self.manifest),
            "LEDGER_ARTIFACTS_DIR": str(self.settings.artifacts_dir),
            "LEDGER_DOCUMENTS_DIR": str(self.settings.documents_dir),
        }

    def wait_indexed(self, block: int | None = None, timeout: float = 20.0) -> None:
        """Waits until the index reached ``block`` (default: the chain's head)."""
        import time

        target = self.deployed.w3.eth.block_number if block is None else block
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.indexer.error is not None:
                raise RuntimeError(f"the indexer stopped: {self.indexer.error!r}")
            checkpoint = self.store.checkpoint()
            if checkpoint is not None and checkpoint.number >= target:
                return
            time.sleep(0.02)
        raise TimeoutError(f"the index did not reach block {target} within {timeout} s")


def _grant_relayer(deployed: Deployed) -> None:
    ledger = deployed.ledger.functions
    role = ledger.CONSUMER_AGENT_ROLE().call()
    relayer = ANVIL_ACCOUNTS[RELAYER][0]
    tx = ledger.grantRole(role, relayer).transact({"from": deployed.accounts[ADMIN]})
    deployed.w3.eth.wait_for_transaction_receipt(tx)


@pytest.fixture(scope="module")
def api_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    if not (ARTIFACTS / "ReturnsEscrow.json").exists():
        pytest.fail("contracts are not compiled: run scripts/bootstrap.sh")
    tmp = tmp_path_factory.mktemp("api")
    node = start_anvil()
    try:
        deployed = deploy_all(node)
        _grant_relayer(deployed)
        manifest = write_manifest(deployed, tmp / "deployments" / f"{deployed.w3.eth.chain_id}.json")
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            rpc_url=node.url,  # type: ignore[arg-type]
            database_url=f"sqlite:///{tmp / 'api.sqlite3'}",
            deployment_file=manifest,
            artifacts_dir=ARTIFACTS,
            wait_timeout_s=20.0,
            documents_dir=tmp / "documents",
        )
        store = Store.open(settings.database_url)
        indexer = IndexerThread(settings)
        env = ApiEnv(
            anvil=node,
            deployed=deployed,
            manifest=manifest,
            settings=settings,
            store=store,
            indexer=indexer,
            accounts=deployed.accounts,
        )
        try:
            yield env
        finally:
            indexer.stop()
            store.close()
        if indexer.error is not None:
            raise RuntimeError(f"the indexer thread failed: {indexer.error!r}")
    finally:
        node.stop()


@contextmanager
def make_client(
    env: ApiEnv, routers: Sequence[APIRouter] | None = None, **client_options: bool
) -> Iterator[TestClient]:
    """A TestClient of ``create_app(env.settings, routers=routers)`` (default routers when None) as it is served
    (:func:`api.main.serving_app`), started."""
    served = serving_app(create_app(env.settings, routers=routers))
    with TestClient(served, **client_options) as client:  # type: ignore[arg-type]
        yield client


@pytest.fixture(scope="module")
def client(api_env: ApiEnv) -> Iterator[TestClient]:
    with make_client(api_env) as test_client:
        yield test_client


def make_keys(env: ApiEnv) -> dict[str, str]:
    """One API key per name of :data:`KEY_ACCOUNTS`, plaintext, stored in ``env``'s database."""
    made = {}
    for name, (role, index) in KEY_ACCOUNTS.items():
        address = None if index is None else env.accounts[index]
        made[name] = create_api_key(store=env.store, role=role, name=f"test {name}", actor_address=address).plaintext
    return made


@pytest.fixture(scope="module")
def keys(api_env: ApiEnv) -> dict[str, str]:
    return make_keys(api_env)
