"""EPCIS 2.0 / CBV 2.0 code tables, the off-chain mirror of contracts/EpcisCodes.sol.

Codes are stable and never reused; a test checks this table against the
Solidity constants. Names are the CBV 2.0 terms (the URN suffix of
``urn:epcglobal:cbv:bizstep:<name>`` / ``urn:epcglobal:cbv:disp:<name>``).
"""

from __future__ import annotations

from collections.abc import Collection
from enum import IntEnum

from ledger_service.core.keccak import keccak_text


class BizStep(IntEnum):
    """CBV business steps as encoded on-chain."""

    COMMISSIONING = 1
    PACKING = 2
    SHIPPING = 3
    RECEIVING = 4
    RETAIL_SELLING = 5
    DEPARTING = 6
    ARRIVING = 7
    TRANSPORTING = 8
    INSPECTING = 9
    REPAIRING = 10
    STOCKING = 11
    DESTROYING = 12
    DECOMMISSIONING = 13
    HOLDING = 14

    @property
    def cbv(self) -> str:
        """The CBV 2.0 term, e.g. ``retail_selling``."""
        return self.name.lower()


class Disposition(IntEnum):
    """CBV dispositions as encoded on-chain."""

    ACTIVE = 1
    IN_PROGRESS = 2
    IN_TRANSIT = 3
    SELLABLE_ACCESSIBLE = 4
    SELLABLE_NOT_ACCESSIBLE = 5
    RETAIL_SOLD = 6
    RETURNED = 7
    DAMAGED = 8
    CONFORMANT = 9
    NON_CONFORMANT = 10
    RECALLED = 11
    DESTROYED = 12
    INACTIVE = 13

    @property
    def cbv(self) -> str:
        """The CBV 2.0 term, e.g. ``non_conformant``."""
        return self.name.lower()


class ReturnState(IntEnum):
    """States of a return in ReturnsEscrow (contracts/interfaces/IReturnsEscrow.sol)."""

    NONE = 0
    AUTHORIZED = 1
    CANCELLED = 2
    EXPIRED = 3
    IN_TRANSIT = 4
    RECEIVED = 5
    ACCEPTED = 6
    REJECTED = 7
    DISPUTED = 8
    RESOLVED = 9
    RECLAIMED = 10
    CONSUMER_CLAIMED = 11


def encode_location(sgln: str) -> bytes:
    """Encodes a read point (SGLN ``company.location.extension``) as the contract's bytes32.

    >>> encode_location("0614141.00777.0").rstrip(b"\\0")
    b'0614141.00777.0'
    """
    raw = sgln.encode("ascii")
    if len(raw) > 32:
        raise ValueError(f"location {sgln!r} is longer than 32 bytes")
    return raw.ljust(32, b"\0")


def decode_location(raw: bytes) -> str:
    """Inverse of :func:`encode_location` (trailing zero bytes dropped)."""
    return raw.rstrip(b"\0").decode("ascii", errors="replace")


ROLE_IDS: dict[str, bytes] = {
    "DEFAULT_ADMIN_ROLE": b"\0" * 32,  # OpenZeppelin AccessControl's admin role
    **{
        name: keccak_text(name)
        for name in (
            "MANUFACTURER_ROLE",
            "MERCHANT_ROLE",
            "CARRIER_ROLE",
            "INSPECTOR_ROLE",
            "ARBITER_ROLE",
            "CONSUMER_AGENT_ROLE",
            "RECORDER_ROLE",
            "EXCHANGE_ROLE",
            "BATCH_ANCHOR_ROLE",
        )
    },
}
"""The on-chain role ids by name, as contracts/Roles.sol defines them (``keccak256("<NAME>_ROLE")``)."""


CARRIER_STEPS = frozenset({BizStep.DEPARTING, BizStep.ARRIVING, BizStep.TRANSPORTING})
"""The steps only a carrier records."""


def step_refusal(
    step: BizStep, *, roles: Collection[str], actor: str, merchant: str, sells_for: Collection[str]
) -> str | None:
    """Why ``actor`` may not record ``step`` on an item of ``merchant`` (None: it may), as ProvenanceLedger rules.

    ``roles`` are the actor's role names (``CARRIER_ROLE``...), ``sells_for`` the merchants that made it their
    seller; addresses as lowercase hex. The same rule for on-chain events (capture's plan, before sending) and
    for batched scans (which the contract does not check one by one).
    """
    if step in CARRIER_STEPS:
        return None if "CARRIER_ROLE" in roles else f"recording {step.cbv} needs the carrier role on-chain"
    if step is BizStep.INSPECTING:
        return None if "INSPECTOR_ROLE" in roles else "recording inspecting needs the inspector role on-chain"
    if "MANUFACTURER_ROLE" in roles:
        return None
    if "MERCHANT_ROLE" in roles:
        if merchant == actor or merchant in sells_for:
            return None
        return f"it is neither the item's merchant of record ({merchant}) nor one of its sellers"
    return f"recording {step.cbv} needs the manufacturer role, or the merchant role for the merchant's own items"
