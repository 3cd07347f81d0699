"""Gas used by the contracts' main operations, against their targets.

Run from the repository root (anvil on PATH, contracts compiled):
    .venv-brownie/bin/python bench/gas.py

Deploys fresh contracts on the brownie network `returns-bench` (anvil on port
8556, launched by brownie unless one already listens there), performs each
operation once and prints a table of gas used with its target, then the raw
numbers as one JSON line. Gas figures are exact and deterministic: no
wall-clock timing. Exits 0 even when a figure is over its target (it is a
measurement); such rows are marked OVER.

Conditions, stated because they move the figures by thousands of gas:
- the escrow always holds another return's deposit, so no release empties its
  token balance (no storage refund flatters the release figures);
- a payout to a consumer who held no dUSD before writes a fresh balance slot
  (about 17k gas more than one to a consumer who already holds dUSD); both cases
  are measured for the fast-refund and inspection releases;
- "one event" is recorded by the manufacturer, the most expensive role check.
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn

from common import json_line, table

warnings.filterwarnings("ignore", category=FutureWarning)  # brownie 1.22's own deprecation noise

ROOT = Path(__file__).resolve().parent.parent
NETWORK = "returns-bench"
CONTRACTS = ("ProvenanceLedger", "ReturnsEscrow", "ExchangeEscrow", "DevStablecoin", "BatchAnchor")
BATCH = 100
PRICE = 50_000_000  # 50 dUSD
GTIN = 10614141073469
ZERO32 = b"\x00" * 32
LOCATION = b"0614141.00777.0".ljust(32, b"\x00")
REPORT = hashlib.sha256(b"inspection report").digest()
PACKING, IN_PROGRESS = 2, 2
STOCKING, SELLABLE_ACCESSIBLE = 11, 4
DEPARTING, IN_TRANSIT = 6, 3
SCAN_LEAF = ["bytes32", "uint64", "bytes32", "uint8", "uint8", "bytes32", "bytes32", "bytes32", "uint64", "address"]
# windowDays, instant, instantMaxValue, documentDigest
TERMS = (45, True, 0, b"\x22" * 32)
# windowDays, feeBps, fastRefund, fastRefundMaxValue, fastRefundMaxReturns90d, shipBy, inspectBy, dispute, digest
POLICY = (30, 1000, True, 0, 3, 7, 14, 7, b"\x11" * 32)

TARGET_EVENT = 50_000
TARGET_BATCHED = 15_000
TARGET_AUTHORIZE = 200_000
TARGET_RELEASE = 100_000


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def check_build() -> None:
    """Fails with a clear message if the contracts are not compiled or the build is older than the sources."""
    build = ROOT / "build" / "contracts"
    missing = [name for name in CONTRACTS if not (build / f"{name}.json").exists()]
    if missing:
        fail(
            f"contracts not compiled (no build/contracts/{missing[0]}.json); run "
            "`SOLCX_BINARY_PATH=scripts/solc .venv-brownie/bin/brownie compile` first"
        )
    for artifact in build.glob("*.json"):
        data = json.loads(artifact.read_text())
        source_path = str(data.get("sourcePath", ""))
        if not source_path.startswith("contracts/"):
            continue  # a library's artifact (OpenZeppelin)
        source = ROOT / source_path
        if not source.exists() or hashlib.sha1(source.read_text().encode()).hexdigest() != data.get("sha1"):
            fail(
                f"build/ is older than {source_path}; run "
                "`SOLCX_BINARY_PATH=scripts/solc .venv-brownie/bin/brownie compile` first"
            )


def connect() -> Any:
    """Loads the compiled project and connects to `returns-bench`; returns the project."""
    from brownie import network, project

    check_build()
    loaded = project.load(ROOT, compile=False)
    try:
        network.connect(NETWORK)
    except FileNotFoundError:
        fail("anvil not found: export PATH=$PWD/node_modules/@foundry-rs/anvil-linux-amd64/bin:$PATH")
    except Exception as exc:  # brownie raises several types for an unknown network
        if NETWORK in str(exc):
            fail(
                f"brownie network '{NETWORK}' is not registered: .venv-brownie/bin/brownie networks add Development "
                f"{NETWORK} 'cmd=anvil --max-persisted-states 0' host=http://127.0.0.1 port=8556 gas_limit=30000000 "
                "accounts=10 base_fee=0 (scripts/bootstrap.sh does this)"
            )
        raise
    return loaded


def send(method: Any, *args: Any, sender: Any) -> Any:
    """Sends a transaction quietly and returns its receipt."""
    return method.transact(*args, {"from": sender}, silent=True)


class Bench:
    """A fresh deployment with the roles of tests/contracts/conftest.py, and helpers to reach each state."""

    def __init__(self, p: Any) -> None:
        from brownie import accounts

        (
            self.admin,
            self.manufacturer,
            self.merchant,
            self.carrier,
            self.inspector,
            self.arbiter,
            self.disputer,
            self.holder1,
            self.holder2,
            self.background,
        ) = accounts[:10]
        admin = {"from": self.admin}
        self.ledger = p.ProvenanceLedger.deploy(self.admin, admin, silent=True)
        self.escrow = p.ReturnsEscrow.deploy(self.ledger, admin, silent=True)
        self.exchanges = p.ExchangeEscrow.deploy(self.ledger, self.escrow, admin, silent=True)
        self.token = p.DevStablecoin.deploy(self.admin, admin, silent=True)
        self.batches = p.BatchAnchor.deploy(self.ledger, admin, silent=True)
        ledger = self.ledger
        for role, account in [
            (ledger.RECORDER_ROLE(), self.escrow),
            (ledger.BATCH_ANCHOR_ROLE(), self.batches),
            (ledger.EXCHANGE_ROLE(), self.exchanges),
            (ledger.MANUFACTURER_ROLE(), self.manufacturer),
            (ledger.MERCHANT_ROLE(), self.merchant),
            (ledger.CARRIER_ROLE(), self.carrier),
            (ledger.INSPECTOR_ROLE(), self.inspector),
            (ledger.ARBITER_ROLE(), self.arbiter),
        ]:
            send(ledger.grantRole, role, account, sender=self.admin)
        send(self.token.mint, self.merchant, 10**15, sender=self.admin)
        for holder in (self.holder1, self.holder2):
            send(self.token.mint, holder, 1_000_000, sender=self.admin)  # already holds 1 dUSD
        send(self.token.approve, self.escrow, 2**256 - 1, sender=self.merchant)
        send(self.token.approve, self.exchanges, 2**256 - 1, sender=self.merchant)
        send(self.escrow.publishPolicy, POLICY, sender=self.merchant)
        self._serial = 0

    def registration(self) -> tuple[str, int, Any, bytes, bytes]:
        """registerItem's arguments for a new item (an SGTIN URI of 38 bytes)."""
        self._serial += 1
        return (f"urn:epc:id:sgtin:0614141.107346.{self._serial}", GTIN, self.merchant, ZERO32, LOCATION)

    def register(self) -> tuple[bytes, Any]:
        tx = send(self.ledger.registerItem, *self.registration(), sender=self.manufacturer)
        return bytes(tx.return_value), tx

    def register_many(self, n: int) -> tuple[list[bytes], Any]:
        """n new items in one registerItems; (their ids, the receipt)."""
        from brownie import web3

        registrations = [self.registration() for _ in range(n)]
        tx = send(self.ledger.registerItems, registrations, sender=self.manufacturer)
        return [bytes(web3.keccak(text=r[0])) for r in registrations], tx

    def authorized(self, consumer: Any, *, fast: bool) -> tuple[bytes, Any]:
        """A sold item with a funded return; returns (returnId, the authorizeReturn receipt)."""
        item, _ = self.register()
        send(self.escrow.recordSale, item, consumer, self.token, PRICE, ZERO32, LOCATION, sender=self.merchant)
        tx = send(self.escrow.authorizeReturn, item, PRICE, fast, sender=self.merchant)
        return bytes(tx.return_value), tx

    def stocked(self, price: int) -> bytes:
        """A new item in stock at the merchant, list-priced at `price`."""
        item, _ = self.register()
        send(
            self.ledger.recordEvent,
            (item, STOCKING, SELLABLE_ACCESSIBLE, LOCATION, ZERO32, ZERO32),
            sender=self.merchant,
        )
        send(self.exchanges.setListPrices, [item], price, sender=self.merchant)
        return item

    def exchange(self, consumer: Any, difference: int, *, instant: bool) -> tuple[bytes, Any]:
        """A sold item exchanged for a stocked one `difference` dearer; (exchange id, the authorization receipt)."""
        item, _ = self.register()
        send(self.escrow.recordSale, item, consumer, self.token, PRICE, ZERO32, LOCATION, sender=self.merchant)
        replacement = self.stocked(PRICE + difference)
        tx = send(self.exchanges.authorizeExchange, item, replacement, difference, instant, sender=self.merchant)
        return bytes(tx.return_value), tx

    def proved_scan(self, rid: bytes, depth: int) -> tuple[Any, ...]:
        """markInTransitByProof's arguments for the carrier's in-transit scan of return `rid`, anchored in a
        batch of 2**depth scans (a proof of `depth` siblings: only the root and the path matter on-chain)."""
        from brownie import chain, web3
        from eth_abi.abi import encode

        item = self.escrow.returnOf(rid)["itemId"]
        scan = (
            item,
            0,
            ZERO32,
            DEPARTING,
            IN_TRANSIT,
            LOCATION,
            ZERO32,
            rid,
            chain[-1].timestamp,
            self.carrier.address,
        )
        node = bytes(web3.keccak(web3.keccak(encode(SCAN_LEAF, list(scan)))))
        proof = [bytes(web3.keccak(text=f"sibling {rid.hex()} {level}")) for level in range(depth)]
        for sibling in proof:
            node = bytes(web3.keccak(min(node, sibling) + max(node, sibling)))
        send(self.batches.anchorBatch, node, 2**depth, REPORT, sender=self.carrier)
        return (rid, self.batches, scan, node, proof)

    def received(self, consumer: Any) -> bytes:
        """A return that reached the merchant (state Received), refund still in escrow."""
        rid, _ = self.authorized(consumer, fast=False)
        send(self.escrow.markInTransit, rid, LOCATION, sender=self.carrier)
        send(self.escrow.markReceived, rid, LOCATION, sender=self.merchant)
        return rid


