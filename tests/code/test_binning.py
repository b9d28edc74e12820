"""classifier.binning gives scikit-learn's own weighted bin edges, to the last bit."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier

from classifier import binning

pytestmark = pytest.mark.skipif(
    not binning.install(), reason=f"scikit-learn {sklearn.__version__} keeps its own binning"
)


def _columns(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for n in (40, 300, 1000, 4000):
        x = rng.normal(size=n)
        out.append((x, rng.uniform(0.1, 5.0, n)))
        ties = np.round(x, 1)  # fewer distinct values than bins at small n, ties at all n
        out.append((ties, rng.integers(1, 4, n).astype(float)))
        gaps = x.copy()
        gaps[rng.random(n) < 0.2] = np.nan
        w = rng.uniform(0.0, 2.0, n)
        w[rng.random(n) < 0.1] = 0.0
        out.append((gaps, w))
        out.append((np.exp(3 * x), np.ones(n)))
    out.append((np.full(50, 3.0), np.ones(50)))
    return out


def test_edges_equal_scikit_learns_to_the_last_bit() -> None:
    rng = np.random.default_rng(7)
    theirs = binning.original()
    for x, w in _columns(rng):
        ours = binning._find_binning_thresholds(x, 255, sample_weight=w)
        ref = theirs(x, 255, sample_weight=w)
        assert ours.dtype == ref.dtype and ours.shape == ref.shape
        assert np.array_equal(ours, ref), (x.size, np.flatnonzero(ours != ref)[:5])


def test_a_weighted_fit_gives_the_same_trees() -> None:
    from sklearn.ensemble._hist_gradient_boosting import binning as skb

    rng = np.random.default_rng(3)
    X = rng.normal(size=(600, 6))
    X[:, 2] = np.round(X[:, 2])
    y = rng.integers(0, 3, 600)
    w = rng.integers(1, 4, 600).astype(float)  # whole weights: ranks land on data points
    # New points fall between the training values, where the edges decide.
    unseen = rng.normal(size=(5000, 6))

    def fit() -> np.ndarray:
        model = HistGradientBoostingClassifier(max_iter=20, random_state=0)
        return model.fit(X, y, sample_weight=w).predict_proba(unseen)

    fast = fit()
    skb._find_binning_thresholds = binning.original()
    try:
        slow = fit()
    finally:
        skb._find_binning_thresholds = binning._find_binning_thresholds
    assert np.array_equal(fast, slow)
