"""The expense portal's test users, and a client signed in as one of them."""

from __future__ import annotations

import httpx

from demo_apps.expense_portal import PortalServer

USER, PASSWORD = "alice", "expenses-2025"
OTHER, OTHER_PASSWORD = "bob", "bob-password-1"


def signed_in(portal: PortalServer, user: str = USER, password: str = PASSWORD) -> httpx.Client:
    client = httpx.Client(base_url=portal.url, follow_redirects=True, timeout=30)
    reply = client.post("/login", data={"username": user, "password": password, "next": "/claims/new"})
    assert reply.status_code == 200 and reply.url.path.endswith("/page/1"), reply.text
    return client
