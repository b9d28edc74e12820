"""``callsift serve`` in a subprocess, as users start it, for the tests that need a real
server (the browser tests, the live stream over real WebSockets)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

START_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def callsift_serve(root: Path, env: dict[str, str], args: Sequence[str] = ()) -> Iterator[str]:
    """Run the service in ``root`` with ``env`` (CALLSIFT_* settings) until it is ready.

    ``args`` go to ``callsift serve`` (e.g. ``["--workers", "2"]``). Yields its base URL;
    the server's output goes to ``root/server.log``, shown when it fails to start.
    """
    full = {**os.environ, "CALLSIFT_LOG_LEVEL": "WARNING", **env}
    full.pop("DATABASE_URL", None)  # the test's CALLSIFT_DATABASE_URL, not the caller's
    if "CALLSIFT_INSTANCE" not in env:
        full.pop("CALLSIFT_INSTANCE", None)  # the server names itself HOSTNAME:PORT
    port = free_port()
    log = root / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("callsift")),
                "serve",
                "--port",
                str(port),
                *args,
            ],
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"callsift serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"callsift serve not ready in {START_TIMEOUT_S} s:\n{log.read_text()}")
            time.sleep(0.25)
        yield url
    finally:
        stop(proc, timeout_s=10)


def stop(proc: subprocess.Popen[bytes], *, timeout_s: float) -> None:
    """Terminate ``proc`` and wait for it; killed if it has not exited in ``timeout_s``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def register_call(url: str, key: str, call_id: str, caller_id: str = "+6281299900011") -> None:
    """``POST /v1/calls`` on a running server; fails the test unless it is accepted."""
    r = httpx.post(
        f"{url}/v1/calls",
        json={
            "call_id": call_id,
            "caller_id": caller_id,
            "started_at": "2025-06-03T10:00:00+07:00",
        },
        headers={"X-API-Key": key},
    )
    assert r.status_code == 200, r.text


DEMO_KEY_LINE = re.compile(r"^\s+(call_taker|supervisor|data_scientist|admin)\s+(cs_\S+)$")


@contextmanager
def callsift_demo(
    folder: Path,
    log: Path,
    args: Sequence[str],
    env: dict[str, str] | None = None,
    timeout_s: float = START_TIMEOUT_S,
) -> Iterator[tuple[str, dict[str, str], str]]:
    """``callsift demo --serve`` into ``folder`` until its replay is done.

    ``args`` go to the command after ``--out`` and ``--port`` (e.g. ``--calls 60``);
    ``env`` adds CALLSIFT_* settings; ``timeout_s`` bounds the simulation and replay.
    Yields (base URL, key per role, the ready line).
    """
    full = {**os.environ, **(env or {})}
    for name in ("DATABASE_URL", "CALLSIFT_DATABASE_URL", "CALLSIFT_DATA_DIR", "CALLSIFT_INSTANCE"):
        full.pop(name, None)
    port = free_port()
    command = [str(Path(sys.executable).with_name("callsift")), "demo", "--serve"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "--out", str(folder), "--port", str(port), *args],
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=folder.parent,
        )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            text = log.read_text(errors="replace")
            ready = [line for line in text.splitlines() if line.startswith("demo ready")]
            if ready:
                break
            assert proc.poll() is None, f"demo exited with {proc.returncode}:\n{text}"
            assert time.monotonic() < deadline, f"demo not ready in {timeout_s} s:\n{text}"
            time.sleep(0.25)
        keys = {m[1]: m[2] for line in text.splitlines() if (m := DEMO_KEY_LINE.match(line))}
        assert f"http://127.0.0.1:{port}/console/" in text
        yield f"http://127.0.0.1:{port}", keys, ready[0]
    finally:
        stop(proc, timeout_s=15)
