"""The expense scenario's files: invoices in every layout and both languages, a cost list, weekly notes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demo_apps.invoices import LAYOUTS, Invoice, Language, make_invoice, write_pdf
from demo_apps.texts import CostLine, write_cost_list, write_weekly_notes

_LANGUAGES: tuple[Language, ...] = ("en", "zh")


@dataclass(frozen=True)
class Scenario:
    invoices: tuple[tuple[Path, Invoice], ...]
    cost_list: Path
    costs: tuple[CostLine, ...]
    weekly_notes: Path
    week: str
    notes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "invoices": [
                {"path": str(path), "expected": invoice.expected_claim()} for path, invoice in self.invoices
            ],
            "cost_list": str(self.cost_list),
            "weekly_notes": str(self.weekly_notes),
            "week": self.week,
        }


def invoice_set(directory: Path, seed: int, count: int) -> list[tuple[Path, Invoice]]:
    """``count`` invoices from consecutive seeds, cycling through every (layout, language) pair."""
    pairs = [(layout, language) for layout in LAYOUTS for language in _LANGUAGES]
    written = []
    for index in range(count):
        layout, language = pairs[index % len(pairs)]
        invoice = make_invoice(seed + index, language, layout)
        path = directory / f"invoice-{index + 1:02d}-{language}-{layout}.pdf"
        written.append((write_pdf(invoice, path), invoice))
    return written


def prepare(directory: Path, seed: int = 1, invoices: int = 6) -> Scenario:
    """Write the scenario's files under ``directory`` (overwriting them); the same seed, the same files."""
    directory.mkdir(parents=True, exist_ok=True)
    cost_list = directory / "cost-list.txt"
    notes_path = directory / "weekly-notes.txt"
    costs = write_cost_list(cost_list, seed)
    week, notes = write_weekly_notes(notes_path, seed)
    return Scenario(
        invoices=tuple(invoice_set(directory / "invoices", seed, invoices)),
        cost_list=cost_list,
        costs=tuple(costs),
        weekly_notes=notes_path,
        week=week,
        notes=tuple(notes),
    )
