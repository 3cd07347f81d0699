"""The relayer against a real anvil: dropped and stuck transactions, fee spikes and the cap, confirmations,
and two processes sending with one signer through the database's nonce book."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_typing import HexStr
from prometheus_client import REGISTRY
from web3 import Web3

from ledger_service.chain.artifacts import load_artifact
from ledger_service.chain.nonces import LocalNonceBook, SentRecord
from ledger_service.chain.reverts import RevertDecoder
from ledger_service.chain.sender import FeeAboveCapError, SentTx, TxSender
from ledger_service.core.hashchain import ZERO_HASH
from ledger_service.core.networks import GWEI, default_fee_policy
from ledger_service.settings import ANVIL_ACCOUNTS
from ledger_service.store.handle import Store
from ledger_service.store.sent_transactions import SentTransactions
from tests.support.activity import write_manifest
from tests.support.chain import ARTIFACTS, MANUFACTURER, MERCHANT, Anvil, Deployed, deploy_all

LOCATION = b"0614141.00777.0".ljust(32, b"\0")
MANUFACTURER_KEY = ANVIL_ACCOUNTS[1][1]
QUICK = replace(default_fee_policy(), stuck_after_s=1.0, receipt_timeout_s=60.0)
"""Stuck after a second: the tests make transactions stuck on purpose."""


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _replaced() -> float:
    # stuck (still in the pool, replaced with bumped fees) or dropped (anvil may evict a transaction the base
    # fee now excludes: sent again, priced anew): either way a new transaction of the same nonce
    return _sample("ledger_tx_replaced_total", reason="stuck") + _sample("ledger_tx_replaced_total", reason="dropped")


def _sender(d: Deployed, **options: Any) -> TxSender:
    abis = [load_artifact(n, ARTIFACTS).abi for n in ("ProvenanceLedger", "ReturnsEscrow")]
    values: dict[str, Any] = {"policy": QUICK, "poll_s": 0.05, **options}
    return TxSender(w3=d.w3, account=Account.from_key(MANUFACTURER_KEY), decoder=RevertDecoder(abis), **values)


def _register(d: Deployed, uri: str) -> Any:
    return d.ledger.functions.registerItem(uri, 1, d.accounts[MERCHANT], ZERO_HASH, LOCATION)


def _in_background(send: Callable[[], SentTx]) -> tuple[threading.Thread, list[SentTx | BaseException]]:
    out: list[SentTx | BaseException] = []

    def run() -> None:
        try:
            out.append(send())
        except BaseException as exc:  # handed to the test's thread
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def _pooled(node: Anvil, address: str, count: int = 1) -> list[HexStr]:
    """The hashes of ``address``'s transactions in anvil's pool, once there are ``count``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pending = node.rpc("txpool_content")["pending"]
        mine: dict[str, Any] = next((txs for sender, txs in pending.items() if sender.lower() == address.lower()), {})
        if len(mine) >= count:
            return [HexStr(tx["hash"]) for tx in mine.values()]
        time.sleep(0.02)
    raise AssertionError("the transaction never reached the pool")


def _result(thread: threading.Thread, out: list[SentTx | BaseException]) -> SentTx:
    thread.join(timeout=90)
    assert not thread.is_alive()
    result = out[0]
    if isinstance(result, BaseException):
        raise result
    return result


@pytest.fixture
def paused(fresh_anvil: Anvil) -> tuple[Anvil, Deployed]:
    """A deployed chain whose blocks come only when the test starts interval mining."""
    d = deploy_all(fresh_anvil)
    fresh_anvil.rpc("evm_setAutomine", [False])
    return fresh_anvil, d


def test_a_dropped_transaction_is_sent_again_and_mined_once(paused: tuple[Anvil, Deployed]) -> None:
    node, d = paused
    sender = _sender(d)
    dropped = _sample("ledger_tx_replaced_total", reason="dropped")
    nonce = d.w3.eth.get_transaction_count(Web3.to_checksum_address(sender.address))
    thread, out = _in_background(lambda: sender.send(_register(d, "urn:dropped")))
    (first,) = _pooled(node, sender.address)
    node.rpc("anvil_dropTransaction", [first])
    node.rpc("evm_setIntervalMining", [1])
    sent = _result(thread, out)
    assert d.w3.eth.get_transaction(HexStr(sent.tx_hash))["nonce"] == nonce
    assert (
        d.w3.eth.get_transaction_count(Web3.to_checksum_address(sender.address)) == nonce + 1
    )  # exactly one transaction mined
    assert d.ledger.functions.itemOf(Web3.keccak(text="urn:dropped")).call()[1] == 1
    assert _sample("ledger_tx_replaced_total", reason="dropped") == dropped + 1


