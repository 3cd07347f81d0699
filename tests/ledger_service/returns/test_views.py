"""What the merchant's console offers: the reclaim the contract allows, at its deadlines' exact second."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ledger_service.core.codes import ReturnState
from ledger_service.returns.views import merchant_actions
from ledger_service.store.returns import ReturnRow

SHIP_BY, DISPUTE_BY = 1_000_000, 2_000_000
RETURN = ReturnRow(
    return_id="0x" + "11" * 32,
    item_id="0x" + "22" * 32,
    sale_seq=1,
    consumer="0x" + "33" * 20,
    merchant="0x" + "44" * 20,
    token="0x" + "55" * 20,
    amount=50_000_000,
    fee_bps=0,
    fast_refund=False,
    policy_version=1,
    state=ReturnState.AUTHORIZED,
    ship_by=SHIP_BY,
    inspect_by=None,
    dispute_by=None,
    authorized_at=SHIP_BY - 100,
    updated_at=SHIP_BY - 100,
    settled=False,
    block_number=1,
    tx_hash="0x" + "66" * 32,
)


@pytest.mark.parametrize(
    ("ret", "now", "expected"),
    [
        (RETURN, SHIP_BY, ()),  # "after shipBy" means strictly later: at the deadline the consumer may still ship
        (RETURN, SHIP_BY + 1, ("reclaim",)),
        (replace(RETURN, state=ReturnState.IN_TRANSIT), SHIP_BY + 1, ()),
        (replace(RETURN, state=ReturnState.REJECTED, dispute_by=DISPUTE_BY), DISPUTE_BY, ()),
        (replace(RETURN, state=ReturnState.REJECTED, dispute_by=DISPUTE_BY), DISPUTE_BY + 1, ("reclaim",)),
        (replace(RETURN, state=ReturnState.DISPUTED, dispute_by=DISPUTE_BY), DISPUTE_BY + 1, ()),
        (replace(RETURN, state=ReturnState.EXPIRED, settled=True), SHIP_BY + 1, ()),
    ],
)
def test_reclaim_is_offered_only_after_its_deadline(ret: ReturnRow, now: int, expected: tuple[str, ...]) -> None:
    assert merchant_actions(ret, now=now) == expected
