"""Records demo data on a local chain deployed by scripts/deploy.py.

Run: brownie run scripts/demo.py --network <network>   (after scripts/deploy.py)

What it records (accounts from deployments/<chainId>.json; consumers are
accounts[6] and accounts[7]):
- the merchant's return policy: 30-day window, 10% restocking fee, fast refund,
  ship by 7 / inspect by 14 / dispute within 7 days;
- six items (urn:epc:id:sgtin:0614141.107346.1001 .. 1006): commissioned,
  packed and shipped by the manufacturer, received and stocked by a merchant,
  all recorded before this script through the API's EPCIS capture
  (scripts/demo_capture.py): this script checks they are there;
- 1001 sold and delivered; 1002 sold, delivered, returned with fast refund
  (refund paid at the carrier's first scan); 1003 sold, delivered, returned,
  received, inspected and accepted (refund paid); 1004 sold and on its way to
  the consumer; 1005 in stock; 1006 in stock at the second merchant.

Idempotent: every step knows how to tell that it is done (an item's event
count, a return's state, a policy version), so a second run records nothing and
a run interrupted half way resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

from brownie import DevStablecoin, ProvenanceLedger, ReturnsEscrow, accounts, network, web3
from brownie._config import CONFIG

# brownie 1.22 warns about its own internal rpc.snapshot calls; not actionable here.
warnings.filterwarnings("ignore", category=FutureWarning)

ROOT = Path(__file__).resolve().parent.parent
LOCAL_CHAIN_IDS = (31337, 1337)
ZERO32 = b"\x00" * 32
DUSD = 10**6

# fmt: off
# Code tables of contracts/EpcisCodes.sol (code = position, from 1).
BIZ_STEPS = dict(enumerate((
    "commissioning", "packing", "shipping", "receiving", "retail_selling", "departing", "arriving",
    "transporting", "inspecting", "repairing", "stocking", "destroying", "decommissioning", "holding",
), start=1))
DISPOSITIONS = dict(enumerate((
    "active", "in_progress", "in_transit", "sellable_accessible", "sellable_not_accessible", "retail_sold",
    "returned", "damaged", "conformant", "non_conformant", "recalled", "destroyed", "inactive",
), start=1))
# ReturnState of contracts/interfaces/IReturnsEscrow.sol (code = position, from 0).
RETURN_STATES = (
    "None", "Authorized", "Cancelled", "Expired", "InTransit", "Received", "Accepted", "Rejected", "Disputed",
    "Resolved", "Reclaimed", "ConsumerClaimed",
)
# fmt: on
CODE = {name: code for code, name in BIZ_STEPS.items()}
DISP = {name: code for code, name in DISPOSITIONS.items()}
AUTHORIZED, IN_TRANSIT, RECEIVED = 1, 4, 5

POLICY_TEXT = b"Demo return policy v1: 30 days, 10% restocking fee, fast refund at first carrier scan."

COMPANY_PREFIX, ITEM_REF = "0614141", "107346"
SERIALS = (1001, 1002, 1003, 1004, 1005, 1006)
PRICES = {1001: 129_990_000, 1002: 89_500_000, 1003: 249_000_000, 1004: 59_900_000, 1005: 129_990_000, 1006: 74_000_000}


def sgln(ref: str) -> bytes:
    """A read point as stored on-chain: the SGLN `company.location.extension` in ASCII, zero-padded."""
    return ref.encode().ljust(32, b"\x00")


MERCHANT_DC = sgln("4012345.00001.0")
STORE = sgln("4012345.00010.0")
CARRIER_HUB = sgln("0860001.00100.0")
# The consumer's home has no GLN and is not written on-chain: delivery carries a zero location.
CONSUMER_HOME = ZERO32


def digest(text: str) -> bytes:
    """sha-256 of a demo document's text, standing in for a document digest."""
    return hashlib.sha256(text.encode()).digest()


def uri(serial: int) -> str:
    return f"urn:epc:id:sgtin:{COMPANY_PREFIX}.{ITEM_REF}.{serial}"


def item_id(serial: int) -> bytes:
    return bytes(web3.keccak(text=uri(serial)))


@dataclass
class Step:
    """One demo action; `done()` tells from the chain whether it already happened."""

    label: str
    done: Callable[[], bool]
    run: Callable[[], Any]


