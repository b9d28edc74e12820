"""Loading call recordings into the one audio convention every feature relies on.

Every recording, whatever its container, codec, rate or channel layout, becomes float32
mono at :data:`TARGET_SR` (8 kHz, the telephone band) so that features computed on a
44.1 kHz FLAC upload and on a G.711 WAV from the switch are comparable.

Decoding goes through :mod:`soundfile` (libsndfile): WAV / WAVEX (PCM 8/16/24/32 bit,
float, double, G.711 mu-law and A-law), FLAC and OGG (Vorbis, Opus). Rates above the
target are brought down with :func:`scipy.signal.resample_poly` (polyphase FIR with a
Kaiser anti-aliasing filter: fast and alias-free enough for features).
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, replace
from math import gcd
from typing import BinaryIO

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from classifier.errors import (
    AudioTooLongError,
    AudioTooShortError,
    InvalidAudioError,
    InvalidParameterError,
    UnsupportedAudioError,
)
from classifier.formats import (
    AUDIO_FORMATS,
    AUDIO_SUBTYPES,
    CALLER_CHANNELS,
    MIN_SAMPLE_RATE,
)

__all__ = [
    "CALLER_CHANNELS",
    "MIN_SAMPLE_RATE",
    "SUPPORTED_FORMATS",
    "SUPPORTED_SUBTYPES",
    "TARGET_SR",
    "CallAudio",
    "load_audio",
]

TARGET_SR = 8000
SUPPORTED_FORMATS = AUDIO_FORMATS
SUPPORTED_SUBTYPES = AUDIO_SUBTYPES
_MAX_SR = 384_000


@dataclass(frozen=True)
class CallAudio:
    """A decoded call recording.

    Attributes
    ----------
    caller : np.ndarray
        float32, shape (n,): the caller's side at ``sr`` (the average of all channels
        when ``caller_channel="mix"``).
    other : np.ndarray or None
        float32, shape (n,): the call-taker's side of a stereo recording when a caller
        channel was chosen, else None.
    sr : int
        Sample rate of ``caller`` and ``other`` (``TARGET_SR`` unless asked otherwise).
    original_sr : int
        Sample rate stored in the file.
    original_channels : int
        Number of channels stored in the file (1 or 2).
    original_format : str
        libsndfile container name, e.g. ``"WAV"``, ``"FLAC"``, ``"OGG"``.
    original_subtype : str
        libsndfile sample encoding, e.g. ``"PCM_16"``, ``"ULAW"``, ``"VORBIS"``.
    duration_s : float
        ``len(caller) / sr``.
    """

    caller: np.ndarray
    other: np.ndarray | None
    sr: int
    original_sr: int
    original_channels: int
    original_format: str
    original_subtype: str
    duration_s: float

    @classmethod
    def from_samples(
        cls, caller: np.ndarray, *, sr: int = TARGET_SR, subtype: str = "FLOAT"
    ) -> CallAudio:
        """A mono call from samples already decoded at ``sr`` (a live stream, a test).

        Parameters
        ----------
        caller : numpy.ndarray, float32, shape (n,)
        sr : int, keyword-only
        subtype : str, keyword-only
            The encoding the samples came from, for the record.
        """
        return cls(
            caller=caller,
            other=None,
            sr=sr,
            original_sr=sr,
            original_channels=1,
            original_format="WAV",
            original_subtype=subtype,
            duration_s=caller.size / sr,
        )

    def head(self, seconds: float) -> CallAudio:
        """The first ``seconds`` of the call: what a live stream has heard by then.

        Both sides are cut at the same sample, so caller/call-taker features of a prefix
        are those of a recording that ended there. A call no longer than ``seconds`` is
        returned whole.

        Parameters
        ----------
        seconds : float
            Seconds heard, > 0.

        Returns
        -------
        CallAudio
            ``caller`` (and ``other``) of shape (min(n, round(seconds * sr)),), with
            ``duration_s`` updated; the original file's description is kept.
        """
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float | np.integer | np.floating)
            or not math.isfinite(seconds)
            or seconds <= 0
        ):
            raise InvalidParameterError(f"seconds must be a finite number > 0; got {seconds!r}")
        # round, not floor: 5.0 s at 8 kHz must be 40,000 samples despite float error.
        n = min(self.caller.size, round(float(seconds) * self.sr))
        if n == self.caller.size:
            return self
        return replace(
            self,
            caller=self.caller[:n],
            other=None if self.other is None else self.other[:n],
            duration_s=n / self.sr,
        )


def load_audio(
    source: str | os.PathLike[str] | bytes | BinaryIO,
    *,
    sr: int = TARGET_SR,
    caller_channel: str = "mix",
    min_duration_s: float = 0.25,
    max_duration_s: float = 1800.0,
) -> CallAudio:
    """Decode a recording to float32 mono at ``sr``.

    Parameters
    ----------
    source : str, os.PathLike, bytes or binary file object
        A path, the whole file's bytes, or an open binary file (read from its current
        position; it must be seekable).
    sr : int, default 8000
        Output sample rate. Files at a higher rate are resampled down; files below
        :data:`MIN_SAMPLE_RATE` are rejected.
    caller_channel : {"mix", "left", "right"}, default "mix"
        ``"mix"`` averages the channels; ``"left"`` / ``"right"`` (stereo only) take that
        channel as the caller and return the other one as ``other``.
    min_duration_s, max_duration_s : float
        Accepted duration range in seconds. The maximum is checked from the header,
        before any sample is decoded.

    Returns
    -------
    CallAudio

    Raises
    ------
    InvalidParameterError
        A parameter outside its range.
    InvalidAudioError
        Empty, unreadable or corrupt input, or NaN / infinite samples.
    UnsupportedAudioError
        A container, encoding, sample rate or channel count callsift does not accept.
    AudioTooShortError, AudioTooLongError
        Duration outside ``[min_duration_s, max_duration_s]``.
    """
    _check_params(sr, caller_channel, min_duration_s, max_duration_s)
    stream, name = _open_source(source)
    try:
        snd = sf.SoundFile(stream)
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError) as exc:
        raise InvalidAudioError(f"cannot decode {name}: {_reason(exc)}") from exc
    with snd:
        fmt, subtype = str(snd.format), str(snd.subtype)
        orig_sr, channels, frames = int(snd.samplerate), int(snd.channels), int(snd.frames)
        _check_header(name, fmt, subtype, orig_sr, channels, frames, caller_channel)
        # Some streams report an unknown length; never decode more than the maximum + 1.
        max_frames = math.floor(max_duration_s * orig_sr) + 1
        if frames / orig_sr > max_duration_s:
            raise AudioTooLongError(
                f"audio is {frames / orig_sr:.2f} s long; expected at most {max_duration_s:g} s"
            )
        try:
            data = snd.read(frames=min(frames, max_frames), dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError, ValueError) as exc:
            raise InvalidAudioError(f"cannot decode {name}: {_reason(exc)}") from exc

    n = data.shape[0]
    if n == 0:
        raise InvalidAudioError(f"{name} has no audio frames; expected at least one")
    if n / orig_sr > max_duration_s:
        raise AudioTooLongError(
            f"audio is longer than {n / orig_sr:.2f} s; expected at most {max_duration_s:g} s"
        )
    if n / orig_sr < min_duration_s:
        raise AudioTooShortError(
            f"audio is {n / orig_sr:.2f} s long; expected at least {min_duration_s:g} s"
        )
    if not np.isfinite(data).all():
        bad = int(np.count_nonzero(~np.isfinite(data)))
        raise InvalidAudioError(
            f"{name} has {bad} NaN or infinite samples; expected finite samples only"
        )

    if caller_channel == "mix":
        caller = data[:, 0] if channels == 1 else data.mean(axis=1, dtype=np.float32)
        other = None
    else:
        idx = 0 if caller_channel == "left" else 1
        caller, other = data[:, idx], data[:, 1 - idx]

    caller = _resample(caller, orig_sr, sr)
    if other is not None:
        other = _resample(other, orig_sr, sr)
    return CallAudio(
        caller=caller,
        other=other,
        sr=sr,
        original_sr=orig_sr,
        original_channels=channels,
        original_format=fmt,
        original_subtype=subtype,
        duration_s=len(caller) / sr,
    )


def _check_params(
    sr: int, caller_channel: str, min_duration_s: float, max_duration_s: float
) -> None:
    if isinstance(sr, bool) or not isinstance(sr, int | np.integer):
        raise InvalidParameterError(f"sr must be an int; got {type(sr).__name__}")
    if not MIN_SAMPLE_RATE <= sr <= _MAX_SR:
        raise InvalidParameterError(f"sr must be in [{MIN_SAMPLE_RATE}, {_MAX_SR}] Hz; got {sr}")
    if caller_channel not in CALLER_CHANNELS:
        raise InvalidParameterError(
            f"caller_channel must be one of {CALLER_CHANNELS}; got {caller_channel!r}"
        )
    for key, val in (("min_duration_s", min_duration_s), ("max_duration_s", max_duration_s)):
        if not isinstance(val, int | float) or not math.isfinite(val) or val < 0:
            raise InvalidParameterError(f"{key} must be a finite number >= 0; got {val!r}")
    if min_duration_s > max_duration_s:
        raise InvalidParameterError(
            f"min_duration_s must be <= max_duration_s; got {min_duration_s} > {max_duration_s}"
        )


def _open_source(
    source: str | os.PathLike[str] | bytes | BinaryIO,
) -> tuple[str | BinaryIO, str]:
    """Return something soundfile can open and a name for messages."""
    if isinstance(source, bytes | bytearray | memoryview):
        if len(source) == 0:
            raise InvalidAudioError("empty input: 0 bytes; expected an audio file")
        return io.BytesIO(bytes(source)), "audio bytes"
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise InvalidAudioError(f"no such audio file: {path!r}")
        if os.path.getsize(path) == 0:
            raise InvalidAudioError(f"empty input: {path!r} is 0 bytes; expected an audio file")
        return path, repr(path)
    if hasattr(source, "read"):
        return source, "audio stream"
    raise InvalidParameterError(
        f"source must be a path, bytes or a binary file object; got {type(source).__name__}"
    )


def _check_header(
    name: str,
    fmt: str,
    subtype: str,
    orig_sr: int,
    channels: int,
    frames: int,
    caller_channel: str,
) -> None:
    if fmt not in SUPPORTED_FORMATS:
        raise UnsupportedAudioError(
            f"{name} is {fmt}; expected one of {', '.join(SUPPORTED_FORMATS)}"
        )
    if subtype not in SUPPORTED_SUBTYPES:
        raise UnsupportedAudioError(
            f"{name} is encoded as {subtype}; expected one of {', '.join(SUPPORTED_SUBTYPES)}"
        )
    if orig_sr < MIN_SAMPLE_RATE:
        raise UnsupportedAudioError(
            f"{name} is sampled at {orig_sr} Hz; expected at least {MIN_SAMPLE_RATE} Hz"
        )
    # More than two channels is not a call recording (caller + call-taker); averaging
    # unknown channels would silently blend sides, so refuse instead of guessing.
    if channels not in (1, 2):
        raise UnsupportedAudioError(
            f"{name} has {channels} channels; expected 1 (mono) or 2 (stereo)"
        )
    if caller_channel != "mix" and channels != 2:
        raise InvalidParameterError(
            f"caller_channel={caller_channel!r} needs a stereo file; {name} has 1 channel"
        )
    if frames <= 0:
        raise InvalidAudioError(f"{name} has no audio frames; expected at least one")


def _resample(x: np.ndarray, orig_sr: int, sr: int) -> np.ndarray:
    """float32 (n,) at ``orig_sr`` -> float32 contiguous (m,) at ``sr``."""
    if orig_sr == sr:
        return np.ascontiguousarray(x, dtype=np.float32)
    g = gcd(orig_sr, sr)
    y = resample_poly(x, sr // g, orig_sr // g)
    return np.ascontiguousarray(y, dtype=np.float32)


def _reason(exc: BaseException) -> str:
    msg = str(exc).strip()
    # libsndfile prefixes "Error opening <object at 0x..>:"; keep only the reason.
    if ": " in msg:
        msg = msg.rsplit(": ", 1)[-1]
    return msg or type(exc).__name__
