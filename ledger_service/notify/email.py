"""The consumer's e-mails: one per notification, in Chinese or English, plain text and HTML, over SMTP.

The text is built from the delivery's stored payload (the same body a webhook gets), so a retry sends the same
message; ``Message-ID`` is derived from the notification's id, which lets a mail client fold a repeat. The
address is read when sending and never logged.
"""

from __future__ import annotations

import json
import re
import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from jinja2 import DictLoader, Environment, select_autoescape

from ledger_service.chain.tokens import TokenUnits
from ledger_service.core.money import short_amount
from ledger_service.core.notifications import RETURN_CARRIER_EXCEPTION, RETURN_CLOSED
from ledger_service.returns.labels import label_code
from ledger_service.settings import Settings

SUBJECTS: dict[str, dict[str, str]] = {
    "en": {
        "return.requested": "We received your return request",
        "return.approved": "Your return is approved",
        "return.rejected": "Your return request was declined",
        "return.label_ready": "Your return label is ready to print",
        "return.in_transit": "Your return is on its way",
        "return.refund_paid": "Your refund has been paid",
        "return.carrier_exception": "There is a problem with your return parcel",
        "return.delivered": "Your return reached the merchant",
        "return.inspected": "Your return has been inspected",
        "return.disputed": "Your dispute was opened",
        "return.resolved": "Your dispute was resolved",
        "return.closed": "Your return is closed",
        "sale.return_window_closing": "Your return window closes soon",
        "return.unit_mismatch": "Another unit than the one you bought arrived at the merchant",
        "exchange.approved": "Your exchange is approved",
        "exchange.rejected": "Your exchange request was declined",
        "exchange.payment_recorded": "Your payment of the price difference is recorded",
        "exchange.replacement_released": "Your replacement is on its way",
    },
    "zh": {
        "return.requested": "我们已收到您的退货申请",
        "return.approved": "您的退货已获批准",
        "return.rejected": "您的退货申请未获通过",
        "return.label_ready": "您的退货标签已可打印",
        "return.in_transit": "您的退货正在运输途中",
        "return.refund_paid": "您的退款已支付",
        "return.carrier_exception": "您的退货包裹出现异常",
        "return.delivered": "商家已收到您的退货",
        "return.inspected": "您的退货已完成检验",
        "return.disputed": "您的争议已提交",
        "return.resolved": "您的争议已处理",
        "return.closed": "您的退货已结束",
        "sale.return_window_closing": "您的退货期限即将结束",
        "return.unit_mismatch": "商家收到的不是您购买的那一件",
        "exchange.approved": "您的换货已获批准",
        "exchange.rejected": "您的换货申请未获通过",
        "exchange.payment_recorded": "您支付的差价已记录",
        "exchange.replacement_released": "您的换货商品已发出",
    },
}

STATES: dict[str, dict[str, str]] = {
    "en": {
        "authorized": "Approved: send the item back",
        "cancelled": "Cancelled",
        "expired": "Not shipped in time",
        "in_transit": "On its way back",
        "received": "Received by the merchant",
        "accepted": "Inspection passed",
        "rejected": "Inspection failed",
        "disputed": "Disputed",
        "resolved": "Dispute resolved",
        "reclaimed": "Deposit returned to the merchant",
        "consumer_claimed": "Deposit claimed by you",
    },
    "zh": {
        "authorized": "已批准：请寄回商品",  # noqa: RUF001 - Chinese punctuation
        "cancelled": "已取消",
        "expired": "未按时寄出",
        "in_transit": "正在寄回途中",
        "received": "商家已收到",
        "accepted": "检验通过",
        "rejected": "检验未通过",
        "disputed": "有争议",
        "resolved": "争议已解决",
        "reclaimed": "押金已退回商家",
        "consumer_claimed": "押金已由您领取",
    },
}
"""A return's state (the payload's ``state``) as the consumer reads it. The pages use the same English words
(web/words.py builds on this table) and translate them with web/i18n/zh.po; tests/ledger_service/notify/
test_email.py checks that the Chinese here is the catalog's."""

