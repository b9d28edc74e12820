"""``callsift demo --serve`` (issue 21): its two refusals (a port in use, an earlier
demo's folder), which change nothing. The demo itself, a real server fed a short
simulated centre through its own API, is checked through the API and in the browser by
tests/web/test_demo_console.py (one replay for both)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.serve import free_port

CALLSIFT = str(Path(sys.executable).with_name("callsift"))


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
