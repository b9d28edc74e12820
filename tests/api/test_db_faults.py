"""Faults of the database and of the disk (issue 19, findings 2 and 3), on PostgreSQL.

For each fault: what the client is told, that nothing acknowledged is lost, and that the
service recovers by itself.

- **Hung**: a second connection holds ``LOCK TABLE calls IN ACCESS EXCLUSIVE MODE``.
  Every kind of request is answered within ``CALLSIFT_DB_TIMEOUT_S`` + 1 s, as when the
  database is unreachable: a call is scored without history (``stored: false``), a
  recording of a call this server saw is scored and not stored, everything else that
  needs the database gets 503 ``database unavailable; retry later``, ``/readyz`` 503.
- **Unreachable**: a closed port; every backend of the service terminated between
  requests (the pool reconnects).
- **Killed mid-transaction**: the backend of a review that already updated calls and
  inserted its review is terminated while it waits to write the audit entry: 503, none
  of it stored, the next review goes through.
- **Recordings disk full** (a small tmpfs): the upload is refused with the reason, the
  call row unchanged; once space is freed the same upload is stored.
- **A worker killed** (SIGKILL) during a slow request of ``callsift serve --workers 2``:
  the supervisor starts another, the other worker serves meanwhile, every acknowledged
  call is stored, the killed request's transaction left nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from api.main import create_app
from api.security import ROLES
from api.store import Store
from tests.api.conftest import fresh_pg_schema
from tests.api.test_app_calls import (
    UNREACHABLE_PG,
    WITA,
    Env,
    make_settings,
    new_call_id,
    new_number,
    preloaded_holder,
    running_env,
    wav,
)
from tests.serve import START_TIMEOUT_S, free_port, stop

TIMEOUT_S = 2.0
#: The answer every request must get while the database hangs.
BOUND_S = TIMEOUT_S + 1.0
UNAVAILABLE = "database unavailable; retry later"
CALLSIFT = str(Path(sys.executable).with_name("callsift"))

Answer = tuple[int, Any, float]


# --- helpers -------------------------------------------------------------------------


def _pg_connect(url: str, *, autocommit: bool = True) -> psycopg.Connection[Any]:
    """A connection of the test's own to the service's schema."""
    u = make_url(url)
    return psycopg.connect(
        host=u.host,
        port=u.port,
        dbname=u.database,
        user=u.username,
        options=str(u.query["options"]),
        autocommit=autocommit,
    )


@contextmanager
def _locked(
    url: str, statement: str, *, at_most_s: float = 20.0
) -> Iterator[psycopg.Connection[Any]]:
    """Hold ``statement``'s lock in an open transaction until the block ends, or for
    ``at_most_s`` (so that requests that wait without bound fail the test, not hang it)."""
    conn = _pg_connect(url, autocommit=False)
    conn.execute(statement)
    release = threading.Timer(at_most_s, conn.rollback)
    release.start()
    try:
        yield conn
    finally:
        release.cancel()
        conn.rollback()
        conn.close()


def _blocked_by(url: str, locker: psycopg.Connection[Any], query_like: str) -> tuple[int, str]:
    """(pid, application_name) of the backend waiting on ``locker``'s lock whose query
    matches ``query_like``; waits up to 10 s for it."""
    deadline = time.monotonic() + 10
    with _pg_connect(url) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT pid, application_name FROM pg_stat_activity "
                "WHERE %s = ANY(pg_blocking_pids(pid)) AND query ILIKE %s LIMIT 1",
                (locker.info.backend_pid, query_like),
            ).fetchone()
            if row is not None:
                return int(row[0]), str(row[1])
            time.sleep(0.01)
    pytest.fail(f"no request waited on the lock ({query_like})")


@contextmanager
def _pg_env(tmp: Path) -> Iterator[tuple[Env, str]]:
    """The app on a fresh PostgreSQL schema with CALLSIFT_DB_TIMEOUT_S=2; its
    connections carry a name of their own, to find (and terminate) them."""
    with fresh_pg_schema() as base:
        name = f"faults-{uuid.uuid4().hex[:8]}"
        url = f"{base}&application_name={name}"
        settings = make_settings(url, tmp, db_timeout_s=TIMEOUT_S)
        app = create_app(settings, models=preloaded_holder())
        with TestClient(app, raise_server_exceptions=False) as client:
            store = app.state.runtime.store
            keys = {r: store.create_key(role=r, name=f"faults {r}", actor="cli")[0] for r in ROLES}
            yield Env(app=app, client=client, store=store, keys=keys, tmp=tmp), name


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Env, str]]:
    with _pg_env(tmp_path_factory.mktemp("faults-pg")) as running:
        yield running


def _timed(call: Callable[[], httpx.Response]) -> Answer:
    start = time.monotonic()
    response = call()
    elapsed = time.monotonic() - start
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return response.status_code, body, elapsed


def _every_kind(env: Env, known: dict[str, Any]) -> dict[str, Callable[[], httpx.Response]]:
    """One request of each kind, about ``known`` (a call this server registered)."""
    call_id, number = known["call_id"], known["request"]["caller_id"]
    c = env.client
    sup = env.auth("supervisor")
    arrival = {
        "call_id": new_call_id(),
        "caller_id": number,
        "started_at": datetime.now(WITA).isoformat(),
    }
    return {
        "create call": lambda: c.post("/v1/calls", json=arrival, headers=env.auth()),
        "upload audio": lambda: env.upload(call_id, wav(seed=3)),
        "disposition": lambda: c.post(
            f"/v1/calls/{call_id}/disposition", json={"label": "ghost"}, headers=env.auth()
        ),
        "review": lambda: c.post(
            f"/v1/numbers/{number}/review", json={"action": "confirm_ghost"}, headers=sup
        ),
        "list calls": lambda: c.get("/v1/calls", headers=env.auth()),
        "flagged numbers": lambda: c.get("/v1/numbers/flagged", headers=sup),
        "get call": lambda: c.get(f"/v1/calls/{call_id}", headers=env.auth()),
        "readyz": lambda: c.get("/readyz"),
    }


def _all_at_once(requests: dict[str, Callable[[], httpx.Response]], times: int) -> list[Any]:
    """Each request ``times`` times, all concurrently: (kind, status, body, seconds)."""
    jobs = [(kind, call) for kind, call in requests.items() for _ in range(times)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(pool.map(lambda job: (job[0], *_timed(job[1])), jobs))
    return answers


def _check_degraded(answers: list[Any], *, readyz: str) -> None:
    """The documented answers of a database that cannot serve, each within the bound."""
    wrong = []
    for kind, status, body, elapsed in answers:
        if elapsed > BOUND_S:
            wrong.append(f"{kind}: {elapsed:.2f} s")
        if kind == "create call":
            ok = status == 200 and body["history_unavailable"] and body["stored"] is False
        elif kind == "upload audio":
            ok = status == 200 and body["history_unavailable"] and body["stored"] is False
        elif kind == "readyz":
            ok = status == 503 and body["database"] == readyz
        else:
            ok = status == 503 and body == {"detail": UNAVAILABLE}
        if not ok:
            wrong.append(f"{kind}: {status} {body}")
    assert wrong == [], wrong


def _snapshot(env: Env, calls: list[dict[str, Any]]) -> dict[str, Any]:
    number = calls[0]["request"]["caller_id"]
    sup = env.auth("supervisor")
    return {
        "calls": [env.get_call(c["call_id"]).json() for c in calls],
        "reviews": env.client.get(f"/v1/numbers/{number}", headers=sup).json()["reviews"],
    }


def _acknowledged(env: Env) -> list[dict[str, Any]]:
    """Two calls of one number with dispositions and a review: what must survive."""
    number = new_number()
    start = datetime.now(WITA) - timedelta(hours=1)
    calls = [
        env.register(caller_id=number, started_at=start + timedelta(minutes=i)) for i in (0, 1)
    ]
    for call in calls:
        r = env.client.post(
            f"/v1/calls/{call['call_id']}/disposition", json={"label": "prank"}, headers=env.auth()
        )
        assert r.status_code == 200, r.text
    r = env.client.post(
        f"/v1/numbers/{number}/review", json={"action": "confirm_prank"}, headers=env.auth("admin")
    )
    assert r.status_code == 200, r.text
    return calls


# --- hung ------------------------------------------------------------------------------


def test_a_hung_database_answers_every_request_within_the_timeout(
    pg: tuple[Env, str],
) -> None:
    env, _ = pg
    calls = _acknowledged(env)
    before = _snapshot(env, calls)
    requests = _every_kind(env, calls[1])
    with _locked(env.store.url, "LOCK TABLE calls IN ACCESS EXCLUSIVE MODE"):
        # Three of each at once: more than the pool's 15 connections wait on the lock.
        answers = _all_at_once(requests, times=3)
    _check_degraded(answers, readyz="timeout")
    slowest = max(a[3] for a in answers)
    assert slowest > TIMEOUT_S * 0.9  # they did wait on the lock, as long as allowed

    # Released: back at once, without a restart, and nothing acknowledged was lost.
    assert _snapshot(env, calls) == before
    ready = env.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    for kind in ("create call", "disposition", "review", "upload audio"):
        status, body, elapsed = _timed(requests[kind])
        assert status == 200 and elapsed < BOUND_S, (kind, status, body)
    assert env.get_call(calls[1]["call_id"]).json()["label"] == "ghost"


def test_a_locked_sqlite_file_answers_every_request_within_the_timeout(tmp_path: Path) -> None:
    # Another process holds SQLite's write lock: reads go on (WAL), writes wait for the
    # busy timeout and degrade. One request at a time: on SQLite a call's arrival runs
    # on the event loop (docs/api.md: one worker per SQLite file).
    timeout_s = 1.0
    with running_env("sqlite", tmp_path, db_timeout_s=timeout_s) as env:
        calls = _acknowledged(env)
        before = _snapshot(env, calls)
        requests = _every_kind(env, calls[1])
        holder = sqlite3.connect(tmp_path / "callsift.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            answers = [(kind, *_timed(call)) for kind, call in requests.items()]
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        wrong = []
        for kind, status, body, elapsed in answers:
            if kind in ("create call", "upload audio"):
                ok = status == 200 and body["stored"] is False and not body["history_unavailable"]
            elif kind == "readyz":
                ok = status == 503 and body["database"] == "timeout"
            elif kind in ("disposition", "review"):
                ok = status == 503 and body == {"detail": UNAVAILABLE}
            else:
                ok = status == 200  # reads are not blocked by a writer
            if not ok or elapsed > timeout_s + 1:
                wrong.append(f"{kind}: {status} {elapsed:.2f} s {body}")
        assert wrong == [], wrong
        assert _snapshot(env, calls) == before
        for kind in ("create call", "upload audio", "disposition", "review", "readyz"):
            status, body, _ = _timed(requests[kind])
            assert status == 200, (kind, status, body)


# --- unreachable -----------------------------------------------------------------------


def test_an_unreachable_database_answers_every_request_within_the_timeout(
    pg: tuple[Env, str],
) -> None:
    env, _ = pg
    known = env.register()
    runtime = env.app.state.runtime
    good = runtime.store
    down = Store(UNREACHABLE_PG, data_dir=env.tmp / "down", pool_timeout_s=TIMEOUT_S)
    runtime.store = down
    try:
        answers = _all_at_once(_every_kind(env, known), times=1)
    finally:
        runtime.store = good
        down.dispose()
    _check_degraded(answers, readyz="unreachable")
    assert env.client.get("/readyz").status_code == 200


def test_terminated_connections_are_replaced_by_themselves(pg: tuple[Env, str]) -> None:
    env, name = pg
    calls = _acknowledged(env)  # the pool holds connections now
    before = _snapshot(env, calls)
    with _pg_connect(env.store.url) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (name,),
        ).fetchall()
    assert killed and all(ok for (ok,) in killed)
    # Every request after it goes through: the pool's ping finds the dead connections.
    assert _snapshot(env, calls) == before
    requests = _every_kind(env, calls[0])
    for kind in ("create call", "upload audio", "disposition", "review", "readyz"):
        status, body, _ = _timed(requests[kind])
        assert status == 200, (kind, status, body)


# --- killed mid-transaction ------------------------------------------------------------


def test_a_transaction_killed_half_way_leaves_nothing(pg: tuple[Env, str]) -> None:
    env, name = pg
    calls = _acknowledged(env)
    number = calls[0]["request"]["caller_id"]
    before = _snapshot(env, calls)
    audit = env.client.get("/v1/audit", headers=env.auth("admin")).json()["entries"]
    clear = {"action": "clear"}
    sup = env.auth("supervisor")
    with (
        _locked(env.store.url, "LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE") as locker,
        ThreadPoolExecutor(1) as pool,
    ):
        # The clear sets the number's history weights to 0 and inserts the review, then
        # waits here to write its audit entry; its backend is terminated there.
        answer = pool.submit(
            _timed, lambda: env.client.post(f"/v1/numbers/{number}/review", json=clear, headers=sup)
        )
        pid, app = _blocked_by(env.store.url, locker, "INSERT INTO audit_log%")
        assert app == name
        with _pg_connect(env.store.url) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        status, body, elapsed = answer.result()
    assert status == 503 and body == {"detail": UNAVAILABLE}, body
    assert elapsed < BOUND_S
    # None of the transaction is there: weights, review, audit entry.
    assert _snapshot(env, calls) == before
    assert env.client.get("/v1/audit", headers=env.auth("admin")).json()["entries"] == audit
    # The next request goes through.
    again = env.client.post(f"/v1/numbers/{number}/review", json=clear, headers=sup)
    assert again.status_code == 200 and again.json()["cleared_calls"] == 2, again.text
    after = _snapshot(env, calls)
    assert [c["history_weight"] for c in after["calls"]] == [0.0, 0.0]
    assert [r["action"] for r in after["reviews"]] == ["confirm_prank", "clear"]


# --- recordings disk full --------------------------------------------------------------


@contextmanager
def _small_disk(folder: Path, size_kb: int) -> Iterator[Path]:
    folder.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs for a full disk: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    # Unbuffered, and the close inside the suppression: a buffered close on a full disk
    # raised ENOSPC after the loop had stopped.
    with contextlib.suppress(OSError), filler.open("wb", buffering=0) as out:
        while True:
            out.write(b"\0" * 4096)
    return filler


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_recordings_disk_refuses_the_upload_and_keeps_the_call(tmp_path: Path) -> None:
    with _small_disk(tmp_path / "data", 256), running_env("sqlite", tmp_path) as env:
        filler = _fill(tmp_path / "data")
        call = env.register()
        before = env.get_call(call["call_id"]).json()
        refused = env.upload(call["call_id"], wav(seed=11))
        assert refused.status_code == 507, refused.text
        assert "no space left" in refused.json()["detail"]
        assert env.get_call(call["call_id"]).json() == before
        assert not list((tmp_path / "data" / "recordings").glob(".upload-*"))
        filler.unlink()  # space freed: the same upload is stored
        stored = env.upload(call["call_id"], wav(seed=11))
        assert stored.status_code == 200 and stored.json()["stored"] is True, stored.text
        assert env.get_call(call["call_id"]).json()["has_audio"] is True


# --- a worker killed -------------------------------------------------------------------


@contextmanager
def _serve(root: Path, env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``callsift serve --workers 2`` until ready: (base URL, the server process)."""
    full = {**os.environ, "CALLSIFT_LOG_LEVEL": "INFO", **env}
    for unset in ("DATABASE_URL", "CALLSIFT_INSTANCE"):
        full.pop(unset, None)
    port = free_port()
    log = root / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [CALLSIFT, "serve", "--workers", "2", "--port", str(port)],
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while log.read_text().count("Application startup complete") < 2:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield url, proc
    finally:
        stop(proc, timeout_s=15)


