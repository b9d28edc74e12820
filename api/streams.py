"""Live calls: decoding audio frames, scoring what has been heard, the final score.

Nothing here knows about WebSockets; :mod:`api.routers.stream` speaks the protocol and
turns the errors raised here into close codes. :class:`LiveCalls` holds the streams of
one worker process; their guard across worker processes and replicas (one stream per
call, ``stream_max`` per server) is the database's stream leases (:mod:`api.leases`).
Their scores are computed in the worker's scoring processes (:mod:`api.scoring_pool`),
which own each stream's audio and features: the event loop only moves the frames.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
import soundfile as sf

from classifier.errors import CallsiftError
from classifier.features import SR

if TYPE_CHECKING:
    from api.service import LoadedModel

T = TypeVar("T")


@dataclass(frozen=True)
class _Encoding:
    width: int  # bytes per sample
    subtype: str  # libsndfile's name, for decoding and the kept recording
    name: str  # for messages


#: 16-bit PCM, and G.711 as telephone networks carry it: mu-law (North America, Japan)
#: and A-law (Europe, Asia and Indonesia's network).
_ENCODING = {
    "pcm16": _Encoding(2, "PCM_16", "8 kHz 16-bit PCM"),
    "mulaw": _Encoding(1, "ULAW", "8 kHz mu-law"),
    "alaw": _Encoding(1, "ALAW", "8 kHz A-law"),
}
ENCODINGS: tuple[str, ...] = tuple(_ENCODING)
#: Frame duration a client may send, in ms of audio.
FRAME_MS = (20, 100)


class StreamError(CallsiftError):
    """A live stream that cannot go on; ``code`` is its WebSocket close code."""

    def __init__(self, message: str, *, code: int) -> None:
        super().__init__(message)
        self.code = code


class BadFrameError(StreamError):
    """A frame of the wrong size or encoding."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=4400)


class TooManyStreamsError(StreamError):
    """The server already serves as many live streams as it may."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"this server already scores {limit} live streams; retry later or post the "
            "recording to /v1/calls/{call_id}/audio after the call",
            code=1013,
        )


class ScoringStoppedError(StreamError):
    """The scoring process that held the stream's state died (it is started again)."""

    def __init__(self, why: str) -> None:
        super().__init__(
            f"the scoring process of this stream stopped ({why}); what was heard is lost "
            "and the stream was closed: open it again, or post the recording to "
            "/v1/calls/{call_id}/audio after the call",
            code=1011,
        )


class StreamBusyError(StreamError):
    """The call already has a live stream."""

    def __init__(self, call_id: str) -> None:
        super().__init__(
            f"call {call_id} already has a live stream; close it before opening another",
            code=4409,
        )


@lru_cache(maxsize=2)
def _g711_table(subtype: str) -> np.ndarray:
    """The 256 G.711 codes (``subtype`` ULAW or ALAW) as float32, decoded by libsndfile.

    Using the decoder :func:`classifier.audio.load_audio` uses makes a streamed call
    and the same call uploaded as a G.711 WAV give identical samples.
    """
    codes = np.arange(256, dtype=np.uint8).tobytes()
    table, _ = sf.read(
        io.BytesIO(codes), format="RAW", subtype=subtype, samplerate=SR, channels=1, dtype="float32"
    )
    return np.asarray(table, dtype=np.float32)


def frame_limits(encoding: str) -> tuple[int, int]:
    """Smallest and largest frame in bytes for ``encoding``."""
    width = _ENCODING[encoding].width
    return FRAME_MS[0] * SR // 1000 * width, FRAME_MS[1] * SR // 1000 * width


def check_frame(data: bytes, encoding: str) -> int:
    """Samples in one frame (raises BadFrameError for a frame of the wrong size)."""
    lo, hi = frame_limits(encoding)
    width = _ENCODING[encoding].width
    if not lo <= len(data) <= hi or len(data) % width:
        raise BadFrameError(
            f"frame of {len(data)} bytes; expected {lo} to {hi} bytes"
            f"{' (an even number)' if width == 2 else ''}: 20 to 100 ms of "
            f"{_ENCODING[encoding].name}"
        )
    return len(data) // width


def decode(data: bytes, encoding: str) -> np.ndarray:
    """Samples of whole frames as float32 at full scale 1.0 (as load_audio gives them)."""
    if encoding == "pcm16":
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / np.float32(32768.0)
    return _g711_table(_ENCODING[encoding].subtype)[np.frombuffer(data, dtype=np.uint8)]


def encode_wav(samples: np.ndarray, encoding: str) -> bytes:
    """The heard audio as a WAV file in the stream's own encoding (lossless round trip)."""
    out = io.BytesIO()
    # Integers carry the exact 16-bit values (libsndfile's float writer rescales).
    ints = np.round(samples * 32768.0).clip(-32768, 32767).astype(np.int16)
    sf.write(out, ints, SR, format="WAV", subtype=_ENCODING[encoding].subtype)
    return out.getvalue()


