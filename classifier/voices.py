"""Whose voice is it: the call-taker's or someone else's, in a mono recording.

Every call opens with the call-taker's greeting. In a mono recording the call-taker's
greeting and prompts ("halo? ... halo?") share the line with the caller, and counted as
"speech on the line" they made an open line with a prompting call-taker look like a
talking caller. The opening's voice is enrolled as the call-taker's, and every later
stretch of speech is attributed to the call-taker or to someone else.

Each stretch of speech is summarised by three things a listener would use too: its
**level** (median frame power in dB: the call-taker's headset is a steady local line,
the caller comes through the network), its **pitch** (median f0 in semitones: men, women
and children sit apart) and its **spectral shape** (mean cepstrum 1-12: voice and
telephone channel). How far one speaker's stretches scatter around the speaker's mean
(mostly the words said: the shorter the stretch, the more) and how much further another
speaker lies were measured on English speech pairs (``bench/voice_attribution.py
--fit``): level and cepstra are compared along 13 rotated directions in which that
scatter is independent, pitch on its own. Each stretch then gets the log-likelihood of
"the call-taker again" against "another voice", either one heard earlier in the call or
a new one. The stretches are attributed jointly, in a few rounds (expectation
maximisation): the call-taker's voice is the opening's and every stretch attributed to
it, the other voice every stretch attributed to someone else, and each stretch is judged
against both without itself.

Inputs, per 10 ms STFT frame: the speech mask, MFCC 0-12 and band power of
:func:`classifier.features.frame_values`, and f0 from
:func:`classifier.features.pitch_track` of the pitch frames :func:`speech_pitch_frames`
picks, mapped by :func:`frame_pitch`. About 1 ms for a 60 s call (f0 not included).

The attribution is a pure function of the speech mask and the per-frame values given,
so a live stream after ``t`` seconds gets what the recording of its first ``t`` seconds
gets; a live stream reuses its last attribution while its speech runs are unchanged
(:class:`VoiceMemo`). Measured figures: docs/vad.md, "Whose voice".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

__all__ = [
    "VOICE_FEATURES",
    "VoiceMemo",
    "VoiceRuns",
    "attribute_voices",
    "frame_pitch",
    "segments",
    "speech_pitch_frames",
    "stretch_summaries",
    "voice_runs",
    "voice_space",
]

#: Frames per second of the STFT the features use (10 ms hop), and its hop in samples.
FPS = 100
HOP = 80
#: Pitch frames (classifier.features.pitch_track): 32 ms windows every 20 ms.
PITCH_FRAME = 256
PITCH_HOP = 160
#: The opening searched for the call-taker's voice: its first turn (speech up to the
#: first pause of ENROL_GAP_S), at most ENROL_SPEECH_S of speech of it.
ENROL_WITHIN_S = 6.0
ENROL_GAP_S = 1.0
ENROL_SPEECH_S = 2.0
#: Less speech than this in the opening: no voice enrolled, the features fall back.
MIN_ENROL_S = 1.0
#: Speech runs closer than this are one stretch; shorter stretches are not judged.
MERGE_GAP_S = 0.1
MIN_SEGMENT_S = 0.2
#: A stretch's pitch needs this many voiced frames (else it is judged without pitch).
MIN_VOICED = 5
#: Stretches of another voice, this many frames in all, make a voice to compare with.
MIN_OTHER_FRAMES = 200
#: Another voice's utterance: its speech with pauses shorter than this bridged.
UTTERANCE_GAP_S = 0.5

#: What a stretch is summarised by: level (dB), pitch (semitones above 100 Hz) and
#: cepstra 1-12 (dB-scaled mel cepstrum, as classifier.features' mfcc_1..12).
SUMMARY: tuple[str, ...] = ("level_db", "pitch_st", *(f"mfcc_{i}" for i in range(1, 13)))
#: The voice space stretches are compared in: pitch, and level with the cepstra rotated
#: (VOICE_ROTATION, rows level_db, mfcc_1..12) into 13 directions along which the same
#: speaker's stretches differ independently. Along each of its 14 dimensions, one
#: speaker's stretch lies off the speaker's mean by a variance of WITHIN_C + WITHIN_V /
#: frames (the words said: the fewer frames, the more), and another speaker's mean lies
#: off by a further BETWEEN. Fitted on the tune corpus (bench/voice_attribution.py
#: --fit; docs/vad.md); the rotation makes WITHIN_C 1 along every rotated direction.
# fmt: off
VOICE_ROTATION = np.array([
    [0.032246, 0.011254, -0.020521, -0.0098039, -0.057784, -0.042075, -0.027504, 0.088581,
     0.18074, 0.16009, -0.13878, 0.60505, 2.6129],
    [-0.02993, 0.024144, 0.02314, -0.051137, 0.059901, 0.036667, -0.039184, 0.054855,
     -0.074124, -0.057597, 0.024589, 0.10515, -1.1194],
    [-0.083472, 0.026281, 0.034259, -0.0060343, -0.017606, -0.015487, 0.016125, -0.06609,
     -0.085419, 0.051404, 0.029631, 0.26767, 0.13739],
    [-0.02526, 0.023596, 0.0075307, -0.12154, 0.08075, 0.062402, -0.053547, 0.068688,
     -0.070162, 0.037806, 0.11668, -0.42222, 1.0308],
    [-0.12975, -0.010018, 0.035072, 0.080356, -0.046836, -0.044717, -0.014288, 0.09105,
     0.16644, -0.10363, -0.17788, -0.38349, -0.066362],
    [0.036367, -0.021419, 0.00024403, 0.094499, 0.099445, 0.076827, -0.25866, -0.0125, 0.12233,
     -0.094185, 0.18552, 0.015632, 0.71525],
    [0.032117, -0.00046233, -0.011674, 0.1468, 0.0094706, 0.15702, 0.1927, 0.10375, -0.069056,
     -0.14699, 0.18319, 0.55285, 1.6793],
    [0.021394, 0.014752, -0.020843, 0.17777, 0.26947, -0.15068, 0.12757, 0.099937, -0.19325,
     0.29863, -0.28713, -0.054005, 0.47076],
    [-0.018635, -0.0046552, -0.016526, -0.18125, 0.097973, -0.04257, 0.051752, -0.21481,
     0.027149, -0.22069, -0.91221, 0.011196, 0.60028],
    [0.059743, 0.037558, 0.28398, -0.22101, 0.064845, -0.24366, 0.079331, -0.027843, 0.12222,
     -0.2712, 0.50592, -0.069596, 0.10034],
    [0.034213, 0.071586, 0.3063, 0.10017, -0.19335, 0.33003, -0.061624, -0.039206, 0.057513,
     0.30665, -0.10356, 0.15971, -1.6307],
    [0.066284, 0.13598, -0.071557, 0.056756, -0.16023, -0.061324, -0.24188, 0.16644, -0.3693,
     -0.18739, -0.19211, -0.38814, 1.6298],
    [-0.05086, 0.20429, -0.19782, -0.0085493, 0.11608, -0.027574, 0.12003, -0.13326, 0.3411,
     -0.010244, 0.24351, -0.0046882, -1.2252],
])
WITHIN_C = np.array([
    0.22347, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
])
WITHIN_V = np.array([
    239.96, 0.39975, 0.65223, 5.5237, 21.698, 24.149, 34.612, 51.657, 67.709, 112.44, 159.99,
    511.46, 1674.8, 42438,
])
BETWEEN = np.array([
    67.71, 0.88243, 1.0954, 0.81625, 1.214, 2.0061, 0.88385, 1.9322, 1.0976, 3.6227, 4.5894,
    4.4406, 36.124, 596.41,
])
# fmt: on
#: A stretch is another voice when its log-likelihood ratio exceeds OTHER_PRIOR; of the
#: "another voice" hypothesis, NEW_VOICE_SHARE is a voice not heard before in the call.
OTHER_PRIOR = -1.0
NEW_VOICE_SHARE = 0.1
#: Rounds of attribution (each judges every stretch against the others' attribution).
ROUNDS = 3

#: Features of the caller's own speech (NaN where no voice could be enrolled).
VOICE_FEATURES: tuple[str, ...] = (
    "voice_enrolled",
    "other_speech_ratio",
    "other_speech_max_s",
    "other_turns",
    "taker_only",
    "taker_prompt_share",
    "other_level_rel_db",
    "other_tilt_rel",
)


def segments(mask: np.ndarray, *, merge_gap: int, min_len: int) -> np.ndarray:
    """Runs of True in ``mask``, gaps shorter than ``merge_gap`` frames bridged.

    Parameters
    ----------
    mask : numpy.ndarray of bool, shape (n,)
    merge_gap, min_len : int, keyword-only
        In frames; runs shorter than ``min_len`` after merging are dropped.

    Returns
    -------
    numpy.ndarray of int64, shape (n_runs, 2)
        Start and stop (exclusive) frame of each run.
    """
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return np.zeros((0, 2), np.int64)
    edges = np.flatnonzero(np.diff(np.concatenate(([False], m, [False])).astype(np.int8)))
    runs = edges.reshape(-1, 2)
    if len(runs) > 1:
        keep = np.concatenate(([True], runs[1:, 0] - runs[:-1, 1] >= merge_gap))
        starts = runs[keep, 0]
        stops = np.append(runs[np.flatnonzero(keep)[1:] - 1, 1], runs[-1, 1])
        runs = np.stack([starts, stops], axis=1)
    return runs[runs[:, 1] - runs[:, 0] >= min_len].astype(np.int64)


def speech_pitch_frames(mask: np.ndarray, n_samples: int) -> np.ndarray:
    """Pitch frames worth a pitch estimate: heard in full, centred in a speech frame.

    Pitch frame ``j`` (window ``y[160 j : 160 j + 256]``) is centred between STFT frames
    ``2 j + 1`` and ``2 j + 2`` (frame ``t`` centred on sample ``80 t``).

    Returns
    -------
    numpy.ndarray of int64
        Ascending pitch frame indices, for :func:`classifier.features.pitch_track`.
    """
    m = np.asarray(mask, dtype=bool)
    total = 0 if n_samples < PITCH_FRAME else 1 + (n_samples - PITCH_FRAME) // PITCH_HOP
    j = np.arange(total)
    t1, t2 = np.minimum(2 * j + 1, m.size - 1), np.minimum(2 * j + 2, m.size - 1)
    if m.size == 0:
        return j[:0].astype(np.int64)
    return j[m[t1] | m[t2]].astype(np.int64)


def frame_pitch(frames: np.ndarray, f0: np.ndarray, n_frames: int) -> np.ndarray:
    """f0 (Hz) of each STFT frame from pitch frames' yin estimates; NaN where unvoiced.

    An estimate counts where it lies within 75-480 Hz and within 0.1 octave of the
    previous pitch frame's (yin always answers; a steady estimate is a voiced one), as
    classifier.features' pitch statistics judge it. STFT frame ``t`` takes pitch frame
    ``round((80 t - 128) / 160)``.

    Parameters
    ----------
    frames : numpy.ndarray of int, shape (k,)
        Ascending pitch frame indices (:func:`speech_pitch_frames`).
    f0 : numpy.ndarray, shape (k,)
        Their yin estimates (:func:`classifier.features.pitch_track`).
    n_frames : int
        STFT frames of the call.
    """
    frames = np.asarray(frames, dtype=np.int64)
    f0 = np.asarray(f0, dtype=np.float64)
    out = np.full(n_frames, np.nan)
    if frames.size == 0 or n_frames == 0:
        return out
    track = np.full(int(frames[-1]) + 2, np.nan)
    track[frames + 1] = f0  # track[j + 1]: pitch frame j; track[0]: none before frame 0
    with np.errstate(invalid="ignore", divide="ignore"):
        steady = np.abs(np.log2(track[1:] / track[:-1])) < 0.1
    good = np.where(steady & (track[1:] > 75.0) & (track[1:] < 480.0), track[1:], np.nan)
    j = np.rint((HOP * np.arange(n_frames) - PITCH_FRAME // 2) / PITCH_HOP).astype(np.int64)
    inside = (j >= 0) & (j < good.size)
    out[inside] = good[j[inside]]
    return out


def _group_medians(values: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Median of each group of ``values`` (consecutive groups of ``count``; NaN if empty).

    ``values`` lie within +-500 (levels in dB, pitches in semitones): one sort of the
    values offset by 1000 per group orders every group at once.
    """
    g = np.repeat(np.arange(count.size), count)
    key = np.sort(np.clip(values, -500.0, 500.0) + 1000.0 * g)
    starts = np.cumsum(count) - count
    out = np.full(count.size, np.nan)
    has = count > 0
    lo = starts[has] + (count[has] - 1) // 2
    hi = starts[has] + count[has] // 2
    out[has] = 0.5 * (key[lo] + key[hi]) - 1000.0 * np.flatnonzero(has)
    return out


