"""The risk of a number (:meth:`api.store.Store.flagged_numbers`): its confirmed
outcomes and the flags of its unlabelled calls, each halving in weight every
:data:`RISK_HALF_LIFE_DAYS` days."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from api.db import Review
from api.store.rows import local_time

#: Days after which a term of the risk counts half.
RISK_HALF_LIFE_DAYS = 30.0
#: Weight of a confirmed outcome (times the call's history weight).
RISK_WEIGHTS: dict[str, float] = {"prank": 1.0, "ghost": 0.5}
#: Weight of a flag of an unlabelled call, by level.
FLAG_WEIGHTS: dict[str, float] = {"likely": 0.5, "possible": 0.25}
#: The trend compares the calls of the last TREND_DAYS with the TREND_DAYS before.
TREND_DAYS = 7


def number_risk(
    caller_id: str,
    rows: Sequence[Any],
    now: datetime,
    cleared_at: datetime | None,
    review: Review | None,
) -> dict[str, Any]:
    """One row of :meth:`api.store.Store.flagged_numbers` from the number's calls
    (``started_at``, ``utc_offset_s``, ``label``, ``flag``, ``history_weight``; oldest
    first), the time of its latest "clear" and its latest review."""
    risk = 0.0
    pranks = ghosts = flagged = recent = previous = 0
    for r in rows:
        age_days = max(0.0, (now - r.started_at).total_seconds() / 86400.0)
        decay = 0.5 ** (age_days / RISK_HALF_LIFE_DAYS)
        if r.label in RISK_WEIGHTS:
            risk += RISK_WEIGHTS[r.label] * r.history_weight * decay
            if r.history_weight > 0:
                if r.label == "prank":
                    pranks += 1
                else:
                    ghosts += 1
        elif r.label is None and r.flag and r.flag != "none":
            if cleared_at is None or r.started_at > cleared_at:
                flagged += 1
                level = r.flag.split("_", 1)[0]
                risk += FLAG_WEIGHTS.get(level, FLAG_WEIGHTS["possible"]) * decay
        if age_days <= TREND_DAYS:
            recent += 1
        elif age_days <= 2 * TREND_DAYS:
            previous += 1
    last = rows[-1]
    trend = "rising" if recent > previous else "falling" if recent < previous else "steady"
    return {
        "caller_id": caller_id,
        "calls": len(rows),
        "pranks": pranks,
        "ghosts": ghosts,
        "flagged": flagged,
        "last_call_at": local_time(last.started_at, last.utc_offset_s),
        "trend": trend,
        "risk": round(risk, 4),
        "review": None
        if review is None
        else {
            "action": review.action,
            "until": review.until,
            "note": review.note,
            "at": review.created_at,
            "by": review.actor,
        },
    }
