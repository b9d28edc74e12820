"""A live call's audio over a WebSocket: scores while the call goes on.

Protocol (also in docs/api.md):

1. Register the call (``POST /v1/calls``), then open
   ``/v1/calls/{call_id}/stream?encoding=pcm16`` (or ``mulaw``, ``alaw``) with the API key in
   ``X-API-Key`` or ``Authorization: Bearer``.
2. The server sends ``{"type": "ready", ...}``; the client sends the call's audio as
   binary frames of 20 to 100 ms of 8 kHz mono audio, as the call goes.
3. At least once a second of audio the server sends ``{"type": "update", ...}``: score,
   flag and reasons of everything heard, and ``frame``, the number of frames included.
4. The client sends ``{"type": "end"}``; the server answers ``{"type": "final", ...}``
   (the same score as the whole recording posted to ``/audio``), stores the recording
   and its score, and closes with 1000.

Errors come as ``{"type": "error", "code": ..., "detail": ...}`` and a close with that
code: 4400 bad frame, message or parameter; 4401 missing or invalid key; 4429 too many
failed key checks from the client's address; 4403 role not allowed; 4404 unknown call;
4408 no audio for ``stream_idle_s`` (after a final score of what was heard); 4409 call
already streaming (on any worker or replica); 4503 model or database unavailable; 1013
too many live streams (on all this server's workers together); 1011 internal error.

A stream claims its lease (:mod:`api.leases`) at open, together with the call lookup in
the thread pool, and releases it however it ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from datetime import UTC, datetime
from typing import Any

import anyio
from fastapi import APIRouter, HTTPException, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from api.deps import CALL_TAKER_ROLES, Runtime, principal_for_token
from api.schemas import CALL_ID_PATTERN
from api.scoring_pool import StreamInfo
from api.service import (
    UNKNOWN_WHILE_DOWN,
    ModelUnavailableError,
    RecentCall,
    registered_call,
)
from api.store import NotFoundError, StoreError, StoreUnavailableError, score_event
from api.streams import (
    ENCODINGS,
    FRAME_MS,
    BadFrameError,
    LiveCall,
    Scored,
    StreamError,
    StreamScorer,
    frame_limits,
)
from classifier.features import MIN_SAMPLES, SR

logger = logging.getLogger("callsift.api.stream")
router = APIRouter(tags=["calls"])

_CALL_ID = re.compile(CALL_ID_PATTERN)


#: What a send or receive raises once the client's connection is gone.
_GONE = (
    WebSocketDisconnect,
    RuntimeError,
    OSError,
    anyio.ClosedResourceError,
    anyio.BrokenResourceError,
)


class _Closed(Exception):
    """The client went away while the server was sending."""


async def _send(ws: WebSocket, message: dict[str, Any]) -> None:
    try:
        await ws.send_text(json.dumps(message, separators=(",", ":")))
    except _GONE as exc:
        raise _Closed from exc


async def _fail(ws: WebSocket, code: int, detail: str) -> None:
    """Tell the client what went wrong, then close with ``code``."""
    if ws.application_state != WebSocketState.CONNECTED:
        return
    try:
        await _send(ws, {"type": "error", "code": code, "detail": detail})
        await ws.close(code=code, reason=detail.encode()[:120].decode(errors="ignore"))
    except (_Closed, RuntimeError):
        pass


async def _free(runtime: Runtime, live: LiveCall) -> None:
    """Give an open stream's place back, in this process and its lease, once.

    Before the close frame is sent: a client that reopens the call, or another call,
    as soon as it sees the close finds the place free.
    """
    if live.released:
        return
    live.released = True
    runtime.streams.close(live)
    if live.leased:
        # Shielded: a handler cancelled (at server shutdown; the test client too) frees
        # the call now rather than after the lease timeout.
        with anyio.CancelScope(shield=True):
            await runtime.streams.blocking(runtime.leases.release, runtime.store, live.call_id)


async def _stop(ws: WebSocket, runtime: Runtime, live: LiveCall, code: int, detail: str) -> None:
    """End an open stream on an error: free its place, then fail."""
    await _free(runtime, live)
    await _fail(ws, code, detail)


def _store_result(runtime: Runtime, live: LiveCall, payload: dict[str, Any], wav: bytes) -> None:
    runtime.store.save_audio(
        live.call_id,
        wav,
        ext="wav",
        duration_s=live.heard_s,
        caller_channel="mix",
    )
    runtime.store.save_score(
        live.call_id,
        payload,
        model_version=payload["model_version"],
        drift_features=live.watched,
    )


def _scoring(runtime: Runtime) -> StreamScorer:
    scorer = runtime.streams.scorer
    assert scorer is not None, "a stream is only opened on a worker that scores streams"
    return scorer


async def _scored(
    runtime: Runtime, live: LiveCall, *, complete: bool = False, recording: bool = False
) -> Scored:
    """Score of what was heard, computed in the stream's scoring process (with the
    recording, when asked for); ``elapsed_s`` is the time it took there."""
    loaded = runtime.models.get()
    scored = await _scoring(runtime).score(live, loaded, complete=complete, recording=recording)
    runtime.metrics.stream_update_seconds.observe(scored.elapsed_s)
    live.watched = scored.watched
    return scored


def _opened(runtime: Runtime, call_id: str) -> tuple[RecentCall, dict[str, float], bool, bool]:
    """The registered call, its history, whether that is unavailable, and whether the
    stream's lease was claimed (runs in a worker thread, once per stream)."""
    call, history, history_unavailable = registered_call(runtime.store, runtime.recent, call_id)
    leased = runtime.leases.claim(runtime.store, call_id, degraded=history_unavailable)
    return call, history, history_unavailable, leased


