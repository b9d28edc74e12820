"""Signal-processing helpers of the simulator's sound generators.

Filters (Butterworth sections cached per corner, resonators, peaking equalisers, pink
noise shaping), control signals (slow random modulation, linear ramps, oscillator phase),
event scattering, synthetic room impulse responses, wavetables, and the argument checks
and level normalisation (:func:`finish`) every generator ends with. All float32, all
vectorised: :mod:`training.simulator.sounds` and its background modules build on them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import scipy.signal

from classifier.errors import InvalidParameterError

TARGET_RMS = 0.05
PEAK_CAP = 0.95
SPEED_OF_SOUND = 343.0


def check_sr(sr: int) -> int:
    if isinstance(sr, bool) or not isinstance(sr, int | np.integer) or not 4000 <= sr <= 48000:
        raise InvalidParameterError(f"sr must be an integer in [4000, 48000] Hz, got {sr!r}")
    return int(sr)


def n_samples(duration_s: float, sr: int) -> int:
    sr = check_sr(sr)
    d = float(duration_s)
    if not (math.isfinite(d) and 0.0 <= d <= 3600.0):
        raise InvalidParameterError(f"duration_s must be in [0, 3600] seconds, got {duration_s!r}")
    return round(d * sr)


def check_rng(rng: np.random.Generator) -> None:
    if not isinstance(rng, np.random.Generator):
        raise InvalidParameterError(
            f"rng must be a numpy.random.Generator, got {type(rng).__name__}"
        )


def check_audio(x: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise InvalidParameterError(f"{name} must be a real numeric array, got dtype {a.dtype}")
    if a.ndim != 1:
        raise InvalidParameterError(f"{name} must be 1-D (mono), got shape {a.shape}")
    a = a.astype(np.float32, copy=False)
    if not np.all(np.isfinite(a)):
        raise InvalidParameterError(f"{name} must be finite, got NaN or inf values")
    return a


def noise(rng: np.random.Generator, n: int, scale: float = 1.0) -> np.ndarray:
    """White noise of RMS ``scale``, float32, shape (n,).

    Uniform 16-bit values straight from the bit generator: three times as fast as
    ``Generator.random``, and Gaussian anyway after any filter.
    """
    raw = rng.bit_generator.random_raw(-(-n // 4))
    out = np.asarray(raw).view(np.int16)[:n].astype(np.float32)
    out *= np.float32(scale * math.sqrt(3.0) / 32768.0)
    return out


def rms_level(x: np.ndarray) -> float:
    """Root mean square (a float32 dot product: fast, and exact enough for levels)."""
    return math.sqrt(float(np.dot(x, x)) / x.size) if x.size else 0.0


def finish(x: np.ndarray, n: int, rms: float = TARGET_RMS) -> np.ndarray:
    """Crop or pad to ``n`` samples, scale to ``rms`` (peak capped), float32, finite.

    Scales ``x`` in place when it is already float32: callers pass their own scratch.
    """
    y = np.asarray(x, dtype=np.float32)[:n]
    if y.size < n:
        y = np.pad(y, (0, n - y.size))
    cur = rms_level(y)
    if not math.isfinite(cur):  # cannot happen by construction; never pass NaN on
        y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
        cur = rms_level(y)
    y = np.ascontiguousarray(y)
    if cur < 1e-12:
        return y
    g = rms / cur
    peak = max(float(y.max()), -float(y.min())) * g
    if peak > PEAK_CAP:
        g *= PEAK_CAP / peak
    y *= np.float32(g)
    return y


@functools.lru_cache(maxsize=1024)
def butter_cached(order: int, kind: str, freq: float, sr: int) -> np.ndarray:
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


def grid(freq: float) -> float:
    """Round a corner frequency to a 1/24-octave grid so filter designs are cached."""
    return float(2.0 ** (round(math.log2(max(freq, 1.0)) * 24) / 24))


def band(order: int, lo: float, hi: float, sr: int) -> np.ndarray:
    """Butterworth SOS: high-pass at ``lo`` (if > 0) cascaded with low-pass at ``hi``
    (if below Nyquist), so band-pass, high-pass or low-pass; shape (k, 6), float32.
    """
    nyq = sr / 2.0
    rows = []
    if lo > 0:
        rows.append(butter_cached(order, "highpass", min(grid(lo), 0.9 * nyq), sr))
    if hi < nyq:
        rows.append(butter_cached(order, "lowpass", min(grid(hi), 0.95 * nyq), sr))
    if not rows:
        return np.array([[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]], dtype=np.float32)
    return np.vstack(rows)  # a new array: callers may scale it in place


@functools.lru_cache(maxsize=8)
def guard_pattern(n: int) -> np.ndarray:
    # A fixed +-1e-20 pattern (a constant, not a random choice), cached per length.
    signs = np.where(np.arange(4096) * 2654435761 % 4294967296 < 2147483648, 1.0, -1.0)
    out = np.resize((signs * 1e-20).astype(np.float32), n)
    out.setflags(write=False)
    return out


def guard(x: np.ndarray) -> np.ndarray:
    """``x`` plus a -400 dB floor: IIR filters decaying into silence would otherwise hit
    subnormal floats, which are ~100x slower on x86."""
    a = np.asarray(x, dtype=np.float32)
    return a + guard_pattern(a.size).reshape(a.shape)


def filt(sos: np.ndarray, x: np.ndarray, *, dense: bool = False) -> np.ndarray:
    """``sosfilt`` in float32. ``dense`` inputs (noise that never stops) need no guard
    against subnormals."""
    a = np.asarray(x, dtype=np.float32) if dense else guard(x)
    return scipy.signal.sosfilt(np.asarray(sos, dtype=np.float32), a)


def resonator_sos(freq: float, bw: float, sr: int) -> np.ndarray:
    """Two-pole resonator (a formant or a body mode) as one SOS row, unit peak gain."""
    r = math.exp(-math.pi * bw / sr)
    theta = 2.0 * math.pi * freq / sr
    a1, a2 = -2.0 * r * math.cos(theta), r * r
    # Gain so the peak is ~1: |H(e^{j theta})| of 1 / (1 + a1 z^-1 + a2 z^-2).
    h = abs(1.0 / (1.0 + a1 * np.exp(-1j * theta) + a2 * np.exp(-2j * theta)))
    return np.array([[1.0 / h, 0.0, 0.0, 1.0, a1, a2]], dtype=np.float32)


def control_grid(m: int, sr: int, *, rate: int = 100) -> tuple[int, int]:
    """A control signal's grid for ``m`` samples at ``sr``: samples per control value
    (``factor``, for about ``rate`` values a second) and how many values cover ``m``
    samples with one to interpolate towards at the end (``nc``, for :func:`upsample`)."""
    factor = max(1, round(sr / rate))
    return factor, -(-m // factor) + 1


def upsample(ctrl: np.ndarray, factor: int, n: int) -> np.ndarray:
    """Linear interpolation of a control signal with one value per ``factor`` samples."""
    c = np.asarray(ctrl, dtype=np.float32)
    need = -(-n // factor) + 1
    if c.size < need:
        c = np.pad(c, (0, need - c.size), mode="edge")
    out = np.multiply.outer(c[1:need] - c[: need - 1], ramp(factor))
    out += c[: need - 1, None]
    return out.ravel()[:n]


def mul_ramp(x: np.ndarray, ctrl: np.ndarray, factor: int) -> np.ndarray:
    """``x *= upsample(ctrl, factor, x.size)`` without the full-length temporary."""
    n = x.size
    c = np.asarray(ctrl, dtype=np.float32)
    need = -(-n // factor) + 1
    if c.size < need:
        c = np.pad(c, (0, need - c.size), mode="edge")
    w = ramp(factor)
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
def ramp(factor: int) -> np.ndarray:
    w = np.arange(factor, dtype=np.float32) / np.float32(factor)
    w.setflags(write=False)
    return w


@functools.lru_cache(maxsize=256)
def slow_filter(c: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Second-order low-pass at normalised corner ``c`` and its white-noise gain."""
    b, a = scipy.signal.butter(2, c)
    impulse = np.zeros(min(200_000, int(40 / c) + 16))
    impulse[0] = 1.0
    h = scipy.signal.lfilter(b, a, impulse)
    return b, a, float(np.sqrt(np.sum(h * h)))


