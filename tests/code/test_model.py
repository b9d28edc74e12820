"""CallClassifier, thresholds, flags (classifier/model/) and ScoringModel (scoring.py)."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from classifier.errors import InvalidParameterError
from classifier.features import FEATURE_NAMES
from classifier.formats import LABELS
from classifier.history import metadata_features
from classifier.model import (
    FLAGS,
    CallClassifier,
    cap_early_ghost,
    choose_thresholds,
    flag_scores,
    flags_from_proba,
)
from classifier.model import estimator as estimator_module
from classifier.model import forest as forest_module
from classifier.model.policy import _flag_of
from classifier.reasons import ADVISORY
from classifier.scoring import PRE_ANSWER_FEATURES, CallScore, ScoringModel

SMALL: dict[str, Any] = {"max_iter": 30, "n_folds": 3}
_TZ = timezone(timedelta(hours=7))


def make_table(n: int = 360, seed: int = 0) -> pd.DataFrame:
    """Synthetic labelled feature table whose classes a small booster can learn.

    Ghost calls are silent (low speech, long silences, no pitch), prank calls are
    high-pitched with earlier pranks, genuine calls speak; emergency calls are louder
    and more varied than non-emergency ones. Callers repeat, ~10% are withheld and a
    few are SIM-less handsets; calls spread over three weeks at +07:00.
    """
    rng = np.random.default_rng(seed)
    labels = rng.choice(np.asarray(LABELS), size=n, p=[0.4, 0.2, 0.2, 0.2])
    # Values rounded to a coarse grid: with class weights, scikit-learn bins a feature of
    # more than 255 distinct values through a slow weighted-percentile path (~3 s a fit).
    df = pd.DataFrame({f: rng.normal(0.0, 1.0, n).round(1) for f in FEATURE_NAMES})
    is_ = {c: labels == c for c in LABELS}
    genuine = is_["emergency"] | is_["non_emergency"]

    speech = np.where(genuine, 0.65, np.where(is_["prank"], 0.45, 0.04))
    df["speech_ratio"] = np.clip(speech + rng.normal(0, 0.05, n), 0.0, 1.0)
    df["caller_speech_ratio"] = np.clip(speech + rng.normal(0, 0.05, n), 0.0, 1.0)
    df["longest_silence_ratio"] = np.clip(
        np.where(is_["ghost"], 0.85, 0.2) + rng.normal(0, 0.05, n), 0.0, 1.0
    )
    pitch = np.where(is_["prank"], 320.0, 150.0) + rng.normal(0, 15.0, n)
    df["pitch_median_hz"] = np.where(is_["ghost"], np.nan, pitch)
    df["energy_db_std"] = np.where(is_["emergency"], 12.0, 6.0) + rng.normal(0, 1.0, n)
    df["snr_db"] = np.where(is_["emergency"], 30.0, 20.0) + rng.normal(0, 2.0, n)
    df["audio_duration_s"] = rng.integers(5, 120, n).astype(np.float64)
    df = df.round(1)
    df["pitch_median_hz"] = df["pitch_median_hz"].round(0)

    hist = {f: np.zeros(n) for f in FEATURE_NAMES if f.startswith("hist_")}
    hist["hist_prank"] = np.where(is_["prank"], 1 + rng.poisson(2.0, n), rng.poisson(0.1, n))
    hist["hist_prank_7d"] = np.minimum(hist["hist_prank"], rng.poisson(1.0, n))
    hist["hist_ghost"] = np.where(is_["ghost"], 1 + rng.poisson(2.0, n), rng.poisson(0.1, n))
    hist["hist_ghost_7d"] = np.minimum(hist["hist_ghost"], rng.poisson(1.0, n))
    hist["hist_emergency"] = np.where(is_["emergency"], rng.poisson(1.0, n), 0)
    hist["hist_calls_total"] = hist["hist_prank"] + hist["hist_ghost"] + rng.poisson(1.0, n)
    hist["hist_has_history"] = (hist["hist_calls_total"] > 0).astype(float)
    for f, v in hist.items():
        df[f] = np.asarray(v, dtype=np.float64)

    pool = [f"+62812{k:07d}" for k in rng.integers(0, 10**7, 120)]
    kind = rng.random(n)
    simless = [f"simless:abc{k}" for k in rng.integers(0, 4, n)]
    named = [str(c) for c in rng.choice(pool, n)]
    callers = [
        "" if u < 0.1 else (s if u < 0.15 else c)
        for u, s, c in zip(kind, simless, named, strict=True)
    ]
    base = datetime(2025, 6, 2, tzinfo=_TZ)
    starts = [base + timedelta(minutes=10 * int(m)) for m in rng.integers(0, 21 * 144, n)]
    meta = pd.DataFrame(
        [
            metadata_features(caller_id=c, started_at=t, duration_s=float(d))
            for c, t, d in zip(callers, starts, df["audio_duration_s"], strict=True)
        ]
    )
    for f in meta.columns:
        df[f] = meta[f].to_numpy(dtype=np.float64)

    df.insert(0, "call_id", [f"call{i:04d}" for i in range(n)])
    df.insert(1, "caller_id", callers)
    df.insert(2, "started_at", [t.isoformat() for t in starts])
    df.insert(3, "label", labels.astype(str))
    return df


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return make_table()


@pytest.fixture(scope="module")
def fitted(table: pd.DataFrame) -> CallClassifier:
    return CallClassifier(**SMALL).fit(table, table["label"], groups=table["caller_id"])


@pytest.fixture(scope="module")
def scoring(table: pd.DataFrame, fitted: CallClassifier) -> ScoringModel:
    pre = CallClassifier(features=PRE_ANSWER_FEATURES, **SMALL).fit(
        table, table["label"], groups=table["caller_id"]
    )
    return ScoringModel(call=fitted, pre_answer=pre, card={"version": "test"})


# --- scikit-learn conventions ------------------------------------------------------------


def test_init_stores_params_only() -> None:
    clf = CallClassifier(max_iter=7, calibration="bogus", features=("speech_ratio",))
    # No validation in __init__: a bad value is only refused by fit.
    assert vars(clf) == clf.get_params()
    params = clf.get_params()
    assert params["max_iter"] == 7 and params["calibration"] == "bogus"
    twin = clone(clf)
    assert twin is not clf
    assert twin.get_params() == params
    assert CallClassifier(**params).get_params() == params
    clf.set_params(max_iter=9)
    assert clf.max_iter == 9


def test_fit_returns_self_and_learned_attributes_end_with_underscore(
    table: pd.DataFrame, fitted: CallClassifier
) -> None:
    clf = CallClassifier(max_iter=3, n_folds=2)
    assert clf.fit(table, table["label"]) is clf
    learned = set(vars(fitted)) - set(fitted.get_params())
    assert {"classes_", "estimator_", "thresholds_", "calibrators_", "reference_"} <= learned
    assert all(name.endswith("_") for name in learned), sorted(learned)
    # Fitting never rewrites a parameter.
    assert fitted.get_params() == CallClassifier(**SMALL).get_params()


@pytest.mark.parametrize(
    "method",
    [
        "predict",
        "predict_proba",
        "flag",
    ],
)
def test_prediction_before_fit_raises_not_fitted(table: pd.DataFrame, method: str) -> None:
    with pytest.raises(NotFittedError):
        getattr(CallClassifier(), method)(table)


def test_predict_proba_shape_order_and_sum(table: pd.DataFrame, fitted: CallClassifier) -> None:
    proba = fitted.predict_proba(table)
    assert proba.shape == (len(table), 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert (proba >= 0).all() and (proba <= 1).all()
    assert list(fitted.classes_) == list(LABELS)
    pred = fitted.predict(table)
    assert pred.shape == (len(table),)
    assert set(pred) <= set(LABELS)
    # Columns follow LABELS: the argmax column names the predicted class.
    np.testing.assert_array_equal(pred, np.asarray(LABELS)[proba.argmax(axis=1)])
    # The classes are learnable, so on training calls each column peaks on its own class.
    y = table["label"].to_numpy()
    for k, c in enumerate(LABELS):
        assert proba[y == c, k].mean() > proba[y != c, k].mean() + 0.2, c


def test_extra_columns_and_column_order_do_not_matter(
    table: pd.DataFrame, fitted: CallClassifier
) -> None:
    shuffled = table[list(reversed(table.columns))]
    np.testing.assert_array_equal(fitted.predict_proba(shuffled), fitted.predict_proba(table))


def test_class_absent_from_training_keeps_four_columns(table: pd.DataFrame) -> None:
    sub = table[table["label"] != "non_emergency"]
    clf = CallClassifier(max_iter=10, n_folds=3).fit(sub, sub["label"], groups=sub["caller_id"])
    proba = clf.predict_proba(table)
    assert proba.shape == (len(table), 4)
    assert list(clf.classes_) == list(LABELS)
    assert proba[:, LABELS.index("non_emergency")].max() < 1e-6
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert "non_emergency" not in set(clf.predict(table))


# --- input validation --------------------------------------------------------------------


def _with(table: pd.DataFrame, **cols: Any) -> pd.DataFrame:
    out = table.copy()
    for k, v in cols.items():
        out[k] = v
    return out


def test_x_not_a_dataframe_raises(table: pd.DataFrame) -> None:
    with pytest.raises(InvalidParameterError, match="DataFrame"):
        CallClassifier(**SMALL).fit(table[list(FEATURE_NAMES)].to_numpy(), table["label"])


def test_x_not_a_dataframe_at_predict_raises(table: pd.DataFrame, fitted: CallClassifier) -> None:
    with pytest.raises(InvalidParameterError, match="ndarray"):
        fitted.predict_proba(table[list(FEATURE_NAMES)].to_numpy())


def test_missing_feature_column_is_named(table: pd.DataFrame, fitted: CallClassifier) -> None:
    with pytest.raises(InvalidParameterError, match="snr_db"):
        CallClassifier(**SMALL).fit(table.drop(columns=["snr_db"]), table["label"])
    with pytest.raises(
        InvalidParameterError, match=rf"lacks 1 of the model's {len(FEATURE_NAMES)}.*whisper_ratio"
    ):
        fitted.predict_proba(table.drop(columns=["whisper_ratio"]))


def test_non_numeric_column_raises(table: pd.DataFrame) -> None:
    bad = _with(table, snr_db=["loud"] * len(table))
    with pytest.raises(InvalidParameterError, match="numeric"):
        CallClassifier(**SMALL).fit(bad, bad["label"])


def test_infinite_values_raise_and_name_the_column(
    table: pd.DataFrame, fitted: CallClassifier
) -> None:
    bad = table.copy()
    bad.loc[3, "energy_db_std"] = np.inf
    with pytest.raises(InvalidParameterError, match=r"infinite.*energy_db_std"):
        CallClassifier(**SMALL).fit(bad, bad["label"])
    with pytest.raises(InvalidParameterError, match="energy_db_std"):
        fitted.predict_proba(bad)


def test_nan_values_are_accepted(table: pd.DataFrame, fitted: CallClassifier) -> None:
    # Missing values (e.g. no pitch on a silent call) are data, not an error.
    row = table.iloc[:1].copy()
    row["pitch_median_hz"] = np.nan
    assert np.isfinite(fitted.predict_proba(row)).all()


def test_unknown_label_raises(table: pd.DataFrame) -> None:
    y = table["label"].to_numpy().copy()
    y[0] = "fire"
    with pytest.raises(InvalidParameterError, match=r"unknown labels.*fire"):
        CallClassifier(**SMALL).fit(table, y)


def test_rows_and_labels_of_different_length_raise(table: pd.DataFrame) -> None:
    with pytest.raises(InvalidParameterError, match="rows but y has"):
        CallClassifier(**SMALL).fit(table, table["label"].iloc[:-1])


def test_one_class_only_raises(table: pd.DataFrame) -> None:
    sub = table[table["label"] == "emergency"]
    with pytest.raises(InvalidParameterError, match=r"only the class.*two classes"):
        CallClassifier(**SMALL).fit(sub, sub["label"])


def test_no_emergency_call_raises(table: pd.DataFrame) -> None:
    sub = table[table["label"].isin(["prank", "ghost"])]
    with pytest.raises(InvalidParameterError, match="no emergency call"):
        CallClassifier(**SMALL).fit(sub, sub["label"])


def test_too_few_calls_of_a_class_for_folds_raises(table: pd.DataFrame) -> None:
    ghosts = table.index[table["label"] == "ghost"]
    sub = table.drop(index=ghosts[2:])
    with pytest.raises(InvalidParameterError, match=r"'ghost': 2.*n_folds=3"):
        CallClassifier(**SMALL).fit(sub, sub["label"])


def test_groups_of_wrong_length_raise(table: pd.DataFrame) -> None:
    with pytest.raises(InvalidParameterError, match=f"groups has 5 entries; expected {len(table)}"):
        CallClassifier(**SMALL).fit(table, table["label"], groups=["a"] * 5)


def test_numpy_integer_n_folds_is_accepted(table: pd.DataFrame) -> None:
    clf = CallClassifier(max_iter=3, n_folds=np.int64(3)).fit(table, table["label"])
    assert clf.predict_proba(table).shape == (len(table), 4)


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        ({"calibration": "platt"}, "calibration is 'platt'"),
        ({"n_folds": 1}, "n_folds is 1"),
        ({"n_folds": 2.5}, "n_folds is 2.5"),
        ({"possible_target": 1.0}, "possible_target is 1.0"),
        ({"likely_target": -0.1}, "likely_target is -0.1"),
        ({"possible_target": float("nan")}, "possible_target is nan"),
        ({"likely_target": 0.05, "possible_target": 0.01}, "likely_target 0.05 exceeds"),
        ({"target_margin": 0.0}, "target_margin is 0.0"),
        ({"target_margin": 1.5}, "target_margin is 1.5"),
    ],
)
def test_bad_parameters_raise(table: pd.DataFrame, params: dict[str, Any], pattern: str) -> None:
    with pytest.raises(InvalidParameterError, match=pattern):
        CallClassifier(**params).fit(table, table["label"])


# --- thresholds and flags ------------------------------------------------------------------

_COL = {c: i for i, c in enumerate(LABELS)}


def _proba(prank: np.ndarray, ghost: np.ndarray) -> np.ndarray:
    p = np.zeros((len(prank), 4))
    p[:, _COL["prank"]] = prank
    p[:, _COL["ghost"]] = ghost
    p[:, _COL["emergency"]] = 1.0 - p.sum(axis=1)
    return p


def _flagged(proba: np.ndarray, t: dict[str, float]) -> np.ndarray:
    s = flag_scores(proba, classes=LABELS)
    return np.asarray((s["prank"] >= t["prank"]) | (s["ghost"] >= t["ghost"]))


def test_choose_thresholds_respects_emergency_budget_exactly() -> None:
    rng = np.random.default_rng(3)
    n_e, n_p, n_g = 200, 60, 60
    y = np.asarray(["emergency"] * n_e + ["prank"] * n_p + ["ghost"] * n_g, dtype=object)
    prank = np.concatenate([rng.uniform(0, 0.4, n_e), rng.uniform(0.3, 0.9, n_p), np.zeros(n_g)])
    ghost = np.concatenate([rng.uniform(0, 0.3, n_e), np.zeros(n_p), rng.uniform(0.3, 0.6, n_g)])
    proba = _proba(prank, ghost)
    targets = {"possible": 0.037, "likely": 0.012}
    t = choose_thresholds(
        proba, y, classes=LABELS, targets=targets, floors={"possible": 0.0, "likely": 0.0}
    )
    protected = y == "emergency"
    for level, target in targets.items():
        flagged = _flagged(proba, t[level])
        assert flagged[protected].sum() <= math.floor(target * n_e), level
        # The budget is used: a threshold is not needlessly high.
        assert flagged[~protected].sum() > 0, level
    for cls in ("prank", "ghost"):
        assert t["likely"][cls] >= t["possible"][cls]


def test_non_emergency_cap_raises_thresholds_only_as_far_as_needed() -> None:
    from classifier.model.policy import cap_non_emergency

    rng = np.random.default_rng(5)
    n_e, n_n, n_p, n_g = 20, 200, 80, 80
    y = np.asarray(
        ["emergency"] * n_e + ["non_emergency"] * n_n + ["prank"] * n_p + ["ghost"] * n_g,
        dtype=object,
    )
    # A few emergency calls, all low: the budget alone puts thresholds low, where many
    # non-emergency calls score.
    prank = np.concatenate(
        [
            rng.uniform(0, 0.1, n_e),
            rng.uniform(0, 0.6, n_n),
            rng.uniform(0.2, 0.9, n_p),
            np.zeros(n_g),
        ]
    )
    ghost = np.concatenate(
        [
            rng.uniform(0, 0.1, n_e),
            rng.uniform(0, 0.3, n_n),
            np.zeros(n_p),
            rng.uniform(0.2, 0.6, n_g),
        ]
    )
    proba = _proba(prank, ghost)
    floors = {"possible": 0.0, "likely": 0.0}
    t = choose_thresholds(
        proba, y, classes=LABELS, targets={"possible": 0.0, "likely": 0.0}, floors=floors
    )
    non = y == "non_emergency"
    assert _flagged(proba, t["possible"])[non].mean() > 0.3  # the problem
    capped, info = cap_non_emergency(t, proba, y, classes=LABELS, target=0.05)
    flagged = _flagged(proba, capped["possible"])
    assert flagged[non].sum() <= math.floor(0.05 * n_n) == info["allowed"] == 10
    assert info["flagged"] == flagged[non].sum() and info["flagged_before"] > 60
    assert not flagged[y == "emergency"].any()
    for level in ("possible", "likely"):
        for cls in ("prank", "ghost"):
            assert capped[level][cls] >= t[level][cls]  # thresholds only rise
            assert capped["likely"][cls] >= capped["possible"][cls]
    # Still flags prank and ghost calls: the allowance is used where it catches most.
    assert flagged[y == "prank"].mean() > 0.3 and flagged[y == "ghost"].mean() > 0.3
    # Within the cap already: nothing changes.
    same, info = cap_non_emergency(capped, proba, y, classes=LABELS, target=0.05)
    assert same == capped and info["flagged"] == info["flagged_before"]
    # With a confidence, the upper bound of the share flagged stays within the target.
    from classifier.model import allowed_flags, flag_rate_upper_bound

    bounded, info = cap_non_emergency(t, proba, y, classes=LABELS, target=0.05, confidence=0.95)
    k = _flagged(proba, bounded["possible"])[non].sum()
    assert k <= info["allowed"] == allowed_flags(n_n, 0.05, 0.95) < 10
    assert flag_rate_upper_bound(int(k), n_n, 0.95) <= 0.05
    # No non-emergency calls: nothing to cap.
    keep = ~non
    same, info = cap_non_emergency(t, proba[keep], y[keep], classes=LABELS, target=0.05)
    assert same == t and info["calls"] == 0


def test_choose_thresholds_ties_never_exceed_budget() -> None:
    # Ten emergency calls share the same prank score; a budget of 5 must flag none of them.
    y = np.asarray(["emergency"] * 100 + ["prank"] * 20, dtype=object)
    prank = np.concatenate([np.full(10, 0.6), np.full(90, 0.1), np.full(20, 0.6)])
    proba = _proba(prank, np.zeros(120))
    t = choose_thresholds(
        proba,
        y,
        classes=LABELS,
        targets={"possible": 0.05, "likely": 0.0},
        floors={"possible": 0.0, "likely": 0.0},
    )
    flagged = _flagged(proba, t["possible"])
    assert flagged[:100].sum() <= 5
    assert t["possible"]["prank"] > 0.6
    # Zero budget at the likely level: no emergency call flagged at all.
    assert _flagged(proba, t["likely"])[:100].sum() == 0


def test_choose_thresholds_floors_and_order() -> None:
    y = np.asarray(["emergency"] * 50 + ["prank"] * 10 + ["ghost"] * 10, dtype=object)
    prank = np.concatenate([np.full(50, 0.01), np.linspace(0.05, 0.95, 10), np.zeros(10)])
    ghost = np.concatenate([np.full(50, 0.01), np.zeros(10), np.linspace(0.05, 0.95, 10)])
    proba = _proba(prank, ghost)
    # A generous budget would allow tiny thresholds; the floors hold them up.
    t = choose_thresholds(
        proba,
        y,
        classes=LABELS,
        targets={"possible": 0.5, "likely": 0.5},
        floors={"possible": 0.3, "likely": 0.2},
    )
    for cls in ("prank", "ghost"):
        assert t["possible"][cls] >= 0.3
        assert t["likely"][cls] >= 0.2
        # The likely floor is lower than the possible one, yet likely stays at least possible.
        assert t["likely"][cls] >= t["possible"][cls]


_T = {"possible": {"prank": 0.3, "ghost": 0.4}, "likely": {"prank": 0.6, "ghost": 0.7}}


@pytest.mark.parametrize(
    ("prank", "ghost", "expected"),
    [
        (0.1, 0.1, "none"),
        (0.29, 0.0, "none"),
        (0.3, 0.0, "possible_prank"),
        (0.6, 0.0, "likely_prank"),
        (0.0, 0.4, "possible_ghost"),
        (0.0, 0.7, "likely_ghost"),
        # Ghost likelier: its score is the call's nuisance probability p_prank + p_ghost,
        # a silent line split between ghost call and silent prank.
        (0.15, 0.25, "possible_ghost"),
        (0.25, 0.5, "likely_ghost"),
        # Prank likelier or a tie: each class on its own probability.
        (0.2, 0.15, "none"),
        (0.2, 0.2, "none"),
        (0.35, 0.3, "possible_prank"),
        # Both pass: prank on its own 0.3, ghost's sum 0.75 is the stronger flag.
        (0.3, 0.45, "likely_ghost"),
    ],
)
def test_flags_from_proba(prank: float, ghost: float, expected: str) -> None:
    proba = _proba(np.asarray([prank]), np.asarray([ghost]))
    flags = flags_from_proba(proba, classes=LABELS, thresholds=_T)
    assert list(flags) == [expected]
    assert expected in FLAGS
    # The one-row path of a live stream's update decides the same.
    row = [float(v) for v in proba[0]]
    assert _flag_of(row, _T) == expected


def test_flag_scores_give_ghost_the_nuisance_sum_where_it_is_likelier() -> None:
    proba = _proba(np.asarray([0.1, 0.3, 0.2]), np.asarray([0.3, 0.1, 0.2]))
    s = flag_scores(proba, classes=LABELS)
    np.testing.assert_allclose(s["ghost"], [0.4, 0.1, 0.2])
    np.testing.assert_allclose(s["prank"], [0.1, 0.3, 0.2])


def test_flags_likely_prank_beats_possible_ghost() -> None:
    t = {"possible": {"prank": 0.3, "ghost": 0.4}, "likely": {"prank": 0.6, "ghost": 0.99}}
    proba = _proba(np.asarray([0.45]), np.asarray([0.5]))  # ghost 0.95: possible
    assert list(flags_from_proba(proba, classes=LABELS, thresholds=t)) == ["possible_ghost"]
    proba = _proba(np.asarray([0.65]), np.asarray([0.3]))
    assert list(flags_from_proba(proba, classes=LABELS, thresholds=t)) == ["likely_prank"]


def test_flags_follow_column_order_argument() -> None:
    order = ("ghost", "prank", "emergency", "non_emergency")
    proba = np.asarray([[0.0, 0.65, 0.35, 0.0]])
    assert list(flags_from_proba(proba, classes=order, thresholds=_T)) == ["likely_prank"]


def test_one_row_flags_equal_the_array_flags() -> None:
    rng = np.random.default_rng(11)
    raw = rng.dirichlet(np.full(4, 0.4), size=2000)
    raw[::7, 2] = raw[::7, 3]  # ties between prank and ghost
    proba = raw / raw.sum(axis=1, keepdims=True)
    t = {"possible": {"prank": 0.5, "ghost": 0.45}, "likely": {"prank": 0.8, "ghost": 0.9}}
    array = flags_from_proba(proba, classes=LABELS, thresholds=t)
    one = [_flag_of([float(v) for v in row], t) for row in proba]
    assert list(array) == one
    assert len(set(one)) == len(FLAGS)


def test_validation_emergency_shares_within_margin(fitted: CallClassifier) -> None:
    v = fitted.validation_
    assert v["calls"] == 360
    assert v["emergency_flagged_possible"] <= fitted.possible_target * fitted.target_margin
    assert v["emergency_flagged_likely"] <= fitted.likely_target * fitted.target_margin
    assert v["emergency_flagged_likely"] <= v["emergency_flagged_possible"]
    for cls in ("prank", "ghost"):
        assert 0.0 <= v[f"{cls}_recall_likely"] <= v[f"{cls}_recall_possible"] <= 1.0
    for level in ("possible", "likely"):
        for cls in ("prank", "ghost"):
            assert fitted.thresholds_[level][cls] >= getattr(fitted, f"{level}_floor")
    # The classes are learnable: out-of-fold ghosts are mostly caught.
    assert v["ghost_recall_possible"] > 0.5


def test_validation_shares_hold_for_a_loose_target(table: pd.DataFrame) -> None:
    clf = CallClassifier(
        max_iter=10, n_folds=3, possible_target=0.2, likely_target=0.1, possible_floor=0.0
    ).fit(table, table["label"], groups=table["caller_id"])
    v = clf.validation_
    assert v["emergency_flagged_possible"] <= 0.2 * 0.7
    assert v["emergency_flagged_likely"] <= 0.1 * 0.7


# --- groups and determinism ----------------------------------------------------------------


def test_groups_gives_each_withheld_call_its_own_group() -> None:
    g = CallClassifier._groups(["a", "", "a", "", "simless:x", ""], 6)
    assert g[0] == g[2]
    withheld = [g[1], g[3], g[5]]
    assert len(set(withheld)) == 3
    assert not set(withheld) & {"a", "simless:x", ""}
    none = CallClassifier._groups(None, 4)
    assert len(set(none)) == 4


def test_folds_never_split_a_caller(table: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    real = estimator_module.StratifiedGroupKFold

    class Spy(real):  # type: ignore[misc, valid-type]
        def split(self, X: Any, y: Any = None, groups: Any = None) -> Any:
            for train, test in super().split(X, y, groups):
                seen.append((train, test))
                yield train, test

    monkeypatch.setattr(estimator_module, "StratifiedGroupKFold", Spy)
    CallClassifier(max_iter=3, n_folds=3).fit(table, table["label"], groups=table["caller_id"])
    assert len(seen) == 3
    callers = table["caller_id"].to_numpy()
    for train, test in seen:
        named_train = {c for c in callers[train] if c}
        named_test = {c for c in callers[test] if c}
        assert named_train and named_test
        assert not named_train & named_test
    # Withheld calls are not one caller: they land in more than one test fold.
    assert sum(bool((callers[test] == "").any()) for _, test in seen) >= 2


def test_same_random_state_gives_identical_probabilities(table: pd.DataFrame) -> None:
    a = CallClassifier(max_iter=10, n_folds=3, random_state=5).fit(
        table, table["label"], groups=table["caller_id"]
    )
    b = CallClassifier(max_iter=10, n_folds=3, random_state=5).fit(
        table, table["label"], groups=table["caller_id"]
    )
    np.testing.assert_array_equal(a.predict_proba(table), b.predict_proba(table))
    assert a.thresholds_ == b.thresholds_


def test_refitting_after_predicting_predicts_with_the_new_fit(table: pd.DataFrame) -> None:
    # The compiled forest is a cache of the booster: a refit must not keep the old one.
    # Uncalibrated: isotonic calibration of these well-separated classes maps both fits'
    # scores to the same 0/1 values.
    clf = CallClassifier(max_iter=5, n_folds=3, calibration="none").fit(table, table["label"])
    first = clf.predict_proba(table)
    clf.set_params(max_iter=12).fit(table, table["label"])
    fresh = CallClassifier(max_iter=12, n_folds=3, calibration="none").fit(table, table["label"])
    np.testing.assert_array_equal(clf.predict_proba(table), fresh.predict_proba(table))
    assert not np.array_equal(clf.predict_proba(table), first)


@pytest.mark.parametrize("calibration", ["sigmoid", "none"])
def test_other_calibrations_give_distributions(table: pd.DataFrame, calibration: str) -> None:
    clf = CallClassifier(max_iter=10, n_folds=3, calibration=calibration).fit(
        table, table["label"], groups=table["caller_id"]
    )
    proba = clf.predict_proba(table)
    assert proba.shape == (len(table), 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)


# --- the compiled tree walk against scikit-learn -------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> ScoringModel:
    from classifier.artifact import load_model

    return load_model()


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool((a.view(np.uint64) == b.view(np.uint64)).all())


def _probing_rows(clf: CallClassifier, n: int, seed: int) -> np.ndarray:
    """Rows that probe every way a walk can go wrong: typical values scaled and shifted,
    features exactly at one of the booster's split thresholds or one float either side,
    NaNs (more where the typical value is NaN), zeros of both signs."""
    rng = np.random.default_rng(seed)
    ref = np.nan_to_num(np.asarray(clf.reference_, dtype=np.float64), nan=0.0)
    M = ref * rng.lognormal(0.0, 0.5, (n, ref.size))
    M += rng.normal(0.0, 1.0, M.shape) * (rng.random(M.shape) < 0.3)
    nodes = np.concatenate([t.nodes for it in clf.estimator_._predictors for t in it])
    splits = nodes[nodes["is_leaf"] == 0]
    pick = rng.integers(0, splits.size, (n, 25))
    thr = splits["num_threshold"][pick]
    step = rng.choice([-1.0, 0.0, 0.0, 1.0], pick.shape) * np.spacing(np.abs(thr))
    np.put_along_axis(M, splits["feature_idx"][pick].astype(np.intp), thr + step, axis=1)
    M[rng.random(M.shape) < 0.02] = -0.0
    M[rng.random(M.shape) < 0.02] = 0.0
    M[rng.random(M.shape) < 0.12] = np.nan
    M[np.isnan(clf.reference_) & (rng.random(M.shape) < 0.5)] = np.nan
    return M


@pytest.mark.parametrize("stage", ["call", "pre_answer"])
def test_flat_forest_gives_scikit_learns_raw_scores_bit_for_bit(
    shipped: ScoringModel, stage: str
) -> None:
    # The shipped model's 1,200 trees, walked by numba and by numpy, against scikit-learn's
    # own prediction: every bit of every raw score and probability, for batches of one row,
    # around the walk's block of rows, and many.
    clf = shipped.classifier(stage)
    booster = clf.estimator_
    forest = forest_module._FlatForest(booster)
    M = _probing_rows(clf, 1500, seed=3)
    assert np.isnan(M).any() and (M == 0).any()
    expected = booster.decision_function(M)
    assert _same_bits(forest.raw(M), expected)
    assert _same_bits(forest.predict_proba(M), booster.predict_proba(M))
    assert _same_bits(forest._raw_numpy(M[:400]), expected[:400])
    for n in (1, 2, 9, 63, 64, 65, 129):
        assert _same_bits(forest.raw(M[-n:]), expected[-n:]), n
    uncalibrated = clf.predict_proba_matrix(M, calibrated=False)
    assert _same_bits(uncalibrated, clf._expand(booster, booster.predict_proba(M)))


def test_flat_forest_without_numba_walks_with_numpy(
    shipped: ScoringModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_numba() -> None:
        raise ImportError("numba")

    clf = shipped.pre_answer
    forest = forest_module._FlatForest(clf.estimator_)
    M = _probing_rows(clf, 50, seed=4)
    monkeypatch.setattr(forest_module, "_walk_kernel", no_numba)
    assert _same_bits(forest.raw(M), clf.estimator_.decision_function(M))


def _silent_line_rows(clf: CallClassifier) -> np.ndarray:
    """A live call of line noise alone from a number with earlier ghost calls, as the
    stream scores it after 4 to 20 s, and as a whole call: the model's ghost flags."""
    from classifier.features import SR, call_features
    from classifier.history import PastCall, history_features
    from classifier.streaming import StreamingFeatures

    at = datetime(2025, 6, 3, 2, tzinfo=UTC)
    past = [
        PastCall(started_at=at - timedelta(days=d), duration_s=15.0, label="ghost")
        for d in (1, 2, 4)
    ]
    history = history_features(past, at=at)
    rng = np.random.default_rng(7)
    live = StreamingFeatures()
    rows = []
    for second in range(1, 21):
        live.push(rng.normal(0.0, 1e-3, SR).astype(np.float32))
        if second in (4, 6, 8, 9, 12, 20):
            for complete in (False, True):
                features = call_features(
                    None,
                    caller_id="+6281234567",
                    started_at=at,
                    duration_s=float(second),
                    history=history,
                    acoustic=live.features(),
                    complete=complete,
                )
                rows.append([features[f] for f in clf.features_])
    return np.asarray(rows, dtype=np.float64)


