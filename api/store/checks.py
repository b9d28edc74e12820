"""Checks of the values a store method is given: a refused value raises
:class:`~classifier.errors.InvalidParameterError` before anything is written."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from api.db import INSTANCE_MAX, WORKER_MAX, text_problem
from classifier.callrow import call_id_problem, caller_id_problem
from classifier.errors import InvalidParameterError

_KEY_ACTOR = re.compile(r"^key:(\d+)(?:\s|$)")
MAX_LIMIT = 1000


def aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidParameterError(f"{name} must be a datetime; got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidParameterError(
            f"{name} {value.isoformat()} has no UTC offset; expected e.g. 2025-06-03T19:04:11+08:00"
        )
    return value


def actor_key_id(actor: str) -> int | None:
    match = _KEY_ACTOR.match(actor)
    return int(match.group(1)) if match else None


def check_text(name: str, value: str) -> str:
    """``value``, or InvalidParameterError naming ``name`` when neither database can
    store it (:func:`api.db.text_problem`); the message never quotes the value."""
    problem = text_problem(value)
    if problem is not None:
        raise InvalidParameterError(f"{name} {problem}; remove it")
    return value


def check_metadata(metadata: Mapping[str, str]) -> None:
    if not isinstance(metadata, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise InvalidParameterError("metadata must map strings to strings")
    for key, value in metadata.items():
        if text_problem(key) is not None:
            check_text("a key of metadata", key)
        # The key is clean here; keys are names such as "trunk", not free text.
        check_text(f"metadata.{key}" if len(key) <= 64 else "a value of metadata", value)


def check_actor(actor: str) -> str:
    if not isinstance(actor, str) or not actor or len(actor) > 256:
        raise InvalidParameterError("actor must be a non-empty string of at most 256 characters")
    return check_text("actor", actor)


def check_call_id(call_id: str) -> str:
    problem = call_id_problem(call_id)
    if problem is not None:
        raise InvalidParameterError(problem)
    return call_id


def check_caller_id(caller_id: str) -> str:
    if not isinstance(caller_id, str):
        raise InvalidParameterError(f"caller_id must be a string; got {type(caller_id).__name__}")
    problem = caller_id_problem(caller_id)
    if problem is not None:
        # The message quotes the value; it is refused, so it is not a stored number.
        raise InvalidParameterError(f"caller_id {problem}")
    return caller_id


def check_lease_owner(instance: str, worker: str) -> None:
    for name, value, most in (("instance", instance, INSTANCE_MAX), ("worker", worker, WORKER_MAX)):
        if not isinstance(value, str) or not value or len(value) > most:
            raise InvalidParameterError(f"{name} must be 1 to {most} characters")
        check_text(name, value)


def check_limit(limit: int, offset: int = 0) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidParameterError(f"limit must be between 1 and {MAX_LIMIT}; got {limit}")
    if offset < 0:
        raise InvalidParameterError(f"offset must be 0 or more; got {offset}")


def check_score(score: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(score, Mapping):
        raise InvalidParameterError(f"score must be a mapping; got {type(score).__name__}")
    return dict(score)


def check_drift_features(
    values: Mapping[str, float | None] | None,
) -> dict[str, float | None] | None:
    """Watched feature values as stored: finite numbers, a missing one as null (JSON has
    no NaN, and PostgreSQL refuses it)."""
    if values is None:
        return None
    out: dict[str, float | None] = {}
    for name, value in values.items():
        if not isinstance(name, str):
            raise InvalidParameterError("drift feature names must be strings")
        v = None if value is None else float(value)
        out[name] = v if v is not None and math.isfinite(v) else None
    return out


def probability(score: Mapping[str, Any], label: str) -> float | None:
    value = score.get(f"p_{label}")
    if value is None and isinstance(score.get("probabilities"), Mapping):
        value = score["probabilities"].get(label)
    if value is None:
        return None
    p = float(value)
    if not 0.0 <= p <= 1.0:
        raise InvalidParameterError(f"p_{label} must be within [0, 1]; got {p}")
    return p
