"""`callsift train` and `callsift evaluate` end to end on a small simulated corpus.

The corpus is real audio from the simulator, decoded and featurised by the same code as
the service; the model is small (few iterations) so the file runs in well under a minute.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from callsift import app
from classifier.artifact import load_model, read_card
from classifier.errors import (
    CallsiftError,
    InvalidManifestError,
    InvalidParameterError,
    ModelMismatchError,
)
from tests.conftest import SMALL_CORPUS_CALLS as N
from training.evaluate import SCORE_COLUMNS

runner = CliRunner()
# Two prefixes (two time buckets) keep the prefix path exercised at a small cost.
SMALL = [
    "--max-iter",
    "25",
    "--test-callers",
    "0.4",
    "--test-after",
    "0.6",
    "--prefixes",
    "2,10",
    "--no-mlflow",
    "--jobs",
    "1",
]


@pytest.fixture(scope="module")
def corpus(small_corpus: Path) -> Path:
    """The run's shared small corpus (balanced, N calls; tests/conftest.py)."""
    return small_corpus


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory, empty_mlflow_db: Path) -> str:
    """A throwaway MLflow store (a copy of one whose tables are made: seconds saved)."""
    db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    shutil.copyfile(empty_mlflow_db, db)
    return f"sqlite:///{db}"


@pytest.fixture(scope="module")
def cache(feature_cache: Path) -> str:
    """The run's feature cache: the shared corpus is featured once (tests/conftest.py)."""
    return str(feature_cache)


