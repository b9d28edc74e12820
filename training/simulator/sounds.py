"""Procedural non-speech sounds for the 112 call simulator, plus real-recording mixing.

Every generator draws all its choices from the ``numpy.random.Generator`` it is given,
varies its parameters on every call (rates, spectra, levels, event timing), and
returns float32 mono audio of exactly ``round(duration_s * sr)`` samples, scaled to an
RMS of about 0.05 (the renderer sets the final level). Sounds are built from a few
vectorised passes (event templates scattered with ``np.bincount``, one or two IIR
filters over the whole signal), so a minute of any of them costs a few milliseconds.

:data:`BACKGROUNDS` maps background names to generators with the uniform signature
``(rng, *, duration_s, sr) -> ndarray``. :func:`load_folder` and :func:`excerpt` mix in
real recordings instead.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import scipy.fft
import scipy.ndimage
import scipy.signal

from classifier.errors import InvalidParameterError

__all__ = [
    "BACKGROUNDS",
    "breathing",
    "comfort_noise",
    "crowd",
    "distant_talk",
    "excerpt",
    "footsteps",
    "kitchen",
    "laughter",
    "load_folder",
    "pocket_rustle",
    "rain",
    "reverb",
    "room_tone",
    "siren",
    "traffic",
    "tv_or_music",
    "wind",
]

TARGET_RMS = 0.05
_PEAK_CAP = 0.95
_AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
_SPEED_OF_SOUND = 343.0


# ============================================================================ helpers


def _check_sr(sr: int) -> int:
    if isinstance(sr, bool) or not isinstance(sr, int | np.integer) or not 4000 <= sr <= 48000:
        raise InvalidParameterError(f"sr must be an integer in [4000, 48000] Hz, got {sr!r}")
    return int(sr)


def _n_samples(duration_s: float, sr: int) -> int:
    sr = _check_sr(sr)
    d = float(duration_s)
    if not (math.isfinite(d) and 0.0 <= d <= 3600.0):
        raise InvalidParameterError(f"duration_s must be in [0, 3600] seconds, got {duration_s!r}")
    return round(d * sr)


def _check_rng(rng: np.random.Generator) -> None:
    if not isinstance(rng, np.random.Generator):
        raise InvalidParameterError(
            f"rng must be a numpy.random.Generator, got {type(rng).__name__}"
        )


def _check_audio(x: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise InvalidParameterError(f"{name} must be a real numeric array, got dtype {a.dtype}")
    if a.ndim != 1:
        raise InvalidParameterError(f"{name} must be 1-D (mono), got shape {a.shape}")
    a = a.astype(np.float32, copy=False)
    if not np.all(np.isfinite(a)):
        raise InvalidParameterError(f"{name} must be finite, got NaN or inf values")
    return a


def _noise(rng: np.random.Generator, n: int, scale: float = 1.0) -> np.ndarray:
    """White noise of RMS ``scale``, float32, shape (n,).

    Uniform 16-bit values straight from the bit generator: three times as fast as
    ``Generator.random``, and Gaussian anyway after any filter.
    """
    raw = rng.bit_generator.random_raw(-(-n // 4))
    out = np.asarray(raw).view(np.int16)[:n].astype(np.float32)
    out *= np.float32(scale * math.sqrt(3.0) / 32768.0)
    return out


def _rms(x: np.ndarray) -> float:
    """Root mean square (a float32 dot product: fast, and exact enough for levels)."""
    return math.sqrt(float(np.dot(x, x)) / x.size) if x.size else 0.0


def _finish(x: np.ndarray, n: int, rms: float = TARGET_RMS) -> np.ndarray:
    """Crop or pad to ``n`` samples, scale to ``rms`` (peak capped), float32, finite.

    Scales ``x`` in place when it is already float32: callers pass their own scratch.
    """
    y = np.asarray(x, dtype=np.float32)[:n]
    if y.size < n:
        y = np.pad(y, (0, n - y.size))
    cur = _rms(y)
    if not math.isfinite(cur):  # cannot happen by construction; never pass NaN on
        y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
        cur = _rms(y)
    y = np.ascontiguousarray(y)
    if cur < 1e-12:
        return y
    g = rms / cur
    peak = max(float(y.max()), -float(y.min())) * g
    if peak > _PEAK_CAP:
        g *= _PEAK_CAP / peak
    y *= np.float32(g)
    return y


@functools.lru_cache(maxsize=1024)
def _butter_cached(order: int, kind: str, freq: float, sr: int) -> np.ndarray:
    """Butterworth low- or high-pass as SOS, float32: the same filter as
    ``scipy.signal.butter(order, freq, btype=kind, fs=sr, output="sos")`` (bilinear
    transform with pre-warping), written out per section because scipy's general
    design costs ~1 ms and corner frequencies rarely repeat."""
    k = math.tan(math.pi * freq / sr)
    k2 = k * k
    rows = []
    for j in range(order // 2):
        # Analog section s^2 + s / q + 1, q from the Butterworth pole angles.
        q = 1.0 / (2.0 * math.sin((2 * j + 1) * math.pi / (2 * order)))
        norm = 1.0 / (1.0 + k / q + k2)
        a1, a2 = 2.0 * (k2 - 1.0) * norm, (1.0 - k / q + k2) * norm
        b0 = k2 * norm if kind == "lowpass" else norm
        b1 = 2.0 * b0 if kind == "lowpass" else -2.0 * b0
        rows.append([b0, b1, b0, 1.0, a1, a2])
    if order % 2:
        norm = 1.0 / (1.0 + k)
        b0 = k * norm if kind == "lowpass" else norm
        rows.append([b0, b0 if kind == "lowpass" else -b0, 0.0, 1.0, (k - 1.0) * norm, 0.0])
    return np.asarray(rows, dtype=np.float32)


def _grid(freq: float) -> float:
    """Round a corner frequency to a 1/24-octave grid so filter designs are cached."""
    return float(2.0 ** (round(math.log2(max(freq, 1.0)) * 24) / 24))


def _band(order: int, lo: float, hi: float, sr: int) -> np.ndarray:
    """Butterworth SOS: high-pass at ``lo`` (if > 0) cascaded with low-pass at ``hi``
    (if below Nyquist), so band-pass, high-pass or low-pass; shape (k, 6), float32.
    """
    nyq = sr / 2.0
    rows = []
    if lo > 0:
        rows.append(_butter_cached(order, "highpass", min(_grid(lo), 0.9 * nyq), sr))
    if hi < nyq:
        rows.append(_butter_cached(order, "lowpass", min(_grid(hi), 0.95 * nyq), sr))
    if not rows:
        return np.array([[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]], dtype=np.float32)
    return np.vstack(rows)  # a new array: callers may scale it in place


@functools.lru_cache(maxsize=8)
def _guard_pattern(n: int) -> np.ndarray:
    # A fixed +-1e-20 pattern (a constant, not a random choice), cached per length.
    signs = np.where(np.arange(4096) * 2654435761 % 4294967296 < 2147483648, 1.0, -1.0)
    out = np.resize((signs * 1e-20).astype(np.float32), n)
    out.setflags(write=False)
    return out


def _guard(x: np.ndarray) -> np.ndarray:
    """``x`` plus a -400 dB floor: IIR filters decaying into silence would otherwise hit
    subnormal floats, which are ~100x slower on x86."""
    a = np.asarray(x, dtype=np.float32)
    return a + _guard_pattern(a.size).reshape(a.shape)


def _filt(sos: np.ndarray, x: np.ndarray, *, dense: bool = False) -> np.ndarray:
    """``sosfilt`` in float32. ``dense`` inputs (noise that never stops) need no guard
    against subnormals."""
    a = np.asarray(x, dtype=np.float32) if dense else _guard(x)
    return scipy.signal.sosfilt(np.asarray(sos, dtype=np.float32), a)


def _resonator_sos(freq: float, bw: float, sr: int) -> np.ndarray:
    """Two-pole resonator (a formant or a body mode) as one SOS row, unit peak gain."""
    r = math.exp(-math.pi * bw / sr)
    theta = 2.0 * math.pi * freq / sr
    a1, a2 = -2.0 * r * math.cos(theta), r * r
    # Gain so the peak is ~1: |H(e^{j theta})| of 1 / (1 + a1 z^-1 + a2 z^-2).
    h = abs(1.0 / (1.0 + a1 * np.exp(-1j * theta) + a2 * np.exp(-2j * theta)))
    return np.array([[1.0 / h, 0.0, 0.0, 1.0, a1, a2]], dtype=np.float32)


def _upsample(ctrl: np.ndarray, factor: int, n: int) -> np.ndarray:
    """Linear interpolation of a control signal with one value per ``factor`` samples."""
    c = np.asarray(ctrl, dtype=np.float32)
    need = -(-n // factor) + 1
    if c.size < need:
        c = np.pad(c, (0, need - c.size), mode="edge")
    out = np.multiply.outer(c[1:need] - c[: need - 1], _ramp(factor))
    out += c[: need - 1, None]
    return out.ravel()[:n]


def _mul_ramp(x: np.ndarray, ctrl: np.ndarray, factor: int) -> np.ndarray:
    """``x *= _upsample(ctrl, factor, x.size)`` without the full-length temporary."""
    n = x.size
    c = np.asarray(ctrl, dtype=np.float32)
    need = -(-n // factor) + 1
    if c.size < need:
        c = np.pad(c, (0, need - c.size), mode="edge")
    w = _ramp(factor)
    full = n // factor
    if full:
        g = np.multiply.outer(c[1 : full + 1] - c[:full], w)
        g += c[:full, None]
        x[: full * factor].reshape(full, factor)[...] *= g
    rest = n - full * factor
    if rest:
        x[full * factor :] *= c[full] + (c[full + 1] - c[full]) * w[:rest]
    return x


@functools.lru_cache(maxsize=64)
def _ramp(factor: int) -> np.ndarray:
    w = np.arange(factor, dtype=np.float32) / np.float32(factor)
    w.setflags(write=False)
    return w


@functools.lru_cache(maxsize=256)
def _slow_filter(c: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Second-order low-pass at normalised corner ``c`` and its white-noise gain."""
    b, a = scipy.signal.butter(2, c)
    impulse = np.zeros(min(200_000, int(40 / c) + 16))
    impulse[0] = 1.0
    h = scipy.signal.lfilter(b, a, impulse)
    return b, a, float(np.sqrt(np.sum(h * h)))


def _slow_noise(
    rng: np.random.Generator, n_ctrl: int, *, cutoff: float, rate: float = 100.0
) -> np.ndarray:
    """A smooth random control signal (zero mean, unit std) at ``rate`` Hz.

    Low-pass filtered Gaussian noise with corner ``cutoff`` Hz, scaled by the filter's
    theoretical gain (not the sample std, which would blow short clips up);
    shape (n_ctrl,), float64.
    """
    c = min(max(_grid(cutoff) / (rate / 2.0), 1e-4), 0.99)
    b, a, gain = _slow_filter(c)
    warm = int(2 * rate / max(cutoff, 0.01))  # let the filter settle
    w = rng.standard_normal(n_ctrl + warm)
    return scipy.signal.lfilter(b, a, w)[warm:] / gain


def _peaking_sos(freq: float, gain_db: float, q: float, sr: int) -> np.ndarray:
    """Peaking equaliser (RBJ cookbook) as one SOS row: +gain_db around freq."""
    amp = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * min(freq, 0.45 * sr) / sr
    alpha = math.sin(w0) / (2.0 * q)
    b = [1.0 + alpha * amp, -2.0 * math.cos(w0), 1.0 - alpha * amp]
    a = [1.0 + alpha / amp, -2.0 * math.cos(w0), 1.0 - alpha / amp]
    return np.array([[*(v / a[0] for v in b), 1.0, a[1] / a[0], a[2] / a[0]]], dtype=np.float32)


