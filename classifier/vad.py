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
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
from scipy import fft as sp_fft

from classifier.errors import InvalidParameterError
from classifier.threads import one_blas_thread

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
        self._shaped = np.zeros(0, bool)  # flat and low_share within the whisper limits
        self._sums = np.zeros((0, 2), np.float32)
        self._sums_done = 0
        # Smoothed energy in dB, (frames, 2): activity band, low band; settled up to _db_done.
        self._db = np.zeros((0, 2), np.float32)
        self._db_done = 0
        # The floor's two running filters (see _floor), (frames, 2) each, and how many
        # leading frames of each are settled.
        self._eroded = np.zeros((0, 2), np.float32)
        self._eroded_done = 0
        self._floor = np.zeros((0, 2), np.float32)
        self._floor_done = 0
        # Noise spectrum of each block, (blocks, n_low_bins); the first _noise_done are
        # settled, the rows after them are scratch for the current update.
        self._noise = np.zeros((0, 0), np.float32)
        self._noise_done = 0
        self._quiet: _QuietFrames | None = None
        self._keys = np.zeros(0, np.int64)  # _energy_keys of every frame, settled up to _keys_done
        self._keys_done = 0
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
        if self.ac.shape[0] >= n_frames:
            return
        names = ("ac", "lag", "periodic_known", "flat", "low_share", "shape_known", "_shaped")
        for name in (*names, "voiced", "with_whisper", "_db", "_eroded", "_floor"):
            setattr(self, name, grow_rows(getattr(self, name), n_frames))

    @property
    def nbytes(self) -> int:
        return int(
            self.ac.nbytes * 4
            + self.periodic_known.nbytes * 3
            + self._sums.nbytes
            + self._db.nbytes * 3
            + self._noise.nbytes
            + self._keys.nbytes
            + (self._quiet.mid.nbytes if self._quiet is not None else 0)
        )


_INT64_MIN = np.iinfo(np.int64).min
_INT64_MAX = np.iinfo(np.int64).max
_FRAME_BITS = 0xFFFFFFFF  # a key's low 32 bits: its frame index


class _QuietFrames(NamedTuple):
    """The quietest frames among the first ``added``, ranked by activity-band energy.

    Frames are ranked by int64 keys that sort like (e_db, frame index)
    (:func:`_energy_keys`). Only the keys near the quiet share's boundary are kept in
    order: the ``below`` frames with a key under ``bounds[0]`` are all quiet, the keys in
    ``[bounds[0], bounds[1])`` are kept sorted in ``mid`` (the first ``taken`` quiet),
    and none above is. Adding a second of frames then costs O(frames added) instead of a
    selection over the whole call; when the boundary leaves ``mid``, the split is drawn
    again from all frames (:func:`_quiet_split`).
    """

    added: int
    below: int
    bounds: np.ndarray  # int64 (2,)
    mid: np.ndarray  # int64, sorted
    taken: int
    power: np.ndarray  # float64 (n_low_bins,): low-band power summed over the quiet frames

    @classmethod
    def empty(cls, n_bins: int) -> _QuietFrames:
        bounds = np.array([_INT64_MIN, _INT64_MIN])  # every frame above: split at once
        return cls(0, 0, bounds, np.zeros(0, np.int64), 0, np.zeros(n_bins))


def _energy_keys(e_db: np.ndarray, first: int) -> np.ndarray:
    """int64 keys ordered like (e_db, frame index) for frames ``first`` onwards, (n,).

    ``e_db`` is float32 (n,), finite; -0.0 ranks just below +0.0.
    """
    keys = np.ascontiguousarray(e_db, dtype=np.float32).view(np.int32).astype(np.int64)
    # IEEE floats order like their bits when positive and reversed when negative: flip
    # the 31 low bits of the negative ones (the arithmetic shift gives -1 there, else 0).
    keys ^= (keys >> 31) & 0x7FFFFFFF
    keys <<= 32
    keys |= np.arange(first, first + e_db.size)
    return keys


