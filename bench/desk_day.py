"""A scripted "day at the desk": real apps on a real X11 desktop showing English and Chinese content.

Used by the end-to-end recall test and by the recall quality benchmark. Each item is a document a
person would look at: web pages in Chromium, notes in mousepad, a log in xterm. ``run_day`` opens
them all, then focuses each in turn for ``dwell_s`` seconds, so the agent streams what a user saw.
``QUERIES`` is the labelled query set: each query names the item a person would want back.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from harness.dbus import SessionBus
from harness.processes import ServerProcess, ShadowdeskProcess, desktop_agent
from shadowdesk_common.desktop import VirtualDesktop


@dataclass(frozen=True)
class Item:
    key: str
    app: str  # "chromium", "mousepad" or "xterm"
    title: str  # the document's own title; the window title contains it
    lines: tuple[str, ...]


ITEMS: tuple[Item, ...] = (
    Item(
        "invoice",
        "chromium",
        "Invoice INV-2041",
        (
            "Acme Corp - Invoice INV-2041",
            "Consulting services, November",
            "Total due: 1,280.00 USD",
            "Payment due by December 1",
        ),
    ),
    Item(
        "kafka",
        "chromium",
        "Kafka topic settings",
        (
            "Topic orders-v2 configuration",
            "retention hours: 168 (one week)",
            "cleanup policy: compact",
            "replication factor: 3",
        ),
    ),
    Item(
        "flight",
        "chromium",
        "Flight confirmation",
        (
            "Flight UA 857 San Francisco to Shanghai",
            "Departure 11:20, seat 32A",
            "Booking reference QX7P2L",
        ),
    ),
    Item(
        "leave",
        "chromium",
        "Parental leave policy",
        (
            "Parental leave policy",
            "Employees get 26 weeks of paid leave",
            "Apply through the HR portal",
        ),
    ),
    Item(
        "expense",
        "chromium",
        "差旅报销单",
        (
            "差旅报销单",
            "报销金额：356 元",
            "出差地点：杭州",
            "审批人：王经理",
        ),
    ),
    Item(
        "contract",
        "chromium",
        "采购合同",
        (
            "采购合同 编号 HT-2026-118",
            "供应商：华东电子有限公司",
            "合同总价：48 万元",
        ),
    ),
    Item(
        "weather",
        "chromium",
        "上海天气预报",
        (
            "上海天气预报",
            "明天小雨",
            "气温 12 到 18 度",
        ),
    ),
    Item(
        "hiring",
        "chromium",
        "招聘 高级后端工程师",
        (
            "招聘：高级后端工程师",
            "要求熟悉 Go 语言和 Kubernetes",
            "工作地点：深圳",
        ),
    ),
    Item(
        "runbook",
        "chromium",
        "Deployment runbook",
        (
            "Deployment runbook for the payments API",
            "kubectl rollout restart deployment payments",
            "回滚步骤：执行 rollout undo",
        ),
    ),
    Item(
        "meeting",
        "mousepad",
        "planning-notes.txt",
        (
            "Q3 planning meeting notes",
            "Launch date moved to March 14",
            "Owner: Priya",
        ),
    ),
    Item(
        "recipe",
        "mousepad",
        "lemon-cake.txt",
        (
            "Grandma's lemon cake",
            "200 g flour, 3 eggs, 150 g sugar",
            "Bake 40 minutes at 180 C",
        ),
    ),
    Item(
        "review",
        "mousepad",
        "产品评审纪要.txt",
        (
            "产品评审会议纪要",
            "新版本上线时间定为十二月五日",
            "负责人：李雷",
        ),
    ),
    Item(
        "parcel",
        "mousepad",
        "快递.txt",
        (
            "顺丰快递单号 SF1234567890",
            "预计周四送达",
        ),
    ),
    Item(
        "oom",
        "xterm",
        "order-service log",
        (
            "ERROR java.lang.OutOfMemoryError: Java heap space",
            "at com.acme.orders.OrderService.load",
            "heap limit 2048 MB exceeded",
        ),
    ),
    Item(
        "budget",
        "xterm",
        "budget 2027",
        (
            "2027 marketing budget: 1.2M USD",
            "digital share 40 percent",
        ),
    ),
)


@dataclass(frozen=True)
class Query:
    text: str
    expected: str  # Item.key
    when: str = ""  # "" or a relative-date template name, filled in by ``dated``


# Per item: a keyword query, a question as a person would ask it, and paraphrases in both languages.
# "{day}" is replaced by a relative date phrase naming the day of the run (see ``dated``).
QUERIES: tuple[Query, ...] = (
    Query("invoice INV-2041", "invoice"),
    Query("how much was the Acme invoice", "invoice"),
    Query("Acme invoice total due", "invoice"),
    Query("{day} invoice", "invoice", "en"),
    Query("kafka retention hours", "kafka"),
    Query("which page had the kafka retention setting", "kafka"),
    Query("orders-v2 cleanup policy compact", "kafka"),
    Query("{day} kafka topic", "kafka", "en"),
    Query("flight to Shanghai seat", "flight"),
    Query("UA 857 booking reference", "flight"),
    Query("what seat did I get on the flight", "flight"),
    Query("{day} flight confirmation", "flight", "en"),
    Query("parental leave weeks", "leave"),
    Query("how many weeks of paid leave", "leave"),
    Query("HR portal leave policy", "leave"),
    Query("报销金额", "expense"),
    Query("那个报销单的金额是多少", "expense"),
    Query("杭州出差报销", "expense"),
    Query("{day}的报销单", "expense", "zh"),
    Query("王经理 审批", "expense"),
    Query("采购合同总价", "contract"),
    Query("合同编号 HT-2026-118", "contract"),
    Query("华东电子 供应商", "contract"),
    Query("{day}看的采购合同", "contract", "zh"),
    Query("上海明天天气", "weather"),
    Query("天气预报 小雨", "weather"),
    Query("气温多少度", "weather"),
    Query("招聘 后端工程师", "hiring"),
    Query("Kubernetes 招聘要求", "hiring"),
    Query("深圳 工作地点", "hiring"),
    Query("{day} 招聘", "hiring", "zh"),
    Query("deployment runbook payments", "runbook"),
    Query("kubectl rollout restart", "runbook"),
    Query("回滚步骤", "runbook"),
    Query("how do I roll back the payments deployment", "runbook"),
    Query("Q3 planning launch date", "meeting"),
    Query("when is the launch date", "meeting"),
    Query("Priya meeting notes", "meeting"),
    Query("{day} planning notes", "meeting", "en"),
    Query("lemon cake recipe", "recipe"),
    Query("how long to bake the cake", "recipe"),
    Query("flour eggs sugar", "recipe"),
    Query("产品评审会议纪要", "review"),
    Query("新版本上线时间", "review"),
    Query("李雷 负责", "review"),
    Query("{day}的评审纪要", "review", "zh"),
    Query("顺丰快递单号", "parcel"),
    Query("快递什么时候送达", "parcel"),
    Query("SF1234567890", "parcel"),
    Query("OutOfMemoryError Java heap space", "oom"),
    Query("which service ran out of memory", "oom"),
    Query("OrderService heap limit", "oom"),
    Query("{day} out of memory error", "oom", "en"),
    Query("marketing budget 2027", "budget"),
    Query("digital share of the budget", "budget"),
    Query("{day} marketing budget", "budget", "en"),
    Query("invoice payment due December", "invoice"),
    Query("replication factor 3 topic", "kafka"),
    Query("booking QX7P2L", "flight"),
    Query("合同 48 万元", "contract"),
    Query("12 到 18 度", "weather"),
    Query("Go 语言", "hiring"),
)


def dated(query: Query, day_of_run: datetime, now: datetime) -> str:
    """The query text with ``{day}`` replaced by a phrase naming the run's day as seen from ``now``."""
    if not query.when:
        return query.text
    days_ago = (now.date() - day_of_run.date()).days
    english = {0: "today", 1: "yesterday", 2: "the day before yesterday"}
    chinese = {0: "今天", 1: "昨天", 2: "前天"}
    phrase = (english if query.when == "en" else chinese).get(days_ago, day_of_run.strftime("%Y-%m-%d"))
    return query.text.replace("{day}", phrase)


