"""A corpus of malformed, hostile and borderline audio files, made on the fly.

Each :class:`Kind` is one way an upload can go wrong (or nearly wrong): truncated and
lying headers, wrong magic, rates and channel counts out of range, NaN samples,
decompression bombs in FLAC and Ogg/Opus, containers and codecs callsift does not take,
and the valid encodings beside them (telephone codecs and MP3 included). Each says what
the upload path must answer: a clear 4xx naming the problem, or 200. Never a 5xx.

The bombs are written by hand (FLAC frames of CONSTANT subframes, Ogg pages of empty
Opus frames): a few tens of kB that decode to hours of audio, made in milliseconds.

``python -m tests.malformed_audio OUT_DIR`` writes every kind to ``OUT_DIR`` (one file
each, plus ``expected.csv``) to try them against a running server by hand.

The expectations assume the limits of :data:`LIMITS` (the corpus test's settings).
"""

from __future__ import annotations

import csv
import io
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

#: Settings the expectations are written for (``api.settings.Settings`` field names).
LIMITS: dict[str, Any] = {
    "max_audio_seconds": 20.0,
    "min_audio_seconds": 0.25,
    # 16.7 s of 48 kHz stereo, 8.3 s of 192 kHz mono.
    "max_audio_samples": 1_600_000,
    "max_audio_bytes": 4 * 2**20,
}


@dataclass(frozen=True)
class Kind:
    """One kind of upload and what the service must answer.

    Attributes
    ----------
    name : str
    make : callable
        Returns the file's bytes.
    status : int
        Expected HTTP status of ``POST /v1/calls/{id}/audio``.
    message : str
        Substring of the answer's ``detail`` (empty for 200).
    """

    name: str
    make: Callable[[], bytes]
    status: int
    message: str = ""


# --- building blocks ----------------------------------------------------------------------


def _signal(seconds: float, sr: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Seeded line noise plus a 440 Hz tone, float64, shape (n,) or (n, channels)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    mono = 0.05 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * 440.0 * t)
    return np.stack([mono] * channels, axis=1) if channels > 1 else mono


def encode(
    seconds: float = 1.0,
    sr: int = 8000,
    *,
    channels: int = 1,
    fmt: str = "WAV",
    subtype: str | None = "PCM_16",
    data: np.ndarray | None = None,
) -> bytes:
    """``seconds`` of :func:`_signal` (or ``data``) written by libsndfile."""
    y = _signal(seconds, sr, channels) if data is None else data
    out = io.BytesIO()
    sf.write(out, y, sr, format=fmt, subtype=subtype)
    return out.getvalue()


def wav_bytes(
    *,
    sr: int = 8000,
    channels: int = 1,
    bits: int = 16,
    tag: int = 1,
    data: bytes | None = None,
    data_len: int | None = None,
    riff_len: int | None = None,
    block_align: int | None = None,
) -> bytes:
    """A canonical 44-byte RIFF/WAVE header with any field set by hand, then ``data``
    (1 s of zeros at 16-bit mono 8 kHz by default)."""
    payload = bytes(16000) if data is None else data
    align = channels * bits // 8 if block_align is None else block_align
    fmt = struct.pack(
        "<HHIIHH", tag, channels, sr & 0xFFFFFFFF, (sr * align) & 0xFFFFFFFF, align & 0xFFFF, bits
    )
    size = len(payload) if data_len is None else data_len
    riff = 4 + 8 + len(fmt) + 8 + size if riff_len is None else riff_len
    return (
        b"RIFF"
        + struct.pack("<I", riff & 0xFFFFFFFF)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", size & 0xFFFFFFFF)
        + payload
    )


def float_wav(values: list[float], seconds: float = 1.0, subtype: str = "FLOAT") -> bytes:
    """A float WAV of a quiet tone with ``values`` written over its first samples."""
    y = _signal(seconds, 8000)
    y[: len(values)] = values
    return encode(data=y, subtype=subtype)


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _table(poly: int, width: int) -> list[int]:
    top, mask = 1 << (width - 1), (1 << width) - 1
    table = []
    for i in range(256):
        c = i << (width - 8)
        for _ in range(8):
            c = ((c << 1) ^ poly) & mask if c & top else (c << 1) & mask
        table.append(c)
    return table


_CRC16 = _table(0x8005, 16)
_CRC32 = _table(0x04C11DB7, 32)


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[((crc >> 8) ^ byte) & 0xFF]
    return crc


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC32[((crc >> 24) ^ byte) & 0xFF]
    return crc


