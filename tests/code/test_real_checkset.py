"""Calls of real recordings (training/realcalls.py): the check set (bench/real_checkset.py,
issue 15) and the training pool of the default recipe, small builds.

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


# ----------------------------------------------------- the training pool of the composer
@pytest.fixture(scope="module")
def train_built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.realcalls import build

    return build(
        tmp_path_factory.mktemp("realtrain") / "t",
        data=DATA,
        n_calls=16,
        seed=2,
        min_per_class=3,
        pool="train",
    )


def test_training_pool_never_uses_held_out_or_nc_files(train_built: Path) -> None:
    """Real training calls for the default recipe: no check-set file, no speech-nc."""
    from training.simulator.realbank import held_out, load_holdout

    holdout = load_holdout()
    assert not validate_manifest(train_built)
    rows = _rows(train_built)
    used = {f for r in rows for f in r["source_files"].split(";") if f}
    assert used and all((DATA / f).is_file() for f in used)
    assert not [f for f in used if held_out(f, holdout)]
    assert {r["label"] for r in rows} == {"emergency", "non_emergency", "prank", "ghost"}


def test_training_pool_voices_are_apart(train_built: Path) -> None:
    """Call-takers never call; slowed children (adult women's voices) are not the
    children who call as children."""
    from training.realcalls import Library
    from training.simulator.realbank import load_holdout

    lib = Library(DATA, load_holdout(), "train")
    assert lib.takers and not set(lib.takers) & set(lib.callers)
    assert {v[0] for v in lib.callers} == {"M", "F"}
    slowed = {v.split("child")[1].split("@")[0] for v in lib.digits if "child" in v}
    assert slowed and not slowed & set(lib.children)
    for r in _rows(train_built):
        assert r["taker_speaker"] in lib.takers
        assert r["caller_speaker"] not in lib.takers


def test_a_missing_data_folder_is_named(tmp_path: Path) -> None:
    from classifier.errors import InvalidParameterError
    from training.realcalls import build

    with pytest.raises(InvalidParameterError, match="no such folder"):
        build(tmp_path / "o", data=tmp_path / "nothing", n_calls=8, seed=1, pool="train")
    assert not (tmp_path / "o").exists()


def test_a_short_report_hung_up_mid_sentence_still_holds_the_report(rc: ModuleType) -> None:
    # Cut after the greeting, an emergency call would be an SOS burst labelled
    # emergency: the check set would count as a false flag what no recording can tell.
    import dataclasses

    import numpy as np

    from training.realcalls import SR, Renderer
    from training.simulator.population import plan_calls

    renderer = Renderer(rc.Library(DATA, rc.load_holdout(rc.HOLDOUT_PATH), "check"), 3)
    plans = [p for p in plan_calls("balanced", n_calls=600, seed=3) if p.label == "emergency"]
    for i, plan in enumerate(plans[:5]):
        plan = dataclasses.replace(plan, scenario="short_report", hangup_mid_sentence=True)
        call, _ = renderer.render(plan, 4.0, np.random.default_rng([3, i, 15]), mono=False)
        frames = call.caller[: call.n // 160 * 160].reshape(-1, 160)
        loud = (np.sqrt(np.mean(frames**2, axis=1)) > 10 ** (-40 / 20)).sum() * 160 / SR
        assert loud >= 0.5, f"{plan.call_id}: {loud:.2f} s of the caller's voice"