def stretch_summaries(
    ranges: np.ndarray,
    group: np.ndarray,
    cepstra: np.ndarray,
    power: np.ndarray,
    f0: np.ndarray | None,
) -> np.ndarray:
    """Level, pitch and mean cepstrum (:data:`SUMMARY`) of groups of frame ranges.

    Parameters
    ----------
    ranges : numpy.ndarray of int, shape (k, 2)
        Frame ranges (start, stop exclusive), each at least one frame long.
    group : numpy.ndarray of int, shape (k,)
        The group each range belongs to: 0, 1, ... in order (a group's ranges are
        consecutive), summarised together.
    cepstra : numpy.ndarray, shape (n_frames, 13)
        MFCC 0-12 of every frame (classifier.features' ``mfcc_0`` .. ``mfcc_12``).
    power : numpy.ndarray, shape (n_frames,)
        Telephone-band power of every frame (``band_power``).
    f0 : numpy.ndarray or None, shape (n_frames,)
        f0 of every frame in Hz, NaN where unvoiced (:func:`frame_pitch`); None: no
        pitch (the pitch dimension NaN).

    Returns
    -------
    numpy.ndarray, shape (n_groups, len(SUMMARY))
        NaN pitch where a group has fewer than :data:`MIN_VOICED` voiced frames.
    """
    ranges = np.asarray(ranges, dtype=np.int64).reshape(-1, 2)
    group = np.asarray(group, dtype=np.int64)
    n_groups = int(group[-1]) + 1 if group.size else 0
    out = np.full((n_groups, len(SUMMARY)), np.nan)
    if n_groups == 0:
        return out
    lengths = ranges[:, 1] - ranges[:, 0]
    offsets = np.cumsum(lengths) - lengths
    frames = np.repeat(ranges[:, 0] - offsets, lengths) + np.arange(int(lengths.sum()))
    count = np.bincount(group, weights=lengths, minlength=n_groups).astype(np.int64)
    level = 10.0 * np.log10(np.asarray(power, dtype=np.float64)[frames] + 1e-10)
    out[:, 0] = _group_medians(level, count)
    if f0 is not None:
        hz = np.asarray(f0, dtype=np.float64)[frames]
        voiced = np.isfinite(hz) & (hz > 0)
        fgroup = np.repeat(np.arange(n_groups), count)
        n_voiced = np.bincount(fgroup[voiced], minlength=n_groups)
        st = _group_medians(12.0 * np.log2(hz[voiced] / 100.0), n_voiced)
        out[:, 1] = np.where(n_voiced >= MIN_VOICED, st, np.nan)
    starts = np.cumsum(count) - count
    C = np.asarray(cepstra)[frames, 1:13].astype(np.float64)
    out[:, 2:] = np.add.reduceat(C, starts, axis=0) / count[:, None]
    return out


