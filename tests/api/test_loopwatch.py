"""The event-loop watch: lag, stalls with the code that held the loop, GC pauses."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import time

import pytest

from api.loopwatch import LoopWatch
from api.observability import Metrics
from api.streams import LiveCalls


def _hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)


def _count(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def test_a_stall_is_logged_with_the_code_that_held_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    watch = LoopWatch(metrics.loop_lag_seconds, metrics.gc_pause_seconds, stall_s=0.1)

    async def main() -> None:
        watch.start()
        await asyncio.sleep(0.2)  # ticks on time
        _hold_the_loop(0.4)
        await asyncio.sleep(0.2)
        await watch.stop()

    with caplog.at_level(logging.WARNING, logger="callsift.api.loop"):
        asyncio.run(main())
    stalls = [r for r in caplog.records if r.getMessage() == "event loop stalled"]
    assert len(stalls) == 1 and watch.stalls == 1
    assert 300 <= stalls[0].stall_ms <= 1000  # type: ignore[attr-defined]
    assert any("_hold_the_loop" in line for line in stalls[0].stack)  # type: ignore[attr-defined]
    ticks = _count(metrics, "callsift_event_loop_lag_seconds_count")
    late = ticks - _count(metrics, "callsift_event_loop_lag_seconds_bucket", le="0.25")
    assert ticks >= 4 and late == 1


def test_garbage_collections_are_timed_by_generation() -> None:
    metrics = Metrics()
    watch = LoopWatch(metrics.loop_lag_seconds, metrics.gc_pause_seconds, stall_s=1.0)

    async def main() -> None:
        watch.start()
        gc.collect()
        await watch.stop()
        gc.collect()  # after stop: not counted

    asyncio.run(main())
    assert _count(metrics, "callsift_gc_pause_seconds_count", generation="2") == 1


def test_the_streams_blocking_work_runs_on_their_own_threads() -> None:
    streams = LiveCalls(limit=4)
    try:
        assert asyncio.run(_run(streams)) == 42
    finally:
        asyncio.run(streams.stop())


async def _run(streams: LiveCalls) -> int:
    def where() -> int:
        return 42 if threading.current_thread().name.startswith("stream-io") else 0

    return await streams.blocking(where)


def test_a_stall_deep_in_a_library_names_our_call_that_led_there() -> None:
    from api.loopwatch import STACK_DEPTH, _stack

    seen: list[str] = []

    def deep(n: int) -> None:
        # The stdlib's frames stand for a library's: copy.deepcopy recursing n levels.
        import copy

        class Leaf:
            def __deepcopy__(self, memo: dict[int, object]) -> object:
                seen.extend(_stack(sys._getframe(1)))  # from copy.py inwards
                return self

        nested: object = Leaf()
        for _ in range(n):
            nested = [nested]
        copy.deepcopy(nested)

    deep(STACK_DEPTH)
    stack = seen
    assert len(stack) > STACK_DEPTH
    assert stack[1] == "..." and "deep" in stack[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="schedstat is Linux's")
def test_a_stall_says_whether_the_loop_ran_or_waited(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    watch = LoopWatch(metrics.loop_lag_seconds, metrics.gc_pause_seconds, stall_s=0.1)

    def spin(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    async def main() -> None:
        watch.start()
        await asyncio.sleep(0.1)
        _hold_the_loop(0.3)  # asleep: neither running nor runnable
        await asyncio.sleep(0.1)
        spin(0.3)  # running
        await asyncio.sleep(0.1)
        await watch.stop()

    with caplog.at_level(logging.WARNING, logger="callsift.api.loop"):
        asyncio.run(main())
    # The two holds, whatever short stalls a busy machine adds around them.
    held = [
        r
        for r in caplog.records
        if r.getMessage() == "event loop stalled" and r.stall_ms >= 250  # type: ignore[attr-defined]
    ]
    slept, spun = held
    # Asleep, the thread neither runs nor waits for a core; spinning it does one or the
    # other all along (which, depends on what else the machine runs).
    assert slept.on_cpu_ms + slept.waiting_for_cpu_ms < 100  # type: ignore[attr-defined]
    assert spun.on_cpu_ms + spun.waiting_for_cpu_ms >= 250  # type: ignore[attr-defined]
