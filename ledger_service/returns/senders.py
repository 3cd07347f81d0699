"""How the sender appears on a return's label, as the consumer chose: the masked wallet address (the default),
initials of a name they type (``Z. W.``, ``张*``) or the name as typed, with an optional city / postcode line.

Invariants: the choice is personal data, so it is kept off-chain only (``label_senders``, one row per return
request; never sent to the chain, never in the public verify answer, never logged) and read only by the
request's consumer (its return token), the return's merchant and admins. It is made with the request or later,
until the return's first label is printed: from then on it is fixed (:class:`LabelPrintedError`), so every
label of a return shows the same sender. A name is stored only when it is printed (not with ``wallet``).
"""

from __future__ import annotations

import time
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from ledger_service.core.codes import ReturnState
from ledger_service.eligibility import Outcome
from ledger_service.errors import ConflictError, InvalidRequestError, NotFoundError
from ledger_service.returns.label_sheet import SHOW_AS, ShowAs, unprintable
from ledger_service.store import label_senders as senders_store
from ledger_service.store import returns as returns_store
from ledger_service.store.handle import Store
from ledger_service.store.label_senders import LabelSenderRow
from ledger_service.store.returns import ReturnRequestRow

NAME_MAX_LENGTH = 40
"""Characters of a name: 40 CJK characters or a long Latin name still fit two lines of a 4x6 label."""
LOCALITY_MAX_LENGTH = 40
NAME_PUNCTUATION = frozenset(".'-·’")  # noqa: RUF001 (the typographic apostrophe names are typed with)
LOCALITY_PUNCTUATION = frozenset(".,'-·’/#()，")  # noqa: RUF001