def voice_space(z: np.ndarray) -> np.ndarray:
    """Summaries (:data:`SUMMARY`) in the voice space: pitch, then the rotated rest."""
    z = np.atleast_2d(np.asarray(z, dtype=np.float64))
    rest = z[:, [0, *range(2, len(SUMMARY))]] @ VOICE_ROTATION
    return np.concatenate([z[:, 1:2], rest], axis=1)


def _log_density(d2: np.ndarray, var: np.ndarray, use: np.ndarray) -> np.ndarray:
    """Diagonal Gaussian log density (per row) of squared offsets ``d2`` where ``use``."""
    return -0.5 * np.where(use, d2 / var + np.log(var), 0.0).sum(axis=1)


def attribute_stretches(
    z: np.ndarray, n: np.ndarray, z_taker: np.ndarray, n_taker: float
) -> np.ndarray:
    """Probability that each stretch is another voice than the enrolled one.

    Parameters
    ----------
    z : numpy.ndarray, shape (m, len(SUMMARY))
        The stretches after the opening in the voice space (:func:`voice_space`; NaN:
        dimension unknown, e.g. the pitch of an unvoiced stretch).
    n : numpy.ndarray, shape (m,)
        Their lengths in frames.
    z_taker : numpy.ndarray, shape (len(SUMMARY),)
        The enrolled opening in the voice space, ``n_taker`` frames long.
    """
    m = z.shape[0]
    if m == 0:
        return np.zeros(0)
    n = np.asarray(n, dtype=np.float64)[:, None]
    valid = np.isfinite(z)
    zf = np.where(valid, z, 0.0)
    frames, sums = valid * n, zf * n  # per stretch and dimension
    e_valid = np.isfinite(z_taker)
    e_frames = e_valid * float(n_taker)
    e_sum = np.where(e_valid, z_taker, 0.0) * float(n_taker)
    e_count = e_valid.astype(np.float64)
    noise = WITHIN_C + WITHIN_V / n  # (m, K): a stretch's scatter around its speaker
    log_seen_share, log_new_share = np.log1p(-NEW_VOICE_SHARE), np.log(NEW_VOICE_SHARE)
    q = np.zeros(m)
    for round_ in range(ROUNDS + 1):
        # Each voice's frames, stretches and sums without the stretch judged (leave one
        # out); the first round judges every stretch against the opening alone.
        if round_ == 0:
            t_frames, t_count, t_sum = e_frames, e_count, e_sum
        else:
            w = (1.0 - q)[:, None]
            t_frames = e_frames + (w * frames).sum(axis=0) - w * frames
            t_count = e_count + (w * valid).sum(axis=0) - w * valid
            t_sum = e_sum + (w * sums).sum(axis=0) - w * sums
        use = valid & (t_frames > 0)
        t_var = noise + WITHIN_C / np.maximum(t_count, 1e-9) + WITHIN_V / np.maximum(t_frames, 1e-9)
        d2 = np.where(use, (zf - t_sum / np.maximum(t_frames, 1e-9)) ** 2, 0.0)
        log_t = _log_density(d2, t_var, use)
        log_other = log_new = _log_density(d2, t_var + BETWEEN, use)
        if round_:
            w = q[:, None]
            o_frames = (w * frames).sum(axis=0) - w * frames
            o_count = (w * valid).sum(axis=0) - w * valid
            o_sum = (w * sums).sum(axis=0) - w * sums
            o_use = use & (o_frames >= MIN_OTHER_FRAMES) & (o_count > 0.5)
            o_var = (
                noise + WITHIN_C / np.maximum(o_count, 1e-9) + WITHIN_V / np.maximum(o_frames, 1e-9)
            )
            o_d2 = (zf - o_sum / np.maximum(o_frames, 1e-9)) ** 2
            # Dimensions the other voice lacks are judged as a new voice's.
            log_seen = _log_density(
                np.where(o_use, o_d2, d2), np.where(o_use, o_var, t_var + BETWEEN), use
            )
            # Whether another voice is known: its level and cepstra (always there) are.
            log_other = np.where(
                o_use[:, -1],
                np.logaddexp(log_seen + log_seen_share, log_new + log_new_share),
                log_new,
            )
        q = 1.0 / (1.0 + np.exp(-np.clip(log_other - log_t - OTHER_PRIOR, -50.0, 50.0)))
    return q


