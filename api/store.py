"""Every database read and write of the scoring service.

:class:`Store` knows nothing about HTTP: it takes and returns plain Python values and
raises :class:`StoreError` subclasses (or :class:`~classifier.errors.InvalidParameterError`
for a bad argument), which the app turns into status codes. Each method is one short
transaction; a method that refuses its input changes nothing.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import math
import os
import random
import re
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from sqlalchemy import bindparam, case, delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import (
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult

from api import security
from api.db import (
    CALL_ID_MAX,
    INSTANCE_MAX,
    SQLITE_WRITE_OPTIONS,
    WORKER_MAX,
    ApiKey,
    AuditEntry,
    Call,
    Event,
    Review,
    StreamLease,
    escape_refused_text,
    make_engine,
    postgresql_timeout_ms,
    request_db_spent,
    text_problem,
)
from classifier.errors import CallsiftError, InvalidParameterError
from classifier.formats import CALLER_CHANNELS, LABELS
from classifier.history import PastCall

logger = logging.getLogger("callsift.api.store")

API_DIR = Path(__file__).resolve().parent
ALEMBIC_INI = API_DIR / "alembic.ini"
MIGRATIONS_DIR = API_DIR / "migrations"

#: What a supervisor can decide about a number.
REVIEW_ACTIONS: tuple[str, ...] = ("confirm_prank", "confirm_ghost", "clear", "watch")
#: Labels whose history weight a "clear" review resets.
FLAGGED_LABELS: tuple[str, ...] = ("prank", "ghost")
#: Columns every exported row starts with (docs/data-format.md), then optional ones.
MANIFEST_COLUMNS: tuple[str, ...] = (
    "call_id",
    "caller_id",
    "started_at",
    "duration_s",
    "audio_path",
    "label",
    "caller_channel",
    "label_at",
)

# Risk of a number (flagged_numbers): confirmed outcomes and flags of unlabelled calls,
# each halving in weight every _RISK_HALF_LIFE_DAYS.
_RISK_HALF_LIFE_DAYS = 30.0
_RISK_WEIGHTS: dict[str, float] = {"prank": 1.0, "ghost": 0.5}
_FLAG_WEIGHTS: dict[str, float] = {"likely": 0.5, "possible": 0.25}
_TREND_DAYS = 7
_EXT = re.compile(r"^[a-z0-9]{1,8}$")
_KEY_ACTOR = re.compile(r"^key:(\d+)(?:\s|$)")
_PG_MIGRATION_LOCK = 0x63_73_69_66_74  # any constant shared by every replica
#: Tries of a stream claim that withdrew from a race for a server's last places.
_CLAIM_ATTEMPTS = 3
_MAX_LIMIT = 1000
#: A call that waited this long for a pooled connection has its statement timeout
#: shortened by the wait (one more round trip; a free connection takes under 1 ms).
_BOUND_AFTER_S = 0.05
#: Tables the readiness check needs writable.
_READY_TABLES = "calls, reviews, api_keys, audit_log"


class StoreError(CallsiftError):
    """A store request that cannot be served."""


class NotFoundError(StoreError):
    """The call, number or key asked for does not exist."""


class ConflictError(StoreError):
    """The request contradicts what is stored (e.g. a call_id reused for another call)."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached (refused, timed out, or went away).

    Attributes
    ----------
    reason : {"unreachable", "timeout"}
        ``timeout``: the database did not answer in time (a statement or a lock wait
        cancelled, no free connection); ``unreachable``: no connection, or it was lost.
    """

    def __init__(self, message: str, *, reason: Literal["unreachable", "timeout"] = "unreachable"):
        super().__init__(message)
        self.reason = reason


class RecordingStorageError(StoreError):
    """A recording could not be written to the recordings folder (read-only, no access)."""


class StorageFullError(RecordingStorageError):
    """No space left (or quota exceeded) for recordings."""


#: What claiming a stream lease found (:meth:`Store.claim_stream`).
StreamClaim = Literal["claimed", "busy", "full"]


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


def _now() -> datetime:
    return datetime.now(UTC)


#: Score fields an event carries (the stored score's own keys).
_EVENT_SCORE_KEYS = ("stage", "flag", "p_prank", "p_ghost", "reasons", "model_version")


def score_event(
    call_id: str, caller_id: str, score: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The pushed update of a call's score (:mod:`api.events`): kind ``flag`` when the
    score flags the call, else ``score``; and its data."""
    flag = score.get("flag")
    kind = "flag" if isinstance(flag, str) and flag != "none" else "score"
    data: dict[str, Any] = {"call_id": call_id, "caller_id": caller_id}
    data.update({k: score.get(k) for k in _EVENT_SCORE_KEYS})
    return kind, data


def _event_values(kind: str, data: Mapping[str, Any], at: datetime) -> dict[str, Any]:
    """A row of the ``events`` outbox, written in the transaction of its change."""
    return {"created_at": at, "kind": kind, "data": _jsonable(dict(data))}


def _aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidParameterError(f"{name} must be a datetime; got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidParameterError(
            f"{name} {value.isoformat()} has no UTC offset; expected e.g. 2025-06-03T19:04:11+08:00"
        )
    return value


def _key_id(actor: str) -> int | None:
    match = _KEY_ACTOR.match(actor)
    return int(match.group(1)) if match else None


