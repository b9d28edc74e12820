"""Tests for classifier.audio.load_audio: formats, resampling, channels, validation."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import chirp

from classifier.audio import TARGET_SR, CallAudio, load_audio, pcm16_wav
from classifier.errors import (
    AudioTooLongError,
    AudioTooShortError,
    CallsiftError,
    InvalidAudioError,
    InvalidParameterError,
    UnsupportedAudioError,
)


def tone(sr: int, seconds: float = 1.0, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def encode(x: np.ndarray, sr: int, fmt: str, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def snr_db(ref: np.ndarray, test: np.ndarray) -> float:
    n = min(len(ref), len(test))
    err = ref[:n] - test[:n]
    return float(10 * np.log10(np.sum(ref[:n] ** 2) / max(np.sum(err**2), 1e-20)))


@pytest.mark.parametrize(
    ("fmt", "subtype", "min_snr"),
    [
        ("WAV", "PCM_16", 80.0),
        ("WAV", "PCM_24", 120.0),
        ("WAV", "PCM_32", 120.0),
        ("WAV", "PCM_U8", 30.0),  # 8-bit: ~34 dB for this tone
        ("WAV", "FLOAT", 140.0),
        ("WAV", "DOUBLE", 140.0),
        ("WAV", "ULAW", 30.0),
        ("WAV", "ALAW", 30.0),
        ("FLAC", "PCM_16", 80.0),
        ("OGG", "VORBIS", 10.0),
    ],
)
def test_round_trip_every_format(fmt: str, subtype: str, min_snr: float) -> None:
    x = tone(8000, 1.0, 440.0)
    out = load_audio(encode(x, 8000, fmt, subtype))
    assert isinstance(out, CallAudio)
    assert out.caller.dtype == np.float32 and out.caller.ndim == 1
    assert out.caller.flags["C_CONTIGUOUS"]
    assert out.sr == TARGET_SR and out.other is None
    assert (out.original_format, out.original_subtype) == (fmt, subtype)
    assert out.original_sr == 8000 and out.original_channels == 1
    assert out.duration_s == pytest.approx(len(out.caller) / 8000)
    if fmt == "OGG":
        # Vorbis is lossy and adds encoder delay: compare spectra, not samples.
        assert abs(len(out.caller) - len(x)) < 0.01 * len(x)
        spec = np.abs(np.fft.rfft(out.caller[:8000]))
        assert np.argmax(spec) == pytest.approx(440, abs=2)
    else:
        assert len(out.caller) == len(x)
        assert snr_db(x, out.caller) > min_snr


@pytest.mark.parametrize("sr", [16000, 22050, 44100, 48000])
def test_higher_rates_resample_to_8k_with_same_content(sr: int) -> None:
    # 1 kHz tone plus a 3.0 kHz tone (kept) and a 5.5 kHz tone (above 4 kHz: must be removed,
    # not aliased down to 2.5 kHz).
    t = np.arange(sr) / sr
    x = (0.2 * np.sin(2 * np.pi * 1000 * t) + 0.1 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    alias = (0.2 * np.sin(2 * np.pi * 5500 * t)).astype(np.float32)
    hi = load_audio(encode(x + alias, sr, "WAV", "PCM_16"))
    lo = load_audio(
        encode(tone(8000, 1.0, 1000.0, 0.2) + tone(8000, 1.0, 3000.0, 0.1), 8000, "WAV", "PCM_16")
    )
    assert hi.sr == 8000 and hi.original_sr == sr
    assert len(hi.caller) == 8000
    mid = slice(500, 7500)  # away from the resampling filter's edge transients
    assert snr_db(lo.caller[mid], hi.caller[mid]) > 30.0
    spec = np.abs(np.fft.rfft(hi.caller[mid] * np.hanning(7000)))
    freqs = np.fft.rfftfreq(7000, 1 / 8000)
    alias_bin = np.argmin(np.abs(freqs - 2500))
    tone_bin = np.argmin(np.abs(freqs - 1000))
    assert 20 * np.log10(spec[alias_bin] / spec[tone_bin]) < -50


def test_stereo_channel_selection() -> None:
    left = tone(8000, 1.0, 500.0, 0.3)
    right = tone(8000, 1.0, 1500.0, 0.1)
    data = encode(np.stack([left, right], axis=1), 8000, "WAV", "PCM_16")

    mix = load_audio(data)
    assert mix.other is None and mix.original_channels == 2
    np.testing.assert_allclose(mix.caller, (left + right) / 2, atol=2e-4)

    a = load_audio(data, caller_channel="left")
    np.testing.assert_allclose(a.caller, left, atol=1e-4)
    assert a.other is not None
    np.testing.assert_allclose(a.other, right, atol=1e-4)

    b = load_audio(data, caller_channel="right")
    np.testing.assert_allclose(b.caller, right, atol=1e-4)
    assert b.other is not None
    np.testing.assert_allclose(b.other, left, atol=1e-4)


def test_stereo_channels_are_resampled_too() -> None:
    x = np.stack([tone(16000, 1.0, 500.0), tone(16000, 1.0, 700.0)], axis=1)
    out = load_audio(encode(x, 16000, "WAV", "PCM_16"), caller_channel="right")
    assert out.other is not None
    assert len(out.caller) == len(out.other) == 8000
    assert out.other.dtype == np.float32


def test_sources_path_pathlike_bytes_and_file_object(tmp_path: Path) -> None:
    x = tone(8000, 0.5)
    data = encode(x, 8000, "WAV", "PCM_16")
    p = tmp_path / "call.wav"
    p.write_bytes(data)
    outs = [
        load_audio(str(p)),
        load_audio(p),
        load_audio(data),
        load_audio(bytearray(data)),
        load_audio(io.BytesIO(data)),
    ]
    with open(p, "rb") as fh:
        outs.append(load_audio(fh))
    for o in outs:
        np.testing.assert_array_equal(o.caller, outs[0].caller)


def test_output_sr_can_be_asked() -> None:
    out = load_audio(encode(tone(48000), 48000, "WAV", "PCM_16"), sr=16000)
    assert out.sr == 16000 and len(out.caller) == 16000


# ------------------------------------------------------------------ validation errors
def test_empty_inputs(tmp_path: Path) -> None:
    with pytest.raises(InvalidAudioError, match="empty input: 0 bytes"):
        load_audio(b"")
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    with pytest.raises(InvalidAudioError, match="0 bytes"):
        load_audio(p)
    zero_frames = encode(np.zeros(0, np.float32), 8000, "WAV", "PCM_16")
    with pytest.raises(InvalidAudioError, match="no audio frames"):
        load_audio(zero_frames)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidAudioError, match="no such audio file"):
        load_audio(tmp_path / "nope.wav")


def test_too_short_message_states_expected_and_actual() -> None:
    data = encode(tone(8000, 0.1), 8000, "WAV", "PCM_16")
    with pytest.raises(
        AudioTooShortError, match=r"audio is 0\.10 s long; expected at least 0\.25 s"
    ):
        load_audio(data)
    assert len(load_audio(data, min_duration_s=0.05).caller) == 800


def test_too_long_is_rejected_from_the_header_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 2 h of 8 kHz mu-law (57.6 MB): decoding it would take far longer than the check.
    p = tmp_path / "long.wav"
    with sf.SoundFile(p, "w", samplerate=8000, channels=1, format="WAV", subtype="ULAW") as f:
        block = np.zeros(8000 * 600, np.float32)
        for _ in range(12):
            f.write(block)

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("the samples were decoded")

    with monkeypatch.context() as m:
        m.setattr(sf.SoundFile, "read", no_decoding)
        with pytest.raises(AudioTooLongError, match=r"7200\.00 s long; expected at most 1800 s"):
            load_audio(p)
    with pytest.raises(AudioTooLongError, match="expected at most 10 s"):
        load_audio(encode(tone(8000, 11.0), 8000, "WAV", "PCM_16"), max_duration_s=10.0)


def test_nan_and_inf_samples() -> None:
    x = tone(8000, 0.5)
    x[100] = np.nan
    x[200] = np.inf
    with pytest.raises(InvalidAudioError, match="2 NaN or infinite samples; expected finite"):
        load_audio(encode(x, 8000, "WAV", "FLOAT"))


def test_garbage_and_unsupported_formats() -> None:
    with pytest.raises(InvalidAudioError, match="cannot decode audio bytes"):
        load_audio(b"this is not audio at all" * 20)
    caf = encode(tone(8000), 8000, "CAF", "PCM_16")
    with pytest.raises(UnsupportedAudioError, match="is CAF; expected one of WAV, WAVEX"):
        load_audio(caf)
    nms = encode(tone(8000), 8000, "WAV", "NMS_ADPCM_16")
    with pytest.raises(UnsupportedAudioError, match="encoded as NMS_ADPCM_16"):
        load_audio(nms)


# What call recorders and switches export, and how close each decodes to the signal
# (dB of signal to error against the same 8 kHz chirp; measured 10-130 dB): lossy
# codecs lose more.
RECORDER_FORMATS = [
    ("WAV", "GSM610", 6.0),
    ("WAV", "IMA_ADPCM", 12.0),
    ("WAV", "MS_ADPCM", 10.0),
    ("WAV", "G721_32", 25.0),
    ("AU", "ULAW", 30.0),
    ("AU", "G723_24", 20.0),
    ("AIFF", "PCM_16", 60.0),
    ("AIFF", "ALAW", 30.0),
    ("RF64", "PCM_16", 60.0),
    ("W64", "PCM_24", 60.0),
]


@pytest.mark.parametrize(("fmt", "subtype", "min_snr_db"), RECORDER_FORMATS)
def test_recorder_formats_decode_to_the_signal(fmt: str, subtype: str, min_snr_db: float) -> None:
    t = np.arange(16000) / 8000
    x = (0.3 * chirp(t, 300.0, 2.0, 3000.0)).astype(np.float32)
    audio = load_audio(encode(x, 8000, fmt, subtype))
    assert (audio.original_format, audio.original_subtype) == (fmt, subtype)
    assert audio.duration_s == pytest.approx(2.0, abs=0.05)
    assert snr_db(x, audio.caller) > min_snr_db


def test_mp3_decodes_in_tune_at_the_length_it_holds() -> None:
    x = tone(16000, 3.0, freq=500.0)
    audio = load_audio(encode(x, 16000, "MP3", "MPEG_LAYER_III"))
    assert (audio.original_format, audio.original_subtype) == ("MP3", "MPEG_LAYER_III")
    assert audio.original_sr == 16000 and audio.sr == TARGET_SR
    assert audio.duration_s == pytest.approx(3.0, abs=0.1)
    spectrum = np.abs(np.fft.rfft(audio.caller[4000:20000]))
    assert np.argmax(spectrum) * TARGET_SR / 16000 == pytest.approx(500.0, abs=2.0)


def test_an_mp3_cut_in_its_first_frames_is_named_truncated() -> None:
    mp3 = encode(tone(8000, 3.0), 8000, "MP3", "MPEG_LAYER_III")
    with pytest.raises(InvalidAudioError, match="truncated or corrupt before its first"):
        load_audio(mp3[:700])
    # Cut later, it decodes what it holds, as a WAV cut short does.
    assert 0.4 < load_audio(mp3[:2500]).duration_s < 3.0


@pytest.mark.parametrize(
    ("keep", "reason"),
    [
        (10, "Format not recognised"),  # inside the header
        (60, "unknown error in flac decoder"),  # inside the metadata
        (0.5, "flac decoder lost sync"),  # half the frames: the stream stops mid-frame
    ],
)
def test_truncated_file_does_not_leak_soundfile_errors(keep: float, reason: str) -> None:
    data = encode(tone(8000, 1.0), 8000, "FLAC")
    assert load_audio(data).duration_s == pytest.approx(1.0)  # whole, the file loads
    cut = data[: int(keep * len(data)) if keep < 1 else int(keep)]
    # Truncated, it must not load (not even the frames before the cut), and the
    # soundfile error is translated into callsift's own, with libsndfile's reason.
    with pytest.raises(InvalidAudioError) as caught:
        load_audio(cut)
    assert type(caught.value) is InvalidAudioError, caught.value
    assert str(caught.value) == f"cannot decode audio bytes: {reason}."
    assert isinstance(caught.value.__cause__, sf.SoundFileError), caught.value.__cause__


def test_sample_rate_too_low() -> None:
    data = encode(tone(6000), 6000, "WAV", "PCM_16")
    with pytest.raises(UnsupportedAudioError, match="sampled at 6000 Hz; expected at least 8000"):
        load_audio(data)


def test_more_than_two_channels() -> None:
    x = np.tile(tone(8000)[:, None], (1, 4))
    with pytest.raises(UnsupportedAudioError, match=r"has 4 channels; expected 1 \(mono\) or 2"):
        load_audio(encode(x, 8000, "WAV", "PCM_16"))


def test_bad_caller_channel() -> None:
    mono = encode(tone(8000), 8000, "WAV", "PCM_16")
    with pytest.raises(InvalidParameterError, match="caller_channel must be one of"):
        load_audio(mono, caller_channel="caller")
    with pytest.raises(InvalidParameterError, match="needs a stereo file; audio bytes has 1"):
        load_audio(mono, caller_channel="left")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sr": 4000}, r"sr must be in \[8000"),
        ({"sr": 8000.0}, "sr must be an int"),
        ({"min_duration_s": -1.0}, "min_duration_s must be a finite number"),
        ({"max_duration_s": float("nan")}, "max_duration_s must be a finite number"),
        ({"min_duration_s": 5.0, "max_duration_s": 1.0}, "min_duration_s must be <="),
    ],
)
def test_bad_parameters(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        load_audio(encode(tone(8000), 8000, "WAV", "PCM_16"), **kwargs)  # type: ignore[arg-type]


def test_bad_source_type() -> None:
    with pytest.raises(InvalidParameterError, match="source must be a path, bytes"):
        load_audio(12345)  # type: ignore[arg-type]


def test_errors_are_callsift_errors() -> None:
    assert issubclass(UnsupportedAudioError, InvalidAudioError)
    assert issubclass(InvalidAudioError, CallsiftError)


def test_head_cuts_both_sides_at_the_same_sample() -> None:
    left, right = tone(8000, 3.0, 440.0), tone(8000, 3.0, 300.0)
    audio = load_audio(
        encode(np.stack([left, right], axis=1), 8000, "WAV", "FLOAT"), caller_channel="right"
    )
    part = audio.head(1.25)
    assert part.caller.shape == part.other.shape == (10000,)
    np.testing.assert_array_equal(part.caller, audio.caller[:10000])
    np.testing.assert_array_equal(part.other, audio.other[:10000])
    assert part.duration_s == 1.25 and part.sr == audio.sr
    assert part.original_format == audio.original_format
    # A call no longer than the prefix is the call itself.
    assert audio.head(3.0) is audio and audio.head(60) is audio
    assert load_audio(encode(left, 8000, "WAV")).head(2).other is None


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "5", None, True])
def test_head_refuses_a_bad_length(bad) -> None:
    audio = load_audio(encode(tone(8000, 1.0), 8000, "WAV"))
    with pytest.raises(InvalidParameterError, match="seconds"):
        audio.head(bad)


def test_pcm16_wav_keeps_rate_channels_and_samples() -> None:
    x = np.stack([tone(16000, 1.0), tone(16000, 1.0, freq=700.0)], axis=1)
    ima = encode(x, 16000, "WAV", "IMA_ADPCM")
    wav = pcm16_wav(ima)
    info = sf.info(io.BytesIO(wav))
    assert (info.format, info.subtype, info.samplerate, info.channels) == (
        "WAV",
        "PCM_16",
        16000,
        2,
    )
    decoded, _ = sf.read(io.BytesIO(ima), dtype="float32")
    again, _ = sf.read(io.BytesIO(wav), dtype="float32")
    assert again.shape == decoded.shape
    assert np.abs(again - decoded).max() < 2e-4  # 16-bit rounding only


def test_pcm16_wav_refuses_what_load_audio_refuses() -> None:
    with pytest.raises(InvalidAudioError, match="cannot decode audio bytes"):
        pcm16_wav(b"not audio" * 50)
    with pytest.raises(UnsupportedAudioError, match="is CAF"):
        pcm16_wav(encode(tone(8000), 8000, "CAF", "PCM_16"))
    with pytest.raises(AudioTooLongError, match="expected at most 4000 samples"):
        pcm16_wav(encode(tone(8000), 8000, "WAV", "GSM610"), max_samples=4000)
