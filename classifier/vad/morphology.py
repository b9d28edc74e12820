"""1-D morphology of the speech detector's masks and floor, in compiled loops."""

from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np

from classifier._jit import njit

# The masks are grown, closed and cut by a dozen 1-D morphological steps, and the floor
# is a running minimum and maximum. As scipy.ndimage calls each cost 10-20 us of Python
# overhead on the ~600 frames a live update looks at, and even a few numpy calls per
# step add up to ~100 us, they run in compiled loops (_kernels): the mask steps as a
# short program in one loop. Each reproduces the scipy function named beside it exactly
# (tests/code/test_vad_morphology.py compares them on random inputs).


def _dilation_reach(size: int) -> tuple[int, int]:
    """Frames before and after a frame that a flat dilation of ``size`` looks at.

    ``binary_dilation(x, structure=np.ones(size))[i] == x[i - before : i + after + 1].any()``:
    scipy mirrors the structure of a dilation, so an even size looks one frame further
    after than before.
    """
    return (size - 1) // 2, size // 2


def _erosion_reach(size: int) -> tuple[int, int]:
    """As :func:`_dilation_reach` for ``binary_erosion`` (structure not mirrored)."""
    return size // 2, (size - 1) // 2


# Rows of the bool work array (n_rows, n_frames) that the mask programs run on.
(
    _STEADY,  # in: voiced frames with a steady pitch lag
    _SHAPED,  # in: whisper-shaped frames away from voiced speech
    _ACTIVE,  # in: audible frames above the floor
    _NUCLEI,
    _NEAR,
    _WHISPER,
    _TMP,
    _SEEDS,
    _SEEDS_NEAR,
    _VOICED,  # out
    _WITH_WHISPER,  # out
) = range(11)
_N_ROWS = 11


def _step(
    src: int,
    dst: int,
    reach: tuple[int, int] = (0, 0),
    *,
    every: bool = False,
    and_row: int = -1,
    and_not_row: int = -1,
    or_row: int = -1,
) -> list[int]:
    """One step of a mask program (see :func:`_kernels`)."""
    return [src, dst, reach[0], reach[1], int(every), and_row, and_not_row, or_row]


@lru_cache(maxsize=8)
def _mask_programs(
    min_voiced: int, ext: int, min_whisper: int, gap: int, hang: int
) -> tuple[np.ndarray, np.ndarray]:
    """The two mask programs of :func:`_decide`, int64 (n_steps, 8) each.

    The first finds the voiced nuclei and the frames near them (whisper is looked for
    away from those); the second grows voiced and voiced-or-whisper speech. Lengths in
    frames; a length of 1 (or reach 0) makes a step an identity.
    """
    runs, runs_w = _erosion_reach(min_voiced), _erosion_reach(min_whisper)
    nuclei = [
        # _keep_runs(steady, min_voiced): an opening, erosion then dilation
        _step(_STEADY, _TMP, runs, every=True),
        _step(_TMP, _NUCLEI, runs[::-1]),
        # binary_dilation(nuclei, structure=np.ones(2 * ext + 1))
        _step(_NUCLEI, _NEAR, (ext, ext)),
    ]
    expand = [
        # shaped | binary_closing(shaped, structure=np.ones(3)), then _keep_runs
        _step(_SHAPED, _TMP, _dilation_reach(3)),
        _step(_TMP, _WHISPER, _erosion_reach(3), every=True, or_row=_SHAPED),
        _step(_WHISPER, _TMP, runs_w, every=True),
        _step(_TMP, _WHISPER, runs_w[::-1]),
        # voiced-or-whisper nuclei and the frames near them
        _step(_WHISPER, _SEEDS, or_row=_NUCLEI),
        _step(_SEEDS, _SEEDS_NEAR, (ext, ext)),
    ]
    for seeds, near, out in ((_NUCLEI, _NEAR, _VOICED), (_SEEDS, _SEEDS_NEAR, _WITH_WHISPER)):
        expand += [
            # Above-floor frames near a nucleus (consonants, onsets, decays) are speech.
            _step(near, out, and_row=_ACTIVE, or_row=seeds),
            # speech | binary_closing(speech, structure=np.ones(gap))
            _step(out, _TMP, _dilation_reach(gap)),
            _step(_TMP, out, _erosion_reach(gap), every=True, or_row=out),
            # binary_dilation by [0] * hang + [1] * (hang + 1), which scipy mirrors:
            # speech extends hang frames after itself.
            _step(out, out, (hang, 0)),
        ]
    return np.array(nuclei, np.int64), np.array(expand, np.int64)


