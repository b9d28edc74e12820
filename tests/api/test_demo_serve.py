"""``callsift demo --serve`` (issue 21): a real server fed a short simulated centre
through its own API, checked through the API; and its two refusals (a port in use, an
earlier demo's folder), which change nothing."""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import soundfile as sf

from tests.serve import free_port

CALLSIFT = str(Path(sys.executable).with_name("callsift"))
KEY_LINE = re.compile(r"^\s+(call_taker|supervisor|data_scientist|admin)\s+(cs_\S+)$")


def _env() -> dict[str, str]:
    env = {**os.environ}
    for name in ("DATABASE_URL", "CALLSIFT_DATABASE_URL", "CALLSIFT_DATA_DIR", "CALLSIFT_INSTANCE"):
        env.pop(name, None)
    return env


def _demo(folder: Path, port: int, *extra: str) -> list[str]:
    return [
        CALLSIFT,
        "demo",
        "--serve",
        "--out",
        str(folder),
        "--port",
        str(port),
        "--calls",
        "60",
        "--speed",
        "1e7",
        "--live-pause",
        "30",
        *extra,
    ]


@contextmanager
def _running_demo(folder: Path, log: Path) -> Iterator[tuple[str, dict[str, str], str]]:
    """The demo until its replay is done: (base URL, key per role, the ready line)."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            _demo(folder, port), env=_env(), stdout=out, stderr=subprocess.STDOUT, cwd=folder.parent
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            text = log.read_text(errors="replace")
            ready = [line for line in text.splitlines() if line.startswith("demo ready")]
            if ready:
                break
            assert proc.poll() is None, f"demo exited with {proc.returncode}:\n{text}"
            assert time.monotonic() < deadline, f"demo not ready in 90 s:\n{text}"
            time.sleep(0.25)
        keys = {m[1]: m[2] for line in text.splitlines() if (m := KEY_LINE.match(line))}
        assert f"http://127.0.0.1:{port}/console/" in text
        yield f"http://127.0.0.1:{port}", keys, ready[0]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_demo_serve_replays_a_centre_through_the_api(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    with _running_demo(folder, tmp_path / "demo.log") as (url, keys, ready):
        assert set(keys) == {"call_taker", "supervisor", "data_scientist", "admin"}
        # Each key works, with its own role.
        for role, key in keys.items():
            me = httpx.get(f"{url}/v1/me", headers={"X-API-Key": key}, timeout=10)
            assert me.status_code == 200, me.text
            assert me.json()["role"] == role
        admin = {"X-API-Key": keys["admin"]}
        calls = httpx.get(f"{url}/v1/calls", params={"limit": 200}, headers=admin, timeout=30)
        assert calls.status_code == 200, calls.text
        rows = calls.json()["calls"]
        assert len(rows) >= 60
        replayed = [c for c in rows if c["call_id"].startswith("demo-")]
        assert len(replayed) == 60
        # Recordings scored (posted or streamed), and call-takers' outcomes.
        assert sum(c["has_audio"] and c["score"] is not None for c in replayed) == 60, replayed[0]
        assert sum(c["label"] is not None for c in replayed) >= 50
        # The timestamps end now (the API took them), three weeks back at most.
        latest = max(c["started_at"] for c in replayed)
        assert latest[:4] == time.strftime("%Y", time.gmtime())
        # A live stream stored its recording like an upload.
        streamed = [c for c in replayed if c["metadata"]["recording"] == "stream"]
        assert len(streamed) == 1
        rec = httpx.get(f"{url}/v1/calls/{streamed[0]['call_id']}/recording", headers=admin)
        assert rec.status_code == 200
        with sf.SoundFile(io.BytesIO(rec.content)) as snd:  # as the stream sent it
            assert (snd.samplerate, snd.channels, snd.subtype) == (8000, 1, "PCM_16")
        assert " 1 live streams" in ready, ready
        # Supervisors reviewed flagged numbers, and some are left to review.
        sup = {"X-API-Key": keys["supervisor"]}
        numbers = httpx.get(f"{url}/v1/numbers/flagged", headers=sup, timeout=10).json()["numbers"]
        assert numbers
        assert any(n["review"] is None for n in numbers)
        audit = httpx.get(f"{url}/v1/audit", params={"limit": 1000}, headers=admin, timeout=10)
        assert audit.status_code == 200, audit.text
        actions = {e["action"] for e in audit.json()["entries"]}
        assert {"call.disposition", "number.review"} <= actions, actions


def test_demo_serve_refuses_a_port_in_use_and_changes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            _demo(folder, port), env=_env(), capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 3, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not folder.exists()


def test_demo_serve_refuses_an_earlier_demo_and_changes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / ".callsift-demo-serve").write_text("made by callsift demo --serve\n")
    (folder / "callsift.db").write_bytes(b"an earlier demo's database")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    done = subprocess.run(
        _demo(folder, free_port()), env=_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert str(folder) in done.stderr and "--reset" in done.stderr
    assert "Traceback" not in done.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    # A folder the demo did not make is never taken, even with --reset.
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    done = subprocess.run(
        _demo(other, free_port(), "--reset"), env=_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert "not made by" in done.stderr
    assert (other / "notes.txt").read_text() == "keep me"