def slow_noise(
    rng: np.random.Generator, n_ctrl: int, *, cutoff: float, rate: float = 100.0
) -> np.ndarray:
    """A smooth random control signal (zero mean, unit std) at ``rate`` Hz.

    Low-pass filtered Gaussian noise with corner ``cutoff`` Hz, scaled by the filter's
    theoretical gain (not the sample std, which would blow short clips up);
    shape (n_ctrl,), float64.
    """
    c = min(max(grid(cutoff) / (rate / 2.0), 1e-4), 0.99)
    b, a, gain = slow_filter(c)
    warm = int(2 * rate / max(cutoff, 0.01))  # let the filter settle
    w = rng.standard_normal(n_ctrl + warm)
    return scipy.signal.lfilter(b, a, w)[warm:] / gain


def peaking_sos(freq: float, gain_db: float, q: float, sr: int) -> np.ndarray:
    """Peaking equaliser (RBJ cookbook) as one SOS row: +gain_db around freq."""
    amp = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * min(freq, 0.45 * sr) / sr
    alpha = math.sin(w0) / (2.0 * q)
    b = [1.0 + alpha * amp, -2.0 * math.cos(w0), 1.0 - alpha * amp]
    a = [1.0 + alpha / amp, -2.0 * math.cos(w0), 1.0 - alpha / amp]
    return np.array([[*(v / a[0] for v in b), 1.0, a[1] / a[0], a[2] / a[0]]], dtype=np.float32)


