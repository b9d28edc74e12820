"""Scores with flags and reasons: what the call-taker sees.

A :class:`ScoringModel` holds two fitted :class:`~classifier.model.CallClassifier`:
the ``call`` model over every feature, and the ``pre_answer`` model over metadata and
caller history only, which scores a call the moment it arrives, before any audio.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from classifier._jit import njit
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


_LOW, _HIGH = 1e-6, 1 - 1e-6  # probabilities are clipped to these before a logit


def _argmax2(a: float, b: float) -> int:
    """``np.argmax([a, b])``: the first largest, a NaN counting as the largest."""
    if a != a:
        return 0
    return 1 if b > a or b != b else 0


class _RowValues(Mapping[str, float]):
    """One call's features by name, read from its row when asked: the texts of a reason
    read a few of the hundred, and a dict of them all cost more than the texts."""

    __slots__ = ("_position", "_row")

    def __init__(self, position: dict[str, int], row: list[float]) -> None:
        self._position = position
        self._row = row

    def __getitem__(self, name: str) -> float:
        return self._row[self._position[name]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._position)

    def __len__(self) -> int:
        return len(self._position)


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
            batch, groups, calls = plan.moved_copies(M)
        all_raw = clf.predict_proba_matrix(batch, calibrated=False)
        raw = all_raw[:n]
        # How much was heard picks the calibration and thresholds and the early rule.
        heard = clf.heard_seconds(M)
        calibrated, flag_array = clf.calibrate_and_flag(raw, heard)
        # Python floats and strs from here: for a call's few values, cheaper than arrays.
        proba: list[list[float]] = calibrated.tolist()
        flags: list[str] = [str(f) for f in flag_array.tolist()]
        reasons: list[list[Reason]] = [[] for _ in range(n)]
        if plan is not None:
            reasons = self._explain(
                plan, M, all_raw, groups, calls, proba, flags, heard, max_reasons=max_reasons
            )
        return [
            CallScore(
                probabilities=dict(zip(LABELS, p, strict=True)), flag=f, reasons=r, stage=stage
            )
            for p, f, r in zip(proba, flags, reasons, strict=True)
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
        if np.count_nonzero(np.isinf(row)):
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
        all_raw: np.ndarray,
        groups: np.ndarray,
        calls: np.ndarray,
        proba: list[list[float]],
        flags: list[str],
        heard: np.ndarray | None,
        *,
        max_reasons: int,
    ) -> list[list[Reason]]:
        """Reasons of each call: rows ``n + j`` of ``all_raw`` are call ``calls[j]`` with
        group ``groups[j]`` at its typical values (a group that did not move has no row)."""
        n = M.shape[0]
        prank, ghost = (LABELS.index(c) for c in FLAGGED_CLASSES)
        targets = [
            flag.split("_", 1)[1]
            if flag != "none"
            else FLAGGED_CLASSES[_argmax2(p[prank], p[ghost])]
            for flag, p in zip(flags, proba, strict=True)
        ]
        t = [LABELS.index(target) for target in targets]
        # In Python floats and one logit over every call's and moved copy's target score:
        # for one call, indexing arrays cost more than the arithmetic.
        rows = all_raw.tolist()
        moves = list(zip(calls.tolist(), groups.tolist(), strict=True))
        scores = [rows[i][t[i]] for i in range(n)]
        scores += [rows[n + j][t[i]] for j, (i, _) in enumerate(moves)]
        # Each score clipped and made odds in Python (np.clip and the divide give the same
        # floats), then one np.log over them all.
        odds = [
            q / (1 - q) for q in (_LOW if p < _LOW else _HIGH if p > _HIGH else p for p in scores)
        ]
        logits = np.log(np.asarray(odds)).tolist()
        # deltas[i][g]: how much group g moved call i's logit (0 where the group was typical).
        deltas = [[0.0] * len(plan.groups) for _ in range(n)]
        for j, (i, g) in enumerate(moves):
            deltas[i][g] = logits[i] - logits[n + j]
        out: list[list[Reason]] = []
        for i in range(n):
            flag, target, row = flags[i], targets[i], deltas[i]
            # A flag (or a high score short of one) is explained by what raised it; a low
            # score by what kept it low.
            sign = 1.0 if flag != "none" or proba[i][t[i]] >= 0.5 else -1.0
            order = np.asarray([-sign * d for d in row]).argsort()
            values: _RowValues | None = None
            picked: list[Reason] = []
            for j in order.tolist():
                d = row[j]
                if sign * d < _MIN_CONTRIBUTION or not math.isfinite(d):
                    break
                if values is None:
                    values = _RowValues(plan.position, M[i].tolist())
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
                        values = _RowValues(plan.position, M[i].tolist())
                    picked = self._early_ghost_first(
                        picked, plan.groups, row, values, float(heard[i]), max_reasons
                    )
            out.append(picked)
        return out

    @staticmethod
    def _early_ghost_first(
        picked: list[Reason],
        groups: list[str],
        deltas: list[float],
        values: Mapping[str, float],
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
    position : dict of str to int
        Column of each name.
    groups : list of str
        The reason groups with features in the model.
    ref, ref_nan : ndarray, shape (n_features,)
        Typical values of a genuine call, and where they are NaN.
    order, starts : ndarray of int
        The groups' columns one group after the other, and where each group starts
        (for ``np.logical_and.reduceat``); ``bounds`` is ``starts`` and the end.
    masks : ndarray of bool, shape (n_groups, n_features)
        The columns of each group.
    reference : dict of str to float
        ``ref`` by feature name.
    """

    def __init__(self, clf: CallClassifier) -> None:
        self.clf = clf
        self.names = list(clf.features_)
        pos = self.position = {f: i for i, f in enumerate(self.names)}
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
        self.bounds = np.append(self.starts, self.order.size).astype(np.intp)
        self.masks = np.zeros((len(columns), len(self.names)), dtype=bool)
        for j, cols in enumerate(columns):
            self.masks[j, cols] = True
        self.reference = {f: float(v) for f, v in zip(self.names, self.ref.tolist(), strict=True)}

    def moved_copies(self, M: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The calls, then each call with one group set to a typical genuine call, to be
        scored in one batch; and the group and the call of each copy.

        A group already at its typical values cannot move the score: it gets no copy (for
        a new number, no history group does). Copies come group by group, call by call.
        """
        try:
            kernel = _moved_kernel()
        except Exception:  # no numba on this platform: the numpy version gives the same
            return self._moved_copies_numpy(M)
        batch, groups, calls = kernel(
            np.ascontiguousarray(M, dtype=np.float64), self.ref, self.bounds, self.order
        )
        return batch, groups, calls

    def _moved_copies_numpy(self, M: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        typical = (M == self.ref) | (np.isnan(M) & self.ref_nan)
        same = np.logical_and.reduceat(typical[:, self.order], self.starts, axis=1)
        groups, calls = (~same.T).nonzero()
        moved = np.where(self.masks[groups], self.ref, M[calls])
        return np.concatenate([M, moved]), groups, calls


@lru_cache(maxsize=1)
def _moved_kernel() -> Any:
    """:meth:`_ExplainPlan.moved_copies` compiled with numba: for one call, its dozen
    numpy operations cost five times the copying."""

    @njit
    def moved_copies(
        M: np.ndarray, ref: np.ndarray, bounds: np.ndarray, columns: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, n_features = M.shape
        n_groups = bounds.size - 1
        moved = np.zeros((n_groups, n), dtype=np.bool_)
        count = 0
        for g in range(n_groups):
            for i in range(n):
                for q in range(bounds[g], bounds[g + 1]):
                    x, r = M[i, columns[q]], ref[columns[q]]
                    if not (x == r or (x != x and r != r)):  # NaN is typical where ref is
                        moved[g, i] = True
                        count += 1
                        break
        batch = np.empty((n + count, n_features))
        batch[:n] = M
        groups = np.empty(count, dtype=np.intp)
        calls = np.empty(count, dtype=np.intp)
        j = 0
        for g in range(n_groups):
            for i in range(n):
                if moved[g, i]:
                    batch[n + j] = M[i]
                    for q in range(bounds[g], bounds[g + 1]):
                        batch[n + j, columns[q]] = ref[columns[q]]
                    groups[j] = g
                    calls[j] = i
                    j += 1
        return batch, groups, calls

    return moved_copies
