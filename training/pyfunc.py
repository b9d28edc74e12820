"""The MLflow pyfunc face of a callsift model folder.

MLflow serves and loads a logged callsift model through :class:`CallsiftPyfunc`. This
module imports mlflow at the top, so only :mod:`training.registry` (inside its
functions) and MLflow itself import it: the CLI must not pay mlflow's import time on
every command.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.pyfunc.model import PythonModel

from classifier.artifact import load_model
from classifier.registry import MODEL_DIR_ARTIFACT
from classifier.scoring import SCORE_FIELDS, ScoringModel

#: Columns of :func:`predict_frame`'s output, in order.
OUTPUT_COLUMNS: tuple[str, ...] = SCORE_FIELDS
#: Inference parameters the logged signature accepts, with their defaults.
DEFAULT_PARAMS: dict[str, Any] = {"stage": "call", "explain": True}


def predict_frame(
    model: ScoringModel, X: pd.DataFrame, *, stage: str = "call", explain: bool = True
) -> pd.DataFrame:
    """Scores of a feature table as one flat table.

    Parameters
    ----------
    model : ScoringModel
    X : DataFrame, shape (n_calls, >= n_features)
        Feature columns of the stage's model.
    stage : {"call", "pre_answer"}, keyword-only
    explain : bool, keyword-only
        Fill ``reasons``; without it the column holds empty strings.

    Returns
    -------
    DataFrame, shape (n_calls, 6)
        :data:`OUTPUT_COLUMNS`, with ``X``'s index; ``reasons`` in English, ``+`` for
        what raised the score and ``-`` for what lowered it.
    """
    scores = model.score_frame(X, stage=stage, explain=explain)
    rows = [s.flat() for s in scores]
    return pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS), index=X.index)


class CallsiftPyfunc(PythonModel):
    """Scores calls with the callsift model folder logged as the ``model_dir`` artifact.

    ``predict`` takes a DataFrame of :data:`classifier.features.FEATURE_NAMES` columns and
    returns :data:`OUTPUT_COLUMNS`. Parameters ``stage`` (``call`` or ``pre_answer``) and
    ``explain`` (bool) are optional.
    """

    def load_context(self, context: Any) -> None:
        # load_model checks the card against this install before unpickling anything.
        self._model = load_model(context.artifacts[MODEL_DIR_ARTIFACT])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        opts = {**DEFAULT_PARAMS, **(params or {})}
        return predict_frame(
            self._model, model_input, stage=str(opts["stage"]), explain=bool(opts["explain"])
        )
