"""Fast weighted bin edges for scikit-learn's histogram gradient boosting.

With ``sample_weight``, scikit-learn (1.6 and later) finds each feature's 255 bin
edges by calling its weighted-percentile helper once per edge. Each call re-sorts the
column and resolves the array namespace: 150 features cost 30-40 s per fit of a few
thousand calls on this project's machines, where the fit itself takes 2 s. Every fit
here is weighted (class balance, domains, time heard), so that one step dominated the
small fits of the tests, ``callsift adapt`` and each fold of ``callsift train``.

:func:`install` replaces that step with one that computes all edges of a feature in
one vectorised pass, by the same arithmetic in the same order, so the edges are equal
to the last bit (``tests/code/test_binning.py`` checks it against scikit-learn's own
function) and so are the trees. It only does so for the scikit-learn versions whose
code it was checked against; any other version keeps its own.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

# Versions whose ``_find_binning_thresholds`` and ``_weighted_percentile`` this module
# mirrors (read from their source; checked by the test).
_CHECKED = ("1.9.",)
_lock = threading.Lock()


def weighted_percentiles(values: np.ndarray, weights: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Weighted ``averaged_inverted_cdf`` percentiles of one column, all ranks at once.

    The arithmetic of ``sklearn.utils.stats._weighted_percentile(..., average=True)``
    for a column without NaN and without zero weights (the binning removes both).

    Parameters
    ----------
    values : ndarray, shape (n,)
        Column values, float64.
    weights : ndarray, shape (n,)
        Positive weights, float64.
    ranks : ndarray, shape (k,)
        Percentile ranks in [0, 100].

    Returns
    -------
    ndarray, shape (k,)
    """
    order = np.argsort(values.reshape(-1, 1), axis=0)[:, 0]
    cdf = np.cumsum(weights[order])
    adjusted = ranks / 100 * cdf[-1]
    zero = adjusted == 0
    adjusted[zero] = np.nextafter(adjusted[zero], adjusted[zero] + 1)
    last = order.size - 1
    at = np.clip(np.searchsorted(cdf, adjusted), 0, last)
    above = (cdf[at] - adjusted) > np.finfo(np.float64).eps
    here = values[order[at]]
    nxt = values[order[np.clip(at + 1, 0, last)]]
    out: np.ndarray = np.where(above, here, (here + nxt) / 2)
    return out


def _find_binning_thresholds(
    col_data: np.ndarray, max_bins: int, sample_weight: np.ndarray | None = None
) -> np.ndarray:
    from sklearn.ensemble._hist_gradient_boosting.common import ALMOST_INF, X_DTYPE

    if sample_weight is None:
        return _ORIGINAL[0](col_data, max_bins, sample_weight=None)
    missing = np.isnan(col_data)
    if missing.any():
        col_data = col_data[~missing]
        sample_weight = sample_weight[~missing]
    nonzero = sample_weight != 0
    col_data = col_data[nonzero]
    sample_weight = sample_weight[nonzero]
    order = np.argsort(col_data)
    col_data = col_data[order]
    sample_weight = sample_weight[order]
    distinct = np.unique(col_data).astype(X_DTYPE)
    if len(distinct) == 1:
        return np.asarray([])
    if len(distinct) <= max_bins:
        edges = np.lib.stride_tricks.sliding_window_view(distinct, 2).mean(axis=1)
    else:
        ranks = np.linspace(0, 100, num=max_bins + 1)[1:-1]
        edges = weighted_percentiles(
            np.asarray(col_data, dtype=np.float64),
            np.asarray(sample_weight, dtype=np.float64),
            ranks,
        )
    uniq = np.unique(edges)
    if uniq.shape[0] != edges.shape[0]:
        edges = uniq
    np.clip(edges, a_min=None, a_max=ALMOST_INF, out=edges)
    return edges


_ORIGINAL: list[Any] = []


def install() -> bool:
    """Use the vectorised bin edges in scikit-learn's binning, once per process.

    Returns
    -------
    bool
        Whether this scikit-learn version is one the replacement was checked against
        (and so is in use).
    """
    import sklearn
    from sklearn.ensemble._hist_gradient_boosting import binning

    if not sklearn.__version__.startswith(_CHECKED):
        return False
    with _lock:
        if not _ORIGINAL:  # holds scikit-learn's function once the replacement is in
            _ORIGINAL.append(binning._find_binning_thresholds)
            binning._find_binning_thresholds = _find_binning_thresholds
    return True


def original() -> Any:
    """scikit-learn's own ``_find_binning_thresholds`` (for the equality test)."""
    from sklearn.ensemble._hist_gradient_boosting import binning

    return _ORIGINAL[0] if _ORIGINAL else binning._find_binning_thresholds
