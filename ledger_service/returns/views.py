"""What the workflow shows: policies with their documents, a return's status and timeline, a merchant's list.

Visibility: a consumer sees only returns and requests of the item and account
its token names; a merchant only its own; roles that act on any return
(carrier, inspector, arbiter) and the auditor/admin see all. The caller says
which restriction applies (``consumer`` + ``item_id``, or ``merchant``);
something outside it is reported as not found, never as forbidden, so its
existence does not leak.

Ids: an on-chain return is named by its return id (``0x`` + 64 hex, the RMA);
a request that has no return (rejected, queued, failed) by its request id
(``rr_`` + 32 hex).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from ledger_service.core.codes import ReturnState
from ledger_service.errors import InvalidRequestError, NotFoundError
from ledger_service.returns.decision import policy_document
from ledger_service.returns.documents import PolicyDocument
from ledger_service.store import policies
from ledger_service.store import returns as returns_store
from ledger_service.store import sales as sales_store
from ledger_service.store.handle import Store
from ledger_service.store.policies import PolicyRow
from ledger_service.store.returns import DAY, ReturnDetail, ReturnRequestRow, ReturnRow
from ledger_service.store.sales import SalePage

RETURN_ID = re.compile(r"^0x[0-9a-fA-F]{64}$")


class ListState(StrEnum):
    """States a merchant can filter on: the on-chain states, and ``pending_review`` for the manual queue."""

    AUTHORIZED = "authorized"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DISPUTED = "disputed"
    RESOLVED = "resolved"
    RECLAIMED = "reclaimed"
    CONSUMER_CLAIMED = "consumer_claimed"
    PENDING_REVIEW = "pending_review"

    @property
    def on_chain(self) -> ReturnState | None:
        return None if self is ListState.PENDING_REVIEW else ReturnState[self.name]


def state_name(state: ReturnState) -> str:
    """The API's name of an on-chain state (e.g. ``in_transit``)."""
    return state.name.lower()


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    """A published version and its document (None if the API does not hold a document with that digest)."""

    row: PolicyRow
    document: PolicyDocument | None


@dataclass(frozen=True, slots=True)
class ReturnStatus:
    """A return (with its timeline) or a request without a return, and the request behind it if known."""

    detail: ReturnDetail | None
    request: ReturnRequestRow | None


@dataclass(frozen=True, slots=True)
class ReturnListing:
    """One page of a merchant's returns: on-chain returns, or the queued requests."""

    returns: tuple[ReturnRow, ...]
    reason_codes: dict[str, str]
    requests: tuple[ReturnRequestRow, ...]
    count: int


def policy_history(store: Store, merchant: str) -> tuple[PolicyVersion, ...]:
    """Every version of the merchant's policy, newest (current) first."""
    return tuple(PolicyVersion(row, policy_document(store, row)) for row in policies.policy_versions(store, merchant))


def _request_of_return(store: Store, ret: ReturnRow) -> ReturnRequestRow | None:
    rows, _ = returns_store.list_return_requests(store, item_id=ret.item_id, limit=1000)
    return next((row for row in rows if row.return_id == ret.return_id), None)


def return_status(
    store: Store,
    return_or_request_id: str,
    *,
    consumer: str | None = None,
    item_id: str | None = None,
    merchant: str | None = None,
) -> ReturnStatus:
    """A return by return id, or a request by request id (a request that led to a return shows the return)."""
    wanted = return_or_request_id
    if RETURN_ID.match(wanted):
        detail = returns_store.return_detail(store, wanted)
        if detail is None or not _visible(
            detail.ret.consumer,
            detail.ret.item_id,
            detail.ret.merchant,
            consumer=consumer,
            item_id=item_id,
            merchant=merchant,
        ):
            raise NotFoundError(f"no return {wanted.lower()} (if it was just authorized, retry shortly)")
        return ReturnStatus(detail, _request_of_return(store, detail.ret))
    request = returns_store.return_request_by_id(store, wanted)
    if request is None or not _visible(
        request.consumer, request.item_id, request.merchant, consumer=consumer, item_id=item_id, merchant=merchant
    ):
        raise NotFoundError(f"no return or return request {wanted}")
    detail = returns_store.return_detail(store, request.return_id) if request.return_id else None
    return ReturnStatus(detail, request)


