"""Acoustic features: invariances, meaning, and training/serving parity."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from scipy.signal import resample_poly
from typer.testing import CliRunner

import training.features as features_stage
import training.parallel
from callsift import app
from classifier.audio import CallAudio, load_audio
from classifier.callrow import parse_timestamp
from classifier.errors import InvalidAudioError, InvalidParameterError
from classifier.features import AUDIO_FEATURES, FEATURE_NAMES, audio_features, call_features
from classifier.history import replay_history
from classifier.manifest import write_manifest
from training.features import PREFIX_COLUMN, extract_features, parse_prefixes
from training.simulator import voice

SR = 8000
SENTENCES = (
    "Halo, tolong pak, ada kebakaran di rumah tetangga saya, di jalan Sudirman nomor dua belas.",
    "Apinya sudah besar sekali, tolong kirim pemadam kebakaran sekarang juga.",
    "Saya di depan masjid, dekat pasar, cepat ya pak.",
)


def _speech_call(seed: int = 0, seconds: float = 20.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = voice.random_voice(rng, kind="adult_male")
    parts = []
    for s in SENTENCES:
        parts.append(voice.synthesize(s, voice=v, sr=SR))
        parts.append(np.zeros(int(rng.uniform(0.5, 1.5) * SR), dtype=np.float32))
    y = np.concatenate(parts)
    y = np.resize(y, int(seconds * SR))
    noise = rng.standard_normal(y.size).astype(np.float32) * 0.003
    return (y + noise).astype(np.float32)


def _rustle(seed: int = 1, seconds: float = 20.0) -> np.ndarray:
    """Muffled, bursty noise, like a phone in a pocket."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    x = rng.standard_normal(n)
    from scipy.signal import butter, sosfilt

    x = sosfilt(butter(4, 900, fs=SR, output="sos"), x)
    env = np.repeat(rng.uniform(0, 1, n // 800 + 1) ** 3, 800)[:n]
    return (0.2 * x * env + 0.0005 * rng.standard_normal(n)).astype(np.float32)


def _audio(y: np.ndarray, other: np.ndarray | None = None) -> CallAudio:
    return CallAudio(
        caller=y,
        other=other,
        sr=SR,
        original_sr=SR,
        original_channels=1 if other is None else 2,
        original_format="WAV",
        original_subtype="FLOAT",
        duration_s=y.size / SR,
    )


# Features that are scale-free by construction must barely move under +-12 dB.
_TOL = {"default": 0.05}


def _close(a: dict[str, float], b: dict[str, float], names: tuple[str, ...]) -> list[str]:
    bad = []
    for k in names:
        x, y = a[k], b[k]
        if np.isnan(x) and np.isnan(y):
            continue
        scale = max(1.0, abs(x), abs(y))
        if abs(x - y) / scale > _TOL["default"]:
            bad.append(f"{k}: {x:.4g} vs {y:.4g}")
    return bad


def test_full_vector_has_every_named_feature() -> None:
    f = audio_features(_audio(_speech_call()))
    assert list(f) == list(AUDIO_FEATURES)
    finite = [k for k, v in f.items() if np.isfinite(v)]
    # Only the stereo features are NaN for a mono call.
    assert set(AUDIO_FEATURES) - set(finite) <= {
        "caller_speech_ratio",
        "taker_speech_ratio",
        "overlap_ratio",
        "caller_taker_ratio",
        "caller_response_s",
    }


@pytest.mark.parametrize("gain_db", [-12.0, 12.0])
def test_gain_change_moves_features_little(gain_db: float) -> None:
    y = _speech_call() * 0.5
    base = audio_features(_audio(y))
    louder = audio_features(_audio(np.clip(y * 10 ** (gain_db / 20), -1, 1).astype(np.float32)))
    assert _close(base, louder, AUDIO_FEATURES) == []


def test_8k_and_16k_versions_of_a_call_agree() -> None:
    y = _speech_call(seed=3)
    buf8, buf16 = io.BytesIO(), io.BytesIO()
    sf.write(buf8, y, 8000, format="WAV", subtype="PCM_16")
    sf.write(
        buf16, resample_poly(y, 2, 1).astype(np.float32), 16000, format="WAV", subtype="PCM_16"
    )
    f8 = audio_features(load_audio(buf8.getvalue()))
    f16 = audio_features(load_audio(buf16.getvalue()))
    bad = _close(f8, f16, AUDIO_FEATURES)
    assert len(bad) <= 3, bad


def test_features_mean_what_they_say() -> None:
    speech = audio_features(_audio(_speech_call()))
    rng = np.random.default_rng(0)
    silence = audio_features(_audio((1e-4 * rng.standard_normal(20 * SR)).astype(np.float32)))
    rustle = audio_features(_audio(_rustle()))
    assert speech["speech_ratio"] > 0.5
    assert silence["speech_ratio"] < 0.05
    assert rustle["speech_ratio"] < 0.2
    assert silence["longest_silence_s"] > 15
    assert 70 < speech["pitch_median_hz"] < 250
    assert rustle["muffled_db"] < speech["muffled_db"] - 6
    assert speech["snr_db"] > 15


def test_children_pitch_higher_than_adults() -> None:
    rng = np.random.default_rng(5)
    adult = voice.random_voice(rng, kind="adult_male")
    child = voice.random_voice(rng, kind="child")
    text = "hahaha ada kebakaran pak, bohong deng, hihihi"
    fa = audio_features(_audio(np.resize(voice.synthesize(text, voice=adult), 5 * SR)))
    fc = audio_features(_audio(np.resize(voice.synthesize(text, voice=child), 5 * SR)))
    assert fc["pitch_median_hz"] > 1.4 * fa["pitch_median_hz"]


def test_stereo_gives_caller_and_call_taker_activity() -> None:
    caller = _speech_call(seed=1)
    taker = np.zeros_like(caller) + 1e-4
    taker[: 3 * SR] = _speech_call(seed=2)[: 3 * SR]
    f = audio_features(_audio(caller, taker))
    assert f["stereo"] == 1.0
    assert f["caller_speech_ratio"] > f["taker_speech_ratio"] > 0.05


def test_bad_input_is_refused_with_clear_errors() -> None:
    with pytest.raises(InvalidAudioError, match="NaN"):
        audio_features(_audio(np.full(SR, np.nan, dtype=np.float32)))
    with pytest.raises(InvalidAudioError, match="expected at least"):
        audio_features(_audio(np.zeros(100, dtype=np.float32)))
    with pytest.raises(InvalidParameterError, match="history is missing"):
        call_features(
            None,
            caller_id="",
            started_at=parse_timestamp("2025-06-01T10:00:00+08:00"),
            duration_s=1.0,
            history={},
        )


def _small_manifest(tmp: Path, n: int = 6, corrupt: int | None = None) -> Path:
    (tmp / "audio").mkdir()
    rows = []
    for i in range(n):
        y = _speech_call(seed=i, seconds=6.0) if i % 2 == 0 else _rustle(seed=i, seconds=6.0)
        rel = f"audio/c{i}.wav"
        sf.write(tmp / rel, y, SR, subtype="ULAW")
        if i == corrupt:
            (tmp / rel).write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
        rows.append(
            {
                "call_id": f"c{i}",
                "caller_id": "+6281234500001" if i < 4 else "",
                "started_at": f"2025-06-0{1 + i // 3}T1{i}:00:00+08:00",
                "duration_s": "6.0",
                "audio_path": rel,
                "label": "ghost" if i % 2 else "emergency",
            }
        )
    return write_manifest(rows, tmp / "manifest.csv")


def test_training_and_serving_features_are_identical(tmp_path: Path) -> None:
    """The offline table equals what the service computes from the posted bytes."""
    manifest = _small_manifest(tmp_path)
    table, failures = extract_features(manifest, n_jobs=2, progress=False)
    assert failures.empty and len(table) == 6
    frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    stamps = [parse_timestamp(s) for s in frame["started_at"]]
    history = replay_history(list(frame["caller_id"]), stamps, [6.0] * 6, list(frame["label"]))
    for i, row in frame.iterrows():
        raw = (tmp_path / row["audio_path"]).read_bytes()
        served = call_features(
            load_audio(raw),
            caller_id=row["caller_id"],
            started_at=stamps[int(i)],
            duration_s=6.0,
            history=history[int(i)],
        )
        offline = table.iloc[int(i)]
        for name in FEATURE_NAMES:
            a, b = served[name], float(offline[name])
            assert (np.isnan(a) and np.isnan(b)) or a == b, name


def test_history_features_in_the_table_are_point_in_time(tmp_path: Path) -> None:
    table, _ = extract_features(_small_manifest(tmp_path), n_jobs=1, progress=False)
    counts = list(table["hist_calls_total"])
    assert counts[:4] == [0, 1, 2, 3]  # the same number, in time order
    assert counts[4:] == [0, 0]  # withheld
    assert table["hist_ghost"].iloc[3] == 1  # c1 was ghost, known by c3


def test_cli_features_reports_failures_and_writes_the_rest(tmp_path: Path) -> None:
    manifest = _small_manifest(tmp_path, corrupt=2)
    out = tmp_path / "f.parquet"
    cache = tmp_path / "cache"
    result = CliRunner().invoke(
        app, ["features", str(manifest), "--out", str(out), "--cache", str(cache)]
    )
    assert result.exit_code == 1
    assert "c2" in result.output and "1 call(s) failed" in result.output
    table = pd.read_parquet(out)
    whole = table[table["prefix_s"].isna()]
    assert list(whole["call_id"]) == ["c0", "c1", "c3", "c4", "c5"]
    # The default prefixes shorter than these 6 s calls: 2 s and 5 s, after each call.
    assert list(table["prefix_s"].fillna(0.0))[:3] == [0.0, 2.0, 5.0]
    assert "(and 10 prefix rows)" in result.output
    assert (tmp_path / "f.errors.csv").exists()
    # Second run is served from the cache and gives the same table.
    again = CliRunner().invoke(
        app,
        ["features", str(manifest), "--out", str(tmp_path / "g.parquet"), "--cache", str(cache)],
    )
    assert again.exit_code == 1
    pd.testing.assert_frame_equal(table, pd.read_parquet(tmp_path / "g.parquet"))


def test_started_at_is_parsed_with_offset() -> None:
    assert parse_timestamp("2025-06-01T10:00:00+08:00").utcoffset() is not None
    assert isinstance(parse_timestamp("2025-06-01T10:00:00Z"), datetime)


def test_prefix_rows_are_the_stream_at_that_moment(tmp_path: Path) -> None:
    """A prefix row holds exactly what a live stream has at N seconds: the features of the
    recording's first N seconds, duration N, and the call's own history."""
    manifest = _small_manifest(tmp_path, n=3)
    cache = tmp_path / "cache"
    table, failures = extract_features(
        manifest, n_jobs=1, progress=False, prefixes=(5.0, 2.0, 6.0, 30.0), cache_dir=cache
    )
    assert failures.empty
    # Per call: the whole row, then 2 s and 5 s; 6 s is the whole call, 30 s is longer.
    assert list(table["call_id"]) == ["c0"] * 3 + ["c1"] * 3 + ["c2"] * 3
    assert list(table[PREFIX_COLUMN].fillna(0.0)) == [0.0, 2.0, 5.0] * 3
    frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    stamps = [parse_timestamp(s) for s in frame["started_at"]]
    history = replay_history(list(frame["caller_id"]), stamps, [6.0] * 3, list(frame["label"]))
    for k, (_, row) in enumerate(table.iterrows()):
        i = k // 3
        audio = load_audio(tmp_path / frame["audio_path"][i])
        heard = row[PREFIX_COLUMN]
        expected = call_features(
            audio if np.isnan(heard) else audio.head(heard),
            caller_id=frame["caller_id"][i],
            started_at=stamps[i],
            duration_s=6.0 if np.isnan(heard) else heard,
            history=history[i],
            complete=bool(np.isnan(heard)),
        )
        for name in FEATURE_NAMES:
            a, b = expected[name], float(row[name])
            assert (np.isnan(a) and np.isnan(b)) or a == b, (k, name)
    assert table["audio_duration_s"].tolist()[:3] == [6.0, 2.0, 5.0]
    # The cache keeps prefixes apart: a second run from it gives the same table.
    again, _ = extract_features(
        manifest, n_jobs=1, progress=False, prefixes=(2.0, 5.0, 6.0, 30.0), cache_dir=cache
    )
    pd.testing.assert_frame_equal(table, again)


def test_prefix_list_is_checked() -> None:
    assert parse_prefixes("20, 2,5;10") == (2.0, 5.0, 10.0, 20.0)
    assert parse_prefixes("none") == parse_prefixes("") == parse_prefixes(None) == ()
    for bad in ("2,five", "0", "-3", "nan", "inf", "0.1"):
        with pytest.raises(InvalidParameterError, match="prefix"):
            parse_prefixes(bad)


def _spy_jobs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The n_jobs extract_features hands to map_batches, call by call."""
    seen: list[int] = []
    real = training.parallel.map_batches

    def spy(*args: Any, n_jobs: int, **kwargs: Any) -> Any:
        seen.append(n_jobs)
        return real(*args, n_jobs=n_jobs, **kwargs)

    monkeypatch.setattr(training.parallel, "map_batches", spy)
    return seen


def test_workers_give_the_bits_of_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker processes (forced on a small manifest) write the table this process does."""
    manifest = _small_manifest(tmp_path, corrupt=3)
    seen = _spy_jobs(monkeypatch)
    one, failed_one = extract_features(manifest, n_jobs=1, progress=False, prefixes=(2.0, 5.0))
    monkeypatch.setattr(features_stage, "WORKERS_FROM_S", 0.0)
    two, failed_two = extract_features(manifest, n_jobs=2, progress=False, prefixes=(2.0, 5.0))
    assert seen == [1, 2]
    pd.testing.assert_frame_equal(one, two, check_exact=True)
    pd.testing.assert_frame_equal(failed_one, failed_two)
    assert list(failed_two["call_id"]) == ["c3"]


def test_a_small_manifest_starts_no_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _spy_jobs(monkeypatch)
    table, _ = extract_features(_small_manifest(tmp_path), n_jobs=2, progress=False)
    assert len(table) == 6 and seen == [1]  # 36 s of audio: starting workers costs more


def test_a_call_is_decoded_once_for_all_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole call and its prefix rows come from one decode; cached rows from none."""
    manifest = _small_manifest(tmp_path, n=3)
    decoded: list[str] = []
    real = features_stage.load_audio

    def counted(path: str, **kwargs: Any) -> CallAudio:
        decoded.append(path)
        return real(path, **kwargs)

    monkeypatch.setattr(features_stage, "load_audio", counted)
    cache = tmp_path / "cache"

    def run() -> pd.DataFrame:
        return extract_features(
            manifest, n_jobs=1, progress=False, prefixes=(2.0, 5.0), cache_dir=cache
        )[0]

    table = run()
    assert len(table) == 9 and len(decoded) == 3
    decoded.clear()
    again = run()
    assert decoded == []
    pd.testing.assert_frame_equal(table, again, check_exact=True)


def test_a_frames_values_do_not_depend_on_how_many_frames_come_with_it() -> None:
    # A live stream computes frames in small batches, a recording all at once: a row must
    # have the same bits either way (OpenBLAS rounds a product's last rows differently).
    from classifier.features import dither, frame_values, n_frames, stft_frames

    rng = np.random.default_rng(11)
    y = (rng.normal(size=8000 * 3) * 0.05).astype(np.float32)
    yd, _ = dither(y)
    P, S = stft_frames(yd, first=0, last=n_frames(yd.size))
    whole = frame_values(P, S)
    for k in (1, 5, 17, 63, 64, 65, 100, 129, P.shape[0] - 1):
        np.testing.assert_array_equal(frame_values(P[:k], S[:k]), whole[:k], err_msg=f"k={k}")
    for a, b in ((3, 40), (64, 150), (100, 101)):
        np.testing.assert_array_equal(frame_values(P[a:b], S[a:b])[-1], whole[b - 1])
