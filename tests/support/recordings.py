"""Realistic recordings, as the agent's recorder reports them: the 报销 expense claim and the 提报 weekly
report, shared by the compiler's unit tests and the recording flow through a real server."""

from __future__ import annotations

from dataclasses import dataclass, field

from cloud_infer.workflows.compiler import Recorded, TextSeen
from protos.shadowdesk.v1 import ingest_pb2 as pb

K = pb.RecordedAction
PDF = pb.WindowRef(window_id=11, app_id="evince")
PORTAL = pb.WindowRef(window_id=22, app_id="chromium")
EDITOR = pb.WindowRef(window_id=33, app_id="mousepad")
PDF_TITLE = "invoice-2026-0042.pdf — Document Viewer"
CLAIM_NUMBER = "CLM-2026-000123"


def element(
    window: pb.WindowRef, role: str, name: str = "", label: str = "", ident: str = ""
) -> pb.ElementRef:
    return pb.ElementRef(
        window=window, role=role, name=name, label=label or name, id_attribute=ident, path=[0, 2]
    )


@dataclass
class Script:
    """Builds a recording one action at a time, with increasing seqs and times."""

    recording_id: str = "rec-1"
    t0: int = 1_790_000_000_000_000_000
    actions: list[Recorded] = field(default_factory=list)
    texts: list[TextSeen] = field(default_factory=list)

    @property
    def now(self) -> int:
        return self.t0 + len(self.actions) * 400_000_000

    def add(
        self, kind: pb.RecordedAction.Kind.ValueType, window: pb.WindowRef, title: str, **kw: object
    ) -> None:
        action = pb.RecordedAction(
            recording_id=self.recording_id,
            kind=kind,
            window=window,
            window_title=title,
            **kw,  # type: ignore[arg-type]
        )
        self.actions.append(Recorded(action, time_ns=self.now, seq=len(self.actions) + 1))

    def seen(self, app_id: str, text: str) -> None:
        self.texts.append(TextSeen(time_ns=self.now, app_id=app_id, text=text))


def portal_title(page: str) -> str:
    return f"{page} - Expense Portal - Chromium"


def copy_from_pdf(s: Script, value: str) -> None:
    s.add(K.KIND_FOCUS, PDF, PDF_TITLE)
    s.add(K.KIND_CLICK, PDF, PDF_TITLE, element=element(PDF, "page", "Page 1"))  # selecting: inert
    s.add(K.KIND_COPY, PDF, PDF_TITLE, element=element(PDF, "document frame", "Page 1"), value=value)
    s.add(K.KIND_KEY_COMMAND, PDF, PDF_TITLE, keys="ctrl+c")


def paste_into_portal(s: Script, label: str, ident: str, value: str) -> None:
    title = portal_title("New claim")
    s.add(K.KIND_FOCUS, PORTAL, title)
    field_ = element(PORTAL, "entry", label, ident=ident)
    s.add(K.KIND_CLICK, PORTAL, title, element=field_)
    s.add(K.KIND_PASTE, PORTAL, title, element=field_, value=value)
    s.add(K.KIND_FIELD_VALUE, PORTAL, title, element=field_, value=value)


