"""Builds decoded event streams as the contracts would emit them, without a chain.

:class:`ChainBuilder` hands out block numbers, timestamps and log positions in
the chain's total order, keeps each item's hash chain valid (computed with the
reference :func:`ledger_service.core.hashchain.event_hash`), and can tamper with
an event on request. Hashes are ``0x`` lowercase hex as the decoder produces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from eth_utils.crypto import keccak

from ledger_service.core.codes import BizStep, Disposition, ReturnState
from ledger_service.core.events import (
    BatchAnchored,
    BlockHeader,
    DecodedEvent,
    EscrowSettled,
    ExchangeAuthorized,
    ExchangeCollateralSettled,
    ExchangeExtraPaymentRecorded,
    ExchangeReplacementReleased,
    ExchangeTermsPublished,
    ItemEventRecorded,
    ItemRegistered,
    ListPriceSet,
    LogPosition,
    MerchantOfRecordChanged,
    PolicyPublished,
    ReturnAuthorized,
    ReturnStateChanged,
    ReturnUnitMismatch,
    RoleChanged,
    SaleRecorded,
    SellerSet,
)
from ledger_service.core.hashchain import event_hash
from ledger_service.store import BlockRef, Store

ZERO = "0x" + "00" * 32
LEDGER = "0x" + "11" * 20
ESCROW = "0x" + "22" * 20
BATCH_ANCHOR = "0x" + "33" * 20
TOKEN = "0x" + "33" * 20
EXCHANGE = "0x" + "44" * 20
DAY = 86_400


def h(*parts: object) -> str:
    """A deterministic 0x bytes32 from ``parts``."""
    return "0x" + keccak(text="/".join(map(str, parts))).hex()


def addr(n: int) -> str:
    """Account number ``n`` as an address."""
    return "0x" + f"{n + 1:040x}"


@dataclass
class _Item:
    item_id: str
    count: int = 0
    head: str = ZERO
    sales: int = 0


@dataclass
class ChainBuilder:
    """One chain's events and block headers, in order. ``fork`` changes every block hash."""

    number: int = 1
    time: int = 1_700_000_000
    fork: str = "main"
    events: list[DecodedEvent] = field(default_factory=list)
    headers: list[BlockHeader] = field(default_factory=list)
    items: dict[str, _Item] = field(default_factory=dict)
    log_index: int = 0

    def __post_init__(self) -> None:
        self._seal_header()

    # ---- blocks -------------------------------------------------------------------------

    def _seal_header(self) -> None:
        parent = self.headers[-1].hash if self.headers else h("genesis")
        self.headers.append(BlockHeader(self.number, h("block", self.fork, self.number), parent, self.time))

    def next_block(self, *, seconds: int = 12) -> int:
        self.number += 1
        self.time += seconds
        self.log_index = 0
        self._seal_header()
        return self.number

    def ref(self, number: int | None = None) -> BlockRef:
        header = self.headers[-1] if number is None else self.header(number)
        return BlockRef(header.number, header.hash)

    def header(self, number: int) -> BlockHeader:
        return next(x for x in self.headers if x.number == number)

    def _pos(self, address: str = LEDGER) -> LogPosition:
        index = self.log_index
        self.log_index += 1
        tx_hash = h("tx", self.fork, self.number, index)
        return LogPosition(self.number, self.headers[-1].hash, tx_hash, index, index, address)

    def _emit(self, ev: DecodedEvent) -> DecodedEvent:
        self.events.append(ev)
        return ev

    # ---- ProvenanceLedger ------------------------------------------------------------------

    def register(self, uri: str, *, manufacturer: str = addr(1), merchant: str = addr(2), gtin: int = 614141) -> str:
        item_id = "0x" + keccak(text=uri).hex()
        self.items[item_id] = _Item(item_id)
        self._emit(ItemRegistered(self._pos(), item_id, manufacturer, merchant, uri, gtin, h("meta", uri)))
        self.record(item_id, BizStep.COMMISSIONING, Disposition.ACTIVE, actor=manufacturer)
        return item_id

    def record(
        self,
        item_id: str,
        biz_step: int,
        disposition: int,
        *,
        actor: str = addr(3),
        tamper: str | None = None,
        biz_transaction: str = ZERO,
    ) -> ItemEventRecorded:
        """Appends a valid event, or with ``tamper`` one that breaks the chain:
        ``"prev"`` (prevHash does not link), ``"hash"`` (eventHash altered),
        ``"field"`` (a field altered after hashing), ``"skip"`` (a seq is missing), ``"repeat"`` (the
        previous event's seq again, linked to it)."""
        item = self.items.setdefault(item_id, _Item(item_id))
        seq = item.count + {"skip": 1, "repeat": -1}.get(tamper or "", 0)
        prev = h("forged", item_id, seq) if tamper == "prev" else item.head
        location = h("loc", seq)
        document = h("doc", item_id, seq)
        digest = event_hash(
            prev_hash=bytes.fromhex(prev[2:]),
            item_id=bytes.fromhex(item_id[2:]),
            seq=seq,
            biz_step=biz_step,
            disposition=disposition,
            actor=bytes.fromhex(actor[2:]),
            location=bytes.fromhex(location[2:]),
            document=bytes.fromhex(document[2:]),
            biz_transaction=bytes.fromhex(biz_transaction[2:]),
            timestamp=self.time,
        )
        ev = ItemEventRecorded(
            self._pos(),
            item_id,
            actor,
            seq,
            int(biz_step),
            int(disposition),
            location,
            document,
            biz_transaction,
            self.time,
            prev,
            "0x" + digest.hex(),
        )
        if tamper == "hash":
            ev = replace(ev, event_hash=h("altered", ev.event_hash))
        elif tamper == "field":
            ev = replace(ev, disposition=(ev.disposition % 13) + 1)
        item.count = seq + 1
        item.head = ev.event_hash
        self._emit(ev)
        return ev

    def change_merchant(self, item_id: str, previous: str, new: str) -> None:
        self._emit(MerchantOfRecordChanged(self._pos(), item_id, previous, new))

    def set_seller(self, merchant: str, seller: str, allowed: bool) -> None:
        self._emit(SellerSet(self._pos(), merchant, seller, allowed))

    def role(self, role: str, account: str, granted: bool, *, sender: str = addr(0)) -> None:
        self._emit(RoleChanged(self._pos(), role, account, sender, granted))

    # ---- ReturnsEscrow -----------------------------------------------------------------

    def policy(self, merchant: str, version: int, *, ship_by_days: int = 14, inspect_by_days: int = 7) -> None:
        self._emit(
            PolicyPublished(
                self._pos(ESCROW),
                merchant,
                version,
                30,
                500,
                True,
                10**24,
                3,
                ship_by_days,
                inspect_by_days,
                5,
                h("policy", merchant, version),
                self.time,
            )
        )

    def sale(
        self,
        item_id: str,
        *,
        merchant: str = addr(2),
        consumer: str = addr(6),
        policy_version: int = 1,
        token: str = TOKEN,
    ) -> int:
        """A sale as ReturnsEscrow.recordSale writes it: SaleRecorded, then the item's retail_selling event."""
        item = self.items.setdefault(item_id, _Item(item_id))
        item.sales += 1
        self._emit(
            SaleRecorded(
                self._pos(ESCROW),
                item_id,
                merchant,
                consumer,
                item.sales,
                token,
                10**20 + item.sales,
                policy_version,
                h("order", item_id, item.sales),
                self.time,
            )
        )
        self.record(
            item_id,
            BizStep.RETAIL_SELLING,
            Disposition.RETAIL_SOLD,
            actor=merchant,
            biz_transaction=h("order", item_id, item.sales),
        )
        return item.sales

    def authorize(
        self,
        item_id: str,
        sale_seq: int,
        index: int = 0,
        *,
        merchant: str = addr(2),
        consumer: str = addr(6),
        policy_version: int = 1,
        ship_by_days: int = 14,
        amount: int = 2**96 - 1,
        token: str = TOKEN,
    ) -> str:
        return_id = h("return", item_id, sale_seq, index)
        self._emit(
            ReturnAuthorized(
                self._pos(ESCROW),
                return_id,
                item_id,
                consumer,
                merchant,
                token,
                amount,
                500,
                True,
                policy_version,
                sale_seq,
                self.time + ship_by_days * DAY,
            )
        )
        return return_id

    def transition(
        self, return_id: str, state: ReturnState, previous: ReturnState, *, deadline: int = 0, actor: str = addr(3)
    ) -> None:
        self._emit(
            ReturnStateChanged(
                self._pos(ESCROW), return_id, int(state), actor, int(previous), self.time, deadline, h("ev", state)
            )
        )

    def settle(self, return_id: str, consumer_amount: int, merchant_amount: int) -> None:
        self._emit(
            EscrowSettled(self._pos(ESCROW), return_id, addr(6), addr(2), TOKEN, consumer_amount, merchant_amount)
        )

    def exchange(
        self,
        return_id: str,
        original: str,
        replacement: str,
        *,
        difference: int,
        instant: bool,
        merchant: str = "",
        terms: bool = True,
    ) -> None:
        """An exchange's whole story on ExchangeEscrow: terms, the replacement's list price, the authorization
        (``return_id``: its return's id), the extra payment when the replacement is dearer, the release and, for
        an instant exchange, the collateral paid to the merchant."""
        merchant = merchant or addr(2)
        collateral = 100 + min(difference, 0) if instant else 0
        if terms:  # once per merchant and policy version
            self._emit(ExchangeTermsPublished(self._pos(EXCHANGE), merchant, 1, 45, True, 0, h("terms")))
        self._emit(ListPriceSet(self._pos(EXCHANGE), replacement, merchant, 100 + difference))
        self._emit(
            ExchangeAuthorized(
                self._pos(EXCHANGE),
                return_id,
                original,
                replacement,
                merchant,
                TOKEN,
                100 + difference,
                difference,
                collateral,
                instant,
            )
        )
        if difference > 0:
            self._emit(ExchangeExtraPaymentRecorded(self._pos(EXCHANGE), return_id, difference, h("paid")))
        self._emit(ExchangeReplacementReleased(self._pos(EXCHANGE), return_id, replacement, instant))
        if instant:
            self._emit(ExchangeCollateralSettled(self._pos(EXCHANGE), return_id, merchant, TOKEN, collateral, True))

    def unit_mismatch(self, return_id: str, sold: str, scanned: str, *, actor: str = addr(3)) -> None:
        self._emit(
            ReturnUnitMismatch(self._pos(ESCROW), return_id, sold, scanned, "0x" + "00" * 20, actor, 7, self.time)
        )

    # ---- BatchAnchor -------------------------------------------------------------------------

    def anchor_batch(self, root: str, count: int, *, submitter: str = addr(3)) -> None:
        self._emit(BatchAnchored(self._pos(BATCH_ANCHOR), root, submitter, h("doc", root), count, self.time))


