"""Checks that a node's ``eth_getLogs`` answers hold every log of the pinned contracts.

A node can leave logs out and still answer well-formed JSON (a load-balanced
backend that is behind, a range cap applied silently). The indexer must not store
such a history with holes; three checks, cheapest first:

- **bloom** (:class:`BloomCheck`): each block header's ``logsBloom`` holds the
  addresses and topics of every log of the block. For every fetched block whose
  bloom may hold one of our addresses together with one of our events' topic0
  while the answer has no log of that event in that block, the range is
  re-fetched (from the second RPC URL when one is configured). The bits of our
  addresses and topics are computed once; per block only bits are tested. It
  sees a block whose every log of one event kind was left out, while its bloom
  is sparse enough for a hit to mean something (:meth:`BloomCheck.unexplained`);
  not a log left out next to another of the same kind in its block.
- **reconcile** (:func:`expected_items`, :func:`reconcile`): after each batch the
  contract's ``itemOf`` (count, head, merchant) of every item the batch touched,
  read at the batch's last block in one batched JSON-RPC request, must equal
  what the batch's events make of them. It sees any item event left out of the
  batch that touched the item (the last one included), not an item whose every
  event of the batch was left out, nor events without an item (roles, sellers,
  returns).
- **proof** (:class:`ReceiptsProof`, off by default: it fetches every receipt of
  every block whose bloom may hold our addresses): the block's receipts
  (``eth_getBlockReceipts``) must hash to the header's ``receiptsRoot`` (a
  Merkle Patricia trie, py-trie), and the answer must hold every log of our
  contracts they contain. Within those blocks nothing can be left out unseen.

A problem that a re-fetched answer repairs is recorded (``node_faults``) and the
complete answer indexed; one that stays stops the indexer with
:class:`IncompleteLogsError`, naming the block range and the item, before anything
of the range is written. A bloom hit that no answer explains and no proof settles
may be a false positive (blooms of busy blocks are dense): it is recorded as
unresolved and logged, and indexing goes on.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import rlp  # type: ignore[import-untyped]
import structlog
from trie.hexary import HexaryTrie

from ledger_service.core.events import (
    DecodedEvent,
    ItemEventRecorded,
    ItemRegistered,
    MerchantOfRecordChanged,
    RoleChanged,
)
from ledger_service.core.keccak import keccak
from ledger_service.core.rows import EVENT_TYPES, ITEM_EVENT_RECORDED, EventRows, decode_event, own_position
from ledger_service.errors import FatalError, RetryableError
from ledger_service.indexer.rpc import RpcClient, RpcFatalError, RpcRetryableError
from ledger_service.store.handle import NodeFault

log = structlog.get_logger("ledger_service.indexer.completeness")

ITEM_OF_SELECTOR = keccak(b"itemOf(bytes32)")[:4].hex()
"""``ProvenanceLedger.itemOf(bytes32)``: (head, count, merchant, destroyed) of an item."""

ZERO_HASH = "0x" + "00" * 32

RECONCILE_CHUNK = 500
"""itemOf calls per JSON-RPC batch request (a batch touching more items sends several)."""


class BlockGoneError(RetryableError):
    """The block a batch was reconciled at left the node's chain (a reorg): fetch the batch again."""


class IncompleteLogsError(FatalError):
    """The node's answers miss logs and re-fetching did not fill the gap: the indexer stops, nothing of the range
    written. ``faults``: what was found, for the index's record."""

    def __init__(self, message: str, faults: Sequence[NodeFault] = ()) -> None:
        super().__init__(message)
        self.faults = tuple(faults)

    def __reduce__(self) -> tuple[Any, ...]:  # it crosses the fetch process's pipe, faults and all
        return (type(self), (str(self), self.faults))


# ---- what an event is, for the checks ----------------------------------------------------


_ITEM_EVENT = ITEM_EVENT_RECORDED
_ITEM_ID, _SEQ, _EVENT_HASH = (own_position(ItemEventRecorded, n) for n in ("item_id", "seq", "event_hash"))
_ROLE_CHANGED = EVENT_TYPES.index(RoleChanged)


