"""The one way callsift compiles a kernel with numba, so every kernel shares one policy.

``nogil``: a kernel lets other threads run (the service scores beside its event loop).
``cache``: the machine code is kept on disk beside the source, so a process loads it
instead of compiling for seconds; :func:`classifier.streaming.warm_up` writes that cache
once, under a lock, before worker processes start (numba's cache is not safe to write
from several processes at once).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])


def njit(fn: F) -> F:
    """``fn`` compiled by ``numba.njit(nogil=True, cache=True)`` on its first call.

    numba is imported here, at decoration, not when this module is: a kernel built on
    first use (inside a function) keeps numba's import out of its module's import, and
    raises ImportError there where numba is missing, for the caller's numpy fallback.
    """
    import numba

    return cast(F, numba.njit(fn, nogil=True, cache=True))
