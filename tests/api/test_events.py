"""Pushed updates, ``GET /v1/events`` (issue 21.2), against a real uvicorn server.

Keys and one-use tokens, what each role receives, replay after ``Last-Event-ID``, a
client that never reads dropped with its queue freed, a revoked key ending its stream,
and heartbeats. An event written by another process reaching a subscriber: the browser
test (tests/web/test_events.py) stores a score from the test process on the database of
a running ``callsift serve``.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import soundfile as sf
from fastapi import FastAPI
from sqlalchemy import insert, update
from websockets.sync.client import connect

from api.db import Event
from api.events import EventHub
from api.main import create_app
from api.store import Store
from tests.api.fuzzing import threaded_server
from tests.api.test_app_calls import make_settings, new_number, preloaded_holder, wav
from tests.code.test_features import _speech_call
from tests.sse import EventReader

QUEUE_MAX = 16
SR = 8000


def _mulaw(seconds: float, seed: int) -> bytes:
    out = io.BytesIO()
    sf.write(out, 0.8 * _speech_call(seed=seed, seconds=seconds), SR, format="RAW", subtype="ULAW")
    return out.getvalue()


@dataclass
class Live:
    app: FastAPI
    url: str
    store: Store
    keys: dict[str, str]
    db_url: str
    root: Path
    readers: list[EventReader]

    @property
    def hub(self) -> EventHub:
        hub: EventHub = self.app.state.runtime.events
        return hub

    def client(self, role: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": self.keys[role]}, timeout=30)

    def reader(self, role: str | None = None, query: str = "", **headers: str) -> EventReader:
        if role is not None:
            headers = {"X-API-Key": self.keys[role], **headers}
        reader = EventReader(f"{self.url}/v1/events{query}", headers=headers)
        self.readers.append(reader)
        return reader.start()

    def register(self, role: str = "call_taker", caller_id: str | None = None) -> str:
        call_id = f"e-{uuid.uuid4().hex[:12]}"
        with self.client(role) as c:
            r = c.post(
                "/v1/calls",
                json={
                    "call_id": call_id,
                    "caller_id": caller_id or new_number(),
                    "started_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
                },
            )
        assert r.status_code == 200, r.text
        return call_id


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("events")
    db_url = f"sqlite:///{root / 'callsift.db'}"
    settings = make_settings(
        db_url,
        root,
        events_poll_s=0.05,
        events_queue_max=QUEUE_MAX,
        events_heartbeat_s=0.5,
        events_token_s=1.0,
        events_key_check_s=0.3,
        key_cache_s=0,
    )
    app = create_app(settings, models=preloaded_holder())
    with threaded_server(app) as url:
        store: Store = app.state.runtime.store
        keys = {
            role: store.create_key(role=role, name=f"events {role}", actor="cli")[0]
            for role in ("call_taker", "supervisor", "data_scientist", "admin")
        }
        env = Live(app=app, url=url, store=store, keys=keys, db_url=db_url, root=root, readers=[])
        try:
            yield env
        finally:  # an open stream would keep the server from stopping
            for reader in env.readers:
                reader.close()


def _token(live: Live, role: str) -> str:
    with live.client(role) as c:
        r = c.post("/v1/events/token")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["expires_in_s"] == 1.0 and body["token"].startswith("ev_")
    return str(body["token"])


def test_keys_tokens_and_refusals(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    for headers, status in (({}, 401), ({"X-API-Key": "cs_nope-nope-nope"}, 401)):
        r = httpx.get(f"{live.url}/v1/events", headers=headers)
        assert r.status_code == status and "key" in r.json()["detail"]
    r = httpx.get(f"{live.url}/v1/events", headers={"X-API-Key": live.keys["data_scientist"]})
    assert r.status_code == 403 and "may not subscribe" in r.json()["detail"]
    with live.client("data_scientist") as c:
        assert c.post("/v1/events/token").status_code == 403
    bad_id = httpx.get(
        f"{live.url}/v1/events",
        headers={"X-API-Key": live.keys["admin"], "Last-Event-ID": "12; DROP"},
    )
    assert bad_id.status_code == 422 and "Last-Event-ID" in bad_id.json()["detail"]

    token = _token(live, "call_taker")
    first = live.reader(query=f"?token={token}")
    assert first.status == 200
    again = live.reader(query=f"?token={token}")  # one use only
    assert again.status == 401 and "used or expired" in again.error_body
    first.close()
    # An expired token: tests/api/test_events_store.py (without waiting here).
    # The token opens the stream with the key's own role: a call-taker's gets no review.
    ct = live.reader(query=f"?token={_token(live, 'call_taker')}")
    number = new_number()
    live.register(caller_id=number)
    with live.client("supervisor") as c:
        assert c.post(f"/v1/numbers/{number}/review", json={"action": "clear"}).status_code == 200
    sup = live.reader("supervisor", query="?last_event_id=0")
    sup.wait_for(lambda e: e.type == "review" and e.data["caller_id"] == number)
    ct.wait_for(lambda e: e.type == "call" and e.data["caller_id"] == number)
    # A call-taker learns that the number was reviewed (its prank counts may change), not
    # the decision, note or reviewer.
    told = ct.wait_for(lambda e: e.type == "review" and e.data["caller_id"] == number)
    assert set(told.data) == {"id", "type", "at", "caller_id", "cleared_calls"}
    ct.close()
    sup.close()
    # Neither the tokens nor the keys reach any of the server's log lines.
    server_logs = "\n".join(
        f"{r.getMessage()} {r.__dict__}"
        for r in caplog.records
        if r.name.startswith(("callsift", "uvicorn"))
    )
    assert "/v1/events" in server_logs
    for secret in (token, *live.keys.values()):
        assert secret not in server_logs


def test_each_change_is_pushed_to_the_roles_that_may_read_it(live: Live) -> None:
    ct = live.reader("call_taker")
    sup = live.reader("supervisor")
    number = new_number()
    call_id = live.register(caller_id=number)
    with live.client("call_taker") as c:
        scored = c.post(
            f"/v1/calls/{call_id}/audio", content=wav(3), headers={"Content-Type": "audio/wav"}
        )
        assert scored.status_code == 200, scored.text
        r = c.post(f"/v1/calls/{call_id}/disposition", json={"label": "prank", "note": "laughing"})
        assert r.status_code == 200
    with live.client("supervisor") as c:
        r = c.post(f"/v1/numbers/{number}/review", json={"action": "confirm_prank", "note": "kids"})
        assert r.status_code == 200
    review = sup.wait_for(lambda e: e.type == "review" and e.data["caller_id"] == number)
    assert review.data["action"] == "confirm_prank"
    ct.wait_for(lambda e: e.type == "disposition" and e.data["call_id"] == call_id)
    time.sleep(0.3)
    score_kind = "flag" if scored.json()["flag"] != "none" else "score"
    assert ct.of_call(call_id) == ["call", score_kind, "disposition"]
    assert sup.of_call(call_id) == ["call", score_kind, "disposition"]
    call = ct.wait_for(lambda e: e.data.get("call_id") == call_id)
    assert call.data["caller_id"] == number and call.data["stage"] == "pre_answer"
    score = ct.wait_for(lambda e: e.type == score_kind and e.data["call_id"] == call_id)
    for k in ("flag", "p_prank", "p_ghost", "reasons", "stage"):
        assert score.data[k] == scored.json()[k]
    dispo = ct.wait_for(lambda e: e.type == "disposition" and e.data["call_id"] == call_id)
    assert dispo.data["label"] == "prank" and dispo.data["note"] == "laughing"
    told = ct.wait_for(lambda e: e.type == "review" and e.data["caller_id"] == number)
    assert "action" not in told.data and "note" not in told.data and "by" not in told.data
    ids = [int(e.id or 0) for e in sup.events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    ct.close()
    sup.close()


def test_last_event_id_replays_what_was_missed_else_reset(live: Live) -> None:
    reader = live.reader("admin")
    marker = live.register()
    got = reader.wait_for(lambda e: e.data.get("call_id") == marker)
    reader.close()
    missed = [live.register() for _ in range(3)]
    again = live.reader("admin", **{"Last-Event-ID": str(got.id)})
    for call_id in missed:
        again.wait_for(lambda e, c=call_id: e.data.get("call_id") == c, timeout=3)
    assert [e.data["call_id"] for e in again.events[:3]] == missed  # replayed, in order
    assert marker not in [e.data.get("call_id") for e in again.events]
    again.close()
    # The same through the query parameter (a browser reconnecting with a new token).
    q = live.reader("admin", query=f"?last_event_id={got.id}")
    q.wait_for(lambda e: e.data.get("call_id") == missed[-1])
    q.close()
    # Missed events older than the replay window: a reset, not a partial replay.
    with live.store._tx(write=True) as conn:
        conn.execute(
            update(Event)
            .where(Event.id == int(got.id or 0) + 1)
            .values(created_at=datetime.now(UTC) - timedelta(hours=2))
        )
    old = live.reader("admin", **{"Last-Event-ID": str(got.id)})
    reset = old.wait_for(lambda e: e.type == "reset")
    assert old.events[0].type == "reset" and int(reset.id or 0) == int(got.id or 0) + 3
    old.close()
    unknown = live.reader("admin", **{"Last-Event-ID": "999999999"})
    unknown.wait_for(lambda e: e.type == "reset")
    unknown.close()


def test_heartbeat_comments_keep_an_idle_stream_open(live: Live) -> None:
    before = set(live.hub.subscribers)
    reader = live.reader("call_taker")
    time.sleep(1.2)  # heartbeat every 0.5 s in this module
    assert len(reader.comments) >= 1
    (ours,) = set(live.hub.subscribers) - before
    reader.close()
    # A client that disconnects is forgotten, its queue with it.
    deadline = time.monotonic() + 3
    while ours in live.hub.subscribers:
        assert time.monotonic() < deadline, "a disconnected client is still subscribed"
        time.sleep(0.02)


def _never_reading_client(live: Live) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = live.url.removeprefix("http://").split(":")
    sock.connect((host, int(port)))
    sock.sendall(
        f"GET /v1/events HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {live.keys['supervisor']}"
        "\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    return sock


def test_a_client_that_never_reads_is_dropped_and_its_queue_freed(live: Live) -> None:
    hub = live.hub
    before = hub.dropped
    sock = _never_reading_client(live)
    try:
        deadline = time.monotonic() + 5
        while not any(s.key_id for s in hub.subscribers if s.role == "supervisor"):
            assert time.monotonic() < deadline, "the stream did not open"
            time.sleep(0.02)
        reader = live.reader("call_taker")  # a reading client on the side keeps up
        stuck = next(s for s in hub.subscribers if s.role == "supervisor")
        note = "n" * 8000
        rows: list[dict[str, Any]] = [
            {
                "created_at": datetime.now(UTC),
                "kind": "disposition",
                "data": {"call_id": f"bulk-{i}", "caller_id": "", "label": "prank", "note": note},
            }
            for i in range(600)
        ]
        with live.store._tx(write=True) as conn:  # ~5 MB of events at once
            conn.execute(insert(Event), rows)
        deadline = time.monotonic() + 10
        while hub.dropped == before:
            assert time.monotonic() < deadline, "the client that never reads was not dropped"
            time.sleep(0.05)
        assert stuck not in hub.subscribers and stuck.queue.qsize() == 0
        metrics = httpx.get(f"{live.url}/metrics").text
        assert f"callsift_event_streams_dropped {float(before + 1)}" in metrics
        assert stuck.queue.maxsize == QUEUE_MAX
        # The reading client got everything and stays connected.
        reader.wait_for(lambda e: e.data.get("call_id") == "bulk-599", timeout=10)
        assert not reader.ended.is_set()
        reader.close()
        # The server closed the dropped connection: its socket reaches end of stream.
        sock.settimeout(10)
        while sock.recv(65536):
            pass
    finally:
        sock.close()


def test_a_revoked_key_ends_its_stream(live: Live) -> None:
    token, info = live.store.create_key(role="call_taker", name="to revoke", actor="cli")
    reader = EventReader(f"{live.url}/v1/events", headers={"X-API-Key": token})
    live.readers.append(reader)
    reader.start()
    assert reader.status == 200
    time.sleep(0.2)
    revoked = time.monotonic()
    live.store.revoke_key(int(info["id"]), actor="cli")
    assert reader.ended.wait(5), "the stream of a revoked key stayed open"
    assert time.monotonic() - revoked < 3
    end = reader.wait_for(lambda e: e.type == "end")
    assert "revoked" in end.data["reason"]
    r = httpx.get(f"{live.url}/v1/events", headers={"X-API-Key": token})
    assert r.status_code == 401


def test_a_live_streams_interim_and_final_scores_are_pushed(live: Live) -> None:
    reader = live.reader("call_taker")
    call_id = live.register()
    audio = _mulaw(1.6, seed=3)
    url = live.url.replace("http", "ws") + f"/v1/calls/{call_id}/stream?encoding=mulaw"
    with connect(url, additional_headers={"X-API-Key": live.keys["call_taker"]}) as ws:
        assert json.loads(ws.recv())["type"] == "ready"
        for i in range(0, len(audio), 800):  # within the 2 s the stream may run ahead
            ws.send(audio[i : i + 800])
        update = json.loads(ws.recv())
        assert update["type"] == "update"
        interim = reader.wait_for(lambda e: e.data.get("call_id") == call_id and e.type != "call")
        assert interim.data["stage"] == update["stage"] and interim.data["live"] is True
        assert interim.data["p_prank"] == update["p_prank"]
        ws.send('{"type": "end"}')
        final = json.loads(ws.recv())
        assert final["type"] == "final" and final["stored"] is True
    stored = reader.wait_for(
        lambda e: (
            e.data.get("call_id") == call_id
            and e.data.get("stage") == final["stage"]
            and e.data.get("p_prank") == final["p_prank"]
            and e is not interim
        )
    )
    assert stored.type == ("flag" if final["flag"] != "none" else "score")
    assert reader.of_call(call_id)[0] == "call" and len(reader.of_call(call_id)) == 3
