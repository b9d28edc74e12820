"""Model folders on disk: atomic save, card checks and load (classifier/artifact.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import classifier.artifact as artifact
from classifier.artifact import (
    CARD_FILE,
    MODEL_FILE,
    check_card,
    library_versions,
    load_model,
    read_card,
    save_model,
)
from classifier.errors import CallsiftError, ModelMismatchError
from classifier.features import FEATURE_NAMES
from classifier.formats import LABELS
from classifier.model import CallClassifier
from classifier.scoring import PRE_ANSWER_FEATURES
from tests.code.test_model import make_table

_FAST: dict[str, Any] = {"max_iter": 10, "n_folds": 3}


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return make_table(n=300, seed=1)


@pytest.fixture(scope="module")
def models(table: pd.DataFrame) -> tuple[CallClassifier, CallClassifier]:
    y, g = table["label"], table["caller_id"]
    call = CallClassifier(**_FAST).fit(table, y, groups=g)
    pre = CallClassifier(features=PRE_ANSWER_FEATURES, **_FAST).fit(table, y, groups=g)
    return call, pre


@pytest.fixture(scope="module")
def saved(
    tmp_path_factory: pytest.TempPathFactory, models: tuple[CallClassifier, CallClassifier]
) -> Path:
    call, pre = models
    out = tmp_path_factory.mktemp("saved") / "model"
    return save_model(out, call=call, pre_answer=pre, card={"name": "test", "version": "v1"})


@pytest.fixture
def copy(saved: Path, tmp_path: Path) -> Path:
    """A private copy of the saved model that a test may damage."""
    return Path(shutil.copytree(saved, tmp_path / "model"))


def _edit_card(folder: Path, **changes: Any) -> None:
    card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
    card.update(changes)
    (folder / CARD_FILE).write_text(json.dumps(card), encoding="utf-8")


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_save_then_load_gives_identical_predictions(
    saved: Path, models: tuple[CallClassifier, CallClassifier], table: pd.DataFrame
) -> None:
    call, pre = models
    loaded = load_model(saved)
    np.testing.assert_array_equal(loaded.call.predict_proba(table), call.predict_proba(table))
    np.testing.assert_array_equal(loaded.pre_answer.predict_proba(table), pre.predict_proba(table))
    assert loaded.call.thresholds_ == call.thresholds_
    scores = loaded.score_frame(table.iloc[:20], explain=False)
    np.testing.assert_array_equal([s.flag for s in scores], call.flag(table.iloc[:20]))
    assert loaded.version == "v1"


def test_card_describes_the_model(
    saved: Path, models: tuple[CallClassifier, CallClassifier]
) -> None:
    call, pre = models
    card = read_card(saved)
    assert card["name"] == "test" and card["version"] == "v1"
    assert card["libraries"] == library_versions()
    assert set(card["libraries"]) >= {"python", "numpy", "scipy", "scikit-learn", "joblib"}
    assert card["features"] == card["model_features"] == list(FEATURE_NAMES)
    assert card["pre_answer_features"] == list(PRE_ANSWER_FEATURES)
    assert card["classes"] == list(LABELS)
    assert card["thresholds"]["call"] == call.thresholds_
    assert card["thresholds"]["pre_answer"] == pre.thresholds_
    assert set(card["validation"]) == {"call", "pre_answer"}
    assert card["validation"]["call"]["calls"] == 300
    assert len(card["model_sha256"]) == 64
    assert card["model_sha256"] == artifact._sha256(saved / MODEL_FILE)
    check_card(card, where="here")
    assert _leftovers(saved.parent) == []


def test_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(ModelMismatchError, match="does not exist"):
        load_model(tmp_path / "nowhere")


def test_file_instead_of_folder_raises(tmp_path: Path) -> None:
    f = tmp_path / "model.joblib"
    f.write_bytes(b"not a folder")
    with pytest.raises(ModelMismatchError, match="not a folder"):
        load_model(f)


def test_folder_without_card_raises(copy: Path) -> None:
    (copy / CARD_FILE).unlink()
    with pytest.raises(ModelMismatchError, match=f"no {CARD_FILE}"):
        load_model(copy)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ('{"format": 1, "libraries": ', "not a readable model card"),
        ("[1, 2, 3]", "expected a JSON object"),
        ("", "not a readable model card"),
    ],
)
def test_corrupt_card_raises(copy: Path, text: str, pattern: str) -> None:
    (copy / CARD_FILE).write_text(text, encoding="utf-8")
    with pytest.raises(ModelMismatchError, match=pattern):
        load_model(copy)


def test_card_of_another_format_raises(copy: Path) -> None:
    _edit_card(copy, format=99)
    with pytest.raises(ModelMismatchError, match="model format 99"):
        load_model(copy)


def test_missing_model_file_raises(copy: Path) -> None:
    (copy / MODEL_FILE).unlink()
    with pytest.raises(ModelMismatchError, match=f"no {MODEL_FILE}"):
        load_model(copy)


def test_truncated_model_file_raises(copy: Path) -> None:
    blob = (copy / MODEL_FILE).read_bytes()
    (copy / MODEL_FILE).write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ModelMismatchError, match=r"does not match its card.*corrupt"):
        load_model(copy)


def test_corrupted_byte_in_model_file_raises(copy: Path) -> None:
    blob = bytearray((copy / MODEL_FILE).read_bytes())
    blob[len(blob) // 3] ^= 0xFF
    (copy / MODEL_FILE).write_bytes(bytes(blob))
    with pytest.raises(ModelMismatchError, match="SHA-256"):
        load_model(copy)


def test_unloadable_model_file_with_matching_hash_raises(copy: Path) -> None:
    (copy / MODEL_FILE).write_bytes(b"garbage, not a pickle")
    _edit_card(copy, model_sha256=artifact._sha256(copy / MODEL_FILE))
    with pytest.raises(ModelMismatchError, match="cannot be loaded"):
        load_model(copy)


def test_model_file_holding_something_else_raises(copy: Path) -> None:
    import joblib

    joblib.dump({"call": "not a classifier", "pre_answer": 1}, copy / MODEL_FILE)
    _edit_card(copy, model_sha256=artifact._sha256(copy / MODEL_FILE))
    with pytest.raises(ModelMismatchError, match="does not hold callsift classifiers"):
        load_model(copy)


def test_other_scikit_learn_minor_version_raises(copy: Path) -> None:
    card = read_card(copy)
    major, minor = library_versions()["scikit-learn"].split(".")[:2]
    other = f"{major}.{int(minor) + 1}.0"
    _edit_card(copy, libraries={**card["libraries"], "scikit-learn": other})
    with pytest.raises(ModelMismatchError, match=rf"scikit-learn {other}.*retrain"):
        load_model(copy)


def test_other_patch_version_is_accepted(copy: Path) -> None:
    card = read_card(copy)
    major, minor = library_versions()["scikit-learn"].split(".")[:2]
    _edit_card(copy, libraries={**card["libraries"], "scikit-learn": f"{major}.{minor}.99"})
    assert load_model(copy).call.classes_.tolist() == list(LABELS)


def test_card_without_libraries_raises(copy: Path) -> None:
    _edit_card(copy, libraries=None)
    with pytest.raises(ModelMismatchError, match="missing"):
        load_model(copy)


def test_different_feature_list_raises(copy: Path) -> None:
    feats = [f for f in FEATURE_NAMES if f != "snr_db"] + ["mystery_feature"]
    _edit_card(copy, features=feats)
    with pytest.raises(ModelMismatchError, match=r"feature list differs.*snr_db.*mystery_feature"):
        load_model(copy)


@pytest.mark.parametrize(
    ("chosen", "pattern"),
    [
        (["snr_db", "mystery_feature"], r"does not compute \(\['mystery_feature'\]\)"),
        ([], "does not compute"),
        (["snr_db"], "reads other features than its card lists"),
    ],
)
def test_model_features_must_be_known_and_match_the_model(
    copy: Path, chosen: list[str], pattern: str
) -> None:
    _edit_card(copy, model_features=chosen)
    with pytest.raises(ModelMismatchError, match=pattern):
        load_model(copy)


def test_different_pre_answer_feature_list_raises(copy: Path) -> None:
    _edit_card(copy, pre_answer_features=list(PRE_ANSWER_FEATURES)[:-1])
    with pytest.raises(ModelMismatchError, match="pre-answer feature list"):
        load_model(copy)


def test_errors_are_callsift_errors() -> None:
    assert issubclass(ModelMismatchError, CallsiftError)


def test_failed_save_leaves_the_old_model(
    copy: Path,
    models: tuple[CallClassifier, CallClassifier],
    table: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    call, pre = models
    before = (copy / MODEL_FILE).read_bytes()

    def boom(*args: Any, **kwargs: Any) -> None:
        # Write part of a file first, as a crash half-way through would.
        Path(args[1]).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(artifact.joblib, "dump", boom)
    with pytest.raises(OSError, match="disk full"):
        save_model(copy, call=call, pre_answer=pre, card={"version": "v2"})
    monkeypatch.undo()
    assert (copy / MODEL_FILE).read_bytes() == before
    loaded = load_model(copy)
    assert loaded.version == "v1"
    np.testing.assert_array_equal(loaded.call.predict_proba(table), call.predict_proba(table))
    assert _leftovers(copy.parent) == []


def test_failure_after_the_model_file_cleans_up(
    copy: Path, models: tuple[CallClassifier, CallClassifier], tmp_path: Path
) -> None:
    call, pre = models
    with pytest.raises(FileNotFoundError):
        save_model(
            copy,
            call=call,
            pre_answer=pre,
            card={"version": "v2"},
            extra_files={"report.md": tmp_path / "missing.md"},
        )
    assert load_model(copy).version == "v1"
    assert _leftovers(copy.parent) == []


def test_save_over_a_folder_replaces_it(
    copy: Path, models: tuple[CallClassifier, CallClassifier], tmp_path: Path
) -> None:
    call, pre = models
    (copy / "stale.txt").write_text("from the old model", encoding="utf-8")
    src = tmp_path / "src"
    figures = src / "figures"
    figures.mkdir(parents=True)
    report = src / "report.md"
    report.write_text("# report\n", encoding="utf-8")
    (figures / "a.png").write_bytes(b"\x89PNG")
    out = save_model(
        copy,
        call=call,
        pre_answer=pre,
        card={"version": "v2"},
        extra_files={"report.md": report, "figures": figures},
    )
    assert out == copy
    assert load_model(copy).version == "v2"
    # Replaced as a whole, not merged: files of the old model are gone.
    assert not (copy / "stale.txt").exists()
    assert (copy / "report.md").read_text(encoding="utf-8") == "# report\n"
    assert (copy / "figures" / "a.png").is_file()
    assert _leftovers(copy.parent) == []
    assert sorted(p.name for p in copy.parent.iterdir()) == ["model", "src"]


def test_save_creates_missing_parents(
    tmp_path: Path, models: tuple[CallClassifier, CallClassifier]
) -> None:
    call, pre = models
    out = save_model(tmp_path / "a" / "b" / "m", call=call, pre_answer=pre, card={})
    assert load_model(out).version == "unknown"
    assert (out / CARD_FILE).stat().st_mode & 0o777 in (0o644, 0o664, 0o600)
    assert out.stat().st_mode & 0o777 == 0o755
