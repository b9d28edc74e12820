"""Acoustic features of a call from one shared STFT.

Every feature here is computed from the same short-time Fourier transform (32 ms
windows, 10 ms hop at 8 kHz), so the full vector of a 60 s call costs a few
milliseconds. Features are designed to be gain invariant (levels are relative to the
call's own noise floor or peak) because centres record at very different levels.

Training (``callsift features``) and serving (the API) both call :func:`audio_features`;
there is no second implementation.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime, tzinfo
from functools import lru_cache
from typing import Any

import librosa
import numpy as np
from scipy import fft as sp_fft

from classifier.audio import CallAudio
from classifier.callstats import Moments, SortedValues, SpeechRuns
from classifier.errors import InvalidAudioError, InvalidParameterError
from classifier.history import HISTORY_FEATURES, METADATA_FEATURES, metadata_features
from classifier.threads import one_blas_thread
from classifier.vad import (
    VadMemo,
    grow_rows,
    speech_activity_from_stft,
    speech_and_whisper_from_stft,
    stft_magnitude,
)
from classifier.voices import (
    VOICE_FEATURES,
    attribute_voices,
    frame_pitch,
    segments,
    speech_pitch_frames,
)

SR = 8000
N_FFT = 256
HOP = 80
N_MFCC = 13
_EPS = 1e-10
_CONTRAST_BANDS = 4
_PITCH_MAX_S = 5.0
#: Shortest audio with features: a quarter of a second.
MIN_SAMPLES = SR // 4
_TOP_HZ = 3500.0
# Below 300 Hz a telephone line carries only hum, codec and recorder artefacts: their
# level moves with the recording gain and the equipment, not with the caller.
_LOW_HZ = 300.0

_SCALARS: tuple[str, ...] = (
    "audio_duration_s",
    "speech_ratio",
    "whisper_ratio",
    "speech_segments",
    "speech_segment_mean_s",
    "speech_segment_max_s",
    "speech_per_minute",
    "longest_silence_s",
    "longest_silence_ratio",
    "first_speech_s",
    "last_speech_gap_s",
    "energy_db_std",
    "energy_db_p10_rel",
    "energy_db_p50_rel",
    "dynamic_range_db",
    "noise_floor_rel_db",
    "snr_db",
    "centroid_mean",
    "centroid_std",
    "centroid_speech_mean",
    "bandwidth_mean",
    "bandwidth_std",
    "rolloff_mean",
    "rolloff_std",
    "flatness_mean",
    "flatness_std",
    "flatness_speech_mean",
    *(f"contrast_{i}_mean" for i in range(_CONTRAST_BANDS + 1)),
    *(f"contrast_{i}_std" for i in range(_CONTRAST_BANDS + 1)),
    "mfcc_0_std",
    *(f"mfcc_{i}_mean" for i in range(1, N_MFCC)),
    *(f"mfcc_{i}_std" for i in range(1, N_MFCC)),
    "pitch_median_hz",
    "pitch_p90_hz",
    "pitch_std_semitones",
    "pitch_high_share",
    "voiced_share",
    "laughter_mod_ratio",
    "laughter_regularity",
    "laughter_burst_share",
    "muffled_db",
    "muffled_active_db",
    "clipping_ratio",
    "stereo",
    "caller_speech_ratio",
    "taker_speech_ratio",
    "overlap_ratio",
    "caller_taker_ratio",
    "caller_response_s",
    # Mono: the caller's own speech, the opening's voice taken as the call-taker's
    # (classifier.voices); stereo: read off the two channels.
    *VOICE_FEATURES,
)
AUDIO_FEATURES: tuple[str, ...] = _SCALARS
#: 1 when the audio is the whole call, 0 when it is the call's first seconds so far.
COMPLETE_FEATURE = "call_complete"


@lru_cache(maxsize=4)
def _mel_basis(sr: int, n_fft: int) -> np.ndarray:
    basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=32, fmin=_LOW_HZ, fmax=_TOP_HZ)
    return basis[:, _freqs(sr, n_fft) <= _TOP_HZ].astype(np.float32)


@lru_cache(maxsize=4)
def _weights(sr: int) -> dict[str, Any]:
    """Constant weight matrices that turn per-frame spectral sums into matrix products."""
    freqs = _freqs(sr, N_FFT)
    nb = int(np.count_nonzero(freqs <= _TOP_HZ))
    f = freqs[:nb]
    mag = np.stack([np.ones(nb), f, f**2], axis=1).astype(np.float32)
    in_band = f >= _LOW_HZ
    pw = np.stack([np.ones(nb), f >= 2000.0, in_band & (f < 2000.0), in_band], axis=1).astype(
        np.float32
    )
    bands = []
    for lo_hz, hi_hz in _contrast_bands(sr):
        idx = np.flatnonzero((f >= lo_hz) & (f < hi_hz))
        bands.append((int(idx[0]), int(idx[-1]) + 1) if idx.size else (0, 0))
    logmean = np.zeros((nb, 1 + len(bands)), dtype=np.float32)
    logmean[in_band, 0] = 1.0 / int(in_band.sum())
    for i, (a, b) in enumerate(bands):
        if b > a:
            logmean[a:b, 1 + i] = 1.0 / (b - a)
    if any(b[1] != nxt[0] for b, nxt in itertools.pairwise(bands)):
        raise AssertionError(f"contrast bands must be adjacent; got {bands}")
    starts = np.array([a - bands[0][0] for a, _ in bands], dtype=np.intp)
    return {"mag": mag, "pow": pw, "logmean": logmean, "bands": bands, "band_starts": starts}


@lru_cache(maxsize=4)
def _mel_widths(sr: int) -> np.ndarray:
    edges = librosa.mel_frequencies(n_mels=34, fmin=_LOW_HZ, fmax=_TOP_HZ)
    return ((edges[2:] - edges[:-2]) / 2).astype(np.float32)


@lru_cache(maxsize=4)
def _mel_centres(sr: int) -> np.ndarray:
    return librosa.mel_frequencies(n_mels=34, fmin=_LOW_HZ, fmax=_TOP_HZ)[1:-1].astype(np.float32)


@lru_cache(maxsize=4)
def _freqs(sr: int, n_fft: int) -> np.ndarray:
    return librosa.fft_frequencies(sr=sr, n_fft=n_fft)


_YIN_FRAME = 256
_YIN_HOP = 160


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


def _pitch(f0: np.ndarray) -> dict[str, float]:
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


#: Per-frame values every call-level statistic is taken from, column by column.
FRAME_COLUMNS: tuple[str, ...] = (
    "band_power",
    "centroid",
    "bandwidth",
    "rolloff",
    "flatness",
    "ratio_db",
    *(f"contrast_{i}" for i in range(_CONTRAST_BANDS + 1)),
    *(f"mfcc_{i}" for i in range(N_MFCC)),
)
_COL = {name: i for i, name in enumerate(FRAME_COLUMNS)}
_MFCC = [_COL[f"mfcc_{i}"] for i in range(N_MFCC)]


def frame_values(P: np.ndarray, S: np.ndarray, *, sr: int = SR) -> np.ndarray:
    """Per-frame spectral values of telephone-band STFT frames.

    Each row depends on its own frame only, so a live stream computes every frame once
    and a batch call computes them all at once: both give the same rows.

    Parameters
    ----------
    P, S : numpy.ndarray, shape (n_frames, n_band_bins)
        Power and magnitude of the STFT frames, frames-major, bins up to 3.5 kHz.
    sr : int, keyword-only

    Returns
    -------
    numpy.ndarray, float32, shape (n_frames, len(FRAME_COLUMNS))
        Same definitions as librosa's spectral_* functions on magnitude ``S`` (centroid,
        bandwidth) and power flatness; the 85% rolloff is taken over the mel bands;
        contrast is the octave band's peak against its mean level (dB).
    """
    with one_blas_thread():  # the same bits whatever the process's BLAS threads
        return _frame_values(P, S, sr=sr)


# Rows per matrix product in frame_values. OpenBLAS computes a block's last rows (those
# past a multiple of its kernel's unroll, 16 on Haswell/Zen) with another kernel whose
# rounding differs: a frame's values then depended on how many frames were computed
# with it (measured on an AMD EPYC: 4 of 100 rows differed in the last bits from the
# whole call's). Products of a fixed number of rows, the last padded, give each row the
# same bits wherever it falls; 64 is a multiple of every unroll in OpenBLAS's kernels.
_ROW_BLOCK = 64


def _rows_times(A: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``A @ W`` in products of ``_ROW_BLOCK`` rows, shape (A.shape[0], W.shape[1])."""
    n = A.shape[0]
    out = np.empty((n, W.shape[1]), dtype=np.result_type(A, W))
    full = n - n % _ROW_BLOCK
    for i in range(0, full, _ROW_BLOCK):
        np.matmul(A[i : i + _ROW_BLOCK], W, out=out[i : i + _ROW_BLOCK])
    if full < n:
        pad = np.zeros((_ROW_BLOCK, A.shape[1]), dtype=A.dtype)
        pad[: n - full] = A[full:]
        out[full:] = (pad @ W)[: n - full]
    return out


