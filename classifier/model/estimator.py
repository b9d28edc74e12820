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

import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.utils.validation import check_is_fitted

from classifier import binning
from classifier.errors import InvalidParameterError
from classifier.features import FEATURE_NAMES
from classifier.formats import LABELS
from classifier.model.calibration import _MIN_BUCKET_PROTECTED
from classifier.model.checks import _one_thread, as_frame, check_prefixes, feature_matrix
from classifier.model.forest import _FlatForest
from classifier.model.policy import PROTECTED_CLASS, choose_thresholds
from classifier.model.recalibration import Recalibration

#: Largest share of the training rows one caller (fold group) may hold. The fold that
#: scores that caller learns from the others only; past half of the rows, most of the
#: scores that set calibration and thresholds come from a model trained on less than
#: half the data, not from one like the model used (a rule of judgment, not a measure).
MAX_GROUP_SHARE = 0.5


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


class CallClassifier(Recalibration, ClassifierMixin, BaseEstimator):
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