def write_documents(workdir: Path) -> dict[str, Path]:
    """One file per item: an HTML page (large type, like a zoomed browser) or a plain text file."""
    workdir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for item in ITEMS:
        if item.app == "chromium":
            body = "".join(f"<p>{html.escape(line)}</p>" for line in item.lines)
            path = workdir / f"{item.key}.html"
            path.write_text(
                f"<!doctype html><meta charset='utf-8'><title>{html.escape(item.title)}</title>"
                "<style>body{font:28px 'WenQuanYi Micro Hei',sans-serif;margin:40px;color:#111}</style>"
                f"{body}",
                encoding="utf-8",
            )
        else:
            path = workdir / (item.title if item.app == "mousepad" else f"{item.key}.log")
            path.write_text("\n".join(item.lines) + "\n", encoding="utf-8")
        paths[item.key] = path
    return paths


def open_items(
    desktop: VirtualDesktop, workdir: Path, chromium_argv: list[str], env: dict[str, str]
) -> dict[str, int]:
    """Open every item in its app; return item key -> X window id."""
    paths = write_documents(workdir)
    windows: dict[str, int] = {}
    browser_started = False
    for item in ITEMS:
        path = paths[item.key]
        if item.app == "chromium":
            argv = (
                [*chromium_argv, f"file://{path}"]
                if not browser_started
                else [*chromium_argv, "--new-window", f"file://{path}"]
            )
            desktop.launch(argv, env=env)
            browser_started = True
            windows[item.key] = desktop.wait_for_window(f"{item.title} - Chromium", timeout_s=60)
        elif item.app == "mousepad":
            desktop.launch(["mousepad", "--opening-mode=window", str(path)], env=env)
            windows[item.key] = desktop.wait_for_window(f"{path} - Mousepad", timeout_s=30)
        else:
            desktop.launch(
                [
                    "xterm",
                    "-T",
                    item.title,
                    "-fa",
                    "Monospace",
                    "-fs",
                    "16",
                    "-e",
                    "sh",
                    "-c",
                    f"cat '{path}'; exec sleep 100000",
                ],
                env=env,
            )
            windows[item.key] = desktop.wait_for_window(item.title, timeout_s=30)
    return windows


def focus_each(desktop: VirtualDesktop, windows: dict[str, int], dwell_s: float) -> dict[str, float]:
    """Focus every item's window for ``dwell_s``; return item key -> wall-clock time it got focus."""
    focused_at: dict[str, float] = {}
    for key, window in windows.items():
        desktop.activate(window)
        focused_at[key] = time.time()
        time.sleep(dwell_s)
    return focused_at


def start_agent(
    desktop: VirtualDesktop,
    bus: SessionBus,
    server: ServerProcess,
    ids: tuple[str, str],
    workdir: Path,
    **settings: str,
) -> ShadowdeskProcess:
    """The real agent on the day's desktop (AT-SPI on), streaming as user ``ids[0]``, session ``ids[1]``."""
    user, session = ids
    return desktop_agent(
        desktop.display,
        bus.app_env,
        server,
        user,
        session,
        workdir,
        flush_interval_s="0.2",
        accessibility_interval_s="1",
        **settings,
    )
