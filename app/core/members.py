"""Member tokens of a shared team gateway (shape 2): one token per member, stored hashed in the call log's
database, so every gateway instance on one PostgreSQL ledger accepts and revokes the same tokens.

A token reads `dsm-<id>-<secret>`: the id finds the row (an indexed look-up, no scan over hashes), the
secret is checked against sha256(salt + secret) with a constant-time compare; the secret itself is shown
once by `downshift member add` and stored nowhere. Each request looks its token up again (a primary-key read,
well under a millisecond on the proxy's thread pool, not on the event loop), so a revocation made on one
instance applies to the next request on every instance. If the database cannot be reached, a token verified
in the last `OFFLINE_GRACE_S` stays accepted (a revocation is written to that same database, so during the
outage none can be made; the grace is short for one made just before it).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.core.storage.models import MemberToken

PREFIX = "dsm-"
_TOKEN = re.compile(r"^dsm-([0-9a-f]{16})-([A-Za-z0-9_-]{20,100})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$")
OFFLINE_GRACE_S = 30.0


class MemberError(ValueError):
    """A member name or command that cannot be done; the message says why."""


class MemberTokenRefused(Exception):
    """The request's member token is not accepted: `kind` (bad_token, revoked_token, ledger_unavailable),
    the HTTP status, and a message for the client."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def add_member(engine: Engine, name: str, now: float | None = None) -> str:
    """Create `name` (or give a revoked member a new token) and return its token: the only time it is shown."""
    if not _NAME.match(name):
        raise MemberError(f"{name!r} is not a member name: letters, digits and . _ @ + - (up to 100)")
    token_id, secret, salt = secrets.token_hex(8), secrets.token_urlsafe(32), secrets.token_hex(16)
    row = {
        "name": name,
        "token_id": token_id,
        "salt": salt,
        "token_hash": _digest(salt, secret),
        "created_at": time.time() if now is None else now,
        "revoked_at": None,
    }
    with engine.begin() as conn:
        existing = conn.execute(select(MemberToken.revoked_at).where(MemberToken.name == name)).first()
        if existing is not None and existing.revoked_at is None:
            raise MemberError(
                f"{name} already has a token; `downshift member revoke {name}` first to issue a new one"
            )
        try:
            if existing is None:
                conn.execute(insert(MemberToken).values(**row))
            else:
                conn.execute(update(MemberToken).where(MemberToken.name == name).values(**row))
        except IntegrityError as exc:  # another `member add NAME` won the race
            raise MemberError(f"{name} was just added by someone else") from exc
    return f"{PREFIX}{token_id}-{secret}"


def list_members(engine: Engine) -> list[dict[str, object]]:
    """Every member: name, when the token was issued, when it was revoked (None: active). No hashes."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                MemberToken.name, MemberToken.token_id, MemberToken.created_at, MemberToken.revoked_at
            ).order_by(MemberToken.name)
        ).all()
    return [
        {
            "name": r.name,
            "token_id": r.token_id,
            "created_at": r.created_at,
            "revoked_at": r.revoked_at,
            "active": r.revoked_at is None,
        }
        for r in rows
    ]


def revoke_member(engine: Engine, name: str, now: float | None = None) -> None:
    with engine.begin() as conn:
        done = conn.execute(
            update(MemberToken)
            .where(MemberToken.name == name, MemberToken.revoked_at.is_(None))
            .values(revoked_at=time.time() if now is None else now)
        ).rowcount
        if not done:
            known = conn.execute(select(MemberToken.name).where(MemberToken.name == name)).first()
            raise MemberError(f"{name} is already revoked" if known else f"no member named {name}")


def remove_member(engine: Engine, name: str) -> None:
    """Forget a member entirely (their calls keep their name)."""
    with engine.begin() as conn:
        if not conn.execute(delete(MemberToken).where(MemberToken.name == name)).rowcount:
            raise MemberError(f"no member named {name}")


def is_member_token(presented: str) -> bool:
    return presented.startswith(PREFIX)


@dataclass
class _Verified:
    name: str
    at: float


class MemberAuth:
    """Checks member tokens against the database on every request (blocking: run it on a worker thread)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._verified: dict[
            str, _Verified
        ] = {}  # token -> last successful check (for database outages only)
        self._lock = threading.Lock()

    def check(self, presented: str) -> str:
        """The member's name, or MemberTokenRefused."""
        found = _TOKEN.match(presented)
        if found is None:
            raise MemberTokenRefused(401, "bad_token", "invalid member token")
        token_id, secret = found.groups()
        try:
            with self.engine.connect() as conn:
                row = conn.execute(
                    select(
                        MemberToken.name, MemberToken.salt, MemberToken.token_hash, MemberToken.revoked_at
                    ).where(MemberToken.token_id == token_id)
                ).first()
        except SQLAlchemyError:
            with self._lock:
                last = self._verified.get(presented)
            if last is not None and time.monotonic() - last.at < OFFLINE_GRACE_S:
                return last.name
            raise MemberTokenRefused(
                503,
                "ledger_unavailable",
                "the team gateway cannot reach its database to check the member token",
            ) from None
        if row is None or not hmac.compare_digest(_digest(row.salt, secret), row.token_hash):
            raise MemberTokenRefused(401, "bad_token", "invalid member token")
        if row.revoked_at is not None:
            with self._lock:
                self._verified.pop(presented, None)
            raise MemberTokenRefused(
                401,
                "revoked_token",
                f"the member token of {row.name} was revoked; ask your team "
                "admin for a new one (`downshift member add`)",
            )
        with self._lock:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[presented] = _Verified(row.name, time.monotonic())
        return str(row.name)


class RateLimiter:
    """A token bucket per member, in this gateway instance's memory (event loop only: no lock): `per_minute`
    requests a minute on average, bursts of up to `burst_s` seconds' worth (10 s: 100 at 600 a minute);
    0 turns it off. A config change of `per_minute` applies at the next request."""

    def __init__(self, per_minute: float, burst_s: float = 10.0) -> None:
        self.per_minute = per_minute
        self.burst_s = burst_s
        self._buckets: dict[str, tuple[float, float]] = {}  # member -> (tokens, last refill, monotonic)

    def allow(self, member: str, now: float | None = None) -> float:
        """0 when the request may go; otherwise the seconds to wait before the next one would."""
        if self.per_minute <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        rate = self.per_minute / 60.0
        burst = max(1.0, rate * self.burst_s)
        tokens, last = self._buckets.get(member, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens >= 1.0:
            self._buckets[member] = (tokens - 1.0, now)
            return 0.0
        self._buckets[member] = (tokens, now)
        return (1.0 - tokens) / rate
