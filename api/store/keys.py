"""API keys: made, verified, revoked and listed (the token itself is never stored)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from api import security
from api.db import ApiKey
from api.store.audit import audit_row
from api.store.checks import actor_key_id, aware, check_actor, check_text
from api.store.engine import StoreEngine
from api.store.errors import NotFoundError
from api.store.rows import stored_json, utc_now
from classifier.errors import InvalidParameterError


def _key_dict(row: ApiKey) -> dict[str, Any]:
    return {
        "id": row.id,
        "prefix": row.prefix,
        "role": row.role,
        "name": row.name,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "revoked_at": row.revoked_at,
        "created_by": row.created_by,
    }


class KeyStore(StoreEngine):
    """The service's API keys."""

    def create_key(
        self, *, role: str, name: str, actor: str, expires_at: datetime | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Make an API key (audited).

        Returns
        -------
        (str, dict)
            The token, which is never stored and cannot be shown again, and the key's
            public info (id, prefix, role, name, created_at, expires_at, revoked_at,
            created_by).
        """
        security.check_role(role)
        if not isinstance(name, str) or not name.strip() or len(name) > 128:
            raise InvalidParameterError("key name must be 1 to 128 characters")
        check_text("key name", name)
        if expires_at is not None:
            aware(expires_at, "expires_at")
        check_actor(actor)
        token = security.generate_token()
        with self._session(write=True) as session:
            row = ApiKey(
                prefix=security.token_prefix(token),
                key_hash=security.hash_token(token),
                role=role,
                name=name.strip(),
                created_at=utc_now(),
                expires_at=expires_at,
                created_by=actor_key_id(actor),
            )
            session.add(row)
            session.flush()
            info = _key_dict(row)
            session.add(
                audit_row(actor, "key.create", "api_key", str(row.id), None, stored_json(info))
            )
        return token, info

    def verify_key(self, token: str, *, now: datetime) -> dict[str, Any] | None:
        """The key behind ``token``: ``{"id", "role", "name"}``, or None when it is
        unknown, revoked or expired."""
        aware(now, "now")
        if not isinstance(token, str) or not security.looks_like_token(token):
            return None
        query = select(
            ApiKey.id,
            ApiKey.key_hash,
            ApiKey.role,
            ApiKey.name,
            ApiKey.expires_at,
            ApiKey.revoked_at,
        ).where(ApiKey.prefix == security.token_prefix(token))
        with self._session() as session:
            rows = session.execute(query).all()
        for r in rows:
            if not security.hash_matches(token, r.key_hash):
                continue
            if r.revoked_at is not None or (r.expires_at is not None and r.expires_at <= now):
                return None
            return {"id": r.id, "role": r.role, "name": r.name}
        return None

    def revoke_key(self, key_id: int, *, actor: str) -> None:
        """Revoke a key at once (audited). Revoking a revoked key changes nothing.

        Raises
        ------
        NotFoundError
        """
        check_actor(actor)
        with self._session(write=True) as session:
            row = session.execute(
                select(ApiKey).where(ApiKey.id == key_id).with_for_update()
            ).scalar_one_or_none()
            if row is None:
                raise NotFoundError(f"unknown key id {key_id}")
            if row.revoked_at is not None:
                return
            now = utc_now()
            row.revoked_at = now
            session.add(
                audit_row(
                    actor,
                    "key.revoke",
                    "api_key",
                    str(key_id),
                    {"revoked_at": None},
                    {"revoked_at": now.isoformat()},
                )
            )

    def list_keys(self) -> list[dict[str, Any]]:
        """Public info of every key, oldest first (never a hash)."""
        with self._session() as session:
            rows = session.execute(select(ApiKey).order_by(ApiKey.id)).scalars().all()
        return [_key_dict(r) for r in rows]
