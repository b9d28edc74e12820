"""Watch the event loop: how late it runs, and what held it when it stalled.

The event loop moves every live stream's frames and updates (they are scored in the
worker's scoring processes, :mod:`api.scoring_pool`), so a loop that stops for 300 ms
makes every stream of the worker late by that much. :class:`LoopWatch` measures the loop's lag
(a Prometheus histogram) and, when the loop stalls for longer than ``stall_s``, a
watchdog thread samples the loop thread's stack so that the warning logged on recovery
names the code that held it, and the other threads running then (the loop may be
waiting for the GIL one of them holds).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import threading
import time
import traceback
from pathlib import Path
from types import FrameType

from prometheus_client import Histogram

logger = logging.getLogger("callsift.api.loop")

#: Frames of the sampled stack kept in the warning, innermost last.
STACK_DEPTH = 8


#: Innermost functions of a thread that waits (a lock, a queue, a socket): not the one
#: holding the loop back.
_WAITING = frozenset({"wait", "get", "select", "poll", "accept", "_wait_for_tstate_lock"})


def _busy_threads(frames: dict[int, FrameType], *, skip: set[int]) -> list[str]:
    names = {t.ident: t.name for t in threading.enumerate()}
    out = []
    for ident, frame in frames.items():
        if ident in skip or frame.f_code.co_name in _WAITING:
            continue
        top = " < ".join(_stack(frame)[::-1][:3])
        out.append(f"{names.get(ident, ident)}: {top}")
    return out


def _is_library(filename: str) -> bool:
    return "site-packages" in filename or "/lib/python3" in filename


def _line(f: traceback.FrameSummary) -> str:
    return f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno} {f.name}"


def _stack(frame: FrameType | None) -> list[str]:
    """The innermost frames, outermost first; when they are all a library's, the
    innermost frame of callsift's own code leads, then "...": a stall deep in numba's
    compiler says which of our calls compiled."""
    if frame is None:
        return []
    full = traceback.extract_stack(frame)
    summary = full[-STACK_DEPTH:]
    lines = [_line(f) for f in summary]
    if len(full) > STACK_DEPTH and all(_is_library(f.filename) for f in summary):
        own = [f for f in full[:-STACK_DEPTH] if not _is_library(f.filename)]
        if own:
            lines = [_line(own[-1]), "...", *lines]
    return lines


def _read_schedstat(path: Path | None) -> tuple[int, int] | None:
    """Nanoseconds a thread has run and waited runnable (Linux ``schedstat``)."""
    if path is None:
        return None
    try:
        on_cpu, waiting, _ = path.read_text().split()
        return int(on_cpu), int(waiting)
    except (OSError, ValueError):
        return None


class LoopWatch:
    """Lag of the running event loop, and the stacks of its stalls.

    Parameters
    ----------
    lag : prometheus_client.Histogram
        Observes how much later than asked each tick of the loop ran, in seconds.
    gc_pause : prometheus_client.Histogram
        Observes each garbage collection of the process, by generation, in seconds.
    stall_s : float
        A tick this much late is logged as a stall, with the stack sampled while it
        lasted.
    tick_s : float
        How often the loop is asked to tick.
    """

    def __init__(
        self, lag: Histogram, gc_pause: Histogram, *, stall_s: float, tick_s: float = 0.05
    ) -> None:
        self.lag = lag
        self.gc_pause = gc_pause
        self._gc_start = 0.0
        self.stall_s = stall_s
        self.tick_s = tick_s
        self.stalls = 0
        self._beat = time.monotonic()
        self._sampled: list[str] = []
        self._others: list[str] = []
        self._loop_thread = 0
        self._schedstat: Path | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        """Start ticking on the running loop, and the watchdog thread."""
        self._loop_thread = threading.get_ident()
        path = Path(f"/proc/self/task/{threading.get_native_id()}/schedstat")
        self._schedstat = path if _read_schedstat(path) is not None else None
        self._beat = time.monotonic()
        self._stop.clear()
        self._task = asyncio.get_running_loop().create_task(self._tick())
        self._thread = threading.Thread(target=self._watch, name="loopwatch", daemon=True)
        self._thread.start()
        gc.callbacks.append(self._on_gc)

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    async def _tick(self) -> None:
        before = _read_schedstat(self._schedstat)
        while True:
            asked = time.monotonic()
            await asyncio.sleep(self.tick_s)
            now = time.monotonic()
            self._beat = now
            late = max(0.0, now - asked - self.tick_s)
            self.lag.observe(late)
            after = _read_schedstat(self._schedstat)
            if late >= self.stall_s:
                self.stalls += 1
                stack, self._sampled = self._sampled, []
                others, self._others = self._others, []
                extra: dict[str, object] = {
                    "stall_ms": round(late * 1000, 1),
                    "stack": stack,
                    "threads": others,
                }
                if before is not None and after is not None:
                    # Where the loop thread's time went since the last tick: running,
                    # runnable but not given a CPU, or neither (waiting: the GIL, I/O).
                    extra["on_cpu_ms"] = round((after[0] - before[0]) / 1e6, 1)
                    extra["waiting_for_cpu_ms"] = round((after[1] - before[1]) / 1e6, 1)
                logger.warning("event loop stalled", extra=extra)
            before = after

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        # A collection holds the GIL throughout: every thread of the process waits.
        if phase == "start":
            self._gc_start = time.perf_counter()
            return
        pause = time.perf_counter() - self._gc_start
        self.gc_pause.labels(generation=str(info["generation"])).observe(pause)
        if pause >= self.stall_s:
            logger.warning(
                "garbage collection paused the worker",
                extra={
                    "pause_ms": round(pause * 1000, 1),
                    "generation": info["generation"],
                    "collected": info["collected"],
                },
            )

    def _watch(self) -> None:
        # Samples once per stall, half-way to the threshold past the expected tick, so
        # the stack is of the stall itself rather than of the code that ended it.
        sampled_for = -1.0
        while not self._stop.wait(self.tick_s / 2):
            beat = self._beat
            if beat != sampled_for and time.monotonic() - beat > self.tick_s + self.stall_s / 2:
                sampled_for = beat
                frames = sys._current_frames()
                self._sampled = _stack(frames.get(self._loop_thread))
                # The loop may be waiting for the GIL: a thread running then holds it.
                self._others = _busy_threads(
                    frames, skip={self._loop_thread, threading.get_ident()}
                )
