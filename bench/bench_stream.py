"""Live streams at real-time pace against one server: how late does each update come?

Starts ``callsift serve`` (one worker, fresh SQLite), simulates real calls with the
project's simulator, and runs a load generator in this process: each stream registers
its call (``POST /v1/calls``), opens ``/v1/calls/{id}/stream`` and sends the call's
mu-law audio in frames of ``--frame-ms`` at real-time pace (frame ``k`` is sent at
``start + k * frame``), then ``{"type": "end"}``. A stream that ends starts the next
call at once, so the number of live streams stays at the level measured. Stream
starts are spread over the first seconds, as calls arrive at random.

An update's latency is the time from sending the frame that completed its second of
audio (the update's ``frame`` field) to receiving the update. The goal of issue 7: at
200 concurrent streams on this 2-core machine, every update within 100 ms of its frame.
The ``+abuse`` level adds clients of four misbehaving kinds (faster than real time,
idle, bad frames, unknown calls; ``--abusers`` of each) beside the normal streams: their
latency must not move.

Each level runs in the same server, one after the other, so the lower levels are the
baseline of the same run. A level is measured up to its end; the calls still going on
then hang up over the next 10 s (200 hang-ups in one instant would be no centre's load).

Telling the server's delays from the rest: the generator's own event-loop lag (a ticker
every 10 ms) and a probe process that only sleeps 10 ms at a time record the client's
and the machine's stalls; "within 100 ms outside client stalls" leaves out updates
whose wait overlapped one of 50 ms or more. The server's side is its own watch
(:mod:`api.loopwatch`): its ``event loop stalled`` warnings in the level, the longest,
how many overlapped a client stall, and the stacks of the three longest, printed after
the table. "steal s" is CPU time the hypervisor gave to other guests meanwhile. The
generator's cyclic garbage collector is off while a level runs (its pauses, up to 90 ms,
delayed the reading of updates the server had sent on time) and runs after it.

    .venv/bin/python bench/bench_stream.py [--levels 20,200] [--seconds 60] [--frame-ms 20]
        [--plot docs/img/stream_latency.png]

``--plot`` draws each level's update latencies as a distribution (share of updates
later than x ms, log scale), with the 100 ms goal marked.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import io
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from service import fresh_database, send_paced, serve

ROOT = Path(__file__).resolve().parents[1]
SR = 8000


def simulated_calls(tmp: Path, *, n: int, seed: int, max_s: float) -> list[bytes]:
    """Simulated calls (balanced preset) as raw 8 kHz mu-law bytes, cut at ``max_s``."""
    import pandas as pd

    from classifier.audio import load_audio
    from training.simulate import simulate_corpus

    manifest = simulate_corpus(tmp / "corpus", preset="balanced", n_calls=n, seed=seed)
    frame = pd.read_csv(manifest, keep_default_na=False)
    out = []
    for rel in frame["audio_path"]:
        y = load_audio(manifest.parent / rel).caller[: int(max_s * SR)]
        buf = io.BytesIO()
        sf.write(buf, y, SR, format="RAW", subtype="ULAW")
        out.append(buf.getvalue())
    return out


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)
    final_compute_ms: list[float] = field(default_factory=list)
    lag_at: list[float] = field(default_factory=list)  # when each latency was seen
    finals: list[float] = field(default_factory=list)
    compute_ms: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)  # audio seconds between updates
    closes: dict[str, int] = field(default_factory=dict)
    streams: int = 0
    lag: list[float] = field(default_factory=list)
    gc_pauses: list[tuple[float, float]] = field(default_factory=list)  # (end, length) s


@functools.cache
def _stamped_connection() -> type[Any]:
    """A websockets client connection that notes when each message arrived: in the
    protocol's callback, as the loop reads the socket, not when the stream's task next
    runs (with 200 streams in one loop, that can be many callbacks later)."""
    from collections import deque

    from websockets.asyncio.client import ClientConnection
    from websockets.frames import Opcode

    class Stamped(ClientConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.arrived: deque[float] = deque()

        def process_event(self, event: Any) -> None:
            if getattr(event, "opcode", None) in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                if event.fin:  # a message's last frame: the message is in
                    self.arrived.append(time.monotonic())
            super().process_event(event)

    return Stamped


def _arrived(ws: Any) -> float:
    """When the message just read from ``ws`` (a :func:`_stamped_connection`) arrived."""
    arrived: Any = ws.arrived
    return float(arrived.popleft())


def _watch_gc(tally: Tally) -> Callable[[str, dict[str, Any]], None]:
    """A gc callback noting each collection's pause in ``tally.gc_pauses``."""
    started = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.monotonic()
        else:
            now = time.monotonic()
            tally.gc_pauses.append((now, now - started[0]))

    return on_gc


