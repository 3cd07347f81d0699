"""Fetches one item's logs and stored record from the node and checks them (see the package docstring).

Everything is read as of one block (the node's latest when the check starts),
so events recorded meanwhile cannot make a genuine history look wrong. What the
node returns is evidence, not truth: a log that cannot be decoded, belongs to
another item or contract, or contradicts the others becomes a :class:`Problem`
naming the event (by seq) it is about; only a node that cannot be used at all
raises :class:`~ledger_service.independent_verifier._rpc.NodeError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address

from ledger_service.core.codes import BizStep
from ledger_service.core.hashchain import ZERO_HASH, ChainLink, item_id, recompute
from ledger_service.core.keccak import keccak
from ledger_service.documents.cid import Cid, cid_of_file
from ledger_service.independent_verifier._rpc import NodeError, Rpc, RpcRefusedError, RpcTimeoutError

ITEM_REGISTERED = keccak(b"ItemRegistered(bytes32,address,address,string,uint64,bytes32)")
ITEM_EVENT_RECORDED = keccak(
    b"ItemEventRecorded(bytes32,address,uint64,uint8,uint8,bytes32,bytes32,bytes32,uint64,bytes32,bytes32)"
)
RETURN_UNIT_MISMATCH = keccak(b"ReturnUnitMismatch(bytes32,bytes32,bytes32,address,address,uint8,uint64)")
EXCHANGE_AUTHORIZED = keccak(b"ExchangeAuthorized(bytes32,bytes32,bytes32,address,address,uint96,int96,uint96,bool)")
ITEM_OF = keccak(b"itemOf(bytes32)")[:4]  # returns (bytes32 head, uint64 count, address merchant, bool destroyed)
_METHOD_NOT_FOUND = -32601

if TYPE_CHECKING:
    from ledger_service.independent_verifier.batches import BatchesChecked


@dataclass(frozen=True, slots=True)
class Position:
    """Where a log is on the chain."""

    block: int
    log_index: int
    tx: str


@dataclass(frozen=True, slots=True)
class Registration:
    """The item's ``ItemRegistered`` log."""

    uri: str
    manufacturer: str
    merchant: str
    gtin: int
    metadata_digest: bytes
    position: Position


@dataclass(frozen=True, slots=True)
class Event:
    """One ``ItemEventRecorded`` log, with the eventHash its fields hash to."""

    link: ChainLink
    position: Position
    recomputed: bytes


@dataclass(frozen=True, slots=True)
class Record:
    """The contract's stored state of the item (``itemOf``); all zero for an unknown item."""

    head: bytes
    count: int
    merchant: str
    destroyed: bool


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason the item does not verify. ``kind`` is stable for machines, ``message`` is for people."""

    kind: str
    message: str
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class UnitMismatch:
    """A ``ReturnUnitMismatch`` of ReturnsEscrow naming the item as the unit sold or the unit scanned."""

    return_id: bytes
    sold_item_id: bytes
    scanned_item_id: bytes
    scanned_merchant: str
    actor: str
    biz_step: int
    at: int
    position: Position


@dataclass(frozen=True, slots=True)
class Exchange:
    """An ``ExchangeAuthorized`` of ExchangeEscrow naming the item as the original or the replacement."""

    exchange_id: bytes
    original_item_id: bytes
    replacement_item_id: bytes
    merchant: str
    price_difference: int
    instant: bool
    position: Position


@dataclass(frozen=True, slots=True)
class FileMatch:
    """A local file, its CID and the events (seqs) whose document it is."""

    path: str
    cid: Cid
    seqs: tuple[int, ...]


@dataclass
class Report:
    """Everything the verifier read and concluded about one item."""

    ledger: str
    item_id: bytes
    asked: str
    """ITEM as the auditor gave it (URI or id)."""
    chain_id: int
    block: int
    from_block: int
    record: Record
    registration: Registration | None = None
    events: list[Event] = field(default_factory=list)
    files: list[FileMatch] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    unit_mismatches: list[UnitMismatch] | None = None
    """The returns whose received unit was not the one sold, naming this item (None: no escrow given)."""
    exchanges: list[Exchange] | None = None
    """The exchanges naming this item as original or replacement (None: no ExchangeEscrow given)."""
    replayed_head: bytes = ZERO_HASH
    """The eventHash recomputed for the highest seq returned: what a replay gives as head."""
    batches: BatchesChecked | None = None
    """The item's batched scans, checked from every BatchAnchored and its document (None: no BatchAnchor given)."""

    @property
    def verified(self) -> bool:
        return not self.problems


