"""Chain plumbing of the workflow: sending, reading receipts, ERC-20 allowances, per-item locks, time.

Invariants:
- a merchant's escrow allowance is raised to the maximum at most once per
  (sender, escrow, token) at a time (one lock each), and only when the
  current allowance does not cover the deposit;
- :func:`item_lock` serializes, within this process, everything that decides
  and authorizes returns of one item (see :mod:`ledger_service.returns.requests`).
"""

from __future__ import annotations

import re
import threading
import time
import weakref
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from eth_utils.address import is_address, is_checksum_address, to_checksum_address
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.logs import DISCARD

from ledger_service.chain.calls import ChainCallError, call
from ledger_service.chain.reverts import ContractRevertError
from ledger_service.chain.sender import SentTx, TxSender
from ledger_service.chain.signers import ChainContext
from ledger_service.core.codes import encode_location
from ledger_service.errors import ConflictError, InvalidRequestError
from ledger_service.store.checkpoint import index_head
from ledger_service.store.handle import Store

MAX_UINT256 = 2**256 - 1
ZERO32 = b"\0" * 32
_BYTES32 = re.compile(r"^0x[0-9a-fA-F]{64}$")


@dataclass(frozen=True, slots=True)
class TxResult:
    """A mined transaction that did what was asked."""

    tx_hash: str
    block_number: int

    @classmethod
    def of(cls, sent: SentTx) -> TxResult:
        return cls(tx_hash=sent.tx_hash, block_number=sent.block_number)


def bytes32(value: str, what: str) -> bytes:
    """``0x`` + 64 hex as bytes; :class:`InvalidRequestError` naming ``what`` otherwise."""
    if not _BYTES32.match(value):
        raise InvalidRequestError(f"{what} must be 0x followed by 64 hex digits, got {value!r}")
    return bytes.fromhex(value[2:])


def checksum(value: str, what: str) -> str:
    """An address in checksum form; :class:`InvalidRequestError` naming ``what`` if it is not one, or if it is
    in mixed case with a wrong EIP-55 checksum (a typo that would send money to an account nobody holds)."""
    if not is_address(value):
        raise InvalidRequestError(f"{what} must be an account address (0x + 40 hex digits), got {value!r}")
    digits = value[2:]
    if digits not in (digits.lower(), digits.upper()) and not is_checksum_address(value):
        raise InvalidRequestError(
            f"{what} {value} has a wrong EIP-55 checksum: it is probably mistyped; copy the address again "
            "from its source"
        )
    return str(to_checksum_address(value))


def location_bytes(location: str | None) -> bytes:
    """A read point (SGLN ``company.location.extension``) as bytes32; zero when not given."""
    if not location:
        return ZERO32
    try:
        return encode_location(location)
    except (ValueError, UnicodeEncodeError) as exc:
        raise InvalidRequestError(f"location {location!r} is not an ASCII read point of at most 32 bytes") from exc


def event_args(contract: Contract, event: str, sent: SentTx) -> list[dict[str, Any]]:
    """The arguments of every ``event`` of ``contract`` in the transaction's receipt."""
    handler = getattr(contract.events, event)()
    found: list[dict[str, Any]] = []
    for log in sent.logs:
        if str(log.get("address", "")).lower() != str(contract.address).lower():
            continue
        decoded = handler.process_receipt({"logs": [log]}, errors=DISCARD)
        found.extend(dict(entry["args"]) for entry in decoded)
    return found


def hex32(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def send(sender: TxSender, call: ContractFunction) -> SentTx:
    """Sends ``call`` (see :meth:`TxSender.send` for the errors)."""
    return sender.send(call)


# ---- allowances -----------------------------------------------------------------------

_allowance_guard = threading.Lock()
_allowance_locks: weakref.WeakKeyDictionary[TxSender, dict[tuple[str, str], threading.Lock]] = (
    weakref.WeakKeyDictionary()
)
_max_allowance: weakref.WeakKeyDictionary[TxSender, set[tuple[str, str]]] = weakref.WeakKeyDictionary()


class TokenUnusableError(ConflictError):
    """A sale's token does not behave as an ERC-20 when the escrow is funded (HTTP 409)."""

    def __init__(self, token: str, function: str) -> None:
        super().__init__(
            f"the refund cannot be escrowed in the sale's token {token}: it does not answer {function} as an "
            "ERC-20 token does; the merchant must settle this return outside the ledger"
        )
        self.token = token


def ensure_allowance(
    *, chain: ChainContext, sender: TxSender, token: str, amount: int, spender: str | None = None
) -> None:
    """Makes sure ``spender`` (default: the escrow) may take ``amount`` of ``token`` from ``sender``'s account,
    approving the maximum once when it may not. Remembered per sender (so per chain context) once the allowance
    is unlimited. A token that fails ``allowance()`` or ``approve()`` is a :class:`TokenUnusableError`."""
    spender = str(chain.escrow.address) if spender is None else spender
    key = (spender.lower(), token.lower())
    with _allowance_guard:
        known = _max_allowance.setdefault(sender, set())
        if key in known:
            return
        lock = _allowance_locks.setdefault(sender, {}).setdefault(key, threading.Lock())
    with lock:
        if key in known:
            return
        erc20 = chain.erc20(token)
        try:
            current = int(
                call(
                    erc20.functions.allowance(sender.address, spender),
                    decoder=chain.decoder,
                    what="reading the merchant's token allowance",
                )
            )
        except (ContractRevertError, ChainCallError):
            raise TokenUnusableError(token, "allowance()") from None
        if current < amount:
            try:
                sender.send(erc20.functions.approve(spender, MAX_UINT256))
            except ContractRevertError:
                raise TokenUnusableError(token, "approve()") from None
            current = MAX_UINT256
        if current >= MAX_UINT256 // 2:  # OpenZeppelin's ERC-20 never lowers an unlimited allowance
            known.add(key)


def forget_allowance(*, chain: ChainContext, sender: TxSender, token: str, spender: str | None = None) -> None:
    """Drops what :func:`ensure_allowance` remembered (the account lowered its allowance elsewhere)."""
    spender = str(chain.escrow.address) if spender is None else spender
    with _allowance_guard:
        _max_allowance.get(sender, set()).discard((spender.lower(), token.lower()))


# ---- per-item locks -----------------------------------------------------------------------

_STRIPES = 1024
_item_locks = tuple(threading.Lock() for _ in range(_STRIPES))


@contextmanager
def item_lock(item_id: str) -> Iterator[None]:
    """Serializes return decisions for one item in this process (striped: unrelated items rarely share one)."""
    with _item_locks[zlib.crc32(item_id.lower().encode()) % _STRIPES]:
        yield


# ---- time ---------------------------------------------------------------------------------


def wall_clock() -> int:
    """Wall-clock unix seconds (times of the API's own records)."""
    return int(time.time())


def chain_now(store: Store, *, wall: int | None = None) -> int:
    """The time rules run at: the later of the wall clock and the indexed head's timestamp."""
    now = wall_clock() if wall is None else wall
    head = index_head(store)
    if head is not None and head.timestamp is not None:
        now = max(now, head.timestamp)
    return now
