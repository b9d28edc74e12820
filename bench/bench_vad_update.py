"""What the speech detection of one live-stream update costs, against another version.

    .venv/bin/python bench/bench_vad_update.py --old /work/main/classifier/vad.py \
        [--repeats 300] [--at 10,30,60]

Times :func:`classifier.vad.speech_and_whisper_from_stft` as a live stream calls it (one
second of new audio, the memo of the seconds before) after 10, 30 and 60 s heard (or the
``--at`` seconds; the audio is looped to the longest), and once over a whole 60 s call
with no memo (batch). ``--old`` loads another copy of
``vad.py`` (e.g. main's) into the same process and times it on the same frames,
alternating with the current one at every repeat, so that the noise of a shared machine
hits both alike. The audio is real read speech from ``../shared/data`` (looped to 60 s),
or simulated calls when that folder is absent. Medians are printed, in ms.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_stream_update import sixty_seconds
from classifier import vad
from classifier.features import (
    HOP,
    N_FFT,
    SR,
    dither,
    n_frames,
    stft_frames,
)
from classifier.threads import single_threaded_blas


def load_vad(path: str) -> ModuleType:
    """Another copy of vad.py as its own module (it imports only numpy, scipy, classifier)."""
    spec = importlib.util.spec_from_file_location("vad_other", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def update(mod: ModuleType, P: np.ndarray, memo: Any, samples: int) -> None:
    """One stream update after ``samples`` heard, as classifier.features.summarise calls it."""
    total = n_frames(samples)
    final = max(0, min(total, (samples - N_FFT // 2) // HOP + 1))
    Pt = P[:total].T
    mod.speech_and_whisper_from_stft(
        Pt, sr=SR, hop_length=HOP, power=Pt, n_fft=N_FFT, memo=memo, final=final
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--old", help="another vad.py to time side by side (e.g. main's)")
    ap.add_argument("--repeats", type=int, default=300)
    ap.add_argument("--at", default="10,30,60", help="seconds heard at the timed updates")
    args = ap.parse_args()
    at = [int(s) for s in args.at.split(",")]
    single_threaded_blas()
    impls: dict[str, ModuleType] = {"new": vad}
    if args.old:
        impls = {"old": load_vad(args.old), "new": vad}
    y, source = sixty_seconds()
    y, _ = dither(np.resize(y, max(60, *at) * SR))
    P, _ = stft_frames(y, first=0, last=n_frames(y.size))  # frames-major, as a stream keeps
    print(f"audio: {source}; {args.repeats} repeats, alternating")
    rows: list[tuple[str, dict[str, float]]] = []
    for secs in at:
        memos = {}
        for name, mod in impls.items():
            memo = mod.VadMemo()
            for s in range(1, secs):
                update(mod, P, memo, s * SR)
            memos[name] = memo
        times: dict[str, list[float]] = {name: [] for name in impls}
        for _ in range(args.repeats):
            for name, mod in impls.items():
                state = copy.deepcopy(memos[name])
                t0 = time.perf_counter()
                update(mod, P, state, secs * SR)
                times[name].append(time.perf_counter() - t0)
        rows.append((f"update at {secs} s", {k: float(np.median(v)) for k, v in times.items()}))
    times = {name: [] for name in impls}
    for _ in range(max(5, args.repeats // 10)):
        for name, mod in impls.items():
            t0 = time.perf_counter()
            P60 = P[: n_frames(60 * SR)].T
            mod.speech_and_whisper_from_stft(P60, sr=SR, hop_length=HOP, power=P60, n_fft=N_FFT)
            times[name].append(time.perf_counter() - t0)
    rows.append(("60 s call, batch", {k: float(np.median(v)) for k, v in times.items()}))
    names = list(impls)
    print(
        "| "
        + " | ".join(["", *(f"{n} ms" for n in names)])
        + (" | old / new |" if args.old else " |")
    )
    print("|---" * (len(names) + 1 + bool(args.old)) + "|")
    for label, med in rows:
        cells = [label, *(f"{med[n] * 1e3:.3f}" for n in names)]
        if args.old:
            cells.append(f"{med['old'] / med['new']:.2f}x")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
