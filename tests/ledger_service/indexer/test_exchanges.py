"""Exchanges and the unit check through the indexer (real anvil, SQLite and PostgreSQL): every ExchangeEscrow
event and ReturnUnitMismatch lands in its table with the chain's values, and a reorg that drops them leaves
exactly what a fresh re-index of the new chain holds."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from web3 import Web3

from ledger_service.core.codes import BizStep
from ledger_service.store.handle import Store
from ledger_service.store.tables import (
    exchange_collateral_payouts,
    exchange_payments,
    exchange_releases,
    exchange_terms,
    exchanges,
    list_prices,
    return_unit_mismatches,
)
from tests.ledger_service.indexer.conftest import Chain, comparable, make_indexer_for, reference_dump, run_sync
from tests.support.activity import EXCHANGE_TERMS, PRICE, UNKNOWN_EPC
from tests.support.chain import CARRIER, MERCHANT

ZERO_ADDRESS = "0x" + "00" * 20


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _rows(dump: dict[str, list[tuple[Any, ...]]], table: Table) -> list[dict[str, Any]]:
    names = [column.name for column in table.c]
    return [dict(zip(names, row, strict=True)) for row in dump[table.name]]


def _indexed(chain: Chain, store_url: str, *, finality: int = 12) -> tuple[Store, dict[str, list[tuple[Any, ...]]]]:
    store = Store.open(store_url)
    indexer = make_indexer_for(chain, store, finality=finality)
    try:
        run_sync(indexer)
    finally:
        indexer.rpc.close()
    return store, store.dump()


def test_every_exchange_event_and_unit_mismatch_is_indexed(chain: Chain, store_url: str) -> None:
    ids = chain.activity.exchanges()
    merchant = chain.deployed.accounts[MERCHANT].lower()
    store, dump = _indexed(chain, store_url)
    try:
        (terms,) = _rows(dump, exchange_terms)
        assert (terms["merchant"], terms["policy_version"]) == (merchant, 1)
        window, instant, max_value, digest = EXCHANGE_TERMS
        assert (terms["window_days"], terms["instant"], terms["instant_max_value"]) == (window, instant, max_value)
        assert terms["document_digest"] == _hex(digest)

        prices = {row["item_id"]: row["price"] for row in _rows(dump, list_prices)}
        assert prices == {_hex(ids["cheaper"]): PRICE - 1_000_000, _hex(ids["dearer"]): PRICE + 2_000_000}

        by_id = {row["exchange_id"]: row for row in _rows(dump, exchanges)}
        assert set(by_id) == {_hex(ids["instant"]), _hex(ids["standard"])}
        instant_x, standard_x = by_id[_hex(ids["instant"])], by_id[_hex(ids["standard"])]
        assert (instant_x["original_item_id"], instant_x["replacement_item_id"]) == (
            _hex(ids["instant_original"]),
            _hex(ids["cheaper"]),
        )
        # a cheaper replacement: a negative difference (refunded), the rest of the sale price as collateral
        assert instant_x["price_difference"] == -1_000_000
        assert (instant_x["collateral"], instant_x["instant"]) == (PRICE - 1_000_000, True)
        assert (standard_x["price_difference"], standard_x["collateral"]) == (2_000_000, 0)
        assert standard_x["instant"] is False
        assert standard_x["replacement_price"] == PRICE + 2_000_000

        (payment,) = _rows(dump, exchange_payments)
        assert (payment["exchange_id"], payment["amount"]) == (_hex(ids["standard"]), 2_000_000)
        releases = {row["exchange_id"]: row["instant"] for row in _rows(dump, exchange_releases)}
        assert releases == {_hex(ids["instant"]): True, _hex(ids["standard"]): False}
        (collateral,) = _rows(dump, exchange_collateral_payouts)
        assert (collateral["exchange_id"], collateral["amount"], collateral["original_shipped"]) == (
            _hex(ids["instant"]),
            PRICE - 1_000_000,
            True,
        )
        assert collateral["merchant"] == merchant

        (mismatch,) = _rows(dump, return_unit_mismatches)
        assert mismatch["return_id"] == _hex(ids["mismatch"])
        assert mismatch["sold_item_id"] == _hex(ids["swapped"])
        assert mismatch["scanned_item_id"] == _hex(Web3.keccak(text=UNKNOWN_EPC))
        assert mismatch["scanned_merchant"] == ZERO_ADDRESS  # not on the ledger
        assert mismatch["actor"] == chain.deployed.accounts[CARRIER].lower()
        assert mismatch["biz_step"] == BizStep.ARRIVING  # the carrier's scan at the dock
        # the exchange's return is an ordinary return row with the same id; the mismatched one went to the arbiter
        returns = {row[0]: row for row in dump["returns"]}
        assert {_hex(ids["instant"]), _hex(ids["standard"]), _hex(ids["mismatch"])} <= set(returns)
    finally:
        store.close()


def test_a_reorg_dropping_exchange_blocks_leaves_what_a_fresh_index_holds(chain: Chain, store_url: str) -> None:
    finality = 40
    chain.activity.exchanges()
    store, before = _indexed(chain, store_url, finality=finality)
    try:
        # the last six blocks: the standard exchange's payment, scan and release, and the whole mismatched return
        chain.node.rpc("anvil_reorg", [6, []])
        indexer = make_indexer_for(chain, store, finality=finality)
        try:
            run_sync(indexer)
        finally:
            indexer.rpc.close()
        after = store.dump()
        assert comparable(after) == comparable(reference_dump(chain, finality=finality))
        assert before[return_unit_mismatches.name] and not after[return_unit_mismatches.name]
        assert len(after[exchange_releases.name]) == 1 and not after[exchange_payments.name]
        assert after[exchange_collateral_payouts.name] == before[exchange_collateral_payouts.name]
        assert after[exchanges.name] == before[exchanges.name]  # both authorizations are older than the reorg
    finally:
        store.close()
