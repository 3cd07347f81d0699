"""Steps of exchanges through HTTP, on a :class:`~tests.api.flows.Flow`: exchange terms, units in stock with
their list prices, the consumer's request, and the two stories the issue tells (an instant exchange for a
cheaper unit, a standard one for a dearer unit), shared by the SQLite and PostgreSQL modules."""

from __future__ import annotations

from typing import Any

from eth_typing import HexStr
from httpx import Response
from web3 import Web3

from tests.api.conftest import bearer
from tests.api.flows import LOCATION, PRICE, Flow, Sold, ok
from tests.support.chain import MERCHANT

STOCKING, SELLABLE_ACCESSIBLE = 11, 4
DESTROYING, DESTROYED = 12, 12
ZERO32 = b"\0" * 32
EXCHANGE_WINDOW_DAYS = 45


def publish_terms(flow: Flow, **changes: Any) -> dict[str, Any]:
    body = {"window_days": EXCHANGE_WINDOW_DAYS, "instant": True, **changes}
    response = flow.client.post("/v1/exchanges/terms?wait=true", headers=bearer(flow.keys["merchant"]), json=body)
    return ok(response, 201)


def record_step(flow: Flow, item_id: str, biz_step: int, disposition: int) -> None:
    ledger = flow.env.deployed.ledger.functions
    step = (bytes.fromhex(item_id[2:]), biz_step, disposition, LOCATION, ZERO32, ZERO32)
    tx = ledger.recordEvent(step).transact({"from": flow.env.accounts[MERCHANT]})
    flow.w3.eth.wait_for_transaction_receipt(tx)


def set_price(flow: Flow, item_id: str, price: int, category: str | None = None) -> None:
    body: dict[str, Any] = {"item_ids": [item_id], "price": str(price)}
    if category is not None:
        body["category"] = category
    ok(flow.client.post("/v1/exchanges/prices?wait=true", headers=bearer(flow.keys["merchant"]), json=body))


def registered(flow: Flow, merchant: int = MERCHANT) -> str:
    """A new unit of ``merchant``'s, as registered (not stocked), once the index has it."""
    item_id = flow.register(merchant=merchant)
    flow.env.wait_indexed()
    return item_id


def stocked(flow: Flow, price: int | None, category: str | None = None) -> str:
    """A unit of the merchant's, stocked (sellable) and, unless ``price`` is None, priced (in ``category``)."""
    item_id = flow.register()
    record_step(flow, item_id, STOCKING, SELLABLE_ACCESSIBLE)
    if price is not None:
        set_price(flow, item_id, price, category)
    flow.env.wait_indexed()
    return item_id


def ask(flow: Flow, sold: Sold, replacement: str, **body: Any) -> Response:
    payload = {"replacement_item_id": replacement, "reason_code": "wrong_size", **body}
    response: Response = flow.client.post("/v1/exchanges?wait=true", headers=sold.auth, json=payload)
    return response


def read(flow: Flow, exchange_id: str, headers: dict[str, str]) -> dict[str, Any]:
    flow.env.wait_indexed()
    return ok(flow.client.get(f"/v1/exchanges/{exchange_id}", headers=headers))


def sale_of(flow: Flow, item_id: str) -> tuple[str, int]:
    """The item's current sale on-chain: (consumer, policy version)."""
    sale = flow.env.deployed.escrow.functions.saleOf(Web3.to_bytes(hexstr=HexStr(item_id))).call()
    return str(sale[0]).lower(), int(sale[2])


def instant_exchange_for_a_cheaper_unit(flow: Flow) -> tuple[Sold, str, str]:
    """The instant story up to the original's first carrier scan: (sold, replacement, exchange id)."""
    sold = flow.sold_and_delivered()
    cheaper = stocked(flow, PRICE - 1_000_000)
    exchange_balance = flow.balance(flow.env.deployed.exchange.address)
    decision = ok(ask(flow, sold, cheaper, instant=True, price_difference="-1000000"), 201)
    assert decision["outcome"] == "approve", decision
    assert decision["released_tx_hash"] is not None  # released at once, before the original ships
    exchange_id: str = decision["exchange_id"]
    assert flow.balance(flow.env.deployed.exchange.address) == exchange_balance + PRICE - 1_000_000
    seen = read(flow, exchange_id, sold.auth)
    assert (seen["state"], seen["released"], seen["collateral_settled"]) == ("released", True, False)
    assert (seen["price_difference"], seen["collateral"]) == ("-1000000", str(PRICE - 1_000_000))
    assert sale_of(flow, cheaper)[0] == sold.consumer
    flow.scan(exchange_id, "in_transit")  # the original's first scan: the collateral goes back
    seen = read(flow, exchange_id, sold.auth)
    assert seen["collateral_settled"] is True
    assert flow.balance(flow.env.deployed.exchange.address) == exchange_balance
    return sold, cheaper, exchange_id


