"""Headerless telephone audio uploaded under its media type (audio/PCMU, audio/PCMA,
audio/L16;rate=...): scored as the same samples in a WAV, stored as that WAV, and every
bad parameter refused by name with the call's stored score unchanged."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from tests.api.test_app_calls import Env, running_env

SCORE = ("p_emergency", "p_non_emergency", "p_prank", "p_ghost", "flag")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    # Decoding does not depend on the database: one backend is enough.
    with running_env("sqlite", tmp_path_factory.mktemp("headerless")) as e:
        yield e


def _speechlike(seconds: float, *, sr: int = 8000, seed: int = 0) -> np.ndarray:
    """Seeded bursts of a 180 Hz buzz over line noise, float in [-1, 1], shape (n,)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    voiced = np.sin(2 * np.pi * 180 * t) + 0.5 * np.sin(2 * np.pi * 360 * t)
    envelope = (np.sin(2 * np.pi * 2.5 * t) > 0).astype(float)
    return 0.25 * voiced * envelope + 0.01 * rng.standard_normal(t.size)


def _raw(x: np.ndarray, subtype: str, sr: int = 8000) -> bytes:
    out = io.BytesIO()
    sf.write(out, x, sr, format="RAW", subtype=subtype)
    return out.getvalue()


def _file(x: np.ndarray, subtype: str, sr: int = 8000, fmt: str = "WAV") -> bytes:
    out = io.BytesIO()
    sf.write(out, x, sr, format=fmt, subtype=subtype)
    return out.getvalue()


def _post(env: Env, call_id: str, body: bytes, content_type: str, **params: str) -> Any:
    return env.client.post(
        f"/v1/calls/{call_id}/audio",
        content=body,
        params=params,
        headers={**env.auth(), "Content-Type": content_type},
    )


def _scored(env: Env, body: bytes, content_type: str, **params: str) -> dict[str, Any]:
    call = env.register(started_at=None, caller_id="")  # withheld: no history to differ
    r = _post(env, call["call_id"], body, content_type, **params)
    assert r.status_code == 200, r.text
    return {k: r.json()[k] for k in (*SCORE, "duration_s")}


@pytest.mark.parametrize(
    ("content_type", "subtype"),
    [
        ("audio/PCMU", "ULAW"),
        ("audio/x-mulaw;rate=8000", "ULAW"),
        ("audio/basic", "ULAW"),
        ("audio/PCMA", "ALAW"),
        ("audio/x-alaw", "ALAW"),
    ],
)
def test_g711_scores_as_the_same_samples_in_a_wav(
    env: Env, content_type: str, subtype: str
) -> None:
    x = _speechlike(6.0, seed=1)
    codes = _raw(x, subtype)
    decoded = sf.read(
        io.BytesIO(codes), format="RAW", subtype=subtype, samplerate=8000, channels=1
    )[0]
    as_file = _scored(env, _file(decoded, subtype), "audio/wav")
    assert _scored(env, codes, content_type) == as_file
    assert as_file["duration_s"] == pytest.approx(6.0)


def test_l16_reads_rate_channels_and_network_byte_order(env: Env) -> None:
    left, right = _speechlike(4.0, sr=16_000, seed=2), 0.1 * _speechlike(4.0, sr=16_000, seed=3)
    ints = (np.stack([left, right], axis=1) * 32767).astype(np.int16)
    as_file = _scored(env, _file(ints, "PCM_16", sr=16_000), "audio/wav", caller_channel="left")
    body = ints.astype(">i2").tobytes()
    got = _scored(env, body, "audio/L16; rate=16000; channels=2", caller_channel="left")
    assert got == as_file and got["duration_s"] == pytest.approx(4.0)
    # Read in the wrong byte order the samples are noise: the order matters.
    swapped = _scored(env, ints.tobytes(), "audio/L16;rate=16000;channels=2", caller_channel="left")
    assert swapped != as_file


def test_a_multipart_file_part_of_a_headerless_type(env: Env) -> None:
    x = _speechlike(4.0, seed=4)
    codes = _raw(x, "ULAW")
    call = env.register(caller_id="")
    r = env.client.post(
        f"/v1/calls/{call['call_id']}/audio",
        files={"file": ("call.ulaw", codes, "audio/PCMU")},
        headers=env.auth(),
    )
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in (*SCORE, "duration_s")} == _scored(env, codes, "audio/PCMU")
    assert env.get_call(call["call_id"]).json()["has_audio"] is True


def test_an_au_file_labelled_audio_basic_is_read_as_the_file(env: Env) -> None:
    x = _speechlike(4.0, seed=5)
    au = _file(x, "ULAW", fmt="AU")
    assert _scored(env, au, "audio/basic") == _scored(env, au, "application/octet-stream")


def test_the_kept_recording_is_the_wav_of_the_samples(env: Env) -> None:
    codes = _raw(_speechlike(3.0, seed=6), "ALAW")
    call = env.register()
    assert _post(env, call["call_id"], codes, "audio/PCMA").status_code == 200
    kept = list((env.tmp / "data").rglob("*.wav"))
    infos = [sf.info(p) for p in kept]
    assert any(i.subtype == "ALAW" and i.samplerate == 8000 and i.frames == 24_000 for i in infos)


@pytest.mark.parametrize(
    ("content_type", "body", "status", "message"),
    [
        (
            "audio/L16",
            b"\x00\x01" * 8000,
            415,
            "Content-Type audio/L16 has no rate parameter; headerless 16-bit PCM needs one",
        ),
        (
            "audio/PCMU;rate=abc",
            b"\x7f" * 8000,
            415,
            "Content-Type audio/PCMU has rate='abc'; expected a whole number from 8000 to 384000",
        ),
        (
            "audio/PCMA;rate=4000",
            b"\x7f" * 8000,
            415,
            "has rate='4000'; expected a whole number from 8000",
        ),
        (
            "audio/PCMU;channels=6",
            b"\x7f" * 8000,
            415,
            "has channels='6'; expected a whole number from 1 to 2",
        ),
        (
            "audio/L16;rate=8000",
            b"\x00" * 8001,
            422,
            "8001 bytes is not a whole number of 2-byte frames",
        ),
        ("audio/PCMU", b"", 422, "0 bytes"),
        ("audio/PCMU", b"\x7f" * 400, 422, "expected at least"),
    ],
)
def test_bad_headerless_uploads_are_named_and_change_nothing(
    env: Env, content_type: str, body: bytes, status: int, message: str
) -> None:
    call = env.register()
    first = _post(env, call["call_id"], _raw(_speechlike(3.0, seed=7), "ULAW"), "audio/PCMU")
    assert first.status_code == 200, first.text
    before = env.get_call(call["call_id"]).json()
    r = _post(env, call["call_id"], body, content_type)
    assert r.status_code == status, r.text
    assert message in r.json()["detail"], r.json()
    assert env.get_call(call["call_id"]).json() == before


def test_a_wav_file_sent_as_headerless_audio_is_named(env: Env) -> None:
    call = env.register()
    wav = _file(_speechlike(3.0, seed=8), "PCM_16")
    r = _post(env, call["call_id"], wav, "audio/PCMU")
    assert r.status_code == 422, r.text
    assert "starts with a WAV header" in r.json()["detail"]
    assert env.get_call(call["call_id"]).json()["has_audio"] is False