def _utf8_number(n: int) -> bytes:
    """FLAC's UTF-8-like coding of a frame number (up to 2^21 - 1 here)."""
    if n < 0x80:
        return bytes([n])
    if n < 0x800:
        return bytes([0xC0 | (n >> 6), 0x80 | (n & 0x3F)])
    if n < 0x10000:
        return bytes([0xE0 | (n >> 12), 0x80 | ((n >> 6) & 0x3F), 0x80 | (n & 0x3F)])
    return bytes(
        [0xF0 | (n >> 18), 0x80 | ((n >> 12) & 0x3F), 0x80 | ((n >> 6) & 0x3F), 0x80 | (n & 0x3F)]
    )


def flac_constant(
    sr: int,
    channels: int,
    frames: int,
    *,
    total: int | None = None,
    block: int = 65535,
    value: int = 0,
) -> bytes:
    """A FLAC stream of ``frames`` frames of one constant 16-bit value.

    Each block of up to 65,535 frames is a CONSTANT subframe per channel: about 14 bytes,
    so 1,790 s at 192 kHz is 77 kB. ``total`` is what STREAMINFO claims (0: unknown,
    as a streamed FLAC may say); by default the truth.
    """
    claimed = frames if total is None else total
    info = struct.pack(">HH", block, block) + bytes(6)  # block sizes; frame sizes unknown
    packed = (sr << 44) | ((channels - 1) << 41) | (15 << 36) | claimed
    info += packed.to_bytes(8, "big") + bytes(16)  # rate, channels, 16 bit, total; no MD5
    out = [b"fLaC", bytes([0x80]) + len(info).to_bytes(3, "big") + info]
    sub = b"\x00" + struct.pack(">h", value)  # CONSTANT subframe, no wasted bits
    done = number = 0
    while done < frames:
        size = min(block, frames - done)
        header = bytes([0xFF, 0xF8, 0x70, (channels - 1) << 4]) + _utf8_number(number)
        header += struct.pack(">H", size - 1)
        frame = header + bytes([_crc8(header)]) + sub * channels
        out.append(frame + struct.pack(">H", _crc16(frame)))
        done += size
        number += 1
    return b"".join(out)


def _ogg_page(
    packets: list[bytes],
    *,
    granule: int,
    serial: int,
    seq: int,
    bos: bool = False,
    eos: bool = False,
) -> bytes:
    lacing: list[int] = []
    for packet in packets:
        lacing += [255] * (len(packet) // 255) + [len(packet) % 255]
    flags = (2 if bos else 0) | (4 if eos else 0)
    head = b"OggS" + bytes([0, flags]) + struct.pack("<qIII", granule, serial, seq, 0)
    page = head + bytes([len(lacing)]) + bytes(lacing) + b"".join(packets)
    return page[:22] + struct.pack("<I", _ogg_crc(page)) + page[26:]


def opus_silence(
    seconds: float,
    *,
    channels: int = 1,
    claim_s: float | None = None,
    audio_pages: bool = True,
    per_page: int = 255,
) -> bytes:
    """Ogg/Opus of packets of six empty 20 ms frames: 2 bytes per 120 ms of 48 kHz audio,
    ``per_page`` packets a page (1 h is 93 kB). ``claim_s`` rewrites the last page's
    granule position, the length a reader takes from the container. libsndfile refuses
    a stream of one audio page: keep ``seconds`` above 0.12 x ``per_page``."""
    pre_skip, serial = 312, 0x5EED
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, 48000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 8) + b"callsift" + struct.pack("<I", 0)
    pages = [
        _ogg_page([head], granule=0, serial=serial, seq=0, bos=True),
        _ogg_page([tags], granule=0, serial=serial, seq=1, eos=not audio_pages),
    ]
    if not audio_pages:
        return b"".join(pages)
    toc = (1 << 3) | (0x04 if channels == 2 else 0) | 3  # SILK NB 20 ms, code 3
    packet = bytes([toc, 6])  # six frames, constant size: 0 bytes each
    n_packets = int(np.ceil(seconds / 0.12))
    done, seq = 0, 2
    while done < n_packets:
        k = min(per_page, n_packets - done)
        done += k
        last = done == n_packets
        granule = done * 5760 + pre_skip
        if last and claim_s is not None:
            granule = int(claim_s * 48000) + pre_skip
        pages.append(_ogg_page([packet] * k, granule=granule, serial=serial, seq=seq, eos=last))
        seq += 1
    return b"".join(pages)


def _noise(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _patch(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new) :]


# --- the corpus ---------------------------------------------------------------------------