@router.websocket("/v1/calls/{call_id}/stream")
async def stream_call(websocket: WebSocket, call_id: str) -> None:
    """Score a live call from its audio frames (protocol in the module docstring)."""
    runtime: Runtime = websocket.app.state.runtime
    await websocket.accept()
    token = websocket.headers.get("x-api-key")
    auth = websocket.headers.get("authorization", "")
    if not token and auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    client = websocket.client.host if websocket.client is not None else None
    try:
        principal = await principal_for_token(runtime, token, client=client)
    except HTTPException as exc:
        code = {401: 4401, 429: 4429}.get(exc.status_code, 4503)
        await _fail(websocket, code, str(exc.detail))
        return
    if principal.role not in CALL_TAKER_ROLES:
        allowed = ", ".join(CALL_TAKER_ROLES)
        await _fail(
            websocket, 4403, f"role {principal.role} may not do this; allowed roles: {allowed}"
        )
        return
    params = websocket.query_params
    encoding = params.get("encoding", "pcm16")
    problems = []
    if not _CALL_ID.match(call_id):
        problems.append(f"call_id {call_id[:40]!r} is not a valid call id")
    if encoding not in ENCODINGS:
        problems.append(
            f"encoding {encoding[:20]!r} is not supported; expected {', '.join(ENCODINGS)}"
        )
    if params.get("sample_rate", str(SR)) != str(SR):
        problems.append(f"sample_rate {params.get('sample_rate', '')[:10]!r}; expected {SR}")
    unknown = sorted(set(params) - {"encoding", "sample_rate"})
    if unknown:
        problems.append(f"unknown query parameters: {', '.join(k[:20] for k in unknown[:5])}")
    if problems:
        await _fail(websocket, 4400, "; ".join(problems))
        return
    try:
        runtime.models.get()
    except ModelUnavailableError as exc:
        await _fail(websocket, 4503, str(exc))
        return
    try:
        call, history, history_unavailable, leased = await runtime.streams.blocking(
            _opened, runtime, call_id
        )
    except StreamError as exc:
        await _fail(websocket, exc.code, str(exc))
        return
    except NotFoundError:
        await _fail(
            websocket,
            4404,
            f"unknown call_id {call_id!r}: register the call with POST /v1/calls first",
        )
        return
    except StoreUnavailableError:
        await _fail(
            websocket,
            4503,
            UNKNOWN_WHILE_DOWN.format(call_id=call_id),
        )
        return
    live = LiveCall(
        call_id=call_id,
        caller_id=call.caller_id,
        started_at=call.started_at,
        encoding=encoding,
        history=history,
        history_unavailable=history_unavailable,
        max_samples=int(runtime.settings.stream_max_seconds * SR),
        leased=leased,
    )
    info = StreamInfo(
        caller_id=call.caller_id,
        started_at=call.started_at,
        history=history,
        timezone=runtime.timezone,
        encoding=encoding,
        max_seconds=runtime.settings.stream_max_seconds,
    )
    try:
        runtime.streams.open(live, info)
    except StreamError as exc:
        # Only a stream whose lease was lost can still be open here, or one without a
        # lease while the database is down.
        if leased:
            await runtime.streams.blocking(runtime.leases.release, runtime.store, call_id)
        await _fail(websocket, exc.code, str(exc))
        return
    how = "error"
    try:
        how = await _serve(websocket, runtime, live)
    except _Closed:
        # The client went away while an update was being sent: what it sent is still
        # scored and stored, as when it disconnects between frames.
        how = "disconnect"
        try:
            await _finish(websocket, runtime, live, how=how)
        except StreamError as exc:  # nobody to tell
            logger.warning("live stream ended without a score: %s", exc, extra={"call_id": call_id})
    except StreamError as exc:
        await _stop(websocket, runtime, live, exc.code, str(exc))
    except Exception:
        logger.exception("live stream failed", extra={"call_id": call_id})
        await _stop(
            websocket, runtime, live, 1011, "internal error; the stream was closed (see server log)"
        )
    finally:
        await _free(runtime, live)
        runtime.metrics.streams_closed.labels(how=how).inc()


