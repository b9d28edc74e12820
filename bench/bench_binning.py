"""Weighted fits with scikit-learn's own bin edges and with classifier.binning's.

    .venv/bin/python bench/bench_binning.py [--calls 3000] [--features 150] [--repeats 3]

The same weighted ``HistGradientBoostingClassifier`` fit (the project's booster
parameters, class-balancing weights) on a random table of the shape of a training
table, alternately with scikit-learn's per-edge weighted percentiles and with the
one-pass edges of :mod:`classifier.binning`; prints each fit's seconds, their medians
and ratio, and checks that both give the same probabilities.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.ensemble._hist_gradient_boosting import binning as skb
    from sklearn.utils.class_weight import compute_sample_weight

    from classifier import binning

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--calls", type=int, default=3000)
    p.add_argument("--features", type=int, default=150)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if not binning.install():
        raise SystemExit("this scikit-learn keeps its own binning: nothing to compare")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.calls, args.features))
    X[rng.random(X.shape) < 0.05] = np.nan
    y = rng.choice(4, size=args.calls, p=[0.1, 0.5, 0.2, 0.2])
    w = compute_sample_weight("balanced", y)
    probe = rng.normal(size=(2000, args.features))
    theirs, ours = binning.original(), binning._find_binning_thresholds
    times: dict[str, list[float]] = {"scikit-learn": [], "classifier.binning": []}
    outputs: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        for name, fn in (("scikit-learn", theirs), ("classifier.binning", ours)):
            skb._find_binning_thresholds = fn
            model = HistGradientBoostingClassifier(
                max_iter=60, learning_rate=0.05, max_leaf_nodes=15, random_state=0
            )
            t = time.perf_counter()
            model.fit(X, y, sample_weight=w)
            times[name].append(time.perf_counter() - t)
            outputs[name] = model.predict_proba(probe)
            print(f"{name:>20}: {times[name][-1]:7.2f} s", flush=True)
    skb._find_binning_thresholds = ours
    a, b = (statistics.median(times[k]) for k in times)
    same = np.array_equal(outputs["scikit-learn"], outputs["classifier.binning"])
    shape = f"{args.calls} calls x {args.features} features"
    print(f"\n{shape}, weighted fit, medians of {args.repeats}:")
    print(f"  scikit-learn's edges {a:.2f} s, classifier.binning {b:.2f} s: {a / b:.1f}x faster")
    print(f"  same probabilities: {same}")


if __name__ == "__main__":
    main()