def _visible(
    owner: str, owner_item: str, owner_merchant: str, *, consumer: str | None, item_id: str | None, merchant: str | None
) -> bool:
    if consumer is not None and (owner != consumer.lower() or (item_id is not None and owner_item != item_id.lower())):
        return False
    return merchant is None or owner_merchant == merchant.lower()


def list_merchant_returns(
    store: Store,
    *,
    merchant: str | None,
    states: tuple[ListState, ...] = (),
    reason_code: str | None = None,
    created_from: int | None = None,
    created_to: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> ReturnListing:
    """A merchant's returns (``merchant=None``: everyone's, for auditors), filtered and paginated.

    ``states=(pending_review,)`` lists the manual queue (requests, by creation time); other states list
    on-chain returns by authorization time (chain time). The two kinds cannot be mixed in one page.
    """
    if ListState.PENDING_REVIEW in states:
        if len(states) > 1:
            raise InvalidRequestError("state=pending_review lists the manual queue; it cannot be combined with others")
        rows, count = returns_store.list_return_requests(
            store,
            merchant=merchant,
            outcomes=["manual_review"],
            exchanges=False,  # queued exchanges are listed and decided under /v1/exchanges
            reason_code=reason_code,
            created_from=created_from,
            created_to=None if created_to is None else created_to + 1,
            limit=limit,
            offset=offset,
        )
        return ReturnListing((), {}, tuple(rows), count)
    on_chain = [s.on_chain for s in states if s.on_chain is not None]
    page = returns_store.list_returns(
        store,
        merchant=merchant,
        states=on_chain,
        authorized_from=created_from,
        authorized_to=created_to,
        reason_code=reason_code,
        limit=limit,
        offset=offset,
    )
    return ReturnListing(page.rows, dict(page.reason_codes), (), page.count)


# ---- the merchant's console ---------------------------------------------------------------------


def merchant_actions(ret: ReturnRow, *, now: int) -> tuple[str, ...]:
    """What the contract lets the merchant do with the return at ``now`` (chain time): ``reclaim`` (take the
    deposit back) once an authorized return was not shipped by its ship-by, or once a failed inspection was not
    disputed by its dispute-by (IReturnsEscrow's "after D" rule: strictly later than the deadline)."""
    if ret.state is ReturnState.AUTHORIZED and now > ret.ship_by:
        return ("reclaim",)
    if ret.state is ReturnState.REJECTED and ret.dispute_by is not None and now > ret.dispute_by:
        return ("reclaim",)
    return ()


def merchant_sales(store: Store, *, merchant: str, limit: int = 50, offset: int = 0) -> SalePage:
    """The merchant's sales, newest first, each with its policy version, returns so far and whether it closed."""
    return sales_store.list_sales(store, merchant=merchant, limit=limit, offset=offset)


@dataclass(frozen=True, slots=True)
class Dashboard:
    """A merchant's counts from the index: totals, returns by state, and sales and returns per day."""

    sales: int
    returns_by_state: dict[ReturnState, int]
    pending_review: int
    settled_returns: int
    days: tuple[int, ...]
    """The first second (UTC) of each day of the period, oldest first."""
    sales_per_day: tuple[int, ...]
    returns_per_day: tuple[int, ...]
    sales_by_policy: dict[int, int]

    @property
    def returns(self) -> int:
        return sum(self.returns_by_state.values())

    @property
    def return_rate(self) -> float | None:
        """Returns authorized per sale (None before the first sale)."""
        return None if self.sales == 0 else self.returns / self.sales


def merchant_dashboard(store: Store, *, merchant: str, now: int, days: int = 30) -> Dashboard:
    """The merchant's :class:`Dashboard` over the ``days`` UTC days up to ``now`` (chain time)."""
    today = now // DAY
    first = today - days + 1
    counts = sales_store.merchant_counts(store, merchant=merchant, since=first * DAY)
    queued = list_merchant_returns(store, merchant=merchant, states=(ListState.PENDING_REVIEW,), limit=1)
    period = range(first, today + 1)
    return Dashboard(
        sales=counts.sales,
        returns_by_state=dict(counts.returns_by_state),
        pending_review=queued.count,
        settled_returns=counts.settled_returns,
        days=tuple(day * DAY for day in period),
        sales_per_day=tuple(counts.sales_by_day.get(day, 0) for day in period),
        returns_per_day=tuple(counts.returns_by_day.get(day, 0) for day in period),
        sales_by_policy=dict(counts.sales_by_policy),
    )