def standard_exchange_for_a_dearer_unit(flow: Flow) -> tuple[Sold, str, str]:
    """The standard story: the consumer pays the difference, the replacement ships at the first scan."""
    sold = flow.sold_and_delivered()
    dearer = stocked(flow, PRICE + 2_000_000)
    decision = ok(ask(flow, sold, dearer, price_difference="2000000"), 201)
    assert (decision["outcome"], decision["instant"], decision["released_tx_hash"]) == ("approve", False, None)
    exchange_id: str = decision["exchange_id"]
    merchant = bearer(flow.keys["merchant"])
    nothing = ok(flow.client.post(f"/v1/exchanges/{exchange_id}/release", headers=merchant))
    assert (nothing["released_tx_hash"], nothing["collateral_tx_hash"]) == (None, None)
    paid = ok(
        flow.client.post(
            f"/v1/exchanges/{exchange_id}/payment?wait=true", headers=merchant, json={"payment_ref": "PAY-42"}
        )
    )
    assert paid["released_tx_hash"] is None  # standard: not before the original ships
    assert paid["exchange"]["extra_paid"] is True
    flow.scan(exchange_id, "in_transit")
    seen = read(flow, exchange_id, merchant)
    assert (seen["released"], seen["extra_paid"], seen["collateral"]) == (True, True, "0")
    assert sale_of(flow, dearer)[0] == sold.consumer
    return sold, dearer, exchange_id


EXCHANGE_TYPES = (
    "exchange.requested",
    "exchange.approved",
    "exchange.rejected",
    "exchange.replacement_released",
    "exchange.collateral_released",
    "return.unit_mismatch",
)
OTHER_UNIT = "urn:epc:id:sgtin:0614141.107346.not-the-unit-sold"


def exchange_notifications(flow: Flow) -> None:
    """What an exchange tells people, through the outbox (written with the index rows that caused it): an instant
    exchange approved, its replacement released and its collateral released, then another unit found in the
    parcel; a queued exchange request rejected by the merchant. The merchant's webhook (a real receiver,
    signatures verified) gets each type once; the consumer gets e-mails in Chinese (a real SMTP server) for all
    but the request's receipt and the merchant's collateral."""
    # imported here: the receivers start threads, which the other users of this module do not need
    from email.header import decode_header, make_header

    from standardwebhooks.webhooks import Webhook

    from ledger_service.notify.worker import Worker
    from ledger_service.store.notifications import outbox
    from tests.ledger_service.notify.receivers import receiver, run_worker, smtp_sink

    merchant = bearer(flow.keys["merchant"])
    flow.publish(fast_refund=False, manual_review_reasons=["damaged"])  # a new version: its own exchange terms
    publish_terms(flow)
    with receiver() as hook, smtp_sink() as (port, mails):
        endpoint = ok(
            flow.client.post("/v1/webhooks", headers=merchant, json={"url": hook.url, "event_types": EXCHANGE_TYPES}),
            201,
        )
        sold = flow.sold_and_delivered(consumer_email="swap@example.com", consumer_lang="zh")
        cheaper = stocked(flow, PRICE - 1_000_000)
        decision = ok(ask(flow, sold, cheaper, instant=True, price_difference="-1000000"), 201)
        exchange_id: str = decision["exchange_id"]
        flow.scan(exchange_id, "in_transit")
        body = {"kind": "delivered_to_merchant", "epc": OTHER_UNIT}
        ok(
            flow.client.post(
                f"/v1/returns/{exchange_id}/scans?wait=true", headers=bearer(flow.keys["carrier"]), json=body
            )
        )

        queued_sale = flow.sold_and_delivered(consumer_email="queued@example.com", consumer_lang="en")
        queued = ok(ask(flow, queued_sale, stocked(flow, PRICE), reason_code="damaged"), 201)
        assert queued["outcome"] == "manual_review", queued
        ok(flow.client.post(f"/v1/exchanges/{queued['request_id']}/reject", headers=merchant, json={"note": "No"}))
        flow.env.wait_indexed()

        rows = [n for n in outbox(flow.env.store) if n.return_id == exchange_id or n.item_id == queued_sale.item_id]
        types = [n.type for n in rows]
        for kind in ("exchange.approved", "exchange.replacement_released", "exchange.collateral_released"):
            assert types.count(kind) == 1, types
        assert types.count("return.unit_mismatch") == 1 and "return.disputed" in types
        assert types.count("exchange.requested") == 1 and types.count("exchange.rejected") == 1
        assert "return.requested" not in types and "return.rejected" not in types
        [approved] = [n for n in rows if n.type == "exchange.approved"]
        assert approved.data["price_difference"] == "-1000000" and approved.data["instant"] is True
        [mismatch] = [n for n in rows if n.type == "return.unit_mismatch"]
        assert mismatch.data["scanned_on_ledger"] is False and mismatch.data["sold_item_id"] == sold.item_id

        settings = flow.env.settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port})
        run_worker(Worker(flow.env.store, settings))
        secret = endpoint["secret"]
        heard = [Webhook(secret).verify(r.body, r.headers) for r in hook.requests]
    ours = (sold.item_id, queued_sale.item_id)
    mine = [p["type"] for p in heard if p["data"]["item_id"] in ours]
    assert sorted(mine) == sorted([*EXCHANGE_TYPES, "exchange.requested"]), mine  # each request's receipt
    subjects = {str(make_header(decode_header(m["Subject"]))): m for m in mails if m["To"] == "swap@example.com"}
    assert {"您的换货已获批准", "您的换货商品已发出", "商家收到的不是您购买的那一件"} <= set(subjects), subjects
    assert not any("保证金" in subject for subject in subjects)  # the collateral is the merchant's business
    text = str(subjects["商家收到的不是您购买的那一件"].get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert "由独立仲裁人裁决" in text and f"/returns/{exchange_id}" in text
    text = str(subjects["您的换货已获批准"].get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert f"/exchanges/{exchange_id}?lang=zh" in text
    declined = [m for m in mails if m["To"] == "queued@example.com"]
    assert [str(make_header(decode_header(m["Subject"]))) for m in declined] == ["Your exchange request was declined"]
