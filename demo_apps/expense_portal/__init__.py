"""The expense portal: a small server-rendered web app with its own SQLite database.

Sign in (``/login``), file a claim over two pages and a review (``/claims/new``), get a claim number
(EXP-000001), or submit a weekly report (``/reports/new``: a week, then items added one at a time
with Add item, then Submit report). Each form instance carries its own token, and a second
submission of the same instance is refused, so "filed exactly once" can be checked in the database
(``PortalDatabase``, ``GET /api/claims`` with the admin token, or
``python -m demo_apps.expense_portal claims --db PATH``). Faults for the tests (a dropped field, an
error page, slow answers, a modal notice) are set per portal instance at start or through
``PUT /admin/faults``.
"""

from demo_apps.expense_portal.app import build_app
from demo_apps.expense_portal.config import CATEGORIES, FIELDS, Faults, PortalConfig
from demo_apps.expense_portal.server import PortalServer
from demo_apps.expense_portal.store import Claim, PortalDatabase, Report

__all__ = [
    "CATEGORIES",
    "FIELDS",
    "Claim",
    "Faults",
    "PortalConfig",
    "PortalDatabase",
    "PortalServer",
    "Report",
    "build_app",
]