@pytest.mark.parametrize("min_likely_ghost_s", [None, 25.0])
def test_shipped_scores_are_scikit_learns_probabilities_calibrated_and_flagged(
    shipped: ScoringModel, min_likely_ghost_s: float | None
) -> None:
    # ScoringModel.score_matrix, in one batch and call by call, against the plain chain:
    # scikit-learn's predict_proba, the row's time-bucket calibrators, flags_from_proba,
    # cap_early_ghost. Times heard in every bucket (and unknown), whole calls among them;
    # with the early-ghost rule held to 25 s, the silent line's likely ghost flags capped.
    import copy

    clf = copy.copy(shipped.call)
    if min_likely_ghost_s is not None:
        clf.min_likely_ghost_s = min_likely_ghost_s
    # Every flag of the chain is checked, likely_ghost and its early cap included: the
    # likely-ghost thresholds are brought down to the possible ones in this copy, so that
    # rows reach them whichever model is shipped (the silent line's scores of the
    # current one stop just under its own).
    clf.bucket_thresholds_ = [
        {**t, "likely": {**t["likely"], "ghost": t["possible"]["ghost"]}}
        for t in clf.bucket_thresholds_
    ]
    model = ScoringModel(call=clf, pre_answer=shipped.pre_answer, card=shipped.card)
    rng = np.random.default_rng(6)
    probing = _probing_rows(clf, 160, seed=5)
    heard_col = clf.features_.index("audio_duration_s")
    probing[:, heard_col] = rng.choice([0.5, 2.0, 4.0, 7.5, 10.0, 15.0, 40.0, np.nan], 160)
    probing[:, clf.features_.index("call_complete")] = rng.random(160) < 0.2
    M = np.concatenate([probing, _silent_line_rows(clf)])
    batch = model.score_matrix(M)
    raw = clf._expand(clf.estimator_, clf.estimator_.predict_proba(M))
    heard = clf.heard_seconds(M)
    assert heard is not None
    buckets = clf._bucket_of(heard)
    assert len(set(buckets.tolist())) == len(clf.bucket_names())
    capped = 0
    for i, s in enumerate(batch):
        assert model.score_matrix(M[i : i + 1])[0] == s, i
        b = int(buckets[i])
        p = clf._apply_calibrators(clf.bucket_calibrators_[b] or clf.calibrators_, raw[i : i + 1])
        assert _same_bits(np.asarray([s.probabilities[c] for c in LABELS]), p[0]), i
        flag = flags_from_proba(p, classes=LABELS, thresholds=clf.bucket_thresholds_[b])
        early = cap_early_ghost(flag, heard[i : i + 1], min_likely_s=clf.min_likely_ghost_s)
        assert s.flag == early[0], i
        capped += int(flag[0] != early[0])
    flags = Counter(s.flag for s in batch)
    assert flags["none"] and flags["likely_prank"], flags
    # Held to 25 s, the early rule caps likely ghost flags to possible ones.
    assert capped and flags["possible_ghost"] if min_likely_ghost_s else flags["likely_ghost"]


