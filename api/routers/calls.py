"""The call lifecycle: arrival (pre-answer score), recording (full score), disposition."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message

from api.deps import CallReaderDep, CallTakerDep, Runtime, RuntimeDep, StoreDep
from api.media import Headerless, headerless_type
from api.schemas import (
    CALL_ID_MAX,
    CALL_ID_PATTERN,
    AudioScoredOut,
    CallIn,
    CallOut,
    CallScoredOut,
    DispositionIn,
    DispositionOut,
    ScoreOut,
    error_responses,
)
from api.service import (
    AUDIO_EXTENSIONS,
    UNKNOWN_WHILE_DOWN,
    LoadedModel,
    ModelUnavailableError,
    RecentCall,
    history_at,
    no_history,
    pre_answer_score,
    registered_call,
    score_payload,
    scored_audio,
)
from api.store import CallRecord, StoreUnavailableError
from classifier.audio import headerless_wav, load_audio

logger = logging.getLogger("callsift.api.calls")
router = APIRouter(prefix="/v1/calls", tags=["calls"])

CallIdPath = Annotated[
    str, Path(pattern=CALL_ID_PATTERN, max_length=CALL_ID_MAX, description="The call's id.")
]
#: Room for the multipart envelope around the recording.
_MULTIPART_SLACK = 64 * 1024
_RAW_TYPES = ("application/octet-stream",)
_SCORE_KEYS = frozenset({"stage", "p_prank", "p_ghost", "flag", "reasons", "model_version"})
#: The score's part of :class:`CallScoredOut`, in its order.
_SCORED_OUT_SCORE_FIELDS = tuple(ScoreOut.model_fields)


def _check_started_at(started_at: datetime, runtime: Runtime) -> None:
    skew = runtime.settings.max_future_skew_s
    ahead = (started_at - datetime.now(UTC)).total_seconds()
    if ahead > skew:
        raise HTTPException(
            status_code=422,
            detail=(
                f"started_at {started_at.isoformat()} is {ahead:.0f} s in the future; expected "
                f"at most {skew:g} s ahead (check the clock of the call-taking system)"
            ),
        )


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


def _log_score(runtime: Runtime, call_id: str, caller_id: str, payload: dict[str, Any]) -> None:
    runtime.metrics.calls_scored.labels(stage=payload["stage"], flag=payload["flag"]).inc()
    logger.info(
        "scored",
        extra={
            "call_id": call_id,
            "caller": runtime.hasher(caller_id),
            "stage": payload["stage"],
            "flag": payload["flag"],
            "model_version": payload["model_version"],
        },
    )


def _answer(content: dict[str, Any]) -> Response:
    """A JSON answer rendered here, once: FastAPI would validate the pydantic model a
    second time against ``response_model`` and encode it through ``jsonable_encoder``."""
    body = json.dumps(content, ensure_ascii=False, allow_nan=False).encode("utf-8")
    return Response(content=body, media_type="application/json")


def _register(runtime: Runtime, body: CallIn, actor: str, start: float) -> dict[str, Any]:
    """The arrival of a call: history, pre-answer score and one INSERT with both.

    Returns
    -------
    dict
        The fields of :class:`CallScoredOut`, in its order.
    """
    store = runtime.store
    loaded: LoadedModel | None = None
    unavailable: ModelUnavailableError | None = None
    try:
        loaded = runtime.models.get()
    except ModelUnavailableError as exc:
        unavailable = exc  # the call is still registered below; the answer is a 503
    created: bool | None = None
    history_unavailable = False
    payload: dict[str, Any] | None = None
    try:
        if loaded is not None:
            # Score before the INSERT so that the call and its score are written in one
            # statement. The history holds only calls started strictly before this one,
            # so it does not matter that this call is not stored yet.
            history = history_at(runtime.store, body.caller_id, body.started_at)
            payload = _pre_answer(runtime, loaded, body, history)
        record, created = store.register_call(
            call_id=body.call_id,
            caller_id=body.caller_id,
            started_at=body.started_at,
            metadata=body.metadata,
            actor=actor,
            pre_score=payload,
            model_version=loaded.version if loaded is not None else None,
        )
        runtime.recent.put(body.call_id, RecentCall(body.caller_id, body.started_at))
        if not created and record.pre_score and _SCORE_KEYS <= record.pre_score.keys():
            # A retry: the stored answer, validated since it may predate this version.
            return CallScoredOut(
                **record.pre_score,
                call_id=body.call_id,
                created=False,
                history_unavailable=False,
                stored=True,
                elapsed_ms=_ms(start),
            ).model_dump(mode="json")
        if loaded is not None and payload is not None and not created:
            # A retry of a call stored without its score (no model at the time).
            store.save_pre_score(body.call_id, payload, model_version=loaded.version)
        stored = payload is not None
    except StoreUnavailableError as exc:
        runtime.recent.put(body.call_id, RecentCall(body.caller_id, body.started_at))
        stored = False
        if payload is None:  # the history could not be read: score without it
            logger.warning("history unavailable: %s", exc, extra={"call_id": body.call_id})
            history_unavailable = True
            runtime.metrics.history_unavailable.inc()
        else:  # read, then the database went away: the score stands, nothing is stored
            logger.warning("call not stored: %s", exc, extra={"call_id": body.call_id})
    if loaded is None:
        raise unavailable or ModelUnavailableError("model unavailable")
    if payload is None:
        payload = _pre_answer(runtime, loaded, body, no_history())
    _log_score(runtime, body.call_id, body.caller_id, payload)
    return {
        **{k: payload[k] for k in _SCORED_OUT_SCORE_FIELDS},
        "call_id": body.call_id,
        "created": created,
        "history_unavailable": history_unavailable,
        "stored": stored,
        "elapsed_ms": _ms(start),
    }


def _pre_answer(
    runtime: Runtime, loaded: LoadedModel, body: CallIn, history: dict[str, float]
) -> dict[str, Any]:
    score = pre_answer_score(
        loaded.model,
        caller_id=body.caller_id,
        started_at=body.started_at,
        history=history,
        timezone=runtime.timezone,
        cache=loaded.cache,
    )
    return score_payload(score, model_version=loaded.version)


@router.post(
    "",
    response_model=CallScoredOut,
    summary="A call arrives: pre-answer score from caller history and metadata",
    responses=error_responses(
        400,
        401,
        403,
        (409, "call_id already registered with another number or time"),
        413,
        (422, "invalid body; started_at more than CALLSIFT_MAX_FUTURE_SKEW_S ahead"),
        (503, "model unavailable, or the database down while checking the key"),
    ),
)
async def register_call(body: CallIn, principal: CallTakerDep, runtime: RuntimeDep) -> Response:
    """Register an arriving call and score it before it is answered.

    Idempotent on ``call_id``: a retry with the same values returns the stored answer
    (``created`` false) and never counts the call twice. When the database is down the
    score is computed from metadata alone, ``history_unavailable`` is true and nothing
    is stored (if it goes down between reading the history and storing the call, the
    score keeps the history and only ``stored`` is false).
    """
    start = time.perf_counter()
    _check_started_at(body.started_at, runtime)
    if runtime.store.is_sqlite:
        # A local SQLite file answers in ~0.1 ms: the whole request costs less than the
        # hop to a worker thread and back (measured, docs/benchmarks.md).
        content = _register(runtime, body, principal.actor, start)
    else:
        # A database server may be slow or unreachable: never block the event loop on it.
        content = await run_in_threadpool(_register, runtime, body, principal.actor, start)
    return _answer(content)


async def _read_recording(request: Request, limit: int, timeout_s: float) -> tuple[bytes, str]:
    """The uploaded recording's bytes and Content-Type (a multipart upload: its file
    part's), refusing anything past ``limit`` early, or not received within
    ``timeout_s`` (a client trickling its body keeps nothing for long)."""
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    multipart = media == "multipart/form-data"
    if not multipart:
        headerless_type(content_type)  # a bad rate or channels refused before the body
    if not (multipart or media.startswith("audio/") or media in _RAW_TYPES):
        raise HTTPException(
            status_code=415,
            detail=(
                f"Content-Type {media or '(none)'} is not accepted; expected multipart/form-data "
                "with a 'file' field, audio/* or application/octet-stream"
            ),
        )
    body_limit = limit + (_MULTIPART_SLACK if multipart else 0)
    too_large = HTTPException(
        status_code=413,
        detail=f"recording is larger than {limit} bytes; expected at most {limit} bytes",
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > body_limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > body_limit:
                    raise too_large
                chunks.append(chunk)
    except TimeoutError:
        logger.info(
            "slow upload: recording not received in time",
            extra={"timeout_s": timeout_s, "received_bytes": size},
        )
        raise HTTPException(
            status_code=408,
            detail=(
                f"the recording did not arrive within {timeout_s:g} s ({size} bytes received); "
                "send it at once, or ask for a longer CALLSIFT_UPLOAD_TIMEOUT_S"
            ),
            # The rest of the body will not be read: the connection cannot serve another
            # request after it.
            headers={"Connection": "close"},
        ) from None
    body = b"".join(chunks)
    chunks.clear()  # one copy of the body, not two, while the multipart is parsed
    if not multipart:
        return body, content_type

    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=10)
    except StarletteHTTPException as exc:
        # Starlette answers a multipart it cannot parse (too many fields or files, a bad
        # boundary) with a bare 400; the upload's problems are 422s with the fix named.
        raise HTTPException(
            status_code=422,
            detail=f"multipart upload not accepted: {exc.detail}; send the recording as "
            "the one file field named 'file'",
        ) from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(
                status_code=422,
                detail="multipart upload has no file field named 'file'; send the recording there",
            )
        data = await upload.read()
        part_type = upload.content_type or ""
    finally:
        await form.close()
    if len(data) > limit:
        raise too_large
    return data, part_type


def _score_recording(
    runtime: Runtime,
    call_id: str,
    data: bytes,
    caller_channel: str,
    start: float,
    headerless: Headerless | None = None,
) -> AudioScoredOut:
    settings = runtime.settings
    loaded = runtime.models.get()  # 503 before any work when no model is usable
    if headerless is not None:
        # Kept and scored as the WAV of the same samples: a file that says what it holds.
        data = headerless_wav(
            data,
            encoding=headerless.encoding,
            sample_rate=headerless.sample_rate,
            channels=headerless.channels,
            big_endian=headerless.big_endian,
        )
    try:
        call, history, history_unavailable = registered_call(runtime.store, runtime.recent, call_id)
    except StoreUnavailableError as exc:
        raise HTTPException(
            status_code=503,
            detail=UNKNOWN_WHILE_DOWN.format(call_id=call_id),
        ) from exc
    audio = load_audio(
        data,
        caller_channel=caller_channel,
        min_duration_s=settings.min_audio_seconds,
        max_duration_s=settings.max_audio_seconds,
        max_samples=settings.max_audio_samples,
    )
    if history_unavailable:
        runtime.metrics.history_unavailable.inc()
    score, watched = scored_audio(
        loaded.model,
        audio,
        caller_id=call.caller_id,
        started_at=call.started_at,
        history=history,
        timezone=runtime.timezone,
    )
    payload = score_payload(score, model_version=loaded.version)
    stored = False
    if not history_unavailable:
        try:
            runtime.store.save_audio(
                call_id,
                data,
                ext=AUDIO_EXTENSIONS.get(audio.original_format, "bin"),
                duration_s=audio.duration_s,
                caller_channel=caller_channel,
            )
            runtime.store.save_score(
                call_id, payload, model_version=loaded.version, drift_features=watched
            )
            stored = True
        except StoreUnavailableError as exc:
            logger.warning("audio score not stored: %s", exc, extra={"call_id": call_id})
    _log_score(runtime, call_id, call.caller_id, payload)
    return AudioScoredOut(
        **payload,
        call_id=call_id,
        duration_s=round(audio.duration_s, 3),
        history_unavailable=history_unavailable,
        stored=stored,
        elapsed_ms=_ms(start),
    )


@router.post(
    "/{call_id}/audio",
    response_model=AudioScoredOut,
    summary="The call's recording: full score from audio, metadata and history",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
                "audio/*": {"schema": {"type": "string", "format": "binary"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
    responses=error_responses(
        (400, "broken multipart upload"),
        401,
        403,
        (404, "call_id not registered"),
        (408, "the recording did not arrive within CALLSIFT_UPLOAD_TIMEOUT_S"),
        (413, "recording larger than CALLSIFT_MAX_AUDIO_BYTES"),
        (415, "unsupported content type, container or encoding"),
        (422, "corrupt, too short or too long recording; no 'file' field; bad parameter"),
        (
            503,
            "model unavailable; database down for a call this server never saw; recording "
            "not written",
        ),
        (507, "recordings disk full: the recording was not stored, the call is unchanged"),
    ),
)
async def upload_audio(
    call_id: CallIdPath,
    request: Request,
    principal: CallTakerDep,
    runtime: RuntimeDep,
    caller_channel: Annotated[
        Literal["mix", "left", "right"],
        Query(description="Which channel of a stereo recording is the caller."),
    ] = "mix",
) -> AudioScoredOut:
    """Score a call from its recording (WAV, FLAC, Ogg, MP3, AU, AIFF; see docs/data-format.md).

    Send the file as multipart field ``file`` or as the raw body with Content-Type
    ``audio/*`` or ``application/octet-stream``. Headerless telephone audio is read as
    its media type says: ``audio/PCMU`` or ``audio/x-mulaw`` (G.711 mu-law),
    ``audio/PCMA`` (A-law), 8 kHz mono unless ``rate`` and ``channels`` say otherwise,
    and ``audio/L16;rate=...`` (16-bit big-endian PCM). A retry replaces the score; the call is
    still counted once.
    """
    start = time.perf_counter()
    settings = runtime.settings
    data, content_type = await _read_recording(
        request, settings.max_audio_bytes, settings.upload_timeout_s
    )
    headerless = headerless_type(content_type, data[:4])
    # Decoding and scoring are CPU work: keep them off the event loop.
    return await run_in_threadpool(
        _score_recording, runtime, call_id, data, caller_channel, start, headerless
    )


@router.post(
    "/{call_id}/disposition",
    response_model=DispositionOut,
    summary="The call-taker's outcome; it becomes the call's label",
    responses=error_responses(400, 401, 403, (404, "call_id not registered"), 413, 422, 503),
)
def set_disposition(
    call_id: CallIdPath, body: DispositionIn, principal: CallTakerDep, store: StoreDep
) -> DispositionOut:
    """Record ``emergency``, ``non_emergency``, ``prank`` or ``ghost`` (and a note).

    Repeating the same outcome changes nothing (``changed`` false); a different one
    replaces it and is audited.
    """
    record, changed = store.set_disposition(
        call_id, label=body.label, note=body.note, actor=principal.actor
    )
    return DispositionOut(
        call_id=record.call_id,
        label=record.label or body.label,
        note=record.label_note,
        label_at=record.label_at,
        changed=changed,
    )


def call_out(record: CallRecord | dict[str, Any]) -> CallOut:
    """The API view of a stored call (the recording's path stays on the server)."""
    data = record.as_dict() if isinstance(record, CallRecord) else dict(record)
    return CallOut(
        **{k: v for k, v in data.items() if k in CallOut.model_fields and k != "has_audio"},
        has_audio=bool(data.get("audio_file")),
    )


@router.get(
    "/{call_id}",
    response_model=CallOut,
    summary="A call with its scores and disposition",
    responses=error_responses(401, 403, (404, "call_id not registered"), 413, 422, 503),
)
def get_call(call_id: CallIdPath, principal: CallReaderDep, store: StoreDep) -> CallOut:
    return call_out(store.get_call(call_id))
