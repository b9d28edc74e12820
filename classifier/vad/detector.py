"""The speech detector: per-frame voiced speech and whisper from a magnitude STFT."""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
from scipy import fft as sp_fft

from classifier.constants import EPS as _EPS
from classifier.constants import HOP, N_FFT, SR, TELEPHONE_BAND_HZ
from classifier.errors import InvalidParameterError
from classifier.threads import one_blas_thread
from classifier.vad.morphology import (
    _N_ROWS,
    _NEAR,
    _SHAPED,
    _VOICED,
    _WITH_WHISPER,
    _kernels,
    _Lengths,
    _mask_programs,
)
from classifier.vad.noise import (
    _FLOOR_WIN_S,
    _NOISE_BLOCK_S,
    _SMOOTH_S,
    _block_noise,
    _floor,
    _smoothed_db,
)
from classifier.vad.state import VadMemo

_VOICED_BAND_HZ = (100.0, 1800.0)  # where voiced harmonics carry their energy: periodicity
_PITCH_HZ = (75.0, 400.0)
_ABS_FLOOR_DB = -80.0  # band energy (dB re full scale) that is never speech
# Reach of the decisions around a frame: 0.02 s smoothing + 1.5 s floor window + 0.03 s
# continuity + 0.16 s whisper runs + 0.33 s growing, closing and hangover = 2.14 s.
_CONTEXT_S = 3.0
_SUBTRACT = 1.5  # noise over-subtraction before the periodicity test
_VOICED_AC = 0.75
_VOICED_SNR_DB = 5.0
_PITCH_TOL = 0.1  # relative lag change allowed between neighbouring voiced frames
_PITCH_TOL32 = np.float32(_PITCH_TOL)  # as numpy applies it to float32 lags
_MIN_VOICED_S = 0.03
_ACTIVE_SNR_DB = 3.0
_EXTEND_S = 0.1  # unvoiced speech (consonants) is grown at most this far from a voiced run
_GAP_S = 0.2
_HANGOVER_S = 0.03
# Whisper: sustained, non-flat, low-weighted energy above the floor, without pitch.
_WHISPER_SNR_DB = 6.0
_WHISPER_FLATNESS = 0.15
_WHISPER_LOW_SHARE = 0.5  # share of 300-3400 Hz energy below 900 Hz
_MIN_WHISPER_S = 0.15


def stft_magnitude(y: np.ndarray, *, n_fft: int = N_FFT, hop_length: int = HOP) -> np.ndarray:
    """Magnitude STFT matching ``np.abs(librosa.stft(y, n_fft, hop_length))``.

    Periodic Hann window, ``center=True`` with zero padding, so frame ``t`` is centred on
    sample ``t * hop_length``.

    Parameters
    ----------
    y : np.ndarray
        float (n,) audio.
    n_fft, hop_length : int
        Window length and hop in samples.

    Returns
    -------
    np.ndarray
        float32, shape (1 + n_fft // 2, 1 + n // hop_length).
    """
    y = np.asarray(y, dtype=np.float32)
    pad = n_fft // 2
    yp = np.pad(y, (pad, pad))
    n_frames = 1 + len(y) // hop_length
    frames = np.lib.stride_tricks.sliding_window_view(yp, n_fft)[::hop_length][:n_frames]
    win = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    # scipy.fft keeps float32 (complex64), about twice as fast as numpy.fft here.
    return np.abs(sp_fft.rfft(frames * win, axis=1)).T


def speech_activity(
    y: np.ndarray,
    *,
    sr: int = SR,
    hop_length: int = HOP,
    S: np.ndarray | None = None,
) -> np.ndarray:
    """Per-frame speech activity.

    Parameters
    ----------
    y : np.ndarray
        float32 mono audio, shape (n,).
    sr : int, default 8000
        Sample rate of ``y``.
    hop_length : int, default 80
        Hop in samples between frames (80 = 10 ms at 8 kHz).
    S : np.ndarray, optional
        Precomputed magnitude STFT of ``y``, shape (1 + n_fft // 2, 1 + n // hop_length),
        ``center=True`` (e.g. ``np.abs(librosa.stft(y, n_fft=256, hop_length=80))``).
        Computed with ``n_fft=256`` when omitted.

    Returns
    -------
    np.ndarray
        bool, shape (1 + n // hop_length,): frame ``t`` (centred on sample
        ``t * hop_length``) contains speech.
    """
    y = _check_audio(y)
    _check_rate(sr, hop_length)
    n_frames = 1 + len(y) // hop_length
    if S is None:
        S = stft_magnitude(y, n_fft=N_FFT, hop_length=hop_length)
    elif np.ndim(S) != 2 or np.shape(S)[1] != n_frames:
        raise InvalidParameterError(
            f"S must have shape (n_bins, {n_frames}) for {len(y)} samples at hop "
            f"{hop_length}; got {np.shape(S)}"
        )
    return speech_activity_from_stft(S, sr=sr, hop_length=hop_length)


