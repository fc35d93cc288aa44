"""The portal's own SQLite database: sessions, form instances (drafts), claims and weekly reports.

A form instance is created when a form is opened and holds what its pages posted so far (a weekly
report's draft: its week and the items added one at a time, in order). Submitting it files one claim
(or report) in the same transaction that marks the instance submitted; a second
submission finds it marked and is refused with the number already filed (``form_token`` is also
UNIQUE in both tables, so nothing can file twice).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

FormKind = Literal["claim", "report"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (token TEXT PRIMARY KEY, user TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS forms (
  token TEXT PRIMARY KEY, user TEXT NOT NULL, kind TEXT NOT NULL, fields TEXT NOT NULL DEFAULT '{}',
  attachment_name TEXT NOT NULL DEFAULT '', attachment BLOB, submitted_as TEXT, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS claims (
  id INTEGER PRIMARY KEY AUTOINCREMENT, number TEXT UNIQUE, user TEXT NOT NULL,
  form_token TEXT NOT NULL UNIQUE, vendor TEXT NOT NULL, invoice_number TEXT NOT NULL,
  invoice_date TEXT NOT NULL, amount TEXT NOT NULL, tax TEXT NOT NULL, category TEXT NOT NULL,
  cost_centre TEXT NOT NULL, attachment_name TEXT NOT NULL, attachment_sha256 TEXT NOT NULL,
  attachment_size INTEGER NOT NULL, submitted_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS reports (
  id INTEGER PRIMARY KEY AUTOINCREMENT, number TEXT UNIQUE, user TEXT NOT NULL,
  form_token TEXT NOT NULL UNIQUE, week TEXT NOT NULL, lines TEXT NOT NULL, submitted_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS report_items (
  form_token TEXT NOT NULL, position INTEGER NOT NULL, line TEXT NOT NULL,
  PRIMARY KEY (form_token, position));
"""
CLAIM_COLUMNS = (
    "vendor",
    "invoice_number",
    "invoice_date",
    "amount",
    "tax",
    "category",
    "cost_centre",
)


class AlreadySubmitted(Exception):
    """The form instance was submitted before, as ``number``."""

    def __init__(self, number: str) -> None:
        super().__init__(f"this form was already submitted as {number}")
        self.number = number


@dataclass(frozen=True)
class Claim:
    number: str
    user: str
    form_token: str
    vendor: str
    invoice_number: str
    invoice_date: str
    amount: str
    tax: str
    category: str
    cost_centre: str
    attachment_name: str
    attachment_sha256: str
    attachment_size: int
    submitted_at: float

    def fields(self) -> dict[str, str]:
        """The claim's form fields, as filed."""
        return {name: getattr(self, name) for name in CLAIM_COLUMNS}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Report:
    number: str
    user: str
    form_token: str
    week: str
    lines: tuple[str, ...]
    submitted_at: float

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "lines": list(self.lines)}


@dataclass(frozen=True)
class Draft:
    token: str
    user: str
    kind: FormKind
    fields: dict[str, str]
    attachment_name: str
    attachment: bytes | None
    submitted_as: str | None


