"""The prank and ghost model: calibrated four-class gradient boosting with flag thresholds.

:class:`CallClassifier` follows scikit-learn's conventions: ``__init__`` only stores
parameters, :meth:`CallClassifier.fit` validates its input and returns ``self``, learned
attributes end in ``_``, and every prediction checks that the model is fitted.

Fitting runs a caller-grouped cross-validation first. Its out-of-fold probabilities,
which never saw the caller they score, fit one isotonic calibrator per class and choose
the flag thresholds, so that both are set on calls the model did not learn from.

A live call is scored from its first seconds (issue 7). Trained with ``prefixes``, the
model sets its calibration and thresholds per time heard (``audio_duration_s``), so the
emergency budget holds early as late; and before ``min_likely_ghost_s`` heard a ghost
flag is at most ``possible`` (:func:`cap_early_ghost`), whatever the model.
"""

from __future__ import annotations

import copy
import numbers
import warnings
from bisect import bisect_right
from collections.abc import Sequence
from contextlib import AbstractContextManager
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import ThreadpoolController

from classifier import binning
from classifier.errors import InvalidParameterError
from classifier.features import FEATURE_NAMES
from classifier.formats import LABELS

#: Flag levels, weakest first; ``none`` is the absence of a flag.
FLAGS: tuple[str, ...] = (
    "none",
    "possible_prank",
    "likely_prank",
    "possible_ghost",
    "likely_ghost",
)
#: The classes a flag can point at, and the class whose false flags are limited.
FLAGGED_CLASSES: tuple[str, ...] = ("prank", "ghost")
PROTECTED_CLASS = "emergency"
_LEVELS: tuple[str, ...] = ("possible", "likely")
_SPLIT_GRID = np.linspace(0.0, 1.0, 11)
#: The feature that says how much of the call has been heard (seconds of audio).
HEARD_FEATURE = "audio_duration_s"
#: 1 when a row's audio is the whole call; such rows form a bucket of their own.
COMPLETE_FEATURE = "call_complete"
#: Shortest prefix: the acoustic features need a quarter of a second of audio.
MIN_PREFIX_S = 0.25
# A time bucket gets its own calibration and thresholds only with this many emergency
# rows; fewer cannot place a threshold that protects them (it falls back to all rows').
_MIN_BUCKET_PROTECTED = 30
#: Largest share of the training rows one caller (fold group) may hold. The fold that
#: scores that caller learns from the others only; past half of the rows, most of the
#: scores that set calibration and thresholds come from a model trained on less than
#: half the data, not from one like the model used (a rule of judgment, not a measure).
MAX_GROUP_SHARE = 0.5


def check_prefixes(values: Sequence[float] | None) -> tuple[float, ...]:
    """Prefix lengths (seconds heard) as a sorted tuple of distinct floats.

    Raises
    ------
    InvalidParameterError
        A value that is not a finite number of at least :data:`MIN_PREFIX_S` seconds.
    """
    out: set[float] = set()
    for v in values or ():
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise InvalidParameterError(f"prefix {v!r} is not a number of seconds")
        f = float(v)
        if not np.isfinite(f) or f < MIN_PREFIX_S:
            raise InvalidParameterError(
                f"prefix {v!r} s: expected a finite number of seconds >= {MIN_PREFIX_S}"
            )
        out.add(f)
    return tuple(sorted(out))


@lru_cache(maxsize=1)
def _controller() -> ThreadpoolController:
    return ThreadpoolController()


def _one_thread() -> AbstractContextManager[Any]:
    # OpenMP threads spin while they wait: on a shared 2-core machine one busy neighbour
    # made a fit 8x slower (4.4 s vs 34 s measured); one thread per process is steadier.
    return _controller().limit(limits=1, user_api="openmp")


def as_frame(X: Any, features: Sequence[str]) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise InvalidParameterError(
            f"X is a {type(X).__name__}; expected a pandas DataFrame with feature columns"
        )
    missing = [f for f in features if f not in X.columns]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise InvalidParameterError(
            f"X lacks {len(missing)} of the model's {len(features)} feature columns: {shown}"
        )
    return X


def feature_matrix(X: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    try:
        M = X.loc[:, list(features)].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"feature columns must be numeric: {exc}") from exc
    if np.isinf(M).any():
        bad = [f for f, col in zip(features, np.isinf(M).any(axis=0), strict=True) if col]
        raise InvalidParameterError(f"infinite values in feature columns: {', '.join(bad)}")
    return M


def budget_threshold(scores: np.ndarray, allowed: int, floor: float) -> float:
    """Smallest threshold (at least ``floor``) flagging at most ``allowed`` of ``scores``."""
    if scores.size == 0:
        return floor
    s = np.sort(scores)[::-1]
    if allowed >= s.size:
        return floor
    # Strictly above the (allowed+1)-th highest score, so ties never exceed the budget.
    return float(max(floor, np.nextafter(s[allowed], np.inf)))


def choose_thresholds(
    proba: np.ndarray,
    y: np.ndarray,
    *,
    classes: Sequence[str],
    targets: dict[str, float],
    floors: dict[str, float],
) -> dict[str, dict[str, float]]:
    """Flag thresholds that keep the share of emergency calls flagged under each target.

    At each level a call is flagged when ``p_prank`` or ``p_ghost`` reaches its
    threshold. The level's budget of emergency calls is split between the two classes
    where that split catches the most prank and ghost calls; a call counts once however
    many classes flag it, so the union respects the target.

    Parameters
    ----------
    proba : ndarray, shape (n_calls, n_classes)
        Out-of-sample probabilities.
    y : ndarray of str, shape (n_calls,)
        True labels.
    classes : sequence of str, keyword-only
        Column order of ``proba``.
    targets : dict, keyword-only
        Level name (``possible``, ``likely``) to the largest share of emergency calls
        it may flag.
    floors : dict, keyword-only
        Level name to the lowest probability that may raise that flag.

    Returns
    -------
    dict
        ``{level: {"prank": t, "ghost": t}}``.
    """
    col = {c: i for i, c in enumerate(classes)}
    protected = y == PROTECTED_CLASS
    n_protected = int(protected.sum())
    out: dict[str, dict[str, float]] = {}
    for level in _LEVELS:
        allowed = int(np.floor(targets[level] * n_protected + 1e-9))
        best: tuple[float, dict[str, float]] | None = None
        for share in _SPLIT_GRID:
            a_prank = int(np.floor(share * allowed + 1e-9))
            t = {
                "prank": budget_threshold(proba[protected, col["prank"]], a_prank, floors[level]),
                "ghost": budget_threshold(
                    proba[protected, col["ghost"]], allowed - a_prank, floors[level]
                ),
            }
            caught = 0.0
            for cls in FLAGGED_CLASSES:
                mask = y == cls
                if mask.any():
                    caught += float((proba[mask, col[cls]] >= t[cls]).mean())
            if best is None or caught > best[0] + 1e-12:
                best = (caught, t)
        assert best is not None
        out[level] = best[1]
    # A likely flag must never be easier to raise than a possible one.
    for cls in FLAGGED_CLASSES:
        out["likely"][cls] = max(out["likely"][cls], out["possible"][cls])
    return out


def flags_from_proba(
    proba: np.ndarray, *, classes: Sequence[str], thresholds: dict[str, dict[str, float]]
) -> np.ndarray:
    """The flag of each call from its probabilities.

    Parameters
    ----------
    proba : ndarray, shape (n_calls, n_classes)
    classes : sequence of str, keyword-only
        Column order of ``proba``.
    thresholds : dict, keyword-only
        From :func:`choose_thresholds`.

    Returns
    -------
    ndarray of str, shape (n_calls,)
        One of :data:`FLAGS` per call. When both classes pass, the stronger level wins,
        then the higher probability.
    """
    return _FLAG_NAMES[_flag_codes(proba, classes=classes, thresholds=thresholds)]


