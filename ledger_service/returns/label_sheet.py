"""A return's printable label: a PDF page (4x6 in or A6) or a PNG of it, and the label-less QR code alone.

On the label: the sender as the consumer chose (:mod:`ledger_service.returns.senders`: the wallet address
shortened, the default, or a name they typed, as initials or whole, with an optional city / postcode line),
the merchant, the label code, a Code 128
barcode of the carrier's tracking number (given by :mod:`ledger_service.logistics`; when no carrier is
configured the label code stands in, and the label says so) and a QR code of the return's public verify
page. Text in Chinese or English, set in a CJK font
found on this machine (Debian's fonts-wqy-microhei); nothing is downloaded.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ledger_service.core.codes import ReturnState
from ledger_service.core.masking import mask_address, name_initials
from ledger_service.errors import ConfigurationError, ConflictError
from ledger_service.returns.labels import label_code
from ledger_service.returns.views import policy_history
from ledger_service.store import Store
from ledger_service.store.label_senders import LabelSenderRow, printed_label_sender
from ledger_service.store.returns import ReturnRow

if TYPE_CHECKING:
    from reportlab.pdfgen.canvas import Canvas

# reportlab, pypdfium2 and Pillow are imported by the functions that render (a tenth of a second of every API
# worker's start otherwise); reportlab's units, the same figures:
inch = 72.0
_MM = inch / 2.54 * 0.1
A6 = (105 * _MM, 148 * _MM)

Size = Literal["4x6", "a6"]
Lang = Literal["zh", "en"]
Format = Literal["pdf", "png", "qr"]
ShowAs = Literal["wallet", "initials", "full"]
SHOW_AS: tuple[ShowAs, ...] = ("wallet", "initials", "full")
MEDIA_TYPES: dict[Format, str] = {"pdf": "application/pdf", "png": "image/png", "qr": "image/png"}

PAGE_SIZES: dict[Size, tuple[float, float]] = {"4x6": (4 * inch, 6 * inch), "a6": A6}
PNG_DPI = 600
"""Resolution of the PNG: the 52-character code's Code 128 modules are under half a point wide, and at
lower resolutions their pixel rounding keeps scanners from reading the A6 label."""

FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
)
_FONT = "LabelCJK"
_font_lock = threading.Lock()
_font_ready = False


class LabelFontMissingError(ConfigurationError):
    """No font that renders Chinese is installed."""


@dataclass(frozen=True, slots=True)
class LabelData:
    """What a label prints."""

    code: str
    """The label code (RMA-...)."""
    sender: str
    """The sender as printed: the masked wallet address, initials or a full name."""
    merchant: str
    """The merchant's account address."""
    return_address: str
    """The return address from the merchant's current policy ("" when it publishes none)."""
    tracking: str | None
    """The carrier's tracking number; None: the label code is encoded in its place."""
    verify_url: str
    show_as: ShowAs = "wallet"
    """What ``sender`` is, for the line that says so."""
    locality: str = ""
    """The sender's city / postcode line ("" when the consumer gave none)."""


_TEXTS: dict[Lang, dict[str, str]] = {
    "en": {
        "title": "RETURN",
        "from_wallet": "From (masked)",
        "from_initials": "From (initials)",
        "from_full": "From",
        "to": "Return to merchant",
        "no_address": "The merchant has published no return address: ask the merchant before shipping.",
        "code": "Return code",
        "tracking": "Tracking number",
        "no_tracking": "No carrier tracking number yet: the barcode carries the return code.",
        "scan": "Scan to verify this return",
        "note_wallet": "Sender shown masked: only the start and end of the wallet address are printed.",
        "note_initials": "Sender shown by initials, as the consumer chose.",
        "note_full": "Sender's name as the consumer gave it.",
    },
    "zh": {
        "title": "退货",
        "from_wallet": "寄件人（已隐去）",  # noqa: RUF001 (Chinese punctuation)
        "from_initials": "寄件人（缩写）",  # noqa: RUF001
        "from_full": "寄件人",
        "to": "退回商家",
        "no_address": "商家尚未公布退货地址：寄出前请先联系商家。",  # noqa: RUF001
        "code": "退货码",
        "tracking": "运单号",
        "no_tracking": "尚无承运商运单号：条码内容为退货码。",  # noqa: RUF001
        "scan": "扫码核验此退货",
        "note_wallet": "寄件人已隐去：仅打印钱包地址的首尾字符。",  # noqa: RUF001
        "note_initials": "寄件人按消费者的选择以缩写显示。",
        "note_full": "寄件人姓名由消费者提供。",
    },
}


