"""End-to-end simulator rules: files, both parties, the channel, determinism, bad input."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

from callsift import app
from classifier.errors import InvalidParameterError
from classifier.manifest import load_manifest, validate_manifest
from training.simulate import _upsample_2x, _write_audio, simulate_corpus
from training.simulator.channel import alaw_roundtrip, mulaw_roundtrip

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
runner = CliRunner()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "corpus"
    return simulate_corpus(out, preset="balanced", n_calls=48, seed=3, n_jobs=2, progress=False)


@pytest.fixture(scope="module")
def frame(corpus: Path) -> pd.DataFrame:
    return load_manifest(corpus, check_audio=True)


def _frame_db(x: np.ndarray, hop: int = 160) -> np.ndarray:
    n = x.size // hop
    frames = x[: n * hop].reshape(n, hop).astype(np.float64)
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def _voiced_share(x: np.ndarray, sr: int = 8000) -> float:
    """Share of 40 ms frames that are loud and periodic (70-500 Hz autocorrelation peak)."""
    hop = 320
    n = x.size // hop
    if n == 0:
        return 0.0
    frames = x[: n * hop].reshape(n, hop).astype(np.float64)
    frames -= frames.mean(axis=1, keepdims=True)
    energy = np.sum(frames**2, axis=1)
    loud = energy > max(1e-7, 10 ** (-45 / 10) * hop)
    spec = np.fft.rfft(frames, n=2 * hop, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :hop]
    lo, hi = sr // 500, sr // 70
    peak = ac[:, lo:hi].max(axis=1) / np.maximum(ac[:, 0], 1e-12)
    return float(np.mean(loud & (peak > 0.5)))


def test_manifest_is_valid_and_complete(corpus: Path, frame: pd.DataFrame) -> None:
    assert validate_manifest(corpus) == []
    assert len(frame) == 48
    assert frame["call_id"].is_unique
    assert set(frame["label"]) == {"emergency", "non_emergency", "prank", "ghost"}
    assert (frame["started_at_utc"].diff().dropna() >= pd.Timedelta(0)).all()
    assert len(list((corpus.parent / "audio").iterdir())) == 48


def test_call_taker_greets_in_every_stereo_call_ghost_included(frame: pd.DataFrame) -> None:
    stereo = frame[frame["caller_channel"] != "mix"]
    assert len(stereo) >= 5, "the balanced preset should give some stereo recordings"
    for _, row in stereo.iterrows():
        y, sr = sf.read(row["audio_file"], dtype="float32")
        taker = y[:, 1] if row["caller_channel"] == "left" else y[:, 0]
        opening = taker[: int(min(5.0, y.shape[0] / sr) * sr)]
        if sr != 8000:
            opening = opening[:: sr // 8000]
        assert _voiced_share(opening) > 0.15, f"{row['call_id']} ({row['label']}): no greeting"


def test_speech_is_speech_and_ghost_callers_say_nothing(frame: pd.DataFrame) -> None:
    shares: dict[str, list[float]] = {"speaking": [], "ghost": []}
    for _, row in frame[frame["caller_channel"] != "mix"].iterrows():
        y, sr = sf.read(row["audio_file"], dtype="float32")
        caller = y[:, 0] if row["caller_channel"] == "left" else y[:, 1]
        caller = caller[:: sr // 8000]
        if row["label"] == "ghost":
            shares["ghost"].append(_voiced_share(caller))
        elif row["label"] in ("emergency", "non_emergency") and row["scenario"] != "quiet_victim":
            shares["speaking"].append(_voiced_share(caller))
    assert shares["speaking"] and shares["ghost"]
    assert np.median(shares["speaking"]) > 0.2
    assert np.median(shares["ghost"]) < 0.5 * np.median(shares["speaking"])


def test_no_runs_of_digital_zero(frame: pd.DataFrame) -> None:
    for path in frame["audio_file"]:
        y, _ = sf.read(path, dtype="float32", always_2d=True)
        for c in range(y.shape[1]):
            z = np.concatenate([[0], (y[:, c] == 0).astype(np.int8), [0]])
            edges = np.flatnonzero(np.diff(z))
            longest = int((edges[1::2] - edges[::2]).max()) if edges.size else 0
            assert longest <= 16, f"{path}: {longest} consecutive zero samples"


def test_files_use_telephone_encodings(frame: pd.DataFrame) -> None:
    subtypes = [sf.info(p).subtype for p in frame["audio_file"]]
    rates = [sf.info(p).samplerate for p in frame["audio_file"]]
    assert subtypes.count("ULAW") >= len(subtypes) // 3
    assert min(rates) == 8000
    # The caller's side is band-limited like a phone line: little energy below 150 Hz
    # relative to the 300-3400 Hz band, in every speaking call.
    for _, row in frame[frame["label"] == "emergency"].iterrows():
        y, sr = sf.read(row["audio_file"], dtype="float32", always_2d=True)
        x = y.mean(axis=1)
        spec = np.abs(np.fft.rfft(x)) ** 2
        f = np.fft.rfftfreq(x.size, 1 / sr)
        low = spec[(f > 0) & (f < 150)].sum()
        band = spec[(f > 300) & (f < 3400)].sum()
        assert low < 0.05 * band


@pytest.mark.parametrize(
    ("subtype", "roundtrip"), [("ULAW", mulaw_roundtrip), ("ALAW", alaw_roundtrip)]
)
@pytest.mark.parametrize("shape", [(8001,), (4000, 2)])
def test_g711_files_are_standard_and_exact(
    tmp_path: Path, subtype: str, roundtrip: object, shape: tuple[int, ...]
) -> None:
    # The G.711 writer: any WAV reader (libsndfile here) sees the stored law, rate and
    # channels, and decodes exactly the G.711 round trip of the written signal.
    x = (np.random.default_rng(1).standard_normal(shape) * 0.2).astype(np.float32)
    path = tmp_path / "x.wav"
    _write_audio(path, x, 8000, fmt="WAV", subtype=subtype)
    info = sf.info(str(path))
    assert (info.subtype, info.samplerate, info.channels, info.frames) == (
        subtype,
        8000,
        1 if len(shape) == 1 else 2,
        shape[0],
    )
    y, _ = sf.read(str(path), dtype="float32")
    np.testing.assert_array_equal(y, roundtrip(x))  # type: ignore[operator]
    assert path.stat().st_size % 2 == 0  # RIFF chunks are word-aligned


def test_16k_files_keep_the_band_without_images() -> None:
    t = np.arange(8000) / 8000
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    y = _upsample_2x(tone)
    assert y.shape == (16000,) and y.dtype == np.float32
    ref = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000)
    assert np.max(np.abs(y[800:-800] - ref[800:-800])) < 1e-3
    spec = np.abs(np.fft.rfft(y[800:-800] * np.hanning(14400))) ** 2
    f = np.fft.rfftfreq(14400, 1 / 16000)
    image = spec[(f > 6900) & (f < 7100)].sum()  # a 1 kHz tone images at 7 kHz
    assert image < 1e-6 * spec[(f > 900) & (f < 1100)].sum()
    assert _upsample_2x(np.zeros((10, 2), np.float32)).shape == (20, 2)


def test_metadata_columns_describe_each_call(frame: pd.DataFrame) -> None:
    for col in ("persona", "scenario", "caller_voice", "taker_voice", "codec", "shift_id"):
        assert (frame[col] != "").all(), col
    # One call-taker voice per shift.
    # (the same person may answer in Indonesian or English: compare without the language)
    person = frame["taker_voice"].str.split("+", n=1).str[1]
    per_shift = person.groupby(frame["shift_id"]).nunique()
    assert (per_shift == 1).all()
    assert frame["caller_voice"].nunique() > len(frame) // 2


def _digest(manifest: Path) -> str:
    h = hashlib.sha256(manifest.read_bytes())
    for p in sorted((manifest.parent / "audio").iterdir()):
        h.update(p.read_bytes())
    return h.hexdigest()


def test_deterministic_for_a_seed_whatever_the_workers(tmp_path: Path) -> None:
    a = simulate_corpus(
        tmp_path / "a", preset="purworejo", n_calls=10, seed=5, n_jobs=1, progress=False
    )
    b = simulate_corpus(
        tmp_path / "b", preset="purworejo", n_calls=10, seed=5, n_jobs=2, progress=False
    )
    c = simulate_corpus(
        tmp_path / "c", preset="purworejo", n_calls=10, seed=6, n_jobs=1, progress=False
    )
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--preset", "bandung"], "unknown preset 'bandung'"),
        (["--calls", "0"], "expected a whole number of 1 or more"),
        (["--calls", "-5"], "expected a whole number of 1 or more"),
    ],
)
def test_cli_bad_input_exits_non_zero(tmp_path: Path, args: list[str], needle: str) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["simulate", "--out", str(out), "--calls", "3", *args])
    assert result.exit_code != 0
    assert needle in str(result.exception) + result.output
    assert not out.exists()


def test_non_empty_output_is_never_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    keep = out / "manifest.csv"
    keep.write_text("precious")
    with pytest.raises(InvalidParameterError, match="not empty"):
        simulate_corpus(out, preset="balanced", n_calls=2, seed=0, progress=False)
    assert keep.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_output_under_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InvalidParameterError):
        simulate_corpus(blocker / "out", preset="balanced", n_calls=2, seed=0, progress=False)
    assert blocker.read_text() == "x"


def test_speech_dir_without_audio_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "speech"
    empty.mkdir()
    (empty / "notes.txt").write_text("no audio here")
    with pytest.raises(InvalidParameterError, match="speech"):
        simulate_corpus(
            tmp_path / "out",
            preset="balanced",
            n_calls=2,
            seed=0,
            speech_dir=empty,
            progress=False,
        )
    assert not (tmp_path / "out").exists()


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data (real recordings) is absent")
def test_real_recordings_are_mixed_in(tmp_path: Path) -> None:
    manifest = simulate_corpus(
        tmp_path / "real",
        preset="balanced",
        n_calls=16,
        seed=2,
        speech_dir=SHARED / "speech" / "arctic",
        noise_dir=SHARED / "noise",
        progress=False,
    )
    frame = load_manifest(manifest, check_audio=True)
    used = frame["real_speech"].astype(int).sum() + frame["real_noise"].astype(int).sum()
    assert used > 0


def test_a_short_report_always_holds_the_callers_report() -> None:
    # A short report cut before the caller spoke would be an SOS burst labelled
    # emergency: no recording tells it from a ghost call, and such calls set the ghost
    # threshold. The shortest planned report, hung up mid-sentence, still holds the
    # caller's first turn whole.
    import dataclasses

    from training.simulate import _shift_voice
    from training.simulator.population import plan_calls
    from training.simulator.render import render_call

    plans = [p for p in plan_calls("balanced", n_calls=600, seed=5) if p.scenario == "short_report"]
    assert len(plans) >= 6
    for i, plan in enumerate(plans[:6]):
        plan = dataclasses.replace(plan, duration_s=4.0, hangup_mid_sentence=True)
        rng = np.random.default_rng([5, i, 1])
        r = render_call(plan, rng=rng, taker_voice=_shift_voice(5, plan.shift_id, plan.language))
        voiced_s = _voiced_share(r.caller) * r.caller.size / 8000
        assert voiced_s >= 0.5, f"{plan.call_id}: {voiced_s:.2f} s of the caller's voice"
        assert r.caller.size == r.taker.size
