"""Live streams scored in worker processes, off the event loop.

Each server worker owns a small pool of scoring processes (``stream_processes``, one by
default). A stream is pinned to one of them at open, and that process owns the stream's
state: its audio, its speech detection and its running call statistics
(:class:`~classifier.streaming.StreamingFeatures`). The worker's event loop only moves
bytes: the frames a stream has taken go to its process in one message per update, and
the update comes back as a small dict, read by the loop like any socket
(``asyncio`` streams over a socket pair: no thread, no blocking write).

A scoring process is forked from its worker once the model is loaded and its compiled
kernels warmed up, so it starts at once and shares the model's memory; a process forked
before any model was loaded warms up when it gets its first one. A process that dies is
forked again; the streams it held end with :class:`ScoringStoppedError` (1011 and a
message saying so), never a hang.

Messages are pickles behind a 4-byte length, in order on one socket pair per process:
``("model", key, blob)``, ``("open", sid, info)``, ``("push", sid, bytes)``,
``("score", sid, request, key, complete, recording)``, ``("close", sid)``; the process
answers each score with ``("ok", request, payload, elapsed_s, watched, wav)`` or
``("error", request, detail)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import itertools
import logging
import os
import pickle
import signal
import socket
import struct
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, NoReturn

from api.service import LoadedModel, score_payload, warm_up
from api.streams import (
    LiveCall,
    Scored,
    ScoringStoppedError,
    StreamError,
    decode,
    encode_wav,
)
from classifier.drift import monitored_values
from classifier.features import call_features
from classifier.scoring import ScoringModel
from classifier.streaming import StreamingFeatures

logger = logging.getLogger("callsift.api.stream")

_HEADER = struct.Struct("!I")
#: How long a scoring process may take to exit once told to, before it is killed.
STOP_TIMEOUT_S = 2.0


def _frame(message: tuple[Any, ...]) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


@dataclass(frozen=True)
class StreamInfo:
    """What a scoring process needs to know of a stream, sent once at open."""

    caller_id: str
    started_at: datetime
    history: dict[str, float]
    timezone: tzinfo | None
    encoding: str
    max_seconds: float


# --- the scoring process --------------------------------------------------------------


class _Stream:
    """One stream's state in its scoring process."""

    def __init__(self, info: StreamInfo) -> None:
        self.info = info
        self.features = StreamingFeatures(max_seconds=info.max_seconds)
        self.raw: list[bytes] = []
        self.pushed_s = 0.0  # time spent decoding and pushing since the last score
        self.error: str | None = None

    def push(self, data: bytes) -> None:
        start = time.perf_counter()
        self.raw.append(data)
        self.features.push(decode(data, self.info.encoding))
        self.pushed_s += time.perf_counter() - start

    def score(
        self, model: ScoringModel, version: str, *, complete: bool, recording: bool
    ) -> Scored:
        start = time.perf_counter()
        feats = call_features(
            None,
            caller_id=self.info.caller_id,
            started_at=self.info.started_at,
            duration_s=self.features.heard_s,
            history=self.info.history,
            timezone=self.info.timezone,
            acoustic=self.features.features(),
            complete=complete,
        )
        score = model.score(feats, stage="call")
        watched = monitored_values(feats)
        elapsed = time.perf_counter() - start + self.pushed_s
        self.pushed_s = 0.0
        wav = None
        if recording:
            y = decode(b"".join(self.raw), self.info.encoding)  # one sample per frame sample
            wav = encode_wav(y[: self.features.max_samples], self.info.encoding)
        return Scored(score_payload(score, model_version=version), elapsed, watched, wav)


def _receive(reader: io.BufferedReader[socket.SocketIO]) -> tuple[Any, ...] | None:
    head = reader.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    size = _HEADER.unpack(head)[0]
    body = reader.read(size)
    return None if len(body) < size else pickle.loads(body)


