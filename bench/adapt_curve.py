"""Adapting to a centre (issue 16): two weeks of a centre's reviewed calls, the week after.

    .venv/bin/python bench/adapt_curve.py [--preset jakarta-2024 --calls 450 --seed 41]
        [--base models/default] [--work runs/adapt-bench] [--real-dir ../shared/data]
    .venv/bin/python bench/adapt_curve.py --manifest /tmp/rc15/manifest.csv  # real calls
        [--calibration isotonic]  # as callsift adapt --calibration

Simulates a centre the default recipe never saw (a preset and seed of its own), splits
its calls at two thirds of their time span ("the first two weeks" and "the week after"),
runs ``callsift adapt`` (the function, without MLflow) on the first part and measures the
adapted model and the base on the calls of the last part, whole calls and every time
heard. Their history features come from the whole corpus, as in the service, which
knows the earlier calls. Also measures the base recalibrated on the earliest 25, 50,
100, 200 and all calls of the first part on the same last part: a learning curve on
the following week rather than on the command's own validation quarter.

Goals (issue 16): ghost ROC-AUC >= 0.98, >= 80% of ghost and of prank calls flagged,
emergency calls flagged within the budget (1%), <= 5% of non-emergency calls flagged.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOALS = {"ghost_roc_auc": 0.98, "ghost_recall": 0.80, "prank_recall": 0.80, "non_em": 0.05}


def _write_part(manifest: Path, dest: Path, keep: set[str]) -> Path:
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    fields = list(rows[0])
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for r in rows:
            if r["call_id"] in keep:
                r["audio_path"] = str((manifest.parent / r["audio_path"]).resolve())
                w.writerow(r)
    return dest


def _row(name: str, f: dict[str, Any]) -> str:
    def pct(v: float) -> str:
        return "n/a" if not np.isfinite(v) else f"{100 * v:.1f}%"

    return (
        f"| {name} | {f['ghost_roc_auc']:.3f} | {f['prank_roc_auc']:.3f} | "
        f"{pct(f['ghost_recall'])} | {pct(f['prank_recall'])} | "
        f"{f['emergency_flagged']} of {f['emergency']} | {f['emergency_flagged_any_time']} | "
        f"{pct(f['non_emergency_flagged_share'])} |"
    )


def main() -> None:
    from classifier.artifact import load_model
    from classifier.manifest import load_manifest
    from training.adapt import (
        DEFAULT_CALIBRATION,
        DEFAULT_NON_EMERGENCY_TARGET,
        SIM_CALLS,
        SIM_PRESET,
        SIM_SEED,
        AdaptingDoesNotHelp,
        adapt,
        figures,
    )
    from training.default import DEFAULT_REAL_DIR, CorpusSpec, ensure_corpus
    from training.features import extract_features

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", default="jakarta-2024")
    p.add_argument("--calls", type=int, default=450)
    p.add_argument("--seed", type=int, default=41)
    p.add_argument("--base", default=None, help="model folder (default: models/default)")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "adapt-bench")
    p.add_argument(
        "--real-dir",
        default=str(DEFAULT_REAL_DIR) if DEFAULT_REAL_DIR.is_dir() else "none",
        help="real recordings mixed into the centre's calls ('none': simulator only)",
    )
    p.add_argument("--weights", default="1,4,16", help="as callsift adapt --weights")
    p.add_argument("--out", type=Path, default=None, help="model folder (default: WORK/model)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument(
        "--non-emergency-target",
        type=float,
        default=DEFAULT_NON_EMERGENCY_TARGET,
        help="as callsift adapt --non-emergency-target (also the learning curve's)",
    )
    p.add_argument(
        "--calibration",
        default=DEFAULT_CALIBRATION,
        choices=("sigmoid", "isotonic"),
        help="as callsift adapt --calibration (also the learning curve's)",
    )
    p.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help="a centre's labelled manifest to use instead of simulating one "
        "(e.g. the real check set: bench/real_checkset.py build)",
    )
    args = p.parse_args()

    real = None if args.real_dir == "none" else Path(args.real_dir)
    work: Path = args.work
    cache = work / "feature-cache"
    spec = CorpusSpec(
        f"centre-{args.preset}-{args.calls}-{args.seed}", args.preset, args.calls, args.seed
    )
    t0 = time.perf_counter()
    folder = work / (spec.name + ("-real" if real else ""))
    # A corpus simulated before stays in use (ensure_corpus refuses one made by older
    # simulator code; the bench measures adapting, not the simulator).
    if args.manifest is not None and not args.manifest.is_file():
        p.error(f"--manifest {args.manifest} is not a file")
    manifest = args.manifest or folder / "manifest.csv"
    if not manifest.is_file():
        manifest = ensure_corpus(work, spec, n_jobs=args.jobs, real_dir=real)
    sim = work / f"sim-{SIM_PRESET}-{SIM_CALLS}-{SIM_SEED}" / "manifest.csv"
    frame = load_manifest(manifest)
    when = frame["started_at_utc"]
    cut = when.min() + (when.max() - when.min()) * 2 / 3
    early = set(frame.loc[when < cut, "call_id"])
    first = _write_part(manifest, work / "first-part" / "manifest.csv", early)
    later = frame[when >= cut]
    print(f"centre: {manifest} ({len(frame)} calls, {when.min()} to {when.max()})")
    print(f"adapting on {len(early)} calls before {cut}; measuring on {len(later)} after")
    print("labels, first part:", frame.loc[when < cut, "label"].value_counts().to_dict())
    print("labels, last part: ", later["label"].value_counts().to_dict())

    out = args.out or work / "model"
    weights = [] if args.weights == "none" else [float(w) for w in args.weights.split(",")]
    try:
        result = adapt(
            [first],
            out,
            base=args.base,
            sim=sim if sim.is_file() else None,
            work=work,
            cache_dir=cache,
            n_jobs=args.jobs,
            weights=weights,
            calibration=args.calibration,
            non_emergency_target=args.non_emergency_target,
            mlflow=False,
            progress=False,
            say=lambda s: print(f"  [{time.perf_counter() - t0:6.0f} s] {s}"),
            warn=lambda s: print(f"  warning: {s}"),
        )
        adapted = load_model(out)
        chosen, candidates = result.chosen, result.candidates
    except AdaptingDoesNotHelp as exc:
        # The command wrote nothing: the centre keeps the base.
        print(f"  refused: {exc}")
        adapted = load_model(args.base)
        chosen, candidates = "none (the base stays)", exc.candidates
    base = load_model(args.base)
    table, _ = extract_features(
        manifest,
        n_jobs=args.jobs,
        cache_dir=cache,
        prefixes=adapted.call.prefixes_,
        progress=False,
    )
    table = table.assign(source="0")
    stamps = pd.to_datetime(table["started_at"], utc=True, format="ISO8601")
    last = table[(stamps >= cut).to_numpy()].reset_index(drop=True)
    targets = {"possible": 0.01, "likely": 0.002}

    header = (
        "| model | ghost ROC-AUC | prank ROC-AUC | ghost flagged | prank flagged | "
        "emergency flagged | at any time heard | non-emergency flagged |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    f_adapted = figures(adapted.call, last, targets=targets)
    print(f"\nThe week after ({int(f_adapted['calls'])} calls), whole calls:\n")
    print(header)
    print(_row(f"base {base.version}", figures(base.call, last, targets=targets)))
    print(_row(f"adapted: {chosen}", f_adapted))

    print("\nCandidates on the command's validation quarter (card):\n")
    print(header)
    for c in candidates:
        print(_row(c["name"], c))

    print("\nBase recalibrated on the earliest N calls of the first part, the week after:\n")
    print(header.replace("| model |", "| N calls |"))
    first_rows = table[(stamps < cut).to_numpy()].reset_index(drop=True)
    order = (
        first_rows.loc[first_rows["prefix_s"].isna()]
        .assign(t=stamps[(stamps < cut).to_numpy()].reset_index(drop=True))
        .sort_values("t")["call_id"]
        .tolist()
    )
    for n in [25, 50, 100, 200, len(order)]:
        if n > len(order):
            continue
        rows = first_rows[first_rows["call_id"].isin(order[:n])]
        if not (rows["label"] == "emergency").any():
            print(f"| {n} | no emergency call among them | | | | | | |")
            continue
        model = base.call.recalibrate(
            rows,
            rows["label"].astype(str).to_numpy(),
            rows["caller_id"].astype(str).to_numpy(),
            calibration=args.calibration,
            non_emergency_target=args.non_emergency_target,
        )
        print(_row(str(n), figures(model, last, targets=targets)))

    f = f_adapted
    print("\nGoals on the week after:")
    print(f"  ghost ROC-AUC {f['ghost_roc_auc']:.3f} (goal >= {GOALS['ghost_roc_auc']})")
    print(
        f"  ghost flagged {f['ghost_recall']:.1%}, prank flagged {f['prank_recall']:.1%} (>= 80%)"
    )
    print(
        f"  emergency flagged {f['emergency_flagged']} of {f['emergency']} "
        f"(budget 1%: {'kept' if f['within_budget'] else 'missed'})"
    )
    print(f"  non-emergency flagged {f['non_emergency_flagged_share']:.1%} (<= 5%)")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