@dataclass
class LiveCall:
    """One live stream, as its worker sees it (its audio and features are in its
    scoring process, :mod:`api.scoring_pool`).

    Attributes
    ----------
    call_id, caller_id : str
    started_at : datetime
    encoding : {"pcm16", "mulaw", "alaw"}
    history : dict
        The caller's history features when the stream opened.
    history_unavailable : bool
    max_samples : int
        Samples the stream scores (``stream_max_seconds``); later ones are counted only.
    waiting : deque of bytes
        Frames received and kept, not yet scored: a client sending faster than real time
        is read as it sends (so that the WebSocket's pings and pongs are never stuck
        behind its audio) and scored at real-time pace. What waits is part of the
        recording anyway: with what was scored at most ``stream_max_seconds`` of audio.
    pending : list of bytes
        Frames scored (taken) and not yet sent to the scoring process: they go with the
        next update, in one message.
    leased : bool
        The stream holds its lease in the database; False when it opened while the
        database was down (then nothing of it is stored).
    lease_lost : bool
        The lease went stale and another process took the call over: the stream goes
        on, but its result is not stored (the new stream's is).
    watched : dict or None
        The watched features of the latest score (stored with the final one, for drift).
    process, generation, sid
        The scoring process the stream is pinned to, which run of it, and the stream's
        number there.
    """

    call_id: str
    caller_id: str
    started_at: datetime
    encoding: str
    history: dict[str, float]
    history_unavailable: bool
    max_samples: int
    opened: float = field(default_factory=time.monotonic)
    first_frame: float | None = None
    last_message: float = field(default_factory=time.monotonic)
    frames: int = 0  # frames scored
    last_update_s: float = 0.0
    # The flag and time of the last interim score pushed to the consoles (api.events).
    event_flag: str | None = None
    event_at: float = 0.0
    waiting: deque[bytes] = field(default_factory=deque)
    pending: list[bytes] = field(default_factory=list)
    received: int = 0  # samples received, kept or not
    taken: int = 0  # samples of the frames scored
    leased: bool = True
    lease_lost: bool = False
    released: bool = False  # its place in LiveCalls and its lease given back
    watched: dict[str, float | None] | None = None
    # An api.scoring_pool.ScoringProcess (not imported: that module builds on this one).
    process: Any = None
    generation: int = 0
    sid: int = 0

    def receive(self, data: bytes) -> None:
        """Check one frame and keep it until it is scored (raises BadFrameError)."""
        n = check_frame(data, self.encoding)
        if self.first_frame is None:
            self.first_frame = time.monotonic()
        if self.received < self.max_samples:
            self.waiting.append(data)  # the part past the limit is cut off when decoded
        self.received += n

    def due_at(self, max_ahead_s: float) -> float | None:
        """When the first waiting frame may be scored (``time.monotonic``): once the audio
        scored with it is at most ``max_ahead_s`` ahead of the time since the first
        frame. None when no frame waits."""
        if not self.waiting or self.first_frame is None:
            return None
        n = len(self.waiting[0]) // _ENCODING[self.encoding].width
        return self.first_frame + (self.taken + n) / SR - max_ahead_s

    def take(self) -> None:
        """Score the first waiting frame (sent to the scoring process with the next
        update, a second's worth at a time)."""
        data = self.waiting.popleft()
        self.pending.append(data)
        self.frames += 1
        self.taken += len(data) // _ENCODING[self.encoding].width

    @property
    def heard_s(self) -> float:
        """Seconds of audio scored (up to the stream's limit)."""
        return min(self.taken, self.max_samples) / SR

    @property
    def dropped_s(self) -> float:
        """Seconds received past the limit (never scored)."""
        return max(0, self.received - self.max_samples) / SR


#: Threads of the streams' database and file work (:meth:`LiveCalls.blocking`); the
#: database pool holds 15 connections, shared with the requests.
IO_THREADS = 8
#: Interim score events are written together, at most this long after the first: one
#: transaction for all the worker's streams instead of one per event.
EVENT_BATCH_S = 0.2
#: At stop, how long the last event writes may take before the I/O threads go.
EVENT_FLUSH_TIMEOUT_S = 5.0
#: An interim score event: kind, data and the time it was published.
EventRow = tuple[str, dict[str, Any], datetime]


@dataclass(frozen=True)
class Scored:
    """A score computed by a scoring process.

    Attributes
    ----------
    payload : dict
        :func:`api.service.score_payload` of the score.
    elapsed_s : float
        Time the process spent on it (the frames' decoding and features included).
    watched : dict
        The watched features of the score (stored with the final one, for drift).
    wav : bytes or None
        The audio scored as a WAV file in the stream's encoding, when asked for.
    """

    payload: dict[str, Any]
    elapsed_s: float
    watched: dict[str, float | None]
    wav: bytes | None


