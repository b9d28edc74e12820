"""Two replicas on one PostgreSQL database answer alike (issue 18, point 5).

Two real ``callsift serve`` processes (one worker each, own ports, own names) share one
database and one recordings folder. A call is registered on A, its recording, a live
stream and the disposition go to B, a supervisor reviews the number on A; then the
call's record, the number's timeline, the flagged queue and the recording itself must
read the same from both.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import soundfile as sf
from websockets.sync.client import connect

from api.store import Store
from tests.api.conftest import fresh_pg_schema
from tests.code.test_features import _speech_call
from tests.serve import callsift_serve

SR = 8000
NUMBER = "+6281299977001"


def _wav(seconds: float, seed: int) -> bytes:
    out = io.BytesIO()
    sf.write(out, 0.8 * _speech_call(seed=seed, seconds=seconds), SR, format="WAV")
    return out.getvalue()


def _mulaw(seconds: float, seed: int) -> bytes:
    out = io.BytesIO()
    sf.write(out, 0.8 * _speech_call(seed=seed, seconds=seconds), SR, format="RAW", subtype="ULAW")
    return out.getvalue()


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[str, str, str, str]]:
    """(url A, url B, call-taker key, supervisor key); both replicas started together."""
    with fresh_pg_schema() as db_url:
        shared = tmp_path / "recordings-share"  # one shared folder, same path on both
        store = Store(db_url, data_dir=shared)
        store.upgrade()  # once, before the replicas, as `callsift db upgrade` would
        taker = store.create_key(role="call_taker", name="replica taker", actor="cli")[0]
        boss = store.create_key(role="supervisor", name="replica boss", actor="cli")[0]
        store.dispose()
        env = {"CALLSIFT_DATABASE_URL": db_url, "CALLSIFT_DATA_DIR": str(shared)}
        servers: list[AbstractContextManager[str]] = []
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            servers.append(callsift_serve(tmp_path / name, env))
        # Started side by side: each loads and warms the model on its own.
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(s.__enter__) for s in servers]
            errors = [f.exception() for f in futures]
        try:
            if any(errors):
                raise next(e for e in errors if e is not None)
            yield futures[0].result(), futures[1].result(), taker, boss
        finally:
            for s, e in zip(servers, errors, strict=True):
                if e is None:
                    s.__exit__(None, None, None)


def _register(url: str, key: str, call_id: str) -> None:
    # Started minutes ago: the flagged queue weighs calls by age, old ones fade out.
    started = datetime.now(UTC) - timedelta(minutes=10)
    r = httpx.post(
        f"{url}/v1/calls",
        json={"call_id": call_id, "caller_id": NUMBER, "started_at": started.isoformat()},
        headers={"X-API-Key": key},
    )
    assert r.status_code == 200, r.text


def _get(url: str, path: str, key: str) -> Any:
    r = httpx.get(f"{url}{path}", headers={"X-API-Key": key}, timeout=10)
    assert r.status_code == 200, (url, path, r.text)
    return r.json()


def _steady(answer: Any) -> Any:
    """``answer`` without the flagged queue's risk, which decays with the time of asking."""
    if isinstance(answer, dict) and "numbers" in answer:
        return {**answer, "numbers": [{**n, "risk": None} for n in answer["numbers"]]}
    return answer


@pytest.mark.slow
def test_two_replicas_on_one_database_answer_alike(
    replicas: tuple[str, str, str, str],
) -> None:
    a, b, taker, boss = replicas
    assert a != b
    h_taker, h_boss = {"X-API-Key": taker}, {"X-API-Key": boss}

    # A recorded call: arrives on A, recording and outcome on B.
    _register(a, taker, "rep-1")
    wav = _wav(4.0, seed=3)
    r = httpx.post(
        f"{b}/v1/calls/rep-1/audio",
        content=wav,
        headers={**h_taker, "Content-Type": "audio/wav"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    r = httpx.post(
        f"{b}/v1/calls/rep-1/disposition",
        json={"label": "prank", "note": "laughing, hung up"},
        headers=h_taker,
    )
    assert r.status_code == 200, r.text

    # A live call: arrives on A, streamed to B (all at once; pacing is the server's).
    _register(a, taker, "rep-2")
    audio = _mulaw(2.0, seed=5)
    ws_url = b.replace("http", "ws") + "/v1/calls/rep-2/stream?encoding=mulaw"
    with connect(ws_url, additional_headers=h_taker) as ws:
        assert json.loads(ws.recv())["type"] == "ready"
        for i in range(0, len(audio), 800):
            ws.send(audio[i : i + 800])
        ws.send('{"type": "end"}')
        messages = [json.loads(m) for m in ws]
    assert messages[-1]["type"] == "final", messages[-1]
    r = httpx.post(f"{b}/v1/calls/rep-2/disposition", json={"label": "ghost"}, headers=h_taker)
    assert r.status_code == 200, r.text

    # The supervisor's review, on A.
    r = httpx.post(
        f"{a}/v1/numbers/{NUMBER}/review",
        json={"action": "confirm_prank", "note": "known prankster"},
        headers=h_boss,
    )
    assert r.status_code == 200, r.text

    # Everything reads the same from both replicas.
    for path in (
        "/v1/calls/rep-1",
        "/v1/calls/rep-2",
        f"/v1/numbers/{NUMBER}",
        "/v1/numbers/flagged",
    ):
        from_a, from_b = _get(a, path, boss), _get(b, path, boss)
        assert _steady(from_a) == _steady(from_b), (path, from_a, from_b)
        if path.endswith("/flagged"):  # the same risk, to its decay in the moments between
            risks = [n["risk"] for n in from_a["numbers"] + from_b["numbers"]]
            assert max(risks) - min(risks) < 1e-3, (from_a, from_b)
    call = _get(a, "/v1/calls/rep-1", boss)
    assert call["label"] == "prank" and call["caller_id"] == NUMBER, call
    timeline = _get(b, f"/v1/numbers/{NUMBER}", boss)
    assert NUMBER in json.dumps(timeline) and "confirm_prank" in json.dumps(timeline), timeline
    flagged = _get(b, "/v1/numbers/flagged", boss)
    assert NUMBER in json.dumps(flagged), flagged

    # The recording uploaded on B plays from A too (the shared recordings folder).
    for url in (a, b):
        r = httpx.get(f"{url}/v1/calls/rep-1/recording", headers=h_boss, timeout=10)
        assert r.status_code == 200, (url, r.text)
        assert r.content == wav
