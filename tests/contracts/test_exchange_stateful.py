"""Stateful property test of money with exchanges (hypothesis, via brownie).

Random sequences of sales, refund returns and exchanges (standard and instant, cheaper, even and
dearer replacements, so partial differences), every step of their lifecycles with the unit-level
check (the right unit or another one scanned), collateral releases and claims, restocking and
time jumps (often onto a deadline or one second past it), by random callers: many calls revert.
Nothing is predicted per call; after each step, from the events and the token balances:
(1) every deposit in (ReturnAuthorized, ExchangeAuthorized collateral) is paid out at most once
(EscrowSettled, ExchangeCollateralSettled), a return's payouts add up to its deposit and a
collateral's to the collateral; (2) ReturnsEscrow holds exactly the unsettled deposits and
ExchangeEscrow the unsettled collateral; (3) no token is created or lost: deposits in = payouts out
+ what the two contracts hold. STATEFUL_EXAMPLES / STATEFUL_STEPS run it longer.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from brownie import chain
from brownie.exceptions import VirtualMachineError
from brownie.test import given
from conftest import (
    AUTHORIZED,
    CANCELLED,
    DAY,
    DISPUTED,
    EXPIRED,
    IN_TRANSIT_STATE,
    LOCATION,
    RECEIVED,
    REJECTED,
    SELLABLE_ACCESSIBLE,
    STOCKING,
    ZERO32,
    event_input,
    item_id,
    item_uri,
    latest_timestamp,
    set_next_timestamp,
)
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("STATEFUL_EXAMPLES", "25"))
STEPS = int(os.environ.get("STATEFUL_STEPS", "40"))
ITEMS = 6
LIST_PRICES = [50_000_000, 45_000_000, 50_000_000, 62_500_000, 50_000_001, 30_000_000]
REPORT = b"\x44" * 32
ZERO_ADDRESS = "0x" + "00" * 20
STEPS_ON_AN_ID = (
    "ship",
    "receive",
    "receive_unit",
    "inspect",
    "inspect_unit",
    "dispute",
    "resolve",
    "reclaim",
    "claim_uninspected",
    "cancel",
    "extra_payment",
    "release_replacement",
    "release_collateral",
    "claim_collateral",
)


class ExchangeMachine:
    """The contracts, what the events said so far, and the rules; `setup` starts a run."""

    def __init__(self, accounts: Any, ledger: Any, escrow: Any, exchanges: Any, token: Any) -> None:
        self.ledger, self.escrow, self.exchanges, self.token = ledger, escrow, exchanges, token
        self.accounts = list(accounts[:10])
        self.merchant, self.carrier, self.inspector, self.arbiter = accounts[2], accounts[3], accounts[4], accounts[5]
        self.consumers = [accounts[6], accounts[8]]
        self.items = [item_id(item_uri(7000 + n)) for n in range(ITEMS + 1)]
        for n in range(ITEMS):
            ledger.registerItem(item_uri(7000 + n), 1, self.merchant, ZERO32, LOCATION, {"from": accounts[1]})
            ledger.recordEvent(event_input(self.items[n], STOCKING, SELLABLE_ACCESSIBLE), {"from": self.merchant})
            exchanges.setListPrices([self.items[n]], LIST_PRICES[n], {"from": self.merchant})
        escrow.publishPolicy((30, 1000, True, 0, 3, 7, 14, 7, ZERO32), {"from": self.merchant})
        exchanges.publishExchangeTerms(1, (30, True, 0, ZERO32), {"from": self.merchant})
        token.approve(exchanges, 2**256 - 1, {"from": self.merchant})
        self.holders = [*self.accounts, escrow, exchanges]
        self.supply = sum(int(token.balanceOf(h)) for h in self.holders)
        self.stats: Counter[str] = Counter()

    def setup(self) -> None:
        self.ids: list[bytes] = []  # every return id, exchanges included, in order of authorization
        self.deposits: dict[bytes, int] = {}
        self.collateral: dict[bytes, int] = {}
        self.paid: dict[bytes, list[tuple[int, int]]] = {}
        self.collateral_paid: dict[bytes, list[int]] = {}
        self.stats["runs"] += 1

    def initialize_exchanges(self, flag: bool, frac: int) -> None:
        """Each run starts with two sold items in exchanges (dearer and cheaper, one of them instant)
        and a third sold item with a refund return, through the same calls as the rules."""
        for item in (0, 1, 2):
            self.rule_sell(item, flag)
        self.rule_exchange(0, 3, flag, 0)
        self.rule_exchange(1, 5, not flag, 0)
        self.rule_return(2, max(frac, 1), flag)

    # ---- rules ------------------------------------------------------------------------------------
    def rule_sell(self, item: int, flag: bool) -> None:
        consumer = self.consumers[int(flag)]
        self._send(
            "sell",
            self.escrow.recordSale,
            self.items[item],
            consumer,
            self.token,
            LIST_PRICES[item],
            ZERO32,
            LOCATION,
            who=self.merchant,
        )

    def rule_return(self, item: int, frac: int, flag: bool) -> None:
        amount = LIST_PRICES[item] * frac // 1000
        self._send("return", self.escrow.authorizeReturn, self.items[item], amount, flag, who=self.merchant)

    def rule_exchange(self, item: int, other: int, flag: bool, jump: int) -> None:
        replacement = self.items[other]
        difference = LIST_PRICES[other % ITEMS] - LIST_PRICES[item] + (1 if jump == 3 else 0)  # 3: a wrong one
        self._send(
            "exchange",
            self.exchanges.authorizeExchange,
            self.items[item],
            replacement,
            difference,
            flag,
            who=self.merchant,
        )

    def rule_restock(self, item: int) -> None:
        self._send(
            "restock",
            self.ledger.recordEvent,
            event_input(self.items[item], STOCKING, SELLABLE_ACCESSIBLE),
            who=self.merchant,
        )

    def rule_advance(self, pick: int, other: int, flag: bool, frac: int) -> None:
        """A step that the state of a return (or exchange) allows, by the entitled caller; the unit
        scanned at receiving or inspection is the one sold, or one time in eight another."""
        if not self.ids:
            return
        states = {xid: int(self.escrow.returnOf(xid)["state"]) for xid in self.ids}
        going = [
            xid
            for xid, state in states.items()
            if state in (AUTHORIZED, IN_TRANSIT_STATE, RECEIVED, REJECTED, DISPUTED)
        ]
        xid = (going or self.ids)[pick % len(going or self.ids)]
        state = states[xid]
        exchange = [] if self.exchanges.exchangeOf(xid)["merchant"] == ZERO_ADDRESS else ["release_replacement"]
        options = {
            AUTHORIZED: ["ship", "ship", "extra_payment", "cancel", *exchange],
            IN_TRANSIT_STATE: ["receive_unit", "release_collateral", *exchange],
            RECEIVED: ["inspect_unit"],
            REJECTED: ["dispute", "reclaim"],
            DISPUTED: ["resolve"],
            CANCELLED: ["claim_collateral"],
            EXPIRED: ["claim_collateral"],
        }.get(state, ["release_collateral", *exchange])
        scanned = other if flag and pick % 4 == 0 else self.items.index(bytes(self.escrow.returnOf(xid)["itemId"]))
        self.rule_step(options[frac % len(options)], self.ids.index(xid), scanned, frac % 2 == 0, frac)

    def rule_step(self, action: str, pick: int, other: int, flag: bool, frac: int) -> None:
        if not self.ids:
            return
        xid = self.ids[pick % len(self.ids)]
        who = self.accounts[pick % 10] if pick >= 48 else None  # a quarter of the calls by a random account
        e, x, scanned = self.escrow, self.exchanges, self.items[other]
        calls = {
            "ship": (e.markInTransit, (xid, LOCATION), self.carrier),
            "receive": (e.markReceived, (xid, LOCATION), self.carrier if flag else self.merchant),
            "receive_unit": (e.markReceivedUnit, (xid, LOCATION, scanned), self.carrier),
            "inspect": (e.recordInspection, (xid, flag, REPORT, LOCATION), self.inspector),
            "inspect_unit": (e.recordInspectionUnit, (xid, flag, REPORT, LOCATION, scanned), self.inspector),
            "dispute": (e.dispute, (xid, ZERO32), self._consumer_of(xid)),
            "resolve": (e.resolveDispute, (xid, self.deposits.get(xid, 0) * frac // 1000, REPORT), self.arbiter),
            "reclaim": (e.reclaim, (xid,), self.merchant),
            "claim_uninspected": (e.claimUninspected, (xid,), self._consumer_of(xid)),
            "cancel": (e.cancelReturn, (xid,), self._consumer_of(xid)),
            "extra_payment": (x.recordExtraPayment, (xid, REPORT), self.merchant),
            "release_replacement": (x.releaseReplacement, (xid, LOCATION), self.merchant),
            "release_collateral": (x.releaseCollateral, (xid,), self.carrier),
            "claim_collateral": (x.claimCollateral, (xid,), self.merchant),
        }
        fn, args, caller = calls[action]
        self._send(action, fn, *args, who=who or caller)

    def rule_time(self, secs: int, jump: int, pick: int) -> None:
        """Moves time by `secs`, or onto (jump 1) or one second past (jump 2) a deadline of a return."""
        deadlines = []
        for xid in self.ids:
            r = self.escrow.returnOf(xid)
            deadlines += [int(r["shipBy"]), int(r["inspectBy"]), int(r["disputeBy"])]
        now = latest_timestamp() + 1
        future = sorted(d for d in deadlines if d >= now)
        if jump in (1, 2) and future:
            set_next_timestamp(future[pick % len(future)] + jump - 1)
            self.stats["deadline jumps"] += 1
        else:
            chain.sleep(secs)

    # ---- invariants -------------------------------------------------------------------------------
    def invariant_money(self) -> None:
        for xid, payouts in self.paid.items():
            assert len(payouts) == 1, f"{xid.hex()} paid {len(payouts)} times"
            assert sum(payouts[0]) == self.deposits[xid], f"{xid.hex()}: payouts != deposit"
        for xid, collateral_payouts in self.collateral_paid.items():
            assert collateral_payouts == [self.collateral[xid]], f"{xid.hex()}: collateral paid {collateral_payouts}"
        held_escrow = sum(amount for xid, amount in self.deposits.items() if xid not in self.paid)
        held_collateral = sum(amount for xid, amount in self.collateral.items() if xid not in self.collateral_paid)
        assert int(self.token.balanceOf(self.escrow)) == held_escrow
        assert int(self.token.balanceOf(self.exchanges)) == held_collateral
        assert sum(int(self.token.balanceOf(h)) for h in self.holders) == self.supply

    # ---- helpers ----------------------------------------------------------------------------------
    def _consumer_of(self, xid: bytes) -> Any:
        return self.escrow.returnOf(xid)["consumer"]

    def _send(self, name: str, fn: Any, *args: Any, who: Any) -> None:
        try:
            tx = fn(*args, {"from": who, "gas_limit": 3_000_000})
        except VirtualMachineError:
            self.stats[f"{name} reverted"] += 1
            return
        self.stats[f"{name} ok"] += 1
        events = tx.events
        for ev in _occurrences(events, "ReturnAuthorized"):
            rid = bytes(ev["returnId"])
            self.ids.append(rid)
            self.deposits[rid] = int(ev["amount"])
        for ev in _occurrences(events, "ExchangeAuthorized"):
            self.collateral[bytes(ev["exchangeId"])] = int(ev["collateral"])
            self.stats["instant" if ev["instant"] else "standard"] += 1
        for ev in _occurrences(events, "EscrowSettled"):
            payout = (int(ev["consumerAmount"]), int(ev["merchantAmount"]))
            self.paid.setdefault(bytes(ev["returnId"]), []).append(payout)
        for ev in _occurrences(events, "ExchangeCollateralSettled"):
            self.collateral_paid.setdefault(bytes(ev["exchangeId"]), []).append(int(ev["amount"]))
        if "ReturnUnitMismatch" in events:
            self.stats["unit mismatches"] += 1


def _occurrences(events: Any, name: str) -> list[Any]:
    """The events named `name` (brownie's EventDict has no get)."""
    return list(events[name]) if name in events else []


# One step: (rule, item, other item, pick, flag, frac, secs, jump, action on an id)
STEP = st.tuples(
    # hypothesis favours the first entries: the lifecycle's next steps first
    st.sampled_from((*["advance"] * 6, "time", "exchange", "step", "exchange", "return", "restock", "sell")),
    st.integers(0, ITEMS - 1),
    st.integers(0, ITEMS),  # ITEMS: an EPC not on the ledger
    st.integers(0, 63),
    st.booleans(),
    st.integers(0, 1000),
    st.integers(1, 3 * DAY),
    st.integers(0, 3),
    st.sampled_from(STEPS_ON_AN_ID),
)


def test_exchange_money_stateful(accounts: Any, ledger: Any, escrow: Any, exchanges: Any, token: Any) -> None:
    machine = ExchangeMachine(accounts, ledger, escrow, exchanges, token)
    chain.snapshot()

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    # brownie.test.given (hypothesis' given, for brownie) is untyped: brownie is not installed in .venv
    @given(  # type: ignore[untyped-decorator]
        st.booleans(), st.integers(1, 1000), st.lists(STEP, min_size=STEPS // 2, max_size=STEPS)
    )
    def run(flag: bool, frac: int, steps: list[tuple[Any, ...]]) -> None:
        chain.revert()
        machine.setup()
        machine.initialize_exchanges(flag, frac)
        machine.invariant_money()
        for rule, item, other, pick, flag_, frac_, secs, jump, action in steps:
            if rule == "sell":
                machine.rule_sell(item, flag_)
            elif rule == "return":
                machine.rule_return(item, frac_, flag_)
            elif rule == "exchange":
                machine.rule_exchange(item, other, flag_, jump)
            elif rule == "restock":
                machine.rule_restock(item)
            elif rule == "advance":
                machine.rule_advance(pick, other, flag_, frac_)
            elif rule == "step":
                machine.rule_step(action, pick, other, flag_, frac_)
            else:
                machine.rule_time(secs, jump, pick)
            machine.invariant_money()

    run()
    print("\nstateful exchange test coverage:", dict(sorted(machine.stats.items())))
