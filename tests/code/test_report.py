"""Evaluation metrics, plots and the Markdown report (training/report.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from classifier.errors import InvalidParameterError
from classifier.formats import LABELS
from training.report import compute_metrics, flat_metrics, write_report

BASELINES = {
    "energy_rule": {"ghost": "base_energy_ghost"},
    "history_rule": {"prank": "base_history_prank"},
    "mfcc_logreg": {"prank": "base_mfcc_prank", "ghost": "base_mfcc_ghost"},
}
NOTES = {
    "energy_rule": "ghost when the caller side is quiet",
    "history_rule": "prank when the caller pranked before",
    "mfcc_logreg": "logistic regression on mean MFCCs",
}
PNG = b"\x89PNG"


def _table(labels: list[str], proba: np.ndarray, flags: list[str] | None = None) -> pd.DataFrame:
    """A scored table with the given labels and probabilities and neutral other columns."""
    n = len(labels)
    rng = np.random.default_rng(7)
    df = pd.DataFrame(
        {
            "call_id": [f"c{i}" for i in range(n)],
            "caller_id": [f"+6281200{i % 13:04d}" for i in range(n)],
            "started_at": ["2025-06-02T14:00:00+08:00"] * n,
            "label": labels,
            "flag": flags if flags is not None else ["none"] * n,
            "reasons": [""] * n,
            "meta_withheld": rng.integers(0, 2, n),
            "meta_simless": (rng.random(n) < 0.1).astype(int),
            "meta_hour": rng.integers(0, 24, n),
            "hist_has_history": rng.integers(0, 2, n),
        }
    )
    for i, c in enumerate(LABELS):
        df[f"p_{c}"] = proba[:, i]
    return df


def _synthetic(seed: int = 0, n: int = 400) -> pd.DataFrame:
    """Labelled calls whose probabilities separate the classes, plus baselines and flags."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(LABELS, size=n, p=[0.4, 0.3, 0.15, 0.15])
    raw = rng.beta(1.5, 4.0, size=(n, 4))
    for i, c in enumerate(LABELS):
        raw[labels == c, i] = rng.beta(4.0, 1.5, size=int((labels == c).sum()))
    proba = raw / raw.sum(axis=1, keepdims=True)
    flags = np.full(n, "none", dtype=object)
    flags[proba[:, 2] > 0.35] = "possible_prank"
    flags[proba[:, 2] > 0.5] = "likely_prank"
    flags[proba[:, 3] > 0.35] = "possible_ghost"
    flags[proba[:, 3] > 0.5] = "likely_ghost"
    df = _table(list(labels), proba, list(flags))
    df.loc[rng.random(n) < 0.1, "label"] = ""
    is_prank = (labels == "prank").astype(float)
    is_ghost = (labels == "ghost").astype(float)
    df["base_history_prank"] = is_prank * 0.3 + rng.random(n)
    df["base_mfcc_prank"] = is_prank * 0.6 + rng.random(n)
    df["base_mfcc_ghost"] = is_ghost * 0.6 + rng.random(n)
    energy = is_ghost * 0.5 + rng.random(n)
    energy[rng.random(n) < 0.2] = np.nan  # calls the rule cannot score
    df["base_energy_ghost"] = energy
    return df


def test_perfect_scorer_has_auc_one_and_reversed_scorer_auc_zero() -> None:
    labels = ["emergency", "prank", "ghost", "non_emergency"] * 10
    onehot = np.array([[float(lab == c) for c in LABELS] for lab in labels])
    perfect = compute_metrics(_table(labels, onehot), baselines={})
    reversed_ = compute_metrics(_table(labels, (1.0 - onehot) / 3.0), baselines={})
    for c in LABELS:
        assert perfect["per_class"][c]["roc_auc"] == 1.0
        assert perfect["per_class"][c]["pr_auc"] == 1.0
        assert reversed_["per_class"][c]["roc_auc"] == 0.0
    assert perfect["calibration"]["brier"] == 0.0
    assert perfect["confusion"]["matrix"] == [
        [10, 0, 0, 0],
        [0, 10, 0, 0],
        [0, 0, 10, 0],
        [0, 0, 0, 10],
    ]