def _frame_values(P: np.ndarray, S: np.ndarray, *, sr: int) -> np.ndarray:
    all_freqs = _freqs(sr, N_FFT)
    nb = int(np.count_nonzero(all_freqs <= _TOP_HZ))
    W = _weights(sr)
    out = np.empty((P.shape[0], len(FRAME_COLUMNS)), dtype=np.float32)
    # Per-frame sums as matrix products (BLAS) rather than a dozen strided reductions.
    sm = _rows_times(S, W["mag"])  # (frames, 3): sum S, sum f*S, sum f^2*S
    sp = _rows_times(P, W["pow"])  # (frames, 4): sum P; above 2 kHz; 300 Hz-2 kHz; 300 Hz and up
    out[:, _COL["band_power"]] = sp[:, 0]
    mag_sum = sm[:, 0] + _EPS
    centroid = sm[:, 1] / mag_sum
    out[:, _COL["centroid"]] = centroid
    out[:, _COL["bandwidth"]] = np.sqrt(np.maximum(sm[:, 2] / mag_sum - centroid**2, 0.0))
    mel = _rows_times(P, _mel_basis(sr, N_FFT).T)  # (frames, 32)
    # 85% rolloff on the mel bands' power: 4x fewer bins to accumulate than the STFT's.
    cum = np.cumsum(mel * _mel_widths(sr), axis=1)  # undo Slaney's area normalisation
    out[:, _COL["rolloff"]] = _mel_centres(sr)[np.argmax(cum >= 0.85 * cum[:, -1:], axis=1)]
    logp = np.log(P + np.float32(1e-10))
    lm = _rows_times(logp, W["logmean"])  # (frames, 1 + bands): mean log power in band and per band
    n_band = int(np.count_nonzero(all_freqs[:nb] >= _LOW_HZ))
    out[:, _COL["flatness"]] = np.exp(lm[:, 0]) / (sp[:, 3] / n_band + 1e-10)
    out[:, _COL["ratio_db"]] = 10 * np.log10((sp[:, 1] + _EPS) / (sp[:, 2] + _EPS))
    to_db = np.float32(10 / np.log(10))
    # Peak against the band's mean level: harmonics stand out, noise is flat. The bands
    # are adjacent: one reduceat gives every band's peak.
    bands = W["bands"]
    peaks = np.maximum.reduceat(logp[:, bands[0][0] : bands[-1][1]], W["band_starts"], axis=1)
    for i, (a, b_) in enumerate(bands):
        col = _COL[f"contrast_{i}"]
        out[:, col] = (peaks[:, i] - lm[:, 1 + i]) * to_db if b_ - a >= 2 else 0.0
    mel_db = 10 * np.log10(mel + np.float32(1e-10))
    out[:, _COL["mfcc_0"] : _COL["mfcc_0"] + N_MFCC] = _rows_times(mel_db, _dct_matrix().T)
    return out