LINES: dict[str, dict[str, str]] = {
    "en": {
        "greeting": "Hello,",
        "stop": ".",
        "return": "Return",
        "state": "Status",
        "refund": "Refund",
        "fee": "Restocking fee kept by the merchant",
        "units": "base units of token",
        "closes": "The return window closes on",
        "open": "See your return",
        "rate": "How did it go? Rate the return from 1 to 5, with a comment if you like (you can change it for a week)",
        "footer": "You receive this e-mail because you gave this address with your purchase.",
        "next": "What to do",
        "tracking": "Tracking number",
        "where": "Where",
        "when": "When",
    },
    "zh": {
        "greeting": "您好，",  # noqa: RUF001 - Chinese punctuation
        "stop": "。",
        "return": "退货编号",
        "state": "状态",
        "refund": "退款金额",
        "fee": "商家收取的重新上架费",
        "units": "最小单位，代币",  # noqa: RUF001
        "closes": "退货期限截止于",
        "open": "查看您的退货",
        "rate": "这次退货体验如何？请为退货流程打 1 到 5 分，也可以留言（一周内可修改）",  # noqa: RUF001
        "footer": "您收到此邮件，是因为您在购买时提供了此邮箱地址。",  # noqa: RUF001
        "next": "您需要做什么",
        "tracking": "运单号",
        "where": "地点",
        "when": "时间",
    },
}

EXCEPTIONS: dict[str, dict[str, tuple[str, str]]] = {
    "en": {
        "delayed": (
            "The carrier reports that your return parcel is delayed.",
            "Nothing: it is still on its way, and your return's page shows when it moves again.",
        ),
        "damaged": (
            "The carrier reports that your return parcel was damaged.",
            "Keep your photos and proof of shipping. The merchant has been told and will look at it when the parcel "
            "arrives; contact the merchant if you have questions.",
        ),
        "lost": (
            "The carrier reports that your return parcel is lost.",
            "Contact the carrier with the tracking number below and tell the merchant; keep your proof of shipping.",
        ),
        "returned_to_sender": (
            "The carrier is sending your return parcel back to you.",
            "When it is back, check the label and the address, then send it again with the same label (or ask the "
            "merchant for a new one).",
        ),
        "delivery_failed": (
            "The carrier could not deliver your return parcel to the merchant.",
            "Nothing yet: the carrier tries again. If the parcel comes back to you, contact the merchant.",
        ),
        "held": (
            "The carrier is holding your return parcel: an address, a label or a document may need fixing.",
            "Contact the carrier with the tracking number below to fix what it needs.",
        ),
        "other": (
            "The carrier reports a problem with your return parcel.",
            "Contact the carrier with the tracking number below; the merchant has been told too.",
        ),
    },
    "zh": {
        "delayed": (
            "承运商报告您的退货包裹已延误。",
            "无需操作：包裹仍在运输途中，恢复运输时您的退货页面会显示。",  # noqa: RUF001
        ),
        "damaged": (
            "承运商报告您的退货包裹已损坏。",
            "请保留照片和寄件凭证。商家已收到通知，包裹到达时会查看；如有疑问请联系商家。",  # noqa: RUF001
        ),
        "lost": (
            "承运商报告您的退货包裹已丢失。",
            "请凭下方运单号联系承运商，并告知商家；请保留寄件凭证。",  # noqa: RUF001
        ),
        "returned_to_sender": (
            "承运商正将您的退货包裹退回给您。",
            "包裹退回后，请核对标签和地址，再用同一标签重新寄出（或请商家提供新标签）。",  # noqa: RUF001
        ),
        "delivery_failed": (
            "承运商未能将您的退货包裹投递给商家。",
            "暂时无需操作：承运商会再次投递。如果包裹被退回给您，请联系商家。",  # noqa: RUF001
        ),
        "held": (
            "承运商暂扣了您的退货包裹：可能需要更正地址、标签或文件。",  # noqa: RUF001
            "请凭下方运单号联系承运商，处理所需事项。",  # noqa: RUF001
        ),
        "other": (
            "承运商报告您的退货包裹出现问题。",
            "请凭下方运单号联系承运商；商家也已收到通知。",  # noqa: RUF001
        ),
    },
}
"""A carrier's exception (``return.carrier_exception``, by the carrier's ``reason``; ``other`` when it gave none):
what happened, and what the consumer should do next."""