def _ensure_font() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    global _font_ready
    with _font_lock:
        if _font_ready:
            return
        for path in FONT_CANDIDATES:
            if path.is_file():
                pdfmetrics.registerFont(TTFont(_FONT, str(path), subfontIndex=0))
                _font_ready = True
                return
    raise LabelFontMissingError(
        "no CJK font for labels: install Debian's fonts-wqy-microhei (scripts/bootstrap.sh does) "
        f"so that one of {', '.join(str(p) for p in FONT_CANDIDATES)} exists"
    )


def unprintable(text: str) -> list[str]:
    """The characters of ``text`` the label's font has no glyph for (each once, in order): they would print as
    empty boxes. :class:`LabelFontMissingError` without the font."""
    from reportlab.pdfbase import pdfmetrics

    _ensure_font()
    glyphs = pdfmetrics.getFont(_FONT).face.charToGlyph
    missing: list[str] = []
    for ch in text:
        if ch != " " and ord(ch) not in glyphs and ch not in missing:
            missing.append(ch)
    return missing


def _wrap(text: str, width: float, size: float) -> list[str]:
    """Break ``text`` into lines that fit ``width`` (by character: Chinese has no spaces)."""
    from reportlab.pdfbase import pdfmetrics

    lines: list[str] = []
    current = ""
    for ch in text:
        if pdfmetrics.stringWidth(current + ch, _FONT, size) > width and current:
            lines.append(current.rstrip())
            current = "" if ch == " " else ch
        else:
            current += ch
    if current:
        lines.append(current)
    return lines


def label_pdf(data: LabelData, *, size: Size = "4x6", lang: Lang = "en") -> bytes:
    """The label as a one-page PDF."""
    from reportlab.graphics.barcode.code128 import Code128
    from reportlab.pdfgen.canvas import Canvas

    _ensure_font()
    t = _TEXTS[lang]
    width, height = PAGE_SIZES[size]
    margin = 0.15 * inch
    inner = width - 2 * margin
    out = io.BytesIO()
    pdf = Canvas(out, pagesize=(width, height), invariant=True)
    pdf.setTitle(f"{t['title']} {data.code}")
    y = height - margin

    def text(line: str, size_pt: float, *, gap: float = 2) -> None:
        nonlocal y
        for part in _wrap(line, inner, size_pt):
            y -= size_pt + gap
            pdf.setFont(_FONT, size_pt)
            pdf.drawString(margin, y, part)

    text(t["title"], 22)
    y -= 4
    text(f"{t['from_' + data.show_as]}: {data.sender}", 9)
    if data.locality:
        text(data.locality, 9)
    text(t["note_" + data.show_as], 6.5)
    y -= 4
    text(f"{t['to']}:", 9)
    for line in data.return_address.splitlines() if data.return_address else [t["no_address"]]:
        text(line, 11 if data.return_address else 8)
    text(data.merchant, 6.5)
    y -= 6
    pdf.line(margin, y, width - margin, y)
    text(f"{t['code']}:", 8)
    text(data.code, 7.5)

    # Code 128 across the full width: 52 characters need every point of it
    value = data.tracking or data.code
    bar_height = 0.9 * inch
    quiet = 10  # modules of quiet zone each side, as the symbology asks
    modules = 11 * (len(value) + 3) + 2 + 2 * quiet
    bar_width = inner / modules
    barcode = Code128(
        value, barWidth=bar_width, barHeight=bar_height, quiet=1, lquiet=quiet * bar_width, rquiet=quiet * bar_width
    )
    y -= 6 + bar_height
    barcode.drawOn(pdf, margin, y)
    text(f"{t['tracking']}: {value}" if data.tracking else t["no_tracking"], 6.5)

    # QR code of the verify page, as large as the space left allows
    qr_side = min(inner * 0.55, y - margin - 24)
    y -= 6
    _draw_qr(pdf, data.verify_url, margin, y - qr_side, qr_side)
    pdf.setFont(_FONT, 8)
    for i, part in enumerate(_wrap(t["scan"], inner - qr_side - 8, 8)):
        pdf.drawString(margin + qr_side + 8, y - 12 - i * 10, part)
    pdf.showPage()
    pdf.save()
    return out.getvalue()


QR_BORDER = 4
"""Modules of quiet zone around the QR code, as the symbology asks."""