@lru_cache(maxsize=1)
def _dct_matrix() -> np.ndarray:
    """Orthonormal DCT-II rows 0..N_MFCC-1 over the 32 mel bands (as librosa's mfcc)."""
    import scipy.fft

    return scipy.fft.dct(np.eye(32), type=2, norm="ortho", axis=0)[:N_MFCC].astype(np.float32)


def _contrast_bands(sr: int) -> list[tuple[float, float]]:
    # Octave-ish bands inside the telephone band only.
    edges = [_LOW_HZ, 500.0, 900.0, 1600.0, 2600.0, _TOP_HZ + 1]
    return list(itertools.pairwise(edges))


_DITHER_REL = np.float32(10 ** (-80 / 20))
_DITHER_SILENT = np.float32(10 ** (-90 / 20))


def _check(y: np.ndarray, name: str) -> None:
    if not isinstance(y, np.ndarray) or y.ndim != 1:
        shape = getattr(y, "shape", None)
        raise InvalidParameterError(f"{name} must be a 1-D numpy array; got shape {shape}")
    if y.size < MIN_SAMPLES:
        raise InvalidAudioError(f"{name} has {y.size} samples; expected at least {MIN_SAMPLES}")
    if not np.isfinite(y).all():
        raise InvalidAudioError(f"{name} contains NaN or infinite samples")


def dither(y: np.ndarray, *, start: int = 0, peak: float = 0.0) -> tuple[np.ndarray, float]:
    """Add the fixed dither that gives digital silence a noise floor to measure against.

    Digital silence (exact zeros, from VoIP without comfort noise) has no noise floor. A
    fixed noise 80 dB below the running peak of the call so far (-90 dBFS while the call
    has been all zeros) makes it read as the faint line it stands for. Scaling with the
    peak keeps features independent of the recording gain; using the peak *so far*
    keeps every sample's dither the same whether the call is heard live or at once.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
        Float samples.
    start : int, keyword-only
        Index of ``y[0]`` in the call (a live stream's earlier samples).
    peak : float, keyword-only
        Largest absolute sample before ``y[0]``.

    Returns
    -------
    dithered : numpy.ndarray, float32, shape (n,)
    peak : float
        Largest absolute sample up to the end of ``y``.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.size == 0:
        return y, peak
    running = np.maximum.accumulate(np.abs(y))
    np.maximum(running, np.float32(peak), out=running)
    level = np.where(running > 0, running * _DITHER_REL, _DITHER_SILENT)
    d = _dither()
    offset = start % SR
    noise = np.resize(np.concatenate([d[offset:], d[:offset]]), y.size)
    return (y + level * noise).astype(np.float32), float(running[-1])


@lru_cache(maxsize=1)
def _dither() -> np.ndarray:
    return np.random.default_rng(0).standard_normal(SR).astype(np.float32)


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    return np.hanning(N_FFT + 1)[:-1].astype(np.float32)


#: STFT bins up to 3.5 kHz, the telephone band every feature is computed from.
N_BAND = int(np.count_nonzero(np.arange(N_FFT // 2 + 1) * (SR / N_FFT) <= _TOP_HZ))


def n_frames(n_samples: int) -> int:
    """STFT frames of a call of ``n_samples`` (frame ``t`` centred on sample ``t * 80``)."""
    return 1 + n_samples // HOP


def stft_frames(y: np.ndarray, *, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
    """Telephone-band STFT frames ``first`` to ``last - 1`` of the audio heard so far.

    Frames are those of :func:`classifier.vad.stft_magnitude` (periodic Hann, 32 ms,
    10 ms hop, zero padding beyond both ends), frames-major and cut at 3.5 kHz. A frame
    whose window reaches past the end of ``y`` is computed as if the call ended there,
    exactly as a batch extraction of ``y`` would.

    Parameters
    ----------
    y : numpy.ndarray, float32, shape (n,)
        Dithered samples from the start of the call.
    first, last : int, keyword-only
        Frame range, ``0 <= first <= last <= n_frames(n)``.

    Returns
    -------
    P, S : numpy.ndarray, float32, shape (last - first, n_band_bins)
        Power and magnitude.
    """
    pad = N_FFT // 2
    lo, hi = first * HOP - pad, (last - 1) * HOP + pad
    seg = y[max(lo, 0) : max(min(hi, y.size), 0)]
    if lo < 0 or hi > y.size:
        padded = np.zeros(hi - lo, np.float32)
        at = max(-lo, 0)
        padded[at : at + seg.size] = seg
        seg = padded
    else:
        seg = np.ascontiguousarray(seg, dtype=np.float32)
    # Overlapping windows as a strided view: no copy (sliding_window_view's checks cost
    # more than the view for a second of frames).
    stride = seg.strides[0]
    frames = np.lib.stride_tricks.as_strided(
        seg, shape=(last - first, N_FFT), strides=(HOP * stride, stride), writeable=False
    )
    # scipy.fft keeps float32 (complex64), about twice as fast as numpy.fft here.
    S = np.abs(sp_fft.rfft(frames * _window(), axis=1)[:, :N_BAND])
    return np.square(S), S


#: Percentiles of the frames' energy the statistics use.
_ENERGY_PCTS = np.array([5.0, 10.0, 20.0, 50.0, 95.0])
#: Energy-envelope blocks of the laughter statistics: 2 s of frames.
_LAUGH_BLOCK = int(2.0 * SR / HOP)
_MAX_PITCH_FRAMES = int(_PITCH_MAX_S * SR / _YIN_HOP)


def _db(band_power: np.ndarray) -> np.ndarray:
    """Frame energy in dB (float64), the same for a frame whenever it is computed."""
    return 10 * np.log10(band_power.astype(np.float64) + _EPS)


@lru_cache(maxsize=1)
def _laughter_weights() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Window and modulation bands (3-6 Hz, 0.5-12 Hz) of a laughter block."""
    f = np.fft.rfftfreq(_LAUGH_BLOCK, HOP / SR)
    return np.hanning(_LAUGH_BLOCK), (f >= 3.0) & (f <= 6.0), (f >= 0.5) & (f <= 12.0)