def speech_activity_from_stft(
    S_mag: np.ndarray,
    *,
    sr: int = SR,
    hop_length: int = HOP,
    y: np.ndarray | None = None,
    whisper: bool = True,
) -> np.ndarray:
    """Per-frame speech activity from a magnitude STFT.

    Parameters
    ----------
    S_mag : np.ndarray
        float magnitude STFT, shape (1 + n_fft // 2, n_frames), Hann window,
        ``center=True`` (a complex STFT is accepted and its magnitude used). Tuned for
        ``n_fft=256`` at 8 kHz (32 ms); other sizes work but were not measured.
    sr : int, default 8000
        Sample rate the STFT was computed at.
    hop_length : int, default 80
        Hop in samples between frames.
    y : np.ndarray, optional
        Currently unused (everything comes from the spectrum); accepted so that callers
        holding the waveform can pass it and a future time-domain check can use it.
    whisper : bool, default True
        Also count whisper-like (unvoiced, formant-shaped) stretches. Muffled rustle and
        wind can pass that check, so the feature extractor asks for voiced speech and
        whisper separately.

    Returns
    -------
    np.ndarray
        bool, shape (n_frames,).
    """
    del y  # the spectrum carries everything used
    voiced, with_whisper = speech_and_whisper_from_stft(S_mag, sr=sr, hop_length=hop_length)
    return with_whisper if whisper else voiced


