"""What one live-stream update costs, in one process: features of everything heard,
then model and reasons, after 5, 30 and 60 s of a call.

    .venv/bin/python bench/bench_stream_update.py [--repeats 15]

The audio is real read speech from ``../shared/data`` (looped to 60 s), or a simulated
call when that folder is absent. Each update is timed on a copy of the same stream state,
so every repeat does the same work; medians are printed.
"""

from __future__ import annotations

import argparse
import copy
import glob
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from classifier.artifact import load_model
from classifier.audio import load_audio
from classifier.features import SR, call_features
from classifier.history import empty_history
from classifier.streaming import StreamingFeatures
from classifier.threads import single_threaded_blas

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def sixty_seconds() -> tuple[np.ndarray, str]:
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    single_threaded_blas()
    model = load_model()
    y, source = sixty_seconds()
    at = datetime(2025, 6, 3, 3, tzinfo=UTC)
    warm = StreamingFeatures()
    warm.push(y[: 3 * SR])
    model.score(
        call_features(
            None,
            caller_id="+6281234567",
            started_at=at,
            duration_s=3.0,
            history=empty_history(),
            acoustic=warm.features(),
            complete=False,
        )
    )  # compiled kernels and caches ready before timing
    print(f"audio: {source}")
    print("| heard | features ms | model + reasons ms | update ms |")
    print("|---|---|---|---|")
    for secs in (5, 30, 60):
        live = StreamingFeatures()
        for i in range(0, (secs - 1) * SR, SR):
            live.push(y[i : i + SR])
            live.features()
        tf, tm = [], []
        for _ in range(args.repeats):
            state = copy.deepcopy(live)
            state.push(y[(secs - 1) * SR : secs * SR])
            t0 = time.perf_counter()
            acoustic = state.features()
            t1 = time.perf_counter()
            feats = call_features(
                None,
                caller_id="+6281234567",
                started_at=at,
                duration_s=float(secs),
                history=empty_history(),
                acoustic=acoustic,
                complete=False,
            )
            model.score(feats)
            t2 = time.perf_counter()
            tf.append(t1 - t0)
            tm.append(t2 - t1)
        f, m = np.median(tf) * 1e3, np.median(tm) * 1e3
        print(f"| {secs} s | {f:.2f} | {m:.2f} | {f + m:.2f} |")


if __name__ == "__main__":
    main()
