"""Consumers' feedback on closed returns (``return_feedback``, written by the API only).

Invariant: one row per return, and a row changes only while it is editable: :func:`save_feedback` inserts the
first rating, and later ones update the row in the same transaction only under the condition
``created_at >= editable_since``, so two writers racing at the end of the week cannot both win and a locked
rating is never overwritten. :func:`feedback_facts` reads each rating with what the index knows of its return
(reason, carrier, the times of its steps), for the satisfaction figures.

Invariant of ``feedback_rollup``: for every merchant, day and group it holds the count of each star among the
ratings first given that day whose ``rolled`` names the group. :func:`save_feedback` keeps it in the rating's
own transaction: a first rating adds its groups; a change takes out the groups and stars it had added (as its
``rolled`` says) and adds the new ones, so a read of whole days (:func:`rating_sums`) never reads a rating.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, ScalarSelect, and_, case, func, literal, select, update

from ledger_service.core.codes import ReturnState
from ledger_service.core.days import day_of
from ledger_service.store._db import increment_rows, insert_ignore, read_transaction, write_transaction
from ledger_service.store.handle import Store
from ledger_service.store.tables import (
    carrier_shipments,
    escrow_payouts,
    feedback_rollup,
    return_feedback,
    return_requests,
    return_transitions,
    returns,
)

__all__ = [
    "FeedbackFacts",
    "FeedbackRow",
    "GroupsOf",
    "RatingSum",
    "feedback_facts",
    "feedback_for",
    "rating_sums",
    "save_feedback",
]

Stars = tuple[int, int, int, int, int]


@dataclass(frozen=True, slots=True)
class FeedbackRow:
    """One return's feedback."""

    return_id: str
    item_id: str
    merchant: str
    consumer: str
    rating: int
    comment: str | None
    lang: str
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class FeedbackFacts:
    """A rating with its return's facts (chain times; None where the return never had that step)."""

    feedback: FeedbackRow
    reason_code: str | None
    carrier: str | None
    authorized_at: int | None
    received_at: int | None
    inspected_at: int | None
    refunded_at: int | None


@dataclass(frozen=True, slots=True)
class RatingSum:
    """The ratings of one group summed over days: ``merchant`` is set for the ``all`` group only (the other
    groups are summed over the merchants read)."""

    merchant: str
    group: str
    key: str
    stars: Stars


GroupsOf = Callable[[FeedbackFacts], Sequence[tuple[str, str]]]
"""The groups (group, key) a rating is summed in, from the rating and its return's facts."""


def _row(row: Row[Any]) -> FeedbackRow:
    return FeedbackRow(
        return_id=row.return_id,
        item_id=row.item_id,
        merchant=row.merchant,
        consumer=row.consumer,
        rating=int(row.rating),
        comment=row.comment,
        lang=row.lang,
        created_at=int(row.created_at),
        updated_at=int(row.updated_at),
    )


def feedback_for(store: Store, return_id: str) -> FeedbackRow | None:
    """The return's feedback, if the consumer gave one."""
    with read_transaction(store.engine) as conn:
        row = conn.execute(select(return_feedback).where(return_feedback.c.return_id == return_id.lower())).first()
    return None if row is None else _row(row)


def _add(conn: Connection, *, merchant: str, day: int, groups: Sequence[Sequence[str]], rating: int, sign: int) -> None:
    """Adds (``sign`` 1) or takes out (-1) one rating of ``rating`` stars in each of ``groups``."""
    if not groups:
        return
    rows = [
        {"merchant": merchant, "day": day, "grp": group, "key": key}
        | {f"s{n}": sign if n == rating else 0 for n in range(1, 6)}
        for group, key in groups
    ]
    increment_rows(conn, feedback_rollup, rows)


def save_feedback(
    store: Store, *, feedback: FeedbackRow, editable_since: int, groups_of: GroupsOf
) -> FeedbackRow | None:
    """Stores ``feedback`` as the return's first, or in place of one first given at or after ``editable_since``,
    and keeps ``feedback_rollup`` current in the same transaction (the groups from ``groups_of`` over the
    rating and its return's facts as the index knows them now).

    Returns the stored row, or None when the return's feedback was first given before ``editable_since`` (it is
    locked and kept as it was). A change keeps the first ``created_at``: the week counts from the first rating.
    """
    table = return_feedback
    return_id = feedback.return_id.lower()
    values = {
        "return_id": return_id,
        "item_id": feedback.item_id.lower(),
        "merchant": feedback.merchant.lower(),
        "consumer": feedback.consumer.lower(),
        "rating": feedback.rating,
        "comment": feedback.comment,
        "lang": feedback.lang,
        "created_at": feedback.created_at,
        "updated_at": feedback.updated_at,
    }
    with write_transaction(store.engine) as conn:
        groups = [list(g) for g in groups_of(_return_facts(conn, feedback))]
        values["rolled"] = json.dumps(groups)
        stored = (
            select(table.c.rating, table.c.rolled, table.c.created_at, table.c.merchant)
            .where(table.c.return_id == return_id)
            .with_for_update()
        )
        old = conn.execute(stored).first()
        if old is None and insert_ignore(conn, table, values):
            _add(conn, merchant=feedback.merchant.lower(), day=day_of(feedback.created_at), groups=groups,
                 rating=feedback.rating, sign=1)  # fmt: skip
        else:
            if old is None:  # another writer's first rating won the insert: change that one (row now locked)
                old = conn.execute(stored).one()
            changed = conn.execute(
                update(table)
                .where(table.c.return_id == return_id, table.c.created_at >= editable_since)
                .values(
                    rating=feedback.rating,
                    comment=feedback.comment,
                    lang=feedback.lang,
                    updated_at=feedback.updated_at,
                    rolled=values["rolled"],
                )
                .execution_options(preserve_rowcount=True)
            )
            if changed.rowcount != 1:
                return None
            day = day_of(int(old.created_at))
            _add(conn, merchant=old.merchant, day=day, groups=json.loads(old.rolled), rating=int(old.rating), sign=-1)
            _add(conn, merchant=old.merchant, day=day, groups=groups, rating=feedback.rating, sign=1)
        row = conn.execute(select(table).where(table.c.return_id == return_id)).one()
    return _row(row)


