"""What one live-stream update costs in a scoring process, without a server.

Streams of a seeded synthetic call (speech with pauses and line noise, 8 kHz) are fed
to the scoring process's own stream state (:class:`api.scoring_pool._Stream`), one
update a second as the service does: the frames a stream took in that second go in one
``push`` message (100 ms PCM16 frames or 20 ms mu-law frames, joined), then ``score``.
Many streams are interleaved round robin, as in a scoring process serving 100 streams,
so each update finds its stream's state cold in the caches as it would there.

    PYTHONPATH=$PWD .venv/bin/python bench/bench_stream_update.py            # in process
    PYTHONPATH=$PWD .venv/bin/python bench/bench_stream_update.py --pool     # forked pool
    PYTHONPATH=$PWD .venv/bin/python bench/bench_stream_update.py --compare ../old --rounds 3
    PYTHONPATH=$PWD .venv/bin/python bench/bench_stream_update.py --hash --compare ../old
    PYTHONPATH=$PWD .venv/bin/python bench/bench_stream_update.py --ws --encodings pcm16

In process, each update's CPU time (``time.process_time``) is split into the messages'
pickling (worker and process sides), ``push`` (decode, dither) and ``score`` (features,
model, reasons, payload). ``--pool`` runs the real :class:`api.scoring_pool.ScoringPool`
(a forked process, messages over its socket pair) and reports the worker's CPU per frame
and per update and the scoring process's CPU per update (from ``/proc``).
``--ws`` streams the calls over WebSockets at real-time pace through ``callsift serve
--workers 1`` (fresh SQLite, or ``--database-url``) and reports the worker's CPU from
``/proc``: its event loop thread per frame received, its other threads (database, files)
per stream, all of it per update, and the scoring process's per update.
``--compare DIR`` runs the same measurement on the code in ``DIR`` (another worktree)
in alternating rounds, in subprocesses, and prints both side by side; ``--hash`` hashes
every update's and final's payload, watched values and recording instead of timing.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SR = 8000
CASES = {"pcm16": 100, "mulaw": 20}  # encoding: frame ms
SENTENCES = (
    "Halo, tolong pak, ada kebakaran di rumah tetangga saya, di jalan Sudirman nomor dua belas.",
    "Apinya sudah besar sekali, tolong kirim pemadam kebakaran sekarang juga.",
    "Saya di depan masjid, dekat pasar, cepat ya pak.",
)


def sixty_seconds() -> tuple[np.ndarray, str]:
    """60 s of real read speech from ``../shared/data`` (or simulated calls without it);
    used by bench_score.py and bench_vad_update.py."""
    from classifier.audio import load_audio

    files = sorted(glob.glob(str(SHARED / "speech" / "arctic" / "*.wav")))
    if files:
        y = np.concatenate([load_audio(f).caller for f in files])
        return np.resize(y, 60 * SR), "real read speech (CMU ARCTIC, ../shared/data)"
    import pandas as pd

    from training.simulate import simulate_corpus

    manifest = simulate_corpus(
        Path(tempfile.mkdtemp()) / "c", preset="balanced", n_calls=8, seed=5, progress=False
    )
    frame = pd.read_csv(manifest, keep_default_na=False)
    y = np.concatenate([load_audio(manifest.parent / p).caller for p in frame["audio_path"]])
    return np.resize(y, 60 * SR), "simulated calls"


def synthetic_call(seed: int, seconds: float) -> np.ndarray:
    """A seeded call: synthesised sentences between pauses, over faint line noise."""
    from training.simulator import voice

    rng = np.random.default_rng(seed)
    v = voice.random_voice(rng, kind="adult_male")
    parts = []
    for text in SENTENCES:
        parts.append(voice.synthesize(text, voice=v, sr=SR))
        parts.append(np.zeros(int(rng.uniform(0.5, 3.0) * SR), dtype=np.float32))
    y = np.resize(np.concatenate(parts), int(seconds * SR))
    y = 0.8 * y + 0.003 * rng.standard_normal(y.size)
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def encoded(y: np.ndarray, encoding: str) -> bytes:
    """The samples as the stream's wire bytes (libsndfile's encoders)."""
    import soundfile as sf

    out = io.BytesIO()
    subtype = "PCM_16" if encoding == "pcm16" else "ULAW"
    sf.write(out, y, SR, format="RAW", subtype=subtype)
    return out.getvalue()


def stream_seconds(data: bytes, encoding: str) -> list[list[bytes]]:
    """The call's frames, grouped by the second of audio each update scores."""
    width = 2 if encoding == "pcm16" else 1
    step = CASES[encoding] * SR // 1000 * width
    frames = [data[i : i + step] for i in range(0, len(data), step)]
    per = 1000 // CASES[encoding]
    return [frames[i : i + per] for i in range(0, len(frames), per)]