class VoiceRuns(NamedTuple):
    """Stretches of speech after the enrolled opening, and whose each is."""

    enrol: np.ndarray  # (k, 2) int64 frame ranges of the enrolled opening
    runs: np.ndarray  # (n_runs, 2) int64 start, stop (exclusive) frames
    other: np.ndarray  # (n_runs,) bool: another voice than the enrolled one
    p_other: np.ndarray  # (n_runs,) float: its probability


def enrolment(runs: np.ndarray) -> np.ndarray | None:
    """Frame ranges of the opening's voice, or None when they hold under MIN_ENROL_S."""
    opening = runs[runs[:, 0] < ENROL_WITHIN_S * FPS]
    if len(opening) == 0:
        return None
    gaps = opening[1:, 0] - opening[:-1, 1]
    turn = np.concatenate(([True], np.cumprod(gaps < ENROL_GAP_S * FPS).astype(bool)))
    first = opening[turn].copy()
    ends = np.cumsum(first[:, 1] - first[:, 0])
    budget = int(ENROL_SPEECH_S * FPS)
    first = first[np.concatenate(([0], ends[:-1])) < budget]
    over = int(ends[len(first) - 1]) - budget
    if over > 0:
        first[-1, 1] -= over
    if int((first[:, 1] - first[:, 0]).sum()) < MIN_ENROL_S * FPS:
        return None
    return first


