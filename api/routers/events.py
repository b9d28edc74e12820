"""Pushed updates: ``GET /v1/events`` (server-sent events) and its one-use tokens.

A browser's EventSource cannot send headers: it first asks ``POST /v1/events/token``
with its key, then opens ``/v1/events?token=...``. The token opens one stream, within
``CALLSIFT_EVENTS_TOKEN_S`` seconds, for the key's own role; only its hash is stored
and it never appears in a log (request logs name the route, never the URL).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, HTTPException, Query, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from api.deps import (
    CallTakerDep,
    Runtime,
    RuntimeDep,
    _api_key_header,
    _bearer,
    _failed,
    principal_for_token,
)
from api.events import (
    HEARTBEAT,
    SUBSCRIBER_ROLES,
    EventHub,
    Subscriber,
    control_frame,
    create_token,
    mark_aborted,
    redeem_token,
)
from api.schemas import EventTokenOut, error_responses
from api.service import Principal
from api.store import StoreUnavailableError

logger = logging.getLogger("callsift.api.events")
router = APIRouter(prefix="/v1/events", tags=["events"])

_STREAM_HEADERS = {
    "Cache-Control": "no-store",
    # nginx buffers proxied answers unless told not to: events would arrive in bursts.
    "X-Accel-Buffering": "no",
}
#: How long a client may take to accept one frame before it counts as not reading.
_SEND_TIMEOUT_S = 30.0


@router.post(
    "/token",
    response_model=EventTokenOut,
    summary="A one-use token that opens an event stream (for a browser's EventSource)",
    responses=error_responses(401, 403, 413, 503),
)
async def event_token(principal: CallTakerDep, runtime: RuntimeDep) -> EventTokenOut:
    """Valid ``CALLSIFT_EVENTS_TOKEN_S`` seconds (60 by default), for one connection,
    with the key's role. Fetch a new one for each reconnection."""
    ttl = runtime.settings.events_token_s
    token, expires = await run_in_threadpool(
        create_token, runtime.store, key_id=principal.key_id, ttl_s=ttl
    )
    return EventTokenOut(token=token, expires_at=expires, expires_in_s=ttl)


