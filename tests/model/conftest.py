"""Fixtures for behavioural tests of the shipped default model.

Calls are built here from parts (espeak-ng speech, seeded line noise) and go through
the real decoder and feature code, as a posted recording would.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import butter, sosfilt

from classifier.artifact import load_model
from classifier.audio import load_audio
from classifier.features import call_features
from classifier.history import PastCall, history_features
from classifier.scoring import CallScore, ScoringModel
from training.simulator.voice import Voice, synthesize

SR = 8000
WIB = timezone(timedelta(hours=7))
TAKER = Voice(
    language="id",
    variant="f2",
    pitch=50,
    pitch_range=50,
    rate=170,
    formant_shift=1.0,
    kind="adult_female",
)
CALLER = Voice(
    language="id",
    variant="m3",
    pitch=40,
    pitch_range=60,
    rate=165,
    formant_shift=1.0,
    kind="adult_male",
)


@pytest.fixture(scope="session")
def model() -> ScoringModel:
    # The shipped model by default; CALLSIFT_BEHAVIOUR_MODEL checks a candidate folder.
    return load_model(os.environ.get("CALLSIFT_BEHAVIOUR_MODEL") or None)


def line_noise(seconds: float, *, level_db: float = -55.0, seed: int = 0) -> np.ndarray:
    """Telephone-band hiss at ``level_db`` dBFS RMS, shape (seconds * 8000,)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=int(seconds * SR))
    x = sosfilt(butter(4, [300, 3400], btype="band", fs=SR, output="sos"), x)
    return (x / np.sqrt(np.mean(x**2)) * 10 ** (level_db / 20)).astype(np.float32)


def place(track: np.ndarray, clip: np.ndarray, at_s: float, gain: float = 0.5) -> None:
    i = int(at_s * SR)
    n = min(clip.size, track.size - i)
    track[i : i + n] += gain * clip[:n]


def speak(text: str, voice: Voice = CALLER) -> np.ndarray:
    return synthesize(text, voice=voice, sr=SR)


def to_wav(y: np.ndarray) -> bytes:
    """G.711 mu-law WAV, the most common 112 recording format."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(y, -1, 1), SR, format="WAV", subtype="ULAW")
    return buf.getvalue()


def at_peak(y: np.ndarray, peak_db: float = -14.0) -> np.ndarray:
    """Scale to a peak level, leaving headroom so +12 dB does not clip."""
    return (y * (10 ** (peak_db / 20) / max(float(np.abs(y).max()), 1e-9))).astype(np.float32)


Scorer = Callable[..., CallScore]


@pytest.fixture(scope="session")
def score(model: ScoringModel) -> Scorer:
    """Score a recording as the service would: decode, features, history, model."""

    def run(
        y: np.ndarray,
        *,
        caller_id: str = "+6281200000001",
        at: datetime = datetime(2025, 6, 3, 10, 15, tzinfo=WIB),
        past: list[PastCall] | None = None,
        heard: float | None = None,
        caller_channel: str = "mix",
    ) -> CallScore:
        """``heard``: score the call as a live stream would after that many seconds.
        ``y`` of shape (n, 2): a stereo recording, ``caller_channel`` the caller's side."""
        audio = load_audio(to_wav(y), caller_channel=caller_channel)
        if heard is not None:
            audio = audio.head(heard)
        feats = call_features(
            audio,
            caller_id=caller_id,
            started_at=at,
            duration_s=audio.duration_s,
            history=history_features(past or [], at=at),
            complete=heard is None,
        )
        return model.score(feats)

    return run
