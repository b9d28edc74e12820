"""Scores with flags and reasons: what the call-taker sees.

A :class:`ScoringModel` holds two fitted :class:`~classifier.model.CallClassifier`:
the ``call`` model over every feature, and the ``pre_answer`` model over metadata and
caller history only, which scores a call the moment it arrives, before any audio.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from classifier.errors import InvalidParameterError
from classifier.formats import LABELS
from classifier.history import HISTORY_FEATURES, METADATA_FEATURES
from classifier.model import (
    FLAGGED_CLASSES,
    CallClassifier,
    as_frame,
    feature_matrix,
)
from classifier.reasons import ADVISORY, REASON_GROUPS, describe, describe_early_silence

#: Features of the pre-answer model: nothing that needs audio or the call's length.
PRE_ANSWER_FEATURES: tuple[str, ...] = tuple(
    f for f in (*METADATA_FEATURES, *HISTORY_FEATURES) if f != "meta_log_duration"
)
STAGES: tuple[str, ...] = ("call", "pre_answer")
#: A score as one flat row: the columns of ``scores.csv`` after ``call_id``, and of the
#: MLflow pyfunc's output (see :meth:`CallScore.flat`).
SCORE_FIELDS: tuple[str, ...] = (*(f"p_{c}" for c in LABELS), "flag", "reasons")
_MIN_CONTRIBUTION = 0.05  # logit units; smaller moves are not worth a call-taker's attention


@dataclass(frozen=True)
class Reason:
    """One plain-language reason behind a score.

    Attributes
    ----------
    group : str
        Feature group (a key of :data:`classifier.reasons.REASON_GROUPS`).
    effect : {"raises", "lowers"}
        Whether this fact raised or lowered the score of ``target``.
    target : {"prank", "ghost"}
        The class whose score is explained.
    weight : float
        Size of the effect (change of the log-odds when the group is set to typical).
    en, id : str
        The fact, in English and in Indonesian.
    """

    group: str
    effect: str
    target: str
    weight: float
    en: str
    id: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "effect": self.effect,
            "target": self.target,
            "weight": round(self.weight, 4),
            "en": self.en,
            "id": self.id,
        }


@dataclass(frozen=True)
class CallScore:
    """The score of one call.

    Attributes
    ----------
    probabilities : dict
        ``{label: p}`` over the four classes, summing to 1.
    flag : str
        One of :data:`classifier.model.FLAGS`.
    reasons : list of Reason
        Strongest first.
    stage : {"call", "pre_answer"}
        Which model scored.
    """

    probabilities: dict[str, float]
    flag: str
    reasons: list[Reason] = field(default_factory=list)
    stage: str = "call"

    @property
    def p_prank(self) -> float:
        return self.probabilities["prank"]

    @property
    def p_ghost(self) -> float:
        return self.probabilities["ghost"]

    def reasons_text(self, *, lang: str = "en") -> str:
        """Reasons as one line: ``+`` raised the score, ``-`` lowered it."""
        return "; ".join(
            f"{'+' if r.effect == 'raises' else '-'} {getattr(r, lang)}" for r in self.reasons
        )

    def flat(self, *, lang: str = "en") -> dict[str, Any]:
        """The score as one row of :data:`SCORE_FIELDS`, reasons as one line of text."""
        return {
            **{f"p_{c}": self.probabilities[c] for c in LABELS},
            "flag": self.flag,
            "reasons": self.reasons_text(lang=lang),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "p_emergency": self.probabilities["emergency"],
            "p_non_emergency": self.probabilities["non_emergency"],
            "p_prank": self.p_prank,
            "p_ghost": self.p_ghost,
            "flag": self.flag,
            "reasons": [r.as_dict() for r in self.reasons],
            "stage": self.stage,
            "advisory": ADVISORY,
        }


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.minimum(np.maximum(p, 1e-6), 1 - 1e-6)  # np.clip, without its Python wrapper
    return np.asarray(np.log(q / (1 - q)))


class ScoringModel:
    """A loaded model: call and pre-answer classifiers and their card.

    Parameters
    ----------
    call : CallClassifier
        Fitted over :data:`classifier.features.FEATURE_NAMES`.
    pre_answer : CallClassifier
        Fitted over :data:`PRE_ANSWER_FEATURES`.
    card : dict
        The model card (see :mod:`classifier.artifact`).
    """

    def __init__(self, *, call: CallClassifier, pre_answer: CallClassifier, card: dict) -> None:
        self.call = call
        self.pre_answer = pre_answer
        self.card = card

    @property
    def version(self) -> str:
        return str(self.card.get("version", "unknown"))

    def classifier(self, stage: str) -> CallClassifier:
        if stage not in STAGES:
            raise InvalidParameterError(f"stage is {stage!r}; expected one of {STAGES}")
        return self.call if stage == "call" else self.pre_answer

    def score_frame(
        self,
        X: pd.DataFrame,
        *,
        stage: str = "call",
        explain: bool = True,
        max_reasons: int = 3,
    ) -> list[CallScore]:
        """Score every row of a feature table.

        Parameters
        ----------
        X : DataFrame, shape (n_calls, >= n_features)
            Feature columns of the stage's model.
        stage : {"call", "pre_answer"}, keyword-only
        explain : bool, keyword-only
            Compute reasons (costs one extra prediction per feature group).
        max_reasons : int, keyword-only
            Reasons kept per call.

        Returns
        -------
        list of CallScore, length n_calls
        """
        clf = self.classifier(stage)
        M = feature_matrix(as_frame(X, clf.features_), clf.features_)
        return self.score_matrix(M, stage=stage, explain=explain, max_reasons=max_reasons)

    def score_matrix(
        self, M: np.ndarray, *, stage: str = "call", explain: bool = True, max_reasons: int = 3
    ) -> list[CallScore]:
        """Score rows of a matrix already in the stage model's ``features_`` order."""
        clf = self.classifier(stage)
        n = M.shape[0]
        if n == 0:
            return []
        plan = self._plan(clf) if explain else None
        batch = M
        groups = calls = np.zeros(0, dtype=np.intp)
        if plan is not None:
            # Each call with one group set to a typical genuine call, scored in the same
            # batch as the calls. A group already at its typical values cannot move the
            # score: not computed (for a new number, every history group).
            typical = (M == plan.ref) | (np.isnan(M) & plan.ref_nan)
            same = np.logical_and.reduceat(typical[:, plan.order], plan.starts, axis=1)
            groups, calls = np.nonzero(~same.T)
            if groups.size:
                moved = np.where(plan.masks[groups], plan.ref, M[calls])
                batch = np.concatenate([M, moved])
        all_raw = clf.predict_proba_matrix(batch, calibrated=False)
        raw = all_raw[:n]
        # How much was heard picks the calibration and thresholds and the early rule.
        heard = clf.heard_seconds(M)
        proba = clf.calibrate(raw, heard)
        flags = clf.flag_proba(proba, heard)
        reasons: list[list[Reason]] = [[] for _ in range(n)]
        if plan is not None:
            # moved_raw[j, i]: call i with group j at its typical values; a group that
            # did not move repeats the call's own probabilities.
            moved_raw = np.repeat(raw[None, :, :], len(plan.groups), axis=0)
            moved_raw[groups, calls] = all_raw[n:]
            reasons = self._explain(
                plan, M, raw, moved_raw, proba, flags, heard, max_reasons=max_reasons
            )
        return [
            CallScore(
                probabilities={c: float(proba[i, k]) for k, c in enumerate(LABELS)},
                flag=str(flags[i]),
                reasons=reasons[i],
                stage=stage,
            )
            for i in range(n)
        ]

    def score(self, features: Mapping[str, float], *, stage: str = "call") -> CallScore:
        """Score one call from its feature mapping (see :meth:`score_frame`).

        The service's path: no DataFrame, one row straight into the stage's matrix. A
        live call's features so far score as the call heard so far: the time heard
        (``audio_duration_s``) picks the calibration and thresholds, and an early ghost
        flag is at most ``possible``, its first reason saying the caller is silent so far.
        """
        clf = self.classifier(stage)
        missing = [f for f in clf.features_ if f not in features]
        if missing:
            raise InvalidParameterError(
                f"features lack {len(missing)} of the {stage} model's {len(clf.features_)}: "
                f"{', '.join(missing[:5])}"
            )
        try:
            row = np.array([[float(features[f]) for f in clf.features_]], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(f"feature values must be numbers: {exc}") from exc
        if np.isinf(row).any():
            raise InvalidParameterError("feature values must not be infinite")
        return self.score_matrix(row, stage=stage)[0]

    def _plan(self, clf: CallClassifier) -> _ExplainPlan:
        """The reason groups of ``clf``, worked out once per classifier (not per call)."""
        plans: dict[int, _ExplainPlan] = self.__dict__.setdefault("_plans", {})
        plan = plans.get(id(clf))
        if plan is None or plan.clf is not clf:
            plan = plans[id(clf)] = _ExplainPlan(clf)
        return plan

    def __getstate__(self) -> dict[str, Any]:
        # The plans are a cache rebuilt on first use, not part of the saved model.
        state = dict(self.__dict__)
        state.pop("_plans", None)
        return state

    def _explain(
        self,
        plan: _ExplainPlan,
        M: np.ndarray,
        base_raw: np.ndarray,
        raw: np.ndarray,
        proba: np.ndarray,
        flags: np.ndarray,
        heard: np.ndarray | None,
        *,
        max_reasons: int,
    ) -> list[list[Reason]]:
        n = M.shape[0]
        flagged = [LABELS.index(c) for c in FLAGGED_CLASSES]
        out: list[list[Reason]] = []
        for i in range(n):
            flag = str(flags[i])
            if flag != "none":
                target = flag.split("_", 1)[1]
            else:
                target = FLAGGED_CLASSES[int(np.argmax(proba[i, flagged]))]
            t = LABELS.index(target)
            base = _logit(base_raw[i, t : t + 1])[0]
            deltas = (base - _logit(raw[:, i, t])).tolist()
            # A flag (or a high score short of one) is explained by what raised it; a low
            # score by what kept it low.
            sign = 1.0 if flag != "none" or proba[i, t] >= 0.5 else -1.0
            order = np.argsort([-sign * d for d in deltas])
            values: dict[str, float] | None = None
            picked: list[Reason] = []
            for j in order.tolist():
                d = deltas[j]
                if sign * d < _MIN_CONTRIBUTION or not math.isfinite(d):
                    break
                if values is None:
                    values = dict(zip(plan.names, M[i].tolist(), strict=True))
                group = plan.groups[j]
                en, id_ = describe(group, values, reference=plan.reference)
                picked.append(
                    Reason(
                        group=group,
                        effect="raises" if d > 0 else "lowers",
                        target=target,
                        weight=abs(float(d)),
                        en=en,
                        id=id_,
                    )
                )
                if len(picked) >= max_reasons:
                    break
            if heard is not None and flag.endswith("ghost"):
                early = not float(heard[i]) >= float(plan.clf.min_likely_ghost_s)  # NaN: early
                if early:
                    if values is None:
                        values = dict(zip(plan.names, M[i].tolist(), strict=True))
                    picked = self._early_ghost_first(
                        picked, plan.groups, deltas, values, float(heard[i]), max_reasons
                    )
            out.append(picked)
        return out

    @staticmethod
    def _early_ghost_first(
        picked: list[Reason],
        groups: list[str],
        deltas: list[float],
        values: dict[str, float],
        heard_s: float,
        max_reasons: int,
    ) -> list[Reason]:
        """An early ghost flag leads with the silence *so far*, and what it may mean."""
        d = deltas[groups.index("silence")] if "silence" in groups else 0.0
        en, id_ = describe_early_silence(values, heard_s=float(heard_s))
        first = Reason(
            group="silence",
            effect="raises",
            target="ghost",
            weight=abs(float(d)) if math.isfinite(d) else 0.0,
            en=en,
            id=id_,
        )
        rest = [r for r in picked if r.group != "silence"]
        return [first, *rest][:max_reasons]


class _ExplainPlan:
    """What explaining a classifier's scores needs, independent of the calls.

    Attributes
    ----------
    clf : CallClassifier
    names : list of str
        ``clf.features_``.
    groups : list of str
        The reason groups with features in the model.
    ref, ref_nan : ndarray, shape (n_features,)
        Typical values of a genuine call, and where they are NaN.
    order, starts : ndarray of int
        The groups' columns one group after the other, and where each group starts
        (for ``np.logical_and.reduceat``).
    masks : ndarray of bool, shape (n_groups, n_features)
        The columns of each group.
    reference : dict of str to float
        ``ref`` by feature name.
    """

    def __init__(self, clf: CallClassifier) -> None:
        self.clf = clf
        self.names = list(clf.features_)
        pos = {f: i for i, f in enumerate(self.names)}
        self.ref = np.asarray(clf.reference_, dtype=np.float64)
        self.ref_nan = np.isnan(self.ref)
        self.groups: list[str] = []
        columns: list[list[int]] = []
        for g, fs in REASON_GROUPS.items():
            cols = [pos[f] for f in fs if f in pos]
            if cols:
                self.groups.append(g)
                columns.append(cols)
        self.order = np.array([c for cols in columns for c in cols], dtype=np.intp)
        self.starts = np.cumsum([0] + [len(cols) for cols in columns[:-1]]).astype(np.intp)
        self.masks = np.zeros((len(columns), len(self.names)), dtype=bool)
        for j, cols in enumerate(columns):
            self.masks[j, cols] = True
        self.reference = {f: float(v) for f, v in zip(self.names, self.ref.tolist(), strict=True)}


def check_stage_features(clf: CallClassifier, expected: Sequence[str], stage: str) -> None:
    """Raise if a classifier reads other features than its stage needs."""
    if tuple(clf.features_) != tuple(expected):
        raise InvalidParameterError(
            f"the {stage} model reads {len(clf.features_)} features; expected the "
            f"{len(expected)} of this callsift version"
        )