def _calls(args: argparse.Namespace) -> list[tuple[str, list[list[bytes]]]]:
    calls = []
    for i in range(args.streams):
        encoding = args.encodings[i % len(args.encodings)]
        y = synthetic_call(args.seed + i % 8, args.seconds)
        y = np.roll(y, 997 * i)  # every stream its own audio, the same from run to run
        calls.append((encoding, stream_seconds(encoded(y, encoding), encoding)))
    return calls


def _info(encoding: str, i: int) -> Any:
    from api.scoring_pool import StreamInfo
    from classifier.history import empty_history

    return StreamInfo(
        caller_id=f"+62812000{i:05d}",
        started_at=datetime(2025, 6, 3, 3, i % 60, tzinfo=UTC),
        history=empty_history(),
        timezone=None,
        encoding=encoding,
        max_seconds=300.0,
    )


def _model() -> Any:
    from api.service import load_scoring_model, warm_up
    from classifier.threads import single_threaded_blas

    single_threaded_blas()
    loaded = load_scoring_model()
    warm_up(loaded.model)
    return loaded


def run_state(args: argparse.Namespace) -> dict[str, Any]:
    """The scoring process's work in this process, stream by stream round robin."""
    from api.scoring_pool import _frame, _Stream

    loaded = _model()
    model, version = loaded.model, loaded.model.version
    calls = _calls(args)
    streams = [_Stream(_info(enc, i)) for i, (enc, _) in enumerate(calls)]
    seconds = min(len(c) for _, c in calls)
    cpu = time.process_time
    t_pipe, t_push, t_score = [], [], []
    digest = hashlib.sha256()
    for second in range(seconds):
        for i, (stream, (_, call)) in enumerate(zip(streams, calls, strict=True)):
            final = second == seconds - 1
            t0 = cpu()
            # What crosses the socket pair: the worker pickles, the process unpickles.
            data = pickle.loads(_frame(("push", i, b"".join(call[second])))[4:])[2]
            t1 = cpu()
            stream.push(data)
            t2 = cpu()
            scored = stream.score(model, version, complete=final, recording=final and args.hash)
            t3 = cpu()
            answer = ("ok", 0, scored.payload, scored.elapsed_s, scored.watched, scored.wav)
            pickle.loads(_frame(answer)[4:])
            t4 = cpu()
            if second >= args.skip:
                t_pipe.append((t1 - t0) + (t4 - t3))
                t_push.append(t2 - t1)
                t_score.append(t3 - t2)
            if args.hash:
                digest.update(json.dumps([scored.payload, scored.watched], sort_keys=True).encode())
                if scored.wav is not None:
                    digest.update(scored.wav)
    total = np.add(np.add(t_pipe, t_push), t_score) * 1e3
    out: dict[str, Any] = {
        "mode": "state",
        "updates": len(total),
        "update_p50_ms": float(np.percentile(total, 50)),
        "update_p99_ms": float(np.percentile(total, 99)),
        "update_mean_ms": float(total.mean()),
        "pipe_mean_ms": float(np.mean(t_pipe) * 1e3),
        "push_mean_ms": float(np.mean(t_push) * 1e3),
        "score_mean_ms": float(np.mean(t_score) * 1e3),
    }
    if args.hash:
        out["hash"] = digest.hexdigest()
    return out


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux ``/proc``)."""
    return _proc_cpu_path(Path(f"/proc/{pid}/stat"))


async def _run_pool(args: argparse.Namespace) -> dict[str, Any]:
    from api.scoring_pool import ScoringPool
    from api.streams import LiveCall

    loaded = _model()
    calls = _calls(args)
    pool = ScoringPool(1)
    await pool.start(lambda: loaded)
    pid = pool.pids[0]
    lives = []
    for i, (encoding, _) in enumerate(calls):
        live = LiveCall(
            call_id=f"bench-{i}",
            caller_id=f"+62812000{i:05d}",
            started_at=datetime(2025, 6, 3, 3, i % 60, tzinfo=UTC),
            encoding=encoding,
            history={},
            history_unavailable=False,
            max_samples=300 * SR,
        )
        pool.open(live, _info(encoding, i))
        lives.append(live)
    seconds = min(len(c) for _, c in calls)
    cpu = time.process_time
    frame_cpu = update_cpu = 0.0
    frames = updates = 0
    elapsed: list[float] = []
    digest = hashlib.sha256()
    child0 = 0.0
    for second in range(seconds):
        if second == args.skip:
            child0, frame_cpu, update_cpu, frames, updates = _proc_cpu(pid), 0.0, 0.0, 0, 0
            elapsed = []
        final = second == seconds - 1
        # One update per stream, all in flight at once as 100 streams' would be.
        t0 = cpu()
        for live, (_, call) in zip(lives, calls, strict=True):
            for frame in call[second]:
                live.receive(frame)
                live.take()
            frames += len(call[second])
        t1 = cpu()
        scored = await asyncio.gather(
            *(
                pool.score(live, loaded, complete=final, recording=final and args.hash)
                for live in lives
            )
        )
        t2 = cpu()
        frame_cpu += t1 - t0
        update_cpu += t2 - t1
        updates += len(scored)
        elapsed += [s.elapsed_s for s in scored]
        if args.hash:
            for s in scored:
                digest.update(json.dumps([s.payload, s.watched], sort_keys=True).encode())
                if s.wav is not None:
                    digest.update(s.wav)
    child = _proc_cpu(pid) - child0
    for live in lives:
        pool.close(live)
    await pool.stop()
    e = np.array(elapsed) * 1e3
    out: dict[str, Any] = {
        "mode": "pool",
        "updates": updates,
        "process_cpu_per_update_ms": child / updates * 1e3,
        "worker_cpu_per_update_ms": update_cpu / updates * 1e3,
        "worker_cpu_per_frame_us": frame_cpu / frames * 1e6,
        "elapsed_p50_ms": float(np.percentile(e, 50)),
        "elapsed_p99_ms": float(np.percentile(e, 99)),
    }
    if args.hash:
        out["hash"] = digest.hexdigest()
    return out


def _threads_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of process ``pid``'s main thread and of its other threads."""
    main = rest = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            seconds = _proc_cpu_path(task / "stat")
        except OSError:  # a thread that ended meanwhile
            continue
        if int(task.name) == pid:
            main += seconds
        else:
            rest += seconds
    return main, rest