_RANGE = "expected at least 8000 Hz and at most 384000 Hz"
_WAV = wav_bytes()
_FLAC = encode(1.0, fmt="FLAC")
_OPUS = encode(1.0, 48000, fmt="OGG", subtype="OPUS")

KINDS: list[Kind] = [
    # Not audio at all.
    Kind("empty file", lambda: b"", 422, "empty input"),
    Kind("over the upload limit", lambda: bytes(4 * 2**20 + 1), 413, "larger than 4194304 bytes"),
    Kind("one byte", lambda: b"\x00", 422, "cannot decode"),
    Kind("text file", lambda: b"this is a call recording, honest\n" * 40, 422, "cannot decode"),
    Kind("json", lambda: b'{"call_id": "c-1", "audio": null}', 422, "cannot decode"),
    Kind("html", lambda: b"<!doctype html><html><body>404</body></html>", 422, "cannot decode"),
    Kind("random bytes", lambda: _noise(4096), 422, "cannot decode"),
    Kind("zeros", lambda: bytes(4096), 422, "cannot decode"),
    # Wrong or broken magic, truncated headers.
    Kind("RIFF magic then noise", lambda: b"RIFF" + _noise(4096, 1), 422, "cannot decode"),
    Kind("RIFF only", lambda: b"RIFF", 422, "cannot decode"),
    Kind("WAV header cut at 12 bytes", lambda: _WAV[:12], 422, "cannot decode"),
    Kind("WAV header cut in fmt", lambda: _WAV[:30], 422, "cannot decode"),
    Kind("WAV header cut before data size", lambda: _WAV[:40], 422, "cannot decode"),
    Kind("WAVE id wrong", lambda: _patch(_WAV, 8, b"WAVX"), 422, "cannot decode"),
    Kind("fmt chunk id wrong", lambda: _patch(_WAV, 12, b"fmtX"), 422, "cannot decode"),
    Kind("fLaC magic then noise", lambda: b"fLaC" + _noise(4096, 2), 422, "cannot decode"),
    Kind("FLAC magic wrong", lambda: _patch(_FLAC, 0, b"fLaX"), 422, "cannot decode"),
    Kind("FLAC cut in STREAMINFO", lambda: _FLAC[:20], 422, "cannot decode"),
    Kind("OggS magic then noise", lambda: b"OggS" + _noise(4096, 3), 422, "cannot decode"),
    Kind("Ogg cut in first page", lambda: _OPUS[:40], 422, "cannot decode"),
    # Headers that lie about the rate, the channels or the size.
    Kind("rate 2^31-1", lambda: wav_bytes(sr=2**31 - 1), 415, "2147483647 Hz; " + _RANGE),
    Kind("rate 2^32-1", lambda: wav_bytes(sr=2**32 - 1), 415, "Hz; " + _RANGE),
    Kind("rate 384001", lambda: wav_bytes(sr=384001, data=bytes(384002 * 2)), 415, _RANGE),
    Kind("rate 7999", lambda: wav_bytes(sr=7999), 415, "7999 Hz; " + _RANGE),
    Kind("rate 1", lambda: wav_bytes(sr=1), 415, "sampled at 1 Hz; " + _RANGE),
    Kind("rate 0", lambda: wav_bytes(sr=0), 415, "sampled at 0 Hz; " + _RANGE),
    Kind("FLAC rate 1 MHz", lambda: flac_constant(1_000_000, 1, 500_000), 415, "1000000 Hz"),
    Kind("channels 0", lambda: wav_bytes(channels=0, block_align=2), 415, "has 0 channels"),
    Kind("channels 3", lambda: wav_bytes(channels=3, data=bytes(48000)), 415, "has 3 channels"),
    Kind("channels 64", lambda: wav_bytes(channels=64, data=bytes(128 * 4000)), 415, "64 ch"),
    Kind("channels 65535", lambda: wav_bytes(channels=65535), 415, "65535 channels"),
    Kind("FLAC 8 channels", lambda: flac_constant(8000, 8, 8000), 415, "has 8 channels"),
    Kind("bits 0", lambda: wav_bytes(bits=0, block_align=2), 422, "cannot decode"),
    Kind("bits 64 integer", lambda: wav_bytes(bits=64), 422, "cannot decode"),
    Kind("unknown format tag", lambda: wav_bytes(tag=0x1234), 422, "cannot decode"),
    Kind("float tag with 16 bits", lambda: wav_bytes(tag=3), 422, "cannot decode"),
    Kind("data size past the end", lambda: wav_bytes(data_len=10**9), 200),
    Kind("data size 0xFFFFFFFF", lambda: wav_bytes(data_len=0xFFFFFFFF), 200),
    Kind("RIFF size 0", lambda: wav_bytes(riff_len=0), 200),
    Kind("data size odd", lambda: wav_bytes(data=bytes(16001)), 200),
    Kind("data size 0", lambda: wav_bytes(data=b""), 422, "no audio frames"),
    Kind("header only, no data chunk", lambda: _WAV[:36], 422, "cannot decode"),
    Kind("FLAC claims 10^9 frames, has 1 s", lambda: _flac_claims(10**9), 422, "at most 20 s"),
    Kind("FLAC truncated mid-stream", lambda: _FLAC[: len(_FLAC) // 2], 422, "cannot decode"),
    Kind("FLAC no frames", lambda: flac_constant(8000, 1, 0, total=0), 422, "no audio frames"),
    Kind("Ogg/Opus headers only", lambda: opus_silence(0, audio_pages=False), 422, "cannot decode"),
    Kind(
        "Ogg/Opus last page claims 10 h",
        lambda: opus_silence(3, claim_s=36000, per_page=10),
        422,
        "s long; expected at most 20 s",
    ),
    Kind("Ogg/Opus last page claims 2 s of 60", lambda: opus_silence(60, claim_s=2.0), 200),
    # Decompression bombs: a few kB that decode to hours.
    Kind(
        "FLAC bomb 1790 s at 192 kHz",
        lambda: flac_constant(192000, 1, 1790 * 192000),
        422,
        "1790.00 s long",
    ),
    Kind("FLAC bomb 15 s at 192 kHz", lambda: flac_constant(192000, 1, 15 * 192000), 422, "192000"),
    Kind("FLAC bomb 384 kHz stereo", lambda: flac_constant(384000, 2, 6 * 384000), 422, "384000"),
    Kind(
        "FLAC bomb of unknown length",
        lambda: flac_constant(48000, 1, 3600 * 48000, total=0),
        422,
        "longer than 20",
    ),
    Kind("FLAC unknown length, 2 s", lambda: flac_constant(8000, 1, 16000, total=0), 200),
    Kind("Ogg/Opus bomb 1 h", lambda: opus_silence(3600), 422, "at most 20 s"),
    Kind("Ogg/Opus stereo 15 s", lambda: opus_silence(15, channels=2, per_page=50), 200),
    Kind(
        "Ogg/Opus stereo over the budget",
        lambda: opus_silence(19, channels=2, per_page=50),
        422,
        "s at 48000 Hz x 2 channels: 1831056 samples to decode; expected at most 1600000",
    ),
    # Samples a decoder gives back but no recording has.
    Kind("float NaN", lambda: float_wav([np.nan]), 422, "1 NaN or infinite samples"),
    Kind("float +Inf and -Inf", lambda: float_wav([np.inf, -np.inf]), 422, "2 NaN or infinite"),
    Kind("double NaN", lambda: float_wav([np.nan] * 3, subtype="DOUBLE"), 422, "3 NaN"),
    Kind("float 1e30", lambda: float_wav([1e30] * 100), 422, "full scale"),
    Kind("float all 3e38", lambda: float_wav([3e38] * 8000), 422, "full scale"),
    Kind("float 1.5 (over full scale)", lambda: float_wav([1.5] * 100), 200),
    Kind("float denormals", lambda: encode(data=np.full(8000, 1e-40), subtype="FLOAT"), 200),
    # Lengths at and past the limits.
    Kind("0.1 s", lambda: encode(0.1), 422, "expected at least 0.25 s"),
    Kind("one frame", lambda: encode(data=np.zeros(1)), 422, "expected at least"),
    Kind("25 s mu-law", lambda: encode(25.0, subtype="ULAW"), 422, "expected at most 20 s"),
    Kind("20 s at 8 kHz", lambda: encode(19.99, subtype="ULAW"), 200),
    # Encodings and containers callsift does not take.
    Kind("CAF", lambda: encode(fmt="CAF"), 415, "is CAF"),
    Kind("NIST SPHERE", lambda: encode(fmt="NIST"), 415, "is NIST"),
    Kind("VOC", lambda: encode(fmt="VOC", subtype="PCM_16"), 415, "is VOC"),
    Kind("WAV NMS ADPCM", lambda: encode(subtype="NMS_ADPCM_16"), 415, "NMS_ADPCM_16"),
    # What call recorders and switches export besides WAV PCM and G.711.
    Kind("AIFF", lambda: encode(fmt="AIFF"), 200),
    Kind("AIFF mu-law", lambda: encode(fmt="AIFF", subtype="ULAW"), 200),
    Kind("AU mu-law", lambda: encode(fmt="AU", subtype="ULAW"), 200),
    Kind("AU G.723 24 kbit/s", lambda: encode(fmt="AU", subtype="G723_24"), 200),
    Kind("W64", lambda: encode(fmt="W64"), 200),
    Kind("RF64", lambda: encode(fmt="RF64"), 200),
    Kind("MP3", lambda: encode(fmt="MP3", subtype="MPEG_LAYER_III"), 200),
    Kind(
        "MP3 44.1 kHz stereo",
        lambda: encode(2.0, 44100, channels=2, fmt="MP3", subtype="MPEG_LAYER_III"),
        200,
    ),
    Kind(
        "MP3 cut mid-stream", lambda: encode(3.0, fmt="MP3", subtype="MPEG_LAYER_III")[:2500], 200
    ),
    Kind(
        "MP3 cut in its first frames",
        lambda: encode(3.0, fmt="MP3", subtype="MPEG_LAYER_III")[:700],
        422,
        "truncated or corrupt before its first complete audio frames",
    ),
    Kind(
        "MP3 header only",
        lambda: encode(3.0, fmt="MP3", subtype="MPEG_LAYER_III")[:40],
        422,
        "cannot decode audio bytes: the stream is truncated",
    ),
    Kind(
        "MP3 over the length limit",
        lambda: encode(25.0, fmt="MP3", subtype="MPEG_LAYER_III"),
        422,
        "expected at most 20 s",
    ),
    Kind("WAV IMA ADPCM", lambda: encode(subtype="IMA_ADPCM"), 200),
    Kind("WAV MS ADPCM", lambda: encode(subtype="MS_ADPCM"), 200),
    Kind("WAV GSM 6.10", lambda: encode(subtype="GSM610"), 200),
    Kind("WAV GSM 6.10 truncated", lambda: encode(3.0, subtype="GSM610")[:900], 200),
    Kind("WAV G.721", lambda: encode(subtype="G721_32"), 200),
    # What callsift takes, at the edges.
    Kind("WAV PCM 16", lambda: encode(), 200),
    Kind("WAV PCM 24", lambda: encode(subtype="PCM_24"), 200),
    Kind("WAV PCM 32", lambda: encode(subtype="PCM_32"), 200),
    Kind("WAV PCM U8", lambda: encode(subtype="PCM_U8"), 200),
    Kind("WAV float", lambda: encode(subtype="FLOAT"), 200),
    Kind("WAV double", lambda: encode(subtype="DOUBLE"), 200),
    Kind("WAV mu-law", lambda: encode(subtype="ULAW"), 200),
    Kind("WAV A-law", lambda: encode(subtype="ALAW"), 200),
    Kind("WAVEX PCM 16", lambda: encode(fmt="WAVEX"), 200),
    Kind("FLAC 16", lambda: encode(fmt="FLAC"), 200),
    Kind("FLAC 24 at 96 kHz", lambda: encode(1.0, 96000, fmt="FLAC", subtype="PCM_24"), 200),
    Kind("FLAC 8", lambda: encode(fmt="FLAC", subtype="PCM_S8"), 200),
    Kind("Ogg Vorbis", lambda: encode(fmt="OGG", subtype="VORBIS"), 200),
    Kind("Ogg Opus 48 kHz", lambda: _OPUS, 200),
    Kind("Ogg Opus stereo", lambda: encode(1.0, 16000, channels=2, fmt="OGG", subtype="OPUS"), 200),
    Kind("rate 384000", lambda: encode(0.5, 384000), 200),
    Kind("rate 383999 (odd)", lambda: encode(0.5, 383999), 200),
    Kind("rate 44100 stereo", lambda: encode(1.0, 44100, channels=2), 200),
    Kind("rate 8001", lambda: encode(1.0, 8001), 200),
    Kind("stereo 8 s at 96 kHz", lambda: encode(8.0, 96000, channels=2, subtype="ULAW"), 200),
]


def _flac_claims(total: int) -> bytes:
    return flac_constant(8000, 1, 8000, total=total)


def by_name() -> dict[str, Kind]:
    return {kind.name: kind for kind in KINDS}


def write_corpus(folder: Path) -> None:
    """Every kind as a file in ``folder``, with ``expected.csv``."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "expected.csv").open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["file", "status", "message"])
        for i, kind in enumerate(KINDS):
            name = f"{i:03d}_" + "".join(c if c.isalnum() else "_" for c in kind.name)
            (folder / name).write_bytes(kind.make())
            out.writerow([name, kind.status, kind.message])


if __name__ == "__main__":
    write_corpus(Path(sys.argv[1] if len(sys.argv) > 1 else "malformed-audio"))
