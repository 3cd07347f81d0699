"""ledger-verify with ReturnsEscrow and ExchangeEscrow (real anvil): the exchanges and unit mismatches that name an
item are listed beside its verified history, from the chain alone."""

from __future__ import annotations

import json

import pytest
from web3 import Web3

from ledger_service.core.codes import BizStep
from ledger_service.independent_verifier._rpc import Rpc
from ledger_service.independent_verifier.check import Report, verify
from tests.ledger_service.independent_verifier.conftest import run_cli
from tests.support.activity import UNKNOWN_EPC, Activity
from tests.support.chain import CARRIER, Anvil, Deployed


@pytest.fixture(scope="module")
def story(anvil: Anvil, deployed: Deployed) -> dict[str, bytes]:
    return Activity(deployed).exchanges()


def _check(anvil: Anvil, deployed: Deployed, item: bytes, *, with_escrows: bool = True) -> Report:
    with Rpc(anvil.url) as rpc:
        return verify(
            rpc,
            ledger=deployed.ledger.address,
            item="0x" + item.hex(),
            escrow=deployed.escrow.address if with_escrows else None,
            exchange=deployed.exchange.address if with_escrows else None,
        )


def test_both_items_of_an_exchange_name_it(anvil: Anvil, deployed: Deployed, story: dict[str, bytes]) -> None:
    original = _check(anvil, deployed, story["instant_original"])
    replacement = _check(anvil, deployed, story["cheaper"])
    assert original.verified and replacement.verified, (original.problems, replacement.problems)
    assert original.exchanges == replacement.exchanges
    assert original.exchanges is not None
    (exchange,) = original.exchanges
    assert (exchange.exchange_id, exchange.original_item_id, exchange.replacement_item_id) == (
        story["instant"],
        story["instant_original"],
        story["cheaper"],
    )
    assert (exchange.price_difference, exchange.instant) == (-1_000_000, True)
    # the replacement's own history records its sale with the exchange id as business transaction
    assert any(e.link.biz_transaction == story["instant"] for e in replacement.events)
    assert original.unit_mismatches == []


def test_a_swapped_unit_is_listed_and_the_history_still_verifies(
    anvil: Anvil, deployed: Deployed, story: dict[str, bytes]
) -> None:
    report = _check(anvil, deployed, story["swapped"])
    assert report.verified, report.problems  # the sold unit's own chain is intact: it was simply not in the parcel
    assert report.unit_mismatches is not None
    (mismatch,) = report.unit_mismatches
    assert (mismatch.return_id, mismatch.sold_item_id) == (story["mismatch"], story["swapped"])
    assert mismatch.scanned_item_id == bytes(Web3.keccak(text=UNKNOWN_EPC))
    assert mismatch.actor == deployed.accounts[CARRIER]
    assert mismatch.biz_step == BizStep.ARRIVING
    assert report.exchanges == []
    plain = _check(anvil, deployed, story["swapped"], with_escrows=False)
    assert plain.unit_mismatches is None and plain.exchanges is None


def test_the_cli_prints_them_and_refuses_a_bad_address(
    anvil: Anvil, deployed: Deployed, story: dict[str, bytes]
) -> None:
    base = ["--rpc-url", anvil.url, "--ledger", deployed.ledger.address, "0x" + story["swapped"].hex()]
    escrows = ["--escrow", deployed.escrow.address, "--exchange", deployed.exchange.address]
    text = run_cli([*base, *escrows])
    assert text.returncode == 0, text.stderr
    assert "unit checks: a unit received is not the one sold" in text.stdout
    assert "return 0x" + story["mismatch"].hex() in text.stdout
    as_json = run_cli([*base, *escrows, "--json"])
    report = json.loads(as_json.stdout)
    assert [m["returnId"] for m in report["unitMismatches"]] == ["0x" + story["mismatch"].hex()]
    assert report["exchanges"] == []
    bad = run_cli([*base, "--exchange", "0x1234"])
    assert bad.returncode == 2
    assert "--exchange must be a contract address" in bad.stderr