def _power_sum(P_low: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Low-band power summed over the frames of ``keys``, float64 (n_low_bins,)."""
    return P_low[:, keys & _FRAME_BITS].sum(axis=1, dtype=np.float64)


def _quiet_step(
    quiet: _QuietFrames, P_low: np.ndarray, keys: np.ndarray, m: int, q: int
) -> _QuietFrames:
    """``quiet`` with frames up to ``m`` added and the ``q`` quietest of them selected.

    ``keys`` are :func:`_energy_keys` of every frame. A pure function of its arguments
    (nothing is changed in place), so that a block a live stream must undo later is
    computed by exactly the steps, in the same order, that a recording ending there
    takes: the float sums come out identical.
    """
    new = keys[quiet.added : m].copy()
    new.sort()
    mid = np.empty(quiet.mid.size + new.size, np.int64)
    power = np.empty_like(quiet.power)
    out = np.empty(3, np.int64)
    ok = _kernels().quiet_step(
        quiet.mid,
        quiet.taken,
        quiet.below,
        quiet.bounds,
        quiet.power,
        new,
        P_low,
        q,
        mid,
        power,
        out,
    )
    size, taken, below = out.tolist()
    if not ok or size > 6 * _quiet_slack(m):
        return _quiet_split(P_low, keys, m, q)
    return _QuietFrames(m, below, quiet.bounds, mid[:size], taken, power)


def _quiet_slack(m: int) -> int:
    """Ranks either side of the quiet share's boundary that a split keeps sorted.

    A new split (O(m)) is needed when the boundary leaves them: in a steady background
    every ~m / 100 blocks, at worst (a background that keeps getting quieter, so that all
    new frames join the quiet share) every slack / 85 blocks; the slack grows with the
    call to keep that rare, and stays small enough for the sorted keys to merge cheaply.
    """
    return max(256, m // 128)


def _quiet_split(P_low: np.ndarray, keys: np.ndarray, m: int, q: int) -> _QuietFrames:
    """:class:`_QuietFrames` of the first ``m`` frames drawn from scratch, O(m)."""
    slack = _quiet_slack(m)
    # Twice the room below: a boundary moves down fast (a background getting quieter:
    # every new frame joins the quiet share), up only by 15 % of the new frames.
    lo_rank, hi_rank = max(q - 2 * slack, 0), min(q + slack, m)
    part = np.partition(keys[:m], [lo_rank, hi_rank] if hi_rank < m else [lo_rank])
    bounds = np.array([part[lo_rank], part[hi_rank] if hi_rank < m else _INT64_MAX])
    mid = np.sort(part[lo_rank:hi_rank])
    # Summed in frame order: the result does not depend on how partition left them.
    quiet = np.concatenate((np.sort(part[:lo_rank] & _FRAME_BITS), mid[: q - lo_rank]))
    return _QuietFrames(m, lo_rank, bounds, mid, q - lo_rank, _power_sum(P_low, quiet))


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
    band = _band(freqs, _BAND_HZ, sr)
    n_low = int(np.count_nonzero(freqs[band] < 900.0))
    return _Bands(freqs, band, _band(freqs, _LOW_HZ, sr), n_low)


class _Lengths(NamedTuple):
    """The detector's time constants in frames, at one frame rate."""

    context: int  # _CONTEXT_S
    smooth: tuple[int, int]  # frames before and after in the energy smoothing
    floor: int  # _FLOOR_WIN_S
    block: int  # _NOISE_BLOCK_S
    nuclei: np.ndarray  # the mask programs of _decide
    expand: np.ndarray


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


def _smoothed_db(
    memo: VadMemo, n_frames: int, final: int, *, scale: np.float32, lengths: _Lengths
) -> np.ndarray:
    """Smoothed band energies in dB, (n_frames, 2) float32: activity band, low band.

    ``uniform_filter1d(band_sums, size)`` (mode "reflect"), but as an explicit sum of
    the ``size`` neighbours of each frame rather than scipy's running sum: a frame's value
    then does not depend on where the array starts, so settled frames keep theirs in the
    memo and an update only computes the new ones. The two differ by float rounding.
    """
    before, after = lengths.smooth
    size = before + 1 + after
    lo = min(memo._db_done, n_frames)
    first = max(lo - before, 0)
    x = memo._sums[first:n_frames]
    m = n_frames - lo
    left = before - (lo - first)  # frames before the call's start, mirrored
    if x.shape[0] > max(left, after):
        # scipy's "reflect": d c b a | a b c d | d c b a
        ext = np.empty((m + size - 1, 2))
        ext[left : left + x.shape[0]] = x
        ext[:left] = x[left - 1 :: -1] if left else ext[:0]
        ext[left + x.shape[0] :] = x[: -after - 1 : -1]
    else:  # a few frames only: mirrored over and over, as numpy's "symmetric" does
        ext = np.pad(x.astype(np.float64), ((left, after), (0, 0)), mode="symmetric")
    acc = ext[:m] + ext[1 : 1 + m] if size > 1 else ext[:m].copy()
    for k in range(2, size):
        acc += ext[k : k + m]
    acc /= size
    mean = acc.astype(np.float32)
    mean *= scale
    mean += _EPS
    np.log10(mean, out=mean)
    mean *= 10.0
    memo._db[lo:n_frames] = mean
    memo._db_done = n_frames if final >= n_frames else max(memo._db_done, final - after)
    return memo._db[:n_frames]


def _floor(memo: VadMemo, e_db: np.ndarray, final: int, *, size: int) -> np.ndarray:
    """Noise floor of the smoothed band energies ``e_db`` (n_frames, 2), float32 (n_frames, 2).

    The floor is a grey opening over ``size`` frames (running minimum, then maximum): it
    follows the floor between words and ignores bursts shorter than the window. It
    equals ``grey_opening(e_db[:, c], size, mode="nearest")`` of the frames heard so far:
    its grey_erosion, then its grey_dilation (whose window scipy mirrors, reaching a
    frame further after for an even size), each a compiled running extreme kept in the
    memo for the frames whose value no later frame can change, so that an update only
    filters its last ~2.5 s (scipy's own 1-D filters cost ~4x more here, mostly
    per-call overhead).
    """
    n = e_db.shape[0]
    (e_before, e_after), (d_before, d_after) = _erosion_reach(size), _dilation_reach(size)
    extreme = _kernels().extreme
    extreme(e_db, memo._eroded, min(memo._eroded_done, n), size, e_before, False)
    memo._eroded_done = n if final >= n else max(memo._eroded_done, memo._db_done - e_after)
    extreme(memo._eroded[:n], memo._floor, min(memo._floor_done, n), size, d_before, True)
    memo._floor_done = n if final >= n else max(memo._floor_done, memo._eroded_done - d_after)
    return memo._floor[:n]


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


def _block_noise(
    P: np.ndarray,
    low: slice,
    e_db: np.ndarray,
    last_block: int,
    *,
    block: int,
    reach: int,
    final: int,
    memo: VadMemo,
) -> None:
    """Noise spectra of the blocks up to ``last_block`` into ``memo._noise`` rows.

    The estimate of block ``k`` is the mean low-band spectrum of the quietest 15 % of
    the frames heard up to shortly before the block's end: it never looks further ahead,
    so a live stream and a whole recording get the same value. Blocks are added to the
    quiet frames in order; a block whose frames are not all settled (``e_db`` reaches
    ``reach`` frames ahead) is computed but not kept in the memo, and its row is
    recomputed at the next update.
    """
    done = memo._noise_done
    if last_block < done:
        return
    n_frames = P.shape[1]
    P_low = P[low]
    if memo._noise.shape[1] != P_low.shape[0]:
        memo._noise = np.zeros((0, P_low.shape[0]), np.float32)
    memo._noise = grow_rows(memo._noise, last_block + 1)
    # Keys of frames whose e_db is settled are kept; the others are recomputed.
    memo._keys = grow_rows(memo._keys, n_frames)
    memo._keys[memo._keys_done : n_frames] = _energy_keys(
        e_db[memo._keys_done : n_frames], memo._keys_done
    )
    memo._keys_done = min(memo._db_done, n_frames)
    quiet = memo._quiet if memo._quiet is not None else _QuietFrames.empty(P_low.shape[0])
    for k in range(done, last_block + 1):
        m = max(min((k + 1) * block - _NOISE_MARGIN, n_frames), min(n_frames, 1))
        q = max(1, int(_NOISE_QUANTILE * m))
        quiet = _quiet_step(quiet, P_low, memo._keys, m, q)
        memo._noise[k] = quiet.power / q
        if k == memo._noise_done and min(m + reach, n_frames) <= final:
            memo._quiet, memo._noise_done = quiet, k + 1


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


# ------------------------------------------------------------------ 1-D morphology
# The masks are grown, closed and cut by a dozen 1-D morphological steps, and the floor
# is a running minimum and maximum. As scipy.ndimage calls each cost 10-20 us of Python
# overhead on the ~600 frames a live update looks at, and even a few numpy calls per
# step add up to ~100 us, they run in compiled loops (_kernels): the mask steps as a
# short program in one loop. Each reproduces the scipy function named beside it exactly
# (tests/code/test_vad_morphology.py compares them on random inputs).


def _dilation_reach(size: int) -> tuple[int, int]:
    """Frames before and after a frame that a flat dilation of ``size`` looks at.

    ``binary_dilation(x, structure=np.ones(size))[i] == x[i - before : i + after + 1].any()``:
    scipy mirrors the structure of a dilation, so an even size looks one frame further
    after than before.
    """
    return (size - 1) // 2, size // 2


def _erosion_reach(size: int) -> tuple[int, int]:
    """As :func:`_dilation_reach` for ``binary_erosion`` (structure not mirrored)."""
    return size // 2, (size - 1) // 2


# Rows of the bool work array (n_rows, n_frames) that the mask programs run on.
(
    _STEADY,  # in: voiced frames with a steady pitch lag
    _SHAPED,  # in: whisper-shaped frames away from voiced speech
    _ACTIVE,  # in: audible frames above the floor
    _NUCLEI,
    _NEAR,
    _WHISPER,
    _TMP,
    _SEEDS,
    _SEEDS_NEAR,
    _VOICED,  # out
    _WITH_WHISPER,  # out
) = range(11)
_N_ROWS = 11


def _step(
    src: int,
    dst: int,
    reach: tuple[int, int] = (0, 0),
    *,
    every: bool = False,
    and_row: int = -1,
    and_not_row: int = -1,
    or_row: int = -1,
) -> list[int]:
    """One step of a mask program (see :func:`_kernels`)."""
    return [src, dst, reach[0], reach[1], int(every), and_row, and_not_row, or_row]


@lru_cache(maxsize=8)
def _mask_programs(
    min_voiced: int, ext: int, min_whisper: int, gap: int, hang: int
) -> tuple[np.ndarray, np.ndarray]:
    """The two mask programs of :func:`_decide`, int64 (n_steps, 8) each.

    The first finds the voiced nuclei and the frames near them (whisper is looked for
    away from those); the second grows voiced and voiced-or-whisper speech. Lengths in
    frames; a length of 1 (or reach 0) makes a step an identity.
    """
    runs, runs_w = _erosion_reach(min_voiced), _erosion_reach(min_whisper)
    nuclei = [
        # _keep_runs(steady, min_voiced): an opening, erosion then dilation
        _step(_STEADY, _TMP, runs, every=True),
        _step(_TMP, _NUCLEI, runs[::-1]),
        # binary_dilation(nuclei, structure=np.ones(2 * ext + 1))
        _step(_NUCLEI, _NEAR, (ext, ext)),
    ]
    expand = [
        # shaped | binary_closing(shaped, structure=np.ones(3)), then _keep_runs
        _step(_SHAPED, _TMP, _dilation_reach(3)),
        _step(_TMP, _WHISPER, _erosion_reach(3), every=True, or_row=_SHAPED),
        _step(_WHISPER, _TMP, runs_w, every=True),
        _step(_TMP, _WHISPER, runs_w[::-1]),
        # voiced-or-whisper nuclei and the frames near them
        _step(_WHISPER, _SEEDS, or_row=_NUCLEI),
        _step(_SEEDS, _SEEDS_NEAR, (ext, ext)),
    ]
    for seeds, near, out in ((_NUCLEI, _NEAR, _VOICED), (_SEEDS, _SEEDS_NEAR, _WITH_WHISPER)):
        expand += [
            # Above-floor frames near a nucleus (consonants, onsets, decays) are speech.
            _step(near, out, and_row=_ACTIVE, or_row=seeds),
            # speech | binary_closing(speech, structure=np.ones(gap))
            _step(out, _TMP, _dilation_reach(gap)),
            _step(_TMP, out, _erosion_reach(gap), every=True, or_row=out),
            # binary_dilation by [0] * hang + [1] * (hang + 1), which scipy mirrors:
            # speech extends hang frames after itself.
            _step(out, out, (hang, 0)),
        ]
    return np.array(nuclei, np.int64), np.array(expand, np.int64)


@lru_cache(maxsize=1)
def _kernels() -> SimpleNamespace:
    """The detector's compiled loops (numba, as the model's tree walk), built on first use.

    ``run(rows, program)`` runs a mask program: for each step ``(src, dst, before,
    after, every, and_row, and_not_row, or_row)`` of ``program`` (n_steps, 8) int64, row
    ``dst`` of ``rows`` (n_rows, n) bool becomes the any (every=0: ``binary_dilation``)
    or all (every=1, frames outside False: ``binary_erosion`` with ``border_value=0``)
    of ``rows[src][i - before : i + after + 1]``, then ANDed with row ``and_row``, with
    the negation of row ``and_not_row`` and ORed with row ``or_row`` where those are
    >= 0. One loop for every step: a function per step would multiply numba's compile
    time, which all these loops together already take ~2 s of, once per process, on
    the shared 2-core machine.

    ``inputs(rows, at, ac, lag, snr, audible, ac_min, tol, active_snr)`` fills the
    program's input rows: ``_STEADY``, the voiced frames (``ac >= ac_min``) among frames
    ``at`` (int64) whose pitch lag ``lag`` (float32; other frames lag 0) is within
    ``tol`` (float32) of a neighbour's, as ``abs(diff(lags)) <= tol * lags[1:]``; and
    ``_ACTIVE``, ``(snr >= active_snr) & audible``.

    ``extreme(x, out, lo, size, before, is_max)`` sets ``out[i, c]`` for ``i >= lo`` to
    the minimum (maximum) of ``x[i - before : i - before + size, c]`` (x (n, k) float),
    the window clipped to the array: ``minimum_filter1d`` (``maximum_filter1d``) with
    ``mode="nearest"`` and ``origin=before - size // 2``.

    ``quiet_step(mid, taken, below, bounds, power, new, P, q, mid_out, power_out, out)``
    is the work of :func:`_quiet_step`: ``new`` (sorted keys of the added frames) merged
    into ``mid`` (into ``mid_out``), the low-band power ``P[:, f]`` (n_bins, n_frames) of
    the frames that join or leave the ``q`` quietest added to or taken from ``power``
    (into ``power_out``, frame by frame in key order), ``out`` = (size of the merged
    mid, taken, below); False when the quiet share's boundary left the sorted keys.
    """
    import numba

    @numba.njit(nogil=True, cache=True)
    def run(rows: np.ndarray, program: np.ndarray) -> None:
        n = rows.shape[1]
        out = np.empty(n, np.bool_)
        last = np.empty(n, np.int64)
        for k in range(program.shape[0]):
            x = rows[program[k, 0]]
            before, after = program[k, 2], program[k, 3]
            # last[j]: the last frame up to j that decides a window (a False frame for
            # all, a True one for any); far before the array where there is none.
            prev = -n - before - 1
            if program[k, 4] == 1:
                for j in range(n):
                    prev = prev if x[j] else j
                    last[j] = prev
                for i in range(n):
                    out[i] = False  # windows that leave the array
                for i in range(before, n - after):
                    out[i] = last[i + after] < i - before
            else:
                for j in range(n):
                    prev = j if x[j] else prev
                    last[j] = prev
                for i in range(n):
                    out[i] = last[min(i + after, n - 1)] >= i - before
            if program[k, 5] >= 0:
                a = rows[program[k, 5]]
                for i in range(n):
                    out[i] = out[i] and a[i]
            if program[k, 6] >= 0:
                a = rows[program[k, 6]]
                for i in range(n):
                    out[i] = out[i] and not a[i]
            if program[k, 7] >= 0:
                a = rows[program[k, 7]]
                for i in range(n):
                    out[i] = out[i] or a[i]
            y = rows[program[k, 1]]
            for i in range(n):
                y[i] = out[i]

    @numba.njit(nogil=True, cache=True)
    def inputs(
        rows: np.ndarray,
        at: np.ndarray,
        ac: np.ndarray,
        lag: np.ndarray,
        snr: np.ndarray,
        audible: np.ndarray,
        ac_min: float,
        tol: np.float32,
        active_snr: float,
    ) -> None:
        n = rows.shape[1]
        st = rows[_STEADY]
        lags = np.zeros(n, np.float32)
        for k in range(at.size):
            lags[at[k]] = lag[k]
        for k in range(at.size):
            i = at[k]
            if ac[k] >= ac_min:
                prev = i > 0 and abs(lags[i] - lags[i - 1]) <= tol * lags[i]
                succ = i < n - 1 and abs(lags[i + 1] - lags[i]) <= tol * lags[i + 1]
                st[i] = prev or succ
        active = rows[_ACTIVE]
        for i in range(n):
            active[i] = snr[i] >= active_snr and audible[i]

    @numba.njit(nogil=True, cache=True)
    def extreme(
        x: np.ndarray, out: np.ndarray, lo: int, size: int, before: int, is_max: bool
    ) -> None:
        # out[i, c] for i >= lo: min (max) of x[i - before : i - before + size, c], the
        # window clipped to the array (mode="nearest" repeats the edge values, which
        # change neither). A monotonic queue of candidate frames per column: O(n).
        n = x.shape[0]
        queue = np.empty(n, np.int64)
        for c in range(x.shape[1]):
            head = 0
            tail = 0
            j = max(lo - before, 0)  # next frame to enter
            for i in range(lo, n):
                first = max(i - before, 0)
                last = min(i - before + size - 1, n - 1)
                while j <= last:
                    v = x[j, c]
                    if is_max:
                        while tail > head and x[queue[tail - 1], c] <= v:
                            tail -= 1
                    else:
                        while tail > head and x[queue[tail - 1], c] >= v:
                            tail -= 1
                    queue[tail] = j
                    tail += 1
                    j += 1
                while queue[head] < first:
                    head += 1
                out[i, c] = x[queue[head], c]

    @numba.njit(nogil=True, cache=True)
    def quiet_step(
        mid: np.ndarray,
        taken: int,
        below: int,
        bounds: np.ndarray,
        power: np.ndarray,
        new: np.ndarray,
        P: np.ndarray,
        q: int,
        mid_out: np.ndarray,
        power_out: np.ndarray,
        out: np.ndarray,
    ) -> bool:
        n_bins = power.size
        for r in range(n_bins):
            power_out[r] = power[r]
        lo, hi = bounds[0], bounds[1]
        last_quiet = mid[taken - 1] if taken > 0 else lo
        k = 0
        while k < new.size and new[k] < lo:  # below the sorted keys: quiet
            f = new[k] & 0xFFFFFFFF
            for r in range(n_bins):
                power_out[r] += P[r, f]
            below += 1
            k += 1
        # Merge the new keys below hi into mid; those below its last quiet one join.
        i = 0
        size = 0
        while i < mid.size or (k < new.size and new[k] < hi):
            if k < new.size and new[k] < hi and (i == mid.size or new[k] < mid[i]):
                x = new[k]
                k += 1
                if x < last_quiet:
                    f = x & 0xFFFFFFFF
                    for r in range(n_bins):
                        power_out[r] += P[r, f]
                    taken += 1
            else:
                x = mid[i]
                i += 1
            mid_out[size] = x
            size += 1
        want = q - below
        out[0], out[1], out[2] = size, taken, below
        if want < 0 or want > size:
            return False  # the boundary left the sorted keys
        while taken < want:
            f = mid_out[taken] & 0xFFFFFFFF
            for r in range(n_bins):
                power_out[r] += P[r, f]
            taken += 1
        while taken > want:
            taken -= 1
            f = mid_out[taken] & 0xFFFFFFFF
            for r in range(n_bins):
                power_out[r] -= P[r, f]
        out[1] = taken
        return True

    return SimpleNamespace(run=run, inputs=inputs, extreme=extreme, quiet_step=quiet_step)


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
