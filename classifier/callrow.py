"""The rules of a call row, in one place: its columns, what a call_id is and what a
caller_id is. The manifest validator (:mod:`classifier.manifest`), the HTTP API's
schemas (:mod:`api.schemas`) and the store (:mod:`api.store`) all check with these.

:class:`CallRow` is the one model of a call row: the manifest validator checks each
row with :class:`ManifestRow` (its subclass, with a manifest's text columns) and the
API's ``CallIn`` is a subclass too, narrowing the same fields to what is safe in a URL
path and in JSON Schema. The checks themselves are the plain functions below, which the
store also calls on every arriving call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from classifier.formats import LABELS

#: Columns every manifest row has (docs/data-format.md).
REQUIRED_COLUMNS: tuple[str, ...] = (
    "call_id",
    "caller_id",
    "started_at",
    "duration_s",
    "audio_path",
    "label",
)
#: Columns a manifest row may have, written after the required ones.
OPTIONAL_COLUMNS: tuple[str, ...] = ("caller_channel",)

#: Longest call_id stored (the database column's length).
CALL_ID_MAX = 128
#: Longest caller_id stored (the database column's length).
CALLER_ID_MAX = 128

#: call_id as the HTTP API takes it: what a call-taking system's ids look like, and safe
#: inside a URL path. Narrower than :func:`call_id_problem`, the store's rule (any
#: printable text that fits the column).
CALL_ID_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._:@-]{{0,{CALL_ID_MAX - 1}}}$"

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SIMLESS = re.compile(r"^simless:[A-Za-z0-9._-]{1,64}$")
# A number the service's retention replaced by a keyed pseudonym (api/retention.py); a
# SIM-less id's pseudonym is still a valid simless: id.
_PSEUDONYM = re.compile(r"^anon:[0-9a-f]{16}$")

#: A caller's number as the HTTP API takes it: E.164, ``simless:<handset id>``. The
#: same rule as :func:`caller_id_problem` without pseudonyms, written so that it means
#: the same in Python and in JSON Schema (ASCII digits, no newline before the end): the
#: schema promises exactly what the service accepts.
NUMBER_PATTERN = r"^(?:\+[1-9][0-9]{6,14}|simless:[A-Za-z0-9._-]{1,64})$"
#: ``caller_id`` of an arriving call: a number as above, or empty when withheld.
CALLER_ID_PATTERN = r"^(?:\+[1-9][0-9]{6,14}|simless:[A-Za-z0-9._-]{1,64})?$"


def call_id_problem(value: object) -> str | None:
    """Why ``value`` cannot be stored as a call_id (1 to :data:`CALL_ID_MAX` printable
    characters), or None when it can."""
    if not isinstance(value, str) or not value or len(value) > CALL_ID_MAX:
        got = len(value) if isinstance(value, str) else type(value).__name__
        return f"call_id must be 1 to {CALL_ID_MAX} characters; got {got}"
    if not value.isprintable():
        return "call_id must not contain control characters"
    return None


def caller_id_problem(value: str) -> str | None:
    """Return why ``value`` is not a valid caller_id, or None when it is valid."""
    if value == "":
        return None
    if value.startswith("simless:"):
        if _SIMLESS.match(value):
            return None
        return f"{value!r} is not a valid SIM-less id; expected simless:<handset id>"
    if _E164.match(value) or _PSEUDONYM.match(value):
        return None
    return (
        f"{value!r} is not an E.164 number; expected +<country code><number> "
        "(e.g. +6281234567890), simless:<handset id>, anon:<16 hex digits> (a pseudonym), "
        "or empty when withheld"
    )


def number_problem(value: str, *, pattern: str = NUMBER_PATTERN) -> str | None:
    """Why ``value`` does not match ``pattern`` (:data:`NUMBER_PATTERN` or
    :data:`CALLER_ID_PATTERN`), saying what a number is; None when it matches."""
    if re.fullmatch(pattern, value):
        return None
    problem = caller_id_problem(value) if value else "empty"
    return problem or (
        f"{value[:40]!r} is not an E.164 number; expected +<country code><number> "
        "in ASCII digits, or simless:<handset id>"
    )


_EXAMPLE_TIME = "expected e.g. 2025-06-03T19:04:11+08:00"


def parse_timestamp(value: str) -> datetime:
    """Parse an ISO 8601 timestamp that carries a UTC offset.

    Parameters
    ----------
    value : str
        For example ``2025-06-03T19:04:11+08:00`` or ``2025-06-03T11:04:11Z``.

    Returns
    -------
    datetime
        A timezone-aware datetime.

    Raises
    ------
    ValueError
        When the text is not ISO 8601 or has no UTC offset.
    """
    text = value.strip()
    if not text:
        raise ValueError("empty timestamp; expected ISO 8601 with a UTC offset")
    try:
        ts = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not ISO 8601; {_EXAMPLE_TIME}") from exc
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"{value!r} has no UTC offset; {_EXAMPLE_TIME}")
    return ts


def _checked(problem: str | None, value: str) -> str:
    if problem is not None:
        raise ValueError(problem)
    return value


class CallRow(BaseModel):
    """A call as every entry point takes it: who called, when, under which id.

    The same rules for a manifest row (:class:`ManifestRow`), a call arriving at the
    HTTP API (``api.schemas.CallIn``) and the store: a call_id that fits the database
    column, a caller_id that is E.164, ``simless:<handset id>``, a pseudonym or empty,
    and a start time with its UTC offset.
    """

    call_id: str
    caller_id: str
    started_at: datetime

    @field_validator("call_id")
    @classmethod
    def _call_id(cls, value: str) -> str:
        return _checked(call_id_problem(value), value)

    @field_validator("caller_id")
    @classmethod
    def _caller_id(cls, value: str) -> str:
        return _checked(caller_id_problem(value), value)

    @field_validator("started_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{value.isoformat()!r} has no UTC offset; {_EXAMPLE_TIME}")
        return value


class ManifestRow(CallRow):
    """One row of a manifest CSV (docs/data-format.md), every field as text.

    Blank cells are stripped; ``label`` may be empty (unlabelled) and ``caller_channel``
    empty means ``mix``. Validation errors carry the messages the validator reports.
    """

    model_config = ConfigDict(str_strip_whitespace=True)

    duration_s: float
    audio_path: str
    label: str = ""
    caller_channel: str = ""

    @field_validator("call_id", mode="before")
    @classmethod
    def _call_id_given(cls, value: object) -> object:
        if not str(value or "").strip():
            raise ValueError("call_id is empty; expected a unique id")
        return value

    @field_validator("started_at", mode="before")
    @classmethod
    def _timestamp(cls, value: object) -> datetime:
        return parse_timestamp(str(value or ""))

    @field_validator("duration_s", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        text = str(value or "").strip()
        try:
            duration = float(text)
        except ValueError:
            raise ValueError(f"duration_s is {text!r}; expected a number of seconds") from None
        if not math.isfinite(duration):
            raise ValueError(f"duration_s is {text}; expected a finite number")
        if duration < 0:
            raise ValueError(f"duration_s is {text}; expected 0 or more seconds")
        return duration

    @field_validator("label")
    @classmethod
    def _label(cls, value: str) -> str:
        if value and value not in LABELS:
            raise ValueError(
                f"unknown label {value!r}; expected one of {', '.join(LABELS)} or empty"
            )
        return value

    @field_validator("audio_path")
    @classmethod
    def _audio_path(cls, value: str) -> str:
        if not value:
            raise ValueError(
                "audio_path is empty; expected a path relative to the manifest or a URL"
            )
        return value


def row_problems(model: type[CallRow], row: Mapping[str, object]) -> list[tuple[str, str]]:
    """Validate ``row`` with ``model``; each problem as ``(column, message)``, the message
    the field's rule raised (empty when the row is valid)."""
    try:
        model.model_validate(row)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            column = str(error["loc"][0]) if error["loc"] else ""
            cause = (error.get("ctx") or {}).get("error")
            problems.append((column, str(cause) if cause is not None else error["msg"]))
        return problems
    return []