async def register(http: Any, call_id: str, caller_id: str) -> None:
    """POST /v1/calls, once more if a kept-alive connection was closed under it."""
    import httpx

    body = {"call_id": call_id, "caller_id": caller_id, "started_at": "2025-06-03T10:00:00+07:00"}
    for attempt in range(3):
        try:
            r = await http.post("/v1/calls", json=body)
            r.raise_for_status()
            return
        except httpx.TransportError:
            if attempt == 2:
                raise


async def one_stream(
    calls: list[bytes],
    index: int,
    *,
    base: str,
    key: str,
    frame_ms: int,
    start_at: float,
    stop_at: float,
    measure_from: float,
    hang_up_at: float,
    tally: Tally,
) -> None:
    import httpx
    import websockets

    step = frame_ms * SR // 1000
    frame_s = frame_ms / 1000
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}) as http:
        k = index
        while time.monotonic() < stop_at:
            audio = calls[k % len(calls)]
            k += 7
            call_id = f"s-{uuid.uuid4().hex[:12]}"
            await register(http, call_id, f"+62812{random.randrange(10**7):07d}")
            frames = [audio[i : i + step] for i in range(0, len(audio) - step + 1, step)]
            sent: list[float] = []
            url = base.replace("http", "ws") + f"/v1/calls/{call_id}/stream?encoding=mulaw"
            # A stream the server (or a starved machine) cuts off is counted, not fatal to
            # the level: the next call starts.
            try:
                async with websockets.connect(
                    url,
                    additional_headers={"X-API-Key": key},
                    max_queue=None,
                    compression=None,
                    create_connection=_stamped_connection(),
                ) as ws:
                    ready = json.loads(await ws.recv())
                    _arrived(ws)
                    if ready["type"] != "ready":  # refused (counted by its code): next call
                        name = f"refused: {ready.get('code')}"
                        tally.closes[name] = tally.closes.get(name, 0) + 1
                        await asyncio.sleep(0.5)
                        continue

                    async def receive(
                        ws: websockets.ClientConnection = ws, sent: list[float] = sent
                    ) -> None:
                        last_heard = 0.0
                        async for raw in ws:
                            now = _arrived(ws)
                            msg = json.loads(raw)
                            if msg["type"] == "update":
                                if measure_from <= now <= stop_at:
                                    tally.latencies.append(now - sent[msg["frame"] - 1])
                                    tally.received_at.append(now)
                                    tally.compute_ms.append(msg["compute_ms"])
                                    tally.gaps.append(msg["heard_s"] - last_heard)
                                last_heard = msg["heard_s"]
                            elif msg["type"] == "final":
                                if measure_from <= now <= stop_at:
                                    tally.finals.append(now - sent[-1])
                                    tally.final_compute_ms.append(msg.get("compute_ms", 0.0))
                            elif msg["type"] == "error":
                                tally.closes[str(msg["code"])] = (
                                    tally.closes.get(str(msg["code"]), 0) + 1
                                )

                    reader = asyncio.create_task(receive())
                    await send_paced(ws, frames, frame_s, sent=sent, hang_up_at=hang_up_at)
                    sent.append(time.monotonic())
                    await ws.send('{"type": "end"}')
                    await reader
                    code = str(ws.close_code)
                    tally.closes[code] = tally.closes.get(code, 0) + 1
                    tally.streams += 1
            except (websockets.ConnectionClosed, OSError, TimeoutError) as exc:
                name = f"failed: {type(exc).__name__}"
                tally.closes[name] = tally.closes.get(name, 0) + 1
                await asyncio.sleep(0.5)