def phase(freq: np.ndarray, factor: int, n: int, sr: int) -> np.ndarray:
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


def scatter(
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


def poisson_times(rng: np.random.Generator, rate: float, duration: float) -> np.ndarray:
    """Event times (s) of a Poisson process with ``rate`` events per second."""
    k = int(rng.poisson(max(rate, 0.0) * max(duration, 0.0)))
    return np.sort(rng.uniform(0.0, duration, size=k))


@functools.cache
def pink_sos(sr: int) -> np.ndarray:
    """Pink (1/f) noise shaping filter (P. Kellet / J. O. Smith 3-pole fit) as SOS."""
    b = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
    a = [1.0, -2.494956002, 2.017265875, -0.522189400]
    sos = np.asarray(scipy.signal.tf2sos(b, a), dtype=np.float32)
    sos.setflags(write=False)
    return sos


def reverb_ir(
    rng: np.random.Generator, sr: int, rt60_s: float, drr_db: float, *, predelay_s: float = 0.0
) -> np.ndarray:
    """Synthetic room impulse response: direct path, a few early reflections and an
    exponentially decaying noise tail whose high frequencies die out faster.

    Returns float32, shape (m,), unit energy.
    """
    m = max(8, round(min(rt60_s, 2.0) * sr))
    t = np.arange(m, dtype=np.float32) / np.float32(sr)
    tail_noise = noise(rng, m)
    hf = filt(band(1, 1500.0, sr, sr), tail_noise, dense=True) if sr > 3200 else tail_noise * 0
    lf = tail_noise - hf
    k = np.float32(6.9078 / rt60_s)
    ratio = np.float32(rng.uniform(1.5, 2.5))  # HF decays this much faster
    tail = lf * np.exp(-k * t) + hf * np.exp(-k * ratio * t)
    onset = round(float(rng.uniform(0.002, 0.012)) * sr) + round(predelay_s * sr)
    tail[: min(onset, m)] = 0.0
    fade_in = min(round(0.005 * sr), m - min(onset, m))
    if fade_in > 0:
        tail[onset : onset + fade_in] *= np.linspace(0.0, 1.0, fade_in, dtype=np.float32)
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


def convolve(x: np.ndarray, ir: np.ndarray) -> np.ndarray:
    if x.size == 0:
        return x.astype(np.float32)
    return scipy.signal.oaconvolve(x, ir).astype(np.float32, copy=False)


def wavetable(harmonics: Sequence[float] | np.ndarray, size: int = 2048) -> np.ndarray:
    """One period of a waveform with the given harmonic amplitudes, float32 (size,)."""
    t = np.arange(size) / size
    k = np.arange(1, len(harmonics) + 1)
    tab = (np.asarray(harmonics)[:, None] * np.sin(2.0 * np.pi * k[:, None] * t[None, :])).sum(0)
    return tab.astype(np.float32)


def tone(
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
