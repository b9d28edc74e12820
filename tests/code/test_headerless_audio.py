"""Headerless telephone audio (G.711, 16-bit PCM) wrapped in a WAV header, unchanged."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from classifier.audio import headerless_wav, load_audio
from classifier.errors import InvalidAudioError, InvalidParameterError


def _samples(n: int, *, seed: int = 0, channels: int = 1) -> np.ndarray:
    """Seeded speech-level noise as int16, shape (n, channels)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, channels)) * 3000).clip(-32768, 32767).astype(np.int16)


def _encoded(x: np.ndarray, subtype: str) -> bytes:
    """``x`` in ``subtype`` without a header, as libsndfile writes it (interleaved)."""
    out = io.BytesIO()
    sf.write(out, x, 8000, format="RAW", subtype=subtype)
    return out.getvalue()


@pytest.mark.parametrize("subtype", ["ULAW", "ALAW"])
@pytest.mark.parametrize("channels", [1, 2])
def test_g711_keeps_every_code(subtype: str, channels: int) -> None:
    codes = _encoded(_samples(8001, channels=channels), subtype)
    wav = headerless_wav(codes, encoding=subtype, sample_rate=8000, channels=channels)
    info = sf.info(io.BytesIO(wav))
    assert (info.format, info.subtype, info.channels, info.frames) == (
        "WAV",
        subtype,
        channels,
        8001,
    )
    # The same decoded samples as the headerless codes read with their parameters.
    expected, _ = sf.read(
        io.BytesIO(codes), format="RAW", subtype=subtype, samplerate=8000, channels=channels
    )
    got, _ = sf.read(io.BytesIO(wav))
    np.testing.assert_array_equal(got, expected)


def test_big_endian_pcm16_is_swapped_to_the_same_samples() -> None:
    x = _samples(16_000, seed=1, channels=2)
    wav = headerless_wav(
        x.astype(">i2").tobytes(),
        encoding="PCM_16",
        sample_rate=16_000,
        channels=2,
        big_endian=True,
    )
    got, sr = sf.read(io.BytesIO(wav), dtype="int16")
    assert sr == 16_000
    np.testing.assert_array_equal(got, x)
    little = headerless_wav(x.tobytes(), encoding="PCM_16", sample_rate=16_000, channels=2)
    np.testing.assert_array_equal(sf.read(io.BytesIO(little), dtype="int16")[0], x)


def test_scores_as_the_same_samples_in_a_wav() -> None:
    x = _samples(24_000, seed=2)
    codes = _encoded(x, "ULAW")
    from_raw = load_audio(headerless_wav(codes, encoding="ULAW", sample_rate=8000))
    out = io.BytesIO()
    sf.write(
        out,
        sf.read(io.BytesIO(codes), format="RAW", subtype="ULAW", samplerate=8000, channels=1)[0],
        8000,
        format="WAV",
        subtype="ULAW",
    )
    from_file = load_audio(out.getvalue())
    np.testing.assert_array_equal(from_raw.caller, from_file.caller)
    assert from_raw.duration_s == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"encoding": "GSM610"},
            "headerless encoding is 'GSM610'; expected one of ULAW, ALAW, PCM_16",
        ),
        ({"sample_rate": 4000}, "sample_rate is 4000 Hz; expected 8000 to 384000 Hz"),
        ({"sample_rate": 8000.0}, "sample_rate is 8000.0; expected an integer"),
        ({"sample_rate": True}, "sample_rate is True; expected an integer"),
        ({"channels": 3}, "channels is 3; expected 1 or 2"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"encoding": "ULAW", "sample_rate": 8000, **kwargs}
    with pytest.raises(InvalidParameterError) as info:
        headerless_wav(b"\x7f" * 800, **args)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_no_bytes_or_a_broken_frame_is_refused() -> None:
    with pytest.raises(InvalidAudioError, match="headerless audio has 0 bytes"):
        headerless_wav(b"", encoding="ULAW", sample_rate=8000)
    with pytest.raises(InvalidAudioError) as info:
        headerless_wav(b"\x01" * 1001, encoding="PCM_16", sample_rate=8000)
    assert "1001 bytes is not a whole number of 2-byte frames" in str(info.value)
    with pytest.raises(InvalidAudioError) as info:
        headerless_wav(b"\x01" * 801, encoding="ALAW", sample_rate=8000, channels=2)
    assert "801 bytes" in str(info.value) and "multiple of 2 bytes" in str(info.value)


@pytest.mark.parametrize(
    ("fmt", "subtype", "container"),
    [
        ("WAV", "PCM_16", "WAV"),
        ("FLAC", "PCM_16", "FLAC"),
        ("OGG", "VORBIS", "Ogg"),
        ("AU", "ULAW", "AU"),
        ("AIFF", "PCM_16", "AIFF"),
    ],
)
def test_a_file_sent_as_headerless_audio_is_named(fmt: str, subtype: str, container: str) -> None:
    out = io.BytesIO()
    sf.write(out, _samples(8000, seed=3), 8000, format=fmt, subtype=subtype)
    with pytest.raises(InvalidAudioError) as info:
        headerless_wav(out.getvalue(), encoding="ULAW", sample_rate=8000)
    assert f"starts with a {container} header" in str(info.value)
