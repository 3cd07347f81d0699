"""Where the index is: the chain it is pinned to, its checkpoint and the block headers above finality.

Tables ``chain_pin``, ``checkpoint`` and ``blocks`` (written by the indexer, through
:class:`~ledger_service.store.handle.Store`). One row each in ``chain_pin`` and ``checkpoint`` (``id`` 1).
The functions taking a ``Connection`` run inside the caller's transaction: :class:`Store` moves the
checkpoint in the same transaction as the rows it covers; :func:`index_head` is the readers' view.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, select

from ledger_service.core.events import BlockHeader
from ledger_service.store._db import read_transaction, upsert
from ledger_service.store.tables import blocks, chain_pin, checkpoint

if TYPE_CHECKING:  # the handle writes through this module's functions
    from ledger_service.store.handle import Store

__all__ = ["BlockRef", "ChainPin", "IndexHead", "index_head"]


@dataclass(frozen=True)
class ChainPin:
    """The chain and deployment an index was built from."""

    chain_id: int
    genesis_hash: str
    ledger_address: str
    escrow_address: str
    deploy_block: int
    exchange_address: str | None = None
    """ExchangeEscrow (None: a deployment from before it)."""
    batch_anchor_address: str | None = None
    """BatchAnchor's address; None for a deployment made before it existed (its batches are not indexed)."""


@dataclass(frozen=True)
class BlockRef:
    """A block by number and hash."""

    number: int
    hash: str


@dataclass(frozen=True, slots=True)
class IndexHead:
    """The index checkpoint: every event up to this block is indexed."""

    block_number: int
    block_hash: str
    timestamp: int | None
    """The block's timestamp (None if its header is not stored)."""


_HEAD = (
    select(checkpoint.c.block_number, checkpoint.c.block_hash, blocks.c.timestamp)
    .select_from(checkpoint.outerjoin(blocks, blocks.c.number == checkpoint.c.block_number))
    .where(checkpoint.c.id == 1)
)


def read_head(conn: Connection) -> IndexHead | None:
    """:func:`index_head` inside the caller's transaction."""
    row = conn.execute(_HEAD).first()
    if row is None:
        return None
    return IndexHead(block_number=row.block_number, block_hash=row.block_hash, timestamp=row.timestamp)


def index_head(store: Store) -> IndexHead | None:
    """The checkpoint block (None before the indexer's first write)."""
    with read_transaction(store.engine) as conn:
        return read_head(conn)


def read_pin(conn: Connection) -> ChainPin | None:
    row = conn.execute(select(chain_pin).where(chain_pin.c.id == 1)).first()
    if row is None:
        return None
    return ChainPin(
        chain_id=row.chain_id,
        genesis_hash=row.genesis_hash,
        ledger_address=row.ledger_address,
        escrow_address=row.escrow_address,
        deploy_block=row.deploy_block,
        exchange_address=row.exchange_address,
        batch_anchor_address=row.batch_anchor_address,
    )


def insert_pin(conn: Connection, pin: ChainPin) -> None:
    conn.execute(
        chain_pin.insert(),
        {
            "id": 1,
            "chain_id": pin.chain_id,
            "genesis_hash": pin.genesis_hash,
            "ledger_address": pin.ledger_address,
            "escrow_address": pin.escrow_address,
            "deploy_block": pin.deploy_block,
            "exchange_address": pin.exchange_address,
            "batch_anchor_address": pin.batch_anchor_address,
            "created_at": int(time.time()),
        },
    )


def read_checkpoint(conn: Connection) -> BlockRef | None:
    row = conn.execute(select(checkpoint.c.block_number, checkpoint.c.block_hash).where(checkpoint.c.id == 1)).first()
    return None if row is None else BlockRef(number=row.block_number, hash=row.block_hash)


def write_checkpoint(conn: Connection, ref: BlockRef) -> None:
    upsert(
        conn,
        checkpoint,
        [{"id": 1, "block_number": ref.number, "block_hash": ref.hash, "updated_at": int(time.time())}],
    )


def store_headers(conn: Connection, headers: Sequence[BlockHeader]) -> None:
    """Upserts ``headers`` into ``blocks`` (the last of each number wins)."""
    if headers:
        upsert(
            conn,
            blocks,
            [
                {"number": h.number, "hash": h.hash, "parent_hash": h.parent_hash, "timestamp": h.timestamp}
                for h in {h.number: h for h in headers}.values()
            ],
        )


def read_headers(conn: Connection, *, from_block: int, to_block: int) -> dict[int, BlockHeader]:
    """Stored headers with ``from_block <= number <= to_block``."""
    stmt = select(blocks).where(blocks.c.number >= from_block, blocks.c.number <= to_block)
    return {
        r.number: BlockHeader(number=r.number, hash=r.hash, parent_hash=r.parent_hash, timestamp=r.timestamp)
        for r in conn.execute(stmt)
    }
