"""rollback_to undoes blocks exactly: the index equals one that never saw them."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger_service.core.codes import BizStep, Disposition, ReturnState
from ledger_service.store import BlockRef, Store, StoreError
from ledger_service.store.tables import metadata
from tests.ledger_service.store.builders import DAY, ChainBuilder, addr, h, headers_upto, upto


def _wipe(store: Store) -> None:
    with store.engine.begin() as conn:
        for table in metadata.sorted_tables:
            conn.execute(table.delete())


def _fresh(store: Store, chain: ChainBuilder, number: int) -> None:
    """Indexes the chain up to block ``number`` in one batch (0: nothing)."""
    checkpoint = chain.ref(number) if number else BlockRef(0, h("genesis"))
    store.apply(
        events=upto(chain.events, number),
        headers=headers_upto(chain.headers, number),
        checkpoint=checkpoint,
        prune_below=0,
    )


def _apply_batches(store: Store, chain: ChainBuilder, ends: list[int]) -> None:
    """Indexes the chain in batches ending at the blocks ``ends`` (and at its last block)."""
    start = 0
    for end in [*sorted({e for e in ends if 0 < e < chain.number}), chain.number]:
        store.apply(
            events=[ev for ev in chain.events if start < ev.pos.block_number <= end],
            headers=[x for x in chain.headers if start < x.number <= end],
            checkpoint=chain.ref(end),
            prune_below=0,
        )
        start = end


@pytest.fixture
def two_stores(make_store_url: Callable[[], str]) -> Iterator[tuple[Store, Store]]:
    with Store.open(make_store_url()) as one, Store.open(make_store_url()) as other:
        yield one, other


# ---- a scenario, spelled out ----------------------------------------------------------------------


def _scenario() -> ChainBuilder:
    chain = ChainBuilder()
    merchant_role = h("MERCHANT_ROLE")
    chain.role(merchant_role, addr(2), True)
    chain.set_seller(addr(2), addr(4), True)
    chain.policy(addr(2), 1, ship_by_days=10)
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    sale = chain.sale(item)
    chain.next_block(seconds=DAY)  # block 2
    chain.record(item, BizStep.ARRIVING, Disposition.RETAIL_SOLD)
    rid = chain.authorize(item, sale, ship_by_days=10)
    chain.next_block(seconds=DAY)  # block 3: everything below changes state of block-2 rows
    chain.transition(rid, ReturnState.IN_TRANSIT, ReturnState.AUTHORIZED, deadline=chain.time + 7 * DAY)
    chain.settle(rid, 95, 5)
    chain.record(item, BizStep.RECEIVING, Disposition.RETURNED, tamper="prev")
    chain.change_merchant(item, addr(2), addr(8))
    chain.role(merchant_role, addr(2), False)
    chain.set_seller(addr(2), addr(4), False)
    chain.register("urn:epc:id:sgtin:0614141.107346.2")
    chain.authorize(item, sale, 1, ship_by_days=10)
    return chain


def test_rollback_restores_every_table(two_stores: tuple[Store, Store]) -> None:
    reorged, fresh = two_stores
    chain = _scenario()
    reorged.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
    assert reorged.counts()["chain_problems"] == 1

    stats = reorged.rollback_to(chain.ref(2))
    _fresh(fresh, chain, 2)
    assert reorged.dump() == fresh.dump()
    assert reorged.checkpoint() == chain.ref(2)
    assert sorted(reorged.stored_blocks(from_block=0, to_block=10)) == [1, 2]
    assert stats.blocks == 1
    assert stats.events == len(chain.events) - len(upto(chain.events, 2))
    assert stats.items_touched == 2  # the item and the second registration
    assert stats.returns_touched == 2  # rid (transition, payout) and rid2 (authorization)
    counts = reorged.counts()
    assert (counts["chain_problems"], counts["escrow_payouts"], counts["returns"], counts["items"]) == (0, 0, 1, 1)


def test_rollback_then_reindex_equals_a_fresh_index(two_stores: tuple[Store, Store]) -> None:
    reorged, fresh = two_stores
    chain = _scenario()
    reorged.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
    reorged.rollback_to(chain.ref(1))
    reorged.apply(
        events=[ev for ev in chain.events if ev.pos.block_number > 1],
        headers=chain.headers[1:],
        checkpoint=chain.ref(),
        prune_below=0,
    )
    _fresh(fresh, chain, chain.number)
    assert reorged.dump() == fresh.dump()


def test_rollback_refuses_to_go_forward(store: Store) -> None:
    chain = _scenario()
    _fresh(store, chain, 2)
    with pytest.raises(StoreError, match="checkpoint is at 2"):
        store.rollback_to(chain.ref(3))


def test_rollback_to_the_checkpoint_changes_nothing(store: Store) -> None:
    chain = _scenario()
    _fresh(store, chain, 3)
    before = store.dump()
    stats = store.rollback_to(chain.ref(3))
    assert store.dump() == before
    assert (stats.events, stats.blocks) == (0, 0)


# ---- the property: rollback == never applied -----------------------------------------------------

KINDS = (
    "block",
    "block",
    "register",
    "event",
    "event",
    "event",
    "tamper",
    "stray",
    "merchant",
    "seller",
    "role",
    "policy",
    "sale",
    "authorize",
    "transition",
    "transition",
    "settle",
    "stray_return",
)
STEPS = list(BizStep)
DISPOSITIONS = list(Disposition)
STATES = [s for s in ReturnState if s not in (ReturnState.NONE, ReturnState.AUTHORIZED)]
TAMPERS = ("prev", "hash", "field", "skip")
MAX_KEYS = 4
"""Items and returns per stream."""
ROLES = (h("MERCHANT_ROLE"), h("CARRIER_ROLE"), h("INSPECTOR_ROLE"))

actions_strategy = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(0, 15), st.integers(0, 15), st.booleans()), min_size=20, max_size=80
)


class _Stream:
    """Interprets actions as a stream the contracts could emit (unique keys, ordered positions).

    Every action does something: one whose prerequisite is missing (an event
    before any item, a return before any sale) creates the prerequisite first,
    so short action lists still reach every table and every key gets history
    on both sides of most blocks.
    """

    def __init__(self) -> None:
        self.chain = ChainBuilder()
        self.items: list[str] = []
        self.versions: dict[str, int] = {}
        self.sales: list[tuple[str, int, str, int]] = []
        self.returns_per_sale: dict[tuple[str, int], int] = {}
        self.returns: list[str] = []
        self.settled: set[str] = set()

    def item(self, a: int) -> str:
        if not self.items:
            self.register(a)
        return self.items[a % len(self.items)]

    def register(self, b: int) -> None:
        if len(self.items) >= MAX_KEYS:  # few keys: each gets history on both sides of most blocks
            self.chain.record(self.items[b % MAX_KEYS], BizStep.INSPECTING, Disposition.CONFORMANT)
            return
        uri = f"urn:epc:id:sgtin:0614141.107346.{len(self.items)}"
        self.items.append(self.chain.register(uri, merchant=addr(2 + b % 2)))

    def sale(self, a: int, b: int, flag: bool) -> tuple[str, int, str, int]:
        merchant = addr(2 + b % 2)
        version = self.versions.get(merchant, 0) if flag else 99  # 99: a policy the index never saw
        item = self.item(a)
        sale = (item, self.chain.sale(item, merchant=merchant, policy_version=version), merchant, version)
        self.sales.append(sale)
        return sale

    def authorize(self, a: int, b: int, flag: bool) -> str:
        if len(self.returns) >= MAX_KEYS:
            rid = self.returns[a % MAX_KEYS]
            self.transition(rid, b)
            return rid
        item, sale_seq, merchant, version = self.sales[a % len(self.sales)] if self.sales else self.sale(a, b, flag)
        index = self.returns_per_sale.get((item, sale_seq), 0)
        self.returns_per_sale[(item, sale_seq)] = index + 1
        rid = self.chain.authorize(item, sale_seq, index, merchant=merchant, policy_version=version, ship_by_days=b)
        self.returns.append(rid)
        return rid

    def a_return(self, a: int, b: int, flag: bool) -> str:
        return self.returns[a % len(self.returns)] if self.returns else self.authorize(a, b, flag)

    def transition(self, rid: str, b: int) -> None:
        state = STATES[b % len(STATES)]
        deadline = self.chain.time + (b + 1) * DAY if state in (ReturnState.IN_TRANSIT, ReturnState.REJECTED) else 0
        self.chain.transition(rid, state, ReturnState.AUTHORIZED, deadline=deadline)

    def act(self, kind: str, a: int, b: int, flag: bool) -> None:
        chain = self.chain
        if kind == "block":
            chain.next_block(seconds=1 + a * 3600)
        elif kind == "register":
            self.register(b)
        elif kind in ("event", "tamper"):
            tamper = TAMPERS[b % len(TAMPERS)] if kind == "tamper" else None
            step, disposition = STEPS[(a + b) % len(STEPS)], DISPOSITIONS[(a * 3 + b) % len(DISPOSITIONS)]
            if flag and kind == "event":
                step, disposition = BizStep.ARRIVING, Disposition.RETAIL_SOLD
            chain.record(self.item(a), step, disposition, tamper=tamper)
        elif kind == "stray":
            chain.record(h("stray item", a % 3), STEPS[b % len(STEPS)], Disposition.IN_PROGRESS)
        elif kind == "merchant":
            chain.change_merchant(self.item(a), addr(2), addr(2 + b % 3))
        elif kind == "seller":
            chain.set_seller(addr(2 + a % 2), addr(4 + b % 3), flag)
        elif kind == "role":
            chain.role(ROLES[a % len(ROLES)], addr(b % 4), flag)
        elif kind == "policy":
            merchant = addr(2 + a % 2)
            self.versions[merchant] = self.versions.get(merchant, 0) + 1
            chain.policy(merchant, self.versions[merchant], ship_by_days=b)
        elif kind == "sale":
            self.sale(a, b, flag)
        elif kind == "authorize":
            self.authorize(a, b, flag)
        elif kind == "transition":
            self.transition(self.a_return(a, b, flag), b)
        elif kind == "settle":
            rid = self.a_return(a, b, flag)
            if rid in self.settled:
                self.transition(rid, b)
            else:
                self.settled.add(rid)
                chain.settle(rid, a, b)
        elif kind == "stray_return":
            rid = h("stray return", a % 2)
            if flag or rid in self.settled:
                chain.transition(rid, STATES[b % len(STATES)], ReturnState.AUTHORIZED, deadline=b)
            else:
                self.settled.add(rid)
                chain.settle(rid, a, b)


def build_chain(actions: list[tuple[str, int, int, bool]]) -> ChainBuilder:
    stream = _Stream()
    for action in actions:
        stream.act(*action)
    return stream.chain


def _check_rollback(incremental: Store, fresh: Store, chain: ChainBuilder, ends: list[int], target: int) -> None:
    _wipe(incremental)
    _wipe(fresh)
    _apply_batches(incremental, chain, ends)
    incremental.rollback_to(chain.ref(target) if target else BlockRef(0, h("genesis")))
    _fresh(fresh, chain, target)
    assert incremental.dump() == fresh.dump(), f"rollback to block {target} of {chain.number}"


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(actions=actions_strategy, ends=st.lists(st.integers(1, 40), max_size=6), target_seed=st.integers(0, 10**6))
def test_rollback_equals_never_applied(
    two_stores: tuple[Store, Store], actions: list[tuple[str, int, int, bool]], ends: list[int], target_seed: int
) -> None:
    """Applying a stream in random batches then rolling back to a random block gives the same index as
    applying only the blocks up to it; re-applying the rest then gives the same index as applying all."""
    incremental, fresh = two_stores
    chain = build_chain(actions)
    target = target_seed % (chain.number + 1)
    _check_rollback(incremental, fresh, chain, ends, target)

    incremental.apply(
        events=[ev for ev in chain.events if ev.pos.block_number > target],
        headers=[x for x in chain.headers if x.number > target],
        checkpoint=chain.ref(),
        prune_below=0,
    )
    _wipe(fresh)
    _fresh(fresh, chain, chain.number)
    assert incremental.dump() == fresh.dump()


def _long_stream(seed: int, length: int) -> ChainBuilder:
    rng = random.Random(seed)
    return build_chain(
        [(rng.choice(KINDS), rng.randrange(16), rng.randrange(16), rng.random() < 0.5) for _ in range(length)]
    )


def test_rollback_to_every_block_of_a_long_stream(two_stores: tuple[Store, Store]) -> None:
    """Exhaustive companion of the property: one long stream, every rollback target."""
    incremental, fresh = two_stores
    for seed in (11, 12):
        chain = _long_stream(seed, 200)
        assert chain.number >= 10
        for target in range(chain.number + 1):
            _check_rollback(incremental, fresh, chain, [target // 2, target + 3], target)


def test_the_stream_generator_covers_every_table() -> None:
    """A long stream from the generator touches every table, so the rollback tests check them all."""
    chain = _long_stream(7, 400)
    kinds = {type(ev).__name__ for ev in chain.events}
    assert kinds == {
        "ItemRegistered",
        "ItemEventRecorded",
        "MerchantOfRecordChanged",
        "SellerSet",
        "RoleChanged",
        "PolicyPublished",
        "SaleRecorded",
        "ReturnAuthorized",
        "ReturnStateChanged",
        "EscrowSettled",
    }
