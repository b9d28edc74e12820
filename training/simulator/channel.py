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
    "g711_encode",
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

    if params.agc:
        y = _agc(y, rng=g_agc, sr=sr)
    if params.clip_level < 1.0:
        y = np.clip(y, -params.clip_level, params.clip_level)
    # Analog line hiss, scaled so that after band-pass and recorder gain it sits at
    # line_noise_db; it goes through the codec like the voice does. (Adding it into
    # the noise buffer also makes the copy that keeps the caller's array untouched.)
    frac = (hi - lo) / (sr / 2.0)
    hiss_rms = 10.0 ** ((params.line_noise_db - params.gain_db) / 20.0) / math.sqrt(frac)
    hiss = _white(g_hiss, y.size, scale=hiss_rms)
    hiss += y
    y = hiss
    y = scipy.signal.sosfilt(_band_sos(lo, hi, params.tilt_db, sr), y)

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
    y += _white(g_floor, y.size, scale=floor)
    np.clip(y, -1.0, 1.0, out=y)
    # Belt and braces: an exact zero needs noise and signal to cancel to the last bit.
    if not y.all():
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


def _mulaw_code(pcm16: np.ndarray) -> np.ndarray:
    """G.711 mu-law code bytes of 16-bit PCM values (int32 array), as the reference."""
    pcm = pcm16 >> 2
    neg = pcm < 0
    mag = np.minimum(np.minimum(np.where(neg, -pcm, pcm), 8159) + 33, 0x1FFF)
    seg = np.searchsorted(_MULAW_SEG_END, mag, side="left")
    code = (seg << 4) | ((mag >> (seg + 1)) & 0xF)
    return np.where(neg, code ^ 0x7F, code ^ 0xFF).astype(np.uint8)


def _alaw_code(pcm16: np.ndarray) -> np.ndarray:
    """G.711 A-law code bytes of 16-bit PCM values (int32 array), as the reference."""
    pcm = pcm16 >> 3
    neg = pcm < 0
    mag = np.where(neg, -pcm - 1, pcm)
    seg = np.searchsorted(_ALAW_SEG_END, mag, side="left")
    code = (seg << 4) | (np.where(seg < 2, mag >> 1, mag >> np.maximum(seg, 1)) & 0xF)
    return np.where(neg, code ^ 0x55, code ^ 0xD5).astype(np.uint8)


@functools.cache
def _g711_code_table(law: str) -> np.ndarray:
    """Code byte of every 16-bit input (index = pcm + 32768)."""
    pcm = np.arange(-32768, 32768, dtype=np.int32)
    table = _mulaw_code(pcm) if law == "mulaw" else _alaw_code(pcm)
    table.setflags(write=False)
    return table


def g711_encode(x: np.ndarray, *, law: str) -> np.ndarray:
    """Encode audio to G.711 code bytes, as stored in a mu-law or A-law WAV file.

    The signal is rounded to 16-bit PCM (full scale +-32768) and companded like the
    ITU-T reference, so decoding the bytes gives exactly :func:`mulaw_roundtrip` or
    :func:`alaw_roundtrip` of ``x``.

    Parameters
    ----------
    x : numpy.ndarray
        Audio of any shape, float, full scale +-1.
    law : {"mulaw", "alaw"}, keyword-only
        Companding law.

    Returns
    -------
    numpy.ndarray
        uint8, same shape, one code byte per sample.
    """
    if law not in ("mulaw", "alaw"):
        raise InvalidParameterError(f"law must be 'mulaw' or 'alaw', got {law!r}")
    return _g711_code_table(law)[_pcm_index(x)]


def _pcm_index(x: np.ndarray) -> np.ndarray:
    """Index into the 65536-entry tables: x rounded to 16-bit PCM, plus 32768."""
    a = np.asarray(_check_any(x, "x"), dtype=np.float32) * np.float32(32768.0)
    a += np.float32(32768.0)
    np.clip(a, np.float32(0.0), np.float32(65535.0), out=a)
    return np.rint(a, out=a).astype(np.uint16)


