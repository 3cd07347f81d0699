"""Decodes raw ``eth_getLogs`` results into :mod:`ledger_service.core.events`.

No web3 objects per log: each log's topic0 selects a reader that slices the
``data`` hex into 32-byte words. The readers are made from the compiled ABIs in
``build/contracts`` and the dataclasses of :mod:`ledger_service.core.events`
(:mod:`ledger_service.indexer.layout`); building the table fails with a clear
error if an event the indexer knows is missing from the ABI or its parameters
and its dataclass's fields disagree, so a contract change can never be
silently misread. The compiled accelerator (``_speedups``) reads the hot event
(:data:`HOT_EVENT`) from the same layout, compiled; where it is not built, or
the layout holds a kind of field it does not read, the Python reader runs.

Invariants: only logs of the pinned contract addresses are decoded (a ledger
event is accepted only from the ledger, an escrow event only from the escrow,
an exchange event only from ExchangeEscrow); a log whose topic0 is known but
whose shape does not match the ABI raises
:class:`MalformedLogError`; other events of those contracts (``RoleAdminChanged``)
are counted as skipped. Output is in the chain's total order (block, log index).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from ledger_service.chain.artifacts import load_artifact
from ledger_service.core.events import (
    BATCH_ANCHOR,
    ESCROW,
    EVENT_SOURCES,
    EXCHANGE,
    LEDGER,
    DecodedEvent,
    ItemEventRecorded,
    LogPosition,
)
from ledger_service.core.hashchain import EVENT_HASH_WORDS, event_hash_matches_words
from ledger_service.core.keccak import keccak_text
from ledger_service.core.rows import EVENT_TYPES, row_order
from ledger_service.errors import ConfigurationError, RetryableError
from ledger_service.indexer.layout import (
    Derivation,
    EventLayout,
    FieldsFn,
    descriptor,
    event_layout,
    fields_function,
)

try:
    from ledger_service.indexer import _speedups
except ImportError:  # pragma: no cover - not built (no C compiler or no GNU Nettle): the Python code runs
    _speedups = None  # type: ignore[assignment]


log = structlog.get_logger("ledger_service.indexer.decode")

COMPILED = _speedups is not None
"""Whether the compiled accelerator is built (each :class:`Decoder` says whether it uses it: ``compiled``)."""


class MalformedLogError(RetryableError):
    """A log with a known topic0 whose topics or data do not fit the ABI (a flaky or broken node)."""


DERIVATIONS: dict[type[Any], dict[str, Derivation]] = {
    ItemEventRecorded: {"hash_ok": (event_hash_matches_words, EVENT_HASH_WORDS)},
}
"""How the decoder computes each derived field (:attr:`EventSource.derived`): the function and the fields whose
log words it takes."""


def topic0(signature: str) -> str:
    """keccak256 of an event signature as 0x-hex: the log's first topic."""
    return "0x" + keccak_text(signature).hex()


@dataclass(frozen=True, slots=True)
class _Entry:
    layout: EventLayout
    address: str
    index: int
    """The event class's index in a row (:data:`~ledger_service.core.rows.EVENT_TYPES`)."""
    fields: FieldsFn
    """The event's own fields read from (topics, data): the compiled reader where it applies, else the Python one."""
    python_fields: FieldsFn
    compiled: object | None
    """The layout compiled for the accelerator (``_speedups.layout``), where it reads this event."""


def build_table(
    abis: dict[str, list[dict[str, Any]]],
    *,
    ledger_address: str,
    escrow_address: str,
    exchange_address: str | None = None,
    batch_anchor_address: str | None = None,
) -> dict[str, _Entry]:
    """topic0 -> decoder for the events of :data:`~ledger_service.core.events.EVENT_SOURCES`, each laid out from
    the ABI of its contract and checked against its dataclass (a ConfigurationError names any disagreement).
    Without ``exchange_address`` (a deployment from before ExchangeEscrow) or ``batch_anchor_address`` (one older
    than BatchAnchor) that contract's events are not decoded."""
    addresses = {LEDGER: ledger_address.lower(), ESCROW: escrow_address.lower()}
    if exchange_address is not None:
        addresses[EXCHANGE] = exchange_address.lower()
    if batch_anchor_address is not None:
        addresses[BATCH_ANCHOR] = batch_anchor_address.lower()
    table: dict[str, _Entry] = {}
    for source in EVENT_SOURCES:
        if source.contract not in addresses:
            continue
        abi = abis.get(source.contract)
        if abi is None:
            raise ConfigurationError(f"no ABI for {source.contract}")
        layout = event_layout(source, abi)
        derivations = DERIVATIONS.get(source.cls, {})
        python_fields = fields_function(layout, derivations)
        compiled = _compiled_layout(layout, derivations)
        table[topic0(layout.signature)] = _Entry(
            layout=layout,
            address=addresses[source.contract],
            index=EVENT_TYPES.index(source.cls),
            # the C code reads canonical logs (hex of the expected lengths) and hands any other to the Python code
            fields=python_fields
            if compiled is None
            else functools.partial(_speedups.event_fields, compiled, python_fields),
            python_fields=python_fields,
            compiled=compiled,
        )
    return table


