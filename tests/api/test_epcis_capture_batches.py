"""Capture's registrations go in ``registerItems`` batches sized to the block gas limit, and what they leave
on-chain is indexed and verified exactly like items registered one by one with ``registerItem``."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ledger_service.capture import ledger_tx
from ledger_service.epcis.document import item_id_of
from ledger_service.independent_verifier.cli import main as verify
from ledger_service.store.tables import item_events, items
from tests.api.conftest import ApiEnv
from tests.api.epcis_docs import commissioning, document, event, new_epc
from tests.api.test_epcis_capture import capture, merchant_of
from tests.support.chain import MANUFACTURER


def transactions_of(api_env: ApiEnv, epcs: list[str]) -> dict[str, int]:
    """tx hash -> gas used, of the item events of ``epcs``."""
    with api_env.store.engine.connect() as conn:
        hashes = conn.execute(
            select(item_events.c.tx_hash).where(item_events.c.item_id.in_([item_id_of(e) for e in epcs])).distinct()
        ).scalars()
        return {h: int(api_env.deployed.w3.eth.get_transaction_receipt(h)["gasUsed"]) for h in hashes}


def test_a_commissioning_of_many_items_takes_two_transactions_and_verifies(
    client: TestClient, api_env: ApiEnv, keys: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    epcs = [new_epc() for _ in range(300)]  # more than the contract's MAX_BATCH of 256
    job = capture(client, keys["manufacturer"], document(commissioning(epcs, merchant=merchant_of(api_env))))
    assert (job["state"], job["captured"]) == ("succeeded", 1), job
    later = capture(client, keys["merchant"], document(event(epcs[:2], minutes=10)))
    assert later["state"] == "succeeded", later
    api_env.wait_indexed()
    assert len(transactions_of(api_env, epcs[2:])) == 2
    with api_env.store.engine.connect() as conn:
        rows = conn.execute(select(items).where(items.c.item_id.in_([item_id_of(e) for e in epcs]))).all()
    assert len(rows) == 300
    assert {r.merchant for r in rows} == {merchant_of(api_env).lower()}
    assert {r.manufacturer for r in rows} == {api_env.accounts[MANUFACTURER].lower()}
    ledger = str(api_env.deployed.ledger.address)
    for epc in (epcs[0], epcs[299]):
        assert verify(["--rpc-url", api_env.anvil.url, "--ledger", ledger, epc]) == 0
        assert capsys.readouterr().out.startswith(f"VERIFIED: item {item_id_of(epc)}: ")


def test_registration_batches_stay_within_their_share_of_the_block(
    client: TestClient, api_env: ApiEnv, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    share = 0.05  # of anvil's 30M gas: ~25 registrations a transaction instead of 256
    monkeypatch.setattr(ledger_tx, "BLOCK_SHARE", share)
    epcs = [new_epc() for _ in range(60)]
    job = capture(client, keys["manufacturer"], document(commissioning(epcs, merchant=merchant_of(api_env))))
    assert (job["state"], job["captured"]) == ("succeeded", 1), job
    api_env.wait_indexed()
    gas = transactions_of(api_env, epcs)
    limit = int(api_env.deployed.w3.eth.get_block("latest")["gasLimit"])
    assert len(gas) >= 3
    assert max(gas.values()) <= limit * share