class VoiceMemo:
    """A live stream's last attribution, reused while its speech runs stay the same.

    The attribution reads the speech runs (:func:`segments` of the mask) and the frame
    values inside them, nothing else. Once every run lies in frames whose values are
    final, an update with the same runs (a pause, an open line, the caller still
    silent) gets the same features; only the share of the call, whose length grew, is
    divided anew. Without pitch only (live streams attribute without it).
    """

    def __init__(self) -> None:
        self.runs: np.ndarray | None = None
        self.features: dict[str, float] = {}
        self.other_frames = 0.0

    def recall(self, runs: np.ndarray, n_frames: int) -> dict[str, float] | None:
        """The features stored for exactly ``runs``, for a call of ``n_frames``; else None."""
        if self.runs is None or not np.array_equal(runs, self.runs):
            return None
        out = dict(self.features)
        out["other_speech_ratio"] = self.other_frames / max(n_frames, 1)
        return out

    def store(self, runs: np.ndarray, features: dict[str, float], other_frames: float) -> None:
        self.runs, self.features, self.other_frames = runs, dict(features), other_frames

    @property
    def nbytes(self) -> int:
        return 0 if self.runs is None else int(self.runs.nbytes)


#: MIN_SEGMENT_S in frames: the shortest run or stretch judged.
_SHORTEST = max(1, int(MIN_SEGMENT_S * FPS))


