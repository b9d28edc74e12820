"""The shipped default model: time to first score, and accuracy on corpora it never saw.

1. Time from a loaded Python to the first score: load ``models/default`` and score one
   simulated call end to end (decode, features, model, reasons).
2. Accuracy on the recipe's acceptance corpus (Purworejo preset, seed 99) and on an
   unseen-seed corpus of a trained preset (balanced, seed 777: 375 emergency calls, so
   the emergency false-flag rate is measured on more than Purworejo's 13).
3. Robustness: the same Purworejo recipe with real speech and real noise from
   ``../shared/data`` mixed in by the simulator (skipped when that folder is absent).

    .venv/bin/python bench/bench_default_model.py --work runs/default-build
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from training.default import ACCEPTANCE_CORPUS, CorpusSpec, acceptance, ensure_corpus
from training.evaluate import evaluate_manifest
from training.simulate import simulate_corpus

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def first_score() -> dict[str, float]:
    t0 = time.perf_counter()
    from classifier.artifact import load_model
    from classifier.audio import load_audio
    from classifier.callrow import parse_timestamp
    from classifier.features import call_features
    from classifier.history import empty_history
    from classifier.manifest import load_manifest

    t1 = time.perf_counter()
    model = load_model()
    t2 = time.perf_counter()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        manifest = simulate_corpus(
            Path(tmp) / "c", preset="balanced", n_calls=1, seed=1, n_jobs=1, progress=False
        )
        row = load_manifest(manifest).iloc[0]
        t3 = time.perf_counter()
        audio = load_audio(row["audio_file"])
        feats = call_features(
            audio,
            caller_id=row["caller_id"],
            started_at=parse_timestamp(row["started_at"]),
            duration_s=float(row["duration_s"]),
            history=empty_history(),
        )
        score = model.score(feats)
        t4 = time.perf_counter()
    assert score.flag
    return {
        "import_s": t1 - t0,
        "load_model_s": t2 - t1,
        "first_score_s": t4 - t3,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="runs/default-build")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    work = Path(args.work)
    timing = first_score()
    print("time to first score (in-process):", {k: round(v, 3) for k, v in timing.items()})

    corpora: list[tuple[str, Path]] = [
        ("purworejo seed 99 (unseen preset)", ensure_corpus(work, ACCEPTANCE_CORPUS, n_jobs=2)),
        (
            "balanced seed 777 (unseen seed)",
            ensure_corpus(work, CorpusSpec("bal1500-777", "balanced", 1500, 777), n_jobs=2),
        ),
    ]
    real = work / "pur600-real"
    if SHARED.is_dir():
        if not (real / "manifest.csv").is_file():
            simulate_corpus(
                real,
                preset="purworejo",
                n_calls=600,
                seed=4242,
                speech_dir=SHARED / "speech",
                noise_dir=SHARED / "noise",
                n_jobs=args.jobs,
            )
        corpora.append(("purworejo seed 4242 + real speech/noise", real / "manifest.csv"))
    else:
        print(f"skipping the real-audio check: {SHARED} is absent")

    cols = ("corpus", "ghost ROC-AUC", "prank ROC-AUC", "emergency flagged", "prank caught")
    print("| " + " | ".join((*cols, "ghost caught")) + " |")
    print("|---|---|---|---|---|---|")
    for name, manifest in corpora:
        metrics, _ = evaluate_manifest(
            manifest,
            work / "bench-eval" / manifest.parent.name,
            n_jobs=args.jobs,
            cache_dir=work / "feature-cache",
            progress=False,
        )
        fig = acceptance(metrics)
        flags = metrics["flags"]["possible"]
        print(
            f"| {name} | {fig['ghost_roc_auc']:.4f} | {fig['prank_roc_auc']:.4f} | "
            f"{fig['emergency_flagged']:.2%} ({metrics['class_counts'].get('emergency', 0)} calls)"
            f" | {flags['prank_recall']:.1%} | {flags['ghost_recall']:.1%} |"
        )


if __name__ == "__main__":
    main()
