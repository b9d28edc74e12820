"""Numbers: the ranking by risk, a number's timeline and supervisors' reviews."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from api.db import Call, Event, Review
from api.store.audit import audit_row
from api.store.checks import actor_key_id, aware, check_actor, check_limit, check_text
from api.store.engine import StoreEngine
from api.store.errors import NotFoundError
from api.store.risk import number_risk
from api.store.rows import call_record, event_values, stored_json, utc_now
from classifier.errors import InvalidParameterError

#: What a supervisor can decide about a number.
REVIEW_ACTIONS: tuple[str, ...] = ("confirm_prank", "confirm_ghost", "clear", "watch")
#: Labels whose history weight a "clear" review resets.
FLAGGED_LABELS: tuple[str, ...] = ("prank", "ghost")


def _review_dict(row: Review) -> dict[str, Any]:
    return {
        "id": row.id,
        "caller_id": row.caller_id,
        "action": row.action,
        "until": row.until,
        "note": row.note,
        "at": row.created_at,
        "by": row.actor,
    }


class NumberStore(StoreEngine):
    """Numbers ranked by risk, their timelines and reviews."""

    def flagged_numbers(self, *, limit: int = 50, now: datetime) -> list[dict[str, Any]]:
        """Numbers ranked by risk, highest first.

        The risk adds, for each call started by ``now``, its confirmed outcome (prank 1.0,
        ghost 0.5, times the history weight) or, for a call without a label, its flag
        (likely 0.5, possible 0.25; only flags after the number's latest "clear"); every
        term halves each 30 days of age. Numbers with no risk left (e.g. cleared and not
        flagged since) are left out; withheld calls are never grouped.

        Returns
        -------
        list of dict
            ``caller_id``, ``calls``, ``pranks`` and ``ghosts`` (confirmed and not
            cleared), ``flagged`` (flagged unlabelled calls since the latest clear),
            ``last_call_at``, ``trend`` (calls in the last 7 days vs the 7 before:
            ``rising``, ``falling`` or ``steady``), ``risk`` and ``review`` (the latest
            review: action, until, note, at, by; or None).
        """
        aware(now, "now")
        check_limit(limit)
        counted = (Call.label.in_(FLAGGED_LABELS) & (Call.history_weight > 0)) | (
            Call.label.is_(None) & Call.flag.is_not(None) & (Call.flag != "none")
        )
        candidates = (
            select(Call.caller_id)
            .where(Call.caller_id != "", Call.started_at <= now, counted)
            .distinct()
        )
        with self._session() as session:
            calls = session.execute(
                select(
                    Call.caller_id,
                    Call.started_at,
                    Call.utc_offset_s,
                    Call.label,
                    Call.flag,
                    Call.history_weight,
                )
                .where(Call.caller_id.in_(candidates), Call.started_at <= now)
                .order_by(Call.caller_id, Call.started_at)
            ).all()
            reviews = (
                session.execute(
                    select(Review)
                    .where(Review.caller_id.in_(candidates), Review.created_at <= now)
                    .order_by(Review.caller_id, Review.created_at, Review.id)
                )
                .scalars()
                .all()
            )
        latest: dict[str, Review] = {}
        cleared_at: dict[str, datetime] = {}
        for review in reviews:
            latest[review.caller_id] = review
            if review.action == "clear":
                cleared_at[review.caller_id] = review.created_at
        by_number: dict[str, list[Any]] = {}
        for call in calls:
            by_number.setdefault(call.caller_id, []).append(call)
        ranked = [
            number_risk(caller_id, rows, now, cleared_at.get(caller_id), latest.get(caller_id))
            for caller_id, rows in by_number.items()
        ]
        ranked = [r for r in ranked if r["risk"] > 0]
        ranked.sort(key=lambda r: (-r["risk"], -r["last_call_at"].timestamp(), r["caller_id"]))
        return ranked[:limit]

    def number_timeline(self, caller_id: str) -> dict[str, Any]:
        """Every call and review of a number, oldest first.

        Returns
        -------
        dict
            ``{"caller_id", "calls": [CallRecord.as_dict(), ...], "reviews": [...]}``.

        Raises
        ------
        NotFoundError
            When the number has neither calls nor reviews.
        """
        if caller_id == "":
            raise InvalidParameterError("a withheld number (empty caller_id) has no timeline")
        check_text("caller_id", caller_id)
        with self._session() as session:
            calls = (
                session.execute(
                    select(Call)
                    .where(Call.caller_id == caller_id)
                    .order_by(Call.started_at, Call.id)
                )
                .scalars()
                .all()
            )
            reviews = (
                session.execute(
                    select(Review)
                    .where(Review.caller_id == caller_id)
                    .order_by(Review.created_at, Review.id)
                )
                .scalars()
                .all()
            )
        if not calls and not reviews:
            raise NotFoundError("unknown number: no call from this caller_id was registered")
        return {
            "caller_id": caller_id,
            "calls": [call_record(c).as_dict() for c in calls],
            "reviews": [_review_dict(r) for r in reviews],
        }

    def review_number(
        self,
        caller_id: str,
        *,
        action: str,
        until: datetime | None,
        note: str | None,
        actor: str,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Record a supervisor's decision about a number (audited).

        Parameters
        ----------
        caller_id : str
            A number with at least one registered call.
        action : {"confirm_prank", "confirm_ghost", "clear", "watch"}, keyword-only
            ``clear`` sets the history weight of the number's calls labelled prank or
            ghost so far to 0 (redress); the others keep weights.
        until : datetime or None, keyword-only
            End of a ``watch`` (aware); only for ``watch``.
        note : str or None, keyword-only
        actor : str, keyword-only
        now : datetime or None, keyword-only
            Time of the decision; the clock when None.

        Returns
        -------
        dict
            The review (id, caller_id, action, until, note, at, by) and ``cleared_calls``.
        """
        if action not in REVIEW_ACTIONS:
            raise InvalidParameterError(
                f"unknown review action {action!r}; expected one of {', '.join(REVIEW_ACTIONS)}"
            )
        if caller_id == "":
            raise InvalidParameterError("a withheld number (empty caller_id) cannot be reviewed")
        if until is not None:
            aware(until, "until")
            if action != "watch":
                raise InvalidParameterError(f"until applies to action 'watch' only; got {action!r}")
        if note is not None and not isinstance(note, str):
            raise InvalidParameterError(f"note must be a string; got {type(note).__name__}")
        if note is not None:
            check_text("note", note)
        check_text("caller_id", caller_id)
        check_actor(actor)
        at = utc_now() if now is None else aware(now, "now")
        with self._session(write=True) as session:
            known = session.execute(
                select(func.count()).select_from(Call).where(Call.caller_id == caller_id)
            ).scalar_one()
            if not known:
                raise NotFoundError("unknown number: no call from this caller_id was registered")
            previous = session.execute(
                select(Review)
                .where(Review.caller_id == caller_id)
                .order_by(Review.created_at.desc(), Review.id.desc())
                .limit(1)
            ).scalar_one_or_none()
            before: dict[str, Any] = {
                "review": None if previous is None else stored_json(_review_dict(previous))
            }
            after: dict[str, Any] = {}
            cleared: list[Call] = []
            if action == "clear":
                cleared = list(
                    session.execute(
                        select(Call)
                        .where(
                            Call.caller_id == caller_id,
                            Call.label.in_(FLAGGED_LABELS),
                            Call.history_weight != 0,
                        )
                        .with_for_update()
                    )
                    .scalars()
                    .all()
                )
                before["history_weights"] = {c.call_id: c.history_weight for c in cleared}
                for c in cleared:
                    c.history_weight = 0.0
                after["history_weights"] = {c.call_id: 0.0 for c in cleared}
            review = Review(
                caller_id=caller_id,
                action=action,
                until=until,
                note=note,
                created_at=at,
                by_key_id=actor_key_id(actor),
                actor=actor,
            )
            session.add(review)
            session.flush()
            result = _review_dict(review)
            after = {"review": stored_json(result), **after}
            session.add(
                audit_row(actor, "number.review", "number", caller_id, before, after, at=at)
            )
            event = {**stored_json(result), "cleared_calls": len(cleared)}
            session.add(Event(**event_values("review", event, at)))
        result["cleared_calls"] = len(cleared)
        return result
