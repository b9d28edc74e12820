"""Stream leases on SQLite and PostgreSQL: two apps on one database behave like two worker
processes of one server (or two replicas), and one stream per call and ``stream_max`` per
server hold across them; stale leases are taken over, every end of a stream frees its
lease, and a database outage at open is answered, not crashed on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

import api.routers.stream as stream_router
from api.db import StreamLease
from api.deps import Runtime
from api.leases import CLAIM_WHILE_DOWN
from api.main import create_app
from api.security import ROLES
from api.service import UNKNOWN_WHILE_DOWN
from api.store import Store, StoreUnavailableError
from tests.api.conftest import BACKENDS, fresh_pg_schema
from tests.api.test_app_calls import (
    UNREACHABLE_PG,
    Env,
    make_settings,
    new_call_id,
    preloaded_holder,
)
from tests.api.test_stream import _closed_with, _connect, _frames, _wav
from tests.code.test_features import _speech_call

SERVER = "server-a"
#: The lease timeout of the module's apps: their first heartbeat comes after 100 s, so
#: the tests decide alone when a lease goes stale.
LEASE_S = 600.0
STALE_S = LEASE_S + 1


@contextmanager
def apps_on_one_database(
    backend: str, tmp: Path, instances: tuple[str, ...], **overrides: Any
) -> Iterator[list[Env]]:
    """One app per name in ``instances``, all on one fresh database; apps with the same
    name are the worker processes of one server."""
    with ExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite:///{tmp / 'callsift.db'}"
        else:
            url = stack.enter_context(fresh_pg_schema())
        envs: list[Env] = []
        keys: dict[str, str] = {}
        for instance in instances:
            settings = make_settings(url, tmp, instance=instance, **overrides)
            app = create_app(settings, models=preloaded_holder())
            client = stack.enter_context(TestClient(app, raise_server_exceptions=False))
            store = app.state.runtime.store
            if not keys:  # the first app has migrated the database
                keys = {
                    role: store.create_key(role=role, name=f"lease {role}", actor="cli")[0]
                    for role in ROLES
                }
            envs.append(Env(app=app, client=client, store=store, keys=keys, tmp=tmp))
        yield envs


@pytest.fixture(scope="module", params=BACKENDS)
def apps(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Env]]:
    """Two workers of server-a and one replica, server-b, with 2 streams each at most."""
    tmp = tmp_path_factory.mktemp(f"leases-{request.param}")
    with apps_on_one_database(
        request.param,
        tmp,
        (SERVER, SERVER, "server-b"),
        stream_max=2,
        stream_max_ahead_s=1e6,
        stream_lease_s=LEASE_S,
    ) as envs:
        yield envs


def _runtime(env: Env) -> Runtime:
    runtime: Runtime = env.app.state.runtime
    return runtime


def _leases(env: Env) -> dict[str, dict[str, Any]]:
    return {row["call_id"]: row for row in env.store.stream_leases()}


def _age(store: Store, call_id: str, seconds: float) -> None:
    """Set a lease's heartbeat ``seconds`` in the past, as if its process had died."""
    old = datetime.now(UTC) - timedelta(seconds=seconds)
    with store.engine.begin() as conn:
        conn.execute(
            update(StreamLease).where(StreamLease.call_id == call_id).values(heartbeat_at=old)
        )


def _audio_frames(seconds: float, seed: int) -> list[bytes]:
    return _frames(_wav(0.8 * _speech_call(seed=seed, seconds=seconds), "ULAW"), "ULAW")


# -- the store ---------------------------------------------------------------------------


def test_claim_release_heartbeat_and_sweep(store: Store) -> None:
    claim = {"instance": SERVER, "limit": 2, "lease_s": 30.0}
    assert store.claim_stream("c1", worker="w1", **claim) == "claimed"
    assert store.claim_stream("c1", worker="w2", **claim) == "busy"
    assert store.claim_stream("c1", worker="w9", **{**claim, "instance": "other"}) == "busy"
    assert store.claim_stream("c2", worker="w2", **claim) == "claimed"
    assert store.claim_stream("c3", worker="w1", **claim) == "full"
    assert store.claim_stream("c3", worker="w9", **{**claim, "instance": "other"}) == "claimed"
    # A worker refreshes and releases only its own leases.
    assert store.heartbeat_streams("w1", ["c1", "c2"]) == {"c1"}
    assert store.release_stream("c2", worker="w1") is False
    assert store.release_stream("c1", worker="w1") is True
    assert {r["call_id"] for r in store.stream_leases()} == {"c2", "c3"}
    _age(store, "c3", 60)
    assert store.sweep_streams(lease_s=30.0) == 1
    assert store.release_worker_streams("w2") == 1
    assert store.stream_leases() == []