def fresh_address(seed: str) -> str:
    """A deterministic address that has never held anything."""
    from brownie import web3

    return str(web3.to_checksum_address(web3.keccak(text=seed)[12:]))


def measure(p: Any) -> list[tuple[str, str, int, int | None]]:
    """Runs every operation once; returns rows (key, label, gas, target)."""
    b = Bench(p)
    rows: list[tuple[str, str, int, int | None]] = []

    item, tx = b.register()
    rows.append(("register", "registerItem (GS1 URI, 38 bytes)", tx.gas_used, None))
    tx = send(b.ledger.recordEvent, (item, PACKING, IN_PROGRESS, LOCATION, ZERO32, ZERO32), sender=b.manufacturer)
    rows.append(("record_event", "one event (recordEvent)", tx.gas_used, TARGET_EVENT))
    items, tx = b.register_many(BATCH)
    rows.append(("register_batch_total", f"registerItems of {BATCH} items, whole tx", tx.gas_used, None))
    rows.append(("register_batch_per_item", f"registerItems of {BATCH} items, per item", tx.gas_used // BATCH, None))
    tx = send(
        b.ledger.recordEvents,
        [(i, PACKING, IN_PROGRESS, LOCATION, ZERO32, ZERO32) for i in items],
        sender=b.manufacturer,
    )
    rows.append(("batch_total", f"batch of {BATCH} events, whole tx", tx.gas_used, None))
    rows.append(("batch_per_event", f"batch of {BATCH} events, per event", tx.gas_used // BATCH, TARGET_BATCHED))

    # The background deposit stays in escrow for the whole run.
    _, tx = b.authorized(b.background, fast=False)
    rows.append(("authorize_first", "authorize+fund (escrow held no dUSD yet)", tx.gas_used, TARGET_AUTHORIZE))
    newcomer1, newcomer2 = fresh_address("newcomer 1"), fresh_address("newcomer 2")  # they sign nothing
    fast_new, tx = b.authorized(newcomer1, fast=True)
    rows.append(("authorize", "authorize+fund (escrow holding deposits)", tx.gas_used, TARGET_AUTHORIZE))
    fast_old, _ = b.authorized(b.holder1, fast=True)
    tx = send(b.escrow.markInTransit, fast_new, LOCATION, sender=b.carrier)
    rows.append(("fast_release_new_holder", "fast-refund release, consumer had no dUSD", tx.gas_used, TARGET_RELEASE))
    tx = send(b.escrow.markInTransit, fast_old, LOCATION, sender=b.carrier)
    rows.append(("fast_release_holder", "fast-refund release, consumer held dUSD", tx.gas_used, TARGET_RELEASE))
    # The same release from a batched scan's Merkle proof (issue #23): one proof verification more.
    for depth, scans in ((10, "1,024"), (16, "65,536")):
        rid, _ = b.authorized(b.holder1, fast=True)
        tx = send(b.escrow.markInTransitByProof, *b.proved_scan(rid, depth), sender=b.background)
        label = f"fast-refund release from a batched scan's proof ({scans}-scan batch), consumer held dUSD"
        rows.append((f"fast_release_proof_depth_{depth}", label, tx.gas_used, TARGET_RELEASE))

    for key, consumer, who in (
        ("inspection_release_new_holder", newcomer2, "had no dUSD"),
        ("inspection_release_holder", b.holder2, "held dUSD"),
    ):
        rid = b.received(consumer)
        tx = send(b.escrow.recordInspection, rid, True, REPORT, LOCATION, sender=b.inspector)
        rows.append((key, f"inspection release (pass), consumer {who}", tx.gas_used, TARGET_RELEASE))

    rid = b.received(b.disputer)
    send(b.escrow.recordInspection, rid, False, REPORT, LOCATION, sender=b.inspector)
    send(b.escrow.dispute, rid, ZERO32, sender=b.disputer)
    tx = send(b.escrow.resolveDispute, rid, PRICE // 2, REPORT, sender=b.arbiter)
    rows.append(("resolve_dispute", "dispute resolution 50/50, consumer had no dUSD", tx.gas_used, TARGET_RELEASE))
    assert b.token.balanceOf(b.escrow) == PRICE, "the background deposit should be the only one left in escrow"
    rows += measure_exchanges(b)
    return rows


def measure_exchanges(b: Bench) -> list[tuple[str, str, int, int | None]]:
    """Exchanges and the unit-level check; the background deposit is still in escrow."""
    from brownie import chain

    rows: list[tuple[str, str, int, int | None]] = []
    tx = send(b.exchanges.publishExchangeTerms, 1, TERMS, sender=b.merchant)
    rows.append(("exchange_terms", "publishExchangeTerms", tx.gas_used, None))
    item, _ = b.register()
    tx = send(b.exchanges.setListPrices, [item], PRICE, sender=b.merchant)
    rows.append(("list_price", "setListPrices, one item", tx.gas_used, None))
    # A background collateral stays in ExchangeEscrow, as the background deposit in ReturnsEscrow.
    b.exchange(b.background, 0, instant=True)
    cheaper, tx = b.exchange(b.holder1, -PRICE // 5, instant=False)
    rows.append(
        ("exchange_standard", "authorizeExchange, cheaper (deposits the difference)", tx.gas_used, TARGET_AUTHORIZE)
    )
    instant, tx = b.exchange(b.holder2, 0, instant=True)
    rows.append(
        ("exchange_instant", "authorizeExchange, instant (deposits the collateral)", tx.gas_used, TARGET_AUTHORIZE)
    )
    dearer, _ = b.exchange(b.holder2, PRICE // 5, instant=True)
    tx = send(b.exchanges.recordExtraPayment, dearer, REPORT, sender=b.merchant)
    rows.append(("exchange_extra_payment", "recordExtraPayment", tx.gas_used, None))
    tx = send(b.exchanges.releaseReplacement, instant, LOCATION, sender=b.merchant)
    rows.append(("exchange_release", "releaseReplacement (records the replacement's sale)", tx.gas_used, None))
    send(b.escrow.markInTransit, instant, LOCATION, sender=b.carrier)
    tx = send(b.exchanges.releaseCollateral, instant, sender=b.carrier)
    rows.append(
        ("collateral_release", "releaseCollateral after the original's first scan", tx.gas_used, TARGET_RELEASE)
    )
    send(b.escrow.markInTransit, cheaper, LOCATION, sender=b.carrier)
    cheaper_item = b.escrow.returnOf(cheaper)["itemId"]
    tx = send(b.escrow.markReceivedUnit, cheaper, LOCATION, cheaper_item, sender=b.carrier)
    rows.append(("received_unit", "markReceivedUnit, the unit sold", tx.gas_used, None))
    tx = send(b.escrow.recordInspectionUnit, cheaper, True, REPORT, LOCATION, cheaper_item, sender=b.inspector)
    rows.append(("inspection_unit", "recordInspectionUnit, pass (pays the difference)", tx.gas_used, TARGET_RELEASE))
    swapped, _ = b.exchange(b.holder1, 0, instant=False)
    send(b.escrow.markInTransit, swapped, LOCATION, sender=b.carrier)
    other, _ = b.register()
    tx = send(b.escrow.markReceivedUnit, swapped, LOCATION, other, sender=b.carrier)
    rows.append(("unit_mismatch", "markReceivedUnit, another unit (mismatch, to the arbiter)", tx.gas_used, None))
    unshipped, _ = b.exchange(b.holder1, 0, instant=True)
    chain.sleep((POLICY[5] + 1) * 86_400)
    tx = send(b.exchanges.claimCollateral, unshipped, sender=b.merchant)
    rows.append(("collateral_claim", "claimCollateral, original not shipped by shipBy", tx.gas_used, TARGET_RELEASE))
    return rows


def report(rows: list[tuple[str, str, int, int | None]]) -> None:
    lines: list[tuple[str, str, str, str]] = [("operation", "gas", "target", "result")]
    over = []
    for key, label, gas, target in rows:
        if target is None:
            lines.append((label, f"{gas:,}", "-", ""))
            continue
        lines.append((label, f"{gas:,}", f"<= {target // 1000}k", "ok" if gas <= target else "OVER"))
        if gas > target:
            over.append(key)
    header, *body = table(lines, align="lrrl")
    rule = "-" * max(len(line) for line in (header, *body))
    print("", header, rule, *body, rule, sep="\n")
    print(f"{len(over)} over target" + (f": {', '.join(over)}" if over else ""))
    json_line({"gas": {key: gas for key, _, gas, _ in rows}, "over_target": over})


def main() -> None:
    from brownie import network

    p = connect()
    try:
        rows = measure(p)
    finally:
        network.disconnect()
    report(rows)


if __name__ == "__main__":
    main()
