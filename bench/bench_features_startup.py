"""Where the wall time of ``callsift features`` goes, and the command end to end (issue 17).

    .venv/bin/python bench/bench_features_startup.py --manifest /tmp/featcorpus/manifest.csv \
        --tree before=/tmp/feat-before --tree after=/tmp/feat-after --repeats 3 --load 2

Each ``--tree NAME=PATH`` is a checkout of the project (``git worktree add``) run with this
venv's interpreter and ``PYTHONPATH=PATH``, so two versions of the code are measured side
by side in one sitting: the command end to end, trees alternating (A B A B ...), each run
with a fresh output folder (and a fresh ``--cache`` folder with ``--cache``), with no
load added and, with ``--load N``, again while N busy loops (``python3 -c 'while True:
pass'``) hold the cores (the load average printed says what else ran). Wall time is
the command's, from process start to exit; x real time is the manifest's audio seconds
over it. The tables the trees wrote are compared with
``pandas.testing.assert_frame_equal(check_exact=True)``.

The breakdown (``--breakdown``, per tree, each part in a fresh process):

* process start: ``python -c pass``, ``callsift --help`` (the CLI's imports), ``import
  training.features``;
* warm-up: ``classifier.streaming.warm_up()`` after the imports, numba's disk cache
  already written (a first run compiles for several seconds more);
* worker pool: joblib/loky starting ``--jobs`` workers that import ``training.features``,
  and the first extraction's one-off cost in a worker (numba cache loads, librosa's
  lazy imports: what ``warm_up`` costs there);
* per call, in one process: decoding (how many times per call), the whole call's
  features, the prefix rows' features, the parent's bookkeeping (manifest, history
  replay, one row per call and prefix, the DataFrame) and writing the parquet file;
* the floor: decoding every file plus one STFT of it, in one process.

``--crossover M1 M2 ...`` times each manifest with one process and with ``--jobs`` workers
(forced on whatever the audio's length), each a fresh process writing the parquet file:
where workers start to pay (``training.features.WORKERS_FROM_S``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PYTHON = sys.executable
PREFIXES = "2,5,10,20"


def _env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree)
    return env


def _run(tree: Path, args: list[str], *, check: bool = True) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run([PYTHON, *args], cwd=tree, env=_env(tree), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if check and done.returncode != 0:
        raise SystemExit(f"{args} in {tree} failed:\n{done.stdout}\n{done.stderr}")
    return wall, done.stdout


def _cli(*args: str) -> list[str]:
    # What the ``callsift`` console script runs, with this tree's modules.
    return ["-c", "import sys; from callsift import main; sys.exit(main())", *args]


def audio_seconds(manifest: Path) -> float:
    import csv

    with open(manifest, newline="") as fh:
        return sum(float(r["duration_s"]) for r in csv.DictReader(fh))


# --- probes: run in a fresh process with PYTHONPATH set to the tree ------------------


def _probe_where() -> dict[str, Any]:
    import training.features

    return {"training.features": training.features.__file__}


def _probe_warm_up() -> dict[str, Any]:
    import training.features  # noqa: F401
    from classifier.streaming import warm_up

    t0 = time.perf_counter()
    warm_up()
    t1 = time.perf_counter()
    warm_up()
    return {"warm_up_s": t1 - t0, "again_s": time.perf_counter() - t1}


def _in_worker(module: str) -> dict[str, Any]:
    import importlib

    t0, c0 = time.perf_counter(), time.process_time()
    mod = importlib.import_module(module)
    t1, c1 = time.perf_counter(), time.process_time()
    from classifier.streaming import warm_up

    warm_up()
    return {
        "pid": os.getpid(),
        "file": mod.__file__,
        "import_s": t1 - t0,
        "import_cpu_s": c1 - c0,
        "first_call_s": time.perf_counter() - t1,
        "first_call_cpu_s": time.process_time() - c1,
    }


def _probe_pool(jobs: str) -> dict[str, Any]:
    import joblib

    t0 = time.perf_counter()
    n = int(jobs)
    out = joblib.Parallel(n_jobs=n)(
        joblib.delayed(_in_worker)("training.features") for _ in range(n)
    )
    return {"pool_s": time.perf_counter() - t0, "workers": out}


def _probe_calls(manifest: str, out: str) -> dict[str, Any]:
    """One process: every stage of extract_features timed by wrapping its callees."""
    import training.features as tf
    from classifier import audio as ca
    from classifier.streaming import warm_up

    warm_up()  # numba kernels and lazy imports loaded: not charged to the first call
    spent: dict[str, float] = {"decode": 0.0, "whole": 0.0, "prefix": 0.0, "batches": 0.0}
    count = {"decode": 0, "whole": 0, "prefix": 0}
    heads: dict[int, Any] = {}  # id -> the prefix itself (ids of dead objects are reused)

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] += time.perf_counter() - t

        return wrapper

    load, feats, head, batch = tf.load_audio, tf.audio_features, ca.CallAudio.head, tf._run_batch

    def counted_load(*a: Any, **k: Any) -> Any:
        count["decode"] += 1
        return timed("decode", load)(*a, **k)

    def split_features(audio: Any) -> Any:
        kind = "prefix" if heads.pop(id(audio), None) is audio else "whole"
        count[kind] += 1
        return timed(kind, feats)(audio)

    def marked_head(self: Any, seconds: float) -> Any:
        cut = head(self, seconds)
        if cut is not self:
            heads[id(cut)] = cut
        return cut

    tf.load_audio = counted_load
    tf.audio_features = split_features
    ca.CallAudio.head = marked_head  # type: ignore[method-assign]
    tf._run_batch = timed("batches", batch)
    cuts = tf.parse_prefixes(PREFIXES)
    t0, c0 = time.perf_counter(), time.process_time()
    table, _ = tf.extract_features(manifest, n_jobs=1, progress=False, prefixes=cuts)
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    t1 = time.perf_counter()
    table.to_parquet(out, index=False)
    parquet = time.perf_counter() - t1
    return {
        "extract_s": total,
        "extract_cpu_s": cpu,
        "decode_s": spent["decode"],
        "decodes": count["decode"],
        "whole_s": spent["whole"],
        "wholes": count["whole"],
        "prefix_s": spent["prefix"],
        "prefixes": count["prefix"],
        "worker_other_s": spent["batches"] - spent["decode"] - spent["whole"] - spent["prefix"],
        "parent_s": total - spent["batches"],
        "parquet_s": parquet,
        "rows": len(table),
    }


def _probe_floor(manifest: str) -> dict[str, Any]:
    """Decoding every file and one STFT of it: what no extraction can go under."""
    import pandas as pd

    from classifier.audio import load_audio
    from classifier.features import n_frames, stft_frames

    frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    root = Path(manifest).parent
    decode = stft = 0.0
    for rel, ch in zip(frame["audio_path"], frame["caller_channel"], strict=True):
        t0 = time.perf_counter()
        a = load_audio(root / rel, caller_channel=ch or "mix")
        t1 = time.perf_counter()
        stft_frames(a.caller, first=0, last=n_frames(a.caller.size))
        stft += time.perf_counter() - t1
        decode += t1 - t0
    return {"decode_s": decode, "stft_s": stft}


PROBES: dict[str, Callable[..., dict[str, Any]]] = {
    "where": _probe_where,
    "warm_up": _probe_warm_up,
    "pool": _probe_pool,
    "calls": _probe_calls,
    "floor": _probe_floor,
}


def probe(tree: Path, name: str, *args: Any) -> dict[str, Any]:
    _, out = _run(tree, [__file__, "--probe", name, *map(str, args)])
    return json.loads(out.strip().splitlines()[-1])


# --- the report -----------------------------------------------------------------------


def median_wall(tree: Path, args: list[str], repeats: int) -> float:
    return statistics.median(_run(tree, args)[0] for _ in range(repeats))


def breakdown(name: str, tree: Path, manifest: Path, jobs: int, repeats: int) -> None:
    audio_s = audio_seconds(manifest)
    where = probe(tree, "where")["training.features"]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n## breakdown: {name} ({where}; load average {load})")
    start = median_wall(tree, ["-c", "pass"], repeats)
    cli = median_wall(tree, _cli("--help"), repeats)
    imp = median_wall(tree, ["-c", "import training.features"], repeats)
    print(f"python -c pass                  {start:6.2f} s")
    print(f"callsift --help                 {cli:6.2f} s")
    print(f"python -c 'import training.features' {imp:6.2f} s")
    wu = [probe(tree, "warm_up") for _ in range(repeats)]
    print(
        f"warm_up() (cache on disk)       {statistics.median(w['warm_up_s'] for w in wu):6.2f} s"
        f"  (a second call {statistics.median(w['again_s'] for w in wu):.3f} s)"
    )
    pools = [probe(tree, "pool", jobs) for _ in range(repeats)]
    workers = [w for p in pools for w in p["workers"]]
    med = {k: statistics.median(w[k] for w in workers) for k in workers[0] if "_s" in k}
    print(
        f"pool of {jobs} workers, importing    "
        f"{statistics.median(p['pool_s'] for p in pools):6.2f} s wall  (per worker: import "
        f"{med['import_s']:.2f} s, {med['import_cpu_s']:.2f} s CPU; first call "
        f"{med['first_call_s']:.2f} s, {med['first_call_cpu_s']:.2f} s CPU; "
        f"{workers[0]['file']})"
    )
    with tempfile.TemporaryDirectory() as tmp:
        c = probe(tree, "calls", manifest, Path(tmp) / "t.parquet")
    print(
        f"one process, {c['rows']} rows: extract_features {c['extract_s']:.2f} s "
        f"({c['extract_cpu_s']:.2f} s CPU)"
    )
    print(f"  decode          {c['decode_s']:6.2f} s  ({c['decodes']} decodes)")
    print(f"  whole calls     {c['whole_s']:6.2f} s  ({c['wholes']})")
    print(f"  prefix rows     {c['prefix_s']:6.2f} s  ({c['prefixes']})")
    print(f"  rest in worker  {c['worker_other_s']:6.2f} s")
    print(f"  parent          {c['parent_s']:6.2f} s  (manifest, history, rows, DataFrame)")
    print(f"  parquet         {c['parquet_s']:6.2f} s")
    work = c["extract_s"] - c["parent_s"]
    print(f"  x real time of the per-call work on one core: {audio_s / work:,.0f}x")
    f = probe(tree, "floor", manifest)
    floor = f["decode_s"] + f["stft_s"]
    print(
        f"floor, one process: decode {f['decode_s']:.2f} s + one STFT {f['stft_s']:.2f} s = "
        f"{floor:.2f} s, {audio_s / floor:,.0f}x real time on one core "
        f"({2 * audio_s / floor:,.0f}x on two)"
    )


@contextmanager
def busy(n: int) -> Iterator[None]:
    procs = [subprocess.Popen(["python3", "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def end_to_end(
    trees: dict[str, Path], manifest: Path, jobs: int, repeats: int, cache: bool, label: str
) -> dict[str, Path]:
    audio_s = audio_seconds(manifest)
    walls: dict[str, list[float]] = {n: [] for n in trees}
    outs: dict[str, Path] = {}
    keep = Path(tempfile.mkdtemp(prefix="featbench-"))
    for r in range(repeats):
        for name, tree in trees.items():
            out = keep / f"{name}-{label}-{r}" / "features.parquet"
            args = [str(manifest), "--out", str(out), "--jobs", str(jobs)]
            args += ["--prefixes", PREFIXES]
            if cache:
                args += ["--cache", str(out.parent / "cache")]
            wall, _ = _run(tree, _cli("features", *args))
            walls[name].append(wall)
            outs[name] = out
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n## end to end, {label}: {audio_s / 3600:.2f} h of audio, --jobs {jobs}")
    print(f"(load average after the runs: {load})")
    print("| tree | runs (s) | median (s) | x real time |")
    print("|---|---|---|---|")
    for name, w in walls.items():
        m = statistics.median(w)
        runs = ", ".join(f"{x:.1f}" for x in w)
        print(f"| {name} | {runs} | {m:.1f} | {audio_s / m:,.0f}x |")
    return outs


_FORCED = (
    "import sys, training.features as f; f.WORKERS_FROM_S = 0.0; "
    "f.extract_features(sys.argv[1], n_jobs=int(sys.argv[2]), progress=False, "
    "prefixes=f.parse_prefixes(sys.argv[3]))[0].to_parquet(sys.argv[4], index=False)"
)


def crossover(tree: Path, manifests: list[Path], jobs: int, repeats: int) -> None:
    """One process against ``jobs`` workers (forced, whatever the audio's length), each
    in a fresh process from start to the parquet file: where workers start to pay."""
    print(f"\n## one process or {jobs} workers ({tree}; workers forced on)")
    print(f"| manifest | audio (s) | 1 process (s) | {jobs} workers (s) | workers / one |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for manifest in manifests:
            walls: dict[int, list[float]] = {1: [], jobs: []}
            for _ in range(repeats):
                for n in (1, jobs):
                    out = Path(tmp) / f"{n}.parquet"
                    args = ["-c", _FORCED, str(manifest), str(n), PREFIXES, str(out)]
                    walls[n].append(_run(tree, args)[0])
            one, many = statistics.median(walls[1]), statistics.median(walls[jobs])
            print(
                f"| {manifest.name} | {audio_seconds(manifest):,.0f} | {one:.1f} | {many:.1f} "
                f"| {many / one:.2f} |"
            )
    print(f"(load average after: {', '.join(f'{x:.1f}' for x in os.getloadavg())})")


def same_tables(outs: dict[str, Path]) -> None:
    import pandas as pd

    names = list(outs)
    first = pd.read_parquet(outs[names[0]])
    for name in names[1:]:
        pd.testing.assert_frame_equal(first, pd.read_parquet(outs[name]), check_exact=True)
        print(f"tables of {names[0]} and {name}: identical ({first.shape}, check_exact=True)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    parser.add_argument("probe_args", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--manifest", type=Path)
    parser.add_argument("--tree", action="append", default=[], help="NAME=PATH, repeatable")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--load", type=int, default=0, help="busy loops for a loaded round")
    parser.add_argument("--cache", action="store_true", help="also a fresh --cache folder")
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument("--no-end-to-end", action="store_true")
    parser.add_argument(
        "--crossover",
        type=Path,
        nargs="+",
        default=[],
        help="manifests to time with one process and with --jobs workers (last --tree)",
    )
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(PROBES[args.probe](*args.probe_args)))
        return
    if args.manifest is None or not args.tree:
        parser.error("--manifest and at least one --tree are required")
    trees = {}
    for spec in args.tree:
        name, _, path = spec.partition("=")
        trees[name] = Path(path or name).resolve()
    manifest = args.manifest.resolve()
    print(f"{len(trees)} trees; manifest {manifest}: {audio_seconds(manifest) / 3600:.2f} h")
    if args.crossover:
        crossover(list(trees.values())[-1], args.crossover, args.jobs, args.repeats)
    if args.breakdown:
        for name, tree in trees.items():
            breakdown(name, tree, manifest, args.jobs, args.repeats)
    if args.no_end_to_end:
        return
    outs = end_to_end(trees, manifest, args.jobs, args.repeats, False, "no added load")
    same_tables(outs)
    if args.cache:
        same_tables(end_to_end(trees, manifest, args.jobs, args.repeats, True, "fresh cache"))
    if args.load:
        with busy(args.load):
            outs = end_to_end(
                trees, manifest, args.jobs, args.repeats, False, f"{args.load} busy loops"
            )
        same_tables(outs)


if __name__ == "__main__":
    main()