def _check_text(name: str, value: str) -> str:
    """``value``, or InvalidParameterError naming ``name`` when neither database can
    store it (:func:`api.db.text_problem`); the message never quotes the value."""
    problem = text_problem(value)
    if problem is not None:
        raise InvalidParameterError(f"{name} {problem}; remove it")
    return value


def _check_metadata(metadata: Mapping[str, str]) -> None:
    if not isinstance(metadata, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise InvalidParameterError("metadata must map strings to strings")
    for key, value in metadata.items():
        if text_problem(key) is not None:
            _check_text("a key of metadata", key)
        # The key is clean here; keys are names such as "trunk", not free text.
        _check_text(f"metadata.{key}" if len(key) <= 64 else "a value of metadata", value)


def _check_actor(actor: str) -> str:
    if not isinstance(actor, str) or not actor or len(actor) > 256:
        raise InvalidParameterError("actor must be a non-empty string of at most 256 characters")
    return _check_text("actor", actor)


def _check_call_id(call_id: str) -> str:
    if not isinstance(call_id, str) or not call_id or len(call_id) > CALL_ID_MAX:
        got = len(call_id) if isinstance(call_id, str) else type(call_id).__name__
        raise InvalidParameterError(f"call_id must be 1 to {CALL_ID_MAX} characters; got {got}")
    if not call_id.isprintable():
        raise InvalidParameterError("call_id must not contain control characters")
    return call_id


def _check_caller_id(caller_id: str) -> str:
    # The manifest module pulls in pandas; only pay for it when a call is registered.
    from classifier.manifest import caller_id_problem

    if not isinstance(caller_id, str):
        raise InvalidParameterError(f"caller_id must be a string; got {type(caller_id).__name__}")
    problem = caller_id_problem(caller_id)
    if problem is not None:
        # The message quotes the value; it is refused, so it is not a stored number.
        raise InvalidParameterError(f"caller_id {problem}")
    return caller_id


def _check_lease_owner(instance: str, worker: str) -> None:
    for name, value, most in (("instance", instance, INSTANCE_MAX), ("worker", worker, WORKER_MAX)):
        if not isinstance(value, str) or not value or len(value) > most:
            raise InvalidParameterError(f"{name} must be 1 to {most} characters")
        _check_text(name, value)


def _check_limit(limit: int, offset: int = 0) -> None:
    if not 1 <= limit <= _MAX_LIMIT:
        raise InvalidParameterError(f"limit must be between 1 and {_MAX_LIMIT}; got {limit}")
    if offset < 0:
        raise InvalidParameterError(f"offset must be 0 or more; got {offset}")


def _check_score(score: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(score, Mapping):
        raise InvalidParameterError(f"score must be a mapping; got {type(score).__name__}")
    return dict(score)


def _check_drift_features(
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


def _probability(score: Mapping[str, Any], label: str) -> float | None:
    value = score.get(f"p_{label}")
    if value is None and isinstance(score.get("probabilities"), Mapping):
        value = score["probabilities"].get(label)
    if value is None:
        return None
    p = float(value)
    if not 0.0 <= p <= 1.0:
        raise InvalidParameterError(f"p_{label} must be within [0, 1]; got {p}")
    return p


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _local(utc: datetime, offset_s: int) -> datetime:
    return utc.astimezone(timezone(timedelta(seconds=offset_s)))


def _write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (a reader never sees half a file,
    and a failed write leaves nothing behind)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _storage_error(exc: OSError) -> RecordingStorageError:
    # The message names the cause, not the server's folders.
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFullError(
            "recording not stored: no space left on the recordings disk "
            "(the call is unchanged); retry after space is freed"
        )
    reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__
    return RecordingStorageError(
        f"recording not stored: the recordings folder cannot be written ({reason}); "
        "the call is unchanged"
    )


def _record(row: Call) -> CallRecord:
    return CallRecord(
        call_id=row.call_id,
        caller_id=row.caller_id,
        started_at=_local(row.started_at, row.utc_offset_s),
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


def _key_dict(row: ApiKey) -> dict[str, Any]:
    return {
        "id": row.id,
        "prefix": row.prefix,
        "role": row.role,
        "name": row.name,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "revoked_at": row.revoked_at,
        "created_by": row.created_by,
    }


def _audit_dict(row: AuditEntry) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": row.at,
        "actor": row.actor,
        "action": row.action,
        "target_type": row.target_type,
        "target_id": row.target_id,
        "before": row.before,
        "after": row.after,
    }


def _jsonable(value: Any) -> Any:
    """Datetimes to ISO text, recursively, so audit before/after read back as stored;
    text a database cannot hold is kept escaped (an audit entry is never lost for it)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        return escape_refused_text(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


#: SQLSTATEs of a statement PostgreSQL cancelled: statement_timeout, lock_timeout.
_PG_TIMEOUT_STATES = frozenset({"57014", "55P03"})


def _unavailable(exc: Exception) -> StoreUnavailableError:
    orig = getattr(exc, "orig", None)
    detail = str(orig or exc).strip().splitlines()
    first = detail[0] if detail else type(exc).__name__
    timed_out = (
        isinstance(exc, PoolTimeoutError)
        or getattr(orig, "sqlstate", None) in _PG_TIMEOUT_STATES
        or "database is locked" in first  # SQLite's busy timeout
    )
    return StoreUnavailableError(
        f"database unavailable: {first}", reason="timeout" if timed_out else "unreachable"
    )


def _refused_value(exc: DataError) -> InvalidParameterError:
    # Input the checks above let through and the database refused (a DataError is about
    # the values sent): the request's fault, so 422, not 500. Its message may quote the
    # value, so only the SQLSTATE is logged and the client gets no driver text.
    logger.warning(
        "database refused a value", extra={"sqlstate": getattr(exc.orig, "sqlstate", None)}
    )
    return InvalidParameterError(
        "the database refused a value of this request as invalid; check the fields' "
        "characters, types and lengths"
    )


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


class _DriverStatement:
    """A hot-path statement compiled once and run straight on the SQLite driver.

    SQLAlchemy's execution layer costs about 60 us per statement on top of the 10 us
    SQLite takes to run it (measured). The values go through the columns' own type
    processors both ways, so what is stored and read back is exactly what SQLAlchemy
    would store and read.

    Parameters
    ----------
    statement : Executable
        A Core statement with named bind parameters (qmark dialects only).
    dialect : Dialect
    column_keys : sequence of str or None, keyword-only
        For an INSERT: the columns given, in any order.
    """

    def __init__(
        self, statement: Any, dialect: Any, *, column_keys: Sequence[str] | None = None
    ) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=column_keys)
        if dialect.paramstyle != "qmark" or compiled.positiontup is None:
            raise InvalidParameterError("driver statements need a qmark dialect (SQLite)")
        self.sql = str(compiled)
        self.names: tuple[str, ...] = tuple(compiled.positiontup)
        # dialect_impl: the types as this dialect stores them (e.g. SQLite's DATETIME text).
        self.bind = tuple(
            compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect) for n in self.names
        )
        columns = getattr(compiled.statement, "selected_columns", ())
        self.result = tuple(
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
        )

    def params(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(
            v if f is None else f(v)
            for f, v in zip(self.bind, (values[n] for n in self.names), strict=True)
        )

    def rows(self, cursor: Any) -> list[tuple[Any, ...]]:
        procs = self.result
        return [
            tuple(v if f is None else f(v) for f, v in zip(procs, row, strict=True))
            for row in cursor.fetchall()
        ]


class Store:
    """The service's database.

    Parameters
    ----------
    url : str
        SQLAlchemy URL (SQLite file or PostgreSQL).
    data_dir : Path, keyword-only
        Folder of stored recordings (``<data_dir>/recordings/<sha256>.<ext>``).
    pool_timeout_s : float, keyword-only
        Longest wait of one database call (``CALLSIFT_DB_TIMEOUT_S``): for a connection,
        a lock or a statement (:func:`api.db.make_engine`); past it the call raises
        :class:`StoreUnavailableError` with reason ``timeout``.
    """

    def __init__(self, url: str, *, data_dir: Path, pool_timeout_s: float = 2.0) -> None:
        if pool_timeout_s <= 0:
            raise InvalidParameterError(f"pool_timeout_s must be > 0; got {pool_timeout_s}")
        self.url = url
        self.timeout_s = float(pool_timeout_s)
        self.data_dir = Path(data_dir).resolve()
        self.engine = make_engine(url, pool_timeout_s=pool_timeout_s)
        self._read = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._write = sessionmaker(
            bind=self.engine.execution_options(**SQLITE_WRITE_OPTIONS), expire_on_commit=False
        )
        self._write_engine = self.engine.execution_options(**SQLITE_WRITE_OPTIONS)
        self._sqlite = self.engine.dialect.name == "sqlite"
        self._write_lock = threading.Lock()
        # The per-call statements on SQLite, run on the driver (see _DriverStatement).
        self._driver_inserts: dict[tuple[str, ...], _DriverStatement] = {}
        self._driver_history = (
            _DriverStatement(_HISTORY_QUERY, self.engine.dialect) if self._sqlite else None
        )
        self._driver_event = (
            _DriverStatement(_INSERT_EVENT, self.engine.dialect, column_keys=_EVENT_COLUMNS)
            if self._sqlite
            else None
        )

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is a local SQLite file (statements take ~0.1 ms)."""
        return self._sqlite

    # -- plumbing ---------------------------------------------------------------------

    def _budget(self) -> float:
        """What is left of the timeout for this database call: an HTTP request's key check
        already spent its share (:func:`api.db.request_db_spent`), so that the request's
        database waits together stay within the timeout."""
        left = self.timeout_s - request_db_spent()
        if left <= 0:
            raise StoreUnavailableError(
                f"database unavailable: no answer within {self.timeout_s:g} s",
                reason="timeout",
            )
        return left

    @contextlib.contextmanager
    def _write_turn(self, write: bool, budget: float | None = None) -> Iterator[None]:
        """This process's turn to write to SQLite, waited for at most the timeout.

        SQLite allows one writer: threads that queue on a lock here instead of on the
        database avoid its busy handler, which sleeps and retries (measured: 16
        concurrent clients fell to 87 requests/s with a 1.2 s p99). The wait is bounded
        as the database's own: a writer stuck behind another process's lock must not
        hold every later one without end.
        """
        if not (write and self._sqlite):
            yield
            return
        if not self._write_lock.acquire(timeout=self.timeout_s if budget is None else budget):
            raise StoreUnavailableError(
                f"database unavailable: no turn to write within {self.timeout_s:g} s",
                reason="timeout",
            )
        try:
            yield
        finally:
            self._write_lock.release()

    def _bound(self, conn: Connection, started: float, budget: float | None = None) -> None:
        """Keep one database call within the timeout on PostgreSQL: a call that waited
        for a pooled connection (all busy, e.g. behind a lock), or whose request spent
        part of the timeout on its key check, gets only what is left of it for its
        statements and lock waits, in this transaction."""
        budget = self.timeout_s if budget is None else budget
        waited = time.monotonic() - started
        if self._sqlite or (waited < _BOUND_AFTER_S and budget > self.timeout_s - _BOUND_AFTER_S):
            return
        left = budget - waited
        if left <= 0:
            raise StoreUnavailableError(
                f"database unavailable: no connection within {self.timeout_s:g} s",
                reason="timeout",
            )
        ms = str(postgresql_timeout_ms(left))
        conn.execute(
            text(
                "SELECT set_config('statement_timeout', :ms, true), "
                "set_config('lock_timeout', :ms, true)"
            ),
            {"ms": ms},
        )

    @contextlib.contextmanager
    def _session(self, *, write: bool = False) -> Iterator[Session]:
        factory = self._write if write else self._read
        budget = self._budget()
        started = time.monotonic()
        try:
            with self._write_turn(write, budget), factory() as session, session.begin():
                self._bound(session.connection(), started, budget)
                yield session
        except (OperationalError, InterfaceError, PoolTimeoutError) as exc:
            raise _unavailable(exc) from exc
        except DataError as exc:
            raise _refused_value(exc) from exc

    @contextlib.contextmanager
    def _tx(self, *, write: bool = False) -> Iterator[Connection]:
        """A plain connection in a transaction, for the per-call hot path.

        Same locking, bounds and error mapping as :meth:`_session`, without the ORM
        session, whose setup costs more than the statements it runs.
        """
        engine = self._write_engine if write else self.engine
        budget = self._budget()
        started = time.monotonic()
        try:
            with self._write_turn(write, budget), engine.begin() as conn:
                self._bound(conn, started, budget)
                yield conn
        except (OperationalError, InterfaceError, PoolTimeoutError) as exc:
            raise _unavailable(exc) from exc
        except DataError as exc:
            raise _refused_value(exc) from exc

    @contextlib.contextmanager
    def _driver(self, *, write: bool = False) -> Iterator[Any]:
        """The SQLite driver's own connection from the pool, in autocommit mode.

        For single statements only (each is its own transaction); same write lock and
        error mapping as :meth:`_tx`. The driver's IntegrityError passes through.
        """
        dbapi = self.engine.dialect.dbapi
        assert dbapi is not None
        try:
            with self._write_turn(write):
                pooled = self.engine.raw_connection()
                try:
                    yield pooled.driver_connection
                finally:
                    pooled.close()
        except (dbapi.OperationalError, dbapi.InterfaceError, PoolTimeoutError) as exc:
            raise _unavailable(exc) from exc

    def upgrade(self) -> None:
        """Bring the schema to the latest migration (a no-op when it is there)."""
        from alembic import command
        from alembic.config import Config

        config = Config(str(ALEMBIC_INI))
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        try:
            with self.engine.execution_options(**SQLITE_WRITE_OPTIONS).begin() as conn:
                if conn.dialect.name == "postgresql":
                    # A schema change on a large table may take longer than a request's
                    # statement, and a replica waits here for another's migration.
                    conn.execute(
                        text(
                            "SELECT set_config('statement_timeout', '0', true), "
                            "set_config('lock_timeout', '0', true)"
                        )
                    )
                    # Replicas starting together must not migrate twice.
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK}
                    )
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except (OperationalError, InterfaceError, PoolTimeoutError) as exc:
            raise _unavailable(exc) from exc

    def ping(self) -> bool:
        """True when the database answers a trivial query (within the timeout)."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def readiness(self) -> tuple[Literal["ok", "unreachable", "timeout", "error"], str | None]:
        """Whether a write to the main tables could start now, within the timeout.

        A trivial query is not enough: while a table is locked the database answers
        ``SELECT 1`` at once and every request on that table waits. So this takes, and
        gives back at once, the lock each INSERT or UPDATE takes (PostgreSQL: ROW
        EXCLUSIVE on the main tables, which conflicts only with locks that stop writes;
        SQLite: the write lock), bounded like any statement.

        Returns
        -------
        (status, detail)
            ``ok`` and None; ``unreachable`` or ``timeout`` (no answer in time) with the
            reason; ``error``: the database answered with an error (e.g. the schema is
            not migrated), the driver's text in the log only.
        """
        try:
            if self._sqlite:
                with self._tx(write=True) as conn:  # BEGIN IMMEDIATE: the write lock
                    conn.execute(select(Call.id).limit(1))
            else:
                with self._tx() as conn:
                    conn.execute(text(f"LOCK TABLE {_READY_TABLES} IN ROW EXCLUSIVE MODE"))
        except StoreUnavailableError as exc:
            if exc.reason == "timeout":
                return "timeout", (
                    f"database did not answer within {self.timeout_s:g} s "
                    "(a lock held on a table, or a hung statement)"
                )
            return "unreachable", "database unreachable"
        except SQLAlchemyError as exc:
            first = str(getattr(exc, "orig", None) or exc).splitlines()
            logger.warning("readiness check failed: %s", first[0] if first else type(exc).__name__)
            return "error", "database error (is the schema migrated? callsift db upgrade)"
        return "ok", None

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    # -- calls ------------------------------------------------------------------------

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
        _check_call_id(call_id)
        _check_caller_id(caller_id)
        _aware(started_at, "started_at")
        _check_actor(actor)
        _check_metadata(metadata)
        score = None if pre_score is None else _check_score(pre_score)
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
            "created_at": _now(),
            "history_weight": 1.0,
        }
        if score is not None:
            # Only when given: a None here would be stored as JSON null, not SQL NULL.
            values["pre_score"] = score
            values["model_version"] = model_version
        event = _event_values(
            "call",
            {
                "call_id": call_id,
                "caller_id": caller_id,
                "started_at": started_at.isoformat(),
                **{k: (score or {}).get(k) for k in _EVENT_SCORE_KEYS},
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
            statement = _DriverStatement(_INSERT_CALL, self.engine.dialect, column_keys=keys)
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

    def _call_row(self, session: Session, call_id: str, *, lock: bool = False) -> Call:
        query = select(Call).where(Call.call_id == call_id)
        if lock:
            query = query.with_for_update()
        row = session.execute(query).scalar_one_or_none()
        if row is None:
            raise NotFoundError(f"unknown call_id {call_id!r}: no call was registered with this id")
        return row

    def get_call(self, call_id: str) -> CallRecord:
        """The stored call ``call_id``.

        Raises
        ------
        NotFoundError
        """
        with self._session() as session:
            return _record(self._call_row(session, call_id))

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
        _aware(before, "before")
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
                started_at=_local(started_at, offset_s),
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
        data = _check_score(score)
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
            conn.execute(_INSERT_EVENT, _event_values("score", event, _now()))

    def save_audio(
        self,
        call_id: str,
        data: bytes,
        *,
        ext: str,
        duration_s: float,
        caller_channel: str = "mix",
    ) -> str:
        """Keep a call's recording, content-addressed, and link it to the call.

        Parameters
        ----------
        call_id : str
        data : bytes
            The file as uploaded.
        ext : str, keyword-only
            File extension without the dot (``wav``, ``flac``, ``ogg``), 1 to 8 letters or digits.
        duration_s : float, keyword-only
            Length of the recording, which becomes the call's duration.
        caller_channel : {"mix", "left", "right"}, keyword-only
            Which channel is the caller; exported with the call.

        Returns
        -------
        str
            Absolute path ``<data_dir>/recordings/<sha256>.<ext>``.
        """
        ext = ext.lower().lstrip(".")
        if not _EXT.match(ext):
            raise InvalidParameterError(f"ext must be 1 to 8 letters or digits; got {ext!r}")
        if (
            not isinstance(duration_s, int | float)
            or not math.isfinite(duration_s)
            or duration_s < 0
        ):
            raise InvalidParameterError(
                f"duration_s must be a finite number >= 0; got {duration_s}"
            )
        if caller_channel not in CALLER_CHANNELS:
            choices = ", ".join(CALLER_CHANNELS)
            raise InvalidParameterError(
                f"caller_channel must be one of {choices}; got {caller_channel!r}"
            )
        if not data:
            raise InvalidParameterError("audio data is empty; expected the recording's bytes")
        self.get_call(call_id)  # refuse an unknown call before writing anything
        digest = hashlib.sha256(data).hexdigest()
        path = self.data_dir / "recordings" / f"{digest}.{ext}"
        if not path.exists():
            try:
                _write_file(path, data)
            except OSError as exc:
                raise _storage_error(exc) from exc
        with self._session(write=True) as session:
            row = self._call_row(session, call_id, lock=True)
            row.audio_sha256 = digest
            row.audio_file = str(path)
            row.duration_s = float(duration_s)
            row.caller_channel = caller_channel
        return str(path)

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
        data = _check_score(score)
        watched = _check_drift_features(drift_features)
        flag = data.get("flag")
        if flag is not None and not isinstance(flag, str):
            raise InvalidParameterError(f"score flag must be a string; got {type(flag).__name__}")
        p_prank = _probability(data, "prank")
        p_ghost = _probability(data, "ghost")
        with self._session(write=True) as session:
            row = self._call_row(session, call_id, lock=True)
            row.score = data
            row.flag = flag
            row.p_prank = p_prank
            row.p_ghost = p_ghost
            row.model_version = model_version
            row.scored_at = _now()
            row.drift_features = watched
            kind, event = score_event(call_id, row.caller_id, data)
            session.add(Event(**_event_values(kind, event, row.scored_at)))

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
            _check_text("note", note)
        _check_actor(actor)
        with self._session(write=True) as session:
            row = self._call_row(session, call_id, lock=True)
            if row.label == label and row.label_note == note:
                return _record(row), False
            now = _now()
            before = {"label": row.label, "note": row.label_note, "label_at": _iso(row.label_at)}
            row.label = label
            row.label_note = note
            row.label_at = now
            row.label_by = _key_id(actor)
            after = {"label": label, "note": note, "label_at": _iso(now)}
            session.add(self._audit_row(actor, "call.disposition", "call", call_id, before, after))
            event = {"call_id": call_id, "caller_id": row.caller_id, **after}
            session.add(Event(**_event_values("disposition", event, now)))
            session.flush()
            return _record(row), True

    # -- numbers ----------------------------------------------------------------------

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
        _aware(now, "now")
        _check_limit(limit)
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
            self._number_risk(
                caller_id, rows, now, cleared_at.get(caller_id), latest.get(caller_id)
            )
            for caller_id, rows in by_number.items()
        ]
        ranked = [r for r in ranked if r["risk"] > 0]
        ranked.sort(key=lambda r: (-r["risk"], -r["last_call_at"].timestamp(), r["caller_id"]))
        return ranked[:limit]

    @staticmethod
    def _number_risk(
        caller_id: str,
        rows: Sequence[Any],
        now: datetime,
        cleared_at: datetime | None,
        review: Review | None,
    ) -> dict[str, Any]:
        risk = 0.0
        pranks = ghosts = flagged = recent = previous = 0
        for r in rows:
            age_days = max(0.0, (now - r.started_at).total_seconds() / 86400.0)
            decay = 0.5 ** (age_days / _RISK_HALF_LIFE_DAYS)
            if r.label in _RISK_WEIGHTS:
                risk += _RISK_WEIGHTS[r.label] * r.history_weight * decay
                if r.history_weight > 0:
                    if r.label == "prank":
                        pranks += 1
                    else:
                        ghosts += 1
            elif r.label is None and r.flag and r.flag != "none":
                if cleared_at is None or r.started_at > cleared_at:
                    flagged += 1
                    level = r.flag.split("_", 1)[0]
                    risk += _FLAG_WEIGHTS.get(level, _FLAG_WEIGHTS["possible"]) * decay
            if age_days <= _TREND_DAYS:
                recent += 1
            elif age_days <= 2 * _TREND_DAYS:
                previous += 1
        last = rows[-1]
        trend = "rising" if recent > previous else "falling" if recent < previous else "steady"
        return {
            "caller_id": caller_id,
            "calls": len(rows),
            "pranks": pranks,
            "ghosts": ghosts,
            "flagged": flagged,
            "last_call_at": _local(last.started_at, last.utc_offset_s),
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
        _check_text("caller_id", caller_id)
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
            "calls": [_record(c).as_dict() for c in calls],
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
            _aware(until, "until")
            if action != "watch":
                raise InvalidParameterError(f"until applies to action 'watch' only; got {action!r}")
        if note is not None and not isinstance(note, str):
            raise InvalidParameterError(f"note must be a string; got {type(note).__name__}")
        if note is not None:
            _check_text("note", note)
        _check_text("caller_id", caller_id)
        _check_actor(actor)
        at = _now() if now is None else _aware(now, "now")
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
                "review": None if previous is None else _jsonable(_review_dict(previous))
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
                by_key_id=_key_id(actor),
                actor=actor,
            )
            session.add(review)
            session.flush()
            result = _review_dict(review)
            after = {"review": _jsonable(result), **after}
            session.add(
                self._audit_row(actor, "number.review", "number", caller_id, before, after, at=at)
            )
            event = {**_jsonable(result), "cleared_calls": len(cleared)}
            session.add(Event(**_event_values("review", event, at)))
        result["cleared_calls"] = len(cleared)
        return result

    # -- export -----------------------------------------------------------------------

    def export_labelled(
        self, *, since: datetime | None, require_audio: bool = True
    ) -> list[dict[str, str]]:
        """Dispositioned calls as manifest rows (docs/data-format.md), oldest disposition first.

        Parameters
        ----------
        since : datetime or None, keyword-only
            Only calls dispositioned at or after this time.
        require_audio : bool, keyword-only
            Leave out calls whose recording never arrived (a manifest row needs audio).

        Returns
        -------
        list of dict of str to str
            Columns :data:`MANIFEST_COLUMNS` (``started_at`` in the call's own offset,
            ``audio_path`` absolute), then the call's metadata keys that do not clash.
        """
        if since is not None:
            _aware(since, "since")
        query = select(Call).where(Call.label.is_not(None))
        if since is not None:
            query = query.where(Call.label_at >= since)
        if require_audio:
            query = query.where(Call.audio_file.is_not(None))
        query = query.order_by(Call.label_at, Call.id)
        with self._session() as session:
            rows = session.execute(query).scalars().all()
        out: list[dict[str, str]] = []
        for r in rows:
            row = {
                "call_id": r.call_id,
                "caller_id": r.caller_id,
                "started_at": _local(r.started_at, r.utc_offset_s).isoformat(),
                "duration_s": repr(float(r.duration_s or 0.0)),
                "audio_path": r.audio_file or "",
                "label": r.label or "",
                "caller_channel": r.caller_channel or "mix",
                "label_at": _iso(r.label_at) or "",
            }
            for key, value in (r.meta or {}).items():
                row.setdefault(key, value)
            out.append(row)
        return out

    # -- live stream leases -----------------------------------------------------------

    def _lease_clock(self, lease_s: float) -> tuple[Any, Any]:
        """Now, and the oldest heartbeat of a live lease, as SQL values.

        PostgreSQL takes its own clock: replicas on several hosts then compare heartbeats
        on one clock, whatever their own drift. A SQLite file has one host.
        """
        if self._sqlite:
            now = _now()
            return now, now - timedelta(seconds=lease_s)
        return func.now(), func.now() - timedelta(seconds=lease_s)

    def claim_stream(
        self, call_id: str, *, instance: str, worker: str, limit: int, lease_s: float
    ) -> StreamClaim:
        """Take the lease of a live stream of ``call_id`` for ``worker`` of ``instance``.

        No lock, so that streams opening together never queue for one: the lease is
        inserted, or a stale lease of the call (its heartbeat older than ``lease_s``: its
        process is gone) taken over, in one statement; the primary key settles two
        claims of one call. Then the server's live leases are counted and, over
        ``limit``, the claim withdraws. Each claim counts after its own commit, so of
        claims racing for the last places the one counting last sees them all: the
        limit is never exceeded. Claims that all withdrew from a race try again after a
        short random pause, so the places left are taken.

        Returns
        -------
        {"claimed", "busy", "full"}
            ``claimed``: the lease is ``worker``'s; ``busy``: the call has a live lease;
            ``full``: the server already holds ``limit`` live leases.

        Raises
        ------
        StoreUnavailableError
        """
        _check_call_id(call_id)
        _check_lease_owner(instance, worker)
        if limit < 1 or lease_s <= 0:
            raise InvalidParameterError(
                f"limit must be >= 1 and lease_s > 0; got {limit}, {lease_s}"
            )
        for attempt in range(_CLAIM_ATTEMPTS):
            if not self._insert_lease(call_id, instance=instance, worker=worker, lease_s=lease_s):
                return "busy"
            held = self._live_leases(instance, lease_s=lease_s)
            if held <= limit:
                return "claimed"
            self.release_stream(call_id, worker=worker)
            if attempt == _CLAIM_ATTEMPTS - 1:
                break
            time.sleep(random.uniform(0.0, 0.01 * (attempt + 1)))
            if self._live_leases(instance, lease_s=lease_s) >= limit:
                break  # full without this claim: not a race
        return "full"

    def _insert_lease(self, call_id: str, *, instance: str, worker: str, lease_s: float) -> bool:
        """Insert ``worker``'s lease of ``call_id``, over a stale one; False if it is live."""
        insert_ = sqlite_insert if self._sqlite else pg_insert
        with self._tx(write=True) as conn:
            now, cutoff = self._lease_clock(lease_s)
            claim = insert_(StreamLease).values(
                call_id=call_id, instance=instance, worker=worker, opened_at=now, heartbeat_at=now
            )
            claim = claim.on_conflict_do_update(
                index_elements=["call_id"],
                set_={
                    "instance": claim.excluded.instance,
                    "worker": claim.excluded.worker,
                    "opened_at": claim.excluded.opened_at,
                    "heartbeat_at": claim.excluded.heartbeat_at,
                },
                where=StreamLease.heartbeat_at < cutoff,
            )
            # RETURNING, not rowcount: through SQLAlchemy, psycopg reports -1 for it.
            return conn.execute(claim.returning(StreamLease.call_id)).first() is not None

    def _live_leases(self, instance: str, *, lease_s: float) -> int:
        """Leases of ``instance`` with a heartbeat younger than ``lease_s``."""
        with self._tx() as conn:
            _, cutoff = self._lease_clock(lease_s)
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(StreamLease)
                    .where(StreamLease.instance == instance, StreamLease.heartbeat_at >= cutoff)
                ).scalar_one()
            )

    def heartbeat_streams(self, worker: str, call_ids: Sequence[str]) -> set[str]:
        """Refresh ``worker``'s leases of ``call_ids`` (one UPDATE); returns the call ids
        it still holds (the others were taken over after going stale)."""
        if not call_ids:
            return set()
        now, _ = self._lease_clock(1.0)
        with self._tx(write=True) as conn:
            rows = conn.execute(
                update(StreamLease)
                .where(StreamLease.worker == worker, StreamLease.call_id.in_(list(call_ids)))
                .values(heartbeat_at=now)
                .returning(StreamLease.call_id)
            )
            return set(rows.scalars())

    def release_stream(self, call_id: str, *, worker: str) -> bool:
        """Drop ``worker``'s lease of ``call_id``; False when it held none (never
        another worker's, which may have taken a stale lease over)."""
        with self._tx(write=True) as conn:
            done = conn.execute(
                delete(StreamLease).where(
                    StreamLease.call_id == call_id, StreamLease.worker == worker
                )
            )
            return bool(done.rowcount)

    def release_worker_streams(self, worker: str) -> int:
        """Drop every lease of ``worker`` (at its shutdown); returns how many."""
        with self._tx(write=True) as conn:
            return int(
                conn.execute(delete(StreamLease).where(StreamLease.worker == worker)).rowcount
            )

    def sweep_streams(self, *, lease_s: float) -> int:
        """Drop the leases of every server whose heartbeat is older than ``lease_s``."""
        _, cutoff = self._lease_clock(lease_s)
        with self._tx(write=True) as conn:
            return int(
                conn.execute(delete(StreamLease).where(StreamLease.heartbeat_at < cutoff)).rowcount
            )

    def stream_leases(self) -> list[dict[str, Any]]:
        """Every lease row (live or stale), oldest first: call_id, instance, worker,
        opened_at, heartbeat_at."""
        with self._tx() as conn:
            rows = conn.execute(
                select(
                    StreamLease.call_id,
                    StreamLease.instance,
                    StreamLease.worker,
                    StreamLease.opened_at,
                    StreamLease.heartbeat_at,
                ).order_by(StreamLease.opened_at, StreamLease.call_id)
            )
            return [dict(r._mapping) for r in rows]

    # -- keys -------------------------------------------------------------------------

    def create_key(
        self, *, role: str, name: str, actor: str, expires_at: datetime | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Make an API key (audited).

        Returns
        -------
        (str, dict)
            The token, which is never stored and cannot be shown again, and the key's
            public info (id, prefix, role, name, created_at, expires_at, revoked_at,
            created_by).
        """
        security.check_role(role)
        if not isinstance(name, str) or not name.strip() or len(name) > 128:
            raise InvalidParameterError("key name must be 1 to 128 characters")
        _check_text("key name", name)
        if expires_at is not None:
            _aware(expires_at, "expires_at")
        _check_actor(actor)
        token = security.generate_token()
        with self._session(write=True) as session:
            row = ApiKey(
                prefix=security.token_prefix(token),
                key_hash=security.hash_token(token),
                role=role,
                name=name.strip(),
                created_at=_now(),
                expires_at=expires_at,
                created_by=_key_id(actor),
            )
            session.add(row)
            session.flush()
            info = _key_dict(row)
            session.add(
                self._audit_row(actor, "key.create", "api_key", str(row.id), None, _jsonable(info))
            )
        return token, info

    def verify_key(self, token: str, *, now: datetime) -> dict[str, Any] | None:
        """The key behind ``token``: ``{"id", "role", "name"}``, or None when it is
        unknown, revoked or expired."""
        _aware(now, "now")
        if not isinstance(token, str) or not security.looks_like_token(token):
            return None
        query = select(
            ApiKey.id,
            ApiKey.key_hash,
            ApiKey.role,
            ApiKey.name,
            ApiKey.expires_at,
            ApiKey.revoked_at,
        ).where(ApiKey.prefix == security.token_prefix(token))
        with self._session() as session:
            rows = session.execute(query).all()
        for r in rows:
            if not security.hash_matches(token, r.key_hash):
                continue
            if r.revoked_at is not None or (r.expires_at is not None and r.expires_at <= now):
                return None
            return {"id": r.id, "role": r.role, "name": r.name}
        return None

    def revoke_key(self, key_id: int, *, actor: str) -> None:
        """Revoke a key at once (audited). Revoking a revoked key changes nothing.

        Raises
        ------
        NotFoundError
        """
        _check_actor(actor)
        with self._session(write=True) as session:
            row = session.execute(
                select(ApiKey).where(ApiKey.id == key_id).with_for_update()
            ).scalar_one_or_none()
            if row is None:
                raise NotFoundError(f"unknown key id {key_id}")
            if row.revoked_at is not None:
                return
            now = _now()
            row.revoked_at = now
            session.add(
                self._audit_row(
                    actor,
                    "key.revoke",
                    "api_key",
                    str(key_id),
                    {"revoked_at": None},
                    {"revoked_at": now.isoformat()},
                )
            )

    def list_keys(self) -> list[dict[str, Any]]:
        """Public info of every key, oldest first (never a hash)."""
        with self._session() as session:
            rows = session.execute(select(ApiKey).order_by(ApiKey.id)).scalars().all()
        return [_key_dict(r) for r in rows]

    # -- audit ------------------------------------------------------------------------

    @staticmethod
    def _audit_row(
        actor: str,
        action: str,
        target_type: str,
        target_id: str,
        before: Any,
        after: Any,
        *,
        at: datetime | None = None,
    ) -> AuditEntry:
        return AuditEntry(
            at=at or _now(),
            actor=actor,
            action=action,
            target_type=target_type,
            # What the entry is about may come from a refused request: kept, escaped.
            target_id=escape_refused_text(target_id),
            before=_jsonable(before),
            after=_jsonable(after),
        )

    def audit(
        self,
        *,
        actor: str,
        action: str,
        target_type: str,
        target_id: str,
        before: Any,
        after: Any,
    ) -> None:
        """Append one entry to the audit log (e.g. a model reload)."""
        _check_actor(actor)
        for name, value in (("action", action), ("target_type", target_type)):
            if not isinstance(value, str) or not value or len(value) > 64:
                raise InvalidParameterError(f"{name} must be 1 to 64 characters")
        if not isinstance(target_id, str) or len(target_id) > 256:
            raise InvalidParameterError("target_id must be a string of at most 256 characters")
        for name, value in (("action", action), ("target_type", target_type)):
            _check_text(name, value)
        with self._session(write=True) as session:
            session.add(self._audit_row(actor, action, target_type, target_id, before, after))

    def audit_entries(self, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Audit entries, newest first."""
        _check_limit(limit, offset)
        with self._session() as session:
            rows = (
                session.execute(
                    select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit).offset(offset)
                )
                .scalars()
                .all()
            )
        return [_audit_dict(r) for r in rows]

    # -- web console ------------------------------------------------------------------

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
        _aware(now, "now")
        _check_limit(limit)
        query = select(Call)
        if since is not None:
            query = query.where(Call.created_at > _aware(since, "since"))
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
                "call": _record(r),
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
        _aware(since, "since")
        _aware(until, "until")
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
                Call.started_at >= _aware(since, "since"), Call.started_at < _aware(until, "until")
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
        _aware(now, "now")
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
                else _local(r.started_at, r.utc_offset_s)
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


def manifest_fieldnames(rows: Sequence[Mapping[str, str]]) -> list[str]:
    """CSV columns for :meth:`Store.export_labelled` rows: the fixed ones, then metadata keys
    in order of first appearance."""
    names = list(MANIFEST_COLUMNS)
    seen = set(names)
    for row in rows:
        for key in row:
            if key not in seen:
                seen.add(key)
                names.append(key)
    return names


def rows_to_csv(rows: Sequence[Mapping[str, str]]) -> str:
    """Manifest CSV text of exported rows (header line even when there are none)."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=manifest_fieldnames(rows), restval="", lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
