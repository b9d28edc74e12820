"""Pushed updates: how soon does an event reach its subscribers? (issue 21.2)

Starts ``callsift serve --workers 2`` on a fresh SQLite database, connects ``--clients``
server-sent event clients to ``GET /v1/events`` (spread over both workers by the shared
socket) and, optionally, one headless Chromium on the console (``--browser``). A writer
thread then posts at a steady ``--rate`` per second: a new call, the disposition of the
call before, and every ``--audio-every``-th call a recording (a scored call); the writes
land on either worker, so most events cross from one process to the other through the
database.

An event's latency is measured from the moment its write was sent (before the server
committed it) to its arrival at a client: an upper bound of the time from the commit.
The time from the write's answer (after the commit) to the arrival, a lower bound, is
printed beside it. Goal of issue 21: p95 under 1 s.

    .venv/bin/python bench/bench_events.py [--clients 50] [--rate 10] [--seconds 30]
        [--workers 2] [--browser] [--port 8791]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.service import fresh_database, serve

CHROMIUM = Path("/usr/bin/chromium")


def recording(seconds: float = 3.0, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 8000)) / 8000
    audio = 0.05 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * 440.0 * t)
    out = io.BytesIO()
    sf.write(out, audio, 8000, format="WAV", subtype="PCM_16")
    return out.getvalue()


class Writes:
    """When each write was sent and answered, by (event type, call_id)."""

    def __init__(self) -> None:
        self.sent: dict[tuple[str, str], float] = {}
        self.answered: dict[tuple[str, str], float] = {}
        self.errors = 0

    def run(self, base: str, key: str, rate: float, seconds: float, audio_every: int) -> None:
        wav = recording()
        previous: str | None = None
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as client:
            start = time.monotonic()
            n = 0
            while time.monotonic() - start < seconds:
                due = start + n / rate
                time.sleep(max(0.0, due - time.monotonic()))
                n += 1
                call_id = f"b-{uuid.uuid4().hex[:12]}"
                body = {
                    "call_id": call_id,
                    "caller_id": f"+62812{n % 500:07d}",
                    "started_at": (datetime.now(UTC) - timedelta(seconds=5)).isoformat(),
                }
                self._post(client, ("call", call_id), "/v1/calls", json=body)
                if previous is not None:
                    self._post(
                        client,
                        ("disposition", previous),
                        f"/v1/calls/{previous}/disposition",
                        json={"label": "emergency"},
                    )
                if audio_every and n % audio_every == 0:
                    self._post(
                        client,
                        ("score", call_id),
                        f"/v1/calls/{call_id}/audio",
                        content=wav,
                        headers={"Content-Type": "audio/wav"},
                    )
                previous = call_id

    def _post(self, client: httpx.Client, what: tuple[str, str], path: str, **kw: Any) -> None:
        self.sent[what] = time.time()
        r = client.post(path, **kw)
        self.answered[what] = time.time()
        if r.status_code != 200:
            self.errors += 1


async def subscriber(
    base: str,
    key: str,
    got: dict[tuple[str, str], list[float]],
    stop: asyncio.Event,
    connected: list[int],
) -> None:
    headers = {"X-API-Key": key}
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None)) as client,
        client.stream("GET", f"{base}/v1/events", headers=headers) as response,
    ):
        if response.status_code != 200:
            raise SystemExit(f"GET /v1/events answered {response.status_code}")
        connected.append(1)
        kind = ""
        async for line in response.aiter_lines():
            if stop.is_set():
                return
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                at = time.time()
                data = json.loads(line[6:])
                # A flag is a score that flags the call: one writer entry, "score".
                what = "score" if kind in ("score", "flag") else kind
                got[(what, str(data.get("call_id")))].append(at)


def browser_run(
    base: str, key: str, ready: threading.Event, stop: threading.Event, out: list[Any]
) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        page = browser.new_page()
        page.goto(f"{base}/")
        page.fill("#key", key)
        page.click("#login-form button[type=submit]")
        page.locator('#live[data-mode="live"]').wait_for(timeout=30_000)
        page.click('#nav button[data-view="calls"]')
        ready.set()
        while not stop.is_set():
            time.sleep(0.2)
        out.extend(page.evaluate("window.CallsiftEvents.log.slice()"))
        browser.close()


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "n": len(ordered),
        "p50_ms": round(q[49] * 1000, 1),
        "p95_ms": round(q[94] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="bench-events-"))
    env = {
        "CALLSIFT_DATABASE_URL": args.url or f"sqlite:///{root / 'callsift.db'}",
        "CALLSIFT_DATA_DIR": str(root / "data"),
    }
    with serve(
        port=args.port, env=env, server_args=f"--workers {args.workers}", log=root / "server.log"
    ) as server:
        got: dict[tuple[str, str], list[float]] = defaultdict(list)
        stop = asyncio.Event()
        connected: list[int] = []
        tasks = [
            asyncio.create_task(subscriber(server.base, server.key, got, stop, connected))
            for _ in range(args.clients)
        ]
        browser_log: list[Any] = []
        b_ready, b_stop = threading.Event(), threading.Event()
        b_thread = None
        if args.browser:
            b_thread = threading.Thread(
                target=browser_run, args=(server.base, server.key, b_ready, b_stop, browser_log)
            )
            b_thread.start()
            await asyncio.to_thread(b_ready.wait, 60)
        deadline = time.monotonic() + 60
        while len(connected) < args.clients:  # every client subscribed before the writes
            if time.monotonic() > deadline or any(t.done() for t in tasks):
                raise SystemExit(f"only {len(connected)} of {args.clients} clients connected")
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        writes = Writes()
        await asyncio.to_thread(
            writes.run, server.base, server.key, args.rate, args.seconds, args.audio_every
        )
        await asyncio.sleep(3.0)  # the last events arrive
        stop.set()
        b_stop.set()
        ended_early = sum(t.done() for t in tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if b_thread is not None:
            await asyncio.to_thread(b_thread.join, 30)
    from_sent: list[float] = []
    from_answer: list[float] = []
    missing = 0
    for what, sent in writes.sent.items():
        arrivals = got.get(what, [])
        missing += args.clients - len(arrivals)
        from_sent += [a - sent for a in arrivals]
        from_answer += [max(0.0, a - writes.answered[what]) for a in arrivals]
    browser = []
    for entry in browser_log:
        if entry.get("type") == "call" and ("call", entry.get("call_id")) in writes.sent:
            browser.append(entry["at"] / 1000 - writes.sent[("call", entry["call_id"])])
    return {
        "database": env["CALLSIFT_DATABASE_URL"].split(":")[0],
        "clients": args.clients,
        "workers": args.workers,
        "rate_per_s": args.rate,
        "seconds": args.seconds,
        "writes": len(writes.sent),
        "write_errors": writes.errors,
        "events_expected": len(writes.sent) * args.clients,
        "events_missing": missing,
        "streams_ended_early": ended_early,
        "from_write_sent": percentiles(from_sent),
        "from_write_answered": percentiles(from_answer),
        "browser_from_write_sent": percentiles(browser) if args.browser else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rate", type=float, default=10.0, help="calls per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--audio-every", type=int, default=5)
    parser.add_argument("--browser", action="store_true")
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument(
        "--database-url",
        default=None,
        help="PostgreSQL URL (a fresh schema is made and dropped); default a fresh SQLite file",
    )
    args = parser.parse_args()
    if args.database_url:
        with fresh_database(args.database_url, Path(tempfile.gettempdir())) as args.url:
            result = asyncio.run(main_async(args))
    else:
        args.url = None
        result = asyncio.run(main_async(args))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
