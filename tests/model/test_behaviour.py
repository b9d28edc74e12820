"""Behavioural tests of the shipped default model (Made-With-ML style).

They state what call-takers must be able to rely on, whatever the model's version:
a silent open line looks like a ghost call, the recording level does not matter, a
number's confirmed pranks count against it, and a clear spoken report from a new number
is left alone.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import numpy as np
import pytest

from classifier.history import PastCall
from tests.model.conftest import TAKER, WIB, Scorer, at_peak, line_noise, place, speak

GREETING = "Halo, seratus dua belas, ada yang bisa kami bantu?"
PROMPT = "Halo? Halo? Bapak, ibu, bisa mendengar saya?"


def _silent_open_line(seconds: float = 30.0, seed: int = 1) -> np.ndarray:
    """The call-taker says "halo?" three times into an open line with only its hiss."""
    y = np.zeros(int(seconds * 8000), dtype=np.float32)
    place(y, speak(GREETING, TAKER), 0.8)
    place(y, speak(PROMPT, TAKER), 9.0)
    place(y, speak(PROMPT, TAKER), 19.0)
    return at_peak(y) + line_noise(seconds, level_db=-50.0, seed=seed)


def _spoken_report(seed: int = 2) -> np.ndarray:
    lines = [
        (0.5, TAKER, GREETING),
        (
            4.5,
            None,
            "Tolong, ada kebakaran di rumah tetangga saya, di jalan Melati nomor dua belas.",
        ),
        (12.0, TAKER, "Baik pak, apakah ada orang yang terjebak di dalam rumah?"),
        (
            16.0,
            None,
            "Saya tidak tahu, apinya besar sekali, asapnya hitam, tolong cepat kirim pemadam.",
        ),
        (24.0, TAKER, "Petugas pemadam sedang menuju ke lokasi. Siapa nama bapak?"),
        (28.5, None, "Nama saya Budi, nomor telepon saya ini. Rumahnya dekat masjid besar."),
        (36.0, TAKER, "Baik pak Budi, tolong jauhi rumah itu dan tunggu petugas."),
        (40.5, None, "Iya bu, terima kasih, saya tunggu di depan gang."),
    ]
    y = np.zeros(48 * 8000, dtype=np.float32)
    for at, voice, text in lines:
        place(y, speak(text) if voice is None else speak(text, voice), at)
    return at_peak(y) + line_noise(48.0, level_db=-45.0, seed=seed)


def test_silent_open_line_scores_high_as_ghost(score: Scorer) -> None:
    s = score(_silent_open_line())
    assert s.p_ghost > 0.5, s
    assert max(s.probabilities, key=s.probabilities.__getitem__) == "ghost", s
    assert s.p_ghost > 10 * s.p_prank


@pytest.mark.parametrize("gain_db", [-12.0, 12.0])
@pytest.mark.parametrize("make", [_silent_open_line, _spoken_report])
def test_gain_barely_moves_scores(score: Scorer, make, gain_db: float) -> None:
    y = make()
    base = score(y)
    # The calls peak at -14 dBFS, so +12 dB changes the level without clipping.
    moved = score(y * np.float32(10 ** (gain_db / 20)))
    for cls in ("prank", "ghost", "emergency", "non_emergency"):
        assert abs(moved.probabilities[cls] - base.probabilities[cls]) < 0.1, (cls, base, moved)


def _silent_stereo_line(echo_db: float | None, seconds: float = 30.0, seed: int = 4) -> np.ndarray:
    """A silent line recorded in stereo (call-taker left, caller right), shape (n, 2);
    with ``echo_db``, the call-taker's voice comes back in the caller's channel that
    much down, 90 ms late, through a short decaying path (a handset's echo)."""
    n = int(seconds * 8000)
    taker = np.zeros(n, dtype=np.float32)
    place(taker, speak(GREETING, TAKER), 0.8)
    place(taker, speak(PROMPT, TAKER), 9.0)
    place(taker, speak(PROMPT, TAKER), 19.0)
    taker = at_peak(taker)
    caller = line_noise(seconds, level_db=-50.0, seed=seed)
    if echo_db is not None:
        path = np.exp(-np.arange(16) / 4.0) * np.cos(np.arange(16))
        path *= 10 ** (echo_db / 20) / np.sqrt(path @ path)
        delay = int(0.09 * 8000)
        caller[delay:] += np.convolve(taker, path)[: n - delay].astype(np.float32)
    return np.stack([taker + line_noise(seconds, level_db=-60.0, seed=seed + 1), caller], axis=1)


def test_the_call_takers_echo_is_not_the_caller_speaking(score: Scorer) -> None:
    # Recorders tapping both directions often keep an echo of the call-taker in the
    # caller's channel: on a silent line it must not read as the caller speaking.
    clean = score(_silent_stereo_line(None), caller_channel="right")
    assert clean.p_ghost > 0.5, clean
    for echo_db in (-20.0, -30.0):
        echoed = score(_silent_stereo_line(echo_db), caller_channel="right")
        assert abs(echoed.p_ghost - clean.p_ghost) < 0.05, (echo_db, clean, echoed)
        assert echoed.flag == clean.flag, (echo_db, clean, echoed)


def _short_unclear_call(seed: int = 3) -> np.ndarray:
    y = np.zeros(9 * 8000, dtype=np.float32)
    place(y, speak(GREETING, TAKER), 0.5)
    place(y, speak("Halo... iya, eh, ada kebakaran, cepat ya."), 4.5)
    return at_peak(y) + line_noise(9.0, level_db=-45.0, seed=seed)


@pytest.mark.parametrize("make", [_spoken_report, _short_unclear_call])
def test_confirmed_pranks_raise_the_prank_score(score: Scorer, make) -> None:
    y = make()
    at = datetime(2025, 6, 3, 16, 10, tzinfo=WIB)
    scores = []
    for n in (0, 1, 2, 4, 6):
        past = [
            PastCall(started_at=at - timedelta(hours=5 * (k + 1)), duration_s=15.0, label="prank")
            for k in range(n)
        ]
        scores.append(score(y, at=at, past=past).p_prank)
    # Boosted trees are step functions and not constrained to be monotone (scikit-learn
    # has no monotonic constraints for several classes): where few training callers had
    # that many pranks a step may fall back a little. Measured on the shipped default
    # model (default-20261206T185346Z), the short unclear call: 0.43, 0.86, 0.87, 0.89,
    # 0.90 at 6 pranks; the spoken report 0.02, then 0.06 or 0.07.
    # Every step stays far above no history, and none falls by more than 0.05.
    # Without history the call must leave room to rise: a score already near 1 would
    # hide history that no longer counts.
    assert scores[0] < 0.7, scores
    assert all(b >= a - 0.05 for a, b in itertools.pairwise(scores)), scores
    assert all(s > 1.3 * scores[0] for s in scores[1:]), scores
    assert scores[-1] > 1.3 * scores[0], scores


def test_clear_spoken_report_from_new_number_is_not_flagged(score: Scorer) -> None:
    s = score(_spoken_report())
    assert s.flag == "none", s
    assert s.p_prank < 0.2 and s.p_ghost < 0.2, s


def test_cleared_history_no_longer_counts(score: Scorer) -> None:
    y = _spoken_report()
    at = datetime(2025, 6, 3, 16, 10, tzinfo=WIB)
    pranks = [
        PastCall(started_at=at - timedelta(hours=5 * (k + 1)), duration_s=15.0, label="prank")
        for k in range(4)
    ]
    cleared = [PastCall(p.started_at, p.duration_s, p.label, weight=0.0) for p in pranks]
    assert score(y, at=at, past=cleared).p_prank < score(y, at=at, past=pranks).p_prank


def test_digital_silence_scores_as_ghost(score: Scorer) -> None:
    """A line of exact zeros (VoIP without comfort noise) is the emptiest ghost call."""
    s = score(np.zeros(20 * 8000, dtype=np.float32), caller_id="simless:handset-1")
    assert s.p_ghost > 0.5, s
    assert max(s.probabilities, key=s.probabilities.__getitem__) == "ghost", s
