"""The rest of the merchant console without JavaScript, on a chain of its own (the test moves its clock): the
returns list and its filters, a return's escrow with the reclaim the contract allows after ship-by, the
policy editor (a field out of range keeps the form; a new version binds later sales), sales and the dashboard's
counts from the index."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from tests.api.flows import POLICY, Flow, Sold
from tests.support.chain import MERCHANT
from tests.web.pages import hidden_fields, text

ZH = {"Accept-Language": "zh-CN"}
EN = {"Accept-Language": "en-GB"}
DAY = 86_400


@pytest.fixture(scope="module")
def business(flow: Flow) -> tuple[list[Sold], list[str]]:
    """Three sales: two returned and approved (authorized), one not."""
    sold = [flow.sold_and_delivered() for _ in range(3)]
    rmas = [flow.approved(purchase) for purchase in sold[:2]]
    flow.env.wait_indexed()
    return sold, rmas


def _sign_in(client: TestClient, key: str) -> None:
    client.cookies.clear()
    answer = client.post("/merchant/signin", data={"api_key": key}, follow_redirects=False)
    assert answer.status_code == 303, answer.text


def _chain_day(flow: Flow, shift_days: int = 0) -> str:
    now = flow.w3.eth.get_block("latest")["timestamp"]
    return (datetime.fromtimestamp(now, tz=UTC) + timedelta(days=shift_days)).date().isoformat()


def test_the_returns_list_and_its_filters(
    client: TestClient, flow: Flow, keys: dict[str, str], business: tuple[list[Sold], list[str]]
) -> None:
    _, rmas = business
    _sign_in(client, keys["merchant"])
    everything = client.get("/merchant/returns", headers=EN)
    assert everything.status_code == 200
    assert all(f"/merchant/returns/{rma}" in everything.text for rma in rmas)
    assert "2 returns match." in text(everything.text)
    authorized = client.get("/merchant/returns", params={"state": "authorized", "from": _chain_day(flow)}, headers=ZH)
    assert all(f"/merchant/returns/{rma}" in authorized.text for rma in rmas)
    assert "已批准，等待包裹" in text(authorized.text)
    accepted = client.get("/merchant/returns", params={"state": "accepted"})
    assert "0 returns match." in text(accepted.text)
    later = client.get("/merchant/returns", params={"from": _chain_day(flow, 2)})
    assert "0 returns match." in text(later.text)

    bad = client.get("/merchant/returns", params={"state": "authorized", "from": "31/12/2026"}, headers=ZH)
    assert bad.status_code == 422 and "31/12/2026 不是形如 2026-12-31 的日期" in text(bad.text)
    assert 'value="31/12/2026"' in bad.text and '<option value="authorized" selected>' in bad.text
    swapped = client.get("/merchant/returns", params={"from": "2026-12-31", "to": "2026-01-01"})
    assert swapped.status_code == 422 and "swap them" in text(swapped.text)
    unknown = client.get("/merchant/returns", params={"state": "lost"})
    assert unknown.status_code == 422 and "there is no return state lost" in text(unknown.text)


def test_a_return_unshipped_past_ship_by_is_reclaimed_once(
    client: TestClient, flow: Flow, keys: dict[str, str], business: tuple[list[Sold], list[str]]
) -> None:
    _, rmas = business
    rma = rmas[0]
    _sign_in(client, keys["merchant"])
    before = client.get(f"/merchant/returns/{rma}", headers=EN)
    assert before.status_code == 200
    shown = text(before.text)
    assert "Approved, waiting for the parcel" in shown and "50.00 dUSD" in shown  # the deposit
    assert "If it is not shipped by" in shown and f"/merchant/returns/{rma}/reclaim" not in before.text

    flow.travel(POLICY["ship_by_days"] * DAY + 60)  # past ship-by: the contract lets the merchant reclaim
    page = client.get(f"/merchant/returns/{rma}", headers=ZH)
    action = f"/merchant/returns/{rma}/reclaim"
    assert action in page.text and "合约现在允许您取回押金。" in text(page.text)
    form = hidden_fields(page.text, action)
    forged = client.post(action, data=form | {"csrf": "0" * 32}, headers=ZH)
    assert forged.status_code == 403 and "此表单不是来自本站页面" in text(forged.text)
    balance = flow.balance(flow.env.accounts[MERCHANT])
    done = client.post(action, data=form, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/merchant/returns/{rma}"
    again = client.post(action, data=form, follow_redirects=False)  # the same form twice: one reclaim
    assert again.status_code == 303 and again.headers["location"] == done.headers["location"]
    after = text(client.get(f"/merchant/returns/{rma}", headers=EN).text)
    assert "Not shipped: deposit taken back" in after and "to you; transaction" in after
    assert flow.balance(flow.env.accounts[MERCHANT]) > balance
    expired = client.get("/merchant/returns", params={"state": "expired"})
    assert f"/merchant/returns/{rma}" in expired.text and "1 returns match." in text(expired.text)

    other = client.get(f"/merchant/returns/{'0x' + 'ab' * 32}")
    assert other.status_code == 404


def test_the_policy_editor_keeps_a_wrong_form_and_publishes_a_right_one(
    client: TestClient, flow: Flow, keys: dict[str, str], business: tuple[list[Sold], list[str]]
) -> None:
    _sign_in(client, keys["merchant"])
    editor = client.get("/merchant/policy", headers=EN)
    assert editor.status_code == 200
    assert f'name="window_days" value="{POLICY["window_days"]}"' in editor.text  # prefilled from the current one
    current = int(re.findall(r'id="v(\d+)"', editor.text)[0])
    form = hidden_fields(editor.text, "/merchant/policy") | {
        "title": "Winter terms",
        "window_days": "400",
        "restocking_fee_bps": "500",
        "ship_by_days": "10",
        "inspect_by_days": "10",
        "dispute_window_days": "10",
        "fast_refund_max_returns_90d": "0",
        "fast_refund_max_value": "0",
        "manual_review_above_value": "0",
        "manual_review_reasons": "damaged, wrong_size",
        "text": "Keep the tags on.",
        "return_address": "Returns dept.\n1 Example Road",
    }
    wrong = client.post("/merchant/policy", data=form, headers=ZH)
    assert wrong.status_code == 422
    assert "退货期限是 1 到 365 之间的整数天数。" in text(wrong.text)
    assert 'name="window_days" value="400" inputmode="numeric" aria-describedby=" error" aria-invalid="true"' in (
        wrong.text
    )
    assert 'value="Winter terms"' in wrong.text and ">Keep the tags on.</textarea>" in wrong.text

    form = hidden_fields(wrong.text, "/merchant/policy") | form | {"window_days": "45", "csrf": form["csrf"]}
    form["form_key"] = hidden_fields(wrong.text, "/merchant/policy")["form_key"]
    published = client.post("/merchant/policy", data=form, follow_redirects=False)
    assert published.status_code == 303 and published.headers["location"] == f"/merchant/policy#v{current + 1}"
    versions = client.get("/merchant/policy", headers=EN)
    shown = text(versions.text)
    assert f"Version {current + 1} in force for new sales" in shown and "damaged, wrong_size" in shown
    assert f"Version {current} Published" in shown and "3 sales are bound to it." in shown
    assert ">Returns dept.\n1 Example Road</textarea>" in versions.text  # the editor starts from what is in force

    sold = flow.sold_and_delivered()  # bound to the new version
    sales = client.get("/merchant/sales", headers=EN)
    assert sales.status_code == 200 and "4 sales." in text(sales.text)
    first_row = sales.text.split("<tbody>")[1].split("</tr>")[0]
    assert sold.item_id[:10] in first_row and f'href="/merchant/policy#v{current + 1}"' in first_row


def test_the_dashboard_counts_from_the_index(
    client: TestClient, flow: Flow, keys: dict[str, str], business: tuple[list[Sold], list[str]]
) -> None:
    _sign_in(client, keys["merchant"])
    flow.env.wait_indexed()
    board = client.get("/merchant/dashboard", headers=EN)
    assert board.status_code == 200
    sales = int(re.search(r'id="stat-sales">(\d+)<', board.text).group(1))  # type: ignore[union-attr]
    returns = int(re.search(r'id="stat-returns">(\d+)<', board.text).group(1))  # type: ignore[union-attr]
    assert (sales, returns) == (4, 2)
    states = board.text.split('id="table-states"')[1].split("</table>")[0]
    assert "Approved, waiting for the parcel</td><td>1" in states
    assert "Not shipped: deposit taken back</td><td>1" in states
    days = board.text.split('id="table-days"')[1].split("</table>")[0]
    assert sum(int(n) for n in re.findall(r"<td>(\d+)</td><td>\d+</td></tr>", days)) == 4
    assert '<script src="/static/echarts.min.js" defer>' in board.text
    assert "echarts" not in client.get("/merchant/returns").text  # the charts load on the dashboard only
    library = client.get("/static/echarts.min.js")
    assert library.status_code == 200 and library.headers["content-type"].startswith("text/javascript")
