"""The speech detector's noise floor and noise spectrum, both from the frames heard so far.

The floor (a running opening of the smoothed band energy) is what a frame's level is
measured against; the noise spectrum (the mean low-band spectrum of the quietest frames)
is subtracted before the periodicity test. Neither looks at audio after a frame's
block, so a live stream and a whole recording get the same values.
"""

from __future__ import annotations

import numpy as np

from classifier.constants import EPS as _EPS
from classifier.vad.morphology import _dilation_reach, _erosion_reach, _kernels, _Lengths
from classifier.vad.state import VadMemo, _QuietFrames, grow_rows

_SMOOTH_S = 0.05
_FLOOR_WIN_S = 1.5  # noise floor: energy minimum over this window, then its maximum
_NOISE_QUANTILE = 0.15  # quietest share of frames that estimates the noise spectrum
# The noise estimate is renewed every second from the frames heard so far (up to a few
# frames before the second's end), so it never depends on audio after the frame.
_NOISE_BLOCK_S = 1.0
_NOISE_MARGIN = 5


_INT64_MIN = np.iinfo(np.int64).min
_INT64_MAX = np.iinfo(np.int64).max
_FRAME_BITS = 0xFFFFFFFF  # a key's low 32 bits: its frame index


def _energy_keys(e_db: np.ndarray, first: int) -> np.ndarray:
    """int64 keys ordered like (e_db, frame index) for frames ``first`` onwards, (n,).

    ``e_db`` is float32 (n,), finite; -0.0 ranks just below +0.0.
    """
    keys = np.ascontiguousarray(e_db, dtype=np.float32).view(np.int32).astype(np.int64)
    # IEEE floats order like their bits when positive and reversed when negative: flip
    # the 31 low bits of the negative ones (the arithmetic shift gives -1 there, else 0).
    keys ^= (keys >> 31) & 0x7FFFFFFF
    keys <<= 32
    keys |= np.arange(first, first + e_db.size)
    return keys


