"""Which learner: gradient boosting against a random forest, extra trees and logistic regression.

All learners see the same training calls (the default recipe's honest train split) and
are scored on the same unseen corpus (the recipe's acceptance corpus, a preset and seed
never trained on). Reported side by side: prank and ghost ROC-AUC, recall at 1% of
emergency calls flagged, and fit time relative to gradient boosting (one run, so the
ratio holds on a noisy machine).

    .venv/bin/python bench/bench_models.py --work runs/default-build

``--work`` is the folder of ``callsift build-default`` (its corpora and feature cache
are reused; missing corpora are simulated).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from classifier.features import FEATURE_NAMES
from classifier.formats import LABELS
from classifier.model import CallClassifier, budget_threshold
from training.default import ACCEPTANCE_CORPUS, TRAIN_CORPORA, TRAIN_SETTINGS, ensure_corpus
from training.features import extract_features
from training.split import caller_keys, honest_split
from training.train import load_training_table


def recall_at(p: np.ndarray, y: np.ndarray, cls: str, fpr: float = 0.01) -> float:
    emerg = p[y == "emergency"]
    # The same budget rule as the model's own flag thresholds.
    t = budget_threshold(emerg, int(np.floor(fpr * emerg.size + 1e-9)), 0.0)
    return float((p[y == cls] >= t).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="runs/default-build")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    work = Path(args.work)
    manifests = [ensure_corpus(work, s, n_jobs=args.jobs) for s in TRAIN_CORPORA]
    cache = work / "feature-cache"
    table, _ = load_training_table(
        manifests, n_jobs=args.jobs, cache_dir=cache, timezone=None, progress=False
    )
    split = honest_split(
        table, **{k: TRAIN_SETTINGS[k] for k in ("test_callers", "test_after", "seed")}
    )
    train = table.iloc[split.train].reset_index(drop=True)
    test_manifest = ensure_corpus(work, ACCEPTANCE_CORPUS, n_jobs=args.jobs)
    test, _ = extract_features(test_manifest, n_jobs=args.jobs, cache_dir=cache, progress=False)
    Xtr = train.loc[:, list(FEATURE_NAMES)].to_numpy(np.float64)
    ytr = train["label"].to_numpy()
    Xte = test.loc[:, list(FEATURE_NAMES)].to_numpy(np.float64)
    yte = test["label"].to_numpy()

    def imputed(model: object) -> object:
        return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), model)

    learners = {
        "gradient boosting (callsift)": None,
        "random forest": imputed(
            RandomForestClassifier(
                n_estimators=300, min_samples_leaf=3, class_weight="balanced", random_state=0
            )
        ),
        "extra trees": imputed(
            ExtraTreesClassifier(
                n_estimators=300, min_samples_leaf=3, class_weight="balanced", random_state=0
            )
        ),
        "logistic regression": imputed(
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.5))
        ),
    }
    rows = []
    base_time = None
    for name, model in learners.items():
        t0 = time.perf_counter()
        with threadpool_limits(1):
            if model is None:
                clf = CallClassifier(random_state=0).fit(train, ytr, groups=caller_keys(train))
                proba = clf.predict_proba(test)
                classes = list(LABELS)
            else:
                model.fit(Xtr, ytr)  # type: ignore[attr-defined]
                proba = model.predict_proba(Xte)  # type: ignore[attr-defined]
                classes = [str(c) for c in model.classes_]  # type: ignore[attr-defined]
        elapsed = time.perf_counter() - t0
        base_time = base_time or elapsed
        row = {"learner": name, "fit+predict s": round(elapsed, 1)}
        row["time vs boosting"] = round(elapsed / base_time, 2)
        for cls in ("prank", "ghost"):
            p = proba[:, classes.index(cls)]
            row[f"{cls} ROC-AUC"] = round(roc_auc_score(yte == cls, p), 4)
            row[f"{cls} recall@1%"] = round(recall_at(p, yte, cls), 3)
        rows.append(row)
    print(f"train calls {len(train)}, test calls {len(test)} ({ACCEPTANCE_CORPUS.preset})")
    print("note: gradient boosting's time includes its 4-fold calibration and threshold search")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
