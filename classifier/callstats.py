"""Running statistics behind the call-level features.

A live call is summarised every second. Its frames split in two: the *settled* ones,
whose values and speech decisions no later audio can change, and the last few seconds,
which the next update may still revise. The structures here take each settled frame
once and keep what the statistics need (sums, sorted values, closed runs); a query
combines them with the unsettled frames given at that moment, without persisting those.
So an update costs about the same after 5 s as after 5 min, and a whole recording (all
frames settled at once) goes through the very same code.

Every structure answers exactly what its batch counterpart would (``np.percentile``
with linear interpolation, ``np.mean``/``np.std``, ``speech_segments``), up to float
rounding of the sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from classifier._jit import njit

__all__ = ["Moments", "SortedValues", "SpeechRuns"]


# The kernels below replace a dozen numpy calls each: an update of a live stream makes
# about twenty of these queries, and numpy's cost per call, not the arithmetic, is what
# a second of new frames would otherwise pay for.


@njit
def _merge(
    a: np.ndarray, pa: np.ndarray, b: np.ndarray, pb: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Merge ascending ``a`` and ``b`` (with payloads); ``b`` after equal values of ``a``."""
    n, k = a.size, b.size
    out = np.empty(n + k, np.float64)
    pout = np.empty(n + k, pa.dtype)
    i = j = 0
    for t in range(n + k):
        if j >= k or (i < n and a[i] <= b[j]):
            out[t] = a[i]
            pout[t] = pa[i]
            i += 1
        else:
            out[t] = b[j]
            pout[t] = pb[j]
            j += 1
    return out, pout


