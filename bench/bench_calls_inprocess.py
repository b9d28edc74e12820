"""POST /v1/calls in-process: the whole app through ASGI, without HTTP, split into parts.

Runs the real app (middleware, key check, validation, handler, answer) on a fresh
SQLite file, one request after the other, and reports the median of the whole request
and of its parts (history read, pre-answer score, INSERT, answer). Requests follow
``bench_api.py``: 500 numbers, minutes of one hour (``--pattern hour``, where feature
vectors repeat), or calls one minute apart (``--pattern distinct``, every vector new).

    .venv/bin/python bench/bench_calls_inprocess.py [--requests 3000] [--pattern distinct]

Another checkout's code (e.g. ``git archive <commit>`` unpacked in DIR) runs with
``PYTHONPATH=DIR``, for a before/after in one sitting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--pattern", choices=("hour", "distinct"), default="distinct")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="callsift-inprocess-"))
    os.environ["CALLSIFT_DATABASE_URL"] = f"sqlite:///{tmp / 'calls.db'}"
    os.environ["CALLSIFT_DATA_DIR"] = str(tmp / "data")
    os.environ["CALLSIFT_LOG_LEVEL"] = "WARNING"
    import api.routers.calls as calls
    from api.main import create_app
    from api.store import Store

    parts: dict[str, list[float]] = {"history": [], "score": [], "insert": [], "answer": []}

    def timed(owner: Any, name: str, part: str) -> None:
        real: Callable[..., Any] | None = getattr(owner, name, None)
        if real is None:  # older code (PYTHONPATH=<checkout>) without this part
            del parts[part]
            return

        def wrapper(*a: Any, **k: Any) -> Any:
            start = time.perf_counter()
            try:
                return real(*a, **k)
            finally:
                parts[part].append(time.perf_counter() - start)

        setattr(owner, name, wrapper)

    timed(calls, "_history", "history")
    timed(calls, "_pre_answer", "score")
    timed(Store, "register_call", "insert")
    timed(calls, "_answer", "answer")
    app = create_app()
    runtime = app.state.runtime
    start_of = datetime(2024, 1, 1, tzinfo=UTC)
    counter = 0

    async def one(key: str) -> None:
        nonlocal counter
        counter += 1
        if args.pattern == "hour":
            at = f"2025-06-03T10:{counter % 60:02d}:00+07:00"
        else:
            at = (start_of + timedelta(minutes=counter)).isoformat()
        body = json.dumps(
            {"call_id": f"c{counter}", "caller_id": f"+62812{counter % 500:07d}", "started_at": at}
        ).encode()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "path": "/v1/calls",
            "raw_path": b"/v1/calls",
            "query_string": b"",
            "root_path": "",
            "scheme": "http",
            "server": ("127.0.0.1", 80),
            "client": ("127.0.0.1", 1),
            "headers": [
                (b"content-type", b"application/json"),
                (b"x-api-key", key.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
        sent = False
        status = 0

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        if status != 200:
            raise SystemExit(f"request {counter} answered {status}")

    async def run() -> None:
        startup: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        await startup.put({"type": "lifespan.startup"})
        started: list[Any] = []

        async def send(message: Any) -> None:
            started.append(message)

        life = asyncio.create_task(
            app({"type": "lifespan", "asgi": {"version": "3.0"}}, startup.get, send)
        )
        while not started:
            await asyncio.sleep(0.01)
        key, _ = runtime.store.create_key(role="call_taker", name="bench", actor="cli")
        for _ in range(500):  # warm-up, and every number has a call before the timed ones
            await one(key)
        for values in parts.values():
            values.clear()
        whole = []
        for _ in range(args.requests):
            start = time.perf_counter()
            await one(key)
            whole.append(time.perf_counter() - start)
        whole.sort()
        cache = getattr(runtime.models.get(), "cache", None)
        hits = "n/a" if cache is None else f"{cache.hits / max(cache.hits + cache.misses, 1):.0%}"
        med = {k: statistics.median(v) * 1e3 for k, v in parts.items()}
        print(
            f"{args.pattern}: whole request p50 {statistics.median(whole) * 1e3:.3f} ms, "
            f"p99 {whole[int(len(whole) * 0.99)] * 1e3:.3f} ms; "
            + ", ".join(f"{k} {v:.3f}" for k, v in med.items())
            + f" ms; pre-answer cache hits {hits}"
        )
        await startup.put({"type": "lifespan.shutdown"})
        await life

    try:
        asyncio.run(run())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
