"""Decodes raw ``eth_getLogs`` results into :mod:`ledger_service.core.events`.

No web3 objects per log: each log's topic0 selects a decoder that slices the
``data`` hex into 32-byte words (every field is static except ItemRegistered's
``uri``). The topic0 -> decoder table is built from the compiled ABIs in
``build/contracts``; building it fails with a clear error if an event the
indexer knows is missing from the ABI or changed its parameters, so a contract
change can never be silently misread.

Invariants: only logs of the pinned contract addresses are decoded (a ledger
event is accepted only from the ledger, an escrow event only from the escrow);
a log whose topic0 is known but whose shape does not match the ABI raises
:class:`MalformedLogError`; other events of those contracts (``RoleAdminChanged``)
are counted as skipped. Output is in the chain's total order (block, log index).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger_service.chain.artifacts import load_artifact
from ledger_service.core.events import (
    DecodedEvent,
    EscrowSettled,
    ItemEventRecorded,
    ItemRegistered,
    LogPosition,
    MerchantOfRecordChanged,
    PolicyPublished,
    ReturnAuthorized,
    ReturnStateChanged,
    RoleChanged,
    SaleRecorded,
    SellerSet,
)
from ledger_service.core.hashchain import event_hash_matches_log
from ledger_service.core.keccak import keccak_text
from ledger_service.core.rows import EVENT_TYPES, encode_event, row_order
from ledger_service.errors import ConfigurationError, RetryableError

try:
    from ledger_service.indexer import _speedups
except ImportError:  # pragma: no cover - not built (no C compiler or no GNU Nettle): the Python code runs
    _speedups = None  # type: ignore[assignment]


class MalformedLogError(RetryableError):
    """A log with a known topic0 whose topics or data do not fit the ABI (a flaky or broken node)."""


Topics = Sequence[str]
# A decoder gets the topics, the data hex without "0x" (lowercase) and the position.
DecodeFn = Callable[[Topics, str, LogPosition], DecodedEvent]


def _b32(word: str) -> str:
    return "0x" + word


def _addr(word: str) -> str:
    return "0x" + word[24:]


def _topic_addr(topic: str) -> str:
    return "0x" + topic[26:].lower()


# ---- ProvenanceLedger --------------------------------------------------------


def _item_registered(t: Topics, d: str, p: LogPosition) -> ItemRegistered:
    offset = int(d[0:64], 16) * 2
    length = int(d[offset : offset + 64], 16) * 2
    raw = d[offset + 64 : offset + 64 + length]
    if len(raw) != length:
        raise ValueError("string runs past the data")
    return ItemRegistered(
        pos=p,
        item_id=t[1].lower(),
        manufacturer=_topic_addr(t[2]),
        merchant=_topic_addr(t[3]),
        uri=bytes.fromhex(raw).decode("utf-8", errors="replace"),
        gtin=int(d[64:128], 16),
        metadata_digest="0x" + d[128:192],
    )


def _item_event_fields_py(t: Topics, d: str) -> tuple[Any, ...]:
    """ItemEventRecorded's own fields in dataclass order (its row form; the hot path of a fetch process).

    :data:`_item_event_fields` is this function, compiled where the C extension is built.
    """
    return (
        t[1].lower(),
        "0x" + t[2][26:].lower(),
        int(d[0:64], 16),
        int(d[64:128], 16),
        int(d[128:192], 16),
        "0x" + d[192:256],
        "0x" + d[256:320],
        "0x" + d[320:384],
        int(d[384:448], 16),
        "0x" + d[448:512],
        "0x" + d[512:576],
        event_hash_matches_log(t[1], t[2], d),
    )


_item_event_fields: Callable[[Topics, str], tuple[Any, ...]]
if _speedups is not None:
    # the C code reads canonical logs (hex of the expected lengths) and hands any other to the Python code
    _item_event_fields = functools.partial(_speedups.item_event_fields, _item_event_fields_py)
else:  # pragma: no cover - the bootstrap builds the extension; tests check it is there
    _item_event_fields = _item_event_fields_py

COMPILED = _speedups is not None
"""Whether the compiled ItemEventRecorded decoder is in use (logged by the CLI)."""


def _item_event_recorded(t: Topics, d: str, p: LogPosition) -> ItemEventRecorded:
    return ItemEventRecorded(p, *_item_event_fields(t, d))


def _merchant_changed(t: Topics, d: str, p: LogPosition) -> MerchantOfRecordChanged:
    return MerchantOfRecordChanged(
        pos=p, item_id=t[1].lower(), previous_merchant=_topic_addr(t[2]), new_merchant=_topic_addr(t[3])
    )


def _seller_set(t: Topics, d: str, p: LogPosition) -> SellerSet:
    return SellerSet(pos=p, merchant=_topic_addr(t[1]), seller=_topic_addr(t[2]), allowed=int(d[0:64], 16) != 0)


def _role_granted(t: Topics, d: str, p: LogPosition) -> RoleChanged:
    return RoleChanged(pos=p, role=t[1].lower(), account=_topic_addr(t[2]), sender=_topic_addr(t[3]), granted=True)


def _role_revoked(t: Topics, d: str, p: LogPosition) -> RoleChanged:
    return RoleChanged(pos=p, role=t[1].lower(), account=_topic_addr(t[2]), sender=_topic_addr(t[3]), granted=False)


# ---- ReturnsEscrow -----------------------------------------------------------


def _policy_published(t: Topics, d: str, p: LogPosition) -> PolicyPublished:
    return PolicyPublished(
        pos=p,
        merchant=_topic_addr(t[1]),
        version=int(t[2], 16),
        window_days=int(d[0:64], 16),
        restocking_fee_bps=int(d[64:128], 16),
        fast_refund=int(d[128:192], 16) != 0,
        fast_refund_max_value=int(d[192:256], 16),
        fast_refund_max_returns_90d=int(d[256:320], 16),
        ship_by_days=int(d[320:384], 16),
        inspect_by_days=int(d[384:448], 16),
        dispute_window_days=int(d[448:512], 16),
        document_digest="0x" + d[512:576],
        published_at=int(d[576:640], 16),
    )


def _sale_recorded(t: Topics, d: str, p: LogPosition) -> SaleRecorded:
    return SaleRecorded(
        pos=p,
        item_id=t[1].lower(),
        merchant=_topic_addr(t[2]),
        consumer=_topic_addr(t[3]),
        sale_seq=int(d[0:64], 16),
        token=_addr(d[64:128]),
        price=int(d[128:192], 16),
        policy_version=int(d[192:256], 16),
        order_ref="0x" + d[256:320],
        sold_at=int(d[320:384], 16),
    )


def _return_authorized(t: Topics, d: str, p: LogPosition) -> ReturnAuthorized:
    return ReturnAuthorized(
        pos=p,
        return_id=t[1].lower(),
        item_id=t[2].lower(),
        consumer=_topic_addr(t[3]),
        merchant=_addr(d[0:64]),
        token=_addr(d[64:128]),
        amount=int(d[128:192], 16),
        fee_bps=int(d[192:256], 16),
        fast_refund=int(d[256:320], 16) != 0,
        policy_version=int(d[320:384], 16),
        sale_seq=int(d[384:448], 16),
        ship_by=int(d[448:512], 16),
    )


def _return_state_changed(t: Topics, d: str, p: LogPosition) -> ReturnStateChanged:
    return ReturnStateChanged(
        pos=p,
        return_id=t[1].lower(),
        state=int(t[2], 16),
        actor=_topic_addr(t[3]),
        previous=int(d[0:64], 16),
        at=int(d[64:128], 16),
        deadline=int(d[128:192], 16),
        evidence="0x" + d[192:256],
    )


def _escrow_settled(t: Topics, d: str, p: LogPosition) -> EscrowSettled:
    return EscrowSettled(
        pos=p,
        return_id=t[1].lower(),
        consumer=_topic_addr(t[2]),
        merchant=_topic_addr(t[3]),
        token=_addr(d[0:64]),
        consumer_amount=int(d[64:128], 16),
        merchant_amount=int(d[128:192], 16),
    )


@dataclass(frozen=True, slots=True)
class EventSpec:
    """What the decoder expects of one ABI event: its contract, signature and layout."""

    contract: str
    name: str
    signature: str
    indexed: tuple[bool, ...]
    min_data_words: int
    decode: DecodeFn


_PL, _RE = "ProvenanceLedger", "ReturnsEscrow"
_POLICY = "(uint16,uint16,bool,uint96,uint16,uint16,uint16,uint16,bytes32)"
T, F = True, False
SPECS: tuple[EventSpec, ...] = (
    EventSpec(
        _PL,
        "ItemRegistered",
        "ItemRegistered(bytes32,address,address,string,uint64,bytes32)",
        (T, T, T, F, F, F),
        4,
        _item_registered,
    ),
    EventSpec(
        _PL,
        "ItemEventRecorded",
        "ItemEventRecorded(bytes32,address,uint64,uint8,uint8,bytes32,bytes32,bytes32,uint64,bytes32,bytes32)",
        (T, T, F, F, F, F, F, F, F, F, F),
        9,
        _item_event_recorded,
    ),
    EventSpec(
        _PL,
        "MerchantOfRecordChanged",
        "MerchantOfRecordChanged(bytes32,address,address)",
        (T, T, T),
        0,
        _merchant_changed,
    ),
    EventSpec(_PL, "SellerSet", "SellerSet(address,address,bool)", (T, T, F), 1, _seller_set),
    EventSpec(_PL, "RoleGranted", "RoleGranted(bytes32,address,address)", (T, T, T), 0, _role_granted),
    EventSpec(_PL, "RoleRevoked", "RoleRevoked(bytes32,address,address)", (T, T, T), 0, _role_revoked),
    EventSpec(
        _RE,
        "PolicyPublished",
        f"PolicyPublished(address,uint32,{_POLICY},uint64)",
        (T, T, F, F),
        10,
        _policy_published,
    ),
    EventSpec(
        _RE,
        "SaleRecorded",
        "SaleRecorded(bytes32,address,address,uint32,address,uint96,uint32,bytes32,uint64)",
        (T, T, T, F, F, F, F, F, F),
        6,
        _sale_recorded,
    ),
    EventSpec(
        _RE,
        "ReturnAuthorized",
        "ReturnAuthorized(bytes32,bytes32,address,address,address,uint96,uint16,bool,uint32,uint32,uint64)",
        (T, T, T, F, F, F, F, F, F, F, F),
        8,
        _return_authorized,
    ),
    EventSpec(
        _RE,
        "ReturnStateChanged",
        "ReturnStateChanged(bytes32,uint8,address,uint8,uint64,uint64,bytes32)",
        (T, T, T, F, F, F, F),
        4,
        _return_state_changed,
    ),
    EventSpec(
        _RE,
        "EscrowSettled",
        "EscrowSettled(bytes32,address,address,address,uint256,uint256)",
        (T, T, T, F, F, F),
        3,
        _escrow_settled,
    ),
)


_FAST: dict[str, tuple[int, Callable[[Topics, str], tuple[Any, ...]]]] = {
    "ItemEventRecorded": (EVENT_TYPES.index(ItemEventRecorded), _item_event_fields)
}


def _abi_type(param: dict[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param.get("components", []))
        return f"({inner}){kind[len('tuple') :]}"
    return kind


def abi_signature(event: dict[str, Any]) -> str:
    """The canonical signature of an ABI event entry, e.g. ``SellerSet(address,address,bool)``."""
    return f"{event['name']}({','.join(_abi_type(p) for p in event.get('inputs', []))})"


def topic0(signature: str) -> str:
    """keccak256 of an event signature as 0x-hex: the log's first topic."""
    return "0x" + keccak_text(signature).hex()


