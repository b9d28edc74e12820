"""Speed of the scoring service on loopback: one uvicorn worker, wrk as the load.

Measures, in one run on the same server:

1. ``POST /v1/calls`` (arrival, pre-answer score, history lookup and write) with one
   connection (latency p50/p99) and with 16 connections (requests per second); then
   the same with every request's feature vector distinct, where the pre-answer cache
   cannot help (its hit share is printed for every run, read from ``/metrics``);
2. ``POST /v1/calls/{id}/audio`` with a 60 s G.711 recording, one connection
   (end-to-end p50/p99: upload, decode, features, model, reasons, writes);
3. in-process, the same 60 s call split into decode, features and model, as shares of
   one scoring, so the ratio holds on a noisy machine.

    .venv/bin/python bench/bench_api.py [--database-url URL] [--seconds 15]

Needs ``wrk`` (Debian package ``wrk``). Without ``--database-url`` the server uses a
fresh SQLite file; pass ``postgresql+psycopg://postgres@127.0.0.1:5432/test`` to measure
PostgreSQL (tables are created in a fresh schema, dropped afterwards).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import soundfile as sf
from service import fresh_database, serve

ROOT = Path(__file__).resolve().parents[1]
CALLSIFT = Path(sys.executable).with_name("callsift")

CALLS_LUA = r"""
local counter = 0
local tid = 0
function setup(thread) thread:set("tid", tid); tid = tid + 1 end
function init(args) prefix = "w" .. tid .. "-" .. tostring(os.time()) .. "-" end
request = function()
  counter = counter + 1
  local caller = string.format("+62812%%07d", counter %% 500)
  local body = string.format(
    '{"call_id":"%%s%%d","caller_id":"%%s","started_at":"2025-06-03T10:%%02d:00+07:00"}',
    prefix, counter, caller, counter %% 60)
  return wrk.format("POST", "/v1/calls", {["Content-Type"]="application/json",
    ["X-API-Key"]="%(key)s"}, body)
end
"""

# Every request a feature vector of its own, so the pre-answer cache cannot help: calls
# one minute apart from 500 numbers never seen before, starting at %(base)d (epoch s).
# Within a run the minute of the week or the number's history differs between any two
# calls; runs start on other weekdays so their first, history-free calls differ too.
DISTINCT_LUA = r"""
local counter = 0
function init(args) prefix = "d" .. tostring(os.time()) .. "-" end
request = function()
  counter = counter + 1
  local caller = string.format("+62%(numbers)d%%07d", counter %% 500)
  local at = os.date("!%%Y-%%m-%%dT%%H:%%M:00+00:00", %(base)d + counter * 60)
  local body = string.format('{"call_id":"%%s%%d","caller_id":"%%s","started_at":"%%s"}',
    prefix, counter, caller, at)
  return wrk.format("POST", "/v1/calls", {["Content-Type"]="application/json",
    ["X-API-Key"]="%(key)s"}, body)
end
"""
# 2024-01-01T00:00Z (a Monday) and 2024-01-04T12:00Z (a Thursday).
DISTINCT_BASES = (1704067200, 1704369600)

AUDIO_LUA = r"""
local f = io.open("%(wav)s", "rb"); local wav = f:read("*all"); f:close()
local i = 0
request = function()
  i = (i %% %(n)d) + 1
  return wrk.format("POST", "/v1/calls/bench-" .. i .. "/audio",
    {["Content-Type"]="application/octet-stream", ["X-API-Key"]="%(key)s"}, wav)
end
"""


def sixty_second_call(tmp: Path) -> Path:
    """A real simulated call, cut or looped to exactly 60 s, as 8 kHz mu-law WAV."""
    from training.simulate import simulate_corpus

    manifest = simulate_corpus(tmp / "c", preset="balanced", n_calls=12, seed=3, progress=False)
    import pandas as pd

    frame = pd.read_csv(manifest, keep_default_na=False)
    row = frame.iloc[(frame["duration_s"] - 60).abs().argmin()]
    y, sr = sf.read(manifest.parent / row["audio_path"], dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    y = np.tile(y, int(np.ceil(60 * sr / y.size)))[: 60 * sr]
    out = tmp / "call60.wav"
    sf.write(out, y, sr, format="WAV", subtype="ULAW")
    return out


def post(base: str, path: str, key: str, body: dict) -> dict:
    req = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-API-Key": key},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def cache_counts(base: str) -> tuple[float, float]:
    """(hits, misses) of the serving model's pre-answer cache, from /metrics."""
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        text = r.read().decode()
    counts = {}
    for result in ("hit", "miss"):
        m = re.search(rf'^callsift_pre_answer_cache{{result="{result}"}} ([\d.e+]+)$', text, re.M)
        counts[result] = float(m.group(1)) if m else float("nan")
    return counts["hit"], counts["miss"]


