"""The rules of a call row, in one place: its columns, what a call_id is and what a
caller_id is. The manifest validator (:mod:`classifier.manifest`), the HTTP API's
schemas (:mod:`api.schemas`) and the store (:mod:`api.store`) all check with these.

Plain ``re`` only (no pandas, no pydantic): the store checks every arriving call with it.
"""

from __future__ import annotations

import re

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
