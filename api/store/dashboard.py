"""Read-only views over many calls: the console's recent calls, the supervisor's
dashboard, and the calls behind the drift check and the weekly report."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Any, cast

from sqlalchemy import case, func, select

from api.db import Call
from api.store.checks import aware, check_limit
from api.store.engine import StoreEngine
from api.store.rows import call_record, local_time
from classifier.errors import InvalidParameterError
from classifier.formats import LABELS


class DashboardStore(StoreEngine):
    """Reads of many calls for the console, the dashboard, drift and reports."""

    def recent_calls(
        self,
        *,
        since: datetime | None = None,
        limit: int = 50,
        now: datetime,
        caller_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Calls registered most recently first, each with its number's recent record.

        Parameters
        ----------
        since : datetime or None, keyword-only
            Only calls registered strictly after this time (aware), for polling.
        limit : int, keyword-only
            1 to 1000 calls.
        now : datetime, keyword-only
            Aware; ``calls_7d`` counts the number's calls started in the 7 days before it.
        caller_id : str or None, keyword-only
            Only this number's calls (a number's last calls, in the console's panel).

        Returns
        -------
        list of dict
            ``{"call": CallRecord, "created_at": datetime (UTC), "caller_recent": dict}``;
            ``caller_recent`` is ``{"calls_7d", "pranks", "ghosts"}`` for the call's number
            (confirmed pranks and ghost calls that a "clear" did not reset); zeros for a
            withheld number, which has no shared history.
        """
        aware(now, "now")
        check_limit(limit)
        query = select(Call)
        if since is not None:
            query = query.where(Call.created_at > aware(since, "since"))
        if caller_id is not None:
            query = query.where(Call.caller_id == caller_id)
        # Newest first on (created_at, id): the page is the tail of the insertion order.
        query = query.order_by(Call.created_at.desc(), Call.id.desc()).limit(limit)
        week_ago = now - timedelta(days=7)
        with self._session() as session:
            rows = session.execute(query).scalars().all()
            numbers = sorted({r.caller_id for r in rows if r.caller_id != ""})
            counts: dict[str, dict[str, int]] = {}
            if numbers:
                kept = Call.history_weight > 0
                summary = session.execute(
                    select(
                        Call.caller_id,
                        func.sum(
                            case(
                                ((Call.started_at >= week_ago) & (Call.started_at <= now), 1),
                                else_=0,
                            )
                        ),
                        func.sum(case(((Call.label == "prank") & kept, 1), else_=0)),
                        func.sum(case(((Call.label == "ghost") & kept, 1), else_=0)),
                    )
                    .where(Call.caller_id.in_(numbers))
                    .group_by(Call.caller_id)
                ).all()
                counts = {
                    row[0]: {
                        "calls_7d": int(cast("int", row[1] or 0)),
                        "pranks": int(cast("int", row[2] or 0)),
                        "ghosts": int(cast("int", row[3] or 0)),
                    }
                    for row in summary
                }
        zeros = {"calls_7d": 0, "pranks": 0, "ghosts": 0}
        return [
            {
                "call": call_record(r),
                "created_at": r.created_at,
                "caller_recent": dict(counts.get(r.caller_id, zeros)),
            }
            for r in rows
        ]

    def drift_calls(
        self, *, model_version: str, since: datetime, until: datetime, limit: int = 50_000
    ) -> list[dict[str, Any]]:
        """Calls scored from audio by ``model_version`` that started in ``(since, until]``,
        newest first, at most ``limit``: ``started_at``, ``utc_offset_s``, ``flag``,
        ``p_prank``, ``p_ghost`` and ``features`` (the watched features, None when the
        score was stored without them)."""
        aware(since, "since")
        aware(until, "until")
        if limit < 1:
            raise InvalidParameterError(f"limit must be 1 or more; got {limit}")
        query = (
            select(
                Call.started_at,
                Call.utc_offset_s,
                Call.flag,
                Call.p_prank,
                Call.p_ghost,
                Call.drift_features,
            )
            .where(
                Call.model_version == model_version,
                Call.scored_at.is_not(None),
                Call.started_at > since,
                Call.started_at <= until,
            )
            .order_by(Call.started_at.desc())
            .limit(limit)
        )
        with self._session() as session:
            rows = session.execute(query).all()
        return [
            {
                "started_at": r.started_at,
                "utc_offset_s": r.utc_offset_s,
                "flag": r.flag,
                "p_prank": r.p_prank,
                "p_ghost": r.p_ghost,
                "features": r.drift_features if isinstance(r.drift_features, dict) else None,
            }
            for r in rows
        ]

    def report_calls(self, *, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """Calls started in ``[since, until)`` (aware), read-only, for the weekly report:
        ``started_at`` (UTC), ``caller_id``, ``label``, ``flag``, ``duration_s`` and
        ``incident_type`` (``metadata["incident_type"]`` or None), oldest first."""
        query = (
            select(
                Call.started_at, Call.caller_id, Call.label, Call.flag, Call.duration_s, Call.meta
            )
            .where(
                Call.started_at >= aware(since, "since"), Call.started_at < aware(until, "until")
            )
            .order_by(Call.started_at)
        )
        with self._session() as session:
            rows = session.execute(query).all()
        return [
            {
                "started_at": r.started_at,
                "caller_id": r.caller_id,
                "label": r.label,
                "flag": r.flag,
                "duration_s": r.duration_s,
                "incident_type": (r.meta or {}).get("incident_type"),
            }
            for r in rows
        ]

    def dashboard_counts(
        self, *, now: datetime, days: int = 30, tz: tzinfo | None = None, top: int = 10
    ) -> dict[str, Any]:
        """What a supervisor's dashboard plots, over the calls started in the last ``days``.

        Parameters
        ----------
        now : datetime, keyword-only
            Aware end of the window.
        days : int, keyword-only
            Length of the window, 1 to 366 days.
        tz : tzinfo or None, keyword-only
            The centre's time zone for dates, weekdays and hours; None uses each call's
            own UTC offset.
        top : int, keyword-only
            How many incident types to keep.

        Returns
        -------
        dict
            ``days``: ``[{"date", "emergency", "non_emergency", "prank", "ghost",
            "unlabelled"}]`` per local date with calls, oldest first; ``share``:
            ``[{"date", "prank_share", "ghost_share"}]`` among the labelled calls of each
            date that has any; ``heatmap``: 7 x 24 counts (weekday Monday=0 x local hour);
            ``incident_types``: ``[{"type", "calls"}]``, the ``top`` most frequent
            ``metadata["incident_type"]`` values (most frequent first, ties by name).
        """
        aware(now, "now")
        if not 1 <= days <= 366:
            raise InvalidParameterError(f"days must be between 1 and 366; got {days}")
        if top < 1:
            raise InvalidParameterError(f"top must be 1 or more; got {top}")
        query = select(Call.started_at, Call.utc_offset_s, Call.label, Call.meta).where(
            Call.started_at > now - timedelta(days=days), Call.started_at <= now
        )
        with self._session() as session:
            rows = session.execute(query).all()
        per_day: dict[str, dict[str, int]] = {}
        heatmap = [[0] * 24 for _ in range(7)]
        incidents: dict[str, int] = {}
        for r in rows:
            local = (
                r.started_at.astimezone(tz)
                if tz is not None
                else local_time(r.started_at, r.utc_offset_s)
            )
            day = per_day.setdefault(
                local.date().isoformat(), {label: 0 for label in (*LABELS, "unlabelled")}
            )
            day[r.label if r.label in LABELS else "unlabelled"] += 1
            heatmap[local.weekday()][local.hour] += 1
            incident = (r.meta or {}).get("incident_type")
            if isinstance(incident, str) and incident.strip():
                incidents[incident.strip()] = incidents.get(incident.strip(), 0) + 1
        dates = sorted(per_day)
        share = []
        for date in dates:
            counts = per_day[date]
            labelled = sum(counts[label] for label in LABELS)
            if labelled:
                share.append(
                    {
                        "date": date,
                        "prank_share": round(counts["prank"] / labelled, 4),
                        "ghost_share": round(counts["ghost"] / labelled, 4),
                    }
                )
        ranked = sorted(incidents.items(), key=lambda item: (-item[1], item[0]))[:top]
        return {
            "days": [{"date": date, **per_day[date]} for date in dates],
            "share": share,
            "heatmap": heatmap,
            "incident_types": [{"type": name, "calls": n} for name, n in ranked],
        }
