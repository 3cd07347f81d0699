"""A capture's transactions: built, dry-run together, sized to the block gas limit, sent, read back.

Invariants:
- nothing is sent before every transaction of the capture ran without revert in one simulation
  (``eth_simulateV1``: the calls run in order on the node's latest state, each seeing the previous ones'
  effects, so a batch on an item the same capture registers is checked too);
- a ``registerItems`` or ``recordEvents`` batch holds at most the contract's ``MAX_BATCH`` items or events
  and used at most :data:`BLOCK_SHARE` of the block gas limit in that simulation (a larger batch is split
  and simulated again);
- each transaction is sent with the gas it used in the simulation plus a margin, so no per-transaction
  estimate is asked of the node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

import requests
from eth_abi.abi import encode
from web3.exceptions import Web3Exception

from ledger_service.capture.plan import Registration, Step
from ledger_service.chain.calls import failed, unreachable
from ledger_service.chain.reverts import ContractRevertError
from ledger_service.chain.sender import RawCall, SentTx
from ledger_service.chain.signers import ChainContext
from ledger_service.core.keccak import keccak_text
from ledger_service.epcis.document import EpcisEvent
from ledger_service.errors import ConfigurationError, LedgerError

BLOCK_SHARE = 0.5
"""The most of a block's gas limit one batch may use: other writers' transactions fit beside it."""
GAS_MARGIN = 1.2
_ITEM_EVENT_TOPIC = (
    "0x"
    + keccak_text(
        "ItemEventRecorded(bytes32,address,uint64,uint8,uint8,bytes32,bytes32,bytes32,uint64,bytes32,bytes32)"
    ).hex()
)
_GUESS_REGISTRATION_GAS = 90_000
_GUESS_EVENT_GAS = 60_000
"""Gas guessed per registration and per event before the simulation (only to pack its simulated blocks)."""


_REGISTER = keccak_text("registerItems((string,uint64,address,bytes32,bytes32)[])")[:4]
_RECORD = keccak_text("recordEvents((bytes32,uint8,uint8,bytes32,bytes32,bytes32)[])")[:4]


@dataclass(frozen=True, slots=True)
class Tx:
    """One transaction of a capture: a batch of registrations (``registerItems``) or of steps
    (``recordEvents``), ABI-encoded once (eth_abi directly: web3's generic encoder took a tenth of a second
    for a batch of 256 events, twice)."""

    call: RawCall
    registrations: tuple[Registration, ...]
    steps: tuple[Step, ...]
    gas: int = 0
    """Gas used in the simulation (0 before it)."""

    @property
    def event_count(self) -> int:
        return len(self.registrations) + len(self.steps)

    def units(self) -> list[tuple[EpcisEvent, str]]:
        """(event, item id) of each ItemEventRecorded the transaction writes, in order."""
        return [(r.event, r.item_id) for r in self.registrations] + [(s.event, s.item_id) for s in self.steps]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A transaction the simulation reverted."""

    tx: Tx
    error: ContractRevertError


def registrations_tx(chain: ChainContext, registrations: Sequence[Registration]) -> Tx:
    data = _REGISTER + encode(
        ["(string,uint64,address,bytes32,bytes32)[]"],
        [[(r.uri, r.gtin, r.merchant, r.document, r.location) for r in registrations]],
    )
    return Tx(call=RawCall(str(chain.ledger.address), data), registrations=tuple(registrations), steps=())


def batch_tx(chain: ChainContext, steps: Sequence[Step]) -> Tx:
    data = _RECORD + encode(["(bytes32,uint8,uint8,bytes32,bytes32,bytes32)[]"], [[s.as_input() for s in steps]])
    return Tx(call=RawCall(str(chain.ledger.address), data), registrations=(), steps=tuple(steps))


def _guess(tx: Tx) -> int:
    return _GUESS_REGISTRATION_GAS * len(tx.registrations) + _GUESS_EVENT_GAS * len(tx.steps)


def _rpc(chain: ChainContext, method: str, params: list[Any]) -> Any:
    try:
        answer = chain.w3.provider.make_request(method, params)  # type: ignore[arg-type]
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise unreachable("dry-running the capture's transactions", exc) from None
    except (Web3Exception, ValueError, OSError) as exc:
        raise failed("dry-running the capture's transactions", exc) from None
    error = answer.get("error")
    if error is not None:
        if int(error.get("code", 0)) == -32601:
            raise ConfigurationError(
                "the chain node does not offer eth_simulateV1, which capture needs to dry-run a document's "
                "transactions before sending the first: point LEDGER_RPC_URL at a node that does (anvil, geth >= "
                "1.14.9, reth, ...)"
            )
        raise failed("dry-running the capture's transactions", RuntimeError(str(error)[:200]))
    return answer["result"]


