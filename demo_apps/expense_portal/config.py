"""What one portal instance is: its database, its users, its admin token and its faults."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

# The claim's fields in form order: (name, English label, Chinese label).
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("vendor", "Vendor", "供应商"),
    ("invoice_number", "Invoice number", "发票号码"),
    ("invoice_date", "Invoice date", "开票日期"),
    ("amount", "Amount (tax included)", "金额（含税）"),
    ("tax", "Tax", "税额"),
    ("category", "Category", "费用类别"),
    ("cost_centre", "Cost centre", "成本中心"),
)
FIELD_NAMES = frozenset(name for name, _, _ in FIELDS)
# (value, option text) of the category drop-down.
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("travel", "Travel 差旅"),
    ("lodging", "Accommodation 住宿"),
    ("transport", "Transport 交通"),
    ("meals", "Meals 餐饮"),
    ("office", "Office supplies 办公用品"),
    ("software", "Software 软件"),
    ("other", "Other 其他"),
)
# A weekly report's items: at most this many, each at most this long.
REPORT_LINES = 5
MAX_ITEM_CHARS = 500
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024


class Faults(BaseModel):
    """Faults a test switches on; the defaults are a healthy portal.

    ``drop_field``: a claim field stored empty on submit, silently (the confirmation shows what was stored).
    ``error``: how many of the next form posts answer with a server error page and store nothing
    (-1: all of them). ``slow_s``: every page answers this many seconds late. ``modal``: every form page
    opens a modal notice that must be dismissed before the form can be used.
    """

    model_config = ConfigDict(extra="forbid")

    drop_field: str | None = None
    error: int = Field(default=0, ge=-1)
    slow_s: float = Field(default=0.0, ge=0.0, le=120.0)
    modal: bool = False

    @field_validator("drop_field")
    @classmethod
    def _known_field(cls, value: str | None) -> str | None:
        if value is not None and value not in FIELD_NAMES:
            raise ValueError(f"unknown claim field {value!r}; one of {sorted(FIELD_NAMES)}")
        return value


@dataclass
class PortalConfig:
    database: Path
    users: dict[str, str] = field(default_factory=lambda: {"alice": "expenses-2025"})
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    faults: Faults = field(default_factory=Faults)
    # Each form page answers with this in its <title>, so window titles name the page.
    title: str = "Expense Portal"