def parse_item(text: str) -> bytes:
    """The item id of ITEM: ``0x`` + 64 hex digits as is, anything else as a GS1 URI (keccak256 of its bytes)."""
    text = text.strip()
    if text[:2].lower() == "0x":
        try:
            raw = bytes.fromhex(text[2:])
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise ValueError(f"not an item id (0x + 64 hex digits): {text!r}")
        return raw
    if not text:
        raise ValueError("the item is empty: give its GS1 URI or its 0x item id")
    return item_id(text)


def verify(
    rpc: Rpc,
    *,
    ledger: str,
    item: str,
    from_block: int = 0,
    files: Sequence[tuple[str, Cid]] = (),
    escrow: str | None = None,
    exchange: str | None = None,
) -> Report:
    """Checks ``item`` (GS1 URI or 0x id) on the ProvenanceLedger at ``ledger``, and where the files are referenced;
    with ``escrow`` (ReturnsEscrow) and ``exchange`` (ExchangeEscrow) also lists the unit mismatches and exchanges
    that name the item. Those are facts of the report, not problems: a swapped unit does not alter a history."""
    asked, target = item.strip(), parse_item(item)
    block = _int(rpc.call("eth_blockNumber", []), "eth_blockNumber")
    if from_block > block:
        raise NodeError(f"--from-block {from_block} is above the chain's latest block {block}")
    at = hex(block)
    if rpc.call("eth_getCode", [ledger, at]) in ("0x", "", None):
        raise NodeError(f"there is no contract at {ledger} on this chain (as of block {block})")
    report = Report(
        ledger=ledger,
        item_id=target,
        asked=asked,
        chain_id=_int(rpc.call("eth_chainId", []), "eth_chainId"),
        block=block,
        from_block=from_block,
        record=_item_of(rpc, ledger=ledger, item=target, at=at),
    )
    topics = [["0x" + ITEM_REGISTERED.hex(), "0x" + ITEM_EVENT_RECORDED.hex()], "0x" + target.hex()]
    for raw in sorted(fetch_logs(rpc, address=ledger, topics=topics, start=from_block, end=block), key=log_order):
        _decode(raw, report)
    if escrow is not None:
        logs = _logs_naming(rpc, address=escrow, topic0=RETURN_UNIT_MISMATCH, item=target, start=from_block, end=block)
        report.unit_mismatches = [m for m in (_unit_mismatch(raw, report) for raw in logs) if m is not None]
    if exchange is not None:
        logs = _logs_naming(rpc, address=exchange, topic0=EXCHANGE_AUTHORIZED, item=target, start=from_block, end=block)
        report.exchanges = [x for x in (_exchange(raw, report) for raw in logs) if x is not None]
    if report.record.count == 0 and not report.events and report.registration is None:
        report.problems.append(Problem("item-unknown", f"no item {asked} on this ledger as of block {block}"))
    else:
        _check_registration(report)
        _check_events(report)
    for path, cid in files:
        seqs = tuple(e.link.seq for e in report.events if e.link.document == cid.digest)
        report.files.append(FileMatch(path, cid, seqs))
        if not seqs:
            report.problems.append(
                Problem("document-unreferenced", f"{path} ({cid.v0}) is not referenced by any event of this item")
            )
    return report


def cid_of_path(path: str) -> Cid:
    """The CID ``ipfs add`` gives the file at ``path``; raises ValueError when it cannot be read."""
    try:
        return cid_of_file(Path(path))
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None


# ---- reading the node ------------------------------------------------------------------


def _int(value: Any, what: str) -> int:
    try:
        return int(value, 16)
    except (TypeError, ValueError):
        raise NodeError(f"{what}: malformed answer {value!r}") from None


def _item_of(rpc: Rpc, *, ledger: str, item: bytes, at: str) -> Record:
    call = {"to": ledger, "data": "0x" + (ITEM_OF + item).hex()}
    try:
        raw = bytes.fromhex(str(rpc.call("eth_call", [call, at])).removeprefix("0x"))
        head, count, merchant, destroyed = decode(["bytes32", "uint64", "address", "bool"], raw)
    except (RpcRefusedError, ValueError, DecodingError) as exc:
        raise NodeError(f"{ledger} does not answer itemOf(bytes32) as a ProvenanceLedger does ({exc})") from None
    if len(raw) != 128:
        raise NodeError(f"{ledger} answered itemOf(bytes32) with {len(raw)} bytes, a ProvenanceLedger with 128")
    return Record(head=head, count=count, merchant=to_checksum_address(merchant), destroyed=destroyed)


