"""Stateful property test of ReturnsEscrow and ProvenanceLedger (hypothesis, via brownie).

Random sequences of every escrow action, legal or not (a return's first carrier scan also as the Merkle
proof of a batched scan: valid, forged, misdirected or replayed), and time jumps (often exactly onto a deadline
or one second past it) on three items (and an unregistered one), three consumers and two merchants.
A Python model predicts on its own which calls revert (and why), every state, deadline, payout,
token balance and event. After each step: (1) each return is paid at most once and consumer +
merchant payout = deposit (EscrowSettled events, token balances); (2) the escrow holds the deposits
of the unsettled returns; (3) each ReturnStateChanged starts from the previously observed state and
is a lifecycle edge of IReturnsEscrow; (4) each item's head and count in the ledger equal the hash
chain replayed from its ItemEventRecorded events. STATEFUL_EXAMPLES / STATEFUL_STEPS run it longer.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import brownie.test
from brownie import chain, web3
from brownie.exceptions import TransactionError, VirtualMachineError
from brownie.network.transaction import TransactionReceipt
from conftest import *
from eth_abi.abi import encode
from eth_utils.crypto import keccak
from hypothesis import HealthCheck
from hypothesis import strategies as st
from test_batch_anchor import four_leaf_tree, leaf

EXAMPLES = int(os.environ.get("STATEFUL_EXAMPLES", "60"))
STEPS = int(os.environ.get("STATEFUL_STEPS", "60"))

# Every transition of the lifecycle in IReturnsEscrow, as (previous, next).
EDGES = {(AUTHORIZED, CANCELLED), (AUTHORIZED, EXPIRED), (AUTHORIZED, IN_TRANSIT_STATE)}
EDGES |= {(IN_TRANSIT_STATE, RECEIVED), (IN_TRANSIT_STATE, CONSUMER_CLAIMED), (RECEIVED, CONSUMER_CLAIMED)}
EDGES |= {(RECEIVED, ACCEPTED), (RECEIVED, REJECTED), (REJECTED, DISPUTED), (REJECTED, RECLAIMED)}
EDGES |= {(DISPUTED, RESOLVED)}
ACTIONS: tuple[str, ...] = ("publish_policy", "record_sale", "authorize", "cancel", "mark_in_transit", "mark_received")
ACTIONS += ("record_inspection", "dispute", "resolve_dispute", "reclaim", "claim_uninspected", "prove_in_transit")
PRICE_MAX = 10**8
UNREGISTERED = 3  # index of the item that is never registered
# windowDays, feeBps, fastRefund, fastRefundMaxValue, fastRefundMaxReturns90d, shipByDays,
# inspectByDays, disputeWindowDays, documentDigest (the policy field order)
FIRST_POLICY = (30, 1000, True, 0, 3, 7, 14, 7, b"\x11" * 32)
# Params.bad -> (policy field index, invalid value, field name)
BAD_FIELDS = {0: (0, 0, "windowDays"), 1: (0, 366, "windowDays"), 2: (1, 5001, "restockingFeeBps")}
BAD_FIELDS |= {3: (5, 0, "shipByDays"), 4: (7, 91, "disputeWindowDays")}
Events = dict[str, list[Any]]  # predicted events by name, fields in ABI order


# The random choices of one action: name -> strategy.
PARAMS = {
    "pick": st.integers(0, 9),  # < 6: a return in a fitting state, < 9: any return, 9: an unknown id
    "who": st.integers(0, 24),  # < 15: a caller entitled to act, else accounts[who - 15]
    "item": st.integers(0, UNREGISTERED),
    "buyer": st.integers(0, 2),
    "tok": st.integers(0, 9),  # 0: an account without code as the token
    "price": st.integers(0, PRICE_MAX),
    # per mille of the price (authorize) or deposit (resolve); a quarter of them on the boundaries:
    # 0, 1000, price + 1 (1001), the fast refund limit (1002) and one more (1003)
    "frac": st.one_of(*[st.integers(0, 1000)] * 3, st.sampled_from([0, 1000, 1001, 1002, 1003])),
    "fast": st.booleans(),
    "passed": st.booleans(),
    "kind": st.integers(0, 4),  # 0: no inspection report; time jumps: see rule_time_jump
    "bad": st.integers(0, 14),  # 0..4: one policy field out of range (BAD_FIELDS)
    "window": st.integers(1, 365),
    "fee": st.integers(0, 5000),
    "maxv": st.one_of(st.just(0), st.integers(1, PRICE_MAX)),  # fast refund limit, 0: none
    "ship": st.integers(1, 90),
    "inspect": st.integers(1, 90),
    "disp": st.integers(1, 90),
}


class Params(NamedTuple):
    """One draw of PARAMS: the fields in PARAMS' order."""

    pick: int
    who: int
    item: int
    buyer: int
    tok: int
    price: int
    frac: int
    fast: bool
    passed: bool
    kind: int
    bad: int
    window: int
    fee: int
    maxv: int
    ship: int
    inspect: int
    disp: int


assert list(PARAMS) == list(Params._fields)