def _draw_qr(pdf: Canvas, url: str, x: float, y: float, side: float) -> None:
    """The QR code (level M) of ``url`` in a ``side`` square at (x, y): reportlab's encoder, each row's runs of
    dark modules drawn as one path (its graphics widget builds a validated shape per run, most of a label's
    rendering time)."""
    from reportlab.graphics.barcode import qrencoder

    qr = qrencoder.QRCode(None, qrencoder.QRErrorCorrectLevel.M)
    qr.addData(url)
    qr.make()
    count = qr.getModuleCount()
    box = side / (count + 2 * QR_BORDER)
    path = pdf.beginPath()
    for r, row in enumerate(qr.modules):
        top = y + side - (QR_BORDER + r + 1) * box
        c = 0
        while c < count:
            if not row[c]:
                c += 1
                continue
            start = c
            while c < count and row[c]:
                c += 1
            path.rect(x + (QR_BORDER + start) * box, top, (c - start) * box, box)
    pdf.drawPath(path, stroke=0, fill=1)


def qr_pdf(url: str, *, side: float = 2 * inch) -> bytes:
    """The label-less QR code alone, on a square page."""
    from reportlab.pdfgen.canvas import Canvas

    out = io.BytesIO()
    pdf = Canvas(out, pagesize=(side, side), invariant=True)
    _draw_qr(pdf, url, 0, 0, side)
    pdf.showPage()
    pdf.save()
    return out.getvalue()


def pdf_to_png(pdf: bytes, *, dpi: int = PNG_DPI) -> bytes:
    """The first page of ``pdf`` as a black-and-white PNG (rendered by PDFium)."""
    import pypdfium2
    from PIL import Image

    document = pypdfium2.PdfDocument(pdf)
    try:
        image = document[0].render(scale=dpi / 72, grayscale=True).to_pil()
    finally:
        document.close()
    out = io.BytesIO()
    # one bit a pixel, as label printers print: a quarter of the bytes of an 8-bit grey PNG, deflated five times
    # faster (most of a PNG label's time), and the codes decode the same; no optimize pass either
    image.convert("L").convert("1", dither=Image.Dither.NONE).save(out, format="PNG")
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class RenderedLabel:
    """A label file ready to send."""

    content: bytes
    media_type: str
    filename: str


def check_labelable(ret: ReturnRow) -> None:
    """Raises ConflictError unless the return is authorized: once it shipped or ended, a label would send a
    parcel nobody expects."""
    if ret.state is not ReturnState.AUTHORIZED:
        raise ConflictError(
            f"return {ret.return_id} is {ret.state.name.lower().replace('_', ' ')}: a label is only issued for an "
            "approved return that has not shipped yet"
        )


def return_label(
    store: Store,
    ret: ReturnRow,
    *,
    public_url: str,
    size: Size,
    format: Format,
    lang: Lang,
    tracking: str | None = None,
) -> RenderedLabel:
    """The label of an authorized return (``format`` qr: the verify page's QR code alone), its Code 128 the
    carrier's ``tracking`` number (None: the label code). ConflictError as :func:`check_labelable` says."""
    check_labelable(ret)
    code = label_code(ret.return_id)
    verify_url = f"{public_url.rstrip('/')}/verify/{code}"
    if format == "qr":
        return RenderedLabel(pdf_to_png(qr_pdf(verify_url)), MEDIA_TYPES[format], f"{code}-qr.png")
    sender, show_as, locality = printed_sender(store, ret)
    data = LabelData(
        code=code,
        sender=sender,
        show_as=show_as,
        locality=locality,
        merchant=ret.merchant,
        return_address=return_address(store, ret.merchant),
        tracking=tracking,
        verify_url=verify_url,
    )
    pdf = label_pdf(data, size=size, lang=lang)
    content = pdf if format == "pdf" else pdf_to_png(pdf)
    return RenderedLabel(content, MEDIA_TYPES[format], f"{code}-{size}.{format}")


def printed_sender(store: Store, ret: ReturnRow) -> tuple[str, ShowAs, str]:
    """The sender a label of ``ret`` prints (text, what it is, the city / postcode line), as its consumer chose;
    printing fixes the choice (:func:`ledger_service.store.label_senders.printed_label_sender`)."""
    return sender_text(ret.consumer, printed_label_sender(store, return_id=ret.return_id, now=int(time.time())))


def sender_text(consumer: str, chosen: LabelSenderRow | None) -> tuple[str, ShowAs, str]:
    """The sender line of a label for ``consumer``'s choice ``chosen`` (None: none made): text, what it is, and
    the city / postcode line."""
    locality = (chosen.locality or "") if chosen is not None else ""
    if chosen is None or not chosen.name or chosen.show_as not in ("initials", "full"):
        return mask_address(consumer), "wallet", locality
    if chosen.show_as == "full":
        return chosen.name, "full", locality
    return name_initials(chosen.name), "initials", locality


def return_address(store: Store, merchant: str) -> str:
    """The return address of the merchant's current policy: where the parcel goes now, even if the return
    was authorized under an older version."""
    history = policy_history(store, merchant)
    document = history[0].document if history else None
    return document.return_address if document is not None else ""
