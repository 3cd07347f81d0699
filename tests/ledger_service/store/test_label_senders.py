"""The sender a return's label prints (``label_senders``), on SQLite and PostgreSQL: stored with its request,
changed until the first label fixes it, and a change racing that first label either printed or refused."""

from __future__ import annotations

from dataclasses import replace

from ledger_service.store import Store, returns
from ledger_service.store.label_senders import (
    LabelSenderRow,
    label_sender_for_request,
    label_sender_for_return,
    printed_label_sender,
    save_label_sender,
)
from tests.ledger_service.store.test_return_requests import request_row
from tests.support.threads import together

RETURN_ID = "0x" + "cd" * 32
CHOSEN = LabelSenderRow("rr_1", "full", "王志伟", "上海 200120", updated_at=1_000, printed_at=None)


def test_stored_with_the_request_then_fixed_by_the_first_label(store: Store) -> None:
    returns.insert_return_request(store, request_row("rr_1", return_id=RETURN_ID), label_sender=CHOSEN)
    assert label_sender_for_request(store, "rr_1") == CHOSEN
    assert label_sender_for_return(store, RETURN_ID) == CHOSEN
    initials = replace(CHOSEN, show_as="initials", locality=None, updated_at=1_100)
    assert save_label_sender(store, initials)
    printed = printed_label_sender(store, return_id=RETURN_ID, now=1_200)
    assert printed == replace(initials, printed_at=1_200)
    assert not save_label_sender(store, replace(CHOSEN, updated_at=1_300))  # fixed: refused
    assert printed_label_sender(store, return_id=RETURN_ID, now=1_400) == printed  # a second label: unchanged


def test_a_first_label_without_a_choice_fixes_the_wallet(store: Store) -> None:
    returns.insert_return_request(store, request_row("rr_2", return_id=RETURN_ID))
    assert label_sender_for_return(store, RETURN_ID) is None
    assert printed_label_sender(store, return_id=RETURN_ID, now=1_500) == LabelSenderRow(
        "rr_2", "wallet", None, None, updated_at=1_500, printed_at=1_500
    )
    assert not save_label_sender(store, replace(CHOSEN, request_id="rr_2"))
    assert printed_label_sender(store, return_id="0x" + "ee" * 32, now=1_600) is None  # not requested here


def test_a_change_racing_the_first_label_is_printed_or_refused(store: Store) -> None:
    returns.insert_return_request(store, request_row("rr_3", return_id=RETURN_ID))
    wanted = replace(CHOSEN, request_id="rr_3")

    def act(i: int) -> bool | LabelSenderRow | None:
        return save_label_sender(store, wanted) if i % 2 else printed_label_sender(store, return_id=RETURN_ID, now=9)

    results = together(8, act)
    prints = [r for r in results if isinstance(r, LabelSenderRow)]
    assert len(prints) == 4 and len({p.show_as for p in prints}) == 1  # every label shows the same sender
    final = label_sender_for_request(store, "rr_3")
    assert final is not None and final.printed_at == 9 and final.show_as == prints[0].show_as
    if final.show_as == "wallet":  # the change came after the first label: every try of it was refused
        assert results.count(True) == 0
