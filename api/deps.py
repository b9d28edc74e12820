"""FastAPI dependencies: settings, store, model, and the caller's verified role.

They are ``async``: FastAPI runs a plain ``def`` dependency in its thread pool, and
the hop costs more than these lookups (measured on POST /v1/calls: 5.4 -> 4.1 ms p50).
Only a key missing from the cache goes to the database, in the thread pool.

Every route declares which roles may use it through one of the ``*Dep`` principal
aliases below, so a route without a role check stands out in review.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.db import spend_request_db
from api.events import EventHub
from api.leases import StreamLeases
from api.observability import CallerHasher, Metrics
from api.security import ROLES, FailedKeyLimiter, looks_like_token
from api.service import KeyCache, ModelHolder, Principal, RecentCalls
from api.settings import Settings
from api.store import Store, StoreUnavailableError
from api.streams import LiveCalls

logger = logging.getLogger("callsift.api.auth")


@dataclass
class Runtime:
    """Everything one app instance shares between requests (``app.state.runtime``).

    ``store`` may be replaced while running (tests point it at an unreachable database).
    """

    settings: Settings
    store: Store
    models: ModelHolder
    metrics: Metrics
    recent: RecentCalls
    keys: KeyCache
    hasher: CallerHasher
    timezone: tzinfo | None
    streams: LiveCalls
    leases: StreamLeases
    failed_keys: FailedKeyLimiter
    events: EventHub


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


async def get_store(runtime: RuntimeDep) -> Store:
    return runtime.store


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]

_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="API key from `callsift keys create`."
)
_bearer = HTTPBearer(auto_error=False, description="The same API key as a bearer token.")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


async def get_principal(
    request: Request,
    runtime: RuntimeDep,
    api_key: Annotated[str | None, Security(_api_key_header)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> Principal:
    """The holder of the request's API key.

    Raises
    ------
    HTTPException
        401 for a missing, unknown, revoked or expired key; 429 when the client's
        address failed too often lately; 503 when the database is unreachable and the
        key was not verified recently.
    """
    token = api_key or (bearer.credentials if bearer is not None else None)
    client = request.client.host if request.client is not None else None
    started = time.monotonic()
    try:
        return await principal_for_token(runtime, token, client=client)
    finally:
        # A key checked against a hung database leaves the rest of the timeout to the
        # request's own database calls (HTTP only: a stream lives on past its check).
        spend_request_db(time.monotonic() - started)


def _failed(runtime: Runtime, client: str, detail: str) -> HTTPException:
    """Count a failed key check by ``client``; the 401 to raise."""
    limiter = runtime.failed_keys
    if limiter.failed(client):
        logger.warning(
            "API key checks limited",
            extra={"client": client, "failures": limiter.per_minute, "window_s": 60},
        )
    return _unauthorized(detail)


async def principal_for_token(
    runtime: Runtime, token: str | None, *, client: str | None = None
) -> Principal:
    """The holder of API key ``token`` sent from address ``client`` (raises
    HTTPException 401, 429 or 503, as :func:`get_principal`)."""
    if not token:
        raise _unauthorized("missing API key; send it in the X-API-Key header")
    client = client or "unknown"
    keys = runtime.keys
    well_formed = looks_like_token(token)
    digest = keys.digest(token)
    if well_formed:
        cached = keys.get(digest, max_age_s=keys.fresh_s)
        if cached is not None:
            return cached
    retry_after = runtime.failed_keys.retry_after(client)
    # A limited address may still use a key this process verified before (call-takers
    # behind the same NAT as a misconfigured client keep working); any other key is
    # refused without a database lookup.
    if retry_after is not None and keys.get(digest, max_age_s=math.inf) is None:
        raise HTTPException(
            status_code=429,
            detail=(
                f"too many failed API key checks from this address "
                f"({runtime.failed_keys.per_minute} in 60 s); retry after {retry_after} s"
            ),
            headers={"Retry-After": str(retry_after)},
        )
    if not well_formed:
        raise _failed(runtime, client, "invalid API key")
    try:
        info = await run_in_threadpool(runtime.store.verify_key, token, now=datetime.now(UTC))
    except StoreUnavailableError as exc:
        recent = keys.get(digest, max_age_s=keys.grace_s)
        if recent is not None:
            return recent
        raise HTTPException(
            status_code=503,
            detail="database unavailable: cannot verify the API key; retry later",
        ) from exc
    if info is None:
        keys.forget(digest)
        raise _failed(runtime, client, "invalid, revoked or expired API key")
    principal = Principal(key_id=int(info["id"]), role=str(info["role"]), name=str(info["name"]))
    keys.put(digest, principal)
    return principal


def require_roles(*roles: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets only ``roles`` through (403 naming the allowed roles)."""
    unknown = [r for r in roles if r not in ROLES]
    if unknown:  # a typo here would lock everyone out of a route
        raise ValueError(f"unknown roles {unknown}; expected some of {ROLES}")
    allowed = ", ".join(roles)

    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role not in roles:
            raise HTTPException(
                status_code=403,
                detail=f"role {principal.role} may not do this; allowed roles: {allowed}",
            )
        return principal

    return check


#: Roles that take calls (and may stream a live call's audio).
CALL_TAKER_ROLES: tuple[str, ...] = ("call_taker", "supervisor", "admin")
CallTakerDep = Annotated[Principal, Depends(require_roles("call_taker", "supervisor", "admin"))]
CallReaderDep = Annotated[
    Principal, Depends(require_roles("call_taker", "supervisor", "admin", "data_scientist"))
]
SupervisorDep = Annotated[Principal, Depends(require_roles("supervisor", "admin"))]
DataScientistDep = Annotated[Principal, Depends(require_roles("data_scientist", "admin"))]
AnyRoleDep = Annotated[Principal, Depends(require_roles(*ROLES))]
AdminDep = Annotated[Principal, Depends(require_roles("admin"))]
