"""Speech activity detection for telephone audio.

The detector was chosen by measurement (``bench/vad_compare.py``, results in
``docs/vad.md``): pocket-dial handling noise (rub, tap, friction) and kitchen clatter must
not count as speech, quiet speech must, and it must run on the STFT the feature
extractor already computes (``n_fft=256, hop_length=80`` at 8 kHz).

Per 10 ms frame of a 32 ms Hann STFT:

1. energy in 300-3400 Hz relative to an adaptive floor (a running morphological opening
   of the energy track, so bursts shorter than ~1.5 s do not raise it);
2. periodicity: the normalised autocorrelation peak at pitch lags (75-400 Hz), computed
   from the noise-subtracted 100-1800 Hz power spectrum (Wiener-Khinchin: no extra FFT);
3. voiced nuclei: periodic frames well above the floor whose pitch lag stays steady over
   at least 30 ms (noise reaches high single-frame peaks too, but at random lags);
   whisper nuclei: >= 150 ms of energy above the floor with a formant-like (non-flat,
   low-weighted) spectrum;
4. above-floor frames within 100 ms of a nucleus join it (unvoiced consonants), gaps
   shorter than 200 ms are closed and a 30 ms hangover is added.

Rub, tap and clatter rise above the floor but are neither steadily periodic nor
formant-shaped for long, so they are rejected; quiet voiced speech stays periodic far
below the clatter level, and the decision depends on levels only relative to the floor
(gain-invariant down to -80 dBFS band energy).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import fft as sp_fft
from scipy.ndimage import (
    binary_closing,
    binary_dilation,
    grey_opening,
    label,
    uniform_filter1d,
)

from classifier.errors import InvalidParameterError

__all__ = [
    "VadMemo",
    "speech_activity",
    "speech_activity_from_stft",
    "speech_and_whisper_from_stft",
    "speech_segments",
    "stft_magnitude",
]

N_FFT = 256
_BAND_HZ = (300.0, 3400.0)  # telephone band: activity energy
_LOW_HZ = (100.0, 1800.0)  # where voiced harmonics carry their energy: periodicity
_PITCH_HZ = (75.0, 400.0)
_ABS_FLOOR_DB = -80.0  # band energy (dB re full scale) that is never speech
_SMOOTH_S = 0.05
_FLOOR_WIN_S = 1.5  # noise floor: energy minimum over this window, then its maximum
_NOISE_QUANTILE = 0.15  # quietest share of frames that estimates the noise spectrum
# The noise estimate is renewed every second from the frames heard so far (up to a few
# frames before the second's end), so it never depends on audio after the frame.
_NOISE_BLOCK_S = 1.0
_NOISE_MARGIN = 5
# Reach of the decisions around a frame: 0.02 s smoothing + 1.5 s floor window + 0.03 s
# continuity + 0.16 s whisper runs + 0.33 s growing, closing and hangover = 2.14 s.
_CONTEXT_S = 3.0
_SUBTRACT = 1.5  # noise over-subtraction before the periodicity test
_VOICED_AC = 0.75
_VOICED_SNR_DB = 5.0
_PITCH_TOL = 0.1  # relative lag change allowed between neighbouring voiced frames
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

_EPS = 1e-10


def grow_rows(a: np.ndarray, rows: int, *, cap: int | None = None, fill: float = 0) -> np.ndarray:
    """``a`` with room for at least ``rows`` rows, new rows set to ``fill``.

    The size doubles (up to ``cap``), so a live stream's arrays grow by a frame or a
    second at a time at little cost.
    """
    if a.shape[0] >= rows:
        return a
    size = max(rows, 2 * a.shape[0], 64)
    if cap is not None:
        size = max(rows, min(size, cap))
    new = np.full((size, *a.shape[1:]), fill, dtype=a.dtype)
    new[: a.shape[0]] = a
    return new


class VadMemo:
    """Per-frame results a live stream's speech detection keeps between updates.

    Only values that can no longer change are kept: those of frames whose window has
    been heard in full, and for periodicity, whose block's noise estimate is settled.
    """

    def __init__(self) -> None:
        self.ac = np.zeros(0, np.float32)
        self.lag = np.zeros(0, np.float32)
        self.periodic_known = np.zeros(0, bool)
        self.flat = np.zeros(0, np.float32)
        self.low_share = np.zeros(0, np.float32)
        self.shape_known = np.zeros(0, bool)
        self.noise: dict[int, np.ndarray] = {}
        self._sums = np.zeros((0, 2), np.float32)
        self._sums_done = 0
        self.voiced = np.zeros(0, bool)
        self.with_whisper = np.zeros(0, bool)
        self.settled = 0  # frames whose decisions no later audio can change

    def band_sums(
        self, P: np.ndarray, band: slice, low: slice, *, final: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame power in the activity band and in the low band, (n_frames,) each."""
        n = P.shape[1]
        self._sums = grow_rows(self._sums, n)
        start = min(self._sums_done, n)
        self._sums[start:n, 0] = P[band, start:n].sum(axis=0)
        self._sums[start:n, 1] = P[low, start:n].sum(axis=0)
        self._sums_done = max(self._sums_done, min(final, n))
        return self._sums[:n, 0], self._sums[:n, 1]

    def grow(self, n_frames: int) -> None:
        """Make room for ``n_frames`` frames (doubling, so a growing call stays cheap)."""
        names = ("ac", "lag", "periodic_known", "flat", "low_share", "shape_known")
        for name in (*names, "voiced", "with_whisper"):
            setattr(self, name, grow_rows(getattr(self, name), n_frames))

    @property
    def nbytes(self) -> int:
        return int(self.ac.nbytes * 4 + self.periodic_known.nbytes * 2 + self._sums.nbytes) + sum(
            v.nbytes for v in self.noise.values()
        )


