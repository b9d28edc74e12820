"""The live stream WebSocket on SQLite and PostgreSQL: updates while the call goes on, a
final score equal to the whole recording's, and every kind of bad input."""

from __future__ import annotations

import io
import json
import os
import pickle
import signal
import sqlite3
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from api.service import LoadedModel, ModelHolder
from classifier.audio import load_audio
from tests.api.conftest import BACKENDS
from tests.api.test_app_calls import Env, new_call_id, running_env
from tests.code.test_features import _speech_call

SR = 8000


@pytest.fixture(scope="module", params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp(f"stream-{request.param}")
    # Tests send faster than real time; pacing has a test of its own.
    with running_env(request.param, tmp, stream_max_ahead_s=1e6, stream_max=3) as e:
        yield e


def _wav(y: np.ndarray, subtype: str) -> bytes:
    out = io.BytesIO()
    sf.write(out, y, SR, format="WAV", subtype=subtype)
    return out.getvalue()


def _frames(wav: bytes, subtype: str, frame_ms: int = 20) -> list[bytes]:
    """The file's samples in the stream's own encoding, cut into frames."""
    with sf.SoundFile(io.BytesIO(wav)) as snd:
        assert snd.subtype == subtype
    raw = wav[wav.index(b"data") + 8 :]
    width = 2 if subtype == "PCM_16" else 1
    step = frame_ms * SR // 1000 * width
    frames = [raw[i : i + step] for i in range(0, len(raw), step)]
    if len(frames) > 1 and len(frames[-1]) < 20 * SR // 1000 * width:
        # A short tail joins the frame before it (popped first: `frames[-2] += frames.pop()`
        # would write into the slot before that one).
        tail = frames.pop()
        frames[-1] += tail
    return frames


def _connect(env: Env, call_id: str, role: str = "call_taker", **params: str) -> Any:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return env.client.websocket_connect(
        f"/v1/calls/{call_id}/stream" + (f"?{query}" if query else ""),
        headers={"X-API-Key": env.keys[role]} if role else {},
    )


def _closed_with(ws: WebSocketTestSession) -> tuple[int, list[dict[str, Any]]]:
    """Messages until the close, and the close code."""
    seen = []
    while True:
        try:
            seen.append(ws.receive_json())
        except WebSocketDisconnect as exc:
            return exc.code, seen


def _stream_whole(
    env: Env, call_id: str, frames: list[bytes], encoding: str
) -> tuple[int, list[dict[str, Any]]]:
    """Stream ``frames`` as one call to its end: the close code and the messages after
    the ready one."""
    with _connect(env, call_id, encoding=encoding) as ws:
        ws.receive_json()
        for frame in frames:
            ws.send_bytes(frame)
        ws.send_text('{"type": "end"}')
        return _closed_with(ws)


@pytest.mark.parametrize(
    ("encoding", "subtype"), [("mulaw", "ULAW"), ("alaw", "ALAW"), ("pcm16", "PCM_16")]
)
def test_streamed_call_scores_like_the_uploaded_recording(
    env: Env, encoding: str, subtype: str
) -> None:
    y = 0.8 * _speech_call(seed=5, seconds=6.5)
    wav = _wav(y, subtype)
    call = env.register()
    updates = []
    with _connect(env, call["call_id"], encoding=encoding) as ws:
        ready = ws.receive_json()
        assert ready["type"] == "ready" and ready["encoding"] == encoding
        for frame in _frames(wav, subtype):
            ws.send_bytes(frame)
        ws.send_text('{"type": "end"}')
        code, messages = _closed_with(ws)
    assert code == 1000
    updates = [m for m in messages if m["type"] == "update"]
    final = messages[-1]
    assert final["type"] == "final" and final["reason"] == "end" and final["stored"] is True
    # At least one update per second of audio, each on everything heard so far.
    assert len(updates) >= 6
    heard = [u["heard_s"] for u in updates]
    assert heard == sorted(heard) and heard[0] == pytest.approx(1.0, abs=0.11)
    assert np.diff(heard).max() <= 1.1
    assert all(u["frame"] > 0 and u["stage"] == "call" for u in updates)
    assert all(isinstance(u["reasons"], list) and "advisory" in u for u in updates)
    assert final["heard_s"] == pytest.approx(6.5)

    # The recording kept is what was streamed, sample for sample.
    stored = env.store.get_call(call["call_id"])
    assert stored.audio_file is not None
    assert np.array_equal(load_audio(stored.audio_file).caller, load_audio(wav).caller)
    # The same recording posted at once gets the same score.
    posted = env.upload(call["call_id"], wav).json()
    for key in ("p_prank", "p_ghost", "p_emergency", "p_non_emergency"):
        assert final[key] == pytest.approx(posted[key], abs=1e-6)
    assert final["flag"] == posted["flag"]
    assert [r["group"] for r in final["reasons"]] == [r["group"] for r in posted["reasons"]]


def test_interim_events_still_queued_when_the_worker_stops_are_written(tmp_path: Any) -> None:
    # Interim scores reach the consoles through events written in batches; a worker that
    # stops before its batch is due writes what it holds instead of dropping it.
    with running_env("sqlite", tmp_path) as e:
        e.app.state.runtime.streams.event_batch_s = 3600.0  # due only long after the stop
        call_id = e.register()["call_id"]
        frames = _frames(_wav(0.8 * _speech_call(seed=4, seconds=2.5), "ULAW"), "ULAW")
        code, messages = _stream_whole(e, call_id, frames, "mulaw")
        assert code == 1000 and any(m["type"] == "update" for m in messages)
    with sqlite3.connect(tmp_path / "callsift.db") as db:
        rows = [json.loads(d) for (d,) in db.execute("SELECT data FROM events")]
    live = [d for d in rows if d.get("call_id") == call_id and d.get("live")]
    assert live and live[0]["stage"] == "call"


def test_bad_frames_and_messages_close_with_4400(env: Env) -> None:
    call = env.register()
    with _connect(env, call["call_id"], encoding="pcm16") as ws:
        ws.receive_json()
        ws.send_bytes(b"\x00" * 321)  # odd: not whole 16-bit samples
        code, messages = _closed_with(ws)
    assert code == 4400
    assert "321 bytes; expected 320 to 1600 bytes (an even number)" in messages[-1]["detail"]
    with _connect(env, call["call_id"], encoding="mulaw") as ws:
        ws.receive_json()
        ws.send_bytes(b"\xff" * 2000)  # 250 ms: too long a frame
        code, messages = _closed_with(ws)
    assert code == 4400 and "expected 160 to 800 bytes" in messages[-1]["detail"]
    with _connect(env, call["call_id"], encoding="alaw") as ws:
        ws.receive_json()
        ws.send_bytes(b"\xd5" * 100)  # 12.5 ms: too short a frame
        code, messages = _closed_with(ws)
    assert (
        code == 4400
        and "100 bytes; expected 160 to 800 bytes: 20 to 100 ms of 8 kHz A-law"
        in (messages[-1]["detail"])
    )
    with _connect(env, call["call_id"]) as ws:
        ws.receive_json()
        ws.send_text("hello")
        code, messages = _closed_with(ws)
    assert code == 4400 and "unknown message" in messages[-1]["detail"]
    with _connect(env, call["call_id"], encoding="opus", sample_rate="16000") as ws:
        code, messages = _closed_with(ws)
    assert code == 4400
    assert "encoding 'opus' is not supported; expected pcm16, mulaw, alaw" in messages[-1]["detail"]
    assert "sample_rate '16000'; expected 8000" in messages[-1]["detail"]
    # Nothing was stored for the refused streams.
    assert env.store.get_call(call["call_id"]).audio_file is None


def test_unknown_call_keys_and_roles_are_refused(env: Env) -> None:
    with _connect(env, new_call_id()) as ws:
        code, messages = _closed_with(ws)
    assert code == 4404 and "register the call with POST /v1/calls" in messages[-1]["detail"]
    call = env.register()
    with _connect(env, call["call_id"], role="") as ws:
        code, messages = _closed_with(ws)
    assert code == 4401 and "missing API key" in messages[-1]["detail"]
    with _connect(env, call["call_id"], role="data_scientist") as ws:
        code, messages = _closed_with(ws)
    assert code == 4403 and "role data_scientist may not" in messages[-1]["detail"]


def test_one_stream_per_call_and_a_limit_on_streams(env: Env) -> None:
    calls = [env.register()["call_id"] for _ in range(4)]
    with ExitStack() as stack:
        first = stack.enter_context(_connect(env, calls[0]))
        assert first.receive_json()["type"] == "ready"
        with _connect(env, calls[0]) as again:
            code, messages = _closed_with(again)
        assert code == 4409 and "already has a live stream" in messages[-1]["detail"]
        for call_id in calls[1:3]:
            assert stack.enter_context(_connect(env, call_id)).receive_json()["type"] == "ready"
        with _connect(env, calls[3]) as extra:
            code, messages = _closed_with(extra)
        assert code == 1013 and "already scores 3 live streams" in messages[-1]["detail"]
        assert "callsift_live_streams 3.0" in env.client.get("/metrics").text
    # Closed streams free their places.
    with _connect(env, calls[3]) as ws:
        assert ws.receive_json()["type"] == "ready"


def test_silent_client_gets_a_final_score_then_4408(tmp_path: Any) -> None:
    with running_env("sqlite", tmp_path, stream_idle_s=0.5) as e:
        call = e.register()
        frames = _frames(_wav(0.8 * _speech_call(seed=2, seconds=1.5), "ULAW"), "ULAW")
        with _connect(e, call["call_id"], encoding="mulaw") as ws:
            ws.receive_json()
            for frame in frames:
                ws.send_bytes(frame)
            code, messages = _closed_with(ws)
        assert code == 4408
        final = messages[-1]
        assert final["type"] == "final" and final["reason"] == "idle" and final["stored"] is True
        assert final["heard_s"] == pytest.approx(1.5)


def test_faster_than_real_time_is_read_at_real_time_pace(tmp_path: Any) -> None:
    with running_env("sqlite", tmp_path, stream_max_ahead_s=0.5) as e:
        call = e.register()
        frames = _frames(_wav(0.8 * _speech_call(seed=3, seconds=2.0), "ULAW"), "ULAW", 100)
        start = time.monotonic()
        code, messages = _stream_whole(e, call["call_id"], frames, "mulaw")
        elapsed = time.monotonic() - start
        assert code == 1000
        assert any(m["type"] == "notice" and "real-time pace" in m["detail"] for m in messages)
        # 2 s of audio allowed 0.5 s ahead: read over at least ~1.4 s, not at once.
        assert elapsed >= 1.3
        assert messages[-1]["type"] == "final"


def test_audio_past_the_stream_limit_is_counted_not_scored(tmp_path: Any) -> None:
    with running_env("sqlite", tmp_path, stream_max_seconds=1.0) as e:
        call = e.register()
        wav = _wav(0.8 * _speech_call(seed=4, seconds=2.5), "PCM_16")
        code, messages = _stream_whole(e, call["call_id"], _frames(wav, "PCM_16", 100), "pcm16")
        assert code == 1000
        final = messages[-1]
        assert final["heard_s"] == pytest.approx(1.0) and final["dropped_s"] == pytest.approx(1.5)
        stored = e.store.get_call(call["call_id"])
        assert stored.audio_file is not None
        kept = load_audio(stored.audio_file).caller
        assert np.array_equal(kept, load_audio(wav).caller[:SR])


def test_a_killed_scoring_process_ends_its_streams_with_1011_and_is_started_again(
    tmp_path: Any,
) -> None:
    with running_env("sqlite", tmp_path, stream_max_ahead_s=1e6) as e:
        pool = e.app.state.runtime.streams.scorer
        [pid] = pool.pids
        frames = _frames(_wav(0.8 * _speech_call(seed=6, seconds=3.0), "ULAW"), "ULAW", 100)
        call = e.register()
        with _connect(e, call["call_id"], encoding="mulaw") as ws:
            ws.receive_json()
            for frame in frames[:12]:
                ws.send_bytes(frame)
            assert ws.receive_json()["type"] == "update"
            os.kill(pid, signal.SIGKILL)
            for frame in frames[12:]:
                ws.send_bytes(frame)
            ws.send_text('{"type": "end"}')
            code, messages = _closed_with(ws)
        assert code == 1011
        assert messages[-1]["type"] == "error"
        assert "scoring process of this stream stopped (killed by SIGKILL" in messages[-1]["detail"]
        # Another process took its place; new streams are scored as before.
        deadline = time.monotonic() + 10
        while pool.pids in ([], [pid]):
            assert time.monotonic() < deadline, "no new scoring process"
            time.sleep(0.05)
        again = e.register()
        code, messages = _stream_whole(e, again["call_id"], frames, "mulaw")
        assert code == 1000 and messages[-1]["type"] == "final"
        assert messages[-1]["stored"] is True


def test_a_model_reloaded_after_the_fork_reaches_the_scoring_process(tmp_path: Any) -> None:
    with running_env("sqlite", tmp_path, stream_max_ahead_s=1e6) as e:
        runtime = e.app.state.runtime
        first = runtime.models.get()
        # Another model object than the one the scoring process was forked with.
        reloaded = LoadedModel(
            model=pickle.loads(pickle.dumps(first.model)), source="test", loaded_at=first.loaded_at
        )
        holder = ModelHolder()
        holder._current = reloaded
        runtime.models = holder
        wav = _wav(0.8 * _speech_call(seed=8, seconds=2.5), "PCM_16")
        call = e.register()
        code, messages = _stream_whole(e, call["call_id"], _frames(wav, "PCM_16", 100), "pcm16")
        assert code == 1000
        [process] = runtime.streams.scorer.processes
        assert process._model is reloaded
        final = messages[-1]
        posted = e.upload(call["call_id"], wav).json()
        for key in ("p_prank", "p_ghost", "p_emergency", "p_non_emergency"):
            assert final[key] == pytest.approx(posted[key], abs=1e-6)
