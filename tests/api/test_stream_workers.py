"""Live streams on a real `callsift serve --workers 2` on PostgreSQL, over real WebSockets:
one stream per call and one limit of streams across both worker processes, and a killed
worker's calls freed after the lease timeout.

Which worker accepts a connection is the kernel's choice (under load often the same one),
so to reach the other worker for sure a test stops one with SIGSTOP for a moment, well
within the lease timeout: only the other then accepts.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from api.store import Store
from tests.api.conftest import fresh_pg_schema
from tests.serve import callsift_serve, register_call

STREAM_MAX = 4
LEASE_S = 3.0


@dataclass
class Server:
    url: str
    key: str
    store: Store
    log: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("stream-workers")
    with ExitStack() as stack:
        db_url = stack.enter_context(fresh_pg_schema())
        store = Store(db_url, data_dir=root / "data")
        stack.callback(store.dispose)
        store.upgrade()
        key = store.create_key(role="call_taker", name="workers tester", actor="cli")[0]
        env = {
            "CALLSIFT_DATABASE_URL": db_url,
            "CALLSIFT_DATA_DIR": str(root / "data"),
            "CALLSIFT_STREAM_MAX": str(STREAM_MAX),
            "CALLSIFT_STREAM_LEASE_S": str(LEASE_S),
            # uvicorn says when each worker has started (and the app logs each request).
            "CALLSIFT_LOG_LEVEL": "INFO",
        }
        url = stack.enter_context(callsift_serve(root, env, ["--workers", "2"]))
        log = root / "server.log"
        _wait(lambda: log.read_text().count("Application startup complete") >= 2, 90.0)
        yield Server(url=url, key=key, store=store, log=log)


def _wait(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _register(server: Server) -> str:
    call_id = f"w-{os.urandom(6).hex()}"
    register_call(server.url, server.key, call_id, "+6281299900012")
    return call_id


def _ws(server: Server, call_id: str) -> ClientConnection:
    url = server.url.replace("http", "ws") + f"/v1/calls/{call_id}/stream?encoding=mulaw"
    return connect(url, additional_headers={"X-API-Key": server.key})


def _first(ws: ClientConnection) -> dict[str, Any]:
    """The first message; for a refused stream also its close code."""
    message: dict[str, Any] = json.loads(ws.recv(timeout=10))
    if message["type"] == "error":
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == message["code"]
    return message


def _pids(server: Server) -> dict[str, int]:
    """Process id of the worker holding each leased call."""
    return {r["call_id"]: int(r["worker"].split("-")[0]) for r in server.store.stream_leases()}


@contextmanager
def _stopped(pid: int) -> Iterator[None]:
    """Worker ``pid`` of the server this module started, stopped: the other one accepts."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_two_workers_give_a_call_one_stream(server: Server) -> None:
    with ExitStack() as stack:
        # Both connections of a call at the same moment: one stream, one 4409.
        held = []
        for _ in range(3):
            call_id = _register(server)
            barrier = threading.Barrier(2)

            def open_one(_: int, call_id: str = call_id, barrier: Any = barrier) -> Any:
                barrier.wait()
                return _ws(server, call_id)

            with ThreadPoolExecutor(2) as pool:
                sessions = list(pool.map(open_one, range(2)))
            for ws in sessions:
                stack.callback(ws.close)
            first = [_first(ws) for ws in sessions]
            assert sorted(m["type"] for m in first) == ["error", "ready"], first
            refused = next(m for m in first if m["type"] == "error")
            assert refused["code"] == 4409 and "already has a live stream" in refused["detail"]
            kinds = [m["type"] for m in first]
            held.append((call_id, sessions[kinds.index("ready")]))
        # The call again, on the worker that does not hold it.
        call_id, stream = held[0]
        holder = _pids(server)[call_id]
        with _stopped(holder):
            again = _ws(server, call_id)
            stack.callback(again.close)
            refused = _first(again)
        assert refused["code"] == 4409 and "already has a live stream" in refused["detail"]
        leases = server.store.stream_leases()
        assert {r["instance"] for r in leases} == {f"{socket.gethostname()}:{_port(server)}"}
        # The holder goes on as if nothing happened.
        stream.send('{"type": "end"}')
        assert json.loads(stream.recv(timeout=10))["type"] == "final"
        assert call_id not in _pids(server)
    # A client closing without "end" frees its lease on a real server too.
    _wait(lambda: not server.store.stream_leases(), 10.0)


def test_the_stream_limit_holds_across_both_workers(server: Server) -> None:
    with ExitStack() as stack:
        first = _ws(server, _register(server))
        stack.callback(first.close)
        assert _first(first)["type"] == "ready"
        one = next(iter(_pids(server).values()))
        with _stopped(one):  # the others open on the other worker
            for _ in range(STREAM_MAX - 1):
                ws = _ws(server, _register(server))
                stack.callback(ws.close)
                assert _first(ws)["type"] == "ready"
            # That worker holds only STREAM_MAX - 1 streams itself.
            extra = _ws(server, _register(server))
            stack.callback(extra.close)
            refused = _first(extra)
        assert refused["code"] == 1013
        assert f"already scores {STREAM_MAX} live streams" in refused["detail"]
        pids = list(_pids(server).values())
        other = next(p for p in pids if p != one)
        assert sorted(pids.count(p) for p in (one, other)) == [1, STREAM_MAX - 1]
        with _stopped(other):  # and the worker holding one stream refuses too
            extra = _ws(server, _register(server))
            stack.callback(extra.close)
            assert _first(extra)["code"] == 1013
    _wait(lambda: not server.store.stream_leases(), 10.0)
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'callsift_streams_closed_total{how="disconnect"}' in metrics


def test_a_killed_workers_calls_are_free_after_the_lease_timeout(server: Server) -> None:
    call_id = _register(server)
    ws = _ws(server, call_id)
    try:
        assert _first(ws)["type"] == "ready"
        pid = _pids(server)[call_id]
        os.kill(pid, signal.SIGKILL)  # a worker of the server this module started
        killed = time.monotonic()
    finally:
        ws.close()
    # The other worker refuses the call while the dead one's lease is fresh, then takes it.
    while True:
        again = _ws(server, call_id)
        try:
            first = _first(again)
            if first["type"] == "ready":
                break
            assert first["code"] == 4409
        finally:
            again.close()
        assert time.monotonic() - killed < LEASE_S + 3.0, "the call stayed blocked"
        time.sleep(0.1)
    elapsed = time.monotonic() - killed
    assert elapsed >= LEASE_S * 0.5, elapsed  # not freed early by someone else
    _wait(lambda: not server.store.stream_leases(), 10.0)


def _port(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])
