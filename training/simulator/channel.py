"""The phone network between the caller and the 112 recorder.

A caller's sound reaches the recorder through a chain that leaves recognisable marks:
the handset's automatic gain control, clipping of loud voices, the band-pass of the
telephone channel, a speech codec (G.711 on fixed lines, GSM/AMR on mobiles), lost
packets hidden by the decoder's concealment, the recorder's level, mains hum and hiss.
:func:`apply_channel` runs that chain with the settings of a :class:`ChannelParams`,
which :func:`random_channel` draws for clean, normal or poor lines.

The output never holds runs of exact digital zero (a real line always carries some
noise), so silence detectors trained on simulated calls cannot key on that.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import scipy.fft
import scipy.ndimage
import scipy.signal

from classifier.errors import InvalidParameterError

__all__ = [
    "CODECS",
    "SEVERITIES",
    "ChannelParams",
    "alaw_roundtrip",
    "apply_channel",
    "mulaw_roundtrip",
    "random_channel",
]

CODECS = ("mulaw", "alaw", "gsm_like", "amr_like", "none")
SEVERITIES = ("clean", "normal", "poor")

_FRAME_S = 0.020  # codec / packet frame (G.711 RTP, GSM and AMR all use 20 ms)


@dataclass(frozen=True)
class ChannelParams:
    """Settings of one simulated phone line.

    Attributes
    ----------
    codec : str
        ``"mulaw"`` or ``"alaw"`` (G.711), ``"gsm_like"`` or ``"amr_like"`` (cheap
        approximations of low-bitrate mobile codecs), or ``"none"``.
    band_hz : tuple of float
        Pass band (low, high) of the channel in Hz, e.g. (300, 3400).
    gain_db : float
        Level change at the recorder in dB.
    clip_level : float
        Hard-clipping threshold on the caller side, in (0, 1]; 1.0 means no clipping
        beyond the recorder's own full scale.
    packet_loss : float
        Fraction of 20 ms frames lost, in [0, 0.5].
    line_noise_db : float
        Hiss level at the recorder in dBFS (RMS).
    hum : bool
        Add 50 Hz mains hum with harmonics.
    agc : bool
        Run an automatic gain control that pumps the background up in pauses.
    tilt_db : float, default 0.0
        Handset colouration: level of high frequencies relative to low ones in dB
        (first-order shelf around 1 kHz), in [-20, 20].
    hum_db : float, default -55.0
        Hum level in dBFS (RMS) when ``hum`` is true.
    """

    codec: str
    band_hz: tuple[float, float]
    gain_db: float
    clip_level: float
    packet_loss: float
    line_noise_db: float
    hum: bool
    agc: bool
    tilt_db: float = 0.0
    hum_db: float = -55.0

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise InvalidParameterError(f"codec must be one of {CODECS}, got {self.codec!r}")
        if len(self.band_hz) != 2:
            raise InvalidParameterError(f"band_hz must be (low, high), got {self.band_hz!r}")
        lo, hi = (float(v) for v in self.band_hz)
        if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 < lo < hi):
            raise InvalidParameterError(f"band_hz must satisfy 0 < low < high, got {self.band_hz}")
        _check_range("gain_db", self.gain_db, -60.0, 40.0)
        _check_range("clip_level", self.clip_level, 1e-3, 1.0)
        _check_range("packet_loss", self.packet_loss, 0.0, 0.5)
        _check_range("line_noise_db", self.line_noise_db, -120.0, -20.0)
        _check_range("tilt_db", self.tilt_db, -20.0, 20.0)
        _check_range("hum_db", self.hum_db, -100.0, -20.0)


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    v = float(value)
    if not (math.isfinite(v) and lo <= v <= hi):
        raise InvalidParameterError(f"{name} must be in [{lo}, {hi}], got {value!r}")


@dataclass(frozen=True)
class _Preset:
    """Codec weights and the ranges the other settings are drawn from."""

    codecs: dict[str, float]
    low: tuple[float, float]
    high: tuple[float, float]
    gain: tuple[float, float]  # (low, high) bounds; drawn around the nominal level
    p_clip: float
    clip: tuple[float, float]
    p_loss: float
    loss: tuple[float, float]
    noise: tuple[float, float]
    p_hum: float
    p_agc: float
    tilt: tuple[float, float]


_PRESETS = {
    "clean": _Preset(
        codecs={"mulaw": 0.45, "alaw": 0.15, "none": 0.2, "amr_like": 0.2},
        low=(200.0, 320.0),
        high=(3300.0, 3600.0),
        gain=(-12.0, 6.0),
        p_clip=0.0,
        clip=(0.3, 0.6),
        p_loss=0.0,
        loss=(0.0, 0.0),
        noise=(-70.0, -60.0),
        p_hum=0.05,
        p_agc=0.15,
        tilt=(-3.0, 3.0),
    ),
    "normal": _Preset(
        codecs={"mulaw": 0.25, "alaw": 0.08, "amr_like": 0.37, "gsm_like": 0.2, "none": 0.1},
        low=(200.0, 400.0),
        high=(3000.0, 3600.0),
        gain=(-24.0, 12.0),
        p_clip=0.1,
        clip=(0.15, 0.6),
        p_loss=0.35,
        loss=(0.002, 0.03),
        noise=(-70.0, -50.0),
        p_hum=0.15,
        p_agc=0.35,
        tilt=(-6.0, 6.0),
    ),
    "poor": _Preset(
        codecs={"mulaw": 0.1, "alaw": 0.05, "amr_like": 0.45, "gsm_like": 0.4},
        low=(300.0, 400.0),
        high=(3000.0, 3400.0),
        gain=(-24.0, 12.0),
        p_clip=0.3,
        clip=(0.1, 0.5),
        p_loss=1.0,
        loss=(0.01, 0.08),
        noise=(-60.0, -45.0),
        p_hum=0.3,
        p_agc=0.5,
        tilt=(-8.0, 8.0),
    ),
}


def random_channel(rng: np.random.Generator, *, severity: str = "normal") -> ChannelParams:
    """Draw the settings of a random phone line.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice.
    severity : {"clean", "normal", "poor"}, default "normal"
        How degraded the line may be: poor lines use low-bitrate codecs, lose
        packets, clip more often and carry more hiss and hum.

    Returns
    -------
    ChannelParams
        Settings to pass to :func:`apply_channel`.
    """
    if severity not in _PRESETS:
        raise InvalidParameterError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    p = _PRESETS[severity]
    names = list(p.codecs)
    weights = np.array([p.codecs[c] for c in names])
    codec = names[int(rng.choice(len(names), p=weights / weights.sum()))]

    def uni(r: tuple[float, float]) -> float:
        return float(rng.uniform(r[0], r[1]))

    band = (round(uni(p.low), 1), round(uni(p.high), 1))
    # Recorder levels cluster around nominal (network level plans, recorder AGC) with
    # tails to quiet and hot lines: a normal around -3 dB, clipped to the bounds.
    gain = float(np.clip(rng.normal(-3.0, 7.0), p.gain[0], p.gain[1]))
    clip = uni(p.clip) if rng.random() < p.p_clip else 1.0
    loss = uni(p.loss) if rng.random() < p.p_loss else 0.0
    noise = uni(p.noise)
    hum = bool(rng.random() < p.p_hum)
    agc = bool(rng.random() < p.p_agc)
    tilt = uni(p.tilt)
    hum_db = float(rng.uniform(-65.0, -40.0))
    return ChannelParams(
        codec=codec,
        band_hz=band,
        gain_db=gain,
        clip_level=clip,
        packet_loss=loss,
        line_noise_db=noise,
        hum=hum,
        agc=agc,
        tilt_db=tilt,
        hum_db=hum_db,
    )


def apply_channel(
    x: np.ndarray, *, params: ChannelParams, rng: np.random.Generator, sr: int = 8000
) -> np.ndarray:
    """Send a caller-side signal through a simulated phone line.

    The chain is: AGC, caller-side clipping, line hiss, channel band-pass with
    handset tilt, codec, packet loss with concealment, recorder gain, mains hum,
    the recorder's noise floor, and clipping to full scale.

    Parameters
    ----------
    x : numpy.ndarray
        Caller-side audio, shape (n,), float, finite; nominal peak 0.1-0.5.
    params : ChannelParams, keyword-only
        Line settings, e.g. from :func:`random_channel`.
    rng : numpy.random.Generator, keyword-only
        Source of the noise, lost-packet positions and codec details.
    sr : int, keyword-only, default 8000
        Sample rate in Hz; the band's high edge must lie below ``sr / 2``.

    Returns
    -------
    numpy.ndarray
        float32, shape (n,), within [-1, 1], with no run of more than 8 exact zeros
        (even for an all-zero input).
    """
    y = _check_signal(x, "x")
    sr = _check_sr(sr)
    if not isinstance(params, ChannelParams):
        raise InvalidParameterError(f"params must be a ChannelParams, got {type(params).__name__}")
    lo, hi = (float(v) for v in params.band_hz)
    if hi >= 0.49 * sr:
        raise InvalidParameterError(
            f"band_hz high edge must be below 0.49 * sr = {0.49 * sr:g} Hz, got {hi:g}"
        )
    if y.size == 0:
        return y
    # One generator per stage, drawn up front, so each stage's randomness does not
    # depend on which other stages are active (e.g. toggling packet loss changes only
    # the lost frames).
    seeds = rng.integers(0, 2**63 - 1, size=7)
    g_agc, g_hiss, g_codec, g_loss, g_hum, g_floor, _ = (
        np.random.default_rng(int(s)) for s in seeds
    )

    y = y.copy()
    if params.agc:
        y = _agc(y, rng=g_agc, sr=sr)
    if params.clip_level < 1.0:
        np.clip(y, -params.clip_level, params.clip_level, out=y)
    # Analog line hiss, scaled so that after band-pass and recorder gain it sits at
    # line_noise_db; it goes through the codec like the voice does.
    frac = (hi - lo) / (sr / 2.0)
    hiss_rms = 10.0 ** ((params.line_noise_db - params.gain_db) / 20.0) / math.sqrt(frac)
    y += _white(g_hiss, y.size) * np.float32(hiss_rms)
    y = scipy.signal.sosfilt(_band_sos(lo, hi, params.tilt_db, sr), y).astype(np.float32)

    if params.codec == "mulaw":
        y = mulaw_roundtrip(y)
    elif params.codec == "alaw":
        y = alaw_roundtrip(y)
    elif params.codec in ("gsm_like", "amr_like"):
        y = _lowrate_codec(y, rng=g_codec, sr=sr, band=(lo, hi), gsm=params.codec == "gsm_like")

    if params.packet_loss > 0.0:
        y = _packet_loss(y, rate=params.packet_loss, rng=g_loss, sr=sr)

    y *= np.float32(10.0 ** (params.gain_db / 20.0))
    if params.hum:
        y += _hum(g_hum, y.size, sr=sr, level_db=params.hum_db)
    # The recorder's own noise floor (about 1-2 LSB of 16-bit audio): a real line is
    # never digitally silent.
    floor = 10.0 ** (float(g_floor.uniform(-92.0, -84.0)) / 20.0)
    y += _white(g_floor, y.size) * np.float32(floor)
    np.clip(y, -1.0, 1.0, out=y)
    # Belt and braces: an exact zero needs noise and signal to cancel to the last bit.
    y[y == 0.0] = np.float32(floor)
    return y


# --------------------------------------------------------------------------- G.711

_MULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def _mulaw_pcm(pcm16: np.ndarray) -> np.ndarray:
    """G.711 mu-law encode + decode of 16-bit PCM values (int32 array)."""
    pcm = pcm16 >> 2  # 14-bit, arithmetic shift as in C
    neg = pcm < 0
    # Clip the magnitude at 8159 and add the bias; 8192 falls off the top segment,
    # where the reference encoder returns the largest code, as 8191 does.
    mag = np.minimum(np.minimum(np.where(neg, -pcm, pcm), 8159) + 33, 0x1FFF)
    seg = np.searchsorted(_MULAW_SEG_END, mag, side="left")
    mant = (mag >> (seg + 1)) & 0xF
    # Decoder: ((mantissa << 3) + 0x84) << segment, minus the bias.
    t = (((mant << 3) + 0x84) << seg) - 0x84
    return np.where(neg, -t, t)


def _alaw_pcm(pcm16: np.ndarray) -> np.ndarray:
    """G.711 A-law encode + decode of 16-bit PCM values (int32 array)."""
    pcm = pcm16 >> 3  # 13-bit
    neg = pcm < 0
    mag = np.where(neg, -pcm - 1, pcm)
    seg = np.searchsorted(_ALAW_SEG_END, mag, side="left")  # 13-bit: never past 7
    mant = np.where(seg < 2, mag >> 1, mag >> np.maximum(seg, 1)) & 0xF
    t = (mant << 4) + np.where(seg == 0, 8, 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(neg, -t, t)


@functools.cache
def _g711_table(law: str) -> np.ndarray:
    """Decoded value of every 16-bit input (index = pcm + 32768), float32 / 32768."""
    pcm = np.arange(-32768, 32768, dtype=np.int32)
    out = _mulaw_pcm(pcm) if law == "mulaw" else _alaw_pcm(pcm)
    table = (out / 32768.0).astype(np.float32)
    table.setflags(write=False)
    return table


def _g711(x: np.ndarray, law: str) -> np.ndarray:
    a = np.asarray(_check_any(x, "x"), dtype=np.float32) * np.float32(32768.0)
    idx = np.clip(np.rint(a), -32768.0, 32767.0).astype(np.int32) + 32768
    return _g711_table(law)[idx]


def mulaw_roundtrip(x: np.ndarray) -> np.ndarray:
    """Encode to 8-bit G.711 mu-law and decode back.

    Bit-exact with the ITU-T G.711 reference (as in CPython's ``audioop``): the signal
    is first rounded to 16-bit PCM, its 14 most significant bits are companded to a
    sign, 3-bit segment and 4-bit mantissa, and decoding returns the interval middle.

    Parameters
    ----------
    x : numpy.ndarray
        Audio of any shape, float, full scale +-1.

    Returns
    -------
    numpy.ndarray
        float32, same shape, the decoded values divided by 32768.
    """
    return _g711(x, "mulaw")


def alaw_roundtrip(x: np.ndarray) -> np.ndarray:
    """Encode to 8-bit G.711 A-law and decode back.

    Bit-exact with the ITU-T G.711 reference (as in CPython's ``audioop``), working on
    the 13 most significant bits of the signal rounded to 16-bit PCM.

    Parameters
    ----------
    x : numpy.ndarray
        Audio of any shape, float, full scale +-1.

    Returns
    -------
    numpy.ndarray
        float32, same shape, the decoded values divided by 32768.
    """
    return _g711(x, "alaw")


# ------------------------------------------------------------------------ stages


def _white(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-variance white noise, float32 (uniform: twice as fast as Gaussian and
    indistinguishable once filtered)."""
    return (rng.random(n, dtype=np.float32) - np.float32(0.5)) * np.float32(math.sqrt(12.0))


@functools.lru_cache(maxsize=256)
def _band_sos_cached(lo: float, hi: float, tilt_db: float, sr: int) -> np.ndarray:
    # Elliptic filters: the steep edges of a PCM channel filter (G.712 mask), with
    # band_hz the pass-band edges.
    hp = scipy.signal.ellip(6, 0.5, 60.0, lo, btype="highpass", fs=sr, output="sos")
    lp = scipy.signal.ellip(8, 0.5, 60.0, hi, btype="lowpass", fs=sr, output="sos")
    sos = [hp, lp]
    if abs(tilt_db) > 0.05:
        sos.append(_shelf_sos(tilt_db, sr))
    return np.vstack(sos).astype(np.float32)


def _band_sos(lo: float, hi: float, tilt_db: float, sr: int) -> np.ndarray:
    # Round so that the expensive elliptic design is cached across calls.
    return _band_sos_cached(round(lo / 5.0) * 5.0, round(hi / 5.0) * 5.0, round(tilt_db, 1), sr)


def _shelf_sos(tilt_db: float, sr: int) -> np.ndarray:
    """First-order shelf: high frequencies ``tilt_db`` above low ones, 0 dB at ~1 kHz."""
    g = 10.0 ** (-tilt_db / 20.0)  # DC gain relative to HF gain
    w0 = 2.0 * math.pi * 1000.0
    # H(s) = (s/w0 + sqrt(g)) / (s/w0 + 1/sqrt(g)) / sqrt(g): DC sqrt(g), HF 1/sqrt(g).
    b, a = scipy.signal.bilinear([1.0 / w0, math.sqrt(g)], [1.0 / w0, 1.0 / math.sqrt(g)], fs=sr)
    b = np.asarray(b) / (math.sqrt(g) * a[0])
    return np.array([[b[0], b[1], 0.0, 1.0, a[1] / a[0], 0.0]])


def _agc(y: np.ndarray, *, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Handset AGC: instant attack, slow linear-in-dB release, capped boost.

    The boost that grows in pauses brings the background up ("pumping").
    """
    target_db = float(rng.uniform(-24.0, -16.0))
    release_db_s = float(rng.uniform(6.0, 30.0))
    max_boost = float(rng.uniform(8.0, 24.0))
    smooth_s = float(rng.uniform(0.01, 0.05))
    hop = max(1, round(0.01 * sr))
    nf = -(-y.size // hop)
    frames = np.pad(y, (0, nf * hop - y.size)).reshape(nf, hop)
    level = 10.0 * np.log10(np.mean(np.square(frames, dtype=np.float64), axis=1) + 1e-10)
    r = release_db_s * hop / sr
    k = np.arange(nf) * r
    env = np.maximum.accumulate(level + k) - k  # peak hold decaying r dB per frame
    gain_db = np.clip(target_db - env, -30.0, max_boost)
    a = math.exp(-hop / (smooth_s * sr))
    gain_db, _ = scipy.signal.lfilter([1.0 - a], [1.0, -a], gain_db, zi=[a * gain_db[0]])
    gain = _upsample(10.0 ** (gain_db / 20.0), hop, y.size)
    return (y * gain).astype(np.float32)


def _upsample(ctrl: np.ndarray, factor: int, n: int) -> np.ndarray:
    """Linear interpolation of a control signal (one value per ``factor`` samples)."""
    c = np.append(ctrl, ctrl[-1]).astype(np.float32)
    w = (np.arange(factor, dtype=np.float32) / np.float32(factor))[None, :]
    out = c[:-1, None] * (np.float32(1.0) - w) + c[1:, None] * w
    return out.ravel()[:n]


def _hum(rng: np.random.Generator, n: int, *, sr: int, level_db: float) -> np.ndarray:
    """Mains hum: 50 Hz and harmonics, odd ones strong (rectifier and transformer buzz)."""
    k = np.arange(1, 21)
    amp = rng.uniform(0.2, 1.0, size=k.size) * k ** -float(rng.uniform(0.5, 1.5))
    amp[1::2] *= float(rng.uniform(0.2, 0.8))  # even harmonics weaker
    amp[k * 50.0 >= 0.45 * sr] = 0.0
    ph = rng.uniform(0.0, 2.0 * math.pi, size=k.size)
    # Exactly 50 cycles in one second: compute one second and tile it seamlessly.
    t = np.arange(sr) / sr
    block = (amp[:, None] * np.sin(2.0 * math.pi * 50.0 * k[:, None] * t + ph[:, None])).sum(0)
    block *= 10.0 ** (level_db / 20.0) / max(float(np.sqrt(np.mean(block**2))), 1e-12)
    block = np.roll(block, int(rng.integers(0, sr)))
    return np.resize(block.astype(np.float32), n)


def _loss_mask(n_frames: int, *, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Lost frames from a two-state (Gilbert-Elliott) model: losses come in bursts.

    Returns a bool array of shape (n_frames,) whose mean is ``rate`` on average.
    """
    if rate <= 0.0 or n_frames == 0:
        return np.zeros(n_frames, dtype=bool)
    mean_burst = float(rng.uniform(1.0, 3.0))
    p_bg = 1.0 / mean_burst  # leave the bad state
    p_gb = min(1.0, rate * p_bg / (1.0 - rate))  # enter it, so the stationary rate is `rate`
    first_bad = rng.random() < rate
    runs: list[np.ndarray] = []
    total = 0
    while total < n_frames:
        m = int(2 * n_frames * p_gb) + 16
        good = rng.geometric(p_gb, size=m)
        bad = rng.geometric(p_bg, size=m)
        pair = np.stack([bad, good] if first_bad else [good, bad], axis=1).ravel()
        runs.append(pair)
        total += int(pair.sum())
    lengths = np.concatenate(runs)
    states = np.zeros(lengths.size, dtype=bool)
    states[(0 if first_bad else 1) :: 2] = True
    return np.repeat(states, lengths)[:n_frames]


def _packet_loss(y: np.ndarray, *, rate: float, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Drop 20 ms frames and conceal them like a G.711 Appendix I style PLC.

    A lost stretch continues the last pitch period of the signal before it, at full
    level for 10 ms and then fading out by 60 ms into low-level comfort noise, and
    crossfades back into the signal after the loss.
    """
    flen = max(1, round(_FRAME_S * sr))
    n_frames = -(-y.size // flen)
    lost = _loss_mask(n_frames, rate=rate, rng=rng)
    if not lost.any():
        return y
    out = y.copy()
    d = np.diff(np.concatenate([[0], lost.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(d == 1) * flen, np.minimum(np.flatnonzero(d == -1) * flen, y.size)
    pmin, pmax = max(2, round(0.0025 * sr)), max(4, round(0.015 * sr))
    xfade = max(2, round(0.004 * sr))
    step = max(1, round(0.010 * sr))
    longest = int((ends - starts).max()) + xfade
    t = np.arange(longest, dtype=np.float32)
    ramp = np.clip(1.0 - 0.2 * (t - step) / step, 0.0, 1.0).astype(np.float32)
    w_in = np.arange(1, xfade + 1, dtype=np.float32) / np.float32(xfade + 1)
    noise = rng.standard_normal(int((ends - starts).sum()), dtype=np.float32)
    used = 0
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        length = e - s
        m = min(xfade, y.size - e)
        hist = out[max(0, s - 2 * pmax) : s]
        if hist.size >= 2 * pmax:
            src = hist[-_pitch_period(hist, pmin, pmax) :]
            ext = np.tile(src, -(-(length + m) // src.size))[: length + m]
            ref = float(np.sqrt(np.mean(np.square(hist, dtype=np.float64))))
        else:
            ext = np.zeros(length + m, dtype=np.float32)
            ref = 0.0
        gain = ramp[: length + m]
        cn = noise[used : used + length] * np.float32(0.03 * ref + 1e-6)
        used += length
        out[s:e] = ext[:length] * gain[:length] + cn * (np.float32(1.0) - gain[:length])
        if m > 0:
            w = w_in[:m]
            out[e : e + m] = w * y[e : e + m] + (np.float32(1.0) - w) * ext[length:] * gain[length:]
    return out


def _pitch_period(hist: np.ndarray, pmin: int, pmax: int) -> int:
    """Lag in [pmin, pmax] with the highest normalised autocorrelation of the history.

    ``hist`` has shape (2 * pmax,); its last ``pmax`` samples are compared with the
    stretch ``lag`` samples earlier.
    """
    h = hist.astype(np.float64)
    seg = h[-pmax:]
    r = np.correlate(h, seg, mode="valid")  # r[j] = h[j : j + pmax] . seg
    cs = np.concatenate([[0.0], np.cumsum(h * h)])
    energy = cs[pmax:] - cs[:-pmax]  # energy[j] of h[j : j + pmax]
    lags = np.arange(pmin, pmax + 1)
    j = h.size - pmax - lags
    score = r[j] / np.sqrt(energy[j] * float(seg @ seg) + 1e-20)
    return int(lags[int(np.argmax(score))])


def _lowrate_codec(
    y: np.ndarray, *, rng: np.random.Generator, sr: int, band: tuple[float, float], gsm: bool
) -> np.ndarray:
    """A cheap stand-in for GSM / AMR in the STFT domain.

    Keeps a smoothed spectral envelope, quantises the fine structure coarsely and
    opens spectral holes (musical noise), dulls the top of the band in low modes, and
    replaces non-speech frames by comfort noise whose spectrum is refreshed only every
    160 ms (DTX with SID updates), which makes the background "breathe".
    """
    quality = float(rng.uniform(0.0, 0.6 if gsm else 1.0))  # 0 = lowest bitrate mode
    q = np.float32((6.0 - 3.5 * quality) * math.log(10.0) / 10.0)  # step: dB -> ln(power)
    hole = np.float32((1.2 + 1.5 * quality) * (1.3 if gsm else 1.0))
    env_bins = 7 if gsm else 5
    dtx = rng.random() < (0.8 if gsm else 0.9)

    flen = max(8, 2 * round(_FRAME_S * sr / 2))
    hop = flen // 2
    win = np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(flen) / flen)).astype(np.float32)
    n = y.size
    nblk = -(-n // hop) + 1
    pad = np.zeros((nblk + 1) * hop, dtype=np.float32)
    pad[hop : hop + n] = y
    frames = np.lib.stride_tricks.sliding_window_view(pad, flen)[::hop] * win
    spec = scipy.fft.rfft(frames, axis=1)
    freqs = np.arange(spec.shape[1]) * sr / flen
    power = spec.real**2 + spec.imag**2
    power += np.float32(1e-12)
    logp = np.log(power)
    env = scipy.ndimage.uniform_filter1d(logp, env_bins, axis=1, mode="nearest")
    resid = logp - env
    resid_q = np.rint(resid * (np.float32(1.0) / q)) * q
    # Spectral holes: bins the coder gave no bits.
    np.subtract(resid_q, np.float32(4.0), out=resid_q, where=resid < -hole)
    # Low modes lose the top of the band; bins outside the band are not coded at all.
    droop = np.clip((freqs - 2500.0) / max(band[1] - 2500.0, 1.0), 0.0, 1.0) * (
        (1.0 - quality) * 2.0
    )
    in_band = (freqs >= band[0] * 0.8) & (freqs <= band[1])
    col = np.where(in_band, -0.5 * droop, -np.inf).astype(np.float32)
    resid_q -= resid
    resid_q *= np.float32(0.5)
    resid_q += col
    spec *= np.exp(resid_q)  # new magnitude / old magnitude, phase kept

    if dtx and spec.shape[0] > 8:
        k0, k1 = int(np.argmax(in_band)), int(in_band.size - np.argmax(in_band[::-1]))
        energy = np.log(power[:, k0:k1].sum(axis=1) + np.float32(1e-12))
        floor = scipy.ndimage.minimum_filter1d(energy, size=101, mode="nearest")
        floor = scipy.ndimage.uniform_filter1d(floor, size=51, mode="nearest")
        thr = float(rng.uniform(1.4, 2.8))  # 6-12 dB above the noise floor is "speech"
        # Hangover (and a little look-ahead) of 70 ms around speech.
        active = scipy.ndimage.maximum_filter1d(energy > floor + thr, size=15)
        idle = np.flatnonzero(~active)
        if idle.size:
            # SID: the noise envelope averaged over 160 ms blocks and held for the
            # block, so the comfort noise changes in steps as in DTX.
            n_fr, n_bin = env.shape
            nb = -(-n_fr // 16)
            if nb * 16 != n_fr:
                env = np.concatenate([env, np.repeat(env[-1:], nb * 16 - n_fr, axis=0)])
            keys, inv = np.unique(idle // 16, return_inverse=True)
            mean_env = env.reshape(nb, 16, n_bin)[keys].mean(axis=1)
            level = np.float32(float(rng.uniform(-4.0, 1.0)) * math.log(10.0) / 20.0 + 1.184)
            cn_mag = np.exp(np.float32(0.5) * mean_env + level)
            cn_mag[:, ~in_band] = 0.0
            # Uniform real and imaginary parts: random phase, Rayleigh-like magnitude.
            z = rng.random((idle.size, 2 * n_bin), dtype=np.float32)
            z -= np.float32(0.5)
            cn = z.view(np.complex64)
            cn *= cn_mag[inv]
            spec[idle] = cn
    out_frames = scipy.fft.irfft(spec, n=flen, axis=1)
    out_frames *= win
    ola = out_frames[:, :hop].copy()
    ola[1:] += out_frames[:-1, hop:]
    return ola.ravel()[hop : hop + n]


# -------------------------------------------------------------------- validation


def _check_any(x: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise InvalidParameterError(f"{name} must be a real numeric array, got dtype {a.dtype}")
    return a


def _check_signal(x: np.ndarray, name: str) -> np.ndarray:
    a = _check_any(x, name)
    if a.ndim != 1:
        raise InvalidParameterError(f"{name} must be 1-D (mono), got shape {a.shape}")
    a = a.astype(np.float32, copy=False)
    if not np.all(np.isfinite(a)):
        raise InvalidParameterError(f"{name} must be finite, got NaN or inf values")
    return a


def _check_sr(sr: int) -> int:
    if isinstance(sr, bool) or not isinstance(sr, int | np.integer) or not 4000 <= sr <= 48000:
        raise InvalidParameterError(f"sr must be an integer in [4000, 48000] Hz, got {sr!r}")
    return int(sr)
