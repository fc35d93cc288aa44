"""Invoice PDFs in Chinese and English, in three layouts, generated from a seed with their expected values.

``make_invoice(seed)`` draws an ``Invoice`` (vendor, number, date, line items, tax rate, language and
layout) deterministically from ``seed``; ``write_pdf(invoice, path)`` draws it with reportlab, text as
real PDF text (a viewer's accessibility and text search can read it) in WenQuanYi Micro Hei, which has
the CJK glyphs. ``Invoice.expected_claim()`` is what a correct expense claim for it holds, in the
portal's stored form: ``amount`` is the total including tax, ``tax`` the tax part, both "1234.50".
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Literal

Language = Literal["en", "zh"]
Layout = Literal["classic", "modern", "fapiao"]
LANGUAGES: tuple[Language, ...] = ("en", "zh")
LAYOUTS: tuple[Layout, ...] = ("classic", "modern", "fapiao")
FONT_PATH = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
FONT = "WenQuanYiMicroHei"
CENT = Decimal("0.01")

_VENDORS = {
    "en": [
        "Northwind Traders Ltd",
        "Contoso Office Supply",
        "Blue Harbor Hotel",
        "Metro Cab Company",
        "Fabrikam Software Inc",
        "Lakeside Catering Co",
    ],
    "zh": [
        "北京华信办公用品有限公司",
        "上海锦江之星酒店管理有限公司",
        "深圳市鹏程出租汽车有限公司",
        "杭州云途软件科技有限公司",
        "广州味道餐饮管理有限公司",
        "成都蓝天商务服务有限公司",
    ],
}
_ITEMS = {
    "en": [
        ("Printer paper A4, box", "office"),
        ("Hotel room, one night", "lodging"),
        ("Airport taxi", "transport"),
        ("Team lunch", "meals"),
        ("Software licence, 1 year", "software"),
        ("Conference ticket", "travel"),
        ("Toner cartridge", "office"),
    ],
    "zh": [
        ("A4打印纸（箱）", "office"),
        ("标准间住宿一晚", "lodging"),
        ("机场出租车费", "transport"),
        ("团队工作午餐", "meals"),
        ("软件许可一年", "software"),
        ("会议注册费", "travel"),
        ("硒鼓", "office"),
    ],
}
_TAX_RATES = (Decimal("0.06"), Decimal("0.09"), Decimal("0.13"))


@dataclass(frozen=True)
class LineItem:
    description: str
    quantity: int
    unit_price: Decimal

    @property
    def total(self) -> Decimal:
        return (self.unit_price * self.quantity).quantize(CENT, ROUND_HALF_UP)


@dataclass(frozen=True)
class Invoice:
    seed: int
    language: Language
    layout: Layout
    vendor: str
    invoice_number: str
    invoice_date: date
    items: tuple[LineItem, ...]
    tax_rate: Decimal
    category: str
    buyer: str = field(default="Shadowdesk Demo Co")

    @property
    def subtotal(self) -> Decimal:
        return sum((item.total for item in self.items), Decimal("0.00"))

    @property
    def tax(self) -> Decimal:
        return (self.subtotal * self.tax_rate).quantize(CENT, ROUND_HALF_UP)

    @property
    def amount(self) -> Decimal:
        """The total the invoice asks for, tax included."""
        return self.subtotal + self.tax

    @property
    def printed_date(self) -> str:
        """The date as the invoice prints it: 2025-03-14 in English, 2025年03月14日 in Chinese."""
        if self.language == "zh":
            return f"{self.invoice_date.year}年{self.invoice_date.month:02d}月{self.invoice_date.day:02d}日"
        return self.invoice_date.isoformat()

    def expected_claim(self) -> dict[str, str]:
        """The fields of a correct claim for this invoice, as the portal stores them."""
        return {
            "vendor": self.vendor,
            "invoice_number": self.invoice_number,
            "invoice_date": self.invoice_date.isoformat(),
            "amount": f"{self.amount:.2f}",
            "tax": f"{self.tax:.2f}",
            "category": self.category,
        }


def make_invoice(seed: int, language: Language | None = None, layout: Layout | None = None) -> Invoice:
    """The invoice of ``seed``; ``language`` and ``layout`` are drawn from it unless given."""
    rng = random.Random(seed)
    language = language or rng.choice(LANGUAGES)
    layout = layout or rng.choice(LAYOUTS)
    if language not in LANGUAGES or layout not in LAYOUTS:
        raise ValueError(f"unknown language {language!r} or layout {layout!r}")
    picked = rng.sample(_ITEMS[language], rng.randint(1, 3))
    items = tuple(
        LineItem(text, rng.randint(1, 4), Decimal(rng.randint(800, 90_000)) / 100) for text, _ in picked
    )
    number = rng.randint(10_000_000, 99_999_999)
    return Invoice(
        seed=seed,
        language=language,
        layout=layout,
        vendor=rng.choice(_VENDORS[language]),
        invoice_number=f"INV-{number}" if language == "en" else str(number),
        invoice_date=date(2025, 1, 1) + timedelta(days=rng.randint(0, 364)),
        items=items,
        tax_rate=rng.choice(_TAX_RATES),
        category=picked[0][1],
        buyer="Shadowdesk Demo Co" if language == "en" else "影桌演示有限公司",
    )


def money(value: Decimal, language: Language) -> str:
    return f"¥{value:,.2f}" if language == "zh" else f"{value:,.2f}"


def write_pdf(invoice: Invoice, path: Path) -> Path:
    """Draw ``invoice`` into ``path`` (its title is "Invoice <number>"); returns ``path``."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen.canvas import Canvas

    from demo_apps import _layouts

    if FONT not in pdfmetrics.getRegisteredFontNames():
        if not FONT_PATH.exists():
            raise FileNotFoundError(f"{FONT_PATH} is missing (scripts/setup.sh installs fonts-wqy-microhei)")
        pdfmetrics.registerFont(TTFont(FONT, str(FONT_PATH), subfontIndex=0))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas = Canvas(str(path), pagesize=A4, invariant=True)
    canvas.setTitle(f"Invoice {invoice.invoice_number}")
    canvas.setAuthor(invoice.vendor)
    {"classic": _layouts.classic, "modern": _layouts.modern, "fapiao": _layouts.fapiao}[invoice.layout](
        canvas, invoice
    )
    canvas.showPage()
    canvas.save()
    return path