def _parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


@pytest.mark.slow
def test_a_worker_killed_mid_request_is_replaced_and_nothing_acknowledged_is_lost(
    tmp_path: Path,
) -> None:
    with fresh_pg_schema() as db_url:
        store = Store(db_url, data_dir=tmp_path / "data")
        store.upgrade()
        key, _ = store.create_key(role="admin", name="faults", actor="cli")
        store.dispose()
        headers = {"X-API-Key": key}
        settings = {"CALLSIFT_DATABASE_URL": db_url, "CALLSIFT_DB_TIMEOUT_S": str(TIMEOUT_S)}
        with _serve(tmp_path, settings) as (url, server):
            http = httpx.Client(base_url=url, headers=headers, timeout=30)
            slow_id = new_call_id()
            first = http.post(
                "/v1/calls",
                json={"call_id": slow_id, "caller_id": new_number(), "started_at": _now()},
            )
            assert first.json()["stored"] is True, first.text

            # Calls keep arriving all along, from another client.
            acknowledged: list[str] = []
            other: list[str] = []
            stop = threading.Event()

            def arrivals() -> None:
                with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
                    while not stop.is_set():
                        call_id = new_call_id()
                        body = {"call_id": call_id, "caller_id": new_number(), "started_at": _now()}
                        try:
                            r = client.post("/v1/calls", json=body)
                        except httpx.TransportError as exc:  # on the killed worker
                            other.append(type(exc).__name__)
                            continue
                        if r.status_code == 200 and r.json()["stored"]:
                            acknowledged.append(call_id)
                        else:
                            other.append(str(r.status_code))
                        time.sleep(0.02)

            writer = threading.Thread(target=arrivals)
            writer.start()
            try:
                with (
                    _locked(db_url, "LOCK TABLE calls IN ACCESS EXCLUSIVE MODE") as locker,
                    ThreadPoolExecutor(1) as pool,
                ):
                    slow = pool.submit(
                        http.post, f"/v1/calls/{slow_id}/disposition", json={"label": "prank"}
                    )
                    _, app = _blocked_by(db_url, locker, "%FOR UPDATE%")
                    worker = int(app.removeprefix("callsift[").removesuffix("]"))
                    assert _parent_of(worker) == server.pid  # a worker of this server
                    os.kill(worker, signal.SIGKILL)
                    with pytest.raises(httpx.TransportError):
                        slow.result()
                # Replaced by the supervisor; the other worker served meanwhile.
                log = tmp_path / "server.log"
                deadline = time.monotonic() + START_TIMEOUT_S
                while "starting another" not in log.read_text() or (
                    log.read_text().count("Application startup complete") < 3
                ):
                    assert time.monotonic() < deadline, log.read_text()
                    assert server.poll() is None, log.read_text()
                    time.sleep(0.2)
                served_after = len(acknowledged)
                time.sleep(0.5)
                assert len(acknowledged) > served_after  # still taking calls
            finally:
                stop.set()
                writer.join()
            assert set(other) <= {"RemoteProtocolError", "ReadError", "200"}, other

            # Every acknowledged call is stored; the killed disposition left nothing.
            with _pg_connect(db_url) as conn:
                stored = {
                    r[0]
                    for r in conn.execute(
                        "SELECT call_id FROM calls WHERE call_id = ANY(%s)", (acknowledged,)
                    )
                }
                labelled = conn.execute(
                    "SELECT label FROM calls WHERE call_id = %s", (slow_id,)
                ).fetchone()
                audited = conn.execute(
                    "SELECT count(*) FROM audit_log WHERE target_id = %s", (slow_id,)
                ).fetchone()
            assert acknowledged and stored == set(acknowledged)
            assert labelled == (None,) and audited == (0,)
            again = http.post(f"/v1/calls/{slow_id}/disposition", json={"label": "prank"})
            assert again.status_code == 200 and again.json()["changed"] is True
            assert http.get("/readyz").status_code == 200
            http.close()


