"""A live client far faster than real time, against a real `callsift serve` (issue 19,
finding 3): it is paced, never cut, and all its audio is scored and stored.

The server paces a fast sender by scoring its frames at real-time pace. It used to do
that by not reading the socket, so the client's answer to the server's keepalive ping
(and the server's answer to the client's) waited behind the audio: the connection was
closed with 1011 "keepalive ping timeout" and no final message, and only the audio read
by then was scored. Short keepalive settings make that happen in seconds here.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import soundfile as sf
from websockets.sync.client import connect

from api.store import Store
from tests.code.test_features import _speech_call
from tests.serve import callsift_serve, register_call

SR = 8000
SECONDS = 64.0
#: Scored at full speed up to this far ahead, then at real-time pace: the last
#: SECONDS - MAX_AHEAD_S (6 s) of the call are paced, several keepalive rounds.
MAX_AHEAD_S = 58.0
PING_S = 0.5


@dataclass
class Live:
    url: str
    key: str
    store: Store


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("stream-pacing")
    db_url = f"sqlite:///{root / 'callsift.db'}"
    store = Store(db_url, data_dir=root / "data")
    store.upgrade()
    key = store.create_key(role="call_taker", name="fast client", actor="cli")[0]
    env = {
        "CALLSIFT_DATABASE_URL": db_url,
        "CALLSIFT_DATA_DIR": str(root / "data"),
        "CALLSIFT_STREAM_MAX_AHEAD_S": str(MAX_AHEAD_S),
        "CALLSIFT_STREAM_PING_INTERVAL_S": str(PING_S),
        "CALLSIFT_STREAM_PING_TIMEOUT_S": str(2 * PING_S),
    }
    try:
        with callsift_serve(root, env) as url:
            yield Live(url=url, key=key, store=store)
    finally:
        store.dispose()


def _mulaw(seconds: float, seed: int) -> bytes:
    out = io.BytesIO()
    sf.write(out, 0.8 * _speech_call(seed=seed, seconds=seconds), SR, format="RAW", subtype="ULAW")
    return out.getvalue()


def _stream_at_once(live: Live, call_id: str, audio: bytes) -> tuple[list[dict[str, Any]], Any]:
    """Every frame sent as fast as the socket takes it, then end; the messages until the
    server closes, and the close code. The client pings the server as often as the
    server pings it."""
    url = live.url.replace("http", "ws") + f"/v1/calls/{call_id}/stream?encoding=mulaw"
    messages: list[dict[str, Any]] = []
    with connect(
        url,
        additional_headers={"X-API-Key": live.key},
        ping_interval=PING_S,
        ping_timeout=2 * PING_S,
    ) as ws:
        assert json.loads(ws.recv())["type"] == "ready"
        for i in range(0, len(audio), 800):  # 100 ms frames
            ws.send(audio[i : i + 800])
        ws.send('{"type": "end"}')
        for raw in ws:  # until the server closes
            messages.append(json.loads(raw))
    return messages, ws.close_code


def test_a_client_far_ahead_is_paced_never_cut_and_all_its_audio_is_scored(live: Live) -> None:
    register_call(live.url, live.key, "fast-1")
    audio = _mulaw(SECONDS, seed=11)
    start = time.monotonic()
    messages, code = _stream_at_once(live, "fast-1", audio)
    elapsed = time.monotonic() - start
    assert code == 1000, (code, messages[-1:])
    assert any(m["type"] == "notice" for m in messages)
    final = messages[-1]
    assert final["type"] == "final" and final["reason"] == "end", final
    assert final["heard_s"] == pytest.approx(SECONDS) and final["dropped_s"] == 0
    assert final["stored"] is True
    # Paced: the last seconds were scored no faster than they would be spoken.
    assert elapsed >= SECONDS - MAX_AHEAD_S - 1.0
    updates = [m for m in messages if m["type"] == "update"]
    assert [round(u["heard_s"]) for u in updates] == list(range(1, int(SECONDS) + 1))
    stored = live.store.get_call("fast-1")
    assert stored.audio_file is not None and stored.duration_s == pytest.approx(SECONDS)
    assert stored.flag == final["flag"]