async def _serve(ws: WebSocket, runtime: Runtime, live: LiveCall) -> str:
    """Read frames and send updates until the stream ends; returns how it ended."""
    settings = runtime.settings
    lo, hi = frame_limits(live.encoding)
    await _send(
        ws,
        {
            "type": "ready",
            "call_id": live.call_id,
            "encoding": live.encoding,
            "sample_rate": SR,
            "frame_bytes": [lo, hi],
            "frame_ms": list(FRAME_MS),
            "update_every_s": settings.stream_update_s,
            "max_seconds": settings.stream_max_seconds,
            "idle_timeout_s": settings.stream_idle_s,
            "history_unavailable": live.history_unavailable,
        },
    )
    reader = asyncio.ensure_future(_read(ws, runtime, live))
    # One watchdog per stream rather than a timeout around every receive: a stream
    # sends up to 50 frames a second, and a timer per frame costs more than the frame.
    while not reader.done():
        idle = time.monotonic() - live.last_message
        if idle >= settings.stream_idle_s:
            reader.cancel()
            try:
                await reader
            except asyncio.CancelledError:
                pass
            await _finish(ws, runtime, live, how="idle")
            return "idle"
        await asyncio.wait({reader}, timeout=settings.stream_idle_s - idle)
    return reader.result()


async def _receive(ws: WebSocket) -> dict[str, Any]:
    try:
        return dict(await ws.receive())
    except _GONE:
        return {"type": "websocket.disconnect"}  # the connection is gone


async def _read(ws: WebSocket, runtime: Runtime, live: LiveCall) -> str:
    """The stream's messages until it ends; returns how it ended.

    Messages are read as they come, from any client: the server's WebSocket layer reads
    the socket, and so answers the client's pings and sees its pongs, only while the app
    reads. A client sending faster than real time has its frames held (``live.waiting``)
    and scored at real-time pace, at most ``stream_max_ahead_s`` ahead; it is never left
    unread, which cut such clients off with 1011 "keepalive ping timeout" (issue 19).
    """
    max_ahead_s = runtime.settings.stream_max_ahead_s
    paced = False
    ended = False  # the client said end: what still waits is scored, then the final
    receiving: asyncio.Future[dict[str, Any]] | None = None
    try:
        while True:
            due = await _score_due(ws, runtime, live, max_ahead_s)
            if due is not None and not paced:
                paced = True
                await _send(
                    ws,
                    {
                        "type": "notice",
                        "detail": "frames arrive faster than real time; the server reads them "
                        "as they come and scores them at real-time pace",
                    },
                )
            if ended and due is None:
                await _finish(ws, runtime, live, how="end")
                return "end"
            if due is None and receiving is None:
                message = await _receive(ws)  # nothing waits: the next message
            else:
                # A message, or the next waiting frame's time, whichever comes first.
                if receiving is None:
                    receiving = asyncio.ensure_future(_receive(ws))
                timeout = None if due is None else max(0.0, due - time.monotonic())
                done, _ = await asyncio.wait({receiving}, timeout=timeout)
                if not done:
                    continue
                message, receiving = receiving.result(), None
            if message["type"] == "websocket.disconnect":
                await _finish(ws, runtime, live, how="disconnect")
                return "disconnect"
            if ended:
                continue  # nothing after end is part of the call
            live.last_message = time.monotonic()
            data, text = message.get("bytes"), message.get("text")
            if data is not None:
                try:
                    live.receive(data)
                except BadFrameError as exc:
                    await _stop(ws, runtime, live, 4400, str(exc))
                    return "bad_frame"
            elif text is not None:
                try:
                    kind = json.loads(text).get("type")
                except (ValueError, AttributeError):
                    kind = None
                if kind == "end":
                    ended = True
                    continue
                await _stop(
                    ws,
                    runtime,
                    live,
                    4400,
                    'unknown message; expected binary audio frames or the text {"type": "end"}',
                )
                return "bad_message"
    finally:
        if receiving is not None:
            receiving.cancel()