class PortalDatabase:
    """One SQLite file; safe to share between threads (one connection behind a lock)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # Sessions
    def open_session(self, user: str) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._db.execute("INSERT INTO sessions VALUES (?, ?, ?)", (token, user, time.time()))
        return token

    def session_user(self, token: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT user FROM sessions WHERE token = ?", (token,)).fetchone()
        return None if row is None else str(row[0])

    def close_session(self, token: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE token = ?", (token,))

    # Form instances
    def new_form(self, user: str, kind: FormKind) -> str:
        token = secrets.token_urlsafe(18)
        with self._lock:
            self._db.execute(
                "INSERT INTO forms (token, user, kind, created) VALUES (?, ?, ?, ?)",
                (token, user, kind, time.time()),
            )
        return token

    def form(self, token: str, user: str, kind: FormKind) -> Draft | None:
        """The form instance ``token`` of ``user``; None for another user's or an unknown one."""
        with self._lock:
            row = self._db.execute(
                "SELECT fields, attachment_name, attachment, submitted_as FROM forms"
                " WHERE token = ? AND user = ? AND kind = ?",
                (token, user, kind),
            ).fetchone()
        if row is None:
            return None
        return Draft(token, user, kind, json.loads(row[0]), row[1], row[2], row[3])

    def update_form(
        self, token: str, fields: dict[str, str], attachment: tuple[str, bytes] | None = None
    ) -> None:
        with self._lock:
            (current,) = self._db.execute("SELECT fields FROM forms WHERE token = ?", (token,)).fetchone()
            merged = {**json.loads(current), **fields}
            self._db.execute("UPDATE forms SET fields = ? WHERE token = ?", (json.dumps(merged), token))
            if attachment is not None:
                self._db.execute(
                    "UPDATE forms SET attachment_name = ?, attachment = ? WHERE token = ?",
                    (attachment[0], attachment[1], token),
                )

    def add_report_item(self, token: str, week: str, line: str) -> None:
        """Append ``line`` to the weekly report draft ``token`` and keep its ``week`` as typed; refused
        with AlreadySubmitted once the report is filed."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._refuse_resubmission(token)
                (fields,) = self._db.execute("SELECT fields FROM forms WHERE token = ?", (token,)).fetchone()
                merged = json.dumps({**json.loads(fields), "week": week})
                self._db.execute("UPDATE forms SET fields = ? WHERE token = ?", (merged, token))
                self._db.execute(
                    "INSERT INTO report_items (form_token, position, line) VALUES (?,"
                    " (SELECT COUNT(*) FROM report_items WHERE form_token = ?), ?)",
                    (token, token, line),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def report_items(self, token: str) -> list[str]:
        """The items added to the weekly report draft ``token`` so far, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT line FROM report_items WHERE form_token = ? ORDER BY position", (token,)
            ).fetchall()
        return [str(row[0]) for row in rows]

    # Filing
    def file_claim(self, draft: Draft, fields: dict[str, str]) -> Claim:
        """File ``fields`` as the claim of form instance ``draft``; AlreadySubmitted on a second try."""
        data = draft.attachment or b""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._refuse_resubmission(draft.token)
                cursor = self._db.execute(
                    "INSERT INTO claims (user, form_token, vendor, invoice_number, invoice_date, amount, tax,"
                    " category, cost_centre, attachment_name, attachment_sha256, attachment_size,"
                    " submitted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        draft.user,
                        draft.token,
                        *(fields.get(name, "") for name in CLAIM_COLUMNS),
                        draft.attachment_name,
                        hashlib.sha256(data).hexdigest() if data else "",
                        len(data),
                        time.time(),
                    ),
                )
                number = f"EXP-{cursor.lastrowid:06d}"
                self._db.execute("UPDATE claims SET number = ? WHERE id = ?", (number, cursor.lastrowid))
                self._db.execute("UPDATE forms SET submitted_as = ? WHERE token = ?", (number, draft.token))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        claim = self.claim(number)
        assert claim is not None
        return claim

    def file_report(self, draft: Draft, week: str) -> Report:
        """File the items added to ``draft`` as its report for ``week``; AlreadySubmitted on a second try."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._refuse_resubmission(draft.token)
                lines = [
                    str(row[0])
                    for row in self._db.execute(
                        "SELECT line FROM report_items WHERE form_token = ? ORDER BY position", (draft.token,)
                    )
                ]
                cursor = self._db.execute(
                    "INSERT INTO reports (user, form_token, week, lines, submitted_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (draft.user, draft.token, week, json.dumps(lines, ensure_ascii=False), time.time()),
                )
                number = f"WR-{cursor.lastrowid:06d}"
                self._db.execute("UPDATE reports SET number = ? WHERE id = ?", (number, cursor.lastrowid))
                self._db.execute("UPDATE forms SET submitted_as = ? WHERE token = ?", (number, draft.token))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return next(report for report in self.reports() if report.number == number)

    def _refuse_resubmission(self, token: str) -> None:
        row = self._db.execute("SELECT submitted_as FROM forms WHERE token = ?", (token,)).fetchone()
        if row is not None and row[0]:
            raise AlreadySubmitted(str(row[0]))

    # Reading back
    def claims(self, user: str | None = None) -> list[Claim]:
        """Every claim filed (of ``user``), oldest first."""
        query = f"SELECT number, user, form_token, {', '.join(CLAIM_COLUMNS)}, attachment_name,"
        query += " attachment_sha256, attachment_size, submitted_at FROM claims"
        args: tuple[str, ...] = ()
        if user is not None:
            query, args = query + " WHERE user = ?", (user,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id", args).fetchall()
        return [Claim(*row) for row in rows]

    def claim(self, number: str) -> Claim | None:
        return next((claim for claim in self.claims() if claim.number == number), None)

    def reports(self, user: str | None = None) -> list[Report]:
        query = "SELECT number, user, form_token, week, lines, submitted_at FROM reports"
        args: tuple[str, ...] = ()
        if user is not None:
            query, args = query + " WHERE user = ?", (user,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id", args).fetchall()
        return [Report(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), r[5]) for r in rows]
