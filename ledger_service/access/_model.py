"""Who is calling: roles, actors (API keys) and consumers (return tokens)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from eth_utils.address import to_checksum_address

from ledger_service.errors import FatalError


class Role(StrEnum):
    """What an API key may do. Writing roles act on-chain as the key's account."""

    MANUFACTURER = "manufacturer"
    MERCHANT = "merchant"
    CARRIER = "carrier"
    INSPECTOR = "inspector"
    ARBITER = "arbiter"
    AUDITOR = "auditor"
    ADMIN = "admin"

    @property
    def writes(self) -> bool:
        """Whether keys of this role act on-chain (and so need an account)."""
        return self in WRITING_ROLES


WRITING_ROLES = frozenset({Role.MANUFACTURER, Role.MERCHANT, Role.CARRIER, Role.INSPECTOR, Role.ARBITER})


@dataclass(frozen=True, slots=True)
class Actor:
    """The holder of a valid, unrevoked API key."""

    key_id: int
    name: str
    role: Role
    address: str | None
    """The on-chain account of a writing role, lowercase (as the index stores it); None for auditor and admin."""

    @property
    def account(self) -> str:
        """The on-chain account, checksummed (as web3 wants it); only for writing roles."""
        if self.address is None:
            raise FatalError(f"{self.role} key {self.key_id} acts for no on-chain account")
        return to_checksum_address(self.address)

    @property
    def principal(self) -> str:
        """A stable name of the caller (e.g. for idempotency keys): ``key:<id>``."""
        return f"key:{self.key_id}"


@dataclass(frozen=True, slots=True)
class Consumer:
    """The holder of a valid return token: the consumer of one sold item."""

    item_id: str
    """0x + 64 lowercase hex."""
    address: str
    """The consumer's account, lowercase (as the index stores it)."""
    token_hash: str
    """The sha256 hex of the return token presented (what the database stores)."""
    sale_seq: int | None = None
    """The item's sale the token is for (None: a token issued before tokens were bound to their sale)."""

    @property
    def account(self) -> str:
        """The consumer's account, checksummed (as web3 wants it)."""
        return to_checksum_address(self.address)

    @property
    def principal(self) -> str:
        """A stable name of the credential (e.g. for idempotency keys): ``token:<sha256 of the token>``. Not the
        consumer's address: one consumer holds a token per purchase, and each is a caller of its own."""
        return f"token:{self.token_hash}"
