"""The service's tables (SQLAlchemy 2 ORM) and its engine.

The schema itself is created only by the Alembic migrations in ``api/migrations``;
these classes must stay in step with them. Times are stored in UTC on both engines;
each call's original UTC offset is kept in ``calls.utc_offset_s``.
"""

from __future__ import annotations

import json
import os
import re
from contextvars import ContextVar
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool
from sqlalchemy.types import TypeDecorator

from classifier.callrow import CALL_ID_MAX, CALLER_ID_MAX
from classifier.errors import InvalidParameterError

#: Seconds of the database timeout an HTTP request already spent checking its API key
#: (set by api.deps.get_principal): the store gives the request's later database calls
#: only the rest, so a hung database answers the whole request within the timeout.
_REQUEST_DB_SPENT: ContextVar[float] = ContextVar("callsift_request_db_spent", default=0.0)


def request_db_spent() -> float:
    """Seconds of the database timeout the current HTTP request has spent already."""
    return _REQUEST_DB_SPENT.get()


def spend_request_db(seconds: float) -> None:
    """Count ``seconds`` of database waiting against the current HTTP request."""
    _REQUEST_DB_SPENT.set(_REQUEST_DB_SPENT.get() + max(0.0, seconds))


#: Longest server instance name and worker id of a stream lease.
INSTANCE_MAX = 200
WORKER_MAX = 64