async def abuser(kind: str, *, base: str, key: str, start_at: float, stop_at: float) -> None:
    """A misbehaving client, over and over: ``fast`` sends 60 s of noise at once, ``idle``
    opens a stream and sends nothing, ``bad`` sends frames of the wrong size, ``unknown``
    streams a call that was never registered."""
    import httpx
    import websockets

    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    rng = np.random.default_rng(0)
    noise = (rng.integers(0, 256, 60 * SR, dtype=np.uint8)).tobytes()
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}) as http:
        while time.monotonic() < stop_at:
            call_id = f"a-{uuid.uuid4().hex[:12]}"
            if kind != "unknown":
                await register(http, call_id, "+6281200000000")
            url = base.replace("http", "ws") + f"/v1/calls/{call_id}/stream?encoding=mulaw"
            try:
                async with websockets.connect(url, additional_headers={"X-API-Key": key}) as ws:
                    if kind == "fast":
                        for i in range(0, len(noise), 800):
                            await ws.send(noise[i : i + 800])
                            if time.monotonic() > stop_at:
                                break
                        await ws.send('{"type": "end"}')
                    elif kind == "bad":
                        await ws.send(b"\x00" * 7)
                    elif kind == "idle":
                        await asyncio.sleep(min(30.0, max(0.0, stop_at - time.monotonic())))
                    async for _ in ws:
                        pass
            except websockets.ConnectionClosed:
                pass
            if kind in ("bad", "unknown"):
                await asyncio.sleep(0.2)


# A process of its own that only sleeps 10 ms at a time and reports when it woke more
# than 20 ms late: when it is late too, the whole machine stalled (a shared host taking
# its cores away), not the server.
PROBE = """
import sys, time
while True:
    t = time.monotonic()
    time.sleep(0.01)
    now = time.monotonic()
    if now - t - 0.01 > 0.02:
        print(now, now - t - 0.01, flush=True)
"""


def machine_stalls(path: Path, *, since: float, until: float) -> list[tuple[float, float]]:
    """(end, length) of the probe's stalls in a window, monotonic seconds."""
    out = []
    for line in path.read_text().splitlines():
        end, length = map(float, line.split())
        if since <= end <= until:
            out.append((end, length))
    return out


