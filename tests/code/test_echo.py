"""The call-taker's echo in the caller's channel of a stereo recording: found, removed,
and nothing touched where there is none."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.audio import CallAudio
from classifier.echo import cancel_echo
from classifier.errors import InvalidParameterError
from classifier.features import audio_features

SR = 8000


def _voice(seconds: float, *, seed: int, f0: float = 200.0) -> np.ndarray:
    """Seeded voice-like bursts: harmonics of a wandering f0, on for 60% of the time."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    f = f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * np.arange(n) / SR + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(f) / SR
    y = sum(np.sin(k * phase) / k for k in range(1, 8))
    on = np.repeat(rng.random(int(seconds * 4) + 1) < 0.6, SR // 4)[:n]
    return (0.2 * y * on).astype(np.float32)


def _noise(seconds: float, *, seed: int, level_db: float = -50.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * SR)) * 10 ** (level_db / 20)).astype(np.float32)


def _echo_of(taker: np.ndarray, *, delay_s: float, level_db: float) -> np.ndarray:
    path = np.exp(-np.arange(16) / 4.0) * np.cos(1.3 * np.arange(16))
    path *= 10 ** (level_db / 20) / np.sqrt(path @ path)
    d = int(delay_s * SR)
    out = np.zeros_like(taker)
    out[d:] = np.convolve(taker, path)[: taker.size - d]
    return out


def _db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.asarray(x, dtype=np.float64) ** 2) + 1e-30))


@pytest.mark.parametrize("delay_s", [0.0, 0.045, 0.18, 0.35])
def test_an_echo_on_a_silent_line_is_removed(delay_s: float) -> None:
    taker = _voice(20.0, seed=1)
    echo = _echo_of(taker, delay_s=delay_s, level_db=-25.0)
    line = _noise(20.0, seed=2)
    out, est = cancel_echo(line + echo, taker, sr=SR)
    assert est is not None and est.removed and est.share > 0.5, est
    assert est.delay_s == pytest.approx(delay_s, abs=0.001)
    # What is left of the echo lies at least 25 dB under it.
    assert _db(out - line) < _db(echo) - 25.0


def test_double_talk_keeps_the_callers_own_voice() -> None:
    taker = _voice(30.0, seed=3, f0=210.0)
    own = _voice(30.0, seed=4, f0=120.0)
    echo = _echo_of(taker, delay_s=0.09, level_db=-6.0)
    line = _noise(30.0, seed=5)
    out, est = cancel_echo(own + echo + line, taker, sr=SR)
    assert est is not None and est.removed, est
    # The caller's voice comes through within 0.1 dB; the echo is gone.
    assert abs(_db(out - line) - _db(own)) < 0.1
    assert _db(out - line - own) < _db(echo) - 20.0


def test_without_an_echo_the_channel_is_left_as_it_is() -> None:
    taker = _voice(25.0, seed=6)
    caller = _voice(25.0, seed=7, f0=130.0) + _noise(25.0, seed=8)
    out, est = cancel_echo(caller, taker, sr=SR)
    assert out is caller
    assert est is not None and not est.removed and est.share < 0.005, est
    silent = _noise(25.0, seed=9)
    out, est = cancel_echo(silent, taker, sr=SR)
    assert out is silent and est is not None and not est.removed


def test_nothing_to_fit_gives_no_estimate() -> None:
    short = _noise(0.5, seed=10)
    assert cancel_echo(short, _voice(0.5, seed=11), sr=SR) == (short, None)
    caller = _noise(5.0, seed=12)
    out, est = cancel_echo(caller, np.zeros_like(caller), sr=SR)
    assert out is caller and est is None


@pytest.mark.parametrize(
    ("caller", "taker", "kwargs", "message"),
    [
        (np.zeros(8000), np.zeros(8001), {}, "channels have shapes (8000,) and (8001,)"),
        (np.zeros((8000, 2)), np.zeros((8000, 2)), {}, "expected two equal 1-D"),
        (np.zeros(8000), np.zeros(8000), {"taps": 4}, "taps is 4; expected 8 to 1024"),
        (np.zeros(8000), np.zeros(8000), {"max_delay_s": 3.0}, "max_delay_s is 3.0"),
    ],
)
def test_bad_input_is_named(
    caller: np.ndarray, taker: np.ndarray, kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(InvalidParameterError) as info:
        cancel_echo(caller, taker, **kwargs)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_the_features_of_a_silent_line_do_not_hear_the_echo() -> None:
    taker = _voice(20.0, seed=13) + _noise(20.0, seed=14, level_db=-60.0)
    line = _noise(20.0, seed=15)
    clean = audio_features(CallAudio.from_samples(line, other=taker))
    echoed = audio_features(
        CallAudio.from_samples(line + _echo_of(taker, delay_s=0.12, level_db=-22.0), other=taker)
    )
    assert clean["caller_speech_ratio"] < 0.05
    for name in ("caller_speech_ratio", "overlap_ratio", "speech_ratio"):
        assert echoed[name] == pytest.approx(clean[name], abs=0.02), name