def test_a_base_fee_spike_leaves_it_stuck_and_a_bumped_replacement_is_mined(paused: tuple[Anvil, Deployed]) -> None:
    node, d = paused
    sender = _sender(d)
    replaced = _replaced()
    nonce = d.w3.eth.get_transaction_count(Web3.to_checksum_address(sender.address))
    thread, out = _in_background(lambda: sender.send(_register(d, "urn:spike")))
    (first,) = _pooled(node, sender.address)
    offered = int(d.w3.eth.get_transaction(first)["maxFeePerGas"])
    node.rpc("anvil_setNextBlockBaseFeePerGas", [hex(offered * 50)])  # far above what it offered
    node.rpc("evm_setIntervalMining", [1])
    sent = _result(thread, out)
    mined = d.w3.eth.get_transaction(HexStr(sent.tx_hash))
    assert sent.tx_hash != first and mined["nonce"] == nonce
    assert int(mined["maxFeePerGas"]) > offered * 50 * 7 // 8**2  # priced for the spiked base fee
    assert d.w3.eth.get_transaction_count(Web3.to_checksum_address(sender.address)) == nonce + 1
    assert _replaced() > replaced
    assert _sample("ledger_tx_stuck") == 0


def test_a_base_fee_above_the_cap_sends_nothing(fresh_anvil: Anvil) -> None:
    d = deploy_all(fresh_anvil)
    sender = _sender(d, policy=replace(QUICK, max_fee_wei=GWEI))
    nonce = d.w3.eth.get_transaction_count(Web3.to_checksum_address(sender.address))
    fresh_anvil.rpc("anvil_setNextBlockBaseFeePerGas", [hex(5 * GWEI)])
    with pytest.raises(FeeAboveCapError, match=r"base fee \(5 gwei\) is above the service's fee cap \(1 gwei\)"):
        sender.send(_register(d, "urn:capped"))
    assert d.w3.eth.get_transaction_count(Web3.to_checksum_address(sender.address), "pending") == nonce
    fresh_anvil.rpc("evm_mine")  # the spike decays below the cap within a few blocks
    for _ in range(20):
        fresh_anvil.rpc("evm_mine")
    assert sender.send(_register(d, "urn:capped")).gas_used > 0


def test_a_receipt_is_awaited_to_the_confirmations(fresh_anvil: Anvil) -> None:
    d = deploy_all(fresh_anvil)
    fresh_anvil.rpc("evm_setAutomine", [False])
    fresh_anvil.rpc("evm_setIntervalMining", [1])
    sent = _sender(d, confirmations=3).send(_register(d, "urn:confirmed"))
    assert d.w3.eth.block_number - sent.block_number + 1 >= 3


