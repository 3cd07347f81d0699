"""The ERC-20 tokens a sale may escrow refunds in: on the allow-list, and answering as an ERC-20 does.

The escrow contract takes any address as a sale's token, but a refund can only be escrowed in a token
that behaves: the service later calls its ``allowance`` and ``approve`` and the escrow its
``transferFrom`` / ``transfer``. So before a sale is sent, :func:`check_sale_token` requires that

1. the token is on the deployment's allow-list: its own stablecoin (from the manifest) plus
   ``LEDGER_TOKEN_ALLOWLIST``. A deployment-wide list, not one per merchant: which tokens the escrow
   holds is the operator's decision (a token's fees, pauses or blocklists decide whether consumers
   get their refunds), and it needs no new table or admin endpoint;
2. the address holds code, and ``decimals()``, ``totalSupply()``, ``balanceOf(escrow)`` and
   ``allowance(merchant, escrow)`` each answer exactly one ABI word (``decimals`` at most 255): a
   contract that reverts, answers nothing, or answers something else (the ledger itself, an EOA) is
   refused.

A refusal is a :class:`TokenRefusedError` (HTTP 422) naming the address and what it failed. A token
that passed is not checked again for :data:`CHECK_TTL_S` in this process.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import requests
from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_typing import ChecksumAddress, HexStr
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.exceptions import Web3Exception
from web3.types import TxParams

from ledger_service.chain.calls import unreachable
from ledger_service.core.keccak import keccak_text
from ledger_service.errors import InvalidRequestError

CHECK_TTL_S = 600.0
"""How long a token that passed :func:`check_sale_token` is trusted without asking the node again."""
MAX_DECIMALS = 255


class TokenRefusedError(InvalidRequestError):
    """A sale's token is not allowed, or does not behave as an ERC-20 (HTTP 422)."""

    def __init__(self, token: str, why: str) -> None:
        super().__init__(f"token {token} cannot be used for a sale: {why}")
        self.token = token


def _selector(signature: str) -> bytes:
    return keccak_text(signature)[:4]


class TokenChecker:
    """Checks sale tokens against ``allowed`` (addresses, any case) and the node; thread-safe."""

    def __init__(self, *, w3: Web3, allowed: set[str] | frozenset[str]) -> None:
        self._w3 = w3
        self.allowed = frozenset(a.lower() for a in allowed)
        self._passed: dict[tuple[str, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def check(self, token: str, *, merchant: str, escrow: str) -> int:
        """The token's ``decimals()``; :class:`TokenRefusedError` unless ``token`` may escrow ``merchant``'s
        refunds in ``escrow``."""
        address = to_checksum_address(token)
        if address.lower() not in self.allowed:
            allowed = ", ".join(sorted(to_checksum_address(a) for a in self.allowed)) or "none"
            raise TokenRefusedError(
                address,
                f"it is not on this deployment's list of allowed tokens ({allowed}); the operator adds tokens "
                "with LEDGER_TOKEN_ALLOWLIST",
            )
        key = (address.lower(), merchant.lower())
        with self._lock:
            until, decimals = self._passed.get(key, (0.0, 0))
            if until > time.monotonic():
                return decimals
        decimals = self._answers_erc20(
            address, merchant=to_checksum_address(merchant), escrow=to_checksum_address(escrow)
        )
        with self._lock:
            self._passed[key] = (time.monotonic() + CHECK_TTL_S, decimals)
        return decimals

    def _answers_erc20(self, token: ChecksumAddress, *, merchant: ChecksumAddress, escrow: ChecksumAddress) -> int:
        try:
            code = self._w3.eth.get_code(token)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise unreachable("checking the sale's token", exc) from None
        if not code:
            raise TokenRefusedError(token, "there is no contract at this address")
        calls = (
            ("decimals()", b""),
            ("totalSupply()", b""),
            ("balanceOf(address)", encode(["address"], [escrow])),
            ("allowance(address,address)", encode(["address", "address"], [merchant, escrow])),
        )
        answers = [self._word(token, signature, arguments) for signature, arguments in calls]
        if answers[0] > MAX_DECIMALS:
            raise TokenRefusedError(token, f"its decimals() answered {answers[0]}, which is not an ERC-20's uint8")
        return answers[0]

    def _word(self, token: ChecksumAddress, signature: str, arguments: bytes) -> int:
        """The one ABI word ``token`` answers to ``signature``; TokenRefusedError otherwise."""
        params: TxParams = {"to": token, "data": HexStr("0x" + (_selector(signature) + arguments).hex())}
        try:
            answer = bytes(self._w3.eth.call(params))
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise unreachable("checking the sale's token", exc) from None
        except (Web3Exception, ValueError):  # a revert, or the node refused the call
            raise TokenRefusedError(
                token, f"it does not answer {signature} as an ERC-20 token does (the call failed)"
            ) from None
        if len(answer) != 32:
            raise TokenRefusedError(
                token, f"it does not answer {signature} as an ERC-20 token does ({len(answer)} bytes instead of 32)"
            )
        return int.from_bytes(answer, "big")


@dataclass(frozen=True, slots=True)
class TokenUnits:
    """How a token's amounts read: its ``decimals()`` and ``symbol()`` (None if it has no readable symbol)."""

    decimals: int
    symbol: str | None


MAX_SYMBOL = 16
"""Characters of a symbol shown to people (an ERC-20's symbol is any string its deployer chose)."""


def token_units(w3: Web3, token: str) -> TokenUnits | None:
    """The token's ``decimals()`` and ``symbol()`` (a string, or the bytes32 of older tokens), the symbol
    dropped when it is missing or not printable; None when the token does not answer ``decimals()`` as an
    ERC-20 does. Raises :class:`~ledger_service.errors.RetryableError` when the node cannot be reached."""
    address = to_checksum_address(token)

    def ask(signature: str) -> bytes | None:
        params: TxParams = {"to": address, "data": HexStr("0x" + _selector(signature).hex())}
        try:
            return bytes(w3.eth.call(params))
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise unreachable("reading a token's decimals and symbol", exc) from None
        except (Web3Exception, ValueError):  # a revert, or the node refused the call
            return None

    answer = ask("decimals()")
    if answer is None or len(answer) != 32 or int.from_bytes(answer, "big") > MAX_DECIMALS:
        return None
    decimals = int.from_bytes(answer, "big")
    raw = ask("symbol()")
    symbol: str | None
    try:
        symbol = None if raw is None else _symbol(raw)
    except (DecodingError, UnicodeDecodeError, OverflowError):
        symbol = None
    if symbol is not None and not (0 < len(symbol) <= MAX_SYMBOL and symbol.isprintable()):
        symbol = None
    return TokenUnits(decimals, symbol)


def _symbol(raw: bytes) -> str:
    """An ABI string, or the bytes32 some older tokens answer."""
    return str(decode(["string"], raw)[0]) if len(raw) > 32 else raw.rstrip(b"\0").decode("utf-8")