def _serve(sock: socket.socket, models: dict[int, ScoringModel], *, warmed: bool) -> None:
    """Answer the worker's messages until it closes its end."""
    streams: dict[int, _Stream] = {}
    # Buffered: an update's push and score messages come in one read, not four recv calls.
    reader = io.BufferedReader(socket.SocketIO(sock, "rb"), 1 << 16)
    while (message := _receive(reader)) is not None:
        kind = message[0]
        if kind == "model":
            _, key, blob = message
            model = pickle.loads(blob)
            if not warmed:  # forked before any model: the compiled kernels are cold
                warm_up(model)
                warmed = True
            # The previous model may still be asked for by an update already on its way.
            for old in sorted(models)[:-1]:
                del models[old]
            models[key] = model
        elif kind == "open":
            _, sid, info = message
            streams[sid] = _Stream(info)
        elif kind == "push":
            _, sid, data = message
            stream = streams.get(sid)
            if stream is not None and stream.error is None:
                try:
                    stream.push(data)
                except Exception:
                    stream.error = traceback.format_exc(limit=-3)
        elif kind == "score":
            _, sid, request, key, complete, recording = message
            stream = streams.get(sid)
            try:
                if stream is None:
                    raise LookupError(f"no stream {sid} in this scoring process")
                if stream.error is not None:
                    raise RuntimeError(stream.error)
                model = models[key]
                scored = stream.score(model, model.version, complete=complete, recording=recording)
                answer: tuple[Any, ...] = (
                    "ok",
                    request,
                    scored.payload,
                    scored.elapsed_s,
                    scored.watched,
                    scored.wav,
                )
            except Exception:
                answer = ("error", request, traceback.format_exc(limit=-3))
            sock.sendall(_frame(answer))
        elif kind == "close":
            streams.pop(message[1], None)


def _child(sock: socket.socket, models: dict[int, ScoringModel], *, warmed: bool) -> NoReturn:
    """The forked scoring process: serve, then exit without the worker's clean-up."""
    code = 0
    try:
        # Ctrl-C reaches the whole process group: the worker stops its scoring processes
        # itself (its end of the socket closes, and they exit).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with contextlib.suppress(ValueError):
            signal.set_wakeup_fd(-1)
        gc.callbacks.clear()  # the worker's loop watch: not this process's collections
        # The worker's sockets (listening socket, database connections, event loop) are
        # not this process's: closed here, a dying worker's port and connections are
        # not kept open by its scoring process.
        fd = sock.fileno()
        os.closerange(3, fd)
        os.closerange(fd + 1, os.sysconf("SC_OPEN_MAX"))
        _serve(sock, models, warmed=warmed)
    except BaseException:
        code = 1
        with contextlib.suppress(Exception):
            os.write(2, f"callsift scoring process failed:\n{traceback.format_exc()}".encode())
    finally:
        os._exit(code)


# --- the worker's side ----------------------------------------------------------------


class ScoringProcess:
    """One scoring process, seen from its worker: its socket, its open requests and
    streams. :meth:`start` forks it (again, after it died)."""

    def __init__(self, index: int, current: Callable[[], LoadedModel | None]) -> None:
        self.index = index
        self._current = current
        self.pid = 0
        self.generation = 0
        self.streams = 0  # streams pinned to the running process
        self.alive = False
        self.stopping = False
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[tuple[Any, ...]]] = {}
        self._requests = itertools.count()
        self._model: LoadedModel | None = None
        self._model_key = 0
        self._model_lock = asyncio.Lock()
        self._why = ""

    async def start(self) -> None:
        """Fork the process (from this worker, model loaded and kernels warm)."""
        loaded = self._current()
        models = {} if loaded is None else {0: loaded.model}
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            _child(theirs, models, warmed=loaded is not None)
        theirs.close()
        self.pid = pid
        self.generation += 1
        self.streams = 0
        self._model, self._model_key = loaded, 0
        self._model_lock = asyncio.Lock()
        reader, self._writer = await asyncio.open_unix_connection(sock=ours)
        self.alive = True
        self._reader_task = asyncio.ensure_future(self._read(reader, self.generation))
        logger.info("scoring process started", extra={"pid": pid, "scorer": self.index})

    def send(self, message: tuple[Any, ...], *, before: bytes = b"") -> None:
        """Queue ``message`` for the process, after the framed messages ``before`` (never
        blocks: the transport buffers)."""
        if self.alive and self._writer is not None:
            self._writer.write(before + _frame(message))

    async def ensure_model(self, loaded: LoadedModel) -> int:
        """The key of ``loaded`` in the process, sent first when it is not there yet (a
        model reloaded since the fork)."""
        if loaded is self._model:
            return self._model_key
        async with self._model_lock:
            if loaded is not self._model:
                blob = await asyncio.to_thread(pickle.dumps, loaded.model, 5)
                key = self._model_key + 1
                self.send(("model", key, blob))
                self._model, self._model_key = loaded, key
            return self._model_key

    async def request(self, message: tuple[Any, ...], *, before: bytes = b"") -> tuple[Any, ...]:
        """Send a score request (its id goes in third place) after the framed messages
        ``before``, in one write, and wait for the answer."""
        request = next(self._requests)
        future: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()
        self._pending[request] = future
        self.send((message[0], message[1], request, *message[2:]), before=before)
        return await future

    async def _read(self, reader: asyncio.StreamReader, generation: int) -> None:
        why = "its connection closed"
        try:
            while True:
                head = await reader.readexactly(_HEADER.size)
                body = await reader.readexactly(_HEADER.unpack(head)[0])
                answer = pickle.loads(body)
                future = self._pending.pop(answer[1], None)
                if future is not None and not future.done():
                    future.set_result(answer)
        except asyncio.IncompleteReadError:
            pass
        except asyncio.CancelledError:
            why = "the worker stopped"
            raise
        except Exception as exc:  # a garbled answer: the process cannot be trusted
            why = f"{type(exc).__name__}: {exc}"
        finally:
            await self._died(generation, why)

    async def _died(self, generation: int, why: str) -> None:
        if generation != self.generation or not self.alive:
            return
        self.alive = False
        status = await self._reap()
        self._why = f"{status}; {why}" if status else why
        error = ScoringStoppedError(self._why)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()
        if self._writer is not None:
            self._writer.close()
        if self.stopping:
            return
        logger.error(
            "scoring process stopped; starting another",
            extra={"pid": self.pid, "scorer": self.index, "reason": self._why},
        )
        try:
            await self.start()
        except Exception:
            logger.exception("scoring process not restarted", extra={"scorer": self.index})

    async def _reap(self, timeout_s: float = STOP_TIMEOUT_S) -> str:
        """Wait for the process to exit (killed after ``timeout_s``); its exit status."""
        from api.supervisor import exit_reason

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return ""
            if pid:
                return exit_reason(
                    -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
                )
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                deadline = time.monotonic() + timeout_s
            await asyncio.sleep(0.02)

    def check(self, generation: int) -> None:
        """Raise ScoringStoppedError when the process a stream was pinned to has died."""
        if generation != self.generation or not self.alive:
            raise ScoringStoppedError(self._why or "it was restarted")

    async def stop(self) -> None:
        self.stopping = True
        if self._writer is not None:
            self._writer.close()  # the process reads the end and exits
        if self._reader_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        if self.pid and self.alive:
            await self._reap()
        self.alive = False


