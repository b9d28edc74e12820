"""Pitch of a call: the yin f0 of its first seconds of voiced speech, and its statistics."""

from __future__ import annotations

from collections.abc import Callable

import librosa
import numpy as np

from classifier.constants import HOP, SR

_PITCH_MAX_S = 5.0
_YIN_FRAME = 256
_YIN_HOP = 160

MAX_PITCH_FRAMES = int(_PITCH_MAX_S * SR / _YIN_HOP)


def yin_frames(n_samples: int) -> int:
    """Pitch frames of a call: 32 ms windows every 20 ms, only those heard in full."""
    return 0 if n_samples < _YIN_FRAME else 1 + (n_samples - _YIN_FRAME) // _YIN_HOP


def pitch_track(y: np.ndarray, frames: np.ndarray, *, sr: int = SR) -> np.ndarray:
    """yin f0 of pitch frames ``frames`` (frame ``j`` covers ``y[160 j : 160 j + 256]``).

    Returns
    -------
    numpy.ndarray, float, shape (len(frames),)
    """
    if frames.size == 0:
        return np.zeros(0)
    # The selected windows side by side, analysed one window per frame: each frame's
    # estimate depends on its own window only, whichever frames are asked for together.
    windows = np.lib.stride_tricks.sliding_window_view(y, _YIN_FRAME)[::_YIN_HOP][frames]
    f0 = librosa.yin(
        np.ascontiguousarray(windows).ravel(),
        fmin=70.0,
        fmax=500.0,
        sr=sr,
        frame_length=_YIN_FRAME,
        hop_length=_YIN_FRAME,
        center=False,
    )
    return np.asarray(f0[: frames.size], dtype=np.float64)


def pitch_stats(f0: np.ndarray) -> dict[str, float]:
    """Pitch statistics of the voiced frames' yin track: children and laughter sit high."""
    out = {
        "pitch_median_hz": float("nan"),
        "pitch_p90_hz": float("nan"),
        "pitch_std_semitones": float("nan"),
        "pitch_high_share": float("nan"),
        "voiced_share": 0.0,
    }
    if f0.size < 3:
        return out
    # yin always answers; keep frames whose estimate is stable against neighbours.
    stable = np.abs(np.diff(np.log2(f0), prepend=np.log2(f0[:1]))) < 0.1
    stable &= (f0 > 75.0) & (f0 < 480.0)
    good = f0[stable]
    out["voiced_share"] = float(stable.mean())
    if good.size < 3:
        return out
    semis = 12 * np.log2(good)
    out.update(
        pitch_median_hz=float(np.median(good)),
        pitch_p90_hz=float(np.percentile(good, 90)),
        pitch_std_semitones=float(np.std(semis)),
        pitch_high_share=float(np.mean(good > 250.0)),
    )
    return out


class PitchStats:
    """Pitch statistics of one channel, its voiced pitch frames taken as they settle."""

    def __init__(self) -> None:
        self._pitch_frames = np.zeros(0, np.int64)  # voiced, centred in settled frames
        self._pitch_next = 0
        self._pitch_final: dict[str, float] | None = None

    @property
    def nbytes(self) -> int:
        return int(self._pitch_frames.nbytes)

    def update(
        self,
        y: np.ndarray,
        mask: np.ndarray,
        settled: int,
        pitch: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ) -> dict[str, float]:
        """Pitch of the first 5 s of voiced pitch frames (those centred in speech).

        Pitch statistics settle within seconds; taking the *first* seconds of speech
        bounds the cost of long calls and never depends on what comes later.
        """
        if self._pitch_final is not None:
            return self._pitch_final
        j = np.arange(self._pitch_next, yin_frames(y.size))
        centre = (j * _YIN_HOP + _YIN_FRAME // 2) // HOP
        voiced = mask[np.minimum(centre, mask.size - 1)]
        k = int(np.searchsorted(centre, settled))  # frames centred in settled frames
        settled_voiced = j[:k][voiced[:k]]
        frames = np.concatenate([self._pitch_frames, settled_voiced, j[k:][voiced[k:]]])
        stats = pitch_stats(pitch(y, frames[:MAX_PITCH_FRAMES]))
        self._pitch_frames = np.concatenate([self._pitch_frames, settled_voiced])[:MAX_PITCH_FRAMES]
        self._pitch_next += k
        if self._pitch_frames.size >= MAX_PITCH_FRAMES:
            self._pitch_final = stats
        return stats