@dataclass(eq=False)
class Sale:
    seq: int
    consumer: Any
    merchant: Any
    price: int
    version: int
    sold_at: int
    returns: int = 0
    open: bool = False
    closed: bool = False


@dataclass(eq=False)
class Ret:
    rid: bytes
    item: int
    sale: Sale
    amount: int
    fast: bool
    policy: tuple[Any, ...]
    ship_by: int
    inspect_by: int = 0
    dispute_by: int = 0
    state: int = AUTHORIZED
    settled: bool = False


def _norm(value: Any) -> Any:
    if hasattr(value, "address"):  # an account or a contract
        value = str(value)
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, (tuple, list)):
        return tuple(_norm(v) for v in value)
    return value


def _transact(fn: Any, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
    """``fn(*args, params)``, but when brownie 1.22 reports a mined transaction as "dropped" (its poll
    can see the sender's nonce move before anvil answers the transaction by hash, seen under heavy CPU
    load), the receipt it missed: the nonce only moves when this very transaction was mined (nothing else
    sends from these accounts). Such a receipt may be a revert (status 0) instead of a VirtualMachineError."""
    try:
        return fn(*args, params)
    except TransactionError as exc:
        found = re.search(r"0x[0-9a-fA-F]{64}", str(exc))
        if "dropped" not in str(exc) or found is None:
            raise
        web3.eth.get_transaction_receipt(found.group(0))  # raises if it really was never mined
        return TransactionReceipt(found.group(0))


def _events(tx: Any, name: str) -> list[Any]:
    if name not in tx.events:  # (brownie's EventDict has no get())
        return []
    return [tx.events[name][i] for i in range(len(tx.events[name]))]


def _view(address: Any, fn: Any, *args: Any) -> Any:
    """A view call by raw eth_call: about 6x faster than brownie's ContractCall."""
    request = {"to": str(address), "data": fn.encode_input(*args)}
    return fn.decode_output(web3.provider.make_request("eth_call", [request, "latest"])["result"])


def replay_chain(itemid: bytes, events: list[dict[str, Any]]) -> tuple[bytes, int]:
    """Recomputes an item's hash chain (formula in IProvenanceLedger) from its emitted events."""
    head, count = ZERO32, 0
    for ev in events:
        assert ev["seq"] == count and bytes(ev["prevHash"]) == head, f"chain broken at seq {count}"
        data = keccak(encode(["bytes32"] * 3, [bytes(ev[k]) for k in ("location", "document", "bizTransaction")]))
        fields = [head, itemid, count, ev["bizStep"], ev["disposition"], str(ev["actor"]), data, ev["timestamp"]]
        head = keccak(
            encode(["bytes32", "bytes32", "uint64", "uint8", "uint8", "address", "bytes32", "uint64"], fields)
        )
        assert bytes(ev["eventHash"]) == head, f"eventHash of seq {count} does not follow the formula"
        count += 1
    return head, count


class EscrowMachine:
    # Rule arguments take the strategy of the same name.
    args = st.builds(Params, **PARAMS)
    action = st.sampled_from(ACTIONS)
    moves = st.lists(st.integers(0, 255), min_size=1, max_size=6)
    secs = st.integers(1, 4 * DAY)
    sent: int  # transactions sent by all runs (set on the class: see __init__)

    def __init__(cls, accounts: Any, ledger: Any, escrow: Any, token: Any, batches: Any) -> None:  # noqa: N805 (brownie calls it on the class)
        cls.ledger, cls.escrow, cls.token, cls.chain_id, cls.batches = ledger, escrow, token, chain.id, batches
        cls.actors = list(accounts[:10])
        cls.carrier, cls.inspector, cls.arbiter = accounts[3], accounts[4], accounts[5]
        cls.merchants, cls.consumers = [accounts[2], accounts[7]], [accounts[6], accounts[8], accounts[9]]
        cls.item_ids = [item_id(item_uri(9000 + n)) for n in range(UNREGISTERED + 1)]
        cls.item_merchant = [cls.merchants[0], cls.merchants[0], cls.merchants[1], cls.merchants[0]]
        cls.base_events = {}
        for n in range(UNREGISTERED):
            owner = cls.item_merchant[n]
            tx = ledger.registerItem(item_uri(9000 + n), 1, owner, ZERO32, LOCATION, {"from": accounts[1]})
            cls.base_events[n] = [dict(ev) for ev in _events(tx, "ItemEventRecorded")]
        escrow.publishPolicy(FIRST_POLICY, {"from": cls.merchants[0]})  # merchant2 starts without a policy
        cls.base_balances = {str(a): token.balanceOf(a) for a in cls.merchants + cls.consumers}
        cls.sent = 0  # transactions sent by all runs
        cls.stats: Counter[str] = Counter()  # outcomes per call and transitions seen, printed at the end

    def teardown_final(cls) -> None:  # noqa: N805
        print("\nstateful escrow test coverage:", dict(sorted(cls.stats.items())))

    def setup(self) -> None:
        self.now = latest_timestamp() + 1  # the timestamp of the next transaction
        self.policies: dict[str, list[tuple[Any, ...]]] = {
            str(self.merchants[0]): [FIRST_POLICY],
            str(self.merchants[1]): [],
        }
        self.sales: list[Sale | None] = [None] * (UNREGISTERED + 1)
        self.returns: list[Ret] = []
        self.balances = dict(self.base_balances)
        self.item_events = {n: list(evs) for n, evs in self.base_events.items()}
        self.observed: dict[bytes, int] = {}  # last state seen in events, per return
        self.paid: dict[bytes, tuple[int, int]] = {}  # EscrowSettled amounts, per return
        self.deposits: dict[bytes, int] = {}  # ReturnAuthorized amounts, per return
        self.touched: set[Ret] = set()
        self.forced: Ret | None = None
        self.proofs: dict[bytes, tuple[Any, ...]] = {}  # the last proved scan's arguments, per return (replays)
        self.stats["runs"] += 1

    def initialize_sales(self, args: Params) -> None:
        """Each run starts from random policy terms, two sold items and one authorization (through
        the same model-checked actions as the rules)."""
        p = args._replace(pick=9, who=0, tok=1, bad=5)
        self.act_publish_policy(p)
        self.act_record_sale(p._replace(item=0, price=p.price or 1))
        self.act_record_sale(p._replace(item=1, buyer=(p.buyer + 1) % 3, price=PRICE_MAX - p.price or 1))
        self.act_authorize(p._replace(item=0))

    # ---- rules ------------------------------------------------------------------------------------
    def rule_random_action(self, action: str, args: Params) -> None:
        """Any action on a random target (more often than not a return in a fitting state) by a
        random caller (more often than not one entitled to it): many of these must revert."""
        getattr(self, f"act_{action}")(args)

    def rule_advance(self, moves: list[int], args: Params) -> None:
        """A burst of lifecycle steps, mostly forward, on one return (or item), each one followed by
        the invariant checks, so that every run gets deep into the lifecycle."""
        p = args._replace(pick=9, tok=1, bad=5, kind=args.kind or 1, who=args.who if args.who > 20 else args.who % 15)
        target: Ret | None = None
        for move in moves:
            options = self._next_steps(target)
            action, arg = options[move % len(options)]
            target = arg if isinstance(arg, Ret) else None
            if action == "jump":  # onto the deadline that the state opens, or one second past it
                deadline = {REJECTED: arg.dispute_by, AUTHORIZED: arg.ship_by}.get(arg.state, arg.inspect_by)
                self.now = max(self.now, deadline + p.kind % 2)
                continue
            count, self.forced = len(self.returns), target
            getattr(self, f"act_{action}")(p._replace(item=arg) if isinstance(arg, int) else p)
            self.forced = None
            if action == "authorize" and len(self.returns) > count:
                target = self.returns[-1]
            self.invariant_money()
            self.invariant_stored_records()
            self.invariant_hash_chains()

    def rule_time_jump(self, args: Params, secs: int) -> None:
        """Moves the next transaction's time by `secs`, or exactly onto (kind 1, 2) or one second past
        (kind 3, 4) a deadline of an open return."""
        self.stats["time jumps"] += 1
        deadlines = {r.ship_by for r in self.returns if r.state == AUTHORIZED}
        deadlines |= {r.inspect_by for r in self.returns if r.state in (IN_TRANSIT_STATE, RECEIVED)}
        deadlines |= {r.dispute_by for r in self.returns if r.state == REJECTED and not r.settled}
        future = sorted(d for d in deadlines if d + 1 >= self.now)
        if args.kind == 0 or not future:
            self.now += secs
        else:
            self.now = max(self.now, future[args.pick % len(future)] + (0 if args.kind <= 2 else 1))

    # ---- actions: the model's prediction, then the call --------------------------------------------
    def act_publish_policy(self, p: Params) -> None:
        caller = self._caller(p.who, self.merchants)
        fields: list[Any] = [
            p.window,
            p.fee,
            p.fast,
            p.maxv,
            3,
            p.ship,
            p.inspect,
            p.disp,
            keccak(text=f"policy {self.now}"),
        ]
        if p.bad in BAD_FIELDS:
            fields[BAD_FIELDS[p.bad][0]] = BAD_FIELDS[p.bad][1]
        policy = tuple(fields)
        errors = self._check(caller not in self.merchants, "EscrowMissingRole")
        errors += [f"EscrowPolicyInvalid: {BAD_FIELDS[p.bad][2]}"] if p.bad in BAD_FIELDS else []

        def apply(out: Events) -> None:
            self.policies[str(caller)].append(policy)
            out["PolicyPublished"] = [(caller, len(self.policies[str(caller)]), policy, self.now - 1)]

        self._send(self.escrow.publishPolicy, (policy,), caller, errors, apply)

    def act_record_sale(self, p: Params) -> None:
        merchant, sale, consumer = self.item_merchant[p.item], self.sales[p.item], self.consumers[p.buyer]
        caller = self._caller(p.who, [merchant])
        token = self.consumers[2] if p.tok == 0 else self.token
        order_ref = keccak(text=f"order {self.now}")
        errors = self._check(p.item == UNREGISTERED, "EscrowItemUnknown")
        errors = errors or self._check(caller != merchant, "EscrowNotSeller")
        errors = errors or self._check(not self.policies[str(merchant)], "EscrowPolicyMissing")
        errors += self._check(token != self.token, "EscrowSaleInvalid: token")
        errors += self._check(p.price == 0, "EscrowSaleInvalid: price")
        errors += self._check(sale is not None and not sale.closed, "EscrowItemAlreadySold")

        def apply(out: Events) -> None:
            seq, version = (sale.seq + 1 if sale else 1), len(self.policies[str(merchant)])
            self.sales[p.item] = Sale(seq, consumer, merchant, p.price, version, self.now - 1)
            row = (self.item_ids[p.item], merchant, consumer, seq, self.token, p.price, version, order_ref)
            out["SaleRecorded"] = [(*row, self.now - 1)]
            self._item_event(out, p.item, caller, RETAIL_SELLING, RETAIL_SOLD, ZERO32, order_ref)

        args = (self.item_ids[p.item], consumer, token, p.price, order_ref, LOCATION)
        self._send(self.escrow.recordSale, args, caller, errors, apply)

    def act_authorize(self, p: Params) -> None:
        ready = [n for n, s in enumerate(self.sales) if s and not s.closed and not s.open]
        item = ready[p.pick % len(ready)] if p.pick < 6 and ready else p.item
        sale = self.sales[item]
        caller = self._caller(p.who, [sale.merchant if sale else self.item_merchant[item]])
        price = sale.price if sale else PRICE_MAX
        policy = self.policies[str(sale.merchant)][sale.version - 1] if sale else FIRST_POLICY
        limit = policy[3] or price
        amount = {1001: price + 1, 1002: limit, 1003: limit + 1}.get(p.frac, price * p.frac // 1000)
        if sale is None or sale.closed:
            errors = ["EscrowNoActiveSale"]
        else:
            errors = self._check(caller != sale.merchant, "EscrowNotMerchant") or self._check(
                sale.open, "EscrowReturnAlreadyOpen"
            )
        errors = errors or self._check(amount == 0 or amount > price, "EscrowInvalidAmount")
        errors = errors or self._check(p.fast and not (policy[2] and amount <= limit), "EscrowFastRefundNotAllowed")

        def apply(out: Events) -> None:
            assert sale is not None
            rid = self._return_id(item, sale.seq, sale.returns)
            sale.returns, sale.open = sale.returns + 1, True
            r = Ret(rid, item, sale, amount, p.fast, policy, self.now - 1 + policy[5] * DAY)
            self.returns.append(r)
            self.touched.add(r)
            self.balances[str(sale.merchant)] -= amount
            row = (rid, self.item_ids[item], sale.consumer, sale.merchant, self.token, amount, policy[1], p.fast)
            out["ReturnAuthorized"] = [(*row, sale.version, sale.seq, r.ship_by)]

        self._send(self.escrow.authorizeReturn, (self.item_ids[item], amount, p.fast), caller, errors, apply)

    def act_cancel(self, p: Params) -> None:
        rid, r = self._target(p.pick, (AUTHORIZED,))
        caller = self._caller(p.who, [r.sale.consumer if r else self.consumers[0]])
        if r is None:
            errors = self._unknown()
        else:
            errors = self._check(caller != r.sale.consumer, "EscrowNotConsumer") or self._state(r, AUTHORIZED)
        self._send_end(self.escrow.cancelReturn, (rid,), caller, errors, r, CANCELLED, 0, False)

    def act_mark_in_transit(self, p: Params) -> None:
        rid, r = self._target(p.pick, (AUTHORIZED,))
        caller = self._caller(p.who, [self.carrier])
        if r is None:
            errors = self._unknown()
        else:
            errors = self._state(r, AUTHORIZED) or self._check(self.now > r.ship_by, "EscrowDeadlinePassed")
        errors = self._check(caller != self.carrier, "EscrowMissingRole") + errors

        def apply(out: Events) -> None:
            assert r is not None  # no errors: the return exists
            r.inspect_by = self.now - 1 + r.policy[6] * DAY
            self._transition(out, r, IN_TRANSIT_STATE, caller, r.inspect_by)
            self._item_event(out, r.item, caller, TRANSPORTING, IN_TRANSIT, ZERO32, rid)
            if r.fast:  # fast refund: the consumer is paid at the first scan, less the restocking fee
                self._settle(out, r, r.amount - r.amount * r.policy[1] // 10_000)

        self._send(self.escrow.markInTransit, (rid, LOCATION), caller, errors, apply)

    def act_prove_in_transit(self, p: Params) -> None:
        """markInTransitByProof, sent by anyone: `frac` picks a fault (a quarter of the time), `kind` 0 replays a
        return's last proof, a `who` of 12..14 makes the merchant (a scanner, not a carrier) the batch's submitter."""
        rid, r = self._target(p.pick, (AUTHORIZED,))
        caller = self._caller(p.who, [self.carrier])
        errors: list[str]
        if p.kind == 0 and rid in self.proofs:
            args, submitter, errors = self.proofs[rid], self.carrier, []
        else:
            args, submitter, errors = self._anchored_scan(p, rid, r)
        errors = self._unknown() if r is None else self._state(r, AUTHORIZED) or errors

        def apply(out: Events) -> None:
            assert r is not None  # no errors: the return exists
            r.inspect_by = self.now - 1 + r.policy[6] * DAY
            self._transition(out, r, IN_TRANSIT_STATE, submitter, r.inspect_by, args[3])
            self._item_event(out, r.item, submitter, DEPARTING, IN_TRANSIT, ZERO32, rid)
            if r.fast:
                self._settle(out, r, r.amount - r.amount * r.policy[1] // 10_000)
            self.proofs[rid] = args

        self._send(self.escrow.markInTransitByProof, args, caller, errors, apply)

    def _anchored_scan(self, p: Params, rid: bytes, r: Ret | None) -> tuple[tuple[Any, ...], Any, list[str]]:
        """Anchors a batch holding a scan of `r` (faulty as `p.bad` says) now: the proof's arguments, the
        scan's submitter and the errors the model predicts for them (the return's own state aside)."""
        fault = p.frac % 16 - 12  # 0..3: a fault (rule_advance keeps frac random)
        submitter = self.merchants[0] if 12 <= p.who < 15 else self.carrier
        item = self.item_ids[r.item if r else 0]
        authorized_at = r.ship_by - r.policy[5] * DAY if r else 0
        time = max(authorized_at, self.now - p.kind) - (fault == 3)
        scan = [item, 0, ZERO32, DEPARTING, IN_TRANSIT, LOCATION, ZERO32, rid, time, str(submitter)]
        if fault == 0:
            scan[0] = self.item_ids[(self.item_ids.index(item) + 1) % len(self.item_ids)]
        if fault == 1:
            scan[7] = keccak(text=f"another return {self.now}")
        others = [(keccak(text=f"filler {n} {self.now}"), *scan[1:]) for n in range(3)]
        root, proofs = four_leaf_tree([leaf(tuple(scan))] + [leaf(o) for o in others])
        anchored_at = self.now
        set_next_timestamp(anchored_at)
        self.now += 1
        type(self).sent += 1
        _transact(
            self.batches.anchorBatch,
            (root, 4, keccak(text=f"doc {anchored_at}")),
            {"from": submitter, "gas_limit": 2_000_000 + type(self).sent},
        )
        if fault == 2:  # altered after anchoring: the proof no longer leads to the root
            scan[5] = b"elsewhere".ljust(32, b"\x00")
        errors = self._check(scan[0] != item, "EscrowScanWrongItem") or self._check(
            scan[7] != rid, "EscrowScanWrongReturn"
        )
        errors = errors or self._check(submitter != self.carrier, "EscrowBatchNotCarrier")
        errors = errors or self._check(r is not None and anchored_at > r.ship_by, "EscrowDeadlinePassed")
        errors = errors or self._check(time < authorized_at or time > anchored_at, "EscrowScanOutOfWindow")
        errors = errors or self._check(fault == 2, "EscrowScanNotInBatch")
        return (rid, self.batches, tuple(scan), root, proofs[0]), submitter, errors

    def act_mark_received(self, p: Params) -> None:
        rid, r = self._target(p.pick, (IN_TRANSIT_STATE,))
        caller = self._caller(p.who, [self.carrier, r.sale.merchant if r else self.merchants[0]])
        by_merchant = r is not None and caller == r.sale.merchant
        if r is None:
            errors = self._unknown()
        else:
            errors = self._check(not by_merchant and caller != self.carrier, "EscrowMissingRole")
            errors = errors or self._state(r, IN_TRANSIT_STATE)

        def apply(out: Events) -> None:
            assert r is not None  # no errors: the return exists
            self._transition(out, r, RECEIVED, caller)
            self._item_event(out, r.item, caller, RECEIVING if by_merchant else ARRIVING, RETURNED, ZERO32, rid)

        self._send(self.escrow.markReceived, (rid, LOCATION), caller, errors, apply)

    def act_record_inspection(self, p: Params) -> None:
        rid, r = self._target(p.pick, (RECEIVED,))
        caller = self._caller(p.who, [self.inspector])
        report = ZERO32 if p.kind == 0 else keccak(text=f"report {self.now}")
        if r is None:
            errors = self._unknown()
        else:
            errors = self._state(r, RECEIVED) or self._check(report == ZERO32, "EscrowReportMissing")
        if r is not None and r.state == RECEIVED:
            errors += self._check(not r.settled and self.now > r.inspect_by, "EscrowDeadlinePassed")
        errors = self._check(caller != self.inspector, "EscrowMissingRole") + errors

        def apply(out: Events) -> None:
            assert r is not None  # no errors: the return exists
            was_settled = r.settled
            if p.passed:
                self._transition(out, r, ACCEPTED, caller, 0, report)
                self._close(r, True)
            else:  # after a fast refund nothing is left to dispute: the return ends here
                r.dispute_by = 0 if was_settled else self.now - 1 + r.policy[7] * DAY
                if was_settled:
                    self._close(r, True)
                self._transition(out, r, REJECTED, caller, r.dispute_by, report)
            self._item_event(out, r.item, caller, INSPECTING, CONFORMANT if p.passed else NON_CONFORMANT, report, rid)
            if p.passed and not was_settled:
                self._settle(out, r, r.amount - r.amount * r.policy[1] // 10_000)

        self._send(self.escrow.recordInspection, (rid, p.passed, report, LOCATION), caller, errors, apply)

    def act_dispute(self, p: Params) -> None:
        rid, r = self._target(p.pick, (REJECTED,))
        caller = self._caller(p.who, [r.sale.consumer if r else self.consumers[0]])
        evidence = keccak(text=f"evidence {self.now}")
        if r is None:
            errors = self._unknown()
        else:
            errors = self._check(caller != r.sale.consumer, "EscrowNotConsumer")
            errors = errors or self._state(r, REJECTED) or self._check(r.settled, "EscrowAlreadySettled")
            errors = errors or self._check(self.now > r.dispute_by, "EscrowDeadlinePassed")

        def apply(out: Events) -> None:
            assert r is not None  # no errors: the return exists
            self._transition(out, r, DISPUTED, caller, 0, evidence)

        self._send(self.escrow.dispute, (rid, evidence), caller, errors, apply)

    def act_resolve_dispute(self, p: Params) -> None:
        rid, r = self._target(p.pick, (DISPUTED,))
        caller = self._caller(p.who, [self.arbiter])
        deposit = r.amount if r else PRICE_MAX
        to_consumer = deposit + 1 if p.frac > 1000 else deposit * p.frac // 1000
        ruling = keccak(text=f"ruling {self.now}")
        errors = self._unknown() if r is None else self._state(r, DISPUTED)
        errors = errors or self._check(to_consumer > deposit, "EscrowInvalidAmount")
        errors = self._check(caller != self.arbiter, "EscrowMissingRole") + errors
        args = (rid, to_consumer, ruling)
        self._send_end(self.escrow.resolveDispute, args, caller, errors, r, RESOLVED, to_consumer, True, ruling)

    def act_reclaim(self, p: Params) -> None:
        rid, r = self._target(p.pick, (AUTHORIZED, REJECTED))
        caller = self._caller(p.who, [r.sale.merchant if r else self.merchants[0]])
        if r is None:
            errors = self._unknown()
        else:
            errors = self._check(caller != r.sale.merchant, "EscrowNotMerchant")
            if not errors and r.state == AUTHORIZED:
                errors = self._check(self.now <= r.ship_by, "EscrowDeadlineNotReached")
            elif not errors and r.state == REJECTED:
                errors = self._check(r.settled, "EscrowAlreadySettled")
                errors = errors or self._check(self.now <= r.dispute_by, "EscrowDeadlineNotReached")
            elif not errors:
                errors = ["EscrowInvalidState"]
        came_back = r is not None and r.state == REJECTED  # a failed item is back; an unshipped one never left
        self._send_end(
            self.escrow.reclaim, (rid,), caller, errors, r, RECLAIMED if came_back else EXPIRED, 0, came_back
        )

    def act_claim_uninspected(self, p: Params) -> None:
        rid, r = self._target(p.pick, (IN_TRANSIT_STATE, RECEIVED))
        caller = self._caller(p.who, [r.sale.consumer if r else self.consumers[0]])
        if r is None:
            errors = self._unknown()
        else:
            errors = self._check(caller != r.sale.consumer, "EscrowNotConsumer")
            errors = errors or self._check(r.state not in (IN_TRANSIT_STATE, RECEIVED), "EscrowInvalidState")
            errors = errors or self._check(r.settled, "EscrowAlreadySettled")
            errors = errors or self._check(self.now <= r.inspect_by, "EscrowDeadlineNotReached")
        self._send_end(self.escrow.claimUninspected, (rid,), caller, errors, r, CONSUMER_CLAIMED, r and r.amount, True)

    # ---- model helpers ----------------------------------------------------------------------------
    def _next_steps(self, target: Ret | None) -> list[tuple[str, Any]]:
        """The lifecycle steps open to `target` (forward ones weighted up), or to every return and item."""
        steps = {
            AUTHORIZED: ("mark_in_transit",) * 2 + ("prove_in_transit",) * 2 + ("cancel", "reclaim", "jump"),
            IN_TRANSIT_STATE: ("mark_received",) * 3 + ("claim_uninspected", "jump"),
            RECEIVED: ("record_inspection",) * 3 + ("claim_uninspected", "jump"),
            REJECTED: ("dispute", "dispute", "reclaim", "jump"),
            DISPUTED: ("resolve_dispute",),
        }
        live = [r for r in self.returns if r.state in steps and not (r.state == REJECTED and r.settled)]
        options: list[tuple[str, Any]] = [(s, r) for r in live if target in (None, r) for s in steps[r.state]]
        if not options:
            options = [(s, r) for r in live for s in steps[r.state]]
        if target is None or not options:
            for n in range(UNREGISTERED):
                sale = self.sales[n]
                if sale is None or sale.closed or not sale.open:
                    options.append(("record_sale" if sale is None or sale.closed else "authorize", n))
            if not self.policies[str(self.merchants[1])]:
                options.append(("publish_policy", 1))
        return options

    def _caller(self, who: int, legit: list[Any]) -> Any:
        return legit[who % len(legit)] if who < 15 else self.actors[who - 15]

    def _target(self, pick: int, states: tuple[int, ...]) -> tuple[bytes, Ret | None]:
        fitting = [r for r in self.returns if r.state in states]
        if self.forced is not None:
            r = self.forced
        elif pick < 6 and fitting:
            r = fitting[pick % len(fitting)]
        elif pick < 9 and self.returns:
            r = self.returns[pick % len(self.returns)]
        else:
            return self._return_id(0, 999, 0), None  # no such return
        self.touched.add(r)
        return r.rid, r

    def _return_id(self, item: int, sale_seq: int, index: int) -> bytes:
        values = [self.chain_id, str(self.escrow), self.item_ids[item], sale_seq, index]
        return keccak(encode(["uint256", "address", "bytes32", "uint32", "uint8"], values))

    def _send(
        self, fn: Any, args: tuple[Any, ...], caller: Any, errors: list[str], apply: Callable[[Events], None]
    ) -> None:
        """Sends at time self.now. A call the model rejects must revert with one of `errors`; any
        other must succeed and emit exactly the events that `apply` (the model's step) predicts."""
        ts, name = self.now, fn.abi["name"]
        self.now += 1
        set_next_timestamp(ts)
        # A gas limit never used before makes each transaction's hash unique: brownie sometimes takes
        # a transaction for dropped when an identical one was mined before a chain revert.
        type(self).sent += 1
        params = {"from": caller, "gas_limit": 2_000_000 + type(self).sent}
        if errors:
            try:
                sent = _transact(fn, args, params)
                reverted = None if sent.status else str(sent.revert_msg)
            except VirtualMachineError as exc:
                reverted = str(exc.revert_msg)
            if reverted is None:
                raise AssertionError(f"{name}{args} from {caller} succeeded, the model expected a revert: {errors}")
            msg = reverted
            assert any(msg.startswith(e) for e in errors), f"{name} reverted with {msg!r}, model expected {errors}"
            assert latest_timestamp() == ts
            self.stats[f"{name} x {msg.split(':')[0]}"] += 1
            return
        try:
            tx = _transact(fn, args, params)
        except VirtualMachineError as exc:
            raise AssertionError(f"{name}{args} from {caller} reverted ({exc.revert_msg}), expected success") from None
        if not tx.status:
            raise AssertionError(f"{name}{args} from {caller} reverted ({tx.revert_msg}), expected success")
        assert tx.timestamp == ts
        expected: Events = {}
        apply(expected)
        self._check_events(tx, expected)
        self.stats[f"{name} ok"] += 1

    def _check_events(self, tx: Any, expected: Events) -> None:
        for ev in _events(tx, "ReturnAuthorized"):
            self.observed[bytes(ev["returnId"])] = AUTHORIZED
            self.deposits[bytes(ev["returnId"])] = ev["amount"]
        for ev in _events(tx, "ReturnStateChanged"):  # (3): no state skipped, only lifecycle edges
            rid, previous = bytes(ev["returnId"]), ev["previous"]
            assert previous == self.observed.get(rid), (
                f"{rid.hex()}: previous {previous}, seen {self.observed.get(rid)}"
            )
            assert (previous, ev["state"]) in EDGES, f"{rid.hex()}: {previous} -> {ev['state']} is no lifecycle edge"
            self.observed[rid] = ev["state"]
        for ev in _events(tx, "EscrowSettled"):  # (1): paid at most once, payouts add up to the deposit
            rid = bytes(ev["returnId"])
            assert rid not in self.paid, f"{rid.hex()} settled twice"
            self.paid[rid] = (ev["consumerAmount"], ev["merchantAmount"])
            assert sum(self.paid[rid]) == self.deposits[rid], f"{rid.hex()}: payouts != deposit"
        for ev in _events(tx, "ItemEventRecorded"):
            self.item_events[self.item_ids.index(bytes(ev["itemId"]))].append(dict(ev))
        names = ("PolicyPublished", "SaleRecorded", "ReturnAuthorized", "ReturnStateChanged", "EscrowSettled")
        for name in (*names, "ItemEventRecorded"):
            emitted = [_norm(tuple(dict(ev).values())) for ev in _events(tx, name)]
            if name == "ItemEventRecorded":
                emitted = [row[:9] for row in emitted]  # the two hashes are checked by replaying the chain
            predicted = [_norm(row) for row in expected.get(name, [])]
            assert emitted == predicted, f"{name}: emitted {emitted}, the model predicted {predicted}"

    def _item_event(self, out: Events, item: int, actor: Any, step: int, disp: int, doc: bytes, btx: bytes) -> None:
        seq = len(self.item_events[item]) + len(out.setdefault("ItemEventRecorded", []))
        out["ItemEventRecorded"].append((self.item_ids[item], actor, seq, step, disp, LOCATION, doc, btx, self.now - 1))

    def _transition(self, out: Events, r: Ret, new: int, actor: Any, deadline: int = 0, proof: bytes = ZERO32) -> None:
        out.setdefault("ReturnStateChanged", []).append((r.rid, new, actor, r.state, self.now - 1, deadline, proof))
        self.stats[f"state {r.state}->{new}{' (fast refund)' if r.fast else ''}"] += 1
        r.state = new

    def _settle(self, out: Events, r: Ret, to_consumer: int) -> None:
        assert not r.settled
        r.settled = True
        self.balances[str(r.sale.consumer)] += to_consumer
        self.balances[str(r.sale.merchant)] += r.amount - to_consumer
        row = (r.rid, r.sale.consumer, r.sale.merchant, self.token, to_consumer, r.amount - to_consumer)
        out.setdefault("EscrowSettled", []).append(row)

    def _send_end(self, fn: Any, args: Any, caller: Any, errors: list[str], r: Any, *end: Any) -> None:
        """_send for a call that ends the return: `end` = final state, consumer payout, whether the sale
        ends too (the item came back), evidence."""
        state, to_consumer, came_back, proof = (*end, ZERO32)[:4]

        def apply(out: Events) -> None:
            self._transition(out, r, state, caller, 0, proof)
            self._close(r, came_back)
            self._settle(out, r, to_consumer)

        self._send(fn, args, caller, errors, apply)

    @staticmethod
    def _close(r: Ret, came_back: bool) -> None:
        r.sale.open = False
        r.sale.closed = r.sale.closed or came_back

    @staticmethod
    def _check(condition: bool, error: str) -> list[str]:
        return [error] if condition else []

    @staticmethod
    def _unknown() -> list[str]:
        return ["EscrowUnknownReturn"]

    @staticmethod
    def _state(r: Ret, expected: int) -> list[str]:
        return [] if r.state == expected else ["EscrowInvalidState"]

    # ---- invariants -------------------------------------------------------------------------------
    def invariant_money(self) -> None:
        # (1): merchants and consumers hold exactly what the model's deposits and payouts leave them
        for account, balance in self.balances.items():
            assert _view(self.token, self.token.balanceOf, account) == balance, f"token balance of {account}"
        for r in self.returns:
            assert (r.rid in self.paid) == r.settled, f"{r.rid.hex()}: settled per events != model"
            assert r.rid not in self.paid or sum(self.paid[r.rid]) == r.amount
            assert self.observed[r.rid] == r.state, f"{r.rid.hex()}: state per events != model"
        # (2): the escrow holds exactly the deposits of the unsettled returns
        unsettled = sum(r.amount for r in self.returns if not r.settled)
        assert _view(self.token, self.token.balanceOf, self.escrow) == unsettled

    def invariant_stored_records(self) -> None:
        # the stored return and sale of every return touched in this step agree with the model
        for r in self.touched:
            s = r.sale
            want: tuple[Any, ...] = (
                self.item_ids[r.item],
                s.consumer,
                r.amount,
                s.merchant,
                r.ship_by,
                r.inspect_by,
                r.state,
            )
            want += (r.fast, self.token, r.dispute_by, r.policy[1], r.settled, s.version)
            assert _norm(tuple(_view(self.escrow, self.escrow.returnOf, r.rid))) == _norm(want), r.rid.hex()
            if self.sales[r.item] is s:  # (the item was not sold again since)
                want = (s.consumer, s.sold_at, s.version, s.returns, s.open, s.closed, self.token, s.price)
                stored = _view(self.escrow, self.escrow.saleOf, self.item_ids[r.item])
                assert _norm(tuple(stored)) == _norm((*want, s.merchant, s.seq)), f"saleOf(item {r.item})"
        self.touched.clear()

    def invariant_hash_chains(self) -> None:
        # (4): the ledger's head and count are the chain replayed from the emitted events
        for n, itemid in enumerate(self.item_ids):
            head, count = replay_chain(itemid, self.item_events.get(n, []))
            stored = _view(self.ledger, self.ledger.itemOf, itemid)
            assert (bytes(stored[0]), stored[1]) == (head, count), f"itemOf(item {n}) != the replayed chain"


def _state_machine_helper() -> Callable[..., None]:
    """brownie's `state_machine` helper from its Python source: in eth-brownie 1.22.2 the mypyc-compiled
    module rejects every machine ("TypeError: brownie.test.stateful._BrownieStateMachine object expected")."""
    path = os.path.join(os.path.dirname(brownie.test.__file__), "stateful.py")
    spec = importlib.util.spec_from_file_location("brownie_stateful_source", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.state_machine  # type: ignore[no-any-return]


def test_escrow_lifecycle_stateful(accounts: Any, ledger: Any, escrow: Any, token: Any, batches: Any) -> None:
    settings: dict[str, Any] = {"max_examples": EXAMPLES, "stateful_step_count": STEPS, "deadline": None}
    settings["suppress_health_check"] = [HealthCheck.too_slow, HealthCheck.filter_too_much]
    _state_machine_helper()(EscrowMachine, accounts, ledger, escrow, token, batches, settings=settings)