def event_name(event: DecodedEvent | tuple[Any, ...]) -> str:
    """The ABI name of an event (RoleChanged is RoleGranted or RoleRevoked), from the object or its row form."""
    if type(event) is tuple:
        index = event[0]
        if index == _ROLE_CHANGED:
            return "RoleGranted" if event[2][3] else "RoleRevoked"
        return str(EVENT_TYPES[index].__name__)
    if isinstance(event, RoleChanged):
        return "RoleGranted" if event.granted else "RoleRevoked"
    return type(event).__name__


def _items_of(events: Sequence[DecodedEvent]) -> Iterable[DecodedEvent | tuple[Any, ...]]:
    return events.rows if isinstance(events, EventRows) else events


def names_by_block(events: Sequence[DecodedEvent]) -> dict[int, set[str]]:
    """The event names found in each block."""
    found: dict[int, set[str]] = {}
    for event in _items_of(events):
        block = event[1][0] if type(event) is tuple else event.pos.block_number  # type: ignore[union-attr]
        found.setdefault(block, set()).add(event_name(event))
    return found


# ---- bloom --------------------------------------------------------------------------------


def bloom_bits(element: bytes) -> tuple[tuple[int, int], ...]:
    """The three (byte index, mask) pairs that ``element`` sets in a 2048-bit logs bloom (yellow paper, M3:2048)."""
    digest = keccak(element)
    bits = []
    for i in (0, 2, 4):
        bit = ((digest[i] << 8) | digest[i + 1]) & 2047
        bits.append((255 - bit // 8, 1 << (bit % 8)))
    return tuple(bits)


SPARSE = 1 / 8
"""Bloom density up to which a kind of event missing next to other events of ours is looked for."""
DENSE = 1 / 4
"""Bloom density up to which a block whose answer has no log of ours is looked at."""


def _maybe(bloom: bytes, bits: tuple[tuple[int, int], ...]) -> bool:
    return all(bloom[index] & mask for index, mask in bits)


class BloomCheck:
    """Which of a block's events a header's logsBloom says may be there although the answer has none of them."""

    def __init__(self, *, addresses: Sequence[str], topics: Mapping[str, str]) -> None:
        """``topics``: topic0 -> event name, of the events the indexer decodes."""
        self._addresses = [bloom_bits(bytes.fromhex(a.removeprefix("0x"))) for a in addresses]
        self._topics = [(name, bloom_bits(bytes.fromhex(t.removeprefix("0x")))) for t, name in topics.items()]

    def addresses_maybe(self, bloom_hex: str) -> bool:
        """Whether the bloom may hold a log of one of our contracts."""
        bloom = bytes.fromhex(bloom_hex[2:])
        return any(_maybe(bloom, bits) for bits in self._addresses)

    def unexplained(self, bloom_hex: str, found: set[str]) -> list[str]:
        """Our events the bloom may hold (with one of our addresses) of which ``found`` has none: empty for a
        complete answer, and for most blocks after one byte test per address.

        A bloom says "maybe" by chance with the probability (set bits / 2048) ** 3: in a block with many logs,
        that is often. So a kind of event is looked for next to other events of ours only while the bloom is at
        most :data:`SPARSE` full (a chance hit then under 0.2% per kind), and a block whose answer has no log of
        ours at all only while it is at most :data:`DENSE` full (under 1.6%): past that, a hit says nothing and
        only the reconciliation and the receipts proof can tell."""
        bloom = bytes.fromhex(bloom_hex[2:])
        if not any(_maybe(bloom, bits) for bits in self._addresses):
            return []
        density = int.from_bytes(bloom, "big").bit_count() / 2048
        if density > (SPARSE if found else DENSE):
            return []
        return [name for name, bits in self._topics if name not in found and _maybe(bloom, bits)]

    def suspects(self, blocks: Mapping[int, Mapping[str, Any]], events: Sequence[DecodedEvent]) -> dict[int, list[str]]:
        """Block number -> unexplained event names, for the fetched ``blocks`` (raw headers) and their events."""
        found = names_by_block(events)
        empty: set[str] = set()
        out: dict[int, list[str]] = {}
        for number, block in blocks.items():
            bloom = block.get("logsBloom")
            if not isinstance(bloom, str) or len(bloom) != 514:
                continue  # a node that sends no bloom: this check cannot run (reconcile and proof still do)
            missing = self.unexplained(bloom, found.get(number, empty))
            if missing:
                out[number] = missing
        return out


# ---- receipts proof ---------------------------------------------------------------------------


def _b(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text[2:]) if hex_text.startswith("0x") else bytes.fromhex(hex_text)


def receipt_encoding(receipt: Mapping[str, Any]) -> bytes:
    """A receipt as the receipts trie stores it (EIP-2718: the type byte, then the RLP list, for typed ones)."""
    root = receipt.get("root")
    first: Any = _b(root) if isinstance(root, str) and root not in ("", "0x") else int(receipt["status"], 16)
    logs = [[_b(lg["address"]), [_b(t) for t in lg["topics"]], _b(lg["data"])] for lg in receipt["logs"]]
    payload: bytes = rlp.encode([first, int(receipt["cumulativeGasUsed"], 16), _b(receipt["logsBloom"]), logs])
    kind = int(receipt.get("type") or "0x0", 16)
    return payload if kind == 0 else bytes([kind]) + payload


def receipts_root(receipts: Sequence[Mapping[str, Any]]) -> str:
    """The Merkle Patricia trie root of a block's receipts (keyed by RLP(index)), as 0x-hex."""
    trie = HexaryTrie(db={})
    for index, receipt in enumerate(receipts):
        trie[rlp.encode(index)] = receipt_encoding(receipt)
    return "0x" + bytes(trie.root_hash).hex()


class ReceiptsProof:
    """Proves which logs of our contracts a block holds: its receipts, checked against the header's receiptsRoot."""

    def __init__(self, *, addresses: Sequence[str]) -> None:
        self._addresses = {a.lower() for a in addresses}

    def our_logs(self, rpc: RpcClient, block: Mapping[str, Any]) -> set[int]:
        """The log indexes of our contracts' logs in ``block`` (a raw header), proven by its receipts.

        Raises :class:`IncompleteLogsError` when the receipts do not hash to the header's receiptsRoot."""
        number = int(block["number"], 16)
        receipts = rpc.call("eth_getBlockReceipts", [block["number"]])
        if not isinstance(receipts, list):
            raise IncompleteLogsError(f"block {number}: the node has no receipts for it (eth_getBlockReceipts)")
        try:
            root = receipts_root(receipts)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IncompleteLogsError(f"block {number}: malformed receipts from the node ({exc!r})") from None
        if root != str(block.get("receiptsRoot", "")).lower():
            raise IncompleteLogsError(
                f"block {number}: the node's receipts hash to {root}, the header's receiptsRoot is "
                f"{block.get('receiptsRoot')}: its receipts (and so its logs) are not the block's"
            )
        return {
            int(lg["logIndex"], 16)
            for receipt in receipts
            for lg in receipt["logs"]
            if str(lg["address"]).lower() in self._addresses
        }


def log_indexes_by_block(events: Sequence[DecodedEvent]) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for event in _items_of(events):
        if type(event) is tuple:
            out.setdefault(event[1][0], set()).add(event[1][4])
        else:
            pos = event.pos  # type: ignore[union-attr]
            out.setdefault(pos.block_number, set()).add(pos.log_index)
    return out


# ---- reconciliation with the contract --------------------------------------------------------


@dataclass(slots=True)
class Expected:
    """What a batch's events make of one item at the batch's last block (None: the batch does not say)."""

    count: int | None = None
    head: str | None = None
    merchant: str | None = None
    block: int = 0
    """The block of the item's last event in the batch."""


def expected_items(events: Sequence[DecodedEvent]) -> dict[str, Expected]:
    """Per item the batch touches: its count and head after its last event (seq + 1, eventHash; none for an item
    registered in the batch) and its merchant after its last registration or merchant change."""
    out: dict[str, Expected] = {}
    for event in _items_of(events):
        if type(event) is tuple:
            if event[0] != _ITEM_EVENT:
                event = decode_event(event)
            else:
                own = event[2]
                expected = out.setdefault(own[_ITEM_ID], Expected())
                expected.count, expected.head, expected.block = own[_SEQ] + 1, own[_EVENT_HASH], event[1][0]
                continue
        if isinstance(event, ItemEventRecorded):
            expected = out.setdefault(event.item_id, Expected())
            expected.count, expected.head, expected.block = event.seq + 1, event.event_hash, event.pos.block_number
        elif isinstance(event, ItemRegistered):  # a new item: its events (at least commissioning) follow
            expected = out.setdefault(event.item_id, Expected())
            expected.count, expected.head = 0, ZERO_HASH
            expected.merchant, expected.block = event.merchant, event.pos.block_number
        elif isinstance(event, MerchantOfRecordChanged):
            expected = out.setdefault(event.item_id, Expected())
            expected.merchant, expected.block = event.new_merchant, event.pos.block_number
    return out


@dataclass(frozen=True, slots=True)
class Mismatch:
    """An item whose state on the chain differs from what the batch's events make of it."""

    item_id: str
    block: int
    detail: str


_NO_STATE = re.compile(
    r"out of range|missing trie node|state.{0,20}(not available|unavailable|pruned)|historical state|pruned"
    r"|header not found|unknown block|not found",
    re.IGNORECASE,
)
"""How nodes say they have no state for a block (anvil's BlockOutOfRangeError, geth's "missing trie node", ...)."""

RECONCILE_ATTEMPTS = 3


def _item_records(
    rpc: RpcClient, calls: Sequence[tuple[str, Sequence[Any]]], *, block_hash: str, block_number: int
) -> list[Any] | None:
    """The answers of one itemOf batch; None when the node has no state for the block. A failure is looked at
    before it is retried: a block that left the chain raises BlockGoneError (fetch the range again), a node that
    says it has no state for it answers None at once, a blip is retried a few times and then also answers None
    (the batch goes unreconciled, with a warning, rather than the indexer waiting on one call)."""
    for attempt in range(1, RECONCILE_ATTEMPTS + 1):
        try:
            return rpc.batch_once(calls)
        except RpcFatalError as exc:  # a node without EIP-1898, or one that refuses old states as bad params
            log.debug("reconcile_no_answer", block=block_number, error=str(exc))
            return None
        except RpcRetryableError as exc:
            header = rpc.header(block_number)
            if header is None or header.hash != block_hash.lower():  # reorged away since it was fetched
                raise BlockGoneError(f"block {block_number} ({block_hash}) is no longer on the node's chain") from None
            if _NO_STATE.search(str(exc)) or attempt == RECONCILE_ATTEMPTS:
                log.debug("reconcile_no_answer", block=block_number, error=str(exc))
                return None
            time.sleep(rpc.retry.delay(attempt))
    return None


def reconcile(
    rpc: RpcClient, *, ledger: str, block_hash: str, block_number: int, expected: Mapping[str, Expected]
) -> list[Mismatch] | None:
    """Compares ``expected`` with the contract's ``itemOf`` at the block (by hash, so a reorg since cannot answer
    for another block): the mismatches, or None when the node cannot answer for that block's state."""
    keys = sorted(expected)
    results: list[Any] = []
    at = {"blockHash": block_hash}
    for start in range(0, len(keys), RECONCILE_CHUNK):
        part = keys[start : start + RECONCILE_CHUNK]
        calls: list[tuple[str, Sequence[Any]]] = [
            ("eth_call", [{"to": ledger, "data": "0x" + ITEM_OF_SELECTOR + key[2:]}, at]) for key in part
        ]
        answered = _item_records(rpc, calls, block_hash=block_hash, block_number=block_number)
        if answered is None:
            return None
        results.extend(answered)
    mismatches = []
    for key, result in zip(keys, results, strict=True):
        want = expected[key]
        if not isinstance(result, str) or len(result) < 2 + 4 * 64:
            mismatches.append(Mismatch(key, block_number, f"itemOf answered {result!r}"))
            continue
        head = "0x" + result[2:66].lower()
        count = int(result[66:130], 16)
        merchant = "0x" + result[154:194].lower()
        problems = []
        if want.count is not None and (count, head) != (want.count, want.head):
            problems.append(
                f"the contract counts {count} events (head {head}) at block {block_number}, the answers hold "
                f"{want.count} (head {want.head}): {count - want.count} event(s) missing"
            )
        if want.merchant is not None and merchant != want.merchant:
            problems.append(f"merchant of record {merchant} on the chain, {want.merchant} in the answers")
        if problems:
            mismatches.append(Mismatch(key, block_number, "; ".join(problems)))
    return mismatches


def fault(kind: str, *, start: int, end: int, detail: str, repaired: bool, item_id: str | None = None) -> NodeFault:
    """A :class:`NodeFault`, logged as one warning line."""
    log.warning("node_fault", kind=kind, blocks=f"{start}..{end}", item=item_id, repaired=repaired, detail=detail)
    return NodeFault(kind, start, end, item_id, detail, repaired)


# ---- the checks of one fetched range -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checks:
    """The completeness checks a Prefetcher runs on each range it fetches, and where it re-fetches."""

    probe: BloomCheck
    bloom: bool = True
    proof: ReceiptsProof | None = None
    fallback: RpcClient | None = None
    """The node asked again when an answer looks incomplete (None: the same node, once more)."""

    @property
    def headers_needed(self) -> bool:
        """Whether every block's header of a range must be fetched (not only those kept for reorgs)."""
        return self.bloom or self.proof is not None

    def source(self, rpc: RpcClient) -> RpcClient:
        return self.fallback or rpc

    def fresh(self) -> Checks:
        """The same checks with a fallback client of their own connections (in a forked fetch process)."""
        fallback = None if self.fallback is None else self.fallback.fresh()
        return Checks(self.probe, self.bloom, self.proof, fallback)


def _where(checks: Checks) -> str:
    return "from the second RPC URL" if checks.fallback is not None else "from the same node"


def describe_source(checks: Checks | None) -> str:
    """Where a re-fetch asks, for messages."""
    return "the second time from the second RPC URL" if checks and checks.fallback else "both times from one node"


def check_range(
    checks: Checks,
    *,
    rpc: RpcClient,
    start: int,
    end: int,
    blocks: Mapping[int, Mapping[str, Any]],
    events: Sequence[DecodedEvent],
    refetch: Callable[[RpcClient], Sequence[DecodedEvent]],
) -> tuple[Sequence[DecodedEvent], list[NodeFault]]:
    """Runs the bloom check and the receipts proof on a fetched range (``blocks``: every block's raw header);
    returns the events to index (a re-fetch's when it filled a gap) and the faults found.

    Raises :class:`IncompleteLogsError` when the proof shows logs that no answer holds."""
    faults: list[NodeFault] = []
    if checks.bloom:
        suspects = checks.probe.suspects(blocks, events)
        if suspects:
            again = refetch(checks.source(rpc))
            still = checks.probe.suspects(blocks, again)
            if len(again) > len(events):
                for number, names in suspects.items():
                    if number not in still:
                        detail = (
                            f"the eth_getLogs answer for blocks {start}..{end} had no {', '.join(names)} log of block "
                            f"{number}, which the block's logsBloom announces; a re-fetch {_where(checks)} had it"
                        )
                        faults.append(fault("bloom", start=number, end=number, detail=detail, repaired=True))
                events = again
                suspects = still
            if checks.proof is None:
                for number, names in suspects.items():
                    detail = (
                        f"block {number}'s logsBloom announces {', '.join(names)} of our contracts but no answer had "
                        "one: a false positive of the bloom, or every node asked leaves it out (the receipts proof, "
                        "LEDGER_RECEIPTS_PROOF, settles it)"
                    )
                    faults.append(fault("bloom", start=number, end=number, detail=detail, repaired=False))
    if checks.proof is not None:
        proof = checks.proof
        proven = {
            number: proof.our_logs(rpc, block)
            for number, block in blocks.items()
            if isinstance(block.get("logsBloom"), str) and checks.probe.addresses_maybe(block["logsBloom"])
        }

        def lacking(got: Sequence[DecodedEvent]) -> dict[int, set[int]]:
            have = log_indexes_by_block(got)
            return {n: missing for n, logs in proven.items() if (missing := logs - have.get(n, set()))}

        unproven = lacking(events)
        if unproven:
            again = refetch(checks.source(rpc))
            left = lacking(again)
            for number, indexes in unproven.items():
                detail = (
                    f"the receipts of block {number} (checked against its receiptsRoot) hold our contracts' logs "
                    f"{sorted(indexes)}, which the eth_getLogs answer for blocks {start}..{end} lacked"
                )
                faults.append(fault("proof", start=number, end=number, detail=detail, repaired=number not in left))
            if left:
                first = min(left)
                raise IncompleteLogsError(
                    f"incomplete logs: the node's eth_getLogs answers for blocks {start}..{end} lack logs "
                    f"{sorted(left[first])} of block {first} (proven by the block's receipts against its "
                    f"receiptsRoot), also when asked again {_where(checks)}; nothing of these blocks was indexed. "
                    "Point LEDGER_RPC_URL / LEDGER_RPC_URLS at a node that answers completely and run again.",
                    faults,
                )
            events = again
    return events, faults
