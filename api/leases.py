"""Stream leases: the guard of the live streams across worker processes and replicas.

:class:`~api.streams.LiveCalls` holds the streams of one process. With ``callsift serve
--workers N``, or replicas on one PostgreSQL database, one row per open stream in the
table ``stream_leases`` makes two promises hold for a whole server:

- a call has one live stream, whichever worker or replica each client reaches (a
  second one gets 4409);
- a server, all its worker processes together, serves at most ``stream_max`` streams
  (one more gets 1013). A server is named by ``Settings.instance``.

A stream claims its lease once, at open, in the thread pool (never per frame), and
releases it however it ends. Each worker refreshes the heartbeat of its leases every
``stream_lease_s / 6`` (one UPDATE); a lease without a heartbeat for ``stream_lease_s``
belongs to a dead process and counts as free, so a killed worker holds its calls at most
that long. A stream whose stale lease was taken over meanwhile goes on, but stores
nothing (the new stream stores its own result).

While the database is down, a stream of a call this worker saw arrive still opens, as
:func:`api.service.registered_call` allows: it is scored, stored nowhere, and guarded by
its process alone. Any other stream is refused with 4503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Callable

from fastapi.concurrency import run_in_threadpool

from api.store import Store, StoreError, StoreUnavailableError
from api.streams import LiveCalls, StreamBusyError, StreamError, TooManyStreamsError

logger = logging.getLogger("callsift.api.leases")

#: Heartbeats per lease timeout, and heartbeats between two sweeps of stale leases.
BEATS_PER_LEASE = 6

#: What a client is told when its stream cannot be claimed for want of the database.
CLAIM_WHILE_DOWN = (
    "database unavailable: the live stream of call {call_id} cannot be registered with "
    "this server's other workers; retry later or post the recording to "
    "/v1/calls/{call_id}/audio after the call"
)


class StreamLeases:
    """This worker process's side of the stream leases.

    Parameters
    ----------
    instance : str
        The server's name, shared by its worker processes.
    limit : int
        Live streams the server may hold (``stream_max``).
    lease_s : float
        Heartbeat age after which a lease counts as free.
    """

    def __init__(self, *, instance: str, limit: int, lease_s: float) -> None:
        self.instance = instance
        # The pid for people reading the table; the token because a restarted container
        # may reuse the pid of the process that held the leases before.
        self.worker = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.limit = limit
        self.lease_s = lease_s
        self._task: asyncio.Task[None] | None = None
        self._beats = 0
        self._failing = False

    @property
    def heartbeat_s(self) -> float:
        return self.lease_s / BEATS_PER_LEASE

    def claim(self, store: Store, call_id: str, *, degraded: bool) -> bool:
        """Claim the lease of a stream of ``call_id`` (blocking: run it in the thread pool).

        Parameters
        ----------
        degraded : bool, keyword-only
            The stream already goes on without the database (its call came from this
            worker's memory): if the database is still down it opens without a lease.

        Returns
        -------
        bool
            True when claimed; False when the stream opens without a lease.

        Raises
        ------
        StreamBusyError, TooManyStreamsError
        StreamError
            Code 4503: the database is down and the stream is not ``degraded``.
        """
        try:
            outcome = store.claim_stream(
                call_id,
                instance=self.instance,
                worker=self.worker,
                limit=self.limit,
                lease_s=self.lease_s,
            )
        except StoreUnavailableError as exc:
            if degraded:
                logger.warning("stream opened without a lease: %s", exc, extra={"call_id": call_id})
                return False
            logger.warning("stream lease not claimed: %s", exc, extra={"call_id": call_id})
            raise StreamError(CLAIM_WHILE_DOWN.format(call_id=call_id), code=4503) from exc
        if outcome == "busy":
            raise StreamBusyError(call_id)
        if outcome == "full":
            raise TooManyStreamsError(self.limit)
        return True

    def release(self, store: Store, call_id: str) -> None:
        """Drop this worker's lease of ``call_id`` (blocking); a failure is only logged."""
        try:
            store.release_stream(call_id, worker=self.worker)
        except StoreError as exc:
            logger.warning(
                "stream lease not released (free in %g s without its heartbeat): %s",
                self.lease_s,
                exc,
                extra={"call_id": call_id},
            )
        except Exception:  # the stream has ended for its client: never fail it now
            logger.exception("stream lease not released", extra={"call_id": call_id})

    def beat(self, store: Store, streams: LiveCalls) -> None:
        """Refresh this worker's leases (blocking); streams whose lease another process
        took over are marked, so their results are not stored twice."""
        held = streams.leased()
        kept = store.heartbeat_streams(self.worker, [c.call_id for c in held])
        for call in held:
            # A stream that closed meanwhile has released its lease: nothing lost.
            if call.call_id not in kept and streams.get(call.call_id) is call:
                call.lease_lost = True
                logger.warning(
                    "stream lease lost to another process; this stream's result will not be stored",
                    extra={"call_id": call.call_id},
                )
        self._beats += 1
        if self._beats % BEATS_PER_LEASE == 0:
            # Leases of servers gone for good, whose calls nobody opened again.
            store.sweep_streams(lease_s=self.lease_s)

    async def _heartbeat(self, store: Callable[[], Store], streams: LiveCalls) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await streams.blocking(self.beat, store(), streams)
            except StoreError as exc:
                if not self._failing:  # once per outage, not every few seconds
                    logger.warning(
                        "stream heartbeat failed: %s; this worker's leases count as free "
                        "after %g s without one",
                        exc,
                        self.lease_s,
                    )
                self._failing = True
            except Exception:
                logger.exception("stream heartbeat failed")
            else:
                if self._failing:
                    logger.info("stream heartbeat restored")
                self._failing = False

    def start(self, store: Callable[[], Store], streams: LiveCalls) -> None:
        """Start refreshing the heartbeats on the running event loop.

        ``store`` is called at each heartbeat, so a store replaced while running is used.
        """
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._heartbeat(store, streams))

    async def stop(self, store: Store) -> None:
        """Stop the heartbeats and drop the leases this worker still holds."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await run_in_threadpool(store.release_worker_streams, self.worker)
        except StoreError as exc:
            logger.warning("stream leases not released at shutdown: %s", exc)
        except Exception:  # the rest of the shutdown must still run
            logger.exception("stream leases not released at shutdown")
