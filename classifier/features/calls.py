"""The features of a call: one channel's from its frames, a recording's acoustic vector
(mono or stereo), and every feature of a call with its metadata and caller history."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo

import numpy as np

from classifier.audio import CallAudio
from classifier.constants import HOP, N_FFT, SR
from classifier.echo import cancel_echo
from classifier.errors import InvalidParameterError
from classifier.features.frames import _COL, _MFCC, frame_values
from classifier.features.frontend import _check, dither, n_frames, stft_frames
from classifier.features.names import AUDIO_FEATURES, COMPLETE_FEATURE
from classifier.features.pitch import pitch_stats, pitch_track
from classifier.features.stats import ChannelStats
from classifier.history import HISTORY_FEATURES, metadata_features
from classifier.vad import (
    VadMemo,
    grow_rows,
    speech_activity_from_stft,
    speech_and_whisper_from_stft,
    stft_magnitude,
)
from classifier.voices import (
    VoiceMemo,
    attribute_voices,
    frame_pitch,
    segments,
    speech_pitch_frames,
)


def summarise(
    y: np.ndarray,
    P: np.ndarray,
    V: np.ndarray,
    *,
    sr: int = SR,
    memo: StreamMemo | None = None,
    final: int | None = None,
    caller_pitch: bool = True,
) -> tuple[dict[str, float], np.ndarray]:
    """Call-level features of one channel from its frames.

    Parameters
    ----------
    y : numpy.ndarray, float32, shape (n,)
        Dithered samples (see :func:`dither`).
    P : numpy.ndarray, float32, shape (n_frames(n), n_band_bins)
        Telephone-band power of every frame (:func:`stft_frames`).
    V : numpy.ndarray, float32, shape (n_frames(n), len(FRAME_COLUMNS))
        :func:`frame_values` of the same frames.
    memo : StreamMemo or None, keyword-only
        A live stream's settled per-frame results and running statistics from its
        earlier updates; None computes everything.
    final : int or None, keyword-only
        With ``memo``: how many leading STFT frames are settled (None: all).
    caller_pitch : bool, keyword-only
        Measure the caller's pitch on the stretches of another voice than the opening's
        (a mono mix); False leaves it NaN (a stereo caller channel, whose own pitch is
        the caller's: :func:`audio_features`).

    Returns
    -------
    features : dict of str to float
    speech_mask : numpy.ndarray of bool, shape (n_frames(n),)
    """
    # Voiced speech drives the activity features; whisper-like stretches are kept apart
    # because muffled rustle and wind look like whisper too (the model weighs both).
    memo = memo if memo is not None else StreamMemo()
    mask, with_whisper = speech_and_whisper_from_stft(
        P.T, sr=sr, hop_length=HOP, power=P.T, n_fft=N_FFT, memo=memo.vad, final=final
    )
    feats = memo.stats.update(
        y,
        V,
        mask,
        with_whisper,
        settled=memo.vad.settled,
        final=mask.size if final is None else final,
        pitch=memo.pitch,
        sr=sr,
    )
    # The channel's pitch above is mostly the call-taker's in a mono call (the greeting
    # opens it); the caller's is read off the stretches attributed to another voice.
    feats.update(NO_CALLER_PITCH)
    feats.update(
        attribute_voices(
            mask,
            V[:, _MFCC],
            V[:, _COL["band_power"]],
            memo=memo.voices,
            final=final,
            of_other=(
                (lambda ranges: _caller_pitch(y, ranges, mask.size, memo.pitch))
                if caller_pitch
                else None
            ),
        )
    )
    return feats, mask


#: Pitch frames (20 ms) of the caller's first stretches read for their pitch: 3 s settles a
#: median, and yin is the costliest step of the features (docs/benchmarks.md).
CALLER_PITCH_FRAMES = 150
#: The caller's pitch where no stretch could be told to be theirs.
NO_CALLER_PITCH: dict[str, float] = {
    "pitch_caller_hz": float("nan"),
    "pitch_caller_high_share": float("nan"),
}


def _caller_pitch(
    y: np.ndarray,
    ranges: np.ndarray,
    n_frames: int,
    pitch: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> dict[str, float]:
    """Pitch of the first 3 s of the stretches ``ranges`` (STFT frames ``[start,
    stop)``): median f0 and share above 250 Hz, NaN with too few voiced frames."""
    inside = np.zeros(n_frames, dtype=bool)
    for a, b in ranges:
        inside[int(a) : int(b)] = True
    frames = speech_pitch_frames(inside, y.size)[:CALLER_PITCH_FRAMES]
    stats = pitch_stats(pitch(y, frames))
    return {
        "pitch_caller_hz": stats["pitch_median_hz"],
        "pitch_caller_high_share": stats["pitch_high_share"],
    }


class StreamMemo:
    """Settled per-frame results of a live stream, reused by its next update."""

    def __init__(self) -> None:
        self.vad = VadMemo()
        self.stats = ChannelStats()
        self.voices = VoiceMemo()
        self._f0 = np.zeros(0)

    def pitch(self, y: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """:func:`pitch_track` of ``frames``, computing only frames not seen before."""
        if frames.size == 0:
            return np.zeros(0)
        self._f0 = grow_rows(self._f0, int(frames[-1]) + 1, fill=np.nan)  # NaN: not yet
        todo = frames[np.isnan(self._f0[frames])]
        if todo.size:
            # Pitch frames are only ever whole windows already heard: final at once.
            self._f0[todo] = pitch_track(y, todo)
        return self._f0[frames]

    @property
    def nbytes(self) -> int:
        return int(self._f0.nbytes) + self.vad.nbytes + self.stats.nbytes + self.voices.nbytes


def channel_features(
    y: np.ndarray, *, sr: int = SR, caller_pitch: bool = True
) -> tuple[dict[str, float], np.ndarray]:
    """Features of one channel (the caller's side or the mix).

    The same steps as a live stream (:class:`classifier.streaming.StreamingFeatures`)
    takes frame by frame, run once over the whole call.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
        Mono float audio at 8 kHz.
    sr : int, keyword-only
        Must be 8000 (use :func:`classifier.audio.load_audio` to resample).
    caller_pitch : bool, keyword-only
        As :func:`summarise`.

    Returns
    -------
    features : dict of str to float
    speech_mask : numpy.ndarray of bool, shape (1 + n // 80,)
    """
    if sr != SR:
        raise InvalidParameterError(f"sr is {sr}; expected {SR} (resample with load_audio)")
    _check(y, "audio")
    yd, _ = dither(y)
    P, S = stft_frames(yd, first=0, last=n_frames(yd.size))
    return summarise(yd, P, frame_values(P, S, sr=sr), sr=sr, caller_pitch=caller_pitch)


#: Features a mono recording has no value for (the call-taker's side is unknown).
MONO_FEATURES: dict[str, float] = {
    "stereo": 0.0,
    "caller_speech_ratio": float("nan"),
    "taker_speech_ratio": float("nan"),
    "overlap_ratio": float("nan"),
    "caller_taker_ratio": float("nan"),
    "caller_response_s": float("nan"),
}


def voice_inputs(
    y: np.ndarray, *, pitch: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """What :func:`classifier.voices.attribute_voices` reads of a mono call, per frame.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
        Mono float audio at 8 kHz.
    pitch : bool, keyword-only
        Also the f0 of the speech frames (the features do without: its cost).

    Returns
    -------
    mask : numpy.ndarray of bool, shape (n_frames(n),)
    cepstra : numpy.ndarray, shape (n_frames(n), 13)
    power : numpy.ndarray, shape (n_frames(n),)
    f0 : numpy.ndarray, shape (n_frames(n),), or None without ``pitch``
    """
    _check(y, "audio")
    yd, _ = dither(y)
    P, S = stft_frames(yd, first=0, last=n_frames(yd.size))
    V = frame_values(P, S)
    _, mask = summarise(yd, P, V)
    f0 = None
    if pitch:
        frames = speech_pitch_frames(mask, yd.size)
        f0 = frame_pitch(frames, pitch_track(yd, frames), mask.size)
    return mask, V[:, _MFCC], V[:, _COL["band_power"]], f0


def _stereo_voices(caller: np.ndarray, taker: np.ndarray) -> dict[str, float]:
    """:data:`VOICE_FEATURES` of a stereo call, each side known from its channel."""
    hop_s = HOP / SR
    mine = segments(caller, merge_gap=int(0.5 / hop_s), min_len=int(0.2 / hop_s))
    theirs = segments(taker, merge_gap=int(0.5 / hop_s), min_len=int(0.2 / hop_s))
    spoke = len(mine) > 0
    return {
        "voice_enrolled": 1.0,
        "other_speech_ratio": float(caller.mean()),
        "other_speech_max_s": float((mine[:, 1] - mine[:, 0]).max() * hop_s) if spoke else 0.0,
        "other_turns": float(len(mine)),
        "taker_only": float(not spoke and len(theirs) > 0),
        "taker_prompt_share": (
            float(len(theirs) / (len(theirs) + len(mine))) if len(theirs) + len(mine) else np.nan
        ),
        # Levels of two channels are not comparable (each has its own gain).
        "other_level_rel_db": np.nan,
        "other_tilt_rel": np.nan,
    }


def audio_features(audio: CallAudio) -> dict[str, float]:
    """The full acoustic feature vector of a call.

    Parameters
    ----------
    audio : CallAudio
        From :func:`classifier.audio.load_audio`: the caller's side (or the mix) and,
        for stereo recordings with a known caller channel, the call-taker's side.

    Returns
    -------
    dict of str to float
        One value per name of :data:`AUDIO_FEATURES`; NaN where a feature does not apply
        (no voiced speech for pitch, mono recordings for caller/call-taker activity).
    """
    two_sides = audio.other is not None and audio.other.size == audio.caller.size
    caller = audio.caller
    if audio.other is not None and two_sides:
        _check(caller, "audio")
        _check(audio.other, "call-taker channel")
        # The call-taker's voice echoed in the caller's channel is not the caller.
        caller, _ = cancel_echo(caller, audio.other, sr=audio.sr)
    # Stereo: the caller's pitch is the caller channel's own, set below.
    feats, mask = channel_features(caller, sr=audio.sr, caller_pitch=not two_sides)
    stereo = dict(MONO_FEATURES)
    if audio.other is not None and two_sides:
        other, _ = dither(audio.other)
        S2 = stft_magnitude(other, n_fft=N_FFT, hop_length=HOP)
        mask2 = speech_activity_from_stft(S2, sr=audio.sr, hop_length=HOP, whisper=False)
        n = min(mask.size, mask2.size)
        m1, m2 = mask[:n], mask2[:n]
        taker_first = int(np.argmax(m2)) if m2.any() else n
        after = m1[taker_first:]
        response = (
            (int(np.argmax(after)) * HOP / SR) if after.any() else (n - taker_first) * HOP / SR
        )
        stereo = {
            "stereo": 1.0,
            "caller_speech_ratio": float(m1.mean()),
            "taker_speech_ratio": float(m2.mean()),
            "overlap_ratio": float((m1 & m2).mean()),
            "caller_taker_ratio": float(m1.sum() / (m1.sum() + m2.sum() + 1.0)),
            "caller_response_s": float(response),
            **_stereo_voices(m1, m2),
            # The caller's own channel: its pitch is the caller's.
            "pitch_caller_hz": feats["pitch_median_hz"],
            "pitch_caller_high_share": feats["pitch_high_share"],
        }
    feats.update(stereo)
    return {k: float(feats[k]) for k in AUDIO_FEATURES}


def call_features(
    audio: CallAudio | None,
    *,
    caller_id: str,
    started_at: datetime,
    duration_s: float,
    history: dict[str, float],
    timezone: tzinfo | None = None,
    acoustic: dict[str, float] | None = None,
    complete: bool = True,
) -> dict[str, float]:
    """Every feature of one call: acoustic, metadata and caller history.

    Parameters
    ----------
    audio : CallAudio or None
        The recording; None before any audio (the pre-answer score), which gives NaN for
        every acoustic feature.
    caller_id, started_at, duration_s : keyword-only
        As in the manifest.
    history : dict, keyword-only
        From :func:`classifier.history.history_features` (point in time).
    timezone : tzinfo or None, keyword-only
        The centre's time zone for hour and weekday.
    acoustic : dict or None, keyword-only
        :func:`audio_features` already computed elsewhere (a worker process); give
        either this or ``audio``, not both.
    complete : bool, keyword-only
        Whether the audio is the whole call (a recording, a stream's final score) or
        only its first seconds so far (a live stream's update, a prefix in training).
        A call that ended after 5 s of silence and a call silent for its first 5 s so
        far are different things: ``call_complete`` tells the model which it sees.

    Returns
    -------
    dict of str to float
        One value per name of :data:`FEATURE_NAMES`.
    """
    if audio is not None and acoustic is not None:
        raise InvalidParameterError("give audio or acoustic features, not both")
    if audio is not None:
        acoustic = audio_features(audio)
    nan = float("nan")
    feats = {n: acoustic[n] if acoustic is not None else nan for n in AUDIO_FEATURES}
    feats[COMPLETE_FEATURE] = nan if acoustic is None else float(complete)
    feats.update(
        metadata_features(
            caller_id=caller_id, started_at=started_at, duration_s=duration_s, timezone=timezone
        )
    )
    missing = [n for n in HISTORY_FEATURES if n not in history]
    if missing:
        raise InvalidParameterError(f"history is missing {', '.join(missing)}")
    feats.update({n: float(history[n]) for n in HISTORY_FEATURES})
    return feats
