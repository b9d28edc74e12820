"""Recalibration on a centre's own calls (``callsift adapt``): new calibrators and flag
thresholds over the same booster, each threshold held to a Clopper-Pearson bound."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from classifier.errors import InvalidParameterError
from classifier.formats import LABELS
from classifier.model.calibration import _MIN_BUCKET_PROTECTED, TimeBuckets
from classifier.model.checks import _one_thread, as_frame, feature_matrix
from classifier.model.policy import (
    PROTECTED_CLASS,
    _flag_codes,
    allowed_flags,
    cap_non_emergency,
    choose_thresholds,
    flag_rate_upper_bound,
)


class Recalibration(TimeBuckets):
    """:meth:`recalibrate` and :meth:`fit_recalibrated` of
    :class:`classifier.model.CallClassifier` (a mixin: the estimator's parameters, fitted
    attributes and fit are its own)."""

    possible_target: float
    likely_target: float
    possible_floor: float
    likely_floor: float
    thresholds_: dict[str, dict[str, float]]
    threshold_domains_: list[str]
    validation_: dict[str, Any]
    recalibration_: dict[str, Any]

    if TYPE_CHECKING:

        def fit(
            self,
            X: pd.DataFrame,
            y: Sequence[str] | np.ndarray,
            groups: Sequence[str] | np.ndarray | None = None,
            sample_weight: Sequence[float] | np.ndarray | None = None,
            domains: Sequence[str] | np.ndarray | None = None,
        ) -> Any: ...

        def predict_proba_matrix(self, M: np.ndarray, *, calibrated: bool = True) -> np.ndarray: ...

        def _out_of_fold(
            self, M: np.ndarray, y: np.ndarray, g: np.ndarray, w: np.ndarray | None = None
        ) -> np.ndarray: ...

        @staticmethod
        def _groups(groups: Sequence[str] | np.ndarray | None, n: int) -> np.ndarray: ...

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
        calibration: str | None = None,
        non_emergency_target: float | None = None,
    ) -> Self:
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
        calibration : {"isotonic", "sigmoid", "none"} or None, keyword-only
            How the new calibrators map scores (None: as this model's). A centre's few
            hundred calls are too few for isotonic steps, which tie calls the booster
            ranks apart; a sigmoid per class keeps each class's order.
        non_emergency_target : float or None, keyword-only
            Largest share of the given rows' non-emergency calls the thresholds set here
            may flag, with the same upper bound at ``confidence`` as the emergency budget
            (:func:`~classifier.model.policy.cap_non_emergency`: thresholds only rise);
            None: no cap.

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
        if non_emergency_target is not None and not 0.0 <= non_emergency_target <= 1.0:
            raise InvalidParameterError(
                f"non_emergency_target is {non_emergency_target}; expected a share in [0, 1]"
            )
        method = self.calibration if calibration is None else str(calibration)
        probe = clone(self).set_params(
            possible_target=possible, likely_target=likely, calibration=method
        )
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
        new.calibration = method
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
            new._apply_calibrators(new.calibrators_, scores[own]),
            yy[own],
            keys[own],
            confidence,
            non_emergency_target,
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
                    new._apply_calibrators(cals, scores[rows]),
                    yy[rows],
                    keys[rows],
                    confidence,
                    non_emergency_target,
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
            "calibration": method,
            "targets": {"possible": possible, "likely": likely},
            "non_emergency_target": non_emergency_target,
            "calls": main,
            "by_prefix": by_bucket,
            "kept_buckets": kept,
        }
        return new

    def _bounded_thresholds(
        self,
        cal: np.ndarray,
        y: np.ndarray,
        keys: np.ndarray,
        confidence: float,
        non_emergency_target: float | None = None,
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
        capped = None
        if non_emergency_target is not None:
            th, capped = cap_non_emergency(
                th, cal, y, classes=LABELS, target=non_emergency_target, confidence=confidence
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
        if capped is not None:
            info["non_emergency"] = capped
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
        calibration: str | None = None,
        non_emergency_target: float | None = None,
    ) -> Self:
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
            calibration=calibration,
            non_emergency_target=non_emergency_target,
        )
