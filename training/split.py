"""Honest train/test splits: callers disjoint and time ordered.

A model that saw a caller's earlier pranks in training, or calls from the weeks it is
tested on, looks better than it will be in the centre. So the test set holds only
calls from the latest weeks, made by callers of whom no call was used in training.
Callers are assigned to the train or test side by a seeded hash of their number; a
withheld call is its own caller. Calls of train-side callers in the test weeks and of
test-side callers in the training weeks are left out of both; they still feed every
call's history features, exactly as earlier calls do in the service.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from classifier.errors import InvalidParameterError


@dataclass(frozen=True)
class Split:
    """Row positions of the train and test calls and a description for the report."""

    train: np.ndarray
    test: np.ndarray
    description: dict[str, Any]


def _side(key: str, seed: int, test_share: float) -> bool:
    h = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < test_share


def caller_keys(table: pd.DataFrame) -> np.ndarray:
    """Group key of each call: its number, or the call itself when the number is withheld.

    Numbers are global, so the same number in two manifests (two months of one centre)
    is one caller; a withheld call is keyed by its manifest and call id.
    """
    caller = table["caller_id"].astype(str).to_numpy()
    source = table["source"].astype(str).to_numpy() if "source" in table else np.zeros(len(table))
    call = table["call_id"].astype(str).to_numpy()
    return np.asarray(
        [c if c else f"withheld|{s}|{k}" for s, c, k in zip(source, caller, call, strict=True)],
        dtype=object,
    )


FOLD_BY: tuple[str, ...] = ("caller", "manifest", "voice")
#: Manifest column naming who speaks for the caller, where known (composed calls).
VOICE_COLUMN = "caller_speaker"


def voice_keys(table: pd.DataFrame) -> np.ndarray:
    """Group key of each call: its caller (:func:`caller_keys`), callers who share a voice
    (``caller_speaker``, the part before any ``@``) joined into one group.

    Rows without a known voice keep their caller's key.
    """
    callers = caller_keys(table)
    if VOICE_COLUMN not in table:
        return callers
    voices = table[VOICE_COLUMN].fillna("").astype(str).str.split("@").str[0].to_numpy()
    parent: dict[str, str] = {}

    def root(k: str) -> str:
        while parent.setdefault(k, k) != k:
            parent[k] = parent[parent[k]]  # path halving keeps the chains short
            k = parent[k]
        return k

    for c, v in zip(callers, voices, strict=True):
        if v:
            a, b = root(str(c)), root(f"voice|{v}")
            if a != b:
                parent[max(a, b)] = min(a, b)
    return np.asarray([root(str(c)) for c in callers], dtype=object)


def fold_keys(table: pd.DataFrame, *, by: str, n_folds: int) -> np.ndarray:
    """Group key of each row for the calibration folds of the model.

    ``caller``: folds never split a caller (:func:`caller_keys`). ``voice``: nor a voice
    (:func:`voice_keys`): each out-of-fold score of a call whose speaker is known comes
    from a model that never heard that speaker, as a centre's callers are unheard, so the
    flag thresholds are not set on voices the model already knows. ``manifest``: folds
    never split a manifest, so each out-of-fold score comes from a model that never saw
    that corpus: with simulated corpora of distinct seeds (the default model's recipe),
    the flag thresholds are then chosen on scores as far from the training data as a new
    centre's calls are, not on callers of corpora the model already knows.

    Raises
    ------
    InvalidParameterError
        ``by`` unknown, or ``manifest`` with fewer manifests than folds.
    """
    source = table["source"].astype(str).to_numpy() if "source" in table else np.zeros(len(table))
    check_fold_by(by, manifests=len(set(source.tolist())), n_folds=n_folds)
    if by == "caller":
        return caller_keys(table)
    if by == "voice":
        return voice_keys(table)
    return np.asarray([f"manifest|{k}" for k in source], dtype=object)


def check_fold_by(by: str, *, manifests: int, n_folds: int) -> None:
    """Raise unless calibration folds by ``by`` can be made from ``manifests`` manifests."""
    if by not in FOLD_BY:
        raise InvalidParameterError(f"fold_by is {by!r}; expected one of {', '.join(FOLD_BY)}")
    if by == "manifest" and manifests < n_folds:
        raise InvalidParameterError(
            f"folds by manifest need at least {n_folds} manifests (one per calibration "
            f"fold); got {manifests}: give more manifests or fold by caller"
        )


def honest_split(
    table: pd.DataFrame,
    *,
    test_callers: float = 0.3,
    test_after: float = 0.7,
    seed: int = 0,
) -> Split:
    """Split labelled calls into callers-disjoint, time-ordered train and test sets.

    Parameters
    ----------
    table : DataFrame
        ``call_id``, ``caller_id``, ``started_at`` (ISO text with offset) and, when
        several manifests were combined, ``source`` (each gets its own time cut).
    test_callers : float, keyword-only
        Share of callers put on the test side, in (0, 1).
    test_after : float, keyword-only
        Time quantile from which calls belong to the test period, in (0, 1).
    seed : int, keyword-only
        Seed of the caller assignment.

    Returns
    -------
    Split
    """
    for name, v in (("test_callers", test_callers), ("test_after", test_after)):
        if not 0.0 < v < 1.0:
            raise InvalidParameterError(f"{name} is {v}; expected a share strictly in (0, 1)")
    if len(table) == 0:
        raise InvalidParameterError("no calls to split")
    when = pd.to_datetime(table["started_at"], utc=True, format="ISO8601")
    source = table["source"].astype(str) if "source" in table else pd.Series("", index=table.index)
    keys = caller_keys(table)
    test_side = np.array([_side(k, seed, test_callers) for k in keys])
    late = np.zeros(len(table), dtype=bool)
    cutoffs: dict[str, str] = {}
    for s in pd.unique(source):
        mask = (source == s).to_numpy()
        cut = when[mask].quantile(test_after)
        late[mask] = (when[mask] >= cut).to_numpy()
        cutoffs[str(s) or "manifest"] = cut.isoformat()
    train = np.flatnonzero(~test_side & ~late)
    test = np.flatnonzero(test_side & late)
    shared = set(keys[train]) & set(keys[test])
    description = {
        "method": (
            "callers disjoint (a seeded hash puts each caller on the train or the test side; "
            "a withheld call is its own caller) and time ordered (test calls start at or after "
            "the time cut of their manifest, train calls before it)"
        ),
        "test_callers_share": test_callers,
        "test_after_quantile": test_after,
        "seed": seed,
        "time_cut": cutoffs,
        "train_calls": int(train.size),
        "test_calls": int(test.size),
        "left_out_calls": int(len(table) - train.size - test.size),
        "callers_in_both": len(shared),
        "train_period": _period(when.iloc[train]),
        "test_period": _period(when.iloc[test]),
    }
    return Split(train=train, test=test, description=description)


def _period(when: pd.Series) -> str:
    if when.empty:
        return "none"
    return f"{when.min().isoformat()} to {when.max().isoformat()}"
