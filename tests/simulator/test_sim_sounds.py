"""Tests of the simulator's procedural sounds and real-recording mixing.

Each realism rule is checked by measuring the output (spectrum, envelope, periodicity,
level), so the test fails if the rule is broken.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from classifier.errors import InvalidParameterError
from training.simulator import dsp
from training.simulator.sounds import (
    BACKGROUNDS,
    breathing,
    comfort_noise,
    crowd,
    distant_talk,
    excerpt,
    footsteps,
    laughter,
    load_folder,
    pocket_rustle,
    reverb,
    siren,
    tv_or_music,
    wind,
)

SR = 8000
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
NOISE_DIR = SHARED / "noise"
SPEECH_DIR = SHARED / "speech"


def _laugh_kids(rng: np.random.Generator, *, duration_s: float, sr: int = SR) -> np.ndarray:
    return laughter(rng, duration_s=duration_s, sr=sr, n_voices=3, child=True)


GENERATORS: dict[str, Callable[..., np.ndarray]] = {
    **BACKGROUNDS,
    "laughter": laughter,
    "laughter_kids": _laugh_kids,
    "breathing": breathing,
    "pocket_rustle": pocket_rustle,
}


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _band_db(x: np.ndarray, lo: float, hi: float, lo2: float, hi2: float) -> float:
    """Energy in [lo2, hi2) relative to [lo, hi), dB."""
    f, p = scipy.signal.welch(x, fs=SR, nperseg=512)
    a = p[(f >= lo) & (f < hi)].sum()
    b = p[(f >= lo2) & (f < hi2)].sum()
    return float(10 * np.log10(b / a))


def _envelope(x: np.ndarray, rate: int = 100, smooth_hz: float = 20.0) -> np.ndarray:
    """Amplitude envelope at ``rate`` Hz."""
    sos = scipy.signal.butter(2, smooth_hz, fs=SR, output="sos")
    env = scipy.signal.sosfiltfilt(sos, np.abs(x.astype(np.float64)))
    return env[:: SR // rate]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


# ------------------------------------------------------------------ all generators


@pytest.mark.parametrize("name", sorted(GENERATORS))
@pytest.mark.parametrize("duration", [0.0, 0.001, 0.37, 4.0])
def test_exact_length_finite_float32(name: str, duration: float) -> None:
    for seed in range(2):
        y = GENERATORS[name](_rng(seed), duration_s=duration, sr=SR)
        assert y.dtype == np.float32
        assert y.shape == (round(duration * SR),)
        assert np.all(np.isfinite(y))
        assert np.max(np.abs(y), initial=0.0) <= 1.0


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_level_is_normalised_and_not_silent(name: str) -> None:
    for seed in range(3):
        y = GENERATORS[name](_rng(seed), duration_s=10.0, sr=SR)
        # RMS 0.05 unless the peak cap (0.95) forced it lower for very bursty sounds.
        assert 0.02 < _rms(y) <= 0.0501
        assert _rms(y) >= 0.049 or np.max(np.abs(y)) > 0.94


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_determinism(name: str) -> None:
    a = GENERATORS[name](_rng(5), duration_s=3.0, sr=SR)
    b = GENERATORS[name](_rng(5), duration_s=3.0, sr=SR)
    c = GENERATORS[name](_rng(6), duration_s=3.0, sr=SR)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_parameters_vary_between_calls(name: str) -> None:
    # Different seeds give different spectra, not just different noise.
    centroids = []
    for seed in range(6):
        y = GENERATORS[name](_rng(seed), duration_s=6.0, sr=SR)
        f, p = scipy.signal.welch(y, fs=SR, nperseg=512)
        centroids.append(float(np.sum(f * p) / np.sum(p)))
    assert np.std(centroids) > 10.0


def test_backgrounds_registry() -> None:
    assert set(BACKGROUNDS) == {
        "tv_music",
        "traffic",
        "wind",
        "rain",
        "crowd",
        "siren",
        "footsteps",
        "room_tone",
        "kitchen",
    }


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("kind", ["lowpass", "highpass"])
@pytest.mark.parametrize("freq", [40.0, 150.0, 1000.0, 3500.0])
def test_butterworth_sections_match_scipy(order: int, kind: str, freq: float) -> None:
    got = dsp.butter_cached(order, kind, freq, SR)
    want = scipy.signal.butter(order, freq, btype=kind, fs=SR, output="sos")
    assert got.dtype == np.float32
    _, h_got = scipy.signal.sosfreqz(got.astype(np.float64), worN=1024, fs=SR)
    _, h_want = scipy.signal.sosfreqz(want.astype(np.float32).astype(np.float64), worN=1024, fs=SR)
    np.testing.assert_allclose(np.abs(h_got), np.abs(h_want), rtol=0, atol=2e-4)


@pytest.mark.parametrize("n", [1, 79, 80, 81, 1000, 48_001])
def test_ramp_multiply_matches_interpolated_control(n: int) -> None:
    rng = _rng(0)
    ctrl = rng.uniform(0.1, 2.0, size=n // 80 + 3)
    x = rng.standard_normal(n).astype(np.float32)
    want = x * dsp.upsample(ctrl, 80, n)
    np.testing.assert_allclose(dsp.mul_ramp(x.copy(), ctrl, 80), want, rtol=1e-6, atol=1e-7)
    # and the interpolation itself: control values at block starts, linear in between
    up = dsp.upsample(np.array([1.0, 3.0, 2.0]), 4, 9)
    np.testing.assert_allclose(up, [1, 1.5, 2, 2.5, 3, 2.75, 2.5, 2.25, 2])


def test_other_sample_rate() -> None:
    for name, gen in GENERATORS.items():
        y = gen(_rng(0), duration_s=1.5, sr=16000)
        assert y.shape == (24000,) and np.all(np.isfinite(y)), name


# ------------------------------------------------------------------ realism rules


def test_pocket_rustle_is_muffled() -> None:
    for seed in range(6):
        y = pocket_rustle(_rng(seed), duration_s=20.0, sr=SR)
        assert _band_db(y, 0, 2000, 2000, 4000) < -15.0


def test_pocket_rustle_alternates_movement_and_stillness() -> None:
    y = pocket_rustle(_rng(1), duration_s=60.0, sr=SR)
    frames = y[: 60 * SR].reshape(-1, SR // 2)
    level = 20 * np.log10(np.sqrt(np.mean(frames**2, axis=1)) + 1e-9)
    # Loud movement and near-silent stillness: a wide spread of half-second levels.
    assert np.percentile(level, 90) - np.percentile(level, 10) > 15.0


def _modulation_peak_hz(x: np.ndarray, lo: float, hi: float) -> float:
    env = _envelope(x)
    env = env - env.mean()
    spec = np.abs(np.fft.rfft(env * np.hanning(env.size))) ** 2
    f = np.fft.rfftfreq(env.size, d=0.01)
    band = (f >= lo) & (f <= hi)
    return float(f[band][np.argmax(spec[band])])


@pytest.mark.parametrize("child", [False, True])
def test_laughter_syllable_rate_3_to_6_hz(child: bool) -> None:
    for seed in range(5):
        y = laughter(_rng(seed), duration_s=30.0, sr=SR, child=child)
        assert 3.0 <= _modulation_peak_hz(y, 1.5, 12.0) <= 6.0


def _median_f0(x: np.ndarray, fmin: float = 150.0, fmax: float = 700.0) -> float:
    """Median autocorrelation pitch of the loudest 20 ms frames."""
    frames = x[: x.size // 160 * 160].reshape(-1, 160).astype(np.float64)
    energy = np.sum(frames**2, axis=1)
    loud = frames[energy > np.percentile(energy, 80)]
    lags = np.arange(int(SR / fmax), int(SR / fmin) + 1)
    f0s = []
    for fr in loud:
        fr = fr - fr.mean()
        ac = np.correlate(fr, fr, mode="full")[fr.size - 1 :]
        f0s.append(SR / lags[np.argmax(ac[lags])])
    return float(np.median(f0s))


def test_laughter_is_voiced_with_child_pitch_higher() -> None:
    adult = [_median_f0(laughter(_rng(s), duration_s=15.0, sr=SR)) for s in range(4)]
    kids = [_median_f0(laughter(_rng(s), duration_s=15.0, sr=SR, child=True)) for s in range(4)]
    assert all(150.0 <= f <= 520.0 for f in adult)
    assert all(250.0 <= f <= 600.0 for f in kids)
    assert np.mean(kids) > np.mean(adult) + 40.0


def test_laughter_comes_in_bouts_with_pauses() -> None:
    y = laughter(_rng(3), duration_s=40.0, sr=SR)
    frames = y.reshape(-1, SR // 4)
    level = 20 * np.log10(np.sqrt(np.mean(frames**2, axis=1)) + 1e-9)
    quiet = level < level.max() - 30.0
    assert 0.1 < quiet.mean() < 0.7


def test_several_voices_fill_more_time() -> None:
    def active(n_voices: int) -> float:
        fr = laughter(_rng(2), duration_s=30.0, sr=SR, n_voices=n_voices).reshape(-1, 400)
        lv = np.sqrt(np.mean(fr**2, axis=1))
        return float(np.mean(lv > 0.05 * lv.max()))

    assert active(4) > active(1) + 0.1


def test_siren_has_a_sweeping_tonal_peak() -> None:
    for seed in range(6):
        y = siren(_rng(seed), duration_s=20.0, sr=SR)
        f, _, z = scipy.signal.stft(y, fs=SR, nperseg=512)
        p = np.abs(z) ** 2
        frame_e = p.sum(axis=0)
        ok = frame_e > 0.01 * frame_e.max()
        peak_f = f[np.argmax(p[:, ok], axis=0)]
        assert np.mean((peak_f >= 500) & (peak_f <= 1600)) > 0.95
        assert np.percentile(peak_f, 95) - np.percentile(peak_f, 5) > 150.0
        # Tonal: the peak stands far above the frame's median bin.
        tonal = p[:, ok].max(axis=0) / np.median(p[:, ok], axis=0)
        assert np.median(10 * np.log10(tonal)) > 25.0


def test_footsteps_periodicity() -> None:
    for seed in range(6):
        y = footsteps(_rng(seed), duration_s=30.0, sr=SR)
        env = _envelope(y, smooth_hz=8.0)
        env = env - env.mean()
        ac = np.correlate(env, env, mode="full")[env.size - 1 :]
        lags = np.arange(30, 100)  # 0.3-1.0 s
        rate = 100.0 / lags[np.argmax(ac[lags])]
        assert 1.45 <= rate <= 2.25
        assert _band_db(y, 0, 1000, 2000, 4000) < -15.0  # muffled


def test_breathing_cycle_3_to_5_s() -> None:
    for seed in range(4):
        y = breathing(_rng(seed), duration_s=40.0, sr=SR)
        env = _envelope(y, rate=20, smooth_hz=3.0)
        env = env - env.mean()
        ac = np.correlate(env, env, mode="full")[env.size - 1 :]
        lags = np.arange(50, 120)  # 2.5-6 s at 20 Hz
        period = lags[np.argmax(ac[lags])] / 20.0
        assert 2.8 <= period <= 5.5


def test_wind_is_low_frequency_and_gusty() -> None:
    for seed in range(4):
        y = wind(_rng(seed), duration_s=30.0, sr=SR)
        assert _band_db(y, 0, 500, 1500, 4000) < -15.0
        frames = y.reshape(-1, SR // 2)
        lv = np.sqrt(np.mean(frames**2, axis=1))
        assert np.std(lv) / np.mean(lv) > 0.2


def test_comfort_noise_level_and_never_zero() -> None:
    for seed in range(8):
        y = comfort_noise(_rng(seed), duration_s=5.0, sr=SR)
        level = 20 * np.log10(_rms(y))
        assert -65.5 <= level <= -49.5
        assert not np.any(y == 0.0)
    y = comfort_noise(_rng(0), duration_s=2.0, sr=SR, level_db=-60.0)
    assert 20 * np.log10(_rms(y)) == pytest.approx(-60.0, abs=0.2)
    with pytest.raises(InvalidParameterError, match="level_db"):
        comfort_noise(_rng(0), duration_s=1.0, level_db=0.0)


def test_crowd_murmur_is_speech_modulated() -> None:
    y = crowd(_rng(0), duration_s=30.0, sr=SR)
    env = _envelope(y, smooth_hz=40.0)
    env = env - env.mean()
    spec = np.abs(np.fft.rfft(env)) ** 2
    f = np.fft.rfftfreq(env.size, d=0.01)
    syllabic = spec[(f >= 2) & (f <= 8)].mean()
    fast = spec[(f >= 15) & (f <= 30)].mean()
    assert syllabic > 5 * fast


def _fake_speech(seed: int, seconds: float) -> np.ndarray:
    """Voiced, formant-ish bursts: enough like speech for level and spectrum checks."""
    rng = _rng(seed)
    t = np.arange(round(seconds * SR)) / SR
    f0 = 120 + 20 * np.sin(2 * np.pi * 0.5 * t)
    ph = 2 * np.pi * np.cumsum(f0) / SR
    k = np.arange(1, 25)[:, None]
    x = (np.sin(k * ph) / k).sum(axis=0)
    x *= (np.sin(2 * np.pi * 3 * t) > 0).astype(np.float64)
    x += 0.01 * rng.standard_normal(t.size)
    return (0.2 * x / np.max(np.abs(x))).astype(np.float32)


def test_crowd_with_babble_snippets() -> None:
    snippets = [_fake_speech(s, 1.5) for s in range(4)]
    y = crowd(_rng(0), duration_s=8.0, sr=SR, babble=snippets)
    y0 = crowd(_rng(0), duration_s=8.0, sr=SR)
    assert y.shape == (64000,) and np.all(np.isfinite(y))
    assert not np.allclose(y, y0)
    # The talkers' 120 Hz voices show up as low-frequency energy the noise murmur lacks.
    assert _band_db(y, 300, 2000, 100, 200) > _band_db(y0, 300, 2000, 100, 200)


def test_tv_speech_is_band_limited_and_reverberant() -> None:
    sp = _fake_speech(1, 4.0)
    y = tv_or_music(_rng(4), duration_s=10.0, sr=SR, speech=sp)
    assert y.shape == (80000,)
    # The 40 Hz-spaced fake speech low end (below a small speaker's range) is cut.
    assert _band_db(y, 300, 2000, 0, 100) < _band_db(sp, 300, 2000, 0, 100) - 10.0


def test_music_has_a_beat_when_drummed() -> None:
    # Some seeds play without drums; those with a dangdut beat show its tempo.
    found = 0
    for seed in range(8):
        y = tv_or_music(_rng(seed), duration_s=20.0, sr=SR)
        env = np.diff(_envelope(y, smooth_hz=15.0))
        env = np.clip(env, 0, None)
        ac = np.correlate(env, env, mode="full")[env.size - 1 :]
        lags = np.arange(35, 90)  # 0.35-0.9 s: beats at 67-171 BPM
        strength = ac[lags].max() / ac[0]
        if strength > 0.3:
            found += 1
    assert found >= 3


def test_distant_talk_is_quiet_muffled_and_reverberant() -> None:
    sp = _fake_speech(2, 3.0)
    for seed in range(5):
        y = distant_talk(sp, rng=_rng(seed))
        assert y.dtype == np.float32 and y.size > sp.size
        rel = 20 * np.log10(_rms(y[: sp.size]) / _rms(sp))
        assert -30.5 <= rel <= -19.5
        assert _band_db(y, 0, 1000, 2000, 4000) < _band_db(sp, 0, 1000, 2000, 4000) - 10.0
        # Reverberation fills the gaps between the bursts.
        assert np.max(np.abs(y[sp.size :])) > 0.0


def test_reverb_decay_time() -> None:
    impulse = np.zeros(SR, dtype=np.float32)
    impulse[0] = 1.0
    for rt60 in (0.3, 0.8):
        ir = reverb(impulse, rng=_rng(0), sr=SR, rt60_s=rt60, drr_db=-10.0, tail=True)
        edc = np.cumsum((ir.astype(np.float64) ** 2)[::-1])[::-1]
        edc_db = 10 * np.log10(edc / edc[0])
        t5 = np.argmax(edc_db < -5) / SR
        t25 = np.argmax(edc_db < -25) / SR
        assert (t25 - t5) * 3 == pytest.approx(rt60, rel=0.35)
    y = reverb(impulse, rng=_rng(0), sr=SR, rt60_s=0.5)
    assert y.shape == impulse.shape
    with pytest.raises(InvalidParameterError, match="rt60"):
        reverb(impulse, rng=_rng(0), rt60_s=10.0)


# ------------------------------------------------------------------ validation


def test_invalid_arguments_raise() -> None:
    with pytest.raises(InvalidParameterError, match="duration"):
        wind(_rng(0), duration_s=-1.0)
    with pytest.raises(InvalidParameterError, match="sr"):
        wind(_rng(0), duration_s=1.0, sr=100)
    with pytest.raises(InvalidParameterError, match="n_voices"):
        laughter(_rng(0), duration_s=1.0, n_voices=0)
    with pytest.raises(InvalidParameterError, match="1-D"):
        distant_talk(np.zeros((10, 2), np.float32), rng=_rng(0))
    with pytest.raises(InvalidParameterError, match="finite"):
        distant_talk(np.array([0.0, np.inf], np.float32), rng=_rng(0))


# ------------------------------------------------------------------ real recordings


def test_load_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="does not exist"):
        load_folder(tmp_path / "missing")
    with pytest.raises(InvalidParameterError, match=str(tmp_path.name)):
        load_folder(tmp_path)
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wav")
    sf.write(tmp_path / "zero.wav", np.zeros(8000, np.float32), 8000)
    with pytest.raises(InvalidParameterError, match="no readable audio"):
        load_folder(tmp_path)


def test_load_folder_resamples_and_mixes_down(tmp_path: Path) -> None:
    t = np.arange(44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], axis=1)
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    sf.write(sub / "tone.flac", 0.5 * stereo, 44100)
    (tmp_path / "notes.txt").write_text("not audio")
    clips = load_folder(tmp_path, sr=SR)
    assert len(clips) == 1
    assert clips[0].dtype == np.float32 and clips[0].ndim == 1
    assert abs(clips[0].size - SR) <= 1
    f, p = scipy.signal.welch(clips[0], fs=SR, nperseg=1024)
    assert abs(f[np.argmax(p)] - 440) < 10


def test_excerpt_tiles_with_crossfades() -> None:
    rng = _rng(0)
    clips = [np.sin(2 * np.pi * 300 * np.arange(4000) / SR).astype(np.float32) * 0.3]
    clips.append((_rng(1).standard_normal(3000) * 0.01).astype(np.float32))
    y = excerpt(clips, rng=rng, duration_s=5.0, sr=SR)
    assert y.shape == (40000,) and y.dtype == np.float32
    assert _rms(y) == pytest.approx(0.05, rel=0.05)
    # No clicks: sample-to-sample steps stay small relative to the level everywhere.
    assert np.max(np.abs(np.diff(y))) < 12 * _rms(np.diff(y))
    again = excerpt(clips, rng=_rng(0), duration_s=5.0, sr=SR)
    assert y.tobytes() == again.tobytes()
    with pytest.raises(InvalidParameterError, match="at least one"):
        excerpt([], rng=rng, duration_s=1.0)


@pytest.mark.shared_data
@pytest.mark.skipif(not NOISE_DIR.exists(), reason=f"real noise recordings absent: {NOISE_DIR}")
def test_real_noise_folder() -> None:
    clips = load_folder(NOISE_DIR, sr=SR)
    files = [p for p in NOISE_DIR.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg")]
    # digital_silence.wav is all zeros and must be skipped.
    assert 1 <= len(clips) < len(files)
    assert all(c.dtype == np.float32 and c.ndim == 1 and np.all(np.isfinite(c)) for c in clips)
    longest = max(c.size for c in clips)
    assert longest == pytest.approx(95 * SR, rel=0.03)  # doing_the_dishes.wav, from 16 kHz
    for seed in range(4):
        y = excerpt(clips, rng=_rng(seed), duration_s=30.0, sr=SR)
        assert y.shape == (30 * SR,) and np.all(np.isfinite(y))
        # RMS 0.05 unless spiky pieces (taps) hit the peak cap first.
        assert 0.01 < _rms(y) <= 0.0501
        assert _rms(y) >= 0.049 or np.max(np.abs(y)) > 0.94


@pytest.mark.shared_data
@pytest.mark.skipif(not SPEECH_DIR.exists(), reason=f"real speech recordings absent: {SPEECH_DIR}")
def test_real_speech_folder_max_files() -> None:
    clips = load_folder(SPEECH_DIR, sr=SR, max_files=40)
    assert len(clips) == 40
    y = excerpt(clips, rng=_rng(1), duration_s=4.0, sr=SR)
    assert y.shape == (4 * SR,)
    far = distant_talk(y, rng=_rng(2), sr=SR)
    assert np.all(np.isfinite(far))
