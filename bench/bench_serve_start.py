"""Time from `callsift serve` to the first 200 of /readyz (issue 17).

For 1 and 2 workers, a first start after install (numba's on-disk cache of the compiled
kernels removed, as in a fresh clone) and a later start (cache kept), optionally while
other processes keep the cores busy. Counts worker restarts in the server's log.

    .venv/bin/python bench/bench_serve_start.py --repeats 3
    .venv/bin/python bench/bench_serve_start.py --repeats 3 --busy 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.serve import free_port

ROOT = Path(__file__).resolve().parents[1]
CALLSIFT = str(Path(sys.executable).with_name("callsift"))


def clear_numba_cache() -> int:
    """Remove the compiled kernels numba cached beside callsift's sources."""
    removed = 0
    for pattern in ("*.nbi", "*.nbc"):
        for path in (ROOT / "classifier").rglob(pattern):
            path.unlink()
            removed += 1
    return removed


def time_to_ready(workers: int, root: Path) -> tuple[float, int]:
    port = free_port()
    env = {
        **os.environ,
        "CALLSIFT_DATABASE_URL": f"sqlite:///{root / 'db.sqlite'}",
        "CALLSIFT_DATA_DIR": str(root / "data"),
        "CALLSIFT_LOG_LEVEL": "INFO",
    }
    env.pop("DATABASE_URL", None)
    log = root / f"serve-{port}.log"
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [CALLSIFT, "serve", "--workers", str(workers), "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
        )
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"callsift serve exited:\n{log.read_text()}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        ready = time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    text = log.read_text()
    return ready, text.count("starting another") + text.count("died")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy", type=int, default=0, help="CPU-bound processes beside it")
    args = parser.parse_args()
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)
    ]
    try:
        print(f"busy processes beside the server: {args.busy}")
        print("| workers | start | time to ready (median, min-max) | restarts |")
        print("|---|---|---|---|")
        for workers in (1, 2):
            for kind in ("first after install", "later"):
                times, restarts = [], 0
                for _ in range(args.repeats):
                    if kind == "first after install":
                        clear_numba_cache()
                    with tempfile.TemporaryDirectory() as tmp:
                        seconds, n = time_to_ready(workers, Path(tmp))
                    times.append(seconds)
                    restarts += n
                print(
                    f"| {workers} | {kind} | {statistics.median(times):.1f} s "
                    f"({min(times):.1f}-{max(times):.1f}) | {restarts} |",
                    flush=True,
                )
    finally:
        for proc in spinners:
            proc.kill()


if __name__ == "__main__":
    main()