def simulate(chain: ChainContext, *, actor: str, txs: Sequence[Tx], gas_limit: int) -> list[Tx | Refusal]:
    """Runs ``txs`` in order in one ``eth_simulateV1`` on the latest state: each with the gas it used, or its
    refusal. Calls are packed into simulated blocks of at most ``gas_limit`` guessed gas."""
    blocks: list[list[dict[str, Any]]] = [[]]
    used = 0
    to = str(chain.ledger.address)
    for tx in txs:
        guess = _guess(tx)
        if blocks[-1] and used + guess > gas_limit * 0.8:
            blocks.append([])
            used = 0
        blocks[-1].append({"from": actor, "to": to, "data": "0x" + tx.call.data.hex()})
        used += guess
    result = _rpc(
        chain,
        "eth_simulateV1",
        [{"blockStateCalls": [{"calls": calls} for calls in blocks], "validation": False}, "latest"],
    )
    outcomes = [call for block in result for call in block["calls"]]
    answer: list[Tx | Refusal] = []
    for tx, outcome in zip(txs, outcomes, strict=True):
        if int(outcome.get("status", "0x0"), 16) == 1:
            answer.append(replace(tx, gas=int(outcome["gasUsed"], 16)))
        else:
            data = outcome.get("returnData") or (outcome.get("error") or {}).get("data")
            answer.append(Refusal(tx=tx, error=chain.decoder.decode(data)))
    return answer


def build_transactions(
    chain: ChainContext,
    *,
    actor: str,
    registrations: Sequence[Registration],
    steps: Sequence[Step],
    max_batch: int,
) -> tuple[list[Tx], list[Refusal], int]:
    """The capture's transactions (batches of registrations, then batches of steps, in order), simulated and
    sized; (transactions, refusals, block gas limit). Refusals non-empty: nothing may be sent."""
    try:
        gas_limit = int(chain.w3.eth.get_block("latest")["gasLimit"])
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise unreachable("reading the block gas limit", exc) from None
    sizes = [max_batch, max_batch]  # registrations, steps
    while True:
        planned = [registrations_tx(chain, b) for b in _batches(registrations, sizes[0])]
        planned += [batch_tx(chain, b) for b in _batches(steps, sizes[1])]
        if not planned:
            return [], [], gas_limit
        outcomes = simulate(chain, actor=actor, txs=planned, gas_limit=gas_limit)
        refusals = [o for o in outcomes if isinstance(o, Refusal)]
        simulated = [o for o in outcomes if isinstance(o, Tx)]
        if refusals:
            return simulated, refusals, gas_limit
        # A batch over its share of the block: split every batch of its kind by the gas per item seen, and run
        # again (a kind already at one item a batch stays: nothing smaller can be sent).
        resized = list(sizes)
        for tx in simulated:
            if tx.gas > gas_limit * BLOCK_SHARE:
                kind = 0 if tx.registrations else 1
                fits = int(gas_limit * BLOCK_SHARE * tx.event_count / tx.gas)
                resized[kind] = max(1, min(resized[kind], sizes[kind] - 1, fits))
        if resized == sizes:
            return simulated, refusals, gas_limit
        sizes = resized


class _OfEvent(Protocol):
    @property
    def event(self) -> EpcisEvent: ...


_U = TypeVar("_U", bound=_OfEvent)


def _batches(units: Sequence[_U], size: int) -> list[list[_U]]:
    """``units`` (registrations or steps) in order, in batches of at most ``size``, an event's units kept in one
    batch where they fit (an event then is all on-chain or not at all)."""
    batches: list[list[_U]] = []
    current: list[_U] = []
    i = 0
    while i < len(units):
        j = i
        while j < len(units) and units[j].event.index == units[i].event.index:
            j += 1
        group = list(units[i:j])
        if current and len(current) + len(group) > size:
            batches.append(current)
            current = []
        while len(group) > size:  # one event on more items than a batch holds
            batches.append(group[:size])
            group = group[size:]
        current.extend(group)
        i = j
    if current:
        batches.append(current)
    return batches


def send(chain: ChainContext, *, actor: str, txs: Sequence[Tx], gas_limit: int) -> list[SentTx | LedgerError]:
    """Sends ``txs`` pipelined (see :meth:`~ledger_service.chain.sender.TxSender.send_all`)."""
    sender = chain.sender_for(actor)
    return sender.send_all([(t.call, min(gas_limit, int(t.gas * GAS_MARGIN) + 30_000)) for t in txs])


def recorded_seqs(sent: SentTx) -> list[tuple[str, int]]:
    """(item id, seq) of every ItemEventRecorded of the ledger in the transaction, in log order."""
    found: list[tuple[str, int]] = []
    for log in sent.logs:
        topics = log.get("topics") or []
        if not topics or _hex(topics[0]) != _ITEM_EVENT_TOPIC:
            continue
        data = bytes(log["data"]) if not isinstance(log["data"], str) else bytes.fromhex(log["data"][2:])
        found.append((_hex(topics[1]), int.from_bytes(data[:32], "big")))
    return found


def _hex(value: Any) -> str:
    return value.lower() if isinstance(value, str) else "0x" + bytes(value).hex()


def read_max_batch(chain: ChainContext) -> int:
    """The contract's MAX_BATCH."""
    try:
        return int(chain.ledger.functions.MAX_BATCH().call())
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise unreachable("reading the ledger's batch limit", exc) from None
