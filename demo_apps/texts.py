"""Plain-text fixtures opened in a text editor: a cost list and weekly notes, in Chinese and English.

A cost list is one cost a line, ``item, amount`` (amount as 86.00, no currency sign); the weekly notes
are one finished piece of work a line and nothing else (each line is one item of the weekly report;
the week is typed into the report, not copied). Both are drawn from a seed and returned with what was
written, so a test knows what a macro should copy.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

_COST_ITEMS = (
    "Taxi to client office",
    "Train ticket Beijing-Shanghai",
    "Client dinner",
    "Printer toner",
    "Parking at airport",
    "出租车 客户拜访",
    "高铁票 北京-上海",
    "客户晚餐",
    "办公用品 文件夹",
    "机场停车费",
)
_WORK = (
    "Finished the Q3 budget review",
    "Reviewed 12 expense claims",
    "Met the Contoso team about the renewal",
    "Fixed the login timeout in the portal",
    "Drafted the onboarding checklist",
    "完成第三季度预算审核",
    "与华信公司沟通续约事宜",
    "整理本周报销单据",
    "修复门户登录超时问题",
    "编写新员工入职清单",
)


@dataclass(frozen=True)
class CostLine:
    item: str
    amount: str

    def line(self) -> str:
        return f"{self.item}, {self.amount}"


def write_cost_list(path: Path, seed: int, count: int = 6) -> list[CostLine]:
    """Write ``count`` costs (distinct items, both languages) to ``path``; returns them in file order."""
    if not 1 <= count <= len(_COST_ITEMS):
        raise ValueError(f"count must be 1..{len(_COST_ITEMS)}, not {count}")
    rng = random.Random(seed)
    costs = [
        CostLine(item, f"{Decimal(rng.randint(500, 250_000)) / 100:.2f}")
        for item in rng.sample(_COST_ITEMS, count)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(cost.line() + "\n" for cost in costs), encoding="utf-8")
    return costs


def write_weekly_notes(path: Path, seed: int, count: int = 4) -> tuple[str, list[str]]:
    """Write ``count`` lines of work (both languages) to ``path``; returns (the week they are for, lines)."""
    if not 1 <= count <= 5:
        raise ValueError(f"count must be 1..5 (a weekly report holds at most five items), not {count}")
    rng = random.Random(seed)
    week = f"2025-W{rng.randint(1, 52):02d}"
    lines = rng.sample(_WORK, count)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return week, lines
