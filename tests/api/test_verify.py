"""The public authenticity check GET /v1/verify/{code}, on a real anvil with the indexer following.

A consumer scans an item (EPC URI, Digital Link, element string, item id) or a return label (RMA-...)
without logging in: genuine items and returns are confirmed with their state in words, unregistered
items and forged labels are answered "not genuine" (200, not an error), a history altered in the index
is caught against the chain, a tampered index cannot make a forged return look genuine, no consumer
address leaves unmasked, malformed codes are 422 problems, and too many requests are 429.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, insert, select, update
from web3 import Web3

from api.main import create_app
from ledger_service.epcis.gs1 import check_digit
from ledger_service.returns.labels import label_code
from ledger_service.settings import Settings
from ledger_service.store.tables import item_events, item_key, item_registrations, items, returns, role_changes
from tests.api.conftest import ApiEnv, bearer
from tests.api.flows import LOCATION, PRICE, Flow, ok, problem
from tests.support.chain import ADMIN, MANUFACTURER, MERCHANT

FEE = PRICE // 10
ZERO32 = "0x" + "00" * 32


@pytest.fixture(scope="module")
def flow(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> Flow:
    flow = Flow(client, api_env, keys)
    flow.publish(fast_refund=True)
    return flow


@pytest.fixture(scope="module")
def public(api_env: ApiEnv) -> Iterator[TestClient]:
    """The app with a limit high enough for this module's checks (the limit itself is tested on its own)."""
    settings = api_env.settings.model_copy(
        update={"verify_rate_limit": "10000/minute", "verify_global_rate_limit": "10000/minute"}
    )
    with TestClient(create_app(settings)) as client:
        yield client


def verify(public: TestClient, code: str, *, encode: bool = False) -> dict[str, Any]:
    path = quote(code, safe="") if encode else code
    response = public.get(f"/v1/verify/{path}")
    return ok(response)


def register(env: ApiEnv, uri: str, gtin: int) -> str:
    """Registers ``uri`` on-chain as the manufacturer, waits for the index; the item id."""
    ledger = env.deployed.ledger.functions
    tx = ledger.registerItem(uri, gtin, env.accounts[MERCHANT], b"\x22" * 32, LOCATION).transact(
        {"from": env.accounts[MANUFACTURER]}
    )
    receipt = env.deployed.w3.eth.wait_for_transaction_receipt(tx)
    env.wait_indexed(receipt["blockNumber"])
    return "0x" + Web3.keccak(text=uri).hex().removeprefix("0x")


def serial() -> str:
    return f"S{secrets.token_hex(4)}"


def sgtin(serial_number: str) -> str:
    return f"urn:epc:id:sgtin:0614141.107346.{serial_number}"


GTIN = "10614141073464"  # of urn:epc:id:sgtin:0614141.107346.*
assert check_digit(GTIN[:-1]) == int(GTIN[-1])


def _no_full_address(body: dict[str, Any], address: str) -> None:
    assert address.lower() not in str(body).lower()


# ---- genuine items -------------------------------------------------------------------------------


def test_genuine_item_by_every_form_of_its_code(public: TestClient, api_env: ApiEnv) -> None:
    number = serial()
    uri = sgtin(number)
    item_id = register(api_env, uri, int(GTIN))
    codes = [
        (uri, False),
        (uri, True),  # URL-encoded
        (quote(uri, safe=""), True),  # URL-encoded twice
        (f"https://id.gs1.org/01/{GTIN}/21/{number}", False),
        (f"https://id.gs1.org/01/{GTIN}/21/{number}", True),
        (f"https://brand.example.com/shop/01/{GTIN}/21/{number}", False),  # another host, a path before the key
        (f"(01){GTIN}(21){number}", True),
        (item_id, False),
        (item_id.upper().replace("0X", "0x"), False),
    ]
    for code, encode in codes:
        body = verify(public, code, encode=encode)
        assert body["kind"] == "item" and body["genuine"] is True, (code, body)
        item = body["item"]
        assert item["item_id"] == item_id and item["uri"] == uri and item["gtin"] == GTIN
        assert item["manufacturer"] == api_env.accounts[MANUFACTURER].lower()
        assert item["manufacturer_role_at_registration"] is True and item["holds_manufacturer_role_now"] is True
        assert item["on_chain"] is True and item["history_intact"] is True and item["event_count"] == 1
        assert item["findings"] == []
        assert item["state_summary"].startswith("registered ") and item["state_summary"].endswith("not sold yet")
        assert body["verdict"][0].startswith("Genuine: registered on the ledger on ")
        assert "history of 1 events is intact" in body["verdict"][1]
        assert body["return"] is None and body["indexed_block"] >= 1


