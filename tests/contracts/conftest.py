"""Shared fixtures for the contract tests (run by brownie against anvil).

Accounts: 0 admin, 1 manufacturer, 2 merchant, 3 carrier, 4 inspector,
5 arbiter, 6 consumer, 7 second merchant, 8 second consumer, 9 outsider
(no role). Every test starts from the module's deployment (fn_isolation).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import pytest
from brownie import BatchAnchor, DevStablecoin, ExchangeEscrow, ProvenanceLedger, ReturnsEscrow, accounts, chain, web3

ZERO32 = b"\x00" * 32
LOCATION = b"0614141.00777.0".ljust(32, b"\x00")
PRICE = 50_000_000  # 50 dUSD (6 decimals)

# bizStep / disposition codes (contracts/EpcisCodes.sol)
COMMISSIONING, PACKING, SHIPPING, RECEIVING, RETAIL_SELLING = 1, 2, 3, 4, 5
DEPARTING, ARRIVING, TRANSPORTING, INSPECTING, REPAIRING = 6, 7, 8, 9, 10
STOCKING, DESTROYING, DECOMMISSIONING, HOLDING = 11, 12, 13, 14
ACTIVE, IN_PROGRESS, IN_TRANSIT, SELLABLE_ACCESSIBLE = 1, 2, 3, 4
SELLABLE_NOT_ACCESSIBLE, RETAIL_SOLD, RETURNED, DAMAGED = 5, 6, 7, 8
CONFORMANT, NON_CONFORMANT, RECALLED, DESTROYED, INACTIVE = 9, 10, 11, 12, 13

# ReturnState (contracts/interfaces/IReturnsEscrow.sol)
(
    NONE,
    AUTHORIZED,
    CANCELLED,
    EXPIRED,
    IN_TRANSIT_STATE,
    RECEIVED,
    ACCEPTED,
    REJECTED,
    DISPUTED,
    RESOLVED,
    RECLAIMED,
    CONSUMER_CLAIMED,
) = range(12)

DAY = 86_400

# windowDays, feeBps, fastRefund, fastRefundMaxValue, fastRefundMaxReturns90d,
# shipByDays, inspectByDays, disputeWindowDays, documentDigest
DEFAULT_POLICY = (30, 1000, True, 0, 3, 7, 14, 7, b"\x11" * 32)
# windowDays, instant, instantMaxValue, documentDigest
DEFAULT_TERMS = (45, True, 0, b"\x22" * 32)


@pytest.fixture(scope="session", autouse=True)
def cheap_reverts() -> None:
    """fn_isolation's chain.revert() runs gc.collect() over the whole heap after every test; freezing
    what is alive at session start keeps that small (about 0.1 s saved per test on these machines)."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def isolation(fn_isolation: Any) -> None:
    pass


@pytest.fixture(scope="module")
def admin() -> Any:
    return accounts[0]


@pytest.fixture(scope="module")
def manufacturer() -> Any:
    return accounts[1]


@pytest.fixture(scope="module")
def merchant() -> Any:
    return accounts[2]


@pytest.fixture(scope="module")
def carrier() -> Any:
    return accounts[3]


@pytest.fixture(scope="module")
def inspector() -> Any:
    return accounts[4]


@pytest.fixture(scope="module")
def arbiter() -> Any:
    return accounts[5]


@pytest.fixture(scope="module")
def consumer() -> Any:
    return accounts[6]


@pytest.fixture(scope="module")
def merchant2() -> Any:
    return accounts[7]


@pytest.fixture(scope="module")
def consumer2() -> Any:
    return accounts[8]


@pytest.fixture(scope="module")
def outsider() -> Any:
    return accounts[9]


@pytest.fixture(scope="module")
def ledger(
    admin: Any, manufacturer: Any, merchant: Any, merchant2: Any, carrier: Any, inspector: Any, arbiter: Any
) -> Any:
    contract = ProvenanceLedger.deploy(admin, {"from": admin})
    grants = [
        (contract.MANUFACTURER_ROLE(), manufacturer),
        (contract.MERCHANT_ROLE(), merchant),
        (contract.MERCHANT_ROLE(), merchant2),
        (contract.CARRIER_ROLE(), carrier),
        (contract.INSPECTOR_ROLE(), inspector),
        (contract.ARBITER_ROLE(), arbiter),
    ]
    for role, account in grants:
        contract.grantRole(role, account, {"from": admin})
    return contract


@pytest.fixture(scope="module")
def escrow(ledger: Any, admin: Any) -> Any:
    contract = ReturnsEscrow.deploy(ledger, {"from": admin})
    ledger.grantRole(ledger.RECORDER_ROLE(), contract, {"from": admin})
    return contract


@pytest.fixture(scope="module")
def batches(ledger: Any, admin: Any) -> Any:
    """BatchAnchor with BATCH_ANCHOR_ROLE, as scripts/deploy.py grants it: the escrow accepts its scans' proofs."""
    contract = BatchAnchor.deploy(ledger, {"from": admin})
    ledger.grantRole(ledger.BATCH_ANCHOR_ROLE(), contract, {"from": admin})
    return contract


