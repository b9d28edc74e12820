"""Behaviour of early scores: a live call scored after its first seconds.

A streamed score at N seconds is the model applied to the first N seconds of the
recording (``CallAudio.head``), with the time heard as the call's duration. A silent
caller may be a person in danger who needs time to speak, or cannot: early on a ghost
flag is at most ``possible``, and a clear spoken report is never flagged while it starts.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.model.conftest import Scorer
from tests.model.test_behaviour import _silent_open_line, _spoken_report


def test_four_seconds_of_silence_is_not_yet_a_likely_ghost(score: Scorer) -> None:
    for y in (_silent_open_line(), np.zeros(30 * 8000, dtype=np.float32)):
        s = score(y, heard=4.0)
        assert s.flag != "likely_ghost", s
        if s.flag == "possible_ghost":
            assert "so far" in s.reasons[0].en and "sejauh ini" in s.reasons[0].id, s


def test_twenty_seconds_of_silence_is_flagged_ghost(score: Scorer) -> None:
    s = score(_silent_open_line(), heard=20.0)
    assert s.flag in ("possible_ghost", "likely_ghost"), s
    assert max(s.probabilities, key=s.probabilities.__getitem__) == "ghost", s


@pytest.mark.parametrize("heard", [2.0, 5.0, 10.0, 20.0])
def test_clear_spoken_report_is_not_flagged_while_it_starts(score: Scorer, heard: float) -> None:
    s = score(_spoken_report(), heard=heard)
    assert s.flag == "none", s


@pytest.mark.parametrize("heard", [5.0, 20.0])
@pytest.mark.parametrize("gain_db", [-12.0, 12.0])
@pytest.mark.parametrize("make", [_silent_open_line, _spoken_report])
def test_gain_barely_moves_early_scores(score: Scorer, make, gain_db: float, heard: float) -> None:
    y = make()
    base = score(y, heard=heard)
    moved = score(y * np.float32(10 ** (gain_db / 20)), heard=heard)
    for cls in ("prank", "ghost", "emergency", "non_emergency"):
        assert abs(moved.probabilities[cls] - base.probabilities[cls]) < 0.1, (cls, base, moved)
