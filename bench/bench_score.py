"""One call scored with its reasons (``ScoringModel.score``, stage "call"), this checkout
beside an older revision of ``classifier/``, in one process.

    .venv/bin/python bench/bench_score.py [--baseline main] [--repeats 3000] [--calls 24]
        [--cold]

The older revision is unpacked with ``git archive`` and imported under its own modules, so
both load the shipped model and score the same rows in turn: the machine's noise falls on
both alike. Timed rows are a live stream's features after 5, 30 and 60 s of a 60 s call
(the audio of ``bench_stream_update.py``), from a new caller and from a caller with three
earlier prank calls; medians of ``--repeats``. ``--cold`` reads 16 MB before each call, as
a stream update's feature work does, so that neither finds its data in the caches.

Before timing, both must score identically, at both stages: probabilities to the last
bit, flag and reasons (weights unrounded), on the stream's features after every second
and on every row of a simulated corpus (``--calls`` calls of all four labels, whole and
cut at 2, 5, 10 and 20 s).
"""

from __future__ import annotations

import argparse
import importlib
import io
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def baseline_modules(rev: str, tmp: Path) -> dict[str, ModuleType]:
    """``classifier`` at ``rev``, unpacked in ``tmp``, imported, then moved out of
    ``sys.modules`` (its modules keep their references to each other)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "classifier"], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tmp, filter="data")
    if any(name == "classifier" or name.startswith("classifier.") for name in sys.modules):
        raise RuntimeError("import the baseline before this checkout's classifier")
    sys.path.insert(0, str(tmp))
    try:
        importlib.import_module("classifier.artifact")
    finally:
        sys.path.remove(str(tmp))
    return {
        name: sys.modules.pop(name)
        for name in list(sys.modules)
        if name == "classifier" or name.startswith("classifier.")
    }


def load_baseline_model(modules: dict[str, ModuleType]) -> Any:
    # Unpickling resolves classifier.* through sys.modules: the baseline's, for a moment.
    saved = {n: sys.modules.pop(n) for n in list(sys.modules) if n.split(".")[0] == "classifier"}
    sys.modules.update(modules)
    try:
        artifact = modules["classifier.artifact"]
        return artifact.load_model(ROOT / "models" / "default")
    finally:
        for name in modules:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


def prank_history(at: datetime) -> dict[str, float]:
    from classifier.history import PastCall, history_features

    past = [
        PastCall(started_at=at - timedelta(days=d), duration_s=20.0, label="prank")
        for d in (1, 3, 6)
    ]
    return history_features(past, at=at)


def stream_rows() -> dict[str, dict[str, float]]:
    """The live stream's features after every second, for a new and a repeat caller."""
    from bench_stream_update import sixty_seconds

    from classifier.features import SR, call_features
    from classifier.history import empty_history
    from classifier.streaming import StreamingFeatures

    y, _ = sixty_seconds()
    at = datetime(2025, 6, 3, 3, tzinfo=UTC)
    rows: dict[str, dict[str, float]] = {}
    live = StreamingFeatures()
    for secs in range(1, 61):
        live.push(y[(secs - 1) * SR : secs * SR])
        acoustic = live.features()
        for who, history in (("new", empty_history()), ("repeat", prank_history(at))):
            rows[f"{secs} s, {who} caller"] = call_features(
                None,
                caller_id="+6281234567",
                started_at=at,
                duration_s=float(secs),
                history=history,
                acoustic=acoustic,
                complete=False,
            )
    return rows


def corpus_rows(n_calls: int, tmp: Path) -> list[dict[str, float]]:
    """Feature rows of a simulated corpus: whole calls and their 2, 5, 10 and 20 s cuts."""
    from classifier.features import FEATURE_NAMES
    from training.features import extract_features
    from training.simulate import simulate_corpus

    manifest = simulate_corpus(
        tmp / "corpus", preset="balanced", n_calls=n_calls, seed=11, progress=False
    )
    table, _ = extract_features(manifest, n_jobs=1, progress=False, prefixes=(2, 5, 10, 20))
    values = table.loc[:, list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    return [dict(zip(FEATURE_NAMES, row.tolist(), strict=True)) for row in values]


def same_score(a: Any, b: Any) -> bool:
    # Every field, floats by their shortest repr (which tells every bit apart), NaN too.
    return repr(a) == repr(b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", default="main", help="git revision to compare with")
    ap.add_argument("--repeats", type=int, default=3000)
    ap.add_argument("--calls", type=int, default=24, help="simulated calls for the check")
    ap.add_argument(
        "--cold",
        action="store_true",
        help="read 16 MB before each call, as a stream update's feature work evicts the caches",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="callsift-bench-score-") as tmp:
        old_model = load_baseline_model(baseline_modules(args.baseline, Path(tmp) / "old"))
        from classifier.artifact import load_model
        from classifier.threads import single_threaded_blas

        single_threaded_blas()
        new_model = load_model()
        stream = stream_rows()
        check = [*stream.values(), *corpus_rows(args.calls, Path(tmp))]
    flags: dict[str, int] = {}
    for features in check:
        for stage in ("pre_answer", "call"):
            old = old_model.score(features, stage=stage)
            new = new_model.score(features, stage=stage)
            if not same_score(old, new):
                raise SystemExit(f"scores differ:\n  {args.baseline}: {old}\n  this: {new}")
        flags[new.flag] = flags.get(new.flag, 0) + 1  # the call stage's
    print(f"identical scores on {len(check)} rows, both stages (call flags: {flags})")
    rows = {k: v for k, v in stream.items() if k.split(" s,")[0] in ("5", "30", "60")}
    runs: dict[str, Callable[[dict[str, float]], Any]] = {
        args.baseline: lambda f: old_model.score(f, stage="call"),
        "this checkout": lambda f: new_model.score(f, stage="call"),
    }
    evict = np.ones(2 * 2**20)
    print(f"| row | {args.baseline} ms | this checkout ms | speed-up |")
    print("|---|---|---|---|")
    for name, features in rows.items():
        times: dict[str, list[float]] = {k: [] for k in runs}
        for r in range(args.repeats):
            # In turn, each first every other time, so that noise hits both alike.
            for k in list(runs)[:: 1 if r % 2 else -1]:
                run = runs[k]
                if args.cold:
                    evict.sum()
                t0 = time.perf_counter()
                run(features)
                times[k].append(time.perf_counter() - t0)
        old_ms, new_ms = (float(np.median(times[k])) * 1e3 for k in runs)
        print(f"| {name} | {old_ms:.3f} | {new_ms:.3f} | {old_ms / new_ms:.2f}x |")


if __name__ == "__main__":
    main()
