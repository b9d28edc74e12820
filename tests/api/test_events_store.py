"""The events outbox on SQLite and PostgreSQL: written with each change or not at all,
one-use tokens, key checks, pruning, and the hub's reading when a smaller id commits
after a larger one (PostgreSQL: ids are taken at INSERT, seen at COMMIT)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from api.db import Event
from api.events import (
    EventHub,
    create_token,
    invalid_keys,
    latest_event_id,
    prune_events,
    read_events,
    redeem_token,
)
from api.store import ConflictError, Store

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _kinds(store: Store, after: int = 0) -> list[tuple[str, str | None]]:
    return [(e.kind, e.data.get("call_id")) for e in read_events(store, after=after, limit=100)]


def test_each_change_writes_its_event_in_its_transaction(store: Store) -> None:
    store.register_call(
        call_id="s-1", caller_id="+6281200000001", started_at=AT, metadata={}, actor="key:1"
    )
    with pytest.raises(ConflictError):  # refused: no event either
        store.register_call(
            call_id="s-1", caller_id="+6281299999999", started_at=AT, metadata={}, actor="k"
        )
    score = {"stage": "call", "flag": "likely_ghost", "p_prank": 0.1, "p_ghost": 0.9}
    store.save_score("s-1", {**score, "reasons": []}, model_version="v1")
    store.set_disposition("s-1", label="ghost", note=None, actor="key:1")
    store.set_disposition("s-1", label="ghost", note=None, actor="key:1")  # unchanged
    store.review_number("+6281200000001", action="clear", until=None, note="ok", actor="key:2")
    assert _kinds(store) == [
        ("call", "s-1"),
        ("flag", "s-1"),
        ("disposition", "s-1"),
        ("review", None),
    ]
    review = read_events(store, after=0, limit=10)[-1].data
    assert review["caller_id"] == "+6281200000001" and review["cleared_calls"] == 1


def test_tokens_are_one_use_expire_and_follow_their_key(store: Store) -> None:
    _, key = store.create_key(role="supervisor", name="t", actor="cli")
    now = datetime.now(UTC)
    token, expires = create_token(store, key_id=int(key["id"]), ttl_s=60)
    assert expires > now and token.startswith("ev_")
    assert redeem_token(store, token, now=now) == {
        "id": key["id"],
        "role": "supervisor",
        "name": "t",
    }
    assert redeem_token(store, token, now=now) is None  # used
    late, _ = create_token(store, key_id=int(key["id"]), ttl_s=1)
    assert redeem_token(store, late, now=now + timedelta(seconds=2)) is None  # expired
    assert redeem_token(store, "ev_unknown", now=now) is None
    assert redeem_token(store, "cs_" + "x" * 40, now=now) is None  # a key is no token
    revoked, _ = create_token(store, key_id=int(key["id"]), ttl_s=60)
    assert invalid_keys(store, [int(key["id"]), 999_999], now=now) == {999_999}
    store.revoke_key(int(key["id"]), actor="cli")
    assert redeem_token(store, revoked, now=now) is None
    assert invalid_keys(store, [int(key["id"])], now=now) == {int(key["id"])}


def test_prune_deletes_old_events_only_and_ids_never_repeat(store: Store) -> None:
    old = datetime.now(UTC) - timedelta(days=2)
    with store._tx(write=True) as conn:
        conn.execute(insert(Event), [{"created_at": old, "kind": "call", "data": {}}] * 5)
    last = latest_event_id(store)
    assert prune_events(store, before=datetime.now(UTC) - timedelta(days=1), batch=2) == 5
    assert latest_event_id(store) == 0
    with store._tx(write=True) as conn:
        conn.execute(insert(Event).values(created_at=datetime.now(UTC), kind="call", data={}))
    assert latest_event_id(store) > last  # a resuming client's id never points elsewhere


def test_an_id_committed_after_a_larger_one_is_still_delivered(store: Store) -> None:
    """Two writers: the first takes id N and commits after the second's N+1 is read."""
    if store.is_sqlite:
        pytest.skip("SQLite has one writer at a time: ids commit in order")

    async def run() -> list[int]:
        hub = EventHub(poll_s=0.01, queue_max=100, key_check_s=3600)
        hub.start(lambda: store)
        try:
            sub, _ = await hub.subscribe(key_id=1, role="admin", last_event_id=None)
            slow = store.engine.connect()
            tx = slow.begin()
            slow.execute(insert(Event).values(created_at=AT, kind="call", data={"n": "slow"}))
            with store._tx(write=True) as conn:
                conn.execute(insert(Event).values(created_at=AT, kind="call", data={"n": "fast"}))
            first = await asyncio.wait_for(sub.queue.get(), 5)
            tx.commit()
            slow.close()
            second = await asyncio.wait_for(sub.queue.get(), 5)
            return [int(f.split(b"\n", 1)[0].removeprefix(b"id: ")) for f in (first, second)]
        finally:
            await hub.stop()

    fast, slow = asyncio.run(run())
    assert slow == fast - 1  # delivered, after the larger id
    with store._tx() as conn:
        assert conn.execute(select(Event.id).order_by(Event.id)).scalars().all() == [slow, fast]