@pytest.mark.postgres
def test_two_replicas_share_one_signer_without_collision_loss_or_double_send(
    fresh_anvil: Anvil, pg_url: str, tmp_path: Path
) -> None:
    d = deploy_all(fresh_anvil)
    manifest = write_manifest(d, tmp_path / "31337.json")
    Store.open(pg_url).close()  # migrated once, before both start
    fresh_anvil.rpc("evm_setAutomine", [False])
    fresh_anvil.rpc("evm_setIntervalMining", [1])
    nonce = d.w3.eth.get_transaction_count(d.accounts[MANUFACTURER])
    per_replica = 10
    worker = Path(__file__).with_name("relayer_worker.py")
    replicas = [
        subprocess.Popen(
            [sys.executable, str(worker), fresh_anvil.url, pg_url, str(manifest), prefix, str(per_replica)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[3],
        )
        for prefix in ("a", "b")
    ]
    lines: list[str] = []
    for replica in replicas:
        stdout, stderr = replica.communicate(timeout=240)
        assert replica.returncode == 0, stderr
        lines += [line for line in stdout.splitlines() if line.startswith(("ok ", "error "))]  # not the log
    assert len(lines) == 2 * per_replica and all(line.startswith("ok ") for line in lines), lines
    nonces = sorted(int(line.split()[2]) for line in lines)
    assert nonces == list(range(nonce, nonce + 2 * per_replica))  # each nonce once: no collision, no gap
    # none sent twice: the account's count moved by exactly the calls made, and every item exists once
    assert d.w3.eth.get_transaction_count(d.accounts[MANUFACTURER]) == nonce + 2 * per_replica
    for line in lines:
        assert d.ledger.functions.itemOf(Web3.keccak(text=line.split()[1])).call()[1] == 1
    with Store.open(pg_url) as store:
        recorded = SentTransactions(store).recorded(31337, d.accounts[MANUFACTURER].lower())
    assert [n for n, _, _ in recorded] == nonces
    assert all(mined is not None and mined in hashes for _, hashes, mined in recorded)


def test_the_local_book_keeps_every_hash_and_forgets_nothing_on_failure() -> None:
    book = LocalNonceBook()
    first = SentRecord(nonce=4, raw=b"a", hashes=("0x1",), max_fee_per_gas=2, priority_fee_per_gas=1, sent_at=1.0)
    with book.hold(1, "0xabc") as held:
        held.record(first)

    def refused() -> None:
        with book.hold(1, "0xabc") as held:
            held.record(replace(first, nonce=5))
            raise RuntimeError("the node refused it")

    with pytest.raises(RuntimeError):
        refused()
    with book.hold(1, "0xabc") as held:
        assert held.next_nonce() == 5
        held.record(replace(first, raw=b"b", hashes=("0x2",), sent_at=9.0))
        kept = held.get(4)
        assert kept is not None and (kept.hashes, kept.raw, kept.sent_at) == (("0x1", "0x2"), b"b", 1.0)
    book.settle(1, "0xabc", 4, "0x2")
    with book.hold(1, "0xabc") as held:
        assert held.unsettled() == [] and held.next_nonce() == 5


def test_a_node_that_does_not_answer_is_left_for_the_networks_next_url(fresh_anvil: Anvil, tmp_path: Path) -> None:
    from ledger_service.chain.signers import connect_chain
    from ledger_service.settings import Settings
    from tests.support.chain import free_port

    d = deploy_all(fresh_anvil)
    dead = f"http://127.0.0.1:{free_port()}"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        rpc_urls=f"{dead},{fresh_anvil.url}",  # type: ignore[arg-type]
        deployment_file=write_manifest(d, tmp_path / "31337.json"),
        artifacts_dir=ARTIFACTS,
    )
    context = connect_chain(settings)
    sender = context.sender_for(d.accounts[MANUFACTURER])
    assert sender.send(_register(d, "urn:fallback")).gas_used > 0
    assert str(context.w3.provider.endpoint_uri).rstrip("/") == fresh_anvil.url  # type: ignore[attr-defined]


