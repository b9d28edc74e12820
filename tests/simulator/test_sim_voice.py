"""Tests for training.simulator.voice: espeak-ng voices, formant shift, whisper."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections import Counter

import librosa
import numpy as np
import pytest
import scipy.signal

from classifier.errors import InvalidParameterError
from training.simulator import voice as V
from training.simulator.voice import Voice, pitch_track_hz, random_voice, synthesize, whisper

SR = 8000
TEXT = "Halo pak, tolong, ada kebakaran di Jalan Sudirman dekat masjid, cepat ya pak!"


def _voice(**kw: object) -> Voice:
    base: dict[str, object] = {
        "language": "id",
        "variant": "m3",
        "pitch": 50,
        "pitch_range": 50,
        "rate": 170,
        "formant_shift": 1.0,
        "kind": "adult_male",
    }
    base.update(kw)
    return Voice(**base)  # type: ignore[arg-type]


def _periodicity(x: np.ndarray) -> float:
    """Median peak of the normalised autocorrelation (lags 2.5-20 ms) on loud frames."""
    frames = librosa.util.frame(x, frame_length=512, hop_length=128)
    frames = frames - frames.mean(axis=0)
    rms = np.sqrt((frames**2).mean(axis=0))
    frames = frames[:, rms > 0.3 * rms.max()]
    spec = np.fft.rfft(frames, n=1024, axis=0)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=0)[:512]
    ac = ac / ac[0]
    return float(np.median(ac[20:160].max(axis=0)))


def _centroid_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / SR)
    return float(np.sum(freqs * spec) / np.sum(spec))


# --------------------------------------------------------------------------- Voice / random_voice


def test_describe_is_short_and_complete() -> None:
    v = _voice(variant="f3", pitch=62, rate=175, formant_shift=1.25, kind="child")
    assert v.describe() == "id+f3/p62/pr50/r175/fs1.25/child"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("language", "fr"),
        ("variant", "nosuchvoice"),
        ("kind", "robot"),
        ("pitch", 100),
        ("pitch", -1),
        ("pitch_range", 120),
        ("rate", 40),
        ("rate", 400),
        ("rate", 170.5),
        ("formant_shift", 2.0),
        ("formant_shift", float("nan")),
    ],
)
def test_voice_rejects_bad_fields(field: str, value: object) -> None:
    with pytest.raises(InvalidParameterError, match=field):
        _voice(**{field: value})


def test_random_voice_ranges_per_kind() -> None:
    rng = np.random.default_rng(0)
    for kind in V.KINDS:
        for _ in range(200):
            v = random_voice(rng, kind=kind)
            assert v.kind == kind
            assert 120 <= v.rate <= 260
            assert 20 <= v.pitch <= 99
            if kind == "child":
                assert 70 <= v.pitch <= 99
                assert 1.15 <= v.formant_shift <= 1.35
            else:
                assert 0.9 <= v.formant_shift <= 1.1


def test_random_voice_variety_and_kind_mix() -> None:
    rng = np.random.default_rng(1)
    voices = [random_voice(rng) for _ in range(1000)]
    variants = {v.variant for v in voices}
    assert len(variants) >= 40
    kinds = Counter(v.kind for v in voices)
    assert set(kinds) == set(V.KINDS)
    assert kinds["adult_male"] > kinds["child"] and kinds["adult_female"] > kinds["elderly"]
    assert 0.07 < kinds["child"] / 1000 < 0.2
    # Children and distressed callers talk faster than the elderly.
    rate = {k: np.mean([v.rate for v in voices if v.kind == k]) for k in V.KINDS}
    assert rate["child"] > rate["adult_male"] > rate["elderly"]
    assert len({v.describe() for v in voices}) > 950


def test_random_voice_is_deterministic_and_validates() -> None:
    a = [random_voice(np.random.default_rng(5), language="en") for _ in range(3)]
    assert a[0] == a[1] == a[2] and a[0].language == "en"
    with pytest.raises(InvalidParameterError, match="language"):
        random_voice(np.random.default_rng(0), language="xx")
    with pytest.raises(InvalidParameterError, match="kind"):
        random_voice(np.random.default_rng(0), kind="baby")
    with pytest.raises(InvalidParameterError, match="Generator"):
        random_voice(np.random.RandomState(0))  # type: ignore[arg-type]


def test_every_variant_exists_in_the_espeak_data() -> None:
    assert V._engine().available_variants == frozenset(V.VARIANTS)


# --------------------------------------------------------------------------- synthesize


def test_synthesize_output_contract() -> None:
    y = synthesize(TEXT, voice=_voice())
    assert y.dtype == np.float32 and y.ndim == 1
    assert np.all(np.isfinite(y))
    assert np.max(np.abs(y)) == pytest.approx(0.5, abs=1e-3)
    assert 2.5 < y.size / SR < 9.0
    # At most 50 ms of silence (below -34 dB re peak) at either end.
    loud = np.flatnonzero(np.abs(y) > 0.02 * np.max(np.abs(y)))
    assert loud[0] <= 0.05 * SR
    assert y.size - 1 - loud[-1] <= 0.05 * SR


def test_synthesize_other_sample_rate_and_english() -> None:
    y16 = synthesize(
        "Hello, there is a fire near the market.", voice=_voice(language="en"), sr=16000
    )
    y8 = synthesize("Hello, there is a fire near the market.", voice=_voice(language="en"))
    assert y16.size == pytest.approx(2 * y8.size, rel=0.02)
    # 16 kHz output really carries energy above the 8 kHz Nyquist frequency.
    spec = np.abs(np.fft.rfft(y16)) ** 2
    freqs = np.fft.rfftfreq(y16.size, 1 / 16000)
    assert spec[freqs > 4500].sum() / spec.sum() > 5e-4


def test_adult_male_f0_is_clearly_below_child_f0() -> None:
    rng = np.random.default_rng(11)
    male = [pitch_track_hz(synthesize(TEXT, voice=random_voice(rng, kind="adult_male")))
            for _ in range(6)]  # fmt: skip
    child = [pitch_track_hz(synthesize(TEXT, voice=random_voice(rng, kind="child")))
             for _ in range(6)]  # fmt: skip
    assert all(60 < f < 190 for f in male), male
    assert all(230 < f < 550 for f in child), child
    assert max(male) < min(child)
    assert np.median(child) > 2.0 * np.median(male)


def test_formant_shift_raises_spectrum_and_pitch_but_keeps_duration() -> None:
    adult = synthesize(TEXT, voice=_voice(variant="f2", pitch=60, formant_shift=1.0))
    childlike = synthesize(TEXT, voice=_voice(variant="f2", pitch=60, formant_shift=1.3))
    assert pitch_track_hz(childlike) / pitch_track_hz(adult) == pytest.approx(1.3, rel=0.1)
    assert _centroid_hz(childlike) > 1.12 * _centroid_hz(adult)
    # espeak is asked for a slower rate so the resampled speech keeps its tempo.
    assert childlike.size / adult.size == pytest.approx(1.0, abs=0.12)


def test_rate_scale_and_pitch_offset() -> None:
    v = _voice()
    base = synthesize(TEXT, voice=v)
    fast = synthesize(TEXT, voice=v, rate_scale=1.5)
    high = synthesize(TEXT, voice=v, pitch_offset=40)
    assert fast.size < 0.8 * base.size
    assert pitch_track_hz(high) > 1.25 * pitch_track_hz(base)


def test_synthesize_is_pure_whatever_ran_before() -> None:
    v = _voice(variant="f5", kind="adult_female", pitch=55)  # breathy: uses espeak's noise
    first = synthesize(TEXT, voice=v)
    synthesize("Sesuatu yang lain sama sekali, eh anu.", voice=_voice(variant="klatt"))
    synthesize("Lagi", voice=_voice(variant="m1"))
    assert np.array_equal(first, synthesize(TEXT, voice=v))


def test_reset_restores_the_freshly_loaded_library() -> None:
    # The cheap reset (restoring espeak's static memory) must be the same as reloading
    # the library, which happens where the memory copy is not available.
    engine = V._engine()
    assert engine._pristine is not None, "espeak's writable memory was not located"
    v = _voice(variant="klatt3", pitch=40)
    first = synthesize(TEXT, voice=v)
    with engine.lock:
        engine._pristine = None  # next reset: dlclose + dlopen (which copies the memory again)
    reloaded = synthesize(TEXT, voice=v)
    assert engine._pristine is not None
    assert np.array_equal(first, reloaded)
    synthesize("Sesuatu yang lain sama sekali.", voice=_voice(variant="f5"))
    assert np.array_equal(first, synthesize(TEXT, voice=v))


@pytest.mark.parametrize(
    ("native", "sr", "shift"),
    [
        (22050, 8000, 1.0),
        (22050, 8000, 1.27),
        (22050, 8000, 0.91),
        (22050, 16000, 1.1),
        (22050, 48000, 1.0),
    ],
)
def test_polyphase_resampler_matches_resample_poly(native: int, sr: int, shift: float) -> None:
    x = np.random.default_rng(0).standard_normal(20011).astype(np.float32)
    up, down = V._resample_ratio(native, sr, shift)
    assert up / down == pytest.approx(sr / (native * shift), rel=2e-3)
    want = scipy.signal.resample_poly(x, up, down, window=V._resample_filter(up, down))
    got = V._resample(x, up, down)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5)


def test_synthesize_is_identical_in_a_fresh_process() -> None:
    # espeak seeds its noise from the clock and keeps C statics: both must be neutralised.
    code = (
        "import hashlib, numpy as np\n"
        "from training.simulator.voice import Voice, synthesize\n"
        "v = Voice(language='id', variant='f5', pitch=55, pitch_range=50, rate=170,\n"
        "          formant_shift=1.0, kind='adult_female')\n"
        f"y = synthesize({TEXT!r}, voice=v)\n"
        "print(hashlib.sha256(y.tobytes()).hexdigest())\n"
    )
    time.sleep(1.1)  # a different second for espeak's time-based seed
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    v = _voice(variant="f5", kind="adult_female", pitch=55)
    # Whatever BLAS threads this process was left with (a service or feature process
    # keeps one; a fresh one starts with one per core).
    from threadpoolctl import threadpool_limits

    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            here = hashlib.sha256(synthesize(TEXT, voice=v).tobytes()).hexdigest()
        assert out.stdout.strip() == here, f"{threads} BLAS threads"


@pytest.mark.parametrize("text", ["", "   ", "...", "?!"])
def test_synthesize_rejects_text_without_words(text: str) -> None:
    with pytest.raises(InvalidParameterError, match="text"):
        synthesize(text, voice=_voice())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sr": 1000}, "sr"),
        ({"sr": 8000.0}, "sr"),
        ({"rate_scale": 0.1}, "rate_scale"),
        ({"rate_scale": 3.0}, "rate_scale"),
        ({"pitch_offset": 150}, "pitch_offset"),
        ({"pitch_offset": 1.5}, "pitch_offset"),
    ],
)
def test_synthesize_rejects_bad_parameters(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        synthesize("halo", voice=_voice(), **kwargs)  # type: ignore[arg-type]


def test_synthesize_rejects_non_voice_and_overlong_text() -> None:
    with pytest.raises(InvalidParameterError, match="Voice"):
        synthesize("halo", voice="id+m3")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="5000"):
        synthesize("halo " * 1001, voice=_voice())


# --------------------------------------------------------------------------- whisper


def test_whisper_removes_periodicity_but_keeps_the_envelope() -> None:
    rng = np.random.default_rng(7)
    for kind in ("adult_male", "adult_female", "child"):
        x = synthesize(TEXT, voice=random_voice(rng, kind=kind))
        w = whisper(x, rng=rng)
        assert w.dtype == np.float32 and w.shape == x.shape and np.all(np.isfinite(w))
        assert np.max(np.abs(w)) == pytest.approx(np.max(np.abs(x)), rel=1e-3)
        assert _periodicity(x) > 0.55
        assert _periodicity(w) < 0.5 * _periodicity(x)
        env_x = librosa.amplitude_to_db(librosa.feature.rms(y=x, frame_length=400, hop_length=200))
        env_w = librosa.amplitude_to_db(librosa.feature.rms(y=w, frame_length=400, hop_length=200))
        assert np.corrcoef(env_x[0], env_w[0])[0, 1] > 0.8

        # No glottal vibration: relatively less energy below 400 Hz than in voiced speech.
        def low_share(y: np.ndarray) -> float:
            spec = np.abs(np.fft.rfft(y)) ** 2
            return float(spec[np.fft.rfftfreq(y.size, 1 / SR) < 400].sum() / spec.sum())

        assert low_share(w) < 0.5 * low_share(x)


def test_whisper_is_deterministic_and_validates() -> None:
    x = synthesize("tolong pak, pelan-pelan", voice=_voice())
    a = whisper(x, rng=np.random.default_rng(1))
    b = whisper(x, rng=np.random.default_rng(1))
    c = whisper(x, rng=np.random.default_rng(2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(whisper(np.zeros(800), rng=np.random.default_rng(0)), np.zeros(800))
    with pytest.raises(InvalidParameterError, match="1-D"):
        whisper(np.zeros((2, 800)), rng=np.random.default_rng(0))
    with pytest.raises(InvalidParameterError, match="NaN"):
        whisper(np.full(800, np.nan), rng=np.random.default_rng(0))
    with pytest.raises(InvalidParameterError, match="empty"):
        whisper(np.zeros(0), rng=np.random.default_rng(0))
    with pytest.raises(InvalidParameterError, match="Generator"):
        whisper(x, rng=0)  # type: ignore[arg-type]


def test_pitch_track_of_silence_is_nan() -> None:
    assert np.isnan(pitch_track_hz(np.zeros(SR, dtype=np.float32)))