@dataclass(frozen=True, slots=True)
class _Entry:
    spec: EventSpec
    address: str
    topics: int
    fast: tuple[int, Callable[[Topics, str], tuple[Any, ...]]] | None
    """Where there is such a fast path (ItemEventRecorded): the event class's index on the wire
    (:data:`~ledger_service.core.rows.EVENT_TYPES`) and the function building its own fields as a tuple."""


def build_table(
    abis: dict[str, list[dict[str, Any]]], *, ledger_address: str, escrow_address: str
) -> dict[str, _Entry]:
    """topic0 -> decoder for the known events, checked against the ABIs of both contracts."""
    addresses = {_PL: ledger_address.lower(), _RE: escrow_address.lower()}
    table: dict[str, _Entry] = {}
    for spec in SPECS:
        abi = abis.get(spec.contract)
        if abi is None:
            raise ConfigurationError(f"no ABI for {spec.contract}")
        matches = [e for e in abi if e.get("type") == "event" and e.get("name") == spec.name]
        if not matches:
            raise ConfigurationError(
                f"the {spec.contract} ABI has no event {spec.name}: recompile or update the indexer"
            )
        event = matches[0]
        signature = abi_signature(event)
        indexed = tuple(bool(p.get("indexed")) for p in event.get("inputs", []))
        if signature != spec.signature or indexed != spec.indexed:
            raise ConfigurationError(
                f"{spec.contract}.{spec.name} in the ABI is {signature} (indexed {indexed}); the indexer decodes "
                f"{spec.signature} (indexed {spec.indexed}): update ledger_service/indexer/decode.py"
            )
        table[topic0(signature)] = _Entry(
            spec=spec,
            address=addresses[spec.contract],
            topics=1 + sum(indexed),
            fast=_FAST.get(spec.name),
        )
    return table