@functools.cache
def _g711_table(law: str) -> np.ndarray:
    """Decoded value of every 16-bit input (index = pcm + 32768), float32 / 32768."""
    pcm = np.arange(-32768, 32768, dtype=np.int32)
    out = _mulaw_pcm(pcm) if law == "mulaw" else _alaw_pcm(pcm)
    table = (out / 32768.0).astype(np.float32)
    table.setflags(write=False)
    return table


def _g711(x: np.ndarray, law: str) -> np.ndarray:
    return _g711_table(law)[_pcm_index(x)]


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


def _white(rng: np.random.Generator, n: int, *, scale: float = 1.0) -> np.ndarray:
    """White noise of RMS ``scale``, float32, shape (n,).

    Uniform 16-bit values straight from the bit generator: three times as fast as
    ``Generator.random`` and, once filtered or at noise-floor level, indistinguishable
    from Gaussian noise.
    """
    raw = rng.bit_generator.random_raw(-(-n // 4))
    out = np.asarray(raw).view(np.int16)[:n].astype(np.float32)
    out *= np.float32(scale * math.sqrt(3.0) / 32768.0)
    return out


@functools.lru_cache(maxsize=512)
def _ellip_sos(order: int, freq: float, btype: str, sr: int) -> np.ndarray:
    """Elliptic low- or high-pass (0.5 dB ripple, 60 dB stop band) as SOS, float32.

    The steep edges of a PCM channel filter (G.712 mask), with ``freq`` the pass-band
    edge. The same filter as ``scipy.signal.ellip(..., output="sos")``; the analog
    prototype is cached and the sections are paired here, which is ~10x faster than
    scipy's general ``zpk2sos`` (edges are random, so designs rarely repeat).
    """
    z, p, k = _ellip_prototype(order)
    warped = 2.0 * sr * math.tan(math.pi * freq / sr)
    if btype == "lowpass":
        z, p, k = scipy.signal.lp2lp_zpk(z, p, k, wo=warped)
    else:
        z, p, k = scipy.signal.lp2hp_zpk(z, p, k, wo=warped)
    z, p, k = scipy.signal.bilinear_zpk(z, p, k, fs=sr)
    return _conjugate_sections(z, p, k).astype(np.float32)


@functools.cache
def _ellip_prototype(order: int) -> tuple[np.ndarray, np.ndarray, float]:
    z, p, k = scipy.signal.ellipap(order, 0.5, 60.0)
    return z, p, float(k)


def _conjugate_sections(z: np.ndarray, p: np.ndarray, k: float) -> np.ndarray:
    """SOS of an even-order digital filter whose poles and zeros are all conjugate
    pairs: each pole pair with the nearest free zero pair, poles nearest the unit
    circle last (as scipy's ``zpk2sos(pairing="nearest")``), the gain in front."""
    poles = sorted(p[p.imag > 0], key=lambda v: abs(1.0 - abs(v)), reverse=True)
    zeros = list(z[z.imag > 0])
    if len(poles) * 2 != p.size or len(zeros) * 2 != z.size or len(zeros) != len(poles):
        return np.asarray(scipy.signal.zpk2sos(z, p, k))
    rows = []
    for pole in reversed(poles):  # pair the poles nearest the unit circle first
        zero = zeros.pop(int(np.argmin([abs(pole - c) for c in zeros])))
        b = [1.0, -2.0 * zero.real, abs(zero) ** 2]
        a = [1.0, -2.0 * pole.real, abs(pole) ** 2]
        rows.append(b + a)
    sos = np.array(rows[::-1])
    sos[0, :3] *= k
    return sos


def _band_sos(lo: float, hi: float, tilt_db: float, sr: int) -> np.ndarray:
    # Edges rounded to 10 Hz and cached one by one: the elliptic designs cost ~1 ms each.
    sos = [
        _ellip_sos(6, round(lo / 10.0) * 10.0, "highpass", sr),
        _ellip_sos(8, round(hi / 10.0) * 10.0, "lowpass", sr),
    ]
    if abs(tilt_db) > 0.05:
        sos.append(_shelf_sos(round(tilt_db, 1), sr).astype(np.float32))
    return np.vstack(sos)


def _shelf_sos(tilt_db: float, sr: int) -> np.ndarray:
    """First-order shelf: high frequencies ``tilt_db`` above low ones, 0 dB at ~1 kHz."""
    r = 10.0 ** (-tilt_db / 40.0)  # sqrt of the DC gain relative to the HF gain
    # H(s) = (s/w0 + r) / (s/w0 + 1/r) / r: DC gain r, HF gain 1/r; through the
    # bilinear transform s = k (1 - 1/z) / (1 + 1/z), written out (scipy.signal.bilinear
    # costs milliseconds).
    k = 2.0 * sr / (2.0 * math.pi * 1000.0)  # k / w0
    a0 = k + 1.0 / r
    return np.array([[(k + r) / (a0 * r), (r - k) / (a0 * r), 0.0, 1.0, (1.0 / r - k) / a0, 0.0]])


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
    flat = np.zeros(nf * hop, dtype=np.float32)
    flat[: y.size] = y
    frames = flat.reshape(nf, hop)
    power = np.einsum("ij,ij->i", frames, frames).astype(np.float64) / hop
    level = 10.0 * np.log10(power + 1e-10)
    r = release_db_s * hop / sr
    k = np.arange(nf) * r
    env = np.maximum.accumulate(level + k) - k  # peak hold decaying r dB per frame
    gain_db = np.clip(target_db - env, -30.0, max_boost)
    a = math.exp(-hop / (smooth_s * sr))
    gain_db, _ = scipy.signal.lfilter([1.0 - a], [1.0, -a], gain_db, zi=[a * gain_db[0]])
    # The gain, linearly interpolated between frame starts, applied frame by frame.
    c = (10.0 ** (gain_db / 20.0)).astype(np.float32)
    c = np.append(c, c[-1])
    w = np.arange(hop, dtype=np.float32) / np.float32(hop)
    gain = np.multiply.outer(c[1:] - c[:-1], w)
    gain += c[:-1, None]
    frames *= gain
    return frames.ravel()[: y.size].copy()


def _hum(rng: np.random.Generator, n: int, *, sr: int, level_db: float) -> np.ndarray:
    """Mains hum: 50 Hz and harmonics, odd ones strong (rectifier and transformer buzz)."""
    k = np.arange(1, 21)
    amp = rng.uniform(0.2, 1.0, size=k.size) * k ** -float(rng.uniform(0.5, 1.5))
    amp[1::2] *= float(rng.uniform(0.2, 0.8))  # even harmonics weaker
    amp[k * 50.0 >= 0.45 * sr] = 0.0
    ph = rng.uniform(0.0, 2.0 * math.pi, size=k.size)
    # Exactly 50 cycles in one second: one second, built from its spectrum (harmonic k
    # in bin 50 k), tiled seamlessly.
    spec = np.zeros(sr // 2 + 1, dtype=np.complex128)
    spec[50 * k] = amp * np.exp(1j * (ph - math.pi / 2.0)) * (sr / 2.0)
    block = scipy.fft.irfft(spec, sr)
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
    lengths = ends - starts
    fades = np.minimum(xfade, y.size - ends)
    longest = int(lengths.max()) + xfade
    t = np.arange(longest, dtype=np.float32)
    ramp = np.clip(1.0 - 0.2 * (t - step) / step, 0.0, 1.0).astype(np.float32)
    w_in = np.arange(1, xfade + 1, dtype=np.float32) / np.float32(xfade + 1)
    noise = rng.standard_normal(int(lengths.sum()), dtype=np.float32)
    noise_at = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    span = 2 * pmax
    # A loss whose history (the 2 * pmax samples before it) holds the previous loss's
    # concealment must wait for it; all others depend on the received signal only and
    # are concealed together.
    after_prev = np.concatenate([[False], ends[:-1] + fades[:-1] > starts[1:] - span])
    batch = ~after_prev & (starts >= span)
    if batch.any():
        _conceal_batch(
            out,
            y,
            starts[batch],
            lengths[batch],
            fades[batch],
            noise,
            noise_at[batch],
            ramp=ramp,
            w_in=w_in,
            pmin=pmin,
            pmax=pmax,
        )
    for i in np.flatnonzero(~batch).tolist():
        s, e = int(starts[i]), int(ends[i])
        length, m, used = e - s, int(fades[i]), int(noise_at[i])
        hist = out[max(0, s - span) : s]
        if hist.size >= span:
            src = hist[-_pitch_period(hist, pmin, pmax) :]
            ext = np.tile(src, -(-(length + m) // src.size))[: length + m]
            ref = float(np.sqrt(np.mean(np.square(hist, dtype=np.float64))))
        else:
            ext = np.zeros(length + m, dtype=np.float32)
            ref = 0.0
        gain = ramp[: length + m]
        cn = noise[used : used + length] * np.float32(0.03 * ref + 1e-6)
        out[s:e] = ext[:length] * gain[:length] + cn * (np.float32(1.0) - gain[:length])
        if m > 0:
            w = w_in[:m]
            out[e : e + m] = w * y[e : e + m] + (np.float32(1.0) - w) * ext[length:] * gain[length:]
    return out


def _conceal_batch(
    out: np.ndarray,
    y: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    fades: np.ndarray,
    noise: np.ndarray,
    noise_at: np.ndarray,
    *,
    ramp: np.ndarray,
    w_in: np.ndarray,
    pmin: int,
    pmax: int,
) -> None:
    """The loop body of :func:`_packet_loss` for many losses at once, each with a full
    history of received signal in ``y``."""
    span = 2 * pmax
    hist = y[starts[:, None] - span + np.arange(span)].astype(np.float64)
    # Pitch period per loss, as in _pitch_period.
    seg = hist[:, -pmax:]
    windows = np.lib.stride_tricks.sliding_window_view(hist, pmax, axis=1)
    r = np.einsum("kjp,kp->kj", windows, seg)
    cs = np.concatenate([np.zeros((hist.shape[0], 1)), np.cumsum(hist * hist, axis=1)], axis=1)
    energy = cs[:, pmax:] - cs[:, :-pmax]
    lags = np.arange(pmin, pmax + 1)
    j = span - pmax - lags
    score = r[:, j] / np.sqrt(energy[:, j] * np.sum(seg * seg, axis=1)[:, None] + 1e-20)
    period = lags[np.argmax(score, axis=1)]
    ref = np.sqrt(np.mean(hist * hist, axis=1))
    # Every concealed sample (loss and cross-fade), flattened: loss b, offset tt.
    spans = lengths + fades
    b = np.repeat(np.arange(starts.size), spans)
    tt = np.arange(int(spans.sum())) - np.repeat(np.cumsum(spans) - spans, spans)
    ext = y[starts[b] - period[b] + tt % period[b]] * ramp[tt]
    lost = tt < lengths[b]
    lb, lt = b[lost], tt[lost]
    gain = ramp[lt]
    cn = noise[noise_at[lb] + lt] * (0.03 * ref[lb] + 1e-6).astype(np.float32)
    out[starts[lb] + lt] = ext[lost] + cn * (np.float32(1.0) - gain)
    fb, ft = b[~lost], tt[~lost] - lengths[b[~lost]]
    if fb.size:
        at = starts[fb] + lengths[fb] + ft
        w = w_in[ft]
        out[at] = w * y[at] + (np.float32(1.0) - w) * ext[~lost]


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
    q = float((6.0 - 3.5 * quality) * math.log(10.0) / 10.0)  # step: dB -> ln(power)
    hole = float((1.2 + 1.5 * quality) * (1.3 if gsm else 1.0))
    env_bins = 7 if gsm else 5
    dtx = rng.random() < (0.8 if gsm else 0.9)

    flen = max(8, 2 * round(_FRAME_S * sr / 2))
    hop = flen // 2
    win = _sqrt_hann(flen)
    n = y.size
    nfr = -(-n // hop) + 1
    # Frames of a signal padded with one hop of zeros at the start: frame j covers
    # blocks j and j + 1 of hop samples each (50 % overlap).
    padded = np.zeros((nfr + 1) * hop, dtype=np.float32)
    padded[hop : hop + n] = y
    blocks = padded.reshape(nfr + 1, hop)
    frames = np.empty((nfr, flen), dtype=np.float32)
    np.multiply(blocks[:-1], win[:hop], out=frames[:, :hop])
    np.multiply(blocks[1:], win[hop:], out=frames[:, hop:])
    spec = scipy.fft.rfft(frames, axis=1)
    n_bin = spec.shape[1]
    freqs = np.arange(n_bin) * sr / flen
    parts = spec.view(np.float32)  # re, im interleaved
    power = np.square(parts[:, 0::2])
    power += np.square(parts[:, 1::2])
    power += np.float32(1e-12)
    logp = np.log(power)
    # Spectral envelope: moving average over env_bins bins (edges repeated), as one
    # matrix product.
    env = logp @ _smoother(n_bin, env_bins)
    # Fine structure in quantiser steps: t = (log power - envelope) / step.
    t = logp
    t -= env
    t *= np.float32(1.0 / q)
    # ln(new / old magnitude) = half the quantisation error of the log power, ...
    gain = np.rint(t)
    gain -= t
    gain *= np.float32(0.5 * q)
    # ... minus 2 (4 in log power) in spectral holes: bins the coder gave no bits, ...
    gain -= (t < np.float32(-hole / q)) * np.float32(2.0)
    # ... low modes lose the top of the band; bins outside the band are not coded.
    droop = np.clip((freqs - 2500.0) / max(band[1] - 2500.0, 1.0), 0.0, 1.0) * (
        (1.0 - quality) * 2.0
    )
    in_band = (freqs >= band[0] * 0.8) & (freqs <= band[1])
    gain += np.where(in_band, -0.5 * droop, -np.inf).astype(np.float32)
    np.exp(gain, out=gain)
    spec *= gain  # new magnitude, phase kept

    if dtx and nfr > 8:
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
            nb = -(-nfr // 16)
            if nb * 16 != nfr:
                env = np.concatenate([env, np.repeat(env[-1:], nb * 16 - nfr, axis=0)])
            mean_env = env.reshape(nb, 16, n_bin).mean(axis=1)
            level = np.float32(float(rng.uniform(-4.0, 1.0)) * math.log(10.0) / 20.0 + 1.184)
            mean_env *= np.float32(0.5)
            mean_env += level
            cn_mag = np.exp(mean_env)
            cn_mag[:, ~in_band] = 0.0
            # Uniform real and imaginary parts (in +-0.5): random phase, Rayleigh-like
            # magnitude.
            z = _white(rng, idle.size * 2 * n_bin, scale=1.0 / math.sqrt(12.0))
            cn = z.view(np.complex64).reshape(idle.size, n_bin)
            cn *= cn_mag[idle // 16]
            spec[idle] = cn
    out = scipy.fft.irfft(spec, n=flen, axis=1, overwrite_x=True)
    out *= win
    # Overlap-add: output block j is the second half of frame j - 1 plus the first
    # half of frame j (block 0 is the padding).
    ola = out[1:, :hop] + out[:-1, hop:]
    return ola.ravel()[:n]


@functools.cache
def _smoother(n_bin: int, width: int) -> np.ndarray:
    """(n_bin, n_bin) matrix: ``x @ m`` is the moving average of ``width`` bins of each
    row of ``x``, with the edge bins repeated beyond the ends."""
    half = width // 2
    m = np.zeros((n_bin, n_bin), dtype=np.float32)
    for j in range(n_bin):
        for i in range(j - half, j + half + 1):
            m[min(max(i, 0), n_bin - 1), j] += np.float32(1.0 / width)
    m.setflags(write=False)
    return m


@functools.cache
def _sqrt_hann(flen: int) -> np.ndarray:
    """Periodic square-root Hann window: analysis and synthesis windows whose product
    sums to one at 50 % overlap."""
    win = np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(flen) / flen)).astype(np.float32)
    win.setflags(write=False)
    return win


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
    # A finite sum of squares proves every sample finite in one fast pass; only an
    # overflow (or a real NaN/inf) needs the element-wise check.
    if not math.isfinite(float(np.dot(a, a))) and not np.all(np.isfinite(a)):
        raise InvalidParameterError(f"{name} must be finite, got NaN or inf values")
    return a


def _check_sr(sr: int) -> int:
    if isinstance(sr, bool) or not isinstance(sr, int | np.integer) or not 4000 <= sr <= 48000:
        raise InvalidParameterError(f"sr must be an integer in [4000, 48000] Hz, got {sr!r}")
    return int(sr)
