"""Adapt stage, the candidates: how each is built, measured and chosen.

The base model recalibrated on the centre's calls and models retrained with them
(:func:`recalibrate_on`, :func:`retrain_with`); their figures on the validation quarter
against the emergency budget (:func:`figures`); the choice between them with its margin
(:func:`choose`, :func:`clearly_more`); and a recipe's learning curve
(:func:`learning_curve`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from classifier.errors import CallsiftError
from classifier.formats import LABELS
from classifier.model import CallClassifier, feature_matrix
from training.adapt_data import Say, rows_of
from training.features import whole_calls
from training.split import caller_keys
from training.train import (
    prefix_weights,
)

#: Points of the learning curve (the centre's earliest calls); all of them is the last.
CURVE_SIZES: tuple[int, ...] = (25, 50, 100, 200)
RECALIBRATED = "recalibrated"
RETRAINED = "retrained"


@dataclass
class Candidate:
    """One adapted model and its figures on the validation quarter."""

    name: str
    kind: str
    weight: float | None
    call: CallClassifier
    training_rows: pd.DataFrame
    figures: dict[str, Any] = field(default_factory=dict)
    #: Whether each prank and ghost call of the validation quarter is flagged as such.
    caught: np.ndarray | None = None


# --------------------------------------------------------------------------- figures


def figures(
    call: CallClassifier, rows: pd.DataFrame, *, targets: dict[str, float]
) -> dict[str, Any]:
    """A model's figures on labelled rows (whole calls and prefix rows).

    Whole calls give ROC-AUC, recall at the flag thresholds and the share of each class
    flagged; ``emergency_flagged_any_time`` counts emergency calls flagged on any row, at
    whatever time heard.
    """
    from sklearn.metrics import roc_auc_score

    from training.promote import flag_counts

    M = feature_matrix(rows, call.features_)
    proba = call.predict_proba_matrix(M)
    flags = call.flag_proba(proba, call.heard_seconds(M))
    whole = whole_calls(rows)
    labels = rows["label"].astype(str).to_numpy()
    counts = flag_counts(pd.DataFrame({"label": labels[whole], "flag": flags[whole]}))
    out: dict[str, Any] = {
        "calls": int(counts["calls"]),
        "emergency": int(counts["emergency"]),
        "emergency_flagged": int(counts["emergency_flagged"]),
        "emergency_flagged_share": counts["emergency_flagged_share"],
        "emergency_flagged_likely": int(
            (
                (labels[whole] == "emergency")
                & np.char.startswith(flags[whole].astype(str), "likely")
            ).sum()
        ),
        "non_emergency_flagged_share": counts["non_emergency_flagged_share"],
        "prank_recall": counts["prank_caught_share"],
        "ghost_recall": counts["ghost_caught_share"],
        "caught_share": counts["caught_share"],
    }
    for cls in ("ghost", "prank"):
        truth = labels[whole] == cls
        auc = (
            float(roc_auc_score(truth, proba[whole, LABELS.index(cls)]))
            if 0 < truth.sum() < truth.size
            else math.nan
        )
        out[f"{cls}_roc_auc"] = auc
    emergency_rows = labels == "emergency"
    keys = rows["source"].astype(str) + "\x1f" + rows["call_id"].astype(str)
    out["emergency_flagged_any_time"] = int(keys[emergency_rows & (flags != "none")].nunique())
    n_e = max(out["emergency"], 1)
    out["within_budget"] = bool(
        out["emergency_flagged"] / n_e <= targets["possible"] + 1e-12
        and out["emergency_flagged_likely"] / n_e <= targets["likely"] + 1e-12
    )
    return out


#: Significance at which a retrained candidate must catch more prank and ghost calls
#: than the recalibrated base to be kept instead (one-sided exact test on paired calls).
CLEARLY_MORE_P = 0.05


def caught_calls(call: CallClassifier, rows: pd.DataFrame) -> np.ndarray:
    """For each whole prank or ghost call of ``rows``, whether its flag names its class."""
    M = feature_matrix(rows, call.features_)
    flags = call.flag_proba(call.predict_proba_matrix(M), call.heard_seconds(M)).astype(str)
    whole = whole_calls(rows)
    labels = rows["label"].astype(str).to_numpy()[whole]
    flags = flags[whole]
    target = np.isin(labels, ("prank", "ghost"))
    return np.asarray(
        [f.endswith(lab) for f, lab in zip(flags[target], labels[target], strict=True)]
    )


def clearly_more(a: np.ndarray, b: np.ndarray) -> tuple[bool, float]:
    """Whether ``a`` catches more of the same calls than ``b`` beyond chance: an exact
    one-sided sign test on the calls only one of them catches (McNemar's), and its p."""
    from scipy.stats import binom

    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n = only_a + only_b
    if n == 0 or only_a <= only_b:
        return False, 1.0
    p = float(binom.sf(only_a - 1, n, 0.5))
    return p < CLEARLY_MORE_P, p


def choose(candidates: Sequence[Candidate]) -> Candidate:
    """The candidate that validates best.

    Within the emergency budget on the validation quarter comes first (if none is, the
    one flagging the fewest emergency calls). Among those within it, the recalibrated
    base, the smaller change, is kept unless a retrained candidate flags clearly more
    of the validation quarter's prank and ghost calls (:func:`clearly_more`); then the
    one of those flagging the most. A validation quarter holds a few dozen such calls:
    a difference of one or two is chance, and a retrained model is the larger bet.
    """

    def caught(c: Candidate) -> float:
        v = c.figures["caught_share"]
        return float(v) if np.isfinite(v) else 0.0

    within = [c for c in candidates if c.figures["within_budget"]]
    if not within:
        return min(
            candidates,
            key=lambda c: (
                c.figures["emergency_flagged"],
                -caught(c),
                c.figures["emergency_flagged_any_time"],
                c.kind != RECALIBRATED,
            ),
        )
    base = next((c for c in within if c.kind == RECALIBRATED), None)
    if base is None:
        return max(within, key=lambda c: (caught(c), -c.figures["emergency_flagged_any_time"]))
    better = []
    for c in within:
        if c is base or c.caught is None or base.caught is None:
            continue
        ok, p = clearly_more(c.caught, base.caught)
        c.figures["p_more_than_recalibrated"] = p
        if ok:
            better.append(c)
    if not better:
        return base
    return max(better, key=lambda c: (caught(c), -c.figures["emergency_flagged_any_time"]))


class AdaptingDoesNotHelp(CallsiftError):
    """Every candidate flags more of the validation quarter's emergency calls than the
    emergency budget allows, and the base, not adapted, does not: nothing is written.

    ``candidates`` holds the figures of each candidate and of the base on that quarter.
    """

    def __init__(self, message: str, candidates: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.candidates = candidates


def check_helps(
    chosen: Candidate, base_figures: dict[str, Any], every_figures: list[dict[str, Any]]
) -> None:
    """Refuse (:class:`AdaptingDoesNotHelp`) a chosen candidate outside the emergency
    budget on the validation quarter when the base keeps it there. ``every_figures``:
    each candidate's figures and the base's, carried by the refusal.

    Its thresholds would be set again on all the centre's calls, but the quarter has
    shown that this recipe flags the centre's emergency calls where the base does not:
    on a simulated Purworejo-like centre the model so written flagged fewer prank calls
    the week after than the base, and on a real check-set centre one more emergency call
    (docs/benchmarks.md). A challenger worse than the champion is not worth writing.
    """
    if chosen.figures["within_budget"] or not base_figures["within_budget"]:
        return
    n = int(base_figures["emergency"])
    raise AdaptingDoesNotHelp(
        "adapting does not help yet: on the validation quarter every candidate flags more "
        f"of its {n} emergency calls than the budget allows (the fewest: {chosen.name}, "
        f"{chosen.figures['emergency_flagged']} of {n}), and the base does not "
        f"({base_figures['emergency_flagged']} of {n}); nothing is written and the base "
        "stays. "
        "Adapt again once more of the centre's calls are reviewed",
        every_figures,
    )


# --------------------------------------------------------------------------- candidates


@dataclass(frozen=True)
class Settings:
    targets: dict[str, float]
    confidence: float
    params: dict[str, Any]
    prefix_weight: float
    calibration: str = "sigmoid"
    non_emergency_target: float | None = None


def recalibrate_on(base: CallClassifier, rows: pd.DataFrame, s: Settings) -> CallClassifier:
    return base.recalibrate(
        rows,
        rows["label"].astype(str).to_numpy(),
        caller_keys(rows),
        possible_target=s.targets["possible"],
        likely_target=s.targets["likely"],
        confidence=s.confidence,
        calibration=s.calibration,
        non_emergency_target=s.non_emergency_target,
    )


def retrain_with(
    sim: pd.DataFrame, rows: pd.DataFrame, weight: float, s: Settings
) -> tuple[CallClassifier, pd.DataFrame]:
    pool = pd.concat([sim, rows], ignore_index=True)
    centre = np.r_[np.zeros(len(sim), dtype=bool), np.ones(len(rows), dtype=bool)]
    w = prefix_weights(pool, prefix_weight=s.prefix_weight) * np.where(centre, weight, 1.0)
    model = CallClassifier(**s.params).fit_recalibrated(
        pool,
        pool["label"].astype(str).to_numpy(),
        caller_keys(pool),
        w,
        calibrate_on=np.flatnonzero(centre),
        possible_target=s.targets["possible"],
        likely_target=s.targets["likely"],
        confidence=s.confidence,
        calibration=s.calibration,
        non_emergency_target=s.non_emergency_target,
    )
    return model, pool


def learning_curve(
    kind: str,
    weight: float | None,
    base: CallClassifier,
    sim: pd.DataFrame | None,
    table: pd.DataFrame,
    calls: pd.DataFrame,
    train: np.ndarray,
    val_rows: pd.DataFrame,
    s: Settings,
    say: Say,
    done: Candidate | None,
) -> list[dict[str, Any]]:
    """Figures on the validation quarter of one candidate recipe adapted on the centre's
    earliest 25, 50, 100, 200 and all adapting calls."""
    # A point within a tenth of all the calls would repeat the last one.
    sizes = [n for n in CURVE_SIZES if n < 0.9 * train.size] + [int(train.size)]
    out = []
    for n in sizes:
        point: dict[str, Any] = {"candidate": kind, "weight": weight, "centre_calls": n}
        subset = train[:n]
        labels = calls["label"].astype(str).to_numpy()[subset]
        point["emergency_calls"] = int((labels == "emergency").sum())
        if n == train.size and done is not None:
            point.update(_curve_figures(done.figures))
        elif point["emergency_calls"] == 0:
            point["note"] = "no emergency call among them: thresholds cannot be set"
        else:
            rows = rows_of(table, calls, subset)
            if kind == RECALIBRATED:
                model = recalibrate_on(base, rows, s)
            else:
                assert sim is not None and weight is not None
                say(f"learning curve: retraining on the simulated corpus and {n} centre calls")
                model, _ = retrain_with(sim, rows, weight, s)
            point.update(_curve_figures(figures(model, val_rows, targets=s.targets)))
        out.append(point)
    return out


def _curve_figures(f: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "caught_share",
        "prank_recall",
        "ghost_recall",
        "emergency",
        "emergency_flagged",
        "emergency_flagged_any_time",
        "non_emergency_flagged_share",
        "within_budget",
    )
    return {k: f[k] for k in keep}
