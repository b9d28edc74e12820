"""Training on small or odd data (issue 16, point 3): a model or a clear error, never a
traceback from scikit-learn.

Tables are make_table's seeded synthetic calls (every name of FEATURE_NAMES), cut down or
bent into the odd shape each test names; boosters are small so each fit takes a second.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

from callsift import app
from classifier.artifact import load_model, read_card
from classifier.errors import CallsiftError, InvalidParameterError
from classifier.features import FEATURE_NAMES, MONO_FEATURES
from classifier.formats import LABELS
from classifier.model import CallClassifier
from tests.code.test_model import make_table
from tests.code.test_prefix_model import PREFIXES, make_prefix_table
from training.split import honest_split
from training.train import TrainResult, train_table

FAST: dict[str, Any] = {"max_iter": 15}
#: What a mono recording has no value for: a centre exporting mono calls has none at all.
MONO_NAN = [f for f, v in MONO_FEATURES.items() if np.isnan(v)]


def _fit(table: pd.DataFrame, groups: Any = "caller", **params: Any) -> CallClassifier:
    g = table["caller_id"] if isinstance(groups, str) else groups
    return CallClassifier(**{**FAST, **params}).fit(table, table["label"], groups=g)


def _usable(clf: CallClassifier, table: pd.DataFrame) -> None:
    proba = clf.predict_proba(table)
    assert proba.shape == (len(table), len(LABELS))
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert set(clf.flag(table)) <= {
        "none",
        "possible_prank",
        "likely_prank",
        "possible_ghost",
        "likely_ghost",
    }


def _bands(clf: CallClassifier) -> None:
    # Whatever the data, the thresholds still keep the emergency budget on validation.
    budget = clf.possible_target * clf.target_margin
    assert clf.validation_["emergency_flagged_possible"] <= budget + 1e-12


# --- the reported crash: a feature with no value in the rows a booster learns from ------


def test_reported_crash_a_mono_export_of_299_calls_trains() -> None:
    # A centre exporting mono recordings has no caller/call-taker features at all: every
    # such column is NaN, and scikit-learn's binning of an empty column raised
    # "window shape cannot be larger than input array shape" from _out_of_fold.
    table = make_table(299, seed=1)
    table[MONO_NAN] = np.nan
    table["stereo"] = 0.0
    clf = _fit(table)
    _usable(clf, table)
    _bands(clf)
    # The model learnt nothing from the empty columns: values there change no score.
    filled = table.copy()
    filled[MONO_NAN] = 0.7
    np.testing.assert_array_equal(clf.predict_proba(filled), clf.predict_proba(table))


def test_a_column_empty_in_one_folds_training_rows_trains() -> None:
    # A feature measured on one caller's calls only (say, the only stereo line): the fold
    # that scores that caller learns from rows where the feature is empty.
    table = make_table(200, seed=3)
    mine = (table["caller_id"] == table["caller_id"].iloc[0]).to_numpy()
    table.loc[~mine, "snr_db"] = np.nan
    clf = _fit(table)
    _usable(clf, table)
    _bands(clf)


def test_a_feature_present_only_in_zero_weight_rows_trains() -> None:
    # scikit-learn bins only rows of non-zero weight: a feature whose values all sit in
    # rows of weight 0 is as empty as an all-NaN one.
    table = make_table(160, seed=4)
    weights = np.ones(len(table))
    weights[:10] = 0.0
    table.loc[10:, "snr_db"] = np.nan
    clf = CallClassifier(**FAST).fit(
        table, table["label"], groups=table["caller_id"], sample_weight=weights
    )
    _usable(clf, table)


# --- degenerate columns ------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", ["one_constant", "one_all_missing", "all_constant", "all_missing", "mixed"]
)
def test_degenerate_columns_give_a_model(case: str) -> None:
    table = make_table(150, seed=5)
    if case == "one_constant":
        table["speech_ratio"] = 0.5
    elif case == "one_all_missing":
        table["speech_ratio"] = np.nan
    elif case == "all_constant":
        table[list(FEATURE_NAMES)] = 1.0
    elif case == "all_missing":
        table[list(FEATURE_NAMES)] = np.nan
    else:  # half the features constant, the other half missing
        table[list(FEATURE_NAMES[::2])] = 3.0
        table[list(FEATURE_NAMES[1::2])] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no library warning reaches the user either
        clf = _fit(table)
    _usable(clf, table)
    _bands(clf)
    if case.startswith("all") or case == "mixed":
        # Nothing to learn from: every call gets the same score and no emergency call is
        # flagged on validation.
        proba = clf.predict_proba(table)
        np.testing.assert_allclose(proba, np.broadcast_to(proba[0], proba.shape))
        assert clf.validation_["emergency_flagged_possible"] == 0.0


# --- classes with few calls --------------------------------------------------------------


def _keep(table: pd.DataFrame, label: str, n: int) -> pd.DataFrame:
    rows = table.index[table["label"] == label]
    return table.drop(index=rows[n:]).reset_index(drop=True)


@pytest.mark.parametrize(("label", "n"), [("ghost", 3), ("prank", 1), ("emergency", 2)])
def test_a_class_with_too_few_calls_is_refused_with_the_counts(label: str, n: int) -> None:
    table = _keep(make_table(150, seed=6), label, n)
    counts = table["label"].value_counts()
    with pytest.raises(InvalidParameterError) as err:
        _fit(table)
    msg = str(err.value)
    # How many of each class it has, which is short, and how many it needs.
    for c in LABELS:
        assert f"'{c}': {counts[c]}" in msg, msg
    assert f"too few {label} calls ({n})" in msg, msg
    assert "at least n_folds=4 calls" in msg, msg


def test_a_class_with_as_many_calls_as_folds_trains_even_from_one_caller() -> None:
    table = _keep(make_table(150, seed=6), "ghost", 4)
    table.loc[table["label"] == "ghost", "caller_id"] = "+62811000111"
    clf = _fit(table)
    _usable(clf, table)
    _bands(clf)


def test_fewer_folds_need_fewer_calls() -> None:
    table = _keep(make_table(150, seed=6), "ghost", 2)
    _usable(_fit(table, n_folds=2), table)


# --- callers -----------------------------------------------------------------------------


def _one_caller(table: pd.DataFrame, share: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    unique = [f"+6281{i:07d}" for i in range(len(table))]
    return np.where(rng.random(len(table)) < share, "+62811111111", unique)


def test_one_caller_with_most_calls_is_refused_with_the_reason() -> None:
    table = make_table(150, seed=7)
    groups = _one_caller(table, 0.9)
    n_big = int((groups == "+62811111111").sum())
    with pytest.raises(InvalidParameterError) as err:
        _fit(table, groups=groups)
    msg = str(err.value)
    assert f"one caller (+62811111111) holds {n_big} of 150" in msg, msg
    assert "leave caller_id empty" in msg, msg


def test_one_caller_with_a_third_of_the_calls_trains() -> None:
    table = make_table(150, seed=7)
    clf = _fit(table, groups=_one_caller(table, 0.33))
    _usable(clf, table)
    _bands(clf)


@pytest.mark.parametrize("n_callers", [1, 3])
def test_fewer_callers_than_folds_is_refused(n_callers: int) -> None:
    table = make_table(120, seed=8)
    groups = [f"+6281{i % n_callers}" for i in range(len(table))]
    with pytest.raises(InvalidParameterError, match=rf"from {n_callers} caller"):
        _fit(table, groups=groups)


def test_withheld_numbers_are_callers_of_their_own() -> None:
    # Every number withheld: one caller per call, not one caller holding every call.
    table = make_table(120, seed=8)
    clf = _fit(table, groups=[""] * len(table))
    _usable(clf, table)


# --- small tables, with and without prefix rows ------------------------------------------


def test_small_tables_give_a_model_or_a_clear_error() -> None:
    """Seeded small and odd tables: each fit ends in a model or a CallsiftError."""
    rng = np.random.default_rng(16)
    outcomes = {"model": 0, "refused": 0}
    for _ in range(14):
        n = int(rng.integers(12, 120))
        prefixes = bool(rng.random() < 0.4)
        seed = int(rng.integers(10**6))
        table = make_prefix_table(n, seed=seed) if prefixes else make_table(n, seed=seed)
        for f in rng.choice(np.asarray(FEATURE_NAMES), 3):
            table[f] = np.nan if rng.random() < 0.5 else 2.0
        label = str(rng.choice(np.asarray(LABELS)))
        only = (table["label"] == label).to_numpy()
        table.loc[~only, str(rng.choice(np.asarray(FEATURE_NAMES)))] = np.nan
        params: dict[str, Any] = {"max_iter": 5, "n_folds": int(rng.integers(2, 5))}
        weights = None
        if prefixes:
            params["prefixes"] = PREFIXES
            weights = np.where(table["prefix_s"].isna(), 1.0, 0.25)
        try:
            clf = CallClassifier(**params).fit(
                table, table["label"], groups=table["caller_id"], sample_weight=weights
            )
        except CallsiftError:
            outcomes["refused"] += 1
            continue
        _usable(clf, table)
        outcomes["model"] += 1
    assert outcomes["model"] >= 7, outcomes


# --- `callsift train` on odd exports (training.train, from the feature table on) ---------


def _export(n: int, seed: int) -> pd.DataFrame:
    """make_table's calls as load_training_table gives them: one manifest, no prefixes."""
    return make_table(n, seed=seed).assign(source="0")


