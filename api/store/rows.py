"""Stored rows as plain values: a call as a :class:`CallRecord`, times in a call's own
offset, JSON as stored, and the rows of the ``events`` outbox."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from api.db import Call, escape_refused_text
from classifier.jsonable import jsonable


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def local_time(utc: datetime, offset_s: int) -> datetime:
    return utc.astimezone(timezone(timedelta(seconds=offset_s)))


@dataclass(frozen=True)
class CallRecord:
    """One stored call, as plain data.

    Attributes
    ----------
    call_id, caller_id : str
        ``caller_id`` is ``""`` when the number was withheld.
    started_at : datetime
        Aware, in the call's original UTC offset.
    metadata : dict of str to str
    duration_s : float or None
        Set when the recording arrives.
    pre_score, score : dict or None
        The pre-answer score and the latest audio score, as the app stored them.
    flag : str or None
        Flag of the latest audio score.
    p_prank, p_ghost : float or None
        Probabilities of the latest audio score.
    model_version : str or None
    scored_at, label_at : datetime or None
        UTC.
    label, label_note : str or None
        The call-taker's disposition.
    audio_file : str or None
        Absolute path of the stored recording.
    history_weight : float
        1.0, or 0.0 once a supervisor cleared the number after this call's outcome.
    caller_channel : str or None
        Which channel of the recording is the caller.
    """

    call_id: str
    caller_id: str
    started_at: datetime
    metadata: dict[str, str]
    duration_s: float | None
    pre_score: dict[str, Any] | None
    score: dict[str, Any] | None
    flag: str | None
    p_prank: float | None
    p_ghost: float | None
    model_version: str | None
    scored_at: datetime | None
    label: str | None
    label_note: str | None
    label_at: datetime | None
    audio_file: str | None
    history_weight: float = 1.0
    caller_channel: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The record as a dict (datetimes stay datetime objects)."""
        return asdict(self)


def call_record(row: Call) -> CallRecord:
    """The stored call ``row`` as plain data, its start in its own UTC offset."""
    return CallRecord(
        call_id=row.call_id,
        caller_id=row.caller_id,
        started_at=local_time(row.started_at, row.utc_offset_s),
        metadata=dict(row.meta or {}),
        duration_s=row.duration_s,
        pre_score=row.pre_score,
        score=row.score,
        flag=row.flag,
        p_prank=row.p_prank,
        p_ghost=row.p_ghost,
        model_version=row.model_version,
        scored_at=row.scored_at,
        label=row.label,
        label_note=row.label_note,
        label_at=row.label_at,
        audio_file=row.audio_file,
        history_weight=row.history_weight,
        caller_channel=row.caller_channel,
    )


def stored_json(value: Any) -> Any:
    """Datetimes to ISO text, recursively, so audit before/after read back as stored;
    text a database cannot hold is kept escaped (an audit entry is never lost for it);
    NaN and infinities are left as they are."""
    return jsonable(value, finite=False, text=escape_refused_text)


#: Score fields an event carries (the stored score's own keys).
EVENT_SCORE_KEYS = ("stage", "flag", "p_prank", "p_ghost", "reasons", "model_version")


def score_event(
    call_id: str, caller_id: str, score: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The pushed update of a call's score (:mod:`api.events`): kind ``flag`` when the
    score flags the call, else ``score``; and its data."""
    flag = score.get("flag")
    kind = "flag" if isinstance(flag, str) and flag != "none" else "score"
    data: dict[str, Any] = {"call_id": call_id, "caller_id": caller_id}
    data.update({k: score.get(k) for k in EVENT_SCORE_KEYS})
    return kind, data


def event_values(kind: str, data: Mapping[str, Any], at: datetime) -> dict[str, Any]:
    """A row of the ``events`` outbox, written in the transaction of its change."""
    return {"created_at": at, "kind": kind, "data": stored_json(dict(data))}
