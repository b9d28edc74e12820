"""A call's life in the store: registration, its history, scores and disposition."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import bindparam, case, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult

from api.db import Call, Event
from api.store.audit import audit_row
from api.store.checks import (
    actor_key_id,
    aware,
    check_actor,
    check_call_id,
    check_caller_id,
    check_drift_features,
    check_metadata,
    check_score,
    check_text,
    probability,
)
from api.store.engine import DriverStatement, StoreEngine
from api.store.errors import ConflictError, NotFoundError
from api.store.rows import (
    EVENT_SCORE_KEYS,
    CallRecord,
    call_record,
    event_values,
    iso,
    local_time,
    score_event,
    utc_now,
)
from classifier.errors import InvalidParameterError
from classifier.formats import LABELS
from classifier.history import PastCall

# Statements of the per-call hot path, built once: building a statement cost more than
# running it (measured 0.35 ms per call through SQLAlchemy against 0.01 ms in SQLite).
_INSERT_CALL = insert(Call)
_INSERT_EVENT = insert(Event)
_EVENT_COLUMNS = ("created_at", "kind", "data")
_HISTORY_QUERY = (
    select(
        Call.started_at,
        Call.utc_offset_s,
        Call.duration_s,
        Call.label,
        Call.label_at,
        Call.history_weight,
    )
    .where(Call.caller_id == bindparam("b_caller"), Call.started_at < bindparam("b_before"))
    .order_by(Call.started_at, Call.id)
)
_SAVE_PRE_SCORE = (
    update(Call)
    .where(Call.call_id == bindparam("b_call_id"))
    .values(
        pre_score=bindparam("b_pre_score", type_=Call.__table__.c.pre_score.type),
        model_version=case(
            (Call.score.is_(None), bindparam("b_version")), else_=Call.model_version
        ),
    )
)


def call_row(session: Session, call_id: str, *, lock: bool = False) -> Call:
    """The row of ``call_id`` (locked for update when ``lock``); NotFoundError when none."""
    query = select(Call).where(Call.call_id == call_id)
    if lock:
        query = query.with_for_update()
    row = session.execute(query).scalar_one_or_none()
    if row is None:
        raise NotFoundError(f"unknown call_id {call_id!r}: no call was registered with this id")
    return row


class CallStore(StoreEngine):
    """Registering, reading, scoring and dispositioning calls."""

    def __init__(self, url: str, *, data_dir: Path, pool_timeout_s: float = 2.0) -> None:
        super().__init__(url, data_dir=data_dir, pool_timeout_s=pool_timeout_s)
        # The per-call statements on SQLite, run on the driver (see DriverStatement).
        self._driver_inserts: dict[tuple[str, ...], DriverStatement] = {}
        self._driver_history = (
            DriverStatement(_HISTORY_QUERY, self.engine.dialect) if self._sqlite else None
        )
        self._driver_event = (
            DriverStatement(_INSERT_EVENT, self.engine.dialect, column_keys=_EVENT_COLUMNS)
            if self._sqlite
            else None
        )

    def register_call(
        self,
        *,
        call_id: str,
        caller_id: str,
        started_at: datetime,
        metadata: Mapping[str, str],
        actor: str,
        pre_score: Mapping[str, Any] | None = None,
        model_version: str | None = None,
    ) -> tuple[CallRecord, bool]:
        """Store an arriving call, once.

        Parameters
        ----------
        call_id : str
            Unique id, 1 to 128 characters.
        caller_id : str
            E.164, ``simless:<id>``, or ``""`` when withheld.
        started_at : datetime
            Aware; its UTC offset is kept.
        metadata : mapping of str to str
        actor : str
            Who registers (not audited: calls are data, not decisions).
        pre_score : mapping or None, keyword-only
            The pre-answer score, stored in the same statement as the call (as
            :meth:`save_pre_score` would); needs ``model_version``.
        model_version : str or None, keyword-only
            Version of the model behind ``pre_score``.

        Returns
        -------
        (CallRecord, bool)
            The stored call, and whether this request created it. A retry with the same
            caller and start returns the stored call (with its stored score, not
            ``pre_score``) and False.

        Raises
        ------
        ConflictError
            The call_id is stored with another caller or start time.
        """
        check_call_id(call_id)
        check_caller_id(caller_id)
        aware(started_at, "started_at")
        check_actor(actor)
        check_metadata(metadata)
        score = None if pre_score is None else check_score(pre_score)
        if (score is None) != (model_version is None):
            raise InvalidParameterError("pre_score and model_version go together; got only one")
        if model_version is not None and (not isinstance(model_version, str) or not model_version):
            raise InvalidParameterError("model_version must be a non-empty string")
        offset = started_at.utcoffset()
        assert offset is not None  # checked by _aware
        # Insert first: a retry is the rare case, and the unique constraint settles races.
        values: dict[str, Any] = {
            "call_id": call_id,
            "caller_id": caller_id,
            "started_at": started_at,
            "utc_offset_s": int(offset.total_seconds()),
            "metadata": dict(metadata),  # the column's name (the attribute is ``meta``)
            "created_at": utc_now(),
            "history_weight": 1.0,
        }
        if score is not None:
            # Only when given: a None here would be stored as JSON null, not SQL NULL.
            values["pre_score"] = score
            values["model_version"] = model_version
        event = event_values(
            "call",
            {
                "call_id": call_id,
                "caller_id": caller_id,
                "started_at": started_at.isoformat(),
                **{k: (score or {}).get(k) for k in EVENT_SCORE_KEYS},
            },
            values["created_at"],
        )
        try:
            # A Core INSERT, no ORM object: this runs on every arriving call.
            self._insert_call(values, event)
            record = CallRecord(
                call_id=call_id,
                caller_id=caller_id,
                started_at=started_at,
                metadata=dict(metadata),
                duration_s=None,
                pre_score=score,
                score=None,
                flag=None,
                p_prank=None,
                p_ghost=None,
                model_version=model_version,
                scored_at=None,
                label=None,
                label_note=None,
                label_at=None,
                audio_file=None,
            )
        except (IntegrityError, self._driver_integrity_error):
            stored = self.get_call(call_id)
            if stored.caller_id != caller_id or stored.started_at != started_at:
                raise ConflictError(
                    f"call_id {call_id!r} is already registered with a different caller_id or "
                    f"started_at (stored started_at {stored.started_at.isoformat()}); "
                    "a retry must repeat the same values"
                ) from None
            return stored, False
        return record, True

    @property
    def _driver_integrity_error(self) -> type[Exception]:
        dbapi = self.engine.dialect.dbapi
        return dbapi.IntegrityError if self._sqlite and dbapi is not None else IntegrityError

    def _insert_call(self, values: dict[str, Any], event: dict[str, Any]) -> None:
        """The INSERT of a call and of its ``call`` event, in one transaction (on SQLite
        through the driver: it runs on every call)."""
        if not self._sqlite:
            with self._tx(write=True) as conn:
                conn.execute(_INSERT_CALL, values)
                conn.execute(_INSERT_EVENT, event)
            return
        keys = tuple(values)
        statement = self._driver_inserts.get(keys)
        if statement is None:
            statement = DriverStatement(_INSERT_CALL, self.engine.dialect, column_keys=keys)
            self._driver_inserts[keys] = statement
        params = statement.params(values)
        insert_event = self._driver_event
        assert insert_event is not None  # made for SQLite
        event_params = insert_event.params(event)
        with self._driver(write=True) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(statement.sql, params)
                conn.execute(insert_event.sql, event_params)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def get_call(self, call_id: str) -> CallRecord:
        """The stored call ``call_id``.

        Raises
        ------
        NotFoundError
        """
        with self._session() as session:
            return call_record(call_row(session, call_id))

    def caller_history(self, caller_id: str, *, before: datetime) -> list[PastCall]:
        """Calls of ``caller_id`` that started strictly before ``before``, oldest first.

        Parameters
        ----------
        caller_id : str
            A withheld number (``""``) has no history: the result is empty.
        before : datetime, keyword-only
            Aware.

        Returns
        -------
        list of PastCall
            With label, label_at and the history weight; point-in-time filtering of the
            labels is left to :func:`classifier.history.history_features`.
        """
        aware(before, "before")
        if caller_id == "":
            return []
        params = {"b_caller": caller_id, "b_before": before}
        rows: Sequence[Any]
        if self._driver_history is not None:
            statement = self._driver_history
            with self._driver() as conn:
                rows = statement.rows(conn.execute(statement.sql, statement.params(params)))
        else:
            with self._tx() as conn:
                rows = conn.execute(_HISTORY_QUERY, params).all()
        # Columns as selected by _HISTORY_QUERY.
        return [
            PastCall(
                started_at=local_time(started_at, offset_s),
                duration_s=float(duration_s or 0.0),
                label=label,
                label_at=label_at,
                weight=float(weight),
            )
            for started_at, offset_s, duration_s, label, label_at, weight in rows
        ]

    def save_pre_score(self, call_id: str, score: Mapping[str, Any], *, model_version: str) -> None:
        """Store the pre-answer score of a call (replacing an earlier one).

        The pre-answer flag is not copied to ``flag``: it comes from the history itself,
        and counting it as a new flag would feed a number's risk with its own past.
        """
        data = check_score(score)
        # One UPDATE, no ORM object: this runs on every arriving call.
        with self._tx(write=True) as conn:
            params = {"b_call_id": call_id, "b_pre_score": data, "b_version": model_version}
            result = cast("CursorResult[Any]", conn.execute(_SAVE_PRE_SCORE, params))
            if result.rowcount == 0:
                raise NotFoundError(
                    f"unknown call_id {call_id!r}: no call was registered with this id"
                )
            caller_id = conn.execute(
                select(Call.caller_id).where(Call.call_id == call_id)
            ).scalar_one()
            # The pre-answer flag is the history's: a "score", never a new "flag".
            _, event = score_event(call_id, caller_id, data)
            conn.execute(_INSERT_EVENT, event_values("score", event, utc_now()))

    def save_score(
        self,
        call_id: str,
        score: Mapping[str, Any],
        *,
        model_version: str,
        drift_features: Mapping[str, float | None] | None = None,
    ) -> None:
        """Store the latest audio score of a call: the whole dict, its flag and
        p_prank/p_ghost, and the watched features it was scored from (``drift_features``,
        for :meth:`drift_calls`)."""
        data = check_score(score)
        watched = check_drift_features(drift_features)
        flag = data.get("flag")
        if flag is not None and not isinstance(flag, str):
            raise InvalidParameterError(f"score flag must be a string; got {type(flag).__name__}")
        p_prank = probability(data, "prank")
        p_ghost = probability(data, "ghost")
        with self._session(write=True) as session:
            row = call_row(session, call_id, lock=True)
            row.score = data
            row.flag = flag
            row.p_prank = p_prank
            row.p_ghost = p_ghost
            row.model_version = model_version
            row.scored_at = utc_now()
            row.drift_features = watched
            kind, event = score_event(call_id, row.caller_id, data)
            session.add(Event(**event_values(kind, event, row.scored_at)))

    def set_disposition(
        self, call_id: str, *, label: str, note: str | None, actor: str
    ) -> tuple[CallRecord, bool]:
        """Record the call-taker's outcome of a call; it becomes the call's label.

        Returns
        -------
        (CallRecord, bool)
            The call, and whether anything changed. Repeating the same label and note
            changes nothing and writes no audit entry; a change is audited with the
            label before and after.
        """
        if label not in LABELS:
            raise InvalidParameterError(
                f"unknown label {label!r}; expected one of {', '.join(LABELS)}"
            )
        if note is not None and not isinstance(note, str):
            raise InvalidParameterError(f"note must be a string; got {type(note).__name__}")
        if note is not None:
            check_text("note", note)
        check_actor(actor)
        with self._session(write=True) as session:
            row = call_row(session, call_id, lock=True)
            if row.label == label and row.label_note == note:
                return call_record(row), False
            now = utc_now()
            before = {"label": row.label, "note": row.label_note, "label_at": iso(row.label_at)}
            row.label = label
            row.label_note = note
            row.label_at = now
            row.label_by = actor_key_id(actor)
            after = {"label": label, "note": note, "label_at": iso(now)}
            session.add(audit_row(actor, "call.disposition", "call", call_id, before, after))
            event = {"call_id": call_id, "caller_id": row.caller_id, **after}
            session.add(Event(**event_values("disposition", event, now)))
            session.flush()
            return call_record(row), True
