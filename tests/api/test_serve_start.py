"""``callsift serve`` comes up, or stops with the reason (issue 17).

A real ``callsift serve --workers 2`` on PostgreSQL while the cores are kept busy (a
spinning process beside the suite's other test worker): ready within 60 s and no worker
restarted. A worker that cannot start stops the server with the reason instead of being
restarted forever; a port in use and an unreadable model are said at once.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import fresh_pg_schema
from tests.serve import free_port

CALLSIFT = str(Path(sys.executable).with_name("callsift"))


@contextmanager
def busy_cores(n: int = 2) -> Iterator[None]:
    """``n`` processes spinning on the CPU, as other work on a shared machine."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for proc in spinners:
            proc.kill()
            proc.wait()


def _env(root: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "CALLSIFT_DATA_DIR": str(root / "data"),
        "CALLSIFT_LOG_LEVEL": "INFO",
        **extra,
    }
    for name in ("DATABASE_URL", "CALLSIFT_INSTANCE"):
        env.pop(name, None)
    return env


@pytest.mark.slow
def test_two_workers_on_postgres_start_on_busy_cores_without_restarts(tmp_path: Path) -> None:
    port = free_port()
    # One spinner: in the suite the other test worker keeps the second core busy, and a
    # second spinner only slowed every other test (32 s for this test alone).
    with fresh_pg_schema() as db_url, busy_cores(1):
        log = tmp_path / "server.log"
        with log.open("wb") as out:
            started = time.monotonic()
            proc = subprocess.Popen(
                [CALLSIFT, "serve", "--workers", "2", "--port", str(port)],
                env=_env(tmp_path, CALLSIFT_DATABASE_URL=db_url),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )
        try:
            ready_s = None
            while time.monotonic() - started < 60:
                assert proc.poll() is None, log.read_text()
                try:
                    r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                    if r.status_code == 200:
                        ready_s = time.monotonic() - started
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.25)
            assert ready_s is not None, f"not ready in 60 s:\n{log.read_text()}"
            # Both workers up, neither replaced on the way.
            deadline = time.monotonic() + 60
            while log.read_text().count("Application startup complete") < 2:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.25)
            text = log.read_text()
            assert "died" not in text and "starting another" not in text, text
            assert text.count("Started server process") == 2, text
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def test_a_worker_that_cannot_start_stops_the_server_with_the_reason(tmp_path: Path) -> None:
    # The supervisor of `callsift serve --workers N` on an app whose workers all fail at
    # import: uvicorn's own would start new ones forever.
    script = (
        "import logging, sys\n"
        "from uvicorn import Config\n"
        "from api.supervisor import Supervisor\n"
        "logging.basicConfig(level=logging.INFO)\n"
        f"config = Config('tests.no_such_module:app', port={free_port()}, workers=2)\n"
        "sock = config.bind_socket()\n"
        "supervisor = Supervisor(config, [sock], startup_timeout_s=60)\n"
        "supervisor.run()\n"
        "print('FAILURE:', supervisor.failure)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert "FAILURE: worker [" in out.stdout, out.stdout + out.stderr
    assert "stopped (exit code 3) before it was ready" in out.stdout
    assert out.stderr.count("Started server process") <= 2  # never restarted


def test_serve_on_a_port_in_use_says_so_at_once(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        out = subprocess.run(
            [CALLSIFT, "serve", "--workers", "2", "--port", str(port)],
            env=_env(tmp_path, CALLSIFT_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}"),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    assert out.returncode == 3, out.stderr
    assert "address already in use" in out.stderr.lower(), out.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr
    assert time.monotonic() - started < 20  # before any model is loaded
    assert not (tmp_path / "db.sqlite").exists()  # nothing written


def test_serve_with_an_unreadable_model_stops_with_the_reason(tmp_path: Path) -> None:
    broken = tmp_path / "model"
    broken.mkdir()
    (broken / "model.joblib").write_bytes(b"not a model")
    out = subprocess.run(
        [CALLSIFT, "serve", "--workers", "2", "--port", str(free_port())],
        env=_env(
            tmp_path,
            CALLSIFT_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}",
            CALLSIFT_MODEL_DIR=str(broken),
        ),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 3, out.stderr
    assert "error: model unavailable:" in out.stderr, out.stderr
    assert "Started server process" not in out.stderr  # no worker was started