@pytest.fixture(scope="module")
def trained(
    corpus: Path, tracking: str, cache: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """One real training run, logged and registered in a throwaway MLflow store."""
    out = tmp_path_factory.mktemp("models") / "small"
    args = [a for a in SMALL if a != "--no-mlflow"]
    result = runner.invoke(
        app,
        [
            "train",
            str(corpus),
            "--out",
            str(out),
            *args,
            "--tracking-uri",
            tracking,
            "--cache",
            cache,
        ],
    )
    assert result.exit_code == 0, (result.output, result.exception)
    return out


def test_train_logs_the_run_and_registers_a_challenger(trained: Path, tracking: str) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    version = client.get_model_version_by_alias("callsift", "challenger")
    assert str(version.version) == "1"
    run = client.get_run(version.run_id)
    card = read_card(trained)
    assert run.data.tags["data_fingerprint"] == card["data_fingerprint"]
    assert run.data.tags["code_version"] == card["code_version"]
    assert "per_class.prank.roc_auc" in run.data.metrics
    # The early-warning table is logged too, one metric per prefix and figure.
    assert "prefixes.2.ghost_recall_possible" in run.data.metrics
    assert "prefixes.whole.emergency_flagged_possible" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "card.json" in artifacts


def _rewrite(manifest: Path, dest: Path, edit) -> Path:
    """Copy a manifest beside the original audio with rows changed by ``edit``."""
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    fields = list(rows[0])
    rows = edit(rows)
    dest.parent.mkdir(parents=True, exist_ok=True)
    for r in rows:
        r["audio_path"] = str((manifest.parent / r["audio_path"]).resolve())
    with open(dest, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return dest


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_train_writes_model_card_and_report(trained: Path) -> None:
    for name in ("model.joblib", "card.json", "baselines.joblib", "report/report.md"):
        assert (trained / name).is_file(), name
    card = read_card(trained)
    for key in (
        "version",
        "created_at",
        "data_fingerprint",
        "libraries",
        "features",
        "thresholds",
        "metrics",
        "split",
        "code_version",
    ):
        assert key in card, key
    assert card["split"]["callers_in_both"] == 0
    assert card["split"]["test_calls"] > 0 and card["split"]["train_calls"] > 0
    assert set(card["thresholds"]["call"]) == {"possible", "likely"}
    assert (trained / "report" / "roc.png").read_bytes()[:4] == b"\x89PNG"
    # Prefixes: listed on the card, with a validation figure per time bucket.
    assert card["prefixes"] == [2.0, 10.0] and card["min_likely_ghost_s"] == 10.0
    assert set(card["thresholds"]["call_by_prefix"]) == {"2", "10", "complete"}
    assert set(card["validation"]["call"]["by_prefix"]) == {"2", "10", "complete"}
    assert card["training_data"]["prefix_rows"] > 0
    assert (trained / "report" / "prefixes.png").read_bytes()[:4] == b"\x89PNG"
    report = (trained / "report" / "report.md").read_text()
    assert "## Early warning" in report and "| 2 s |" in report and "| whole call |" in report
    assert "callers disjoint" in report and "time ordered" in report
    assert "energy_rule" in report and "mfcc_logreg" in report
    load_model(trained)


def test_evaluate_labelled_manifest(
    trained: Path, corpus: Path, cache: str, tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(corpus),
            "--out",
            str(out),
            "--model",
            str(trained),
            "--cache",
            cache,
            "--prefix",
            "2",
            "--prefix",
            "5,10",
        ],
    )
    assert result.exit_code == 0, (result.output, result.exception)
    scores = pd.read_csv(out / "scores.csv", keep_default_na=False)
    assert tuple(scores.columns) == SCORE_COLUMNS
    assert len(scores) == N and scores["call_id"].is_unique
    probs = scores[["p_emergency", "p_non_emergency", "p_prank", "p_ghost"]].sum(axis=1)
    assert ((probs - 1).abs() < 1e-6).all()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["labelled_calls"] == N
    for cls in ("prank", "ghost"):
        assert 0.5 < metrics["per_class"][cls]["roc_auc"] <= 1.0
    assert {row["baseline"] for row in metrics["comparison"]} >= {"energy_rule", "vad_rule"}
    for png in ("roc.png", "pr.png", "calibration.png", "confusion.png", "prefixes.png"):
        assert (out / png).is_file(), png
    # --prefix: every call scored on its first seconds too, a view per length.
    early = metrics["prefixes"]
    assert list(early) == ["2", "5", "10", "whole"]
    assert all(v["calls"] == N for v in early.values())
    assert early["2"]["cut_calls"] >= early["10"]["cut_calls"] > 0
    assert early["whole"]["cut_calls"] == 0
    whole = early["whole"]
    assert whole["ghost_recall_possible"] == metrics["flags"]["possible"]["ghost_recall"]
    assert whole["emergency_flagged_possible"] == metrics["flags"]["possible"]["emergency"]
    rows = pd.read_csv(out / "scores_prefix.csv")
    assert set(rows["prefix_s"].dropna()) == {2.0, 5.0, 10.0}
    assert "first 5 s: ghost recall" in result.output
    assert "## Early warning" in (out / "report.md").read_text()


def test_evaluate_refuses_a_bad_prefix(trained: Path, corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    args = ["evaluate", str(corpus), "--out", str(out), "--model", str(trained)]
    result = runner.invoke(app, [*args, "--prefix", "2,soon"])
    assert isinstance(result.exception, CallsiftError)
    assert "expected seconds separated by commas" in str(result.exception)
    result = runner.invoke(app, [*args, "--prefix", "0"])
    assert "prefix 0.0 s" in str(result.exception)
    assert not out.exists()


def test_evaluate_defaults_to_the_shipped_model(corpus: Path, cache: str, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    # The module's feature cache: the calls' features are extracted once (by `trained`).
    result = runner.invoke(app, ["evaluate", str(corpus), "--out", str(out), "--cache", cache])
    assert result.exit_code == 0, (result.output, result.exception)
    assert len(pd.read_csv(out / "scores.csv")) == N


def test_evaluate_unlabelled_manifest_gives_scores_only(
    trained: Path, corpus: Path, tmp_path: Path
) -> None:
    def strip(rows):
        for r in rows[:30]:
            r["label"] = ""
        return rows[:30]

    manifest = _rewrite(corpus, tmp_path / "m" / "manifest.csv", strip)
    out = tmp_path / "eval"
    result = runner.invoke(
        app, ["evaluate", str(manifest), "--out", str(out), "--model", str(trained)]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert len(pd.read_csv(out / "scores.csv")) == 30
    assert not (out / "metrics.json").exists()
    assert (out / "report.md").is_file()


def test_unreadable_audio_is_still_scored_from_history(
    trained: Path, corpus: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")

    def corrupt(rows):
        rows = rows[:20]
        rows[3]["audio_path"] = str(bad)
        return rows

    manifest = _rewrite(corpus, tmp_path / "m" / "manifest.csv", corrupt)
    out = tmp_path / "eval"
    result = runner.invoke(
        app, ["evaluate", str(manifest), "--out", str(out), "--model", str(trained)]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    scores = pd.read_csv(out / "scores.csv", keep_default_na=False)
    assert len(scores) == 20
    assert scores.loc[3, "reasons"].startswith("! audio unreadable")
    assert (out / "errors.csv").is_file()


def test_train_refuses_unlabelled_manifest(corpus: Path, tmp_path: Path) -> None:
    def strip(rows):
        for r in rows:
            r["label"] = ""
        return rows

    manifest = _rewrite(corpus, tmp_path / "m" / "manifest.csv", strip)
    result = runner.invoke(app, ["train", str(manifest), "--out", str(tmp_path / "x"), *SMALL])
    assert isinstance(result.exception, InvalidManifestError)
    assert "no call has a label" in str(result.exception)
    assert not (tmp_path / "x").exists()


def test_train_refuses_empty_manifest(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("call_id,caller_id,started_at,duration_s,audio_path,label\n")
    result = runner.invoke(app, ["train", str(manifest), "--out", str(tmp_path / "x"), *SMALL])
    assert isinstance(result.exception, CallsiftError)
    assert not (tmp_path / "x").exists()


def test_failed_training_leaves_the_good_model_in_place(
    trained: Path, corpus: Path, tmp_path: Path
) -> None:
    target = tmp_path / "model"
    shutil.copytree(trained, target)
    before = _sha(target / "model.joblib")

    def one_class(rows):
        return [r for r in rows if r["label"] == "ghost"]

    manifest = _rewrite(corpus, tmp_path / "m" / "manifest.csv", one_class)
    result = runner.invoke(app, ["train", str(manifest), "--out", str(target), *SMALL])
    assert isinstance(result.exception, CallsiftError)
    assert "class" in str(result.exception)
    assert _sha(target / "model.joblib") == before
    load_model(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "model"]


def test_train_refuses_to_overwrite_a_folder_that_is_not_a_model(
    corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "notes"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["train", str(corpus), "--out", str(out), *SMALL])
    assert isinstance(result.exception, CallsiftError)
    assert (out / "keep.txt").read_text() == "mine"


def test_evaluate_with_missing_or_corrupt_model(
    trained: Path, corpus: Path, tmp_path: Path
) -> None:
    result = runner.invoke(
        app, ["evaluate", str(corpus), "--out", str(tmp_path / "e"), "--model", str(tmp_path)]
    )
    assert isinstance(result.exception, ModelMismatchError)
    broken = tmp_path / "broken"
    shutil.copytree(trained, broken)
    (broken / "model.joblib").write_bytes(b"not a model")
    result = runner.invoke(
        app, ["evaluate", str(corpus), "--out", str(tmp_path / "e"), "--model", str(broken)]
    )
    assert isinstance(result.exception, ModelMismatchError)
    assert "corrupt" in str(result.exception)


def test_cli_error_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from callsift import main; main()",
            "evaluate",
            str(tmp_path / "missing.csv"),
            "--out",
            str(tmp_path / "o"),
            "--model",
            str(tmp_path / "nomodel"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr


def test_train_folds_by_manifest_refuse_too_few_manifests(corpus: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["train", str(corpus), "--out", str(tmp_path / "x"), "--fold-by", "manifest", *SMALL],
    )
    assert isinstance(result.exception, InvalidParameterError)
    assert "at least 4 manifests" in str(result.exception)
    assert not (tmp_path / "x").exists()


def test_train_refuses_domains_that_do_not_match_the_manifests(
    corpus: Path, tmp_path: Path
) -> None:
    result = runner.invoke(
        app,
        ["train", str(corpus), "--out", str(tmp_path / "x"), "--domain", "sim", "--domain", "real"],
    )
    assert isinstance(result.exception, InvalidParameterError)
    assert "2 domains for 1 manifests; expected one per manifest" in str(result.exception)
    assert not (tmp_path / "x").exists()


def test_train_folds_by_voice_read_the_manifests_speakers(
    corpus: Path, cache: str, tmp_path: Path
) -> None:
    from training.split import VOICE_COLUMN, caller_keys, fold_keys
    from training.train import load_training_table

    frame = pd.read_csv(corpus, dtype=str, keep_default_na=False)
    frame["audio_path"] = [str((corpus.parent / p).resolve()) for p in frame["audio_path"]]
    # Ten speakers lend their voices to every caller: folds by voice join them all.
    numbers = sorted(set(frame["caller_id"]) - {""})
    speaker = {c: f"S{k % 10}@1.0" for k, c in enumerate(numbers)}
    frame[VOICE_COLUMN] = frame["caller_id"].map(speaker).fillna("")
    manifest = tmp_path / "voices" / "manifest.csv"
    manifest.parent.mkdir()
    frame.to_csv(manifest, index=False)
    table, _ = load_training_table(
        [manifest], n_jobs=1, cache_dir=Path(cache), timezone=None, progress=False, prefixes=(2.0,)
    )
    assert (table["prefix_s"] == 2.0).any()  # prefix rows carry their call's speaker too
    expected = table["caller_id"].map(speaker).fillna("")
    assert (table[VOICE_COLUMN].fillna("") == expected).all()
    keys = fold_keys(table, by="voice", n_folds=4)
    named = (table["caller_id"] != "").to_numpy()
    assert len(set(keys[named])) == 10
    assert len(set(keys)) < len(set(caller_keys(table)))

    result = runner.invoke(
        app,
        ["train", str(manifest), "--out", str(tmp_path / "x"), "--fold-by", "voice", *SMALL],
    )
    assert result.exit_code == 0, result.output
    assert read_card(tmp_path / "x")["folds_by"] == "voice"