def stft_magnitude(y: np.ndarray, *, n_fft: int = N_FFT, hop_length: int = 80) -> np.ndarray:
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
    sr: int = 8000,
    hop_length: int = 80,
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
    sr: int = 8000,
    hop_length: int = 80,
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
    sr: int = 8000,
    hop_length: int = 80,
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
    if np.iscomplexobj(S_mag):
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
    fps = sr / hop_length
    freqs = np.arange(n_bins) * (sr / n_fft)
    if power is not None and power.shape != S_mag.shape:
        raise InvalidParameterError(
            f"power must have the shape of S_mag {S_mag.shape}; got {power.shape}"
        )
    P = np.square(S_mag, dtype=np.float32) if power is None else power
    scale = np.float32(4.0 / n_fft**2)  # Hann power scale: full-scale sine ~ 0 dB

    band = _band(freqs, _BAND_HZ, sr)
    low = _band(freqs, _LOW_HZ, sr)
    # 50 ms power smoothing: a low hum beating against the 10 ms hop must not make the
    # energy (and so the floor distance) flicker by several dB from frame to frame.
    smooth = max(1, round(_SMOOTH_S * fps))
    if memo is None:
        memo = VadMemo()
    if final is None:
        final = n_frames
    memo.grow(n_frames)
    band_sum, low_sum = memo.band_sums(P, band, low, final=final)
    e_db = 10.0 * np.log10(uniform_filter1d(band_sum, smooth) * scale + _EPS)
    e_low_db = 10.0 * np.log10(uniform_filter1d(low_sum, smooth) * scale + _EPS)
    # Every decision below looks at most ~2.2 s around a frame (the 1.5 s floor window,
    # then the growing and closing of speech runs). A live stream only recomputes them
    # from _CONTEXT_S before its last settled frame; earlier frames keep their result.
    start = max(0, memo.settled - round(_CONTEXT_S * fps))
    voiced, with_whisper = _decide(
        P,
        freqs,
        band,
        low,
        e_db,
        e_low_db,
        start,
        sr=sr,
        n_fft=n_fft,
        fps=fps,
        memo=memo,
        final=final,
    )
    keep = memo.settled
    memo.voiced[keep:n_frames] = voiced[keep - start :]
    memo.with_whisper[keep:n_frames] = with_whisper[keep - start :]
    memo.settled = max(keep, min(final, n_frames) - round(_CONTEXT_S * fps))
    if final >= n_frames:  # the call is over: every frame is settled
        memo.settled = n_frames
    return memo.voiced[:n_frames].copy(), memo.with_whisper[:n_frames].copy()


