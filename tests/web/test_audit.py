"""The auditor explorer without JavaScript: sign in with an auditor key, find an item by each of its names,
read its verified history with each event's proof, export it, and see a tampered index row named; keys of
other roles and unknown or malformed codes are pages in the auditor's language."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text as sql

from tests.api.flows import Flow, Sold
from tests.api.test_audit import tampered
from tests.api.test_scans import anchor_queued, apply_anchored
from tests.web.pages import text
from web.audit import verify_command

ZH = {"Accept-Language": "zh-CN"}
PREFIX = "urn:epc:id:sgtin:0614141.107346."
GTIN = "10614141073464"  # the GTIN-14 of the SGTIN prefix above (indicator 1, check digit 4)


@pytest.fixture(scope="module")
def sold(flow: Flow) -> Sold:
    return flow.sold_and_delivered()


def _sign_in(client: TestClient, key: str) -> None:
    client.cookies.clear()
    answer = client.post("/audit/signin", data={"api_key": key}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/audit", answer.text
    cookie = answer.headers["set-cookie"]
    assert "rl_auditor=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/audit" in cookie


def _uri(client: TestClient, sold: Sold) -> str:
    page = client.get(f"/audit/items/{sold.item_id}").text
    found = re.search(re.escape(PREFIX) + r"[^<\s]+", page)
    assert found is not None
    return found.group(0)


def test_an_item_is_found_by_each_of_its_names(client: TestClient, keys: dict[str, str], sold: Sold) -> None:
    _sign_in(client, keys["auditor"])
    uri = _uri(client, sold)
    serial = uri.removeprefix(PREFIX)
    for code in (
        uri,
        sold.item_id,
        sold.item_id.upper().replace("0X", "0x"),
        f"https://id.gs1.org/01/{GTIN}/21/{serial}",
        f"(01){GTIN}(21){serial}",
    ):
        found = client.get("/audit", params={"q": code}, follow_redirects=False)
        assert found.status_code == 303, (code, text(found.text))
        assert found.headers["location"] == f"/audit/items/{sold.item_id}", code


def test_unknown_and_malformed_codes_keep_what_was_typed(client: TestClient, keys: dict[str, str]) -> None:
    _sign_in(client, keys["auditor"])
    unknown = client.get("/audit", params={"q": PREFIX + "no-such-serial"}, headers=ZH)
    assert unknown.status_code == 404
    assert "没有与" in text(unknown.text) and f'value="{PREFIX}no-such-serial"' in unknown.text
    malformed = client.get("/audit", params={"q": "urn:epc:id:sscc:123"})
    assert malformed.status_code == 422 and 'value="urn:epc:id:sscc:123"' in malformed.text
    bad_path = client.get("/audit/items/0x1234")
    assert bad_path.status_code == 404


def test_the_verified_history_with_its_proof_exports_and_command(
    client: TestClient, keys: dict[str, str], sold: Sold, flow: Flow
) -> None:
    _sign_in(client, keys["auditor"])
    page = client.get(f"/audit/items/{sold.item_id}", headers=ZH)
    assert page.status_code == 200
    shown = text(page.text)
    assert "记录完整" in shown
    assert 'class="bad"' not in page.text
    w3 = flow.env.deployed.w3
    head = "0x" + bytes(flow.env.deployed.ledger.functions.itemOf(bytes.fromhex(sold.item_id[2:])).call()[0]).hex()
    assert head in shown  # the contract's head, as the page shows it
    ledger = flow.env.deployed.ledger.address
    command = re.search(r'<textarea id="command"[^>]*>([^<]+)</textarea>', page.text)
    assert command is not None
    assert command.group(1).startswith(f"ledger-verify --rpc-url {flow.env.anvil.url} --ledger {ledger} --from-block ")
    assert command.group(1).endswith(_uri(client, sold))
    events = re.findall(r'<li id="event-(\d+)"', page.text)
    assert events == [str(n) for n in range(len(events))] and len(events) >= 3
    block = w3.eth.get_block(int(re.findall(r"<dd class=\"mono\">(\d+) · ", page.text)[0]))
    assert "0x" + bytes(block["hash"]).hex() in page.text  # each event's block, with its hash

    exported = client.get(f"/audit/items/{sold.item_id}/history.csv")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == len(events)
    epcis = client.get(f"/audit/items/{sold.item_id}/history.jsonld")
    assert epcis.status_code == 200 and epcis.headers["content-type"] == "application/ld+json"
    document = json.loads(epcis.text)
    assert document["type"] == "EPCISDocument" and "epcis-context.jsonld" in json.dumps(document["@context"])
    assert len(document["epcisBody"]["eventList"]) == len(events)


def test_a_tampered_row_is_highlighted_where_it_sits(
    client: TestClient, keys: dict[str, str], sold: Sold, flow: Flow
) -> None:
    _sign_in(client, keys["auditor"])
    with tampered(flow.env.store, sold.item_id):
        with flow.env.store.engine.begin() as conn:
            conn.execute(
                sql("UPDATE item_events SET disposition = 8 WHERE item_id = :i AND seq = 1"), {"i": sold.item_id}
            )
        page = client.get(f"/audit/items/{sold.item_id}", headers=ZH)
    assert page.status_code == 200
    assert "历史记录未通过核验" in text(page.text)
    assert '<li id="event-1" class="bad" aria-describedby="problem-1">' in page.text
    assert 'class="bad"' not in page.text.split('<li id="event-1"')[0].split('id="timeline-title"')[1]
    problem = page.text.split('id="problem-1"')[1].split("</div>")[0]
    assert "事件 #1" in text(problem) and "被改动过" in text(problem)  # the finding, in Chinese, at the row
    assert "记录完整" in text(client.get(f"/audit/items/{sold.item_id}", headers=ZH).text)  # restored


def test_batched_scans_show_with_their_anchor_and_merkle_proof(
    client: TestClient, keys: dict[str, str], sold: Sold, flow: Flow
) -> None:
    _sign_in(client, keys["auditor"])
    uri = _uri(client, sold)
    scan = {"item": uri, "biz_step": "transporting", "disposition": "in_transit", "read_point": "0614141.00777.0"}
    sent = client.post("/v1/scans", json={"scans": [scan]}, headers={"Authorization": f"Bearer {keys['carrier']}"})
    assert sent.status_code == 202, sent.text
    assert anchor_queued(flow.env) >= 1 and apply_anchored(flow.env) >= 1
    _sign_in(client, keys["auditor"])
    page = client.get(f"/audit/items/{sold.item_id}", headers=ZH)
    assert page.status_code == 200
    shown = text(page.text)
    assert "批量扫描及其默克尔证明" in shown and "记录完整" in shown
    section = page.text.split('id="batched-title"')[1]
    assert '<li id="batched-0">' in section
    leaf = re.search(r"叶子</dt><dd class=\"mono\">(0x[0-9a-f]{64})</dd>", section)
    assert leaf is not None
    with flow.env.store.engine.begin() as conn:
        conn.execute(sql("UPDATE batched_scans SET read_point = '0614141.1.0' WHERE item_id = :i"), {"i": sold.item_id})
    try:
        tampered_page = text(client.get(f"/audit/items/{sold.item_id}", headers=ZH).text)
    finally:
        with flow.env.store.engine.begin() as conn:
            conn.execute(
                sql("UPDATE batched_scans SET read_point = '0614141.00777.0' WHERE item_id = :i"), {"i": sold.item_id}
            )
    assert "历史记录未通过核验" in tampered_page and "批量扫描 #0" in tampered_page and "被改动过" in tampered_page


def test_keys_of_other_roles_and_no_session(client: TestClient, keys: dict[str, str], sold: Sold) -> None:
    client.cookies.clear()
    merchant = client.post("/audit/signin", data={"api_key": keys["merchant"]}, headers=ZH)
    assert merchant.status_code == 403
    assert "此浏览器仅供审计员和管理员密钥使用；此密钥是 merchant 密钥" in text(merchant.text)
    assert "rl_auditor" not in client.cookies
    no_session = client.get(f"/audit/items/{sold.item_id}/history.csv")
    assert no_session.status_code == 200 and 'action="/audit/signin"' in no_session.text
    assert '<li id="event-' not in no_session.text and "text/html" in no_session.headers["content-type"]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:8545/", "http://127.0.0.1:8545"),
        ("https://node.example:8545", "https://node.example:8545"),
        ("https://mainnet.infura.io/v3/0123456789abcdef", "$LEDGER_RPC_URL"),  # a key in the path
        ("https://user:secret@node.example/", "$LEDGER_RPC_URL"),
        ("https://node.example/?apikey=secret", "$LEDGER_RPC_URL"),
    ],
)
def test_the_command_never_shows_a_node_url_with_credentials(url: str, shown: str) -> None:
    command = verify_command(rpc_url=url, ledger="0x" + "ab" * 20, item="urn:epc:id:sgtin:1.2.a b", from_block=7)
    node = f'"{shown}"' if shown.startswith("$") else shown  # the placeholder in double quotes: the shell fills it
    assert command.startswith(f"ledger-verify --rpc-url {node} --ledger 0x{'ab' * 20} ")
    assert "secret" not in command and "0123456789abcdef" not in command
    assert command.endswith(" --from-block 7 'urn:epc:id:sgtin:1.2.a b'")  # quoted for the shell
