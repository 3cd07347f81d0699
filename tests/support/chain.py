"""Fixtures for service tests against a real anvil.

`anvil` starts a fresh anvil on a free loopback port (one per test session,
or per test with `fresh_anvil`); `deployed` deploys ProvenanceLedger,
ReturnsEscrow, ExchangeEscrow and DevStablecoin from the compiled artifacts with web3 and
grants the standard roles to anvil's default accounts.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_typing import ChecksumAddress
from web3 import Web3
from web3.contract import Contract

from ledger_service.chain.artifacts import load_artifact

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "build" / "contracts"
# The flags scripts/lib.sh gives every anvil (ANVIL_NO_DISK_STATES): no block states written to disk.
ANVIL_NO_DISK_STATES = ("--max-persisted-states", "0")

# anvil's default accounts (mnemonic "test test ... junk"), by role in our tests.
ADMIN, MANUFACTURER, MERCHANT, CARRIER, INSPECTOR, ARBITER, CONSUMER, CONSUMER2, MERCHANT2 = range(9)


def anvil_binary() -> str:
    found = shutil.which("anvil")
    if found:
        return found
    for platform in ("linux-amd64", "linux-arm64"):
        candidate = ROOT / "node_modules" / "@foundry-rs" / f"anvil-{platform}" / "bin" / "anvil"
        if candidate.exists():
            return str(candidate)
    raise RuntimeError("anvil not found: run scripts/bootstrap.sh")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Anvil:
    """A running anvil process."""

    url: str
    port: int
    process: subprocess.Popen[bytes]

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        w3 = Web3(Web3.HTTPProvider(self.url))
        response = w3.provider.make_request(method, params or [])  # type: ignore[arg-type]
        if "error" in response:
            raise RuntimeError(f"{method}: {response['error']}")
        return response["result"]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_anvil(*extra: str, port: int | None = None) -> Anvil:
    """A new anvil on ``port`` (default: a free one) with the tests' flags and ``extra``."""
    port = free_port() if port is None else port
    args = [anvil_binary(), "--port", str(port), "--silent", "--gas-limit", "30000000", "--base-fee", "0"]
    args += [*ANVIL_NO_DISK_STATES, *extra]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return Anvil(url=url, port=port, process=process)
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"anvil exited with code {process.returncode}") from None
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("anvil did not start within 20 s")


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    node = start_anvil()
    yield node
    node.stop()


@pytest.fixture
def fresh_anvil() -> Iterator[Anvil]:
    node = start_anvil()
    yield node
    node.stop()


@dataclass
class Deployed:
    """Contracts deployed on an anvil, with the accounts that hold each role."""

    w3: Web3
    ledger: Contract
    escrow: Contract
    token: Contract
    accounts: list[ChecksumAddress]
    deploy_block: int
    exchange: Contract
    anchor: Contract
    """BatchAnchor, deployed last so that the other contracts keep their addresses."""


def deploy_contract(w3: Web3, name: str, *args: Any, sender: str) -> Contract:
    artifact = load_artifact(name, ARTIFACTS)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    tx_hash = factory.constructor(*args).transact({"from": sender})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    address = receipt["contractAddress"]
    assert address is not None, f"{name}'s deployment created no contract"
    return w3.eth.contract(address=address, abi=artifact.abi)


def deploy_all(node: Anvil) -> Deployed:
    w3 = Web3(Web3.HTTPProvider(node.url))
    accounts = list(w3.eth.accounts)
    admin = accounts[ADMIN]
    deploy_block = w3.eth.block_number + 1
    ledger = deploy_contract(w3, "ProvenanceLedger", admin, sender=admin)
    escrow = deploy_contract(w3, "ReturnsEscrow", ledger.address, sender=admin)
    token = deploy_contract(w3, "DevStablecoin", admin, sender=admin)
    exchange = deploy_contract(w3, "ExchangeEscrow", ledger.address, escrow.address, sender=admin)
    grants = [
        ("MANUFACTURER_ROLE", MANUFACTURER),
        ("MERCHANT_ROLE", MERCHANT),
        ("MERCHANT_ROLE", MERCHANT2),
        ("CARRIER_ROLE", CARRIER),
        ("INSPECTOR_ROLE", INSPECTOR),
        ("ARBITER_ROLE", ARBITER),
    ]
    for role, index in grants:
        role_id = getattr(ledger.functions, role)().call()
        ledger.functions.grantRole(role_id, accounts[index]).transact({"from": admin})
    ledger.functions.grantRole(ledger.functions.RECORDER_ROLE().call(), escrow.address).transact({"from": admin})
    ledger.functions.grantRole(ledger.functions.EXCHANGE_ROLE().call(), exchange.address).transact({"from": admin})
    for index in (MERCHANT, MERCHANT2):
        token.functions.mint(accounts[index], 10**15).transact({"from": admin})
        token.functions.approve(escrow.address, 2**256 - 1).transact({"from": accounts[index]})
    anchor = deploy_contract(w3, "BatchAnchor", ledger.address, sender=admin)
    role = ledger.functions.BATCH_ANCHOR_ROLE().call()
    granted = ledger.functions.grantRole(role, anchor.address).transact({"from": admin})
    w3.eth.wait_for_transaction_receipt(granted)
    return Deployed(
        w3=w3,
        ledger=ledger,
        escrow=escrow,
        token=token,
        accounts=accounts,
        deploy_block=deploy_block,
        exchange=exchange,
        anchor=anchor,
    )


@pytest.fixture(scope="session")
def deployed(anvil: Anvil) -> Deployed:
    if not (ARTIFACTS / "ReturnsEscrow.json").exists():
        pytest.fail("contracts are not compiled: run scripts/bootstrap.sh")
    return deploy_all(anvil)
