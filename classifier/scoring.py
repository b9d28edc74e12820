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
    q = np.clip(p, 1e-6, 1 - 1e-6)
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
        if M.shape[0] == 0:
            return []
        raw = clf.predict_proba_matrix(M, calibrated=False)
        # How much was heard picks the calibration and thresholds and the early rule.
        heard = clf.heard_seconds(M)
        proba = clf.calibrate(raw, heard)
        flags = clf.flag_proba(proba, heard)
        reasons: list[list[Reason]] = [[] for _ in range(M.shape[0])]
        if explain:
            reasons = self._explain(clf, M, raw, proba, flags, heard, max_reasons=max_reasons)
        return [
            CallScore(
                probabilities={c: float(proba[i, k]) for k, c in enumerate(LABELS)},
                flag=str(flags[i]),
                reasons=reasons[i],
                stage=stage,
            )
            for i in range(M.shape[0])
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

    def _explain(
        self,
        clf: CallClassifier,
        M: np.ndarray,
        base_raw: np.ndarray,
        proba: np.ndarray,
        flags: np.ndarray,
        heard: np.ndarray | None,
        *,
        max_reasons: int,
    ) -> list[list[Reason]]:
        names = list(clf.features_)
        pos = {f: i for i, f in enumerate(names)}
        groups = [
            (g, [pos[f] for f in fs if f in pos])
            for g, fs in REASON_GROUPS.items()
            if any(f in pos for f in fs)
        ]
        n, G = M.shape[0], len(groups)
        # One batch: each call, then each call with one group set to a typical genuine
        # call. A group already at its typical values cannot move the score: not computed
        # (for a new number, every history group), its rows simply repeat the call's.
        raw = np.repeat(base_raw[None, :, :], G + 1, axis=0)
        rows, where = [], []
        for j, (_, cols) in enumerate(groups, start=1):
            ref_cols = clf.reference_[cols]
            same = ((M[:, cols] == ref_cols) | (np.isnan(M[:, cols]) & np.isnan(ref_cols))).all(1)
            for call in np.flatnonzero(~same):
                row = M[call].copy()
                row[cols] = ref_cols
                rows.append(row)
                where.append((j, int(call)))
        if rows:
            moved = clf.predict_proba_matrix(np.asarray(rows), calibrated=False)
            for (j, at), r in zip(where, moved, strict=True):
                raw[j, at] = r
        ref = {f: float(clf.reference_[i]) for i, f in enumerate(names)}
        out: list[list[Reason]] = []
        for i in range(n):
            flag = str(flags[i])
            if flag != "none":
                target = flag.split("_", 1)[1]
            else:
                k = [LABELS.index(c) for c in FLAGGED_CLASSES]
                target = FLAGGED_CLASSES[int(np.argmax(proba[i, k]))]
            t = LABELS.index(target)
            base = _logit(raw[0, i, t : t + 1])[0]
            deltas = [base - _logit(raw[j, i, t : t + 1])[0] for j in range(1, G + 1)]
            # A flag (or a high score short of one) is explained by what raised it; a low
            # score by what kept it low.
            sign = 1.0 if flag != "none" or proba[i, t] >= 0.5 else -1.0
            order = np.argsort([-sign * d for d in deltas])
            values = {f: float(M[i, c]) for f, c in pos.items()}
            picked: list[Reason] = []
            for j in order:
                d = deltas[int(j)]
                if sign * d < _MIN_CONTRIBUTION or not math.isfinite(d):
                    break
                group = groups[int(j)][0]
                en, id_ = describe(group, values, reference=ref)
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
                early = not float(heard[i]) >= float(clf.min_likely_ghost_s)  # NaN is early
                if early:
                    picked = self._early_ghost_first(
                        picked, groups, deltas, values, heard[i], max_reasons
                    )
            out.append(picked)
        return out

    @staticmethod
    def _early_ghost_first(
        picked: list[Reason],
        groups: list[tuple[str, list[int]]],
        deltas: list[float],
        values: dict[str, float],
        heard_s: float,
        max_reasons: int,
    ) -> list[Reason]:
        """An early ghost flag leads with the silence *so far*, and what it may mean."""
        names = [g for g, _ in groups]
        d = deltas[names.index("silence")] if "silence" in names else 0.0
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


def check_stage_features(clf: CallClassifier, expected: Sequence[str], stage: str) -> None:
    """Raise if a classifier reads other features than its stage needs."""
    if tuple(clf.features_) != tuple(expected):
        raise InvalidParameterError(
            f"the {stage} model reads {len(clf.features_)} features; expected the "
            f"{len(expected)} of this callsift version"
        )
