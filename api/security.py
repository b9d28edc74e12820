"""API keys and roles.

A key is shown once, when it is made; the database keeps only its first characters (to
find it) and the SHA-256 of the whole token (to check it). This module imports nothing
heavy, so the CLI can use it without loading SQLAlchemy.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

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