def test_item_registered_under_its_digital_link_is_found_by_its_other_names(
    public: TestClient, api_env: ApiEnv
) -> None:
    number = serial()
    link = f"https://brand.example/01/09506000134352/21/{number}"
    item_id = register(api_env, link, 9506000134352)
    for code in (
        link,
        f"https://id.gs1.org/01/09506000134352/21/{number}",
        f"https://id.gs1.org/01/9506000134352/21/{number}?17=280101",  # GTIN-13, a query after the key
        f"urn:epc:id:sgtin:9506000.013435.{number}",
    ):
        body = verify(public, code, encode=True)
        assert body["genuine"] is True and body["item"]["item_id"] == item_id, (code, body)


def test_sold_item_shows_its_state_in_words_and_its_return_label_is_genuine(
    public: TestClient, client: TestClient, flow: Flow, api_env: ApiEnv, keys: dict[str, str]
) -> None:
    sold = flow.sold_and_delivered()
    rma = flow.approved(sold)
    flow.scan(rma, "in_transit")  # fast refund: paid now

    item = verify(public, sold.item_id)
    assert item["genuine"] is True and item["item"]["history_intact"] is True
    summary = item["item"]["state_summary"]
    assert summary.startswith("sold ") and ", delivered " in summary
    assert summary.endswith("return in transit, refund paid")
    assert f"Now: {summary}." in item["verdict"]

    status = flow.status(rma, sold.auth)
    code = status["label_code"]
    assert code == label_code(rma) and code.startswith("RMA-") and len(code) == 56
    listed = ok(client.get("/v1/returns", headers=bearer(keys["merchant"]), params={"item_id": sold.item_id}))
    assert {r["label_code"] for r in listed["data"]} == {code}

    body = verify(public, code)
    assert body["kind"] == "return" and body["genuine"] is True and body["code"] == code
    ret = body["return"]
    assert ret["rma"] == code and ret["return_id"] == rma and ret["exists_on_chain"] is True
    assert ret["item_id"] == sold.item_id and ret["state"] == "in_transit"
    assert ret["amount"] == str(PRICE) and ret["decimals"] == 6 and ret["amount_decimal"] == "50.000000"
    assert ret["token"] == api_env.deployed.token.address.lower() and ret["restocking_fee_bps"] == 1000
    assert ret["settled"] is True and ret["refund_paid"] is True and ret["refund_amount"] == str(PRICE - FEE)
    assert ret["ship_by"] is not None and ret["inspect_by"] is not None and ret["dispute_by"] is None
    assert ret["consumer"] == f"{sold.consumer[:6]}…{sold.consumer[-4:]}"
    assert ret["findings"] == []
    assert body["verdict"][0].startswith(f"Genuine return {code}: it exists on-chain, 50.000000 held in escrow")
    assert "State: in transit back to the merchant." in body["verdict"]
    assert "The refund was paid." in body["verdict"]
    assert body["item"]["item_id"] == sold.item_id and body["item"]["history_intact"] is True
    _no_full_address(body, sold.consumer)
    _no_full_address(item, sold.consumer)

    # the bare return id and a lower-case label read the same
    assert verify(public, rma)["return"]["rma"] == code
    assert verify(public, code.lower())["return"]["return_id"] == rma


