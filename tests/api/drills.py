"""What the recovery drills share: a chain deployed on an anvil whose state lives in a file, the ``LEDGER_*``
variables of its index, a merchant's API key, a real ``ledger-indexer follow`` process, and polling."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3

from ledger_service.access import Role, create_api_key
from ledger_service.store.handle import Store
from tests.api.conftest import _grant_relayer, bearer
from tests.api.flows import LOCATION
from tests.support.activity import write_manifest
from tests.support.chain import ARTIFACTS, MANUFACTURER, MERCHANT, ROOT, Anvil, Deployed, deploy_all, start_anvil

POLL_S = 0.2


def start_anvil_at(port: int, state: Path) -> Anvil:
    """An anvil on ``port`` whose state lives in ``state`` (loaded if it exists, dumped when it stops)."""
    return start_anvil("--state", str(state), port=port)


def until(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """``check()``'s first truthy result, polled every :data:`POLL_S`; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(POLL_S)
    raise AssertionError(f"not within {timeout:g} s: {what}")


@dataclass
class DrillChain:
    """The contracts on ``node``, items registered for the merchant, and the service's variables."""

    node: Anvil
    deployed: Deployed
    items: list[str]
    ledger: dict[str, str]
    """``LEDGER_*``: the node, the index, the manifest, artifacts and documents."""

    @property
    def merchant(self) -> str:
        return str(self.deployed.accounts[MERCHANT])

    def merchant_headers(self, store: Store) -> dict[str, str]:
        key = create_api_key(store=store, role=Role.MERCHANT, name="drill", actor_address=self.merchant)
        return bearer(key.plaintext)


def drill_chain(node: Anvil, tmp_path: Path, database_url: str, *, items: int = 2) -> DrillChain:
    deployed = deploy_all(node)
    _grant_relayer(deployed)
    manifest = write_manifest(deployed, tmp_path / "deployments" / "31337.json")
    registered = [_register(deployed) for _ in range(items)]
    ledger = {
        "LEDGER_RPC_URL": node.url,
        "LEDGER_DATABASE_URL": database_url,
        "LEDGER_DEPLOYMENT_FILE": str(manifest),
        "LEDGER_ARTIFACTS_DIR": str(ARTIFACTS),
        "LEDGER_DOCUMENTS_DIR": str(tmp_path / "documents"),
    }
    return DrillChain(node=node, deployed=deployed, items=registered, ledger=ledger)


def _register(deployed: Deployed) -> str:
    uri = f"urn:epc:id:sgtin:0614141.107346.drill-{secrets.token_hex(4)}"
    merchant, manufacturer = deployed.accounts[MERCHANT], deployed.accounts[MANUFACTURER]
    tx = deployed.ledger.functions.registerItem(uri, 10614141007346, merchant, b"\x22" * 32, LOCATION).transact(
        {"from": manufacturer}
    )
    deployed.w3.eth.wait_for_transaction_receipt(tx)
    return "0x" + Web3.keccak(text=uri).hex().removeprefix("0x")


def sale(item_id: str) -> dict[str, Any]:
    """A sale's body for ``item_id`` to a new consumer."""
    return {"item_id": item_id, "consumer": Account.create().address, "price": "50000000", "order_ref": "drill"}


@contextmanager
def indexer_process(ledger: dict[str, str], log: Path, *options: str) -> Iterator[subprocess.Popen[bytes]]:
    """``ledger-indexer [options] follow`` with ``ledger``'s variables, its output in ``log``; stopped with
    SIGTERM at the end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")} | ledger | {"PYTHONPATH": str(ROOT)}
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ledger_service.indexer.cli", *options, "follow", "--poll-interval", "0.1"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