def expense_claim(recording_id: str = "rec-1", amount: str = "¥1,280.00") -> Script:
    """Sign in, copy the invoice number and amount from the PDF, type the rest, submit, see a claim number."""
    s = Script(recording_id)
    s.add(K.KIND_STARTED, PORTAL, portal_title("Sign in"))
    s.add(K.KIND_FOCUS, PORTAL, portal_title("Sign in"))
    s.add(K.KIND_FOCUS, PORTAL, portal_title("Sign in"))  # repeated focus
    user = element(PORTAL, "entry", "Username", ident="username")
    s.add(K.KIND_CLICK, PORTAL, portal_title("Sign in"), element=user)
    s.add(K.KIND_FIELD_VALUE, PORTAL, portal_title("Sign in"), element=user, value="alice")
    password = element(PORTAL, "password text", "Password", ident="password")
    s.add(K.KIND_CLICK, PORTAL, portal_title("Sign in"), element=password)
    s.add(K.KIND_FIELD_VALUE, PORTAL, portal_title("Sign in"), element=password, secret=True)
    s.add(K.KIND_CLICK, PORTAL, portal_title("Sign in"), element=element(PORTAL, "push button", "Sign in"))
    s.add(K.KIND_WAIT, PORTAL, portal_title("Sign in"), waited_ms=2500)
    s.add(K.KIND_FOCUS, PORTAL, portal_title("New claim"))
    copy_from_pdf(s, "INV-2026-0042")
    paste_into_portal(s, "Invoice number", "invoice_no", "INV-2026-0042")
    copy_from_pdf(s, amount)
    paste_into_portal(s, "Amount", "amount", amount)
    title = portal_title("New claim")
    vendor = element(PORTAL, "entry", "Vendor", ident="vendor")
    s.add(K.KIND_CLICK, PORTAL, title, element=vendor)
    s.add(K.KIND_FIELD_VALUE, PORTAL, title, element=vendor, value="Acme")
    date = element(PORTAL, "entry", "Invoice date", ident="invoice_date")
    s.add(K.KIND_FIELD_VALUE, PORTAL, title, element=date, value="2026年11月23日")
    s.add(K.KIND_FIELD_VALUE, PORTAL, title, element=vendor, value="Acme Trading Co.")  # corrected later
    category = element(PORTAL, "combo box", "Category", ident="category")
    s.add(K.KIND_CLICK, PORTAL, title, element=category)
    s.add(K.KIND_CLICK, PORTAL, title, element=element(PORTAL, "menu item", "Travel"))
    s.add(K.KIND_FIELD_VALUE, PORTAL, title, element=category, value="Travel")
    s.add(K.KIND_CLICK, PORTAL, title, element=element(PORTAL, "label", "Cost centre"))  # inert
    centre = element(PORTAL, "entry", "Cost centre", ident="cost_centre")
    s.add(K.KIND_FIELD_VALUE, PORTAL, title, element=centre, value="CC-1001")
    s.add(K.KIND_KEY_COMMAND, PORTAL, title, keys="Tab")
    s.seen("chromium", "New claim\nInvoice number INV-2026-0042\nAmount 1,280.00\nSubmit claim")
    s.add(K.KIND_CLICK, PORTAL, title, element=element(PORTAL, "push button", "Submit claim", ident="submit"))
    s.add(K.KIND_WAIT, PORTAL, title, waited_ms=3000)
    # The confirmation shows what the portal stored, normalised (the date ISO, the amount plain), and
    # not the cost centre.
    s.seen(
        "chromium",
        f"Claim submitted\nInvoice INV-2026-0042\nClaim number: {CLAIM_NUMBER}\nVendorAcme Trading Co."
        "\nInvoice date2026-11-23\nAmount1280.00\nCategoryTravel\nBack to claims",
    )
    s.add(K.KIND_FOCUS, PORTAL, portal_title("Claim submitted"))
    s.add(K.KIND_STOPPED, PORTAL, portal_title("Claim submitted"))
    return s


WEEK_LINES = ["Fixed the login timeout", "Reviewed 3 pull requests", "Planned the Q1 roadmap"]


def weekly_report(lines: list[str] | None = None, *, listed: bool = True) -> Script:
    """Copy each line of a text file in mousepad into the report form's item field, then send. The page
    after each Add lists the items so far (``listed``; else it only counts them), as the accessibility
    sensor reads it when the person comes back from mousepad."""
    s = Script("rec-week")
    form = "Weekly report - Team Portal - Chromium"
    editor = "week47.txt - Mousepad"
    s.add(K.KIND_STARTED, EDITOR, editor)
    s.add(K.KIND_FOCUS, PORTAL, form)
    week = element(PORTAL, "entry", "Week", ident="week")
    s.add(K.KIND_FIELD_VALUE, PORTAL, form, element=week, value="2026-11-23")
    text = element(EDITOR, "text", "", label="")
    item = element(PORTAL, "entry", "Item", ident="item")
    add = element(PORTAL, "push button", "Add item", ident="add")
    lines = lines or WEEK_LINES
    for index, line in enumerate(lines):
        s.add(K.KIND_FOCUS, EDITOR, editor)
        s.seen("mousepad", "\n".join(lines))
        s.add(K.KIND_COPY, EDITOR, editor, element=text, value=line)
        s.add(K.KIND_FOCUS, PORTAL, form)
        added = lines[:index] if listed else []
        s.seen("chromium", "\n".join(["Weekly report", "Week", f"Items: {index} of 5", *added, "Item"]))
        s.add(K.KIND_CLICK, PORTAL, form, element=item)
        s.add(K.KIND_PASTE, PORTAL, form, element=item, value=line)
        s.add(K.KIND_FIELD_VALUE, PORTAL, form, element=item, value=line)
        s.add(K.KIND_CLICK, PORTAL, form, element=add)
    s.add(K.KIND_CLICK, PORTAL, form, element=element(PORTAL, "push button", "Send report", ident="send"))
    s.add(K.KIND_STOPPED, PORTAL, form)
    return s
