"""The call-taker's voice echoed back in the caller's channel of a stereo recording.

A recorder that taps both directions of a call stores, in the caller's channel, what the
network sends back: the caller, and often a residual echo of the call-taker (the echo a
handset or a hybrid returns, 20-30 dB down and 40-300 ms late, where echo cancellers
leave some). On a silent line that echo is the loudest thing in the caller's channel:
measured on the real check set (`bench/line_robustness.py`), an echo 20-30 dB down made
the shipped model read the call-taker's "halo?" as the caller speaking, and silent
stereo calls flagged as ghost fell from 93% to 83%.

:func:`cancel_echo` finds the echo's delay by cross-correlating the two channels,
fits a short linear echo path there by least squares over the whole call, and subtracts
the predicted echo, only when it explains a clear share of the caller channel's energy:
a call without echo keeps its caller channel unchanged, bit for bit. Stereo recordings
only (a mono recording mixes both sides anyway), and whole recordings only (the live
stream is mono).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.signal import oaconvolve

from classifier.errors import InvalidParameterError

__all__ = ["ECHO_MIN_SHARE", "FIT_SECONDS", "EchoEstimate", "cancel_echo"]

#: Least share of the caller channel's energy the fitted echo must explain to be
#: removed: an echo 13 dB under the caller channel's own sound. A fit of ``taps``
#: coefficients on ``m`` samples explains about ``taps / m`` of a white signal by
#: chance, and far more of speech and line noise on a short stretch (a 32-tap fit took
#: 11% of the first 2 s of a call without echo, 46 times ``taps / m``), so the bar is at least
#: :data:`_CHANCE_FACTOR` times ``taps / m``: 6.7% on the 12 s fitted, 40% on 2 s. A
#: silent line's echo explains most of its caller channel (50-97%); a talking caller's
#: echo, a few percent, stays (it matters little beside the caller's own voice).
ECHO_MIN_SHARE = 0.05
_CHANCE_FACTOR = 100.0
#: Decimation for the delay search: the cross-correlation runs at 2 kHz.
_DECIMATE = 4
#: Seconds from the start of the call the echo path is fitted on.
FIT_SECONDS = 12.0


class EchoEstimate(NamedTuple):
    """What :func:`cancel_echo` found."""

    delay_s: float  #: bulk delay of the echo behind the call-taker's channel
    share: float  #: share of the caller channel's energy the echo explains (fitted stretch)
    removed: bool  #: whether it was subtracted (``share`` cleared the bar)


def _coarse(x: np.ndarray) -> np.ndarray:
    """``x`` averaged over blocks of :data:`_DECIMATE` samples (a crude low-pass and
    decimation, enough to find a delay to within a few samples)."""
    m = x.size // _DECIMATE * _DECIMATE
    return x[:m].reshape(-1, _DECIMATE).mean(axis=1)


def _gcc_phat(c: np.ndarray, t: np.ndarray, max_lag: int) -> np.ndarray:
    """Cross-correlation of ``c`` behind ``t`` at lags 0..max_lag with the phase
    transform (every frequency weighted alike): a voice's harmonics would otherwise
    give a peak at every pitch period, the delay's among them."""
    size = 1 << int(np.ceil(np.log2(c.size + t.size)))
    cross = np.fft.rfft(c, size) * np.conj(np.fft.rfft(t, size))
    cross /= np.abs(cross) + 1e-12 * np.abs(cross).max()
    return np.fft.irfft(cross, size)[: max_lag + 1]


def cancel_echo(
    caller: np.ndarray,
    taker: np.ndarray,
    *,
    sr: int = 8000,
    max_delay_s: float = 0.4,
    taps: int = 64,
) -> tuple[np.ndarray, EchoEstimate | None]:
    """The caller's channel without the call-taker's echo, where it holds one.

    Parameters
    ----------
    caller, taker : numpy.ndarray, shape (n,)
        The two channels of a stereo recording, float, same rate and length.
    sr : int, keyword-only
        Their sample rate.
    max_delay_s : float, keyword-only
        Longest bulk delay searched, in seconds (0 to 2).
    taps : int, keyword-only
        Length of the fitted echo path in samples (8 to 1024): 64 taps span 8 ms at
        8 kHz, placed from a quarter of it before the delay found (the correlation
        peaks at the path's strongest tap, not always its first).

    Returns
    -------
    caller : numpy.ndarray, shape (n,)
        The input array itself when the fitted echo explains less of the caller
        channel than the bar (:data:`ECHO_MIN_SHARE`, higher on short calls), else a
        new array of the same dtype with the fitted echo subtracted.
    estimate : EchoEstimate or None
        None when there is nothing to fit (under 1 s, or a silent call-taker or caller
        channel in the stretch fitted).

    Raises
    ------
    InvalidParameterError
        Channels of different shapes or not 1-D, or a parameter outside its range.
    """
    if caller.ndim != 1 or caller.shape != taker.shape:
        raise InvalidParameterError(
            f"channels have shapes {caller.shape} and {taker.shape}; expected two equal 1-D"
        )
    if not 0.0 <= max_delay_s <= 2.0:
        raise InvalidParameterError(f"max_delay_s is {max_delay_s}; expected 0 to 2")
    if not 8 <= taps <= 1024:
        raise InvalidParameterError(f"taps is {taps}; expected 8 to 1024")
    n = caller.size
    # Delay and echo path from the first FIT_SECONDS: the call opens with the
    # call-taker's greeting, and an echo path holds still for a call. Only that
    # stretch is read unless an echo is found.
    m = min(n, int(FIT_SECONDS * sr))
    tm = taker[:m].astype(np.float64)
    cm = caller[:m].astype(np.float64)
    fit_energy = float(cm @ cm)
    if n < sr or float(tm @ tm) <= 1e-12 * m or fit_energy <= 0.0:
        return caller, None
    cc, tc = _coarse(cm), _coarse(tm)
    max_lag = min(int(max_delay_s * sr) // _DECIMATE, cc.size - 1)
    lag = int(np.argmax(_gcc_phat(cc, tc, max_lag))) * _DECIMATE
    first = max(0, lag - taps // 4)
    lags = np.arange(first, first + taps)
    lags = lags[lags < m - sr // 2]
    overlap = m - first  # samples the fit compares
    auto = np.array([tm[k:] @ tm[: m - k] for k in range(lags.size)])
    if lags.size == 0 or auto[0] <= 0.0:
        return caller, None
    # Least squares: the caller's own voice is uncorrelated with the call-taker's, so
    # double talk adds noise to the fit, not bias.
    R = auto[np.abs(np.subtract.outer(np.arange(lags.size), np.arange(lags.size)))]
    p = np.array([cm[k:] @ tm[: m - k] for k in lags])
    R[np.diag_indices_from(R)] += 1e-9 * auto[0]
    h = np.linalg.solve(R, p)
    # Energy explained on the fitted stretch, from the normal equations:
    # |c - T h|^2 = |c|^2 - 2 h.p + h.R h = |c|^2 - h.p at the solution.
    share = float(h @ p) / fit_energy
    bar = max(ECHO_MIN_SHARE, _CHANCE_FACTOR * lags.size / overlap)
    found = EchoEstimate(delay_s=lag / sr, share=share, removed=share >= bar)
    if not found.removed:
        return caller, found
    residual = caller.astype(np.float64)
    residual[first:] -= oaconvolve(taker.astype(np.float64), h)[: n - first]
    return residual.astype(caller.dtype), found
