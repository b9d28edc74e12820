"""Whose voice is it (classifier/voices.py, issue 15): the call-taker's or someone else's.

Synthetic voices stand for two speakers: harmonic tones through formant filters, one low
and steady (the call-taker on a headset), one higher with other formants and quieter
(the caller through the network), syllable by syllable with the vowels drawn at random
(the words). They go through the project's own pipeline (speech mask, frame values,
pitch). The real-pair check needs the shared recordings (``../shared/data``) and is
skipped without them.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from scipy.signal import lfilter

from classifier import voices
from classifier.audio import CallAudio
from classifier.features import (
    HOP,
    SR,
    audio_features,
    channel_features,
    dither,
    pitch_track,
    voice_inputs,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"

VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (530, 1840, 2480), (570, 840, 2410))
TAKER = {"f0": 110.0, "formants": 1.0, "level_db": -18.0}
CALLER = {"f0": 220.0, "formants": 1.18, "level_db": -24.0}


def speak(seed: int, seconds: float, *, f0: float, formants: float, level_db: float) -> np.ndarray:
    """Syllables of a synthetic voice: harmonics of ``f0`` through three formants."""
    rng = np.random.default_rng(seed)
    parts: list[np.ndarray] = []
    total = 0
    while total < seconds * SR:
        n = int(rng.uniform(0.12, 0.3) * SR)
        t = np.arange(n) / SR
        f = f0 * 2 ** (rng.normal(0, 1.5) / 12) * (1 - 0.1 * t / t[-1])
        phase = 2 * np.pi * np.cumsum(f) / SR
        y = sum(np.sin(k * phase) / k for k in range(1, int(3400 / f.max()) + 1))
        for fc in VOWELS[int(rng.integers(len(VOWELS)))]:
            r, th = math.exp(-math.pi * 90 / SR), 2 * math.pi * fc * formants / SR
            y = lfilter([1 - r], [1, -2 * r * math.cos(th), r * r], y)
        parts += [y * np.hanning(n) ** 0.5, np.zeros(int(rng.uniform(0.02, 0.06) * SR))]
        total += n
    y = np.concatenate(parts)
    return y / np.sqrt(np.mean(y[y != 0] ** 2)) * 10 ** (level_db / 20)


def make_call(script: list[tuple[str, float, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Mono audio of (who, seconds, seed) pieces: who "A" (taker), "B" (caller), "-"."""
    pieces, who = [], []
    for w, seconds, seed in script:
        if w == "-":
            y = np.zeros(int(seconds * SR))
        else:
            y = speak(seed, seconds, **(TAKER if w == "A" else CALLER))
        pieces.append(y)
        who.append(np.full(y.size, w))
    y = np.concatenate(pieces)
    y = y + 10 ** (-60 / 20) * np.random.default_rng(0).standard_normal(y.size)
    return y.astype(np.float32), np.concatenate(who)