class ScoringPool:
    """The scoring processes of one worker and the streams pinned to them.

    Parameters
    ----------
    processes : int
        Scoring processes of this worker.
    """

    def __init__(self, processes: int) -> None:
        self.size = processes
        self.processes: list[ScoringProcess] = []
        self._sids = itertools.count(1)

    async def start(self, current: Callable[[], LoadedModel | None]) -> None:
        """Fork the processes; ``current`` gives the serving model (None if none)."""
        if self.processes:
            return
        for index in range(self.size):
            process = ScoringProcess(index, current)
            await process.start()
            self.processes.append(process)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.alive]

    def open(self, live: LiveCall, info: StreamInfo) -> None:
        """Pin ``live`` to the process holding the fewest streams and open it there."""
        if not self.processes:
            raise StreamError("live scoring is not running on this worker", code=1011)
        process = min(self.processes, key=lambda p: (not p.alive, p.streams))
        process.check(process.generation)
        live.sid = next(self._sids)
        live.process, live.generation = process, process.generation
        process.streams += 1
        process.send(("open", live.sid, info))

    def push(self, live: LiveCall) -> None:
        """Send the frames the stream has taken since the last push."""
        process = live.process
        message = self._take(live)
        if process is not None and message and live.generation == process.generation:
            process.send(message)

    @staticmethod
    def _take(live: LiveCall) -> tuple[Any, ...] | None:
        """The push message of the frames taken since the last one (None: none)."""
        if live.process is None or not live.pending:
            return None
        data = b"".join(live.pending)
        live.pending.clear()
        return ("push", live.sid, data)

    async def score(
        self, live: LiveCall, loaded: LoadedModel, *, complete: bool, recording: bool = False
    ) -> Scored:
        """Score of what the stream has heard (raises ScoringStoppedError when its process
        died, RuntimeError when scoring failed there: the route closes the stream with
        1011 and logs it)."""
        process = live.process
        assert process is not None, "stream not opened"
        push = self._take(live)
        process.check(live.generation)
        key = await process.ensure_model(loaded)
        process.check(live.generation)
        # The frames and the request in one write: one syscall, one wake-up of the process.
        answer = await process.request(
            ("score", live.sid, key, complete, recording),
            before=b"" if push is None else _frame(push),
        )
        if answer[0] == "error":
            logger.error(
                "live scoring failed in its process: %s", answer[2], extra={"call_id": live.call_id}
            )
            raise RuntimeError("live scoring failed (see server log)")
        _, _, payload, elapsed, watched, wav = answer
        return Scored(payload, elapsed, watched, wav)

    def close(self, live: LiveCall) -> None:
        """Free the stream's state in its process."""
        process = live.process
        if process is None:
            return
        live.process = None
        if live.generation == process.generation:
            process.streams -= 1
            process.send(("close", live.sid))

    async def stop(self) -> None:
        for process in self.processes:
            await process.stop()
        self.processes = []