async def _principal(
    request: Request,
    runtime: Runtime,
    api_key: str | None,
    bearer: HTTPAuthorizationCredentials | None,
    token: str | None,
) -> Principal:
    client = request.client.host if request.client is not None else "unknown"
    key = api_key or (bearer.credentials if bearer is not None else None)
    if key or not token:
        return await principal_for_token(runtime, key, client=client)
    retry_after = runtime.failed_keys.retry_after(client)
    if retry_after is not None:
        raise HTTPException(
            status_code=429,
            detail=f"too many failed API key checks from this address; retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
    try:
        info = await run_in_threadpool(redeem_token, runtime.store, token, now=datetime.now(UTC))
    except StoreUnavailableError as exc:
        raise HTTPException(
            status_code=503, detail="database unavailable: cannot check the token; retry later"
        ) from exc
    if info is None:
        raise _failed(
            runtime,
            client,
            "invalid, used or expired event token; get a new one from POST /v1/events/token",
        )
    return Principal(key_id=int(info["id"]), role=str(info["role"]), name=str(info["name"]))


def _last_id(header: str | None, query: int | None) -> int | None:
    if query is not None:
        return query
    if header is None or header.strip() == "":
        return None
    value = header.strip()
    if not value.isdigit() or len(value) > 18:
        raise HTTPException(
            status_code=422,
            detail="Last-Event-ID must be the id of an event this service sent (digits)",
        )
    return int(value)


@router.get(
    "",
    summary="Pushed updates: new calls, scores, flags, dispositions, reviews (text/event-stream)",
    response_class=Response,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "A stream of events, each with an id (see docs/api.md).",
        },
        **error_responses(
            (401, "missing, invalid, revoked or expired key; invalid, used or expired token"),
            (403, "role may not subscribe (data_scientist)"),
            413,
            (422, "Last-Event-ID or last_event_id is not an event id"),
            503,
        ),
    },
)
async def events(
    request: Request,
    runtime: RuntimeDep,
    api_key: Annotated[str | None, Security(_api_key_header)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    token: Annotated[
        str | None,
        Query(max_length=128, description="A token from POST /v1/events/token (one use)."),
    ] = None,
    last_event_id: Annotated[
        int | None,
        Query(
            ge=0,
            le=10**18,
            description="Resume after this event id (as the Last-Event-ID header does).",
        ),
    ] = None,
    last_event_id_header: Annotated[
        str | None, Header(alias="Last-Event-ID", include_in_schema=False)
    ] = None,
) -> Response:
    """Server-sent events for call-takers, supervisors and admins, each event with its
    ``id``: a client that reconnects with ``Last-Event-ID`` (or ``last_event_id``) gets
    what it missed, or a ``reset`` event when that is too old. Every role receives
    ``call``, ``score``, ``flag``, ``disposition`` and ``review``; a call-taker's
    ``review`` names only the number (``caller_id``, ``cleared_calls``). A comment line
    comes every ``CALLSIFT_EVENTS_HEARTBEAT_S`` idle seconds. The stream ends when the key
    is revoked or expires, and a client that does not read its events is dropped."""
    after = _last_id(last_event_id_header, last_event_id)
    principal = await _principal(request, runtime, api_key, bearer, token)
    if principal.role not in SUBSCRIBER_ROLES:
        raise HTTPException(
            status_code=403,
            detail=f"role {principal.role} may not subscribe to events; allowed roles: "
            + ", ".join(SUBSCRIBER_ROLES),
        )
    hub = runtime.events
    try:
        sub, first = await hub.subscribe(
            key_id=principal.key_id, role=principal.role, last_event_id=after
        )
    except StoreUnavailableError as exc:
        raise HTTPException(
            status_code=503, detail="database unavailable: cannot read events; retry later"
        ) from exc
    return EventStream(hub, sub, first, retry_ms=runtime.settings.events_retry_ms)


class EventStream(Response):
    """The open stream of one subscriber, until it disconnects or the hub closes it."""

    media_type = "text/event-stream"

    def __init__(self, hub: EventHub, sub: Subscriber, first: list[bytes], *, retry_ms: int):
        super().__init__(headers=_STREAM_HEADERS, media_type=self.media_type)
        # A stream has no length: the body goes out chunked.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.hub = hub
        self.sub = sub
        self.first = [f"retry: {retry_ms}\n\n".encode(), *first]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sub = self.sub
        ended = False
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async with anyio.create_task_group() as tg:

                async def disconnected() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tg.cancel_scope.cancel()

                async def dropped() -> None:
                    await sub.closed.wait()
                    if sub.abort:  # stuck sending to a client that does not read
                        tg.cancel_scope.cancel()

                tg.start_soon(disconnected)
                tg.start_soon(dropped)
                ended = await self._write(send)
                tg.cancel_scope.cancel()
        finally:
            self.hub.unsubscribe(sub)
        if ended:
            with anyio.move_on_after(1.0):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
        if sub.abort:
            mark_aborted()  # the connection is closed without its last chunk

    async def _write(self, send: Send) -> bool:
        """Send frames until the stream is closed; True when it ended in order."""
        sub = self.sub
        body = b"".join(self.first)
        self.first = []
        while True:
            if body:
                with anyio.move_on_after(_SEND_TIMEOUT_S) as scope:
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                if scope.cancelled_caught:
                    self.hub._close(sub, "the client did not read in time", abort=True)
                    return False
            if sub.closed.is_set():
                if sub.abort:
                    return False
                await send(
                    {
                        "type": "http.response.body",
                        "body": control_frame("end", {"reason": sub.reason or "closed"}),
                        "more_body": True,
                    }
                )
                return True
            body = await self._next()

    async def _next(self) -> bytes:
        """The waiting frames, or a heartbeat after ``heartbeat_s`` without any."""
        sub = self.sub
        frames: list[bytes] = []
        try:
            frames.append(sub.queue.get_nowait())
        except asyncio.QueueEmpty:
            with anyio.move_on_after(self.hub.heartbeat_s):
                async with anyio.create_task_group() as getter:

                    async def first() -> None:
                        frames.append(await sub.queue.get())
                        getter.cancel_scope.cancel()

                    async def closed() -> None:
                        await sub.closed.wait()
                        getter.cancel_scope.cancel()

                    getter.start_soon(first)
                    getter.start_soon(closed)
            if not frames:
                return b"" if sub.closed.is_set() else HEARTBEAT
        while len(frames) < 64:  # a burst goes out in one write
            try:
                frames.append(sub.queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return b"".join(frames)


__all__ = ["EventStream", "router"]