def _runs(mask: np.ndarray) -> np.ndarray:
    """The speech runs the attribution judges (a run of less than MIN_SEGMENT_S dropped)."""
    return segments(mask, merge_gap=int(MERGE_GAP_S * FPS), min_len=_SHORTEST)


def _check_inputs(
    mask: np.ndarray, cepstra: np.ndarray, power: np.ndarray, f0: np.ndarray | None
) -> None:
    n = int(mask.size)
    for name, a in (("cepstra", cepstra), ("power", power), ("f0", f0)):
        if a is not None and np.shape(a)[0] != n:
            raise ValueError(f"mask has {n} frames and {name} {np.shape(a)[0]}; expected equal")
    if np.shape(cepstra)[1:] != (13,):
        raise ValueError(f"cepstra must have 13 columns (MFCC 0-12); got {np.shape(cepstra)}")


def voice_runs(
    mask: np.ndarray, cepstra: np.ndarray, power: np.ndarray, f0: np.ndarray | None = None
) -> VoiceRuns | None:
    """The later stretches of speech and whether each is another voice than the opening's.

    Parameters
    ----------
    mask : numpy.ndarray of bool, shape (n_frames,)
        Speech frames (10 ms hop).
    cepstra : numpy.ndarray, shape (n_frames, 13)
        MFCC 0-12 of the same frames (classifier.features.frame_values).
    power : numpy.ndarray, shape (n_frames,)
        Telephone-band power of the same frames (``band_power``).
    f0 : numpy.ndarray or None, shape (n_frames,)
        f0 in Hz of the same frames, NaN where unvoiced (:func:`frame_pitch`); None
        judges without pitch (weaker: docs/vad.md).

    Returns
    -------
    VoiceRuns or None
        None when the opening holds too little speech to enrol a voice (less than
        :data:`MIN_ENROL_S` within :data:`ENROL_WITHIN_S`).
    """
    mask = np.asarray(mask, dtype=bool)
    _check_inputs(mask, cepstra, power, f0)
    return _judge_runs(_runs(mask), cepstra, power, f0)


