"""The consumer's e-mails: one per notification, in Chinese or English, plain text and HTML, over SMTP.

The text is built from the delivery's stored payload (the same body a webhook gets), so a retry sends the same
message; ``Message-ID`` is derived from the notification's id, which lets a mail client fold a repeat. The
address is read when sending and never logged.
"""

from __future__ import annotations

import json
import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from jinja2 import DictLoader, Environment, select_autoescape

from ledger_service.settings import Settings

SUBJECTS: dict[str, dict[str, str]] = {
    "en": {
        "return.requested": "We received your return request",
        "return.approved": "Your return is approved",
        "return.rejected": "Your return request was declined",
        "return.label_ready": "Your return label is ready to print",
        "return.in_transit": "Your return is on its way",
        "return.refund_paid": "Your refund has been paid",
        "return.delivered": "Your return reached the merchant",
        "return.inspected": "Your return has been inspected",
        "return.disputed": "Your dispute was opened",
        "return.resolved": "Your dispute was resolved",
        "return.closed": "Your return is closed",
        "sale.return_window_closing": "Your return window closes soon",
    },
    "zh": {
        "return.requested": "我们已收到您的退货申请",
        "return.approved": "您的退货已获批准",
        "return.rejected": "您的退货申请未获通过",
        "return.label_ready": "您的退货标签已可打印",
        "return.in_transit": "您的退货正在运输途中",
        "return.refund_paid": "您的退款已支付",
        "return.delivered": "商家已收到您的退货",
        "return.inspected": "您的退货已完成检验",
        "return.disputed": "您的争议已提交",
        "return.resolved": "您的争议已处理",
        "return.closed": "您的退货已结束",
        "sale.return_window_closing": "您的退货期限即将结束",
    },
}

LINES: dict[str, dict[str, str]] = {
    "en": {
        "greeting": "Hello,",
        "return": "Return",
        "state": "Status",
        "refund": "Refund",
        "closes": "The return window closes on",
        "open": "See your return",
        "footer": "You receive this e-mail because you gave this address with your purchase.",
    },
    "zh": {
        "greeting": "您好，",  # noqa: RUF001 - Chinese punctuation
        "return": "退货编号",
        "state": "状态",
        "refund": "退款金额",
        "closes": "退货期限截止于",
        "open": "查看您的退货",
        "footer": "您收到此邮件，是因为您在购买时提供了此邮箱地址。",  # noqa: RUF001
    },
}

_TEXT = """{{ t.greeting }}

{{ subject }}.
{% if data.return_id %}{{ t.return }}: {{ data.return_id }}
{% endif %}{% if data.state %}{{ t.state }}: {{ data.state }}
{% endif %}{% if data.amount %}{{ t.refund }}: {{ data.amount }}
{% endif %}{% if data.closes_at %}{{ t.closes }} {{ closes }}.
{% endif %}
{{ t.open }}: {{ link }}

{{ t.footer }}
"""

_HTML = """<!doctype html>
<html lang="{{ lang }}"><body style="font-family: sans-serif">
<p>{{ t.greeting }}</p>
<p><strong>{{ subject }}</strong></p>
<ul>
{% if data.return_id %}<li>{{ t.return }}: <code>{{ data.return_id }}</code></li>{% endif %}
{% if data.state %}<li>{{ t.state }}: {{ data.state }}</li>{% endif %}
{% if data.amount %}<li>{{ t.refund }}: {{ data.amount }}</li>{% endif %}
{% if data.closes_at %}<li>{{ t.closes }} {{ closes }}</li>{% endif %}
</ul>
<p><a href="{{ link }}">{{ t.open }}</a></p>
<p style="color: #666">{{ t.footer }}</p>
</body></html>
"""

_ENV = Environment(
    loader=DictLoader({"mail.txt": _TEXT, "mail.html": _HTML}),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    keep_trailing_newline=True,
)


def compose(*, body: str, to: str, lang: str, sender: str, public_url: str, msg_id: str) -> EmailMessage:
    """The e-mail of one delivery (``body``: its stored webhook payload)."""
    payload: dict[str, Any] = json.loads(body)
    lang = lang if lang in SUBJECTS else "en"
    subject = SUBJECTS[lang].get(payload["type"], payload["type"])
    data = payload.get("data", {})
    closes = ""
    if data.get("closes_at"):
        closes = datetime.fromtimestamp(int(data["closes_at"]), tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    context = {
        "t": LINES[lang],
        "subject": subject,
        "data": data,
        "closes": closes,
        "link": f"{public_url}/?lang={lang}",
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
