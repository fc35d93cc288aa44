"""What an operator does for a user from the command line: a sign-in link, revoking their tokens."""

from __future__ import annotations

from cloud_infer.auth import TokenAuthority
from cloud_infer.config import ServerSettings
from cloud_infer.revocation import Revocations
from recall_store.config import StoreSettings
from recall_store.factory import open_store


def login_url(
    user_id: str,
    manage: bool = True,
    base_url: str | None = None,
    ttl_s: int | None = None,
    page: str = "sidebar",
) -> str:
    """The URL of ``page`` (``sidebar``, or ``desk``: the thin client) with a single-use login ticket
    in its fragment (never sent to a server)."""
    settings = ServerSettings()
    ticket = TokenAuthority.from_settings(settings).issue(
        user_id, ["login"], grants=["read", "manage"] if manage else ["read"], ttl_s=ttl_s
    )
    if base_url is None:
        scheme = "https" if settings.tls else "http"
        base_url = f"{scheme}://{settings.http_host}:{settings.http_port}"
    return f"{base_url.rstrip('/')}/{page}#login={ticket}"


async def revoke(user_id: str) -> float:
    """Revoke every token of ``user_id`` issued until now; returns the time recorded."""
    store = open_store(StoreSettings())
    try:
        return await Revocations(store).revoke(user_id)
    finally:
        await store.close()
