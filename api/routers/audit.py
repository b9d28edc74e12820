"""Admins: the append-only audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import AdminDep, StoreDep
from api.schemas import AuditEntryOut, AuditOut, error_responses

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get(
    "",
    response_model=AuditOut,
    summary="Audit log, newest first",
    responses=error_responses(401, 403, 413, 422, 503),
)
def audit_log(
    principal: AdminDep,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AuditOut:
    """Who did what and when, with the state before and after: review decisions,
    dispositions, key changes and model reloads."""
    entries = store.audit_entries(limit=limit, offset=offset)
    return AuditOut(entries=[AuditEntryOut(**e) for e in entries], limit=limit, offset=offset)