async def _score_due(
    ws: WebSocket, runtime: Runtime, live: LiveCall, max_ahead_s: float
) -> float | None:
    """Score the waiting frames whose time has come, with the updates due; returns when
    the next one is due (``time.monotonic``), None when none waits."""
    settings = runtime.settings
    while (due := live.due_at(max_ahead_s)) is not None:
        if due > time.monotonic():
            return due
        live.take()
        live.last_message = time.monotonic()  # the idle time counts from the last frame
        heard = live.heard_s
        if heard - live.last_update_s >= settings.stream_update_s and heard * SR >= MIN_SAMPLES:
            live.last_update_s = heard
            scored = await _scored(runtime, live)
            payload = scored.payload
            _publish(runtime, live, payload)
            await _send(
                ws,
                {
                    "type": "update",
                    "call_id": live.call_id,
                    "frame": live.frames,
                    "heard_s": round(heard, 3),
                    **payload,
                    "history_unavailable": live.history_unavailable,
                    "compute_ms": round(scored.elapsed_s * 1000, 3),
                },
            )
    return None


#: An interim score reaches the consoles when its flag changes, else this often at most.
_EVENT_EVERY_S = 5.0


def _publish(runtime: Runtime, live: LiveCall, payload: dict[str, Any]) -> None:
    """Push an interim score to the consoles (``GET /v1/events``) without waiting for
    the write: the stream's next update does not wait on the database."""
    now = time.monotonic()
    if payload["flag"] == live.event_flag and now - live.event_at < _EVENT_EVERY_S:
        return
    live.event_flag = payload["flag"]
    live.event_at = now
    kind, data = score_event(live.call_id, live.caller_id, payload)
    data["live"] = True  # an interim score, not stored: the call's record still lacks it
    runtime.streams.publish(kind, data, datetime.now(UTC))


async def _score_waiting(runtime: Runtime, live: LiveCall) -> None:
    """Every frame still waiting joins the score now, sent a second of audio at a time
    (as the updates send it) with the event loop free between: the call has ended."""
    while live.waiting:
        start = live.taken
        while live.waiting and live.taken - start < SR:
            live.take()
        _scoring(runtime).push(live)
        await asyncio.sleep(0)


async def _finish(ws: WebSocket, runtime: Runtime, live: LiveCall, *, how: str) -> None:
    """Final score of everything heard: stored, and sent unless the client has gone."""
    await _score_waiting(runtime, live)
    heard = live.heard_s
    message: dict[str, Any] = {
        "type": "final",
        "call_id": live.call_id,
        "reason": how,
        "frame": live.frames,
        "heard_s": round(heard, 3),
        "dropped_s": round(live.dropped_s, 3),
        "history_unavailable": live.history_unavailable,
        "stored": False,
    }
    if heard * SR < MIN_SAMPLES:
        message["detail"] = (
            f"{heard:.2f} s of audio heard; at least {MIN_SAMPLES / SR:g} s are needed for a score"
        )
    else:
        store = not live.lease_lost and not live.history_unavailable
        try:
            scored = await _scored(runtime, live, complete=True, recording=store)
        except ModelUnavailableError as exc:
            await _stop(ws, runtime, live, 4503, str(exc))
            return
        payload = scored.payload
        message.update(payload, compute_ms=round(scored.elapsed_s * 1000, 3))
        if live.lease_lost:
            # Another process took the call over: its stream stores the call's result.
            message["detail"] = (
                f"this stream's lease lapsed (no heartbeat reached the database for "
                f"{runtime.settings.stream_lease_s:g} s) and another stream took the call "
                "over; this result was not stored"
            )
            logger.warning("live score not stored: lease lost", extra={"call_id": live.call_id})
        elif not live.history_unavailable and scored.wav is not None:
            try:
                await runtime.streams.blocking(_store_result, runtime, live, payload, scored.wav)
                message["stored"] = True
            except StoreError as exc:
                logger.warning("live score not stored: %s", exc, extra={"call_id": live.call_id})
        runtime.metrics.calls_scored.labels(stage="stream", flag=payload["flag"]).inc()
        logger.info(
            "stream scored",
            extra={
                "call_id": live.call_id,
                "caller": runtime.hasher(live.caller_id),
                "flag": payload["flag"],
                "heard_s": round(heard, 3),
                "how": how,
                "model_version": payload["model_version"],
            },
        )
    await _free(runtime, live)
    if how == "disconnect" or ws.application_state != WebSocketState.CONNECTED:
        return
    try:
        await _send(ws, message)
        if how == "idle":
            detail = f"no audio for {runtime.settings.stream_idle_s:g} s; final score sent"
            await ws.close(code=4408, reason=detail)
        else:
            await ws.close(code=1000)
    except (_Closed, RuntimeError):
        pass