NOTES: dict[str, dict[str, tuple[str, str]]] = {
    "en": {
        "return.unit_mismatch": (
            "The merchant scanned the unit in your parcel: it is not the one sold to you.",
            "An independent arbiter decides; nothing is paid out until then. Keep your proof of shipping.",
        ),
        "exchange.approved": (
            "The merchant approved your exchange for another unit.",
            "Send the original item back with the return label by the ship-by date; if the replacement costs "
            "more, pay the difference to the merchant.",
        ),
        "exchange.payment_recorded": (
            "The merchant recorded your payment of the price difference.",
            "Nothing: the replacement is released as soon as it is due.",
        ),
        "exchange.replacement_released": (
            "The replacement is released to you: its sale is recorded in your name.",
            "Nothing: it is on its way to you.",
        ),
    },
    "zh": {
        "return.unit_mismatch": (
            "商家扫描了您包裹中的商品：不是售给您的那一件。",  # noqa: RUF001
            "由独立仲裁人裁决；在此之前不会付款。请保留寄件凭证。",  # noqa: RUF001
        ),
        "exchange.approved": (
            "商家已批准您换成另一件。",
            "请在寄出截止日期前贴上退货标签寄回原商品；如换货商品更贵，请向商家支付差价。",  # noqa: RUF001
        ),
        "exchange.payment_recorded": (
            "商家已记录您支付的差价。",
            "无需操作：到期后即发出换货商品。",  # noqa: RUF001
        ),
        "exchange.replacement_released": (
            "换货商品已发给您：其销售已记录在您的名下。",  # noqa: RUF001
            "无需操作：它正在寄给您。",  # noqa: RUF001
        ),
    },
}
"""What a unit check's or an exchange's notification means for the consumer, and what to do next."""

_TEXT = """{{ t.greeting }}

{{ subject }}{{ t.stop }}
{% if happened %}
{{ happened }}
{{ t.next }}: {{ next_step }}

{{ t.tracking }}: {{ data.tracking_number }}
{% if data.location %}{{ t.where }}: {{ data.location }}
{% endif %}{{ t.when }}: {{ when }}
{% endif %}{% if note %}
{{ note }}
{{ t.next }}: {{ note_next }}
{% endif %}{% if code %}{{ t.return }}: {{ code }}
{% endif %}{% if state %}{{ t.state }}: {{ state }}
{% endif %}{% if amount %}{{ t.refund }}: {{ amount }}
{% endif %}{% if fee %}{{ t.fee }}: {{ fee }}
{% endif %}{% if data.closes_at %}{{ t.closes }} {{ closes }}{{ t.stop }}
{% endif %}
{{ t.open }}: {{ link }}
{% if rate_link %}
{{ t.rate }}: {{ rate_link }}
{% endif %}
{{ t.footer }}
"""

_HTML = """<!doctype html>
<html lang="{{ lang }}"><body style="font-family: sans-serif">
<p>{{ t.greeting }}</p>
<p><strong>{{ subject }}</strong></p>
{% if happened %}<p>{{ happened }}</p>
<p><strong>{{ t.next }}:</strong> {{ next_step }}</p>{% endif %}
{% if note %}<p>{{ note }}</p>
<p><strong>{{ t.next }}:</strong> {{ note_next }}</p>{% endif %}
<ul>
{% if happened %}<li>{{ t.tracking }}: <code>{{ data.tracking_number }}</code></li>
{% if data.location %}<li>{{ t.where }}: {{ data.location }}</li>{% endif %}
<li>{{ t.when }}: {{ when }}</li>{% endif %}
{% if code %}<li>{{ t.return }}: <code>{{ code }}</code></li>{% endif %}
{% if state %}<li>{{ t.state }}: {{ state }}</li>{% endif %}
{% if amount %}<li>{{ t.refund }}: <strong>{{ amount }}</strong></li>{% endif %}
{% if fee %}<li>{{ t.fee }}: {{ fee }}</li>{% endif %}
{% if data.closes_at %}<li>{{ t.closes }} {{ closes }}</li>{% endif %}
</ul>
<p><a href="{{ link }}">{{ t.open }}</a></p>
{% if rate_link %}<p><a href="{{ rate_link }}">{{ t.rate }}</a></p>{% endif %}
<p style="color: #666">{{ t.footer }}</p>
</body></html>
"""