class StreamScorer(Protocol):
    """What :class:`LiveCalls` needs of the scoring processes
    (:class:`api.scoring_pool.ScoringPool`, which builds on this module)."""

    async def start(self, current: Callable[[], LoadedModel | None]) -> None: ...

    def open(self, live: LiveCall, info: Any) -> None: ...

    def close(self, live: LiveCall) -> None: ...

    def push(self, live: LiveCall) -> None: ...

    async def score(
        self, live: LiveCall, loaded: LoadedModel, *, complete: bool, recording: bool = False
    ) -> Scored: ...

    async def stop(self) -> None: ...


class LiveCalls:
    """The live streams of this worker process, with a limit of its own, and the
    scoring processes that compute their updates (:mod:`api.scoring_pool`).

    The server's limit across its processes is the leases' (:mod:`api.leases`); this one
    also holds when the database is down.

    Parameters
    ----------
    limit : int, keyword-only
        Streams this worker serves at once.
    scorer : StreamScorer or None, keyword-only
        The worker's scoring processes (:class:`api.scoring_pool.ScoringPool`); None:
        no stream can be opened.
    """

    def __init__(
        self,
        *,
        limit: int,
        scorer: StreamScorer | None = None,
        event_batch_s: float = EVENT_BATCH_S,
    ) -> None:
        self.limit = limit
        self._calls: dict[str, LiveCall] = {}
        self._lock = threading.Lock()
        self.scorer = scorer
        self.event_batch_s = event_batch_s
        # Interim score events waiting to be written together (publish), the timer that
        # writes them, the writes under way (a task without a reference may be collected
        # mid-way), and what writes them (start).
        self._events: list[EventRow] = []
        self._flush_timer: asyncio.TimerHandle | None = None
        self._writing: set[asyncio.Future[None]] = set()
        self._write_events: Callable[[list[EventRow]], None] | None = None
        self._io = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="stream-io")

    async def start(
        self,
        current: Callable[[], LoadedModel | None],
        *,
        write_events: Callable[[list[EventRow]], None] | None = None,
    ) -> None:
        """Start the I/O threads, then fork the scoring processes (once the model is
        loaded and warm: they share it). ``write_events`` stores interim score events
        (:meth:`publish`) on the I/O threads; None drops them."""
        self._write_events = write_events
        # A thread started on demand is started by the event loop, which waits until it
        # runs: 120-260 ms on a busy machine (loop watch, 200-stream bench, 2026-12-07),
        # every stream of the worker late meanwhile. Started here, they never retire.
        started = threading.Barrier(IO_THREADS + 1)
        for _ in range(IO_THREADS):
            self._io.submit(started.wait, 10.0)
        await asyncio.to_thread(started.wait, 10.0)
        if self.scorer is not None:
            await self.scorer.start(current)

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the streams' I/O threads: their database and file work
        (lookup and lease claim at open, recording and score at the end, releases and
        heartbeats), apart from the requests' thread pool."""
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    def publish(self, kind: str, data: dict[str, Any], at: datetime) -> None:
        """Queue an interim score event; the worker's queued events are written together,
        at most :attr:`event_batch_s` after the first, without the stream waiting."""
        self._events.append((kind, data, at))
        if self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(
                self.event_batch_s, self._flush
            )

    def _flush(self) -> None:
        self._flush_timer = None
        rows, self._events = self._events, []
        if rows and self._write_events is not None:
            task = asyncio.ensure_future(self.blocking(self._write_events, rows))
            self._writing.add(task)
            task.add_done_callback(self._writing.discard)

    async def stop(self) -> None:
        """Write the events still queued, then stop the scoring processes and the I/O
        threads."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        self._flush()
        if self._writing:
            await asyncio.wait(set(self._writing), timeout=EVENT_FLUSH_TIMEOUT_S)
        if self.scorer is not None:
            await self.scorer.stop()
        self._io.shutdown(wait=False, cancel_futures=True)

    def __len__(self) -> int:
        return len(self._calls)

    def open(self, call: LiveCall, info: Any) -> None:
        """Register a stream and open it in a scoring process (raises
        TooManyStreamsError, StreamBusyError, ScoringStoppedError)."""
        with self._lock:
            if call.call_id in self._calls:
                raise StreamBusyError(call.call_id)
            if len(self._calls) >= self.limit:
                raise TooManyStreamsError(self.limit)
            self._calls[call.call_id] = call
        try:
            if self.scorer is None:
                raise StreamError("live scoring is not running on this worker", code=1011)
            self.scorer.open(call, info)
        except BaseException:
            self.close(call)
            raise

    def get(self, call_id: str) -> LiveCall | None:
        return self._calls.get(call_id)

    def leased(self) -> list[LiveCall]:
        """The open streams holding their lease (the ones a heartbeat refreshes)."""
        with self._lock:
            return [c for c in self._calls.values() if c.leased and not c.lease_lost]

    def close(self, call: LiveCall) -> None:
        """Forget the stream, and free its state in its scoring process."""
        with self._lock:
            if self._calls.get(call.call_id) is call:
                del self._calls[call.call_id]
        if self.scorer is not None:
            self.scorer.close(call)
