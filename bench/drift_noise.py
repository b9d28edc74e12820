"""How much PSI a window of calls shows when nothing has drifted, and what a drift costs.

For windows of n calls drawn from the very distribution of the reference (7,000 calls),
the PSI of a group of three features (the largest of the three, as the service reports
it) over 1,000 seeded windows: its median, 95th and 99th percentiles and how often it
crosses 0.1 (watch) and 0.25 (shift). Then the time of one ``classifier.drift.compare``
over 50,000 calls (the most the service reads). Figures in docs/model.md, "Drift".

    .venv/bin/python bench/drift_noise.py
"""

from __future__ import annotations

import json
import time

import numpy as np

from classifier.drift import (
    MONITORED_FEATURES,
    PSI_SHIFT,
    PSI_WATCH,
    compare,
    histogram,
    histogram_psi,
    make_reference,
)

N_REFERENCE = 7000
REPEATS = 1000


def _three(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """A normal, a skewed and a partly missing feature (as pitch is in silent calls)."""
    missing = rng.random(n) < 0.3
    return [
        rng.normal(size=n),
        rng.exponential(size=n),
        np.where(missing, np.nan, rng.gamma(2.0, size=n)),
    ]


def noise() -> list[dict[str, float]]:
    rng = np.random.default_rng(0)
    hists = [histogram(v) for v in _three(rng, N_REFERENCE)]
    rows = []
    for n in (50, 100, 200, 400, 1000):
        group = np.array(
            [
                max(histogram_psi(h, v) for h, v in zip(hists, _three(rng, n), strict=True))
                for _ in range(REPEATS)
            ]
        )
        rows.append(
            {
                "calls": n,
                "median": round(float(np.median(group)), 3),
                "p95": round(float(np.quantile(group, 0.95)), 3),
                "p99": round(float(np.quantile(group, 0.99)), 3),
                "share_watch": round(float((group >= PSI_WATCH).mean()), 3),
                "share_shift": round(float((group >= PSI_SHIFT).mean()), 4),
            }
        )
    return rows


def compare_seconds(n: int = 50_000) -> float:
    import pandas as pd

    rng = np.random.default_rng(1)
    calls = pd.DataFrame({f: rng.normal(size=N_REFERENCE) for f in MONITORED_FEATURES})
    scored = pd.DataFrame(
        {
            "p_prank": rng.random(800),
            "p_ghost": rng.random(800),
            "flag": rng.choice(["none", "possible_prank", "likely_ghost"], 800),
        }
    )
    reference = make_reference(calls, scored, source="bench")
    features = {f: rng.normal(size=n) for f in MONITORED_FEATURES}
    scores = {"p_prank": rng.random(n), "p_ghost": rng.random(n)}
    flags = list(rng.choice(["none", "possible_prank", "likely_ghost"], n))
    compare(reference, features=features, scores=scores, flags=flags)  # imports
    start = time.perf_counter()
    compare(reference, features=features, scores=scores, flags=flags)
    return time.perf_counter() - start


def main() -> None:
    out = {"noise": noise(), "compare_50000_calls_s": round(compare_seconds(), 3)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