def _train(table: pd.DataFrame, out: Path, **kw: Any) -> TrainResult:
    return train_table(table, out, manifests=["export/manifest.csv"], params={"max_iter": 15}, **kw)


def test_train_on_a_mono_export_of_299_calls_writes_a_model(tmp_path: Path) -> None:
    table = _export(299, seed=1)
    table[MONO_NAN] = np.nan
    result = _train(table, tmp_path / "m")
    model = load_model(tmp_path / "m")
    assert (tmp_path / "m" / "report" / "report.md").is_file()
    # The card says which features had nothing to learn from, in FEATURE_NAMES order.
    assert result.card["training_data"]["features_without_values"] == MONO_NAN
    scores = model.score_frame(table.head(5))
    assert len(scores) == 5


def test_train_on_a_subset_of_the_features(tmp_path: Path) -> None:
    """``features`` chooses the call model's inputs; the pre-answer model keeps its own."""
    from classifier.features import FEATURE_NAMES

    chosen = [f for f in FEATURE_NAMES if not f.startswith("mfcc_")]
    table = _export(299, seed=4)
    train_table(
        table,
        tmp_path / "m",
        manifests=["export/manifest.csv"],
        params={"max_iter": 15, "features": chosen},
    )
    model = load_model(tmp_path / "m")
    assert model.call.features_ == tuple(chosen)
    assert not any(f.startswith("mfcc_") for f in model.pre_answer.features_)
    assert len(model.score_frame(table.head(3))) == 3


