"""Feature extraction speed: callsift's shared-STFT extractor against a naive librosa
implementation and against the floor (one scipy.fft STFT of the same audio).

Goal (issue 3): the full audio feature vector of a 60 s, 8 kHz call in at most 25 ms
median on one core (2,400 times real time).

    .venv/bin/python bench/bench_features.py --repeats 15

All three run in the same process on the same audio, interleaved, so machine noise
hits them alike; the ratios are the figures to trust.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import librosa
import scipy.fft

from classifier.audio import CallAudio
from classifier.features import audio_features

SR = 8000
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def test_call(seconds: float = 60.0, seed: int = 0) -> np.ndarray:
    """A 60 s call: real read speech if ../shared/data is there, else harmonic bursts."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    clips = sorted((SHARED / "speech" / "arctic").glob("*.wav")) if SHARED.exists() else []
    pieces: list[np.ndarray] = []
    total = 0
    while total < n:
        if clips:
            y, _ = librosa.load(clips[len(pieces) % len(clips)], sr=SR)
        else:
            t = np.arange(int(2.5 * SR)) / SR
            f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
            y = 0.3 * np.sin(2 * np.pi * np.cumsum(f0) / SR) * (np.sin(2 * np.pi * 4 * t) > 0)
        gap = 0.003 * rng.standard_normal(int(rng.uniform(0.3, 2.0) * SR))
        pieces += [y.astype(np.float32), gap.astype(np.float32)]
        total += y.size + gap.size
    x = np.concatenate(pieces)[:n]
    return (x + 0.002 * rng.standard_normal(n)).astype(np.float32)


def naive(y: np.ndarray) -> dict[str, float]:
    """The straightforward librosa way: each feature its own STFT, pitch with pyin."""
    out: dict[str, float] = {}
    kw = {"n_fft": 256, "hop_length": 80}
    rms = librosa.feature.rms(y=y, frame_length=256, hop_length=80)[0]
    out["rms_mean"] = float(rms.mean())
    out["centroid"] = float(librosa.feature.spectral_centroid(y=y, sr=SR, **kw).mean())
    out["bandwidth"] = float(librosa.feature.spectral_bandwidth(y=y, sr=SR, **kw).mean())
    out["rolloff"] = float(librosa.feature.spectral_rolloff(y=y, sr=SR, **kw).mean())
    out["flatness"] = float(librosa.feature.spectral_flatness(y=y, **kw).mean())
    out["contrast"] = float(
        librosa.feature.spectral_contrast(y=y, sr=SR, n_bands=4, fmin=200.0, **kw).mean()
    )
    out["mfcc"] = float(librosa.feature.mfcc(y=y, sr=SR, n_mfcc=13, n_mels=32, **kw).mean())
    f0, voiced, _ = librosa.pyin(y, fmin=70, fmax=500, sr=SR, frame_length=512, hop_length=160)
    out["pitch"] = float(np.nanmedian(f0)) if np.any(voiced) else float("nan")
    intervals = librosa.effects.split(y, top_db=30, frame_length=256, hop_length=80)
    out["speech_segments"] = float(len(intervals))
    return out


def floor(y: np.ndarray) -> np.ndarray:
    """One STFT with scipy.fft: no feature can cost less than its spectrogram."""
    pad = np.pad(y, (128, 128))
    frames = np.lib.stride_tricks.sliding_window_view(pad, 256)[::80]
    return np.abs(scipy.fft.rfft(frames * np.hanning(257)[:-1].astype(np.float32), axis=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--naive-repeats", type=int, default=3)
    args = ap.parse_args()
    y = test_call()
    audio = CallAudio.from_samples(y, sr=SR, subtype="PCM_16")
    audio_features(audio)  # warm caches (mel basis, DCT)
    ours: list[float] = []
    base: list[float] = []
    slow: list[float] = []
    for i in range(args.repeats):
        t = time.perf_counter()
        floor(y)
        base.append(time.perf_counter() - t)
        t = time.perf_counter()
        audio_features(audio)
        ours.append(time.perf_counter() - t)
        if i < args.naive_repeats:
            t = time.perf_counter()
            naive(y)
            slow.append(time.perf_counter() - t)
    m_ours, m_floor, m_naive = (1000 * float(np.median(v)) for v in (ours, base, slow))
    kind = "real speech" if SHARED.exists() else "synthetic"
    print(f"audio: {y.size / SR:.0f} s at {SR} Hz ({kind})")
    print(f"floor (one scipy.fft STFT):  {m_floor:8.2f} ms")
    print(f"callsift audio_features:     {m_ours:8.2f} ms  (goal <= 25 ms)")
    print(f"naive librosa (pyin):        {m_naive:8.2f} ms")
    print(f"callsift / floor: {m_ours / m_floor:.1f}x;  naive / callsift: {m_naive / m_ours:.0f}x")
    print(f"real-time factor: {y.size / SR * 1000 / m_ours:.0f}x")


if __name__ == "__main__":
    main()
