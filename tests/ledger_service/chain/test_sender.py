"""TxSender against a real anvil: pipelined nonces, custom errors decoded, failures explained."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from eth_account import Account
from web3 import Web3

from ledger_service.chain.artifacts import load_artifact
from ledger_service.chain.calls import ChainCallError
from ledger_service.chain.reverts import ContractRevertError, RevertDecoder
from ledger_service.chain.sender import TxSender
from ledger_service.core.hashchain import ZERO_HASH
from ledger_service.errors import RetryableError
from tests.support.chain import ARTIFACTS, MANUFACTURER, MERCHANT, Anvil, deploy_all

# anvil's well-known development keys (mnemonic "test test ... junk"); local chain only.
ANVIL_KEYS = {
    MANUFACTURER: "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    MERCHANT: "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
}
LOCATION = b"0614141.00777.0".ljust(32, b"\0")


def decoder() -> RevertDecoder:
    return RevertDecoder(load_artifact(n, ARTIFACTS).abi for n in ("ProvenanceLedger", "ReturnsEscrow"))


def test_concurrent_sends_get_distinct_nonces_and_all_mine(fresh_anvil: Anvil) -> None:
    d = deploy_all(fresh_anvil)
    sender = TxSender(w3=d.w3, account=Account.from_key(ANVIL_KEYS[MANUFACTURER]), decoder=decoder())
    uris = [f"urn:epc:id:sgtin:0614141.107346.s{n}" for n in range(12)]

    def register(uri: str) -> int:
        call = d.ledger.functions.registerItem(uri, 1, d.accounts[MERCHANT], ZERO_HASH, LOCATION)
        return sender.send(call).block_number

    with ThreadPoolExecutor(max_workers=6) as pool:
        blocks = list(pool.map(register, uris))
    assert all(b > 0 for b in blocks)
    for uri in uris:
        assert d.ledger.functions.itemOf(Web3.keccak(text=uri)).call()[1] == 1


def test_a_reverting_call_is_refused_with_the_custom_error_and_no_nonce_is_used(fresh_anvil: Anvil) -> None:
    d = deploy_all(fresh_anvil)
    account = Account.from_key(ANVIL_KEYS[MERCHANT])
    sender = TxSender(w3=d.w3, account=account, decoder=decoder())
    nonce_before = d.w3.eth.get_transaction_count(account.address)
    with pytest.raises(ContractRevertError) as caught:
        sender.send(d.ledger.functions.registerItem("urn:x", 1, account.address, ZERO_HASH, LOCATION))
    assert caught.value.error == "AccessControlUnauthorizedAccount"
    assert caught.value.params["account"] == account.address.lower()
    unknown = Web3.keccak(text="nope")
    with pytest.raises(ContractRevertError, match=r"ProvenanceItemUnknown\(itemId=0x"):
        sender.send(d.ledger.functions.recordEvent((unknown, 2, 2, LOCATION, ZERO_HASH, ZERO_HASH)))
    assert d.w3.eth.get_transaction_count(account.address) == nonce_before
    # the sender still works afterwards: the refused calls consumed no nonce
    uri = "urn:epc:id:sgtin:0614141.107346.after"
    manufacturer = TxSender(w3=d.w3, account=Account.from_key(ANVIL_KEYS[MANUFACTURER]), decoder=decoder())
    sent = manufacturer.send(d.ledger.functions.registerItem(uri, 1, account.address, ZERO_HASH, LOCATION))
    assert sent.gas_used > 0 and sent.tx_hash.startswith("0x") and len(sent.logs) == 2


def test_nonce_taken_behind_the_senders_back_is_recovered(fresh_anvil: Anvil) -> None:
    d = deploy_all(fresh_anvil)
    account = Account.from_key(ANVIL_KEYS[MANUFACTURER])
    sender = TxSender(w3=d.w3, account=account, decoder=decoder())
    sender.send(d.ledger.functions.registerItem("urn:a", 1, d.accounts[MERCHANT], ZERO_HASH, LOCATION))
    # another process uses the same account (anvil has it unlocked)
    d.ledger.functions.registerItem("urn:b", 1, d.accounts[MERCHANT], ZERO_HASH, LOCATION).transact(
        {"from": account.address}
    )
    sent = sender.send(d.ledger.functions.registerItem("urn:c", 1, d.accounts[MERCHANT], ZERO_HASH, LOCATION))
    assert sent.block_number == d.w3.eth.block_number


def test_decoder_handles_unknown_and_garbage_data() -> None:
    dec = decoder()
    assert dec.decode(None).error == "reverted without a reason"
    assert dec.decode("0xdeadbeef").error == "UnknownError"
    assert dec.decode("0xzz").error == "reverted without a reason"
    panic = "0x4e487b71" + "00" * 31 + "11"
    assert str(dec.decode(panic)) == "Panic(code=17, meaning=arithmetic overflow or underflow)"


def test_a_transaction_the_node_refuses_is_a_chain_call_error_without_the_nodes_text(fresh_anvil: Anvil) -> None:
    d = deploy_all(fresh_anvil)
    broke = Account.create()  # no ether: the node refuses its transactions (gas cannot be paid)
    sender = TxSender(w3=d.w3, account=broke, decoder=decoder())
    with pytest.raises(RetryableError) as caught:
        sender.send(d.token.functions.approve(d.accounts[MERCHANT], 1))  # would succeed with gas money
    text = str(caught.value)
    assert isinstance(caught.value, ChainCallError), repr(caught.value)
    assert "service's log" in text
    for raw in ("insufficient", "funds", "{", "code", "message"):
        assert raw not in text.lower(), text


def test_an_unreachable_node_is_retryable_without_the_librarys_text() -> None:
    w3 = Web3(Web3.HTTPProvider("http://127.0.0.1:9", request_kwargs={"timeout": 2}))
    sender = TxSender(w3=w3, account=Account.create(), decoder=decoder(), max_attempts=1)
    ledger = w3.eth.contract(
        address=Web3.to_checksum_address("0x" + "11" * 20), abi=load_artifact("ProvenanceLedger", ARTIFACTS).abi
    )
    with pytest.raises(RetryableError) as caught:
        sender.send(ledger.functions.registerItem("urn:x", 1, "0x" + "22" * 20, ZERO_HASH, LOCATION))
    assert str(caught.value) == "the chain node did not answer while preparing a transaction"


def _sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_transactions_are_measured_and_a_nonce_moved_elsewhere_is_a_gap(fresh_anvil: Anvil) -> None:
    d = deploy_all(fresh_anvil)
    account = Account.from_key(ANVIL_KEYS[MANUFACTURER])
    sender = TxSender(w3=d.w3, account=account, decoder=decoder())
    mined, refused = _sample("ledger_tx_total", outcome="mined"), _sample("ledger_tx_total", outcome="refused")
    gaps, confirmed = _sample("ledger_tx_nonce_gaps_total"), _sample("ledger_tx_confirm_duration_seconds_count")
    sender.send(d.ledger.functions.registerItem("urn:m1", 1, d.accounts[MERCHANT], ZERO_HASH, LOCATION))
    assert _sample("ledger_tx_nonce_gaps_total") == gaps  # the first nonce read is no gap
    # another process sends with the same account: the sender's next nonce is taken
    d.ledger.functions.registerItem("urn:m2", 1, d.accounts[MERCHANT], ZERO_HASH, LOCATION).transact(
        {"from": account.address}
    )
    sender.send(d.ledger.functions.registerItem("urn:m3", 1, d.accounts[MERCHANT], ZERO_HASH, LOCATION))
    with pytest.raises(ContractRevertError):
        sender.send(d.ledger.functions.recordEvent((Web3.keccak(text="nope"), 2, 2, LOCATION, ZERO_HASH, ZERO_HASH)))
    assert _sample("ledger_tx_total", outcome="mined") == mined + 2
    assert _sample("ledger_tx_total", outcome="refused") == refused + 1
    assert _sample("ledger_tx_nonce_gaps_total") == gaps + 1
    assert _sample("ledger_tx_confirm_duration_seconds_count") == confirmed + 2
    assert _sample("ledger_tx_pending") == 0
