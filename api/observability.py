"""Prometheus metrics and structured JSON logs for the service.

Logs never carry a raw phone number: wherever a caller matters, :func:`hash_caller`
gives a salted SHA-256 prefix that correlates a number's requests without revealing
it. Request logs name the route template (``/v1/numbers/{caller_id}``), never the path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import time
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.requests import ClientDisconnect

logger = logging.getLogger("callsift.api")
request_logger = logging.getLogger("callsift.api.request")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Scoring answers within milliseconds; audio scoring in tens of milliseconds.
_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_HANDLER_MARK = "_callsift_json"
#: Status recorded for a request whose client disconnected before the answer (nginx's
#: "client closed request"): a 4xx, not a server error. Never sent: nobody is listening.
CLIENT_CLOSED_REQUEST = 499
# E.164 numbers and SIM-less handset ids, wherever they turn up in free text.
_PHONE = re.compile(r"\+[1-9]\d{6,14}|\b(simless:)[A-Za-z0-9._-]{1,64}")


def redact(text: str) -> str:
    """``text`` with every phone number and SIM-less id replaced by a placeholder."""
    return _PHONE.sub(lambda m: "simless:<redacted>" if m.group(1) else "+<redacted>", text)


class CallerHasher:
    """Salted SHA-256 prefixes of phone numbers, for logs.

    Parameters
    ----------
    salt : str or None
        None draws a random salt (hashes then correlate within one process only).
    """

    def __init__(self, salt: str | None = None) -> None:
        self._salt = (salt or secrets.token_hex(16)).encode("utf-8")

    def __call__(self, caller_id: str) -> str:
        if caller_id == "":
            return "withheld"
        digest = hashlib.sha256(self._salt + caller_id.encode("utf-8")).hexdigest()
        return digest[:12]


class Metrics:
    """The service's Prometheus metrics, in a registry of their own.

    One registry per app keeps several apps in one process (tests) apart.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.request_seconds = Histogram(
            "callsift_http_request_duration_seconds",
            "HTTP request latency by route template, method and status.",
            ["method", "route", "status"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.calls_scored = Counter(
            "callsift_calls_scored",
            "Calls scored, by stage (pre_answer, call) and flag.",
            ["stage", "flag"],
            registry=self.registry,
        )
        self.history_unavailable = Counter(
            "callsift_history_unavailable",
            "Scores computed without caller history because the database was unreachable.",
            registry=self.registry,
        )
        self.model_info = Gauge(
            "callsift_model_info",
            "The model serving (1 for the current version).",
            ["version"],
            registry=self.registry,
        )
        self.pre_answer_cache = Gauge(
            "callsift_pre_answer_cache",
            "Pre-answer scores of the serving model found in (hit) or added to (miss) its "
            "cache of exact feature vectors, since the model was loaded.",
            ["result"],
            registry=self.registry,
        )
        self.model_available = Gauge(
            "callsift_model_available",
            "1 when a usable model is loaded, 0 when scoring answers 503.",
            registry=self.registry,
        )

        self.live_streams = Gauge(
            "callsift_live_streams",
            "Live audio streams open in this worker process (the server's total is in the "
            "database's stream leases).",
            registry=self.registry,
        )
        self.event_streams = Gauge(
            "callsift_event_streams",
            "GET /v1/events clients connected to this worker process.",
            registry=self.registry,
        )
        self.event_streams_dropped = Gauge(
            "callsift_event_streams_dropped",
            "Event stream clients this worker dropped for not reading their events.",
            registry=self.registry,
        )
        self.stream_update_seconds = Histogram(
            "callsift_stream_update_seconds",
            "Time to score a live stream's audio heard so far (features, model, reasons).",
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.loop_lag_seconds = Histogram(
            "callsift_event_loop_lag_seconds",
            "How much later than asked the event loop ran a 50 ms tick (live streams are "
            "scored on the loop: its lag delays their updates).",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.gc_pause_seconds = Histogram(
            "callsift_gc_pause_seconds",
            "Garbage collections of this worker by generation, and how long each held the GIL.",
            ["generation"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.streams_closed = Counter(
            "callsift_streams_closed",
            "Live streams ended, by how (end, idle, disconnect, error).",
            ["how"],
            registry=self.registry,
        )

    def set_model(self, version: str | None) -> None:
        """Point the model gauges at ``version`` (None: no usable model)."""
        self.model_info.clear()
        if version is not None:
            self.model_info.labels(version=version).set(1)
        self.model_available.set(1 if version is not None else 0)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra`` fields."""

    _STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
        "message",
        "asctime",
        "taskName",
    }

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        # Messages may quote driver or library errors; never let a number through.
        return redact(json.dumps(out, default=str, ensure_ascii=False))


class StatementDataFilter(logging.Filter):
    """Drops SQLAlchemy's log lines that carry data: a statement's parameters (INFO) and
    result rows (DEBUG). They hold phone numbers and notes; the statements themselves,
    which hold neither, still log when an operator turns ``sqlalchemy.engine`` on."""

    #: SQLAlchemy 2's formats of those lines (tests/api/test_security.py logs at DEBUG).
    _DATA_FORMATS = frozenset({"[%s] %r", "Row %r"})

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg in self._DATA_FORMATS)


_ENGINE_LOGGER = "sqlalchemy.engine.Engine"


def configure_logging(level: str) -> None:
    """Send the ``callsift`` loggers to stderr as JSON lines (once per process), and keep
    statement data out of SQLAlchemy's log whatever its level."""
    root = logging.getLogger("callsift")
    root.setLevel(level)
    if not any(getattr(h, _HANDLER_MARK, False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        setattr(handler, _HANDLER_MARK, True)
        root.addHandler(handler)
    engine_logger = logging.getLogger(_ENGINE_LOGGER)
    if not any(isinstance(f, StatementDataFilter) for f in engine_logger.filters):
        engine_logger.addFilter(StatementDataFilter())


class RequestMiddleware:
    """Pure ASGI middleware: latency histogram, one JSON log line per request, and the
    JSON body size limit.

    Parameters
    ----------
    app : ASGI app
    metrics : Metrics
    max_json_bytes : int
        Largest body accepted on every route except audio uploads (which enforce their
        own limit while streaming).
    """

    def __init__(self, app: ASGIApp, *, metrics: Metrics, max_json_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_json_bytes = max_json_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        path = scope.get("path", "")
        limit = None if path.endswith("/audio") else self.max_json_bytes

        if limit is not None:
            declared = _content_length(scope)
            if declared is not None and declared > limit:
                await _send_413(send, limit)
                self._observe(scope, 413, start)
                return
            receive = _limited(receive, limit)

        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = int(message["status"])
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except ClientDisconnect:
            # Raised past the app's handler (main._client_disconnect): still the client's
            # doing, not the server's.
            log_client_disconnect(scope)
            status = CLIENT_CLOSED_REQUEST
        except Exception as exc:
            # Answer here rather than in Starlette's outermost handler, which re-raises
            # so that the server logs the raw traceback (it may quote phone numbers).
            self._internal_error(scope, exc)
            if not started:
                await _send_json(send, 500, {"detail": "internal error"})
            status = 500
        finally:
            self._observe(scope, status, start)

    @staticmethod
    def _internal_error(scope: Scope, exc: BaseException) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        logger.error(
            "internal error",
            extra={
                "route": route,
                "error": redact(f"{type(exc).__name__}: {exc}"),
                "traceback": redact("".join(traceback.format_exception(exc))),
            },
        )

    def _observe(self, scope: Scope, status: int, start: float) -> None:
        elapsed = time.perf_counter() - start
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        method = scope.get("method", "")
        self.metrics.request_seconds.labels(method=method, route=route, status=str(status)).observe(
            elapsed
        )
        request_logger.info(
            "request",
            extra={
                "method": method,
                "route": route,
                "status": status,
                "ms": round(elapsed * 1000, 3),
            },
        )


def log_client_disconnect(scope: Scope) -> None:
    """One INFO line for a client that closed its connection before the answer."""
    route = getattr(scope.get("route"), "path", None) or "unmatched"
    logger.info(
        "client disconnected before the answer",
        extra={"route": route, "method": scope.get("method", "")},
    )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _limited(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                from fastapi import HTTPException

                raise HTTPException(status_code=413, detail=_too_large(limit))
        return message

    return wrapped


def _too_large(limit: int) -> str:
    return f"request body is larger than {limit} bytes; expected at most {limit} bytes"


async def _send_413(send: Send, limit: int) -> None:
    await _send_json(send, 413, {"detail": _too_large(limit)})


async def _send_json(send: Send, status: int, content: dict[str, Any]) -> None:
    body = json.dumps(content).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode("ascii")),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