def load_abis(artifacts_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """The ABIs of ProvenanceLedger and ReturnsEscrow from the compiled artifacts."""
    return {name: load_artifact(name, artifacts_dir).abi for name in (_PL, _RE)}


_FastRows = Callable[[list[Any], list[Any], Callable[[Any, list[Any]], Any]], tuple[list[Any], bool, int]]
"""``_speedups.decode_item_rows`` bound to the ledger's ItemEventRecorded: (logs, state, one) -> (rows, in order,
skipped)."""


_Scan = Callable[
    [bytes, int, list[Any], Callable[[Any, list[Any]], Any], Callable[[bytes], Any]],
    tuple[list[Any], bool, int, int] | None,
]
"""``_speedups.decode_response_rows`` bound to the ledger's ItemEventRecorded: (raw answer, request id, state, one,
loads) -> (rows, in order, skipped, logs), or None."""


@dataclass(frozen=True, slots=True)
class ScannedRows:
    """What :meth:`Decoder.scan_response` read from an ``eth_getLogs`` answer: the rows, and how many logs it held."""

    rows: list[tuple[Any, ...]]
    logs: int


class Decoder:
    """Decodes raw logs of the two pinned contracts; counts what it skipped."""

    def __init__(self, *, abis: dict[str, list[dict[str, Any]]], ledger_address: str, escrow_address: str) -> None:
        self._table = build_table(abis, ledger_address=ledger_address, escrow_address=escrow_address)
        self.skipped = 0
        self._fast_rows: _FastRows | None = None
        self._scan: _Scan | None = None
        if _speedups is not None:
            for topic, entry in self._table.items():
                if entry.spec.name == "ItemEventRecorded" and entry.fast is not None:
                    # the compiled loop: canonical ItemEventRecorded logs in C, every other log through _one
                    self._fast_rows = functools.partial(_speedups.decode_item_rows, topic, entry.address, entry.fast[0])
                    self._scan = functools.partial(_speedups.decode_response_rows, topic, entry.address, entry.fast[0])

    @classmethod
    def from_artifacts(cls, artifacts_dir: Path, *, ledger_address: str, escrow_address: str) -> Decoder:
        return cls(abis=load_abis(artifacts_dir), ledger_address=ledger_address, escrow_address=escrow_address)

    @property
    def topics(self) -> list[str]:
        """The topic0 values this decoder knows."""
        return list(self._table)

    @property
    def topic_names(self) -> dict[str, str]:
        """topic0 -> the event's ABI name, of the events this decoder knows."""
        return {topic: entry.spec.name for topic, entry in self._table.items()}

    def decode(self, logs: Iterable[Any]) -> list[DecodedEvent]:
        """Decodes ``logs`` (``eth_getLogs`` result items) into events sorted by (block, log index)."""
        return self._decode(logs, rows=False)

    def decode_rows(self, logs: Iterable[Any]) -> list[tuple[Any, ...]]:
        """Like :meth:`decode`, straight into the events' row form (what
        :func:`~ledger_service.core.rows.encode_event` makes of each): a fetch process sends them without
        building each event object first."""
        return self._decode(logs, rows=True)

    def scan_response(self, raw: bytes, request_id: int) -> ScannedRows | None:
        """:meth:`decode_rows` of the logs of an ``eth_getLogs`` answer, read from its bytes: the compiled decoder
        builds no dict for a canonical ItemEventRecorded log (``json.loads`` parses every other log, and
        :meth:`_one` decodes it). None when it is not built, or when the answer is not exactly
        ``{"jsonrpc":"2.0","id":<request_id>,"result":[<log objects>]}``: the caller then parses it as usual."""
        if self._scan is None:
            return None
        scanned = self._scan(raw, request_id, _fresh_state(), self._one_row, json.loads)
        if scanned is None:
            return None
        rows, in_order, skipped, logs = scanned
        self.skipped += skipped
        if not in_order:
            rows.sort(key=row_order)
        return ScannedRows(rows, logs)

    def _decode(self, logs: Iterable[Any], *, rows: bool) -> list[Any]:
        # Logs arrive grouped by block and transaction: the position parts parsed from a log's block hash
        # and transaction hash are reused while they repeat (see _one)
        state = _fresh_state()
        if rows and self._fast_rows is not None and isinstance(logs, list):
            out, in_order, skipped = self._fast_rows(logs, state, self._one_row)
            self.skipped += skipped
        else:
            out = []
            append = out.append
            last = (-1, -1)
            in_order = True
            one = self._one
            for raw in logs:
                decoded = one(raw, state, rows)
                if decoded is None:
                    self.skipped += 1
                    continue
                append(decoded)
                here = (decoded[1][0], decoded[1][4]) if rows else (decoded.pos.block_number, decoded.pos.log_index)
                if here <= last:
                    in_order = False
                last = here
        if not in_order:
            out.sort(key=row_order if rows else _order)
        return out

    def _one_row(self, raw: Any, state: list[Any]) -> Any:
        return self._one(raw, state, True)

    def _one(self, raw: Any, state: list[Any], rows: bool) -> Any:
        """One log decoded (an event, or with ``rows`` its row form), or None if it is skipped.

        ``state`` is [block key, block hash, block number, transaction key, transaction hash, transaction
        index] of the log before: a log whose ``blockHash`` (``transactionHash``) is the one before's takes
        the number and hash parsed then. The compiled loop (``_speedups.decode_item_rows``) decodes canonical
        ItemEventRecorded logs itself, the same way, and hands every other log to this function.
        """
        try:
            topics = raw["topics"]
            if not topics:
                return None
            entry = self._table.get(topics[0]) or self._table.get(topics[0].lower())
            if entry is None or raw.get("removed"):
                return None
            address = raw["address"]
            if address != entry.address and address.lower() != entry.address:
                return None
            data = raw["data"][2:].lower()
            if len(topics) != entry.topics or len(data) < 64 * entry.spec.min_data_words or len(data) % 64:
                raise ValueError(f"{len(topics)} topics and {len(data) // 2} data bytes")
            key = raw["blockHash"]
            if key != state[0]:
                state[0:3] = key, key.lower(), int(raw["blockNumber"], 16)
            key = raw["transactionHash"]
            if key != state[3]:
                state[3:6] = key, key.lower(), int(raw["transactionIndex"], 16)
            place = (state[2], state[1], state[4], state[5], int(raw["logIndex"], 16), entry.address)
            if rows and entry.fast is not None:
                return (entry.fast[0], place, entry.fast[1](topics, data))
            event = entry.spec.decode(topics, data, LogPosition(*place))
            return encode_event(event) if rows else event
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise MalformedLogError(f"cannot decode the log {_where(raw)}: {type(exc).__name__}: {exc}") from None


def _fresh_state() -> list[Any]:
    """The position parts of "the log before" (see :meth:`Decoder._one`) at the start of an answer: none."""
    return [None, "", -1, None, "", -1]


def _order(event: DecodedEvent) -> tuple[int, int]:
    return (event.pos.block_number, event.pos.log_index)


def _where(raw: Any) -> str:
    if isinstance(raw, dict):
        return f"at block {raw.get('blockNumber')} log index {raw.get('logIndex')}"
    return f"{raw!r:.80}"
