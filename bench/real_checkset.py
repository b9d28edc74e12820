"""Real-recording check set (issue 15): labelled calls assembled from real recordings.

    .venv/bin/python bench/real_checkset.py build --out /tmp/realcheck --calls 480 --seed 15
    .venv/bin/callsift evaluate /tmp/realcheck/manifest.csv --out /tmp/eval-real --prefix 5,10
    .venv/bin/python bench/real_checkset.py summary /tmp/realcheck/manifest.csv /tmp/eval-real
    .venv/bin/python bench/real_checkset.py holdout --check   # the hold-out list vs the data

The composer lives in :mod:`training.realcalls` (its docstring describes the set), where
the default recipe also builds its real training calls from the other files (the
``train`` pool); this script builds the ``check`` pool, which never reaches training.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from classifier.errors import CallsiftError
from training.checkset_report import summary_tables
from training.realcalls import (  # noqa: F401  (re-exported for tests and scripts)
    DEFAULT_DATA,
    HOLDOUT_PATH,
    TAKER_SPEAKERS,
    Library,
    build,
    compute_holdout,
    is_held_out,
    load_holdout,
)

# ------------------------------------------------------------------------------- CLI
app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])


@app.command("build")
def build_command(
    out: Annotated[
        Path, typer.Option("--out", help="new or empty folder (outside the repository)")
    ],
    data: Annotated[Path, typer.Option("--data", help="the shared real recordings")] = DEFAULT_DATA,
    calls: Annotated[int, typer.Option("--calls", help="number of calls")] = 480,
    seed: Annotated[int, typer.Option("--seed", help="random seed")] = 15,
    min_per_class: Annotated[int, typer.Option("--min-per-class")] = 60,
    holdout: Annotated[Path, typer.Option("--holdout", help="hold-out list")] = HOLDOUT_PATH,
) -> None:
    """Build the check set: manifest.csv and audio/."""
    try:
        manifest = build(
            out,
            data=data,
            n_calls=calls,
            seed=seed,
            min_per_class=min_per_class,
            holdout_path=holdout,
            progress=True,
        )
    except CallsiftError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    import pandas as pd

    m = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    typer.echo(m.groupby(["label", "channels", "encoding"]).size().to_string())
    typer.echo(f"wrote {manifest}")


@app.command("holdout")
def holdout_command(
    data: Annotated[Path, typer.Option("--data")] = DEFAULT_DATA,
    write: Annotated[bool, typer.Option("--write", help=f"write {HOLDOUT_PATH.name}")] = False,
    check: Annotated[bool, typer.Option("--check", help="exit 1 if the file differs")] = False,
) -> None:
    """Compute the hold-out list from the data folder; print, write or check it."""
    computed = compute_holdout(data)
    text = json.dumps(computed, indent=1, ensure_ascii=False) + "\n"
    if write:
        HOLDOUT_PATH.write_text(text)
        typer.echo(f"wrote {HOLDOUT_PATH}: {len(computed['files'])} files")
    elif check:
        stored = load_holdout()
        if stored != computed:
            extra = sorted(set(computed["files"]) - set(stored["files"]))
            gone = sorted(set(stored["files"]) - set(computed["files"]))
            typer.echo(f"differs: {len(extra)} new, {len(gone)} gone: {extra[:5]} {gone[:5]}")
            raise typer.Exit(1)
        typer.echo(f"{HOLDOUT_PATH.name} matches {data}")
    else:
        typer.echo(text)


@app.command("summary")
def summary_command(
    manifest: Annotated[Path, typer.Argument(help="the check set's manifest.csv")],
    evaluation: Annotated[Path, typer.Argument(help="callsift evaluate --out folder")],
) -> None:
    """Figures of an evaluation of the check set, as Markdown tables."""
    typer.echo(summary_tables(manifest, evaluation))


if __name__ == "__main__":
    app()
