"""The store's connection to its database: the engine and its sessions, the bounds of
every database call, the mapping of database errors, migrations and readiness, and
the raw SQLite driver path of the per-call statements."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import (
    DataError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from api.db import (
    SQLITE_WRITE_OPTIONS,
    Call,
    make_engine,
    postgresql_timeout_ms,
    request_db_spent,
)
from api.store.errors import StoreUnavailableError
from classifier.errors import InvalidParameterError

logger = logging.getLogger("callsift.api.store")

API_DIR = Path(__file__).resolve().parent.parent
ALEMBIC_INI = API_DIR / "alembic.ini"
MIGRATIONS_DIR = API_DIR / "migrations"

_PG_MIGRATION_LOCK = 0x63_73_69_66_74  # any constant shared by every replica
#: A call that waited this long for a pooled connection has its statement timeout
#: shortened by the wait (one more round trip; a free connection takes under 1 ms).
_BOUND_AFTER_S = 0.05
#: Tables the readiness check needs writable.
_READY_TABLES = "calls, reviews, api_keys, audit_log"


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


class DriverStatement:
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


class StoreEngine:
    """The database side of :class:`api.store.Store`, which every part of it builds on.

    Parameters
    ----------
    url : str
    data_dir : Path, keyword-only
    pool_timeout_s : float, keyword-only
        As :class:`api.store.Store`.
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