def speech_and_whisper_from_stft(
    S_mag: np.ndarray,
    *,
    sr: int = SR,
    hop_length: int = HOP,
    power: np.ndarray | None = None,
    n_fft: int | None = None,
    memo: VadMemo | None = None,
    final: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Voiced speech, and voiced speech plus whisper-like stretches, in one pass.

    Parameters
    ----------
    S_mag : np.ndarray
        As for :func:`speech_activity_from_stft`.
    sr, hop_length : int, keyword-only
        As for :func:`speech_activity_from_stft`.
    power : np.ndarray or None, keyword-only
        ``S_mag ** 2`` as float32 when the caller already has it (the feature
        extractor does), to skip squaring the spectrogram again.
    n_fft : int or None, keyword-only
        The STFT's window length when ``S_mag`` holds only its lowest bins (the feature
        extractor keeps those up to 3.5 kHz); None for a full spectrum,
        ``2 * (n_bins - 1)``.
    memo : VadMemo or None, keyword-only
        A live stream's per-frame results from earlier calls on the same, growing
        spectrogram; results of frames that can no longer change are kept in it and
        not computed again. None computes everything.
    final : int or None, keyword-only
        With ``memo``: how many leading frames will not change any more (their window
        has been heard in full). None: all of them (the call is over).

    Returns
    -------
    voiced : np.ndarray
        bool, shape (n_frames,): ``speech_activity_from_stft(..., whisper=False)``.
    with_whisper : np.ndarray
        bool, shape (n_frames,): ``speech_activity_from_stft(..., whisper=True)``.
    """
    _check_rate(sr, hop_length)
    S_mag = np.asarray(S_mag)
    if S_mag.dtype.kind == "c":
        S_mag = np.abs(S_mag)  # a complex STFT was passed: its magnitude is what is used
    if S_mag.ndim != 2 or S_mag.shape[0] < 9:
        raise InvalidParameterError(
            f"S_mag must be 2-D (n_bins >= 9, n_frames); got shape {S_mag.shape}"
        )
    # A live stream's earlier frames were checked by earlier calls.
    seen = min(memo._sums_done, S_mag.shape[1]) if memo is not None else 0
    if not np.isfinite(S_mag[:, seen:]).all():
        raise InvalidParameterError("S_mag must be finite; got NaN or infinite values")
    n_bins, n_frames = S_mag.shape
    if n_fft is None:
        n_fft = 2 * (n_bins - 1)
    elif n_fft < 2 * (n_bins - 1):
        raise InvalidParameterError(
            f"n_fft is {n_fft}; expected at least {2 * (n_bins - 1)} for {n_bins} bins"
        )
    if power is not None and power.shape != S_mag.shape:
        raise InvalidParameterError(
            f"power must have the shape of S_mag {S_mag.shape}; got {power.shape}"
        )
    P = np.square(S_mag, dtype=np.float32) if power is None else power
    bands = _bands(n_bins, sr, n_fft)
    if memo is None:
        memo = VadMemo()
    if final is None:
        final = n_frames
    memo.grow(n_frames)
    memo.band_sums(P, bands.band, bands.low, final=final)
    lengths = _lengths(sr / hop_length)
    e_db = _smoothed_db(memo, n_frames, final, scale=np.float32(4.0 / n_fft**2), lengths=lengths)
    # Every decision below looks at most ~2.2 s around a frame (the 1.5 s floor window,
    # then the growing and closing of speech runs). A live stream only recomputes them
    # from _CONTEXT_S before its last settled frame; earlier frames keep their result.
    start = max(0, memo.settled - lengths.context)
    voiced, with_whisper = _decide(
        P, bands, e_db, start, sr=sr, n_fft=n_fft, lengths=lengths, memo=memo, final=final
    )
    keep = memo.settled
    memo.voiced[keep:n_frames] = voiced[keep - start :]
    memo.with_whisper[keep:n_frames] = with_whisper[keep - start :]
    memo.settled = max(keep, min(final, n_frames) - lengths.context)
    if final >= n_frames:  # the call is over: every frame is settled
        memo.settled = n_frames
    return memo.voiced[:n_frames].copy(), memo.with_whisper[:n_frames].copy()


class _Bands(NamedTuple):
    freqs: np.ndarray  # (n_bins,) Hz
    band: slice  # activity band bins
    low: slice  # periodicity (and noise estimate) bins
    n_below_900: int  # activity band bins below 900 Hz (whisper's low share)


@lru_cache(maxsize=8)
def _bands(n_bins: int, sr: int, n_fft: int) -> _Bands:
    freqs = np.arange(n_bins) * (sr / n_fft)
    band = _band(freqs, TELEPHONE_BAND_HZ, sr)  # activity energy
    n_low = int(np.count_nonzero(freqs[band] < 900.0))
    return _Bands(freqs, band, _band(freqs, _VOICED_BAND_HZ, sr), n_low)


@lru_cache(maxsize=8)
def _lengths(fps: float) -> _Lengths:
    # 50 ms power smoothing: a low hum beating against the 10 ms hop must not make the
    # energy (and so the floor distance) flicker by several dB from frame to frame.
    smooth = max(1, round(_SMOOTH_S * fps))
    nuclei, expand = _mask_programs(
        max(1, round(_MIN_VOICED_S * fps)),
        max(0, round(_EXTEND_S * fps)),
        max(1, round(_MIN_WHISPER_S * fps)),
        max(1, round(_GAP_S * fps)),
        round(_HANGOVER_S * fps),
    )
    return _Lengths(
        context=round(_CONTEXT_S * fps),
        smooth=(smooth // 2, smooth - 1 - smooth // 2),  # scipy's centring
        floor=max(3, round(_FLOOR_WIN_S * fps)),
        block=max(1, round(_NOISE_BLOCK_S * fps)),
        nuclei=nuclei,
        expand=expand,
    )


def _decide(
    P: np.ndarray,
    bands: _Bands,
    e_db_all: np.ndarray,
    start: int,
    *,
    sr: int,
    n_fft: int,
    lengths: _Lengths,
    memo: VadMemo,
    final: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Voiced and voiced-or-whisper masks of frames ``start`` onwards, (n,) bool each.

    ``e_db_all`` is :func:`_smoothed_db` of every frame, (n_frames, 2).
    """
    n_frames = P.shape[1]
    e_db = e_db_all[start:]
    # The floor of the frames from start on is the whole call's (not the window's, with
    # its edge repeated at start as an opening of the window would give): the decisions
    # kept reach less than _CONTEXT_S back, so that edge never reaches them.
    snr, snr_low = (e_db - _floor(memo, e_db_all, final, size=lengths.floor)[start:]).T
    audible = e_db[:, 0] > _ABS_FLOOR_DB

    cand = ((snr_low >= _VOICED_SNR_DB) & audible).nonzero()[0] + start
    todo = cand[~memo.periodic_known[cand]]
    if todo.size:
        blocks = todo // lengths.block
        _block_noise(
            P,
            bands.low,
            e_db_all[:, 0],
            int(blocks[-1]),
            block=lengths.block,
            reach=lengths.smooth[1] + 1,  # e_db depends on later frames via the smoothing
            final=final,
            memo=memo,
        )
        noise = memo._noise[blocks].T
        ac_new, lag_new = _periodicity(P, bands.low, todo, sr=sr, n_fft=n_fft, noise=noise)
        memo.ac[todo], memo.lag[todo] = ac_new, lag_new
        # Kept once both the frame and its block's noise estimate are settled (todo and
        # its blocks ascend: a leading share of them).
        kept = min(int(todo.searchsorted(final)), int(blocks.searchsorted(memo._noise_done)))
        memo.periodic_known[todo[:kept]] = True
    n = n_frames - start
    rows = np.zeros((_N_ROWS, n), bool)
    # Pitch continuity: noise also gives high single-frame peaks, but at random lags.
    kernels = _kernels()
    kernels.inputs(
        rows,
        cand - start,
        memo.ac[cand],
        memo.lag[cand],
        snr,
        audible,
        _VOICED_AC,
        _PITCH_TOL32,
        _ACTIVE_SNR_DB,
    )
    kernels.run(rows, lengths.nuclei)
    # Whisper is only looked for away from voiced speech (cheaper, and not needed there).
    _whisper(P, bands, snr, audible & ~rows[_NEAR], start, rows[_SHAPED], memo=memo, final=final)
    kernels.run(rows, lengths.expand)
    return rows[_VOICED], rows[_WITH_WHISPER]


