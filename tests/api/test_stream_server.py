"""The live stream against a real `callsift serve` (uvicorn, websockets), as clients see it:
real-time updates, and a client that vanishes without saying "end"."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import soundfile as sf
from websockets.sync.client import connect

from api.store import Store
from tests.code.test_features import _speech_call
from tests.serve import callsift_serve, register_call

SR = 8000


@dataclass
class Live:
    url: str
    key: str
    store: Store


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("stream-server")
    db_url = f"sqlite:///{root / 'callsift.db'}"
    store = Store(db_url, data_dir=root / "data")
    store.upgrade()
    key = store.create_key(role="call_taker", name="stream tester", actor="cli")[0]
    env = {"CALLSIFT_DATABASE_URL": db_url, "CALLSIFT_DATA_DIR": str(root / "data")}
    try:
        with callsift_serve(root, env) as url:
            yield Live(url=url, key=key, store=store)
    finally:
        store.dispose()


def _mulaw(seconds: float, seed: int) -> bytes:
    out = io.BytesIO()
    sf.write(out, 0.8 * _speech_call(seed=seed, seconds=seconds), SR, format="RAW", subtype="ULAW")
    return out.getvalue()


def _ws(live: Live, call_id: str):  # type: ignore[no-untyped-def]
    url = live.url.replace("http", "ws") + f"/v1/calls/{call_id}/stream?encoding=mulaw"
    return connect(url, additional_headers={"X-API-Key": live.key})


def test_updates_come_at_real_time_pace_and_the_final_closes_1000(live: Live) -> None:
    register_call(live.url, live.key, "real-1")
    audio = _mulaw(3.0, seed=7)
    updates: list[tuple[float, dict]] = []
    with _ws(live, "real-1") as ws:
        assert json.loads(ws.recv())["type"] == "ready"
        start = time.monotonic()

        def read() -> None:  # messages timed as they arrive, beside the sending
            for raw in ws:
                updates.append((time.monotonic() - start, json.loads(raw)))

        reader = threading.Thread(target=read)
        reader.start()
        for i in range(0, len(audio), 800):  # 100 ms frames, sent as a phone would
            time.sleep(max(0.0, start + i / SR - time.monotonic()))
            ws.send(audio[i : i + 800])
        ws.send('{"type": "end"}')
        reader.join(timeout=10)
        assert ws.close_code == 1000
    kinds = [m["type"] for _, m in updates]
    assert kinds == ["update"] * 3 + ["final"], kinds  # after 1, 2 and 3 s of audio
    # Each update came once its second had been sent, not in a burst at the end.
    assert updates[0][0] < 1.9 and updates[1][0] < 2.9, [t for t, _ in updates]
    assert updates[-1][1]["stored"] is True and updates[-1][1]["heard_s"] == pytest.approx(3.0)


def test_a_client_gone_without_end_still_gets_its_audio_stored(live: Live) -> None:
    register_call(live.url, live.key, "gone-1")
    audio = _mulaw(2.0, seed=8)
    ws = _ws(live, "gone-1")
    ws.recv()  # ready
    for i in range(0, len(audio), 800):
        ws.send(audio[i : i + 800])
    ws.recv()  # the first update: the frames are being read
    ws.socket.close()  # no "end", no closing handshake: the client is simply gone
    deadline = time.monotonic() + 10
    stored = live.store.get_call("gone-1")
    # The recording and then its score are written once the server sees the close.
    while (stored.audio_file is None or stored.flag is None) and time.monotonic() < deadline:
        time.sleep(0.1)
        stored = live.store.get_call("gone-1")
    assert stored.audio_file is not None
    # What the server had read is kept: at least the second its first update covered (an
    # abrupt close may drop frames still in flight).
    assert stored.flag is not None and stored.duration_s is not None
    assert 1.0 <= stored.duration_s <= 2.0
