"""``callsift model reference MODEL_DIR MANIFEST...``: give a model folder its drift reference.

``callsift train`` writes the reference into every card it makes (:mod:`classifier.drift`).
A model trained before that (the shipped ``models/default`` of 2026-12-06) has none, and
the service then says ``no_reference`` instead of judging drift. This command computes
one from calls like those the model was trained on: the watched features of every call
of the manifests, and the model's scores and flags on them, written into ``card.json``
in place (atomically; ``model.joblib`` and its hash are untouched).

Give calls the model was **not** trained on (a simulated corpus of the same presets, or a
centre's labelled export it has not seen): scores of training calls would be better than
the model's scores on new calls, and the service would see a shift that is not there.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from classifier.artifact import CARD_FILE, load_model, read_card
from classifier.drift import make_reference
from classifier.errors import InvalidParameterError
from training.evaluate import score_table
from training.features import extract_features

model_app = typer.Typer(help="Model folders: their drift reference.", no_args_is_help=True)


def add_reference(
    model_dir: str | Path,
    manifests: Sequence[str | Path],
    *,
    n_jobs: int = 2,
    cache_dir: str | Path | None = None,
    timezone: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Compute the drift reference of ``model_dir`` from the calls of ``manifests`` and
    write it into the folder's card (replacing any there). Returns the reference.

    Calls whose audio cannot be read are left out. The model is loaded (and its card
    checked) first, so a folder this code cannot score is refused before any feature
    is extracted.
    """
    if not manifests:
        raise InvalidParameterError("no manifest given; expected one or more manifest.csv")
    model_dir = Path(model_dir)
    model = load_model(model_dir)
    tables = []
    for path in manifests:
        table, _failed = extract_features(
            path, n_jobs=n_jobs, cache_dir=cache_dir, timezone=timezone, progress=progress
        )
        tables.append(table)
    calls = pd.concat(tables, ignore_index=True)
    if len(calls) == 0:
        raise InvalidParameterError(
            f"no call with readable audio in {', '.join(str(m) for m in manifests)}"
        )
    scored = score_table(model, calls, explain=False)
    reference = make_reference(
        calls,
        scored,
        source=(
            f"callsift model reference: {len(calls)} calls of "
            f"{', '.join(str(m) for m in manifests)} (not the training calls), "
            "features and scores alike"
        ),
    )
    card = read_card(model_dir)
    card["reference"] = reference
    _write_card(model_dir, card)
    return reference


def _write_card(model_dir: Path, card: dict[str, Any]) -> None:
    """Replace the card whole (a reader never sees half of it)."""
    fd, tmp = tempfile.mkstemp(dir=model_dir, prefix=".card.", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps(card, indent=2, sort_keys=False) + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, model_dir / CARD_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@model_app.command("reference")
def reference_command(
    model_dir: Annotated[Path, typer.Argument(help="model folder, e.g. models/default")],
    manifests: Annotated[
        list[Path],
        typer.Argument(help="manifest.csv files of calls like the training calls, not trained on"),
    ],
    jobs: Annotated[int, typer.Option("--jobs", help="worker processes")] = 2,
    cache: Annotated[
        Path | None, typer.Option("--cache", help="feature cache folder (joblib.Memory)")
    ] = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", help="centre time zone, e.g. Asia/Makassar")
    ] = None,
) -> None:
    """Add the drift reference the service compares scored calls with to a model's card."""
    reference = add_reference(
        model_dir, manifests, n_jobs=jobs, cache_dir=cache, timezone=timezone, progress=True
    )
    rates = reference["scores"]["flag_rates"]
    typer.echo(
        f"reference of {reference['features']['calls']} calls written to "
        f"{model_dir / CARD_FILE}: flagged prank {rates['prank']:.1%}, ghost {rates['ghost']:.1%}"
    )
