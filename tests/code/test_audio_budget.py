"""The decoding budget of classifier.audio.load_audio: small files that decode to huge
arrays are refused from their header or stopped while decoding, the memory held is the
8 kHz result (not the file's rate), block-wise resampling equals resample_poly, and
headers that lie about the rate, channels or length get a message naming the problem."""

from __future__ import annotations

import io
import time
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from classifier.audio import (
    BLOCK_FRAMES,
    MAX_DECODED_SAMPLES,
    MAX_SAMPLE_RATE,
    TARGET_SR,
    load_audio,
)
from classifier.errors import AudioTooLongError, InvalidAudioError, UnsupportedAudioError
from tests.malformed_audio import flac_constant, opus_silence, wav_bytes


def _no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the samples were decoded")

    monkeypatch.setattr(sf.SoundFile, "read", refuse)


def _noise_wav(seconds: float, sr: int, channels: int, seed: int = 0) -> tuple[np.ndarray, bytes]:
    x = (0.3 * np.random.default_rng(seed).standard_normal((round(seconds * sr), channels))).astype(
        np.float32
    )
    out = io.BytesIO()
    sf.write(out, x, sr, format="WAV", subtype="FLOAT")
    return x, out.getvalue()


# ------------------------------------------------------------------ refused from the header
def test_flac_bomb_is_refused_from_its_header(monkeypatch: pytest.MonkeyPatch) -> None:
    # The tester's file: 1,790 s of silence at 192 kHz, within the 1,800 s limit. It was
    # accepted after 16 s and 1.6 GB; here it is 77 kB refused before any sample.
    bomb = flac_constant(192_000, 1, 1790 * 192_000)
    assert len(bomb) < 100_000
    _no_decoding(monkeypatch)
    with pytest.raises(AudioTooLongError) as err:
        load_audio(bomb)
    assert str(err.value) == (
        "audio is 1790.00 s at 192000 Hz x 1 channel: 343680000 samples to decode; "
        f"expected at most {MAX_DECODED_SAMPLES} samples (frames x channels at the file's rate)"
    )


