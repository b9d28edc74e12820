"""The FastAPI app: :func:`create_app` builds it, ``callsift serve`` runs it.

At startup the app migrates the database (when ``auto_migrate``) and loads the model.
Neither failure stops it: a service that answers "model unavailable" or scores
without history is better in a call centre than one that does not answer at all.
"""

from __future__ import annotations

import functools
import gc
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import compile_path

import classifier
from api.db import INSTANCE_MAX
from api.deps import Runtime
from api.drift import DriftCollector, DriftMonitor
from api.events import EventHub, append_live_events
from api.leases import StreamLeases
from api.loopwatch import LoopWatch
from api.observability import (
    CLIENT_CLOSED_REQUEST,
    CallerHasher,
    Metrics,
    RequestMiddleware,
    configure_logging,
    log_client_disconnect,
    redact,
)
from api.routers import (
    audit,
    calls,
    console,
    events,
    export,
    health,
    model,
    numbers,
    reports,
    stream,
)
from api.schemas import ERROR_STATUSES, SERVICE_ADVISORY
from api.scoring_pool import ScoringPool
from api.security import FailedKeyLimiter
from api.service import KeyCache, ModelHolder, ModelReloadError, ModelUnavailableError, RecentCalls
from api.settings import Settings
from api.store import (
    ConflictError,
    NotFoundError,
    RecordingStorageError,
    StorageFullError,
    Store,
    StoreUnavailableError,
)
from api.streams import LiveCalls
from api.web import router as web_router
from classifier.errors import (
    AudioTooLongError,
    AudioTooShortError,
    CallsiftError,
    InvalidAudioError,
    InvalidParameterError,
    ModelMismatchError,
    RegistryError,
    UnsupportedAudioError,
)
from classifier.history import resolve_timezone
from classifier.threads import single_threaded_blas

logger = logging.getLogger("callsift.api")

#: The resource routers the app includes, in this order (the contract test reads them).
ROUTER_MODULES = (console, calls, stream, numbers, export, model, audit, reports, events, health)

DESCRIPTION = f"""
Screens calls to emergency numbers for prank and ghost calls.

**Advisory only.** {SERVICE_ADVISORY["en"]} Scores, flags and reviews inform
call-takers and supervisors; the service never blocks, drops or deprioritises a call.

Authenticate with an API key from `callsift keys create --role ROLE` in the `X-API-Key`
header (or `Authorization: Bearer <key>`). Roles: `call_taker`, `supervisor`,
`data_scientist`, `admin`.

**Live calls.** A call's audio can also be streamed while the call goes on, over the
WebSocket `/v1/calls/{{call_id}}/stream` (protocol in `docs/api.md`): the score, flag and
reasons come back at least once a second. A caller silent for the first seconds may be
unable to speak; early scores say so and never stand for a verdict.
"""

#: Status of each callsift error, most specific first.
_STATUS: tuple[tuple[type[CallsiftError], int], ...] = (
    (NotFoundError, 404),
    (ConflictError, 409),
    (StoreUnavailableError, 503),
    # Before its parent: a full disk is the server's lack of room, not a failure to retry.
    (StorageFullError, 507),
    (RecordingStorageError, 503),
    (ModelUnavailableError, 503),
    (ModelReloadError, 409),
    (UnsupportedAudioError, 415),
    (AudioTooLongError, 422),
    (AudioTooShortError, 422),
    (InvalidAudioError, 422),
    (InvalidParameterError, 422),
    (ModelMismatchError, 503),
    (RegistryError, 409),
)


def _status_of(exc: CallsiftError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 400


async def _callsift_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CallsiftError)
    status = _status_of(exc)
    if isinstance(exc, StoreUnavailableError):
        # The driver's message may name hosts; keep it in the server log only.
        logger.warning("database unavailable: %s", exc)
        return JSONResponse({"detail": "database unavailable; retry later"}, status_code=503)
    return JSONResponse({"detail": str(exc)}, status_code=status)


def _where(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc) or "request"


def _loc(error: Any) -> list[Any]:
    loc = list(error.get("loc", ()))
    if error.get("type") in ("union_tag_invalid", "union_tag_not_found"):
        # A oneOf's selecting field (a review's action) is wrong: name it, not its object.
        loc.append(str((error.get("ctx") or {}).get("discriminator", "")).strip("'"))
    return loc


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    for err in errors:
        if err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "invalid JSON")
            pos = err.get("loc", ("body", "?"))[-1]
            return JSONResponse(
                {"detail": f"malformed JSON body: {reason} at character {pos}"}, status_code=400
            )
    # Never echo the input back: it may be large, or hold a phone number.
    details = [{"loc": _loc(e), "msg": e.get("msg", "")} for e in errors]
    text = "; ".join(f"{_where(d['loc'])}: {d['msg']}" for d in details)
    return JSONResponse({"detail": f"invalid request: {text}", "errors": details}, status_code=422)