def wrk(script: Path, base: str, *, threads: int, conns: int, seconds: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{conns}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            base,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(m.group(1)) * unit[m.group(2)] if m else float("nan")

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
        "rps": float(rps.group(1)) if rps else float("nan"),
        "non_2xx": float(non2xx.group(1)) if non2xx else 0.0,
    }


def in_process_split(wav: Path) -> dict[str, float]:
    from datetime import UTC, datetime

    from classifier.artifact import load_model
    from classifier.audio import load_audio
    from classifier.features import audio_features, call_features
    from classifier.history import empty_history

    model = load_model()
    data = wav.read_bytes()
    at = datetime(2025, 6, 3, 3, tzinfo=UTC)
    times: dict[str, list[float]] = {"decode": [], "features": [], "model": []}
    for _ in range(21):
        t0 = time.perf_counter()
        audio = load_audio(data)
        t1 = time.perf_counter()
        acoustic = audio_features(audio)
        t2 = time.perf_counter()
        feats = call_features(
            None,
            caller_id="+6281200000001",
            started_at=at,
            duration_s=60.0,
            history=empty_history(),
            acoustic=acoustic,
        )
        model.score(feats)
        t3 = time.perf_counter()
        times["decode"].append(t1 - t0)
        times["features"].append(t2 - t1)
        times["model"].append(t3 - t2)
    med = {k: float(np.median(v[1:])) * 1e3 for k, v in times.items()}
    total = sum(med.values())
    return {
        **{f"{k}_ms": v for k, v in med.items()},
        **{f"{k}_share": v / total for k, v in med.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--port", type=int, default=8799)
    ap.add_argument(
        "--server-args", default="", help="extra `callsift serve` options, e.g. '--loop asyncio'"
    )
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="callsift-bench-"))
    with fresh_database(args.database_url, tmp) as url:
        env = {"CALLSIFT_DATABASE_URL": url, "CALLSIFT_DATA_DIR": str(tmp / "data")}
        results = run(args, tmp, env)
    report(url, results, tmp / "call60.wav")
    shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, tmp: Path, env: dict[str, str]) -> dict[str, dict[str, float]]:
    """Every measured run against one server."""
    with serve(port=args.port, env=env, server_args=args.server_args) as server:
        base, key = server.base, server.key
        results: dict[str, dict[str, float]] = {}
        calls = tmp / "calls.lua"
        calls.write_text(CALLS_LUA % {"key": key})
        wrk(calls, base, threads=1, conns=1, seconds=3)  # warm-up

        def measured(name: str, script: Path, conns: int) -> None:
            time.sleep(1.0)  # requests still in flight from the last run finish first
            hits, misses = cache_counts(base)
            results[name] = wrk(script, base, threads=1, conns=conns, seconds=args.seconds)
            hits_after, misses_after = cache_counts(base)
            looked_up = (hits_after - hits) + (misses_after - misses)
            results[name]["cache_hits"] = (hits_after - hits) / max(looked_up, 1.0)

        measured("POST /v1/calls, 1 connection", calls, 1)
        measured("POST /v1/calls, 16 connections", calls, 16)
        for run, (conns, start) in enumerate(zip((1, 16), DISTINCT_BASES, strict=True)):
            distinct = tmp / f"distinct{run}.lua"
            values = {"key": key, "base": start, "numbers": 813 + run}
            distinct.write_text(DISTINCT_LUA % values)
            name = f"POST /v1/calls, all vectors distinct, {conns} connection{'s' * (conns > 1)}"
            measured(name, distinct, conns)
        wav = sixty_second_call(tmp)
        n = 50
        for i in range(1, n + 1):
            post(
                base,
                "/v1/calls",
                key,
                {
                    "call_id": f"bench-{i}",
                    "caller_id": f"+6281300{i:05d}",
                    "started_at": "2025-06-03T10:00:00+07:00",
                },
            )
        audio = tmp / "audio.lua"
        audio.write_text(AUDIO_LUA % {"wav": wav, "n": n, "key": key})
        results["POST /v1/calls/{id}/audio 60 s, 1 connection"] = {
            **wrk(audio, base, threads=1, conns=1, seconds=args.seconds),
            "cache_hits": float("nan"),
        }
    return results


def report(url: str, results: dict[str, dict[str, float]], wav: Path) -> None:
    print(f"database: {url.split('?')[0]}")
    print("| request | p50 ms | p99 ms | requests/s | non-2xx | pre-answer cache hits |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        hits = "" if r["cache_hits"] != r["cache_hits"] else f"{r['cache_hits']:.0%}"
        print(
            f"| {name} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['rps']:.0f} | "
            f"{r['non_2xx']:.0f} | {hits} |"
        )
    split = in_process_split(wav)
    print(
        "in-process 60 s call: "
        + ", ".join(
            f"{k} {v:.1f} ms ({split[k[:-3] + '_share']:.0%})"
            for k, v in split.items()
            if k.endswith("_ms")
        )
    )


if __name__ == "__main__":
    main()
