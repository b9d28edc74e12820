"""Recording files: content-addressed under ``<data_dir>/recordings``, written whole or
not at all, and linked to their call."""

from __future__ import annotations

import errno
import hashlib
import math
import os
import re
import tempfile
from pathlib import Path

from api.store.calls import CallStore, call_row
from api.store.errors import RecordingStorageError, StorageFullError
from classifier.errors import InvalidParameterError
from classifier.formats import CALLER_CHANNELS

_EXT = re.compile(r"^[a-z0-9]{1,8}$")


def _write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (a reader never sees half a file,
    and a failed write leaves nothing behind)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _storage_error(exc: OSError) -> RecordingStorageError:
    # The message names the cause, not the server's folders.
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFullError(
            "recording not stored: no space left on the recordings disk "
            "(the call is unchanged); retry after space is freed"
        )
    reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__
    return RecordingStorageError(
        f"recording not stored: the recordings folder cannot be written ({reason}); "
        "the call is unchanged"
    )


class RecordingStore(CallStore):
    """Storing a call's recording."""

    def save_audio(
        self,
        call_id: str,
        data: bytes,
        *,
        ext: str,
        duration_s: float,
        caller_channel: str = "mix",
    ) -> str:
        """Keep a call's recording, content-addressed, and link it to the call.

        Parameters
        ----------
        call_id : str
        data : bytes
            The file as uploaded.
        ext : str, keyword-only
            File extension without the dot (``wav``, ``flac``, ``ogg``), 1 to 8 letters or digits.
        duration_s : float, keyword-only
            Length of the recording, which becomes the call's duration.
        caller_channel : {"mix", "left", "right"}, keyword-only
            Which channel is the caller; exported with the call.

        Returns
        -------
        str
            Absolute path ``<data_dir>/recordings/<sha256>.<ext>``.
        """
        ext = ext.lower().lstrip(".")
        if not _EXT.match(ext):
            raise InvalidParameterError(f"ext must be 1 to 8 letters or digits; got {ext!r}")
        if (
            not isinstance(duration_s, int | float)
            or not math.isfinite(duration_s)
            or duration_s < 0
        ):
            raise InvalidParameterError(
                f"duration_s must be a finite number >= 0; got {duration_s}"
            )
        if caller_channel not in CALLER_CHANNELS:
            choices = ", ".join(CALLER_CHANNELS)
            raise InvalidParameterError(
                f"caller_channel must be one of {choices}; got {caller_channel!r}"
            )
        if not data:
            raise InvalidParameterError("audio data is empty; expected the recording's bytes")
        self.get_call(call_id)  # refuse an unknown call before writing anything
        digest = hashlib.sha256(data).hexdigest()
        path = self.data_dir / "recordings" / f"{digest}.{ext}"
        if not path.exists():
            try:
                _write_file(path, data)
            except OSError as exc:
                raise _storage_error(exc) from exc
        with self._session(write=True) as session:
            row = call_row(session, call_id, lock=True)
            row.audio_sha256 = digest
            row.audio_file = str(path)
            row.duration_s = float(duration_s)
            row.caller_channel = caller_channel
        return str(path)
