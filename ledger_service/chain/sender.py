"""Sends contract transactions signed by one local account, like a relayer: nonces, fees, replacements, receipts.

Invariants: a nonce is allocated, the transaction signed, recorded and submitted while the signer is held in
the :class:`~ledger_service.chain.nonces.NonceBook` that every sender of that account shares (all threads,
workers and replicas when the book is the database's), so two senders never use one nonce; it is the
higher of the node's pending count and one above the last recorded nonce, and recorded transactions the node
no longer knows (dropped from its pool, or never broadcast by a process killed after recording them) are sent
again first. A transaction is recorded before it is broadcast; the node's refusal takes its record back. A call
that would revert is refused before it is sent, as a :class:`ContractRevertError` naming the contract's custom
error; a transaction mined with status 0 raises the same.

Fees are EIP-1559's, from ``eth_feeHistory`` (the next block's base fee and a percentile of recent tips),
within the network's cap (:class:`~ledger_service.core.networks.FeePolicy`): a base fee above the cap refuses
the send with a :class:`RetryableError` saying so. A transaction without a receipt after ``stuck_after_s`` is
replaced with both fees raised by ``bump_percent`` (never above the cap), or sent again if the node dropped it;
only one transaction of a nonce can be mined, so a call is never executed twice. A receipt counts once it has
the configured confirmations and is still on the canonical chain.

Each transaction is measured (:mod:`ledger_service.metrics`: time to submit, time to its receipt, outcome,
transactions awaiting a receipt, stuck ones, replacements, nonce gaps) and logged when submitted, replaced
and mined, with the request id of the API request that sent it (structlog's context variables).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import requests
import structlog
from eth_account.signers.local import LocalAccount
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from eth_typing import HexStr
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    TransactionNotFound,
    Web3Exception,
    Web3RPCError,
)
from web3.types import Nonce, TxParams, TxReceipt, Wei

from ledger_service.chain.calls import failed, unreachable
from ledger_service.chain.nonces import HeldSigner, LocalNonceBook, NonceBook, SentRecord
from ledger_service.chain.reverts import ContractRevertError, RevertDecoder
from ledger_service.core.networks import FeePolicy, default_fee_policy
from ledger_service.errors import LedgerError, RetryableError
from ledger_service.metrics.chain import (
    TX_CONFIRM_SECONDS,
    TX_NONCE_GAPS,
    TX_PENDING,
    TX_REPLACED,
    TX_SEND_SECONDS,
    TX_STUCK,
    TX_TOTAL,
)

log = structlog.get_logger("ledger_service.chain.sender")

DEFAULT_FEE_POLICY = default_fee_policy()
RECEIPT_POLL_S = 0.1
MIN_REPLACEMENT_BUMP = 10
"""Percent by which nodes (geth's default, anvil) require a replacement's fees to exceed the original's."""


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
    """Signs with ``account`` and sends through ``w3`` (see the module docstring)."""

    def __init__(
        self,
        *,
        w3: Web3,
        account: LocalAccount,
        decoder: RevertDecoder,
        receipt_timeout: float | None = None,
        max_attempts: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        policy: FeePolicy | None = None,
        confirmations: int = 1,
        book: NonceBook | None = None,
        poll_s: float = RECEIPT_POLL_S,
    ) -> None:
        self._w3 = w3
        self._account = account
        self._decoder = decoder
        self._policy = policy or DEFAULT_FEE_POLICY
        self._receipt_timeout = receipt_timeout if receipt_timeout is not None else self._policy.receipt_timeout_s
        self._max_attempts = max_attempts
        self._sleep = sleep
        self._confirmations = confirmations
        self._book: NonceBook = book or LocalNonceBook()
        self._poll_s = poll_s
        self._lock = threading.Lock()
        """Orders this process's submissions (the book orders them across processes)."""
        self._chain_id: int | None = None

    @property
    def address(self) -> str:
        return str(self._account.address)

    def send(self, call: ContractFunction) -> SentTx:
        """Sends ``call`` and waits for its receipt.

        Raises ContractRevertError if the call reverts (before or after sending),
        RetryableError if the node is unreachable, the network's base fee is above
        the cap, or the receipt does not come in time (the transaction may still be
        mined: its hash is in the message), ChainCallError if the node refuses it
        otherwise. No message carries the library's or the node's own text (it goes to the log).
        """
        began = time.perf_counter()
        pending = self._submit(call)
        return self._receipt(call, pending, submitted=began)

    def send_all(self, calls: Sequence[tuple[Call, int]]) -> list[SentTx | LedgerError]:
        """Sends ``calls`` (each with its gas limit) in order without waiting for one to be mined before the
        next is submitted, then waits for every receipt; the fees are read once for all of them.

        One entry per call submitted, in order: its mined :class:`SentTx`, or the error of that transaction
        (as :meth:`send` raises it). A call refused before it was submitted ends the submissions, so the
        answer is then shorter than ``calls`` and its last entry is that refusal. The nonces stay in order
        for the account's other senders: every submission holds the signer, as :meth:`send` does.
        """
        began = time.perf_counter()
        pendings: list[_Pending] = []
        refused: LedgerError | None = None
        try:
            fees = self._fees()
        except FeeAboveCapError as exc:
            TX_TOTAL.labels("refused").inc()
            return [exc]
        for call, gas in calls:
            try:
                pendings.append(self._submit(call, {"gas": gas, **fees}))
            except LedgerError as exc:
                refused = exc
                break
        results: list[SentTx | LedgerError] = []
        for (call, _), pending in zip(calls, pendings, strict=False):
            try:
                results.append(self._receipt(call, pending, submitted=began))
            except LedgerError as exc:
                results.append(exc)
        if refused is not None:
            results.append(refused)
        return results

    # ---- fees -------------------------------------------------------------------------------------------

    def _fees(self) -> TxParams:
        """EIP-1559 fees for the next block: twice its base fee plus the tip, within the cap."""
        base, tip = self._market()
        fees = self._policy.capped(base, tip)
        if fees is None:
            cap = self._policy.max_fee_wei
            log.warning("tx_fee_above_cap", account=self.address, base_fee=base, cap=cap)
            raise FeeAboveCapError(
                f"the network's base fee ({_gwei(base)} gwei) is above the service's fee cap ({_gwei(cap)} gwei): "
                "the transaction was not sent (the operator may raise fees.max_fee_gwei of the network's file)"
            )
        return {"maxFeePerGas": Wei(fees[0]), "maxPriorityFeePerGas": Wei(fees[1])}

    def _market(self) -> tuple[int, int]:
        """(the next block's base fee, the tip to offer) from ``eth_feeHistory``."""
        policy = self._policy
        try:
            history = self._w3.eth.fee_history(policy.fee_history_blocks, "latest", [policy.reward_percentile])
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise unreachable("reading the network's fees", exc) from None
        except (Web3Exception, ValueError) as exc:
            raise failed("reading the network's fees", exc) from None
        return policy.market(history)

    def _bumped(self, sent: SentRecord) -> TxParams | None:
        """Fees replacing ``sent``: both raised by the bump and at least what the next block needs, within the
        cap; None when the cap leaves no raise a node would take as a replacement."""
        base, tip = self._market()
        factor = 100 + self._policy.bump_percent
        new_tip = max(tip, -(-sent.priority_fee_per_gas * factor // 100))
        new_max = min(self._policy.max_fee_wei, max(-(-sent.max_fee_per_gas * factor // 100), 2 * base + new_tip))
        if new_max * 100 < sent.max_fee_per_gas * (100 + MIN_REPLACEMENT_BUMP):
            return None
        return {"maxFeePerGas": Wei(new_max), "maxPriorityFeePerGas": Wei(min(new_tip, new_max))}

    # ---- submission -------------------------------------------------------------------------------------

    def _submit(self, call: Call, overrides: TxParams | None = None) -> _Pending:
        began = time.perf_counter()
        try:
            pending = self._submit_once(call, overrides)
        except (ContractRevertError, FeeAboveCapError):
            TX_TOTAL.labels("refused").inc()
            raise
        except LedgerError:
            TX_TOTAL.labels("failed").inc()
            raise
        TX_SEND_SECONDS.observe(time.perf_counter() - began)
        log.info("tx_sent", tx_hash=pending.hashes[0], account=self.address, nonce=pending.nonce)
        return pending

    def _submit_once(self, call: Call, overrides: TxParams | None) -> _Pending:
        fees = overrides if overrides is not None and "maxFeePerGas" in overrides else None
        for attempt in range(1, self._max_attempts + 1):
            try:
                with self._lock, self._book.hold(self._get_chain_id(), self._key) as held:
                    nonce = self._allocate(held)
                    tx = self._build(call, nonce, {**(fees or self._fees()), **(overrides or {})})
                    signed = self._account.sign_transaction(cast(dict[str, Any], tx))
                    tx_hash = "0x" + bytes(signed.hash).hex()
                    # recorded (committed) before the node sees it: a process killed from here on leaves a record
                    # that the signer's next send finds and sends again if the node does not know it
                    held.record(
                        SentRecord(
                            nonce=nonce,
                            raw=bytes(signed.raw_transaction),
                            hashes=(tx_hash,),
                            max_fee_per_gas=int(tx["maxFeePerGas"]),
                            priority_fee_per_gas=int(tx["maxPriorityFeePerGas"]),
                            sent_at=time.time(),
                        )
                    )
                    self._broadcast_recorded(held, nonce, tx_hash, signed.raw_transaction)
                    return _Pending(nonce=nonce, hashes=[tx_hash])
            except _NonceTakenError:
                continue  # the node moved on under us: allocate again
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt == self._max_attempts:
                    raise unreachable("preparing a transaction", exc) from None
                self._sleep(0.2 * 2**attempt)
            except (Web3Exception, ValueError) as exc:  # the node's answer to a nonce or fee question
                raise failed("preparing a transaction", exc) from None
        raise RetryableError("could not submit the transaction (nonce conflicts)")

    def _build(self, call: Call, nonce: int, fees: TxParams) -> TxParams:
        params: TxParams = {
            "from": self._account.address,
            "nonce": Nonce(nonce),
            "chainId": self._get_chain_id(),
            **fees,
        }
        try:
            if isinstance(call, RawCall):
                return {**params, "to": to_checksum_address(call.to), "data": call.data, "value": Wei(0)}
            return call.build_transaction(params)
        except (ContractCustomError, ContractLogicError) as exc:
            raise self._decoder.decode(_revert_data(exc)) from None
        except (requests.ConnectionError, requests.Timeout):
            raise
        except (Web3Exception, ValueError) as exc:  # e.g. an RPC error estimating gas
            raise failed("preparing a transaction", exc) from None

    def _broadcast_recorded(self, held: HeldSigner, nonce: int, tx_hash: str, raw: bytes) -> None:
        """Broadcasts a recorded new transaction; its record is taken back if the node refused it, kept if the node
        could not be reached (it may have it: the next send checks)."""
        try:
            self._broadcast(raw)
        except (requests.ConnectionError, requests.Timeout):
            raise
        except BaseException:
            held.forget(nonce, tx_hash)
            raise

    def _broadcast(self, raw: bytes) -> str:
        """Submits a signed transaction; its hash. :class:`_NonceTakenError` if the node says its nonce is used."""
        try:
            sent = self._w3.eth.send_raw_transaction(raw)
        except Web3RPCError as exc:
            if _is_nonce_problem(exc):
                raise _NonceTakenError from None
            raise failed(f"sending a transaction of account {self.address}", exc) from None
        return "0x" + bytes(sent).hex()

    def _allocate(self, held: HeldSigner) -> int:
        """The next nonce (the signer is held): the node's pending count, or above what was recorded; the
        recorded transactions the node forgot are sent again first."""
        node = int(self._w3.eth.get_transaction_count(self._account.address, "pending"))
        recorded = held.next_nonce()
        if recorded is None or recorded == node:
            return node
        # another sender of the account outside the book, or a dropped transaction: the node's count moved
        TX_NONCE_GAPS.inc()
        log.warning("nonce_gap", account=self.address, expected=recorded, node=node)
        if recorded > node:
            for sent in held.unsettled():
                if sent.nonce >= node:
                    self._resend(held, sent, reason="dropped")
            node = int(self._w3.eth.get_transaction_count(self._account.address, "pending"))
            if node < recorded and node not in {sent.nonce for sent in held.unsettled()}:
                # what the book holds from here up was mined and then taken away by a reorg: those nonces are
                # free again (whoever sent them sees the reorg in the index and sends again if it still must)
                log.warning("nonce_reused", account=self.address, nonce=node, recorded=recorded)
                return node
        return max(node, recorded)

    def _resend(self, held: HeldSigner, sent: SentRecord, *, reason: str) -> str | None:
        """Sends ``sent`` again (``reason`` "dropped": as it was, if its fees still do; "stuck": with bumped
        fees), recording a new hash; None if the cap leaves no raise."""
        fees = self._bumped(sent) if reason == "stuck" else None
        if reason == "stuck" and fees is None:
            log.warning("tx_stuck_at_cap", account=self.address, nonce=sent.nonce, cap=self._policy.max_fee_wei)
            return None
        raw = sent.raw
        if fees is not None or sent.max_fee_per_gas < self._market()[0]:
            fees = fees or self._bumped(sent) or self._fees()
            tx = TypedTransaction.from_bytes(HexBytes(sent.raw)).as_dict()
            for signature in ("v", "r", "s"):
                tx.pop(signature, None)
            tx.update(fees)
            raw = bytes(self._account.sign_transaction(tx).raw_transaction)
        try:
            tx_hash = self._broadcast(raw)
        except _NonceTakenError:  # mined meanwhile, or the node holds it already
            return None
        except LedgerError as exc:
            log.warning("tx_resend_failed", account=self.address, nonce=sent.nonce, reason=reason, error=str(exc))
            return None
        tx_fees = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        held.record(
            SentRecord(
                nonce=sent.nonce,
                raw=raw,
                hashes=(tx_hash,),
                max_fee_per_gas=int(tx_fees["maxFeePerGas"]),
                priority_fee_per_gas=int(tx_fees["maxPriorityFeePerGas"]),
                sent_at=sent.sent_at,
            )
        )
        TX_REPLACED.labels(reason).inc()
        log.warning("tx_replaced", account=self.address, nonce=sent.nonce, reason=reason, tx_hash=tx_hash)
        return tx_hash

    # ---- receipts ---------------------------------------------------------------------------------------

    def _receipt(self, call: Call, pending: _Pending, *, submitted: float) -> SentTx:
        """Waits for ``pending``'s receipt with its confirmations (``submitted``: ``time.perf_counter()`` when
        its submission began), replacing it when stuck and sending it again when dropped."""
        TX_PENDING.inc()
        try:
            receipt = self._await(pending)
        except (requests.ConnectionError, requests.Timeout) as exc:
            TX_TOTAL.labels("failed").inc()
            raise unreachable(f"waiting for transaction {pending.hashes[-1]}", exc) from None
        except Web3Exception as exc:
            TX_TOTAL.labels("failed").inc()
            raise failed(f"waiting for transaction {pending.hashes[-1]}", exc) from None
        finally:
            TX_PENDING.dec()
            if pending.stuck:
                TX_STUCK.dec()
        if receipt is None:
            TX_TOTAL.labels("unconfirmed").inc()
            tx_hash = pending.hashes[-1]
            log.warning("tx_unconfirmed", tx_hash=tx_hash, account=self.address, waited_s=self._receipt_timeout)
            raise RetryableError(f"transaction {tx_hash} not mined within {self._receipt_timeout:.0f} s")
        tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
        self._book.settle(self._get_chain_id(), self._key, pending.nonce, tx_hash)
        seconds = time.perf_counter() - submitted
        TX_CONFIRM_SECONDS.observe(seconds)
        if receipt["status"] != 1:
            TX_TOTAL.labels("reverted").inc()
            log.warning("tx_reverted", tx_hash=tx_hash, block=int(receipt["blockNumber"]), account=self.address)
            raise self._explain_failure(call, receipt["blockNumber"])
        TX_TOTAL.labels("mined").inc()
        log.info("tx_mined", tx_hash=tx_hash, block=int(receipt["blockNumber"]), seconds=round(seconds, 3))
        return SentTx(
            tx_hash=tx_hash,
            block_number=int(receipt["blockNumber"]),
            block_hash="0x" + bytes(receipt["blockHash"]).hex(),
            gas_used=int(receipt["gasUsed"]),
            logs=tuple(dict(log) for log in receipt["logs"]),
        )

    def _await(self, pending: _Pending) -> TxReceipt | None:
        """The receipt of one of ``pending``'s hashes once confirmed; None at the receipt timeout."""
        deadline = time.monotonic() + self._receipt_timeout
        acted = time.monotonic()
        while True:
            receipt = self._confirmed(pending)
            if receipt is not None:
                return receipt
            now = time.monotonic()
            if now >= deadline:
                return None
            if now - acted >= self._policy.stuck_after_s:
                acted = now
                if not pending.stuck:
                    pending.stuck = True
                    TX_STUCK.inc()
                self._unstick(pending)
            self._sleep(self._poll_s)

    def _confirmed(self, pending: _Pending) -> TxReceipt | None:
        for tx_hash in reversed(pending.hashes):
            try:
                receipt = self._w3.eth.get_transaction_receipt(HexStr(tx_hash))
            except TransactionNotFound:
                continue
            if self._confirmations <= 1:
                return receipt
            head = int(self._w3.eth.block_number)
            if head - int(receipt["blockNumber"]) + 1 < self._confirmations:
                return None
            # still on the canonical chain (a reorg may have moved or dropped it meanwhile)
            block = self._w3.eth.get_block(int(receipt["blockNumber"]))
            return receipt if bytes(block["hash"]) == bytes(receipt["blockHash"]) else None
        return None

    def _unstick(self, pending: _Pending) -> None:
        """Replaces a transaction waiting too long (bumped fees), or sends it again if the node dropped it."""
        with self._lock, self._book.hold(self._get_chain_id(), self._key) as held:
            if int(self._w3.eth.get_transaction_count(self._account.address, "latest")) > pending.nonce:
                return  # mined meanwhile: its receipt is read next
            sent = held.get(pending.nonce)
            if sent is None:
                return  # settled by another sender of the account
            pending.hashes[:] = list(sent.hashes)
            try:
                self._w3.eth.get_transaction(HexStr(sent.hashes[-1]))
                reason = "stuck"
            except TransactionNotFound:
                reason = "dropped"
            tx_hash = self._resend(held, sent, reason=reason)
            if tx_hash is not None:
                pending.hashes.append(tx_hash)

    @property
    def _key(self) -> str:
        return self.address.lower()

    def _get_chain_id(self) -> int:
        if self._chain_id is None:
            try:
                self._chain_id = int(self._w3.eth.chain_id)
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise unreachable("preparing a transaction", exc) from None
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


class FeeAboveCapError(RetryableError):
    """The network's base fee is above the fee cap: nothing was sent."""


@dataclass(slots=True)
class _Pending:
    """A submitted transaction awaited by its sender: its nonce and every hash sent for it."""

    nonce: int
    hashes: list[str]
    stuck: bool = False


class _NonceTakenError(Exception):
    """The node says the nonce is used (or the transaction known): allocate again."""


def _gwei(wei: int) -> str:
    return f"{wei / 10**9:.4g}"


def _revert_data(exc: ContractLogicError) -> str | None:
    data = exc.data
    if isinstance(data, str):
        return data
    return None


def _is_nonce_problem(exc: Web3RPCError) -> bool:
    text = str(exc).lower()
    return "nonce too low" in text or "nonce too high" in text or "already known" in text