def test_a_killed_replicas_dropped_transaction_is_sent_again_by_the_next_send(
    paused: tuple[Anvil, Deployed], tmp_path: Path
) -> None:
    """One replica sends and is killed before its transaction is mined; the node then loses it. The next send of
    another replica (here on SQLite: the database's single writer holds the signer) sends it again first."""
    node, d = paused
    store_url = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    Store.open(store_url).close()
    manifest = write_manifest(d, tmp_path / "31337.json")
    nonce = d.w3.eth.get_transaction_count(d.accounts[MANUFACTURER])
    worker = Path(__file__).with_name("relayer_worker.py")
    replica = subprocess.Popen(
        [sys.executable, str(worker), node.url, store_url, str(manifest), "killed", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[3],
    )
    try:
        (lost,) = _pooled(node, d.accounts[MANUFACTURER])
        with Store.open(store_url) as store:  # killed once it recorded the transaction, while it awaits the receipt
            book = SentTransactions(store)
            deadline = time.monotonic() + 30
            while not book.recorded(31337, d.accounts[MANUFACTURER].lower()) and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        replica.kill()
        replica.wait()
    node.rpc("anvil_dropTransaction", [lost])
    node.rpc("evm_setIntervalMining", [1])
    with Store.open(store_url) as store:
        sender = _sender(d, book=SentTransactions(store))
        sent = sender.send(_register(d, "urn:after-the-kill"))
        recorded = SentTransactions(store).recorded(31337, d.accounts[MANUFACTURER].lower())
    assert d.w3.eth.get_transaction(HexStr(sent.tx_hash))["nonce"] == nonce + 1
    deadline = time.monotonic() + 30
    while d.w3.eth.get_transaction_count(d.accounts[MANUFACTURER]) < nonce + 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert d.w3.eth.get_transaction_count(d.accounts[MANUFACTURER]) == nonce + 2
    uri = "urn:epc:id:sgtin:0614141.107346.killed0"
    assert d.ledger.functions.itemOf(Web3.keccak(text=uri)).call()[1] == 1  # the killed replica's call, done once
    assert [n for n, _, _ in recorded] == [nonce, nonce + 1]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_replica_killed_before_broadcasting_leaves_its_transaction_to_the_next_send(
    fresh_anvil: Anvil, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """SIGKILL at the moment the transaction would go to the node: it was recorded first, so the signer's next send
    (another process) finds it unknown to the node and sends it, then its own; each call is executed once."""
    d = deploy_all(fresh_anvil)
    store_url = f"sqlite:///{tmp_path / 'index.sqlite3'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    Store.open(store_url).close()
    manifest = write_manifest(d, tmp_path / "31337.json")
    account = d.accounts[MANUFACTURER]
    nonce = d.w3.eth.get_transaction_count(account)
    worker = Path(__file__).with_name("relayer_worker.py")
    replica = subprocess.run(
        [sys.executable, str(worker), fresh_anvil.url, store_url, str(manifest), "killed", "1", "kill"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert replica.returncode == -signal.SIGKILL, replica.stderr
    with Store.open(store_url) as store:
        [(recorded_nonce, (lost,), mined)] = SentTransactions(store).recorded(31337, account.lower())
        assert (recorded_nonce, mined) == (nonce, None)
        assert d.w3.eth.get_transaction_count(account, "pending") == nonce  # the node never saw it
        sender = _sender(d, book=SentTransactions(store))
        sent = sender.send(_register(d, "urn:after-the-kill"))
        recorded = SentTransactions(store).recorded(31337, account.lower())
    assert d.w3.eth.get_transaction(HexStr(sent.tx_hash))["nonce"] == nonce + 1
    assert d.w3.eth.wait_for_transaction_receipt(HexStr(lost), timeout=30)["status"] == 1  # sent again from the record
    assert d.w3.eth.get_transaction_count(account) == nonce + 2
    uri = "urn:epc:id:sgtin:0614141.107346.killed0"
    assert d.ledger.functions.itemOf(Web3.keccak(text=uri)).call()[1] == 1  # the killed replica's call, done once
    assert [n for n, _, _ in recorded] == [nonce, nonce + 1]


@pytest.mark.parametrize("book", ["local", "sqlite"])
def test_a_nonce_a_reorg_freed_is_used_again(fresh_anvil: Anvil, tmp_path: Path, book: str) -> None:
    """A mined transaction that a reorg takes away (not back in the pool) frees its nonce: the next send uses it
    instead of leaving a gap that no block would ever fill."""
    d = deploy_all(fresh_anvil)
    with Store.open(f"sqlite:///{tmp_path / 'index.sqlite3'}") as store:
        sender = _sender(d) if book == "local" else _sender(d, book=SentTransactions(store))
        nonce = d.w3.eth.get_transaction_count(Web3.to_checksum_address(sender.address))
        first = sender.send(_register(d, "urn:reorged"))
        fresh_anvil.rpc("anvil_reorg", [1, []])  # its block replaced by an empty one: the transaction is gone
        assert d.w3.eth.get_transaction_count(Web3.to_checksum_address(sender.address)) == nonce
        again = sender.send(_register(d, "urn:after-the-reorg"))
        assert d.w3.eth.get_transaction(HexStr(again.tx_hash))["nonce"] == nonce and again.tx_hash != first.tx_hash
        assert d.ledger.functions.itemOf(Web3.keccak(text="urn:after-the-reorg")).call()[1] == 1
        assert sender.send(_register(d, "urn:next")).gas_used > 0  # and the nonces go on from there
        assert d.w3.eth.get_transaction_count(Web3.to_checksum_address(sender.address)) == nonce + 2
        if book == "sqlite":
            recorded = SentTransactions(store).recorded(31337, sender.address.lower())
            assert [(n, m is not None) for n, _, m in recorded][-2:] == [(nonce, True), (nonce + 1, True)]
            assert again.tx_hash in recorded[-2][1] and first.tx_hash not in recorded[-2][1]
