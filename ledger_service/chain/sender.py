"""Sends contract transactions signed by one local account: nonces, fees, retries, receipts.

Invariants: nonces are handed out under a lock in strictly increasing order
and only consumed by a transaction the node accepted; a call that would
revert is refused before it is sent, as a :class:`ContractRevertError` naming the
contract's custom error; a transaction mined with status 0 raises the same.
Several threads may share one sender; receipts are awaited outside the lock so
transactions pipeline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import requests
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError, TimeExhausted, Web3Exception, Web3RPCError
from web3.types import Nonce, TxParams, Wei

from ledger_service.chain.calls import failed, unreachable
from ledger_service.chain.reverts import ContractRevertError, RevertDecoder
from ledger_service.errors import LedgerError, RetryableError


@dataclass(frozen=True, slots=True)
class SentTx:
    """A mined, successful transaction."""

    tx_hash: str
    block_number: int
    block_hash: str
    gas_used: int
    logs: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class RawCall:
    """A contract call already ABI-encoded (``data``: selector and arguments), for callers that encode many
    large calls faster than web3's generic encoder does."""

    to: str
    data: bytes


Call = ContractFunction | RawCall


class TxSender:
    """Signs with ``account`` and sends through ``w3``."""

    def __init__(
        self,
        *,
        w3: Web3,
        account: LocalAccount,
        decoder: RevertDecoder,
        receipt_timeout: float = 60.0,
        max_attempts: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._w3 = w3
        self._account = account
        self._decoder = decoder
        self._receipt_timeout = receipt_timeout
        self._max_attempts = max_attempts
        self._sleep = sleep
        self._lock = threading.Lock()
        self._nonce: int | None = None
        self._chain_id: int | None = None

    @property
    def address(self) -> str:
        return str(self._account.address)

    def send(self, call: ContractFunction) -> SentTx:
        """Sends ``call`` and waits for its receipt.

        Raises ContractRevertError if the call reverts (before or after sending),
        RetryableError if the node is unreachable or the receipt does not come
        in time (the transaction may still be mined: its hash is in the message),
        ChainCallError if the node refuses it otherwise. No message carries the
        library's or the node's own text (it goes to the log).
        """
        return self._receipt(call, self._submit(call))

    def send_all(self, calls: Sequence[tuple[Call, int]]) -> list[SentTx | LedgerError]:
        """Sends ``calls`` (each with its gas limit) in order without waiting for one to be mined before the
        next is submitted, then waits for every receipt; the fees are read once for all of them.

        One entry per call submitted, in order: its mined :class:`SentTx`, or the error of that transaction
        (as :meth:`send` raises it). A call refused before it was submitted ends the submissions, so the
        answer is then shorter than ``calls`` and its last entry is that refusal. The nonces stay in order
        for the account's other senders: every submission takes the lock, as :meth:`send` does.
        """
        fees = self._fees()
        hashes: list[str] = []
        refused: LedgerError | None = None
        for call, gas in calls:
            try:
                hashes.append(self._submit(call, {"gas": gas, **fees}))
            except LedgerError as exc:
                refused = exc
                break
        results: list[SentTx | LedgerError] = []
        for (call, _), tx_hash in zip(calls, hashes, strict=False):
            try:
                results.append(self._receipt(call, tx_hash))
            except LedgerError as exc:
                results.append(exc)
        if refused is not None:
            results.append(refused)
        return results

    def _fees(self) -> TxParams:
        """EIP-1559 fees as web3 would pick them for one transaction (twice the base fee plus the tip)."""
        try:
            tip = int(self._w3.eth.max_priority_fee)
            base = int(self._w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise unreachable("reading the network's fees", exc) from None
        except (Web3Exception, ValueError) as exc:
            raise failed("reading the network's fees", exc) from None
        return {"maxFeePerGas": Wei(2 * base + tip), "maxPriorityFeePerGas": Wei(tip)}

    def _receipt(self, call: Call, tx_hash: str) -> SentTx:
        try:
            receipt = self._w3.eth.wait_for_transaction_receipt(HexStr(tx_hash), timeout=self._receipt_timeout)
        except TimeExhausted:
            raise RetryableError(f"transaction {tx_hash} not mined within {self._receipt_timeout:.0f} s") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise unreachable(f"waiting for transaction {tx_hash}", exc) from None
        except Web3Exception as exc:
            raise failed(f"waiting for transaction {tx_hash}", exc) from None
        if receipt["status"] != 1:
            raise self._explain_failure(call, receipt["blockNumber"])
        return SentTx(
            tx_hash=tx_hash,
            block_number=int(receipt["blockNumber"]),
            block_hash="0x" + bytes(receipt["blockHash"]).hex(),
            gas_used=int(receipt["gasUsed"]),
            logs=tuple(dict(log) for log in receipt["logs"]),
        )

    def _submit(self, call: Call, overrides: TxParams | None = None) -> str:
        for attempt in range(1, self._max_attempts + 1):
            with self._lock:
                try:
                    nonce = self._next_nonce()
                    params: TxParams = {
                        "from": self._account.address,
                        "nonce": Nonce(nonce),
                        "chainId": self._get_chain_id(),
                        **(overrides or {}),
                    }
                    if isinstance(call, RawCall):
                        tx: TxParams = {
                            **params,
                            "to": to_checksum_address(call.to),
                            "data": call.data,
                            "value": Wei(0),
                        }
                    else:
                        tx = call.build_transaction(params)
                except (ContractCustomError, ContractLogicError) as exc:
                    raise self._decoder.decode(_revert_data(exc)) from None
                except (requests.ConnectionError, requests.Timeout) as exc:
                    self._nonce = None
                    raise unreachable("preparing a transaction", exc) from None
                except (Web3Exception, ValueError) as exc:  # e.g. an RPC error estimating gas
                    raise failed("preparing a transaction", exc) from None
                signed = self._account.sign_transaction(cast(dict[str, Any], tx))
                try:
                    sent = self._w3.eth.send_raw_transaction(signed.raw_transaction)
                except Web3RPCError as exc:
                    if _is_nonce_problem(exc) and attempt < self._max_attempts:
                        self._nonce = None  # resynchronise from the node and try again
                        continue
                    self._nonce = None
                    raise failed(f"sending a transaction of account {self.address}", exc) from None
                except (requests.ConnectionError, requests.Timeout) as exc:
                    self._nonce = None
                    if attempt == self._max_attempts:
                        raise unreachable("sending a transaction", exc) from None
                    self._sleep(0.2 * 2**attempt)
                    continue
                self._nonce = nonce + 1
                return "0x" + bytes(sent).hex()
        raise RetryableError("could not submit the transaction (nonce conflicts)")

    def _next_nonce(self) -> int:
        if self._nonce is None:
            self._nonce = self._w3.eth.get_transaction_count(self._account.address, "pending")
        return self._nonce

    def _get_chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self._w3.eth.chain_id)
        return self._chain_id

    def _explain_failure(self, call: Call, block_number: int) -> ContractRevertError:
        """Replays a failed transaction as a call at its block to recover the revert reason."""
        try:
            if isinstance(call, RawCall):
                request: TxParams = {
                    "from": self._account.address,
                    "to": to_checksum_address(call.to),
                    "data": call.data,
                }
                self._w3.eth.call(request, block_identifier=block_number - 1)
            else:
                call.call({"from": self._account.address}, block_identifier=block_number - 1)
        except (ContractCustomError, ContractLogicError) as exc:
            return self._decoder.decode(_revert_data(exc))
        except (requests.RequestException, Web3Exception, ValueError):  # the reason is lost, not the failure
            pass
        return ContractRevertError("TransactionFailed", {"reason": "reverted on-chain (out of gas or state changed)"})


def _revert_data(exc: ContractLogicError) -> str | None:
    data = exc.data
    if isinstance(data, str):
        return data
    return None


def _is_nonce_problem(exc: Web3RPCError) -> bool:
    text = str(exc).lower()
    return "nonce too low" in text or "nonce too high" in text or "already known" in text
