"""Tests for classifier.vad: speech must be found, handling noise and rustle must not."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import lfilter

from classifier.errors import InvalidParameterError
from classifier.vad import (
    VadMemo,
    speech_activity,
    speech_activity_from_stft,
    speech_and_whisper_from_stft,
    speech_segments,
    stft_magnitude,
)

SR = 8000
HOP = 80


# ------------------------------------------------------------------ synthetic signals
def resonators(x: np.ndarray, formants: tuple[tuple[float, float], ...]) -> np.ndarray:
    for f, bw in formants:
        r = np.exp(-np.pi * bw / SR)
        th = 2 * np.pi * f / SR
        x = lfilter([1 - r], [1, -2 * r * np.cos(th), r * r], x)
    return x


VOWEL = ((700.0, 110.0), (1200.0, 120.0), (2500.0, 160.0))


def envelope(n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Syllable-like on/off envelope: 0.2-0.45 s bursts, 0.25-0.6 s gaps, 40 ms ramps."""
    env = np.zeros(n)
    spans: list[tuple[int, int]] = []
    t = int(0.5 * SR)
    while True:
        d = int(rng.uniform(0.2, 0.45) * SR)
        if t + d > n - int(0.3 * SR):
            break
        ramp = int(0.04 * SR)
        e = np.ones(d)
        e[:ramp] = np.linspace(0, 1, ramp)
        e[-ramp:] = np.linspace(1, 0, ramp)
        env[t : t + d] = e
        spans.append((t, t + d))
        t += d + int(rng.uniform(0.25, 0.6) * SR)
    return env, spans


