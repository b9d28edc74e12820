"""The audit log: who changed what, with the values before and after."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from api.db import AuditEntry, escape_refused_text
from api.store.checks import check_actor, check_limit, check_text
from api.store.engine import StoreEngine
from api.store.rows import stored_json, utc_now
from classifier.errors import InvalidParameterError


def _audit_dict(row: AuditEntry) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": row.at,
        "actor": row.actor,
        "action": row.action,
        "target_type": row.target_type,
        "target_id": row.target_id,
        "before": row.before,
        "after": row.after,
    }


def audit_row(
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    before: Any,
    after: Any,
    *,
    at: datetime | None = None,
) -> AuditEntry:
    """An audit entry to add in the transaction of the change it records (before and
    after as stored JSON; ``at`` defaults to now)."""
    return AuditEntry(
        at=at or utc_now(),
        actor=actor,
        action=action,
        target_type=target_type,
        # What the entry is about may come from a refused request: kept, escaped.
        target_id=escape_refused_text(target_id),
        before=stored_json(before),
        after=stored_json(after),
    )


class AuditStore(StoreEngine):
    """Appending to and reading the audit log."""

    def audit(
        self,
        *,
        actor: str,
        action: str,
        target_type: str,
        target_id: str,
        before: Any,
        after: Any,
    ) -> None:
        """Append one entry to the audit log (e.g. a model reload)."""
        check_actor(actor)
        for name, value in (("action", action), ("target_type", target_type)):
            if not isinstance(value, str) or not value or len(value) > 64:
                raise InvalidParameterError(f"{name} must be 1 to 64 characters")
        if not isinstance(target_id, str) or len(target_id) > 256:
            raise InvalidParameterError("target_id must be a string of at most 256 characters")
        for name, value in (("action", action), ("target_type", target_type)):
            check_text(name, value)
        with self._session(write=True) as session:
            session.add(audit_row(actor, action, target_type, target_id, before, after))

    def audit_entries(self, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Audit entries, newest first."""
        check_limit(limit, offset)
        with self._session() as session:
            rows = (
                session.execute(
                    select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit).offset(offset)
                )
                .scalars()
                .all()
            )
        return [_audit_dict(r) for r in rows]