def _band(freqs: np.ndarray, hz: tuple[float, float], sr: int) -> slice:
    """Contiguous bin range inside ``hz`` (and below 0.45 * sr)."""
    idx = np.flatnonzero((freqs >= hz[0]) & (freqs <= min(hz[1], 0.45 * sr)))
    return slice(int(idx[0]), int(idx[-1]) + 1)


def _periodicity(
    P: np.ndarray,
    low: slice,
    cand: np.ndarray,
    *,
    sr: int,
    n_fft: int,
    noise: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised autocorrelation peak and its lag for frames ``cand``, both (len(cand),)."""
    lags, cos, inv_w, taper = _lag_basis(sr, n_fft, low.start, low.stop - 1)
    # Noise spectrum subtracted first, so that stationary hiss and hum neither dilute nor
    # fake the periodicity of the voice above them.
    X = P[low, cand]  # a copy: worked on in place
    X -= _SUBTRACT * noise
    np.maximum(X, 0.0, out=X)
    X *= taper
    # Wiener-Khinchin on the power spectrum: r[lag] = sum_f X[f] cos(2 pi f lag / n_fft),
    # divided by the window's own autocorrelation (which does not depend on the frame).
    with one_blas_thread():  # the same bits whatever the process's BLAS threads
        r = cos @ X
    r *= inv_w
    best = r.argmax(axis=0)
    peak = r[best, np.arange(len(cand))] / (X.sum(axis=0) + _EPS)  # float32
    return peak, lags[best]


@lru_cache(maxsize=8)
def _lag_basis(
    sr: int, n_fft: int, lo_bin: int, hi_bin: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pitch lags (n_lags,) float32, cosine basis (n_lags, n_bins), inverse window
    autocorrelation (n_lags, 1) and band-edge taper (n_bins, 1)."""
    lag = np.arange(int(sr / _PITCH_HZ[1]), min(int(np.ceil(sr / _PITCH_HZ[0])), n_fft // 2) + 1)
    bins = np.arange(lo_bin, hi_bin + 1)
    cos = np.cos(np.outer(lag, 2.0 * np.pi * bins / n_fft)).astype(np.float32)
    # Undo the decay the (circular) autocorrelation of the Hann window imposes with lag.
    w = np.hanning(n_fft + 1)[:-1]
    wr = np.fft.irfft(np.abs(np.fft.rfft(w)) ** 2)
    inv_w = (wr[0] / wr[lag]).astype(np.float32)[:, None]
    # Tapered band edges: a brick-wall band adds sinc ripple to the autocorrelation.
    taper = np.sin(np.pi * (bins - lo_bin) / max(hi_bin - lo_bin, 1)) ** 2
    return lag.astype(np.float32), cos, inv_w, taper.astype(np.float32)[:, None]


def _whisper(
    P: np.ndarray,
    bands: _Bands,
    snr: np.ndarray,
    allowed: np.ndarray,
    start: int,
    out: np.ndarray,
    *,
    memo: VadMemo,
    final: int,
) -> None:
    """Mark in ``out`` the whisper-shaped frames well above the floor where ``allowed``.

    ``snr``, ``allowed`` and ``out`` (bool, cleared) begin at frame ``start``. Whisper is
    sustained, non-flat, low-weighted energy without pitch; short gaps are closed and
    short runs dropped afterwards (the mask program of :func:`_decide`).
    """
    local = ((snr >= _WHISPER_SNR_DB) & allowed).nonzero()[0]
    if local.size == 0:
        return
    cand = local + start
    todo = cand[~memo.shape_known[cand]]
    if todo.size:
        Pc = P[bands.band, todo] + np.float32(_EPS)
        # Flatness near 1 is hiss or rub; speech has formant peaks. (Sums over the bin
        # count: the floats of .mean(axis=0) without its Python overhead.)
        total = Pc.sum(axis=0)
        count = Pc.shape[0]
        memo.flat[todo] = flat = np.exp(np.log(Pc).sum(axis=0) / count) / (total / count)
        memo.low_share[todo] = low_share = Pc[: bands.n_below_900].sum(axis=0) / total
        memo._shaped[todo] = (flat < _WHISPER_FLATNESS) & (low_share > _WHISPER_LOW_SHARE)
        memo.shape_known[todo] = todo < final
    out[local] = memo._shaped[cand]


def speech_segments(
    mask: np.ndarray,
    *,
    hop_length: int = HOP,
    sr: int = SR,
    min_speech_s: float = 0.1,
    min_gap_s: float = 0.2,
) -> list[tuple[float, float]]:
    """Turn a frame mask into (start_s, end_s) speech segments.

    Gaps shorter than ``min_gap_s`` are bridged first, then segments shorter than
    ``min_speech_s`` are dropped.

    Parameters
    ----------
    mask : np.ndarray
        bool (n_frames,), e.g. from :func:`speech_activity`; frame ``t`` is centred on
        ``t * hop_length / sr`` seconds.
    hop_length : int, default 80
    sr : int, default 8000
    min_speech_s : float, default 0.1
    min_gap_s : float, default 0.2

    Returns
    -------
    list of tuple of float
        Sorted, non-overlapping segments in seconds, clipped at 0.
    """
    mask = np.asarray(mask)
    if mask.ndim != 1:
        raise InvalidParameterError(f"mask must be 1-D; got shape {mask.shape}")
    _check_rate(sr, hop_length)
    for key, val in (("min_speech_s", min_speech_s), ("min_gap_s", min_gap_s)):
        if not np.isfinite(val) or val < 0:
            raise InvalidParameterError(f"{key} must be a finite number >= 0; got {val!r}")
    m = mask.astype(bool)
    if not m.any():
        return []
    d = np.diff(np.concatenate(([0], m.astype(np.int8), [0])))
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)  # exclusive
    hop_s = hop_length / sr
    segs: list[list[float]] = []
    for s, e in zip(starts, ends, strict=True):
        t0 = max(0.0, (s - 0.5) * hop_s)
        t1 = (e - 0.5) * hop_s
        if segs and t0 - segs[-1][1] < min_gap_s:
            segs[-1][1] = t1
        else:
            segs.append([t0, t1])
    return [(round(a, 6), round(b, 6)) for a, b in segs if b - a >= min_speech_s]


def _check_audio(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise InvalidParameterError(f"y must be mono, shape (n,); got shape {y.shape}")
    if y.size == 0:
        raise InvalidParameterError("y must contain at least one sample; got 0")
    if not np.issubdtype(y.dtype, np.floating):
        raise InvalidParameterError(f"y must be a float array; got dtype {y.dtype}")
    if not np.isfinite(y).all():
        raise InvalidParameterError("y must be finite; got NaN or infinite samples")
    return y


def _check_rate(sr: int, hop_length: int) -> None:
    if not isinstance(sr, int | np.integer) or sr < 4000:
        raise InvalidParameterError(f"sr must be an int >= 4000 Hz; got {sr!r}")
    if not isinstance(hop_length, int | np.integer) or hop_length < 1:
        raise InvalidParameterError(f"hop_length must be an int >= 1; got {hop_length!r}")