def upto(events: Sequence[DecodedEvent], number: int) -> list[DecodedEvent]:
    """The events in blocks ``<= number``."""
    return [ev for ev in events if ev.pos.block_number <= number]


def headers_upto(headers: Sequence[BlockHeader], number: int) -> list[BlockHeader]:
    return [x for x in headers if x.number <= number]


def apply_new(store: Store, chain: ChainBuilder) -> None:
    """Applies whatever the chain has above the store's checkpoint."""
    current = store.checkpoint()
    since = -1 if current is None else current.number
    store.apply(
        events=[ev for ev in chain.events if ev.pos.block_number > since],
        headers=[x for x in chain.headers if x.number > since],
        checkpoint=chain.ref(),
        prune_below=0,
    )


def sold_and_delivered(chain: ChainBuilder, uri: str, *, merchant: str, consumer: str, selling_step: bool) -> str:
    """Registers an item of ``merchant``, sells it to ``consumer`` in the next block (with the retail_selling
    event the escrow writes with each sale when ``selling_step``) and delivers it a day later."""
    item = chain.register(uri, merchant=merchant)
    chain.next_block()
    chain.sale(item, merchant=merchant, consumer=consumer)
    if selling_step:
        chain.record(item, BizStep.RETAIL_SELLING, Disposition.RETAIL_SOLD)
    chain.next_block(seconds=DAY)
    chain.record(item, BizStep.ARRIVING, Disposition.RETAIL_SOLD)
    return item
