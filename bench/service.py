"""The service under test, started as users start it (`callsift serve`), for the benches."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

CALLSIFT = Path(sys.executable).with_name("callsift")


async def send_paced(
    ws: Any,
    frames: Sequence[bytes],
    frame_s: float,
    *,
    sent: list[float] | None = None,
    hang_up_at: float = float("inf"),
) -> None:
    """Send ``frames`` on websocket ``ws`` in real time (frame ``j`` at ``j * frame_s``
    after the first), noting each send's time in ``sent``; stop after the frame sent past
    ``hang_up_at`` (a caller hanging up mid-call)."""
    import asyncio

    t0 = time.monotonic()
    for j, frame in enumerate(frames):
        delay = t0 + j * frame_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if sent is not None:
            sent.append(time.monotonic())
        await ws.send(frame)
        if time.monotonic() > hang_up_at:
            break


#: The bench machine's PostgreSQL, where a bench makes (and drops) a schema of its own.
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@contextmanager
def fresh_database(url: str | None, tmp: Path) -> Iterator[str]:
    """The database URL a bench's server should use: ``url`` (PostgreSQL) in a fresh
    schema dropped at exit, so runs never see each other's rows; a new SQLite file under
    ``tmp`` without one."""
    if not url:
        yield f"sqlite:///{tmp / 'bench.db'}"
        return
    if not url.startswith("postgresql"):
        yield url
        return
    import uuid

    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            c.execute(f"DROP SCHEMA {schema} CASCADE")


@dataclass
class Server:
    process: subprocess.Popen[str]
    base: str
    key: str


def wait_ready(base: str, timeout: float = 90.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("server did not become ready")


def _drain(stream: IO[str], log: Path | None) -> None:
    with open(log or os.devnull, "w") as out:
        for line in stream:
            out.write(line)
            out.flush()


@contextmanager
def serve(
    *, port: int, env: dict[str, str], server_args: str = "", log: Path | None = None
) -> Iterator[Server]:
    """Run `callsift serve` on a fresh database (``env``), with the admin key it prints.

    The server's output after the key goes on being read (to ``log`` when given): a
    pipe nobody reads fills up and then blocks the server on its next log line.
    """
    with socket.socket() as probe:
        # A server left over on the port would answer instead, with other keys.
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise SystemExit(f"port {port} is taken: stop what listens there or pass --port")
    process = subprocess.Popen(
        [str(CALLSIFT), "serve", "--port", str(port), *server_args.split()],
        env={**os.environ, "CALLSIFT_LOG_LEVEL": "WARNING", **env},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        key = ""
        assert process.stderr is not None
        for line in process.stderr:
            if line.strip().startswith("cs_"):
                key = line.strip()
                break
        threading.Thread(target=_drain, args=(process.stderr, log), daemon=True).start()
        base = f"http://127.0.0.1:{port}"
        wait_ready(base)
        yield Server(process=process, base=base, key=key)
    finally:
        process.terminate()
        process.wait(timeout=30)
