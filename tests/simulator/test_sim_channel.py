"""Tests of the simulated phone channel: band, G.711, packet loss, levels, no digital zero."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import scipy.signal

from classifier.errors import InvalidParameterError
from training.simulator import channel as C
from training.simulator.channel import (
    CODECS,
    SEVERITIES,
    ChannelParams,
    alaw_roundtrip,
    apply_channel,
    g711_encode,
    mulaw_roundtrip,
    random_channel,
)

SR = 8000


def _params(**kw: object) -> ChannelParams:
    """A quiet, transparent line; tests switch on one effect at a time."""
    base: dict[str, object] = {
        "codec": "none",
        "band_hz": (300.0, 3400.0),
        "gain_db": 0.0,
        "clip_level": 1.0,
        "packet_loss": 0.0,
        "line_noise_db": -90.0,
        "hum": False,
        "agc": False,
        "tilt_db": 0.0,
    }
    base.update(kw)
    return ChannelParams(**base)  # type: ignore[arg-type]


def _white(seed: int, seconds: float, level: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(round(seconds * SR)) * level).astype(np.float32)


def _sine(freq: float, seconds: float, amp: float) -> np.ndarray:
    t = np.arange(round(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _max_zero_run(y: np.ndarray) -> int:
    z = np.concatenate([[0], (y == 0).astype(np.int8), [0]])
    d = np.diff(z)
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return int((ends - starts).max()) if starts.size else 0


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


# ------------------------------------------------------------------------------ band


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("band", [(300.0, 3400.0), (200.0, 3600.0), (400.0, 3000.0)])
def test_white_noise_is_band_limited(codec: str, band: tuple[float, float]) -> None:
    x = _white(0, 8.0)
    y = apply_channel(x, params=_params(codec=codec, band_hz=band), rng=np.random.default_rng(1))
    f, p = scipy.signal.welch(y, fs=SR, nperseg=1024)
    in_band = p[(f >= band[0]) & (f <= band[1])].sum()
    below = p[f < band[0]].sum()
    above = p[f > band[1]].sum()
    assert 10 * np.log10(below / in_band) < -20.0
    assert 10 * np.log10(above / in_band) < -20.0


def test_tilt_changes_high_to_low_balance() -> None:
    x = _white(2, 6.0)

    def hi_minus_lo(tilt: float) -> float:
        y = apply_channel(x, params=_params(tilt_db=tilt), rng=np.random.default_rng(0))
        f, p = scipy.signal.welch(y, fs=SR, nperseg=512)
        lo = p[(f > 400) & (f < 700)].mean()
        hi = p[(f > 2500) & (f < 3200)].mean()
        return float(10 * np.log10(hi / lo))

    assert hi_minus_lo(8.0) - hi_minus_lo(-8.0) > 10.0
    assert abs(hi_minus_lo(0.0)) < 2.0


# ----------------------------------------------------------------------------- G.711


def _mulaw_formula(pcm16: np.ndarray) -> np.ndarray:
    """G.711 mu-law from its definition: bias 33, segment = octave, midpoint decoding."""
    v = pcm16.astype(np.int64) >> 2
    mag = np.minimum(np.abs(v), 8159) + 33
    seg = np.floor(np.log2(mag)).astype(np.int64) - 5
    seg = np.minimum(seg, 7)
    width = 2 ** (seg + 1)
    mid = np.minimum(mag // width, 31) * width + width // 2
    return np.sign(v) * (mid - 33) * 4


def _alaw_formula(pcm16: np.ndarray) -> np.ndarray:
    """G.711 A-law from its definition: 13 bits, 2-wide steps up to 64, then octaves."""
    v = pcm16.astype(np.int64) >> 3
    neg = v < 0
    mag = np.where(neg, -v - 1, v)
    seg = np.where(mag < 64, 1, np.floor(np.log2(np.maximum(mag, 1))).astype(np.int64) - 4)
    width = 2**seg
    out = (mag // width) * width + width // 2
    return np.where(neg, -out, out) * 8


def test_mulaw_matches_definition_for_every_16bit_value() -> None:
    pcm = np.arange(-32768, 32768, dtype=np.int64)
    got = mulaw_roundtrip(pcm / 32768.0)
    np.testing.assert_array_equal(np.round(got * 32768).astype(np.int64), _mulaw_formula(pcm))


def test_alaw_matches_definition_for_every_16bit_value() -> None:
    pcm = np.arange(-32768, 32768, dtype=np.int64)
    got = alaw_roundtrip(pcm / 32768.0)
    np.testing.assert_array_equal(np.round(got * 32768).astype(np.int64), _alaw_formula(pcm))


def test_g711_bit_exact_with_audioop() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop", reason="audioop removed in Python 3.13")
    pcm = np.arange(-32768, 32768, dtype=np.int16)
    raw = pcm.tobytes()
    ref_mu = np.frombuffer(audioop.ulaw2lin(audioop.lin2ulaw(raw, 2), 2), dtype=np.int16)
    ref_a = np.frombuffer(audioop.alaw2lin(audioop.lin2alaw(raw, 2), 2), dtype=np.int16)
    x = pcm / 32768.0
    np.testing.assert_array_equal(mulaw_roundtrip(x), ref_mu / np.float32(32768.0))
    np.testing.assert_array_equal(alaw_roundtrip(x), ref_a / np.float32(32768.0))


@pytest.mark.parametrize("law", ["mulaw", "alaw"])
def test_g711_encode_decodes_to_the_roundtrip(law: str) -> None:
    # Every 16-bit value and a random signal: the stored code bytes decode (G.711
    # reference expansion, written out here) to exactly what the channel simulates.
    pcm = np.arange(-32768, 32768, dtype=np.int64)
    x = np.concatenate([pcm / 32768.0, np.random.default_rng(0).uniform(-1.2, 1.2, 5000)])
    raw = g711_encode(x, law=law)
    assert raw.dtype == np.uint8 and raw.shape == x.shape
    codes = raw.astype(np.int64)
    if law == "mulaw":
        u = ~codes & 0xFF
        t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
        value = np.where(u & 0x80, 0x84 - t, t - 0x84)
        expected = mulaw_roundtrip(x)
    else:
        a = codes ^ 0x55
        seg = (a & 0x70) >> 4
        t = ((a & 0x0F) << 4) + np.where(seg == 0, 8, 0x108)
        t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
        value = np.where(a & 0x80, t, -t)
        expected = alaw_roundtrip(x)
    np.testing.assert_array_equal(value / np.float32(32768.0), expected)
    # Faint noise of either sign is not all mapped to one code (no digital silence).
    faint = g711_encode(np.array([1e-5, -1e-5, 2e-5, -3e-5]), law=law)
    assert len(set(faint.tolist())) > 1
    with pytest.raises(InvalidParameterError, match="law"):
        g711_encode(x, law="g722")


@pytest.mark.parametrize("roundtrip", [mulaw_roundtrip, alaw_roundtrip])
@pytest.mark.parametrize("level_db", [-30.0, -20.0, -6.0])
def test_g711_quantisation_snr_of_a_sine(roundtrip: object, level_db: float) -> None:
    x = _sine(1013.0, 5.0, 10 ** (level_db / 20) * np.sqrt(2))
    e = roundtrip(x) - x  # type: ignore[operator]
    snr = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(e.astype(np.float64) ** 2))
    assert 33.0 < snr < 41.0
    assert roundtrip(x).dtype == np.float32  # type: ignore[operator]


@pytest.mark.parametrize(
    ("order", "edge", "btype"),
    [
        (6, 230.0, "highpass"),
        (6, 390.0, "highpass"),
        (8, 3010.0, "lowpass"),
        (8, 3590.0, "lowpass"),
    ],
)
def test_channel_filter_designs_match_scipy(order: int, edge: float, btype: str) -> None:
    got = C._ellip_sos(order, edge, btype, SR)
    want = scipy.signal.ellip(order, 0.5, 60.0, edge, btype=btype, fs=SR, output="sos")
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    for tilt in (-7.3, 0.4, 6.0):
        g = 10.0 ** (-tilt / 20.0)
        w0 = 2 * np.pi * 1000.0
        b, a = scipy.signal.bilinear([1 / w0, np.sqrt(g)], [1 / w0, 1 / np.sqrt(g)], fs=SR)
        _, h_want = scipy.signal.freqz(b / np.sqrt(g), a, worN=512, fs=SR)
        _, h_got = scipy.signal.sosfreqz(C._shelf_sos(tilt, SR), worN=512, fs=SR)
        np.testing.assert_allclose(h_got, h_want, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------- digital zero, loss


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(("gain_db", "noise_db"), [(-24.0, -70.0), (12.0, -120.0)])
def test_no_zero_runs_for_all_zero_input(codec: str, gain_db: float, noise_db: float) -> None:
    # With -120 dBFS hiss, G.711 quantises the line to zero: only the recorder's
    # noise floor keeps the output off digital zero.
    x = np.zeros(10 * SR, dtype=np.float32)
    p = _params(codec=codec, packet_loss=0.08, gain_db=gain_db, line_noise_db=noise_db)
    y = apply_channel(x, params=p, rng=np.random.default_rng(3))
    assert _max_zero_run(y) <= 8
    assert np.all(np.isfinite(y))


def test_no_zero_runs_with_random_poor_channels_and_gaps() -> None:
    rng = np.random.default_rng(4)
    x = _white(5, 6.0, 0.2)
    x[SR : 4 * SR] = 0.0  # a long stretch of digital silence in the input
    for _ in range(12):
        p = random_channel(rng, severity="poor")
        y = apply_channel(x, params=p, rng=rng)
        assert _max_zero_run(y) <= 8, p


def _lost_frames(rate: float, seed: int, seconds: float = 60.0) -> np.ndarray:
    """Which 20 ms frames differ from the same line without packet loss."""
    x = _white(10 + seed, seconds)
    y0 = apply_channel(x, params=_params(), rng=np.random.default_rng(seed))
    y1 = apply_channel(x, params=_params(packet_loss=rate), rng=np.random.default_rng(seed))
    d = (y1 - y0).reshape(-1, SR // 50)
    ref = y0.reshape(-1, SR // 50)
    return np.sum(d**2, axis=1) > 0.1 * np.sum(ref**2, axis=1)


@pytest.mark.parametrize("rate", [0.02, 0.05, 0.08])
def test_packet_loss_count_matches_rate(rate: float) -> None:
    fractions = [float(_lost_frames(rate, seed).mean()) for seed in range(4)]
    assert abs(np.mean(fractions) - rate) < 0.25 * rate
    assert all(0.4 * rate < f < 1.8 * rate for f in fractions)


def test_no_packet_loss_changes_nothing() -> None:
    assert not _lost_frames(0.0, 0, seconds=10.0).any()


def test_lost_frames_are_concealed_not_silenced() -> None:
    # A voiced-like periodic signal: concealment repeats the last period, so the first
    # 10 ms of a lost stretch carry about the level of the signal, not silence.
    x = _sine(500.0, 30.0, 0.3) + _sine(1500.0, 30.0, 0.1)
    lost = _lost_frames(0.05, 1, seconds=30.0)
    first = lost & ~np.concatenate([[False], lost[:-1]])
    assert first.sum() > 10
    y = apply_channel(x, params=_params(packet_loss=0.05), rng=np.random.default_rng(1))
    frames = y.reshape(-1, SR // 50)
    level = np.sqrt(np.mean(frames[:, : SR // 100] ** 2, axis=1))
    assert np.median(level[first]) > 0.7 * np.median(level[~lost])


def _conceal_one_by_one(y: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Reference packet-loss concealment: each lost stretch in order, its history read
    from the output so far (the batched implementation must match it)."""
    flen, pmin, pmax, xfade, step = SR // 50, SR // 400, round(0.015 * SR), 32, 80
    lost = C._loss_mask(-(-y.size // flen), rate=rate, rng=rng)
    out = y.copy()
    d = np.diff(np.concatenate([[0], lost.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(d == 1) * flen, np.minimum(np.flatnonzero(d == -1) * flen, y.size)
    t = np.arange(int((ends - starts).max()) + xfade, dtype=np.float32)
    ramp = np.clip(1.0 - 0.2 * (t - step) / step, 0.0, 1.0).astype(np.float32)
    w_in = np.arange(1, xfade + 1, dtype=np.float32) / np.float32(xfade + 1)
    noise = rng.standard_normal(int((ends - starts).sum()), dtype=np.float32)
    used = 0
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        length, m = e - s, min(xfade, y.size - e)
        hist = out[max(0, s - 2 * pmax) : s]
        ext = np.zeros(length + m, dtype=np.float32)
        ref = 0.0
        if hist.size >= 2 * pmax:
            src = hist[-C._pitch_period(hist, pmin, pmax) :]
            ext = np.tile(src, -(-(length + m) // src.size))[: length + m]
            ref = _rms(hist)
        gain = ramp[: length + m]
        cn = noise[used : used + length] * np.float32(0.03 * ref + 1e-6)
        used += length
        out[s:e] = ext[:length] * gain[:length] + cn * (1 - gain[:length])
        out[e : e + m] = w_in[:m] * y[e : e + m] + (1 - w_in[:m]) * ext[length:] * gain[length:]
    return out


@pytest.mark.parametrize("rate", [0.02, 0.08, 0.3])
def test_batched_concealment_matches_loss_by_loss(rate: float) -> None:
    # At 30 % loss many losses are one frame apart, so their histories overlap.
    x = _sine(140.0, 20.0, 0.3) * _sine(0.5, 20.0, 1.0) + _white(3, 20.0, 0.01)
    got = C._packet_loss(x, rate=rate, rng=np.random.default_rng(7), sr=SR)
    want = _conceal_one_by_one(x, rate, np.random.default_rng(7))
    assert not np.array_equal(got, x)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


# ------------------------------------------------------------------- level, clipping


def test_gain_is_applied() -> None:
    x = _white(6, 5.0, 0.05)
    ref = _rms(apply_channel(x, params=_params(), rng=np.random.default_rng(0)))
    up = _rms(apply_channel(x, params=_params(gain_db=6.0), rng=np.random.default_rng(0)))
    down = _rms(apply_channel(x, params=_params(gain_db=-24.0), rng=np.random.default_rng(0)))
    assert up / ref == pytest.approx(10 ** (6 / 20), rel=0.03)
    assert down / ref == pytest.approx(10 ** (-24 / 20), rel=0.03)


def test_output_within_full_scale_and_float32() -> None:
    x = _sine(500.0, 2.0, 0.9)
    y = apply_channel(x, params=_params(gain_db=12.0), rng=np.random.default_rng(0))
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.max(np.abs(y)) <= 1.0
    # Driven 12 dB past full scale, the recording saturates (flat tops at +-1).
    assert np.mean(np.abs(y) >= 0.999) > 0.2


def _third_harmonic_db(y: np.ndarray) -> float:
    f, p = scipy.signal.welch(y, fs=SR, nperseg=2048)
    fund = p[np.argmin(np.abs(f - 1000.0))]
    third = p[np.argmin(np.abs(f - 3000.0))]
    return float(10 * np.log10(third / fund))


def test_clipping_when_clip_level_below_one() -> None:
    x = _sine(1000.0, 4.0, 0.5)
    clean = apply_channel(x, params=_params(), rng=np.random.default_rng(0))
    clipped = apply_channel(x, params=_params(clip_level=0.2), rng=np.random.default_rng(0))
    assert _third_harmonic_db(clean) < -50.0
    assert _third_harmonic_db(clipped) > -20.0


def test_hum_adds_mains_harmonics() -> None:
    x = _white(7, 10.0, 0.01)
    p = _params(hum=True, hum_db=-40.0)
    y_h = apply_channel(x, params=p, rng=np.random.default_rng(0))
    y_0 = apply_channel(x, params=_params(), rng=np.random.default_rng(0))
    f, ph = scipy.signal.welch(y_h, fs=SR, nperseg=8000)
    _, p0 = scipy.signal.welch(y_0, fs=SR, nperseg=8000)
    at50 = np.argmin(np.abs(f - 50.0))
    assert 10 * np.log10(ph[at50] / p0[at50]) > 20.0


def test_agc_pumps_background_up_in_pauses() -> None:
    rng = np.random.default_rng(8)
    n = 8 * SR
    x = (rng.standard_normal(n) * 0.003).astype(np.float32)  # background
    x[: 2 * SR] += _sine(500.0, 2.0, 0.5)  # a loud talker, then a pause

    def bg_rise(agc: bool) -> float:
        y = apply_channel(x, params=_params(agc=agc), rng=np.random.default_rng(0))
        early = _rms(y[int(2.1 * SR) : int(2.4 * SR)])
        late = _rms(y[6 * SR : 8 * SR])
        return float(20 * np.log10(late / early))

    assert abs(bg_rise(False)) < 1.5
    assert bg_rise(True) > 6.0


@pytest.mark.parametrize("codec", ["gsm_like", "amr_like"])
def test_lowrate_codecs_alter_but_keep_a_voiced_signal(codec: str) -> None:
    rng = np.random.default_rng(9)
    t = np.arange(5 * SR) / SR
    f0 = 150 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    k = np.arange(1, 20)[:, None]
    voiced = (np.sin(k * phase) / k).sum(axis=0).astype(np.float32) * np.float32(0.1)
    voiced *= (np.sin(2 * np.pi * 2 * t) > -0.3).astype(np.float32)  # syllables and gaps
    voiced += (rng.standard_normal(t.size) * 0.002).astype(np.float32)
    ref = apply_channel(voiced, params=_params(), rng=np.random.default_rng(0))
    y = apply_channel(voiced, params=_params(codec=codec), rng=np.random.default_rng(0))
    corr = float(np.corrcoef(ref, y)[0, 1])
    assert 0.5 < corr < 0.995
    assert abs(20 * np.log10(_rms(y) / _rms(ref))) < 4.0


# ------------------------------------------------------------- random params, misc


def test_determinism() -> None:
    x = _white(11, 3.0)
    for severity in SEVERITIES:
        a = random_channel(np.random.default_rng(5), severity=severity)
        b = random_channel(np.random.default_rng(5), severity=severity)
        assert a == b
        ya = apply_channel(x, params=a, rng=np.random.default_rng(6))
        yb = apply_channel(x, params=b, rng=np.random.default_rng(6))
        assert ya.tobytes() == yb.tobytes()
        yc = apply_channel(x, params=a, rng=np.random.default_rng(7))
        assert ya.tobytes() != yc.tobytes()


def test_random_channel_severities_differ() -> None:
    rng = np.random.default_rng(12)
    draws = {s: [random_channel(rng, severity=s) for _ in range(400)] for s in SEVERITIES}
    clean, normal, poor = draws["clean"], draws["normal"], draws["poor"]
    assert all(p.packet_loss == 0.0 and p.clip_level == 1.0 for p in clean)
    assert all(p.packet_loss > 0.0 for p in poor)
    assert np.mean([p.line_noise_db for p in poor]) > np.mean([p.line_noise_db for p in clean])
    assert {p.codec for p in normal} == set(CODECS)
    for p in normal + poor:
        assert 200.0 <= p.band_hz[0] <= 400.0 and 3000.0 <= p.band_hz[1] <= 3600.0
        assert -24.0 <= p.gain_db <= 12.0 and -70.0 <= p.line_noise_db <= -45.0
        assert 0.0 <= p.packet_loss <= 0.08
    assert 0.05 < np.mean([p.clip_level < 1.0 for p in normal]) < 0.2
    assert 0.2 < np.mean([p.agc for p in normal]) < 0.5


def test_every_random_channel_renders_finite_audio() -> None:
    rng = np.random.default_rng(13)
    x = _white(14, 4.0, 0.2)
    for severity in SEVERITIES:
        for _ in range(5):
            y = apply_channel(x, params=random_channel(rng, severity=severity), rng=rng)
            assert y.dtype == np.float32 and y.shape == x.shape
            assert np.all(np.isfinite(y)) and np.max(np.abs(y)) <= 1.0


def test_empty_input() -> None:
    y = apply_channel(np.zeros(0, np.float32), params=_params(), rng=np.random.default_rng(0))
    assert y.shape == (0,) and y.dtype == np.float32


@pytest.mark.parametrize(
    "change",
    [
        {"codec": "opus"},
        {"band_hz": (3400.0, 300.0)},
        {"gain_db": float("nan")},
        {"clip_level": 0.0},
        {"packet_loss": 0.9},
        {"line_noise_db": 0.0},
    ],
)
def test_invalid_params_raise(change: dict[str, object]) -> None:
    with pytest.raises(InvalidParameterError):
        dataclasses.replace(_params(), **change)  # type: ignore[arg-type]


def test_invalid_inputs_raise() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(InvalidParameterError, match="1-D"):
        apply_channel(np.zeros((10, 2), np.float32), params=_params(), rng=rng)
    with pytest.raises(InvalidParameterError, match="finite"):
        apply_channel(np.array([0.0, np.nan], np.float32), params=_params(), rng=rng)
    with pytest.raises(InvalidParameterError, match="high edge"):
        apply_channel(np.zeros(100, np.float32), params=_params(band_hz=(300, 3990)), rng=rng)
    with pytest.raises(InvalidParameterError, match="severity"):
        random_channel(rng, severity="awful")
