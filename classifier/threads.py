"""BLAS threads around the feature code.

The features multiply tall, thin matrices (frames x STFT bins by a few columns). With
several BLAS threads OpenBLAS splits those products into blocks whose sums round
differently, so the same recording gave other feature bits depending on
``OPENBLAS_NUM_THREADS`` and the number of cores (``mfcc_0_std`` 44.03921289370981
against 44.039213008514665). The feature code therefore runs its products on one BLAS
thread, whatever the process's setting: the training table and the service then
compute the same bits. One thread is also the faster choice for these shapes.

OpenBLAS (0.3.31) ignores a change of its thread count made from any thread but the
main one, so :func:`one_blas_thread` holds in the main thread only. A program that
extracts features on threads of its own sets one BLAS thread at its start
(:func:`single_threaded_blas`, from the main thread), as the service and the feature
jobs do.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

__all__ = ["one_blas_thread", "single_threaded_blas"]


def single_threaded_blas() -> None:
    """Limit BLAS to one thread in this whole process (call once, at a process's start).

    For processes that do little else than score calls (the service's workers, the
    feature jobs): besides the determinism :func:`one_blas_thread` gives, several BLAS
    threads spin against each other on a busy machine (the per-frame values of a 60 s
    call took 52 ms with OpenBLAS's default threads on the loaded 2-core machine, 5 ms
    with one).
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


@lru_cache(maxsize=1)
def _blas_libraries() -> tuple[Any, ...]:
    from threadpoolctl import ThreadpoolController

    # numpy's BLAS is loaded by then (this module is imported by the feature code).
    return tuple(ThreadpoolController().select(user_api="blas").lib_controllers)


class _OneThread:
    """Process-wide: BLAS on one thread while any thread is inside the feature code.

    The first thread in sets the limit, the last one out restores what was there, so
    two threads extracting features at once never see the other's restore.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._restore: Callable[[], None] | None = None

    def enter(self) -> None:
        with self._lock:
            if self._inside == 0:
                self._restore = _limit_to_one()
            self._inside += 1

    def exit(self) -> None:
        with self._lock:
            self._inside -= 1
            if self._inside == 0 and self._restore is not None:
                self._restore()
                self._restore = None


def _limit_to_one() -> Callable[[], None] | None:
    before = [(lib, lib.num_threads) for lib in _blas_libraries()]
    wider = [(lib, n) for lib, n in before if n != 1]
    if not wider:  # the usual case in the service and the feature jobs: nothing to do
        return None
    for lib, _ in wider:
        lib.set_num_threads(1)

    def restore() -> None:
        for lib, n in wider:
            lib.set_num_threads(n)

    return restore


_ONE_THREAD = _OneThread()


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the body with BLAS on one thread (re-entrant, thread-safe; see the module
    docstring for calls from threads other than the main one)."""
    _ONE_THREAD.enter()
    try:
        yield
    finally:
        _ONE_THREAD.exit()