def test_concurrent_claims_never_exceed_the_limit_or_share_a_call(
    store_url: str, data_dir: Path
) -> None:
    stores = [Store(store_url, data_dir=data_dir) for _ in range(4)]
    stores[0].upgrade()
    try:
        barrier = threading.Barrier(8)

        def claim_now(store: Store, call_id: str, instance: str) -> str:
            return store.claim_stream(
                call_id, instance=instance, worker="w-late", limit=3, lease_s=30.0
            )

        def claim(i: int, call_id: str, instance: str) -> str:
            barrier.wait()
            return stores[i % 4].claim_stream(
                call_id, instance=instance, worker=f"w{i}", limit=3, lease_s=30.0
            )

        with ThreadPoolExecutor(8) as pool:
            # Eight calls of one server at the same moment: never more than its limit
            # win, and the claims that withdrew from the race leave no place taken.
            outcomes = list(pool.map(lambda i: claim(i, f"many-{i}", SERVER), range(8)))
            won = outcomes.count("claimed")
            assert 1 <= won <= 3 and set(outcomes) <= {"claimed", "full"}
            assert len(stores[0].stream_leases()) == won
            late = [claim_now(stores[0], f"late-{i}", SERVER) for i in range(4)]
            assert late == ["claimed"] * (3 - won) + ["full"] * (1 + won)
            # One call from eight servers at the same moment: exactly one wins.
            outcomes = list(pool.map(lambda i: claim(i, "one", f"server-{i}"), range(8)))
            assert sorted(outcomes) == ["busy"] * 7 + ["claimed"]
    finally:
        for s in stores:
            s.dispose()


# -- two workers, one server ---------------------------------------------------------------


def test_a_call_streams_once_across_workers(apps: list[Env]) -> None:
    a, b, _ = apps
    call_id = a.register()["call_id"]
    with _connect(a, call_id) as first:
        assert first.receive_json()["type"] == "ready"
        with _connect(b, call_id) as second:
            code, messages = _closed_with(second)
        assert code == 4409
        assert messages[-1]["detail"] == (
            f"call {call_id} already has a live stream; close it before opening another"
        )
        lease = _leases(a)[call_id]
        assert lease["worker"] == _runtime(a).leases.worker and lease["instance"] == SERVER
        first.send_text('{"type": "end"}')
        code, _ = _closed_with(first)
        assert code == 1000
    # Freed before the close frame was sent: the other worker may take the call at once.
    assert call_id not in _leases(a)
    with _connect(b, call_id) as again:
        assert again.receive_json()["type"] == "ready"
    _wait_for(lambda: not _leases(a))


def _open_together(envs: tuple[Env, ...], call_id: str, stack: ExitStack) -> list[dict[str, Any]]:
    """Open a stream of ``call_id`` on each app at the same moment; their first messages."""
    barrier = threading.Barrier(len(envs))

    def open_on(env: Env) -> Any:
        barrier.wait()
        return _connect(env, call_id).__enter__()

    with ThreadPoolExecutor(len(envs)) as pool:
        sessions = list(pool.map(open_on, envs))
    for ws in sessions:
        stack.push(ws)
    return [ws.receive_json() for ws in sessions]


def test_simultaneous_opens_on_two_workers_give_one_stream(apps: list[Env]) -> None:
    a, b, _ = apps
    for _ in range(3):
        call_id = a.register()["call_id"]
        with ExitStack() as stack:
            first = _open_together((a, b), call_id, stack)
            assert sorted(m["type"] for m in first) == ["error", "ready"], first
            assert next(m for m in first if m["type"] == "error")["code"] == 4409
            assert list(_leases(a)) == [call_id]
        # Both sessions closed (the winner by disconnecting): its lease goes too.
        _wait_for(lambda: not _leases(a))