def _laughter_blocks(e: np.ndarray) -> np.ndarray:
    """Rhythm of whole 2 s blocks of the energy envelope: laughter bursts at 3-6 Hz.

    Parameters
    ----------
    e : numpy.ndarray, float64, shape (n_blocks, _LAUGH_BLOCK)
        Frame energies in dB.

    Returns
    -------
    numpy.ndarray, float64, shape (n_blocks, 2)
        Per block: the 3-6 Hz share of the 0.5-12 Hz modulation power, and the 3-6 Hz
        band's peak against its mean.
    """
    window, band, wide = _laughter_weights()
    x = e - e.mean(axis=1, keepdims=True)  # each block's own level: gain drops out
    spec = np.square(np.abs(np.fft.rfft(x * window, axis=1)))
    in_band = spec[:, band]
    ratio = in_band.sum(axis=1) / (spec[:, wide].sum(axis=1) + _EPS)
    peak = in_band.max(axis=1) / (in_band.mean(axis=1) + _EPS)
    return np.stack([ratio, peak], axis=1)


class ChannelStats:
    """Call-level statistics of one channel, kept up to date as frames settle.

    Every frame's values and speech decision are taken once, when they can no longer
    change; the frames after that (the last seconds of a live call) are looked at in
    each :meth:`update` without being kept. A whole recording is one update in which
    every frame is settled. See :mod:`classifier.callstats`.
    """

    def __init__(self) -> None:
        # A frame's values are final about 0.1 s after it is heard, its speech decision
        # 3 s after: statistics of the values alone take frames sooner.
        self.nv = 0  # frames whose values are taken
        self.n = 0  # frames whose values and speech decisions are taken
        self._energy = SortedValues()  # dB, frame index
        self._energy_m = Moments(1)
        self._speech_db = SortedValues()
        self._other_db = SortedValues()
        self._ratio = SortedValues()
        self._loud = Moments(len(FRAME_COLUMNS))  # frames louder than _loud_at
        self._loud_at: float | None = None
        self._active = SortedValues()  # ratio_db of the frames louder than _active_at
        self._active_at: float | None = None
        self._speech_shape = Moments(2)  # centroid, flatness of speech frames
        self._speech = 0
        self._whisper_only = 0
        self._runs = SpeechRuns(hop_s=HOP / SR)
        self._laugh = np.zeros(4)  # sums over settled blocks
        self._laugh_blocks = 0
        self._laugh_rp = np.zeros((0, 2))  # rhythm of blocks whose energies are final
        self._pitch_frames = np.zeros(0, np.int64)  # voiced, centred in settled frames
        self._pitch_next = 0
        self._pitch_final: dict[str, float] | None = None
        self._samples = 0
        self._peak = 0.0
        self._clipped = 0

    @property
    def nbytes(self) -> int:
        sorted_ = (self._energy, self._speech_db, self._other_db, self._ratio, self._active)
        return sum(v.nbytes for v in sorted_) + int(self._pitch_frames.nbytes)

    def _take_values(self, V: np.ndarray, end: int) -> None:
        """Keep what the values of frames ``self.nv`` to ``end`` contribute (final)."""
        v = V[self.nv : end]
        e = _db(v[:, _COL["band_power"]])
        self._energy.add(e, np.arange(self.nv, end, dtype=np.int32))
        self._energy_m.add(e[:, None])
        self._ratio.add(v[:, _COL["ratio_db"]])
        if self._loud_at is not None:
            self._loud.add(v[e > self._loud_at])
        if self._active_at is not None:
            self._active.add(v[e > self._active_at, _COL["ratio_db"]])
        self.nv = end

    def _take_decisions(
        self, V: np.ndarray, mask: np.ndarray, with_whisper: np.ndarray, end: int
    ) -> None:
        """Keep what frames ``self.n`` to ``end`` contribute with their speech decisions."""
        new = slice(self.n, end)
        v = V[new]
        e = _db(v[:, _COL["band_power"]])
        speech = mask[new]
        self._speech_db.add(e[speech])
        self._other_db.add(e[~speech])
        self._speech_shape.add(v[speech][:, [_COL["centroid"], _COL["flatness"]]])
        self._speech += int(np.count_nonzero(speech))
        self._whisper_only += int(np.count_nonzero(with_whisper[new] & ~speech))
        self.n = end

    def _crossing(self, old: float | None, new: float) -> tuple[np.ndarray, float]:
        """Settled frames whose energy lies between thresholds ``old`` and ``new``.

        Returns the frames and +1 when they join the frames above the threshold as it
        moves from ``old`` to ``new``, -1 when they leave them. With ``old`` None, every
        frame above ``new`` joins.
        """
        at = self._energy.above
        frames = self._energy.payload
        if old is None:
            return frames[at(new) :], 1.0
        if new > old:
            return frames[at(old) : at(new)], -1.0
        return frames[at(new) : at(old)], 1.0

    def _laughter(
        self, V: np.ndarray, mask: np.ndarray, settled: int, final: int
    ) -> dict[str, float]:
        """Laughter statistics over whole 2 s blocks (rhythmic voiced bursts)."""
        out = {"laughter_mod_ratio": 0.0, "laughter_regularity": 0.0, "laughter_burst_share": 0.0}
        w = _LAUGH_BLOCK
        n_blocks = mask.size // w
        if n_blocks == 0:
            return out
        # A block's rhythm is computed once its energies are final; whether it is
        # active waits for its speech decisions to settle.
        known = self._laugh_rp.shape[0]
        ready = min(final // w, n_blocks)
        if ready > known:
            e = _db(V[known * w : ready * w, _COL["band_power"]]).reshape(-1, w)
            self._laugh_rp = np.concatenate([self._laugh_rp, _laughter_blocks(e)])
        first = self._laugh_blocks
        active = mask[first * w : n_blocks * w].reshape(-1, w).mean(axis=1) > 0.3
        rp = self._laugh_rp
        if n_blocks > rp.shape[0]:
            # The last block's energies may still change: its rhythm is computed for
            # this update only, and only when it counts (an active block).
            fresh = np.zeros((n_blocks - rp.shape[0], 2))
            if active[rp.shape[0] - first :].any():
                e = _db(V[rp.shape[0] * w : n_blocks * w, _COL["band_power"]]).reshape(-1, w)
                fresh = _laughter_blocks(e)
            rp = np.concatenate([rp, fresh])
        ratio, peak = rp[first:n_blocks, 0], rp[first:n_blocks, 1]
        burst = (ratio > 0.55) & (peak > 2.5) & active
        parts = np.stack([np.where(active, ratio, 0.0), np.where(active, peak, 0.0), active, burst])
        sums = self._laugh + parts.sum(axis=1)
        done = max(0, min(settled // w, n_blocks) - first)  # blocks whose frames all settled
        if done:
            self._laugh = self._laugh + parts[:, :done].sum(axis=1)
            self._laugh_blocks += done
        if sums[2]:
            out["laughter_mod_ratio"] = float(sums[0] / sums[2])
            out["laughter_regularity"] = float(sums[1] / sums[2])
            out["laughter_burst_share"] = float(sums[3] / n_blocks)
        return out

    def _pitch_stats(
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
        stats = _pitch(pitch(y, frames[:_MAX_PITCH_FRAMES]))
        self._pitch_frames = np.concatenate([self._pitch_frames, settled_voiced])[
            :_MAX_PITCH_FRAMES
        ]
        self._pitch_next += k
        if self._pitch_frames.size >= _MAX_PITCH_FRAMES:
            self._pitch_final = stats
        return stats

    def _clipping(self, y: np.ndarray) -> float:
        new = y[self._samples :]
        if new.size:
            peak = max(self._peak, float(np.abs(new).max()))
            if peak >= 0.9:
                # A higher peak moves the clipping level: count every sample again
                # (rare: the loudest sample of a call comes early or not at all).
                seen = y if peak > self._peak else new
                counted = int(np.count_nonzero(np.abs(seen) >= 0.98 * peak))
                self._clipped = counted if peak > self._peak else self._clipped + counted
            self._peak, self._samples = peak, y.size
        return self._clipped / y.size if self._peak >= 0.9 else 0.0

    def update(
        self,
        y: np.ndarray,
        V: np.ndarray,
        mask: np.ndarray,
        with_whisper: np.ndarray,
        *,
        settled: int,
        final: int,
        pitch: Callable[[np.ndarray, np.ndarray], np.ndarray],
        sr: int = SR,
    ) -> dict[str, float]:
        """Call-level features of everything heard.

        Parameters
        ----------
        y : numpy.ndarray, float32, shape (n,)
            Dithered samples heard.
        V : numpy.ndarray, float32, shape (n_frames(n), len(FRAME_COLUMNS))
            :func:`frame_values` of every frame.
        mask, with_whisper : numpy.ndarray, bool, shape (n_frames(n),)
            Voiced speech, and voiced speech or whisper, of every frame.
        settled : int, keyword-only
            Leading frames whose values and decisions are final; they are kept.
        final : int, keyword-only
            Leading frames whose values (``V``) are final, at least ``settled``.
        pitch : callable, keyword-only
            ``pitch(y, frames)``: f0 of pitch frames (:meth:`StreamMemo.pitch`).

        Returns
        -------
        dict of str to float
            The acoustic features of one channel (mono: no stereo features).
        """
        n = mask.size
        if final > self.nv:
            self._take_values(V, final)
        if settled > self.n:
            self._take_decisions(V, mask, with_whisper, settled)
        # The frames not taken yet: v_t, e_t after the values; d_* after the decisions.
        v_t = V[self.nv : n]
        e_t = _db(v_t[:, _COL["band_power"]])
        tail = slice(self.n, n)
        d_v = V[tail]
        d_e = _db(d_v[:, _COL["band_power"]])
        speech_t = mask[tail]
        p5, p10, p20, p50, p95 = self._energy.quantiles(_ENERGY_PCTS, e_t).tolist()
        feats: dict[str, float] = {"audio_duration_s": y.size / sr}

        speech = self._speech + int(np.count_nonzero(speech_t))
        whisper = self._whisper_only + int(np.count_nonzero(with_whisper[tail] & ~speech_t))
        feats["speech_ratio"] = speech / n
        feats["whisper_ratio"] = whisper / n
        dur = n * HOP / sr
        runs = self._runs.update(mask, settled)
        count = runs["count"]
        silence = runs["longest_silence"] * HOP / sr
        feats.update(
            speech_segments=count,
            speech_segment_mean_s=runs["sum_s"] / count if count else 0.0,
            speech_segment_max_s=runs["max_s"] if count else 0.0,
            speech_per_minute=count / max(dur, 1e-3) * 60.0,
            longest_silence_s=silence,
            longest_silence_ratio=silence / max(dur, 1e-3),
            first_speech_s=runs["first_s"] if count else dur,
            last_speech_gap_s=max(0.0, dur - runs["last_end_s"]) if count else dur,
        )

        # Levels relative to the call's own loud frames and floor: gain invariant.
        speech_med = self._speech_db.quantiles(_MEDIAN, d_e[speech_t])[0]
        other_med = self._other_db.quantiles(_MEDIAN, d_e[~speech_t])[0]
        has_both = 0 < speech < n
        feats.update(
            energy_db_std=float(self._energy_m.stats(e_t[:, None])[2][0]),
            energy_db_p10_rel=p10 - p95,
            energy_db_p50_rel=p50 - p95,
            dynamic_range_db=p95 - p5,
            noise_floor_rel_db=p10 - p95,
            snr_db=float(speech_med - other_med) if has_both else 0.0,
        )

        # Spectral shape over the frames louder than the quietest fifth (dead air
        # would dominate otherwise) and over the speech frames.
        frames, sign = self._crossing(self._loud_at, p20)
        self._loud.add(V[frames], sign=sign)
        self._loud_at = p20
        n_loud, mean, std = self._loud.stats(v_t[e_t > p20])
        shape = d_v[speech_t][:, [_COL["centroid"], _COL["flatness"]]]
        speech_mean = self._speech_shape.stats(shape)[1]
        nyq, nan = sr / 2, float("nan")
        for name in ("centroid", "bandwidth", "rolloff"):
            feats[f"{name}_mean"] = float(mean[_COL[name]]) / nyq
            feats[f"{name}_std"] = float(std[_COL[name]]) / nyq
        feats["centroid_speech_mean"] = float(speech_mean[0]) / nyq
        feats["flatness_mean"] = float(mean[_COL["flatness"]])
        feats["flatness_std"] = float(std[_COL["flatness"]])
        feats["flatness_speech_mean"] = float(speech_mean[1])
        for i, (a, b_) in enumerate(_weights(sr)["bands"]):
            narrow = b_ - a < 2 or not n_loud
            feats[f"contrast_{i}_mean"] = nan if narrow else float(mean[_COL[f"contrast_{i}"]])
            feats[f"contrast_{i}_std"] = nan if narrow else float(std[_COL[f"contrast_{i}"]])
        m0 = _COL["mfcc_0"]
        feats["mfcc_0_std"] = float(std[m0])
        for i in range(1, N_MFCC):
            feats[f"mfcc_{i}_mean"] = float(mean[m0 + i])
            feats[f"mfcc_{i}_std"] = float(std[m0 + i])
        # Muffledness: a phone in a pocket passes little above 2 kHz.
        ratio_t = v_t[:, _COL["ratio_db"]]
        feats["muffled_db"] = float(self._ratio.quantiles(_MEDIAN, ratio_t)[0])
        above = p10 + 6.0
        frames, sign = self._crossing(self._active_at, above)
        if sign > 0:
            self._active.add(V[frames, _COL["ratio_db"]])
        else:
            self._active.remove(V[frames, _COL["ratio_db"]])
        self._active_at = above
        active_t = ratio_t[e_t > above]
        feats["muffled_active_db"] = (
            float(self._active.quantiles(_MEDIAN, active_t)[0])
            if len(self._active) + active_t.size
            else 0.0
        )

        feats.update(self._pitch_stats(y, mask, settled, pitch))
        feats.update(self._laughter(V, mask, settled, final))
        feats["clipping_ratio"] = self._clipping(y)
        return feats


_MEDIAN = np.array([50.0])


def summarise(
    y: np.ndarray,
    P: np.ndarray,
    V: np.ndarray,
    *,
    sr: int = SR,
    memo: StreamMemo | None = None,
    final: int | None = None,
) -> tuple[dict[str, float], np.ndarray]:
    """Call-level features of one channel from its frames.

    Parameters
    ----------
    y : numpy.ndarray, float32, shape (n,)
        Dithered samples (see :func:`dither`).
    P : numpy.ndarray, float32, shape (n_frames(n), n_band_bins)
        Telephone-band power of every frame (:func:`stft_frames`).
    V : numpy.ndarray, float32, shape (n_frames(n), len(FRAME_COLUMNS))
        :func:`frame_values` of the same frames.
    memo : StreamMemo or None, keyword-only
        A live stream's settled per-frame results and running statistics from its
        earlier updates; None computes everything.
    final : int or None, keyword-only
        With ``memo``: how many leading STFT frames are settled (None: all).

    Returns
    -------
    features : dict of str to float
    speech_mask : numpy.ndarray of bool, shape (n_frames(n),)
    """
    # Voiced speech drives the activity features; whisper-like stretches are kept apart
    # because muffled rustle and wind look like whisper too (the model weighs both).
    memo = memo if memo is not None else StreamMemo()
    mask, with_whisper = speech_and_whisper_from_stft(
        P.T, sr=sr, hop_length=HOP, power=P.T, n_fft=N_FFT, memo=memo.vad, final=final
    )
    feats = memo.stats.update(
        y,
        V,
        mask,
        with_whisper,
        settled=memo.vad.settled,
        final=mask.size if final is None else final,
        pitch=memo.pitch,
        sr=sr,
    )
    feats.update(attribute_voices(mask, V[:, _MFCC], V[:, _COL["band_power"]]))
    return feats, mask


class StreamMemo:
    """Settled per-frame results of a live stream, reused by its next update."""

    def __init__(self) -> None:
        self.vad = VadMemo()
        self.stats = ChannelStats()
        self._f0 = np.zeros(0)

    def pitch(self, y: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """:func:`pitch_track` of ``frames``, computing only frames not seen before."""
        if frames.size == 0:
            return np.zeros(0)
        self._f0 = grow_rows(self._f0, int(frames[-1]) + 1, fill=np.nan)  # NaN: not yet
        todo = frames[np.isnan(self._f0[frames])]
        if todo.size:
            # Pitch frames are only ever whole windows already heard: final at once.
            self._f0[todo] = pitch_track(y, todo)
        return self._f0[frames]

    @property
    def nbytes(self) -> int:
        return int(self._f0.nbytes) + self.vad.nbytes + self.stats.nbytes


def channel_features(y: np.ndarray, *, sr: int = SR) -> tuple[dict[str, float], np.ndarray]:
    """Features of one channel (the caller's side or the mix).

    The same steps as a live stream (:class:`classifier.streaming.StreamingFeatures`)
    takes frame by frame, run once over the whole call.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
        Mono float audio at 8 kHz.
    sr : int, keyword-only
        Must be 8000 (use :func:`classifier.audio.load_audio` to resample).

    Returns
    -------
    features : dict of str to float
    speech_mask : numpy.ndarray of bool, shape (1 + n // 80,)
    """
    if sr != SR:
        raise InvalidParameterError(f"sr is {sr}; expected {SR} (resample with load_audio)")
    _check(y, "audio")
    yd, _ = dither(y)
    P, S = stft_frames(yd, first=0, last=n_frames(yd.size))
    return summarise(yd, P, frame_values(P, S, sr=sr), sr=sr)


#: Features a mono recording has no value for (the call-taker's side is unknown).
MONO_FEATURES: dict[str, float] = {
    "stereo": 0.0,
    "caller_speech_ratio": float("nan"),
    "taker_speech_ratio": float("nan"),
    "overlap_ratio": float("nan"),
    "caller_taker_ratio": float("nan"),
    "caller_response_s": float("nan"),
}


def voice_inputs(
    y: np.ndarray, *, pitch: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """What :func:`classifier.voices.attribute_voices` reads of a mono call, per frame.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
        Mono float audio at 8 kHz.
    pitch : bool, keyword-only
        Also the f0 of the speech frames (the features do without: its cost).

    Returns
    -------
    mask : numpy.ndarray of bool, shape (n_frames(n),)
    cepstra : numpy.ndarray, shape (n_frames(n), 13)
    power : numpy.ndarray, shape (n_frames(n),)
    f0 : numpy.ndarray, shape (n_frames(n),), or None without ``pitch``
    """
    _check(y, "audio")
    yd, _ = dither(y)
    P, S = stft_frames(yd, first=0, last=n_frames(yd.size))
    V = frame_values(P, S)
    _, mask = summarise(yd, P, V)
    f0 = None
    if pitch:
        frames = speech_pitch_frames(mask, yd.size)
        f0 = frame_pitch(frames, pitch_track(yd, frames), mask.size)
    return mask, V[:, _MFCC], V[:, _COL["band_power"]], f0


def _stereo_voices(caller: np.ndarray, taker: np.ndarray) -> dict[str, float]:
    """:data:`VOICE_FEATURES` of a stereo call, each side known from its channel."""
    hop_s = HOP / SR
    mine = segments(caller, merge_gap=int(0.5 / hop_s), min_len=int(0.2 / hop_s))
    theirs = segments(taker, merge_gap=int(0.5 / hop_s), min_len=int(0.2 / hop_s))
    spoke = len(mine) > 0
    return {
        "voice_enrolled": 1.0,
        "other_speech_ratio": float(caller.mean()),
        "other_speech_max_s": float((mine[:, 1] - mine[:, 0]).max() * hop_s) if spoke else 0.0,
        "other_turns": float(len(mine)),
        "taker_only": float(not spoke and len(theirs) > 0),
        "taker_prompt_share": (
            float(len(theirs) / (len(theirs) + len(mine))) if len(theirs) + len(mine) else np.nan
        ),
        # Levels of two channels are not comparable (each has its own gain).
        "other_level_rel_db": np.nan,
        "other_tilt_rel": np.nan,
    }


def audio_features(audio: CallAudio) -> dict[str, float]:
    """The full acoustic feature vector of a call.

    Parameters
    ----------
    audio : CallAudio
        From :func:`classifier.audio.load_audio`: the caller's side (or the mix) and,
        for stereo recordings with a known caller channel, the call-taker's side.

    Returns
    -------
    dict of str to float
        One value per name of :data:`AUDIO_FEATURES`; NaN where a feature does not apply
        (no voiced speech for pitch, mono recordings for caller/call-taker activity).
    """
    feats, mask = channel_features(audio.caller, sr=audio.sr)
    stereo = dict(MONO_FEATURES)
    if audio.other is not None and audio.other.size == audio.caller.size:
        _check(audio.other, "call-taker channel")
        other, _ = dither(audio.other)
        S2 = stft_magnitude(other, n_fft=N_FFT, hop_length=HOP)
        mask2 = speech_activity_from_stft(S2, sr=audio.sr, hop_length=HOP, whisper=False)
        n = min(mask.size, mask2.size)
        m1, m2 = mask[:n], mask2[:n]
        taker_first = int(np.argmax(m2)) if m2.any() else n
        after = m1[taker_first:]
        response = (
            (int(np.argmax(after)) * HOP / SR) if after.any() else (n - taker_first) * HOP / SR
        )
        stereo = {
            "stereo": 1.0,
            "caller_speech_ratio": float(m1.mean()),
            "taker_speech_ratio": float(m2.mean()),
            "overlap_ratio": float((m1 & m2).mean()),
            "caller_taker_ratio": float(m1.sum() / (m1.sum() + m2.sum() + 1.0)),
            "caller_response_s": float(response),
            **_stereo_voices(m1, m2),
        }
    feats.update(stereo)
    return {k: float(feats[k]) for k in AUDIO_FEATURES}


def call_features(
    audio: CallAudio | None,
    *,
    caller_id: str,
    started_at: datetime,
    duration_s: float,
    history: dict[str, float],
    timezone: tzinfo | None = None,
    acoustic: dict[str, float] | None = None,
    complete: bool = True,
) -> dict[str, float]:
    """Every feature of one call: acoustic, metadata and caller history.

    Parameters
    ----------
    audio : CallAudio or None
        The recording; None before any audio (the pre-answer score), which gives NaN for
        every acoustic feature.
    caller_id, started_at, duration_s : keyword-only
        As in the manifest.
    history : dict, keyword-only
        From :func:`classifier.history.history_features` (point in time).
    timezone : tzinfo or None, keyword-only
        The centre's time zone for hour and weekday.
    acoustic : dict or None, keyword-only
        :func:`audio_features` already computed elsewhere (a worker process); give
        either this or ``audio``, not both.
    complete : bool, keyword-only
        Whether the audio is the whole call (a recording, a stream's final score) or
        only its first seconds so far (a live stream's update, a prefix in training).
        A call that ended after 5 s of silence and a call silent for its first 5 s so
        far are different things: ``call_complete`` tells the model which it sees.

    Returns
    -------
    dict of str to float
        One value per name of :data:`FEATURE_NAMES`.
    """
    if audio is not None and acoustic is not None:
        raise InvalidParameterError("give audio or acoustic features, not both")
    if audio is not None:
        acoustic = audio_features(audio)
    nan = float("nan")
    feats = {n: acoustic[n] if acoustic is not None else nan for n in AUDIO_FEATURES}
    feats[COMPLETE_FEATURE] = nan if acoustic is None else float(complete)
    feats.update(
        metadata_features(
            caller_id=caller_id, started_at=started_at, duration_s=duration_s, timezone=timezone
        )
    )
    missing = [n for n in HISTORY_FEATURES if n not in history]
    if missing:
        raise InvalidParameterError(f"history is missing {', '.join(missing)}")
    feats.update({n: float(history[n]) for n in HISTORY_FEATURES})
    return feats


FEATURE_NAMES: tuple[str, ...] = (
    *AUDIO_FEATURES,
    COMPLETE_FEATURE,
    *METADATA_FEATURES,
    *HISTORY_FEATURES,
)
