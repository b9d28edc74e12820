"""Memory a worker touches once at start and keeps, so live streams never wait for it.

On a virtual machine whose host reclaims the guest's free pages (free page reporting,
ballooning), the first write to a page the process has not used yet makes the host find
and zero a page: measured here at 0.2-2 ms per MB against 0.05 once written
(``bench/bench_memory.py``), and seen as pauses of the event loop in the first write
of a growing stream buffer. The JVM's ``AlwaysPreTouch`` answers
the same problem: the heap is written once at start. Here glibc's allocator is told to
keep what it is given back (no trimming, no separate mappings for arrays up to 32 MB),
then a reserve is allocated, written and freed: later arrays reuse those pages.
"""

from __future__ import annotations

import ctypes
import logging
import platform
import time
from dataclasses import dataclass

logger = logging.getLogger("callsift.api")

# mallopt parameters of glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc's largest mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX): a stream's
# arrays (300 s of audio: about 10 MB) stay below it, so they come from the kept heap.
_MMAP_THRESHOLD = 32 * 1024 * 1024
_KEEP = 2**31 - 1  # mallopt takes an int: trim only above 2 GiB free at the top
_CHUNK = 8 * 1024 * 1024
MAX_RESERVE_MB = 2047  # above _KEEP the allocator would trim the reserve again


@dataclass(frozen=True)
class Reserve:
    """What :func:`reserve_memory` did: megabytes written and kept, and how long it took."""

    mb: int
    seconds: float


def reserve_memory(mb: int) -> Reserve | None:
    """Keep freed memory in this process and pre-touch ``mb`` megabytes of it.

    Parameters
    ----------
    mb : int
        Megabytes to write once and keep for later allocations, 0 to ``MAX_RESERVE_MB``;
        0 only stops the allocator from giving memory back.

    Returns
    -------
    Reserve or None
        None where the C library is not glibc (the setting then does nothing; logged).
    """
    if not 0 <= mb <= MAX_RESERVE_MB:
        raise ValueError(f"memory reserve is {mb} MB; expected 0 to {MAX_RESERVE_MB}")
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        if mb:  # asked for: say it is not there; the default asks for nothing
            logger.warning("memory reserve needs Linux with glibc; this is %s", platform.platform())
        return None
    libc = ctypes.CDLL(None)
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    libc.malloc.argtypes = (ctypes.c_size_t,)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = (ctypes.c_void_p,)
    if not (
        libc.mallopt(_M_TRIM_THRESHOLD, _KEEP) and libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    ):
        logger.warning("memory reserve: glibc refused the allocator settings")
        return None
    start = time.perf_counter()
    chunks: list[int] = []
    try:
        for _ in range(mb * 1024 * 1024 // _CHUNK):
            p = libc.malloc(_CHUNK)
            if not p:
                break
            ctypes.memset(p, 0, _CHUNK)
            chunks.append(p)
    finally:
        # Freed last-in first: the chunks merge back into one free top of the heap.
        for p in reversed(chunks):
            libc.free(p)
    return Reserve(mb=len(chunks) * _CHUNK // (1024 * 1024), seconds=time.perf_counter() - start)