def _proc_cpu_path(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _ws_stream(
    base: str, key: str, i: int, encoding: str, call: list[list[bytes]], start_at: float
) -> tuple[int, list[dict[str, Any]]]:
    """One call streamed at real-time pace: frames sent, and every message received."""
    import websockets
    from service import send_paced

    frames = [frame for second in call for frame in second]
    frame_s = CASES[encoding] / 1000
    url = base.replace("http", "ws") + f"/v1/calls/ws-{i}/stream?encoding={encoding}"
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    async with websockets.connect(
        url, additional_headers={"X-API-Key": key}, max_queue=None, compression=None
    ) as ws:
        messages = [json.loads(await ws.recv())]

        async def receive() -> None:
            async for raw in ws:
                messages.append(json.loads(raw))

        reader = asyncio.create_task(receive())
        await send_paced(ws, frames, frame_s)
        await ws.send('{"type": "end"}')
        await reader
    return len(frames), messages


async def _run_ws(args: argparse.Namespace) -> dict[str, Any]:
    """The streams through ``callsift serve --workers 1`` over WebSockets at real-time
    pace: the worker's CPU (event loop thread, other threads) and its scoring process's."""
    import httpx
    from service import fresh_database, serve

    calls = _calls(args)
    tmp = Path(tempfile.mkdtemp(prefix="callsift-ws-"))
    with fresh_database(args.database_url, tmp) as url:
        env = {
            "CALLSIFT_DATABASE_URL": url,
            "CALLSIFT_DATA_DIR": str(tmp / "data"),
            "CALLSIFT_STREAM_MAX": "1000",
        }
        with serve(port=args.port, env=env, server_args="--workers 1") as server:
            async with httpx.AsyncClient(
                base_url=server.base, headers={"X-API-Key": server.key}
            ) as http:
                for i in range(len(calls)):
                    body = {
                        "call_id": f"ws-{i}",
                        "caller_id": f"+62812000{i:05d}",
                        "started_at": f"2025-06-03T10:{i % 60:02d}:00+07:00",
                    }
                    (await http.post("/v1/calls", json=body)).raise_for_status()
            worker = server.process.pid
            scorers = [
                int(p) for p in Path(f"/proc/{worker}/task/{worker}/children").read_text().split()
            ]
            main0, rest0 = _threads_cpu(worker)
            child0 = sum(_proc_cpu(p) for p in scorers)
            wall0 = time.monotonic()
            # Starts spread over a second, as calls arrive at random.
            done = await asyncio.gather(
                *(
                    _ws_stream(server.base, server.key, i, enc, call, wall0 + i / len(calls))
                    for i, (enc, call) in enumerate(calls)
                )
            )
            wall = time.monotonic() - wall0
            main1, rest1 = _threads_cpu(worker)
            child = sum(_proc_cpu(p) for p in scorers) - child0
    frames = sum(n for n, _ in done)
    scored = [m for _, ms in done for m in ms if m["type"] in ("update", "final")]
    updates = len(scored)
    out: dict[str, Any] = {
        "mode": "ws",
        "updates": updates,
        "frames": frames,
        "worker_loop_us_per_frame": (main1 - main0) / frames * 1e6,
        "worker_threads_ms_per_stream": (rest1 - rest0) / len(calls) * 1e3,
        "worker_cpu_per_update_ms": (main1 - main0 + rest1 - rest0) / updates * 1e3,
        "process_cpu_per_update_ms": child / updates * 1e3,
        "server_cores": (main1 - main0 + rest1 - rest0 + child) / wall,
    }
    if args.hash:
        digest = hashlib.sha256()
        for _, messages in done:
            for m in messages:
                if m["type"] == "notice":  # a client that fell behind, then caught up
                    continue
                m.pop("compute_ms", None)
                digest.update(json.dumps(m, sort_keys=True).encode())
        out["hash"] = digest.hexdigest()
    return out


def measure(args: argparse.Namespace) -> dict[str, Any]:
    if args.ws:
        return asyncio.run(_run_ws(args))
    return asyncio.run(_run_pool(args)) if args.pool else run_state(args)


def _table(rows: dict[str, list[dict[str, Any]]]) -> None:
    keys = [k for k in next(iter(rows.values()))[0] if k != "mode"]
    names = list(rows)
    print("| " + " | ".join(["measure", *names]) + " |")
    print("|" + "---|" * (len(names) + 1))
    for k in keys:
        cells = []
        for name in names:
            values = [r[k] for r in rows[name]]
            if isinstance(values[0], str) or k in ("updates", "frames"):
                cells.append(" / ".join(dict.fromkeys(str(v) for v in values)))
            else:
                cells.append(" / ".join(f"{v:.3f}" for v in values))
        print(f"| {k} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--streams", type=int, default=100, help="streams interleaved")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each call")
    ap.add_argument("--encodings", default="pcm16,mulaw", help="pcm16 (100 ms), mulaw (20 ms)")
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--skip", type=int, default=2, help="first updates of each stream not timed")
    ap.add_argument("--pool", action="store_true", help="through a forked ScoringPool")
    ap.add_argument("--hash", action="store_true", help="hash the updates instead of timing")
    ap.add_argument(
        "--ws", action="store_true", help="through `callsift serve --workers 1` over WebSockets"
    )
    ap.add_argument("--port", type=int, default=8797, help="the server's port with --ws")
    ap.add_argument("--database-url", default=None, help="with --ws; default a fresh SQLite")
    ap.add_argument("--compare", type=Path, help="also run the code of this worktree")
    ap.add_argument("--rounds", type=int, default=1, help="alternating rounds with --compare")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.encodings = args.encodings.split(",")
    if args.json:
        print(json.dumps(measure(args)))
        return
    here = Path(__file__).resolve().parents[1]
    trees = {"this": here, **({"compare": args.compare.resolve()} if args.compare else {})}
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    argv = [a for a in sys.argv[1:] if a != "--json"]
    for _ in range(args.rounds):
        for name, tree in trees.items():
            # Each tree's code in its own process: only PYTHONPATH differs.
            env = {**os.environ, "PYTHONPATH": str(tree)}
            done = subprocess.run(
                [sys.executable, __file__, *argv, "--json"],
                env=env,
                cwd=tree,
                check=True,
                capture_output=True,
                text=True,
            )
            rows[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{args.streams} streams x {args.seconds:g} s, {','.join(args.encodings)}")
    _table({f"{n} ({trees[n]})": r for n, r in rows.items()})


if __name__ == "__main__":
    main()
