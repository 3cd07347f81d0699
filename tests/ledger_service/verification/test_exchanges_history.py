"""An item's audited history and its JSON export name the exchanges and unit mismatches of the item, and the public
answer for a return says when the unit received was not the one sold (the golden index of
tests/ledger_service/verification/conftest.py, whose lifecycle holds an instant and a standard exchange and a return
whose parcel held an EPC not on the ledger)."""

from __future__ import annotations

from typing import Any

from api.schemas.audit import ItemHistoryPublic
from ledger_service.returns.labels import label_code
from ledger_service.store.handle import Store
from ledger_service.verification import audit_item
from ledger_service.verification.consumer import UNIT_MISMATCH_SENTENCE, check_code
from ledger_service.verification.exports import history_json
from tests.ledger_service.verification.conftest import Audited
from tests.support.chain import CONSUMER
from web.i18n import Translator


def _body(audited: Audited, index: Store, item_id: str) -> dict[str, Any]:
    result = audit_item(store=index, chain=audited.chain, documents=None, item_id=item_id)
    assert result is not None
    assert result.verdict.intact, result.verdict.findings
    return history_json(result.history, result.verdict, checked_at=1_800_000_000)


def _logs(audited: Audited, contract: Any, event: str) -> list[dict[str, Any]]:
    return [dict(log["args"]) for log in getattr(contract.events, event)().get_logs(from_block=0)]


def test_both_items_of_each_exchange_show_it_and_how_far_it_went(audited: Audited, index: Store) -> None:
    authorized = _logs(audited, audited.deployed.exchange, "ExchangeAuthorized")
    assert len(authorized) == 2
    for args in authorized:
        exchange_id = "0x" + bytes(args["exchangeId"]).hex()
        original = _body(audited, index, "0x" + bytes(args["originalItemId"]).hex())
        replacement = _body(audited, index, "0x" + bytes(args["replacementItemId"]).hex())
        (mine,) = original["exchanges"]
        (theirs,) = replacement["exchanges"]
        assert (mine["role"], theirs["role"]) == ("original", "replacement")
        assert mine["exchange_id"] == theirs["exchange_id"] == exchange_id
        assert mine["price_difference"] == str(args["priceDifference"])
        assert mine["released"] is True and mine["instant"] is args["instant"]
        assert mine["collateral_settled"] is args["instant"]  # only an instant exchange holds collateral
        assert mine["extra_paid"] is (args["priceDifference"] > 0)
        # the replacement's sale order is the exchange: typed like any sale's
        sold = [e for e in replacement["events"] if e["biz_transaction"] == exchange_id]
        assert sold and {e["biz_transaction_type"] for e in sold} == {"po"}
        ItemHistoryPublic.model_validate(original)  # the API's body accepts it


def test_the_sold_unit_of_a_swapped_return_shows_the_mismatch(audited: Audited, index: Store) -> None:
    (args,) = _logs(audited, audited.deployed.escrow, "ReturnUnitMismatch")
    body = _body(audited, index, "0x" + bytes(args["soldItemId"]).hex())
    (mismatch,) = body["unit_mismatches"]
    assert mismatch["role"] == "sold"
    assert mismatch["return_id"] == "0x" + bytes(args["returnId"]).hex()
    assert mismatch["scanned_item_id"] == "0x" + bytes(args["scannedItemId"]).hex()
    assert mismatch["scanned_on_ledger"] is False and mismatch["biz_step"] == "arriving"
    assert "consumer" not in str(mismatch)
    assert ItemHistoryPublic.model_validate(body).unit_mismatches[0].role == "sold"


def test_the_public_answer_for_a_swapped_return_says_the_unit_is_not_the_one_sold(
    audited: Audited, index: Store
) -> None:
    (mismatch,) = _logs(audited, audited.deployed.escrow, "ReturnUnitMismatch")
    swapped = check_code(
        store=index, chain=audited.chain, code=label_code(bytes(mismatch["returnId"])), decimals=lambda _token: 6
    )
    assert swapped.ret is not None and swapped.ret.unit_mismatch is True
    assert UNIT_MISMATCH_SENTENCE in swapped.verdict
    consumer = audited.deployed.accounts[CONSUMER].lower()
    assert consumer not in " ".join(swapped.verdict).lower()  # no personal data in the public answer
    assert Translator("zh").sentence(UNIT_MISMATCH_SENTENCE).lang == "zh"
    # an exchange's return whose parcel held the unit sold says nothing of the kind
    (standard,) = [a for a in _logs(audited, audited.deployed.exchange, "ExchangeAuthorized") if not a["instant"]]
    fine = check_code(
        store=index, chain=audited.chain, code=label_code(bytes(standard["exchangeId"])), decimals=lambda _token: 6
    )
    assert fine.ret is not None and fine.ret.unit_mismatch is False
    assert UNIT_MISMATCH_SENTENCE not in fine.verdict