# --- ScoringModel ------------------------------------------------------------------------


def _check_score(s: CallScore, *, max_reasons: int) -> None:
    assert s.flag in FLAGS
    assert set(s.probabilities) == set(LABELS)
    assert math.isclose(sum(s.probabilities.values()), 1.0, abs_tol=1e-9)
    assert len(s.reasons) <= max_reasons
    for r in s.reasons:
        assert r.effect in ("raises", "lowers")
        assert r.target in ("prank", "ghost")
        assert r.en and r.id and r.en != r.id
        assert r.weight >= 0.05
    if s.flag != "none":
        assert all(r.effect == "raises" for r in s.reasons)
        assert all(r.target == s.flag.split("_", 1)[1] for r in s.reasons)


def test_score_frame_one_score_per_row(
    table: pd.DataFrame, fitted: CallClassifier, scoring: ScoringModel
) -> None:
    rows = table.iloc[:40]
    scores = scoring.score_frame(rows, max_reasons=2)
    assert len(scores) == len(rows)
    proba = fitted.predict_proba(rows)
    flags = fitted.flag(rows)
    for i, s in enumerate(scores):
        _check_score(s, max_reasons=2)
        assert s.stage == "call"
        assert s.flag == flags[i]
        np.testing.assert_allclose([s.probabilities[c] for c in LABELS], proba[i])
    assert any(s.reasons for s in scores)
    assert any(s.flag != "none" for s in scores)


