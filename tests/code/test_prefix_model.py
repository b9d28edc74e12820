"""The elapsed-time aware model: prefix buckets, per-bucket thresholds, the early-ghost rule."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest

from classifier.errors import InvalidParameterError
from classifier.formats import LABELS
from classifier.model import (
    CallClassifier,
    cap_early_ghost,
    check_prefixes,
    flags_from_proba,
)
from classifier.scoring import PRE_ANSWER_FEATURES, ScoringModel
from tests.code.test_model import SMALL, make_table

PREFIXES = (2.0, 5.0, 10.0, 20.0)


def make_prefix_table(n: int = 300, seed: int = 1) -> pd.DataFrame:
    """make_table's calls, each followed by its prefix rows (as training.features does).

    A prefix row carries less evidence: its class signals are pulled towards the
    population's, the more so the earlier, and its duration is the time heard.
    """
    calls = make_table(n, seed=seed).assign(prefix_s=np.nan)
    # A few whole calls marked complete (fewer than 30 emergency rows among them: that
    # bucket keeps the thresholds of all rows), the rest and every prefix row not, rather
    # than make_table's random values, which left the bucket's count to chance.
    calls["call_complete"] = np.where(np.arange(len(calls)) % 6 == 0, 1.0, 0.0)
    rows = [calls]
    signal = ["speech_ratio", "caller_speech_ratio", "longest_silence_ratio", "snr_db"]
    for p in PREFIXES:
        part = calls[calls["audio_duration_s"] > p].copy()
        keep = p / (p + 10.0)
        for f in signal:
            part[f] = (keep * part[f] + (1 - keep) * calls[f].mean()).round(2)
        part["audio_duration_s"] = p
        part["meta_log_duration"] = math.log1p(p)
        part["prefix_s"] = p
        part["call_complete"] = 0.0
        rows.append(part)
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def ptable() -> pd.DataFrame:
    return make_prefix_table()


@pytest.fixture(scope="module")
def pfitted(ptable: pd.DataFrame) -> CallClassifier:
    weights = np.where(ptable["prefix_s"].isna(), 1.0, 0.5)
    return CallClassifier(**SMALL, prefixes=PREFIXES).fit(
        ptable, ptable["label"], groups=ptable["caller_id"], sample_weight=weights
    )


def test_rows_are_bucketed_by_the_largest_prefix_heard(pfitted: CallClassifier) -> None:
    heard = np.array([0.3, 1.9, 2.0, 4.99, 5.0, 19.9, 20.0, 300.0, np.nan, np.inf])
    # A whole call (heard inf: call_complete 1) has a bucket of its own, the last.
    assert list(pfitted._bucket_of(heard)) == [0, 0, 0, 0, 1, 2, 3, 3, 0, 4]
    assert pfitted.prefixes_ == PREFIXES
    assert len(pfitted.bucket_thresholds_) == len(pfitted.bucket_calibrators_) == 5
    assert pfitted.bucket_names() == ["2", "5", "10", "20", "complete"]


def test_emergency_budget_holds_in_every_time_bucket(pfitted: CallClassifier) -> None:
    by = pfitted.validation_["by_prefix"]
    assert list(by) == ["2", "5", "10", "20", "complete"]
    budget = pfitted.possible_target * pfitted.target_margin
    for label, v in by.items():
        # Every time bucket has >= 30 emergency rows here; the whole calls alone do not.
        assert v["own_thresholds"] == (label != "complete"), label
        assert v["emergency_flagged_possible"] <= budget, label
        assert v["emergency_flagged_likely"] <= v["emergency_flagged_possible"]
    # Calibration really is per bucket: one raw score means different things at 2 and 20 s.
    raw = np.array([[0.2, 0.2, 0.2, 0.4]])
    early, late = (pfitted.calibrate(raw, np.array([h])) for h in (2.0, 30.0))
    assert not np.allclose(early, late)


def test_a_thin_bucket_falls_back_to_every_rows_thresholds(ptable: pd.DataFrame) -> None:
    # Drop the emergency rows heard 5-10 s: that bucket cannot set its own thresholds.
    heard = ptable["audio_duration_s"]
    thin = ptable[~((ptable["label"] == "emergency") & (heard >= 5) & (heard < 10))]
    clf = CallClassifier(max_iter=10, n_folds=3, prefixes=PREFIXES).fit(
        thin, thin["label"], groups=thin["caller_id"]
    )
    assert clf.bucket_calibrators_[1] is None
    assert clf.bucket_thresholds_[1] == clf.thresholds_
    assert clf.validation_["by_prefix"]["5"]["own_thresholds"] is False


def test_scores_use_the_bucket_of_the_time_heard(pfitted: CallClassifier) -> None:
    row = pd.DataFrame([{f: 0.0 for f in pfitted.features_}])
    M = row.to_numpy(dtype=float)
    raw = pfitted.predict_proba_matrix(M, calibrated=False)
    for b, heard in enumerate((3.0, 7.0, 15.0, 60.0)):
        cals = pfitted.bucket_calibrators_[b]
        expected = pfitted._apply_calibrators(cals, raw)
        np.testing.assert_allclose(pfitted.calibrate(raw, np.array([heard])), expected)


def test_the_early_ghost_rule() -> None:
    flags = np.array(["likely_ghost", "likely_ghost", "likely_ghost", "likely_prank", "none"])
    heard = np.array([4.9, 5.0, np.nan, 1.0, 1.0])
    out = cap_early_ghost(flags, heard, min_likely_s=5.0)
    assert list(out) == ["possible_ghost", "likely_ghost", "possible_ghost", "likely_prank", "none"]
    assert flags[0] == "likely_ghost"  # a copy


def test_flag_proba_caps_ghost_before_the_minimum_time(pfitted: CallClassifier) -> None:
    proba = np.array([[0.0, 0.0, 0.0, 1.0]] * 4)
    heard = np.array([2.0, 9.9, 10.0, 30.0])
    flags = pfitted.flag_proba(proba, heard)
    assert list(flags) == ["possible_ghost", "possible_ghost", "likely_ghost", "likely_ghost"]
    # The pre-answer model hears nothing: no bucket, no rule (heard is None).
    assert list(pfitted.flag_proba(proba[:1], None)) == ["likely_ghost"]


def test_an_early_ghost_flag_says_the_caller_is_silent_so_far(
    ptable: pd.DataFrame, pfitted: CallClassifier
) -> None:
    pre = CallClassifier(features=PRE_ANSWER_FEATURES, max_iter=5, n_folds=3).fit(
        ptable, ptable["label"], groups=ptable["caller_id"]
    )
    model = ScoringModel(call=pfitted, pre_answer=pre, card={"version": "test"})
    ghosts = ptable[(ptable["label"] == "ghost") & ptable["prefix_s"].isna()]
    late = model.score_frame(ghosts)
    # The first 3 s of calls still going on (a call that ended after 3 s is another thing).
    early_rows = ghosts.assign(
        audio_duration_s=3.0, meta_log_duration=math.log1p(3.0), call_complete=0.0
    )
    early = model.score_frame(early_rows)
    assert any(s.flag == "likely_ghost" for s in late)
    assert not any(s.flag == "likely_ghost" for s in early)
    flagged = [s for s in early if s.flag == "possible_ghost"]
    assert flagged
    for s in flagged:
        first = s.reasons[0]
        assert first.group == "silence" and first.target == "ghost"
        assert "silent so far (first 3 s heard" in first.en and "unable to speak" in first.en
        assert "diam sejauh ini" in first.id and "tidak dapat berbicara" in first.id
    # The one-row entry point of the streaming code reads the time heard from the row too.
    one = model.score(early_rows.iloc[0][list(pfitted.features_)].to_dict())
    assert one.flag == early[0].flag


def test_model_saved_before_prefixes_still_scores(ptable: pd.DataFrame) -> None:
    """An old pickle lacks the prefix attributes: it loads as one bucket, with the rule."""
    clf = CallClassifier(max_iter=10, n_folds=3).fit(
        ptable, ptable["label"], groups=ptable["caller_id"]
    )
    state = clf.__getstate__()
    for name in (
        "prefixes",
        "min_likely_ghost_s",
        "prefixes_",
        "bucket_calibrators_",
        "bucket_thresholds_",
    ):
        state.pop(name)
    old = CallClassifier.__new__(CallClassifier)
    old.__setstate__(state)
    old = pickle.loads(pickle.dumps(old))
    assert old.get_params()["prefixes"] is None and old.min_likely_ghost_s == 10.0
    M = ptable.loc[:, list(old.features_)].to_numpy(dtype=float)
    proba = old.predict_proba_matrix(M)
    np.testing.assert_array_equal(proba, clf.predict_proba_matrix(M))
    heard = old.heard_seconds(M)
    expected = cap_early_ghost(
        flags_from_proba(proba, classes=LABELS, thresholds=clf.thresholds_), heard, min_likely_s=10
    )
    assert list(old.flag_proba(proba, heard)) == list(expected)


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        ({"prefixes": (0.1, 5)}, "prefix 0.1"),
        ({"prefixes": (2, float("nan"))}, "prefix nan"),
        ({"prefixes": ("5",)}, "not a number"),
        ({"min_likely_ghost_s": -1.0}, "min_likely_ghost_s"),
        ({"min_likely_ghost_s": float("inf")}, "min_likely_ghost_s"),
    ],
)
def test_bad_prefix_parameters_raise(ptable: pd.DataFrame, params: dict, pattern: str) -> None:
    with pytest.raises(InvalidParameterError, match=pattern):
        CallClassifier(max_iter=2, n_folds=2, **params).fit(ptable, ptable["label"])


@pytest.mark.parametrize(
    ("weights", "pattern"),
    [(np.ones(3), "shape"), ("abc", "numbers"), (None, "finite")],
)
def test_bad_sample_weight_raises(ptable: pd.DataFrame, weights, pattern: str) -> None:
    if weights is None:
        weights = np.full(len(ptable), -1.0)
    with pytest.raises(InvalidParameterError, match=pattern):
        CallClassifier(max_iter=2, n_folds=2).fit(ptable, ptable["label"], sample_weight=weights)


def test_check_prefixes_sorts_and_dedupes() -> None:
    assert check_prefixes([20, 2, 5.0, 2]) == (2.0, 5.0, 20.0)
    assert check_prefixes(None) == check_prefixes(()) == ()


def test_prefix_rows_weigh_less_than_whole_calls(ptable: pd.DataFrame) -> None:
    from training.train import prefix_weights

    w = prefix_weights(ptable, prefix_weight=0.25)
    assert set(w[ptable["prefix_s"].isna().to_numpy()]) == {1.0}
    assert set(w[ptable["prefix_s"].notna().to_numpy()]) == {0.25}
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(InvalidParameterError, match="prefix_weight"):
            prefix_weights(ptable, prefix_weight=bad)