def test_the_stream_limit_counts_every_worker_of_the_server(apps: list[Env]) -> None:
    a, b, replica = apps
    calls = [a.register()["call_id"] for _ in range(4)]
    with ExitStack() as stack:
        for env, call_id in ((a, calls[0]), (b, calls[1])):
            assert stack.enter_context(_connect(env, call_id)).receive_json()["type"] == "ready"
        for env in (a, b):  # the third stream, whichever worker it reaches
            with _connect(env, calls[2]) as extra:
                code, messages = _closed_with(extra)
            assert code == 1013
            assert "this server already scores 2 live streams" in messages[-1]["detail"]
        # Another server on the same database has a limit of its own.
        with _connect(replica, calls[2]) as other:
            assert other.receive_json()["type"] == "ready"
            assert _leases(a)[calls[2]]["instance"] == "server-b"
        # Each worker holds its own stream; the limit is the server's.
        assert "callsift_live_streams 1.0" in a.client.get("/metrics").text
        assert "callsift_live_streams 1.0" in b.client.get("/metrics").text
    _wait_for(lambda: not _leases(a))
    with _connect(b, calls[3]) as ws:
        assert ws.receive_json()["type"] == "ready"
    _wait_for(lambda: not _leases(a))


def test_a_stale_lease_is_taken_over_and_stops_counting(apps: list[Env]) -> None:
    a, b, _ = apps
    dead = {"instance": SERVER, "worker": "4242-deadbeef", "limit": 2, "lease_s": LEASE_S}
    held, other, third = (a.register()["call_id"] for _ in range(3))
    assert a.store.claim_stream(held, **dead) == "claimed"  # a worker that was then killed
    with _connect(a, held) as ws:
        code, _ = _closed_with(ws)
    assert code == 4409  # its heartbeat is recent: the lease is live
    _age(a.store, held, STALE_S)
    with _connect(a, held) as ws:
        assert ws.receive_json()["type"] == "ready"
        assert _leases(a)[held]["worker"] == _runtime(a).leases.worker

        # A dead worker's lease counts against the limit until it is stale.
        assert a.store.claim_stream(other, **dead) == "claimed"
        with _connect(b, third) as extra:
            code, _ = _closed_with(extra)
        assert code == 1013
        _age(a.store, other, STALE_S)
        with _connect(b, third) as ws2:
            assert ws2.receive_json()["type"] == "ready"
            live = {c for c, row in _leases(a).items() if row["worker"] != dead["worker"]}
            assert live == {held, third}
            # The stale lease no longer counts; the sweep removes it.
            a.store.sweep_streams(lease_s=LEASE_S)
            assert set(_leases(a)) == {held, third}
    _wait_for(lambda: not _leases(a))


def test_a_stream_whose_lease_was_taken_over_stores_nothing(apps: list[Env]) -> None:
    a, b, _ = apps
    call_id = a.register()["call_id"]
    frames = _audio_frames(1.5, seed=11)
    with _connect(a, call_id, encoding="mulaw") as old:
        old.receive_json()
        # Worker a stops refreshing (its database link was down past the lease timeout)
        # and worker b takes the call over.
        _age(a.store, call_id, STALE_S)
        with _connect(b, call_id, encoding="mulaw") as new:
            assert new.receive_json()["type"] == "ready"
            _runtime(a).leases.beat(a.store, _runtime(a).streams)  # a's next heartbeat
            for frame in frames:
                old.send_bytes(frame)
            old.send_text('{"type": "end"}')
            _, messages = _closed_with(old)
            final = messages[-1]
            assert final["type"] == "final" and final["stored"] is False
            assert "another stream took the call over" in final["detail"]
            for frame in frames:
                new.send_bytes(frame)
            new.send_text('{"type": "end"}')
            _, messages = _closed_with(new)
            assert messages[-1]["stored"] is True
    assert a.store.get_call(call_id).duration_s == pytest.approx(1.5)
    assert not _leases(a)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_heartbeat_keeps_a_lease_alive(backend: str, tmp_path: Path) -> None:
    # Lease timeout 0.6 s: without heartbeats the lease would be stale after 0.6 s.
    with apps_on_one_database(backend, tmp_path, (SERVER, SERVER), stream_lease_s=0.6) as (a, b):
        call_id = a.register()["call_id"]
        with _connect(a, call_id) as ws:
            ws.receive_json()
            opened = _leases(a)[call_id]["opened_at"]
            time.sleep(1.5)
            with _connect(b, call_id) as again:
                code, _ = _closed_with(again)
            assert code == 4409
            assert _leases(a)[call_id]["heartbeat_at"] > opened + timedelta(seconds=1.0)
            # The beats sweep the stale leases of servers gone for good.
            gone = {"instance": "server-gone", "worker": "1-0", "limit": 1, "lease_s": 0.6}
            assert a.store.claim_stream("gone", **gone) == "claimed"
            _age(a.store, "gone", 60)
            # A sweep every BEATS_PER_LEASE beats, i.e. once per lease timeout.
            _wait_for(lambda: "gone" not in _leases(a), timeout=3 * 0.6)
            assert call_id in _leases(a)