def test_score_frame_of_an_empty_table_is_empty(table: pd.DataFrame, scoring: ScoringModel) -> None:
    assert scoring.score_frame(table.iloc[:0]) == []


def test_score_frame_without_explanations(table: pd.DataFrame, scoring: ScoringModel) -> None:
    plain = scoring.score_frame(table.iloc[:5], explain=False)
    assert [s.reasons for s in plain] == [[]] * 5


def test_pre_answer_stage_reads_only_metadata_and_history(
    table: pd.DataFrame, scoring: ScoringModel
) -> None:
    rows = table.loc[:29, list(PRE_ANSWER_FEATURES)]
    scores = scoring.score_frame(rows, stage="pre_answer")
    assert len(scores) == 30
    for s in scores:
        _check_score(s, max_reasons=3)
        assert s.stage == "pre_answer"
        assert {r.group for r in s.reasons} <= {
            "time",
            "number_type",
            "prank_history",
            "ghost_history",
            "call_volume",
            "genuine_history",
        }
    with pytest.raises(InvalidParameterError, match="speech_ratio"):
        scoring.score_frame(rows, stage="call")
    with pytest.raises(InvalidParameterError, match="stage is 'after'"):
        scoring.score_frame(rows, stage="after")


def test_score_of_a_mapping_equals_score_frame_row(
    table: pd.DataFrame, scoring: ScoringModel
) -> None:
    row = table.iloc[[7]]
    features = {f: float(row[f].iloc[0]) for f in FEATURE_NAMES}
    assert scoring.score(features) == scoring.score_frame(row)[0]
    pre = {f: features[f] for f in PRE_ANSWER_FEATURES}
    assert scoring.score(pre, stage="pre_answer") == scoring.score_frame(row, stage="pre_answer")[0]