def _logs_naming(rpc: Rpc, *, address: str, topic0: bytes, item: bytes, start: int, end: int) -> list[dict[str, Any]]:
    """The logs of event ``topic0`` at ``address`` whose second or third indexed field is ``item``, in chain order
    (each log once: a log naming the item in both places is fetched twice)."""
    found: dict[tuple[int, int], dict[str, Any]] = {}
    for topics in (
        ["0x" + topic0.hex(), None, "0x" + item.hex()],
        ["0x" + topic0.hex(), None, None, "0x" + item.hex()],
    ):
        for raw in fetch_logs(rpc, address=address, topics=topics, start=start, end=end):
            found[log_order(raw)] = raw
    return [found[key] for key in sorted(found)]


def fetch_logs(rpc: Rpc, *, address: str, topics: list[Any], start: int, end: int) -> list[dict[str, Any]]:
    """The logs matching ``topics`` in [start, end]; a range the node refuses (too many results, too wide) is
    halved."""
    logs: list[dict[str, Any]] = []
    span = end - start + 1
    while start <= end:
        last = min(end, start + span - 1)
        query = {"address": address, "fromBlock": hex(start), "toBlock": hex(last), "topics": topics}
        try:
            part = rpc.call("eth_getLogs", [query])
        except (RpcRefusedError, RpcTimeoutError) as exc:
            if last == start or getattr(exc, "code", None) == _METHOD_NOT_FOUND:
                raise NodeError(f"the node refuses eth_getLogs for blocks {start}..{last}: {exc}") from None
            span = (last - start + 1) // 2
            continue
        if not isinstance(part, list) or not all(isinstance(log, dict) for log in part):
            raise NodeError("eth_getLogs: malformed answer (not a list of logs)")
        logs.extend(part)
        start = last + 1
    return logs


def log_order(raw: dict[str, Any]) -> tuple[int, int]:
    """The chain's order of logs: (block number, log index); undecodable positions sort first."""
    try:
        return int(raw["blockNumber"], 16), int(raw["logIndex"], 16)
    except (KeyError, TypeError, ValueError):
        return -1, -1


def _decode(raw: dict[str, Any], report: Report) -> None:
    """Adds one log to ``report`` as a registration or an event, or a problem when it cannot be one."""
    try:
        position = Position(int(raw["blockNumber"], 16), int(raw["logIndex"], 16), str(raw["transactionHash"]))
        topics = [bytes.fromhex(str(t).removeprefix("0x")) for t in raw["topics"]]
        data = bytes.fromhex(str(raw["data"]).removeprefix("0x"))
        where = f"log {position.log_index} of block {position.block}"
        if str(raw["address"]).lower() != report.ledger.lower() or topics[1:2] != [report.item_id]:
            report.problems.append(Problem("log-mismatch", f"{where} is not this item's log on this ledger"))
        elif topics[0] == ITEM_REGISTERED and len(topics) == 4:
            uri, gtin, metadata = decode(["string", "uint64", "bytes32"], data)
            manufacturer, merchant = (to_checksum_address(t[12:]) for t in topics[2:4])
            if report.registration is not None:
                report.problems.append(Problem("registration-duplicate", f"{where} registers the item again"))
            else:
                report.registration = Registration(uri, manufacturer, merchant, gtin, metadata, position)
        elif topics[0] == ITEM_EVENT_RECORDED and len(topics) == 3:
            fields = decode(["uint64", "uint8", "uint8", *["bytes32"] * 3, "uint64", "bytes32", "bytes32"], data)
            seq, step, disposition, location, document, transaction, timestamp, prev_hash, event_hash = fields
            link = ChainLink(
                report.item_id, seq, step, disposition, to_checksum_address(topics[2][12:]),
                location, document, transaction, timestamp, prev_hash, event_hash,
            )  # fmt: skip
            report.events.append(Event(link, position, recompute(link, prev_hash)))
        else:
            report.problems.append(Problem("log-mismatch", f"{where} is neither ItemRegistered nor ItemEventRecorded"))
    except (KeyError, IndexError, TypeError, ValueError, DecodingError) as exc:
        report.problems.append(Problem("log-malformed", f"the node returned a log that cannot be decoded ({exc!r})"))


def _naming(raw: dict[str, Any], report: Report, topic0: bytes) -> tuple[Position, list[bytes], bytes]:
    """A log of event ``topic0`` whose second or third indexed field is the item: its position, topics, data."""
    position = Position(int(raw["blockNumber"], 16), int(raw["logIndex"], 16), str(raw["transactionHash"]))
    topics = [bytes.fromhex(str(t).removeprefix("0x")) for t in raw["topics"]]
    if topics[0] != topic0 or len(topics) != 4 or report.item_id not in topics[2:]:
        raise ValueError("not a log of the event asked for, naming this item")
    return position, topics, bytes.fromhex(str(raw["data"]).removeprefix("0x"))