def _phase(freq: np.ndarray, factor: int, n: int, sr: int) -> np.ndarray:
    """Phase in cycles of an oscillator whose frequency (Hz) is given at a control
    rate (one value per ``factor`` samples, linearly interpolated).

    Accumulates whole intervals in float64 and the sub-interval part in float32, so it
    is both exact over long signals and fast. Returns float32, shape (n,), wrapped
    only per interval (values in [0, 1 + factor * max(freq) / sr)).
    """
    need = -(-n // factor) + 1
    fc = np.asarray(freq, dtype=np.float64)
    if fc.size < need:
        fc = np.pad(fc, (0, need - fc.size), mode="edge")
    fc = fc[:need]
    d = np.diff(fc)
    start = fc[:-1]
    inc = (factor * start + d * (factor - 1) / 2.0) / sr
    p0 = np.concatenate([[0.0], np.cumsum(inc[:-1])])
    p0 = (p0 - np.floor(p0)).astype(np.float32)
    j = np.arange(factor, dtype=np.float32)
    jj = j * (j - np.float32(1.0)) / np.float32(2 * factor)
    local = (start.astype(np.float32) / np.float32(sr))[:, None] * j[None, :]
    local += (d.astype(np.float32) / np.float32(sr))[:, None] * jj[None, :]
    local += p0[:, None]
    return local.ravel()[:n]


def _scatter(
    n: int, starts: np.ndarray, templates: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """Add event templates (shape (k, L)) into a length-n signal at sample ``starts``."""
    acc = np.zeros(n, dtype=np.float32) if out is None else out
    k, length = templates.shape
    if k == 0 or n == 0:
        return acc
    idx = starts.astype(np.int64)[:, None] + np.arange(length)[None, :]
    ok = (idx >= 0) & (idx < n)
    acc += np.bincount(idx[ok], weights=templates[ok], minlength=n)[:n].astype(np.float32)
    return acc


def _poisson_times(rng: np.random.Generator, rate: float, duration: float) -> np.ndarray:
    """Event times (s) of a Poisson process with ``rate`` events per second."""
    k = int(rng.poisson(max(rate, 0.0) * max(duration, 0.0)))
    return np.sort(rng.uniform(0.0, duration, size=k))


@functools.cache
def _pink_sos(sr: int) -> np.ndarray:
    """Pink (1/f) noise shaping filter (P. Kellet / J. O. Smith 3-pole fit) as SOS."""
    b = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
    a = [1.0, -2.494956002, 2.017265875, -0.522189400]
    sos = np.asarray(scipy.signal.tf2sos(b, a), dtype=np.float32)
    sos.setflags(write=False)
    return sos


def _reverb_ir(
    rng: np.random.Generator, sr: int, rt60_s: float, drr_db: float, *, predelay_s: float = 0.0
) -> np.ndarray:
    """Synthetic room impulse response: direct path, a few early reflections and an
    exponentially decaying noise tail whose high frequencies die out faster.

    Returns float32, shape (m,), unit energy.
    """
    m = max(8, round(min(rt60_s, 2.0) * sr))
    t = np.arange(m, dtype=np.float32) / np.float32(sr)
    tail_noise = _noise(rng, m)
    hf = _filt(_band(1, 1500.0, sr, sr), tail_noise, dense=True) if sr > 3200 else tail_noise * 0
    lf = tail_noise - hf
    k = np.float32(6.9078 / rt60_s)
    ratio = np.float32(rng.uniform(1.5, 2.5))  # HF decays this much faster
    tail = lf * np.exp(-k * t) + hf * np.exp(-k * ratio * t)
    onset = round(float(rng.uniform(0.002, 0.012)) * sr) + round(predelay_s * sr)
    tail[: min(onset, m)] = 0.0
    ramp = min(round(0.005 * sr), m - min(onset, m))
    if ramp > 0:
        tail[onset : onset + ramp] *= np.linspace(0.0, 1.0, ramp, dtype=np.float32)
    # Early reflections: a few discrete echoes from walls, floor, furniture.
    n_ref = int(rng.integers(3, 9))
    pos = np.minimum((rng.uniform(0.002, 0.04, size=n_ref) * sr).astype(np.int64), m - 1)
    amp = rng.uniform(0.2, 0.7, size=n_ref) * rng.choice([-1.0, 1.0], size=n_ref)
    amp *= np.exp(-pos / sr * 6.9 / rt60_s)
    reverberant = tail
    np.add.at(
        reverberant, pos, (amp * float(np.sqrt(np.sum(tail**2)) + 1e-9) * 0.3).astype(np.float32)
    )
    e_rev = float(np.sum(np.square(reverberant, dtype=np.float64)))
    direct = math.sqrt(10.0 ** (drr_db / 10.0) * e_rev)
    ir = reverberant
    ir[0] += np.float32(direct)
    ir /= np.float32(math.sqrt(float(np.sum(np.square(ir, dtype=np.float64)))) + 1e-12)
    return ir.astype(np.float32)


def _convolve(x: np.ndarray, ir: np.ndarray) -> np.ndarray:
    if x.size == 0:
        return x.astype(np.float32)
    return scipy.signal.oaconvolve(x, ir).astype(np.float32, copy=False)


def _wavetable(harmonics: Sequence[float] | np.ndarray, size: int = 2048) -> np.ndarray:
    """One period of a waveform with the given harmonic amplitudes, float32 (size,)."""
    t = np.arange(size) / size
    k = np.arange(1, len(harmonics) + 1)
    tab = (np.asarray(harmonics)[:, None] * np.sin(2.0 * np.pi * k[:, None] * t[None, :])).sum(0)
    return tab.astype(np.float32)


def _tone(
    table: np.ndarray, freq: np.ndarray | float, n: int, sr: int, phase0: float = 0.0
) -> np.ndarray:
    """Read a wavetable at (possibly time-varying) frequency ``freq`` for n samples."""
    size = table.size
    if np.ndim(freq) == 0:
        # Constant pitch (short notes): float32 is exact enough for a few seconds.
        pos = np.arange(n, dtype=np.float32) * np.float32(float(freq) * size / sr)
        pos += np.float32(phase0 * size)
    else:
        f = np.broadcast_to(np.asarray(freq, dtype=np.float64), (n,))
        pos = (np.cumsum(f) * (size / sr) + phase0 * size).astype(np.float32)
    return table[pos.astype(np.intp) % size]


# ============================================================================ laughter

# Formants (Hz) of the vowels laughs are made of: "ha", "he", "hi", "ho".
_LAUGH_VOWELS = {
    "a": (800.0, 1250.0, 2600.0),
    "e": (520.0, 1850.0, 2550.0),
    "i": (330.0, 2250.0, 2950.0),
    "o": (520.0, 950.0, 2500.0),
}


def laughter(
    rng: np.random.Generator,
    *,
    duration_s: float,
    sr: int = 8000,
    n_voices: int = 1,
    child: bool = False,
) -> np.ndarray:
    """Laughter: bouts of rhythmic voiced "ha-ha-ha" syllables with breathy onsets.

    Each voice laughs in bouts of 3-10 syllables at 3-6 syllables per second (slowing a
    little within a bout), f0 200-380 Hz for adults and 300-450 Hz for children,
    falling through each syllable and each bout, with jitter, shimmer, aspiration and
    an occasional gasping inhale after a bout. Several voices sound like friends
    laughing together; the first voice starts within 0.15 s.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice.
    duration_s : float, keyword-only
        Length in seconds.
    sr : int, keyword-only, default 8000
        Sample rate in Hz.
    n_voices : int, keyword-only, default 1
        Number of people laughing (1-8).
    child : bool, keyword-only, default False
        Children's voices (higher f0 and formants).

    Returns
    -------
    numpy.ndarray
        float32, shape (round(duration_s * sr),), RMS about 0.05.
    """
    _check_rng(rng)
    n = _n_samples(duration_s, sr)
    if isinstance(n_voices, bool) or not isinstance(n_voices, int | np.integer):
        raise InvalidParameterError(f"n_voices must be an integer, got {n_voices!r}")
    if not 1 <= n_voices <= 8:
        raise InvalidParameterError(f"n_voices must be in [1, 8], got {n_voices}")
    m = max(n, sr // 4)
    # One or two vowels per call (e.g. "ha" and "hi"); each bout uses one of them.
    names = list(_LAUGH_VOWELS)
    vowels = [names[i] for i in rng.choice(len(names), size=2, p=[0.55, 0.15, 0.15, 0.15])]
    p_second = 0.0 if rng.random() < 0.5 else 0.3
    scale = float(rng.uniform(1.15, 1.3)) if child else float(rng.uniform(0.95, 1.1))
    idx: list[list[np.ndarray]] = [[], []]
    wts: list[list[np.ndarray]] = [[], []]
    for v in range(int(n_voices)):
        gain = 1.0 if v == 0 else float(rng.uniform(0.3, 0.8))
        _laugh_voice(rng, idx, wts, m, sr, child=child, gain=gain, first=v == 0, p2=p_second)
    out = np.zeros(m, dtype=np.float32)
    nyq = 0.47 * sr
    tail = round(0.05 * sr)
    for b, vowel in enumerate(vowels):
        if not idx[b]:
            continue
        ix = np.concatenate(idx[b])
        lo, hi = int(ix.min()), min(m, int(ix.max()) + tail)
        src = np.bincount(ix - lo, weights=np.concatenate(wts[b]), minlength=hi - lo)
        f1, f2, f3 = (f * scale * float(rng.uniform(0.93, 1.07)) for f in _LAUGH_VOWELS[vowel])
        sos = np.vstack(
            [
                # Glottal roll-off (double pole at 0.86, -12 dB/oct) with lip
                # radiation (+6 dB/oct) ...
                np.array([[0.0196, -0.0186, 0.0, 1.0, -1.72, 0.7396]], dtype=np.float32),
                # ... through the vowel's first three formants.
                _resonator_sos(min(f1, nyq), float(rng.uniform(80, 140)), sr),
                _resonator_sos(min(f2, nyq), float(rng.uniform(100, 180)), sr),
                _resonator_sos(min(f3, nyq), float(rng.uniform(150, 260)), sr),
            ]
        )
        out[lo:hi] += _filt(sos, src[: hi - lo].astype(np.float32))
    return _finish(out, n)


def _laugh_voice(
    rng: np.random.Generator,
    idx: list[list[np.ndarray]],
    wts: list[list[np.ndarray]],
    m: int,
    sr: int,
    *,
    child: bool,
    gain: float,
    first: bool,
    p2: float,
) -> None:
    """One person's laughter sources (glottal pulses + aspiration noise), appended as
    sample indices and weights to ``idx`` / ``wts`` of vowel bank 0 or 1."""
    f0_base = float(rng.uniform(300.0, 450.0) if child else rng.uniform(200.0, 380.0))
    rate_base = float(rng.uniform(3.3, 5.6))
    breathy = float(rng.uniform(0.05, 0.35))
    t = float(rng.uniform(0.0, 0.15)) if first else float(rng.uniform(0.0, 1.5))
    dur = m / sr
    on: list[np.ndarray] = []  # per syllable: onset (s)
    vd: list[np.ndarray] = []  # voiced duration (s)
    fs: list[np.ndarray] = []  # f0 at syllable start
    amp: list[np.ndarray] = []
    bank_of: list[np.ndarray] = []
    inhales: list[tuple[float, float]] = []
    while t < dur:
        k = int(rng.integers(3, 11))
        rate0 = min(6.0, max(3.0, rate_base * float(rng.uniform(0.85, 1.15))))
        slow = np.linspace(1.0, float(rng.uniform(0.8, 1.0)), k)
        rates = np.clip(rate0 * slow * rng.uniform(0.95, 1.05, size=k), 3.0, 6.0)
        periods = 1.0 / rates
        onsets = t + np.concatenate([[0.0], np.cumsum(periods[:-1])])
        peak = f0_base * float(rng.uniform(1.0, 1.3))
        f_start = peak * np.linspace(1.0, float(rng.uniform(0.75, 0.95)), k)
        a = np.linspace(1.0, float(rng.uniform(0.4, 0.9)), k) * rng.uniform(0.7, 1.0, size=k)
        on.append(onsets)
        vd.append(periods * rng.uniform(0.45, 0.7, size=k))
        fs.append(np.minimum(f_start * rng.uniform(0.97, 1.03, size=k), 650.0))
        amp.append(a * gain)
        bank_of.append(np.full(k, int(rng.random() < p2)))
        end = float(onsets[-1] + periods[-1])
        if rng.random() < 0.5:
            inhales.append((end + float(rng.uniform(0.0, 0.15)), float(rng.uniform(0.2, 0.45))))
            end += 0.5
        # Short pauses inside a fit of laughter, sometimes a longer one between fits.
        pause = rng.uniform(0.2, 1.5) if rng.random() < 0.75 else rng.uniform(1.5, 5.0)
        t = end + float(pause)
    if not on:
        return
    onset = np.concatenate(on)
    voiced = np.concatenate(vd)
    f_start = np.concatenate(fs)
    a_syl = np.concatenate(amp)
    bank = np.concatenate(bank_of)
    n_syl = onset.size
    aspir = rng.uniform(0.015, 0.045, size=n_syl)  # the "h" before voicing (s)

    # Glottal pulses, all syllables at once: pulse p of syllable j at time t_jp.
    max_pulses = int(np.ceil(float(np.max(voiced * f_start)) * 1.1)) + 2
    p = np.arange(max_pulses)[None, :]
    f_end_ratio = rng.uniform(0.8, 0.92, size=n_syl)[:, None]
    # f0 falls linearly through the syllable; periods jitter by ~1.5 %.
    frac = np.clip(p / np.maximum(voiced * f_start, 1.0)[:, None], 0.0, 1.0)
    f_inst = f_start[:, None] * (1.0 - (1.0 - f_end_ratio) * frac)
    periods_p = (1.0 / f_inst) * (1.0 + 0.015 * rng.standard_normal((n_syl, max_pulses)))
    t_rel = np.cumsum(periods_p, axis=1) - periods_p[:, :1]
    u = t_rel / voiced[:, None]
    # Syllable envelope: fast rise, decay towards the end; shimmer on each pulse.
    shape = (1.0 - np.exp(-u / 0.08)) * np.clip(1.0 - u, 0.0, 1.0) ** 1.2
    pulse_amp = a_syl[:, None] * shape * (1.0 + 0.12 * rng.standard_normal((n_syl, max_pulses)))
    pos_s = ((onset + aspir)[:, None] + t_rel) * sr
    i0 = np.floor(pos_s).astype(np.int64)
    w1 = pos_s - i0
    valid = (u < 1.0) & (i0 + 1 < m)
    # Each pulse is split over two samples (fractional position: no pitch quantising).
    for b in (0, 1):
        sel = valid & (bank[:, None] == b)
        if sel.any():
            idx[b] += [i0[sel], i0[sel] + 1]
            wts[b] += [pulse_amp[sel] * (1.0 - w1[sel]), pulse_amp[sel] * w1[sel]]

    # Aspiration: an "h" before voicing and breath noise into it, as 100 ms templates.
    length = round(0.1 * sr)
    tt = (np.arange(length, dtype=np.float32) / np.float32(sr))[None, :]
    asp = aspir.astype(np.float32)[:, None]
    h_part = np.minimum(tt / asp, 1.0) * np.exp(-np.maximum(tt - asp, 0.0) / np.float32(0.02))
    v_part = np.clip(1.0 - (tt - asp) / voiced.astype(np.float32)[:, None], 0.0, 1.0)
    v_part *= tt >= asp
    env = (h_part * np.float32(0.5) + np.float32(breathy) * v_part) * a_syl.astype(np.float32)[
        :, None
    ]
    # Second difference: high-passed noise, so the glottal roll-off does not dull it.
    raw = _noise(rng, env.size + 2)
    env *= (raw[2:] - 2.0 * raw[1:-1] + raw[:-2]).reshape(env.shape) * np.float32(0.06)
    starts = np.round(onset * sr).astype(np.int64)
    t_idx = starts[:, None] + np.arange(length)[None, :]
    for b in (0, 1):
        sel = (bank == b)[:, None] & (t_idx < m)
        if sel.any():
            idx[b].append(t_idx[sel])
            wts[b].append(env[sel])

    # Gasping inhales after some bouts: breathy, higher noise.
    for start, length_s in inhales:
        s0 = round(start * sr)
        if s0 >= m:
            continue
        ln = min(round(length_s * sr), m - s0)
        e = np.sin(np.linspace(0.0, np.pi, ln, dtype=np.float32)) ** 2 * np.float32(0.25 * gain)
        r = _noise(rng, ln + 2)
        idx[0].append(np.arange(s0, s0 + ln))
        wts[0].append((r[2:] - 2.0 * r[1:-1] + r[:-2]) * e * np.float32(0.06))


# ============================================================================ breathing


def breathing(rng: np.random.Generator, *, duration_s: float, sr: int = 8000) -> np.ndarray:
    """Soft breathing close to the phone: a noisy inhale and exhale every 3-5 s.

    Exhales are lower and louder (air puffs on the microphone), inhales quieter and
    hissier; breaths vary in length, level and colour, with the odd sniff.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice.
    duration_s : float, keyword-only
        Length in seconds.
    sr : int, keyword-only, default 8000
        Sample rate in Hz.

    Returns
    -------
    numpy.ndarray
        float32, shape (round(duration_s * sr),), RMS about 0.05.
    """
    _check_rng(rng)
    n = _n_samples(duration_s, sr)
    m = max(n, sr // 4)
    out = np.zeros(m, dtype=np.float32)
    cycle = float(rng.uniform(3.0, 5.0))
    nasal = rng.random() < 0.4
    t = float(rng.uniform(0.0, 1.0)) * cycle * (0.3 if n < 2 * sr else 1.0)
    first = True
    while t < m / sr:
        period = cycle * float(rng.uniform(0.9, 1.1))
        t_in = float(rng.uniform(0.7, 1.4))
        t_out = min(float(rng.uniform(1.0, 2.0)), period - t_in - 0.2)
        level = float(rng.uniform(0.6, 1.0))
        if first and n < 2 * sr:
            t = 0.0  # short clips still contain a breath
        first = False
        phases = [(t, t_in, False), (t + t_in + float(rng.uniform(0.05, 0.3)), t_out, True)]
        if rng.random() < 0.08:  # a sniff
            phases.append((t + period * 0.8, float(rng.uniform(0.12, 0.25)), False))
        for start, length, exhale in phases:
            s0 = round(start * sr)
            if s0 >= m:
                continue
            ln = min(round(length * sr), m - s0)
            if ln < 8:
                continue
            u = np.linspace(0.0, 1.0, ln, dtype=np.float32)
            # Exhale: quick rise, long fall; inhale: smoother, swelling.
            env = (
                np.sin(np.pi * u**0.6) ** 2 * (1.0 - 0.5 * u)
                if exhale
                else np.abs(np.sin(np.pi * u)) ** 1.5
            )
            if exhale:
                lo, hi = float(rng.uniform(80, 200)), float(rng.uniform(900, 1800))
                g = level
            else:
                lo, hi = float(rng.uniform(500, 1000)), float(rng.uniform(2000, 3500))
                g = level * float(rng.uniform(0.35, 0.7))
            if nasal:
                lo, hi = max(lo, 300.0), min(hi, 1600.0)
            seg = _filt(_band(2, lo, hi, sr), _noise(rng, ln), dense=True) * env * np.float32(g)
            if exhale and rng.random() < 0.6:
                # Breath puffs hitting the mic: low, bursty rumble.
                puff = _filt(_band(2, 0.0, 150.0, sr), _noise(rng, ln), dense=True) * env**2
                seg += puff * np.float32(g * float(rng.uniform(1.0, 3.0)))
            out[s0 : s0 + ln] += seg
        t += period
    return _finish(out, n)


# ============================================================================ rustle


def pocket_rustle(rng: np.random.Generator, *, duration_s: float, sr: int = 8000) -> np.ndarray:
    """Fabric rubbing on a phone in a pocket or bag: muffled, bursty, with knocks.

    Alternates movement (crackly friction bursts swelling with the gait or gesture) and
    stillness (near silence, occasional micro-movements); thumps of the phone against
    a leg or keys and a few taps. Everything passes a steep low-pass (500-1400 Hz), so
    energy above 2 kHz is far below energy under it, as through cloth.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice.
    duration_s : float, keyword-only
        Length in seconds.
    sr : int, keyword-only, default 8000
        Sample rate in Hz.

    Returns
    -------
    numpy.ndarray
        float32, shape (round(duration_s * sr),), RMS about 0.05.
    """
    _check_rng(rng)
    n = _n_samples(duration_s, sr)
    m = max(n, sr // 4)
    factor = max(1, round(sr / 100))
    nc = -(-m // factor) + 1
    # Movement / stillness states at the 100 Hz control rate; short clips start moving.
    state = np.zeros(nc)
    t = 0
    moving = n < 3 * sr or rng.random() < 0.7
    while t < nc:
        length = int(100 * (rng.uniform(1.5, 8.0) if moving else rng.uniform(0.5, 10.0)))
        state[t : t + length] = 1.0 if moving else float(rng.uniform(0.0, 0.06))
        t += length
        moving = not moving
    state = scipy.ndimage.uniform_filter1d(state, 15)  # no clicks at state changes
    swell_hz = float(rng.uniform(0.5, 3.0))
    swell = np.exp(0.8 * _slow_noise(rng, nc, cutoff=swell_hz))
    density = float(rng.uniform(40.0, 400.0))  # crackles per second while moving
    # Crackles: Poisson impulses whose rate follows the movement; heavy-tailed sizes.
    counts = rng.poisson(density / 100.0 * state * swell)
    frames = np.repeat(np.arange(nc), counts)
    pos = frames * factor + rng.integers(0, factor, size=frames.size)
    sizes = np.minimum(rng.pareto(2.5, size=frames.size) + 0.2, 10.0)
    keep = pos < m
    impulses = np.bincount(pos[keep], weights=sizes[keep], minlength=m)[:m]
    decay = math.exp(-1.0 / (float(rng.uniform(0.003, 0.02)) * sr))
    crackle = scipy.signal.lfilter(
        np.array([1.0 - decay], dtype=np.float32),
        np.array([1.0, -decay], dtype=np.float32),
        _guard(impulses.astype(np.float32)),
    )
    rub = _upsample(state * swell, factor, m) * np.float32(rng.uniform(0.1, 0.5))
    src = _noise(rng, m) * (crackle * np.float32(rng.uniform(3.0, 8.0)) + rub)

    # Knocks against the body and keys: low thumps, a few sharper taps.
    n_thump = int(rng.poisson(rng.uniform(1.0, 8.0) * m / sr / 60.0 + (0.3 if n < 5 * sr else 0)))
    if n_thump:
        starts = rng.integers(0, m, size=n_thump)
        length = round(0.12 * sr)
        tt = np.arange(length)[None, :] / sr
        f = rng.uniform(60.0, 160.0, size=n_thump)[:, None]
        tau = rng.uniform(0.02, 0.05, size=n_thump)[:, None]
        a = rng.uniform(2.0, 6.0, size=n_thump)[:, None] * (_rms(src) + 1e-3)
        tmpl = (a * np.sin(2 * np.pi * f * tt) * np.exp(-tt / tau)).astype(np.float32)
        _scatter(m, starts, tmpl, out=src)
    n_tap = int(rng.poisson(rng.uniform(0.0, 4.0) * m / sr / 60.0))
    if n_tap:
        starts = rng.integers(0, m, size=n_tap)
        length = round(0.04 * sr)
        tt = np.arange(length)[None, :] / sr
        f = rng.uniform(300.0, 900.0, size=n_tap)[:, None]
        a = rng.uniform(1.0, 3.0, size=n_tap)[:, None] * (_rms(src) + 1e-3)
        tmpl = (a * np.sin(2 * np.pi * f * tt) * np.exp(-tt / 0.008)).astype(np.float32)
        _scatter(m, starts, tmpl, out=src)

    # Cloth over the microphone: a steep low-pass; a trace of the crackle still gets
    # through unmuffled (seams, the phone's own case), 24-34 dB down.
    cut = float(rng.uniform(550.0, 1300.0))
    out = _filt(_band(4, 0.0, cut, sr), src)
    leak = np.float32(10.0 ** (rng.uniform(-34.0, -24.0) / 20.0) * _rms(out) / (_rms(src) + 1e-12))
    out += src * leak
    return _finish(out, n)


# ============================================================================ footsteps


def footsteps(rng: np.random.Generator, *, duration_s: float, sr: int = 8000) -> np.ndarray:
    """Walking, heard from a phone in a pocket or hand: muffled low thumps.

    1.5-2.2 steps per second with ~3 % timing jitter and slow drift, a heel strike and
    a softer toe/flat contact per step, left/right level asymmetry, shoe scuffs on
    hard floors, sometimes a stop. Low-passed at 700-2000 Hz.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice.
    duration_s : float, keyword-only
        Length in seconds.
    sr : int, keyword-only, default 8000
        Sample rate in Hz.

    Returns
    -------
    numpy.ndarray
        float32, shape (round(duration_s * sr),), RMS about 0.05.
    """
    _check_rng(rng)
    n = _n_samples(duration_s, sr)
    m = max(n, sr // 4)
    dur = m / sr
    rate = float(rng.uniform(1.55, 2.15))
    k = int(dur * rate * 1.2) + 4
    drift = 1.0 + 0.03 * _slow_noise(rng, k, cutoff=0.05, rate=rate)
    periods = drift / rate * (1.0 + 0.03 * rng.standard_normal(k))
    times = float(rng.uniform(0.0, 0.5 / rate)) + np.concatenate([[0.0], np.cumsum(periods[:-1])])
    if dur > 12.0 and rng.random() < 0.25:
        # Stop for a moment (waiting at a crossing), then walk on.
        stop_at, stop_len = float(rng.uniform(0.3, 0.7)) * dur, float(rng.uniform(1.5, 4.0))
        times = np.where(times > stop_at, times + stop_len, times)
    times = times[times < dur]
    k = times.size
    side = np.where(np.arange(k) % 2 == 0, 1.0, float(rng.uniform(0.7, 0.95)))
    a = side * rng.uniform(0.6, 1.0, size=k)
    hard = rng.random() < 0.5

    length = round(0.18 * sr)
    tt = (np.arange(length, dtype=np.float32) / np.float32(sr))[None, :]
    # Body thump (through the leg and the phone's case) with a slight downward glide;
    # pitch, decay and the toe contact vary from step to step.
    f_heel = float(rng.uniform(70.0, 200.0)) * rng.uniform(0.9, 1.1, size=(k, 1))
    tau = float(rng.uniform(0.015, 0.04)) * rng.uniform(0.8, 1.2, size=(k, 1))
    glide = np.exp(-tt / np.float32(0.05)) * np.float32(0.25) + np.float32(1.0)
    heel = np.sin(2 * np.pi * f_heel * tt * glide) * np.exp(-tt / tau)
    toe_delay = float(rng.uniform(0.06, 0.12))
    tt2 = np.clip(tt - toe_delay, 0.0, None)
    toe = np.where(tt >= toe_delay, np.sin(2 * np.pi * f_heel * 1.3 * tt2), 0.0) * np.exp(
        -tt2 / (tau * 0.7)
    )
    toe *= rng.uniform(0.2, 0.6, size=(k, 1))
    # Impact click and shoe scuff: short noise bursts, louder on hard floors.
    noise = _noise(rng, k * length).reshape(k, length)
    impact = np.exp(-tt / float(rng.uniform(0.003, 0.008))) * rng.uniform(0.3, 1.0, size=(k, 1))
    impact *= float(rng.uniform(0.8, 2.0) if hard else rng.uniform(0.3, 0.8))
    scuff_env = np.exp(-np.abs(tt - float(rng.uniform(0.02, 0.06))) / 0.015)
    scuff_env = scuff_env * rng.uniform(0.0, 1.0, size=(k, 1)) ** 2
    scuff_env *= float(rng.uniform(0.1, 0.4) if hard else rng.uniform(0.02, 0.1))
    tmpl = ((heel + toe + noise * (impact + scuff_env)) * a[:, None]).astype(np.float32)
    src = _scatter(m, np.round(times * sr).astype(np.int64), tmpl)
    cut = float(rng.uniform(700.0, 1600.0) if hard else rng.uniform(450.0, 1000.0))
    sos = np.vstack([_band(4, 0.0, cut, sr), _band(1, 40.0, sr, sr)])
    return _finish(_filt(sos, src), n)


# ============================================================================ wind


def wind(rng: np.random.Generator, *, duration_s: float, sr: int = 8000) -> np.ndarray:
    """Wind on a phone microphone: low turbulent rumble with slow gusts and buffeting.

    Low-passed noise (150-500 Hz corner) amplitude-modulated by log-normal gusts with
    0.1-1 Hz variation, a brighter whoosh that grows with gust strength, and strong
    gusts overloading the mic (soft-clipped low-frequency bursts).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice.
    duration_s : float, keyword-only
        Length in seconds.
    sr : int, keyword-only, default 8000
        Sample rate in Hz.

    Returns
    -------
    numpy.ndarray
        float32, shape (round(duration_s * sr),), RMS about 0.05.
    """
    _check_rng(rng)
    n = _n_samples(duration_s, sr)
    m = max(n, sr // 4)
    factor = max(1, round(sr / 100))
    nc = -(-m // factor) + 1
    gust_hz = float(rng.uniform(0.1, 1.0))
    gusts = np.exp(float(rng.uniform(0.4, 0.9)) * _slow_noise(rng, nc, cutoff=gust_hz))
    # Fast flutter on top: turbulence at the mic port.
    flutter = 1.0 + 0.3 * _slow_noise(rng, nc, cutoff=float(rng.uniform(3.0, 10.0)))
    g_ctrl = gusts * np.clip(flutter, 0.2, None)
    g = _upsample(g_ctrl, factor, m)
    w = _noise(rng, m)
    rumble = _filt(_band(4, 0.0, float(rng.uniform(120.0, 400.0)), sr), w, dense=True)
    rumble *= np.float32(1.0 / (_rms(rumble) + 1e-12))
    # The time-reversed noise is independent enough for a different band.
    whoosh = _filt(
        _band(2, float(rng.uniform(250.0, 500.0)), float(rng.uniform(800.0, 2000.0)), sr),
        w[::-1],
        dense=True,
    )
    out = rumble * g
    whoosh *= _upsample(g_ctrl**1.6, factor, m)  # stronger gusts sound brighter
    whoosh *= np.float32(
        10.0 ** (rng.uniform(-22.0, -12.0) / 20.0) * _rms(out) / (_rms(whoosh) + 1e-12)
    )
    out += whoosh
    # Buffeting: the strongest gusts overload the capsule.
    thr = float(np.quantile(g_ctrl, float(rng.uniform(0.6, 0.9))))
    over_ctrl = np.clip(g_ctrl - thr, 0.0, None) ** 2
    if float(over_ctrl.max()) > 0:
        over = _upsample(over_ctrl / float(over_ctrl.max()), factor, m)
        drive = np.float32(rng.uniform(0.5, 2.0))
        buffet = np.tanh(rumble * over * drive)
        out += buffet * np.float32(_rms(out) * float(rng.uniform(0.5, 2.0)))
    return _finish(out, n)


# ============================================================================ traffic


def traffic(rng: np.random.Generator, *, duration_s: float, sr: int = 8000) -> np.ndarray:
    """A street: road rumble, idling engines, passing cars and motorbikes, horns.

    A brown/pink rumble bed; vehicles (mostly motorbikes, as on Indonesian streets)
    pass at random, each a swelling broadband tyre noise that brightens as it comes
    close and an engine buzz whose pitch drops as it passes (Doppler); horns
    sometimes ("tin-tin" of a motorbike, two-tone car horns).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice.
    duration_s : float, keyword-only
        Length in seconds.
    sr : int, keyword-only, default 8000
        Sample rate in Hz.

    Returns
    -------
    numpy.ndarray
        float32, shape (round(duration_s * sr),), RMS about 0.05.
    """
    _check_rng(rng)
    n = _n_samples(duration_s, sr)
    m = max(n, sr // 4)
    dur = m / sr
    factor = max(1, round(sr / 100))
    nc = -(-m // factor) + 1
    tc = np.arange(nc) / 100.0
    busy = float(rng.uniform(3.0, 25.0))  # vehicles per minute
    # Some vehicle is always near the start of a short clip.
    n_veh = int(rng.poisson(busy * (dur + 12.0) / 60.0)) + (1 if dur < 10 else 0)
    t0 = rng.uniform(-6.0, dur + 6.0, size=n_veh)
    if dur < 10 and n_veh:
        t0[0] = float(rng.uniform(0.0, dur))
    speed = rng.uniform(6.0, 18.0, size=n_veh)
    dist = rng.uniform(3.0, 25.0, size=n_veh)
    loud = rng.uniform(0.5, 1.5, size=n_veh) * (3.0 / dist) ** 0.3
    bike = rng.random(n_veh) < 0.6
    e_low = np.full(nc, float(rng.uniform(0.15, 0.5)))  # the bed
    e_low *= np.exp(0.2 * _slow_noise(rng, nc, cutoff=0.05))
    e_mid = np.zeros(nc)
    hum = np.zeros(m, dtype=np.float32)
    saw = _wavetable([1.0 / k for k in range(1, 25)], 1024)
    for i in range(n_veh):
        x_rel = speed[i] * (tc - t0[i])
        r2 = dist[i] ** 2 + x_rel**2
        bell = dist[i] ** 2 / r2  # intensity relative to closest approach
        e_low += loud[i] * np.sqrt(bell)
        e_mid += loud[i] * bell
        # Engine buzz of the nearer vehicles over +-2.5 s around the closest approach,
        # with Doppler; pitch and level at 1 kHz, interpolated.
        if dist[i] > 12.0:
            continue
        a, b = max(0.0, t0[i] - 2.5), min(dur, t0[i] + 2.5)
        s0, s1 = round(a * sr), round(b * sr)
        if s1 - s0 < 16:
            continue
        fac = max(1, round(sr / 1000))
        ts = s0 / sr + np.arange(-(-(s1 - s0) // fac) + 1) * (fac / sr)
        xr = speed[i] * (ts - t0[i])
        v_rad = speed[i] * xr / np.sqrt(dist[i] ** 2 + xr**2)  # > 0 moving away
        f_base = float(rng.uniform(70.0, 180.0) if bike[i] else rng.uniform(30.0, 80.0))
        # The driver works the throttle: engine speed wanders by ~10 %.
        f_eng = f_base * (1.0 + 0.1 * np.sin(2 * np.pi * float(rng.uniform(0.1, 0.4)) * ts))
        freq = f_eng * _SPEED_OF_SOUND / (_SPEED_OF_SOUND + v_rad)
        env = np.sqrt(dist[i] ** 2 / (dist[i] ** 2 + xr**2)) * loud[i] * 0.5
        ph = _phase(freq, fac, s1 - s0, sr)
        ph += np.float32(rng.random())
        idx = (ph * np.float32(saw.size)).astype(np.intp) % saw.size
        hum[s0:s1] += saw[idx] * _upsample(env, fac, s1 - s0)
    w = _noise(rng, m)
    low = w * _upsample(e_low, factor, m) + hum
    rumble = _filt(
        np.vstack([_band(2, 0.0, float(rng.uniform(250.0, 600.0)), sr), _pink_sos(sr)]),
        low,
        dense=True,
    )
    tyre = _filt(
        _band(2, float(rng.uniform(400.0, 700.0)), float(rng.uniform(1800.0, 3500.0)), sr),
        w[::-1] * _upsample(e_mid, factor, m),
        dense=True,
    )
    out = rumble * np.float32(4.0) + tyre * np.float32(rng.uniform(0.3, 0.8))
    # Horns, now and then.
    n_horn = int(rng.poisson(rng.uniform(0.0, 3.0) * dur / 60.0))
    ref = _rms(out) + 1e-6
    for _ in range(n_horn):
        beeps = int(rng.integers(1, 4))
        start = float(rng.uniform(0.0, dur))
        two_tone = rng.random() < 0.5
        f1 = float(rng.uniform(380.0, 480.0) if two_tone else rng.uniform(300.0, 650.0))
        g = ref * float(rng.uniform(0.5, 2.0))
        for _b in range(beeps):
            ln = round(float(rng.uniform(0.12, 0.6)) * sr)
            s0 = round(start * sr)
            if s0 + 8 >= m:
                break
            ln = min(ln, m - s0)
            tt = np.arange(ln) / sr
            tone = np.tanh(3.0 * np.sin(2 * np.pi * f1 * tt))
            if two_tone:
                tone += np.tanh(3.0 * np.sin(2 * np.pi * f1 * 1.26 * tt))
            fade = np.minimum(1.0, np.minimum(tt, tt[-1] - tt) / 0.01)
            out[s0 : s0 + ln] += (tone * fade * g).astype(np.float32)
            start += ln / sr + float(rng.uniform(0.05, 0.2))
    return _finish(out, n)


# ============================================================================ rain


def rain(rng: np.random.Generator, *, duration_s: float, sr: int = 8000) -> np.ndarray:
    """Rain: a pink noise bed with dense random drop clicks, intensity varying slowly.

    Drops land at 100-1500 per second with heavy-tailed sizes, each a short decaying
    click coloured by the surface (roof, umbrella, street); sometimes a gutter drips
    steadily or thunder rolls in the distance.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice.
    duration_s : float, keyword-only
        Length in seconds.
    sr : int, keyword-only, default 8000
        Sample rate in Hz.

    Returns
    -------
    numpy.ndarray
        float32, shape (round(duration_s * sr),), RMS about 0.05.
    """
    _check_rng(rng)
    n = _n_samples(duration_s, sr)
    m = max(n, sr // 4)
    dur = m / sr
    factor = max(1, round(sr / 100))
    nc = -(-m // factor) + 1
    intensity = np.exp(0.3 * _slow_noise(rng, nc, cutoff=float(rng.uniform(0.02, 0.2))))
    inten = _upsample(intensity, factor, m)
    rate = float(rng.uniform(100.0, 1500.0))
    k = int(rng.poisson(rate * dur))
    pos = rng.integers(0, m, size=k)
    # Heavy-tailed drop sizes, capped: a few big drops, no single one dominating.
    size = np.minimum(rng.pareto(1.8, size=k) + 0.3, 12.0) * rng.choice([-1.0, 1.0], size=k)
    drops = np.bincount(pos, weights=size, minlength=m)[:m].astype(np.float32)
    if rng.random() < 0.3:  # a gutter dripping steadily nearby
        period = float(rng.uniform(0.25, 1.0))
        drip_t = np.arange(float(rng.uniform(0, period)), dur, period)
        drip_t += rng.normal(0.0, 0.02, size=drip_t.size)
        ok = (drip_t >= 0) & (drip_t < dur)
        drops[(drip_t[ok] * sr).astype(np.int64)] += np.float32(rng.uniform(5.0, 12.0))
    lo = float(rng.uniform(600.0, 1500.0))
    click = _filt(_band(2, lo, min(lo * float(rng.uniform(2.0, 4.0)), 0.45 * sr), sr), drops)
    bed = _filt(
        np.vstack([_pink_sos(sr), _band(2, float(rng.uniform(100.0, 300.0)), sr, sr)]),
        _noise(rng, m),
        dense=True,
    )
    # Drops to bed level ratio: light rain on a roof is clicky, a downpour a hiss.
    click_db = float(rng.uniform(-8.0, 4.0))
    click *= np.float32(10.0 ** (click_db / 20.0) / (_rms(click) + 1e-12) * (_rms(bed) + 1e-12))
    out = (bed + click) * inten
    if dur > 15 and rng.random() < 0.15:  # distant thunder
        ln = min(round(float(rng.uniform(2.0, 6.0)) * sr), m)
        s0 = int(rng.integers(0, m - ln + 1))
        tt = np.arange(ln) / sr
        env = (1.0 - np.exp(-tt / 0.3)) * np.exp(-tt / float(rng.uniform(0.8, 2.0)))
        th = _filt(_band(2, 0.0, 200.0, sr), _noise(rng, ln), dense=True) * env.astype(np.float32)
        out[s0 : s0 + ln] += th * np.float32(_rms(out) * float(rng.uniform(2.0, 5.0)))
    return _finish(out, n)


# ============================================================================ crowd


def crowd(
    rng: np.random.Generator,
    *,
    duration_s: float,
    sr: int = 8000,
    babble: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """Crowd murmur: many people talking at once, none intelligible.

    With ``babble`` (speech snippets at ``sr``, e.g. synthesized by the renderer),
    6-16 talkers each string random snippets together with gaps, attenuated and
    time-shifted, muffled by distance and smeared by reverberation, over a faint
    noise murmur. Without it, speech-shaped noise modulated at the syllable rate
    (~4 Hz) by several independent talkspurt patterns.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice.
    duration_s : float, keyword-only
        Length in seconds.
    sr : int, keyword-only, default 8000
        Sample rate in Hz.
    babble : sequence of numpy.ndarray or None, keyword-only
        Speech snippets, each float mono of shape (k,), at ``sr``.

    Returns
    -------
    numpy.ndarray
        float32, shape (round(duration_s * sr),), RMS about 0.05.
    """
    _check_rng(rng)
    n = _n_samples(duration_s, sr)
    m = max(n, sr // 4)
    murmur = _murmur(rng, m, sr)
    if not babble:
        return _finish(murmur, n)
    clips = [_check_audio(c, "babble snippet") for c in babble]
    clips = [c for c in clips if c.size > sr // 20 and float(np.max(np.abs(c))) > 0]
    if not clips:
        return _finish(murmur, n)
    talk = np.zeros(m, dtype=np.float32)
    for _ in range(int(rng.integers(6, 17))):
        g = float(10.0 ** (rng.uniform(-12.0, 0.0) / 20.0))
        t = int(rng.integers(-sr, sr * 2))
        while t < m:
            c = clips[int(rng.integers(0, len(clips)))]
            c = c / np.float32(float(np.sqrt(np.mean(c.astype(np.float64) ** 2))) + 1e-9)
            a, b = max(t, 0), min(m, t + c.size)
            if b > a:
                talk[a:b] += c[a - t : b - t] * np.float32(g)
            t += c.size + int(rng.uniform(0.1, 1.2) * sr)
    far = _filt(_band(2, 120.0, float(rng.uniform(1500.0, 3000.0)), sr), talk)
    ir = _reverb_ir(rng, sr, float(rng.uniform(0.3, 1.0)), float(rng.uniform(-6.0, 3.0)))
    far = _convolve(far, ir)[:m]
    far *= np.float32(1.0 / (_rms(far) + 1e-9))
    murmur *= np.float32(float(rng.uniform(0.1, 0.4)) / (_rms(murmur) + 1e-9))
    return _finish(far + murmur, n)


def _murmur(rng: np.random.Generator, m: int, sr: int) -> np.ndarray:
    """Speech-shaped noise, modulated by several talkers' syllable-rate envelopes."""
    factor = max(1, round(sr / 100))
    nc = -(-m // factor) + 1
    w = _noise(rng, m)
    out = np.zeros(m, dtype=np.float32)
    for g in range(4):
        env = np.zeros(nc)
        for _ in range(int(rng.integers(1, 4))):
            # Talkspurts and pauses, and syllables (3-6 Hz) within them.
            spurt = np.zeros(nc)
            t = int(rng.integers(0, 200))
            while t < nc:
                ln = int(rng.uniform(80, 400))
                spurt[t : t + ln] = 1.0
                t += ln + int(rng.uniform(30, 200))
            syl = _slow_noise(rng, nc, cutoff=float(rng.uniform(4.0, 7.0)))
            syl = np.clip(syl + 0.3, 0.0, None)
            env += scipy.ndimage.uniform_filter1d(spurt, 5) * syl * float(rng.uniform(0.4, 1.0))
        shift = int(rng.integers(0, m))
        out += _mul_ramp(np.roll(w, shift) if g else w.copy(), env, factor)
    # Long-term speech spectrum: peak near 500 Hz, falling above 1 kHz.
    lo = float(rng.uniform(120.0, 250.0))
    sos = np.vstack(
        [
            _band(2, lo, sr, sr),
            _band(1, 0.0, float(rng.uniform(900.0, 2000.0)), sr),
            _resonator_sos(float(rng.uniform(400.0, 700.0)), 400.0, sr) * [0.3, 1, 1, 1, 1, 1],
        ]
    ).astype(np.float32)
    return _filt(sos, out)


# ============================================================================ siren


def siren(rng: np.random.Generator, *, duration_s: float, sr: int = 8000) -> np.ndarray:
    """An emergency-vehicle siren: wail, yelp or hi-lo, near or far, maybe passing.

    The fundamental sweeps between ~560 and ~1500 Hz (wail: 3-7 s cycles; yelp:
    0.15-0.4 s; hi-lo: two alternating tones), with odd and weak even harmonics as
    from a horn speaker; distance low-passes and attenuates it, an approach or a
    pass-by swells the level and shifts the pitch (Doppler), buildings add echoes.
    Some sirens switch mode mid-way.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice.
    duration_s : float, keyword-only
        Length in seconds.
    sr : int, keyword-only, default 8000
        Sample rate in Hz.

    Returns
    -------
    numpy.ndarray
        float32, shape (round(duration_s * sr),), RMS about 0.05.
    """
    _check_rng(rng)
    n = _n_samples(duration_s, sr)
    m = max(n, sr // 4)
    dur = m / sr
    # Pitch, level and Doppler at a 1 kHz control rate, interpolated to samples.
    factor = max(1, round(sr / 1000))
    nc = -(-m // factor) + 1
    t = np.arange(nc) * (factor / sr)
    f_lo = float(rng.uniform(560.0, 750.0))
    f_hi = float(rng.uniform(1150.0, 1480.0))
    modes = ["wail", "yelp", "hilo"]
    first = modes[int(rng.choice(3, p=[0.55, 0.3, 0.15]))]
    freq = _siren_sweep(rng, first, t, f_lo, f_hi)
    if dur > 6 and rng.random() < 0.3:
        other = modes[int(rng.integers(0, 3))]
        cut = round(float(rng.uniform(0.3, 0.7)) * nc)
        freq[cut:] = _siren_sweep(rng, other, t[cut:], f_lo, f_hi)
    # Motion: closest approach somewhere around the clip, or a steady distant siren.
    if rng.random() < 0.6:
        t0 = float(rng.uniform(-0.3, 1.3)) * dur
        v = float(rng.uniform(8.0, 20.0))
        d = float(rng.uniform(10.0, 80.0))
        x = v * (t - t0)
        v_rad = v * x / np.sqrt(d**2 + x**2)
        freq = freq * (_SPEED_OF_SOUND / (_SPEED_OF_SOUND + v_rad))
        level = np.sqrt(d**2 / (d**2 + x**2))
        level = np.maximum(level / max(float(level.max()), 1e-6), 0.05)
    else:
        level = np.ones(nc)
    freq = np.clip(freq, 520.0, 1580.0)
    nyq = 0.48 * sr
    # Harmonic weights (faded out before they would alias) times the level, per
    # control interval: they change slowly, so no need to interpolate them.
    k = -(-m // factor)
    lv = level[:k, None].astype(np.float32)
    w3 = np.clip((nyq - 3.0 * freq[:k]) / 150.0, 0.0, 1.0) * float(rng.uniform(0.15, 0.45))
    w2 = np.clip((nyq - 2.0 * freq[:k]) / 150.0, 0.0, 1.0) * float(rng.uniform(0.02, 0.15))
    ph = _phase(freq, factor, k * factor, sr).reshape(k, factor)
    ph *= np.float32(2.0 * np.pi)
    s = np.sin(ph)
    c = np.cos(ph)
    # sin 3x = 3 sin x - 4 sin^3 x and sin 2x = 2 sin x cos x: no extra sin calls.
    h = s * s
    h *= np.float32(-4.0)
    h += np.float32(3.0)
    h *= lv * w3[:, None].astype(np.float32)
    h += lv
    c *= lv * np.float32(2.0) * w2[:, None].astype(np.float32)
    h += c
    h *= s
    tone = h.ravel()[:m]
    # Distance: high frequencies are absorbed; echoes from buildings.
    far = _filt(_band(2, 0.0, float(rng.uniform(1700.0, 3600.0)), sr), tone)
    out = far.copy()
    for _ in range(int(rng.integers(0, 3))):
        lag = round(float(rng.uniform(0.03, 0.2)) * sr)
        if lag < m:
            out[lag:] += far[:-lag] * np.float32(rng.uniform(0.15, 0.45))
    return _finish(out, n)


def _siren_sweep(
    rng: np.random.Generator, mode: str, t: np.ndarray, f_lo: float, f_hi: float
) -> np.ndarray:
    """Instantaneous frequency (Hz) of a siren pattern at times ``t``."""
    if mode == "hilo":
        lo = f_lo * float(rng.uniform(1.0, 1.15))
        hi = lo * float(rng.uniform(1.3, 1.6))
        period = float(rng.uniform(0.8, 1.4))
        u = (t / period + float(rng.random())) % 1.0
        # Two tones with short glides between them.
        sq = np.clip((np.abs(u - 0.5) - 0.22) * 30.0, -1.0, 1.0)
        return lo + (hi - lo) * (0.5 + 0.5 * sq)
    period = float(rng.uniform(3.0, 7.0) if mode == "wail" else rng.uniform(0.15, 0.4))
    u = (t / period + float(rng.random())) % 1.0
    rise = float(rng.uniform(0.3, 0.6))  # fraction of the cycle spent rising
    shape = np.where(u < rise, u / rise, (1.0 - u) / (1.0 - rise))
    shape = 0.5 - 0.5 * np.cos(np.pi * shape)
    return f_lo + (f_hi - f_lo) * shape


# ============================================================================ TV / music

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)


def tv_or_music(
    rng: np.random.Generator,
    *,
    duration_s: float,
    sr: int = 8000,
    speech: np.ndarray | None = None,
) -> np.ndarray:
    """A TV or radio playing in the room: music, speech, or speech over music.

    Music is synthesized in bars: a chord progression (often minor, dangdut-like at
    110-140 BPM, or a slower pop song) with plucked bass, strummed or held chords, a
    kendang-style drum pattern (low "dhut", slap "tak", shaker) and sometimes a suling
    or vocal-like melody with vibrato. ``speech`` (the renderer's synthesized speech)
    becomes TV dialogue. Everything plays through a small loudspeaker (band-limited)
    into a reverberant room.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice.
    duration_s : float, keyword-only
        Length in seconds.
    sr : int, keyword-only, default 8000
        Sample rate in Hz.
    speech : numpy.ndarray or None, keyword-only
        TV speech, float mono of shape (k,) at ``sr``; repeated with gaps if short.

    Returns
    -------
    numpy.ndarray
        float32, shape (round(duration_s * sr),), RMS about 0.05.
    """
    _check_rng(rng)
    n = _n_samples(duration_s, sr)
    m = max(n, sr // 4)
    sp = _check_audio(speech, "speech") if speech is not None else None
    has_speech = sp is not None and sp.size > 0 and float(np.max(np.abs(sp))) > 0
    mode = "music"
    if has_speech:
        mode = "speech" if rng.random() < 0.6 else "both"
    rt60 = float(rng.uniform(0.25, 0.8))
    speaker = np.vstack(
        [
            _band(2, float(rng.uniform(120.0, 300.0)), sr, sr),
            _band(2, 0.0, float(rng.uniform(2800.0, 3900.0)), sr),
        ]
    )
    out = np.zeros(m, dtype=np.float32)
    if mode in ("music", "both"):
        music = _music(rng, m, sr, rt60=rt60)
        if mode == "both":
            music *= np.float32(10.0 ** (rng.uniform(-15.0, -6.0) / 20.0))
        out += music
    if has_speech and sp is not None:
        dialog = np.zeros(m, dtype=np.float32)
        sp = sp / np.float32(float(np.sqrt(np.mean(sp.astype(np.float64) ** 2))) + 1e-9)
        t = int(rng.integers(0, max(1, min(sp.size, m) // 4)))
        t = -t if rng.random() < 0.5 else t
        while t < m:
            a, b = max(t, 0), min(m, t + sp.size)
            if b > a:
                dialog[a:b] += sp[a - t : b - t]
            t += sp.size + round(float(rng.uniform(0.2, 1.0)) * sr)
        ir = _reverb_ir(rng, sr, rt60, float(rng.uniform(0.0, 8.0)))
        dialog = _convolve(_filt(speaker, dialog), ir)[:m]
        # TV audio is compressed: tame the peaks a little.
        dialog = np.tanh(dialog * np.float32(0.5)) * np.float32(2.0)
        out += dialog * np.float32(1.0 / (_rms(dialog) + 1e-9))
    return _finish(out, n)


def _music(rng: np.random.Generator, m: int, sr: int, *, rt60: float) -> np.ndarray:
    """Synthesized music bars (already through speaker and room), tiled to m samples."""
    dangdut = rng.random() < 0.7
    bpm = float(rng.uniform(110.0, 140.0) if dangdut else rng.uniform(72.0, 110.0))
    beat = 60.0 / bpm
    # A bar length with small prime factors keeps the per-bar FFTs fast.
    bar_len = scipy.fft.next_fast_len(round(4 * beat * sr), real=True)
    beat = bar_len / (4.0 * sr)
    minor = dangdut or rng.random() < 0.4
    scale = _MINOR if minor else _MAJOR
    root = int(rng.integers(50, 60))  # MIDI note of the key's tonic (D3..B3)
    progs = [(0, 3, 4, 0), (0, 5, 6, 0), (0, 3, 0, 4)] if minor else [(0, 4, 5, 3), (0, 3, 4, 0)]
    prog = progs[int(rng.integers(0, len(progs)))]
    chord_tab = _wavetable(rng.uniform(0.1, 1.0, size=6) / np.arange(1, 7), 1024)
    bass_tab = _wavetable([1.0, 0.5, 0.3, 0.1], 1024)
    mel_tab = _wavetable(
        [1.0, 0.3, 0.15, 0.05] if rng.random() < 0.5 else [1.0, 0.6, 0.4, 0.3, 0.2], 1024
    )
    held = rng.random() < 0.4  # organ-like held chords instead of strums
    melody = rng.random() < 0.6
    pattern = _drum_pattern(rng) if (dangdut or rng.random() < 0.5) else None
    shaker = rng.random() < 0.6
    speaker = np.vstack(
        [
            _band(2, float(rng.uniform(120.0, 300.0)), sr, sr),
            _band(2, 0.0, float(rng.uniform(2800.0, 3900.0)), sr),
        ]
    )
    ir = _reverb_ir(rng, sr, rt60, float(rng.uniform(0.0, 8.0)))
    ir_f = scipy.fft.rfft(ir, bar_len) if ir.size <= bar_len else scipy.fft.rfft(ir[:bar_len])
    bars: list[np.ndarray] = []
    for variant in range(2):
        for deg in prog:
            bar = _music_bar(
                rng,
                bar_len,
                sr,
                beat=beat,
                chord=[root + scale[(deg + k) % 7] + 12 * ((deg + k) // 7) for k in (0, 2, 4)],
                scale=[root + s for s in scale],
                tabs=(chord_tab, bass_tab, mel_tab),
                held=held,
                melody=melody and variant == 1,
                pattern=pattern,
                shaker=shaker,
            )
            bar = _filt(speaker, bar)
            # Circular reverb: the bar's tail wraps into its own start (bars repeat).
            bar = scipy.fft.irfft(scipy.fft.rfft(bar) * ir_f, bar_len).astype(np.float32)
            bars.append(bar)
    # Song form: verse (plain) and chorus (with melody) sections of 2-4 passes.
    seq: list[int] = []
    variant = int(rng.integers(0, 2))
    offset = int(rng.integers(0, bar_len * len(prog)))
    while len(seq) * bar_len < m + offset:
        reps = int(rng.integers(2, 5))
        for _ in range(reps):
            seq.extend(variant * len(prog) + i for i in range(len(prog)))
        variant = 1 - variant
    track = np.concatenate([bars[i] for i in seq])[offset : offset + m]
    return track


def _drum_pattern(rng: np.random.Generator) -> list[tuple[int, str]]:
    """Eighth-note kendang pattern over one bar: (position 0-7, stroke)."""
    options = [
        [(0, "dhut"), (3, "dhut"), (4, "tak"), (6, "dhut"), (7, "tak")],
        [(0, "dhut"), (2, "tak"), (3, "dhut"), (4, "dhut"), (6, "tak")],
        [(0, "dhut"), (1, "tung"), (3, "dhut"), (4, "tak"), (5, "tung"), (6, "tak")],
        [(0, "dhut"), (2, "tak"), (4, "dhut"), (6, "tak")],
    ]
    return options[int(rng.integers(0, len(options)))]


def _music_bar(
    rng: np.random.Generator,
    bar_len: int,
    sr: int,
    *,
    beat: float,
    chord: list[int],
    scale: list[int],
    tabs: tuple[np.ndarray, np.ndarray, np.ndarray],
    held: bool,
    melody: bool,
    pattern: list[tuple[int, str]] | None,
    shaker: bool,
) -> np.ndarray:
    chord_tab, bass_tab, mel_tab = tabs
    bar = np.zeros(bar_len, dtype=np.float32)
    t = np.arange(bar_len, dtype=np.float32) / np.float32(sr)

    def hz(midi: float) -> float:
        return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)

    def note(
        tab: np.ndarray, midi: float, start: float, length: float, decay: float, g: float
    ) -> None:
        s0 = round(start * sr)
        ln = min(round(length * sr), bar_len - s0)
        if ln <= 8:
            return
        tt = t[:ln]
        env = np.minimum(1.0, tt / 0.005) * np.exp(-tt / decay)
        bar[s0 : s0 + ln] += _tone(tab, hz(midi), ln, sr, float(rng.random())) * env * np.float32(g)

    # Bass on beats 1 and 3 (and a pickup), chords held or strummed on off-beats.
    for b in (0, 2):
        note(bass_tab, chord[0] - 12, b * beat, 1.5 * beat, 0.35, 0.8)
    if rng.random() < 0.5:
        note(bass_tab, chord[2] - 12, 3.5 * beat, 0.5 * beat, 0.2, 0.5)
    if held:
        for k in chord:
            note(chord_tab, k, 0.0, 4 * beat, 3.0, 0.25)
    else:
        for half in (1, 3, 5, 7):
            for j, k in enumerate(chord):
                note(chord_tab, k + 12, half * beat / 2 + 0.012 * j, beat, 0.15, 0.22)
    if melody:
        pos = 0.0
        while pos < 4 * beat - 0.1:
            length = beat * float(rng.choice([0.5, 1.0, 1.5, 2.0]))
            midi = scale[int(rng.integers(0, 7))] + 12
            s0 = round(pos * sr)
            ln = min(round(length * sr), bar_len - s0)
            if ln > 8:
                tt = t[:ln]
                vib = hz(midi) * (1.0 + 0.012 * np.sin(2 * np.pi * 5.5 * tt))
                env = np.minimum(1.0, tt / 0.04) * np.minimum(1.0, (tt[-1] - tt) / 0.04 + 0.05)
                bar[s0 : s0 + ln] += _tone(mel_tab, vib, ln, sr) * env * np.float32(0.35)
            pos += length
    if pattern:
        for slot, stroke in pattern:
            s0 = round(slot * beat / 2 * sr)
            ln = min(round(0.18 * sr), bar_len - s0)
            if ln <= 8:
                continue
            tt = t[:ln]
            if stroke in ("dhut", "tung"):
                f0 = 95.0 if stroke == "dhut" else 220.0
                f = f0 * (1.0 + 0.6 * np.exp(-tt / 0.02))
                ph = 2 * np.pi * np.cumsum(f) / sr
                bar[s0 : s0 + ln] += (np.sin(ph) * np.exp(-tt / 0.09) * 0.9).astype(np.float32)
            else:  # slap: a short bright noise burst
                burst = _filt(_band(2, 900.0, 3000.0, sr), _noise(rng, ln), dense=True)
                bar[s0 : s0 + ln] += burst * np.exp(-tt / 0.03) * np.float32(0.5)
    if shaker:
        starts = np.round(np.arange(8) * beat / 2 * sr).astype(np.int64)
        ln = round(0.05 * sr)
        env = np.exp(-np.arange(ln) / (0.012 * sr))
        tmpl = _noise(rng, 8 * ln).reshape(8, ln) * env * 0.12
        tmpl[::2] *= 0.6
        hp = _filt(_band(2, 2500.0, sr, sr), tmpl.ravel().astype(np.float32)).reshape(8, ln)
        _scatter(bar_len, starts, hp, out=bar)
    return bar


# ============================================================================ distant talk


def distant_talk(speech: np.ndarray, *, rng: np.random.Generator, sr: int = 8000) -> np.ndarray:
    """Make speech sound like people talking away from the phone.

    Low-passed at 800-1500 Hz (muffled), convolved with a reverberant room response
    (RT60 0.3-0.9 s, direct sound weaker than the reverberation), and 20-30 dB below
    the input level.

    Parameters
    ----------
    speech : numpy.ndarray
        Speech, float mono of shape (k,), at ``sr``.
    rng : numpy.random.Generator, keyword-only
        Source of every random choice.
    sr : int, keyword-only, default 8000
        Sample rate in Hz.

    Returns
    -------
    numpy.ndarray
        float32, shape (k + tail,), where the reverberant tail adds RT60 seconds;
        its RMS over the first k samples is 20-30 dB below the input's.
    """
    _check_rng(rng)
    sr = _check_sr(sr)
    x = _check_audio(speech, "speech")
    if x.size == 0:
        return x.astype(np.float32)
    rms_in = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    sos = np.vstack([_band(2, 0.0, float(rng.uniform(800.0, 1500.0)), sr), _band(1, 100.0, sr, sr)])
    muffled = _filt(sos, x)
    ir = _reverb_ir(
        rng,
        sr,
        float(rng.uniform(0.3, 0.9)),
        float(rng.uniform(-8.0, 0.0)),
        predelay_s=float(rng.uniform(0.0, 0.02)),
    )
    wet = _convolve(muffled, ir)
    head = wet[: x.size]
    rms_out = float(np.sqrt(np.mean(np.square(head, dtype=np.float64))))
    if rms_out < 1e-12:
        return wet.astype(np.float32)
    g = rms_in * 10.0 ** (float(rng.uniform(-30.0, -20.0)) / 20.0) / rms_out
    return (wet * np.float32(g)).astype(np.float32)


# ============================================================================ network


def comfort_noise(
    rng: np.random.Generator,
    *,
    duration_s: float,
    sr: int = 8000,
    level_db: float | None = None,
) -> np.ndarray:
    """Comfort noise as a VoIP/GSM decoder inserts in silence: faint, never zero.

    Spectrally shaped noise (random tilt and a broad bump, like a low-order LPC fit
    of the background) at -65..-50 dBFS, its level refreshed every 160 ms (SID
    updates) with a small random step and interpolated between updates.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice.
    duration_s : float, keyword-only
        Length in seconds.
    sr : int, keyword-only, default 8000
        Sample rate in Hz.
    level_db : float or None, keyword-only
        RMS level in dBFS, in [-100, -20]; drawn from [-65, -50] when None.

    Returns
    -------
    numpy.ndarray
        float32, shape (round(duration_s * sr),), RMS at ``level_db`` (not 0.05),
        no sample exactly zero.
    """
    _check_rng(rng)
    n = _n_samples(duration_s, sr)
    if level_db is None:
        level_db = float(rng.uniform(-65.0, -50.0))
    lv = float(level_db)
    if not (math.isfinite(lv) and -100.0 <= lv <= -20.0):
        raise InvalidParameterError(f"level_db must be in [-100, -20] dBFS, got {level_db!r}")
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    tilt = float(rng.uniform(-0.7, 0.5))  # one-pole colouring: <0 brighter, >0 darker
    sos = np.vstack(
        [
            np.array([[1.0, 0.0, 0.0, 1.0, -tilt, 0.0]], dtype=np.float32),
            _peaking_sos(float(rng.uniform(300.0, 1500.0)), float(rng.uniform(0.0, 8.0)), 0.7, sr),
        ]
    )
    out = _filt(sos, _noise(rng, n), dense=True)
    factor = max(1, round(0.16 * sr))
    steps = 10.0 ** (rng.normal(0.0, 0.75, size=n // factor + 2) / 20.0)
    _mul_ramp(out, steps, factor)
    out *= np.float32(10.0 ** (lv / 20.0) / max(_rms(out), 1e-12))
    if not out.all():
        out[out == 0.0] = np.float32(10.0 ** (lv / 20.0) * 0.01)
    return out


def room_tone(rng: np.random.Generator, *, duration_s: float, sr: int = 8000) -> np.ndarray:
    """A quiet room: air conditioning / fan noise, mains hum and buzz, maybe a clock.

    HVAC noise (pink, low-passed at 300-1200 Hz, slowly fluctuating), often with a
    fan's blade tone, 50 Hz hum with strong 100-300 Hz harmonics (transformers,
    fluorescent lamps), and sometimes a ticking clock.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice.
    duration_s : float, keyword-only
        Length in seconds.
    sr : int, keyword-only, default 8000
        Sample rate in Hz.

    Returns
    -------
    numpy.ndarray
        float32, shape (round(duration_s * sr),), RMS about 0.05.
    """
    _check_rng(rng)
    n = _n_samples(duration_s, sr)
    m = max(n, sr // 4)
    factor = max(1, round(sr / 100))
    nc = -(-m // factor) + 1
    sway = 1.0 + 0.12 * _slow_noise(rng, nc, cutoff=float(rng.uniform(0.05, 0.3)))
    hvac = _filt(
        np.vstack([_pink_sos(sr), _band(2, 0.0, float(rng.uniform(300.0, 1200.0)), sr)]),
        _noise(rng, m),
        dense=True,
    ) * _upsample(sway, factor, m)
    hvac *= np.float32(1.0 / (_rms(hvac) + 1e-9))
    out = hvac
    # One second of periodic sounds (whole cycles), tiled seamlessly.
    t = np.arange(sr) / sr
    block = np.zeros(sr)
    if rng.random() < 0.7:  # mains hum and buzz
        k = np.arange(1, 13)
        amp = rng.uniform(0.0, 1.0, size=k.size) * k ** -float(rng.uniform(0.3, 1.2))
        amp[1] += float(rng.uniform(0.5, 1.5))  # 100 Hz magnetostriction
        ph = rng.uniform(0, 2 * np.pi, size=k.size)
        block += (amp[:, None] * np.sin(2 * np.pi * 50 * k[:, None] * t + ph[:, None])).sum(0)
        block *= 10.0 ** (rng.uniform(-20.0, -6.0) / 20.0) / (_rms(block) + 1e-9)
    if rng.random() < 0.4:  # fan blade tone
        f = int(rng.integers(60, 240))
        fan = np.sin(2 * np.pi * f * t) + 0.4 * np.sin(2 * np.pi * 2 * f * t + 1.0)
        block += fan * 10.0 ** (rng.uniform(-22.0, -10.0) / 20.0)
    if block.any():
        out = out + np.resize(np.roll(block, int(rng.integers(0, sr))).astype(np.float32), m)
    if rng.random() < 0.15:  # a ticking clock
        ticks = np.arange(float(rng.uniform(0.0, 1.0)), m / sr, 1.0)
        ln = round(0.01 * sr)
        tmpl = _noise(rng, ticks.size * ln).reshape(-1, ln) * np.exp(-np.arange(ln) / (0.002 * sr))
        tick = _filt(_band(2, 1500.0, 3500.0, sr), tmpl.ravel().astype(np.float32)).reshape(-1, ln)
        _scatter(
            m,
            np.round(ticks * sr).astype(np.int64),
            tick * np.float32(rng.uniform(1.0, 4.0)),
            out=out,
        )
    return _finish(out, n)


def kitchen(rng: np.random.Generator, *, duration_s: float, sr: int = 8000) -> np.ndarray:
    """A kitchen: clinking dishes and cutlery, running water, pots knocked.

    Clinks are 2-4 inharmonic partials (1-3.8 kHz) decaying in 50-400 ms, sometimes
    in quick pairs; the tap runs for a while now and then (band noise with bubbly
    modulation and small rising bubble chirps); low knocks of pots.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice.
    duration_s : float, keyword-only
        Length in seconds.
    sr : int, keyword-only, default 8000
        Sample rate in Hz.

    Returns
    -------
    numpy.ndarray
        float32, shape (round(duration_s * sr),), RMS about 0.05.
    """
    _check_rng(rng)
    n = _n_samples(duration_s, sr)
    m = max(n, sr // 4)
    dur = m / sr
    out = _filt(_band(2, 0.0, 400.0, sr), _noise(rng, m, 0.02), dense=True)  # faint bed
    nyq = 0.47 * sr
    # Clinks.
    times = _poisson_times(rng, float(rng.uniform(0.1, 0.7)), dur)
    if dur < 5:
        times = np.append(times, rng.uniform(0.0, dur * 0.8))
    ln = round(0.4 * sr)
    tt = np.arange(ln) / sr
    for t0 in times:
        parts = int(rng.integers(2, 5))
        f = float(rng.uniform(1000.0, 2600.0)) * np.array([1.0, 2.76, 5.40, 8.93])[:parts]
        f *= rng.uniform(0.97, 1.03, size=parts)
        tau = rng.uniform(0.05, 0.4, size=parts) / np.arange(1, parts + 1)
        amp = rng.uniform(0.3, 1.0, size=parts) * (f < nyq)
        s = (amp[:, None] * np.sin(2 * np.pi * f[:, None] * tt) * np.exp(-tt / tau[:, None])).sum(0)
        g = float(rng.uniform(0.2, 1.0))
        for echo in range(1 if rng.random() < 0.7 else 2):
            s0 = round((t0 + echo * float(rng.uniform(0.05, 0.15))) * sr)
            if s0 < m:
                k = min(ln, m - s0)
                out[s0 : s0 + k] += (s[:k] * g * (0.6 if echo else 1.0)).astype(np.float32)
    # Pots and pans knocked.
    for t0 in _poisson_times(rng, float(rng.uniform(0.0, 0.15)), dur):
        s0 = round(t0 * sr)
        k = min(round(0.3 * sr), m - s0)
        tk = np.arange(k) / sr
        fk = float(rng.uniform(150.0, 500.0))
        knock = np.sin(2 * np.pi * fk * tk) * np.exp(-tk / 0.08) + 0.5 * np.sin(
            2 * np.pi * fk * 2.3 * tk
        ) * np.exp(-tk / 0.04)
        out[s0 : s0 + k] += (knock * float(rng.uniform(0.3, 1.0))).astype(np.float32)
    # Running water.
    t = float(rng.uniform(0.0, min(dur, 10.0)))
    while t < dur and rng.random() < 0.8:
        length = float(rng.uniform(2.0, 12.0))
        s0, s1 = round(t * sr), min(m, round((t + length) * sr))
        k = s1 - s0
        if k > sr // 10:
            factor = max(1, round(sr / 400))
            bub = np.exp(0.6 * _slow_noise(rng, k // factor + 2, cutoff=40.0, rate=400.0))
            ramp = np.minimum(1.0, np.minimum(np.arange(k), k - np.arange(k)) / (0.1 * sr))
            lo, hi = float(rng.uniform(300.0, 700.0)), float(rng.uniform(2000.0, 3800.0))
            water = _mul_ramp(_filt(_band(2, lo, hi, sr), _noise(rng, k), dense=True), bub, factor)
            water *= (ramp * float(rng.uniform(0.3, 0.8))).astype(np.float32)
            # Bubbles: short rising chirps.
            nb = int(rng.poisson(float(rng.uniform(20.0, 80.0)) * k / sr))
            bl = round(0.02 * sr)
            tb = np.arange(bl) / sr
            f0 = rng.uniform(400.0, 1500.0, size=(nb, 1))
            chirp = np.sin(2 * np.pi * f0 * tb * (1.0 + 12.0 * tb)) * np.exp(-tb / 0.006)
            chirp *= rng.uniform(0.05, 0.3, size=(nb, 1))
            water = _scatter(k, rng.integers(0, k, size=nb), chirp.astype(np.float32), out=water)
            out[s0:s1] += water
        t += length + float(rng.uniform(3.0, 20.0))
    return _finish(out, n)


# ============================================================================ reverb


def reverb(
    x: np.ndarray,
    *,
    rng: np.random.Generator,
    sr: int = 8000,
    rt60_s: float,
    drr_db: float | None = None,
    tail: bool = False,
) -> np.ndarray:
    """Apply synthetic room reverberation.

    Convolves with a noise impulse response decaying exponentially (60 dB in
    ``rt60_s``; high frequencies decay faster) after a direct path and a few early
    reflections. The response has unit energy, so the level stays about the same.

    Parameters
    ----------
    x : numpy.ndarray
        Audio, float mono of shape (k,).
    rng : numpy.random.Generator, keyword-only
        Source of every random choice.
    sr : int, keyword-only, default 8000
        Sample rate in Hz.
    rt60_s : float, keyword-only
        Reverberation time in seconds, in [0.05, 3].
    drr_db : float or None, keyword-only
        Direct-to-reverberant energy ratio in dB, in [-20, 30] (low = far away);
        drawn from [-3, 6] when None.
    tail : bool, keyword-only, default False
        Keep the reverberant tail (output longer than the input).

    Returns
    -------
    numpy.ndarray
        float32, shape (k,), or (k + m - 1,) with the tail (m = IR length).
    """
    _check_rng(rng)
    sr = _check_sr(sr)
    a = _check_audio(x, "x")
    rt = float(rt60_s)
    if not (math.isfinite(rt) and 0.05 <= rt <= 3.0):
        raise InvalidParameterError(f"rt60_s must be in [0.05, 3] seconds, got {rt60_s!r}")
    drr = float(rng.uniform(-3.0, 6.0)) if drr_db is None else float(drr_db)
    if not (math.isfinite(drr) and -20.0 <= drr <= 30.0):
        raise InvalidParameterError(f"drr_db must be in [-20, 30] dB, got {drr_db!r}")
    ir = _reverb_ir(rng, sr, rt, drr)
    y = _convolve(a, ir)
    return y if tail else y[: a.size]


# ============================================================================ registry


def _tv_music(rng: np.random.Generator, *, duration_s: float, sr: int = 8000) -> np.ndarray:
    return tv_or_music(rng, duration_s=duration_s, sr=sr)


def _crowd(rng: np.random.Generator, *, duration_s: float, sr: int = 8000) -> np.ndarray:
    return crowd(rng, duration_s=duration_s, sr=sr)


BACKGROUNDS: dict[str, Callable[..., np.ndarray]] = {
    "tv_music": _tv_music,
    "traffic": traffic,
    "wind": wind,
    "rain": rain,
    "crowd": _crowd,
    "siren": siren,
    "footsteps": footsteps,
    "room_tone": room_tone,
    "kitchen": kitchen,
}
"""Background generators by name, all called as ``f(rng, *, duration_s, sr)``."""


# ============================================================================ real audio


def load_folder(path: Path, *, sr: int = 8000, max_files: int = 500) -> list[np.ndarray]:
    """Load real recordings (wav, flac, ogg) from a folder tree as mono clips at ``sr``.

    Files are taken in sorted path order (deterministic), at most ``max_files``
    readable ones; channels are averaged, the DC offset removed, and the rate
    converted with polyphase resampling. Unreadable, empty and all-zero (digital
    silence) files are skipped.

    Parameters
    ----------
    path : pathlib.Path
        Folder searched recursively.
    sr : int, keyword-only, default 8000
        Target sample rate in Hz.
    max_files : int, keyword-only, default 500
        Most clips to return (>= 1).

    Returns
    -------
    list of numpy.ndarray
        float32 arrays of shape (k,), at their recorded level.

    Raises
    ------
    InvalidParameterError
        If the folder does not exist or holds no readable audio.
    """
    sr = _check_sr(sr)
    if isinstance(max_files, bool) or not isinstance(max_files, int) or max_files < 1:
        raise InvalidParameterError(f"max_files must be a positive integer, got {max_files!r}")
    folder = Path(path)
    if not folder.is_dir():
        raise InvalidParameterError(
            f"audio folder {str(folder)!r} does not exist or is not a folder"
        )
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in _AUDIO_SUFFIXES
    )
    clips: list[np.ndarray] = []
    for f in files:
        if len(clips) >= max_files:
            break
        clip = load_clip(f, sr=sr)
        if clip is not None:
            clips.append(clip)
    if not clips:
        raise InvalidParameterError(
            f"no readable audio (wav/flac/ogg with sound) found in folder {str(folder)!r}"
        )
    return clips


def load_clip(path: Path, *, sr: int = 8000) -> np.ndarray | None:
    """One real recording as a mono clip at ``sr`` (as :func:`load_folder` takes them).

    Channels averaged, the DC offset removed, the rate converted with polyphase
    resampling; None for a file that is unreadable, empty, not finite, shorter than
    50 ms or silent (digital zero).
    """
    import soundfile as sf  # lazily: only needed when real recordings are mixed in

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, ValueError, OSError, TypeError):
        return None  # soundfile.LibsndfileError derives from RuntimeError
    if data.size == 0 or rate <= 0:
        return None
    x = data.mean(axis=1)
    if not np.all(np.isfinite(x)):
        return None
    x = x - np.float32(np.mean(x))
    if int(rate) != sr:
        g = math.gcd(int(rate), sr)
        x = scipy.signal.resample_poly(x, sr // g, int(rate) // g).astype(np.float32)
    if x.size < sr // 20 or float(np.max(np.abs(x))) <= 1e-6:
        return None
    return x.astype(np.float32, copy=False)


def excerpt(
    clips: Sequence[np.ndarray],
    *,
    rng: np.random.Generator,
    duration_s: float,
    sr: int = 8000,
) -> np.ndarray:
    """A random stretch of real audio: random clips cropped and tiled with crossfades.

    Pieces start at random offsets in randomly chosen clips and join with short
    (10-40 ms) equal-power crossfades; each piece is levelled to the same RMS so a
    quiet and a loud recording do not jump, then the whole is scaled to RMS 0.05.

    Parameters
    ----------
    clips : sequence of numpy.ndarray
        Clips at ``sr`` (e.g. from :func:`load_folder`), each float mono of shape (k,).
    rng : numpy.random.Generator, keyword-only
        Source of every random choice.
    duration_s : float, keyword-only
        Length in seconds.
    sr : int, keyword-only, default 8000
        Sample rate in Hz.

    Returns
    -------
    numpy.ndarray
        float32, shape (round(duration_s * sr),), RMS about 0.05.
    """
    _check_rng(rng)
    n = _n_samples(duration_s, sr)
    if not clips:
        raise InvalidParameterError("clips must hold at least one audio clip, got none")
    pool = [_check_audio(c, "clip") for c in clips]
    pool = [c for c in pool if c.size >= 16]
    if not pool:
        raise InvalidParameterError("clips must hold at least one clip of 16 samples or more")
    out = np.zeros(n, dtype=np.float32)
    pos = 0
    first = True
    while pos < n:
        c = pool[int(rng.integers(0, len(pool)))]
        fade = min(round(float(rng.uniform(0.01, 0.04)) * sr), c.size // 4)
        want = n - pos + (0 if first else fade)
        start = int(rng.integers(0, c.size - min(want, c.size) + 1))
        piece = c[start : start + want]
        r = float(np.sqrt(np.mean(np.square(piece, dtype=np.float64))))
        piece = piece * np.float32(1.0 / r) if r > 1e-9 else piece.copy()
        if first or fade == 0:
            k = min(piece.size, n - pos)
            out[pos : pos + k] = piece[:k]
            pos += k
        else:
            fade = min(fade, piece.size, pos)
            w = np.linspace(0.0, 1.0, fade + 2, dtype=np.float32)[1:-1]
            a = pos - fade
            out[a:pos] = out[a:pos] * np.sqrt(1.0 - w) + piece[:fade] * np.sqrt(w)
            k = min(piece.size - fade, n - pos)
            out[pos : pos + k] = piece[fade : fade + k]
            pos += k
            if k <= 0:
                pos += 1  # a degenerate piece; move on rather than loop forever
        first = False
    return _finish(out, n)