def _judge_runs(
    runs: np.ndarray, cepstra: np.ndarray, power: np.ndarray, f0: np.ndarray | None
) -> VoiceRuns | None:
    """:func:`voice_runs` of the speech runs ``runs`` (:func:`_runs`), inputs checked."""
    enrol = enrolment(runs)
    if enrol is None:
        return None
    enrol_end = int(enrol[-1, 1])
    # Stretches after the enrolment: one the enrolment ends inside is judged on its frames
    # after the enrolment.
    later = runs[runs[:, 1] > enrol_end].copy()
    later[:, 0] = np.maximum(later[:, 0], enrol_end)
    later = later[later[:, 1] - later[:, 0] >= _SHORTEST]
    ranges = np.concatenate([enrol, later])
    group = np.concatenate([np.zeros(len(enrol), np.int64), np.arange(1, len(later) + 1)])
    z = voice_space(stretch_summaries(ranges, group, cepstra, power, f0))
    lengths = (later[:, 1] - later[:, 0]).astype(np.float64)
    n_enrol = float((enrol[:, 1] - enrol[:, 0]).sum())
    p = attribute_stretches(z[1:], lengths, z[0], n_enrol)
    return VoiceRuns(enrol=enrol, runs=later, other=p > 0.5, p_other=p)