@njit
def _remove(a: np.ndarray, pa: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a`` without one occurrence of each value of ascending ``b`` (all present)."""
    keep = np.ones(a.size, np.bool_)
    i = 0
    for j in range(b.size):
        while i < a.size and a[i] != b[j]:
            i += 1
        if i == a.size:
            raise ValueError("a value to remove is not among the values kept")
        keep[i] = False
        i += 1
    return a[keep], pa[keep]


@njit
def _quantiles(a: np.ndarray, extra: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``np.percentile(concatenate([a, extra]), q)`` for ascending ``a``, in one pass."""
    b = np.sort(extra.astype(np.float64))
    n = a.size + b.size
    out = np.empty(q.size, np.float64)
    if n == 0:
        out[:] = np.nan
        return out
    # Where each value of b lands in the merged order.
    placed = np.searchsorted(a, b, side="right") + np.arange(b.size)
    for iq in range(q.size):
        virtual = (n - 1) * (q[iq] / 100.0)
        lo = int(np.floor(virtual))
        hi = min(lo + 1, n - 1)
        pair = np.empty(2, np.float64)
        for side in range(2):
            r = lo if side == 0 else hi
            c = np.searchsorted(placed, r, side="right")
            if c > 0 and placed[c - 1] == r:
                pair[side] = b[c - 1]
            else:
                pair[side] = a[r - c]
        t = virtual - lo
        diff = pair[1] - pair[0]
        # numpy's own interpolation formula, so the result is np.percentile's.
        out[iq] = pair[1] - diff * (1 - t) if t >= 0.5 else pair[0] + diff * t
    return out


@njit
def _shifted_sums(x: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column sums of ``x - ref`` and of its square, in float64."""
    s1 = np.zeros(x.shape[1])
    s2 = np.zeros(x.shape[1])
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            d = np.float64(x[i, j]) - ref[j]
            s1[j] += d
            s2[j] += d * d
    return s1, s2


class SortedValues:
    """Settled values kept in ascending order, each with an integer payload.

    The payload rides along (a frame's index, to find the frames above a threshold).
    """

    def __init__(self) -> None:
        self.values = np.zeros(0, np.float64)
        self.payload = np.zeros(0, np.int32)

    def __len__(self) -> int:
        return int(self.values.size)

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes + self.payload.nbytes)

    def add(self, values: np.ndarray, payload: np.ndarray | None = None) -> None:
        """Insert settled ``values`` (shape (m,)), with their ``payload`` (shape (m,))."""
        if values.size == 0:
            return
        order = np.argsort(values, kind="stable")
        p = np.zeros(values.size, np.int32) if payload is None else payload.astype(np.int32)
        # A merge per update instead of a sort: the settled values stay sorted.
        self.values, self.payload = _merge(
            self.values, self.payload, values.astype(np.float64)[order], p[order]
        )

    def remove(self, values: np.ndarray) -> None:
        """Take out one occurrence of each of ``values`` (all present)."""
        if values.size:
            self.values, self.payload = _remove(
                self.values, self.payload, np.sort(values.astype(np.float64))
            )

    def quantiles(self, q: np.ndarray, extra: np.ndarray) -> np.ndarray:
        """Percentiles ``q`` (shape (k,)) of the settled values together with ``extra``.

        The same as ``np.percentile`` of all of them (linear interpolation, numpy's own
        formula); NaN for each percentile when there is no value at all.
        """
        return np.asarray(_quantiles(self.values, extra, np.asarray(q, dtype=np.float64)))

    def above(self, threshold: float) -> int:
        """Position of the first settled value strictly above ``threshold``."""
        return int(np.searchsorted(self.values, threshold, side="right"))


class Moments:
    """Count, mean and standard deviation of rows, kept as shifted sums.

    Sums of ``x - ref`` and its square (``ref``: the first row added) in float64, so that
    a column with a large mean and a small spread keeps its precision. Rows can be taken
    out again (a threshold that moved).

    Parameters
    ----------
    width : int
        Columns of the rows.
    """

    def __init__(self, width: int) -> None:
        self.n = 0
        self.ref: np.ndarray | None = None
        self.s1 = np.zeros(width)
        self.s2 = np.zeros(width)

    def add(self, rows: np.ndarray, *, sign: float = 1.0) -> None:
        """Add (``sign=1``) or take out (``sign=-1``) rows, shape (m, width)."""
        if rows.shape[0] == 0:
            return
        if self.ref is None:
            self.ref = rows[0].astype(np.float64)
        s1, s2 = _shifted_sums(rows, self.ref)
        self.s1 += sign * s1
        self.s2 += sign * s2
        self.n += int(sign) * rows.shape[0]

    def stats(self, extra: np.ndarray | None = None) -> tuple[int, np.ndarray, np.ndarray]:
        """Count, mean and std (ddof 0) of the rows kept and ``extra`` (not kept).

        Returns NaN means and stds when there are no rows.
        """
        n, s1, s2, ref = self.n, self.s1, self.s2, self.ref
        if extra is not None and extra.shape[0]:
            if ref is None:
                ref = extra[0].astype(np.float64)
            e1, e2 = _shifted_sums(extra, ref)
            n, s1, s2 = n + extra.shape[0], s1 + e1, s2 + e2
        if n <= 0 or ref is None:
            nan = np.full(self.s1.size, np.nan)
            return 0, nan, nan
        m = s1 / n
        var = np.maximum(s2 / n - m * m, 0.0)
        return n, ref + m, np.sqrt(var)


@dataclass(frozen=True)
class _Segments:
    """Counts and sums of speech segments (times in seconds)."""

    count: int = 0
    total: float = 0.0
    longest: float = 0.0
    first: float = float("nan")
    last_end: float = float("nan")

    def plus(self, a: float, b: float, *, min_s: float) -> _Segments:
        """These and the segment from ``a`` to ``b``, unless it is shorter than ``min_s``."""
        if b - a < min_s:
            return self
        # Rounded as speech_segments returns them, so the statistics are the same.
        ra, rb = round(a, 6), round(b, 6)
        return _Segments(
            count=self.count + 1,
            total=self.total + (rb - ra),
            longest=max(self.longest, rb - ra),
            first=ra if self.count == 0 else self.first,
            last_end=rb,
        )


class SpeechRuns:
    """Speech segments and the longest silence of a growing speech mask.

    The same segments as :func:`classifier.vad.speech_segments` (gaps shorter than
    ``min_gap_s`` bridged, then segments shorter than ``min_speech_s`` dropped, times
    rounded to the microsecond): a segment is kept as counts and sums once no later
    frame can extend it, and only the frames after it are looked at again.

    Parameters
    ----------
    hop_s : float, keyword-only
        Seconds between frames (frame ``t`` is centred on ``t * hop_s``).
    min_speech_s, min_gap_s : float, keyword-only
        As for :func:`classifier.vad.speech_segments`.
    """

    def __init__(self, *, hop_s: float, min_speech_s: float = 0.1, min_gap_s: float = 0.2):
        self.hop_s = hop_s
        self.min_speech_s = min_speech_s
        self.min_gap_s = min_gap_s
        self._from = 0  # first frame not inside a closed segment
        self._closed = _Segments()
        self._silence_from = 0  # first frame after the last settled speech frame
        self._silence_max = 0

    def _segments(self, mask: np.ndarray, start: int) -> list[tuple[float, float, int, int]]:
        """Merged segments of ``mask[start:]``: (t0, t1, first frame, end frame)."""
        m = mask[start:]
        if not m.any():
            return []
        d = np.diff(np.concatenate(([0], m.view(np.int8), [0])))
        starts = (np.flatnonzero(d == 1) + start).tolist()
        ends = (np.flatnonzero(d == -1) + start).tolist()
        hop = self.hop_s
        segs: list[list[float]] = []
        for s, e in zip(starts, ends, strict=True):
            t0 = max(0.0, (s - 0.5) * hop)
            t1 = (e - 0.5) * hop
            if segs and t0 - segs[-1][1] < self.min_gap_s:
                segs[-1][1] = t1
                segs[-1][3] = e
            else:
                segs.append([t0, t1, s, e])
        return [(a, b, int(s), int(e)) for a, b, s, e in segs]

    def update(self, mask: np.ndarray, settled: int) -> dict[str, float]:
        """Activity statistics of ``mask``, whose first ``settled`` frames are final.

        Parameters
        ----------
        mask : numpy.ndarray, bool, shape (n_frames,)
            Speech decision of every frame heard.
        settled : int
            Leading frames that no later audio can change (kept from now on).

        Returns
        -------
        dict
            ``count``, ``sum_s``, ``max_s`` of the kept segments, ``first_s`` (start of
            the first, NaN if none), ``last_end_s`` (end of the last, NaN if none),
            ``longest_silence`` (frames).
        """
        segs = self._segments(mask, self._from)
        # A future run starts at ``settled`` at the earliest: no run can join a segment
        # that ended at least min_gap_s before that.
        t0_next = max(0.0, (settled - 0.5) * self.hop_s)
        open_from = settled
        for i, (a, b, s, e) in enumerate(segs):
            if not (e < settled and t0_next - b >= self.min_gap_s):
                open_from = min(s, settled)
                segs = segs[i:]
                break
            self._closed = self._closed.plus(a, b, min_s=self.min_speech_s)
        else:
            segs = []
        self._from = open_from
        every = self._closed
        for a, b, _, _ in segs:
            every = every.plus(a, b, min_s=self.min_speech_s)
        # The longest run of non-speech: runs that ended before the last settled speech
        # frame are final; the open one and the unsettled frames are looked at anew.
        silence = self._longest_false(mask[self._silence_from :])
        speech_at = np.flatnonzero(mask[self._silence_from : settled])
        if speech_at.size:
            last = self._silence_from + int(speech_at[-1])
            self._silence_max = max(
                self._silence_max, self._longest_false(mask[self._silence_from : last])
            )
            self._silence_from = last + 1
        return {
            "count": float(every.count),
            "sum_s": float(every.total),
            "max_s": float(every.longest),
            "first_s": every.first,
            "last_end_s": every.last_end,
            "longest_silence": float(max(self._silence_max, silence)),
        }

    @staticmethod
    def _longest_false(m: np.ndarray) -> int:
        if m.size == 0 or m.all():
            return 0
        z = np.concatenate(([0], (~m).view(np.int8), [0]))
        edges = np.flatnonzero(np.diff(z))
        return int((edges[1::2] - edges[::2]).max())