# A flag as a code: the level (0 none, 1 possible, 2 likely) of the winning class, plus 3
# when ghost wins. Codes cost a few array operations where strings cost a mask per flag.
_FLAG_NAMES = np.asarray(
    ["none", "possible_prank", "likely_prank", "none", "possible_ghost", "likely_ghost"],
    dtype=object,
)


def _flag_of(proba: list[float], thresholds: dict[str, dict[str, float]]) -> str:
    """:func:`flags_from_proba` of one row in LABELS order, in Python floats."""
    level = {}
    for cls in FLAGGED_CLASSES:
        p = proba[LABELS.index(cls)]
        level[cls] = (
            2 if p >= thresholds["likely"][cls] else 1 if p >= thresholds["possible"][cls] else 0
        )
    p_prank, p_ghost = proba[LABELS.index("prank")], proba[LABELS.index("ghost")]
    lp, lg = level["prank"], level["ghost"]
    prank_wins = lp > lg or (lp == lg and p_prank >= p_ghost)
    return str(_FLAG_NAMES[lp if prank_wins else lg + 3])


def _flag_codes(
    proba: np.ndarray, *, classes: Sequence[str], thresholds: dict[str, dict[str, float]]
) -> np.ndarray:
    col = {c: i for i, c in enumerate(classes)}
    p = {cls: proba[:, col[cls]] for cls in FLAGGED_CLASSES}
    level = {
        cls: np.where(p[cls] >= thresholds["likely"][cls], 2, p[cls] >= thresholds["possible"][cls])
        for cls in FLAGGED_CLASSES
    }
    prank_wins = (level["prank"] > level["ghost"]) | (
        (level["prank"] == level["ghost"]) & (p["prank"] >= p["ghost"])
    )
    return np.where(prank_wins, level["prank"], level["ghost"] + 3)


def cap_early_ghost(flags: np.ndarray, heard_s: np.ndarray, *, min_likely_s: float) -> np.ndarray:
    """The safety rule: before ``min_likely_s`` heard, a ghost flag is at most ``possible``.

    A caller silent for the first seconds is not yet a ghost call: a person in danger may
    need time to speak, or be unable to. Rows with an unknown time heard (NaN) count as
    early.

    Parameters
    ----------
    flags : ndarray of str, shape (n_calls,)
    heard_s : ndarray, shape (n_calls,)
        Seconds of audio heard when each row was scored.
    min_likely_s : float, keyword-only

    Returns
    -------
    ndarray of str, shape (n_calls,)
        A copy with ``likely_ghost`` lowered to ``possible_ghost`` on the early rows.
    """
    out = np.asarray(flags, dtype=object).copy()
    early = ~(np.asarray(heard_s, dtype=np.float64) >= min_likely_s)  # NaN is early
    out[early & (out == "likely_ghost")] = "possible_ghost"
    return out


#: Rows walked together through each tree: their slice of the matrix stays in cache while
#: the tree's nodes do too (a larger batch is walked block after block).
_ROW_BLOCK = 64
#: Top bit of a node's feature code: a NaN at this node goes right.
_NAN_RIGHT = np.uint32(1 << 31)


@lru_cache(maxsize=1)
def _walk_kernel() -> Any:
    """The tree walk compiled with numba (a librosa dependency), built on first use."""
    import numba

    @numba.njit(nogil=True, cache=True)
    def walk(
        X: np.ndarray,
        roots: np.ndarray,
        depth: np.ndarray,
        code: np.ndarray,
        left: np.ndarray,
        right: np.ndarray,
        value: np.ndarray,
        baseline: np.ndarray,
        n_classes: int,
    ) -> np.ndarray:
        n, n_features = X.shape
        flat_x = X.ravel()
        out = np.empty((n, n_classes))
        for i in range(n):
            for k in range(n_classes):
                out[i, k] = baseline[k]
        at = np.empty(_ROW_BLOCK, np.uint32)
        # Unsigned offsets and indices: numba adds no negative-index fix-up to each load.
        row_at = np.empty(_ROW_BLOCK, np.uint64)
        feature_mask = ~_NAN_RIGHT
        for start in range(0, n, _ROW_BLOCK):
            m = min(_ROW_BLOCK, n - start)
            for j in range(m):
                row_at[j] = np.uint64((start + j) * n_features)
            # Tree by tree, the block's rows side by side: the rows' walks are independent,
            # so the CPU overlaps them instead of waiting on one row's chain of loads.
            for t in range(roots.size):
                for j in range(m):
                    at[j] = roots[t]
                for _ in range(depth[t]):
                    moved = False
                    for j in range(m):
                        node = at[j]
                        c = code[node]
                        x = flat_x[row_at[j] + (c & feature_mask)]
                        # Arithmetic, not a branch: which way a row goes is unpredictable.
                        # NaN compares false: it goes right only where the node says so.
                        go_right = np.uint32(x > value[node]) | (
                            np.uint32(x != x) & (c >> np.uint32(31))
                        )
                        to = left[node]
                        to += go_right * (right[node] - to)
                        moved |= to != node
                        at[j] = to
                    if not moved:  # every row of the block is at its leaf
                        break
                # Trees are stored iteration by iteration, class by class: each class's
                # sum is built in scikit-learn's own order, so the floats come out identical.
                k = t % n_classes
                for j in range(m):
                    out[start + j, k] += value[at[j]]
        return out

    return walk