@lru_cache(maxsize=1)
def _kernels() -> SimpleNamespace:
    """The detector's compiled loops (numba, as the model's tree walk), built on first use.

    ``run(rows, program)`` runs a mask program: for each step ``(src, dst, before,
    after, every, and_row, and_not_row, or_row)`` of ``program`` (n_steps, 8) int64, row
    ``dst`` of ``rows`` (n_rows, n) bool becomes the any (every=0: ``binary_dilation``)
    or all (every=1, frames outside False: ``binary_erosion`` with ``border_value=0``)
    of ``rows[src][i - before : i + after + 1]``, then ANDed with row ``and_row``, with
    the negation of row ``and_not_row`` and ORed with row ``or_row`` where those are
    >= 0. One loop for every step: a function per step would multiply numba's compile
    time, which all these loops together already take ~2 s of, once per process, on
    the shared 2-core machine.

    ``inputs(rows, at, ac, lag, snr, audible, ac_min, tol, active_snr)`` fills the
    program's input rows: ``_STEADY``, the voiced frames (``ac >= ac_min``) among frames
    ``at`` (int64) whose pitch lag ``lag`` (float32; other frames lag 0) is within
    ``tol`` (float32) of a neighbour's, as ``abs(diff(lags)) <= tol * lags[1:]``; and
    ``_ACTIVE``, ``(snr >= active_snr) & audible``.

    ``extreme(x, out, lo, size, before, is_max)`` sets ``out[i, c]`` for ``i >= lo`` to
    the minimum (maximum) of ``x[i - before : i - before + size, c]`` (x (n, k) float),
    the window clipped to the array: ``minimum_filter1d`` (``maximum_filter1d``) with
    ``mode="nearest"`` and ``origin=before - size // 2``.

    ``quiet_step(mid, taken, below, bounds, power, new, P, q, mid_out, power_out, out)``
    is the work of :func:`classifier.vad.noise._quiet_step`: ``new`` (sorted keys of the
    added frames) merged into ``mid`` (into ``mid_out``), the low-band power ``P[:, f]``
    (n_bins, n_frames) of the frames that join or leave the ``q`` quietest added to or
    taken from ``power`` (into ``power_out``, frame by frame in key order), ``out`` =
    (size of the merged mid, taken, below); False when the quiet share's boundary left
    the sorted keys.
    """

    @njit
    def run(rows: np.ndarray, program: np.ndarray) -> None:
        n = rows.shape[1]
        out = np.empty(n, np.bool_)
        last = np.empty(n, np.int64)
        for k in range(program.shape[0]):
            x = rows[program[k, 0]]
            before, after = program[k, 2], program[k, 3]
            # last[j]: the last frame up to j that decides a window (a False frame for
            # all, a True one for any); far before the array where there is none.
            prev = -n - before - 1
            if program[k, 4] == 1:
                for j in range(n):
                    prev = prev if x[j] else j
                    last[j] = prev
                for i in range(n):
                    out[i] = False  # windows that leave the array
                for i in range(before, n - after):
                    out[i] = last[i + after] < i - before
            else:
                for j in range(n):
                    prev = j if x[j] else prev
                    last[j] = prev
                for i in range(n):
                    out[i] = last[min(i + after, n - 1)] >= i - before
            if program[k, 5] >= 0:
                a = rows[program[k, 5]]
                for i in range(n):
                    out[i] = out[i] and a[i]
            if program[k, 6] >= 0:
                a = rows[program[k, 6]]
                for i in range(n):
                    out[i] = out[i] and not a[i]
            if program[k, 7] >= 0:
                a = rows[program[k, 7]]
                for i in range(n):
                    out[i] = out[i] or a[i]
            y = rows[program[k, 1]]
            for i in range(n):
                y[i] = out[i]

    @njit
    def inputs(
        rows: np.ndarray,
        at: np.ndarray,
        ac: np.ndarray,
        lag: np.ndarray,
        snr: np.ndarray,
        audible: np.ndarray,
        ac_min: float,
        tol: np.float32,
        active_snr: float,
    ) -> None:
        n = rows.shape[1]
        st = rows[_STEADY]
        lags = np.zeros(n, np.float32)
        for k in range(at.size):
            lags[at[k]] = lag[k]
        for k in range(at.size):
            i = at[k]
            if ac[k] >= ac_min:
                prev = i > 0 and abs(lags[i] - lags[i - 1]) <= tol * lags[i]
                succ = i < n - 1 and abs(lags[i + 1] - lags[i]) <= tol * lags[i + 1]
                st[i] = prev or succ
        active = rows[_ACTIVE]
        for i in range(n):
            active[i] = snr[i] >= active_snr and audible[i]

    @njit
    def extreme(
        x: np.ndarray, out: np.ndarray, lo: int, size: int, before: int, is_max: bool
    ) -> None:
        # out[i, c] for i >= lo: min (max) of x[i - before : i - before + size, c], the
        # window clipped to the array (mode="nearest" repeats the edge values, which
        # change neither). A monotonic queue of candidate frames per column: O(n).
        n = x.shape[0]
        queue = np.empty(n, np.int64)
        for c in range(x.shape[1]):
            head = 0
            tail = 0
            j = max(lo - before, 0)  # next frame to enter
            for i in range(lo, n):
                first = max(i - before, 0)
                last = min(i - before + size - 1, n - 1)
                while j <= last:
                    v = x[j, c]
                    if is_max:
                        while tail > head and x[queue[tail - 1], c] <= v:
                            tail -= 1
                    else:
                        while tail > head and x[queue[tail - 1], c] >= v:
                            tail -= 1
                    queue[tail] = j
                    tail += 1
                    j += 1
                while queue[head] < first:
                    head += 1
                out[i, c] = x[queue[head], c]

    @njit
    def quiet_step(
        mid: np.ndarray,
        taken: int,
        below: int,
        bounds: np.ndarray,
        power: np.ndarray,
        new: np.ndarray,
        P: np.ndarray,
        q: int,
        mid_out: np.ndarray,
        power_out: np.ndarray,
        out: np.ndarray,
    ) -> bool:
        n_bins = power.size
        for r in range(n_bins):
            power_out[r] = power[r]
        lo, hi = bounds[0], bounds[1]
        last_quiet = mid[taken - 1] if taken > 0 else lo
        k = 0
        while k < new.size and new[k] < lo:  # below the sorted keys: quiet
            f = new[k] & 0xFFFFFFFF
            for r in range(n_bins):
                power_out[r] += P[r, f]
            below += 1
            k += 1
        # Merge the new keys below hi into mid; those below its last quiet one join.
        i = 0
        size = 0
        while i < mid.size or (k < new.size and new[k] < hi):
            if k < new.size and new[k] < hi and (i == mid.size or new[k] < mid[i]):
                x = new[k]
                k += 1
                if x < last_quiet:
                    f = x & 0xFFFFFFFF
                    for r in range(n_bins):
                        power_out[r] += P[r, f]
                    taken += 1
            else:
                x = mid[i]
                i += 1
            mid_out[size] = x
            size += 1
        want = q - below
        out[0], out[1], out[2] = size, taken, below
        if want < 0 or want > size:
            return False  # the boundary left the sorted keys
        while taken < want:
            f = mid_out[taken] & 0xFFFFFFFF
            for r in range(n_bins):
                power_out[r] += P[r, f]
            taken += 1
        while taken > want:
            taken -= 1
            f = mid_out[taken] & 0xFFFFFFFF
            for r in range(n_bins):
                power_out[r] -= P[r, f]
        out[1] = taken
        return True

    return SimpleNamespace(run=run, inputs=inputs, extreme=extreme, quiet_step=quiet_step)


class _Lengths(NamedTuple):
    """The detector's time constants in frames, at one frame rate."""

    context: int  # _CONTEXT_S
    smooth: tuple[int, int]  # frames before and after in the energy smoothing
    floor: int  # _FLOOR_WIN_S
    block: int  # _NOISE_BLOCK_S
    nuclei: np.ndarray  # the mask programs of _decide
    expand: np.ndarray
