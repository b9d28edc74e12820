"""Checks of the estimator's inputs and the thread limit of its fits."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from contextlib import AbstractContextManager
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController

from classifier.errors import InvalidParameterError

#: Shortest prefix: the acoustic features need a quarter of a second of audio.
MIN_PREFIX_S = 0.25


def check_prefixes(values: Sequence[float] | None) -> tuple[float, ...]:
    """Prefix lengths (seconds heard) as a sorted tuple of distinct floats.

    Raises
    ------
    InvalidParameterError
        A value that is not a finite number of at least :data:`MIN_PREFIX_S` seconds.
    """
    out: set[float] = set()
    for v in values or ():
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise InvalidParameterError(f"prefix {v!r} is not a number of seconds")
        f = float(v)
        if not np.isfinite(f) or f < MIN_PREFIX_S:
            raise InvalidParameterError(
                f"prefix {v!r} s: expected a finite number of seconds >= {MIN_PREFIX_S}"
            )
        out.add(f)
    return tuple(sorted(out))


@lru_cache(maxsize=1)
def _controller() -> ThreadpoolController:
    return ThreadpoolController()


def _one_thread() -> AbstractContextManager[Any]:
    # OpenMP threads spin while they wait: on a shared 2-core machine one busy neighbour
    # made a fit 8x slower (4.4 s vs 34 s measured); one thread per process is steadier.
    return _controller().limit(limits=1, user_api="openmp")


def as_frame(X: Any, features: Sequence[str]) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise InvalidParameterError(
            f"X is a {type(X).__name__}; expected a pandas DataFrame with feature columns"
        )
    missing = [f for f in features if f not in X.columns]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise InvalidParameterError(
            f"X lacks {len(missing)} of the model's {len(features)} feature columns: {shown}"
        )
    return X


def feature_matrix(X: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    try:
        M = X.loc[:, list(features)].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"feature columns must be numeric: {exc}") from exc
    if np.isinf(M).any():
        bad = [f for f, col in zip(features, np.isinf(M).any(axis=0), strict=True) if col]
        raise InvalidParameterError(f"infinite values in feature columns: {', '.join(bad)}")
    return M