def rating_sums(store: Store, *, merchant: str | None, first_day: int | None, last_day: int | None) -> list[RatingSum]:
    """The rollup's stars of each group over the days ``first_day..last_day`` (both included; None: open),
    of ``merchant``'s ratings (None: everyone's); a group whose every rating was changed away is left out."""
    t = feedback_rollup.c
    who = case((t.grp == "all", t.merchant), else_=literal(""))
    stars = [func.sum(t[f"s{n}"]).label(f"s{n}") for n in range(1, 6)]
    statement = select(who.label("who"), t.grp, t.key, *stars).group_by(who, t.grp, t.key)
    conditions: list[ColumnElement[bool]] = []
    if merchant is not None:
        conditions.append(t.merchant == merchant.lower())
    if first_day is not None:
        conditions.append(t.day >= first_day)
    if last_day is not None:
        conditions.append(t.day <= last_day)
    if conditions:
        statement = statement.where(and_(*conditions))
    with read_transaction(store.engine) as conn:
        rows = conn.execute(statement).all()
    found = [
        RatingSum(row.who, row.grp, row.key, (int(row.s1), int(row.s2), int(row.s3), int(row.s4), int(row.s5)))
        for row in rows
    ]
    return [one for one in found if any(one.stars)]


_INSPECTED = sorted(int(s) for s in (ReturnState.ACCEPTED, ReturnState.REJECTED))


def _step_columns(return_id: ColumnElement[Any]) -> list[Any]:
    """A return's facts, as columns over a FROM that joins ``returns``, ``carrier_shipments`` and
    ``escrow_payouts`` on ``return_id`` (:func:`_joined`)."""
    t = return_transitions

    def first_transition(states: list[int]) -> ScalarSelect[Any]:
        return select(func.min(t.c.at)).where(t.c.return_id == return_id, t.c.state.in_(states)).scalar_subquery()

    reason = (
        select(func.max(return_requests.c.reason_code))
        .where(return_requests.c.return_id == return_id)
        .scalar_subquery()
    )
    return [
        reason.label("reason_code"),
        carrier_shipments.c.carrier,
        returns.c.authorized_at,
        first_transition([int(ReturnState.RECEIVED)]).label("received_at"),
        first_transition(_INSPECTED).label("inspected_at"),
        escrow_payouts.c.paid_at,
        escrow_payouts.c.consumer_amount,
    ]


def _joined(return_id: ColumnElement[Any], base: Any) -> Any:
    joined = base if base is returns else base.outerjoin(returns, returns.c.return_id == return_id)
    return joined.outerjoin(carrier_shipments, carrier_shipments.c.return_id == return_id).outerjoin(
        escrow_payouts, escrow_payouts.c.return_id == return_id
    )


def _facts_of(feedback: FeedbackRow, row: Row[Any]) -> FeedbackFacts:
    return FeedbackFacts(
        feedback=feedback,
        reason_code=row.reason_code,
        carrier=row.carrier,
        authorized_at=row.authorized_at,
        received_at=row.received_at,
        inspected_at=row.inspected_at,
        refunded_at=row.paid_at if row.paid_at is not None and row.consumer_amount else None,
    )


def _return_facts(conn: Connection, feedback: FeedbackRow) -> FeedbackFacts:
    """``feedback`` (not stored yet, or about to change) with its return's facts as the index knows them."""
    rid = returns.c.return_id
    row = conn.execute(
        select(*_step_columns(rid)).select_from(_joined(rid, returns)).where(rid == feedback.return_id.lower())
    ).first()
    if row is None:  # the return left the index (a reorg) between the caller's check and here: no facts
        return FeedbackFacts(feedback, None, None, None, None, None, None)
    return _facts_of(feedback, row)


def feedback_facts(
    store: Store, *, merchant: str | None, given_from: int | None = None, given_to: int | None = None
) -> list[FeedbackFacts]:
    """Every rating (of ``merchant``'s returns; None: everyone's) first given in ``[given_from, given_to)``
    (wall clock), with its return's reason code, carrier and step times."""
    fb = return_feedback
    statement = (
        select(fb, *_step_columns(fb.c.return_id))
        .select_from(_joined(fb.c.return_id, fb))
        .order_by(fb.c.created_at, fb.c.return_id)
    )
    conditions: list[ColumnElement[bool]] = []
    if merchant is not None:
        conditions.append(fb.c.merchant == merchant.lower())
    if given_from is not None:
        conditions.append(fb.c.created_at >= given_from)
    if given_to is not None:
        conditions.append(fb.c.created_at < given_to)
    if conditions:
        statement = statement.where(and_(*conditions))
    with read_transaction(store.engine) as conn:
        rows = conn.execute(statement).all()
    return [_facts_of(_row(row), row) for row in rows]