class Demo:
    """Builds the demo steps from a deployment manifest."""

    def __init__(self, manifest: dict[str, Any]) -> None:
        contracts = manifest["contracts"]
        roles = manifest["roles"]
        self.ledger = ProvenanceLedger.at(contracts["ProvenanceLedger"]["address"])
        self.escrow = ReturnsEscrow.at(contracts["ReturnsEscrow"]["address"])
        self.token = DevStablecoin.at(contracts["DevStablecoin"]["address"])
        self.manufacturer = accounts.at(roles["MANUFACTURER_ROLE"][0], force=True)
        self.merchant = accounts.at(roles["MERCHANT_ROLE"][0], force=True)
        merchants = roles["MERCHANT_ROLE"]
        self.merchant2 = accounts.at(merchants[1], force=True) if len(merchants) > 1 else self.merchant
        self.carrier = accounts.at(roles["CARRIER_ROLE"][0], force=True)
        self.inspector = accounts.at(roles["INSPECTOR_ROLE"][0], force=True)
        self.consumers = (accounts[6], accounts[7])
        self.owner = {s: self.merchant for s in SERIALS}
        self.owner[1006] = self.merchant2
        first, second = self.consumers
        self.buyer = {1001: first, 1002: first, 1003: second, 1004: second}
        self._expected = {s: 0 for s in SERIALS}
        self.steps: list[Step] = []
        self._build()

    # --- helpers ---------------------------------------------------------

    def count(self, serial: int) -> int:
        return int(self.ledger.itemOf(item_id(serial))[1])

    def return_id(self, serial: int) -> bytes:
        return bytes(self.escrow.returnIdOf(item_id(serial), 1, 0))

    def return_state(self, serial: int) -> int:
        return int(self.escrow.returnOf(self.return_id(serial))[6])

    def _events_step(self, label: str, serials: tuple[int, ...], run: Callable[[], Any]) -> None:
        """A step that appends one item event to each of `serials`."""
        for s in serials:
            self._expected[s] += 1
        after = {s: self._expected[s] for s in serials}
        self.steps.append(Step(label, lambda: all(self.count(s) >= n for s, n in after.items()), run))

    def _batch(
        self,
        label: str,
        sender: Any,
        serials: tuple[int, ...],
        step: str,
        disp: str,
        where: bytes,
        *,
        document: bytes = ZERO32,
        transaction: bytes = ZERO32,
    ) -> None:
        inputs = [(item_id(s), CODE[step], DISP[disp], where, document, transaction) for s in serials]
        self._events_step(label, serials, lambda: send(self.ledger.recordEvents, inputs, sender=sender))

    def _captured(self, label: str, serials: tuple[int, ...]) -> None:
        """An event recorded through the API's EPCIS capture, not by this script: checked, never sent."""
        self._events_step(
            label,
            serials,
            lambda: fail(
                f"{label}: not on the chain yet; the supply chain is captured through the API first "
                "(scripts/demo_capture.py, which scripts/run.sh runs before this script)"
            ),
        )

    def _return_step(self, label: str, serial: int, reached: int, run: Callable[[], Any], *, item_event: bool) -> None:
        if item_event:
            self._expected[serial] += 1
        self.steps.append(Step(label, lambda: self.return_state(serial) >= reached, run))

    # --- the story -------------------------------------------------------

    def _build(self) -> None:
        # windowDays, restockingFeeBps, fastRefund, fastRefundMaxValue (0: no limit), fastRefundMaxReturns90d,
        # shipByDays, inspectByDays, disputeWindowDays, documentDigest
        policy = (30, 1000, True, 0, 3, 7, 14, 7, hashlib.sha256(POLICY_TEXT).digest())
        self.steps.append(
            Step(
                "merchant publishes return policy v1 (30 days, 10% fee, fast refund, 7/14/7 days)",
                lambda: self.escrow.currentPolicyVersion(self.merchant) >= 1,
                lambda: send(self.escrow.publishPolicy, policy, sender=self.merchant),
            )
        )
        # The supply chain up to the shelves is captured as EPCIS documents through the API
        # (scripts/demo_capture.py): here it is only checked, so the sales below find their items in stock.
        first, second = SERIALS[:-1], SERIALS[-1:]
        for s in SERIALS:
            self._captured(f"manufacturer commissions {uri(s)}", (s,))
        self._captured("manufacturer packs all items into a case", SERIALS)
        self._captured("manufacturer ships 1001-1005 to the merchant", first)
        self._captured("manufacturer ships 1006 to the second merchant", second)
        self._captured("merchant receives 1001-1005", first)
        self._captured("merchant stocks 1001-1005", first)
        self._captured("second merchant receives 1006", second)
        self._captured("second merchant stocks 1006", second)
        names = self.labels()
        for s, buyer in self.buyer.items():
            self._events_step(
                f"merchant sells {s} to {names[buyer.address]} for {PRICES[s] / DUSD:.2f} dUSD",
                (s,),
                partial(
                    send,
                    self.escrow.recordSale,
                    item_id(s),
                    buyer,
                    self.token,
                    PRICES[s],
                    digest(f"order {s}"),
                    STORE,
                    sender=self.merchant,
                ),
            )
        sold = tuple(self.buyer)
        self._batch("carrier picks up the sold items", self.carrier, sold, "departing", "in_transit", CARRIER_HUB)
        delivered = sold[:-1]
        self._batch(
            "carrier delivers 1001-1003 (1004 still on its way)",
            self.carrier,
            delivered,
            "arriving",
            "retail_sold",
            CONSUMER_HOME,
        )
        self._return_flow()

    def _return_flow(self) -> None:
        def authorize(serial: int, fast: bool) -> None:
            send(self.token.approve, self.escrow, PRICES[serial], sender=self.merchant)
            send(self.escrow.authorizeReturn, item_id(serial), PRICES[serial], fast, sender=self.merchant)

        self._return_step(
            "merchant authorizes the return of 1002 with fast refund (funds escrow)",
            1002,
            AUTHORIZED,
            lambda: authorize(1002, True),
            item_event=False,
        )
        self._return_step(
            "carrier scans the 1002 return parcel: in transit, fast refund paid",
            1002,
            IN_TRANSIT,
            lambda: send(self.escrow.markInTransit, self.return_id(1002), CARRIER_HUB, sender=self.carrier),
            item_event=True,
        )
        self._return_step(
            "merchant authorizes the return of 1003 (funds escrow)",
            1003,
            AUTHORIZED,
            lambda: authorize(1003, False),
            item_event=False,
        )
        self._return_step(
            "carrier scans the 1003 return parcel: in transit",
            1003,
            IN_TRANSIT,
            lambda: send(self.escrow.markInTransit, self.return_id(1003), CARRIER_HUB, sender=self.carrier),
            item_event=True,
        )
        self._return_step(
            "merchant receives the 1003 return",
            1003,
            RECEIVED,
            lambda: send(self.escrow.markReceived, self.return_id(1003), MERCHANT_DC, sender=self.merchant),
            item_event=True,
        )
        self._return_step(
            "inspector passes 1003: accepted, refund paid less 10%",
            1003,
            RECEIVED + 1,
            lambda: send(
                self.escrow.recordInspection,
                self.return_id(1003),
                True,
                digest("inspection report 1003: as new"),
                MERCHANT_DC,
                sender=self.inspector,
            ),
            item_event=True,
        )

    # --- summary ---------------------------------------------------------

    def labels(self) -> dict[str, str]:
        names = {
            self.manufacturer.address: "manufacturer",
            self.merchant.address: "merchant",
            self.merchant2.address: "merchant 2",
            self.carrier.address: "carrier",
            self.inspector.address: "inspector",
            self.consumers[0].address: "consumer 1",
            self.consumers[1].address: "consumer 2",
            self.escrow.address: "escrow",
        }
        return names

    def last_events(self, from_block: int) -> dict[bytes, tuple[str, str]]:
        """(bizStep, disposition) of each item's latest event, read from the ledger's logs."""
        ledger = web3.eth.contract(address=self.ledger.address, abi=self.ledger.abi)
        last: dict[bytes, tuple[str, str]] = {}
        for log in ledger.events.ItemEventRecorded().get_logs(from_block=from_block):
            args = log["args"]
            last[bytes(args["itemId"])] = (BIZ_STEPS[args["bizStep"]], DISPOSITIONS[args["disposition"]])
        return last

    def summary(self, from_block: int) -> None:
        names = self.labels()
        last = self.last_events(from_block)
        print("\nItems")
        for s in SERIALS:
            head, count, merchant, _ = self.ledger.itemOf(item_id(s))
            sale = self.escrow.saleOf(item_id(s))
            sold = f"sold to {names.get(sale[0], sale[0])} for {sale[7] / DUSD:.2f} dUSD" if sale[9] else "not sold"
            step, disposition = last.get(item_id(s), ("-", "-"))
            print(f"  {uri(s)}  {count:>2} events  head {hex_of(head)}")
            print(f"      latest {step}/{disposition}; merchant of record {names.get(merchant, merchant)}; {sold}")
        print("\nReturns")
        for s in SERIALS:
            if self.escrow.saleOf(item_id(s))[3] == 0:  # returnCount
                continue
            r = self.escrow.returnOf(self.return_id(s))
            amount, fast, state, settled = r[2], r[7], RETURN_STATES[r[6]], r[11]
            print(
                f"  {hex_of(self.return_id(s))}  item {s}  {names.get(r[1], r[1])}  {amount / DUSD:.2f} dUSD  "
                f"{'fast refund' if fast else 'refund after inspection'}  state {state}  "
                f"{'paid out' if settled else 'held in escrow'}"
            )
        print("\nBalances (dUSD)")
        for address, name in names.items():
            if name in ("manufacturer", "carrier", "inspector"):
                continue
            print(f"  {name:<12} {address}  {self.token.balanceOf(address) / DUSD:>16,.2f}")