def _now() -> str:
    return datetime.now(UTC).isoformat()


def test_a_key_checked_against_a_hung_database_leaves_the_request_only_the_rest(
    tmp_path: Path,
) -> None:
    """The key's cache entry is stale (CALLSIFT_KEY_CACHE_S passed) but within the offline
    grace: its check waits on the hung database for the whole timeout, then the grace lets
    it through, and the request's own statement gets only what is left (it used to wait
    a second timeout: 2x in all)."""
    with fresh_pg_schema() as url:
        settings = make_settings(url, tmp_path, db_timeout_s=TIMEOUT_S, key_cache_s=0.2)
        app = create_app(settings, models=preloaded_holder())
        with TestClient(app, raise_server_exceptions=False) as client:
            store = app.state.runtime.store
            key = store.create_key(role="supervisor", name="stale", actor="cli")[0]
            headers = {"X-API-Key": key}
            assert client.get("/v1/calls", headers=headers).status_code == 200
            time.sleep(0.3)  # the cache entry is stale now, still within the grace
            with _locked(store.url, "LOCK TABLE api_keys, calls IN ACCESS EXCLUSIVE MODE"):
                status, body, elapsed = _timed(lambda: client.get("/v1/calls", headers=headers))
            assert status == 503, body
            assert elapsed < BOUND_S, elapsed
            assert elapsed > TIMEOUT_S * 0.9  # the key check did wait on the lock
            assert client.get("/v1/calls", headers=headers).status_code == 200
