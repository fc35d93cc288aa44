"""Single use of sidebar login tickets.

A login ticket (``cloud_infer.auth``, scope ``login``) travels in a URL fragment to the sidebar, which
redeems it once for an API token; a copy found later in a browser history is worthless. Redeemed ticket
ids are remembered until the ticket would have expired. The memory is per process: with several server
processes, route ``/v1/auth/session`` to one, or move this set to a shared store.
"""

from __future__ import annotations

import time

from cloud_infer.auth import TokenClaims
from cloud_infer.errors import TokenInvalidError


class LoginTickets:
    def __init__(self) -> None:
        self._used: dict[str, int] = {}  # ticket id -> its expiry

    def redeem(self, ticket: TokenClaims) -> None:
        """Mark the ticket used; TokenInvalidError if it was used before."""
        now = time.time()
        self._used = {jti: exp for jti, exp in self._used.items() if exp > now}
        if ticket.token_id in self._used:
            raise TokenInvalidError("this login link was already used; ask for a new one")
        self._used[ticket.token_id] = ticket.expires_at
