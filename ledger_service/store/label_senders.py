"""How the sender appears on a return's label (``label_senders``, written by the API only; personal data).

Invariant: once ``printed_at`` is set the row never changes. :func:`save_label_sender` writes only under the
condition ``printed_at IS NULL`` and :func:`printed_label_sender` sets it in one statement, so a change racing the first
label either lands before it (and is printed) or is refused: what a printed label shows is what the row says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, select, update

from ledger_service.store._db import insert_ignore, read_transaction, write_transaction
from ledger_service.store.handle import Store
from ledger_service.store.tables import label_senders, return_requests

__all__ = [
    "LabelSenderRow",
    "label_sender_for_request",
    "label_sender_for_return",
    "printed_label_sender",
    "save_label_sender",
]


@dataclass(frozen=True, slots=True)
class LabelSenderRow:
    """One request's choice."""

    request_id: str
    show_as: str
    """``wallet``, ``initials`` or ``full``."""
    name: str | None
    locality: str | None
    updated_at: int
    printed_at: int | None


def _row(row: Row[Any]) -> LabelSenderRow:
    return LabelSenderRow(
        request_id=row.request_id,
        show_as=row.show_as,
        name=row.name,
        locality=row.locality,
        updated_at=int(row.updated_at),
        printed_at=None if row.printed_at is None else int(row.printed_at),
    )


def label_sender_for_request(store: Store, request_id: str) -> LabelSenderRow | None:
    with read_transaction(store.engine) as conn:
        row = conn.execute(select(label_senders).where(label_senders.c.request_id == request_id)).first()
    return None if row is None else _row(row)


def label_sender_for_return(store: Store, return_id: str) -> LabelSenderRow | None:
    """The choice of the request that opened return ``return_id`` (None: no choice, or no request here)."""
    query = (
        select(label_senders)
        .join(return_requests, return_requests.c.id == label_senders.c.request_id)
        .where(return_requests.c.return_id == return_id.lower())
    )
    with read_transaction(store.engine) as conn:
        row = conn.execute(query).first()
    return None if row is None else _row(row)


def save_label_sender(store: Store, row: LabelSenderRow) -> bool:
    """Stores the choice unless a label was printed with the one before; whether it was stored."""
    values = {"show_as": row.show_as, "name": row.name, "locality": row.locality, "updated_at": row.updated_at}
    with write_transaction(store.engine) as conn:
        if insert_ignore(conn, label_senders, {"request_id": row.request_id, **values, "printed_at": None}):
            return True
        changed = conn.execute(
            update(label_senders)
            .where(label_senders.c.request_id == row.request_id, label_senders.c.printed_at.is_(None))
            .values(**values)
            .execution_options(preserve_rowcount=True)
        )
        return bool(changed.rowcount == 1)


def printed_label_sender(store: Store, *, return_id: str, now: int) -> LabelSenderRow | None:
    """The choice a label of return ``return_id`` prints, fixed by this call if no label was printed before (a
    request that chose nothing gets the masked wallet address, fixed too). None: no request here opened it."""
    found = label_sender_for_return(store, return_id)
    if found is not None and found.printed_at is not None:
        return found  # fixed already: no write
    with write_transaction(store.engine) as conn:
        request_id = conn.execute(
            select(return_requests.c.id).where(return_requests.c.return_id == return_id.lower()).limit(1)
        ).scalar()
        if request_id is None:
            return None
        fresh = {"request_id": request_id, "show_as": "wallet", "name": None, "locality": None, "updated_at": now}
        if not insert_ignore(conn, label_senders, {**fresh, "printed_at": now}):
            conn.execute(
                update(label_senders)
                .where(label_senders.c.request_id == request_id, label_senders.c.printed_at.is_(None))
                .values(printed_at=now)
            )
        row = conn.execute(select(label_senders).where(label_senders.c.request_id == request_id)).one()
    return _row(row)
