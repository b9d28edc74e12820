"""Baselines a centre could use instead of the model, scored on the same calls.

Each baseline scores one task (``prank`` or ``ghost``) or both; higher means more
likely. Rules need no fitting; the MFCC baseline is fitted on the same training calls
as the model. Reports compare each baseline with the model on its own task.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from classifier.features import AUDIO_FEATURES

MFCC_FEATURES: tuple[str, ...] = tuple(f for f in AUDIO_FEATURES if f.startswith("mfcc_"))

#: Baseline name to {task: score column of the scored table}.
BASELINE_TASKS: dict[str, dict[str, str]] = {
    "energy_rule": {"ghost": "base_energy_rule_ghost"},
    "vad_rule": {"ghost": "base_vad_rule_ghost"},
    "history_rule": {"prank": "base_history_rule_prank"},
    "mfcc_logreg": {"prank": "base_mfcc_logreg_prank", "ghost": "base_mfcc_logreg_ghost"},
}
BASELINE_NOTES: dict[str, str] = {
    "energy_rule": (
        "silent-call energy rule: the quieter the loudest part of the call is above its "
        "own noise floor (dynamic range in dB), the more likely a ghost call"
    ),
    "vad_rule": (
        "voice-activity rule: the smaller the share of the call with speech (callsift's "
        "own VAD), the more likely a ghost call"
    ),
    "history_rule": (
        "caller-history rule: the number of earlier confirmed prank calls from the number "
        "(flag at N or more)"
    ),
    "mfcc_logreg": (
        "MFCC statistics (means and standard deviations of 13 MFCCs) with multinomial "
        "logistic regression, fitted on the model's training calls"
    ),
}


class Baselines:
    """The fitted baselines; rules are stateless, the MFCC model is fitted.

    Attributes
    ----------
    mfcc_ : Pipeline or None
        Imputer, scaler and logistic regression over :data:`MFCC_FEATURES`.
    """

    def __init__(self) -> None:
        self.mfcc_: Pipeline | None = None

    def fit(self, table: pd.DataFrame, y: Sequence[str] | np.ndarray) -> Baselines:
        labels = np.asarray(list(y), dtype=object)
        if len(set(labels)) >= 2:
            self.mfcc_ = make_pipeline(
                SimpleImputer(strategy="median", keep_empty_features=True),
                StandardScaler(),
                LogisticRegression(max_iter=2000, C=1.0),
            ).fit(table.loc[:, list(MFCC_FEATURES)].to_numpy(dtype=np.float64), labels)
        return self

    def scores(self, table: pd.DataFrame) -> pd.DataFrame:
        """Score columns of :data:`BASELINE_TASKS` for every row of a feature table."""
        out = pd.DataFrame(index=table.index)
        out["base_energy_rule_ghost"] = -table["dynamic_range_db"].astype(float)
        out["base_vad_rule_ghost"] = 1.0 - table["speech_ratio"].astype(float)
        out["base_history_rule_prank"] = table["hist_prank"].astype(float)
        nan = np.full(len(table), np.nan)
        prank, ghost = nan, nan.copy()
        if self.mfcc_ is not None and len(table):
            proba = self.mfcc_.predict_proba(
                table.loc[:, list(MFCC_FEATURES)].to_numpy(dtype=np.float64)
            )
            classes = [str(c) for c in self.mfcc_.classes_]
            if "prank" in classes:
                prank = proba[:, classes.index("prank")]
            if "ghost" in classes:
                ghost = proba[:, classes.index("ghost")]
        out["base_mfcc_logreg_prank"] = prank
        out["base_mfcc_logreg_ghost"] = ghost
        return out

    def tasks(self) -> dict[str, dict[str, str]]:
        """The baselines available (the MFCC one only once fitted)."""
        return {k: v for k, v in BASELINE_TASKS.items() if k != "mfcc_logreg" or self.mfcc_}