def test_recall_at_fpr_respects_the_emergency_budget_on_a_hand_made_example() -> None:
    # 20 emergency calls with p_prank 0.00 .. 0.95 in steps of 0.05, but 0.85 raised to tie
    # with 0.90; 5 prank calls.
    emerg = [i / 20 for i in range(20)]
    emerg[17] = 0.90
    prank = [0.99, 0.95, 0.92, 0.90, 0.10]
    labels = ["emergency"] * 20 + ["prank"] * 5
    p_prank = np.array(emerg + prank)
    proba = np.column_stack([1 - p_prank, np.zeros(25), p_prank, np.zeros(25)])
    df = _table(labels, proba)

    # 5% of 20 = 1 emergency call may be flagged: the one at 0.95. The lowest threshold
    # that keeps the tied 0.90 calls out lies just above 0.90 (reported to 6 digits).
    r = compute_metrics(df, baselines={}, fpr_target=0.05)["recall_at_fpr"]["prank"]
    assert r["emergency_flagged"] == 0.05
    assert 0.90 < r["threshold"] <= 0.90 + 1e-6
    assert r["recall"] == pytest.approx(3 / 5)

    # 10% allows 2, but the second and third highest tie at 0.90, so only 1 fits.
    r = compute_metrics(df, baselines={}, fpr_target=0.10)["recall_at_fpr"]["prank"]
    assert r["emergency_flagged"] == 0.05
    assert r["recall"] == pytest.approx(3 / 5)

    # 15% allows 3: the ties fit, and the prank call at 0.90 is caught too.
    r = compute_metrics(df, baselines={}, fpr_target=0.15)["recall_at_fpr"]["prank"]
    assert r["emergency_flagged"] == 0.15
    assert 0.80 < r["threshold"] <= 0.80 + 1e-6  # 0.85 was replaced by a 0.90
    assert r["recall"] == pytest.approx(4 / 5)

    # Without emergency calls there is no budget to measure against.
    no_emerg = df[df["label"] != "emergency"]
    assert compute_metrics(no_emerg, baselines={})["recall_at_fpr"]["prank"] is None


def test_flag_shares_and_counts_on_a_hand_made_table() -> None:
    labels = ["emergency"] * 4 + ["non_emergency"] * 2 + ["prank"] * 4 + ["ghost"] * 2
    flags = [
        *["none", "none", "none", "possible_prank"],
        *["likely_ghost", "none"],
        *["likely_prank", "possible_prank", "possible_ghost", "none"],
        *["likely_ghost", "possible_ghost"],
    ]
    proba = np.full((12, 4), 0.25)
    m = compute_metrics(_table(labels, proba, flags), baselines={})
    possible, likely = m["flags"]["possible"], m["flags"]["likely"]
    assert possible["emergency"] == 0.25
    assert possible["non_emergency"] == 0.5
    assert possible["prank"] == 0.75
    assert possible["ghost"] == 1.0
    assert possible["prank_recall"] == 0.5  # the ghost flag on a prank call does not count
    assert possible["ghost_recall"] == 1.0
    assert likely["emergency"] == 0.0
    assert likely["non_emergency"] == 0.5
    assert likely["prank_recall"] == 0.25
    assert likely["ghost_recall"] == 0.5
    assert m["flags"]["counts"]["possible_prank"] == {
        "emergency": 1,
        "non_emergency": 0,
        "prank": 1,
        "ghost": 0,
    }
    assert m["flag_by_label"]["prank"] == {
        "none": 1,
        "possible_prank": 1,
        "likely_prank": 1,
        "possible_ghost": 1,
        "likely_ghost": 0,
    }


def test_calibration_error_is_small_when_calibrated_and_large_when_not() -> None:
    rng = np.random.default_rng(3)
    n = 4000
    proba = rng.dirichlet([1.0, 1.0, 1.0, 1.0], size=n)
    # Labels drawn from the probabilities themselves: calibrated by construction.
    labels = [LABELS[int(rng.choice(4, p=row))] for row in proba]
    good = compute_metrics(_table(labels, proba), baselines={})
    # Pushed towards certainty: the same ranking, overconfident probabilities.
    sharp = proba**4 / (proba**4).sum(axis=1, keepdims=True)
    bad = compute_metrics(_table(labels, sharp), baselines={})
    for c in LABELS:
        assert good["calibration"]["ece"][c] < 0.03
        assert bad["calibration"]["ece"][c] > 0.08
    assert bad["calibration"]["brier"] > good["calibration"]["brier"]


