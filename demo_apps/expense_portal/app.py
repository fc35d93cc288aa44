"""The portal's FastAPI app: sign-in, the claim form's pages, the weekly report, the admin and read API.

The weekly report is one page with a repeated control, as real web apps have: the week, the items
added so far, one item field with **Add item** (``POST /reports/{token}/items`` appends it to the draft
and redirects back to the page) and **Submit report** (``POST /reports/{token}/submit`` files every item
added, in order). Pages answer with HTML; a missing or foreign form is 404, a second submission (or an
Add to a filed report) 409, a fault's error 500. ``/admin/faults`` (PUT, GET) and ``/api/claims``,
``/api/reports`` need the instance's admin token in ``X-Admin-Token``; ``/health`` needs nothing.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.datastructures import UploadFile

from demo_apps.expense_portal import forms, pages
from demo_apps.expense_portal.config import MAX_ATTACHMENT_BYTES, Faults, PortalConfig
from demo_apps.expense_portal.store import AlreadySubmitted, Draft, FormKind, PortalDatabase

COOKIE = "portal_session"
# Pages that faults leave alone: what tests use to set faults and read back.
_UNFAULTED = ("/admin/", "/api/", "/health")


@dataclass
class Portal:
    config: PortalConfig
    db: PortalDatabase

    @property
    def faults(self) -> Faults:
        return self.config.faults

    def take_error(self) -> bool:
        """Whether this form post fails with the error fault (and count it)."""
        if self.faults.error == 0:
            return False
        if self.faults.error > 0:
            self.config.faults = self.faults.model_copy(update={"error": self.faults.error - 1})
        return True


def _portal(request: Request) -> Portal:
    portal: Portal = request.app.state.portal
    return portal


PortalDep = Annotated[Portal, Depends(_portal)]


class _SignIn(Exception):
    def __init__(self, path: str) -> None:
        self.path = path


def _user(request: Request, portal: PortalDep) -> str:
    user = portal.db.session_user(request.cookies.get(COOKIE, ""))
    if user is None:
        raise _SignIn(request.url.path)
    return user


UserDep = Annotated[str, Depends(_user)]


def _admin(portal: PortalDep, x_admin_token: Annotated[str, Header()] = "") -> None:
    if not secrets.compare_digest(x_admin_token.encode(), portal.config.admin_token.encode()):
        raise HTTPException(403, "a valid X-Admin-Token is required")


AdminDep = Annotated[None, Depends(_admin)]


def build_app(config: PortalConfig) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.portal = Portal(config, PortalDatabase(config.database))
        try:
            yield
        finally:
            app.state.portal.db.close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    def html(title: str, body: str, *, status: int = 200, user: str | None = None, form: bool = False) -> Any:
        modal = form and config.faults.modal
        return HTMLResponse(pages.page(title, body, user=user, modal=modal, site=config.title), status)

    @app.middleware("http")
    async def slow(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if config.faults.slow_s and not request.url.path.startswith(_UNFAULTED):
            await asyncio.sleep(config.faults.slow_s)
        return await call_next(request)

    @app.exception_handler(_SignIn)
    async def sign_in(request: Request, exc: _SignIn) -> Response:
        return RedirectResponse(f"/login?next={exc.path}", 303)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/")
    async def home(request: Request, portal: PortalDep) -> Response:
        signed_in = portal.db.session_user(request.cookies.get(COOKIE, "")) is not None
        return RedirectResponse("/claims/new" if signed_in else "/login", 303)

    @app.get("/login")
    async def login_page(next: str = "/claims/new") -> Any:
        return html("Sign in", pages.login_form("", _local(next)))

    @app.post("/login")
    async def login(request: Request, portal: PortalDep) -> Any:
        form = await _fields(request)
        user, password = form.get("username", ""), form.get("password", "")
        expected = portal.config.users.get(user)
        if expected is None or not secrets.compare_digest(password.encode(), expected.encode()):
            body = pages.login_form("Wrong user name or password / 用户名或密码错误", form.get("next", ""))
            return html("Sign in", body, status=401)
        response = RedirectResponse(_local(form.get("next", "")), 303)
        response.set_cookie(COOKIE, portal.db.open_session(user), httponly=True, samesite="lax")
        return response

    @app.post("/logout")
    async def logout(request: Request, portal: PortalDep) -> Response:
        portal.db.close_session(request.cookies.get(COOKIE, ""))
        response = RedirectResponse("/login", 303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/claims/new")
    async def new_claim(user: UserDep, portal: PortalDep) -> Response:
        return RedirectResponse(f"/claims/{portal.db.new_form(user, 'claim')}/page/1", 303)

    def draft_of(portal: Portal, token: str, user: str, kind: FormKind) -> Draft | Any:
        """The open form instance, or the page that says why there is none."""
        draft = portal.db.form(token, user, kind)
        if draft is None:
            return html("Not found", pages.not_found(), status=404, user=user)
        if draft.submitted_as:
            body = pages.already_submitted(draft.submitted_as)
            return html("Already submitted", body, status=409, user=user)
        return draft

    @app.api_route("/claims/{token}/page/1", methods=["GET", "POST"])
    async def claim_page_one(token: str, request: Request, user: UserDep, portal: PortalDep) -> Any:
        draft = draft_of(portal, token, user, "claim")
        if not isinstance(draft, Draft):
            return draft
        if request.method == "GET":
            return html("Claim 1 of 3", pages.claim_page_one(token, draft.fields, {}), user=user, form=True)
        if portal.take_error():
            return html("Error", pages.server_error(), status=500, user=user)
        values, errors = forms.check_page_one(await _fields(request))
        if errors:
            body = pages.claim_page_one(token, values, errors)
            return html("Claim 1 of 3", body, status=422, user=user, form=True)
        portal.db.update_form(token, values)
        return RedirectResponse(f"/claims/{token}/page/2", 303)

    @app.api_route("/claims/{token}/page/2", methods=["GET", "POST"])
    async def claim_page_two(token: str, request: Request, user: UserDep, portal: PortalDep) -> Any:
        draft = draft_of(portal, token, user, "claim")
        if not isinstance(draft, Draft):
            return draft
        if request.method == "GET":
            body = pages.claim_page_two(token, draft.fields, {}, draft.attachment_name)
            return html("Claim 2 of 3", body, user=user, form=True)
        if portal.take_error():
            return html("Error", pages.server_error(), status=500, user=user)
        form = await request.form(max_part_size=MAX_ATTACHMENT_BYTES + 1)
        values, errors = forms.check_page_two({k: v for k, v in form.items() if isinstance(v, str)})
        upload = form.get("attachment")
        attachment: tuple[str, bytes] | None = None
        if isinstance(upload, UploadFile) and upload.filename:
            data = await upload.read(MAX_ATTACHMENT_BYTES + 1)
            if len(data) > MAX_ATTACHMENT_BYTES:
                errors["attachment"] = "At most 10 MB / 附件不能超过10 MB"
            else:
                attachment = (upload.filename.rsplit("/", 1)[-1], data)
        if errors:
            body = pages.claim_page_two(token, values, errors, draft.attachment_name)
            return html("Claim 2 of 3", body, status=422, user=user, form=True)
        portal.db.update_form(token, values, attachment)
        return RedirectResponse(f"/claims/{token}/review", 303)

    @app.get("/claims/{token}/review")
    async def claim_review(token: str, user: UserDep, portal: PortalDep) -> Any:
        draft = draft_of(portal, token, user, "claim")
        if not isinstance(draft, Draft):
            return draft
        body = pages.claim_review(token, draft.fields, draft.attachment_name)
        return html("Review claim", body, user=user, form=True)

    @app.post("/claims/{token}/submit")
    async def claim_submit(token: str, user: UserDep, portal: PortalDep) -> Any:
        draft = portal.db.form(token, user, "claim")
        if draft is None:
            return html("Not found", pages.not_found(), status=404, user=user)
        if portal.take_error():
            return html("Error", pages.server_error(), status=500, user=user)
        incomplete = {**forms.check_page_one(draft.fields)[1], **forms.check_page_two(draft.fields)[1]}
        if incomplete and not draft.submitted_as:
            return RedirectResponse(f"/claims/{token}/page/{1 if 'vendor' in incomplete else 2}", 303)
        fields = dict(draft.fields)
        if config.faults.drop_field:
            fields[config.faults.drop_field] = ""  # the fault: silently stored empty
        try:
            claim = portal.db.file_claim(draft, fields)
        except AlreadySubmitted as exc:
            return html("Already submitted", pages.already_submitted(exc.number), status=409, user=user)
        return RedirectResponse(f"/filed/{claim.number}", 303)

    @app.get("/filed/{number}")
    async def claim_filed(number: str, user: UserDep, portal: PortalDep) -> Any:
        claim = portal.db.claim(number)
        if claim is None or claim.user != user:
            return html("Not found", pages.not_found(), status=404, user=user)
        body = pages.claim_filed(claim.number, claim.fields(), claim.attachment_name)
        return html(f"Claim {claim.number} submitted", body, user=user)

    @app.get("/reports/new")
    async def new_report(user: UserDep, portal: PortalDep) -> Response:
        return RedirectResponse(f"/reports/{portal.db.new_form(user, 'report')}", 303)

    @app.get("/reports/{token}")
    async def report(token: str, user: UserDep, portal: PortalDep) -> Any:
        draft = draft_of(portal, token, user, "report")
        if not isinstance(draft, Draft):
            return draft
        lines = portal.db.report_items(token)
        body = pages.report_form(token, draft.fields.get("week", ""), "", lines, {})
        return html("Weekly report", body, user=user, form=True)

    @app.post("/reports/{token}/items")
    async def report_add_item(token: str, request: Request, user: UserDep, portal: PortalDep) -> Any:
        draft = draft_of(portal, token, user, "report")
        if not isinstance(draft, Draft):
            return draft
        if portal.take_error():
            return html("Error", pages.server_error(), status=500, user=user)
        form = await _fields(request)
        week = form.get("week", "").strip()
        lines = portal.db.report_items(token)
        item, errors = forms.check_item(form, len(lines))
        if errors:
            body = pages.report_form(token, week, form.get("item", ""), lines, errors)
            return html("Weekly report", body, status=422, user=user, form=True)
        try:
            portal.db.add_report_item(token, week, item)
        except AlreadySubmitted as exc:
            return html("Already submitted", pages.already_submitted(exc.number), status=409, user=user)
        # Post/redirect/get: reloading the page shows the items, it never adds one again.
        return RedirectResponse(f"/reports/{token}", 303)

    @app.post("/reports/{token}/submit")
    async def report_submit(token: str, request: Request, user: UserDep, portal: PortalDep) -> Any:
        found = portal.db.form(token, user, "report")
        if found is None:
            return html("Not found", pages.not_found(), status=404, user=user)
        if portal.take_error():
            return html("Error", pages.server_error(), status=500, user=user)
        form = await _fields(request)
        lines = portal.db.report_items(token)
        week, errors = forms.check_report(form, len(lines))
        if errors and not found.submitted_as:
            body = pages.report_form(token, week, form.get("item", ""), lines, errors)
            return html("Weekly report", body, status=422, user=user, form=True)
        try:
            filed = portal.db.file_report(found, week)
        except AlreadySubmitted as exc:
            return html("Already submitted", pages.already_submitted(exc.number), status=409, user=user)
        body = pages.report_filed(filed.number, filed.week, filed.lines)
        return html(f"Report {filed.number} submitted", body, user=user)

    @app.get("/admin/faults")
    async def get_faults(_: AdminDep) -> dict[str, Any]:
        return config.faults.model_dump()

    @app.put("/admin/faults")
    async def set_faults(faults: Faults, _: AdminDep) -> dict[str, Any]:
        config.faults = faults
        return faults.model_dump()

    @app.get("/api/claims")
    async def list_claims(_: AdminDep, portal: PortalDep) -> JSONResponse:
        return JSONResponse([claim.to_json() for claim in portal.db.claims()])

    @app.get("/api/reports")
    async def list_reports(_: AdminDep, portal: PortalDep) -> JSONResponse:
        return JSONResponse([report.to_json() for report in portal.db.reports()])

    return app


async def _fields(request: Request) -> dict[str, str]:
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _local(path: str) -> str:
    """``path`` if it is a path on this site, else the claim form (no open redirect)."""
    if path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return "/claims/new"
