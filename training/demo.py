"""The README's main job on embedded defaults: simulate calls and score them.

It simulates a small Kendari-like corpus, checks it against the data format, and scores
every call with the default model shipped in ``models/default``, exactly as
``callsift evaluate`` would. Nothing to configure. ``--serve`` starts the scoring
service and replays a simulated centre through its API (:mod:`api.demo`, :mod:`training.replay`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from classifier.manifest import load_manifest, validate_manifest
from classifier.reasons import ADVISORY
from training.data import summary_tables
from training.evaluate import evaluate_manifest
from training.simulate import simulate_corpus

_MARKER = ".callsift-demo"
_SHOWN = 8
#: ``--serve``: simulated calls (spread over three weeks) and the replay's speed (three
#: weeks of the centre in about 90 s; a slower service sets the pace).
SERVE_CALLS = 1000
SERVE_SPEED = 20000.0


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


def demo(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="folder for the demo (default runs/demo, with --serve runs/demo-serve)"
        ),
    ] = None,
    calls: Annotated[
        int | None,
        typer.Option("--calls", help=f"number of calls (default 120, with --serve {SERVE_CALLS})"),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="random seed")] = 0,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="start the service and replay three weeks of a simulated centre through its API",
        ),
    ] = False,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="--serve: TCP port")] = 8000,
    host: Annotated[str, typer.Option("--host", help="--serve: interface")] = "127.0.0.1",
    speed: Annotated[
        float,
        typer.Option("--speed", min=1.0, help="--serve: seconds of the centre per second"),
    ] = SERVE_SPEED,
    live_pause: Annotated[
        float,
        typer.Option("--live-pause", min=0.1, help="--serve: seconds between live calls after"),
    ] = 8.0,
    reset: Annotated[
        bool, typer.Option("--reset", help="--serve: delete an earlier demo and start over")
    ] = False,
) -> None:
    """Simulate a small Kendari-like corpus and score it with the default model.

    With --serve: start the service on embedded defaults (SQLite in the demo folder, the
    shipped model), print the console's address and one API key per role, and replay
    three weeks of a simulated Kendari-like centre through the API, then new calls at a
    live pace until Ctrl-C.
    """
    if serve:
        from api.demo import serve_demo

        serve_demo(
            out or Path("runs/demo-serve"),
            host=host,
            port=port,
            calls=SERVE_CALLS if calls is None else calls,
            seed=seed,
            speed=speed,
            live_pause_s=live_pause,
            reset=reset,
        )
        return
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
