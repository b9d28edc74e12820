"""Simulator throughput: one-minute calls generated per second with 2 processes.

Goal (issue 2): at least 20 calls/s, i.e. 10,000 calls in under 10 minutes.

    .venv/bin/python bench/bench_simulate.py --calls 200 --jobs 2

Every planned call is stretched to 60 s so the figure is per one-minute call; the
single-process rate is measured in the same run for the parallel speed-up ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from joblib import Parallel, delayed

from training.simulate import SimulationConfig, _batches, _render_batch
from training.simulator.population import plan_calls
from training.simulator.presets import get_preset


def run(calls: int, jobs: int, preset: str, seed: int) -> float:
    plans = [
        dataclasses.replace(p, duration_s=60.0)
        for p in plan_calls(get_preset(preset), n_calls=calls, seed=seed)
    ]
    cfg = SimulationConfig(preset=preset, n_calls=calls, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "audio").mkdir()
        # Warm the workers (imports, espeak initialisation) outside the timed part.
        Parallel(n_jobs=jobs)(delayed(_render_batch)(b, cfg, out) for b in _batches(plans[:8]))
        t0 = time.perf_counter()
        if jobs == 1:
            for b in _batches(plans):
                _render_batch(b, cfg, out)
        else:
            Parallel(n_jobs=jobs)(delayed(_render_batch)(b, cfg, out) for b in _batches(plans))
        return calls / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--preset", default="kendari-2025")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    single = run(args.calls // 2, 1, args.preset, args.seed)
    multi = run(args.calls, args.jobs, args.preset, args.seed)
    print(f"one-minute calls/s, 1 process:  {single:6.1f}")
    print(f"one-minute calls/s, {args.jobs} processes: {multi:6.1f}  (goal >= 20)")
    print(f"parallel speed-up: {multi / single:.2f}x")
    print(f"10,000 calls would take {10000 / multi / 60:.1f} min")


if __name__ == "__main__":
    main()
