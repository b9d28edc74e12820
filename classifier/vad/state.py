"""What a live stream's speech detection keeps between its updates."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

_INT64_MIN = np.iinfo(np.int64).min


def grow_rows(a: np.ndarray, rows: int, *, cap: int | None = None, fill: float = 0) -> np.ndarray:
    """``a`` with room for at least ``rows`` rows, new rows set to ``fill``.

    The size doubles (up to ``cap``), so a live stream's arrays grow by a frame or a
    second at a time at little cost.
    """
    if a.shape[0] >= rows:
        return a
    size = max(rows, 2 * a.shape[0], 64)
    if cap is not None:
        size = max(rows, min(size, cap))
    new = np.full((size, *a.shape[1:]), fill, dtype=a.dtype)
    new[: a.shape[0]] = a
    return new


class _QuietFrames(NamedTuple):
    """The quietest frames among the first ``added``, ranked by activity-band energy.

    Frames are ranked by int64 keys that sort like (e_db, frame index)
    (:func:`_energy_keys`). Only the keys near the quiet share's boundary are kept in
    order: the ``below`` frames with a key under ``bounds[0]`` are all quiet, the keys in
    ``[bounds[0], bounds[1])`` are kept sorted in ``mid`` (the first ``taken`` quiet),
    and none above is. Adding a second of frames then costs O(frames added) instead of a
    selection over the whole call; when the boundary leaves ``mid``, the split is drawn
    again from all frames (:func:`_quiet_split`).
    """

    added: int
    below: int
    bounds: np.ndarray  # int64 (2,)
    mid: np.ndarray  # int64, sorted
    taken: int
    power: np.ndarray  # float64 (n_low_bins,): low-band power summed over the quiet frames

    @classmethod
    def empty(cls, n_bins: int) -> _QuietFrames:
        bounds = np.array([_INT64_MIN, _INT64_MIN])  # every frame above: split at once
        return cls(0, 0, bounds, np.zeros(0, np.int64), 0, np.zeros(n_bins))


class VadMemo:
    """Per-frame results a live stream's speech detection keeps between updates.

    Only values that can no longer change are kept: those of frames whose window has
    been heard in full, and for periodicity, whose block's noise estimate is settled.
    """

    def __init__(self) -> None:
        self.ac = np.zeros(0, np.float32)
        self.lag = np.zeros(0, np.float32)
        self.periodic_known = np.zeros(0, bool)
        self.flat = np.zeros(0, np.float32)
        self.low_share = np.zeros(0, np.float32)
        self.shape_known = np.zeros(0, bool)
        self._shaped = np.zeros(0, bool)  # flat and low_share within the whisper limits
        self._sums = np.zeros((0, 2), np.float32)
        self._sums_done = 0
        # Smoothed energy in dB, (frames, 2): activity band, low band; settled up to _db_done.
        self._db = np.zeros((0, 2), np.float32)
        self._db_done = 0
        # The floor's two running filters (see _floor), (frames, 2) each, and how many
        # leading frames of each are settled.
        self._eroded = np.zeros((0, 2), np.float32)
        self._eroded_done = 0
        self._floor = np.zeros((0, 2), np.float32)
        self._floor_done = 0
        # Noise spectrum of each block, (blocks, n_low_bins); the first _noise_done are
        # settled, the rows after them are scratch for the current update.
        self._noise = np.zeros((0, 0), np.float32)
        self._noise_done = 0
        self._quiet: _QuietFrames | None = None
        self._keys = np.zeros(0, np.int64)  # _energy_keys of every frame, settled up to _keys_done
        self._keys_done = 0
        self.voiced = np.zeros(0, bool)
        self.with_whisper = np.zeros(0, bool)
        self.settled = 0  # frames whose decisions no later audio can change

    def band_sums(
        self, P: np.ndarray, band: slice, low: slice, *, final: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame power in the activity band and in the low band, (n_frames,) each."""
        n = P.shape[1]
        self._sums = grow_rows(self._sums, n)
        start = min(self._sums_done, n)
        self._sums[start:n, 0] = P[band, start:n].sum(axis=0)
        self._sums[start:n, 1] = P[low, start:n].sum(axis=0)
        self._sums_done = max(self._sums_done, min(final, n))
        return self._sums[:n, 0], self._sums[:n, 1]

    def grow(self, n_frames: int) -> None:
        """Make room for ``n_frames`` frames (doubling, so a growing call stays cheap)."""
        if self.ac.shape[0] >= n_frames:
            return
        names = ("ac", "lag", "periodic_known", "flat", "low_share", "shape_known", "_shaped")
        for name in (*names, "voiced", "with_whisper", "_db", "_eroded", "_floor"):
            setattr(self, name, grow_rows(getattr(self, name), n_frames))

    @property
    def nbytes(self) -> int:
        return int(
            self.ac.nbytes * 4
            + self.periodic_known.nbytes * 3
            + self._sums.nbytes
            + self._db.nbytes * 3
            + self._noise.nbytes
            + self._keys.nbytes
            + (self._quiet.mid.nbytes if self._quiet is not None else 0)
        )