HOT_EVENT = "ItemEventRecorded"
"""The event the compiled loop reads itself (nearly every log of a busy ledger); it hands every other log to the
Python code."""


def _compiled_layout(layout: EventLayout, derivations: dict[str, Derivation]) -> object | None:
    """``layout`` compiled for the accelerator, if it is built and reads every kind of field of it."""
    if _speedups is None or layout.name != HOT_EVENT:
        return None
    try:
        return _speedups.layout(layout.topics, layout.data_words, descriptor(layout, derivations))
    except ValueError as exc:
        log.warning(
            "compiled_decoder_not_used",
            event=layout.name,
            reason=str(exc),
            hint="decoding runs in Python, slower: teach ledger_service/indexer/_speedups.c the new kind of field",
        )
        return None


def load_abis(artifacts_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """The ABIs of ProvenanceLedger, ReturnsEscrow, ExchangeEscrow and BatchAnchor from the compiled artifacts."""
    return {name: load_artifact(name, artifacts_dir).abi for name in (LEDGER, ESCROW, EXCHANGE, BATCH_ANCHOR)}


_FastRows = Callable[[list[Any], list[Any], Callable[[Any, list[Any]], Any]], tuple[list[Any], bool, int]]
"""``_speedups.decode_item_rows`` bound to the hot event's layout, topic0 and address: (logs, state, one) ->
(rows, in order, skipped)."""


_Scan = Callable[
    [bytes, int, list[Any], Callable[[Any, list[Any]], Any], Callable[[bytes], Any]],
    tuple[list[Any], bool, int, int] | None,
]
"""``_speedups.decode_response_rows`` bound to the hot event's layout, topic0 and address: (raw answer, request
id, state, one, loads) -> (rows, in order, skipped, logs), or None."""


@dataclass(frozen=True, slots=True)
class ScannedRows:
    """What :meth:`Decoder.scan_response` read from an ``eth_getLogs`` answer: the rows, and how many logs it held."""

    rows: list[tuple[Any, ...]]
    logs: int


class Decoder:
    """Decodes raw logs of the pinned contracts; counts what it skipped."""

    def __init__(
        self,
        *,
        abis: dict[str, list[dict[str, Any]]],
        ledger_address: str,
        escrow_address: str,
        exchange_address: str | None = None,
        batch_anchor_address: str | None = None,
    ) -> None:
        self._table = build_table(
            abis,
            ledger_address=ledger_address,
            escrow_address=escrow_address,
            exchange_address=exchange_address,
            batch_anchor_address=batch_anchor_address,
        )
        self.skipped = 0
        self._fast_rows: _FastRows | None = None
        self._scan: _Scan | None = None
        self.compiled = False
        """Whether the compiled accelerator reads the hot event (it is built and reads every kind of its fields)."""
        for topic, entry in self._table.items():
            if _speedups is not None and entry.compiled is not None:
                # the compiled loop: canonical logs of the hot event in C, every other log through _one
                bound = (entry.compiled, topic, entry.address, entry.index)
                self._fast_rows = functools.partial(_speedups.decode_item_rows, *bound)
                self._scan = functools.partial(_speedups.decode_response_rows, *bound)
                self.compiled = True

    def python_fields(self, event: str) -> FieldsFn:
        """The Python reader of ``event``'s own fields (the reference the compiled reader is tested against)."""
        for entry in self._table.values():
            if entry.layout.name == event:
                return entry.python_fields
        raise KeyError(event)

    def fields(self, event: str) -> FieldsFn:
        """The reader of ``event``'s own fields the decoder uses: the compiled one where it applies."""
        for entry in self._table.values():
            if entry.layout.name == event:
                return entry.fields
        raise KeyError(event)

    @classmethod
    def from_artifacts(
        cls,
        artifacts_dir: Path,
        *,
        ledger_address: str,
        escrow_address: str,
        exchange_address: str | None = None,
        batch_anchor_address: str | None = None,
    ) -> Decoder:
        return cls(
            abis=load_abis(artifacts_dir),
            ledger_address=ledger_address,
            escrow_address=escrow_address,
            exchange_address=exchange_address,
            batch_anchor_address=batch_anchor_address,
        )

    @property
    def topics(self) -> list[str]:
        """The topic0 values this decoder knows."""
        return list(self._table)

    @property
    def topic_names(self) -> dict[str, str]:
        """topic0 -> the event's ABI name, of the events this decoder knows."""
        return {topic: entry.layout.name for topic, entry in self._table.items()}

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
            layout = entry.layout
            if len(topics) != layout.topics or len(data) < 64 * layout.min_data_words or len(data) % 64:
                raise ValueError(f"{len(topics)} topics and {len(data) // 2} data bytes")
            key = raw["blockHash"]
            if key != state[0]:
                state[0:3] = key, key.lower(), int(raw["blockNumber"], 16)
            key = raw["transactionHash"]
            if key != state[3]:
                state[3:6] = key, key.lower(), int(raw["transactionIndex"], 16)
            place = (state[2], state[1], state[4], state[5], int(raw["logIndex"], 16), entry.address)
            if rows:
                return (entry.index, place, entry.fields(topics, data))
            event: DecodedEvent = EVENT_TYPES[entry.index](LogPosition(*place), *entry.fields(topics, data))
            return event
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
