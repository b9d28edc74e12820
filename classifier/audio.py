"""Loading call recordings into the one audio convention every feature relies on.

Every recording, whatever its container, codec, rate or channel layout, becomes float32
mono at :data:`TARGET_SR` (8 kHz, the telephone band) so that features computed on a
44.1 kHz FLAC upload and on a G.711 WAV from the switch are comparable.

Decoding goes through :mod:`soundfile` (libsndfile): WAV / WAVEX (PCM 8/16/24/32 bit,
float, double, G.711 mu-law and A-law), FLAC and OGG (Vorbis, Opus). Rates above the
target are brought down with the filter of :func:`scipy.signal.resample_poly`
(polyphase FIR with a Kaiser anti-aliasing filter: fast and alias-free enough for
features).

A small file can decode to a huge array (a FLAC of silence compresses about 10,000 to
1), so the work is bounded before and while decoding: the header's length, rate and
channels are checked against the limits first, and the samples are then decoded and
resampled block by block (:data:`BLOCK_FRAMES` frames at a time), counting what was
decoded, so a header that lies or says nothing cannot make the loader hold more than the
8 kHz result and one block. The block-wise result equals ``resample_poly`` on the whole
recording, sample for sample.
"""

from __future__ import annotations

import io
import math
import os
import struct
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import BinaryIO

import numpy as np
import soundfile as sf
from scipy.signal import firwin, upfirdn

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
    "BLOCK_FRAMES",
    "CALLER_CHANNELS",
    "HEADERLESS_ENCODINGS",
    "MAX_DECODED_SAMPLES",
    "MAX_SAMPLE_RATE",
    "MAX_SAMPLE_VALUE",
    "MIN_SAMPLE_RATE",
    "SUPPORTED_FORMATS",
    "SUPPORTED_SUBTYPES",
    "TARGET_SR",
    "CallAudio",
    "audio_format",
    "headerless_wav",
    "load_audio",
    "pcm16_wav",
    "wav_of_samples",
]