def vowels(n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Harmonic vowel-like bursts: vibrato F0 100-220 Hz, 1/sqrt(k) harmonics, 3 formants."""
    env, spans = envelope(n, rng)
    t = np.arange(n) / SR
    f0 = rng.uniform(100, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(2, 5) * t))
    ph = 2 * np.pi * np.cumsum(f0) / SR
    src = sum(np.sin(k * ph) * (k * f0 < 3600) / np.sqrt(k) for k in range(1, 34))
    y = resonators(np.asarray(src), VOWEL) * env
    return y / np.max(np.abs(y)) * 0.3, spans


def colored(n: int, rng: np.random.Generator, color: str) -> np.ndarray:
    w = rng.standard_normal(n)
    if color == "pink":
        b = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
        a = [1, -2.494956002, 2.017265875, -0.522189400]
        w = lfilter(b, a, w)
    elif color == "brown":
        w = lfilter([1.0], [1.0, -0.995], w)
    return np.asarray(w)


def noise_bursts(n: int, rng: np.random.Generator, color: str) -> np.ndarray:
    env, _ = envelope(n, rng)
    y = colored(n, rng, color) * env
    return y / np.max(np.abs(y)) * 0.3


def comfort(n: int, rng: np.random.Generator, dbfs: float = -60.0) -> np.ndarray:
    return 10 ** (dbfs / 20) * rng.standard_normal(n)


def core_frames(spans: list[tuple[int, int]], n_frames: int, margin: int = 400) -> np.ndarray:
    m = np.zeros(n_frames, bool)
    for a, b in spans:
        m[(a + margin) // HOP : (b - margin) // HOP] = True
    return m


def far_frames(spans: list[tuple[int, int]], n_frames: int, away_s: float = 0.3) -> np.ndarray:
    """Frames more than ``away_s`` from any burst (hangover and gap-bridging excluded)."""
    near = np.zeros(n_frames, bool)
    pad = int(away_s * SR)
    for a, b in spans:
        near[max(0, (a - pad) // HOP) : (b + pad) // HOP] = True
    return ~near


def f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


N = 20 * SR


# ------------------------------------------------------------------ shape and alignment
def test_shape_dtype_and_librosa_alignment() -> None:
    import librosa

    rng = np.random.default_rng(0)
    for n in (8000, 8001, 8079, 8080, 12345):
        y = f32(comfort(n, rng, -30))
        m = speech_activity(y)
        assert m.dtype == np.bool_ and m.shape == (1 + n // HOP,)
        S = np.abs(librosa.stft(y, n_fft=256, hop_length=HOP))
        assert S.shape[1] == m.shape[0]
        np.testing.assert_allclose(stft_magnitude(y), S, rtol=1e-4, atol=1e-4)


def test_precomputed_stft_gives_the_same_mask() -> None:
    import librosa

    rng = np.random.default_rng(1)
    y, _ = vowels(N, rng)
    y = f32(y + comfort(N, rng, -50))
    S = np.abs(librosa.stft(y, n_fft=256, hop_length=HOP))
    a = speech_activity(y)
    b = speech_activity(y, S=S)
    c = speech_activity_from_stft(S, sr=SR, hop_length=HOP, y=y)
    assert np.mean(a != b) < 0.005
    np.testing.assert_array_equal(b, c)


def test_deterministic() -> None:
    rng = np.random.default_rng(2)
    y, _ = vowels(N, rng)
    y = f32(y + comfort(N, rng))
    np.testing.assert_array_equal(speech_activity(y), speech_activity(y.copy()))


# ------------------------------------------------------------------ synthetic behaviour
def test_vowel_bursts_are_speech_and_gaps_are_not() -> None:
    rng = np.random.default_rng(3)
    y, spans = vowels(N, rng)
    m = speech_activity(f32(y + comfort(N, rng, -60)))
    assert m[core_frames(spans, len(m))].mean() > 0.95
    assert m[far_frames(spans, len(m))].mean() < 0.05


@pytest.mark.parametrize("color", ["white", "pink", "brown"])
def test_noise_bursts_with_speech_rhythm_are_not_speech(color: str) -> None:
    # Rustle with exactly the on/off rhythm of speech: energy alone would call it speech.
    rng = np.random.default_rng(4)
    y = noise_bursts(N, rng, color) + comfort(N, rng, -60)
    assert speech_activity(f32(y)).mean() < 0.03


def test_taps_and_clicks_are_not_speech() -> None:
    rng = np.random.default_rng(5)
    y = comfort(N, rng, -60)
    decay = np.exp(-np.arange(400) / 40)
    for t in rng.integers(0, N - 800, 60):
        y[t : t + 400] += rng.standard_normal(400) * decay * rng.uniform(0.1, 0.8)
    assert speech_activity(f32(y)).mean() < 0.03


def test_silence_and_comfort_noise_are_not_speech() -> None:
    rng = np.random.default_rng(6)
    assert not speech_activity(np.zeros(N, np.float32)).any()
    assert speech_activity(f32(comfort(N, rng, -45))).mean() < 0.01
    # Comfort noise that switches level (DTX on/off) is still not speech.
    cn = comfort(N, rng, -60)
    cn[N // 3 : 2 * N // 3] *= 10
    assert speech_activity(f32(cn)).mean() < 0.02


def test_pure_tone_and_hum_are_not_speech() -> None:
    t = np.arange(N) / SR
    rng = np.random.default_rng(7)
    hum = sum(0.05 / k * np.sin(2 * np.pi * 50 * k * t) for k in range(1, 12))
    dial = 0.1 * (np.sin(2 * np.pi * 350 * t) + np.sin(2 * np.pi * 440 * t))
    for y in (hum, dial):
        assert speech_activity(f32(np.asarray(y) + comfort(N, rng))).mean() < 0.02


@pytest.mark.parametrize(("snr_db", "min_recall"), [(10.0, 0.9), (5.0, 0.85), (0.0, 0.7)])
def test_vowels_in_pink_noise(snr_db: float, min_recall: float) -> None:
    rng = np.random.default_rng(8)
    y, spans = vowels(N, rng)
    nz = colored(N, rng, "pink")
    active = np.zeros(N, bool)
    for a, b in spans:
        active[a:b] = True
    gain = np.sqrt(np.mean(y[active] ** 2) / np.mean(nz**2) / 10 ** (snr_db / 10))
    m = speech_activity(f32(y + gain * nz))
    assert m[core_frames(spans, len(m))].mean() > min_recall
    assert m[far_frames(spans, len(m))].mean() < 0.1


def test_quiet_speech_is_found() -> None:
    # -50 dBFS peak vowels over -75 dBFS line noise: quiet, but clearly speech.
    rng = np.random.default_rng(9)
    y, spans = vowels(N, rng)
    m = speech_activity(f32(y * 10 ** (-40 / 20) + comfort(N, rng, -75)))
    assert m[core_frames(spans, len(m))].mean() > 0.9


def test_whisper_like_bursts_are_found() -> None:
    # Unvoiced (noise-excited) bursts through vowel formants: no pitch at all.
    rng = np.random.default_rng(10)
    env, spans = envelope(N, rng)
    y = resonators(rng.standard_normal(N), VOWEL) * env
    y = y / np.max(np.abs(y)) * 0.2
    m = speech_activity(f32(y + comfort(N, rng, -60)))
    long_spans = [(a, b) for a, b in spans if b - a >= int(0.25 * SR)]
    assert m[core_frames(long_spans, len(m))].mean() > 0.6


@pytest.mark.parametrize("db", [-12.0, 12.0])
def test_gain_invariance_synthetic(db: float) -> None:
    rng = np.random.default_rng(11)
    y, _ = vowels(N, rng)
    y = 0.3 * y + noise_bursts(N, rng, "pink") * 0.1 + comfort(N, rng, -50)
    a = speech_activity(f32(y))
    b = speech_activity(f32(y * 10 ** (db / 20)))
    assert np.mean(a != b) < 0.05


# ------------------------------------------------------------------ live streams
@pytest.mark.parametrize("seed", [0, 1])
def test_live_memo_gives_the_masks_of_the_recording_so_far(seed: int) -> None:
    # Vowels, whisper-like bursts, handling noise and silence; updates about every
    # second from 20-100 ms chunks, each checked against the batch of the same prefix.
    rng = np.random.default_rng(30 + seed)
    n = 25 * SR
    y, _ = vowels(n, rng)
    env, _ = envelope(n, rng)
    whisper = resonators(rng.standard_normal(n), VOWEL) * env
    y = 0.5 * y + 0.1 * whisper / np.max(np.abs(whisper)) + noise_bursts(n, rng, "pink") * 0.05
    y[10 * SR : 13 * SR] = 0.0
    y = f32(y + comfort(n, rng, -60))
    memo = VadMemo()
    pos, next_update, checked = 0, SR, 0
    while pos < n:
        pos = min(n, pos + int(rng.integers(160, 801)))
        if pos < next_update and pos < n:
            continue
        next_update += int(rng.integers(SR // 2, 2 * SR))
        S = stft_magnitude(y[:pos])
        final = (pos - 128) // HOP + 1  # frames whose window has been heard in full
        live = speech_and_whisper_from_stft(S, memo=memo, final=final)
        batch = speech_and_whisper_from_stft(S)
        for a, b in zip(live, batch, strict=True):
            np.testing.assert_array_equal(a, b)
        checked += 1
    assert checked >= 15 and batch[0].mean() > 0.2 and (batch[1] & ~batch[0]).any()


# ------------------------------------------------------------------ speech_segments
def test_speech_segments_bridges_gaps_and_drops_short_bits() -> None:
    m = np.zeros(300, bool)
    m[10:50] = True  # 0.1-0.5 s
    m[60:80] = True  # gap of 0.1 s: bridged
    m[150:155] = True  # 0.05 s: dropped
    m[200:260] = True
    segs = speech_segments(m)
    assert segs == [(0.095, 0.795), (1.995, 2.595)]
    assert speech_segments(m, min_gap_s=0.0, min_speech_s=0.0)[1] == (0.595, 0.795)
    assert speech_segments(np.zeros(10, bool)) == []
    assert speech_segments(np.ones(50, bool)) == [(0.0, 0.495)]


def test_speech_segments_on_detector_output() -> None:
    rng = np.random.default_rng(12)
    y, spans = vowels(N, rng)
    segs = speech_segments(speech_activity(f32(y + comfort(N, rng))), min_gap_s=0.0)
    # Every burst start lies inside a detected segment.
    for a, _ in spans:
        t = a / SR + 0.05
        assert any(s <= t <= e for s, e in segs)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("y", "kwargs", "match"),
    [
        (np.zeros((2, 800), np.float32), {}, r"mono, shape \(n,\); got shape \(2, 800\)"),
        (np.zeros(0, np.float32), {}, "at least one sample; got 0"),
        (np.zeros(800, np.int16), {}, "float array; got dtype int16"),
        (np.full(800, np.nan, np.float32), {}, "finite"),
        (np.zeros(800, np.float32), {"sr": 1000}, "sr must be an int >= 4000"),
        (np.zeros(800, np.float32), {"hop_length": 0}, "hop_length must be an int >= 1"),
        (np.zeros(800, np.float32), {"S": np.zeros((129, 5))}, r"S must have shape \(n_bins, 11\)"),
    ],
)
def test_bad_inputs(y: np.ndarray, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        speech_activity(y, **kwargs)  # type: ignore[arg-type]


def test_bad_stft_and_segment_inputs() -> None:
    with pytest.raises(InvalidParameterError, match="2-D"):
        speech_activity_from_stft(np.zeros(129))
    with pytest.raises(InvalidParameterError, match="finite"):
        speech_activity_from_stft(np.full((129, 10), np.inf))
    with pytest.raises(InvalidParameterError, match="1-D"):
        speech_segments(np.zeros((2, 2), bool))
    with pytest.raises(InvalidParameterError, match="min_gap_s must be a finite number >= 0"):
        speech_segments(np.zeros(5, bool), min_gap_s=-1.0)


# ------------------------------------------------------------------ real recordings
def shared_data() -> Path | None:
    for c in (
        os.environ.get("CALLSIFT_SHARED_DATA"),
        str(Path(__file__).resolve().parents[2].parent / "shared" / "data"),
    ):
        if c and (Path(c) / "speech" / "fsdd").is_dir() and (Path(c) / "noise").is_dir():
            return Path(c)
    return None


DATA = shared_data()
needs_data = pytest.mark.skipif(DATA is None, reason="../shared/data (real recordings) absent")


def load8k(path: str | Path) -> np.ndarray:
    from classifier.audio import load_audio

    return load_audio(path, min_duration_s=0.0).caller


def digit_string(
    rng: np.random.Generator, speaker: str, k: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Digits of one fsdd speaker with silent gaps; ground truth per 10 ms frame."""
    assert DATA is not None
    files = sorted(glob.glob(str(DATA / "speech" / "fsdd" / f"*_{speaker}_*.wav")))
    parts: list[np.ndarray] = [np.zeros(4000, np.float32)]
    gt: list[np.ndarray] = [np.zeros(4000, bool)]
    for f in rng.choice(files, size=k, replace=False):
        c = load8k(f)
        c = c / (np.sqrt(np.mean(c**2)) + 1e-9) * 0.05
        n = len(c) // HOP
        e = 10 * np.log10(np.mean(c[: n * HOP].reshape(n, HOP) ** 2, axis=1) + 1e-12)
        g = np.repeat(e > e.max() - 30, HOP)
        g = np.concatenate([g, np.zeros(len(c) - len(g), bool)])
        gap = int(rng.uniform(0.3, 0.8) * SR)
        parts += [c, np.zeros(gap, np.float32)]
        gt += [g, np.zeros(gap, bool)]
    y = np.concatenate(parts)
    g_s = np.concatenate(gt)
    frames = g_s[::HOP][: 1 + len(y) // HOP]
    return y, np.pad(frames, (0, 1 + len(y) // HOP - len(frames)))


def handling_noise(rng: np.random.Generator, seconds: float) -> np.ndarray:
    assert DATA is not None
    clips = [
        load8k(p)
        for p in sorted(glob.glob(str(DATA / "noise" / "*.wav")))
        if any(k in Path(p).name for k in ("rub", "tap", "friction"))
    ]
    out: list[np.ndarray] = []
    while sum(map(len, out)) < seconds * SR:
        c = clips[int(rng.integers(len(clips)))]
        out.append(c / (np.sqrt(np.mean(c**2)) + 1e-9) * 10 ** (rng.uniform(-35, -20) / 20))
    return f32(np.concatenate(out)[: int(seconds * SR)])


@pytest.mark.shared_data
@needs_data
@pytest.mark.parametrize("speaker", ["george", "jackson", "lucas", "yweweler"])
def test_real_digits_are_detected(speaker: str) -> None:
    rng = np.random.default_rng(20)
    y, gt = digit_string(rng, speaker)
    m = speech_activity(f32(y + comfort(len(y), rng, -60)))
    assert m[gt].mean() > 0.8  # measured 0.9-0.97
    assert m[~gt].mean() < 0.3  # hangover and gap bridging count here


@pytest.mark.shared_data
@needs_data
def test_real_digits_in_real_kitchen_noise() -> None:
    assert DATA is not None
    rng = np.random.default_rng(21)
    y, gt = digit_string(rng, "jackson")
    dishes = load8k(DATA / "noise" / "doing_the_dishes.wav")
    s = int(rng.integers(0, len(dishes) - len(y)))
    nz = dishes[s : s + len(y)]
    act = np.repeat(gt, HOP)[: len(y)]
    nz = nz * np.sqrt(np.mean(y[act] ** 2) / np.mean(nz**2) / 10 ** (10 / 10))
    m = speech_activity(f32(y + nz))
    assert m[gt].mean() > 0.7


@pytest.mark.shared_data
@needs_data
def test_real_handling_noise_is_not_speech() -> None:
    # Pocket-dial material (rub, tap, friction), back to back: measured false alarm ~0.01.
    rng = np.random.default_rng(22)
    y = handling_noise(rng, 30.0)
    assert speech_activity(y).mean() < 0.1


@pytest.mark.shared_data
@needs_data
def test_real_kitchen_noise_alone_is_not_speech() -> None:
    assert DATA is not None
    rng = np.random.default_rng(23)
    dishes = load8k(DATA / "noise" / "doing_the_dishes.wav")
    for _ in range(3):
        s = int(rng.integers(0, len(dishes) - 20 * SR))
        assert speech_activity(dishes[s : s + 20 * SR]).mean() < 0.1


@pytest.mark.shared_data
@needs_data
@pytest.mark.parametrize("db", [-12.0, 12.0])
def test_real_gain_invariance(db: float) -> None:
    rng = np.random.default_rng(24)
    y, _ = digit_string(rng, "lucas")
    y = f32(y * 2 + handling_noise(rng, len(y) / SR)[: len(y)])
    a = speech_activity(y)
    b = speech_activity(f32(y * 10 ** (db / 20)))
    assert np.mean(a != b) < 0.05


@pytest.mark.shared_data
@needs_data
def test_real_arctic_sentence_through_mulaw() -> None:
    import io

    import soundfile as sf

    from classifier.audio import load_audio

    assert DATA is not None
    path = sorted(glob.glob(str(DATA / "speech" / "arctic" / "*.wav")))[0]
    y = load8k(path)
    buf = io.BytesIO()
    sf.write(buf, y, SR, format="WAV", subtype="ULAW")
    ym = load_audio(buf.getvalue()).caller
    a, b = speech_activity(y), speech_activity(ym)
    assert a.mean() > 0.5
    assert np.mean(a != b) < 0.05
