"""API keys and roles.

A key is shown once, when it is made; the database keeps only its first characters (to
find it) and the SHA-256 of the whole token (to check it). A token is 32 random bytes,
so a plain hash is enough: there is no dictionary to guess from, unlike a password.
:class:`FailedKeyLimiter` bounds how many wrong keys one client address may try. This
module imports nothing heavy, so the CLI can use it without loading SQLAlchemy.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections import OrderedDict, deque

from classifier.errors import InvalidParameterError

#: Roles, least privileged first. Each endpoint names the roles it allows.
ROLES: tuple[str, ...] = ("call_taker", "supervisor", "data_scientist", "admin")
TOKEN_PREFIX = "cs_"
#: Characters of the token kept in clear for lookup: "cs_" and 8 more.
PREFIX_LEN = 11
_TOKEN_BYTES = 32
# token_urlsafe(32) gives 43 characters; anything far outside that is not one of ours.
_MAX_TOKEN_LEN = 128


def check_role(role: str) -> str:
    """Return ``role`` when it is one of :data:`ROLES`.

    Raises
    ------
    InvalidParameterError
        For any other value; the message lists the roles.
    """
    if role not in ROLES:
        raise InvalidParameterError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    return role


def generate_token() -> str:
    """A new random API key: ``"cs_"`` and 32 random bytes, URL-safe base64."""
    return TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


def token_prefix(token: str) -> str:
    """The part of ``token`` stored in clear, to find its row."""
    return token[:PREFIX_LEN]


def hash_token(token: str) -> str:
    """SHA-256 of ``token`` as 64 lowercase hex digits."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def looks_like_token(token: str) -> bool:
    """Cheap shape check before touching the database."""
    return (
        token.startswith(TOKEN_PREFIX)
        and PREFIX_LEN < len(token) <= _MAX_TOKEN_LEN
        and token.isascii()
        and token.isprintable()
    )


def hash_matches(token: str, key_hash: str) -> bool:
    """Compare the hash of ``token`` with a stored hash in constant time."""
    return hmac.compare_digest(hash_token(token), key_hash)


class FailedKeyLimiter:
    """Failed API key checks per client address over a sliding minute.

    Once an address has ``per_minute`` failures in the last ``window_s`` seconds it is
    limited until the oldest of them leaves the window. A sliding log of at most
    ``per_minute`` times per address; at most ``max_clients`` addresses are tracked, the
    one that failed longest ago is dropped first. Thread-safe (keys are checked in the
    request thread pool).

    Parameters
    ----------
    per_minute : int
        Failures allowed per address and window; 0 turns the limit off.
    window_s : float, keyword-only
    max_clients : int, keyword-only
    """

    def __init__(self, per_minute: int, *, window_s: float = 60.0, max_clients: int = 10_000):
        if per_minute < 0:
            raise InvalidParameterError(f"per_minute must be >= 0; got {per_minute}")
        self.per_minute = per_minute
        self.window_s = window_s
        self._max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float] | None:
        times = self._failures.get(client)
        if times is None:
            return None
        while times and now - times[0] >= self.window_s:
            times.popleft()
        if not times:
            del self._failures[client]
            return None
        return times

    def retry_after(self, client: str) -> int | None:
        """Whole seconds until ``client`` may try an unknown key again, or None when it
        may now."""
        if self.per_minute == 0:
            return None
        now = time.monotonic()
        with self._lock:
            times = self._recent(client, now)
            if times is None or len(times) < self.per_minute:
                return None
            return max(1, math.ceil(times[0] + self.window_s - now))

    def failed(self, client: str) -> bool:
        """Count one failed check by ``client``; True when this one started its limit."""
        if self.per_minute == 0:
            return False
        now = time.monotonic()
        with self._lock:
            times = self._recent(client, now)
            if times is None:
                times = self._failures[client] = deque(maxlen=self.per_minute)
            was_limited = len(times) >= self.per_minute
            times.append(now)
            self._failures.move_to_end(client)
            while len(self._failures) > self._max_clients:
                self._failures.popitem(last=False)
            return not was_limited and len(times) >= self.per_minute
