"""Acoustic features of a call from one shared STFT.

Every feature here is computed from the same short-time Fourier transform (32 ms
windows, 10 ms hop at 8 kHz), so the full vector of a 60 s call costs a few
milliseconds. Features are designed to be gain invariant (levels are relative to the
call's own noise floor or peak) because centres record at very different levels.

Training (``callsift features``) and serving (the API) both call :func:`audio_features`;
there is no second implementation.

The feature names are in :mod:`~classifier.features.names`; the input checks, dither and
STFT in :mod:`~classifier.features.frontend`; per-frame values in
:mod:`~classifier.features.frames`; pitch and laughter in
:mod:`~classifier.features.pitch` and :mod:`~classifier.features.laughter`; the running
call-level statistics in :mod:`~classifier.features.stats`; and a call's features in
:mod:`~classifier.features.calls`.
"""

from classifier.constants import HOP, N_FFT, SR
from classifier.features.calls import (
    MONO_FEATURES,
    StreamMemo,
    audio_features,
    call_features,
    channel_features,
    summarise,
    voice_inputs,
)
from classifier.features.frames import FRAME_COLUMNS, frame_values
from classifier.features.frontend import MIN_SAMPLES, N_BAND, dither, n_frames, stft_frames
from classifier.features.names import (
    AUDIO_FEATURES,
    COMPLETE_FEATURE,
    FEATURE_NAMES,
    N_MFCC,
)
from classifier.features.pitch import pitch_track, yin_frames
from classifier.features.stats import ChannelStats

__all__ = [
    "AUDIO_FEATURES",
    "COMPLETE_FEATURE",
    "FEATURE_NAMES",
    "FRAME_COLUMNS",
    "HOP",
    "MIN_SAMPLES",
    "MONO_FEATURES",
    "N_BAND",
    "N_FFT",
    "N_MFCC",
    "SR",
    "ChannelStats",
    "StreamMemo",
    "audio_features",
    "call_features",
    "channel_features",
    "dither",
    "frame_values",
    "n_frames",
    "pitch_track",
    "stft_frames",
    "summarise",
    "voice_inputs",
    "yin_frames",
]
