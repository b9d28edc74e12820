"""uvicorn's HTTP protocols with a deadline and a size limit for a request's head.

uvicorn times out an idle keep-alive connection (``timeout_keep_alive``), but nothing
else: a client that sends half a request line or half its headers, or a byte of them
now and then, keeps its connection (and a socket, buffers, a slot of
``limit_concurrency``) for as long as it likes, and so do many such clients. Here the
request line and headers must arrive within ``head_timeout_s`` of the connection
opening or of the previous response; a client that misses it gets ``408`` (or, when it
sent nothing at all, a plain close, as an idle keep-alive connection does) and the
connection is closed. The head is also limited in size for httptools as h11 limits it
(``h11_max_incomplete_event_size``, 16 KiB by default): larger gets ``431``.

A body that trickles is the route's business: the recording upload has its own read
deadline (``CALLSIFT_UPLOAD_TIMEOUT_S``, :mod:`api.routers.calls`).

``callsift serve`` uses these protocols through :class:`ServerConfig`; an app started
with plain ``uvicorn --factory api.main:create_app`` has uvicorn's own.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = [
    "DEFAULT_HEAD_TIMEOUT_S",
    "DEFAULT_MAX_HEAD_BYTES",
    "HeadLimitedH11Protocol",
    "HeadLimitedHttpToolsProtocol",
    "ServerConfig",
    "protocol_path",
]

logger = logging.getLogger("callsift.api.http")

#: The endless response, closed at shutdown rather than waited for.
EVENT_STREAM_PATH = "/v1/events"

DEFAULT_HEAD_TIMEOUT_S = 10.0
#: h11's own default limit (uvicorn's DEFAULT_MAX_INCOMPLETE_EVENT_SIZE).
DEFAULT_MAX_HEAD_BYTES = 16 * 1024

_PROTOCOLS = {
    "h11": "api.slow_clients:HeadLimitedH11Protocol",
    "httptools": "api.slow_clients:HeadLimitedHttpToolsProtocol",
}


class ServerConfig(Config):
    """A uvicorn ``Config`` that also carries the head deadline.

    It is pickled whole into each worker process of ``--workers N``, so the protocols
    read the deadline from it rather than from a global.

    Parameters
    ----------
    *args, **kwargs
        Those of :class:`uvicorn.Config`.
    head_timeout_s : float, keyword-only
        Seconds a request's line and headers may take to arrive.
    """

    def __init__(
        self, *args: Any, head_timeout_s: float = DEFAULT_HEAD_TIMEOUT_S, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.head_timeout_s = head_timeout_s


def protocol_path(http: str) -> str:
    """The head-limited protocol for uvicorn's ``--http`` choice (auto, h11, httptools)."""
    if http == "auto":
        try:
            import httptools  # noqa: F401
        except ImportError:  # uvicorn's auto falls back the same way
            http = "h11"
        else:
            http = "httptools"
    return _PROTOCOLS[http]


def _head_timeout(config: Config) -> float:
    return float(getattr(config, "head_timeout_s", DEFAULT_HEAD_TIMEOUT_S))


def _max_head(config: Config) -> int:
    size = config.h11_max_incomplete_event_size
    return DEFAULT_MAX_HEAD_BYTES if size is None else int(size)


def _answer(status: int, reason: str, detail: str) -> bytes:
    body = ('{"detail": "' + detail + '"}').encode("ascii")
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode("ascii") + body


class _HeadDeadline:
    """The deadline's state and timer, shared by both protocols."""

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    config: Config

    def _arm_head(self) -> None:
        self._disarm_head()
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = self.loop.call_later(
            _head_timeout(self.config), self._head_timed_out
        )

    def _disarm_head(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
        self._head_timer = None

    def _in_head(self) -> bool:
        return getattr(self, "_head_timer", None) is not None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        timeout = _head_timeout(self.config)
        if self._head_bytes:
            # A partial request: say why it is dropped. An idle connection just closes.
            logger.info(
                "slow client: request head not received in time; connection closed",
                extra={"timeout_s": timeout, "head_bytes": self._head_bytes},
            )
            detail = f"request line and headers not received within {timeout:g} s"
            self.transport.write(_answer(408, "Request Timeout", detail))
        self.transport.close()

    def shutdown(self) -> None:
        """At server shutdown an open event stream (``GET /v1/events``) is closed:
        uvicorn waits for every response in progress to complete, and a stream never
        does; its client reconnects (with its last event id) to another worker."""
        cycle = getattr(self, "cycle", None)
        scope = getattr(cycle, "scope", None) or {}
        if (
            cycle is not None
            and not cycle.response_complete
            and scope.get("path") == EVENT_STREAM_PATH
        ):
            self.transport.close()
            return
        super().shutdown()  # type: ignore[misc]

    def _head_too_large(self) -> None:
        limit = _max_head(self.config)
        logger.info(
            "request head too large; connection closed",
            extra={"limit_bytes": limit, "head_bytes": self._head_bytes},
        )
        self._disarm_head()
        detail = f"request line and headers are larger than {limit} bytes"
        self.transport.write(_answer(431, "Request Header Fields Too Large", detail))
        self.transport.close()


class HeadLimitedHttpToolsProtocol(_HeadDeadline, HttpToolsProtocol):
    """uvicorn's httptools protocol with the head deadline and size limit."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head():
            self._head_bytes += len(data)
        super().data_received(data)
        # Still in the head after parsing this: httptools has no limit of its own.
        if self._in_head() and self._head_bytes > _max_head(self.config):
            self._head_too_large()

    def on_headers_complete(self) -> None:
        self._disarm_head()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # a queued request whose head has arrived
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._arm_head()


class HeadLimitedH11Protocol(_HeadDeadline, H11Protocol):
    """uvicorn's h11 protocol with the head deadline (h11 limits the size itself)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head():
            self._head_bytes += len(data)
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the head is in (or the request failed)
            self._disarm_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm_head()
