"""A server-sent events client for the tests: reads ``GET /v1/events`` in a thread and
keeps every event with the wall-clock time it arrived."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Received:
    """One event as it arrived: its id, type, data (parsed JSON) and time.time()."""

    id: str | None
    type: str
    data: dict[str, Any]
    at: float


@dataclass
class EventReader:
    """``GET url`` streamed in a thread until closed or the server ends it.

    Attributes: ``status`` (the answer's status, once known), ``events``,
    ``comments`` (heartbeat lines), ``ended`` (set when the stream is over),
    ``error_body`` (the body of a non-200 answer).
    """

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    events: list[Received] = field(default_factory=list)
    comments: list[float] = field(default_factory=list)
    error_body: str = ""
    retry: int | None = None
    ended: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)
    _stop: bool = False
    _response: httpx.Response | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> EventReader:
        threading.Thread(target=self._run, daemon=True).start()
        if not self.started.wait(15):
            raise TimeoutError(f"no answer from {self.url} in 15 s")
        return self

    def _run(self) -> None:
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(5.0, read=None)) as client,
                client.stream("GET", self.url, headers=self.headers) as response,
            ):
                self._response = response
                self.status = response.status_code
                if response.status_code != 200:
                    self.error_body = response.read().decode()
                    self.started.set()
                    return
                self.started.set()
                fields: dict[str, str] = {}
                for line in response.iter_lines():
                    if self._stop:
                        return
                    if line.startswith(":"):
                        self.comments.append(time.time())
                    elif line == "":
                        self._dispatch(fields)
                        fields = {}
                    else:
                        name, _, value = line.partition(":")
                        fields[name] = value[1:] if value.startswith(" ") else value
        except Exception:  # closed from another thread, or the server went away
            pass
        finally:
            self.started.set()
            self.ended.set()

    def _dispatch(self, fields: dict[str, str]) -> None:
        if "retry" in fields:
            self.retry = int(fields["retry"])
        if "data" not in fields:
            return
        event = Received(
            fields.get("id"),
            fields.get("event", "message"),
            json.loads(fields["data"]),
            time.time(),
        )
        with self._lock:
            self.events.append(event)

    def close(self) -> None:
        """Close the connection (the server sees the client go)."""
        self._stop = True
        response = self._response
        if response is not None:
            # Shut the socket down: a read blocked in the other thread returns at once.
            stream = response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.ended.wait(5)

    def wait_for(self, predicate: Callable[[Received], bool], timeout: float = 5.0) -> Received:
        """The first event matching ``predicate``, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                for event in self.events:
                    if predicate(event):
                        return event
            if time.monotonic() > deadline:
                seen = [(e.type, e.data.get("call_id")) for e in self.events]
                raise AssertionError(f"no matching event in {timeout} s; got {seen}")
            if self.ended.is_set():
                with self._lock:
                    matches = [e for e in self.events if predicate(e)]
                if matches:
                    return matches[0]
                raise AssertionError(f"the stream ended first; got {[e.type for e in self.events]}")
            time.sleep(0.01)

    def of_call(self, call_id: str) -> list[str]:
        """Types of the events received about ``call_id``, in order."""
        with self._lock:
            return [e.type for e in self.events if e.data.get("call_id") == call_id]
