"""The cloud's ``/v1/ops`` API as the console calls it: always with a signed-in user's own token.

The console's service token (``ops_console``, read from its file at each exchange so it can be
rotated) is only ever sent to ``POST /v1/ops/console-tokens``, which answers with a short-lived token
of that user's role for the subject ``console.<username>``; it is cached until shortly before it ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from admin_console.errors import CloudError
from admin_console.identity import ConsoleUser

logger = logging.getLogger(__name__)

# Exchange again this long before the user's token ends, so no call goes out with one about to expire.
_RENEW_BEFORE_S = 60.0


@dataclass(frozen=True, slots=True)
class CloudReply:
    status: int
    body: Any


class CloudClient:
    def __init__(
        self, base_url: str, service_token_file: Path, timeout_s: float, action_timeout_s: float
    ) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(timeout_s))
        self._timeout_s = timeout_s
        self._action_timeout_s = action_timeout_s
        self._service_token_file = service_token_file
        self._tokens: dict[ConsoleUser, tuple[str, float]] = {}

    async def close(self) -> None:
        await self._http.aclose()

    async def get(self, user: ConsoleUser, path: str, params: dict[str, str] | None = None) -> CloudReply:
        return await self._call(user, "GET", path, params=params)

    async def post(self, user: ConsoleUser, path: str, body: Any) -> CloudReply:
        # An action may wait on a model (a root-cause analysis): it gets the longer deadline.
        return await self._call(user, "POST", path, self._action_timeout_s, json=body)

    async def _call(
        self, user: ConsoleUser, method: str, path: str, timeout_s: float | None = None, **kwargs: Any
    ) -> CloudReply:
        token = await self._token(user)
        timeout_s = timeout_s or self._timeout_s
        reply = await self._send(method, f"/v1/ops/{path}", token, timeout_s, **kwargs)
        if reply.status_code == 401:  # revoked or expired early: exchange once more
            token = await self._retoken(user)
            reply = await self._send(method, f"/v1/ops/{path}", token, timeout_s, **kwargs)
        return CloudReply(reply.status_code, _json(reply))

    async def _retoken(self, user: ConsoleUser) -> str:
        self._tokens.pop(user, None)
        return await self._token(user)

    async def _token(self, user: ConsoleUser) -> str:
        cached = self._tokens.get(user)
        if cached is not None and cached[1] - _RENEW_BEFORE_S > time.monotonic():
            return cached[0]
        try:
            service = self._service_token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CloudError(f"the console's service token cannot be read: {exc.strerror}") from exc
        body = {"username": user.username, "role": user.role}
        reply = await self._send("POST", "/v1/ops/console-tokens", service, self._timeout_s, json=body)
        if reply.status_code != 200:
            raise CloudError(f"the cloud refused the console's token exchange ({reply.status_code})")
        body = reply.json()
        self._tokens[user] = (str(body["token"]), time.monotonic() + float(body["expires_in_s"]))
        return str(body["token"])

    async def _send(
        self, method: str, path: str, token: str, timeout_s: float, **kwargs: Any
    ) -> httpx.Response:
        try:
            async with asyncio.timeout(timeout_s):
                return await self._http.request(
                    method, path, headers={"authorization": f"Bearer {token}"}, timeout=timeout_s, **kwargs
                )
        except TimeoutError as exc:
            raise CloudError("the cloud's API missed its deadline") from exc
        except httpx.HTTPError as exc:
            logger.warning("the cloud's API failed: %s %s: %s", method, path, type(exc).__name__)
            raise CloudError(f"the cloud's API is unreachable: {type(exc).__name__}") from exc


def _json(reply: httpx.Response) -> Any:
    try:
        return reply.json()
    except ValueError:
        return {"detail": reply.text[:500]}
