"""Corpus work on a Dask cluster (issue 18): `features` of one corpus with 1, 2 and 4 Dask
workers on this machine against the local joblib run, the scheduler's cost per call, and
the worker-hours of a national year.

    .venv/bin/python bench/bench_cluster.py --calls 200 --workers 1 2 4

The corpus is simulated once (``--corpus`` reuses a folder). Every run extracts the same
features (whole calls and the default 2/5/10/20 s prefixes, no cache) after a warm-up
run on 8 calls in the same processes, so worker start-up is left out on both sides
(it is measured in docs/benchmarks.md, "Feature extraction start-up"); each table is
checked equal to the local one. Dask workers are ``LocalCluster`` processes of one
thread each, as ``dask worker --nthreads 1`` would start them.

The scheduler's own cost is measured with tasks that do nothing, cut exactly as the
features run cuts the corpus, through the same client code (window, version check in
each task, results back to the client).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

NATIONAL_YEAR = 20_000_000


def _noop(items: list[Any]) -> list[int]:
    return [0] * len(items)


def _corpus(args: argparse.Namespace) -> Path:
    from training.simulate import simulate_corpus

    if args.corpus is not None and (args.corpus / "manifest.csv").is_file():
        return Path(args.corpus) / "manifest.csv"
    out = args.corpus or Path(tempfile.gettempdir()) / f"callsift-bench-cluster-{args.calls}"
    if (out / "manifest.csv").is_file():
        return out / "manifest.csv"
    return simulate_corpus(
        out, preset=args.preset, n_calls=args.calls, seed=args.seed, n_jobs=2, progress=False
    )


def _timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--preset", default="kendari-2025")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--corpus", type=Path, default=None, help="reuse (or create) this corpus")
    args = ap.parse_args()

    from distributed import Client, LocalCluster

    import training.features as features_stage
    from classifier.manifest import load_manifest
    from training.cluster import cut_by_work, map_on_cluster
    from training.features import DEFAULT_PREFIXES, extract_features

    manifest = _corpus(args)
    frame = load_manifest(manifest)
    seconds = [float(s) for s in frame["duration_s"]]
    audio_s = sum(seconds)
    work = [s + sum(min(p, s) for p in DEFAULT_PREFIXES) for s in seconds]
    n = len(frame)
    warm = manifest.with_name("bench-warm.csv")
    pd.read_csv(manifest, dtype=str, keep_default_na=False).head(8).to_csv(warm, index=False)
    print(
        f"corpus {manifest}: {n} calls, {audio_s:,.0f} s of audio (mean {audio_s / n:.1f} s), "
        f"{sum(work) - audio_s:,.0f} s more in prefixes; load average {os.getloadavg()[0]:.1f}"
    )

    def features(**kw: Any) -> pd.DataFrame:
        table, failures = extract_features(
            manifest, progress=False, prefixes=DEFAULT_PREFIXES, **kw
        )
        assert failures.empty, failures
        return table

    rows: list[tuple[str, float]] = []
    # Local: one process (this one), then joblib's workers (forced on whatever the audio).
    extract_features(warm, n_jobs=1, progress=False, prefixes=DEFAULT_PREFIXES)
    t_one, reference = _timed(lambda: features(n_jobs=1))
    rows.append(("local, 1 process (no workers)", t_one))
    features_stage.WORKERS_FROM_S = 0.0
    extract_features(warm, n_jobs=2, progress=False, prefixes=DEFAULT_PREFIXES)
    t_joblib, table = _timed(lambda: features(n_jobs=2))
    pd.testing.assert_frame_equal(reference, table, check_exact=True)
    rows.append(("local, joblib 2 processes", t_joblib))

    overhead: list[tuple[int, int, float]] = []
    dask_times: dict[int, float] = {}
    for k in args.workers:
        t_start, cluster = _timed(
            lambda k=k: LocalCluster(
                n_workers=k,
                threads_per_worker=1,
                dashboard_address=":0",
                silence_logs=logging.ERROR,
            )
        )
        with cluster, Client(cluster, set_as_default=False) as client:
            extract_features(warm, progress=False, prefixes=DEFAULT_PREFIXES, cluster=client)
            t_k, table = _timed(lambda client=client: features(cluster=client))
            pd.testing.assert_frame_equal(reference, table, check_exact=True)
            dask_times[k] = t_k
            plural = "s" if k > 1 else ""
            rows.append((f"Dask, {k} worker{plural} (cluster start {t_start:.1f} s)", t_k))
            batches = cut_by_work(
                list(range(n)), work, per_task=features_stage.CLUSTER_TASK_AUDIO_S, threads=k
            )
            t_noop, _ = _timed(
                lambda client=client, batches=batches: [
                    r
                    for done in map_on_cluster(client, _noop, batches, desc="noop", progress=False)
                    for r in done
                ]
            )
            overhead.append((k, len(batches), t_noop))

    print()
    print("| run | wall time | calls/s | x real time | against joblib 2 processes |")
    print("|---|---|---|---|---|")
    for name, t in rows:
        print(f"| {name} | {t:.1f} s | {n / t:.1f} | {audio_s / t:,.0f}x | {t_joblib / t:.2f} |")
    print()
    print("| workers | tasks | no-op run | per task | per call |")
    print("|---|---|---|---|---|")
    for k, tasks, t in overhead:
        print(f"| {k} | {tasks} | {t:.3f} s | {1000 * t / tasks:.1f} ms | {1000 * t / n:.2f} ms |")
    one_worker = dask_times.get(1)
    print()
    per_call = t_one / n
    print(
        f"per-call cost, one core in this process: {per_call:.3f} s "
        f"({audio_s / n:.0f} s calls with 4 prefixes)"
    )
    if one_worker is not None:
        print(
            f"one Dask worker against one process: {1000 * (one_worker - t_one) / n:+.1f} ms "
            "per call"
        )
        per_call = one_worker / n
        print(f"per-call cost, one Dask worker: {per_call:.3f} s")
    hours = NATIONAL_YEAR * per_call / 3600
    print(
        f"a national year ({NATIONAL_YEAR:,} calls like these): {hours:,.0f} worker-hours "
        f"({hours / 24 / 365:.1f} workers busy all year; {hours / 24:,.0f} worker-days)"
    )


if __name__ == "__main__":
    main()
