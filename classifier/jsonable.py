"""One JSON helper: a copy of a value that ``json.dumps`` (and a JSON column) takes.

Used for model cards (:mod:`classifier.artifact`), evaluation metrics
(:mod:`training.report`) and the service's audit log and events (:mod:`api.store`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any


def jsonable(
    value: Any,
    *,
    digits: int | None = None,
    finite: bool = True,
    text: Callable[[str], str] | None = None,
) -> Any:
    """A JSON-able copy of ``value``.

    Mappings become dicts with text keys, lists, tuples and numpy arrays become lists,
    numpy scalars Python ones and datetimes ISO 8601 text, recursively; other values
    (e.g. a Path) are kept as they are.

    Parameters
    ----------
    value : object
    digits : int or None, keyword-only
        Round floats to this many decimals; None keeps them.
    finite : bool, keyword-only
        NaN and infinities become None (strict JSON has none); False keeps them.
    text : callable or None, keyword-only
        Applied to every string (e.g. escaping text a database cannot hold).

    Returns
    -------
    object
    """
    # A numpy value can only exist once numpy is imported; the store does not import it.
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, np.ndarray):
            value = list(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        return value if text is None else text(value)
    if isinstance(value, Mapping):
        return {
            str(k): jsonable(v, digits=digits, finite=finite, text=text) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [jsonable(v, digits=digits, finite=finite, text=text) for v in value]
    if isinstance(value, float) and not isinstance(value, bool):
        if not math.isfinite(value):
            return None if finite else value
        return value if digits is None else round(value, digits)
    return value
