"""The sidebar page and its static files, served by the sidebar router."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from cloud_infer.api_errors import install_error_handlers
from cloud_infer.sidebar.api_router import STATIC_DIR, STATIC_FILES, router


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sidebar.test") as http:
        yield http


async def test_page_has_a_strict_content_security_policy(client: httpx.AsyncClient) -> None:
    reply = await client.get("/sidebar")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    policy = {d.split(" ", 1)[0]: d for d in reply.headers["content-security-policy"].split("; ")}
    assert policy["default-src"] == "default-src 'none'"
    assert policy["script-src"] == "script-src 'self'"
    assert policy["img-src"] == "img-src 'self' blob: data:"
    assert policy["connect-src"] == "connect-src 'self'"  # websockets only to this origin
    assert reply.headers["referrer-policy"] == "no-referrer"
    assert 'src="/sidebar/static/app.js"' in reply.text


async def test_every_listed_static_file_is_served_with_its_type(client: httpx.AsyncClient) -> None:
    for name, media_type in STATIC_FILES.items():
        reply = await client.get(f"/sidebar/static/{name}")
        assert reply.status_code == 200, name
        assert reply.headers["content-type"] == media_type
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.content == (STATIC_DIR / name).read_bytes()


@pytest.mark.parametrize("name", ["index.html", "..%2F..%2Fconfig.py", "api_router.py", "missing.js"])
async def test_only_listed_files_are_served(client: httpx.AsyncClient, name: str) -> None:
    reply = await client.get(f"/sidebar/static/{name}")
    assert reply.status_code == 404
    assert reply.json()["code"] == "not_found"


def test_scripts_never_write_markup() -> None:
    # API data is untrusted screen text: the page builds nodes and sets textContent, never markup.
    for name in STATIC_FILES:
        if name.endswith(".js"):
            source = (STATIC_DIR / name).read_text()
            for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
                assert sink not in source, f"{name} uses {sink}"