def _plain_reasons(scoring: ScoringModel, row: np.ndarray, stage: str) -> list[tuple[str, str]]:
    """Reasons worked out the plain way: one prediction per group set to its reference."""
    from classifier.reasons import REASON_GROUPS

    clf = scoring.classifier(stage)
    names = list(clf.features_)
    raw = clf.predict_proba_matrix(row[None, :], calibrated=False)[0]
    proba = clf.calibrate(raw[None, :])[0]
    flag = str(flags_from_proba(proba[None, :], classes=LABELS, thresholds=clf.thresholds_)[0])
    if flag != "none":
        target = flag.split("_", 1)[1]
    else:
        target = (
            "prank" if proba[LABELS.index("prank")] >= proba[LABELS.index("ghost")] else "ghost"
        )
    t = LABELS.index(target)
    sign = 1.0 if flag != "none" or proba[t] >= 0.5 else -1.0

    def logit(p: float) -> float:
        q = min(max(p, 1e-6), 1 - 1e-6)
        return math.log(q / (1 - q))

    deltas = []
    for group, features in REASON_GROUPS.items():
        cols = [names.index(f) for f in features if f in names]
        if not cols:
            continue
        moved = row.copy()
        moved[cols] = clf.reference_[cols]
        p = clf.predict_proba_matrix(moved[None, :], calibrated=False)[0, t]
        deltas.append((group, logit(raw[t]) - logit(p)))
    kept = sorted((d for d in deltas if sign * d[1] >= 0.05), key=lambda d: -sign * d[1])
    return [(g, "raises" if d > 0 else "lowers") for g, d in kept[:3]]