def test_unlabelled_table_gives_no_metrics_and_a_report_without_plots(tmp_path: Path) -> None:
    df = _synthetic()
    df["label"] = ""
    m = compute_metrics(df, baselines=BASELINES)
    assert m == {"labelled_calls": 0, "calls": len(df)}
    # A stale plot from an earlier run must not survive next to the new report.
    (tmp_path / "roc.png").write_bytes(PNG)
    paths = write_report(
        tmp_path, df, m, baselines=BASELINES, baseline_notes=NOTES, title="Empty run"
    )
    assert sorted(p.name for p in paths) == ["metrics.json", "report.md"]
    assert not list(tmp_path.glob("*.png"))
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "no labels" in text
    assert "every call is answered" in text
    assert json.loads((tmp_path / "metrics.json").read_text())["labelled_calls"] == 0


def test_nan_labels_from_csv_count_as_unknown() -> None:
    df = _synthetic()
    df["label"] = df["label"].replace("", np.nan)
    m = compute_metrics(df, baselines={})
    assert m["labelled_calls"] == int(df["label"].notna().sum())


def test_single_class_table_does_not_crash_and_gives_none_aucs(tmp_path: Path) -> None:
    df = _synthetic().head(30).copy()
    df["label"] = "emergency"
    m = compute_metrics(df, baselines=BASELINES)
    assert all(m["per_class"][c]["roc_auc"] is None for c in LABELS)
    assert all(m["per_class"][c]["pr_auc"] is None for c in LABELS)
    assert m["recall_at_fpr"]["prank"]["recall"] is None
    assert all(row["model_better"] is False for row in m["comparison"])
    assert m["slices"]["withheld"]["prank_roc_auc"] is None
    paths = write_report(
        tmp_path, df, m, baselines=BASELINES, baseline_notes=NOTES, title="One class"
    )
    names = {p.name for p in paths}
    assert "roc.png" not in names and "pr.png" not in names  # nothing to separate
    assert "report.md" in names
    assert json.loads((tmp_path / "metrics.json").read_text())["per_class"]["prank"] == {
        "roc_auc": None,
        "pr_auc": None,
    }


def test_tiny_and_odd_tables_do_not_crash(tmp_path: Path) -> None:
    df = _synthetic().head(3).copy()
    df["label"] = ["prank", "", "ghost"]
    df["base_energy_ghost"] = np.nan  # a baseline that can score nothing
    df = df.drop(columns=["meta_hour"])
    m = compute_metrics(df, baselines=BASELINES)
    assert m["labelled_calls"] == 2
    assert m["recall_at_fpr"]["ghost"] is None
    assert "hour_00_06" not in m["slices"]
    assert m["baselines"]["energy_rule"]["ghost"]["roc_auc"] == 0.5
    paths = write_report(
        tmp_path / "out", df, m, baselines=BASELINES, baseline_notes=NOTES, title="Tiny"
    )
    assert all(p.is_file() for p in paths)