def _allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods of every documented operation on ``path``.

    Two routers may serve one path (``GET /v1/calls`` is the console's, ``POST`` the
    call lifecycle's); Starlette's 405 names only the first route's methods.
    """
    table: list[tuple[Any, set[str]]] | None = getattr(app.state, "allow_table", None)
    if table is None:
        table = [
            (compile_path(template)[0], {method.upper() for method in item})
            for template, item in app.openapi().get("paths", {}).items()
        ]
        app.state.allow_table = table
    methods = set().union(*(m for regex, m in table if regex.match(path)))
    if "GET" in methods:
        methods.add("HEAD")  # Starlette answers HEAD wherever it answers GET
    return sorted(methods)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        allowed = _allowed_methods(request.app, request.url.path)
        if allowed:
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(allowed)}
    return await http_exception_handler(request, exc)


async def _client_disconnect(request: Request, exc: Exception) -> Response:
    """A client that went away mid-request (often mid-upload) is not a server error: one
    line at INFO and status 499 in the metrics (nginx's "client closed request"); the
    answer goes nowhere."""
    assert isinstance(exc, ClientDisconnect)
    log_client_disconnect(request.scope)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    # RequestMiddleware answers unexpected errors first; this covers the middleware itself.
    route = getattr(request.scope.get("route"), "path", "unmatched")
    logger.error("internal error", extra={"route": route, "error": redact(f"{type(exc).__name__}")})
    return JSONResponse({"detail": "internal error"}, status_code=500)


_ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
_LIMITED = (
    "too many failed API key checks from this address (CALLSIFT_AUTH_FAILURES_PER_MINUTE); "
    "Retry-After says when to try again"
)
#: FastAPI's own validation error models, which describe an answer the service never sends.
_FASTAPI_422 = ("HTTPValidationError", "ValidationError")


def _describe_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document as the service answers, on top of what the routes declare.

    - Every 4xx and 5xx answer is an :class:`~api.schemas.ErrorResponse`: FastAPI's
      default 422 model (``detail`` as a list) is replaced, and an error status declared
      without a body gets that one.
    - 413 on every operation: the body limit is :class:`RequestMiddleware`'s, before any
      route (the audio upload declares its own limit).
    - 429 wherever a key is checked (401 declared): the failed-key limit per address.
    - An optional query parameter is a string or absent, never JSON null: its schema
      loses the ``null`` that FastAPI adds for ``X | None``.
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    error_body = {"application/json": {"schema": dict(_ERROR_REF)}}
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            responses.setdefault("413", {"description": ERROR_STATUSES[413]})
            if "401" in responses:  # a key is checked: its address may be limited
                responses.setdefault("429", {"description": _LIMITED})
            for status, response in responses.items():
                if status[0] in "45":
                    response["content"] = {**error_body}
            for parameter in operation.get("parameters", []):
                param_schema = parameter.get("schema", {})
                options = param_schema.get("anyOf")
                if parameter.get("in") == "query" and options and {"type": "null"} in options:
                    rest = [o for o in options if o != {"type": "null"}]
                    del param_schema["anyOf"]
                    if len(rest) == 1:
                        param_schema.update(rest[0])
                    else:
                        param_schema["anyOf"] = rest
    for name in _FASTAPI_422:
        components.pop(name, None)
    return schema


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Migrate the database, load the model and start the stream leases' heartbeat;
    stop it, drop this worker's leases and dispose of the pool at shutdown."""
    runtime: Runtime = app.state.runtime
    # Scoring multiplies tall, thin matrices: extra BLAS threads only spin against the
    # requests served beside them.
    single_threaded_blas()
    if runtime.settings.auto_migrate:
        try:
            await run_in_threadpool(runtime.store.upgrade)
        except StoreUnavailableError as exc:
            logger.error("database migration skipped: %s", exc)
    if runtime.models.current is None:
        await run_in_threadpool(runtime.models.load)
    current = runtime.models.current
    runtime.metrics.set_model(current.version if current is not None else None)
    # The model, the app and the libraries are loaded for good: moved out of the
    # collector's reach, a full collection no longer walks them (a 100 ms pause every
    # few thousand requests, seen as the p99 of POST /v1/calls), and the scoring
    # processes forked next never write to their pages (they stay shared).
    gc.freeze()
    # Forked now, with the model loaded and its kernels warm, and before this worker
    # starts its threads: the scoring processes share the model and start at once.
    await runtime.streams.start(
        lambda: runtime.models.current,
        write_events=lambda rows: append_live_events(runtime.store, rows),
    )
    logger.info(
        "started",
        extra={
            "model_version": current.version if current else None,
            "model_error": runtime.models.error,
        },
    )
    runtime.leases.start(lambda: runtime.store, runtime.streams)
    runtime.events.start(lambda: runtime.store)
    watch = None
    if runtime.settings.loop_stall_ms > 0:
        watch = LoopWatch(
            runtime.metrics.loop_lag_seconds,
            runtime.metrics.gc_pause_seconds,
            stall_s=runtime.settings.loop_stall_ms / 1000,
        )
        watch.start()
    try:
        yield
    finally:
        if watch is not None:
            await watch.stop()
        await runtime.events.stop()
        await runtime.leases.stop(runtime.store)
        await runtime.streams.stop()
        runtime.store.dispose()


def _cache_count(runtime: Runtime, attr: str) -> float:
    current = runtime.models.current
    return float(getattr(current.cache, attr)) if current is not None else 0.0


def create_app(
    settings: Settings | None = None,
    *,
    models: ModelHolder | None = None,
    store: Store | None = None,
) -> FastAPI:
    """Build the service.

    Parameters
    ----------
    settings : Settings or None
        None reads the environment and ``.env``.
    models : ModelHolder or None, keyword-only
        A holder with a model already loaded (tests share one); None loads the
        configured model at startup.
    store : Store or None, keyword-only
        None connects to ``settings.database_url``.

    Returns
    -------
    FastAPI
        Run it with ``callsift serve`` or ``uvicorn --factory api.main:create_app``.
    """
    settings = settings or Settings()
    configure_logging(settings.log_level)
    metrics = Metrics()
    scoring = ScoringPool(settings.stream_processes)
    runtime = Runtime(
        settings=settings,
        store=store
        or Store(
            settings.database_url, data_dir=settings.data_dir, pool_timeout_s=settings.db_timeout_s
        ),
        models=models
        or ModelHolder(
            model_dir=settings.model_dir,
            registry_ref=settings.model_registry_ref,
            tracking_uri=settings.mlflow_tracking_uri,
        ),
        metrics=metrics,
        recent=RecentCalls(),
        keys=KeyCache(fresh_s=settings.key_cache_s, grace_s=settings.key_offline_grace_s),
        hasher=CallerHasher(
            settings.log_salt.get_secret_value() if settings.log_salt is not None else None
        ),
        timezone=resolve_timezone(settings.timezone),
        streams=LiveCalls(limit=settings.stream_max, scorer=scoring),
        leases=StreamLeases(
            instance=settings.instance or socket.gethostname()[:INSTANCE_MAX],
            limit=settings.stream_max,
            lease_s=settings.stream_lease_s,
        ),
        failed_keys=FailedKeyLimiter(settings.auth_failures_per_minute),
        events=EventHub(
            poll_s=settings.events_poll_s,
            queue_max=settings.events_queue_max,
            heartbeat_s=settings.events_heartbeat_s,
            replay_s=settings.events_replay_s,
            key_check_s=settings.events_key_check_s,
        ),
    )
    for result, attr in (("hit", "hits"), ("miss", "misses")):
        metrics.pre_answer_cache.labels(result=result).set_function(
            functools.partial(_cache_count, runtime, attr)
        )
    # Read from the streams themselves at each scrape: no count to keep in step.
    metrics.live_streams.set_function(lambda: len(runtime.streams))
    metrics.event_streams.set_function(lambda: len(runtime.events))
    metrics.event_streams_dropped.set_function(lambda: runtime.events.dropped)
    drift = DriftMonitor(
        window_days=settings.drift_window_days,
        min_calls=settings.drift_min_calls,
        cache_s=settings.drift_cache_s,
        tz=runtime.timezone,
    )
    metrics.registry.register(
        DriftCollector(drift, lambda: (runtime.store, runtime.models.current))
    )
    app = FastAPI(
        title="callsift",
        summary="Prank and ghost call screening for emergency call centres (advisory only).",
        description=DESCRIPTION,
        version=classifier.__version__,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.drift = drift
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _describe_errors(default_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_exception_handler(CallsiftError, _callsift_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnect)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    app.add_middleware(RequestMiddleware, metrics=metrics, max_json_bytes=settings.max_json_bytes)
    for module in ROUTER_MODULES:
        app.include_router(module.router)
    app.include_router(web_router)
    return app
