"""Serves the thin client's page (``GET /desk``), its files (``/desk/static/<name>``) and noVNC's ES
modules (``/desk/novnc/core/…``, ``/desk/novnc/vendor/…``, from ``DesktopSettings.novnc_dir``).

The page is opened as ``/desk#login=<single-use ticket>`` (the ticket rides in the fragment, which
browsers never send); it signs in with the sidebar's own client (``/sidebar/static/api.js``) and docks
the sidebar beside the desktop as a same-origin frame that shares its sign-in. No token is ever in a
URL. Without noVNC installed the page says so instead of failing in the browser.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.requests import HTTPConnection

from cloud_infer.api_deps import services
from cloud_infer.api_errors import ErrorResponse
from cloud_infer.errors import NotFoundError

STATIC_DIR = Path(__file__).parent / "static"
_JS = "text/javascript; charset=utf-8"
# Only these files are served: a fixed list cannot be talked into reading anything else.
STATIC_FILES: dict[str, str] = {
    "desk.js": _JS,
    "experience.js": _JS,
    "strings.js": _JS,
    "desk.css": "text/css; charset=utf-8",
}
# Of noVNC, only its library: its own app (vnc.html) would be a second client with other defaults.
_NOVNC_PARTS = frozenset({"core", "vendor"})

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        # 'self' covers this origin's own ws:/wss: (CSP Level 3): the desktop relay and nothing else.
        "connect-src 'self'",
        "frame-src 'self'",  # the docked sidebar
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
_COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate: a server upgrade never mixes old and new modules
}
_NO_NOVNC = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shadowdesk</title></head>
<body><h1>The thin client is not available</h1><p>noVNC is not installed on this server
(looked in <code>{dir}</code>): install Debian's <code>novnc</code> package, or set
<code>SHADOWDESK_DESKTOP_NOVNC_DIR</code>. The sidebar works without it: <a href="/sidebar">/sidebar</a>.</p>
<p lang="zh">此服务器未安装 noVNC，瘦客户端不可用。</p></body></html>"""

router = APIRouter(tags=["desk"], include_in_schema=False)


def _novnc_dir(connection: HTTPConnection) -> Path:
    return services(connection).desktop.settings.novnc_dir


@router.get("/desk", response_model=None)
async def desk_page(connection: HTTPConnection) -> Response:
    novnc = _novnc_dir(connection)
    if not (novnc / "core" / "rfb.js").is_file():
        body = _NO_NOVNC.format(dir=str(novnc).replace("<", "&lt;"))
        return HTMLResponse(body, status_code=503, headers=_COMMON_HEADERS)
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={**_COMMON_HEADERS, "Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )


@router.get("/desk/static/{name}", response_class=FileResponse, responses={404: {"model": ErrorResponse}})
async def desk_static(name: str) -> FileResponse:
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise NotFoundError(f"no desk file {name!r}")
    return FileResponse(STATIC_DIR / name, media_type=media_type, headers=_COMMON_HEADERS)


@router.get("/desk/novnc/{path:path}", response_class=FileResponse, responses={404: {"model": ErrorResponse}})
async def novnc_module(connection: HTTPConnection, path: str) -> FileResponse:
    """A JavaScript module of noVNC's library; nothing else under its folder."""
    parts = PurePosixPath(path).parts
    if len(parts) < 2 or parts[0] not in _NOVNC_PARTS or ".." in parts or not path.endswith(".js"):
        raise NotFoundError("no such noVNC module")
    root = _novnc_dir(connection).resolve()
    file = (root / path).resolve()
    if not file.is_relative_to(root) or not file.is_file():
        raise NotFoundError("no such noVNC module")
    return FileResponse(file, media_type=_JS, headers=_COMMON_HEADERS)
