"""Laughter: rhythmic voiced bursts at 3-6 Hz in the energy envelope, over 2 s blocks."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from classifier.constants import EPS as _EPS
from classifier.constants import HOP, SR
from classifier.features.frames import _COL, _db

#: Energy-envelope blocks of the laughter statistics: 2 s of frames.
_LAUGH_BLOCK = int(2.0 * SR / HOP)


@lru_cache(maxsize=1)
def _laughter_weights() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Window and modulation bands (3-6 Hz, 0.5-12 Hz) of a laughter block."""
    f = np.fft.rfftfreq(_LAUGH_BLOCK, HOP / SR)
    return np.hanning(_LAUGH_BLOCK), (f >= 3.0) & (f <= 6.0), (f >= 0.5) & (f <= 12.0)


def _laughter_blocks(e: np.ndarray) -> np.ndarray:
    """Rhythm of whole 2 s blocks of the energy envelope: laughter bursts at 3-6 Hz.

    Parameters
    ----------
    e : numpy.ndarray, float64, shape (n_blocks, _LAUGH_BLOCK)
        Frame energies in dB.

    Returns
    -------
    numpy.ndarray, float64, shape (n_blocks, 2)
        Per block: the 3-6 Hz share of the 0.5-12 Hz modulation power, and the 3-6 Hz
        band's peak against its mean.
    """
    window, band, wide = _laughter_weights()
    x = e - e.mean(axis=1, keepdims=True)  # each block's own level: gain drops out
    spec = np.square(np.abs(np.fft.rfft(x * window, axis=1)))
    in_band = spec[:, band]
    ratio = in_band.sum(axis=1) / (spec[:, wide].sum(axis=1) + _EPS)
    peak = in_band.max(axis=1) / (in_band.mean(axis=1) + _EPS)
    return np.stack([ratio, peak], axis=1)


class LaughterStats:
    """Laughter statistics of one channel, each 2 s block's rhythm computed once."""

    def __init__(self) -> None:
        self._laugh = np.zeros(4)  # sums over settled blocks
        self._laugh_blocks = 0
        self._laugh_rp = np.zeros((0, 2))  # rhythm of blocks whose energies are final

    def update(self, V: np.ndarray, mask: np.ndarray, settled: int, final: int) -> dict[str, float]:
        """Laughter statistics over whole 2 s blocks (rhythmic voiced bursts)."""
        out = {"laughter_mod_ratio": 0.0, "laughter_regularity": 0.0, "laughter_burst_share": 0.0}
        w = _LAUGH_BLOCK
        n_blocks = mask.size // w
        if n_blocks == 0:
            return out
        # A block's rhythm is computed once its energies are final; whether it is
        # active waits for its speech decisions to settle.
        known = self._laugh_rp.shape[0]
        ready = min(final // w, n_blocks)
        if ready > known:
            e = _db(V[known * w : ready * w, _COL["band_power"]]).reshape(-1, w)
            self._laugh_rp = np.concatenate([self._laugh_rp, _laughter_blocks(e)])
        first = self._laugh_blocks
        active = mask[first * w : n_blocks * w].reshape(-1, w).mean(axis=1) > 0.3
        rp = self._laugh_rp
        if n_blocks > rp.shape[0]:
            # The last block's energies may still change: its rhythm is computed for
            # this update only, and only when it counts (an active block).
            fresh = np.zeros((n_blocks - rp.shape[0], 2))
            if active[rp.shape[0] - first :].any():
                e = _db(V[rp.shape[0] * w : n_blocks * w, _COL["band_power"]]).reshape(-1, w)
                fresh = _laughter_blocks(e)
            rp = np.concatenate([rp, fresh])
        ratio, peak = rp[first:n_blocks, 0], rp[first:n_blocks, 1]
        burst = (ratio > 0.55) & (peak > 2.5) & active
        parts = np.stack([np.where(active, ratio, 0.0), np.where(active, peak, 0.0), active, burst])
        sums = self._laugh + parts.sum(axis=1)
        done = max(0, min(settled // w, n_blocks) - first)  # blocks whose frames all settled
        if done:
            self._laugh = self._laugh + parts[:, :done].sum(axis=1)
            self._laugh_blocks += done
        if sums[2]:
            out["laughter_mod_ratio"] = float(sums[0] / sums[2])
            out["laughter_regularity"] = float(sums[1] / sums[2])
            out["laughter_burst_share"] = float(sums[3] / n_blocks)
        return out
