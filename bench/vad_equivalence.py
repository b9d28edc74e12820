"""Masks of classifier.vad against another version of it (e.g. main's), frame by frame.

    .venv/bin/python bench/vad_equivalence.py --old /work/main/classifier/vad.py \
        [--data ../shared/data] [--calls 40] [--seed 3] [--out /tmp/vad_equivalence]

Both versions see the same frames, computed as the feature extractor computes them
(dither, 32 ms STFT cut at 3.5 kHz, its power passed on). Two runs per recording:

- batch: the whole recording at once;
- stream: the recording pushed in random 20-100 ms chunks with an update whenever
  another second has been heard and one at the end, as ``StreamingFeatures`` does
  (frames whose window is not heard in full are computed as if the call ended there,
  and stay provisional to the end, as the service never says a call is over).

Recordings: every wav under ``--data`` and ``--calls`` simulated calls
(``simulate_corpus(preset="balanced", seed=--seed)``). Prints, per group and mode, the
frames compared and those where the voiced or the with-whisper mask differs, and the
recordings involved.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_vad_update import load_vad
from classifier import vad
from classifier.audio import load_audio
from classifier.features import HOP, N_FFT, SR, dither, n_frames, stft_frames

Masks = tuple[np.ndarray, np.ndarray]


def batch(mod: ModuleType, y: np.ndarray) -> Masks:
    P, _ = stft_frames(y, first=0, last=n_frames(y.size))
    v, w = mod.speech_and_whisper_from_stft(P.T, sr=SR, hop_length=HOP, power=P.T, n_fft=N_FFT)
    return v, w


def stream(
    mods: list[ModuleType], y: np.ndarray, rng: np.random.Generator
) -> Iterator[list[Masks]]:
    """Each update's masks of every version, from one chunking of ``y``."""
    memos = [m.VadMemo() for m in mods]
    P = np.zeros((0, 0), np.float32)  # frames-major, as StreamingFeatures keeps them
    done, pos, next_update = 0, 0, SR
    while pos < y.size:
        pos = min(y.size, pos + int(rng.integers(160, 801)))
        if pos < next_update and pos < y.size:
            continue
        next_update += SR
        total = n_frames(pos)
        new, _ = stft_frames(y[:pos], first=done, last=total)
        P = new if done == 0 else np.concatenate([P[:done], new])
        final = max(0, min(total, (pos - N_FFT // 2) // HOP + 1))
        out = []
        for mod, memo in zip(mods, memos, strict=True):
            v, w = mod.speech_and_whisper_from_stft(
                P.T, sr=SR, hop_length=HOP, power=P.T, n_fft=N_FFT, memo=memo, final=final
            )
            out.append((v, w))
        done = final
        yield out


def recordings(
    data: Path | None, calls: int, seed: int, out: Path
) -> Iterator[tuple[str, str, np.ndarray]]:
    if data is not None:
        for path in sorted(data.rglob("*.wav")):
            yield (
                "shared/data",
                str(path.relative_to(data)),
                load_audio(path, min_duration_s=0.0).caller,
            )
    if calls:
        from training.simulate import simulate_corpus

        manifest = simulate_corpus(out, preset="balanced", n_calls=calls, seed=seed, progress=False)
        frame = pd.read_csv(manifest, keep_default_na=False)
        for rel in frame["audio_path"]:
            audio = load_audio(manifest.parent / rel, min_duration_s=0.0)
            yield "simulated", str(rel), audio.caller


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--old", required=True, help="the other vad.py, e.g. main's")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--calls", type=int, default=40)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--out", help="folder for the simulated corpus (default: a temporary one)")
    args = ap.parse_args()
    old = load_vad(args.old)
    data = Path(args.data) if Path(args.data).is_dir() else None
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp()) / "corpus"
    rng = np.random.default_rng(0)
    stats: dict[tuple[str, str], list[int]] = {}
    where: dict[tuple[str, str], list[str]] = {}
    seconds: dict[str, float] = {}
    for group, name, y in recordings(data, args.calls, args.seed, out):
        y, _ = dither(y)
        seconds[group] = seconds.get(group, 0.0) + y.size / SR
        runs = [("batch", [[batch(old, y), batch(vad, y)]])]
        runs.append(("stream", list(stream([old, vad], y, rng))))
        for mode, updates in runs:
            s = stats.setdefault((group, mode), [0, 0, 0, 0])
            for (v0, w0), (v1, w1) in updates:
                s[0] += v0.size
                s[1] += int(np.count_nonzero(v0 != v1))
                s[2] += int(np.count_nonzero(w0 != w1))
                s[3] += 1
                if (v0 != v1).any() or (w0 != w1).any():
                    where.setdefault((group, mode), []).append(name)
    print("| recordings | mode | masks | frames | voiced differ | with whisper differ |")
    print("|---|---|---|---|---|---|")
    for (group, mode), (frames, dv, dw, masks) in stats.items():
        print(
            f"| {group} ({seconds[group] / 60:.1f} min) | {mode} | {masks} | {frames} "
            f"| {dv} ({dv / frames:.2e}) | {dw} ({dw / frames:.2e}) |"
        )
    for key, names in where.items():
        print(f"differ in {key}: {sorted(set(names))}")


if __name__ == "__main__":
    main()