TARGET_SR = 8000
SUPPORTED_FORMATS = AUDIO_FORMATS
SUPPORTED_SUBTYPES = AUDIO_SUBTYPES
#: Highest original rate accepted (the highest rate audio interfaces record at). Also
#: bounds the anti-aliasing filter: at most 20 x 2000 taps, see :data:`_MAX_RATIO_TERM`.
MAX_SAMPLE_RATE = 384_000
#: Default budget of samples to decode (frames x channels at the file's rate): 30 min
#: of 48 kHz stereo. A FLAC of 1,790 s of silence at 192 kHz (1.1 MB) is 344 million.
MAX_DECODED_SAMPLES = 1800 * 48_000 * 2
#: Frames decoded at a time: 0.5 MB of float32 stereo, a few ms of work.
BLOCK_FRAMES = 65_536
#: Largest magnitude of a float sample, 2^24 x full scale (144 dB over): float files
#: written in integer scale (+-32767) still score, while values near float32's limit
#: overflow every power the features compute (from about 1e18).
MAX_SAMPLE_VALUE = float(2**24)
_MAX_SR = MAX_SAMPLE_RATE
#: libsndfile's length of a stream that does not say it (SF_COUNT_MAX), e.g. a FLAC
#: whose STREAMINFO has 0 samples; anything this large is no length at all.
_UNKNOWN_FRAMES = 2**62
#: Largest term of the resampling ratio: a rate prime to 8000 (383,999 Hz) would need a
#: 7.7-million-tap filter (3 s to design); its ratio is rounded to terms of at most
#: this, a rate error below 1/2000 (every common rate's ratio is exact: 44.1 kHz is
#: 80/441).
_MAX_RATIO_TERM = 2000


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
        cls,
        caller: np.ndarray,
        *,
        other: np.ndarray | None = None,
        sr: int = TARGET_SR,
        subtype: str = "FLOAT",
    ) -> CallAudio:
        """A call from samples already decoded at ``sr`` (a live stream, a test).

        Parameters
        ----------
        caller : numpy.ndarray, float32, shape (n,)
        other : numpy.ndarray or None, keyword-only, shape (n,)
            The call-taker's side of a stereo recording; None for a mono call.
        sr : int, keyword-only
        subtype : str, keyword-only
            The encoding the samples came from, for the record.
        """
        return cls(
            caller=caller,
            other=other,
            sr=sr,
            original_sr=sr,
            original_channels=1 if other is None else 2,
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
    max_samples: int | None = MAX_DECODED_SAMPLES,
) -> CallAudio:
    """Decode a recording to float32 mono at ``sr``.

    Parameters
    ----------
    source : str, os.PathLike, bytes or binary file object
        A path, the whole file's bytes, or an open binary file (read from its current
        position; it must be seekable).
    sr : int, default 8000
        Output sample rate. Files at a higher rate are resampled down; files below
        :data:`MIN_SAMPLE_RATE` or above :data:`MAX_SAMPLE_RATE` are rejected.
    caller_channel : {"mix", "left", "right"}, default "mix"
        ``"mix"`` averages the channels; ``"left"`` / ``"right"`` (stereo only) take that
        channel as the caller and return the other one as ``other``.
    min_duration_s, max_duration_s : float
        Accepted duration range in seconds. The maximum is checked from the header,
        before any sample is decoded, and again while decoding.
    max_samples : int or None, default :data:`MAX_DECODED_SAMPLES`
        Most samples (frames x channels, at the file's own rate) to decode: checked from
        the header before decoding, and while decoding, which stops one block past it.
        None: no budget beyond ``max_duration_s``.

    Returns
    -------
    CallAudio

    Raises
    ------
    InvalidParameterError
        A parameter outside its range.
    InvalidAudioError
        Empty, unreadable or corrupt input, NaN / infinite samples, or float samples
        beyond :data:`MAX_SAMPLE_VALUE`.
    UnsupportedAudioError
        A container, encoding, sample rate or channel count callsift does not accept.
    AudioTooShortError, AudioTooLongError
        Duration outside ``[min_duration_s, max_duration_s]``, or more samples than
        ``max_samples`` (AudioTooLongError).

    Notes
    -----
    Memory: the decoded result (4 bytes per sample at ``sr``, per side returned), one
    block of :data:`BLOCK_FRAMES` frames, and, only when the header's length was wrong
    or missing, a second copy of the result while it is joined.
    """
    _check_params(sr, caller_channel, min_duration_s, max_duration_s, max_samples)
    snd, name = _open_sound(source)
    with snd:
        fmt, subtype = str(snd.format), str(snd.subtype)
        orig_sr, channels, frames = int(snd.samplerate), int(snd.channels), int(snd.frames)
        known = frames < _UNKNOWN_FRAMES
        _check_header(name, fmt, subtype, orig_sr, channels, frames, caller_channel)
        if known and frames / orig_sr > max_duration_s:
            raise AudioTooLongError(
                f"audio is {frames / orig_sr:.2f} s long; expected at most {max_duration_s:g} s"
            )
        if known and max_samples is not None and frames * channels > max_samples:
            raise AudioTooLongError(
                f"{_decoded_size(frames, orig_sr, channels)}; expected at most "
                f"{max_samples} samples (frames x channels at the file's rate)"
            )
        # The header may lie or say nothing: never decode more than one frame past
        # either limit, whatever it said.
        cap = math.floor(max_duration_s * orig_sr) + 1
        if max_samples is not None:
            cap = min(cap, max_samples // channels + 1)
        try:
            decoded = _decode(snd, cap, caller_channel, orig_sr, sr, frames if known else None)
        except (sf.SoundFileError, RuntimeError, ValueError) as exc:
            raise InvalidAudioError(f"cannot decode {name}: {_reason(exc)}") from exc
    n = decoded.frames
    if n == 0:
        raise InvalidAudioError(f"{name} has no audio frames; expected at least one")
    if n / orig_sr > max_duration_s:
        raise AudioTooLongError(
            f"audio is longer than {n / orig_sr:.2f} s; expected at most {max_duration_s:g} s"
        )
    if max_samples is not None and n * channels > max_samples:
        # Decoding stopped one frame past the budget: all that is known is "more".
        raise AudioTooLongError(
            f"{_decoded_size(max_samples // channels, orig_sr, channels, more=True)}; "
            "expected at most "
            f"{max_samples} samples (frames x channels at the file's rate)"
        )
    if n / orig_sr < min_duration_s:
        raise AudioTooShortError(
            f"audio is {n / orig_sr:.2f} s long; expected at least {min_duration_s:g} s"
        )
    if decoded.non_finite:
        raise InvalidAudioError(
            f"{name} has {decoded.non_finite} NaN or infinite samples; expected finite samples only"
        )
    if decoded.too_loud:
        raise InvalidAudioError(
            f"{name} has {decoded.too_loud} samples beyond +-{MAX_SAMPLE_VALUE:.0f} times "
            "full scale; expected float samples scaled to about +-1.0"
        )
    caller, other = decoded.caller, decoded.other
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


def audio_format(source: str | os.PathLike[str] | bytes | BinaryIO) -> tuple[str, str]:
    """A recording's container and encoding as libsndfile names them, from its header.

    Parameters
    ----------
    source : str, os.PathLike, bytes or binary file object
        As for :func:`load_audio` (a file object is read from its current position).

    Returns
    -------
    tuple of str
        ``(format, subtype)``, e.g. ``("WAV", "GSM610")``.

    Raises
    ------
    InvalidAudioError
        Empty, unreadable or not audio.
    """
    snd, _ = _open_sound(source)
    with snd:
        return str(snd.format), str(snd.subtype)


#: Encodings of headerless audio (RTP payloads, Asterisk's ``.ulaw`` / ``.alaw`` /
#: ``.sln`` files) and the WAV format tag and bytes per sample of each.
HEADERLESS_ENCODINGS: dict[str, tuple[int, int]] = {
    "ULAW": (7, 1),
    "ALAW": (6, 1),
    "PCM_16": (1, 2),
}
#: First bytes of the containers callsift reads: headerless audio that starts with one is
#: a file sent under the wrong type, and decoding its header as samples would hide that.
_CONTAINER_MAGIC = (
    (b"RIFF", "WAV"),
    (b"RF64", "RF64"),
    (b"riff", "Wave64"),
    (b"fLaC", "FLAC"),
    (b"OggS", "Ogg"),
    (b".snd", "AU"),
    (b"FORM", "AIFF"),
    (b"ID3", "MP3"),
)


def headerless_wav(
    data: bytes,
    *,
    encoding: str,
    sample_rate: int,
    channels: int = 1,
    big_endian: bool = False,
) -> bytes:
    """Headerless samples wrapped, unchanged, in a WAV header for :func:`load_audio`.

    Telephone systems send and store G.711 and 16-bit PCM without a header (RTP's
    ``audio/PCMU``, ``audio/PCMA``, ``audio/L16``; Asterisk's raw files): the rate and
    channels come from elsewhere (a MIME type's parameters). The samples are copied, not
    decoded, so the result is as exact as the input; 16-bit big-endian samples (network
    order, as ``audio/L16``) are byte-swapped.

    Parameters
    ----------
    data : bytes, shape (n_frames * channels * width,)
        Interleaved samples, ``width`` bytes each (1 for G.711, 2 for PCM_16).
    encoding : {"ULAW", "ALAW", "PCM_16"}
        libsndfile's name of the samples' encoding.
    sample_rate : int
        Samples per second per channel, from :data:`MIN_SAMPLE_RATE` to
        :data:`MAX_SAMPLE_RATE`.
    channels : {1, 2}, default 1
    big_endian : bool, default False
        PCM_16 only: samples in network byte order.

    Returns
    -------
    bytes
        A WAV file (RIFF) of the same samples.

    Raises
    ------
    InvalidParameterError
        An encoding, rate or channel count outside the above.
    InvalidAudioError
        No bytes, a length that is not a whole number of frames, or bytes that start
        with a container's header (a file sent as headerless audio).
    """
    if encoding not in HEADERLESS_ENCODINGS:
        raise InvalidParameterError(
            f"headerless encoding is {encoding!r}; expected one of "
            f"{', '.join(HEADERLESS_ENCODINGS)}"
        )
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int):
        raise InvalidParameterError(f"sample_rate is {sample_rate!r}; expected an integer")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise InvalidParameterError(
            f"sample_rate is {sample_rate} Hz; expected {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz"
        )
    if channels not in (1, 2):
        raise InvalidParameterError(f"channels is {channels!r}; expected 1 or 2")
    if not data:
        raise InvalidAudioError("headerless audio has 0 bytes; expected samples")
    for magic, container in _CONTAINER_MAGIC:
        if data.startswith(magic):
            raise InvalidAudioError(
                f"headerless {encoding} audio starts with a {container} header "
                f"({magic.decode('latin-1')!r}); expected samples only: send a {container} "
                "file as the file it is, not as headerless audio"
            )
    if big_endian and encoding == "PCM_16" and len(data) % 2 == 0:
        data = np.frombuffer(data, dtype=">i2").astype("<i2").tobytes()
    return wav_of_samples(data, encoding=encoding, sample_rate=sample_rate, channels=channels)


