"""Real recordings mixed into simulated calls by their role (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from classifier.errors import InvalidParameterError
from training.default import build_default
from training.simulate import simulate_corpus
from training.simulator.realbank import RealBank, held_out, role_files

SR = 8000


def _tone(path: Path, hz: float, seconds: float = 2.0, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = 0.3 * np.sin(2 * np.pi * hz * t) + 0.01 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y.astype(np.float32), SR)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A small tree in the layout of ../shared/data, every role present."""
    root = tmp_path / "data"
    _tone(root / "speech/fsdd/0_george_0.wav", 180)
    _tone(root / "speech/fsdd/1_jackson_0.wav", 120, seed=1)
    _tone(root / "speech/children_en/000010011.flac", 300)
    _tone(root / "speech/children_en/000260011.flac", 320)  # a held-out speaker
    _tone(root / "speech-nc/id_digits/FMG/FMG_0B.flac", 200)  # never trained on
    _tone(root / "noise/esc50/laughing/1.flac", 400)
    _tone(root / "noise/esc50/crying_baby/1.flac", 500)
    _tone(root / "noise/esc50/rain/1.flac", 90)
    _tone(root / "noise/esc50/rain/2.flac", 95)  # held out by file
    _tone(root / "noise/esc50/footsteps/1.flac", 60)
    _tone(root / "noise/music/track.flac", 440)
    return root


@pytest.fixture
def holdout() -> dict[str, object]:
    return {
        "never_train": ["speech-nc/"],
        "files": ["noise/esc50/rain/2.flac"],
        "speakers": {"speech/children_en": ["0026"]},
    }


def test_roles_exclude_speech_nc_and_every_held_out_file(
    data: Path, holdout: dict[str, object]
) -> None:
    files = role_files(data, holdout)
    every = [f for fs in files.values() for f in fs]
    assert not any(f.startswith("speech-nc/") for f in every)
    assert "noise/esc50/rain/2.flac" not in every
    assert files["child"] == ["speech/children_en/000010011.flac"]
    assert files["ambient"] == ["noise/esc50/rain/1.flac"]
    assert files["laughter"] == ["noise/esc50/laughing/1.flac"]
    assert files["handling"] == ["noise/esc50/footsteps/1.flac"]
    assert held_out("speech/children_en/000260099.flac", holdout)  # a later file of a speaker


def test_the_shipped_hold_out_list_keeps_real_files_out() -> None:
    listed = json.loads((Path(__file__).parents[2] / "training/real_holdout.json").read_text())
    assert "speech-nc/" in listed["never_train"] and len(listed["files"]) > 50


def test_a_corpus_mixes_real_sounds_by_role(
    data: Path, holdout: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.simulator.realbank as realbank

    monkeypatch.setattr(realbank, "load_holdout", lambda path=None: holdout)
    manifest = simulate_corpus(
        tmp_path / "corpus",
        preset="balanced",
        n_calls=16,
        seed=4,
        real_dir=data,
        n_jobs=1,
        progress=False,
    )
    text = manifest.read_text()
    assert "real_" in text  # backgrounds, handling or music from the real files
    bank = RealBank.load(data, holdout=holdout)
    assert bank.sources["music"] == ["noise/music/track.flac"]


@pytest.mark.parametrize("make", ["missing", "empty", "unreadable"])
def test_an_unusable_real_folder_is_refused_and_nothing_written(
    make: str, tmp_path: Path, holdout: dict[str, object]
) -> None:
    root = tmp_path / "real"
    if make != "missing":
        (root / "speech/fsdd").mkdir(parents=True)
    if make == "unreadable":
        (root / "speech/fsdd/0_george_0.wav").write_bytes(b"RIFF not audio")
    with pytest.raises(InvalidParameterError, match=str(root.name)):
        RealBank.load(root, holdout=holdout)
    out = tmp_path / "corpus"
    with pytest.raises(InvalidParameterError, match="real"):
        simulate_corpus(out, preset="balanced", n_calls=4, seed=1, real_dir=root, n_jobs=1)
    assert not out.exists() or not any(out.iterdir())
    # The recipe refuses it before its work folder or model folder exists.
    work, model = tmp_path / "work", tmp_path / "model"
    with pytest.raises(InvalidParameterError, match=str(root.name)):
        build_default(out=model, work=work, n_jobs=1, real_dir=root)
    assert not work.exists() and not model.exists()
