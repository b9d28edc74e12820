"""Leases of live streams: which worker of which server holds a call's stream, so that
replicas share the stream limit and take over the streams of a server gone away."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from api.db import StreamLease
from api.store.checks import check_call_id, check_lease_owner
from api.store.engine import StoreEngine
from api.store.rows import utc_now
from classifier.errors import InvalidParameterError

#: Tries of a stream claim that withdrew from a race for a server's last places.
_CLAIM_ATTEMPTS = 3

#: What claiming a stream lease found (:meth:`Store.claim_stream`).
StreamClaim = Literal["claimed", "busy", "full"]


class LeaseStore(StoreEngine):
    """Claiming, refreshing and dropping stream leases."""

    def _lease_clock(self, lease_s: float) -> tuple[Any, Any]:
        """Now, and the oldest heartbeat of a live lease, as SQL values.

        PostgreSQL takes its own clock: replicas on several hosts then compare heartbeats
        on one clock, whatever their own drift. A SQLite file has one host.
        """
        if self._sqlite:
            now = utc_now()
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
        check_call_id(call_id)
        check_lease_owner(instance, worker)
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