def test_files_are_written_with_plots_and_tables(tmp_path: Path) -> None:
    df = _synthetic()
    m = compute_metrics(df, baselines=BASELINES)
    card = {
        "name": "callsift",
        "version": "0.1.0",
        "created_at": "2025-06-30T00:00:00Z",
        "data_fingerprint": "abc123",
        "thresholds": {"call": {"possible": {"prank": 0.4, "ghost": 0.3}}},
    }
    split = {"method": "callers disjoint, time ordered", "train_calls": 280, "test_calls": 120}
    paths = write_report(
        tmp_path,
        df,
        m,
        baselines=BASELINES,
        baseline_notes=NOTES,
        title="Test run",
        model_card=card,
        split=split,
    )
    names = [p.name for p in paths]
    assert names[:2] == ["metrics.json", "report.md"]
    assert set(names[2:]) == {"roc.png", "pr.png", "calibration.png", "confusion.png", "flags.png"}
    for p in paths:
        assert p.is_file() and p.parent == tmp_path
        if p.suffix == ".png":
            assert p.read_bytes()[:4] == PNG
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert text.startswith("# Test run")
    for needle in (
        "![ROC](roc.png)",
        "callers disjoint",
        "abc123",
        "call possible prank",
        "mfcc_logreg",
        NOTES["energy_rule"],
        "with_history",
        "every call is answered",
    ):
        assert needle in text
    assert "✓" in text or "✗" in text
    saved = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert saved["labelled_calls"] == m["labelled_calls"]
    # The model separates the classes far better than the weak rules.
    assert m["per_class"]["prank"]["roc_auc"] > 0.9
    rows = {(r["baseline"], r["task"]): r for r in m["comparison"]}
    assert set(rows) == {
        ("energy_rule", "ghost"),
        ("history_rule", "prank"),
        ("mfcc_logreg", "prank"),
        ("mfcc_logreg", "ghost"),
    }
    assert rows[("energy_rule", "ghost")]["model_better"] is True
    assert rows[("history_rule", "prank")]["model_better"] is True
    for r in rows.values():
        expected = (
            r["model_roc_auc"] > r["baseline_roc_auc"]
            and r["model_recall_at_fpr"] >= r["baseline_recall_at_fpr"]
        )
        assert r["model_better"] is expected


def test_a_perfect_baseline_beats_the_model_and_a_reversed_one_loses() -> None:
    df = _synthetic()
    is_prank = (df["label"] == "prank").astype(float)
    df["oracle"] = is_prank
    df["contrarian"] = -is_prank
    m = compute_metrics(
        df, baselines={"oracle": {"prank": "oracle"}, "contrarian": {"prank": "contrarian"}}
    )
    better = {r["baseline"]: r["model_better"] for r in m["comparison"]}
    assert better == {"oracle": False, "contrarian": True}
    assert m["baselines"]["oracle"]["prank"]["roc_auc"] == 1.0
    assert m["baselines"]["oracle"]["prank"]["recall_at_fpr"]["recall"] == 1.0
    assert m["baselines"]["contrarian"]["prank"]["roc_auc"] == 0.0


def test_metrics_are_rounded_and_json_safe() -> None:
    m = compute_metrics(_synthetic(), baselines=BASELINES)
    text = json.dumps(m, allow_nan=False)  # raises on NaN or inf

    def floats(obj: object) -> list[float]:
        if isinstance(obj, dict):
            return [x for v in obj.values() for x in floats(v)]
        if isinstance(obj, list):
            return [x for v in obj for x in floats(v)]
        return [obj] if isinstance(obj, float) else []

    values = floats(json.loads(text))
    assert values
    assert all(round(v, 6) == v for v in values)


def test_flat_metrics_gives_only_finite_floats() -> None:
    m = compute_metrics(_synthetic(), baselines=BASELINES)
    m["per_class"]["ghost"]["roc_auc"] = float("nan")  # must be dropped, not passed on
    flat = flat_metrics(m)
    assert flat
    assert all(isinstance(v, float) and math.isfinite(v) for v in flat.values())
    assert "per_class.ghost.roc_auc" not in flat
    assert flat["per_class.prank.roc_auc"] == m["per_class"]["prank"]["roc_auc"]
    assert flat["recall_at_fpr.ghost.recall"] == m["recall_at_fpr"]["ghost"]["recall"]
    assert "comparison.mfcc_logreg.prank.model_better" in flat
    assert "confusion.matrix.0.0" in flat


def test_bad_arguments_are_refused_with_expected_and_actual() -> None:
    df = _synthetic()
    with pytest.raises(InvalidParameterError, match="fpr_target"):
        compute_metrics(df, baselines={}, fpr_target=1.5)
    with pytest.raises(InvalidParameterError, match="base_missing"):
        compute_metrics(df, baselines={"x": {"prank": "base_missing"}})
    with pytest.raises(InvalidParameterError, match="p_ghost"):
        compute_metrics(df.drop(columns=["p_ghost"]), baselines={})
    df.loc[0, "label"] = "hoax"
    with pytest.raises(InvalidParameterError, match="hoax"):
        compute_metrics(df, baselines={})
