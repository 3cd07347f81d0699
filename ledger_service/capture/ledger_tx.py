"""A capture's transactions: built, dry-run together, sized to the block gas limit, sent, read back.

Invariants:
- nothing is sent before every transaction of the capture ran without revert in one simulation
  (``eth_simulateV1``: the calls run in order on the node's latest state, each seeing the previous ones'
  effects, so a batch on an item the same capture registers is checked too);
- a ``recordEvents`` batch holds at most the contract's ``MAX_BATCH`` events and used at most
  :data:`BLOCK_SHARE` of the block gas limit in that simulation (a larger batch is split and simulated
  again);
- each transaction is sent with the gas it used in the simulation plus a margin, so no per-transaction
  estimate is asked of the node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import requests
from eth_abi.abi import encode
from web3.exceptions import Web3Exception

from ledger_service.capture.plan import Registration, Step
from ledger_service.chain.calls import failed, unreachable
from ledger_service.chain.reverts import ContractRevertError
from ledger_service.chain.sender import RawCall, SentTx
from ledger_service.chain.signers import ChainContext
from ledger_service.core.keccak import keccak_text
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
_GUESS_REGISTRATION_GAS = 250_000
_GUESS_EVENT_GAS = 60_000


_REGISTER = keccak_text("registerItem(string,uint64,address,bytes32,bytes32)")[:4]
_RECORD = keccak_text("recordEvents((bytes32,uint8,uint8,bytes32,bytes32,bytes32)[])")[:4]


@dataclass(frozen=True, slots=True)
class Tx:
    """One transaction of a capture: a registration, or a batch of steps, ABI-encoded once (eth_abi directly:
    web3's generic encoder took a tenth of a second for a batch of 256 events, twice)."""

    call: RawCall
    registration: Registration | None
    steps: tuple[Step, ...]
    gas: int = 0
    """Gas used in the simulation (0 before it)."""

    @property
    def event_count(self) -> int:
        return 1 if self.registration is not None else len(self.steps)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A transaction the simulation reverted."""

    tx: Tx
    error: ContractRevertError


def registration_tx(chain: ChainContext, registration: Registration) -> Tx:
    r = registration
    data = _REGISTER + encode(
        ["string", "uint64", "address", "bytes32", "bytes32"], [r.uri, r.gtin, r.merchant, r.document, r.location]
    )
    return Tx(call=RawCall(str(chain.ledger.address), data), registration=registration, steps=())


def batch_tx(chain: ChainContext, steps: Sequence[Step]) -> Tx:
    data = _RECORD + encode(["(bytes32,uint8,uint8,bytes32,bytes32,bytes32)[]"], [[s.as_input() for s in steps]])
    return Tx(call=RawCall(str(chain.ledger.address), data), registration=None, steps=tuple(steps))


def _guess(tx: Tx) -> int:
    return _GUESS_REGISTRATION_GAS if tx.registration is not None else _GUESS_EVENT_GAS * len(tx.steps)


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
            answer.append(
                Tx(call=tx.call, registration=tx.registration, steps=tx.steps, gas=int(outcome["gasUsed"], 16))
            )
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
    """The capture's transactions (registrations, then batches of steps in order), simulated and sized;
    (transactions, refusals, block gas limit). Refusals non-empty: nothing may be sent."""
    try:
        gas_limit = int(chain.w3.eth.get_block("latest")["gasLimit"])
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise unreachable("reading the block gas limit", exc) from None
    txs = [registration_tx(chain, r) for r in registrations]
    batches = _batches(steps, max_batch)
    while True:
        planned = txs + [batch_tx(chain, b) for b in batches]
        if not planned:
            return [], [], gas_limit
        outcomes = simulate(chain, actor=actor, txs=planned, gas_limit=gas_limit)
        refusals = [o for o in outcomes if isinstance(o, Refusal)]
        simulated = [o for o in outcomes if isinstance(o, Tx)]
        too_large = [t for t in simulated if t.registration is None and t.gas > gas_limit * BLOCK_SHARE]
        if refusals or not too_large:
            return simulated, refusals, gas_limit
        # A batch over its share of the block: split every batch by the gas per event seen, and run again.
        per_event = max(t.gas / len(t.steps) for t in too_large)
        batches = _batches(steps, min(max_batch, max(1, int(gas_limit * BLOCK_SHARE / per_event))))


def _batches(steps: Sequence[Step], size: int) -> list[list[Step]]:
    """``steps`` in order, in batches of at most ``size``, an event's steps kept in one batch where they fit
    (an event then is all on-chain or not at all)."""
    batches: list[list[Step]] = []
    current: list[Step] = []
    i = 0
    while i < len(steps):
        j = i
        while j < len(steps) and steps[j].event.index == steps[i].event.index:
            j += 1
        group = list(steps[i:j])
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