#: Characters no text column can hold: NUL (PostgreSQL refuses it in text and varchar)
#: and lone surrogates (they have no UTF-8 form, so neither driver can send them).
_REFUSED_TEXT = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text on either database, or None when it can.

    The one check of every free text the service stores (notes, metadata, key names),
    so that SQLite and PostgreSQL accept and refuse the same values. The reason never
    quotes the value.
    """
    found = _REFUSED_TEXT.search(value)
    if found is None:
        return None
    char = found.group()
    if char == "\x00":
        return "contains the NUL character (U+0000), which the database cannot store"
    return (
        f"contains a lone surrogate (U+{ord(char):04X}), which is not valid Unicode text "
        "and cannot be stored"
    )


def escape_refused_text(value: str) -> str:
    """``value`` with each character :func:`text_problem` refuses written as an escape
    (``\\x00``, ``\\ud800``): for records of what happened, such as audit entries, which
    are kept rather than refused."""
    return _REFUSED_TEXT.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), value)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC.

    SQLite keeps no offset at all, so values are converted to UTC on the way in and
    marked UTC on the way out; PostgreSQL (timestamptz) gets the same treatment so both
    engines hand back identical values.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidParameterError(
                f"timestamp {value.isoformat()} has no UTC offset; expected an aware datetime"
            )
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: Constraint names, fixed so the migrations and these classes name things alike.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """The one declarative base of the service's tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Call(Base):
    """One call, from arrival to disposition."""

    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_caller_started", "caller_id", "started_at"),
        # The console polls the newest calls; the dashboard reads a window of days.
        Index("ix_calls_created_at", "created_at"),
        Index("ix_calls_started_at", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(CALL_ID_MAX), unique=True, nullable=False)
    caller_id: Mapped[str] = mapped_column(String(CALLER_ID_MAX), nullable=False, index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    utc_offset_s: Mapped[int] = mapped_column(Integer, nullable=False)
    # "metadata" is reserved on declarative classes, hence the attribute name.
    meta: Mapped[dict[str, str]] = mapped_column("metadata", JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    duration_s: Mapped[float | None] = mapped_column(Float)
    audio_sha256: Mapped[str | None] = mapped_column(String(64))
    audio_file: Mapped[str | None] = mapped_column(Text)
    caller_channel: Mapped[str | None] = mapped_column(String(8))
    pre_score: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    score: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    flag: Mapped[str | None] = mapped_column(String(32))
    p_prank: Mapped[float | None] = mapped_column(Float)
    p_ghost: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[str | None] = mapped_column(String(128))
    scored_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The watched features (classifier.drift.MONITORED_FEATURES) of the latest audio
    # score, for the drift of the calls scored against the model's training calls.
    drift_features: Mapped[dict[str, float | None] | None] = mapped_column(JSON)
    label: Mapped[str | None] = mapped_column(String(32))
    label_note: Mapped[str | None] = mapped_column(Text)
    label_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    label_by: Mapped[int | None] = mapped_column(Integer)
    history_weight: Mapped[float] = mapped_column(Float, nullable=False, default=1.0)


class Review(Base):
    """A supervisor's decision about a number."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    caller_id: Mapped[str] = mapped_column(String(CALLER_ID_MAX), nullable=False, index=True)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    by_key_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(256), nullable=False)


class ApiKey(Base):
    """An API key: only its prefix and hash, never the token."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    role: Mapped[str] = mapped_column(String(32), nullable=False)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[int | None] = mapped_column(Integer)


class StreamLease(Base):
    """One open live stream, held by one worker process of one server.

    The cross-process guard of the live streams (:mod:`api.leases`): the primary key
    gives a call one stream across every worker and replica, and the rows of a server
    count its streams against its ``stream_max``. A lease whose ``heartbeat_at`` is
    older than the lease timeout belongs to a dead process and counts as free.
    """

    __tablename__ = "stream_leases"
    # The claim counts a server's leases.
    __table_args__ = (Index("ix_stream_leases_instance", "instance"),)

    call_id: Mapped[str] = mapped_column(String(CALL_ID_MAX), primary_key=True)
    instance: Mapped[str] = mapped_column(String(INSTANCE_MAX), nullable=False)
    worker: Mapped[str] = mapped_column(String(WORKER_MAX), nullable=False)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class Event(Base):
    """One pushed update (a new call, a score, a disposition, a review): the outbox
    of ``GET /v1/events``, written in the transaction of the change it reports, so that
    every worker and replica reads the same events in ``id`` order (:mod:`api.events`)."""

    __tablename__ = "events"
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 (SQLAlchemy's own form)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)


class EventToken(Base):
    """A short-lived, one-use token that opens an event stream for an API key's holder
    (a browser's EventSource cannot send the key in a header). Only its hash is kept."""

    __tablename__ = "event_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[int] = mapped_column(Integer, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """One line of the append-only audit log (triggers refuse UPDATE and DELETE)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    actor: Mapped[str] = mapped_column(String(256), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    target_type: Mapped[str] = mapped_column(String(64), nullable=False)
    target_id: Mapped[str] = mapped_column(String(256), nullable=False)
    before: Mapped[Any | None] = mapped_column(JSON)
    after: Mapped[Any | None] = mapped_column(JSON)


def _json_default(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_dumps(value: object) -> str:
    """JSON text of ``value``; datetimes become ISO 8601 strings."""
    return json.dumps(value, default=_json_default, ensure_ascii=False)


def make_engine(url: str, *, pool_timeout_s: float = 2.0) -> Engine:
    """An engine for ``url`` (SQLite or PostgreSQL) with callsift's settings.

    Parameters
    ----------
    url : str
        SQLAlchemy URL, e.g. ``sqlite:///runs/callsift.db`` or
        ``postgresql+psycopg://postgres@127.0.0.1:5432/test``.
    pool_timeout_s : float, keyword-only
        Longest wait of one database call, at each step: for a pooled connection, for
        the PostgreSQL connect, and for each statement (PostgreSQL ``statement_timeout``
        and ``lock_timeout`` of every connection; SQLite's busy timeout). A database
        that hangs (a table locked, a stuck statement) then fails the call as an
        unreachable one does, instead of holding the request.

    Returns
    -------
    Engine
        With ``pool_pre_ping`` for PostgreSQL; for SQLite WAL, foreign keys,
        ``check_same_thread=False``
        and explicit ``BEGIN`` (write sessions use ``BEGIN IMMEDIATE``, see
        :data:`SQLITE_WRITE_OPTIONS`). Statement parameters never appear in its errors
        (``hide_parameters``): they hold notes and phone numbers, and errors are logged.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        memory = database in ("", ":memory:") or database.startswith("file::memory:")
        if not memory:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = {
            # timeout: SQLite's busy timeout, the wait for another process's write lock.
            "connect_args": {"check_same_thread": False, "timeout": pool_timeout_s},
            "json_serializer": json_dumps,
        }
        if memory:
            kwargs["poolclass"] = StaticPool
        else:
            kwargs["pool_timeout"] = pool_timeout_s
        # No pre-ping: a local file has no connection to lose, and the ping was one more
        # statement on every call.
        engine = create_engine(url, pool_pre_ping=False, hide_parameters=True, **kwargs)
        _configure_sqlite(engine, wal=not memory)
        return engine
    if backend == "postgresql":
        connect_timeout = max(1, round(pool_timeout_s))
        engine = create_engine(
            url,
            pool_pre_ping=True,
            pool_timeout=pool_timeout_s,
            connect_args={"connect_timeout": connect_timeout},
            json_serializer=json_dumps,
            hide_parameters=True,
        )
        _configure_postgresql(engine, statement_timeout_s=pool_timeout_s)
        return engine
    raise InvalidParameterError(
        f"unsupported database {backend!r} in DATABASE_URL; expected sqlite or postgresql"
    )


def postgresql_timeout_ms(seconds: float) -> int:
    """A timeout in PostgreSQL's unit (ms); at least 1, as 0 turns it off."""
    return max(1, round(seconds * 1000))


def _configure_postgresql(engine: Engine, *, statement_timeout_s: float) -> None:
    timeout_ms = postgresql_timeout_ms(statement_timeout_s)

    @event.listens_for(engine, "do_connect")
    def _name(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        # pg_stat_activity then says which process holds a connection (one per worker
        # of ``callsift serve --workers N``), unless the URL names it otherwise.
        cparams.setdefault("application_name", f"callsift[{os.getpid()}]")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # For the session, outside any transaction: a statement waiting on a lock or
        # running longer than this is cancelled (an OperationalError, so the request
        # degrades as if the database were unreachable), and the connection stays usable.
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute(
                    f"SET statement_timeout = {timeout_ms}; SET lock_timeout = {timeout_ms}"
                )
        finally:
            dbapi_connection.autocommit = autocommit


#: Execution options of write sessions: on SQLite take the write lock at BEGIN, so a
#: read-then-write transaction never fails half-way on a concurrent writer.
SQLITE_WRITE_OPTIONS: dict[str, str] = {"callsift_sqlite_begin": "IMMEDIATE"}


def _configure_sqlite(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy emit BEGIN itself (the sqlite3 driver's legacy mode skips it for
        # SELECT and DDL, breaking transactional migrations and read consistency).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if wal:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("callsift_sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")
