"""Per-frame spectral values of the telephone-band STFT frames, which every call-level
statistic is taken from."""

from __future__ import annotations

import itertools
from functools import lru_cache
from typing import Any

import librosa
import numpy as np

from classifier.constants import EPS as _EPS
from classifier.constants import N_FFT, SR, TELEPHONE_BAND_HZ
from classifier.features.frontend import _TOP_HZ
from classifier.features.names import _CONTRAST_BANDS, N_MFCC
from classifier.threads import one_blas_thread

# The telephone band's low edge: below it, only hum and artefacts of the equipment.
_LOW_HZ = TELEPHONE_BAND_HZ[0]


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


def _db(band_power: np.ndarray) -> np.ndarray:
    """Frame energy in dB (float64), the same for a frame whenever it is computed."""
    return 10 * np.log10(band_power.astype(np.float64) + _EPS)
