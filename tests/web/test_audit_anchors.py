"""The auditor explorer's batch anchors in a real chromium against a served ``ledger-api`` (real anvil and index):
an anchor waiting for its document listed first with why, in Chinese on a phone and in English on a desktop,
linked from the search page and from an item page that warns its batched history may be incomplete; and the
item page's ``ledger-verify`` command, run as shown, checks the batched scans with the documents fetched from
this service by CID."""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, ViewportSize, expect

from tests.api.conftest import ApiEnv, bearer
from tests.api.flows import Flow
from tests.api.served import Served
from tests.api.test_scan_anchors import _resolve_without_documents
from tests.api.test_scans import anchor_queued, apply_anchored
from tests.web.browser import DESKTOP, PHONE, check_page
from web.audit import verify_command

pytestmark = pytest.mark.browser
VERIFY = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "ledger-verify"


@dataclass(frozen=True)
class Scanned:
    item_id: str
    applied: str
    """The anchor id of the batch applied (its scan is in the item's history)."""
    waiting: str
    """The anchor id of the batch whose document the index does not have."""


@pytest.fixture(scope="module")
def scanned(
    flow: Flow, client: TestClient, keys: dict[str, str], api_env: ApiEnv, tmp_path_factory: pytest.TempPathFactory
) -> Scanned:
    sold = flow.sold_and_delivered()
    history = client.get(f"/v1/items/{sold.item_id}/history", headers=bearer(keys["auditor"])).json()
    scan = {
        "item": history["uri"],
        "biz_step": "transporting",
        "disposition": "in_transit",
        "read_point": "0614141.1.0",
    }
    for applied_one in (False, True):
        sent = client.post("/v1/scans", json={"scans": [scan]}, headers=bearer(keys["carrier"]))
        assert sent.status_code == 202, sent.text
        assert anchor_queued(api_env) == 1
        if not applied_one:
            assert apply_anchored(api_env) == 1
    _resolve_without_documents(api_env, tmp_path_factory.mktemp("no-documents"))
    listed = client.get("/v1/scans/anchors", headers=bearer(keys["auditor"])).json()["data"]
    waiting, applied = listed[0], listed[1]
    assert (waiting["state"], applied["state"]) == ("pending_document", "applied")
    return Scanned(sold.item_id, applied["anchor_id"], waiting["anchor_id"])


@pytest.mark.parametrize(
    ("locale", "viewport", "texts"),
    [
        (
            "zh-CN",
            PHONE,
            {"verdict": "1 个锚定正在等待其批次文档", "reason": "其批次文档暂时无法获取", "item": "可能缺少批量扫描"},
        ),
        (
            "en-GB",
            DESKTOP,
            {
                "verdict": "1 anchor is waiting for its document",
                "reason": "could not be had yet",
                "item": "may lack batched scans",
            },
        ),
    ],
)
def test_an_auditor_sees_the_anchor_waiting_for_its_document_first_with_why(
    browser: Browser,
    served: Served,
    keys: dict[str, str],
    scanned: Scanned,
    locale: str,
    viewport: ViewportSize,
    texts: dict[str, str],
) -> None:
    device = "phone" if viewport is PHONE else "desktop"
    lang = locale[:2]
    context = browser.new_context(locale=locale, viewport=viewport, bypass_csp=True)
    page = context.new_page()
    try:
        page.goto(f"{served.url}/audit")
        page.locator("#api_key").fill(keys["auditor"])
        page.locator("form[action='/audit/signin'] button[type=submit]").click()
        page.locator("#anchors-link").click()
        page.wait_for_url(re.compile(r"/audit/anchors$"))
        expect(page.locator("#anchors-verdict")).to_contain_text(texts["verdict"])
        first = page.locator("#anchors > li").first
        expect(first).to_have_attribute("id", f"anchor-{scanned.waiting}")
        expect(first.locator(".reason")).to_contain_text(texts["reason"])
        expect(page.locator(f"#anchor-{scanned.applied}")).to_be_visible()
        check_page(page, f"audit-anchors-{lang}-{device}")

        page.goto(f"{served.url}/audit/items/{scanned.item_id}")
        expect(page.locator("#anchors-waiting")).to_contain_text(texts["item"])
        page.locator("#anchors-waiting a").click()
        page.wait_for_url(re.compile(r"/audit/anchors$"))
    finally:
        context.close()


def test_the_item_pages_command_checks_the_batched_scans_with_this_services_documents(
    served: Served, keys: dict[str, str], scanned: Scanned, api_env: ApiEnv
) -> None:
    # the page as the served process renders it: its public address is where the documents are
    with httpx.Client(base_url=served.url, follow_redirects=False) as browserless:
        browserless.post("/audit/signin", data={"api_key": keys["auditor"]})
        page = browserless.get(f"/audit/items/{scanned.item_id}").text
    found = re.search(r'<textarea id="command"[^>]*>([^<]+)</textarea>', page)
    assert found is not None
    command = found.group(1).replace("&#39;", "'").replace("&amp;", "&")
    anchor = api_env.deployed.anchor.address
    assert f"--batch-anchor {anchor} --gateway '{served.url}/v1/documents/{{cid}}'" in command
    argv = shlex.split(command)
    assert argv[0] == "ledger-verify"
    done = subprocess.run([str(VERIFY), *argv[1:]], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "batched scan" in done.stdout

    # without batched scans to check, the command has no batch options
    plain = verify_command(rpc_url=served.url, ledger=anchor, item="urn:epc:id:sgtin:0614141.107346.1", from_block=0)
    assert "--batch-anchor" not in plain and "--gateway" not in plain
