"""Hostile uploads and clients against the real service: every kind of malformed audio
of tests/malformed_audio.py through the upload path (a clear 4xx or a score, never a
5xx) and, cut into frames, through the live stream; a client that disconnects
mid-upload (logged as such, not a 500); and slow clients (a half-sent head or a
trickling body is closed within the configured bound), on uvicorn with both parsers."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.websockets import WebSocketDisconnect

from api.cli import server_config
from api.main import create_app
from api.settings import Settings
from tests.api.test_app_calls import Env, make_settings, preloaded_holder, running_env, wav
from tests.malformed_audio import KINDS, LIMITS, Kind

UPLOAD_ROUTE = "/v1/calls/{call_id}/audio"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    # Decoding does not depend on the database: one backend keeps the corpus fast.
    tmp = tmp_path_factory.mktemp("malformed")
    with running_env("sqlite", tmp, stream_max_ahead_s=1e6, **LIMITS) as e:
        yield e


def test_the_corpus_is_broad() -> None:
    assert len(KINDS) >= 55
    assert len({k.name for k in KINDS}) == len(KINDS)
    assert {k.status for k in KINDS} == {200, 413, 415, 422}


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_every_malformed_upload_gets_a_clear_answer(env: Env, kind: Kind) -> None:
    call = env.register()
    data = kind.make()
    response = env.upload(call["call_id"], data)
    assert response.status_code < 500, response.text
    assert response.status_code == kind.status, response.text
    body = response.json()
    if kind.status == 200:
        assert body["stage"] == "call" and body["stored"] is True
    else:
        assert kind.message in body["detail"]
        assert "Traceback" not in body["detail"]
        assert env.get_call(call["call_id"]).json()["has_audio"] is False


def _mulaw_frames(data: bytes) -> list[bytes]:
    """The first 2 s of ``data`` read as 8 kHz mu-law, in 20 ms frames (a short tail
    joins the frame before it, as the protocol asks)."""
    head = data[:16_000]
    frames = [head[i : i + 160] for i in range(0, len(head), 160)]
    if len(frames) > 1 and len(frames[-1]) < 160:
        tail = frames.pop()  # not `frames[-2] += frames.pop()`: that writes one slot early
        frames[-1] += tail
    return [f for f in frames if len(f) >= 160]


def test_every_malformed_file_streamed_as_frames_is_scored(env: Env) -> None:
    # Any byte is a mu-law sample: whatever a client streams gets scored and stored, or
    # a 4400 for a frame of the wrong size; never 1011 (internal error).
    for kind in KINDS:
        frames = _mulaw_frames(kind.make())
        call = env.register()
        messages: list[dict[str, Any]] = []
        with env.client.websocket_connect(
            f"/v1/calls/{call['call_id']}/stream?encoding=mulaw", headers=env.auth()
        ) as ws:
            assert ws.receive_json()["type"] == "ready"
            for frame in frames:
                ws.send_bytes(frame)
            ws.send_text('{"type": "end"}')
            try:
                while True:
                    messages.append(ws.receive_json())
            except WebSocketDisconnect as exc:
                code = exc.code
        assert code == 1000, (kind.name, messages[-1:])
        final = messages[-1]
        assert final["type"] == "final", kind.name
        assert final["heard_s"] == pytest.approx(sum(len(f) for f in frames) / 8000, abs=1e-3)


# --- a real server ---------------------------------------------------------------------


@dataclass
class Live:
    app: FastAPI
    url: str
    host: str
    port: int
    key: str

    def register(self) -> str:
        call_id = f"c-{time.monotonic_ns()}"
        r = httpx.post(
            f"{self.url}/v1/calls",
            json={
                "call_id": call_id,
                "caller_id": "+6281299900011",
                "started_at": "2025-06-03T10:00:00+07:00",
            },
            headers={"X-API-Key": self.key},
        )
        assert r.status_code == 200, r.text
        return call_id

    def count(self, status: str) -> float:
        value = self.app.state.runtime.metrics.registry.get_sample_value(
            "callsift_http_request_duration_seconds_count",
            {"method": "POST", "route": UPLOAD_ROUTE, "status": status},
        )
        return float(value or 0.0)


@contextmanager
def live_server(tmp: Path, http: str, **overrides: Any) -> Iterator[Live]:
    """The app on uvicorn, configured by ``callsift serve``'s own config, in a thread."""
    import uvicorn

    settings = make_settings(f"sqlite:///{tmp / 'callsift.db'}", tmp, **overrides)
    app = create_app(settings, models=preloaded_holder())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = server_config(settings, host="127.0.0.1", port=port, workers=1, http=http)
    config.app, config.factory = app, False
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        key = app.state.runtime.store.create_key(role="call_taker", name="t", actor="cli")[0]
        yield Live(app, f"http://127.0.0.1:{port}", "127.0.0.1", port, key)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _head(live: Live, call_id: str, length: int, boundary: str = "b0undary") -> bytes:
    return (
        f"POST /v1/calls/{call_id}/audio HTTP/1.1\r\nHost: {live.host}:{live.port}\r\n"
        f"X-API-Key: {live.key}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _multipart(data: bytes, boundary: str = "b0undary") -> bytes:
    return (
        (
            f"--{boundary}\r\nContent-Disposition: form-data; name=file; filename=call.wav\r\n"
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )


def _read_until_closed(sock: socket.socket, limit_s: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and when it closed (seconds)."""
    start = time.monotonic()
    sock.settimeout(limit_s)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {limit_s} s; got {received!r}")
    except ConnectionResetError:
        pass
    return received, time.monotonic() - start


def _response(sock: socket.socket) -> bytes:
    """One whole response (head and a body of Content-Length bytes)."""
    sock.settimeout(10.0)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


PARSERS = ["httptools", "h11"]


@pytest.mark.parametrize("http", PARSERS)
def test_a_client_gone_mid_upload_is_a_disconnect_not_a_500(
    tmp_path: Path, http: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = _multipart(wav(3.0))
    with live_server(tmp_path, http) as live:
        call_id = live.register()
        with socket.create_connection((live.host, live.port)) as sock:
            sock.sendall(_head(live, call_id, len(body)) + body[: len(body) // 2])
            time.sleep(0.2)  # the server is reading the body now
        deadline = time.monotonic() + 5
        while live.count("499") == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        # The next request is served as usual.
        ok = httpx.post(
            f"{live.url}/v1/calls/{call_id}/audio",
            files={"file": ("call.wav", wav(3.0), "audio/wav")},
            headers={"X-API-Key": live.key},
        )
        assert ok.status_code == 200, ok.text
    assert live.count("499") == 1
    assert live.count("500") == 0
    records = [r for r in caplog.records if r.name.startswith(("callsift", "uvicorn"))]
    assert not [r for r in records if r.levelno >= logging.ERROR], [r.msg for r in records]
    gone = [r for r in records if r.getMessage() == "client disconnected before the answer"]
    assert len(gone) == 1 and gone[0].levelno == logging.INFO
    assert gone[0].exc_info is None and not hasattr(gone[0], "traceback")
    assert gone[0].__dict__["route"] == UPLOAD_ROUTE


@pytest.mark.parametrize("http", PARSERS)
def test_a_half_sent_head_is_closed_within_the_head_timeout(tmp_path: Path, http: str) -> None:
    with live_server(tmp_path, http, http_head_timeout_s=1.0) as live:
        with socket.create_connection((live.host, live.port)) as sock:
            sock.sendall(_head(live, "c-1", 100)[:40])  # half a request line and a header
            received, closed_after = _read_until_closed(sock, 6.0)
        assert received.startswith(b"HTTP/1.1 408 ")
        assert b"request line and headers not received within 1 s" in received
        assert 0.8 < closed_after < 3.0
        # A head that trickles a byte at a time is closed all the same.
        with socket.create_connection((live.host, live.port)) as sock:
            start = time.monotonic()
            try:
                for byte in _head(live, "c-1", 100):
                    sock.sendall(bytes([byte]))
                    time.sleep(0.1)
            except (BrokenPipeError, ConnectionResetError):
                pass
            received, _ = _read_until_closed(sock, 6.0)
            assert received.startswith(b"HTTP/1.1 408 ")
            assert time.monotonic() - start < 3.0
        # An idle connection is closed without a word.
        with socket.create_connection((live.host, live.port)) as sock:
            received, closed_after = _read_until_closed(sock, 6.0)
        assert received == b"" and closed_after < 3.0


@pytest.mark.parametrize("http", PARSERS)
def test_a_trickling_upload_gets_408_within_the_upload_timeout(tmp_path: Path, http: str) -> None:
    body = _multipart(wav(3.0))
    with live_server(tmp_path, http, upload_timeout_s=1.5, http_head_timeout_s=1.0) as live:
        call_id = live.register()
        with socket.create_connection((live.host, live.port)) as sock:
            start = time.monotonic()
            sock.sendall(_head(live, call_id, len(body)) + body[:100])
            stop = threading.Event()

            def trickle() -> None:  # a byte every 0.2 s, until the server answers
                for byte in body[100:]:
                    if stop.wait(0.2):
                        return
                    try:
                        sock.sendall(bytes([byte]))
                    except OSError:
                        return

            sender = threading.Thread(target=trickle, daemon=True)
            sender.start()
            try:
                received, _ = _read_until_closed(sock, 8.0)
            finally:
                stop.set()
                sender.join()
            elapsed = time.monotonic() - start
        assert received.startswith(b"HTTP/1.1 408 "), received
        detail = json.loads(received.split(b"\r\n\r\n", 1)[1])["detail"]
        assert detail.startswith("the recording did not arrive within 1.5 s")
        assert 1.3 < elapsed < 4.0
        # A slow but timely body is not cut by the head deadline (1 s): it is read.
        with socket.create_connection((live.host, live.port)) as sock:
            sock.sendall(_head(live, call_id, len(body)))
            for i in range(0, len(body), len(body) // 4 + 1):
                time.sleep(0.3)
                sock.sendall(body[i : i + len(body) // 4 + 1])
            received = _response(sock)
        assert received.startswith(b"HTTP/1.1 200 "), received[:300]
    assert live.count("408") == 1 and live.count("500") == 0


@pytest.mark.parametrize("http", PARSERS)
def test_keep_alive_serves_requests_then_closes_when_idle(tmp_path: Path, http: str) -> None:
    with live_server(tmp_path, http, http_head_timeout_s=1.0, http_keep_alive_s=0.5) as live:
        with socket.create_connection((live.host, live.port)) as sock:
            for _ in range(2):  # two requests on one connection, the head timer re-armed
                sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {live.host}\r\n\r\n".encode())
                assert _response(sock).startswith(b"HTTP/1.1 200 ")
                time.sleep(0.3)
            received, closed_after = _read_until_closed(sock, 6.0)
        assert received == b"" and closed_after < 1.5


def test_an_oversized_head_is_refused(tmp_path: Path) -> None:
    # httptools has no limit of its own; h11's (16 KiB) applies to both.
    with live_server(tmp_path, "httptools") as live:
        with socket.create_connection((live.host, live.port)) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Junk: " + b"a" * 20_000)
            received, _ = _read_until_closed(sock, 6.0)
        assert received.startswith(b"HTTP/1.1 431 ")


def test_serve_builds_its_config_from_the_settings() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, http_head_timeout_s=3.5, http_keep_alive_s=7.0
    )
    config = server_config(settings, host="127.0.0.1", port=8000, workers=2, http="auto")
    assert config.head_timeout_s == 3.5 and config.timeout_keep_alive == 7.0
    assert config.http == "api.slow_clients:HeadLimitedHttpToolsProtocol"
    assert server_config(settings, host="h", port=1, workers=1, http="h11").http == (
        "api.slow_clients:HeadLimitedH11Protocol"
    )
