"""How far the simulator is from real recordings (issue 15): can a classifier tell them apart?

    .venv/bin/python bench/sim_real_gap.py --real /tmp/realcheck/manifest.csv \
        --out runs/sim-real-gap [--sim SIM/manifest.csv | --preset balanced --calls 480 --seed 15]

For each label, a gradient-boosting classifier learns to tell simulated calls (a corpus
of ``callsift simulate``, made here unless ``--sim`` names one) from the real-recording
check set's calls of the same label (``bench/real_checkset.py``), from the acoustic
features of ``classifier/features.py`` only: no metadata, no caller history, and not
``audio_duration_s``, ``stereo`` or ``call_complete``, which the check set's design sets
(durations, stereo share) rather than the sound. Folds are grouped by caller (5-fold
StratifiedGroupKFold), so a caller's calls never sit on both sides.

ROC-AUC of the out-of-fold scores, per label: 0.5 means the simulator's calls of that
label cannot be told from real ones; 1.0 means every call gives itself away. The
features that give simulation away are ranked by permutation importance (drop in
ROC-AUC when a feature's values are shuffled in the test fold, mean over folds and
labels), with the median value of each side. Writes ``gap.md``, ``gap.json`` and
``gap.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LABELS = ("emergency", "non_emergency", "prank", "ghost")
EXCLUDED = ("audio_duration_s", "stereo", "call_complete")


def acoustic_columns(table: pd.DataFrame) -> list[str]:
    from classifier.features import AUDIO_FEATURES

    return [c for c in AUDIO_FEATURES if c not in EXCLUDED and c in table.columns]


def features(manifest: Path, *, cache: Path | None, jobs: int) -> pd.DataFrame:
    from training.features import extract_features

    table, failures = extract_features(manifest, n_jobs=jobs, cache_dir=cache, prefixes=())
    if len(failures):
        raise SystemExit(f"{manifest}: {len(failures)} calls failed: {failures.head()}")
    return table


def _groups(table: pd.DataFrame, corpus: str) -> np.ndarray:
    caller = table["caller_id"].fillna("").astype(str)
    key = np.where(caller == "", "call:" + table["call_id"].astype(str), caller)
    return np.array([f"{corpus}:{k}" for k in key])


def gap(
    sim: pd.DataFrame, real: pd.DataFrame, *, folds: int = 5, repeats: int = 5, seed: int = 0
) -> dict[str, Any]:
    """Per-label ROC-AUC of telling simulated from real calls, and permutation importances."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold
    from threadpoolctl import threadpool_limits

    cols = acoustic_columns(real)
    out: dict[str, Any] = {"features": cols, "labels": {}}
    # One OpenMP thread: on shared, busy cores the boosting's threads spin and a fit
    # takes 20 times longer.
    limits = threadpool_limits(1)
    importances = []
    for label in LABELS:
        s = sim[sim["label"] == label]
        r = real[real["label"] == label]
        if len(s) < folds or len(r) < folds:
            continue
        x = pd.concat([s[cols], r[cols]]).to_numpy(dtype=float)
        y = np.r_[np.ones(len(s)), np.zeros(len(r))]
        groups = np.r_[_groups(s, "sim"), _groups(r, "real")]
        oof = np.full(y.size, np.nan)
        imp = np.zeros(len(cols))
        cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        for k, (train, test) in enumerate(cv.split(x, y, groups)):
            model = HistGradientBoostingClassifier(
                max_iter=200, learning_rate=0.1, max_leaf_nodes=15, random_state=seed
            )
            model.fit(x[train], y[train])
            oof[test] = model.predict_proba(x[test])[:, 1]
            if 0 < y[test].sum() < test.size:
                pi = permutation_importance(
                    model,
                    x[test],
                    y[test],
                    scoring="roc_auc",
                    n_repeats=repeats,
                    random_state=seed + k,
                )
                imp += pi.importances_mean / folds
        auc = float(roc_auc_score(y, oof))
        top = np.argsort(-imp)[:5]
        # Each feature alone: how far its ROC-AUC for "simulated" is from 0.5.
        alone = np.array(
            [
                abs(roc_auc_score(y, np.nan_to_num(x[:, j], nan=np.nanmedian(x[:, j]))) - 0.5) + 0.5
                if np.isfinite(x[:, j]).any()
                else 0.5
                for j in range(len(cols))
            ]
        )
        out["labels"][label] = {
            "sim_calls": len(s),
            "real_calls": len(r),
            "roc_auc": auc,
            "top": [
                {
                    "feature": cols[i],
                    "importance": float(imp[i]),
                    "alone_auc": float(alone[i]),
                    "sim_median": float(np.nanmedian(s[cols[i]])),
                    "real_median": float(np.nanmedian(r[cols[i]])),
                }
                for i in top
            ],
        }
        out["labels"][label]["alone_auc"] = {c: float(a) for c, a in zip(cols, alone, strict=True)}
        out["labels"][label]["medians"] = {
            c: [float(np.nanmedian(s[c])), float(np.nanmedian(r[c]))] for c in cols
        }
        importances.append(imp)
    limits.restore_original_limits()
    mean_imp = np.mean(importances, axis=0)
    order = np.argsort(-mean_imp)[:10]
    out["top10"] = []
    for i in order:
        name = cols[i]
        row = {"feature": name, "importance": float(mean_imp[i])}
        for label in out["labels"]:
            row[f"{label}_alone"] = out["labels"][label]["alone_auc"][name]
            row[f"{label}_sim"] = float(np.nanmedian(sim.loc[sim["label"] == label, name]))
            row[f"{label}_real"] = float(np.nanmedian(real.loc[real["label"] == label, name]))
        out["top10"].append(row)
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| label | simulated calls | real calls | ROC-AUC sim vs real | features giving it away |",
        "|---|---|---|---|---|",
    ]
    for label, v in result["labels"].items():
        top = ", ".join(t["feature"] for t in v["top"][:3])
        lines.append(
            f"| {label} | {v['sim_calls']} | {v['real_calls']} | {v['roc_auc']:.3f} | {top} |"
        )
    labels = list(result["labels"])
    lines += [
        "",
        "Top 10 features (permutation importance: mean drop in ROC-AUC over labels and "
        "folds); per label the median simulated / real and, in brackets, the ROC-AUC of "
        "the feature alone (0.5: no difference):",
        "",
        "| feature | importance | " + " | ".join(labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    for row in result["top10"]:
        cells = [
            f"{row[f'{lab}_sim']:.3g} / {row[f'{lab}_real']:.3g} ({row[f'{lab}_alone']:.2f})"
            for lab in labels
        ]
        lines.append(
            f"| `{row['feature']}` | {row['importance']:.3f} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        "Strongest single features per label (ROC-AUC of the feature alone; median "
        "simulated / real):",
        "",
        "| label | features |",
        "|---|---|",
    ]
    for label, v in result["labels"].items():
        alone = sorted(v["alone_auc"].items(), key=lambda kv: -kv[1])[:5]
        cells = []
        for name, auc in alone:
            med = v["medians"][name]
            cells.append(f"`{name}` {auc:.2f} ({med[0]:.3g} / {med[1]:.3g})")
        lines.append(f"| {label} | " + "; ".join(cells) + " |")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1, 2]})
    labels = list(result["labels"])
    aucs = [result["labels"][k]["roc_auc"] for k in labels]
    a.bar(labels, aucs, color="#6baed6")
    a.axhline(0.5, color="grey", ls="--", lw=1)
    a.set_ylim(0.4, 1.08)
    a.set_ylabel("ROC-AUC, simulated vs real")
    a.set_title("Can simulation be told from real? (0.5 = no)")
    a.tick_params(axis="x", rotation=20)
    for i, v in enumerate(aucs):
        a.text(i, v + 0.01, f"{v:.2f}", ha="center", fontsize=9)
    top = result["top10"][::-1]
    b.barh([t["feature"] for t in top], [t["importance"] for t in top], color="#fd8d3c")
    b.set_xlabel("permutation importance (drop in ROC-AUC)")
    b.set_title("Features that give simulation away")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--real", type=Path, required=True, help="check set manifest.csv")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--sim", type=Path, help="simulated manifest.csv (else simulated here)")
    p.add_argument("--preset", default="balanced")
    p.add_argument("--calls", type=int, default=480)
    p.add_argument("--seed", type=int, default=15)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--cache", type=Path, help="feature cache folder")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sim_manifest = args.sim
    if sim_manifest is None:
        from training.simulate import simulate_corpus

        sim_dir = args.out / f"sim-{args.preset}-{args.calls}-{args.seed}"
        sim_manifest = sim_dir / "manifest.csv"
        if not sim_manifest.exists():
            simulate_corpus(
                sim_dir, preset=args.preset, n_calls=args.calls, seed=args.seed, n_jobs=args.jobs
            )
    sim = features(sim_manifest, cache=args.cache, jobs=args.jobs)
    real = features(args.real, cache=args.cache, jobs=args.jobs)
    result = gap(sim, real)
    result["sim_manifest"] = str(sim_manifest)
    result["real_manifest"] = str(args.real)
    text = markdown(result)
    (args.out / "gap.md").write_text(text + "\n")
    (args.out / "gap.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(result, args.out / "gap.png")
    print(text)
    print(f"\nwrote {args.out / 'gap.md'}, gap.json, gap.png")


if __name__ == "__main__":
    main()
