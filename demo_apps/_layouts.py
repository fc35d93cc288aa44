"""The three invoice layouts: a classic letterhead, a modern two-column one, and a fapiao-style grid."""

from __future__ import annotations

from typing import TYPE_CHECKING

from demo_apps.invoices import FONT, Invoice, money

if TYPE_CHECKING:
    from reportlab.pdfgen.canvas import Canvas

WIDTH, HEIGHT = 595.0, 842.0  # A4 in points
_LABELS = {
    "en": {
        "title": "INVOICE",
        "number": "Invoice No.",
        "date": "Invoice Date",
        "bill_to": "Bill to",
        "item": "Description",
        "qty": "Qty",
        "price": "Unit price",
        "line": "Amount",
        "subtotal": "Subtotal",
        "tax": "Tax",
        "total": "Total",
        "seller": "Seller",
        "buyer": "Buyer",
    },
    "zh": {
        "title": "增值税普通发票",
        "number": "发票号码",
        "date": "开票日期",
        "bill_to": "购买方",
        "item": "项目名称",
        "qty": "数量",
        "price": "单价",
        "line": "金额",
        "subtotal": "合计",
        "tax": "税额",
        "total": "价税合计",
        "seller": "销售方",
        "buyer": "购买方",
    },
}


def _text(canvas: Canvas, x: float, y: float, text: str, size: float = 11, right: bool = False) -> None:
    canvas.setFont(FONT, size)
    if right:
        canvas.drawRightString(x, y, text)
    else:
        canvas.drawString(x, y, text)


def _items(canvas: Canvas, invoice: Invoice, top: float, left: float = 50, right: float = 545) -> float:
    """The table of line items from ``top`` down; returns the y below it."""
    labels = _LABELS[invoice.language]
    columns = (left, right - 200, right - 110, right)
    _text(canvas, columns[0], top, labels["item"], 10)
    _text(canvas, columns[1], top, labels["qty"], 10, right=True)
    _text(canvas, columns[2], top, labels["price"], 10, right=True)
    _text(canvas, columns[3], top, labels["line"], 10, right=True)
    canvas.line(left, top - 6, right, top - 6)
    y = top - 24
    for item in invoice.items:
        _text(canvas, columns[0], y, item.description, 10)
        _text(canvas, columns[1], y, str(item.quantity), 10, right=True)
        _text(canvas, columns[2], y, money(item.unit_price, invoice.language), 10, right=True)
        _text(canvas, columns[3], y, money(item.total, invoice.language), 10, right=True)
        y -= 20
    canvas.line(left, y + 8, right, y + 8)
    return y - 10


def _totals(canvas: Canvas, invoice: Invoice, y: float, right: float = 545) -> None:
    labels = _LABELS[invoice.language]
    rate = f"{invoice.tax_rate * 100:.0f}%"
    rows = [
        (labels["subtotal"], money(invoice.subtotal, invoice.language)),
        (f"{labels['tax']} ({rate})", money(invoice.tax, invoice.language)),
        (labels["total"], money(invoice.amount, invoice.language)),
    ]
    for label, value in rows:
        _text(canvas, right - 130, y, label, 11, right=True)
        _text(canvas, right, y, value, 11, right=True)
        y -= 18


def classic(canvas: Canvas, invoice: Invoice) -> None:
    """Vendor letterhead at the top left, the title and number at the top right, items, totals."""
    labels = _LABELS[invoice.language]
    _text(canvas, 50, HEIGHT - 70, invoice.vendor, 16)
    _text(canvas, 545, HEIGHT - 70, labels["title"], 20, right=True)
    _text(canvas, 545, HEIGHT - 95, f"{labels['number']}: {invoice.invoice_number}", 11, right=True)
    _text(canvas, 545, HEIGHT - 112, f"{labels['date']}: {invoice.printed_date}", 11, right=True)
    _text(canvas, 50, HEIGHT - 150, f"{labels['bill_to']}: {invoice.buyer}", 11)
    y = _items(canvas, invoice, HEIGHT - 200)
    _totals(canvas, invoice, y - 10)


def modern(canvas: Canvas, invoice: Invoice) -> None:
    """A shaded band with the title, a box of facts at the left, the vendor at the bottom."""
    labels = _LABELS[invoice.language]
    canvas.setFillGray(0.9)
    canvas.rect(0, HEIGHT - 110, WIDTH, 110, stroke=0, fill=1)
    canvas.setFillGray(0)
    _text(canvas, 50, HEIGHT - 70, labels["title"], 24)
    facts = [
        (labels["number"], invoice.invoice_number),
        (labels["date"], invoice.printed_date),
        (labels["buyer"], invoice.buyer),
        (labels["seller"], invoice.vendor),
    ]
    y = HEIGHT - 150
    for label, value in facts:
        _text(canvas, 50, y, label, 9)
        _text(canvas, 160, y, value, 11)
        y -= 20
    y = _items(canvas, invoice, y - 30)
    _totals(canvas, invoice, y - 10)
    _text(canvas, 50, 60, invoice.vendor, 9)


def fapiao(canvas: Canvas, invoice: Invoice) -> None:
    """A ruled grid like a VAT fapiao: number and date top right, buyer and seller rows, items, total."""
    labels = _LABELS[invoice.language]
    _text(canvas, WIDTH / 2 - 90, HEIGHT - 60, labels["title"], 18)
    _text(canvas, 400, HEIGHT - 90, f"{labels['number']} {invoice.invoice_number}", 10)
    _text(canvas, 400, HEIGHT - 106, f"{labels['date']} {invoice.printed_date}", 10)
    canvas.rect(40, HEIGHT - 180, WIDTH - 80, 60)
    _text(canvas, 50, HEIGHT - 145, f"{labels['buyer']}  {invoice.buyer}", 10)
    _text(canvas, 50, HEIGHT - 168, f"{labels['seller']}  {invoice.vendor}", 10)
    y = _items(canvas, invoice, HEIGHT - 210)
    _totals(canvas, invoice, y - 10)
    canvas.rect(40, y - 50, WIDTH - 80, HEIGHT - 190 - (y - 50))
