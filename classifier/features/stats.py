"""Call-level statistics of a channel, kept up to date as its frames settle."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from classifier.callstats import Moments, SortedValues, SpeechRuns
from classifier.constants import HOP, SR
from classifier.features.frames import _COL, FRAME_COLUMNS, _db, _weights
from classifier.features.laughter import LaughterStats
from classifier.features.names import N_MFCC
from classifier.features.pitch import PitchStats

#: Percentiles of the frames' energy the statistics use.
_ENERGY_PCTS = np.array([5.0, 10.0, 20.0, 50.0, 95.0])


class ChannelStats:
    """Call-level statistics of one channel, kept up to date as frames settle.

    Every frame's values and speech decision are taken once, when they can no longer
    change; the frames after that (the last seconds of a live call) are looked at in
    each :meth:`update` without being kept. A whole recording is one update in which
    every frame is settled. See :mod:`classifier.callstats`.
    """

    def __init__(self) -> None:
        # A frame's values are final about 0.1 s after it is heard, its speech decision
        # 3 s after: statistics of the values alone take frames sooner.
        self.nv = 0  # frames whose values are taken
        self.n = 0  # frames whose values and speech decisions are taken
        self._energy = SortedValues()  # dB, frame index
        self._energy_m = Moments(1)
        self._speech_db = SortedValues()
        self._other_db = SortedValues()
        self._ratio = SortedValues()
        self._loud = Moments(len(FRAME_COLUMNS))  # frames louder than _loud_at
        self._loud_at: float | None = None
        self._active = SortedValues()  # ratio_db of the frames louder than _active_at
        self._active_at: float | None = None
        self._speech_shape = Moments(2)  # centroid, flatness of speech frames
        self._speech = 0
        self._whisper_only = 0
        self._runs = SpeechRuns(hop_s=HOP / SR)
        self._laughter = LaughterStats()
        self._pitch = PitchStats()
        self._samples = 0
        self._peak = 0.0
        self._clipped = 0

    @property
    def nbytes(self) -> int:
        sorted_ = (self._energy, self._speech_db, self._other_db, self._ratio, self._active)
        return sum(v.nbytes for v in sorted_) + self._pitch.nbytes

    def _take_values(self, V: np.ndarray, end: int) -> None:
        """Keep what the values of frames ``self.nv`` to ``end`` contribute (final)."""
        v = V[self.nv : end]
        e = _db(v[:, _COL["band_power"]])
        self._energy.add(e, np.arange(self.nv, end, dtype=np.int32))
        self._energy_m.add(e[:, None])
        self._ratio.add(v[:, _COL["ratio_db"]])
        if self._loud_at is not None:
            self._loud.add(v[e > self._loud_at])
        if self._active_at is not None:
            self._active.add(v[e > self._active_at, _COL["ratio_db"]])
        self.nv = end

    def _take_decisions(
        self, V: np.ndarray, mask: np.ndarray, with_whisper: np.ndarray, end: int
    ) -> None:
        """Keep what frames ``self.n`` to ``end`` contribute with their speech decisions."""
        new = slice(self.n, end)
        v = V[new]
        e = _db(v[:, _COL["band_power"]])
        speech = mask[new]
        self._speech_db.add(e[speech])
        self._other_db.add(e[~speech])
        self._speech_shape.add(v[speech][:, [_COL["centroid"], _COL["flatness"]]])
        self._speech += int(np.count_nonzero(speech))
        self._whisper_only += int(np.count_nonzero(with_whisper[new] & ~speech))
        self.n = end

    def _crossing(self, old: float | None, new: float) -> tuple[np.ndarray, float]:
        """Settled frames whose energy lies between thresholds ``old`` and ``new``.

        Returns the frames and +1 when they join the frames above the threshold as it
        moves from ``old`` to ``new``, -1 when they leave them. With ``old`` None, every
        frame above ``new`` joins.
        """
        at = self._energy.above
        frames = self._energy.payload
        if old is None:
            return frames[at(new) :], 1.0
        if new > old:
            return frames[at(old) : at(new)], -1.0
        return frames[at(new) : at(old)], 1.0

    def _clipping(self, y: np.ndarray) -> float:
        new = y[self._samples :]
        if new.size:
            peak = max(self._peak, float(np.abs(new).max()))
            if peak >= 0.9:
                # A higher peak moves the clipping level: count every sample again
                # (rare: the loudest sample of a call comes early or not at all).
                seen = y if peak > self._peak else new
                counted = int(np.count_nonzero(np.abs(seen) >= 0.98 * peak))
                self._clipped = counted if peak > self._peak else self._clipped + counted
            self._peak, self._samples = peak, y.size
        return self._clipped / y.size if self._peak >= 0.9 else 0.0

    def update(
        self,
        y: np.ndarray,
        V: np.ndarray,
        mask: np.ndarray,
        with_whisper: np.ndarray,
        *,
        settled: int,
        final: int,
        pitch: Callable[[np.ndarray, np.ndarray], np.ndarray],
        sr: int = SR,
    ) -> dict[str, float]:
        """Call-level features of everything heard.

        Parameters
        ----------
        y : numpy.ndarray, float32, shape (n,)
            Dithered samples heard.
        V : numpy.ndarray, float32, shape (n_frames(n), len(FRAME_COLUMNS))
            :func:`frame_values` of every frame.
        mask, with_whisper : numpy.ndarray, bool, shape (n_frames(n),)
            Voiced speech, and voiced speech or whisper, of every frame.
        settled : int, keyword-only
            Leading frames whose values and decisions are final; they are kept.
        final : int, keyword-only
            Leading frames whose values (``V``) are final, at least ``settled``.
        pitch : callable, keyword-only
            ``pitch(y, frames)``: f0 of pitch frames (:meth:`StreamMemo.pitch`).

        Returns
        -------
        dict of str to float
            The acoustic features of one channel (mono: no stereo features).
        """
        n = mask.size
        if final > self.nv:
            self._take_values(V, final)
        if settled > self.n:
            self._take_decisions(V, mask, with_whisper, settled)
        # The frames not taken yet: v_t, e_t after the values; d_* after the decisions.
        v_t = V[self.nv : n]
        e_t = _db(v_t[:, _COL["band_power"]])
        tail = slice(self.n, n)
        d_v = V[tail]
        d_e = _db(d_v[:, _COL["band_power"]])
        speech_t = mask[tail]
        p5, p10, p20, p50, p95 = self._energy.quantiles(_ENERGY_PCTS, e_t).tolist()
        feats: dict[str, float] = {"audio_duration_s": y.size / sr}

        speech = self._speech + int(np.count_nonzero(speech_t))
        whisper = self._whisper_only + int(np.count_nonzero(with_whisper[tail] & ~speech_t))
        feats["speech_ratio"] = speech / n
        feats["whisper_ratio"] = whisper / n
        dur = n * HOP / sr
        runs = self._runs.update(mask, settled)
        count = runs["count"]
        silence = runs["longest_silence"] * HOP / sr
        feats.update(
            speech_segments=count,
            speech_segment_mean_s=runs["sum_s"] / count if count else 0.0,
            speech_segment_max_s=runs["max_s"] if count else 0.0,
            speech_per_minute=count / max(dur, 1e-3) * 60.0,
            longest_silence_s=silence,
            longest_silence_ratio=silence / max(dur, 1e-3),
            first_speech_s=runs["first_s"] if count else dur,
            last_speech_gap_s=max(0.0, dur - runs["last_end_s"]) if count else dur,
        )

        # Levels relative to the call's own loud frames and floor: gain invariant.
        speech_med = self._speech_db.quantiles(_MEDIAN, d_e[speech_t])[0]
        other_med = self._other_db.quantiles(_MEDIAN, d_e[~speech_t])[0]
        has_both = 0 < speech < n
        feats.update(
            energy_db_std=float(self._energy_m.stats(e_t[:, None])[2][0]),
            energy_db_p10_rel=p10 - p95,
            energy_db_p50_rel=p50 - p95,
            dynamic_range_db=p95 - p5,
            noise_floor_rel_db=p10 - p95,
            snr_db=float(speech_med - other_med) if has_both else 0.0,
        )

        # Spectral shape over the frames louder than the quietest fifth (dead air
        # would dominate otherwise) and over the speech frames.
        frames, sign = self._crossing(self._loud_at, p20)
        self._loud.add(V[frames], sign=sign)
        self._loud_at = p20
        n_loud, mean, std = self._loud.stats(v_t[e_t > p20])
        shape = d_v[speech_t][:, [_COL["centroid"], _COL["flatness"]]]
        speech_mean = self._speech_shape.stats(shape)[1]
        nyq, nan = sr / 2, float("nan")
        for name in ("centroid", "bandwidth", "rolloff"):
            feats[f"{name}_mean"] = float(mean[_COL[name]]) / nyq
            feats[f"{name}_std"] = float(std[_COL[name]]) / nyq
        feats["centroid_speech_mean"] = float(speech_mean[0]) / nyq
        feats["flatness_mean"] = float(mean[_COL["flatness"]])
        feats["flatness_std"] = float(std[_COL["flatness"]])
        feats["flatness_speech_mean"] = float(speech_mean[1])
        for i, (a, b_) in enumerate(_weights(sr)["bands"]):
            narrow = b_ - a < 2 or not n_loud
            feats[f"contrast_{i}_mean"] = nan if narrow else float(mean[_COL[f"contrast_{i}"]])
            feats[f"contrast_{i}_std"] = nan if narrow else float(std[_COL[f"contrast_{i}"]])
        m0 = _COL["mfcc_0"]
        feats["mfcc_0_std"] = float(std[m0])
        for i in range(1, N_MFCC):
            feats[f"mfcc_{i}_mean"] = float(mean[m0 + i])
            feats[f"mfcc_{i}_std"] = float(std[m0 + i])
        # Muffledness: a phone in a pocket passes little above 2 kHz.
        ratio_t = v_t[:, _COL["ratio_db"]]
        feats["muffled_db"] = float(self._ratio.quantiles(_MEDIAN, ratio_t)[0])
        above = p10 + 6.0
        frames, sign = self._crossing(self._active_at, above)
        if sign > 0:
            self._active.add(V[frames, _COL["ratio_db"]])
        else:
            self._active.remove(V[frames, _COL["ratio_db"]])
        self._active_at = above
        active_t = ratio_t[e_t > above]
        feats["muffled_active_db"] = (
            float(self._active.quantiles(_MEDIAN, active_t)[0])
            if len(self._active) + active_t.size
            else 0.0
        )

        feats.update(self._pitch.update(y, mask, settled, pitch))
        feats.update(self._laughter.update(V, mask, settled, final))
        feats["clipping_ratio"] = self._clipping(y)
        return feats


_MEDIAN = np.array([50.0])