@pytest.mark.parametrize("stage", ["call", "pre_answer"])
def test_reasons_match_one_prediction_per_group(
    table: pd.DataFrame, scoring: ScoringModel, stage: str
) -> None:
    # The batched explanation (calls and moved copies in one prediction, groups at their
    # reference skipped) gives what the plain loop gives, and a batch what single rows give.
    clf = scoring.classifier(stage)
    M = table.loc[:, list(clf.features_)].to_numpy(dtype=np.float64)[:40]
    M[3, : M.shape[1] // 2] = clf.reference_[: M.shape[1] // 2]  # some groups at reference
    batch = scoring.score_matrix(M, stage=stage)
    assert any(s.reasons for s in batch)
    for i, s in enumerate(batch):
        assert s == scoring.score_matrix(M[i : i + 1], stage=stage)[0]
        plain = _plain_reasons(scoring, M[i], stage)
        assert [(r.group, r.effect) for r in s.reasons] == plain


def test_moved_copies_compiled_equal_numpys(table: pd.DataFrame, fitted: CallClassifier) -> None:
    # The numba kernel and the numpy fallback: the same copies, groups and calls, with
    # rows at their typical values, NaNs, and typical values that are NaN.
    import copy

    from classifier.scoring import _ExplainPlan

    clf = copy.copy(fitted)
    clf.reference_ = np.asarray(fitted.reference_, dtype=np.float64).copy()
    clf.reference_[[0, 5, 40]] = np.nan
    plan = _ExplainPlan(clf)
    M = table.loc[:, list(plan.names)].to_numpy(dtype=np.float64)[:30]
    M[3] = plan.ref
    M[4, :50] = plan.ref[:50]
    M[5, ::3] = np.nan
    M[6, [0, 5, 40]] = np.nan
    compiled, plain = plan.moved_copies(M), plan._moved_copies_numpy(M)
    assert compiled[1].size > 30 and not (compiled[2] == 3).any()
    for a, b in zip(compiled, plain, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert _same_bits(compiled[0][~np.isnan(compiled[0])], plain[0][~np.isnan(plain[0])])


def test_explanation_plan_follows_a_replaced_classifier(
    table: pd.DataFrame, fitted: CallClassifier, scoring: ScoringModel
) -> None:
    import pickle

    rows = table.loc[:9, list(PRE_ANSWER_FEATURES)]
    before = scoring.score_frame(rows, stage="pre_answer")
    # The pre-answer classifier swapped for the full one, which knows more groups.
    other = ScoringModel(call=fitted, pre_answer=scoring.pre_answer, card={"version": "x"})
    other.score_frame(rows, stage="pre_answer")
    other.pre_answer = fitted
    full = table.iloc[:10]
    assert other.score_frame(full, stage="pre_answer") == [
        CallScore(probabilities=s.probabilities, flag=s.flag, reasons=s.reasons, stage="pre_answer")
        for s in scoring.score_frame(full)
    ]
    again = pickle.loads(pickle.dumps(scoring))
    assert "_plans" not in again.__dict__
    assert again.score_frame(rows, stage="pre_answer") == before


def test_call_score_as_dict_has_advisory(table: pd.DataFrame, scoring: ScoringModel) -> None:
    s = scoring.score_frame(table.iloc[:10])
    d = next(x for x in s if x.reasons).as_dict()
    assert d["advisory"] == ADVISORY
    assert set(d) >= {"p_emergency", "p_non_emergency", "p_prank", "p_ghost", "flag", "reasons"}
    assert d["reasons"][0]["effect"] in ("raises", "lowers")
    assert set(d["reasons"][0]) == {"group", "effect", "target", "weight", "en", "id"}
    text = next(x for x in s if x.reasons).reasons_text(lang="id")
    assert text[0] in "+-"
