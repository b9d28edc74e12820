"""The README's main job on embedded defaults: simulate calls and score them.

It simulates a small Kendari-like corpus, checks it against the data format, and scores
every call with the default model shipped in ``models/default``, exactly as
``callsift evaluate`` would. Nothing to configure. ``callsift demo`` runs it; with
``--serve`` the root command (``callsift.py``) starts the scoring service instead and
replays a simulated centre through its API (:mod:`training.replay`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from classifier.manifest import load_manifest, validate_manifest
from classifier.reasons import ADVISORY
from training.data import summary_tables
from training.evaluate import evaluate_manifest
from training.simulate import simulate_corpus

_MARKER = ".callsift-demo"
_SHOWN = 8


def _flagged_table(scores: pd.DataFrame, labels: pd.Series) -> Table:
    t = Table(title="flagged calls (advice only)")
    for col in ("call", "true label", "flag", "p_prank", "p_ghost", "reasons"):
        t.add_column(col, justify="right" if col.startswith("p_") else "left")
    flagged = scores[scores["flag"] != "none"].copy()
    flagged["risk"] = flagged[["p_prank", "p_ghost"]].max(axis=1)
    for _, r in flagged.sort_values("risk", ascending=False).head(_SHOWN).iterrows():
        t.add_row(
            r["call_id"],
            str(labels.get(r["call_id"], "")),
            r["flag"],
            f"{r['p_prank']:.2f}",
            f"{r['p_ghost']:.2f}",
            str(r["reasons"]),
        )
    return t


def demo(*, out: Path | None = None, calls: int | None = None, seed: int = 0) -> None:
    """Simulate a small Kendari-like corpus into ``out`` and score it with the default model.

    Parameters
    ----------
    out : Path or None, keyword-only
        Folder of the demo (default ``runs/demo``); one this command made is replaced.
    calls : int or None, keyword-only
        Simulated calls (default 120).
    seed : int, keyword-only
        Random seed of the simulation.
    """
    out = out or Path("runs/demo")
    calls = 120 if calls is None else calls
    console = Console()
    if out.exists() and (out / _MARKER).exists():
        shutil.rmtree(out)  # only ever a folder this command made itself
    manifest = simulate_corpus(out, preset="kendari-2025", n_calls=calls, seed=seed)
    (out / _MARKER).write_text("made by callsift demo; safe to delete\n")
    problems = [p for p in validate_manifest(manifest) if p.severity == "error"]
    frame = load_manifest(manifest)
    for table in summary_tables(frame):
        console.print(table)
    status = "valid" if not problems else f"{len(problems)} problem(s)"
    console.print(f"corpus: {manifest} ({status}); listen to any file under {out / 'audio'}")

    evaluation = out / "evaluation"
    metrics, _ = evaluate_manifest(manifest, evaluation)
    scores = pd.read_csv(evaluation / "scores.csv", keep_default_na=False)
    console.print(_flagged_table(scores, frame.set_index("call_id")["label"]))
    n_flagged = int((scores["flag"] != "none").sum())
    console.print(
        f"{n_flagged} of {len(scores)} calls flagged; scores: {evaluation / 'scores.csv'}"
    )
    per = metrics.get("per_class") or {}
    aucs = ", ".join(
        f"{c} ROC-AUC {(per.get(c) or {}).get('roc_auc') or float('nan'):.3f}"
        for c in ("prank", "ghost")
    )
    console.print(f"{aucs}; report: {evaluation / 'report.md'}")
    console.print(ADVISORY["en"])
