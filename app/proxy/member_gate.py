"""The shared team gateway's door (shape 2): a member token is checked against the ledger, then rate limited.

The check is a database read, so it runs on the proxy's worker threads, never on the event loop; it happens
only for tokens that look like member tokens (`dsm-...`), so a single user's proxy with its local token pays
one string prefix test per call and nothing else.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING

from app.core.members import MemberAuth, MemberTokenRefused, RateLimiter, is_member_token
from app.proxy.errors import ProxyError

if TYPE_CHECKING:
    from app.core.engine import Core


class MemberGate:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.auth = MemberAuth(core.db)
        self.limiter = RateLimiter(core.config.team.rate_per_minute)

    @staticmethod
    def applies(presented: str) -> bool:
        return is_member_token(presented)

    async def check(self, presented: str) -> str:
        """The member's name, or a ProxyError: 401 unknown or revoked token, 429 over the member's rate,
        503 when the ledger cannot be reached to check it."""
        try:
            name = await asyncio.get_running_loop().run_in_executor(None, self.auth.check, presented)
        except MemberTokenRefused as exc:
            raise ProxyError(exc.status, exc.kind, exc.message) from None
        self.limiter.per_minute = self.core.config.team.rate_per_minute  # a config change applies at once
        wait = self.limiter.allow(name)
        if wait:
            raise ProxyError(
                429,
                "rate_limited",
                f"member {name} is over the gateway's rate limit of "
                f"{self.limiter.per_minute:g} requests a minute; retry in {math.ceil(wait)} s",
                headers={"Retry-After": str(math.ceil(wait))},
                member=name,  # the call's row still carries its member
            )
        return name
