"""Pushed updates (``GET /v1/events``): the ``events`` outbox and each process's hub.

Every change a console shows (a new call, a score, a flag, a disposition, a review) is
written to the append-only ``events`` table in the transaction of the change itself
(:mod:`api.store`), so an event exists exactly when its change does, whichever worker
or replica made it. Each process runs one :class:`EventHub`: one task that reads the
new rows every ``poll_s`` seconds and hands each to this process's subscribers through
a bounded queue per client. A client that does not read falls behind until its queue is
full and is then dropped; a client whose key is revoked or expires is dropped within
``key_check_s``. Clients resume with the last id they saw (``Last-Event-ID``): the
events after it are replayed from the table when they are recent enough, else the
client gets a ``reset`` event and reloads its lists.

On PostgreSQL ids are taken when a row is inserted but become visible when its
transaction commits, so a smaller id may appear after a larger one: the hub remembers
the ids it skipped for ``gap_wait_s`` and delivers them when they show up.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import delete, func, insert, or_, select, update

from api.db import ApiKey, Event, EventToken
from api.store import Store, StoreError

logger = logging.getLogger("callsift.api.events")

#: Event kinds each role may receive: what it may read through the other endpoints.
#: Call-takers read calls, scores and dispositions (``GET /v1/calls``); numbers' reviews
#: are the supervisors' (``/v1/numbers``), see :data:`ROLE_FIELDS`. Data scientists do not
#: subscribe.
ROLE_KINDS: dict[str, frozenset[str]] = {
    "call_taker": frozenset({"call", "score", "flag", "disposition", "review"}),
    "supervisor": frozenset({"call", "score", "flag", "disposition", "review"}),
    "admin": frozenset({"call", "score", "flag", "disposition", "review"}),
}
SUBSCRIBER_ROLES: tuple[str, ...] = tuple(ROLE_KINDS)
#: The only data fields of a kind a role receives, where not all. A call-taker learns
#: that a number was reviewed, since a "clear" changes the prank counts shown with its
#: calls (``caller_recent`` of ``GET /v1/calls``), but not the decision, note or reviewer.
ROLE_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("call_taker", "review"): ("caller_id", "cleared_calls"),
}
#: Every kind a stored event may have.
KINDS: tuple[str, ...] = ("call", "score", "flag", "disposition", "review")
TOKEN_PREFIX = "ev_"
_TOKEN_BYTES = 32
#: Longest gap list kept: a jump of more ids than this is a burst of rollbacks.
_MAX_GAPS = 10_000

# Set while a stream is ended on purpose without its last chunk (a client that does
# not read): uvicorn then logs "returned without completing response" as an error.
_ABORTED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "callsift_sse_aborted", default=False
)


@dataclass(frozen=True)
class StoredEvent:
    """One row of the outbox."""

    id: int
    created_at: datetime
    kind: str
    data: dict[str, Any]

    def frame(self, fields: Sequence[str] | None = None) -> bytes:
        """The event in the text/event-stream format: id, event type and one JSON line
        (with only ``fields`` of its data, when given)."""
        data = self.data if fields is None else {k: self.data.get(k) for k in fields}
        body = {"id": self.id, "type": self.kind, "at": self.created_at.isoformat(), **data}
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        return f"id: {self.id}\nevent: {self.kind}\ndata: {text}\n\n".encode()


def control_frame(kind: str, data: dict[str, Any], *, event_id: int | None = None) -> bytes:
    """A frame the hub makes itself (``reset``, ``end``): not stored."""
    text = json.dumps({"type": kind, **data}, ensure_ascii=False, separators=(",", ":"))
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {text}\n\n".encode()


HEARTBEAT = b": keep-alive\n\n"


# -- the table --------------------------------------------------------------------------


def append_event(store: Store, kind: str, data: dict[str, Any]) -> None:
    """Write one event on its own (a live stream's interim score, which is not stored)."""
    if kind not in KINDS:
        raise ValueError(f"unknown event kind {kind!r}; expected one of {', '.join(KINDS)}")
    with store._tx(write=True) as conn:
        conn.execute(insert(Event).values(created_at=datetime.now(UTC), kind=kind, data=data))


def append_events(store: Store, rows: Sequence[tuple[str, dict[str, Any], datetime]]) -> None:
    """Write ``(kind, data, created_at)`` events in one transaction (live streams' interim
    scores, gathered by the worker: one write for many streams)."""
    for kind, _, _ in rows:
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not rows:
        return
    with store._tx(write=True) as conn:
        conn.execute(
            insert(Event),
            [{"created_at": at, "kind": kind, "data": data} for kind, data, at in rows],
        )


def append_live_events(store: Store, rows: Sequence[tuple[str, dict[str, Any], datetime]]) -> None:
    """:func:`append_events` for live streams' interim scores: a database that fails
    costs the consoles these events (logged), never the streams."""
    try:
        append_events(store, rows)
    except StoreError as exc:
        logger.warning("live score events not written (%d): %s", len(rows), exc)


def latest_event_id(store: Store) -> int:
    """The largest event id stored (0 when none)."""
    with store._tx() as conn:
        return int(conn.execute(select(func.max(Event.id))).scalar_one() or 0)


def read_events(
    store: Store, *, after: int, limit: int, also: Iterable[int] = (), upto: int | None = None
) -> list[StoredEvent]:
    """Events with an id above ``after`` (and at most ``upto``) or in ``also``, by id."""
    wanted = Event.id > after
    if upto is not None:
        wanted = wanted & (Event.id <= upto)
    extra = sorted(also)
    query = select(Event.id, Event.created_at, Event.kind, Event.data)
    query = query.where(or_(wanted, Event.id.in_(extra)) if extra else wanted)
    with store._tx() as conn:
        rows = conn.execute(query.order_by(Event.id).limit(limit)).all()
    return [StoredEvent(int(r.id), r.created_at, str(r.kind), dict(r.data)) for r in rows]


def oldest_event_id(store: Store) -> int | None:
    with store._tx() as conn:
        value = conn.execute(select(func.min(Event.id))).scalar_one()
    return None if value is None else int(value)


def prune_events(store: Store, *, before: datetime, batch: int = 5000) -> int:
    """Delete events created before ``before`` and event tokens expired before it, in
    transactions of ``batch`` rows (each within the database timeout, however many)."""
    gone = 0
    while True:
        oldest = select(Event.id).where(Event.created_at < before).order_by(Event.id)
        with store._tx(write=True) as conn:
            n = conn.execute(delete(Event).where(Event.id.in_(oldest.limit(batch)))).rowcount
        gone += int(n or 0)
        if not n or n < batch:
            break
    with store._tx(write=True) as conn:
        conn.execute(delete(EventToken).where(EventToken.expires_at < before))
    return gone


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(store: Store, *, key_id: int, ttl_s: float) -> tuple[str, datetime]:
    """A new one-use token for ``key_id``'s holder, valid ``ttl_s`` seconds; only its
    hash is stored. Returns the token and its end."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
    expires = datetime.now(UTC) + timedelta(seconds=ttl_s)
    with store._tx(write=True) as conn:
        conn.execute(
            insert(EventToken).values(
                token_hash=_token_hash(token), key_id=key_id, expires_at=expires
            )
        )
    return token, expires


def redeem_token(store: Store, token: str, *, now: datetime) -> dict[str, Any] | None:
    """The key behind an unused, unexpired token (``{"id", "role", "name"}``), marking
    the token used; None for an unknown, used or expired token, or one whose key has
    been revoked or has expired since."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 128 or not token.isascii():
        return None
    digest = _token_hash(token)
    with store._tx(write=True) as conn:
        used = conn.execute(
            update(EventToken)
            .where(
                EventToken.token_hash == digest,
                EventToken.used_at.is_(None),
                EventToken.expires_at > now,
            )
            .values(used_at=now)
            .returning(EventToken.key_id)
        ).scalar_one_or_none()
        if used is None:
            return None
        key = conn.execute(
            select(ApiKey.id, ApiKey.role, ApiKey.name, ApiKey.revoked_at, ApiKey.expires_at).where(
                ApiKey.id == used
            )
        ).one_or_none()
    if key is None or key.revoked_at is not None or (key.expires_at and key.expires_at <= now):
        return None
    return {"id": int(key.id), "role": str(key.role), "name": str(key.name)}


def invalid_keys(store: Store, key_ids: Sequence[int], *, now: datetime) -> set[int]:
    """Those of ``key_ids`` that are revoked, expired or gone."""
    if not key_ids:
        return set()
    with store._tx() as conn:
        rows = conn.execute(
            select(ApiKey.id, ApiKey.revoked_at, ApiKey.expires_at).where(
                ApiKey.id.in_(list(key_ids))
            )
        ).all()
    valid = {
        int(r.id)
        for r in rows
        if r.revoked_at is None and (r.expires_at is None or r.expires_at > now)
    }
    return set(key_ids) - valid


# -- the hub ----------------------------------------------------------------------------


@dataclass(eq=False)
class Subscriber:
    """One connected client: its key, role and bounded queue of frames."""

    key_id: int
    role: str
    queue: asyncio.Queue[bytes]
    #: Set when the stream must end; ``reason`` says why, ``abort`` that the client
    #: stopped reading (end at once, nothing more is sent).
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str | None = None
    abort: bool = False
    #: Events up to this id reached the client before it connected here.
    seen: int = 0


class EventHub:
    """One process's reader of the outbox and its subscribers.

    Parameters
    ----------
    poll_s : float
        Seconds between reads of new events (while anyone is subscribed).
    queue_max : int
        Frames a client may have waiting; one more drops it.
    heartbeat_s : float
        A comment line is sent after this many idle seconds (proxies keep the stream).
    replay_s : float
        How old an event may be and still be replayed to a client that resumes.
    replay_max : int
        Most events replayed; more missed means a ``reset``.
    key_check_s : float
        Seconds between checks that subscribers' keys are still valid.
    keep_s : float
        Events older than this are pruned (every ``prune_every_s``).
    """

    def __init__(
        self,
        *,
        poll_s: float = 0.2,
        queue_max: int = 256,
        heartbeat_s: float = 15.0,
        replay_s: float = 600.0,
        replay_max: int = 1000,
        key_check_s: float = 2.0,
        keep_s: float = 86400.0,
        prune_every_s: float = 600.0,
        gap_wait_s: float = 10.0,
        batch: int = 1000,
    ) -> None:
        self.poll_s = poll_s
        self.queue_max = queue_max
        self.heartbeat_s = heartbeat_s
        self.replay_s = replay_s
        self.replay_max = replay_max
        self.key_check_s = key_check_s
        self.keep_s = keep_s
        self.prune_every_s = prune_every_s
        self.gap_wait_s = gap_wait_s
        # A burst is handed out in batches of half a queue: between two, the streams
        # get the event loop and a client that reads empties its queue.
        self.batch = max(1, min(batch, queue_max // 2))
        self.subscribers: set[Subscriber] = set()
        #: The largest id handed out; None while nobody listens (then re-read at the
        #: next subscription).
        self.last_id: int | None = None
        self._gaps: dict[int, float] = {}
        self._lock: asyncio.Lock | None = None
        self._task: asyncio.Task[None] | None = None
        self._store: Callable[[], Store] | None = None
        self.dropped = 0  # clients dropped for not reading (a metric for tests/benchmarks)

    def __len__(self) -> int:
        return len(self.subscribers)

    # lifecycle

    def start(self, store: Callable[[], Store]) -> None:
        """Start the reading task (in the app's event loop)."""
        self._store = store
        self._lock = asyncio.Lock()  # in the app's own event loop
        _install_abort_filter()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="callsift-events")

    async def stop(self) -> None:
        """End every stream and the reading task."""
        for sub in list(self.subscribers):
            self._close(sub, "the server is shutting down")
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    # subscribers

    async def subscribe(
        self, *, key_id: int, role: str, last_event_id: int | None
    ) -> tuple[Subscriber, list[bytes]]:
        """Register a client; return it and the frames to send first (the replay of
        what it missed, or a ``reset``). Raises StoreError when the database is down."""
        store = self._get_store()
        sub = Subscriber(key_id=key_id, role=role, queue=asyncio.Queue(self.queue_max))
        async with self._locked():
            if self.last_id is None:
                self.last_id = await run_in_threadpool(latest_event_id, store)
                self._gaps.clear()
            upto = self.last_id
            pending = set(self._gaps)
            # Registered before the replay is read: whatever the hub reads from now on
            # is queued for this client, after the replay.
            self.subscribers.add(sub)
        if last_event_id is None:
            return sub, []
        try:
            first = await self._replay(store, sub, last_event_id, upto, pending)
        except BaseException:
            self.unsubscribe(sub)
            raise
        return sub, first

    async def _replay(
        self, store: Store, sub: Subscriber, after: int, upto: int, pending: set[int]
    ) -> list[bytes]:
        if after >= upto:
            sub.seen = after
            if after > upto and after > await run_in_threadpool(latest_event_id, store):
                sub.seen = 0
                return [control_frame("reset", {"reason": "unknown event id"}, event_id=upto)]
            return []
        rows, oldest = await run_in_threadpool(self._read_replay, store, after, upto)
        rows = [r for r in rows if r.id not in pending]
        window = datetime.now(UTC) - timedelta(seconds=self.replay_s)
        too_old = bool(rows) and rows[0].created_at < window
        pruned = oldest is not None and after < oldest - 1
        if len(rows) > self.replay_max or too_old or pruned:
            return [control_frame("reset", {"reason": "missed too many events"}, event_id=upto)]
        kinds = ROLE_KINDS[sub.role]
        return [r.frame(ROLE_FIELDS.get((sub.role, r.kind))) for r in rows if r.kind in kinds]

    def _read_replay(
        self, store: Store, after: int, upto: int
    ) -> tuple[list[StoredEvent], int | None]:
        rows = read_events(store, after=after, upto=upto, limit=self.replay_max + 1)
        return rows, oldest_event_id(store)

    def unsubscribe(self, sub: Subscriber) -> None:
        """Forget a client and what it had waiting."""
        self.subscribers.discard(sub)
        _drain(sub.queue)

    def _close(self, sub: Subscriber, reason: str, *, abort: bool = False) -> None:
        if sub.closed.is_set():
            return
        sub.reason = reason
        sub.abort = abort
        if abort:
            self.dropped += 1
            _drain(sub.queue)
        sub.closed.set()
        self.subscribers.discard(sub)

    def _locked(self) -> asyncio.Lock:
        if self._lock is None:
            raise RuntimeError("EventHub.start was not called")
        return self._lock

    def _get_store(self) -> Store:
        if self._store is None:
            raise RuntimeError("EventHub.start was not called")
        return self._store()

    # the reading task

    async def _run(self) -> None:
        next_keys = time.monotonic() + self.key_check_s
        next_prune = time.monotonic() + min(60.0, self.prune_every_s)
        warned = 0.0
        while True:
            full = False
            try:
                if self.subscribers:
                    full = await self._poll()
                elif self.last_id is not None:
                    async with self._locked():  # nobody listens: re-read the position later
                        if not self.subscribers:
                            self.last_id = None
                            self._gaps.clear()
                now = time.monotonic()
                if now >= next_keys:
                    next_keys = now + self.key_check_s
                    await self._check_keys()
                if now >= next_prune:
                    next_prune = now + self.prune_every_s
                    before = datetime.now(UTC) - timedelta(seconds=self.keep_s)
                    await run_in_threadpool(prune_events, self._get_store(), before=before)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the task must outlive a database outage
                if time.monotonic() - warned > 30:
                    warned = time.monotonic()
                    logger.warning("event reading failed: %s", type(exc).__name__)
            if not full:
                await asyncio.sleep(self.poll_s)

    async def _poll(self) -> bool:
        """Read and hand out new events; True when the batch was full (read again)."""
        store = self._get_store()
        async with self._locked():
            if self.last_id is None:
                self.last_id = await run_in_threadpool(latest_event_id, store)
                return False
            now = time.monotonic()
            for gap, since in list(self._gaps.items()):
                if now - since > self.gap_wait_s:
                    del self._gaps[gap]  # a rolled-back transaction: it will never appear
            rows = await run_in_threadpool(
                read_events, store, after=self.last_id, limit=self.batch, also=list(self._gaps)
            )
            for row in rows:
                if row.id in self._gaps:
                    del self._gaps[row.id]
                elif row.id > self.last_id:
                    missing = range(self.last_id + 1, row.id)
                    if len(self._gaps) + len(missing) <= _MAX_GAPS:
                        for gap in missing:
                            self._gaps[gap] = now
                    self.last_id = row.id
                self._fan_out(row)
            return len(rows) >= self.batch

    def _fan_out(self, row: StoredEvent) -> None:
        frames: dict[tuple[str, ...] | None, bytes] = {}
        for sub in list(self.subscribers):
            if row.kind not in ROLE_KINDS.get(sub.role, ()) or row.id <= sub.seen:
                continue
            fields = ROLE_FIELDS.get((sub.role, row.kind))
            frame = frames.get(fields)
            if frame is None:
                frame = frames[fields] = row.frame(fields)
            try:
                sub.queue.put_nowait(frame)
            except asyncio.QueueFull:
                logger.info(
                    "event stream dropped: the client did not read its events",
                    extra={"key_id": sub.key_id, "queued": self.queue_max},
                )
                self._close(sub, "the client did not read its events in time", abort=True)

    async def _check_keys(self) -> None:
        if not self.subscribers:
            return
        ids = sorted({s.key_id for s in self.subscribers})
        bad = await run_in_threadpool(invalid_keys, self._get_store(), ids, now=datetime.now(UTC))
        for sub in list(self.subscribers):
            if sub.key_id in bad:
                logger.info(
                    "event stream ended: key revoked or expired", extra={"key_id": sub.key_id}
                )
                self._close(sub, "the API key was revoked or has expired")


def _drain(queue: asyncio.Queue[bytes]) -> None:
    while True:
        try:
            queue.get_nowait()
        except asyncio.QueueEmpty:
            return


def mark_aborted() -> None:
    """Note that this request's stream ends without its last chunk, on purpose."""
    _ABORTED.set(True)


class _AbortFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (_ABORTED.get() and "without completing response" in record.getMessage())


def _install_abort_filter() -> None:
    log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _AbortFilter) for f in log.filters):
        log.addFilter(_AbortFilter())


__all__ = [
    "HEARTBEAT",
    "KINDS",
    "ROLE_FIELDS",
    "ROLE_KINDS",
    "SUBSCRIBER_ROLES",
    "EventHub",
    "StoredEvent",
    "Subscriber",
    "append_event",
    "append_events",
    "append_live_events",
    "control_frame",
    "create_token",
    "invalid_keys",
    "latest_event_id",
    "mark_aborted",
    "prune_events",
    "read_events",
    "redeem_token",
]