# -- every end frees the lease -------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_way_a_stream_ends_frees_its_lease(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with apps_on_one_database(
        backend, tmp_path, (SERVER,), stream_idle_s=0.5, stream_max_ahead_s=1e6
    ) as (env,):
        frames = _audio_frames(1.2, seed=12)

        def stream(send: Callable[[Any], None], expected: int) -> str:
            call_id = env.register()["call_id"]
            with _connect(env, call_id, encoding="mulaw") as ws:
                ws.receive_json()
                assert call_id in _leases(env)
                send(ws)
                if expected:
                    code, _ = _closed_with(ws)
                    assert code == expected
                    # The lease went before the close frame: no wait needed.
                    assert call_id not in _leases(env)
            return call_id

        def end(ws: Any) -> None:
            for frame in frames:
                ws.send_bytes(frame)
            ws.send_text('{"type": "end"}')

        stream(end, 1000)
        stream(lambda ws: ws.send_bytes(b"\xff" * 2000), 4400)  # bad frame
        stream(lambda ws: ws.send_text("hello"), 4400)  # bad message
        stream(lambda ws: None, 4408)  # idle
        # A client gone without a word (the test client then cancels the handler).
        gone = stream(lambda ws: [ws.send_bytes(f) for f in frames], 0)
        _wait_for(lambda: gone not in _leases(env))

        def broken(*args: Any) -> Any:
            raise RuntimeError("scoring broke")

        monkeypatch.setattr(stream_router, "_scored", broken)
        stream(lambda ws: [ws.send_bytes(f) for f in frames], 1011)  # internal error
        monkeypatch.undo()
        assert env.store.stream_leases() == []
        closed = env.client.get("/metrics").text
        # (The test client cancels a handler whose client left, counted as an error:
        # a real server counts "disconnect", tests/api/test_stream_workers.py.)
        for how in ("end", "bad_frame", "bad_message", "idle"):
            assert f'callsift_streams_closed_total{{how="{how}"}} 1.0' in closed, how


# -- the database down at open -------------------------------------------------------------


def test_database_down_at_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with apps_on_one_database("sqlite", tmp_path, (SERVER,), stream_max_ahead_s=1e6) as (env,):
        seen = env.register()["call_id"]  # this worker saw it arrive
        runtime = _runtime(env)
        good = runtime.store

        def claim_down(*args: Any, **kwargs: Any) -> Any:
            raise StoreUnavailableError("database unavailable: connection refused")

        # The call is found, but its lease cannot be claimed: refused, clearly.
        monkeypatch.setattr(good, "claim_stream", claim_down)
        with _connect(env, seen) as ws:
            code, messages = _closed_with(ws)
        assert code == 4503 and messages[-1]["detail"] == CLAIM_WHILE_DOWN.format(call_id=seen)
        monkeypatch.undo()

        down = Store(UNREACHABLE_PG, data_dir=tmp_path / "down", pool_timeout_s=1.0)
        runtime.store = down
        try:
            unknown = new_call_id()
            with _connect(env, unknown) as ws:
                code, messages = _closed_with(ws)
            assert code == 4503
            assert messages[-1]["detail"] == UNKNOWN_WHILE_DOWN.format(call_id=unknown)
            # A call this worker saw arrive is still scored live, without a lease, and
            # stored nowhere.
            with _connect(env, seen, encoding="mulaw") as ws:
                ready = ws.receive_json()
                assert ready["type"] == "ready" and ready["history_unavailable"] is True
                for frame in _audio_frames(1.2, seed=13):
                    ws.send_bytes(frame)
                ws.send_text('{"type": "end"}')
                code, messages = _closed_with(ws)
            assert code == 1000 and messages[-1]["stored"] is False
            assert "flag" in messages[-1]
        finally:
            runtime.store = good
            down.dispose()
        assert env.store.stream_leases() == []
        assert env.store.get_call(seen).audio_file is None


def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)
