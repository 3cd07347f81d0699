"""A CONSUMER_AGENT_ROLE holder (the API's relayer) acts for consumers; money still goes to the consumer."""

from __future__ import annotations

from typing import Any

import brownie
import pytest
from conftest import CANCELLED, CONSUMER_CLAIMED, DAY, DISPUTED, LOCATION, PRICE, latest_timestamp, set_next_timestamp

REPORT = b"\x44" * 32


@pytest.fixture(scope="module")
def agent(ledger: Any, admin: Any) -> Any:
    relayer = brownie.accounts[9]
    ledger.grantRole(ledger.CONSUMER_AGENT_ROLE(), relayer, {"from": admin})
    return relayer


def test_agent_cancels_for_the_consumer_and_the_merchant_gets_the_deposit_back(
    escrow: Any, token: Any, authorized: Any, agent: Any, merchant: Any
) -> None:
    _, rid = authorized(1)
    before = token.balanceOf(merchant)
    tx = escrow.cancelReturn(rid, {"from": agent})
    assert tx.events["ReturnStateChanged"]["state"] == CANCELLED
    assert tx.events["ReturnStateChanged"]["actor"] == agent
    assert token.balanceOf(merchant) - before == PRICE


def test_agent_claims_for_the_consumer_and_the_payout_goes_to_the_consumer(
    escrow: Any, token: Any, authorized: Any, agent: Any, carrier: Any, consumer: Any
) -> None:
    _, rid = authorized(2)
    escrow.markInTransit(rid, LOCATION, {"from": carrier})
    inspect_by = escrow.returnOf(rid)["inspectBy"]
    set_next_timestamp(inspect_by + 1)
    before_consumer, before_agent = token.balanceOf(consumer), token.balanceOf(agent)
    tx = escrow.claimUninspected(rid, {"from": agent})
    assert tx.events["ReturnStateChanged"]["state"] == CONSUMER_CLAIMED
    assert token.balanceOf(consumer) - before_consumer == PRICE
    assert token.balanceOf(agent) == before_agent


def test_agent_disputes_for_the_consumer(
    escrow: Any, authorized: Any, agent: Any, carrier: Any, inspector: Any
) -> None:
    _, rid = authorized(3)
    escrow.markInTransit(rid, LOCATION, {"from": carrier})
    escrow.markReceived(rid, LOCATION, {"from": carrier})
    escrow.recordInspection(rid, False, REPORT, LOCATION, {"from": inspector})
    tx = escrow.dispute(rid, b"\x55" * 32, {"from": agent})
    assert tx.events["ReturnStateChanged"]["state"] == DISPUTED
    assert latest_timestamp() <= escrow.returnOf(rid)["disputeBy"] < latest_timestamp() + 8 * DAY


def test_revoked_agent_is_refused(escrow: Any, ledger: Any, authorized: Any, agent: Any, admin: Any) -> None:
    _, rid = authorized(4)
    ledger.revokeRole(ledger.CONSUMER_AGENT_ROLE(), agent, {"from": admin})
    with brownie.reverts(revert_pattern=r"EscrowNotConsumer: .*"):
        escrow.cancelReturn(rid, {"from": agent})
