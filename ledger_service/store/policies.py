"""Return policies: the published versions (``policies``, written by the indexer from PolicyPublished) and
the terms documents behind their digests (``policy_terms``, written by the API).

Each function is one transaction and returns frozen rows. Addresses and digests are compared lowercase
(callers may pass any case).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from ledger_service.store._db import insert_ignore, key_in, read_transaction, write_transaction
from ledger_service.store.handle import Store
from ledger_service.store.tables import policies, policy_terms

__all__ = [
    "PolicyRow",
    "PolicyTermsRow",
    "delete_policy_terms",
    "policy_terms_of",
    "policy_versions",
    "policy_versions_of",
    "put_policy_terms",
]


@dataclass(frozen=True, slots=True)
class PolicyRow:
    """A published policy version (on-chain parameters)."""

    merchant: str
    version: int
    window_days: int
    restocking_fee_bps: int
    fast_refund: bool
    fast_refund_max_value: int
    fast_refund_max_returns_90d: int
    ship_by_days: int
    inspect_by_days: int
    dispute_window_days: int
    document_digest: str
    published_at: int
    block_number: int
    tx_hash: str

    @classmethod
    def from_row(cls, row: Any) -> PolicyRow:
        """From a ``policies`` row (anything with its column names as attributes)."""
        return cls(
            merchant=row.merchant,
            version=row.version,
            window_days=row.window_days,
            restocking_fee_bps=row.restocking_fee_bps,
            fast_refund=bool(row.fast_refund),
            fast_refund_max_value=int(row.fast_refund_max_value),
            fast_refund_max_returns_90d=row.fast_refund_max_returns_90d,
            ship_by_days=row.ship_by_days,
            inspect_by_days=row.inspect_by_days,
            dispute_window_days=row.dispute_window_days,
            document_digest=row.document_digest,
            published_at=row.published_at,
            block_number=row.block_number,
            tx_hash=row.tx_hash,
        )


def policy_versions(store: Store, merchant: str) -> tuple[PolicyRow, ...]:
    """Every published version of the merchant's policy, newest first (the first is the current one)."""
    p = policies.c
    stmt = select(policies).where(p.merchant == merchant.lower()).order_by(p.version.desc())
    with read_transaction(store.engine) as conn:
        return tuple(PolicyRow.from_row(row) for row in conn.execute(stmt))


def policy_versions_of(store: Store, merchants: Iterable[str]) -> dict[str, tuple[PolicyRow, ...]]:
    """:func:`policy_versions` of each of ``merchants`` (lowercase keys; no key for a merchant without a policy),
    in one statement."""
    wanted = sorted({m.lower() for m in merchants})
    if not wanted:
        return {}
    p = policies.c
    found: dict[str, list[PolicyRow]] = {}
    with read_transaction(store.engine) as conn:
        stmt = select(policies).where(key_in(conn, p.merchant, wanted)).order_by(p.merchant, p.version.desc())
        for row in conn.execute(stmt):
            found.setdefault(row.merchant, []).append(PolicyRow.from_row(row))
    return {merchant: tuple(rows) for merchant, rows in found.items()}


# ---- policy_terms (written by the API) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicyTermsRow:
    merchant: str
    digest: str
    document: dict[str, Any]
    created_at: int


def put_policy_terms(store: Store, *, merchant: str, digest: str, document: dict[str, Any], created_at: int) -> bool:
    """Stores a policy document under its digest; False if that digest was already stored (kept as it was)."""
    row = {"merchant": merchant.lower(), "digest": digest.lower(), "document": document, "created_at": created_at}
    with write_transaction(store.engine) as conn:
        return insert_ignore(conn, policy_terms, row)


def delete_policy_terms(store: Store, *, merchant: str, digest: str) -> None:
    """Removes a policy document stored for a publication that then failed."""
    stmt = delete(policy_terms).where(
        policy_terms.c.merchant == merchant.lower(), policy_terms.c.digest == digest.lower()
    )
    with write_transaction(store.engine) as conn:
        conn.execute(stmt)


def policy_terms_of(store: Store, *, merchant: str, digest: str) -> PolicyTermsRow | None:
    stmt = select(policy_terms).where(
        policy_terms.c.merchant == merchant.lower(), policy_terms.c.digest == digest.lower()
    )
    with read_transaction(store.engine) as conn:
        row = conn.execute(stmt).first()
    return None if row is None else PolicyTermsRow(row.merchant, row.digest, dict(row.document), row.created_at)
