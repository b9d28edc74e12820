"""The names of the features: the acoustic ones, the call's completeness, metadata and
caller history, in the order every feature table and model uses."""

from __future__ import annotations

from classifier.history import HISTORY_FEATURES, METADATA_FEATURES
from classifier.voices import VOICE_FEATURES

N_MFCC = 13
_CONTRAST_BANDS = 4

_SCALARS: tuple[str, ...] = (
    "audio_duration_s",
    "speech_ratio",
    "whisper_ratio",
    "speech_segments",
    "speech_segment_mean_s",
    "speech_segment_max_s",
    "speech_per_minute",
    "longest_silence_s",
    "longest_silence_ratio",
    "first_speech_s",
    "last_speech_gap_s",
    "energy_db_std",
    "energy_db_p10_rel",
    "energy_db_p50_rel",
    "dynamic_range_db",
    "noise_floor_rel_db",
    "snr_db",
    "centroid_mean",
    "centroid_std",
    "centroid_speech_mean",
    "bandwidth_mean",
    "bandwidth_std",
    "rolloff_mean",
    "rolloff_std",
    "flatness_mean",
    "flatness_std",
    "flatness_speech_mean",
    *(f"contrast_{i}_mean" for i in range(_CONTRAST_BANDS + 1)),
    *(f"contrast_{i}_std" for i in range(_CONTRAST_BANDS + 1)),
    "mfcc_0_std",
    *(f"mfcc_{i}_mean" for i in range(1, N_MFCC)),
    *(f"mfcc_{i}_std" for i in range(1, N_MFCC)),
    "pitch_median_hz",
    "pitch_p90_hz",
    "pitch_std_semitones",
    "pitch_high_share",
    # The caller's own voice (mono: stretches attributed to another voice than the
    # call-taker's opening, classifier.voices; stereo: the caller's channel).
    "pitch_caller_hz",
    "pitch_caller_high_share",
    "voiced_share",
    "laughter_mod_ratio",
    "laughter_regularity",
    "laughter_burst_share",
    "muffled_db",
    "muffled_active_db",
    "clipping_ratio",
    "stereo",
    "caller_speech_ratio",
    "taker_speech_ratio",
    "overlap_ratio",
    "caller_taker_ratio",
    "caller_response_s",
    # Mono: the caller's own speech, the opening's voice taken as the call-taker's
    # (classifier.voices); stereo: read off the two channels.
    *VOICE_FEATURES,
)
AUDIO_FEATURES: tuple[str, ...] = _SCALARS
#: 1 when the audio is the whole call, 0 when it is the call's first seconds so far.
COMPLETE_FEATURE = "call_complete"

FEATURE_NAMES: tuple[str, ...] = (
    *AUDIO_FEATURES,
    COMPLETE_FEATURE,
    *METADATA_FEATURES,
    *HISTORY_FEATURES,
)
