"""Running statistics: the same answers as numpy and speech_segments on the whole data."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.callstats import Moments, SortedValues, SpeechRuns
from classifier.vad import speech_segments

PCTS = np.array([0.0, 5.0, 10.0, 20.0, 50.0, 95.0, 100.0])


@pytest.mark.parametrize("seed", range(6))
def test_sorted_values_quantiles_are_numpys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    kept = SortedValues()
    seen: list[np.ndarray] = []
    for _ in range(12):
        # Ties (integers) and continuous values, chunks of any size, empty included.
        m = int(rng.integers(0, 40))
        chunk = rng.integers(0, 15, m).astype(float) if seed % 2 else rng.normal(size=m)
        kept.add(chunk, np.arange(m))
        seen.append(chunk)
        extra = rng.normal(size=int(rng.integers(0, 12)))
        everything = np.concatenate([*seen, extra])
        got = kept.quantiles(PCTS, extra)
        if everything.size:
            np.testing.assert_array_equal(got, np.percentile(everything, PCTS))
        else:
            assert np.isnan(got).all()
        assert np.all(np.diff(kept.values) >= 0)


def test_sorted_values_payload_follows_and_remove_takes_one_of_equals() -> None:
    kept = SortedValues()
    kept.add(np.array([3.0, 1.0, 2.0, 1.0]), np.array([30, 10, 20, 11]))
    np.testing.assert_array_equal(kept.values, [1.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(kept.payload, [10, 11, 20, 30])
    assert kept.above(1.0) == 2 and kept.above(0.5) == 0 and kept.above(3.0) == 4
    kept.remove(np.array([1.0, 3.0]))
    np.testing.assert_array_equal(kept.values, [1.0, 2.0])
    with pytest.raises(ValueError, match="not among"):
        kept.remove(np.array([7.0]))


def test_moments_match_numpy_with_rows_taken_out() -> None:
    rng = np.random.default_rng(0)
    # A large mean and a small spread: naive sums of squares would lose the spread.
    rows = (1000.0 + 0.01 * rng.standard_normal((500, 3))).astype(np.float32)
    m = Moments(3)
    m.add(rows[:300])
    m.add(rows[300:])
    m.add(rows[100:200], sign=-1.0)
    left = np.concatenate([rows[:100], rows[200:]]).astype(np.float64)
    n, mean, std = m.stats(rows[:7])
    ref = np.concatenate([left, rows[:7].astype(np.float64)])
    assert n == ref.shape[0]
    np.testing.assert_allclose(mean, ref.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, ref.std(axis=0), rtol=1e-6)
    n, mean, std = Moments(2).stats()
    assert n == 0 and np.isnan(mean).all() and np.isnan(std).all()


def _batch(mask: np.ndarray) -> dict[str, float]:
    segs = speech_segments(mask, hop_length=80, sr=8000)
    lengths = [b - a for a, b in segs]
    z = np.concatenate([[0], (~mask).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(z))
    return {
        "count": float(len(segs)),
        "sum_s": float(sum(lengths)),
        "max_s": float(max(lengths)) if lengths else 0.0,
        "first_s": segs[0][0] if segs else float("nan"),
        "last_end_s": segs[-1][1] if segs else float("nan"),
        "longest_silence": float((edges[1::2] - edges[::2]).max()) if edges.size else 0.0,
    }


@pytest.mark.parametrize("seed", range(8))
def test_speech_runs_equal_speech_segments_at_every_update(seed: int) -> None:
    """Settled frames never change; the frames after them are guessed anew each time
    (as a live stream's last seconds are): every answer is that of the mask as given."""
    rng = np.random.default_rng(seed)
    n_total = 3000
    # Speech-like runs: bursts and gaps of random lengths, some gaps near 0.2 s.
    lengths = rng.integers(1, 60, 400)
    truth = np.repeat(np.arange(lengths.size) % 2 == 1, lengths)[:n_total]
    runs = SpeechRuns(hop_s=0.01)
    settled = 0
    for n in range(50, n_total + 1, int(rng.integers(40, 160))):
        settled = max(settled, n - int(rng.integers(0, 300)))
        mask = truth[:n].copy()
        guess = rng.random(n - settled) < rng.random()
        mask[settled:] = guess
        got = runs.update(mask, settled)
        want = _batch(mask)
        for key, value in want.items():
            assert got[key] == pytest.approx(value, abs=1e-9, nan_ok=True), (key, n, settled)
    got = runs.update(truth, truth.size)
    for key, value in _batch(truth).items():
        assert got[key] == pytest.approx(value, abs=1e-9, nan_ok=True), key