def hex_of(value: Any) -> str:
    return "0x" + bytes(value).hex()


def send(method: Any, *args: Any, sender: Any) -> Any:
    """Sends a transaction without brownie's per-transaction console output; returns the receipt."""
    return method.transact(*args, {"from": sender}, silent=True)


def use_chain_fees() -> None:
    """Prices transactions from the chain's base fee unless the network sets a price (see scripts/deploy.py)."""
    settings = CONFIG.active_network["settings"]
    if settings.get("gas_price") or settings.get("max_fee") or settings.get("priority_fee"):
        return
    if web3.eth.get_block("latest").get("baseFeePerGas", 0):
        network.priority_fee("auto")


def load_manifest(chain_id: int) -> dict[str, Any]:
    path = ROOT / "deployments" / f"{chain_id}.json"
    if not path.exists():
        fail(f"no deployment for chain {chain_id} ({path.relative_to(ROOT)}); run scripts/deploy.py first")
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        fail(f"{path.relative_to(ROOT)} is not valid JSON ({exc}); run scripts/deploy.py again")
    genesis = hex_of(web3.eth.get_block(0)["hash"])
    if manifest.get("genesisHash", "").lower() != genesis.lower():
        fail(f"{path.relative_to(ROOT)} is from another chain (genesis differs); run scripts/deploy.py again")
    missing = [n for n in ("ProvenanceLedger", "ReturnsEscrow", "DevStablecoin") if n not in manifest["contracts"]]
    if missing:
        fail(f"{path.relative_to(ROOT)} has no {', '.join(missing)}")
    roles = manifest.get("roles", {})
    for role in ("MANUFACTURER_ROLE", "MERCHANT_ROLE", "CARRIER_ROLE", "INSPECTOR_ROLE"):
        if not roles.get(role):
            fail(f"the demo needs an account with {role}; add one to the deploy config and redeploy")
    return manifest


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    chain_id = int(web3.eth.chain_id)
    if chain_id not in LOCAL_CHAIN_IDS:
        fail(f"the demo runs on a local chain only (chain id 31337 or 1337), not {chain_id}")
    if len(accounts) < 8:
        fail("the demo needs the local chain's unlocked accounts 6 and 7 as consumers")
    use_chain_fees()
    manifest = load_manifest(chain_id)
    demo = Demo(manifest)
    pending = [step for step in demo.steps if not step.done()]
    if not pending:
        print(f"demo data already recorded on chain {chain_id}; nothing to do")
    else:
        if len(pending) < len(demo.steps):
            print(f"resuming: {len(demo.steps) - len(pending)} of {len(demo.steps)} steps already recorded")
        for step in pending:
            step.run()
            print(f"  {step.label}")
        print(f"recorded {len(pending)} demo steps on chain {chain_id}")
    demo.summary(int(manifest["deployBlock"]))