_RETURN_ID = re.compile(r"0x[0-9a-fA-F]{64}")

_ENV = Environment(
    loader=DictLoader({"mail.txt": _TEXT, "mail.html": _HTML}),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    keep_trailing_newline=True,
)


def _money(value: Any, units: TokenUnits | None, *, token: str, lang: str) -> str | None:
    """An amount of the payload (base units, as a string) in the token's units with its symbol; without them
    (the node did not say) the integer and what it counts."""
    if value in (None, "", "0", 0):
        return None
    try:
        amount = int(value)
    except (TypeError, ValueError):
        return None
    if units is None:
        return f"{amount} ({LINES[lang]['units']} {token})"
    return short_amount(amount, units.decimals, units.symbol)


def compose(
    *,
    body: str,
    to: str,
    lang: str,
    sender: str,
    public_url: str,
    msg_id: str,
    units: TokenUnits | None = None,
) -> EmailMessage:
    """The e-mail of one delivery (``body``: its stored webhook payload; ``units``: its token's decimals and
    symbol, when known)."""
    payload: dict[str, Any] = json.loads(body)
    lang = lang if lang in SUBJECTS else "en"
    subject = SUBJECTS[lang].get(payload["type"], payload["type"])
    data = payload.get("data", {})
    token = str(data.get("token", ""))
    state = data.get("state")
    closes = ""
    if data.get("closes_at"):
        closes = datetime.fromtimestamp(int(data["closes_at"]), tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    # a closed return asks for the consumer's rating (seed 3.9), on the return's page in the portal
    # the return as the consumer knows it: its label code, and its page in the portal
    return_id = str(data.get("return_id") or "")
    code = label_code(return_id) if _RETURN_ID.fullmatch(return_id) else None
    page = f"{public_url}/returns/{return_id}?lang={lang}" if code else f"{public_url}/?lang={lang}"
    if code and payload["type"].startswith("exchange."):  # the exchange's own page tells what to do next
        page = f"{public_url}/exchanges/{return_id}?lang={lang}"
    note, note_next = NOTES[lang].get(payload["type"], ("", ""))
    # a closed return asks for the consumer's rating (seed 3.9), on the return's page in the portal
    rate_link = f"{page}#feedback" if payload["type"] == RETURN_CLOSED and code else ""
    happened, next_step = "", ""
    if payload["type"] == RETURN_CARRIER_EXCEPTION:
        happened, next_step = EXCEPTIONS[lang].get(str(data.get("reason")), EXCEPTIONS[lang]["other"])
    when = ""
    if data.get("carrier_occurred_at"):
        when = datetime.fromtimestamp(int(data["carrier_occurred_at"]), tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    context = {
        "happened": happened,
        "note": note,
        "note_next": note_next,
        "next_step": next_step,
        "when": when,
        "t": LINES[lang],
        "rate_link": rate_link,
        "subject": subject,
        "data": data,
        "state": STATES[lang].get(state, state) if isinstance(state, str) else None,
        "amount": _money(data.get("amount"), units, token=token, lang=lang),
        "fee": _money(data.get("fee"), units, token=token, lang=lang),
        "closes": closes,
        "link": page,
        "code": code,
        "lang": lang,
    }
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = to
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = f"<{msg_id}@{sender.rpartition('@')[2] or 'localhost'}>"
    message.set_content(_ENV.get_template("mail.txt").render(context))
    message.add_alternative(_ENV.get_template("mail.html").render(context), subtype="html")
    return message


class Mailer:
    """Sends over SMTP to ``settings.smtp_host``: one connection per message (a failure is that attempt's)."""

    def __init__(self, settings: Settings) -> None:
        assert settings.smtp_host is not None
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.timeout = settings.notify_timeout_s

    def send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            smtp.send_message(message)
