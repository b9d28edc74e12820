"""The prank and ghost model: calibrated four-class gradient boosting with flag thresholds.

:class:`CallClassifier` (:mod:`~classifier.model.estimator`) is the estimator; its
calibration by time heard is in :mod:`~classifier.model.calibration`, its recalibration
on a centre's own calls in :mod:`~classifier.model.recalibration`, the flag policy with
the early-ghost safety cap in :mod:`~classifier.model.policy`, and the compiled walk of
its trees in :mod:`~classifier.model.forest`.
"""

from classifier.features import COMPLETE_FEATURE
from classifier.model.calibration import HEARD_FEATURE
from classifier.model.checks import MIN_PREFIX_S, as_frame, check_prefixes, feature_matrix
from classifier.model.estimator import MAX_GROUP_SHARE, CallClassifier, fit_booster
from classifier.model.policy import (
    FLAGGED_CLASSES,
    FLAGS,
    PROTECTED_CLASS,
    allowed_flags,
    budget_threshold,
    cap_early_ghost,
    choose_thresholds,
    flag_rate_upper_bound,
    flag_scores,
    flags_from_proba,
)

# Saved models name the class where it was defined before this package existed; it
# stays there for pickles, whichever module of the package defines it.
CallClassifier.__module__ = __name__

__all__ = [
    "COMPLETE_FEATURE",
    "FLAGGED_CLASSES",
    "FLAGS",
    "HEARD_FEATURE",
    "MAX_GROUP_SHARE",
    "MIN_PREFIX_S",
    "PROTECTED_CLASS",
    "CallClassifier",
    "allowed_flags",
    "as_frame",
    "budget_threshold",
    "cap_early_ghost",
    "check_prefixes",
    "choose_thresholds",
    "feature_matrix",
    "fit_booster",
    "flag_rate_upper_bound",
    "flag_scores",
    "flags_from_proba",
]