@pytest.fixture(scope="module")
def exchanges(ledger: Any, escrow: Any, admin: Any) -> Any:
    """ExchangeEscrow beside the escrow, with the roles scripts/deploy.py grants it."""
    contract = ExchangeEscrow.deploy(ledger, escrow, {"from": admin})
    ledger.grantRole(ledger.EXCHANGE_ROLE(), contract, {"from": admin})
    return contract


@pytest.fixture(scope="module")
def token(admin: Any, merchant: Any, merchant2: Any, escrow: Any) -> Any:
    contract = DevStablecoin.deploy(admin, {"from": admin})
    for m in (merchant, merchant2):
        contract.mint(m, 10**15, {"from": admin})
        contract.approve(escrow, 2**256 - 1, {"from": m})
    return contract


@pytest.fixture(scope="module")
def terms(exchanges: Any, escrow: Any, token: Any, policy: Any, merchant: Any) -> tuple[Any, ...]:
    """DEFAULT_TERMS published for the merchant's policy version 1; the merchant's collateral approved."""
    exchanges.publishExchangeTerms(1, DEFAULT_TERMS, {"from": merchant})
    token.approve(exchanges, 2**256 - 1, {"from": merchant})
    return DEFAULT_TERMS


@pytest.fixture(scope="module")
def stocked(register: Callable[..., bytes], ledger: Any, exchanges: Any, merchant: Any) -> Any:
    """stocked(n, price=PRICE, owner=merchant) -> itemId registered, stocked (sellable) and list-priced."""

    def _stocked(n: int, price: int = PRICE, owner: Any = None) -> bytes:
        owner = owner or merchant
        itemid = register(n, owner)
        ledger.recordEvent(event_input(itemid, STOCKING, SELLABLE_ACCESSIBLE), {"from": owner})
        exchanges.setListPrices([itemid], price, {"from": owner})
        return itemid

    return _stocked


def err(name: str, *args: Any) -> str:
    """The revert message brownie decodes for custom error `name(args)`."""

    def fmt(arg: Any) -> str:
        if isinstance(arg, bytes):
            return str(bytes(arg))
        arg = getattr(arg, "address", arg)  # accounts and contracts print as lowercase hex
        return arg.lower() if isinstance(arg, str) and arg.startswith("0x") else str(arg)

    return f"{name}: " + ", ".join(fmt(a) for a in args)


@pytest.fixture(scope="module")
def policy(escrow: Any, merchant: Any) -> tuple[Any, ...]:
    escrow.publishPolicy(DEFAULT_POLICY, {"from": merchant})
    return DEFAULT_POLICY


def item_uri(n: int) -> str:
    return f"urn:epc:id:sgtin:0614141.107346.{n}"


def item_id(uri: str) -> bytes:
    return bytes(web3.keccak(text=uri))


def event_input(
    itemid: bytes,
    biz_step: int,
    disposition: int,
    *,
    document: bytes = ZERO32,
    biz_transaction: bytes = ZERO32,
    location: bytes = LOCATION,
) -> tuple[Any, ...]:
    return (itemid, biz_step, disposition, location, document, biz_transaction)


@pytest.fixture(scope="module")
def register(ledger: Any, manufacturer: Any, merchant: Any) -> Any:
    """register(n, merchant=merchant) -> itemId of item_uri(n)."""

    def _register(n: int, owner: Any = None) -> bytes:
        tx = ledger.registerItem(item_uri(n), 614141107346, owner or merchant, ZERO32, LOCATION, {"from": manufacturer})
        return bytes(tx.return_value)

    return _register


@pytest.fixture(scope="module")
def sold_item(
    register: Callable[..., bytes], escrow: Any, token: Any, policy: Any, merchant: Any, consumer: Any
) -> Any:
    """sold_item(n) -> itemId registered and sold to `consumer` at PRICE under DEFAULT_POLICY."""

    def _sold(n: int, buyer: Any = None) -> bytes:
        itemid = register(n)
        escrow.recordSale(itemid, buyer or consumer, token, PRICE, b"\x33" * 32, LOCATION, {"from": merchant})
        return itemid

    return _sold


@pytest.fixture(scope="module")
def authorized(sold_item: Any, escrow: Any, merchant: Any) -> Any:
    """authorized(n, fast=False, amount=PRICE) -> (itemId, returnId) of a funded return."""

    def _authorized(n: int, fast: bool = False, amount: int = PRICE) -> tuple[bytes, bytes]:
        itemid = sold_item(n)
        tx = escrow.authorizeReturn(itemid, amount, fast, {"from": merchant})
        return itemid, bytes(tx.return_value)

    return _authorized


def set_next_timestamp(ts: int) -> None:
    """Makes the next mined block (the next transaction) have exactly this timestamp."""
    web3.provider.make_request("evm_setNextBlockTimestamp", [ts])


def latest_timestamp() -> int:
    return int(chain[-1].timestamp)
