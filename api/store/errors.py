"""What a store request raises when it cannot be served."""

from __future__ import annotations

from typing import Literal

from classifier.errors import CallsiftError


class StoreError(CallsiftError):
    """A store request that cannot be served."""


class NotFoundError(StoreError):
    """The call, number or key asked for does not exist."""


class ConflictError(StoreError):
    """The request contradicts what is stored (e.g. a call_id reused for another call)."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached (refused, timed out, or went away).

    Attributes
    ----------
    reason : {"unreachable", "timeout"}
        ``timeout``: the database did not answer in time (a statement or a lock wait
        cancelled, no free connection); ``unreachable``: no connection, or it was lost.
    """

    def __init__(self, message: str, *, reason: Literal["unreachable", "timeout"] = "unreachable"):
        super().__init__(message)
        self.reason = reason


class RecordingStorageError(StoreError):
    """A recording could not be written to the recordings folder (read-only, no access)."""


class StorageFullError(RecordingStorageError):
    """No space left (or quota exceeded) for recordings."""
