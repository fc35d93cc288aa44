"""Serves the sidebar page (``GET /sidebar``) and its static files (``/sidebar/static/<name>``).

The page talks only to this server's own API. It is opened with a single-use login ticket in the URL
fragment (``#login=…``), which browsers never send; the page redeems it at ``/v1/auth/session`` for a
short-lived token it keeps in memory, so no reusable token is ever in a URL, a log or a referrer.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from cloud_infer.api_errors import ErrorResponse
from cloud_infer.errors import NotFoundError

STATIC_DIR = Path(__file__).parent / "static"

# Only these files are served: a fixed list cannot be talked into reading anything else.
STATIC_FILES: dict[str, str] = {
    "app.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "assist.js": "text/javascript; charset=utf-8",
    "dom.js": "text/javascript; charset=utf-8",
    "health.js": "text/javascript; charset=utf-8",
    "i18n.js": "text/javascript; charset=utf-8",
    "macros.js": "text/javascript; charset=utf-8",
    "macro_editor.js": "text/javascript; charset=utf-8",
    "macro_runs.js": "text/javascript; charset=utf-8",
    "macro_yaml.js": "text/javascript; charset=utf-8",
    "try.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}

# Screen text shown by the page is untrusted; the policy keeps any injected markup inert.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        # 'self' covers this origin's own ws:/wss: (CSP Level 3): websockets reach no other host.
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'self'",
    ]
)

_COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate every time, so a server upgrade never leaves a page mixing old and new modules.
    "Cache-Control": "no-cache",
}

router = APIRouter(tags=["sidebar"], include_in_schema=False)


@router.get("/sidebar", response_class=FileResponse)
async def sidebar_page() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={**_COMMON_HEADERS, "Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )


@router.get("/sidebar/static/{name}", response_class=FileResponse, responses={404: {"model": ErrorResponse}})
async def sidebar_static(name: str) -> FileResponse:
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise NotFoundError(f"no sidebar file {name!r}")
    return FileResponse(STATIC_DIR / name, media_type=media_type, headers=_COMMON_HEADERS)