def test_train_on_calls_of_one_day(tmp_path: Path) -> None:
    # The time split cuts within the day: train calls in its morning, test calls after.
    table = _export(200, seed=2)
    rng = np.random.default_rng(2)
    start = datetime(2025, 6, 3, tzinfo=UTC)
    table["started_at"] = [
        (start + timedelta(seconds=int(s))).isoformat() for s in rng.integers(0, 86_399, 200)
    ]
    result = _train(table, tmp_path / "m")
    split = result.card["split"]
    assert split["train_calls"] > 0 and split["test_calls"] > 0
    assert split["train_period"][:10] == split["test_period"][:10] == "2025-06-03"
    assert split["train_period"].split(" to ")[1] < split["test_period"].split(" to ")[0]


def test_calls_all_at_one_time_are_refused_with_the_reason(tmp_path: Path) -> None:
    table = _export(120, seed=3)
    table["started_at"] = "2025-06-03T09:00:00+08:00"
    with pytest.raises(InvalidParameterError, match="no training calls out of 120"):
        _train(table, tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_a_refusal_says_it_is_about_the_train_side_of_the_split(tmp_path: Path) -> None:
    table = _export(200, seed=4)
    # Two ghost calls, both on the train side of the split (the split is made per call).
    train_side = np.zeros(len(table), dtype=bool)
    train_side[honest_split(table).train] = True
    ghosts = table.index[(table["label"] == "ghost").to_numpy() & train_side]
    drop = table.index[(table["label"] == "ghost").to_numpy() & ~train_side]
    table = table.drop(index=[*ghosts[2:], *drop]).reset_index(drop=True)
    assert (table["label"] == "ghost").sum() == 2
    with pytest.raises(InvalidParameterError) as err:
        _train(table, tmp_path / "m")
    msg = str(err.value)
    assert msg.startswith("the train side of the split ("), msg
    assert "too few ghost calls" in msg, msg
    assert not (tmp_path / "m").exists()


def test_a_class_with_no_call_on_the_train_side_is_refused(tmp_path: Path) -> None:
    # The export's ghost calls all fell on the test side: a model trained without them
    # would never flag a ghost call, which is not what was asked for.
    table = _export(200, seed=4)
    train_side = np.zeros(len(table), dtype=bool)
    train_side[honest_split(table).train] = True
    ghost = (table["label"] == "ghost").to_numpy()
    # Relabelled rather than dropped, so that the split (labels aside) stays the same.
    table.loc[ghost & train_side, "label"] = "prank"
    n_ghost = int((table["label"] == "ghost").sum())
    assert n_ghost > 0
    with pytest.raises(InvalidParameterError) as err:
        _train(table, tmp_path / "m")
    assert f"holds no ghost call (of {n_ghost} labelled)" in str(err.value), err.value


def test_folds_by_manifest_refuse_one_manifest_holding_most_calls(tmp_path: Path) -> None:
    table = _export(200, seed=5)
    table["source"] = np.where(np.arange(200) < 140, "0", (np.arange(200) % 3 + 1).astype(str))
    names = [f"centre{k}/manifest.csv" for k in range(4)]
    with pytest.raises(InvalidParameterError, match=r"--fold-by manifest: centre0/manifest.csv"):
        train_table(
            table, tmp_path / "m", manifests=names, params={"max_iter": 5}, fold_by="manifest"
        )


# --- the command line: a mono export trains, a refusal is one line ------------------------


def _mono_export(folder: Path, n: int, *, caller: str | None = None, seed: int = 0) -> Path:
    """A manifest of ``n`` short mono 8 kHz recordings: tones for callers who speak, faint
    hiss for ghost calls; a mono line has no caller/call-taker features at all."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.resize(np.asarray(["emergency", "emergency", *LABELS[1:]]), n)
    rng.shuffle(labels)
    start = datetime(2025, 6, 2, tzinfo=UTC)
    rows = []
    t = np.arange(int(1.5 * 8000)) / 8000
    for i, label in enumerate(labels):
        hiss = rng.normal(0, 0.002, t.size)
        if label == "ghost":
            x = hiss
        else:
            f0 = {"emergency": 180.0, "non_emergency": 140.0, "prank": 320.0}[str(label)]
            x = hiss + 0.3 * np.sin(2 * np.pi * f0 * t) * (np.sin(2 * np.pi * 2 * t) > 0)
        sf.write(folder / f"c{i}.wav", x.astype(np.float32), 8000, subtype="PCM_16")
        when = start + timedelta(minutes=int(rng.integers(0, 7 * 24 * 60)))
        rows.append(
            {
                "call_id": f"c{i}",
                "caller_id": caller or f"+6281{i:08d}",
                "started_at": when.isoformat(),
                "duration_s": 1.5,
                "audio_path": f"c{i}.wav",
                "label": str(label),
            }
        )
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


CLI_FAST = ["--max-iter", "5", "--prefixes", "none", "--jobs", "1", "--no-mlflow"]


def test_cli_trains_on_a_small_mono_export(tmp_path: Path) -> None:
    # Before the fix: the traceback of issue 16 (binning an empty feature in a fold).
    manifest = _mono_export(tmp_path / "export", 80)
    out = tmp_path / "model"
    result = CliRunner().invoke(app, ["train", str(manifest), "--out", str(out), *CLI_FAST])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "without any value in the training calls, not used: " in result.output
    card = read_card(out)
    assert set(MONO_NAN) <= set(card["training_data"]["features_without_values"])
    load_model(out)


def test_cli_refusal_is_one_line_and_exit_2(tmp_path: Path) -> None:
    # Every call from one number (a trunk line in the export): no honest split can be made.
    manifest = _mono_export(tmp_path / "export", 24, caller="+62211234567")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from callsift import main; main()",
            "train",
            str(manifest),
            "--out",
            str(tmp_path / "model"),
            *CLI_FAST,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    # Progress bars aside, one line: the error.
    lines = [
        line
        for line in proc.stderr.splitlines()
        if line.strip() and not line.startswith("features:")
    ]
    assert lines == [lines[0]] and lines[0].startswith("error: the split left no "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "model").exists()
