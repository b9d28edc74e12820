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
from datetime import datetime, tzinfo
from functools import lru_cache
from typing import Any

import librosa
import numpy as np
from scipy import fft as sp_fft

from classifier.audio import CallAudio
from classifier.errors import InvalidAudioError, InvalidParameterError
from classifier.history import HISTORY_FEATURES, METADATA_FEATURES, metadata_features
from classifier.vad import (
    VadMemo,
    grow_rows,
    speech_activity_from_stft,
    speech_and_whisper_from_stft,
    speech_segments,
    stft_magnitude,
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
    return {"mag": mag, "pow": pw, "logmean": logmean, "bands": bands}


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


def _stat(x: np.ndarray, fn: str) -> float:
    if x.size == 0:
        return float("nan")
    return float(np.mean(x) if fn == "mean" else np.std(x))


def _longest_run(mask: np.ndarray) -> int:
    if mask.size == 0 or not mask.any():
        return 0
    z = np.concatenate([[0], mask.astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(z))
    return int((edges[1::2] - edges[::2]).max())


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


def voiced_pitch_frames(mask: np.ndarray, n_samples: int) -> np.ndarray:
    """The pitch frames analysed: those centred in speech, the first 5 s of them.

    Pitch statistics settle within seconds; taking the *first* seconds of speech bounds
    the cost of long calls and never depends on what comes later in the call.
    """
    j = np.arange(yin_frames(n_samples))
    centre = (j * _YIN_HOP + _YIN_FRAME // 2) // HOP
    voiced = j[mask[np.minimum(centre, mask.size - 1)]]
    return voiced[: int(_PITCH_MAX_S * SR / _YIN_HOP)]


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


def _laughter(energy_db: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Rhythmic voiced bursts at 3-6 Hz: modulation of the energy envelope."""
    fps = SR / HOP
    out = {"laughter_mod_ratio": 0.0, "laughter_regularity": 0.0, "laughter_burst_share": 0.0}
    env = energy_db - np.median(energy_db)
    win = int(2.0 * fps)
    if env.size < win:
        return out
    n = env.size // win
    blocks = env[: n * win].reshape(n, win)
    active = mask[: n * win].reshape(n, win).mean(axis=1) > 0.3
    blocks = blocks - blocks.mean(axis=1, keepdims=True)
    spec = np.abs(np.fft.rfft(blocks * np.hanning(win), axis=1)) ** 2
    f = np.fft.rfftfreq(win, 1 / fps)
    band = (f >= 3.0) & (f <= 6.0)
    wide = (f >= 0.5) & (f <= 12.0)
    ratio = spec[:, band].sum(axis=1) / (spec[:, wide].sum(axis=1) + _EPS)
    peak = spec[:, band].max(axis=1) / (spec[:, band].mean(axis=1) + _EPS)
    if active.any():
        out["laughter_mod_ratio"] = float(np.mean(ratio[active]))
        out["laughter_regularity"] = float(np.mean(peak[active]))
        out["laughter_burst_share"] = float(np.mean((ratio > 0.55) & (peak > 2.5) & active))
    return out


def _activity(mask: np.ndarray) -> tuple[dict[str, float], list[tuple[float, float]]]:
    n = mask.size
    segs = speech_segments(mask, hop_length=HOP, sr=SR)
    dur = n * HOP / SR
    lengths = np.array([e - s for s, e in segs]) if segs else np.zeros(0)
    silence = _longest_run(~mask) * HOP / SR
    first = segs[0][0] if segs else dur
    last_gap = dur - segs[-1][1] if segs else dur
    return (
        {
            "speech_ratio": float(mask.mean()) if n else 0.0,
            "speech_segments": float(len(segs)),
            "speech_segment_mean_s": float(lengths.mean()) if lengths.size else 0.0,
            "speech_segment_max_s": float(lengths.max()) if lengths.size else 0.0,
            "speech_per_minute": float(len(segs) / max(dur, 1e-3) * 60.0),
            "longest_silence_s": float(silence),
            "longest_silence_ratio": float(silence / max(dur, 1e-3)),
            "first_speech_s": float(first),
            "last_speech_gap_s": float(max(0.0, last_gap)),
        },
        segs,
    )


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
    all_freqs = _freqs(sr, N_FFT)
    nb = int(np.count_nonzero(all_freqs <= _TOP_HZ))
    W = _weights(sr)
    out = np.empty((P.shape[0], len(FRAME_COLUMNS)), dtype=np.float32)
    # Per-frame sums as matrix products (BLAS) rather than a dozen strided reductions.
    sm = S @ W["mag"]  # (frames, 3): sum S, sum f*S, sum f^2*S
    sp = P @ W["pow"]  # (frames, 4): sum P; above 2 kHz; 300 Hz-2 kHz; 300 Hz and up
    out[:, _COL["band_power"]] = sp[:, 0]
    mag_sum = sm[:, 0] + _EPS
    centroid = sm[:, 1] / mag_sum
    out[:, _COL["centroid"]] = centroid
    out[:, _COL["bandwidth"]] = np.sqrt(np.maximum(sm[:, 2] / mag_sum - centroid**2, 0.0))
    mel = P @ _mel_basis(sr, N_FFT).T  # (frames, 32)
    # 85% rolloff on the mel bands' power: 4x fewer bins to accumulate than the STFT's.
    cum = np.cumsum(mel * _mel_widths(sr), axis=1)  # undo Slaney's area normalisation
    out[:, _COL["rolloff"]] = _mel_centres(sr)[np.argmax(cum >= 0.85 * cum[:, -1:], axis=1)]
    logp = np.log(P + np.float32(1e-10))
    lm = logp @ W["logmean"]  # (frames, 1 + bands): mean log power in band and per band
    n_band = int(np.count_nonzero(all_freqs[:nb] >= _LOW_HZ))
    out[:, _COL["flatness"]] = np.exp(lm[:, 0]) / (sp[:, 3] / n_band + 1e-10)
    out[:, _COL["ratio_db"]] = 10 * np.log10((sp[:, 1] + _EPS) / (sp[:, 2] + _EPS))
    to_db = np.float32(10 / np.log(10))
    for i, (a, b_) in enumerate(W["bands"]):
        # Peak against the band's mean level: harmonics stand out, noise is flat.
        col = _COL[f"contrast_{i}"]
        out[:, col] = (logp[:, a:b_].max(axis=1) - lm[:, 1 + i]) * to_db if b_ - a >= 2 else 0.0
    mel_db = 10 * np.log10(mel + np.float32(1e-10))
    out[:, _COL["mfcc_0"] : _COL["mfcc_0"] + N_MFCC] = mel_db @ _dct_matrix().T
    return out


def _spectral(V: np.ndarray, mask: np.ndarray, *, sr: int) -> dict[str, float]:
    """Call-level spectral shape statistics from :func:`frame_values` rows."""
    # Only the telephone band counts: what lies above 3.5 kHz depends on the recorder's
    # resampler and codec, not on the caller, and would make 8 and 16 kHz files differ.
    energy_db = 10 * np.log10(V[:, _COL["band_power"]] + _EPS)
    loud = energy_db > np.percentile(energy_db, 20)  # skip dead air for spectral shape
    nyq = sr / 2
    out: dict[str, float] = {}
    # Statistics of every column over the loud frames at once, then of the speech frames.
    loud_v = V[loud]
    n_loud = loud_v.shape[0]
    mean = loud_v.mean(axis=0, dtype=np.float64) if n_loud else np.full(V.shape[1], np.nan)
    std = loud_v.std(axis=0, dtype=np.float64) if n_loud else np.full(V.shape[1], np.nan)
    speech_v = V[mask][:, [_COL["centroid"], _COL["flatness"]]].astype(np.float64)
    speech_mean = speech_v.mean(axis=0) if speech_v.shape[0] else np.full(2, np.nan)
    for name in ("centroid", "bandwidth", "rolloff"):
        out[f"{name}_mean"] = float(mean[_COL[name]]) / nyq
        out[f"{name}_std"] = float(std[_COL[name]]) / nyq
    out["centroid_speech_mean"] = float(speech_mean[0]) / nyq
    out["flatness_mean"] = float(mean[_COL["flatness"]])
    out["flatness_std"] = float(std[_COL["flatness"]])
    out["flatness_speech_mean"] = float(speech_mean[1])
    for i, (a, b_) in enumerate(_weights(sr)["bands"]):
        if b_ - a < 2 or not n_loud:
            out[f"contrast_{i}_mean"] = out[f"contrast_{i}_std"] = float("nan")
            continue
        out[f"contrast_{i}_mean"] = float(mean[_COL[f"contrast_{i}"]])
        out[f"contrast_{i}_std"] = float(std[_COL[f"contrast_{i}"]])
    m0 = _COL["mfcc_0"]
    out["mfcc_0_std"] = float(std[m0])
    for i in range(1, N_MFCC):
        out[f"mfcc_{i}_mean"] = float(mean[m0 + i])
        out[f"mfcc_{i}_std"] = float(std[m0 + i])
    # Muffledness: a phone in a pocket passes little above 2 kHz.
    ratio_db = V[:, _COL["ratio_db"]]
    out["muffled_db"] = float(np.median(ratio_db))
    above = energy_db > np.percentile(energy_db, 10) + 6.0
    out["muffled_active_db"] = float(np.median(ratio_db[above])) if above.any() else 0.0
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


def _energy(band_power: np.ndarray, mask: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    energy_db = 10 * np.log10(band_power + _EPS)
    p = np.percentile(energy_db, [5, 10, 50, 95])
    ref = p[3]
    floor = p[1]
    speech_db = energy_db[mask]
    other_db = energy_db[~mask]
    if speech_db.size and other_db.size:
        snr = float(np.median(speech_db) - np.median(other_db))
    else:
        snr = 0.0
    return (
        {
            "energy_db_std": float(np.std(energy_db)),
            "energy_db_p10_rel": float(p[1] - ref),
            "energy_db_p50_rel": float(p[2] - ref),
            "dynamic_range_db": float(p[3] - p[0]),
            "noise_floor_rel_db": float(floor - ref),
            "snr_db": snr,
        },
        energy_db,
    )


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
        seg = np.pad(seg, (max(-lo, 0), max(hi - max(y.size, lo), 0)))
    frames = np.lib.stride_tricks.sliding_window_view(seg, N_FFT)[::HOP][: last - first]
    nb = int(np.count_nonzero(_freqs(SR, N_FFT) <= _TOP_HZ))
    # scipy.fft keeps float32 (complex64), about twice as fast as numpy.fft here.
    S = np.abs(sp_fft.rfft(frames * _window(), axis=1))[:, :nb]
    return np.square(S), S


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
        A live stream's settled per-frame results (speech detection, pitch) from its
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
    whisper_ratio = float((with_whisper & ~mask).mean())
    feats: dict[str, float] = {"audio_duration_s": y.size / sr, "whisper_ratio": whisper_ratio}
    activity, _ = _activity(mask)
    feats.update(activity)
    energy, energy_db = _energy(V[:, _COL["band_power"]], mask)
    feats.update(energy)
    feats.update(_spectral(V, mask, sr=sr))
    feats.update(_pitch(memo.pitch(y, voiced_pitch_frames(mask, y.size), sr=sr)))
    feats.update(_laughter(energy_db, mask))
    peak = float(max(y.max(), -y.min()))
    feats["clipping_ratio"] = (
        float(np.count_nonzero(np.abs(y) >= 0.98 * peak)) / y.size if peak >= 0.9 else 0.0
    )
    return feats, mask


class StreamMemo:
    """Settled per-frame results of a live stream, reused by its next update."""

    def __init__(self) -> None:
        self.vad = VadMemo()
        self._f0 = np.zeros(0)

    def pitch(self, y: np.ndarray, frames: np.ndarray, *, sr: int = SR) -> np.ndarray:
        """:func:`pitch_track` of ``frames``, computing only frames not seen before."""
        if frames.size == 0:
            return np.zeros(0)
        self._f0 = grow_rows(self._f0, int(frames[-1]) + 1, fill=np.nan)  # NaN: not yet
        todo = frames[np.isnan(self._f0[frames])]
        if todo.size:
            # Pitch frames are only ever whole windows already heard: final at once.
            self._f0[todo] = pitch_track(y, todo, sr=sr)
        return self._f0[frames]

    @property
    def nbytes(self) -> int:
        return int(self._f0.nbytes) + self.vad.nbytes


def single_threaded_blas() -> None:
    """Limit BLAS to one thread in this process (call once, at a process's start).

    Feature extraction multiplies tall, thin matrices (frames x 113 bins by a few
    columns). Several BLAS threads gain nothing there, and when the cores are busy they
    spin against each other: the per-frame values of a 60 s call took 52 ms with
    OpenBLAS's default threads on the loaded 2-core machine, 5 ms with one.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


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
