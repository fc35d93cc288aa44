"""``python -m demo_apps.office --dir DIR``: the documents of an office worker's desktop for the demo.

Four browser pages (an intranet travel policy in Chinese, a Kafka runbook, a trip request, a team
wiki page), meeting notes for the text editor, an invoice PDF for the PDF viewer and a deploy log for
the terminal: Chinese and English, with the ids, amounts, names and dates people search for. Prints
one JSON line naming the files (``Office.to_json``). ``shadowdesk up`` opens them on its virtual
desktop (``shadowdesk.office``); the ``TRY`` queries are what its first run shows finding them.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from demo_apps.invoices import make_invoice, write_pdf


@dataclass(frozen=True)
class Page:
    file: str
    title: str  # the <title>: Chromium's window title begins with it
    lines: tuple[str, ...]


PAGES: tuple[Page, ...] = (
    Page(
        "travel-policy.html",
        "差旅报销政策 2026 - Northwind 内网",
        (
            "差旅报销政策（2026年版）",
            "出租车：每天最多 200 元，须附行程单",
            "住宿：一线城市每晚不超过 650 元，其他城市 450 元",
            "报销截止：每月 25 日前提交上月单据",
            "审批：部门经理 王芳 审批后，财务 3 个工作日内付款",
        ),
    ),
    Page(
        "kafka-runbook.html",
        "Kafka topic orders-v2 runbook - Team wiki",
        (
            "Runbook: Kafka topic orders-v2",
            "Partitions: 12, replication factor 3, retention 168 hours",
            "Consumer lag alert fires above 50,000 messages for 10 minutes",
            "On-call this week: Li Na (李娜), backup Chen Wei",
            "Restart a stuck consumer: kubectl rollout restart deploy/order-consumer",
        ),
    ),
    Page(
        "trip-request.html",
        "Trip request TR-3318 - Northwind travel",
        (
            "Trip request TR-3318 出差申请",
            "Shanghai → Shenzhen, December 9-11",
            "Flight MU5331 departs 08:05 from Hongqiao, seat 14C",
            "Hotel: Futian Marriott, 3 nights, 580 CNY per night",
            "Purpose: Contoso renewal meeting / 华信公司续约会议",
        ),
    ),
    Page(
        "release-notes.html",
        "Payments API 2.14 release notes - Team wiki",
        (
            "Payments API 2.14.3 release notes",
            "New: refunds over 10,000 CNY need a second approver",
            "Fixed: login timeout after 15 minutes in the portal",
            "发布窗口：周四 22:00-23:00，回滚负责人 张伟",
        ),
    ),
)

NOTES_FILE = "meeting-notes.txt"
NOTES = (
    "周会纪要 Weekly sync, Monday",
    "- 第三季度预算评审改到周四下午 3 点",
    "- Wang Fang renews the Contoso contract HT-2026-0457 by Friday",
    "- 李娜 follows up the orders-v2 consumer lag alert",
    "- Budget for the team offsite: 12,000 CNY",
)
# What the demo types into the notes while its history is recorded (a user at work, not a file).
TYPED_NOTE = "TODO: 提交十一月差旅报销 before the 25th"

LOG_FILE = "deploy.log"
LOG = (
    "$ ./deploy.sh payments-api 2.14.3 --env prod",
    "[10:42:07] building image payments-api:2.14.3 ... done",
    "[10:43:15] rolling out to 6 pods",
    "[10:43:52] ERROR pod payments-api-7f9c: connection refused db-prod-3:5432",
    "[10:44:30] rollback to 2.14.2 started by zhang.wei",
)

# First queries the demo suggests, each with (part of) the title of the window it should find first
# (the sidebar's own suggestions come from the history; these are what the first run checks and prints).
TRY = (
    ("出租车 每天 报销", PAGES[0].title),
    ("who is on call for orders-v2", PAGES[1].title),
    ("HT-2026-0457", NOTES_FILE),
    ("Shenzhen trip flight", PAGES[2].title),
    ("部署失败 payments-api", "deploy payments-api"),
)


@dataclass(frozen=True)
class Office:
    pages: tuple[Path, ...]
    notes: Path
    log: Path
    invoice: Path
    invoice_title: str

    def to_json(self) -> dict[str, object]:
        return {
            "pages": [str(page) for page in self.pages],
            "notes": str(self.notes),
            "log": str(self.log),
            "invoice": str(self.invoice),
            "invoice_title": self.invoice_title,
            "typed_note": TYPED_NOTE,
            "try": [{"query": query, "finds": finds} for query, finds in TRY],
        }


def _page_html(page: Page) -> str:
    # Large type, as a user zooms an intranet page: the frames' OCR reads it as well as the a11y tree.
    body = "".join(f"<p>{html.escape(line)}</p>" for line in page.lines[1:])
    return (
        f"<!doctype html><html lang='zh'><meta charset='utf-8'><title>{html.escape(page.title)}</title>"
        "<style>body{font:24px 'WenQuanYi Micro Hei',sans-serif;margin:36px;color:#1b1b1b}"
        "h1{font-size:30px;color:#0b4f8a}</style>"
        f"<h1>{html.escape(page.lines[0])}</h1>{body}</html>"
    )


def write_office(directory: Path) -> Office:
    """Write the documents under ``directory`` (overwriting them); the same files every time."""
    directory.mkdir(parents=True, exist_ok=True)
    pages = []
    for page in PAGES:
        path = directory / page.file
        path.write_text(_page_html(page), encoding="utf-8")
        pages.append(path)
    notes = directory / NOTES_FILE
    notes.write_text("\n".join(NOTES) + "\n", encoding="utf-8")
    log = directory / LOG_FILE
    log.write_text("\n".join(LOG) + "\n", encoding="utf-8")
    invoice = make_invoice(7, "zh", "fapiao")
    pdf = write_pdf(invoice, directory / "invoice.pdf")
    return Office(tuple(pages), notes, log, pdf, f"Invoice {invoice.invoice_number}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo_apps.office")
    parser.add_argument("--dir", required=True, type=Path, help="where the documents go")
    args = parser.parse_args(argv)
    sys.stdout.write(json.dumps(write_office(args.dir).to_json(), ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
