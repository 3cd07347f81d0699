"""Synthetic index for bench/api_eligibility.py: N items with K item events each, written through Store.apply.

The events form a chain that was never mined but is internally consistent, so
the index holds exactly what ``ledger-indexer`` would write for it: every item
is registered (ItemRegistered + its commissioning event), its hash chain links
and recomputes (except for a few items tampered on purpose, which the store
flags as the indexer would), sales are bound to published policy versions,
and the state tables (items, returns, roles) are folded by the store itself.

Per item, in item order (all events of an item in consecutive blocks; block
time advances uniformly from ``now - SPAN_DAYS`` to ``now``, so deliveries are
spread over that span and a policy's window is open for some and closed for
others). Profiles, drawn from a seeded RNG, with exactly K item events each:

- unsold (6%): commissioning, shipping, receiving, stocking...;
- sold, not delivered (4%): ..., retail_selling, departing (carrier);
- sold and delivered (the rest): ..., retail_selling, arriving + retail_sold (carrier);
  of these, 3% have an open return (Authorized), 1% a cancelled one, 0.05%
  a tampered eventHash (history broken);
- recalled (1%): delivered, then holding + recalled;
- destroyed (1%): delivered, then destroying + destroyed.

Write path: the indexer's own ``Store.apply``, no separate bulk loader. Items
are generated in the order of their ids, so the item-keyed B-trees grow at
their right edge; measured on these 2 cores, 1M items / 5M item events (7M
logs with registrations, sales, returns) take about 8 minutes (~15k logs/s
at that size, ~27k at 200k items) and make a 5.5 GB SQLite file.

Fillers (transporting by the carrier) pad a profile to K events. Merchants
publish two policy versions each (windows 14 to 60 days, fees, fast refund
caps, a manual-review value for some) whose documents are stored through the
API's own store functions (non-returnable category "underwear"); 2% of the
items get that category.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ledger_service.core.codes import BizStep, Disposition, ReturnState
from ledger_service.core.events import (
    BlockHeader,
    DecodedEvent,
    EscrowSettled,
    ItemEventRecorded,
    ItemRegistered,
    LogPosition,
    PolicyPublished,
    ReturnAuthorized,
    ReturnStateChanged,
    RoleChanged,
    SaleRecorded,
)
from ledger_service.core.hashchain import event_hash_hex
from ledger_service.core.keccak import keccak
from ledger_service.returns.documents import PolicyDocument
from ledger_service.store import BlockRef, ChainPin, Store
from ledger_service.store.items import set_item_category
from ledger_service.store.policies import put_policy_terms

DAY = 86_400
SPAN_DAYS = 150
EVENTS_PER_BLOCK = 100
BATCH_EVENTS = 20_000
"""Decoded events per Store.apply call (the indexer's batches are a few thousand; bigger is faster here)."""
MERCHANTS = 40
CATEGORY = "underwear"
ZERO = "0x" + "00" * 32
LOCATION = "0x" + b"0614141.00777.0".ljust(32, b"\0").hex()
HUB = "0x" + b"0860001.00100.0".ljust(32, b"\0").hex()
GTIN = 10614141007346


def item_uri(index: int) -> str:
    """The GS1 URI of synthetic item ``index``."""
    return f"urn:epc:id:sgtin:0614141.107346.bench{index}"


def item_id_of(index: int) -> str:
    """The item id of synthetic item ``index`` (keccak256 of its URI, as the contract computes it)."""
    return "0x" + keccak(item_uri(index).encode()).hex()


def _address(tag: str, index: int) -> str:
    return "0x" + keccak(f"{tag}:{index}".encode()).hex()[-40:]


def _hash(tag: str, *parts: object) -> str:
    return "0x" + keccak(":".join([tag, *map(str, parts)]).encode()).hex()


def role_id(name: str) -> str:
    return "0x" + keccak(name.encode()).hex()


@dataclass(frozen=True)
class Actors:
    """The accounts of the synthetic chain (lowercase), and the token its sales use."""

    manufacturer: str
    carrier: str
    token: str
    merchants: tuple[str, ...]

    @classmethod
    def make(cls, *, manufacturer: str, carrier: str, token: str, merchant: str) -> Actors:
        """``merchant`` (a real account, for the bench's merchant key) plus synthetic ones."""
        others = tuple(_address("merchant", i) for i in range(1, MERCHANTS))
        return cls(manufacturer.lower(), carrier.lower(), token.lower(), (merchant.lower(), *others))


@dataclass
class FillStats:
    items: int = 0
    item_events: int = 0
    logs: int = 0
    """Every decoded event written (item events, registrations, sales, returns, policies, roles)."""
    profiles: dict[str, int] = field(default_factory=dict)
    returns_open: int = 0
    returns_cancelled: int = 0
    tampered: int = 0
    categorized: int = 0
    seconds: float = 0.0
    apply_seconds: float = 0.0


def policy_documents(merchant_index: int) -> list[PolicyDocument]:
    """Versions 1 and 2 of a merchant's policy (varied by merchant)."""
    window = (14, 30, 30, 60)[merchant_index % 4]
    cap = (0, 200_000_000, 0, 100_000_000)[merchant_index % 4]
    review = 400_000_000 if merchant_index % 5 == 0 else 0
    base = {
        "restocking_fee_bps": (0, 500, 1000)[merchant_index % 3],
        "fast_refund": merchant_index % 7 != 3,
        "ship_by_days": 7,
        "inspect_by_days": 14,
        "dispute_window_days": 7,
        "fast_refund_max_value": cap,
        "fast_refund_max_returns_90d": 3,
        "non_returnable_categories": frozenset({CATEGORY}),
        "accepted_reasons": frozenset({"damaged", "wrong_item", "not_as_described", "changed_mind"}),
        "manual_review_reasons": frozenset({"not_as_described"}),
        "manual_review_above_value": review,
    }
    return [
        PolicyDocument(window_days=window, title=f"Bench merchant {merchant_index} v1", **base),  # type: ignore[arg-type]
        PolicyDocument(window_days=window + 14, title=f"Bench merchant {merchant_index} v2", **base),  # type: ignore[arg-type]
    ]


class _Chain:
    """Builds blocks of decoded events with consecutive positions and monotonic timestamps.

    Block time advances with the share of ``total_logs`` written so far, from ``start`` to ``end``.
    """

    def __init__(self, *, start: int, end: int, total_logs: int, ledger: str, escrow: str) -> None:
        self.start, self.end = start, end
        self.total = max(total_logs, 1)
        self.ledger, self.escrow = ledger, escrow
        self.count = 0
        self.number = 1
        self.log_index = 0
        self.headers: list[BlockHeader] = [BlockHeader(1, _hash("block", 1), _hash("block", 0), start)]
        self._tx_hash = ZERO
        self._tx_index = 0

    @property
    def timestamp(self) -> int:
        return self.headers[-1].timestamp

    def tx(self) -> None:
        """Starts a new transaction (and a new block every EVENTS_PER_BLOCK logs)."""
        if self.log_index >= EVENTS_PER_BLOCK:
            self.number += 1
            self.log_index = 0
            timestamp = int(self.start + (self.end - self.start) * min(self.count / self.total, 1.0))
            parent = self.headers[-1]
            self.headers.append(
                BlockHeader(self.number, _hash("block", self.number), parent.hash, max(timestamp, parent.timestamp))
            )
        self._tx_hash = _hash("tx", self.number, self.log_index)
        self._tx_index = self.log_index

    def pos(self, *, escrow: bool = False) -> LogPosition:
        """The next log's position in the current transaction."""
        header = self.headers[-1]
        address = self.escrow if escrow else self.ledger
        p = LogPosition(self.number, header.hash, self._tx_hash, self._tx_index, self.log_index, address)
        self.log_index += 1
        self.count += 1
        return p


def fill(
    store: Store,
    *,
    items: int,
    events_per_item: int,
    actors: Actors,
    pin: ChainPin,
    seed: int = 7,
    now: int | None = None,
    progress: Callable[[str], None] = print,
) -> FillStats:
    """Writes the synthetic chain's events into ``store`` (a fresh index, pinned to ``pin``) and the API's
    policy documents and item categories. Returns what was written."""
    if events_per_item < 5:
        raise ValueError("events per item must be at least 5 (commissioning ... delivery, recall or destroy)")
    started = time.perf_counter()
    now = int(time.time()) if now is None else now
    store.set_pin(pin)
    stats = FillStats()
    rng = random.Random(seed)
    documents = {m: policy_documents(i) for i, m in enumerate(actors.merchants)}
    for merchant, versions in documents.items():
        for doc in versions:
            put_policy_terms(store, merchant=merchant, digest=doc.digest, document=doc.to_json(), created_at=now)
    chain = _Chain(
        start=now - SPAN_DAYS * DAY,
        end=now - 60,
        total_logs=items * (events_per_item + 2),
        ledger=pin.ledger_address,
        escrow=pin.escrow_address,
    )
    pending: list[DecodedEvent] = []
    applied_to = 0
    categorized: list[str] = []
    last_report = time.perf_counter()

    def flush(*, final: bool) -> None:
        """Applies the pending events of every closed block (of all blocks if ``final``) in one batch."""
        nonlocal applied_to
        top = chain.number if final else chain.number - 1
        split = len(pending)
        if not final:
            while split and pending[split - 1].pos.block_number > top:
                split -= 1
        ready = pending[:split]
        del pending[:split]
        if not ready:
            return
        headers = [h for h in chain.headers if applied_to < h.number <= top]
        t0 = time.perf_counter()
        store.apply(events=ready, headers=headers, checkpoint=BlockRef(top, headers[-1].hash), prune_below=top - 64)
        stats.apply_seconds += time.perf_counter() - t0
        stats.logs += len(ready)
        applied_to = top
        chain.headers = chain.headers[-1:]

    # the first transactions: roles, then every merchant's two policy versions
    chain.tx()
    for name, accounts in (
        ("MANUFACTURER_ROLE", [actors.manufacturer]),
        ("MERCHANT_ROLE", list(actors.merchants)),
        ("CARRIER_ROLE", [actors.carrier]),
    ):
        for account in accounts:
            pending.append(RoleChanged(chain.pos(), role_id(name), account, actors.manufacturer, True))
    for merchant, versions in documents.items():
        for version, doc in enumerate(versions, start=1):
            chain.tx()
            pending.append(
                PolicyPublished(
                    chain.pos(escrow=True),
                    merchant,
                    version,
                    doc.window_days,
                    doc.restocking_fee_bps,
                    doc.fast_refund,
                    doc.fast_refund_max_value,
                    doc.fast_refund_max_returns_90d,
                    doc.ship_by_days,
                    doc.inspect_by_days,
                    doc.dispute_window_days,
                    doc.digest,
                    chain.timestamp,
                )
            )
    writer = _ItemWriter(chain=chain, out=pending, stats=stats, actors=actors, documents=documents, k=events_per_item)
    consumers = max(1_000, items // 4)
    # Items in the order of their ids: the item-keyed B-trees (item_events, items, registrations) then grow
    # at their right edge instead of at random pages, which keeps the fill's writes sequential at 1M items.
    ids = [item_id_of(index) for index in range(items)]
    for count, index in enumerate(sorted(range(items), key=ids.__getitem__)):
        if writer.item(index, rng, consumers=consumers):
            categorized.append(ids[index])
        if len(pending) >= BATCH_EVENTS:
            flush(final=False)
            if time.perf_counter() - last_report >= 10:
                last_report = time.perf_counter()
                elapsed = last_report - started
                progress(
                    f"  fill: {count + 1:>9,}/{items:,} items, {stats.item_events:>10,} item events, "
                    f"{stats.logs / elapsed:,.0f} logs/s (Store.apply {stats.apply_seconds / elapsed:.0%} of it)"
                )
    flush(final=True)
    for iid in categorized:
        set_item_category(store, item_id=iid, category=CATEGORY, set_by=actors.merchants[0], set_at=now)
    stats.categorized = len(categorized)
    stats.seconds = time.perf_counter() - started
    return stats


@dataclass
class _ItemWriter:
    """Appends one synthetic item's events (see the module docstring) to ``out``."""

    chain: _Chain
    out: list[DecodedEvent]
    stats: FillStats
    actors: Actors
    documents: dict[str, list[PolicyDocument]]
    k: int

    def item(self, index: int, rng: random.Random, *, consumers: int) -> bool:
        """Writes item ``index``; True if it gets the non-returnable category."""
        a, chain, out, stats = self.actors, self.chain, self.out, self.stats
        iid = item_id_of(index)
        u = rng.random()
        profile = "delivered"
        for name, upper in (("unsold", 0.06), ("undelivered", 0.10), ("recalled", 0.11), ("destroyed", 0.12)):
            if u < upper:
                profile = name
                break
        stats.profiles[profile] = stats.profiles.get(profile, 0) + 1
        merchant = a.merchants[rng.randrange(MERCHANTS)]
        consumer = _address("consumer", rng.randrange(consumers))
        version = 1 if rng.random() < 0.5 else 2
        price = rng.randrange(5, 500) * 1_000_000
        tamper_seq = rng.randrange(1, self.k) if profile == "delivered" and rng.random() < 0.0005 else -1
        categorized = rng.random() < 0.02
        return_draw = rng.random()

        order_ref = _hash("order", index)
        commissioning = (BizStep.COMMISSIONING, Disposition.ACTIVE, a.manufacturer, ZERO)
        shipping = (BizStep.SHIPPING, Disposition.IN_TRANSIT, a.manufacturer, ZERO)
        receiving = (BizStep.RECEIVING, Disposition.SELLABLE_ACCESSIBLE, merchant, ZERO)
        sale = (BizStep.RETAIL_SELLING, Disposition.RETAIL_SOLD, merchant, order_ref)
        delivery = (BizStep.ARRIVING, Disposition.RETAIL_SOLD, a.carrier, order_ref)
        tails = {
            "unsold": [receiving, (BizStep.STOCKING, Disposition.SELLABLE_ACCESSIBLE, merchant, ZERO)],
            "undelivered": [sale, (BizStep.DEPARTING, Disposition.IN_TRANSIT, a.carrier, order_ref)],
            "recalled": [sale, delivery, (BizStep.HOLDING, Disposition.RECALLED, a.manufacturer, ZERO)],
            "destroyed": [sale, delivery, (BizStep.DESTROYING, Disposition.DESTROYED, merchant, ZERO)],
            "delivered": [receiving, sale, delivery],
        }
        tail = tails[profile]
        filler = (BizStep.TRANSPORTING, Disposition.IN_TRANSIT, a.carrier, ZERO)
        steps = [commissioning, shipping, *[filler] * (self.k - 2 - len(tail)), *tail]

        prev = ZERO
        for seq, (step, disposition, actor, biz_tx) in enumerate(steps):
            chain.tx()
            if seq == 0:
                out.append(ItemRegistered(chain.pos(), iid, a.manufacturer, merchant, item_uri(index), GTIN, ZERO))
            elif step == BizStep.RETAIL_SELLING:
                out.append(
                    SaleRecorded(
                        chain.pos(escrow=True),
                        iid,
                        merchant,
                        consumer,
                        1,
                        a.token,
                        price,
                        version,
                        order_ref,
                        chain.timestamp,
                    )
                )
            location = HUB if actor == a.carrier else LOCATION
            ts = chain.timestamp
            event_hash = event_hash_hex(
                prev_hash=prev,
                item_id=iid,
                seq=seq,
                biz_step=int(step),
                disposition=int(disposition),
                actor=actor,
                location=location,
                document=ZERO,
                biz_transaction=biz_tx,
                timestamp=ts,
            )
            if seq == tamper_seq:
                event_hash = _hash("tampered", index)
                stats.tampered += 1
            out.append(
                ItemEventRecorded(
                    chain.pos(),
                    iid,
                    actor,
                    seq,
                    int(step),
                    int(disposition),
                    location,
                    ZERO,
                    biz_tx,
                    ts,
                    prev,
                    event_hash,
                )
            )
            prev = event_hash
        stats.item_events += len(steps)
        stats.items += 1
        if profile == "delivered" and return_draw < 0.04:
            self._return(iid, merchant, consumer, version, price, cancelled=return_draw < 0.01)
        return categorized

    def _return(self, iid: str, merchant: str, consumer: str, version: int, price: int, *, cancelled: bool) -> None:
        chain, out, token = self.chain, self.out, self.actors.token
        doc = self.documents[merchant][version - 1]
        return_id = _hash("return", iid, 1, 0)
        chain.tx()
        ship_by = chain.timestamp + doc.ship_by_days * DAY
        out.append(
            ReturnAuthorized(
                chain.pos(escrow=True),
                return_id,
                iid,
                consumer,
                merchant,
                token,
                price,
                doc.restocking_fee_bps,
                False,
                version,
                1,
                ship_by,
            )
        )
        if not cancelled:
            self.stats.returns_open += 1
            return
        chain.tx()
        out.append(
            ReturnStateChanged(
                chain.pos(escrow=True),
                return_id,
                int(ReturnState.CANCELLED),
                consumer,
                int(ReturnState.AUTHORIZED),
                chain.timestamp,
                0,
                ZERO,
            )
        )
        out.append(EscrowSettled(chain.pos(escrow=True), return_id, consumer, merchant, token, 0, price))
        self.stats.returns_cancelled += 1