def attribute_voices(
    mask: np.ndarray,
    cepstra: np.ndarray,
    power: np.ndarray,
    f0: np.ndarray | None = None,
    *,
    memo: VoiceMemo | None = None,
    final: int | None = None,
    of_other: Callable[[np.ndarray], dict[str, float]] | None = None,
) -> dict[str, float]:
    """The caller's own speech in a mono call, the opening's voice taken as the call-taker.

    Parameters
    ----------
    mask, cepstra, power, f0
        As :func:`voice_runs`.
    memo : VoiceMemo or None, keyword-only
        A live stream's earlier attribution (without pitch): reused when the speech
        runs are those it was made for; None computes it.
    final : int or None, keyword-only
        With ``memo``: how many leading frames hold final values (None: all); an
        attribution is kept for reuse only when every run lies inside them.
    of_other : callable or None, keyword-only
        When a voice is enrolled, called with the frame ranges (``(k, 2)`` int64 start,
        stop) of the stretches judged another voice's (possibly none); the features it
        returns are added to the result (and kept with it in ``memo``). The caller's
        pitch is measured this way (:func:`classifier.features.summarise`).

    Returns
    -------
    dict of str to float
        ``voice_enrolled`` 1 when a voice was enrolled (:func:`voice_runs`), else 0 and
        every other feature NaN (but the other voice's share, longest utterance and
        turns 0 when nobody spoke at all). ``other_speech_ratio``: share of the call's frames in
        speech of another voice; ``other_speech_max_s``: its longest utterance (pauses
        under :data:`UTTERANCE_GAP_S` bridged), from its first to its last frame;
        ``other_turns``: how many turns another voice took (stretches of another voice
        with no call-taker stretch between them are one turn); ``taker_only`` 1 when
        only the call-taker spoke after the opening; ``taker_prompt_share``: share of
        the stretches after the opening that are the call-taker's (NaN when there are
        none).
    """
    mask = np.asarray(mask, dtype=bool)
    _check_inputs(mask, cepstra, power, f0)
    speech = _runs(mask)
    memo = memo if f0 is None else None  # the memo holds attributions without pitch
    if memo is not None and (recalled := memo.recall(speech, int(mask.size))) is not None:
        return recalled
    found = _judge_runs(speech, cepstra, power, f0)
    if found is None:
        out = dict.fromkeys(VOICE_FEATURES, float("nan"))
        out["voice_enrolled"] = 0.0
        if not np.any(mask):
            # Nobody spoke at all: that no other voice spoke is known, not missing (a
            # recording of the line alone, with no greeting, is a silent call).
            out.update(other_speech_ratio=0.0, other_speech_max_s=0.0, other_turns=0.0)
        return out
    runs, other = found.runs, found.other
    lengths = (runs[:, 1] - runs[:, 0]).astype(np.float64)
    longest = 0.0
    if other.any():
        theirs = runs[other]
        new = np.concatenate(([True], theirs[1:, 0] - theirs[:-1, 1] >= UTTERANCE_GAP_S * FPS))
        starts = theirs[new, 0]
        stops = np.append(theirs[np.flatnonzero(new)[1:] - 1, 1], theirs[-1, 1])
        longest = float((stops - starts).max()) / FPS
    turns = int(other[0]) + int(np.count_nonzero(other[1:] & ~other[:-1])) if other.size else 0
    level_rel = tilt_rel = float("nan")
    if other.any():
        mine = _frames_of(found.enrol)
        theirs_frames = _frames_of(runs[other])
        db = 10.0 * np.log10(np.asarray(power, dtype=np.float64) + 1e-12)
        level_rel = float(np.median(db[theirs_frames]) - np.median(db[mine]))
        c1 = np.asarray(cepstra, dtype=np.float64)[:, 1]
        tilt_rel = float(np.mean(c1[theirs_frames]) - np.mean(c1[mine]))
    other_frames = float(lengths[other].sum())
    out = {
        "voice_enrolled": 1.0,
        "other_speech_ratio": other_frames / max(int(np.size(mask)), 1),
        "other_speech_max_s": longest,
        "other_turns": float(turns),
        "taker_only": float(not other.any()),
        "taker_prompt_share": float(np.mean(~other)) if other.size else float("nan"),
        "other_level_rel_db": level_rel,
        "other_tilt_rel": tilt_rel,
    }
    if of_other is not None:
        out.update(of_other(runs[other]))
    # Kept only when every run's frame values are final (``speech`` is not empty here).
    if memo is not None and int(speech[-1, 1]) <= (mask.size if final is None else final):
        memo.store(speech, out, other_frames)
    return out


def _frames_of(ranges: np.ndarray) -> np.ndarray:
    """Frame indices of ``[start, stop)`` rows."""
    if len(ranges) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.arange(int(a), int(b)) for a, b in ranges])