def wav_of_samples(data: bytes, *, encoding: str, sample_rate: int, channels: int = 1) -> bytes:
    """Interleaved little-endian samples in a WAV header, as they are: the header of
    :func:`headerless_wav`, and of the simulator's G.711 files (which it encodes itself).

    Parameters
    ----------
    data : bytes, shape (n_frames * channels * width,)
    encoding : {"ULAW", "ALAW", "PCM_16"}
    sample_rate : int
    channels : int, default 1

    Returns
    -------
    bytes
        A WAV file (RIFF): a 18-byte ``fmt`` chunk, a ``fact`` chunk for G.711, the data,
        padded to an even length.

    Raises
    ------
    InvalidAudioError
        A length that is not a whole number of frames.
    """
    tag, width = HEADERLESS_ENCODINGS[encoding]
    frame = width * channels
    if len(data) % frame:
        raise InvalidAudioError(
            f"headerless {encoding} audio of {len(data)} bytes is not a whole number of "
            f"{frame}-byte frames ({width} byte(s) x {channels} channel(s)); expected a "
            f"multiple of {frame} bytes"
        )
    fmt = struct.pack(
        "<HHIIHHH",
        tag,
        channels,
        sample_rate,
        sample_rate * frame,
        frame,
        8 * width,
        0,  # cbSize: no extension
    )
    chunks = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if tag != 1:  # non-PCM WAVs carry their frame count in a fact chunk
        chunks += b"fact" + struct.pack("<II", 4, len(data) // frame)
    chunks += b"data" + struct.pack("<I", len(data)) + data
    if len(data) % 2:
        chunks += b"\x00"  # RIFF chunks are word-aligned
    return b"RIFF" + struct.pack("<I", len(chunks)) + chunks


def pcm16_wav(
    source: str | os.PathLike[str] | bytes | BinaryIO,
    *,
    max_samples: int | None = MAX_DECODED_SAMPLES,
) -> bytes:
    """A recording re-encoded as WAV PCM 16 at its own rate and channels.

    For players that do not know the recording's codec (browsers play no GSM 6.10,
    ADPCM or AU): what they get is what was recorded, at the recording's rate, not the
    8 kHz mono the features use.

    Parameters
    ----------
    source : str, os.PathLike, bytes or binary file object
        A recording :func:`load_audio` accepts.
    max_samples : int or None, default :data:`MAX_DECODED_SAMPLES`
        Most samples (frames x channels) to decode; None: no limit.

    Returns
    -------
    bytes
        The WAV file, ``44 + 2 x frames x channels`` bytes.

    Raises
    ------
    InvalidAudioError, UnsupportedAudioError, AudioTooLongError
        As :func:`load_audio` for the same file.
    """
    snd, name = _open_sound(source)
    out = io.BytesIO()
    with snd:
        fmt, subtype = str(snd.format), str(snd.subtype)
        rate, channels, frames = int(snd.samplerate), int(snd.channels), int(snd.frames)
        _check_header(name, fmt, subtype, rate, channels, frames, "mix")
        cap = None if max_samples is None else max_samples // channels
        n = 0
        try:
            with sf.SoundFile(
                out, "w", samplerate=rate, channels=channels, format="WAV", subtype="PCM_16"
            ) as wav:
                while True:
                    block = snd.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
                    if len(block) == 0:
                        break
                    n += len(block)
                    if cap is not None and n > cap:
                        raise AudioTooLongError(
                            f"{_decoded_size(cap, rate, channels, more=True)}; expected at "
                            f"most {max_samples} samples (frames x channels at the file's rate)"
                        )
                    # Out-of-range float samples clip as a player would, not wrap.
                    wav.write(np.clip(np.nan_to_num(block), -1.0, 1.0))
        except (sf.SoundFileError, RuntimeError, ValueError) as exc:
            raise InvalidAudioError(f"cannot decode {name}: {_reason(exc)}") from exc
    return out.getvalue()


def _decoded_size(frames: int, orig_sr: int, channels: int, *, more: bool = False) -> str:
    side = "channel" if channels == 1 else "channels"
    at_least = "more than " if more else ""
    return (
        f"audio is {at_least}{frames / orig_sr:.2f} s at {orig_sr} Hz x {channels} {side}: "
        f"{at_least}{frames * channels} samples to decode"
    )


class _SequentialFile(sf.SoundFile):
    """A SoundFile read front to back only.

    After each read soundfile seeks to where it computed the read ended; libsndfile's
    FLAC decoder refuses that seek at the end of a stream that does not say its length
    (STREAMINFO of 0 samples), which lost the last block. libsndfile keeps its own read
    position, so nothing needs the seek.
    """

    def seekable(self) -> bool:
        return False


@dataclass
class _Decoded:
    caller: np.ndarray
    other: np.ndarray | None
    frames: int
    non_finite: int
    too_loud: int


def _decode(
    snd: sf.SoundFile,
    cap: int,
    caller_channel: str,
    orig_sr: int,
    sr: int,
    frames: int | None,
) -> _Decoded:
    """Decode at most ``cap`` frames block by block, resampling each block as it comes.

    ``frames`` (the header's length, None when unknown) only sizes the output.
    """
    channels = snd.channels
    expected = min(frames, cap) if frames is not None else None
    caller = _Resampler(orig_sr, sr, expected)
    other = _Resampler(orig_sr, sr, expected) if caller_channel != "mix" else None
    idx = {"left": 0, "right": 1}.get(caller_channel, 0)
    block = np.empty((min(BLOCK_FRAMES, cap), channels), dtype=np.float32)
    n = non_finite = too_loud = 0
    while n < cap:
        data = snd.read(out=block[: min(len(block), cap - n)])
        got = data.shape[0]
        if got == 0:
            break
        n += got
        # The sum is finite for every block of finite samples within MAX_SAMPLE_VALUE:
        # one reduction per block instead of a mask, and a mask only when it is not.
        total = float(np.abs(data).sum(dtype=np.float64))
        if not math.isfinite(total) or total > MAX_SAMPLE_VALUE:
            finite = np.isfinite(data)
            non_finite += int(data.size - np.count_nonzero(finite))
            too_loud += int(np.count_nonzero(np.abs(np.where(finite, data, 0)) > MAX_SAMPLE_VALUE))
        if other is not None:
            caller.push(data[:, idx])
            other.push(data[:, 1 - idx])
        elif channels == 1:
            caller.push(data[:, 0])
        else:
            caller.push(data.mean(axis=1, dtype=np.float32))
        if got < len(block):  # a short read is the end of the stream
            break
    return _Decoded(
        caller=caller.finish(),
        other=None if other is None else other.finish(),
        frames=n,
        non_finite=non_finite,
        too_loud=too_loud,
    )


class _Resampler:
    """``resample_poly(x, up, down)`` of a signal that arrives in blocks, sample for
    sample: each output is computed once, from the same inputs in the same order as on
    the whole signal, and only the filter's span of input is kept between blocks.

    Parameters
    ----------
    orig_sr, sr : int
        Input and output rates.
    expected : int or None
        Input frames the header announces: the output is allocated once at its size.
    """

    def __init__(self, orig_sr: int, sr: int, expected: int | None) -> None:
        self.up, self.down = _ratio(orig_sr, sr)
        self.n_in = 0
        self._parts: list[np.ndarray] = []
        self._out: np.ndarray | None = None
        self._filled = 0
        if expected is not None and expected > 0:
            self._out = np.empty(self._out_len(expected), dtype=np.float32)
        if self.up == self.down:
            return
        # The filter of scipy.signal.resample_poly (scipy 1.17), in its dtype and order.
        max_rate = max(self.up, self.down)
        half_len = 10 * max_rate
        h = firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0))
        h = np.asarray(h, dtype=np.float32)
        h *= self.up
        n_pre_pad = self.down - half_len % self.down
        self.h = np.concatenate((np.zeros(n_pre_pad, dtype=h.dtype), h))
        self.n_pre_remove = (half_len + n_pre_pad) // self.down
        # Inputs one output depends on: upfirdn's taps per phase.
        self.span = -(-len(self.h) // self.up)
        self.buf = np.zeros(0, dtype=np.float32)
        self.buf_start = 0  # input index of buf[0], a multiple of down
        self.next_j = self.n_pre_remove  # upfirdn index of the next output to give

    def _out_len(self, n_in: int) -> int:
        return -(-n_in * self.up // self.down)

    def push(self, x: np.ndarray) -> None:
        """Take the next block of input (float32, shape (k,))."""
        self.n_in += x.shape[0]
        if self.up == self.down:
            self._emit(x)
            return
        self.buf = np.concatenate((self.buf, x.astype(np.float32, copy=False)))
        # Outputs whose newest input has arrived: upfirdn output j reads inputs up to
        # floor(j * down / up).
        self._produce((self.n_in * self.up - 1) // self.down + 1, final=False)

    def finish(self) -> np.ndarray:
        """The whole output, float32 contiguous of length ceil(n_in * up / down)."""
        if self.up != self.down:
            self._produce(self.n_pre_remove + self._out_len(self.n_in), final=True)
        if self._out is not None and not self._parts:
            if self._filled == len(self._out):
                return self._out
            return self._out[: self._filled].copy()  # the header promised more
        parts = ([self._out[: self._filled]] if self._out is not None else []) + self._parts
        if len(parts) == 1:
            return np.ascontiguousarray(parts[0])
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    def _produce(self, j_end: int, *, final: bool) -> None:
        if j_end <= self.next_j:
            return
        # Start the slice at a multiple of down, so that its outputs fall on the same
        # filter phases as the whole signal's.
        lo = max(0, self.next_j * self.down // self.up - self.span + 1)
        s = lo // self.down * self.down
        local = upfirdn(self.h, self.buf[s - self.buf_start :], self.up, self.down)
        off = s * self.up // self.down
        y = local[self.next_j - off : j_end - off]
        if final and y.shape[0] < j_end - self.next_j:  # past the input: zeros
            y = np.concatenate((y, np.zeros(j_end - self.next_j - y.shape[0], np.float32)))
        self._emit(y)
        self.next_j = j_end
        lo = max(0, self.next_j * self.down // self.up - self.span + 1)
        keep = lo // self.down * self.down
        if keep > self.buf_start:
            self.buf = self.buf[keep - self.buf_start :].copy()
            self.buf_start = keep

    def _emit(self, y: np.ndarray) -> None:
        out = self._out
        if out is not None and not self._parts and self._filled + y.shape[0] <= len(out):
            out[self._filled : self._filled + y.shape[0]] = y
            self._filled += y.shape[0]
        else:  # no length announced, or more than announced; y may be a reused buffer
            self._parts.append(np.array(y, dtype=np.float32))


def _ratio(orig_sr: int, sr: int) -> tuple[int, int]:
    """(up, down) with up / down = sr / orig_sr, terms at most _MAX_RATIO_TERM."""
    exact = Fraction(sr, orig_sr)
    if max(exact.numerator, exact.denominator) <= _MAX_RATIO_TERM:
        return exact.numerator, exact.denominator
    near = exact.limit_denominator(_MAX_RATIO_TERM)
    if near.numerator > _MAX_RATIO_TERM:  # upsampling by an odd ratio
        near = 1 / (1 / exact).limit_denominator(_MAX_RATIO_TERM)
    return near.numerator, near.denominator


def _check_params(
    sr: int,
    caller_channel: str,
    min_duration_s: float,
    max_duration_s: float,
    max_samples: int | None,
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
    if max_samples is not None and (
        isinstance(max_samples, bool)
        or not isinstance(max_samples, int | np.integer)
        or max_samples < 1
    ):
        raise InvalidParameterError(f"max_samples must be an int >= 1 or None; got {max_samples!r}")


def _open_sound(source: str | os.PathLike[str] | bytes | BinaryIO) -> tuple[_SequentialFile, str]:
    """The source opened for reading front to back, and its name for messages."""
    stream, name = _open_source(source)
    start = _tell(stream)
    try:
        return _SequentialFile(stream), name
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError) as exc:
        # libsndfile refuses some headers it could describe (a rate of 0, 0 or 65,535
        # channels) with an internal reason: say what is wrong with the file instead.
        _check_wav_fmt(_head(stream, start), name)
        raise InvalidAudioError(f"cannot decode {name}: {_reason(exc)}") from exc


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
    _check_rate(name, orig_sr)
    # More than two channels is not a call recording (caller + call-taker); averaging
    # unknown channels would silently blend sides, so refuse instead of guessing.
    _check_channels(name, channels)
    if caller_channel != "mix" and channels != 2:
        raise InvalidParameterError(
            f"caller_channel={caller_channel!r} needs a stereo file; {name} has 1 channel"
        )
    if frames <= 0:
        raise InvalidAudioError(f"{name} has no audio frames; expected at least one")


def _check_rate(name: str, rate: int) -> None:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise UnsupportedAudioError(
            f"{name} is sampled at {rate} Hz; expected at least {MIN_SAMPLE_RATE} Hz and at "
            f"most {MAX_SAMPLE_RATE} Hz"
        )


def _check_channels(name: str, channels: int) -> None:
    # More than two channels is not a call recording (caller + call-taker); averaging
    # unknown channels would silently blend sides, so refuse instead of guessing.
    if channels not in (1, 2):
        raise UnsupportedAudioError(
            f"{name} has {channels} channels; expected 1 (mono) or 2 (stereo)"
        )


def _tell(stream: str | BinaryIO) -> int:
    try:
        return 0 if isinstance(stream, str) else stream.tell()
    except (OSError, ValueError):
        return 0


def _head(stream: str | BinaryIO, start: int, size: int = 4096) -> bytes:
    """The first ``size`` bytes of the source, or b"" when they cannot be read."""
    try:
        if isinstance(stream, str):
            with open(stream, "rb") as fh:
                return fh.read(size)
        stream.seek(start)
        return stream.read(size)
    except (OSError, ValueError):
        return b""


def _check_wav_fmt(head: bytes, name: str) -> None:
    """Name the rate or channel count of a RIFF/WAVE 'fmt ' chunk libsndfile refused."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    pos = 12
    while pos + 8 <= len(head):
        chunk, size = head[pos : pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        if chunk == b"fmt " and pos + 16 <= len(head):
            channels, rate = struct.unpack_from("<HI", head, pos + 10)
            _check_channels(name, channels)
            _check_rate(name, rate)
            return
        pos += 8 + size + (size & 1)


#: libsndfile's reasons that mislead where the file was found and opened.
_MISLEADING = {
    # mpg123 refusing an MP3 that ends within its first frames.
    "File does not exist or is not a regular file (possibly a pipe?).": (
        "the stream is truncated or corrupt before its first complete audio frames"
    ),
}


def _reason(exc: BaseException) -> str:
    msg = str(exc).strip()
    # libsndfile prefixes "Error opening <object at 0x..>:"; keep only the reason.
    if ": " in msg:
        msg = msg.rsplit(": ", 1)[-1]
    return _MISLEADING.get(msg, msg) or type(exc).__name__