class _FlatForest:
    """The booster's trees as flat arrays, walked by compiled code.

    scikit-learn predicts tree by tree in a Python loop: 1,200 trees cost about 10 ms per
    call however few rows there are. The compiled walk over the same arrays takes tens of
    microseconds per call and gives the same raw scores, summed in the same order; a numpy
    walk of all trees at once is kept for when numba cannot compile.

    A node is three uint32, ``code`` (feature index, top bit set when a NaN goes right),
    ``left`` and ``right`` (children; a leaf is its own children), and one float64,
    ``value``: the split threshold (float64, so comparisons are exact) or the leaf's value.
    """

    def __init__(self, booster: HistGradientBoostingClassifier) -> None:
        predictors = booster._predictors
        self.n_iter = len(predictors)
        self.n_classes = len(predictors[0])
        trees = [tree.nodes for iteration in predictors for tree in iteration]
        sizes = np.asarray([len(t) for t in trees], dtype=np.int64)
        roots = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        flat = np.concatenate(trees)
        if flat.size >= 2**32 or booster.n_features_in_ >= 2**31:
            raise ValueError("the booster is too large for 32-bit node indices")
        if flat["is_categorical"].any():
            raise ValueError("categorical splits are not supported by the flat walk")
        shift = np.repeat(roots, sizes)
        leaf = flat["is_leaf"].astype(bool)
        here = np.arange(flat.size, dtype=np.int64)
        nan_right = ~flat["missing_go_to_left"].astype(bool) & ~leaf
        feature = np.where(leaf, 0, flat["feature_idx"]).astype(np.uint32)
        self.code = feature | np.where(nan_right, _NAN_RIGHT, np.uint32(0))
        # Leaves point to themselves, so extra levels of the walk leave them in place.
        self.left = np.where(leaf, here, flat["left"].astype(np.int64) + shift).astype(np.uint32)
        self.right = np.where(leaf, here, flat["right"].astype(np.int64) + shift).astype(np.uint32)
        self.value = np.where(leaf, flat["value"], flat["num_threshold"]).astype(np.float64)
        self.roots = roots.astype(np.uint32)
        # Levels below a tree's root: the walk of that tree needs at most this many steps.
        self.depth = np.maximum.reduceat(flat["depth"].astype(np.int64), roots).astype(np.uint32)
        self.baseline = np.asarray(booster._baseline_prediction, dtype=np.float64).ravel()
        self.loss = booster._loss
        self.booster = booster
        # The booster's column of each of LABELS (its classes are sorted by name), or None
        # when it never saw some class (CallClassifier._expand fills in zeros).
        classes = [str(c) for c in booster.classes_]
        self.label_columns = (
            np.asarray([classes.index(c) for c in LABELS], dtype=np.intp)
            if sorted(classes) == sorted(LABELS)
            else None
        )

    def raw(self, M: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(M, dtype=np.float64)
        try:
            kernel = _walk_kernel()
        except Exception:  # no numba on this platform: the numpy walk is exact too
            return self._raw_numpy(X)
        return np.asarray(
            kernel(
                X,
                self.roots,
                self.depth,
                self.code,
                self.left,
                self.right,
                self.value,
                self.baseline,
                self.n_classes,
            )
        )

    def _raw_numpy(self, M: np.ndarray) -> np.ndarray:
        n, n_features = M.shape
        flat_x = np.ascontiguousarray(M, dtype=np.float64).ravel()
        feature = (self.code & ~_NAN_RIGHT).astype(np.int64)
        nan_right = self.code >= _NAN_RIGHT
        left = self.left.astype(np.int64)
        right = self.right.astype(np.int64)
        idx = np.broadcast_to(self.roots.astype(np.int64), (n, self.roots.size)).copy()
        row_start = (np.arange(n, dtype=np.int64) * n_features)[:, None]
        for level in range(int(self.depth.max(initial=0))):
            x = flat_x.take(row_start + feature.take(idx))
            go_right = (x > self.value.take(idx)) | (np.isnan(x) & nan_right.take(idx))
            nxt = np.where(go_right, right.take(idx), left.take(idx))
            # Most trees are shallow: stop once every walk has reached its leaf.
            if level >= 3 and np.array_equal(nxt, idx):
                break
            idx = nxt
        values = self.value[idx].reshape(n, self.n_iter, self.n_classes)
        start = np.broadcast_to(self.baseline, (n, 1, self.n_classes))
        # cumsum adds in sequence, exactly as scikit-learn accumulates its iterations.
        return np.cumsum(np.concatenate([start, values], axis=1), axis=1)[:, -1, :]

    def predict_proba(self, M: np.ndarray) -> np.ndarray:
        raw = self.raw(M)
        if self.n_classes == 1:  # binary boosting: one tree per iteration
            p = self.loss.predict_proba(raw.ravel())
            return np.asarray(p)
        # scikit-learn's softmax step for step (same floats), without its array checks; the
        # reductions called as ufuncs, which is what .max and .sum call, minus their wrappers.
        X = raw - np.maximum.reduce(raw, axis=1).reshape(-1, 1)
        np.exp(X, out=X)
        X /= np.add.reduce(X, axis=1).reshape(-1, 1)
        return X


def fit_booster(
    booster: HistGradientBoostingClassifier,
    M: np.ndarray,
    y: np.ndarray,
    w: np.ndarray | None,
) -> HistGradientBoostingClassifier:
    """Fit ``booster`` on ``M``, a feature without a value in the rows it learns from
    given a constant instead.

    scikit-learn bins each feature from the values of the rows of non-zero weight, and
    on a feature with none at all (a mono export has no caller/call-taker features; a
    fold may hold no call with a pitch) it raises from deep in its binning. A constant
    feature is never split on, as an empty one could not be: the trees are the same
    as without that feature, and what it holds when scoring changes nothing.

    Weighted bin edges come from :mod:`classifier.binning` (the same edges, found in
    one pass per feature instead of one per edge).
    """
    if w is not None:
        binning.install()
    seen = ~np.isnan(M) if w is None else ~np.isnan(M) & (w > 0)[:, None]
    empty = ~seen.any(axis=0)
    if empty.any():
        M = M.copy()
        M[:, empty] = 0.0
    return booster.fit(M, y, sample_weight=w)


class CallClassifier(ClassifierMixin, BaseEstimator):
    """Four-class call model (emergency, non_emergency, prank, ghost) with calibrated scores.

    Parameters
    ----------
    features : sequence of str or None
        Feature columns the model reads; None means every name of
        :data:`classifier.features.FEATURE_NAMES`.
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization, max_features
        Passed to :class:`sklearn.ensemble.HistGradientBoostingClassifier`;
        ``min_samples_leaf`` is capped at 1/40 of the training calls (at least 2).
    calibration : {"isotonic", "sigmoid", "none"}
        How out-of-fold scores are mapped to probabilities.
    n_folds : int
        Caller-grouped folds for calibration and thresholds.
    possible_target, likely_target : float
        Largest share of emergency calls the ``possible_*`` and ``likely_*`` flags may
        raise on validation calls (defaults 1% and 0.2%).
    target_margin : float
        Thresholds are chosen for ``target * target_margin`` on validation calls, leaving
        room for calls that differ from the training data (measured on unseen corpora:
        with 0.7, 1.07-1.3% of emergency calls flagged where validation showed 0.7-0.94%;
        with 0.5, 0.8-1.07%).
    possible_floor, likely_floor : float
        Lowest probability that may raise each level, whatever the targets allow.
    prefixes : sequence of float or None
        Seconds heard at which the training calls were also cut (the prefix rows of
        :func:`training.features.extract_features`). Rows are bucketed by time heard
        (``audio_duration_s``): ``[0, p2)``, ``[p2, p3)``, ..., ``[pk, inf)``, each
        named by its prefix ``p1 ... pk``, and each bucket gets its own calibration
        and flag thresholds, chosen on its own out-of-fold rows, so that an early
        score keeps the emergency budget for how much has been heard. None or empty:
        one calibration and one set of thresholds for every row.
    min_likely_ghost_s : float
        Safety rule: before this many seconds heard a ghost flag is at most
        ``possible``, never ``likely`` (see :func:`cap_early_ghost`). The default is
        from the simulated corpora: 5 s into a call, 72% of emergency callers
        (stereo recordings) had not spoken yet; 10 s in, 2.6% (docs/model.md).
    random_state : int
        Seed of the folds and of the boosting.

    Attributes
    ----------
    classes_ : ndarray of str, shape (4,)
        Always :data:`classifier.formats.LABELS`, even when a class had no examples.
    features_ : tuple of str
        The feature columns read, in order.
    estimator_ : HistGradientBoostingClassifier
        Fitted on every training call.
    calibrators_ : list
        One calibrator per class of ``classes_`` (None for a class never seen).
    thresholds_ : dict
        ``{"possible": {"prank": t, "ghost": t}, "likely": {...}}``, chosen on every
        out-of-fold row; used for every row when there are no prefixes.
    prefixes_ : tuple of float
        The checked ``prefixes`` (empty: one bucket).
    bucket_calibrators_ : list, length max(1, len(prefixes_))
        Per time bucket, one calibrator per class, or None where the bucket had too few
        emergency rows and uses ``calibrators_``.
    bucket_thresholds_ : list of dict, length max(1, len(prefixes_))
        Per time bucket, thresholds as ``thresholds_`` (a copy of it where the bucket
        had too few emergency rows).
    threshold_domains_ : list of str
        The ``domains`` of :meth:`fit` whose own emergency rows raised the thresholds
        where they needed it (empty: thresholds of all rows only).
    reference_ : ndarray, shape (n_features,)
        Median of each feature over genuine (emergency and non-emergency) training calls:
        what a feature is replaced with when explaining a score.
    validation_ : dict
        Out-of-fold figures: rows, emergency share flagged per level, recall per class;
        with prefixes, the same per time bucket under ``"by_prefix"``.
    """

    def __init__(
        self,
        *,
        features: Sequence[str] | None = None,
        max_iter: int = 300,
        learning_rate: float = 0.05,
        max_leaf_nodes: int = 15,
        min_samples_leaf: int = 30,
        l2_regularization: float = 1.0,
        max_features: float = 0.5,
        calibration: str = "isotonic",
        n_folds: int = 4,
        possible_target: float = 0.01,
        likely_target: float = 0.002,
        target_margin: float = 0.35,
        possible_floor: float = 0.25,
        likely_floor: float = 0.5,
        prefixes: Sequence[float] | None = None,
        min_likely_ghost_s: float = 10.0,
        random_state: int = 0,
    ) -> None:
        self.features = features
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.max_features = max_features
        self.calibration = calibration
        self.n_folds = n_folds
        self.possible_target = possible_target
        self.likely_target = likely_target
        self.target_margin = target_margin
        self.possible_floor = possible_floor
        self.likely_floor = likely_floor
        self.prefixes = prefixes
        self.min_likely_ghost_s = min_likely_ghost_s
        self.random_state = random_state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A model saved before prefixes existed loads as a one-bucket model, and gets
        # the early-ghost safety rule at its default.
        state.setdefault("prefixes", None)
        state.setdefault("min_likely_ghost_s", 10.0)
        if "thresholds_" in state:
            state.setdefault("prefixes_", ())
            state.setdefault("bucket_calibrators_", [None])
            state.setdefault("bucket_thresholds_", [state["thresholds_"]])
            state.setdefault("threshold_domains_", [])
        super().__setstate__(state)

    def _booster(self, n_calls: int) -> HistGradientBoostingClassifier:
        # A small centre's few hundred reviewed calls must still be able to split.
        leaf = max(2, min(self.min_samples_leaf, n_calls // 40))
        return HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=leaf,
            l2_regularization=self.l2_regularization,
            max_features=self.max_features,
            class_weight="balanced",
            early_stopping=False,
            random_state=self.random_state,
        )

    def check_params(self) -> None:
        """Raise :class:`InvalidParameterError` on a parameter outside its range (fit
        checks them first; callers check before costly work)."""
        if self.calibration not in ("isotonic", "sigmoid", "none"):
            raise InvalidParameterError(
                f"calibration is {self.calibration!r}; expected isotonic, sigmoid or none"
            )
        if not isinstance(self.n_folds, numbers.Integral) or self.n_folds < 2:
            raise InvalidParameterError(f"n_folds is {self.n_folds!r}; expected 2 or more")
        for name in ("possible_target", "likely_target"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise InvalidParameterError(f"{name} is {v}; expected a share in [0, 1)")
        if not 0.0 < self.target_margin <= 1.0:
            raise InvalidParameterError(
                f"target_margin is {self.target_margin}; expected a factor in (0, 1]"
            )
        if self.likely_target > self.possible_target:
            raise InvalidParameterError(
                f"likely_target {self.likely_target} exceeds possible_target "
                f"{self.possible_target}; a likely flag must be rarer"
            )
        check_prefixes(self.prefixes)
        m = self.min_likely_ghost_s
        if isinstance(m, bool) or not isinstance(m, numbers.Real) or not 0 <= m < np.inf:
            raise InvalidParameterError(
                f"min_likely_ghost_s is {m!r}; expected a finite number of seconds >= 0"
            )

    def fit(
        self,
        X: pd.DataFrame,
        y: Sequence[str] | np.ndarray,
        groups: Sequence[str] | np.ndarray | None = None,
        sample_weight: Sequence[float] | np.ndarray | None = None,
        domains: Sequence[str] | np.ndarray | None = None,
    ) -> Any:
        """Fit the booster, its calibrators and the flag thresholds.

        Parameters
        ----------
        X : DataFrame, shape (n_rows, >= n_features)
            Feature table, one row per call or call prefix; extra columns are ignored.
        y : sequence of str, shape (n_rows,)
            Labels from :data:`classifier.formats.LABELS`.
        groups : sequence of str or None, shape (n_rows,)
            Caller of each row: folds never split one caller, so the prefix rows of a
            call stay with it. Empty strings (withheld numbers) count as one caller per
            row: give prefix rows of withheld calls a key of their call instead. None
            treats every row as its own caller.
        sample_weight : sequence of float or None, shape (n_rows,)
            Weight of each row in the boosting (e.g. less for prefix rows, so that whole
            calls keep their say); calibration and thresholds count rows unweighted.
        domains : sequence of str or None, shape (n_rows,)
            Where each row's audio comes from (e.g. ``sim`` and ``real``). Each flag
            threshold is then the highest of those chosen on all rows and on each domain
            with enough emergency rows alone, so the emergency budget holds in every
            domain, not only on their mix (where the larger one would decide). None: one
            domain.

        Returns
        -------
        self

        Raises
        ------
        InvalidParameterError
            A parameter out of range, or training data the folds cannot be made from:
            fewer than two classes or no emergency call, a class with fewer calls than
            ``n_folds``, fewer callers than ``n_folds``, or one caller holding more than
            :data:`MAX_GROUP_SHARE` of the rows. A feature without any value (all NaN)
            is not an error: the booster cannot split on it and ignores it.
        """
        self.check_params()
        with _one_thread():
            return self._fit(X, y, groups, sample_weight, domains)

    def _fit(
        self,
        X: pd.DataFrame,
        y: Sequence[str] | np.ndarray,
        groups: Sequence[str] | np.ndarray | None,
        sample_weight: Sequence[float] | np.ndarray | None = None,
        domains: Sequence[str] | np.ndarray | None = None,
    ) -> Any:
        features = tuple(self.features) if self.features is not None else FEATURE_NAMES
        X = as_frame(X, features)
        M = feature_matrix(X, features)
        yy = np.asarray([str(v) for v in y], dtype=object)
        if yy.shape[0] != M.shape[0]:
            raise InvalidParameterError(f"X has {M.shape[0]} rows but y has {yy.shape[0]}")
        unknown = sorted(set(yy) - set(LABELS))
        if unknown:
            raise InvalidParameterError(
                f"unknown labels {unknown}; expected labels from {', '.join(LABELS)}"
            )
        present = [c for c in LABELS if (yy == c).any()]
        if len(present) < 2:
            raise InvalidParameterError(
                f"training calls hold only the class {present}; at least two classes are needed"
            )
        if PROTECTED_CLASS not in present:
            raise InvalidParameterError(
                "training calls hold no emergency call; flag thresholds are set to protect "
                "emergency calls and cannot be chosen without them"
            )
        counts = {c: int((yy == c).sum()) for c in present}
        short = [f"{c} calls ({k})" for c, k in counts.items() if k < self.n_folds]
        if short:
            raise InvalidParameterError(
                f"too few {', '.join(short)} to train: class counts {counts}; every class "
                f"present needs at least n_folds={self.n_folds} calls, one per calibration "
                "fold; label more calls of that class"
            )
        g = self._groups(groups, yy.shape[0])
        w = self._weights(sample_weight, yy.shape[0])
        self._check_groups(g)
        dom = self._domains(domains, yy.shape[0])

        self.classes_ = np.asarray(LABELS, dtype=object)
        self.features_ = features
        self.n_features_in_ = len(features)
        self.prefixes_ = check_prefixes(self.prefixes)
        oof = self._out_of_fold(M, yy, g, w)
        self.calibrators_ = self._fit_calibrators(oof, yy)
        self.thresholds_ = self._thresholds(
            self._apply_calibrators(self.calibrators_, oof), yy, dom
        )
        self.threshold_domains_ = self._domains_used(yy, dom)
        heard = self.heard_seconds(M)
        bucket = self._bucket_of(heard)
        self.bucket_calibrators_: list[list[Any] | None] = []
        self.bucket_thresholds_: list[dict[str, dict[str, float]]] = []
        for b in range(self._n_buckets()):
            rows = bucket == b
            enough = int((yy[rows] == PROTECTED_CLASS).sum()) >= _MIN_BUCKET_PROTECTED
            if len(self.prefixes_) > 1 and enough:
                cals = self._fit_calibrators(oof[rows], yy[rows])
                th = self._thresholds(
                    self._apply_calibrators(cals, oof[rows]),
                    yy[rows],
                    None if dom is None else dom[rows],
                )
                self.bucket_calibrators_.append(cals)
                self.bucket_thresholds_.append(th)
            else:
                self.bucket_calibrators_.append(None)
                self.bucket_thresholds_.append(self.thresholds_)
        cal = self._calibrate(oof, heard)
        self.validation_ = self._validation_summary(cal, yy, heard)
        self.estimator_ = fit_booster(self._booster(M.shape[0]), M, yy, w)
        genuine = np.isin(yy, ("emergency", "non_emergency"))
        ref_rows = M[genuine] if genuine.any() else M
        with np.errstate(all="ignore"), warnings.catch_warnings():
            # A feature without any value has no typical value either (NaN), not a warning.
            warnings.simplefilter("ignore", RuntimeWarning)
            self.reference_ = np.nanmedian(ref_rows, axis=0)
        return self

    @staticmethod
    def _groups(groups: Sequence[str] | np.ndarray | None, n: int) -> np.ndarray:
        if groups is None:
            return np.arange(n).astype(str)
        g = np.asarray([str(v) for v in groups], dtype=object)
        if g.shape[0] != n:
            raise InvalidParameterError(f"groups has {g.shape[0]} entries; expected {n}")
        withheld = g == ""
        g[withheld] = [f"\x00withheld:{i}" for i in np.flatnonzero(withheld)]
        return g

    def _check_groups(self, g: np.ndarray) -> None:
        """Raise unless caller-grouped folds can be made: at least one caller per fold,
        and no caller holding more than :data:`MAX_GROUP_SHARE` of the rows."""
        keys, sizes = np.unique(g.astype(str), return_counts=True)
        if keys.size < self.n_folds:
            raise InvalidParameterError(
                f"the training calls come from {keys.size} caller(s); calibration folds "
                f"never split a caller, so n_folds={self.n_folds} folds need at least "
                f"{self.n_folds} callers"
            )
        big = int(np.argmax(sizes))
        n, k = int(g.size), int(sizes[big])
        if k > MAX_GROUP_SHARE * n:
            raise InvalidParameterError(
                f"one caller ({keys[big]}) holds {k} of {n} training rows ({k / n:.0%}); "
                "calibration folds never split a caller, so its calls would be scored by a "
                f"model that learnt from the other {n - k} rows only, and calibration and "
                "flag thresholds would be set on scores of a model far weaker than the one "
                f"trained on all calls (at most {MAX_GROUP_SHARE:.0%} of the rows per caller). "
                "If that number stands for many callers (a trunk line, a placeholder such "
                "as 'unknown'), leave caller_id empty for those calls: a withheld number "
                "counts as a caller of its own"
            )

    @staticmethod
    def _weights(sample_weight: Sequence[float] | np.ndarray | None, n: int) -> np.ndarray | None:
        if sample_weight is None:
            return None
        try:
            w = np.asarray(sample_weight, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(f"sample_weight must be numbers: {exc}") from exc
        if w.shape != (n,):
            raise InvalidParameterError(f"sample_weight has shape {w.shape}; expected ({n},)")
        if not np.isfinite(w).all() or (w < 0).any() or not (w > 0).any():
            raise InvalidParameterError("sample_weight must be finite, >= 0 and not all zero")
        return w

    @staticmethod
    def _domains(domains: Sequence[str] | np.ndarray | None, n: int) -> np.ndarray | None:
        if domains is None:
            return None
        d = np.asarray([str(v) for v in domains], dtype=object)
        if d.shape[0] != n:
            raise InvalidParameterError(f"domains has {d.shape[0]} entries; expected {n}")
        return d

    @staticmethod
    def _domains_used(y: np.ndarray, dom: np.ndarray | None) -> list[str]:
        """Domains with enough emergency rows to hold their own budget."""
        if dom is None:
            return []
        return sorted(
            str(d)
            for d in set(dom)
            if int(((dom == d) & (y == PROTECTED_CLASS)).sum()) >= _MIN_BUCKET_PROTECTED
        )

    def _thresholds(
        self, cal: np.ndarray, y: np.ndarray, dom: np.ndarray | None = None
    ) -> dict[str, dict[str, float]]:
        th = self._thresholds_of(cal, y)
        for d in self._domains_used(y, dom):
            assert dom is not None
            rows = dom == d
            own = self._thresholds_of(cal[rows], y[rows])
            # A higher threshold only flags fewer calls: every domain keeps its budget.
            th = {lv: {c: max(th[lv][c], own[lv][c]) for c in th[lv]} for lv in th}
        return th

    def _thresholds_of(self, cal: np.ndarray, y: np.ndarray) -> dict[str, dict[str, float]]:
        return choose_thresholds(
            cal,
            y,
            classes=LABELS,
            targets={
                "possible": self.possible_target * self.target_margin,
                "likely": self.likely_target * self.target_margin,
            },
            floors={"possible": self.possible_floor, "likely": self.likely_floor},
        )

    def _n_buckets(self) -> int:
        if len(self.prefixes_) < 2:
            return 1
        # One bucket per time heard of calls still going on, one for whole calls.
        return len(self.prefixes_) + (1 if COMPLETE_FEATURE in self.features_ else 0)

    def bucket_names(self) -> list[str]:
        """Name of each bucket: the prefix in seconds, or ``complete`` for whole calls."""
        names = [f"{p:g}" for p in self.prefixes_] or ["all"]
        return [*names, "complete"][: self._n_buckets()]

    def _bucket_of(self, heard: np.ndarray | None) -> np.ndarray:
        """Time bucket of each row: the largest prefix heard (the first below it); whole
        calls (heard ``inf``, see :meth:`heard_seconds`) in the last bucket."""
        if heard is None or len(self.prefixes_) < 2:
            return np.zeros(0 if heard is None else heard.size, dtype=np.int64)
        # Unknown time heard counts as the earliest bucket (the careful one).
        h = np.where(np.isnan(heard), 0.0, heard)
        which = np.asarray(self.prefixes_[1:]).searchsorted(h, side="right")
        if self._n_buckets() > len(self.prefixes_):
            which[h == np.inf] = len(self.prefixes_)  # np.isposinf, minus its wrapper
        return which

    def heard_seconds(self, M: np.ndarray) -> np.ndarray | None:
        """Seconds heard of each row (its ``audio_duration_s``), ``inf`` for a whole call
        (``call_complete`` 1), or None for a model that reads no audio (the pre-answer
        model), shape (n_rows,).

        A whole call is past every time bucket and past the early-ghost rule: the call
        is over, so the caller is no longer "silent so far".
        """
        if HEARD_FEATURE not in self.features_:
            return None
        heard = np.asarray(M[:, self.features_.index(HEARD_FEATURE)], dtype=np.float64)
        if COMPLETE_FEATURE in self.features_:
            done = M[:, self.features_.index(COMPLETE_FEATURE)] == 1.0
            heard = np.where(done, np.inf, heard)
        return heard

    def _out_of_fold(
        self, M: np.ndarray, y: np.ndarray, g: np.ndarray, w: np.ndarray | None = None
    ) -> np.ndarray:
        oof = np.zeros((M.shape[0], len(LABELS)))
        folds = StratifiedGroupKFold(
            n_splits=self.n_folds, shuffle=True, random_state=self.random_state
        )
        booster = self._booster(M.shape[0])
        for train, test in folds.split(M, y, g):
            if test.size == 0:  # few callers can leave a fold without any
                continue
            model = fit_booster(clone(booster), M[train], y[train], None if w is None else w[train])
            oof[test] = self._expand(model, model.predict_proba(M[test]))
        return oof

    @staticmethod
    def _expand(model: HistGradientBoostingClassifier, proba: np.ndarray) -> np.ndarray:
        """Probabilities in LABELS order, zero for classes the model never saw."""
        out = np.zeros((proba.shape[0], len(LABELS)))
        for j, c in enumerate(model.classes_):
            out[:, LABELS.index(str(c))] = proba[:, j]
        return out

    def _fit_calibrators(self, oof: np.ndarray, y: np.ndarray) -> list[Any]:
        cals: list[Any] = []
        for k, c in enumerate(LABELS):
            target = (y == c).astype(np.float64)
            if self.calibration == "none" or target.sum() == 0:
                cals.append(None)
            elif self.calibration == "isotonic":
                cals.append(
                    IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
                        oof[:, k], target
                    )
                )
            else:
                lr = LogisticRegression(C=1e4)
                cals.append(lr.fit(_logit(oof[:, k]).reshape(-1, 1), target))
        return cals

    def _bucket_rows(self, heard: np.ndarray | None, n_buckets: int) -> list[tuple[int, Any]]:
        """Each time bucket that holds rows, with its rows (a boolean mask, or ``slice(None)``
        when it holds them all: one call's rows always share a bucket, and masking them
        cost more than calibrating them)."""
        if n_buckets == 1 or heard is None:
            return [(0, slice(None))]
        which = self._bucket_of(heard)
        present = sorted(set(which.tolist())) or [0]  # no rows: bucket 0, as before
        if len(present) == 1:
            return [(present[0], slice(None))]
        return [(b, which == b) for b in present]

    def _calibrate(
        self,
        raw: np.ndarray,
        heard: np.ndarray | None = None,
        parts: list[tuple[int, Any]] | None = None,
    ) -> np.ndarray:
        """Calibrated rows, each with its time bucket's calibrators."""
        buckets = self.bucket_calibrators_
        if parts is None:
            parts = self._bucket_rows(heard, len(buckets))
        if len(parts) == 1 and isinstance(parts[0][1], slice):
            return self._apply_calibrators(buckets[parts[0][0]] or self.calibrators_, raw)
        out = np.empty_like(raw)
        for b, rows in parts:
            out[rows] = self._apply_calibrators(buckets[b] or self.calibrators_, raw[rows])
        return out

    @staticmethod
    def _apply_calibrators(calibrators: list[Any], raw: np.ndarray) -> np.ndarray:
        # Methods and ufuncs rather than numpy's Python-level wrappers: for one call, after
        # a tree walk has pushed them out of the caches, the wrappers cost more than the work.
        out = np.zeros(raw.shape, dtype=raw.dtype)  # np.zeros_like
        for k, cal in enumerate(calibrators):
            if cal is None:
                out[:, k] = raw[:, k]
            elif isinstance(cal, IsotonicRegression):
                # IsotonicRegression.predict (clip, then linear interpolation) without its
                # input checks, which cost more than the model for one call.
                x = np.minimum(
                    np.maximum(raw[:, k], cal.X_min_), cal.X_max_
                )  # np.clip, minus its wrapper
                out[:, k] = np.interp(x, cal.X_thresholds_, cal.y_thresholds_)
            else:
                out[:, k] = cal.predict_proba(_logit(raw[:, k]).reshape(-1, 1))[:, 1]
        total = np.add.reduce(out, axis=1, keepdims=True)  # out.sum
        # A row every calibrator maps to zero keeps the booster's own distribution.
        empty = total[:, 0] <= 1e-12
        if np.count_nonzero(empty):  # empty.any()
            out[empty] = raw[empty]
            total[empty] = raw[empty].sum(axis=1, keepdims=True)
        return out / np.maximum(total, 1e-12)

    def flag_proba(self, proba: np.ndarray, heard_s: np.ndarray | None = None) -> np.ndarray:
        """Flags from calibrated probabilities, with each row's time-bucket thresholds.

        Parameters
        ----------
        proba : ndarray, shape (n_rows, 4)
            Calibrated, as from :meth:`predict_proba_matrix`.
        heard_s : ndarray or None, shape (n_rows,)
            Seconds heard per row (:meth:`heard_seconds`); None for a model without
            audio (no buckets, no early-ghost rule).

        Returns
        -------
        ndarray of str, shape (n_rows,)
        """
        if "thresholds_" not in self.__dict__:  # check_is_fitted, minus its cost per call
            check_is_fitted(self, "thresholds_")
        return self._flags(proba, heard_s, None)

    def _flags(
        self, proba: np.ndarray, heard_s: np.ndarray | None, parts: list[tuple[int, Any]] | None
    ) -> np.ndarray:
        buckets = self.bucket_thresholds_
        if parts is None:
            parts = self._bucket_rows(heard_s, len(buckets))
        if len(parts) == 1 and isinstance(parts[0][1], slice):
            codes = _flag_codes(proba, classes=LABELS, thresholds=buckets[parts[0][0]])
        else:
            codes = np.zeros(proba.shape[0], dtype=np.int64)
            for b, rows in parts:
                codes[rows] = _flag_codes(proba[rows], classes=LABELS, thresholds=buckets[b])
        flags = _FLAG_NAMES[codes]
        if heard_s is None:
            return flags
        return cap_early_ghost(flags, heard_s, min_likely_s=float(self.min_likely_ghost_s))

    def calibrate_and_flag(
        self, raw: np.ndarray, heard_s: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`calibrate` then :meth:`flag_proba` (calibrated probabilities, flags), each
        row's time bucket looked up once."""
        if "thresholds_" not in self.__dict__:
            check_is_fitted(self, "thresholds_")
        if raw.shape[0] == 1:
            one = self._calibrate_and_flag_one(
                raw[0].tolist(), None if heard_s is None else float(heard_s[0])
            )
            if one is not None:
                return np.asarray([one[0]]), np.asarray([one[1]], dtype=object)
        parts = self._bucket_rows(heard_s, len(self.bucket_calibrators_))
        proba = self._calibrate(raw, heard_s, parts)
        return proba, self._flags(proba, heard_s, parts)

    def _calibrate_and_flag_one(
        self, raw: list[float], heard: float | None
    ) -> tuple[list[float], str] | None:
        """:meth:`calibrate_and_flag` of one row, in Python floats: the operations of the
        array path on each value, so the same floats, in a fifth of the time for one call
        (a live stream's update). None where the array path must decide (a calibrator
        other than isotonic, every calibrated value zero)."""
        b = 0
        if heard is not None and len(self.bucket_calibrators_) > 1 and len(self.prefixes_) > 1:
            h = 0.0 if heard != heard else heard  # as _bucket_of
            last = self._n_buckets() > len(self.prefixes_)
            b = len(self.prefixes_) if last and h == np.inf else bisect_right(self.prefixes_[1:], h)
        calibrators = self.bucket_calibrators_[b] or self.calibrators_
        if len(calibrators) != len(raw):
            return None
        out = []
        for x, cal in zip(raw, calibrators, strict=True):
            if not isinstance(cal, IsotonicRegression):
                return None
            # np.minimum(np.maximum(x, X_min_), X_max_): a NaN stays NaN.
            x = cal.X_min_ if x < cal.X_min_ else x
            x = cal.X_max_ if x > cal.X_max_ else x
            out.append(float(np.interp(x, cal.X_thresholds_, cal.y_thresholds_)))
        # The sum as the array path takes it (numpy's order of additions), then the divide.
        total = float(np.add.reduce(np.asarray([out]), axis=1)[0])
        if not total > 1e-12:
            return None
        proba = [v / total for v in out]
        flag = _flag_of(proba, self.bucket_thresholds_[b])
        if heard is not None and flag == "likely_ghost":
            if not heard >= float(self.min_likely_ghost_s):  # cap_early_ghost; NaN is early
                flag = "possible_ghost"
        return proba, flag

    def _validation_summary(
        self, cal: np.ndarray, y: np.ndarray, heard: np.ndarray | None
    ) -> dict[str, Any]:
        summary = self._summary(self.flag_proba(cal, heard), y)
        if len(self.prefixes_) > 1 and heard is not None:
            which = self._bucket_of(heard)
            summary["by_prefix"] = {
                name: {
                    **self._summary(
                        self.flag_proba(cal[which == b], heard[which == b]), y[which == b]
                    ),
                    "own_thresholds": self.bucket_calibrators_[b] is not None,
                }
                for b, name in enumerate(self.bucket_names())
            }
        return summary

    @staticmethod
    def _summary(flags: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        protected = y == PROTECTED_CLASS
        summary: dict[str, Any] = {"calls": int(y.size)}
        for level in _LEVELS:
            hit = np.array(
                [f != "none" and (level == "possible" or f.startswith(level)) for f in flags]
            )
            summary[f"emergency_flagged_{level}"] = (
                float(hit[protected].mean()) if protected.any() else float("nan")
            )
            for cls in FLAGGED_CLASSES:
                mask = y == cls
                summary[f"{cls}_recall_{level}"] = (
                    float(hit[mask].mean()) if mask.any() else float("nan")
                )
        return summary

    def predict_proba_matrix(self, M: np.ndarray, *, calibrated: bool = True) -> np.ndarray:
        """Probabilities from a feature matrix already in ``features_`` order."""
        if "estimator_" not in self.__dict__:  # check_is_fitted, minus its cost per call
            check_is_fitted(self, "estimator_")
        if M.ndim != 2 or M.shape[1] != len(self.features_):
            raise InvalidParameterError(
                f"matrix has shape {M.shape}; expected (n_calls, {len(self.features_)})"
            )
        forest = self.__dict__.get("_forest")
        if forest is None or forest.booster is not self.estimator_:  # new, or refitted
            forest = self.__dict__["_forest"] = _FlatForest(self.estimator_)
        raw = forest.predict_proba(np.asarray(M, np.float64))
        if forest.label_columns is None:
            raw = self._expand(self.estimator_, raw)
        else:  # what _expand gives when every class was seen, in one take
            raw = raw.take(forest.label_columns, axis=1)
        return self._calibrate(raw, self.heard_seconds(M)) if calibrated else raw

    def __getstate__(self) -> dict[str, Any]:
        # The flat forest is a cache rebuilt on first use, not part of the saved model.
        state = super().__getstate__()
        state.pop("_forest", None)
        return state

    def calibrate(self, raw: np.ndarray, heard_s: np.ndarray | None = None) -> np.ndarray:
        """Calibrated probabilities from :meth:`predict_proba_matrix`'s uncalibrated ones.

        ``heard_s`` (shape (n_rows,), from :meth:`heard_seconds`) picks each row's time
        bucket; None uses the first bucket's calibrators.
        """
        if "calibrators_" not in self.__dict__:  # check_is_fitted, minus its cost per call
            check_is_fitted(self, "calibrators_")
        return self._calibrate(raw, heard_s)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities.

        Parameters
        ----------
        X : DataFrame, shape (n_calls, >= n_features)

        Returns
        -------
        ndarray, shape (n_calls, 4)
            Columns in the order of ``classes_``; rows sum to 1.
        """
        check_is_fitted(self, "estimator_")
        M = feature_matrix(as_frame(X, self.features_), self.features_)
        return self.predict_proba_matrix(M)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Most probable class of each call, shape (n_calls,)."""
        proba = self.predict_proba(X)
        return np.asarray(self.classes_[np.argmax(proba, axis=1)])

    def flag(self, X: pd.DataFrame) -> np.ndarray:
        """Flag of each call (one of :data:`FLAGS`), shape (n_calls,)."""
        check_is_fitted(self, "estimator_")
        M = feature_matrix(as_frame(X, self.features_), self.features_)
        return self.flag_proba(self.predict_proba_matrix(M), self.heard_seconds(M))

    def recalibrate(
        self,
        X: pd.DataFrame,
        y: Sequence[str] | np.ndarray,
        groups: Sequence[str] | np.ndarray | None = None,
        *,
        raw: np.ndarray | None = None,
        possible_target: float | None = None,
        likely_target: float | None = None,
        confidence: float = 0.95,
    ) -> CallClassifier:
        """A copy whose calibrators and flag thresholds are set on the given rows; the
        booster is the same, untouched (``callsift adapt``: a centre's own calls).

        The whole calls (``call_complete`` 1; every row for a model without time
        buckets) set the new calibrators and thresholds; a bucket of calls still going on
        gets its own only when its emergency calls are enough to show the ``possible``
        budget (:func:`allowed_flags` at least 0: 299 calls for 1% at 95%), and otherwise
        keeps this model's (``recalibration_["kept_buckets"]``): early scores are the
        most error-prone, and this model's were set on its own, larger training calls.
        Each threshold set here lets the given rows' emergency calls be flagged only as
        often as a one-sided
        Clopper-Pearson upper bound allows: at each level, at most the largest number k of
        flagged emergency calls whose upper bound at ``confidence`` stays within the
        target (:func:`allowed_flags`). Fewer emergency calls than it takes to show the
        target even with none flagged (299 for 1% at 95%) allow none: the threshold is
        then just above the highest emergency score, and the bound says how far the
        budget is from shown. The floors (``possible_floor``, ``likely_floor``) still hold.

        Parameters
        ----------
        X : DataFrame, shape (n_rows, >= n_features)
            Rows the booster did not learn from (unless ``raw`` gives out-of-fold scores).
        y : sequence of str, shape (n_rows,)
        groups : sequence of str or None, shape (n_rows,)
            Caller of each row, as in :meth:`fit`: one caller's emergency rows count as one
            emergency call in the bound (its rows are not independent; a call's prefix
            rows share its caller). None: every row is its own.
        raw : ndarray or None, shape (n_rows, 4), keyword-only
            Uncalibrated probabilities of the rows (columns in LABELS order) from a model
            that did not learn from them (out-of-fold scores); None: this booster's.
        possible_target, likely_target : float or None, keyword-only
            Largest share of emergency calls each level may flag; None keeps the model's.
        confidence : float, keyword-only
            Confidence of the upper bound, in (0, 1).

        Returns
        -------
        CallClassifier
            A new model sharing this one's booster; ``recalibration_`` holds, per level,
            for the whole calls (``calls``) and each time bucket with thresholds of its
            own (``by_prefix``), the emergency calls, the flags allowed, those raised on
            the given rows and their upper bound; ``kept_buckets`` names the buckets that
            kept this model's calibration and thresholds.
        """
        check_is_fitted(self, "estimator_")
        possible = self.possible_target if possible_target is None else float(possible_target)
        likely = self.likely_target if likely_target is None else float(likely_target)
        confidence = float(confidence)
        if not 0.0 < confidence < 1.0:
            raise InvalidParameterError(f"confidence is {confidence}; expected a share in (0, 1)")
        probe = clone(self).set_params(possible_target=possible, likely_target=likely)
        probe.check_params()
        M = feature_matrix(as_frame(X, self.features_), self.features_)
        yy = np.asarray([str(v) for v in y], dtype=object)
        if yy.shape[0] != M.shape[0]:
            raise InvalidParameterError(f"X has {M.shape[0]} rows but y has {yy.shape[0]}")
        unknown = sorted(set(yy) - set(LABELS))
        if unknown:
            raise InvalidParameterError(
                f"unknown labels {unknown}; expected labels from {', '.join(LABELS)}"
            )
        if not (yy == PROTECTED_CLASS).any():
            raise InvalidParameterError(
                "the rows hold no emergency call; flag thresholds are set to protect "
                "emergency calls and cannot be chosen without them"
            )
        if raw is None:
            with _one_thread():
                scores = self.predict_proba_matrix(M, calibrated=False)
        else:
            scores = np.asarray(raw, dtype=np.float64)
            if scores.shape != (M.shape[0], len(LABELS)) or not np.isfinite(scores).all():
                raise InvalidParameterError(
                    f"raw has shape {scores.shape}; expected finite ({M.shape[0]}, {len(LABELS)})"
                )
        keys = self._groups(groups, yy.shape[0])
        new = copy.copy(self)  # the booster and its flat walk are shared, never changed
        new.possible_target, new.likely_target = possible, likely
        heard = new.heard_seconds(M)
        bucket = new._bucket_of(heard)
        n_buckets = new._n_buckets()
        # With time buckets and a bucket of whole calls, the whole calls set the model's
        # own calibrators and thresholds; otherwise every row does.
        whole = n_buckets - 1 if 1 < len(new.prefixes_) < n_buckets else None
        own = bucket == whole if whole is not None else np.ones(yy.shape[0], dtype=bool)
        if not (yy[own] == PROTECTED_CLASS).any():
            raise InvalidParameterError(
                "the rows hold no whole emergency call; flag thresholds are set to protect "
                "emergency calls and cannot be chosen without them"
            )
        new.calibrators_ = new._fit_calibrators(scores[own], yy[own])
        new.thresholds_, main = new._bounded_thresholds(
            new._apply_calibrators(new.calibrators_, scores[own]), yy[own], keys[own], confidence
        )
        new.threshold_domains_ = []
        calibrators: list[list[Any] | None] = []
        thresholds: list[dict[str, dict[str, float]]] = []
        by_bucket: dict[str, Any] = {}
        kept: list[str] = []
        names = new.bucket_names()
        for b in range(n_buckets):
            rows = bucket == b
            enough = int((yy[rows] == PROTECTED_CLASS).sum()) >= _MIN_BUCKET_PROTECTED
            if whole is not None:
                # An early bucket is recalibrated only on emergency calls that can show the
                # budget (299 for 1% at 95%): 34 flagged 6 of 20 later emergency calls early.
                n_e = len(set(keys[rows & (yy == PROTECTED_CLASS)].tolist()))
                enough = allowed_flags(n_e, possible, confidence) >= 0
            if b == whole:
                calibrators.append(new.calibrators_)
                thresholds.append(new.thresholds_)
            elif len(new.prefixes_) > 1 and enough:
                cals = new._fit_calibrators(scores[rows], yy[rows])
                th, by_bucket[names[b]] = new._bounded_thresholds(
                    new._apply_calibrators(cals, scores[rows]), yy[rows], keys[rows], confidence
                )
                calibrators.append(cals)
                thresholds.append(th)
            elif whole is not None:
                # A call still going on, with too few emergency rows to recalibrate: this
                # model's own calibration and thresholds, set on its far larger training
                # calls, keep protecting early scores (measured, docs/benchmarks.md).
                calibrators.append(self.bucket_calibrators_[b] or self.calibrators_)
                thresholds.append(self.bucket_thresholds_[b])
                kept.append(names[b])
            else:
                calibrators.append(None)
                thresholds.append(new.thresholds_)
        new.bucket_calibrators_ = calibrators
        new.bucket_thresholds_ = thresholds
        new.validation_ = new._validation_summary(new._calibrate(scores, heard), yy, heard)
        new.recalibration_ = {
            "rows": int(yy.shape[0]),
            "confidence": confidence,
            "targets": {"possible": possible, "likely": likely},
            "calls": main,
            "by_prefix": by_bucket,
            "kept_buckets": kept,
        }
        return new

    def _bounded_thresholds(
        self, cal: np.ndarray, y: np.ndarray, keys: np.ndarray, confidence: float
    ) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
        """Thresholds of :meth:`recalibrate` on calibrated rows, and what they do there."""
        protected = y == PROTECTED_CLASS
        n_calls = len(set(keys[protected].tolist()))
        n_rows = int(protected.sum())
        targets = {"possible": self.possible_target, "likely": self.likely_target}
        allowed = {lv: allowed_flags(n_calls, t, confidence) for lv, t in targets.items()}
        # choose_thresholds counts rows: k of them flagged is at most k calls flagged.
        th = choose_thresholds(
            cal,
            y,
            classes=LABELS,
            targets={lv: max(k, 0) / n_rows for lv, k in allowed.items()},
            floors={"possible": self.possible_floor, "likely": self.likely_floor},
        )
        codes = _flag_codes(cal[protected], classes=LABELS, thresholds=th)
        level = np.where(codes >= 3, codes - 3, codes)  # 0 none, 1 possible, 2 likely
        info: dict[str, Any] = {"emergency_calls": n_calls}
        for lv, at_least in (("possible", 1), ("likely", 2)):
            flagged = len(set(keys[protected][level >= at_least].tolist()))
            bound = flag_rate_upper_bound(flagged, n_calls, confidence)
            info[lv] = {
                "target": targets[lv],
                "allowed": max(allowed[lv], 0),
                "flagged": flagged,
                "upper_bound": bound,
                "shown": bool(bound <= targets[lv]),
            }
        return th, info

    def fit_recalibrated(
        self,
        X: pd.DataFrame,
        y: Sequence[str] | np.ndarray,
        groups: Sequence[str] | np.ndarray | None = None,
        sample_weight: Sequence[float] | np.ndarray | None = None,
        *,
        calibrate_on: Sequence[int] | np.ndarray,
        possible_target: float | None = None,
        likely_target: float | None = None,
        confidence: float = 0.95,
    ) -> CallClassifier:
        """:meth:`fit` on every row, then :meth:`recalibrate` on the rows ``calibrate_on``
        (positions) with their out-of-fold scores from this fit's own cross-validation.

        The booster learnt from those rows too, so its own scores of them would be too
        sure; the out-of-fold scores come from folds that never saw their caller, and
        reusing the fit's saves a second cross-validation. ``self`` is fitted as by
        :meth:`fit`; the returned copy has the recalibrated calibrators and thresholds.
        """
        at = np.asarray(calibrate_on)
        if (
            at.dtype == bool
            or at.ndim != 1
            or (at.size and not np.issubdtype(at.dtype, np.integer))
        ):
            raise InvalidParameterError("calibrate_on must be row positions (integers)")
        kept: list[np.ndarray] = []
        cross_fit = type(self)._out_of_fold

        def keep(
            M: np.ndarray, yy: np.ndarray, g: np.ndarray, w: np.ndarray | None = None
        ) -> np.ndarray:
            kept.append(cross_fit(self, M, yy, g, w))
            return kept[-1]

        # An instance attribute shadows the method for this one fit: fit's out-of-fold
        # scores are kept instead of computed twice (four boosters each time).
        self.__dict__["_out_of_fold"] = keep
        try:
            self.fit(X, y, groups, sample_weight)
        finally:
            self.__dict__.pop("_out_of_fold", None)
        if at.size and (at.min() < 0 or at.max() >= len(kept[0])):
            raise InvalidParameterError(
                f"calibrate_on holds positions outside 0..{len(kept[0]) - 1}"
            )
        yy = np.asarray([str(v) for v in y], dtype=object)
        g = None if groups is None else np.asarray([str(v) for v in groups], dtype=object)[at]
        return self.recalibrate(
            X.iloc[at],
            yy[at],
            g,
            raw=kept[0][at],
            possible_target=possible_target,
            likely_target=likely_target,
            confidence=confidence,
        )


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q))


def flag_rate_upper_bound(flagged: int, calls: int, confidence: float) -> float:
    """One-sided Clopper-Pearson upper bound on the share of calls flagged, at
    ``confidence``, from ``flagged`` of ``calls`` (1.0 without calls)."""
    if calls <= 0 or flagged >= calls:
        return 1.0
    from scipy.stats import beta  # a second's import the service never needs

    return float(beta.ppf(confidence, flagged + 1, calls - flagged))


def allowed_flags(calls: int, target: float, confidence: float) -> int:
    """Most flagged calls, out of ``calls``, whose upper bound
    (:func:`flag_rate_upper_bound`) is still within ``target``; -1 when even none is not
    (too few calls to show the target: 0 of n has the bound 1 - (1 - confidence)^(1/n))."""
    k = -1
    while k + 1 < calls and flag_rate_upper_bound(k + 1, calls, confidence) <= target:
        k += 1
    return k