def _unit_mismatch(raw: dict[str, Any], report: Report) -> UnitMismatch | None:
    try:
        position, topics, data = _naming(raw, report, RETURN_UNIT_MISMATCH)
        merchant, actor, biz_step, at = decode(["address", "address", "uint8", "uint64"], data)
        return UnitMismatch(
            topics[1], topics[2], topics[3], to_checksum_address(merchant), to_checksum_address(actor),
            biz_step, at, position,
        )  # fmt: skip
    except (KeyError, IndexError, TypeError, ValueError, DecodingError) as exc:
        report.problems.append(Problem("log-malformed", f"the node returned a log that cannot be decoded ({exc!r})"))
        return None


def _exchange(raw: dict[str, Any], report: Report) -> Exchange | None:
    try:
        position, topics, data = _naming(raw, report, EXCHANGE_AUTHORIZED)
        fields = decode(["address", "address", "uint96", "int96", "uint96", "bool"], data)
        merchant, _token, _price, difference, _collateral, instant = fields
        return Exchange(topics[1], topics[2], topics[3], to_checksum_address(merchant), difference, instant, position)
    except (KeyError, IndexError, TypeError, ValueError, DecodingError) as exc:
        report.problems.append(Problem("log-malformed", f"the node returned a log that cannot be decoded ({exc!r})"))
        return None


# ---- the checks ------------------------------------------------------------------------


def _check_registration(report: Report) -> None:
    reg = report.registration
    if reg is None:
        report.problems.append(Problem("registration-missing", "the node returned no ItemRegistered log for the item"))
        return
    if item_id(reg.uri) != report.item_id:
        report.problems.append(Problem("registration-mismatch", f"the registered URI {reg.uri!r} is not this item's"))
    first = next((e for e in report.events if e.link.seq == 0), None)
    if first is not None and (
        first.position.tx != reg.position.tx
        or first.link.actor != reg.manufacturer
        or first.link.biz_step != BizStep.COMMISSIONING
        or first.link.document != reg.metadata_digest
    ):
        message = "event #0 is not the commissioning event of the registration (transaction, actor or document)"
        report.problems.append(Problem("registration-mismatch", message, 0))


def _check_events(report: Report) -> None:
    problems, record = report.problems, report.record
    by_seq: dict[int, Event] = {}
    latest = -1  # the highest seq seen so far, in chain order
    for event in report.events:
        seq = event.link.seq
        if seq in by_seq:
            problems.append(Problem("event-duplicate", f"event #{seq} appears more than once", seq))
            continue
        by_seq[seq] = event
        if seq < latest:
            problems.append(Problem("event-reordered", f"event #{seq} comes after event #{latest} on the chain", seq))
        latest = max(latest, seq)
    hint = f" (logs before block {report.from_block} were not fetched)" if report.from_block else ""
    present = [-1, *sorted(by_seq), max(record.count, latest + 1)]
    for before, after in pairwise(present):
        if after - before > 1:  # seqs before+1 .. after-1 are absent
            first, last = before + 1, after - 1
            which = f"event #{first} is" if first == last else f"events #{first}..#{last} are"
            problems.append(Problem("event-missing", f"{which} missing{hint}", first))
    for seq, event in sorted(by_seq.items()):
        if event.recomputed != event.link.event_hash:
            message = f"event #{seq} was altered: its fields do not hash to its eventHash"
            problems.append(Problem("event-altered", message, seq))
        prior = by_seq.get(seq - 1)
        previous = ZERO_HASH if seq == 0 else prior.link.event_hash if prior is not None else None
        if previous is not None and event.link.prev_hash != previous:  # (a missing #seq-1 is reported above)
            message = f"event #{seq}'s prevHash is not the eventHash of event #{seq - 1}: the hash chain is broken"
            problems.append(Problem("hash-chain-broken", message, seq))
    if len(by_seq) != record.count:
        message = f"the contract counts {record.count} events, the node returned {len(by_seq)}"
        problems.append(Problem("count-mismatch", message))
    report.replayed_head = by_seq[latest].recomputed if latest >= 0 else ZERO_HASH
    if report.replayed_head != record.head:
        message = f"the contract's head is 0x{record.head.hex()}, the events replay to 0x{report.replayed_head.hex()}"
        problems.append(Problem("head-mismatch", message, latest if latest >= 0 else None))