def _decide(
    P: np.ndarray,
    freqs: np.ndarray,
    band: slice,
    low: slice,
    e_db_all: np.ndarray,
    e_low_db_all: np.ndarray,
    start: int,
    *,
    sr: int,
    n_fft: int,
    fps: float,
    memo: VadMemo,
    final: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Voiced and voiced-or-whisper masks of frames ``start`` onwards."""
    n_frames = P.shape[1]
    e_db, e_low_db = e_db_all[start:], e_low_db_all[start:]
    floor_win = max(3, round(_FLOOR_WIN_S * fps))
    # Opening = running minimum then maximum: follows the floor between words, ignores
    # bursts shorter than the window.
    snr = e_db - grey_opening(e_db, size=floor_win, mode="nearest")
    snr_low = e_low_db - grey_opening(e_low_db, size=floor_win, mode="nearest")
    audible = e_db > _ABS_FLOOR_DB

    cand = np.flatnonzero((snr_low >= _VOICED_SNR_DB) & audible) + start
    todo = cand[~memo.periodic_known[cand]]
    if todo.size:
        block = max(1, round(_NOISE_BLOCK_S * fps))
        noise = _block_noise(P, low, e_db_all, todo // block, block=block, final=final, memo=memo)
        ac_new, lag_new = _periodicity(P, freqs, low, todo, sr=sr, n_fft=n_fft, noise=noise)
        memo.ac[todo], memo.lag[todo] = ac_new, lag_new
        # Kept once both the frame and its block's noise estimate are settled.
        memo.periodic_known[todo] = (todo < final) & np.isin(todo // block, list(memo.noise))
    ac, lag = memo.ac[cand], memo.lag[cand]
    n = n_frames - start
    voiced = np.zeros(n, bool)
    voiced[cand - start] = ac >= _VOICED_AC
    # Pitch continuity: noise also gives high single-frame peaks, but at random lags.
    lag_all = np.zeros(n, np.float32)
    lag_all[cand - start] = lag
    steady = np.abs(np.diff(lag_all)) <= _PITCH_TOL * lag_all[1:]
    cont = np.zeros_like(voiced)
    cont[1:] |= steady
    cont[:-1] |= steady
    nuclei = _keep_runs(voiced & cont, max(1, round(_MIN_VOICED_S * fps)))
    ext = max(0, round(_EXTEND_S * fps))
    near = binary_dilation(nuclei, structure=np.ones(2 * ext + 1, bool)) if ext else nuclei
    # Whisper is only looked for away from voiced speech (cheaper, and not needed there).
    whisper_nuclei = nuclei | _whisper(
        P, freqs, band, snr, audible & ~near, start, fps=fps, memo=memo, final=final
    )
    active = (snr >= _ACTIVE_SNR_DB) & audible
    return (
        _expand(nuclei, active, ext=ext, fps=fps),
        _expand(whisper_nuclei, active, ext=ext, fps=fps),
    )


def _expand(nuclei: np.ndarray, active: np.ndarray, *, ext: int, fps: float) -> np.ndarray:
    """Grow speech nuclei into whole speech stretches."""
    # Above-floor frames near a nucleus (consonants, onsets, decays) are speech too.
    speech = nuclei.copy()
    if ext:
        speech |= active & binary_dilation(nuclei, structure=np.ones(2 * ext + 1, bool))
    gap = max(1, round(_GAP_S * fps))
    speech |= binary_closing(speech, structure=np.ones(gap, bool))
    hang = round(_HANGOVER_S * fps)
    if hang:
        kernel = np.zeros(2 * hang + 1, bool)
        kernel[hang:] = True  # scipy mirrors the kernel: this extends *after* speech
        speech = binary_dilation(speech, structure=kernel)
    return np.asarray(speech, dtype=bool)


def _band(freqs: np.ndarray, hz: tuple[float, float], sr: int) -> slice:
    """Contiguous bin range inside ``hz`` (and below 0.45 * sr)."""
    idx = np.flatnonzero((freqs >= hz[0]) & (freqs <= min(hz[1], 0.45 * sr)))
    return slice(int(idx[0]), int(idx[-1]) + 1)


def _block_noise(
    P: np.ndarray,
    low: slice,
    e_db: np.ndarray,
    blocks: np.ndarray,
    *,
    block: int,
    final: int,
    memo: VadMemo,
) -> np.ndarray:
    """Noise spectrum behind each frame, (n_bins_low, len(blocks)), from its block's estimate.

    The estimate of block ``k`` is the mean spectrum of the quietest frames heard up
    to shortly before the block's end: it never looks further ahead, so a live stream
    and a whole recording get the same value.
    """
    lo_bin, hi_bin = low.start, low.stop - 1
    n_frames = P.shape[1]
    smooth_reach = 3  # e_db of a frame depends on its neighbours through the 50 ms smoothing
    out = {}
    unique, inverse = np.unique(blocks, return_inverse=True)
    for k in unique:
        k = int(k)
        if k in memo.noise:
            out[k] = memo.noise[k]
            continue
        m = min((k + 1) * block - _NOISE_MARGIN, n_frames)
        m = max(m, min(n_frames, 1))
        q = max(1, int(_NOISE_QUANTILE * m))
        quiet = np.argpartition(e_db[:m], q - 1)[:q] if q < m else np.arange(m)
        noise = P[lo_bin : hi_bin + 1, quiet].mean(axis=1)
        if min(m + smooth_reach, n_frames) <= final:
            memo.noise[k] = noise
        out[k] = noise
    return np.stack([out[int(k)] for k in unique], axis=1)[:, inverse]


def _periodicity(
    P: np.ndarray,
    freqs: np.ndarray,
    low: slice,
    cand: np.ndarray,
    *,
    sr: int,
    n_fft: int,
    noise: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised autocorrelation peak and its lag for frames ``cand``, both (len(cand),)."""
    lo_bin, hi_bin = low.start, low.stop - 1
    lags = np.arange(int(sr / _PITCH_HZ[1]), min(int(np.ceil(sr / _PITCH_HZ[0])), n_fft // 2) + 1)
    cos, inv_w, taper = _lag_basis(n_fft, lo_bin, hi_bin, tuple(int(g) for g in lags))
    # Noise spectrum subtracted first, so that stationary hiss and hum neither dilute nor
    # fake the periodicity of the voice above them.
    X = P[lo_bin : hi_bin + 1, cand]
    X = np.maximum(X - _SUBTRACT * noise, 0.0) * taper
    # Wiener-Khinchin on the power spectrum: r[lag] = sum_f X[f] cos(2 pi f lag / n_fft),
    # divided by the window's own autocorrelation (which does not depend on the frame).
    r = (cos @ X) * inv_w
    best = r.argmax(axis=0)
    peak = r[best, np.arange(len(cand))] / (X.sum(axis=0) + _EPS)
    return peak.astype(np.float32), lags[best].astype(np.float32)


@lru_cache(maxsize=8)
def _lag_basis(
    n_fft: int, lo_bin: int, hi_bin: int, lags: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cosine basis (n_lags, n_bins), inverse window autocorrelation (n_lags, 1), taper."""
    lag = np.asarray(lags)
    bins = np.arange(lo_bin, hi_bin + 1)
    cos = np.cos(np.outer(lag, 2.0 * np.pi * bins / n_fft)).astype(np.float32)
    # Undo the decay the (circular) autocorrelation of the Hann window imposes with lag.
    w = np.hanning(n_fft + 1)[:-1]
    wr = np.fft.irfft(np.abs(np.fft.rfft(w)) ** 2)
    inv_w = (wr[0] / wr[lag]).astype(np.float32)[:, None]
    # Tapered band edges: a brick-wall band adds sinc ripple to the autocorrelation.
    taper = np.sin(np.pi * (bins - lo_bin) / max(hi_bin - lo_bin, 1)) ** 2
    return cos, inv_w, taper.astype(np.float32)[:, None]


def _whisper(
    P: np.ndarray,
    freqs: np.ndarray,
    band: slice,
    snr: np.ndarray,
    allowed: np.ndarray,
    start: int,
    *,
    fps: float,
    memo: VadMemo,
    final: int,
) -> np.ndarray:
    """Whisper nuclei of frames ``start`` onwards (``snr``, ``allowed`` begin there)."""
    out = np.zeros(snr.size, bool)
    local = np.flatnonzero((snr >= _WHISPER_SNR_DB) & allowed)
    if local.size == 0:
        return out
    cand = local + start
    todo = cand[~memo.shape_known[cand]]
    if todo.size:
        lo_bin, hi_bin = band.start, band.stop - 1
        Pc = P[lo_bin : hi_bin + 1, todo] + np.float32(_EPS)
        # Flatness near 1 is hiss or rub; speech has formant peaks.
        memo.flat[todo] = np.exp(np.log(Pc).mean(axis=0)) / Pc.mean(axis=0)
        n_low = int(np.count_nonzero(freqs[lo_bin : hi_bin + 1] < 900.0))
        memo.low_share[todo] = Pc[:n_low].sum(axis=0) / Pc.sum(axis=0)
        memo.shape_known[todo] = todo < final
    out[local] = (memo.flat[cand] < _WHISPER_FLATNESS) & (memo.low_share[cand] > _WHISPER_LOW_SHARE)
    out |= binary_closing(out, structure=np.ones(3, bool))
    return _keep_runs(out, max(1, round(_MIN_WHISPER_S * fps)))


def _keep_runs(mask: np.ndarray, min_len: int) -> np.ndarray:
    """Drop True runs shorter than ``min_len`` frames."""
    if min_len <= 1:
        return mask
    regions, n = label(mask)
    if n == 0:
        return mask
    lengths = np.bincount(regions)
    ok = lengths >= min_len
    ok[0] = False
    return ok[regions]


def speech_segments(
    mask: np.ndarray,
    *,
    hop_length: int = 80,
    sr: int = 8000,
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
