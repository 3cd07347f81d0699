"""Contract activity for indexer tests and benchmarks: every event type, and bulk item events.

`Activity(deployed)` sends transactions from anvil's unlocked accounts (roles as in
tests/support/chain.py). `lifecycle()` emits every event the indexer decodes at
least once; `bulk()` emits many ItemEventRecorded events cheaply through batched
`recordEvents` calls. `write_manifest()` writes a deployment manifest for the
deployed contracts, as scripts/deploy.py would.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.exceptions import TransactionNotFound
from web3.logs import DISCARD

from tests.support.chain import (
    ADMIN,
    ARBITER,
    CARRIER,
    CONSUMER,
    CONSUMER2,
    INSPECTOR,
    MANUFACTURER,
    MERCHANT,
    MERCHANT2,
    Anvil,
    Deployed,
)

ZERO32 = b"\0" * 32
LOCATION = b"0614141.00777.0".ljust(32, b"\0")
HUB = b"0860001.00100.0".ljust(32, b"\0")
TRANSPORTING, IN_TRANSIT = 8, 3
DEPARTING, ARRIVING = 6, 7
STOCKING, SELLABLE_ACCESSIBLE = 11, 4
# windowDays, instant, instantMaxValue, documentDigest
EXCHANGE_TERMS = (45, True, 0, b"\x12" * 32)
UNKNOWN_EPC = "urn:epc:id:sgtin:0614141.107346.not-on-the-ledger"
POLICY = (30, 1000, True, 0, 3, 7, 14, 7, b"\x11" * 32)
PRICE = 50_000_000
GAS = 25_000_000
_serials = itertools.count(1)


def write_manifest(deployed: Deployed, path: Path, *, chain_id: int | None = None, genesis: str | None = None) -> Path:
    """Writes deployments/<chainId>.json for ``deployed`` (overrides make a wrong manifest on purpose)."""
    w3 = deployed.w3
    manifest = {
        "chainId": chain_id if chain_id is not None else w3.eth.chain_id,
        "genesisHash": genesis or "0x" + bytes(w3.eth.get_block(0)["hash"]).hex(),
        "deployBlock": deployed.deploy_block,
        "contracts": {
            name: {"address": contract.address, "block": deployed.deploy_block, "txHash": "0x" + "00" * 32}
            for name, contract in (
                ("ProvenanceLedger", deployed.ledger),
                ("ReturnsEscrow", deployed.escrow),
                ("ExchangeEscrow", deployed.exchange),
                ("DevStablecoin", deployed.token),
                ("BatchAnchor", deployed.anchor),
            )
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2))
    return path


class Activity:
    """Sends contract transactions on an anvil with automine."""

    def __init__(self, deployed: Deployed) -> None:
        self.d = deployed
        self.w3: Web3 = deployed.w3
        self.acc = deployed.accounts
        self.items: list[bytes] = []

    def send(self, call: Any, sender: int, *, check: bool = True) -> Any:
        receipt = self._receipt(call.transact({"from": self.acc[sender], "gas": GAS}))
        if check and receipt["status"] != 1:
            raise RuntimeError(f"transaction reverted: {call.fn_name}")
        return receipt

    def _receipt(self, tx_hash: Any) -> Any:
        """The receipt (anvil automines: it exists once the transaction was accepted)."""
        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return self.w3.eth.wait_for_transaction_receipt(tx_hash, poll_latency=0.01)

    def publish_policy(self, merchant: int = MERCHANT) -> None:
        self.send(self.d.escrow.functions.publishPolicy(POLICY), merchant)

    def register(self, count: int, *, merchant: int = MERCHANT) -> list[bytes]:
        ids: list[bytes] = []
        for _ in range(count):
            uri = f"urn:epc:id:sgtin:0614141.107346.{next(_serials)}-{id(self)}"
            self.send(
                self.d.ledger.functions.registerItem(uri, 10614141007346, self.acc[merchant], b"\x22" * 32, LOCATION),
                MANUFACTURER,
            )
            ids.append(Web3.keccak(text=uri))
        self.items.extend(ids)
        return ids

    def record_batch_call(self, items: list[bytes], count: int, *, step: int = TRANSPORTING) -> Any:
        inputs = [
            (items[i % len(items)], step, IN_TRANSIT, HUB, (i + 1).to_bytes(32, "big"), ZERO32) for i in range(count)
        ]
        return self.d.ledger.functions.recordEvents(inputs)

    def bulk(self, *, events: int, items: int = 16, batch: int = 256) -> int:
        """Emits ``events`` ItemEventRecorded events (plus registrations) in batches; returns the count."""
        ids = self.register(items)
        encoded: dict[int, str] = {}  # calldata per batch size: ABI-encoding 256 tuples costs more than mining
        sent = 0
        while sent < events:
            n = min(batch, events - sent)
            if n not in encoded:
                encoded[n] = self.record_batch_call(ids, n)._encode_transaction_data()
            tx = {"from": self.acc[CARRIER], "to": self.d.ledger.address, "data": encoded[n], "gas": GAS}
            receipt = self._receipt(self.w3.eth.send_transaction(tx))  # type: ignore[arg-type]
            if receipt["status"] != 1:
                raise RuntimeError("recordEvents reverted")
            sent += n
        return sent

    def reorg_tx(self, items: list[bytes], count: int) -> dict[str, Any]:
        """A recordEvents transaction as JSON for anvil_reorg."""
        call = self.record_batch_call(items, count, step=DEPARTING)
        data = call._encode_transaction_data()
        return {"from": self.acc[CARRIER], "to": self.d.ledger.address, "data": data, "gas": hex(GAS)}

    def anchor_batch(self, root: bytes, count: int, digest: bytes, *, sender: int = CARRIER) -> Any:
        """BatchAnchor.anchorBatch from account ``sender``: the receipt."""
        return self.send(self.d.anchor.functions.anchorBatch(root, count, digest), sender)

    def lifecycle(self) -> None:
        """Every event type at least once: roles, registrations, item events, sellers, merchant changes,
        a policy, sales, and returns through fast refund, cancellation and a resolved dispute."""
        ledger, escrow, acc = self.d.ledger.functions, self.d.escrow.functions, self.acc
        token = self.d.token.address
        if escrow.currentPolicyVersion(acc[MERCHANT]).call() == 0:
            self.publish_policy()
        arbiter_role = ledger.ARBITER_ROLE().call()
        self.send(ledger.revokeRole(arbiter_role, acc[ARBITER]), ADMIN)
        self.send(ledger.grantRole(arbiter_role, acc[ARBITER]), ADMIN)
        fast, cancelled, disputed, moved = self.register(4)
        self.send(ledger.setSeller(acc[CONSUMER2], True), MERCHANT)
        self.send(ledger.setSeller(acc[CONSUMER2], False), MERCHANT)
        self.send(ledger.transferMerchantOfRecord(moved, acc[MERCHANT2]), MERCHANT)
        self.send(self.record_batch_call([fast, cancelled, disputed], 6), CARRIER)
        for item in (fast, cancelled, disputed):
            self.send(escrow.recordSale(item, acc[CONSUMER], token, PRICE, b"\x33" * 32, LOCATION), MERCHANT)
        # fast refund: paid at the first carrier scan, then received and inspected
        rid = self._authorize(fast, fast_refund=True)
        self.send(escrow.markInTransit(rid, HUB), CARRIER)
        self.send(escrow.markReceived(rid, HUB), CARRIER)
        self.send(escrow.recordInspection(rid, True, b"\x44" * 32, LOCATION), INSPECTOR)
        # cancelled by the consumer before shipping
        rid = self._authorize(cancelled, fast_refund=False)
        self.send(escrow.cancelReturn(rid), CONSUMER)
        # failed inspection, disputed, resolved by the arbiter
        rid = self._authorize(disputed, fast_refund=False)
        self.send(escrow.markInTransit(rid, HUB), CARRIER)
        self.send(escrow.markReceived(rid, LOCATION), MERCHANT)
        self.send(escrow.recordInspection(rid, False, b"\x55" * 32, LOCATION), INSPECTOR)
        self.send(escrow.dispute(rid, b"\x66" * 32), CONSUMER)
        self.send(escrow.resolveDispute(rid, PRICE // 2, b"\x77" * 32), ARBITER)
        self.exchanges()

    def exchanges(self) -> dict[str, bytes]:
        """ExchangeEscrow's events and the unit check: terms and list prices, an instant exchange for a cheaper
        unit (released at once, collateral released at the carrier scan), a standard exchange for a dearer one
        (extra payment recorded, released after the scan), and a return whose parcel holds an EPC that is not
        on the ledger (ReturnUnitMismatch). Returns the ids by name (exchange and return ids, items)."""
        ledger, escrow, exchange, acc = (
            self.d.ledger.functions,
            self.d.escrow.functions,
            self.d.exchange.functions,
            self.acc,
        )
        token = self.d.token.address
        if escrow.currentPolicyVersion(acc[MERCHANT]).call() == 0:
            self.publish_policy()
        version = escrow.currentPolicyVersion(acc[MERCHANT]).call()
        if exchange.exchangeTermsOf(acc[MERCHANT], version).call()[0] == 0:
            self.send(exchange.publishExchangeTerms(version, EXCHANGE_TERMS), MERCHANT)
            # the instant exchange's collateral comes from the merchant
            self.send(self.d.token.functions.approve(self.d.exchange.address, 2**256 - 1), MERCHANT)
        instant_original, standard_original, cheaper, dearer, swapped = self.register(5)
        for item in (cheaper, dearer):
            self.send(ledger.recordEvent((item, STOCKING, SELLABLE_ACCESSIBLE, LOCATION, ZERO32, ZERO32)), MERCHANT)
        self.send(exchange.setListPrices([cheaper], PRICE - 1_000_000), MERCHANT)
        self.send(exchange.setListPrices([dearer], PRICE + 2_000_000), MERCHANT)
        for item in (instant_original, standard_original, swapped):
            self.send(escrow.recordSale(item, acc[CONSUMER], token, PRICE, b"\x34" * 32, LOCATION), MERCHANT)
        instant = self._exchange(instant_original, cheaper, -1_000_000, instant=True)
        self.send(exchange.releaseReplacement(instant, LOCATION), MERCHANT)
        self.send(escrow.markInTransit(instant, HUB), CARRIER)
        self.send(exchange.releaseCollateral(instant), CONSUMER)
        standard = self._exchange(standard_original, dearer, 2_000_000, instant=False)
        self.send(exchange.recordExtraPayment(standard, b"\x35" * 32), MERCHANT)
        self.send(escrow.markInTransit(standard, HUB), CARRIER)
        self.send(exchange.releaseReplacement(standard, LOCATION), MERCHANT)
        mismatch = self._authorize(swapped, fast_refund=False)
        self.send(escrow.markInTransit(mismatch, HUB), CARRIER)
        self.send(escrow.markReceivedUnit(mismatch, HUB, Web3.keccak(text=UNKNOWN_EPC)), CARRIER)
        return {
            "instant": instant,
            "standard": standard,
            "mismatch": mismatch,
            "instant_original": instant_original,
            "standard_original": standard_original,
            "cheaper": cheaper,
            "dearer": dearer,
            "swapped": swapped,
        }

    def _exchange(self, original: bytes, replacement: bytes, difference: int, *, instant: bool) -> bytes:
        call = self.d.exchange.functions.authorizeExchange(original, replacement, difference, instant)
        receipt = self.send(call, MERCHANT)
        events = self.d.exchange.events.ExchangeAuthorized().process_receipt(receipt, errors=DISCARD)
        return bytes(events[0]["args"]["exchangeId"])

    def _authorize(self, item: bytes, *, fast_refund: bool) -> bytes:
        receipt = self.send(self.d.escrow.functions.authorizeReturn(item, PRICE, fast_refund), MERCHANT)
        events = self.d.escrow.events.ReturnAuthorized().process_receipt(receipt, errors=DISCARD)
        return bytes(events[0]["args"]["returnId"])


def mine(node: Anvil, blocks: int = 1) -> None:
    node.rpc("anvil_mine", [hex(blocks)])