def _power_sum(P_low: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Low-band power summed over the frames of ``keys``, float64 (n_low_bins,)."""
    return P_low[:, keys & _FRAME_BITS].sum(axis=1, dtype=np.float64)


def _quiet_step(
    quiet: _QuietFrames, P_low: np.ndarray, keys: np.ndarray, m: int, q: int
) -> _QuietFrames:
    """``quiet`` with frames up to ``m`` added and the ``q`` quietest of them selected.

    ``keys`` are :func:`_energy_keys` of every frame. A pure function of its arguments
    (nothing is changed in place), so that a block a live stream must undo later is
    computed by exactly the steps, in the same order, that a recording ending there
    takes: the float sums come out identical.
    """
    new = keys[quiet.added : m].copy()
    new.sort()
    mid = np.empty(quiet.mid.size + new.size, np.int64)
    power = np.empty_like(quiet.power)
    out = np.empty(3, np.int64)
    ok = _kernels().quiet_step(
        quiet.mid,
        quiet.taken,
        quiet.below,
        quiet.bounds,
        quiet.power,
        new,
        P_low,
        q,
        mid,
        power,
        out,
    )
    size, taken, below = out.tolist()
    if not ok or size > 6 * _quiet_slack(m):
        return _quiet_split(P_low, keys, m, q)
    return _QuietFrames(m, below, quiet.bounds, mid[:size], taken, power)


def _quiet_slack(m: int) -> int:
    """Ranks either side of the quiet share's boundary that a split keeps sorted.

    A new split (O(m)) is needed when the boundary leaves them: in a steady background
    every ~m / 100 blocks, at worst (a background that keeps getting quieter, so that all
    new frames join the quiet share) every slack / 85 blocks; the slack grows with the
    call to keep that rare, and stays small enough for the sorted keys to merge cheaply.
    """
    return max(256, m // 128)


def _quiet_split(P_low: np.ndarray, keys: np.ndarray, m: int, q: int) -> _QuietFrames:
    """:class:`_QuietFrames` of the first ``m`` frames drawn from scratch, O(m)."""
    slack = _quiet_slack(m)
    # Twice the room below: a boundary moves down fast (a background getting quieter:
    # every new frame joins the quiet share), up only by 15 % of the new frames.
    lo_rank, hi_rank = max(q - 2 * slack, 0), min(q + slack, m)
    part = np.partition(keys[:m], [lo_rank, hi_rank] if hi_rank < m else [lo_rank])
    bounds = np.array([part[lo_rank], part[hi_rank] if hi_rank < m else _INT64_MAX])
    mid = np.sort(part[lo_rank:hi_rank])
    # Summed in frame order: the result does not depend on how partition left them.
    quiet = np.concatenate((np.sort(part[:lo_rank] & _FRAME_BITS), mid[: q - lo_rank]))
    return _QuietFrames(m, lo_rank, bounds, mid, q - lo_rank, _power_sum(P_low, quiet))


def _smoothed_db(
    memo: VadMemo, n_frames: int, final: int, *, scale: np.float32, lengths: _Lengths
) -> np.ndarray:
    """Smoothed band energies in dB, (n_frames, 2) float32: activity band, low band.

    ``uniform_filter1d(band_sums, size)`` (mode "reflect"), but as an explicit sum of
    the ``size`` neighbours of each frame rather than scipy's running sum: a frame's value
    then does not depend on where the array starts, so settled frames keep theirs in the
    memo and an update only computes the new ones. The two differ by float rounding.
    """
    before, after = lengths.smooth
    size = before + 1 + after
    lo = min(memo._db_done, n_frames)
    first = max(lo - before, 0)
    x = memo._sums[first:n_frames]
    m = n_frames - lo
    left = before - (lo - first)  # frames before the call's start, mirrored
    if x.shape[0] > max(left, after):
        # scipy's "reflect": d c b a | a b c d | d c b a
        ext = np.empty((m + size - 1, 2))
        ext[left : left + x.shape[0]] = x
        ext[:left] = x[left - 1 :: -1] if left else ext[:0]
        ext[left + x.shape[0] :] = x[: -after - 1 : -1]
    else:  # a few frames only: mirrored over and over, as numpy's "symmetric" does
        ext = np.pad(x.astype(np.float64), ((left, after), (0, 0)), mode="symmetric")
    acc = ext[:m] + ext[1 : 1 + m] if size > 1 else ext[:m].copy()
    for k in range(2, size):
        acc += ext[k : k + m]
    acc /= size
    mean = acc.astype(np.float32)
    mean *= scale
    mean += _EPS
    np.log10(mean, out=mean)
    mean *= 10.0
    memo._db[lo:n_frames] = mean
    memo._db_done = n_frames if final >= n_frames else max(memo._db_done, final - after)
    return memo._db[:n_frames]


def _floor(memo: VadMemo, e_db: np.ndarray, final: int, *, size: int) -> np.ndarray:
    """Noise floor of the smoothed band energies ``e_db`` (n_frames, 2), float32 (n_frames, 2).

    The floor is a grey opening over ``size`` frames (running minimum, then maximum): it
    follows the floor between words and ignores bursts shorter than the window. It
    equals ``grey_opening(e_db[:, c], size, mode="nearest")`` of the frames heard so far:
    its grey_erosion, then its grey_dilation (whose window scipy mirrors, reaching a
    frame further after for an even size), each a compiled running extreme kept in the
    memo for the frames whose value no later frame can change, so that an update only
    filters its last ~2.5 s (scipy's own 1-D filters cost ~4x more here, mostly
    per-call overhead).
    """
    n = e_db.shape[0]
    (e_before, e_after), (d_before, d_after) = _erosion_reach(size), _dilation_reach(size)
    extreme = _kernels().extreme
    extreme(e_db, memo._eroded, min(memo._eroded_done, n), size, e_before, False)
    memo._eroded_done = n if final >= n else max(memo._eroded_done, memo._db_done - e_after)
    extreme(memo._eroded[:n], memo._floor, min(memo._floor_done, n), size, d_before, True)
    memo._floor_done = n if final >= n else max(memo._floor_done, memo._eroded_done - d_after)
    return memo._floor[:n]


def _block_noise(
    P: np.ndarray,
    low: slice,
    e_db: np.ndarray,
    last_block: int,
    *,
    block: int,
    reach: int,
    final: int,
    memo: VadMemo,
) -> None:
    """Noise spectra of the blocks up to ``last_block`` into ``memo._noise`` rows.

    The estimate of block ``k`` is the mean low-band spectrum of the quietest 15 % of
    the frames heard up to shortly before the block's end: it never looks further ahead,
    so a live stream and a whole recording get the same value. Blocks are added to the
    quiet frames in order; a block whose frames are not all settled (``e_db`` reaches
    ``reach`` frames ahead) is computed but not kept in the memo, and its row is
    recomputed at the next update.
    """
    done = memo._noise_done
    if last_block < done:
        return
    n_frames = P.shape[1]
    P_low = P[low]
    if memo._noise.shape[1] != P_low.shape[0]:
        memo._noise = np.zeros((0, P_low.shape[0]), np.float32)
    memo._noise = grow_rows(memo._noise, last_block + 1)
    # Keys of frames whose e_db is settled are kept; the others are recomputed.
    memo._keys = grow_rows(memo._keys, n_frames)
    memo._keys[memo._keys_done : n_frames] = _energy_keys(
        e_db[memo._keys_done : n_frames], memo._keys_done
    )
    memo._keys_done = min(memo._db_done, n_frames)
    quiet = memo._quiet if memo._quiet is not None else _QuietFrames.empty(P_low.shape[0])
    for k in range(done, last_block + 1):
        m = max(min((k + 1) * block - _NOISE_MARGIN, n_frames), min(n_frames, 1))
        q = max(1, int(_NOISE_QUANTILE * m))
        quiet = _quiet_step(quiet, P_low, memo._keys, m, q)
        memo._noise[k] = quiet.power / q
        if k == memo._noise_done and min(m + reach, n_frames) <= final:
            memo._quiet, memo._noise_done = quiet, k + 1
