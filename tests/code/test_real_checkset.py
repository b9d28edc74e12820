"""The real-recording check set (bench/real_checkset.py, issue 15): a small build.

Needs the shared real recordings (``../shared/data`` from the project root); skipped
without them.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import soundfile as sf

from classifier.manifest import validate_manifest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"

pytestmark = pytest.mark.skipif(
    not (DATA / "speech-nc" / "id_digits").is_dir(),
    reason=f"the shared real recordings are not at {DATA}",
)


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "real_checkset", ROOT / "bench" / "real_checkset.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["real_checkset"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def rc() -> ModuleType:
    return _module()


@pytest.fixture(scope="module")
def built(rc: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("realcheck")
    a = rc.build(base / "a", data=DATA, n_calls=12, seed=1)
    b = rc.build(base / "b", data=DATA, n_calls=12, seed=1)
    return a, b


def _rows(manifest: Path) -> list[dict[str, str]]:
    with open(manifest, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_manifest_validates_with_every_class(built: tuple[Path, Path]) -> None:
    manifest, _ = built
    problems = validate_manifest(manifest)
    assert not problems, problems
    rows = _rows(manifest)
    assert len(rows) == 12
    assert {r["label"] for r in rows} == {"emergency", "non_emergency", "prank", "ghost"}


def test_same_seed_same_bytes(built: tuple[Path, Path]) -> None:
    a, b = built
    assert _digest(a.parent) == _digest(b.parent)


def test_only_held_out_or_nc_files(rc: ModuleType, built: tuple[Path, Path]) -> None:
    holdout = rc.load_holdout()
    used = set()
    for row in _rows(built[0]):
        files = row["source_files"].split(";")
        assert files and all(files)
        used.update(files)
    outside = sorted(f for f in used if not rc.is_held_out(f, holdout))
    assert not outside, outside
    assert all((DATA / f).is_file() for f in used)
    # speech-nc and held-out files outside it are both in use
    assert any(f.startswith("speech-nc/") for f in used)
    assert any(not f.startswith("speech-nc/") for f in used)


def test_callers_and_call_takers_are_different_people(
    rc: ModuleType, built: tuple[Path, Path]
) -> None:
    takers = {f"id_digits/{s}" for s in rc.TAKER_SPEAKERS}
    for row in _rows(built[0]):
        assert row["taker_speaker"] in takers
        assert row["caller_speaker"] not in takers


def test_mono_stereo_ulaw_and_pcm(built: tuple[Path, Path]) -> None:
    manifest = built[0]
    seen = set()
    for row in _rows(manifest):
        info = sf.info(str(manifest.parent / row["audio_path"]))
        assert info.samplerate == 8000
        seen.add((info.channels, info.subtype))
        assert (info.channels == 2) == (row["caller_channel"] == "right")
    assert {c for c, _ in seen} == {1, 2}
    assert {s for _, s in seen} == {"ULAW", "PCM_16"}


def test_holdout_list_matches_the_data(rc: ModuleType) -> None:
    assert rc.compute_holdout(DATA) == rc.load_holdout()


def test_training_recipe_and_check_set_share_one_hold_out_list(rc: ModuleType) -> None:
    """The check set reads the training recipe's own list: nothing it uses is trained on."""
    from training.simulator.realbank import HOLDOUT_PATH, role_files

    assert rc.HOLDOUT_PATH == HOLDOUT_PATH
    trainable = {f for files in role_files(DATA, rc.load_holdout()).values() for f in files}
    assert not trainable & set(rc.load_holdout()["files"])
