"""The front end of the features: input checks, dither and the telephone-band STFT."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import fft as sp_fft

from classifier.constants import HOP, N_FFT, SR
from classifier.errors import InvalidAudioError, InvalidParameterError

#: Shortest audio with features: a quarter of a second.
MIN_SAMPLES = SR // 4
_TOP_HZ = 3500.0

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