def inputs(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The pipeline's per-frame inputs: speech mask, MFCC 0-12, band power, f0."""
    mask, cepstra, power, f0 = voice_inputs(y)
    assert f0 is not None
    return mask, cepstra, power, f0


@lru_cache(maxsize=1)
def conversation() -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    """Greeting, caller, a question, caller again."""
    greeting = [("-", 0.5, 0), ("A", 2.5, 1), ("-", 0.6, 0)]
    rest = [
        ("B", 3.0, 2),
        ("-", 0.5, 0),
        ("A", 1.2, 3),
        ("-", 0.5, 0),
        ("B", 2.5, 4),
        ("-", 0.5, 0),
    ]
    y, who = make_call([*greeting, *rest])
    return y, who, inputs(y)


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(
        (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a
    )


def test_segments_bridge_short_gaps_and_drop_short_runs() -> None:
    mask = np.zeros(100, bool)
    mask[10:20] = mask[22:30] = mask[50:52] = mask[70:90] = True
    runs = voices.segments(mask, merge_gap=5, min_len=5)
    assert runs.tolist() == [[10, 30], [70, 90]]
    assert voices.segments(np.zeros(10, bool), merge_gap=5, min_len=1).shape == (0, 2)


def test_frame_pitch_keeps_steady_estimates_only() -> None:
    frames = np.arange(6)
    f0 = np.array([200.0, 200.0, 202.0, 400.0, 60.0, 205.0])
    hz = voices.frame_pitch(frames, f0, n_frames=14)
    # Frame t takes pitch frame round((80 t - 128) / 160): a jump of an octave, an
    # estimate under 75 Hz and the first pitch frame (no neighbour before it) are NaN.
    j = np.clip(np.rint((80 * np.arange(14) - 128) / 160).astype(int), 0, 5)
    expected = np.array([np.nan, 200.0, 202.0, np.nan, np.nan, np.nan])[j]
    np.testing.assert_array_equal(hz, expected)


def test_caller_after_the_greeting_is_another_voice() -> None:
    _, who, (mask, cep, power, f0) = conversation()
    out = voices.attribute_voices(mask, cep, power, f0)
    assert out["voice_enrolled"] == 1
    assert out["taker_only"] == 0
    assert out["other_turns"] == 2
    assert 0.3 < out["other_speech_ratio"] < 0.6
    assert 3.0 < out["other_speech_max_s"] < 4.5
    # After the 2 s enrolled: the rest of the greeting, caller, question, caller.
    assert out["taker_prompt_share"] == 0.5
    # Frame by frame: the caller's speech is another voice, the call-taker's is not.
    found = voices.voice_runs(mask, cep, power, f0)
    assert found is not None
    other = np.zeros(mask.size, bool)
    for (s, e), o in zip(found.runs, found.other, strict=True):
        other[s:e] = o
    truth = who[np.minimum(np.arange(mask.size) * HOP, who.size - 1)]
    speech = mask & (truth != "-")
    assert np.mean(other[speech] == (truth[speech] == "B")) > 0.95


def test_the_callers_pitch_is_read_off_the_callers_stretches() -> None:
    # Mono: the call-taker (110 Hz) opens and asks; the caller (220 Hz) answers. The
    # pitch of the first seconds of speech is the call-taker's; the caller's is apart.
    y, _, _ = conversation()
    f, _ = channel_features(y)
    assert 100 < f["pitch_median_hz"] < 125
    assert 200 < f["pitch_caller_hz"] < 240
    # Only the call-taker's greeting, then the open line: no caller's pitch.
    y, _ = make_call([("-", 0.5, 0), ("A", 1.8, 1), ("-", 6.0, 0)])
    f, _ = channel_features(y)
    assert f["voice_enrolled"] == 1 and f["taker_only"] == 1
    assert math.isfinite(f["pitch_median_hz"])
    assert math.isnan(f["pitch_caller_hz"]) and math.isnan(f["pitch_caller_high_share"])


def test_stereo_callers_pitch_is_the_caller_channels() -> None:
    caller, _ = make_call([("-", 3.0, 0), ("B", 3.0, 2), ("-", 1.0, 0)])
    taker, _ = make_call([("A", 2.5, 1), ("-", 4.5, 0)])
    n = min(caller.size, taker.size)  # syllables overrun their seconds a little
    caller, taker = caller[:n], taker[:n]
    stereo = CallAudio.from_samples(caller, other=taker, sr=SR)
    f = audio_features(stereo)
    assert f["stereo"] == 1
    assert f["pitch_caller_hz"] == f["pitch_median_hz"]
    assert 200 < f["pitch_caller_hz"] < 240


def test_open_line_with_prompts_is_the_call_taker_only() -> None:
    # The greeting, then "halo?" (the same piece each time) over a silent line.
    prompt = ("A", 0.6, 7)
    pause = ("-", 2.5, 0)
    y, _ = make_call([("-", 0.5, 0), ("A", 2.5, 1), pause, prompt, pause, prompt, pause, prompt])
    out = voices.attribute_voices(*inputs(y))
    assert out["voice_enrolled"] == 1
    assert out["taker_only"] == 1
    assert out["other_speech_ratio"] == 0
    assert out["other_turns"] == 0
    assert out["other_speech_max_s"] == 0
    assert out["taker_prompt_share"] == 1


@pytest.mark.parametrize(
    "script",
    [
        [("-", 0.5, 0), ("A", 0.4, 1), ("-", 5.0, 0)],  # under a second of speech
        [("-", 7.0, 0), ("A", 2.5, 1), ("-", 0.5, 0)],  # nobody speaks in the opening
    ],
)
def test_too_little_speech_to_enrol_falls_back(script: list[tuple[str, float, int]]) -> None:
    y, _ = make_call(script)
    out = voices.attribute_voices(*inputs(y))
    assert out["voice_enrolled"] == 0
    assert set(out) == set(voices.VOICE_FEATURES)
    assert all(math.isnan(v) for k, v in out.items() if k != "voice_enrolled")


def test_a_line_where_nobody_speaks_has_no_other_voice() -> None:
    # Not unknown: a recording of the line alone (no greeting) is a silent call.
    y, _ = make_call([("-", 3.0, 0)])
    out = voices.attribute_voices(*inputs(y))
    assert out["voice_enrolled"] == 0
    assert out["other_speech_ratio"] == out["other_speech_max_s"] == out["other_turns"] == 0
    assert math.isnan(out["taker_only"]) and math.isnan(out["taker_prompt_share"])


def test_no_pitch_still_attributes() -> None:
    _, _, (mask, cep, power, _) = conversation()
    out = voices.attribute_voices(mask, cep, power, None)
    assert out["voice_enrolled"] == 1
    assert np.isfinite(out["other_speech_ratio"])


def test_mismatched_inputs_are_refused() -> None:
    _, _, (mask, cep, power, f0) = conversation()
    with pytest.raises(ValueError, match="frames"):
        voices.attribute_voices(mask[:-1], cep, power, f0)
    with pytest.raises(ValueError, match="13 columns"):
        voices.attribute_voices(mask, cep[:, :12], power, f0)


def test_first_frames_heard_give_what_the_whole_call_gives_for_them() -> None:
    # A live stream after k frames has heard the audio up to frame k: the per-frame
    # inputs it computes from that audio are the whole call's first k rows, and the
    # features of those k frames are the same whichever way they were computed.
    y, _, (mask, cep, power, f0) = conversation()
    full = voices.attribute_voices(mask, cep, power, f0)
    seen = set()
    for k in (100, 420, 700, 900, 1150, mask.size):
        heard = y[: min((k + 3) * HOP, y.size)]
        _, cep_k, power_k, _ = inputs(heard)
        yd, _ = dither(heard)
        frames = voices.speech_pitch_frames(mask[:k], yd.size)
        f0_k = voices.frame_pitch(frames, pitch_track(yd, frames), k)
        np.testing.assert_array_equal(cep_k[:k], cep[:k])
        np.testing.assert_array_equal(power_k[:k], power[:k])
        np.testing.assert_array_equal(f0_k, f0[:k])
        got = voices.attribute_voices(mask[:k], cep_k[:k], power_k[:k], f0_k)
        assert _same(got, voices.attribute_voices(mask[:k], cep[:k], power[:k], f0[:k]))
        seen.add(got["voice_enrolled"])
    assert _same(got, full)
    assert seen == {0.0, 1.0}  # before and after the greeting was enrolled


def test_a_live_streams_memo_gives_what_a_fresh_attribution_gives() -> None:
    # A live stream reuses its last attribution while the speech runs stay the same (a
    # pause, an open line): every update must equal a fresh attribution of the frames
    # heard, through the pause (reused) and after the caller speaks again (judged anew).
    y, _ = make_call(
        [("-", 0.5, 0), ("A", 2.5, 1), ("-", 0.6, 0), ("B", 2.0, 2), ("-", 4.0, 0), ("B", 2.0, 3)]
    )
    mask, cep, power, _ = inputs(y)
    reused: list[bool] = []

    class Memo(voices.VoiceMemo):
        def recall(self, runs: np.ndarray, n_frames: int) -> dict[str, float] | None:
            out = super().recall(runs, n_frames)
            reused.append(out is not None)
            return out

    memo = Memo()
    for k in range(100, mask.size + 100, 100):
        k = min(k, mask.size)
        got = voices.attribute_voices(mask[:k], cep[:k], power[:k], memo=memo, final=k)
        assert _same(got, voices.attribute_voices(mask[:k], cep[:k], power[:k]))
    assert got["voice_enrolled"] == 1.0 and got["other_turns"] == 1
    assert any(reused[7:11])  # in the pause
    assert not any(reused[-2:])  # the caller spoke again


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "voice_attribution", ROOT / "bench" / "voice_attribution.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["voice_attribution"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(
    not (DATA / "speech" / "fsdd").is_dir() or not (DATA / "speech-nc" / "id_digits").is_dir(),
    reason=f"the shared real recordings are not at {DATA}",
)
@pytest.mark.parametrize("corpus", ["tune", "check"])
def test_real_speaker_pairs_are_attributed(corpus: str) -> None:
    bench = _bench()
    tally = bench.Tally()
    for call in bench.corpus_calls(corpus, 8, 5):
        tally.add(call)
    assert tally.unenrolled == 0
    assert tally.share >= 0.85


def test_a_far_voice_is_quieter_against_the_call_taker() -> None:
    """Near caller or talk across the room: the other voice's level against the opening's."""
    script = [("-", 0.5, 0), ("A", 2.5, 1), ("-", 0.6, 0), ("B", 3.0, 2), ("-", 0.5, 0)]
    near, _ = make_call(script)
    out_near = voices.attribute_voices(*inputs(near))
    far = near.copy()
    start = int((0.5 + 2.5 + 0.6) * SR)
    far[start:] *= 10 ** (-20 / 20)
    out_far = voices.attribute_voices(*inputs(far))
    assert out_near["other_turns"] == out_far["other_turns"] == 1
    # The caller speaks 6 dB (RMS) under the call-taker (CALLER vs TAKER), then 20 dB more.
    assert -13 < out_near["other_level_rel_db"] < -3
    assert out_far["other_level_rel_db"] == pytest.approx(
        out_near["other_level_rel_db"] - 20, abs=2
    )
    assert math.isfinite(out_near["other_tilt_rel"])
    # Nobody else spoke: nothing to compare.
    taker_only, _ = make_call([("-", 0.5, 0), ("A", 1.8, 1), ("-", 3.0, 0)])
    assert math.isnan(voices.attribute_voices(*inputs(taker_only))["other_level_rel_db"])