def test_decision_carries_the_label_code(flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    decision = ok(flow.request(sold), 201)
    assert decision["label_code"] == label_code(decision["return_id"])
    assert decision["return"]["label_code"] == decision["label_code"]


# ---- counterfeits and forgeries --------------------------------------------------------------------


def test_unregistered_item_may_be_a_counterfeit(public: TestClient) -> None:
    for code in (sgtin(serial()), f"https://id.gs1.org/01/{GTIN}/21/{serial()}", "0x" + secrets.token_hex(32)):
        body = verify(public, code, encode=True)
        assert body["kind"] == "item" and body["genuine"] is False, body
        assert body["verdict"] == ["Not registered on the ledger: this may be a counterfeit."]
        assert body["item"] is None and body["return"] is None


def test_counterfeit_inserted_into_the_index_is_still_not_genuine(public: TestClient, api_env: ApiEnv) -> None:
    genuine_id = register(api_env, sgtin(serial()), int(GTIN))
    fake_uri = sgtin(serial())
    fake_id = "0x" + Web3.keccak(text=fake_uri).hex().removeprefix("0x")
    tables = (items, item_registrations, item_events)
    with api_env.store.engine.begin() as conn:
        for table in tables:  # a copy of a genuine item's rows under the counterfeit's URI
            for row in conn.execute(select(table).where(table.c.item_id == genuine_id)).mappings().all():
                copy = {**row, "item_id": fake_id}
                if "uri" in copy:
                    copy["uri"] = fake_uri
                if table is item_events:  # its own key, and a position of its own (the table's key)
                    copy |= {"item_key": item_key(fake_id), "log_index": copy["log_index"] + 10_000}
                conn.execute(insert(table).values(**copy))
    try:
        body = verify(public, fake_uri)
    finally:
        with api_env.store.engine.begin() as conn:
            for table in tables:
                conn.execute(delete(table).where(table.c.item_id == fake_id))
    assert body["genuine"] is False and body["item"]["item_id"] == fake_id
    assert body["item"]["on_chain"] is False and body["item"]["history_intact"] is False
    assert body["verdict"][0] == "Not registered on the ledger: this may be a counterfeit."
    assert "item-unknown" in {f["kind"] for f in body["item"]["findings"]}


def test_forged_return_code_is_no_such_return(public: TestClient) -> None:
    code = label_code(secrets.token_bytes(32))
    body = verify(public, code)
    assert body["kind"] == "return" and body["genuine"] is False
    assert body["return"]["exists_on_chain"] is False and body["return"]["rma"] == code
    assert body["return"]["state"] is None and body["return"]["amount"] is None
    assert body["verdict"][0].startswith(f"No such return: {code} is not a return on the ledger")
    assert body["item"] is None


def test_forged_return_inserted_into_the_index_is_still_not_genuine(
    public: TestClient, flow: Flow, api_env: ApiEnv
) -> None:
    sold = flow.sold_and_delivered()
    forged = "0x" + secrets.token_hex(32)
    row = {
        "return_id": forged,
        "item_id": sold.item_id,
        "sale_seq": 1,
        "consumer": sold.consumer,
        "merchant": api_env.accounts[MERCHANT].lower(),
        "token": api_env.deployed.token.address.lower(),
        "amount": PRICE,
        "fee_bps": 0,
        "fast_refund": True,
        "policy_version": 1,
        "state": 6,  # accepted
        "ship_by": 2_000_000_000,
        "inspect_by": None,
        "dispute_by": None,
        "authorized_at": 1_700_000_000,
        "updated_at": 1_700_000_000,
        "settled": True,
        "block_number": 1,
        "tx_hash": ZERO32,
    }
    with api_env.store.engine.begin() as conn:
        conn.execute(insert(returns).values(**row))
    try:
        body = verify(public, label_code(forged))
    finally:
        with api_env.store.engine.begin() as conn:
            conn.execute(delete(returns).where(returns.c.return_id == forged))
    assert body["genuine"] is False and body["return"]["exists_on_chain"] is False
    assert [f["kind"] for f in body["return"]["findings"]] == ["return-not-on-chain"]
    assert body["verdict"][0].startswith("No such return")


def test_index_altered_amount_is_shown_from_the_chain(public: TestClient, flow: Flow, api_env: ApiEnv) -> None:
    sold = flow.sold_and_delivered()
    rma = flow.approved(sold)
    with api_env.store.engine.begin() as conn:
        conn.execute(update(returns).where(returns.c.return_id == rma).values(amount=PRICE * 100))
    try:
        body = verify(public, label_code(rma))
    finally:
        with api_env.store.engine.begin() as conn:
            conn.execute(update(returns).where(returns.c.return_id == rma).values(amount=PRICE))
    ret = body["return"]
    assert body["genuine"] is True and ret["amount"] == str(PRICE) and ret["state"] == "authorized"
    assert [(f["kind"], f["severity"]) for f in ret["findings"]] == [("index-mismatch", "error")]
    assert "amount" in ret["findings"][0]["message"]
    assert "The service's own records disagree with the chain; the chain's values are shown." in body["verdict"]
    assert any(s.startswith("The parcel must ship by ") for s in body["verdict"])


def test_broken_history_is_not_genuine(public: TestClient, flow: Flow, api_env: ApiEnv) -> None:
    sold = flow.sold_and_delivered()  # events: commissioning, retail_selling, arriving
    assert verify(public, sold.item_id)["item"]["event_count"] == 3
    ev = item_events.c
    where = (ev.item_id == sold.item_id, ev.seq == 1)

    with api_env.store.engine.begin() as conn:
        original = conn.execute(select(ev.disposition).where(*where)).scalar_one()
        conn.execute(update(item_events).where(*where).values(disposition=original + 1))
    try:
        altered = verify(public, sold.item_id)
    finally:
        with api_env.store.engine.begin() as conn:
            conn.execute(update(item_events).where(*where).values(disposition=original))
    assert altered["genuine"] is False and altered["item"]["history_intact"] is False
    assert altered["item"]["on_chain"] is True and altered["item"]["event_count"] == 3
    kinds = {f["kind"] for f in altered["item"]["findings"] if f["severity"] == "error"}
    assert "event-altered" in kinds
    assert any(f["seq"] == 1 for f in altered["item"]["findings"])
    assert altered["verdict"][0] == "Not confirmed: the item is registered, but its history cannot be trusted as shown."
    assert any("does not match the chain" in s and "do not rely on it" in s for s in altered["verdict"])

    with api_env.store.engine.begin() as conn:
        saved = conn.execute(select(item_events).where(*where)).mappings().one()
        conn.execute(delete(item_events).where(*where))
    try:
        missing = verify(public, sold.item_id)
    finally:
        with api_env.store.engine.begin() as conn:
            conn.execute(insert(item_events).values(**saved))
    assert missing["genuine"] is False and missing["item"]["history_intact"] is False
    assert "event-missing" in {f["kind"] for f in missing["item"]["findings"]}

    restored = verify(public, sold.item_id)
    assert restored["genuine"] is True and restored["item"]["findings"] == []


def test_cloned_serial_is_not_confirmed(public: TestClient, api_env: ApiEnv) -> None:
    number = serial()
    first = register(api_env, sgtin(number), int(GTIN))
    second = register(api_env, f"https://id.gs1.org/01/{GTIN}/21/{number}", int(GTIN))
    for code, shown in ((sgtin(number), first), (f"https://other.example/01/{GTIN}/21/{number}", first)):
        body = verify(public, code, encode=True)
        assert body["genuine"] is False and body["item"]["item_id"] == shown, body
        assert body["item"]["history_intact"] is True
        duplicated = [f for f in body["item"]["findings"] if f["kind"] == "serial-duplicated"]
        assert len(duplicated) == 1 and second in duplicated[0]["message"]
        assert body["verdict"][0].startswith("Not confirmed: this GTIN and serial number are registered 2 times")


def test_revoked_manufacturer_is_named(public: TestClient, api_env: ApiEnv) -> None:
    item_id = register(api_env, sgtin(serial()), int(GTIN))
    ledger = api_env.deployed.ledger.functions
    role = ledger.MANUFACTURER_ROLE().call()
    w3, admin, manufacturer = api_env.deployed.w3, api_env.accounts[ADMIN], api_env.accounts[MANUFACTURER]
    w3.eth.wait_for_transaction_receipt(ledger.revokeRole(role, manufacturer).transact({"from": admin}))
    try:
        body = verify(public, item_id)
    finally:
        receipt = w3.eth.wait_for_transaction_receipt(ledger.grantRole(role, manufacturer).transact({"from": admin}))
        api_env.wait_indexed(receipt["blockNumber"])
    item = body["item"]
    assert item["manufacturer_role_at_registration"] is True and item["holds_manufacturer_role_now"] is False
    assert body["genuine"] is True
    assert "The manufacturer no longer holds the manufacturer role." in body["verdict"]


def test_role_history_missing_from_the_index_does_not_unconfirm_a_chain_proven_registration(
    public: TestClient, api_env: ApiEnv
) -> None:
    item_id = register(api_env, sgtin(serial()), int(GTIN))
    rc = role_changes.c
    manufacturer = api_env.accounts[MANUFACTURER].lower()
    with api_env.store.engine.begin() as conn:
        saved = [dict(r) for r in conn.execute(select(role_changes).where(rc.account == manufacturer)).mappings()]
        conn.execute(delete(role_changes).where(rc.account == manufacturer))
    try:
        body = verify(public, item_id)
    finally:
        with api_env.store.engine.begin() as conn:
            conn.execute(insert(role_changes), saved)
    assert body["genuine"] is True and body["item"]["manufacturer_role_at_registration"] is True
    assert [(f["kind"], f["severity"]) for f in body["item"]["findings"]] == [("role-history-incomplete", "warning")]


def test_item_the_index_lacks_but_the_chain_has_is_not_called_a_counterfeit(
    public: TestClient, api_env: ApiEnv
) -> None:
    uri = sgtin(serial())
    item_id = register(api_env, uri, int(GTIN))
    with api_env.store.engine.begin() as conn:
        saved = conn.execute(select(items).where(items.c.item_id == item_id)).mappings().one()
        conn.execute(delete(items).where(items.c.item_id == item_id))
    try:
        answers = [public.get(f"/v1/verify/{quote(code, safe='')}") for code in (uri, item_id)]
    finally:
        with api_env.store.engine.begin() as conn:
            conn.execute(insert(items).values(**saved))
    for answer in answers:
        body = problem(answer, 503)
        assert "the chain has this item but the service's index has not caught up yet" in body["detail"]
        assert answer.headers["Retry-After"]
    assert verify(public, uri)["genuine"] is True


def test_return_the_index_lacks_is_answered_from_the_chain(public: TestClient, flow: Flow, api_env: ApiEnv) -> None:
    sold = flow.sold_and_delivered()
    rma = flow.approved(sold)
    with api_env.store.engine.begin() as conn:
        saved = conn.execute(select(returns).where(returns.c.return_id == rma)).mappings().one()
        conn.execute(delete(returns).where(returns.c.return_id == rma))
    try:
        body = verify(public, label_code(rma))
    finally:
        with api_env.store.engine.begin() as conn:
            conn.execute(insert(returns).values(**saved))
    ret = body["return"]
    assert body["genuine"] is True and ret["state"] == "authorized" and ret["amount"] == str(PRICE)
    assert ret["refund_paid"] is False and ret["settled"] is False
    assert [(f["kind"], f["severity"]) for f in ret["findings"]] == [("index-behind", "warning")]


# ---- malformed codes and the rate limit ------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("RMA-NOTACODE", "not a return label code"),
        ("hello", "not a code this check reads"),
        (f"https://id.gs1.org/01/{GTIN[:-1]}0/21/1", "wrong check digit"),
        (f"https://id.gs1.org/01/{GTIN}", "no serial number"),
        ("urn:epc:id:sgtin:0614141.10734.1", "13 digits"),
        ("urn:epc:id:sscc:0614141.1234567890", "not of an item with a serial number"),
        ("a\x01b", "control characters"),
        ("a\nb", "control characters"),
        ("urn%3Aepc%0Ax", "control characters"),  # also once decoded
        ("", "at least 1 character"),
        ("x" * 3000, "at most 2048 characters"),
    ],
)
def test_malformed_codes_are_422_problems(public: TestClient, code: str, message: str) -> None:
    body = problem(public.get(f"/v1/verify/{quote(code, safe='')}"), 422)
    assert message in str(body)


