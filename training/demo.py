"""The README's main job on embedded defaults: simulate a small corpus and summarise it.

Later issues grow this into the scoring service on the default model.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from classifier.manifest import load_manifest, validate_manifest
from training.data import summary_tables
from training.simulate import simulate_corpus

_MARKER = ".callsift-demo"


def demo(
    out: Annotated[Path, typer.Option("--out", help="folder for the demo corpus")] = Path(
        "runs/demo"
    ),
    calls: Annotated[int, typer.Option("--calls", help="number of calls")] = 120,
    seed: Annotated[int, typer.Option("--seed", help="random seed")] = 0,
) -> None:
    """Simulate a small Kendari-like corpus, check it against the format and summarise it."""
    console = Console()
    if out.exists() and (out / _MARKER).exists():
        shutil.rmtree(out)  # only ever a folder this command made itself
    manifest = simulate_corpus(out, preset="kendari-2025", n_calls=calls, seed=seed)
    (out / _MARKER).write_text("made by callsift demo; safe to delete\n")
    problems = [p for p in validate_manifest(manifest) if p.severity == "error"]
    for table in summary_tables(load_manifest(manifest)):
        console.print(table)
    status = "valid" if not problems else f"{len(problems)} problem(s)"
    console.print(f"corpus: {manifest} ({status}); listen to any file under {out / 'audio'}")