def test_384_khz_stereo_bomb_is_refused_from_its_header(monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = flac_constant(384_000, 2, 1790 * 384_000)  # 6.5 GB as float32 at its rate
    _no_decoding(monkeypatch)
    with pytest.raises(AudioTooLongError, match=r"at 384000 Hz x 2 channels: 1374720000 samples"):
        load_audio(bomb)


def test_ogg_opus_bomb_is_refused_from_its_header(monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = opus_silence(3600, channels=2)  # 1 h of 48 kHz stereo in 93 kB
    assert len(bomb) < 100_000
    _no_decoding(monkeypatch)
    with pytest.raises(AudioTooLongError, match=r"at 48000 Hz x 2 channels: 345599376 samples"):
        load_audio(bomb, max_duration_s=7200)


def test_the_budget_is_a_parameter() -> None:
    data = flac_constant(48_000, 2, 48_000)  # 1 s: 96,000 samples
    assert load_audio(data, max_samples=96_000).duration_s == pytest.approx(1.0)
    with pytest.raises(AudioTooLongError, match="96000 samples to decode; expected at most 95999"):
        load_audio(data, max_samples=95_999)
    assert load_audio(data, max_samples=None).duration_s == pytest.approx(1.0)


# ------------------------------------------------------------ headers that say nothing
def test_a_bomb_of_unknown_length_is_stopped_while_decoding() -> None:
    # STREAMINFO says 0 samples (unknown): libsndfile reports 2^63 - 1 frames. Decoding
    # goes on block by block and stops one block past the budget, whatever the file holds.
    bomb = flac_constant(48_000, 2, 3600 * 48_000, total=0)
    budget = 10 * 48_000 * 2
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(AudioTooLongError) as err:
            load_audio(bomb, max_duration_s=7200, max_samples=budget)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(err.value) == (
        "audio is more than 10.00 s at 48000 Hz x 2 channels: more than 960000 samples to "
        "decode; expected at most 960000 samples (frames x channels at the file's rate)"
    )
    assert elapsed < 2.0  # 10 s of audio decoded, not 1 h
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MB"


def test_a_stream_of_unknown_length_decodes_to_its_end() -> None:
    # 2.5 s in blocks of 4,096 frames: the last block, shorter than BLOCK_FRAMES, is kept
    # (soundfile's seek after each read failed there and lost it).
    known = load_audio(flac_constant(8000, 1, 20_000, block=4096, value=1000))
    unknown = load_audio(flac_constant(8000, 1, 20_000, block=4096, value=1000, total=0))
    assert unknown.caller.size == known.caller.size == 20_000
    np.testing.assert_array_equal(unknown.caller, known.caller)


def test_unknown_length_stops_at_the_maximum_duration() -> None:
    bomb = flac_constant(8000, 1, 600 * 8000, total=0)
    with pytest.raises(AudioTooLongError, match=r"longer than 20\.00 s; expected at most 20 s"):
        load_audio(bomb, max_duration_s=20)


def test_a_header_claiming_less_is_read_to_what_the_decoder_gives() -> None:
    # Ogg/Opus: the last page says 2 s of 60; libsndfile stops there, and so do we.
    out = load_audio(opus_silence(60, claim_s=2.0))
    assert out.duration_s == pytest.approx(2.0, abs=0.01)


# -------------------------------------------------------------------------- memory
@pytest.mark.parametrize("caller_channel", ["mix", "left"])
def test_memory_held_is_the_8khz_result_not_the_file_rate(caller_channel: str) -> None:
    # 120 s of 48 kHz stereo: 46 MB as float32 at its rate, 3.8 MB per side at 8 kHz.
    data = flac_constant(48_000, 2, 120 * 48_000, value=1234)
    sides = 1 if caller_channel == "mix" else 2
    result = 120 * TARGET_SR * 4 * sides
    tracemalloc.start()
    try:
        out = load_audio(data, caller_channel=caller_channel)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.caller.size == 120 * TARGET_SR
    block = BLOCK_FRAMES * 2 * 4
    # The result, a block, and the block's mix and resampled copies.
    assert peak < result + 6 * block, f"peak {peak / 2**20:.1f} MB, result {result / 2**20:.1f}"


# ------------------------------------------------------------------------ resampling
@pytest.mark.parametrize("sr", [11025, 16000, 22050, 44100, 48000, 96000, 384000])
def test_block_wise_resampling_equals_resample_poly(sr: int) -> None:
    # Lengths across block boundaries; both channels and the mix, bit for bit.
    g = np.gcd(sr, TARGET_SR)
    for n in (1, 999, BLOCK_FRAMES - 1, BLOCK_FRAMES + 1, 2 * BLOCK_FRAMES + 12_345):
        x, data = _noise_wav(n / sr, sr, 2, seed=n)
        mix = load_audio(data, min_duration_s=0)
        left = load_audio(data, min_duration_s=0, caller_channel="left")
        for got, want in (
            (mix.caller, x.mean(axis=1, dtype=np.float32)),
            (left.caller, x[:, 0]),
            (left.other, x[:, 1]),
        ):
            ref = resample_poly(want, TARGET_SR // g, sr // g).astype(np.float32)
            assert got is not None
            np.testing.assert_array_equal(got, ref, err_msg=f"{sr} Hz, {n} frames")


def test_an_odd_rate_is_resampled_quickly_and_in_tune() -> None:
    # 383,999 Hz is prime to 8,000: the exact ratio needs a 7.7-million-tap filter
    # (3 s to design, for a 0.25 s file); its ratio is rounded to 1/48 instead.
    sr = 383_999
    t = np.arange(sr) / sr
    data = io.BytesIO()
    sf.write(data, 0.5 * np.sin(2 * np.pi * 1000 * t), sr, format="WAV", subtype="PCM_16")
    start = time.perf_counter()
    out = load_audio(data.getvalue())
    assert time.perf_counter() - start < 0.5
    assert out.caller.size == pytest.approx(TARGET_SR, abs=2)
    spectrum = np.abs(np.fft.rfft(out.caller[:8000] * np.hanning(8000)))
    assert np.argmax(spectrum) == pytest.approx(1000, abs=1)  # 1 Hz bins


# ---------------------------------------------------------------- lying headers
@pytest.mark.parametrize("rate", [2**31 - 1, 2**32 - 1, MAX_SAMPLE_RATE + 1, 7999, 1, 0])
def test_a_rate_out_of_range_is_named(rate: int) -> None:
    with pytest.raises(UnsupportedAudioError) as err:
        load_audio(wav_bytes(sr=rate))
    assert str(err.value) == (
        f"audio bytes is sampled at {rate} Hz; expected at least 8000 Hz and at most "
        f"{MAX_SAMPLE_RATE} Hz"
    )


@pytest.mark.parametrize("channels", [0, 3, 64, 65535])
def test_a_channel_count_out_of_range_is_named(channels: int) -> None:
    data = wav_bytes(channels=channels, block_align=2 * max(channels, 1))
    with pytest.raises(UnsupportedAudioError) as err:
        load_audio(data)
    assert str(err.value) == (
        f"audio bytes has {channels} channels; expected 1 (mono) or 2 (stereo)"
    )


def test_a_data_size_past_the_end_of_the_file_reads_what_is_there() -> None:
    pcm = (np.arange(8000) % 200 - 100).astype("<i2").tobytes()
    for claimed in (10**9, 0xFFFFFFFF):
        out = load_audio(wav_bytes(data=pcm, data_len=claimed))
        assert out.caller.size == 8000
        assert out.caller[1] == pytest.approx(-99 / 32768)


def test_float_samples_far_beyond_full_scale_are_refused() -> None:
    # Values near float32's limit overflowed the features' powers into NaN (a 422 that
    # spoke of S_mag); now the file is refused by what is wrong with it.
    y = np.full(8000, 0.1)
    y[:5] = 1e30
    data = io.BytesIO()
    sf.write(data, y, 8000, format="WAV", subtype="FLOAT")
    with pytest.raises(InvalidAudioError, match="has 5 samples beyond \\+-16777216 times full"):
        load_audio(data.getvalue())
    # Integer-scaled floats (a common export mistake) are loud, not broken.
    y[:5] = 32767.0
    data = io.BytesIO()
    sf.write(data, y, 8000, format="WAV", subtype="FLOAT")
    assert load_audio(data.getvalue()).caller[0] == 32767.0
