"""Databases for the service tests: a SQLite file and a real PostgreSQL schema.

Fixtures (also for the app tests):

- ``store_url``: parametrized ``sqlite`` / ``postgresql``; a fresh, empty database per
  test (a SQLite file under ``tmp_path``, or a new schema ``cs_<hex>`` in the ``test``
  database on 127.0.0.1:5432, dropped afterwards). Not migrated.
- ``data_dir``: a folder for recordings under ``tmp_path``.
- ``store``: a migrated :class:`api.store.Store` on ``store_url``, disposed afterwards.

PostgreSQL tests are skipped when no server answers, unless ``CALLSIFT_REQUIRE_POSTGRES=1``
(set on CI), which turns that into a failure. They carry the mark ``postgres``
(tests/conftest.py); one that opens PostgreSQL without it fails.
"""

from __future__ import annotations

import functools
import getpass
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from api.store import Store
from tests.conftest import current_test_marked

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_DATABASE = "test"
BACKENDS = ("sqlite", "postgresql")


@functools.cache
def postgres_user() -> str | None:
    """The first of ``postgres`` and the OS user that PostgreSQL lets in, or None."""
    import psycopg

    for user in dict.fromkeys(("postgres", getpass.getuser())):
        try:
            with psycopg.connect(
                host=PG_HOST, port=PG_PORT, dbname=PG_DATABASE, user=user, connect_timeout=2
            ):
                return user
        except psycopg.Error:
            continue
    return None


def _require_postgres() -> str:
    if not current_test_marked("postgres"):
        # The fast layer deselects -m postgres: a test that reaches PostgreSQL unmarked
        # would slip into it (add it to tests/conftest.py's POSTGRES_TESTS).
        pytest.fail("this test opens PostgreSQL but is not marked postgres (tests/conftest.py)")
    user = postgres_user()
    if user is None:
        message = f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}/{PG_DATABASE}"
        if os.environ.get("CALLSIFT_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return user


@contextmanager
def fresh_pg_schema() -> Iterator[str]:
    """A new, empty PostgreSQL schema; yields a URL whose search_path is that schema."""
    import psycopg

    user = _require_postgres()
    schema = f"cs_{uuid.uuid4().hex}"
    params = {"host": PG_HOST, "port": PG_PORT, "dbname": PG_DATABASE, "user": user}
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield (
            f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}/{PG_DATABASE}"
            f"?options=-csearch_path%3D{schema}"
        )
    finally:
        with psycopg.connect(**params, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL, once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'callsift.db'}"
        return
    with fresh_pg_schema() as url:
        yield url


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Folder for stored recordings."""
    return tmp_path / "data"


@pytest.fixture
def store(store_url: str, data_dir: Path) -> Iterator[Store]:
    """A migrated store on each backend."""
    s = Store(store_url, data_dir=data_dir)
    s.upgrade()
    try:
        yield s
    finally:
        s.dispose()