def steal_s() -> float:
    """CPU time the hypervisor gave to other guests, in seconds (Linux /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


async def ticker(stop_at: float, tally: Tally) -> None:
    while time.monotonic() < stop_at:
        t = time.monotonic()
        await asyncio.sleep(0.01)
        tally.lag.append(time.monotonic() - t - 0.01)
        tally.lag_at.append(time.monotonic())


async def run_level(
    calls: list[bytes],
    *,
    n: int,
    seconds: float,
    base: str,
    key: str,
    frame_ms: int,
    abusers: int = 0,
) -> Tally:
    tally = Tally()
    now = time.monotonic()
    spread = min(5.0, seconds / 4)
    stop_at = now + seconds
    measure_from = now + spread + 5.0
    rng = random.Random(n)
    tasks = [
        one_stream(
            calls,
            i,
            base=base,
            key=key,
            frame_ms=frame_ms,
            start_at=now + rng.uniform(0, spread),
            stop_at=stop_at,
            measure_from=measure_from,
            # Calls still going at the end hang up over the next 10 s, not all at once
            # (200 finals in one instant are no call centre's load); the level is
            # measured up to stop_at only.
            hang_up_at=stop_at + rng.uniform(0, 10.0),
            tally=tally,
        )
        for i in range(n)
    ]
    bad = [
        abuser(kind, base=base, key=key, start_at=now + rng.uniform(0, spread), stop_at=stop_at)
        for kind in ("fast", "idle", "bad", "unknown")
        for _ in range(abusers)
    ]
    on_gc = _watch_gc(tally)
    gc.callbacks.append(on_gc)
    # No cyclic collection in the generator while it measures: one took 89 ms even with
    # the setup frozen, and a paused generator stamps the updates it reads late, which
    # is the generator's latency, not the server's. A level's garbage (a minute of
    # frames and futures) is collected after it; the callback still records any pause.
    gc.disable()
    try:
        await asyncio.gather(ticker(stop_at, tally), *tasks, *bad)
    finally:
        gc.enable()
        gc.callbacks.remove(on_gc)
    gc.collect()
    return tally


def _runner() -> Callable[[Coroutine[Any, Any, Tally]], Tally]:
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def _family(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn's worker processes with ``--workers``, and
    their scoring processes)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    out = [pid]
    for p in out:  # grows while walked: children, then theirs
        out.extend(child for child, parent in parents.items() if parent == p)
    return out


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in _family(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def rss_mb(pid: int) -> float:
    total = 0.0
    for p in _family(pid):
        try:
            lines = Path(f"/proc/{p}/status").read_text().splitlines()
        except OSError:
            continue
        total += sum(int(x.split()[1]) / 1024 for x in lines if x.startswith("VmRSS:"))
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--levels",
        default="20,200,200+abuse",
        help="concurrent streams, comma separated; N+abuse adds misbehaving clients",
    )
    ap.add_argument(
        "--abusers", type=int, default=2, help="clients of each misbehaving kind in +abuse"
    )
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each level")
    ap.add_argument("--frame-ms", type=int, default=20)
    ap.add_argument("--calls", type=int, default=40, help="distinct simulated calls")
    ap.add_argument("--max-call-s", type=float, default=90.0)
    ap.add_argument("--port", type=int, default=8798)
    ap.add_argument(
        "--database-url",
        default=None,
        help="PostgreSQL URL (a fresh schema is made and dropped); default a fresh SQLite file",
    )
    ap.add_argument(
        "--server-args", default="", help="extra `callsift serve` options, e.g. '--loop asyncio'"
    )
    ap.add_argument("--plot", type=Path, default=None, help="PNG of the latency distributions")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="callsift-stream-"))
    calls = simulated_calls(tmp, n=args.calls, seed=21, max_s=args.max_call_s)
    # The simulator, pandas and the rest loaded so far stay for good: out of the
    # collector's reach, a full collection in the load generator walks only what the
    # streams make (it stalled the generator, and so the latencies it measures).
    gc.collect()
    gc.freeze()
    with fresh_database(args.database_url, tmp) as url:
        rows = measure(args, calls, tmp, url)
    title = f"callsift serve {args.server_args}".rstrip() + f" on {url.split(':')[0]}"
    print(f"\nserver: {title}")
    table(args, calls, rows)
    if args.plot:
        plot(rows, args.plot, title=f"{title}, frames of {args.frame_ms} ms")
        print(f"plot: {args.plot}")


def measure(
    args: argparse.Namespace, calls: list[bytes], tmp: Path, url: str
) -> list[dict[str, Any]]:
    """Every level against one server."""
    env = {
        "CALLSIFT_DATABASE_URL": url,
        "CALLSIFT_DATA_DIR": str(tmp / "data"),
        "CALLSIFT_STREAM_MAX": "1000",
    }
    rows = []
    log = tmp / "server.log"
    print(f"server log: {log}", flush=True)
    probe_out = tmp / "probe.txt"
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(probe_out.open("w"))
        probe = stack.enter_context(subprocess.Popen([sys.executable, "-c", PROBE], stdout=sink))
        # Killed before Popen's exit waits for it, also when the server fails to start.
        stack.callback(probe.kill)
        server = stack.enter_context(
            serve(port=args.port, env=env, server_args=args.server_args, log=log)
        )
        base, key = server.base, server.key
        for level in args.levels.split(","):
            n = int(level.split("+")[0])
            abusers = args.abusers if level.endswith("+abuse") else 0
            cpu0, wall0 = cpu_seconds(server.process.pid), time.monotonic()
            clock0, steal0 = time.time(), steal_s()
            own0 = resource.getrusage(resource.RUSAGE_SELF)
            # The load generator is the same program whatever the server runs: uvloop
            # when installed (it leaves more of the machine to the server).
            tally = _runner()(
                run_level(
                    calls,
                    n=n,
                    seconds=args.seconds,
                    base=base,
                    key=key,
                    frame_ms=args.frame_ms,
                    abusers=abusers,
                )
            )
            wall = time.monotonic() - wall0
            # The machine is shared: its load over the last minute (the level's).
            load_1m = os.getloadavg()[0]
            own1 = resource.getrusage(resource.RUSAGE_SELF)
            lat = np.array(tally.latencies) * 1000
            received = np.array(tally.received_at)
            late = lat > 100
            late_at = received[late]
            stalls = machine_stalls(probe_out, since=wall0, until=time.monotonic())
            # The generator's own stalls: an update can only be received once it runs.
            stalls += [(at, lag) for at, lag in zip(tally.lag_at, tally.lag, strict=True)]
            # An update is in a client stall when one overlapped its wait: the client
            # could not take it in (or send its frame) on time, whatever the server did.
            sent = received - lat / 1000
            in_stall = np.zeros(lat.size, dtype=bool)
            for end, length in stalls:
                if length >= 0.05:
                    in_stall |= (sent <= end) & (received >= end - length)
            rows.append(
                {
                    "streams": level,
                    "updates": lat.size,
                    "p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
                    "p99_ms": float(np.percentile(lat, 99)) if lat.size else float("nan"),
                    "max_ms": float(lat.max()) if lat.size else float("nan"),
                    "within_100ms": float(np.mean(lat <= 100)) if lat.size else float("nan"),
                    "late": int(np.sum(late)),
                    "load_1m": load_1m,
                    "final_p50_ms": float(np.median(tally.finals) * 1000)
                    if tally.finals
                    else float("nan"),
                    "compute_p50_ms": float(np.median(tally.compute_ms))
                    if tally.compute_ms
                    else float("nan"),
                    "max_gap_s": float(max(tally.gaps)) if tally.gaps else float("nan"),
                    "server_cores": (cpu_seconds(server.process.pid) - cpu0) / wall,
                    "generator_cores": (
                        own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime
                    )
                    / wall,
                    "generator_lag_p99_ms": float(np.percentile(tally.lag, 99) * 1000),
                    "server_rss_mb": rss_mb(server.process.pid),
                    "streams_done": tally.streams,
                    "closes": tally.closes,
                    "latencies_ms": lat.tolist(),
                    # Late updates bunched in a few seconds point at a stall of the
                    # server (or the machine), spread ones at a server short of time.
                    "late_seconds": int(np.unique(np.floor(late_at)).size),
                    # Each late update: when it came (Unix time, as the server log's),
                    # how late, and how much of it the scoring itself took.
                    "late_updates": [
                        [round(float(clock0 + t - wall0), 2), round(float(ms), 1), c]
                        for t, ms, c in zip(
                            late_at, lat[late], np.asarray(tally.compute_ms)[late], strict=True
                        )
                    ],
                    "generator_lag_max_ms": float(np.max(tally.lag) * 1000),
                    "compute_max_ms": max(tally.compute_ms, default=float("nan")),
                    "final_compute_max_ms": max(tally.final_compute_ms, default=float("nan")),
                    "generator_gc_max_ms": max((g for _, g in tally.gc_pauses), default=0.0) * 1000,
                    "generator_gc_over_50ms": sum(1 for _, g in tally.gc_pauses if g >= 0.05),
                    "client_stalls": sum(1 for _, s in stalls if s >= 0.1),
                    "client_stall_max_ms": max((s for _, s in stalls), default=0.0) * 1000,
                    "steal_s": steal_s() - steal0,
                    "within_100ms_outside_client_stalls": float(np.mean(lat[~in_stall] <= 100))
                    if (~in_stall).any()
                    else float("nan"),
                    **loop_stalls(log, since=clock0, until=time.time()),
                }
            )
            row = rows[-1]
            row["loop_stalls_with_client"] = sum(
                any(
                    c_len >= 0.05 and c_end >= end - length and c_end - c_len <= end
                    for c_end, c_len in stalls
                )
                for end, length in row.pop("loop_stall_windows")
            )
            print(
                json.dumps({k: v for k, v in rows[-1].items() if k != "latencies_ms"}),
                flush=True,
            )
    return rows


def loop_stalls(log: Path, *, since: float, until: float) -> dict[str, Any]:
    """The server's event loop stalls (its ``event loop stalled`` warnings) in a window:
    how many, the longest, and the stacks sampled in the three longest."""
    stalls = []
    for line in log.read_text(errors="replace").splitlines():
        if '"event loop stalled"' not in line:
            continue
        with contextlib.suppress(ValueError, KeyError):
            record = json.loads(line)
            at = datetime.fromisoformat(record["at"]).timestamp()
            if since <= at <= until:
                stalls.append(record)
    stalls.sort(key=lambda r: -r["stall_ms"])
    return {
        "loop_stalls": len(stalls),
        "loop_stall_max_ms": stalls[0]["stall_ms"] if stalls else 0.0,
        # (end, length) in this process's monotonic clock
        "loop_stall_windows": [
            (
                datetime.fromisoformat(r["at"]).timestamp() - time.time() + time.monotonic(),
                r["stall_ms"] / 1000,
            )
            for r in stalls
        ],
        "loop_stall_stacks": [
            [r["stall_ms"], r.get("stack", []), r.get("threads", []), _split(r)] for r in stalls[:3]
        ],
        # Where the stalled loop thread's time went, summed over the stalls (Linux).
        "loop_stall_ms_total": sum(r["stall_ms"] for r in stalls),
        "loop_stall_on_cpu_ms": sum(r.get("on_cpu_ms", 0.0) for r in stalls),
        "loop_stall_waiting_for_cpu_ms": sum(r.get("waiting_for_cpu_ms", 0.0) for r in stalls),
    }


def _split(record: dict[str, Any]) -> str:
    if "on_cpu_ms" not in record:
        return ""
    return (
        f" (loop thread on a CPU {record['on_cpu_ms']:.0f} ms, "
        f"runnable without one {record['waiting_for_cpu_ms']:.0f} ms)"
    )


def table(args: argparse.Namespace, calls: list[bytes], rows: list[dict[str, Any]]) -> None:
    durations = [len(c) / SR for c in calls]
    print(
        f"{len(calls)} simulated calls, {np.median(durations):.1f} s median "
        f"(cut at {args.max_call_s:g} s), frames of {args.frame_ms} ms, "
        f"{args.seconds:g} s per level"
    )
    print(
        "| streams | updates | p50 ms | p99 ms | max ms | within 100 ms | late (share) "
        "| load avg 1 min | seconds with a late "
        "update | within 100 ms outside client stalls | server loop stalls >100 ms (longest) "
        "| client stalls >100 ms (longest) | steal s | final p50 ms "
        "| compute p50 ms | server cores | generator cores | server RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['streams']} | {r['updates']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {r['max_ms']:.1f} | {r['within_100ms']:.1%} "
            f"| {r['late']} ({r['late'] / max(r['updates'], 1):.2%}) | {r['load_1m']:.2f} "
            f"| {r['late_seconds']} "
            f"| {r['within_100ms_outside_client_stalls']:.1%} "
            f"| {r['loop_stalls']} ({r['loop_stall_max_ms']:.0f}; {r['loop_stalls_with_client']} "
            "with the client) "
            f"| {r['client_stalls']} ({r['client_stall_max_ms']:.0f}; generator gc "
            f"{r['generator_gc_over_50ms']} >50 ms, longest {r['generator_gc_max_ms']:.0f}) "
            f"| {r['steal_s']:.1f} "
            f"| {r['final_p50_ms']:.1f} "
            f"| {r['compute_p50_ms']:.2f} | {r['server_cores']:.2f} | {r['generator_cores']:.2f} "
            f"| {r['server_rss_mb']:.0f} |"
        )
    for r in rows:
        if r["loop_stalls"]:
            print(
                f"{r['streams']} streams: {r['loop_stalls']} loop stalls, "
                f"{r['loop_stall_ms_total']:.0f} ms in all: loop thread on a CPU "
                f"{r['loop_stall_on_cpu_ms']:.0f} ms, runnable without a CPU "
                f"{r['loop_stall_waiting_for_cpu_ms']:.0f} ms (from the tick before each)"
            )
        for stall_ms, stack, threads, split in r["loop_stall_stacks"]:
            print(
                f"{r['streams']} streams: loop stalled {stall_ms:.0f} ms{split} in",
                " < ".join(stack[::-1]),
            )
            for thread in threads:
                print("    running beside it:", thread)


def plot(rows: list[dict[str, Any]], path: Path, *, title: str) -> None:
    """Share of updates later than x ms, one line per level, the 100 ms goal marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for r in rows:
        lat = np.sort(np.asarray(r["latencies_ms"]))
        if lat.size == 0:
            continue
        later = 1.0 - np.arange(1, lat.size + 1) / lat.size
        within = np.mean(lat <= 100)
        ax.step(
            lat,
            np.maximum(later, 0.5 / lat.size),
            where="post",
            label=f"{r['streams']} streams: {within:.2%} within 100 ms",
        )
    ax.axvline(100, color="crimson", linestyle="--", linewidth=1)
    ax.text(102, 0.5, "goal: 100 ms", color="crimson", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("update latency after its frame (ms)")
    ax.set_ylabel("share of updates later than this")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