class LabelPrintedError(ConflictError):
    """A change of the sender after the return's first label was printed (HTTP 409)."""

    def __init__(self, return_id: str, printed_at: int) -> None:
        when = datetime.fromtimestamp(printed_at, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
        super().__init__(
            f"the label of return {return_id} was printed on {when} with the sender chosen then; "
            "it can no longer change, so that every label of the return shows the same sender"
        )


@dataclass(frozen=True, slots=True)
class LabelSender:
    """A checked choice."""

    show_as: ShowAs = "wallet"
    name: str | None = None
    locality: str | None = None


_SENTENCES = {
    "name": (
        "the name has {count} characters; keep it to {limit}",
        "the name may hold letters, spaces and . ' - only; remove {char}",
        "the label's font cannot print {char} in the name; write it in Chinese or Latin letters",
    ),
    "locality": (
        "the locality has {count} characters; keep it to {limit}",
        "the locality may hold letters, digits, spaces and . , ' - / # ( ) only; remove {char}",
        "the label's font cannot print {char} in the locality; write it in Chinese or Latin letters",
    ),
}
"""The refusals of :func:`_check_text` by field, whole sentences so that the pages' catalog translates each."""


def _check_text(value: str | None, *, field: Literal["name", "locality"], max_length: int) -> str:
    too_long, not_allowed, unprinted = _SENTENCES[field]
    text = " ".join((value or "").split())  # runs of spaces (and tabs, newlines) print as one space
    if len(text) > max_length:
        raise InvalidRequestError(too_long.format(count=len(text), limit=max_length))
    digits = field == "locality"
    punctuation = LOCALITY_PUNCTUATION if digits else NAME_PUNCTUATION
    for ch in text:
        kind = unicodedata.category(ch)
        if not (kind[0] in "LM" or ch == " " or ch in punctuation or (digits and kind == "Nd")):
            shown = repr(ch) if ch.isprintable() else f"U+{ord(ch):04X}"
            raise InvalidRequestError(not_allowed.format(char=shown))
    missing = unprintable(text)
    if missing:
        raise InvalidRequestError(unprinted.format(char=repr(missing[0])))
    return text


def label_sender(*, show_as: str, name: str | None = None, locality: str | None = None) -> LabelSender:
    """The choice checked: ``show_as`` one of wallet / initials / full, a name for initials and full (and none
    for wallet: it would not be printed, so it is not kept), both texts short enough for the label, in letters
    its font prints. :class:`InvalidRequestError` with a sentence otherwise."""
    if show_as not in SHOW_AS:
        raise InvalidRequestError(f"show_as must be wallet, initials or full, not {show_as[:20]!r}")
    typed = _check_text(name, field="name", max_length=NAME_MAX_LENGTH)
    if show_as == "wallet" and typed:
        raise InvalidRequestError("a name is printed only with show_as initials or full; leave it out with wallet")
    if show_as != "wallet" and not any(unicodedata.category(ch)[0] == "L" for ch in typed):
        raise InvalidRequestError(f"give the name to print: showing it as {show_as} needs one")
    place = _check_text(locality, field="locality", max_length=LOCALITY_MAX_LENGTH)
    return LabelSender(
        show_as=show_as,  # narrowed to one of SHOW_AS by the check above
        name=typed or None,
        locality=place or None,
    )


def sender_row(request_id: str, sender: LabelSender, *, now: int) -> LabelSenderRow:
    return LabelSenderRow(
        request_id=request_id,
        show_as=sender.show_as,
        name=sender.name,
        locality=sender.locality,
        updated_at=now,
        printed_at=None,
    )


def request_of(
    store: Store, rid: str, *, consumer: str | None = None, item_id: str | None = None, merchant: str | None = None
) -> ReturnRequestRow:
    """The request ``rid`` names (its id, or the id of the return it opened), if it is the given consumer's (with
    their token's item) or merchant's; :class:`NotFoundError` otherwise, and for a return opened elsewhere."""
    key = rid.lower()
    if key.startswith("rr_"):
        found = returns_store.return_request_by_id(store, key)
    else:
        rows, _ = returns_store.list_return_requests(store, return_id=key, limit=1)
        found = rows[0] if rows else None
    mine = found is not None and (
        (consumer is None or found.consumer == consumer.lower())
        and (item_id is None or found.item_id == item_id.lower())
        and (merchant is None or found.merchant == merchant.lower())
    )
    if found is None or not mine:
        whose = "this return token" if consumer is not None else "this merchant" if merchant is not None else "you"
        raise NotFoundError(f"no return or return request {key} for {whose}")
    return found


def choose_label_sender(
    *, store: Store, rid: str, consumer: str, item_id: str, sender: LabelSender, now: int | None = None
) -> tuple[ReturnRequestRow, LabelSenderRow]:
    """The consumer's choice for return (or request) ``rid``, stored until its first label is printed; with the
    request it belongs to.

    404: not the token's; 409: a rejected request (no label will be printed), a return past the point where a
    label is issued, or a label already printed (:class:`LabelPrintedError`).
    """
    request = request_of(store, rid, consumer=consumer, item_id=item_id)
    shown = request.return_id or request.id
    if request.outcome == Outcome.REJECT.value:
        raise ConflictError(f"return request {request.id} was rejected: no label will be printed for it")
    existing = senders_store.label_sender_for_request(store, request.id)
    if existing is not None and existing.printed_at is not None:
        raise LabelPrintedError(shown, existing.printed_at)
    if request.return_id is not None:
        ret = returns_store.return_by_id(store, request.return_id)
        if ret is not None and ret.state is not ReturnState.AUTHORIZED:
            raise ConflictError(
                f"return {request.return_id} is {ret.state.name.lower().replace('_', ' ')}: the sender on its label "
                "can be chosen only while it waits to be shipped"
            )
    stored = sender_row(request.id, sender, now=int(time.time()) if now is None else now)
    if not senders_store.save_label_sender(store, stored):
        printed = senders_store.label_sender_for_request(store, request.id)
        raise LabelPrintedError(shown, printed.printed_at if printed and printed.printed_at else stored.updated_at)
    return request, stored


def label_sender_of(store: Store, request: ReturnRequestRow) -> LabelSenderRow:
    """The request's choice; the default (masked wallet address, nothing printed yet) when it made none."""
    found = senders_store.label_sender_for_request(store, request.id)
    if found is not None:
        return found
    return LabelSenderRow(request.id, "wallet", None, None, updated_at=request.created_at, printed_at=None)
