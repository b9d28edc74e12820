"""Feature groups on real audio: train without some features, and see what moves scores.

``train``: the default recipe's corpora (``callsift build-default --work``, real-recording
training calls included; those missing are built as ``build-default`` would) trained
again with the features named by ``--drop`` left out (``mfcc_*``: every name with that
prefix; ``*_std``: with that suffix), every other setting the recipe's. Score the
result on the real check sets with ``callsift evaluate --model OUT``.

    .venv/bin/python bench/feature_ablation.py train --out /tmp/abl-nomfcc --drop 'mfcc_*'
    .venv/bin/python bench/feature_ablation.py train --out /tmp/abl-base

``levers``: which feature groups lift a model's p_prank on the emergency calls of real
check sets that carry an infant cry. The calls' features (``callsift features
--prefixes none``) with one group at a time set to its median over the emergency calls
without a cry; the mean p_prank of the top calls is printed per group.

    .venv/bin/callsift features /tmp/rc15/manifest.csv --out /tmp/f15.parquet --prefixes none
    .venv/bin/python bench/feature_ablation.py levers --set /tmp/rc15/manifest.csv=/tmp/f15.parquet
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from classifier.artifact import load_model
from classifier.errors import CallsiftError
from classifier.features import FEATURE_NAMES

GROUPS: dict[str, tuple[str, ...]] = {
    "pitch": ("pitch_", "voiced_share"),
    "laughter": ("laughter_",),
    "voices": ("other_", "voice_", "taker_"),
    "spectral": ("centroid", "bandwidth", "rolloff", "flatness", "contrast", "mfcc_"),
    "mfcc means": tuple(f"mfcc_{i}_mean" for i in range(1, 13)),
    "mfcc standard deviations": tuple(f"mfcc_{i}_std" for i in range(13)),
    "energy": ("energy_", "dynamic_range_db", "noise_floor_rel_db", "snr_db"),
    "duration": ("audio_duration_s",),
}


def chosen(drop: str) -> list[str]:
    """FEATURE_NAMES without those ``drop`` names (comma-separated; ``x*``: a prefix,
    ``*x``: a suffix)."""
    pats = [p.strip() for p in drop.split(",") if p.strip()]

    def hit(p: str, f: str) -> bool:
        if p.startswith("*"):
            return f.endswith(p[1:])
        return f.startswith(p[:-1]) if p.endswith("*") else f == p

    unknown = [p for p in pats if not any(hit(p, f) for f in FEATURE_NAMES)]
    if unknown:
        raise SystemExit(f"--drop names no feature: {unknown}")
    return [f for f in FEATURE_NAMES if not any(hit(p, f) for p in pats)]


def train_cmd(args: argparse.Namespace) -> None:
    from training.default import (
        DEFAULT_REAL_DIR,
        REAL_TRAIN_CORPORA,
        TRAIN_CORPORA,
        TRAIN_SETTINGS,
        ensure_corpus,
        ensure_real_calls,
    )
    from training.train import train

    feats = chosen(args.drop)  # a bad --drop is told before any corpus work
    work = Path(args.work)
    # The recipe's own corpora: reused when their stamps match this code, built if absent.
    manifests = [
        ensure_corpus(work, s, n_jobs=args.jobs, real_dir=DEFAULT_REAL_DIR) for s in TRAIN_CORPORA
    ]
    manifests += [ensure_real_calls(work, s, DEFAULT_REAL_DIR) for s in REAL_TRAIN_CORPORA]
    print(f"{len(FEATURE_NAMES) - len(feats)} features left out")
    train(
        manifests,
        Path(args.out),
        name=Path(args.out).name,
        n_jobs=args.jobs,
        cache_dir=work / "feature-cache",
        domains=["sim"] * len(TRAIN_CORPORA) + ["real"] * len(REAL_TRAIN_CORPORA),
        params={"features": feats},
        progress=True,
        **TRAIN_SETTINGS,
    )


def levers_cmd(args: argparse.Namespace) -> None:
    model = load_model(args.model).call
    frames = []
    for pair in args.set:
        manifest, _, parquet = pair.partition("=")
        m = pd.read_csv(manifest, dtype=str)
        f = pd.read_parquet(parquet)
        f["call_id"] = f["call_id"].astype(str)
        frames.append(f.merge(m[["call_id", "source_files"]], on="call_id"))
    d = pd.concat(frames, ignore_index=True)
    em = d[d["label"] == "emergency"].copy()
    em["cry"] = em["source_files"].fillna("").str.contains("infant_cry|crying_baby")
    ip = list(model.classes_).index("prank")
    em["p_prank"] = model.predict_proba(em)[:, ip]
    ref = em[~em["cry"]]
    top = em[em["cry"]].sort_values("p_prank", ascending=False).head(args.top)
    print(f"{len(top)} emergency calls with a cry, mean p_prank {top['p_prank'].mean():.2f}")
    with_cry = em[em["cry"]]["p_prank"].median()
    print(f"median p_prank: with a cry {with_cry:.3f}, without {ref['p_prank'].median():.3f}")
    for name, prefixes in GROUPS.items():
        cols = [c for c in FEATURE_NAMES if c.startswith(prefixes)]
        edited = top.copy()
        for c in cols:
            edited[c] = float(np.nanmedian(ref[c].to_numpy(np.float64)))
        p = model.predict_proba(edited)[:, ip]
        print(f"{name:26s} ({len(cols):2d} features): mean p_prank {p.mean():.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--work", default="runs/default-build")
    t.add_argument("--out", required=True)
    t.add_argument("--drop", default="")
    t.add_argument("--jobs", type=int, default=1)
    t.set_defaults(run=train_cmd)
    lv = sub.add_parser("levers")
    lv.add_argument("--model", default="models/default")
    lv.add_argument("--set", action="append", required=True, help="MANIFEST=FEATURES.parquet")
    lv.add_argument("--top", type=int, default=12)
    lv.set_defaults(run=levers_cmd)
    args = ap.parse_args()
    try:
        args.run(args)
    except CallsiftError as exc:  # a stale or missing corpus, a mismatched model
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