def test_rate_limit_per_client_address(api_env: ApiEnv) -> None:
    settings = api_env.settings.model_copy(update={"verify_rate_limit": "2/minute"})
    code = "0x" + secrets.token_hex(32)
    app = create_app(settings)
    with TestClient(app) as client:
        assert client.get(f"/v1/verify/{code}").status_code == 200
        assert client.get("/v1/verify/hello").status_code == 422  # malformed requests count too
        limited = client.get(f"/v1/verify/{code}")
        body = problem(limited, 429)
        assert "at most 2 per 1 minute" in body["detail"]
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        other = TestClient(app, client=("203.0.113.9", 50000))  # the same app (started above), another address
        assert other.get(f"/v1/verify/{code}").status_code == 200
        assert client.get(f"/v1/verify/{code}").status_code == 429


def test_global_rate_limit_beside_the_per_address_one(api_env: ApiEnv) -> None:
    settings = api_env.settings.model_copy(
        update={"verify_rate_limit": "2/minute", "verify_global_rate_limit": "3/minute"}
    )
    code = "0x" + secrets.token_hex(32)
    app = create_app(settings)
    with TestClient(app) as client:
        assert client.get(f"/v1/verify/{code}").status_code == 200
        assert client.get(f"/v1/verify/{code}").status_code == 200
        assert "from this address" in problem(client.get(f"/v1/verify/{code}"), 429)["detail"]  # not counted below
        first = TestClient(app, client=("203.0.113.9", 50000))
        assert first.get(f"/v1/verify/{code}").status_code == 200  # the third for everyone
        limited = TestClient(app, client=("203.0.113.10", 50000)).get(f"/v1/verify/{code}")
        body = problem(limited, 429)
        assert "at most 3 per 1 minute from everyone together" in body["detail"]
        assert 1 <= int(limited.headers["Retry-After"]) <= 60


def test_malformed_global_rate_limit_setting_is_refused(api_env: ApiEnv) -> None:
    with pytest.raises(ValueError, match="not a rate limit"):
        Settings(_env_file=None, verify_global_rate_limit="lots")  # type: ignore[call-arg]
    settings = api_env.settings.model_copy(update={"verify_global_rate_limit": "0/minute"})
    with TestClient(create_app(settings)) as client:
        body = problem(client.get("/v1/verify/" + "0x" + "00" * 32), 503)
    assert "LEDGER_VERIFY_GLOBAL_RATE_LIMIT='0/minute' must allow at least 1 request" in body["detail"]


def test_malformed_rate_limit_setting_is_a_clear_configuration_problem(api_env: ApiEnv) -> None:
    settings = api_env.settings.model_copy(update={"verify_rate_limit": "sixty a minute"})
    with TestClient(create_app(settings)) as client:
        body = problem(client.get("/v1/verify/" + "0x" + "00" * 32), 503)
    assert "LEDGER_VERIFY_RATE_LIMIT='sixty a minute' is not a rate limit" in body["detail"]
