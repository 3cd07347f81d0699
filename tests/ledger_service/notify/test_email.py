"""The consumer's e-mails read as people write: amounts in the token's units with its symbol, states in words,
in Chinese and English, in the plain text and the HTML part alike; a closed return's asks for a rating."""

from __future__ import annotations

import json
from email.header import decode_header, make_header
from email.message import EmailMessage

import pytest

from ledger_service.chain.tokens import TokenUnits
from ledger_service.core.money import short_amount
from ledger_service.notify.email import compose
from ledger_service.returns.labels import label_code

TOKEN = "0x" + "33" * 20
DUSD = TokenUnits(6, "dUSD")


def _mail(kind: str, data: dict[str, object], *, lang: str, units: TokenUnits | None = DUSD) -> EmailMessage:
    body = json.dumps({"type": kind, "timestamp": "2026-12-06T00:00:00Z", "data": {"return_id": "0xab", **data}})
    return compose(
        body=body,
        to="buyer@example.com",
        lang=lang,
        sender="returns@shop.example",
        public_url="https://returns.example",
        msg_id="msg_1",
        units=units,
    )


def _parts(message: EmailMessage) -> tuple[str, str]:
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


@pytest.mark.parametrize(
    ("lang", "refund", "fee", "state"),
    [
        ("en", "Refund: 45.00 dUSD", "Restocking fee kept by the merchant: 2.50 dUSD", "Status: On its way back"),
        ("zh", "退款金额: 45.00 dUSD", "商家收取的重新上架费: 2.50 dUSD", "状态: 正在寄回途中"),
    ],
)
def test_amounts_in_token_units_and_states_in_words(lang: str, refund: str, fee: str, state: str) -> None:
    paid = _mail("return.refund_paid", {"token": TOKEN, "amount": "45000000", "fee": "2500000"}, lang=lang)
    text, html = _parts(paid)
    assert refund in text and fee in text
    assert "45000000" not in text and "45000000" not in html
    assert "45.00 dUSD" in html and "2.50 dUSD" in html
    moving = _mail("return.in_transit", {"state": "in_transit", "previous": "authorized"}, lang=lang)
    text, html = _parts(moving)
    assert state in text and state.split(": ")[1] in html
    assert "in_transit" not in text and "in_transit" not in html


def test_without_the_token_s_units_the_amount_says_what_it_counts() -> None:
    text, _ = _parts(_mail("return.approved", {"token": TOKEN, "amount": "45000000"}, lang="en", units=None))
    assert f"Refund: 45000000 (base units of token {TOKEN})" in text


def test_short_amount_keeps_every_significant_digit() -> None:
    assert short_amount(45_000_000, 6, "dUSD") == "45.00 dUSD"
    assert short_amount(45_125_001, 6, "dUSD") == "45.125001 dUSD"
    assert short_amount(7, 0, None) == "7"
    assert short_amount(10**30 + 5, 18, "WETH") == "1000000000000.000000000000000005 WETH"


def test_the_state_words_are_the_pages_words_in_both_languages() -> None:
    from ledger_service.notify.email import STATES
    from web.i18n import Translator
    from web.words import RETURN_STATES

    zh = Translator("zh")
    assert set(STATES["en"]) == set(STATES["zh"])
    for state, english in STATES["en"].items():
        assert RETURN_STATES[state] == english
        assert STATES["zh"][state] == zh(english)


RID = "0x" + "ab" * 32


@pytest.mark.parametrize(
    ("lang", "sentence"),
    [("en", "How did it go? Rate the return from 1 to 5"), ("zh", "这次退货体验如何？请为退货流程打 1 到 5 分")],  # noqa: RUF001
)
def test_a_closed_return_asks_for_a_rating(lang: str, sentence: str) -> None:
    plain, html = _parts(_mail("return.closed", {"return_id": RID}, lang=lang))
    link = f"https://returns.example/returns/{RID}?lang={lang}#feedback"
    assert sentence in plain and link in plain
    assert f'href="{link}"' in html and sentence in html


def test_other_notifications_do_not_ask() -> None:
    plain, html = _parts(_mail("return.in_transit", {"return_id": RID}, lang="en"))
    assert "Rate the return" not in plain and "#feedback" not in html


@pytest.mark.parametrize(
    ("lang", "reason", "happened", "next_step"),
    [
        ("en", "lost", "your return parcel is lost", "What to do: Contact the carrier with the tracking number below"),
        ("zh", "lost", "您的退货包裹已丢失", "您需要做什么: 请凭下方运单号联系承运商"),
        ("en", "returned_to_sender", "sending your return parcel back to you", "send it again with the same label"),
        ("zh", "delivery_failed", "未能将您的退货包裹投递给商家", "承运商会再次投递"),
        ("en", None, "The carrier reports a problem with your return parcel.", "the merchant has been told too"),
    ],
)
def test_a_carrier_exception_says_what_happened_and_what_to_do(
    lang: str, reason: str | None, happened: str, next_step: str
) -> None:
    data = {"return_id": RID, "reason": reason, "tracking_number": "LR473124829ZZ", "location": "Shanghai hub"}
    message = _mail("return.carrier_exception", data | {"carrier_occurred_at": 1_800_000_000}, lang=lang)
    plain, html = _parts(message)
    for part in (plain, html):
        assert happened in part and next_step.split(": ")[-1] in part
        assert "LR473124829ZZ" in part and "Shanghai hub" in part and "2027-01-15 08:00 UTC" in part
    assert next_step in plain
    subject = {"en": "There is a problem with your return parcel", "zh": "您的退货包裹出现异常"}[lang]
    assert str(make_header(decode_header(message["Subject"]))) == subject


@pytest.mark.parametrize(("lang", "subject_line"), [("en", "Your refund has been paid."), ("zh", "您的退款已支付。")])
def test_the_return_is_named_by_its_label_code_and_linked_to_its_page(lang: str, subject_line: str) -> None:
    plain, html = _parts(_mail("return.refund_paid", {"return_id": RID, "amount": "1"}, lang=lang))
    code = label_code(RID)
    assert code in plain and code in html and RID.removeprefix("0x") not in plain.split("http")[0]
    assert subject_line in plain.splitlines()
    page = f"https://returns.example/returns/{RID}?lang={lang}"
    assert f": {page}\n" in plain and f'href="{page}"' in html


def test_without_a_return_id_the_e_mail_links_to_the_portal() -> None:
    plain, _ = _parts(_mail("return.requested", {"return_id": None}, lang="en"))
    assert "RMA-" not in plain and ": https://returns.example/?lang=en\n" in plain
