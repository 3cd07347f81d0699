"""Translates revert data into the contract's custom error, by name and with typed arguments.

Every custom error declared in the contracts' ABIs is known by its 4-byte
selector; OpenZeppelin's errors and the Solidity ``Error(string)`` /
``Panic(uint256)`` builtins too. A revert is never shown to a user as raw hex.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError

from ledger_service.core.keccak import keccak_text
from ledger_service.errors import FatalError

_PANICS = {
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division by zero",
    0x21: "invalid enum value",
    0x32: "array index out of bounds",
    0x41: "out of memory",
}


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """One custom error: name and argument names/types."""

    name: str
    arg_names: tuple[str, ...]
    arg_types: tuple[str, ...]

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(self.arg_types)})"

    @property
    def selector(self) -> bytes:
        return keccak_text(self.signature)[:4]


class ContractRevertError(FatalError):
    """A transaction or call reverted: the custom error's name and its decoded arguments."""

    def __init__(self, error: str, params: Mapping[str, Any] | None = None) -> None:
        self.error = error
        self.params: dict[str, Any] = dict(params or {})
        super().__init__(str(self))

    def __str__(self) -> str:
        if not self.params:
            return self.error
        shown = ", ".join(f"{k}={_show(v)}" for k, v in self.params.items())
        return f"{self.error}({shown})"


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


def _abi_type(entry: Mapping[str, Any]) -> str:
    kind = str(entry["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in entry["components"])
        return f"({inner}){kind[5:]}"
    return kind


class RevertDecoder:
    """Decodes revert data using the errors declared in the given ABIs."""

    def __init__(self, abis: Iterable[Iterable[Mapping[str, Any]]]) -> None:
        self._specs: dict[bytes, ErrorSpec] = {}
        for abi in abis:
            for entry in abi:
                if entry.get("type") != "error":
                    continue
                inputs = entry.get("inputs", [])
                spec = ErrorSpec(
                    name=str(entry["name"]),
                    arg_names=tuple(str(i.get("name") or f"arg{n}") for n, i in enumerate(inputs)),
                    arg_types=tuple(_abi_type(i) for i in inputs),
                )
                self._specs[spec.selector] = spec

    def decode(self, data: bytes | str | None) -> ContractRevertError:
        """The error that ``data`` (revert return data) encodes."""
        raw = _to_bytes(data)
        if len(raw) < 4:
            return ContractRevertError("reverted without a reason")
        selector, body = raw[:4], raw[4:]
        try:
            if selector == keccak_text("Error(string)")[:4]:
                (message,) = decode(["string"], body)
                return ContractRevertError("Error", {"message": message})
            if selector == keccak_text("Panic(uint256)")[:4]:
                (code,) = decode(["uint256"], body)
                return ContractRevertError("Panic", {"code": code, "meaning": _PANICS.get(code, "unknown panic")})
            spec = self._specs.get(selector)
            if spec is None:
                return ContractRevertError("UnknownError", {"data": raw})
            values = decode(list(spec.arg_types), body)
        except DecodingError:
            return ContractRevertError("UndecodableError", {"data": raw})
        return ContractRevertError(spec.name, dict(zip(spec.arg_names, values, strict=True)))


def _to_bytes(data: bytes | str | None) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes):
        return data
    text = data[2:] if data.startswith("0x") else data
    try:
        return bytes.fromhex(text)
    except ValueError:
        return b""
