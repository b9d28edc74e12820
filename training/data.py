"""Data stage: check a manifest against docs/data-format.md and summarise a corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from classifier.formats import LABELS
from classifier.manifest import load_manifest, validate_manifest


def validate(
    manifest: Annotated[Path, typer.Argument(help="manifest.csv to check")],
    no_audio: Annotated[
        bool, typer.Option("--no-audio", help="skip opening the audio files")
    ] = False,
) -> None:
    """Report every problem of a manifest with its line; exit 1 when there are errors."""
    problems = validate_manifest(manifest, check_audio=not no_audio)
    errors = [p for p in problems if p.severity == "error"]
    for p in problems:
        typer.echo(str(p), err=True)
    if errors:
        typer.echo(f"{manifest}: {len(errors)} error(s); the manifest is not valid", err=True)
        raise typer.Exit(1)
    typer.echo(f"{manifest}: valid ({len(problems)} warning(s))")


def summary_tables(frame: pd.DataFrame) -> list[Table]:
    """Build rich tables that describe a corpus: labels, callers, durations, hours."""
    tables: list[Table] = []
    n = len(frame)
    t = Table(title=f"{n} calls by label")
    for col in ("label", "calls", "share", "median s", "<10 s", ">60 s"):
        t.add_column(col, justify="right" if col != "label" else "left")
    labels = [*LABELS, ""]
    for label in labels:
        sub = frame[frame["label"] == label]
        if sub.empty:
            continue
        d = sub["duration_s"]
        t.add_row(
            label or "(unknown)",
            str(len(sub)),
            f"{len(sub) / n:.1%}",
            f"{d.median():.1f}",
            f"{(d < 10).mean():.0%}",
            f"{(d > 60).mean():.0%}",
        )
    tables.append(t)

    callers = frame["caller_id"]
    kind = callers.map(
        lambda c: "withheld" if c == "" else ("sim-less" if c.startswith("simless:") else "number")
    )
    t2 = Table(title="callers")
    for col in ("kind", "calls", "distinct callers", "prank share", "ghost share"):
        t2.add_column(col, justify="right" if col != "kind" else "left")
    for k in ("number", "sim-less", "withheld"):
        sub = frame[kind == k]
        if sub.empty:
            continue
        distinct = "-" if k == "withheld" else str(sub["caller_id"].nunique())
        t2.add_row(
            k,
            str(len(sub)),
            distinct,
            f"{(sub['label'] == 'prank').mean():.0%}",
            f"{(sub['label'] == 'ghost').mean():.0%}",
        )
    repeat = frame[kind != "withheld"].groupby("caller_id").size()
    t2.caption = (
        f"numbers calling more than once: {(repeat > 1).sum()}; "
        f"most calls from one number: {repeat.max() if len(repeat) else 0}; "
        f"span: {frame['started_at_utc'].min():%Y-%m-%d} "
        f"to {frame['started_at_utc'].max():%Y-%m-%d}"
    )
    tables.append(t2)
    return tables


def summarize(
    manifest: Annotated[Path, typer.Argument(help="manifest.csv to summarise")],
) -> None:
    """Summarise a corpus: calls by label, durations and callers."""
    frame = load_manifest(manifest)
    console = Console()
    for table in summary_tables(frame):
        console.print(table)
