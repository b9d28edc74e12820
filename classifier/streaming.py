"""Acoustic features of a call while it is being heard.

A live call arrives as short frames of audio. :class:`StreamingFeatures` keeps what each
10 ms STFT frame contributes (its telephone-band power and its per-frame spectral
values) and computes it once, when the frame's window is complete. Speech decisions
settle 3 s behind the audio; the call-level statistics (activity, energy percentiles,
spectral means, pitch, laughter) take each settled frame once into running sums,
sorted values and closed segments (:class:`classifier.features.ChannelStats`), and
look at the unsettled last seconds anew at each update. The batch extraction runs the
same code with every frame settled (:func:`classifier.features.summarise`). So the
features after ``t`` seconds are :func:`classifier.features.audio_features` of the
first ``t`` seconds of the recording (to float rounding), those after the last frame
are those of the whole recording, and an update costs the same after 5 s or 5 min.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from classifier.audio import CallAudio
from classifier.callstats import SortedValues
from classifier.errors import InvalidAudioError, InvalidParameterError
from classifier.features import (
    AUDIO_FEATURES,
    FRAME_COLUMNS,
    HOP,
    MIN_SAMPLES,
    MONO_FEATURES,
    N_BAND,
    N_FFT,
    SR,
    StreamMemo,
    audio_features,
    dither,
    frame_values,
    n_frames,
    stft_frames,
    summarise,
)
from classifier.vad import grow_rows

__all__ = ["StreamingFeatures", "warm_up"]

#: Bytes a stream holds per second heard: dithered samples, band power, frame values,
#: and the running statistics' sorted values (four of 12 bytes per frame at most).
BYTES_PER_SECOND = 4 * (SR + (SR // HOP) * (N_BAND + len(FRAME_COLUMNS))) + 48 * (SR // HOP)


class StreamingFeatures:
    """Features of a mono 8 kHz call, updated as its audio arrives.

    Parameters
    ----------
    max_seconds : float, keyword-only
        Longest call kept. Memory grows with the audio heard (about
        :data:`BYTES_PER_SECOND` per second) and stops at this length: later samples
        are counted in :attr:`dropped_s` but no longer change the features.

    Examples
    --------
    >>> live = StreamingFeatures(max_seconds=600)
    >>> live.push(frame)  # float32 samples in [-1, 1], any length
    >>> live.features()["speech_ratio"]  # as audio_features of everything pushed
    """

    def __init__(self, *, max_seconds: float = 600.0) -> None:
        if not np.isfinite(max_seconds) or max_seconds < MIN_SAMPLES / SR:
            raise InvalidParameterError(
                f"max_seconds is {max_seconds}; expected a number >= {MIN_SAMPLES / SR}"
            )
        self.max_samples = int(max_seconds * SR)
        self._y = np.zeros(0, np.float32)
        self._P = np.zeros((0, N_BAND), np.float32)
        self._V = np.zeros((0, len(FRAME_COLUMNS)), np.float32)
        self._n = 0  # samples heard (and kept)
        self._done = 0  # frames whose window lies inside the samples heard
        self._peak = 0.0
        self._dropped = 0
        self._memo = StreamMemo()

    @property
    def heard_s(self) -> float:
        """Seconds of audio kept so far."""
        return self._n / SR

    @property
    def dropped_s(self) -> float:
        """Seconds received past ``max_seconds`` (not in the features)."""
        return self._dropped / SR

    @property
    def nbytes(self) -> int:
        """Memory held by the stream's arrays."""
        return int(self._y.nbytes + self._P.nbytes + self._V.nbytes) + self._memo.nbytes

    def push(self, samples: np.ndarray) -> None:
        """Add the next samples of the call.

        Parameters
        ----------
        samples : numpy.ndarray, shape (n,)
            Float samples at 8 kHz, full scale 1.0 (as :func:`classifier.audio.load_audio`
            gives).
        """
        x = np.asarray(samples)
        if x.ndim != 1 or not np.issubdtype(x.dtype, np.floating):
            raise InvalidParameterError(
                f"samples must be a 1-D float array; got shape {x.shape} dtype {x.dtype}"
            )
        if not np.isfinite(x).all():
            raise InvalidAudioError("samples contain NaN or infinite values")
        room = self.max_samples - self._n
        if x.size > room:
            self._dropped += x.size - max(room, 0)
            x = x[: max(room, 0)]
        if x.size == 0:
            return
        xd, self._peak = dither(x, start=self._n, peak=self._peak)
        self._y = grow_rows(self._y, self._n + x.size, cap=self.max_samples)
        self._y[self._n : self._n + x.size] = xd
        self._n += x.size

    def _store(self, first: int, last: int) -> None:
        P, S = stft_frames(self._y[: self._n], first=first, last=last)
        cap = n_frames(self.max_samples)
        self._P = grow_rows(self._P, last, cap=cap)
        self._V = grow_rows(self._V, last, cap=cap)
        self._P[first:last] = P
        self._V[first:last] = frame_values(P, S)

    def features(self) -> dict[str, float]:
        """:func:`classifier.features.audio_features` of the audio heard so far.

        Returns
        -------
        dict of str to float
            One value per name of :data:`classifier.features.AUDIO_FEATURES`.

        Raises
        ------
        InvalidAudioError
            Less than a quarter of a second heard.
        """
        if self._n < MIN_SAMPLES:
            raise InvalidAudioError(
                f"{self._n} samples heard; expected at least {MIN_SAMPLES} for features"
            )
        # Frames are computed here, a second's worth at a time, not frame by frame in
        # push(): one batched STFT costs far less than fifty small ones. The frames
        # whose window has been heard in full are settled; the last few reach past what
        # has been heard, are computed as if the call ended here, and are computed again
        # at the next update.
        total = n_frames(self._n)
        if total > self._done:
            self._store(self._done, total)
        self._done = max(0, min(total, (self._n - N_FFT // 2) // HOP + 1))
        feats, _ = summarise(
            self._y[: self._n], self._P[:total], self._V[:total], memo=self._memo, final=self._done
        )
        feats.update(MONO_FEATURES)
        return {k: float(feats[k]) for k in AUDIO_FEATURES}


def warm_up() -> None:
    """Run every compiled step of the feature extraction once, in this process.

    The speech detector's and the running statistics' loops are compiled by numba on
    first use: a few seconds, which the first live stream or the first recording would
    otherwise wait for. The statistics' loops are also cached on disk; compiling them
    here, once, before a server or a feature job starts its worker processes, leaves
    those processes a finished cache to load instead of several writing it at once
    (numba's cache is not safe to write from parallel processes: a cache written by two
    at once crashed every later process that loaded it). Processes warming up at the
    same time take turns (:func:`warm_up_lock`): the first compiles, the others load.
    """
    with warm_up_lock():
        _warm_up()


def warm_up_lock_path() -> Path:
    """The lock file :func:`warm_up` holds: one per Python environment (its caches)."""
    digest = hashlib.sha1(sys.prefix.encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"callsift-numba-{digest}.lock"


@contextlib.contextmanager
def warm_up_lock() -> Iterator[None]:
    """Hold :func:`warm_up_lock_path` (an ``flock``; nothing where there is no fcntl)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock to take
        yield
        return
    with open(warm_up_lock_path(), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _warm_up() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(12 * SR) / SR
    # Faint noise, then voiced bursts (a 150 Hz harmonic tone) growing louder: the
    # loudness thresholds of the statistics move both ways, pitch tracking runs.
    voiced = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 8))
    bursts = (t > 3) & ((t % 1.0) > 0.4) & ((t % 1.0) < 0.8)
    y = 0.3 * np.minimum(t / 12, 1) * voiced * bursts + 0.002 * rng.standard_normal(t.size)
    y = y.astype(np.float32)
    audio_features(CallAudio.from_samples(y, sr=SR))
    live = StreamingFeatures(max_seconds=60.0)
    for start in range(0, y.size, SR):
        live.push(y[start : start + SR])
        if live.heard_s >= 1.0:
            live.features()
    # A settled value taken out again: the warm-up's audio never does it, real calls do
    # (a compile of 400 ms in the middle of a live stream, seen by the loop watch).
    values = SortedValues()
    values.add(np.array([3.0, 1.0, 2.0]))
    values.remove(np.array([2.0]))
