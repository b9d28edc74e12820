"""Calibration and flag thresholds by time heard.

Trained with ``prefixes``, a model sets its calibration and thresholds per time bucket
(seconds heard, ``audio_duration_s``; whole calls in a bucket of their own), so that the
emergency budget holds early as late. :class:`TimeBuckets` holds that part of
:class:`classifier.model.CallClassifier`: which bucket a row falls in, its calibrated
probabilities and its flag.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from classifier.features import COMPLETE_FEATURE
from classifier.formats import LABELS
from classifier.model.policy import (
    _FLAG_NAMES,
    _LEVELS,
    FLAGGED_CLASSES,
    PROTECTED_CLASS,
    _flag_codes,
    _flag_of,
    cap_early_ghost,
)

#: The feature that says how much of the call has been heard (seconds of audio).
HEARD_FEATURE = "audio_duration_s"
# A time bucket gets its own calibration and thresholds only with this many emergency
# rows; fewer cannot place a threshold that protects them (it falls back to all rows').
_MIN_BUCKET_PROTECTED = 30


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q))


class TimeBuckets:
    """The calibration and flags of :class:`classifier.model.CallClassifier`, bucket by
    bucket of time heard (a mixin: the estimator's parameters and fitted attributes are
    its own)."""

    features_: tuple[str, ...]
    prefixes_: tuple[float, ...]
    calibration: str
    min_likely_ghost_s: float
    calibrators_: list[Any]
    bucket_calibrators_: list[list[Any] | None]
    bucket_thresholds_: list[dict[str, dict[str, float]]]

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

    def calibrate(self, raw: np.ndarray, heard_s: np.ndarray | None = None) -> np.ndarray:
        """Calibrated probabilities from :meth:`predict_proba_matrix`'s uncalibrated ones.

        ``heard_s`` (shape (n_rows,), from :meth:`heard_seconds`) picks each row's time
        bucket; None uses the first bucket's calibrators.
        """
        if "calibrators_" not in self.__dict__:  # check_is_fitted, minus its cost per call
            check_is_fitted(self, "calibrators_")
        return self._calibrate(raw, heard_s)
