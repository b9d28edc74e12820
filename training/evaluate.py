"""Evaluate stage: score a manifest with a model, beside the baselines, and report.

``callsift evaluate MANIFEST --out DIR [--model PATH]`` scores every call of any
manifest of docs/data-format.md, labelled or not, with the same feature code as the
service. History features of each call come from the calls before it in the same
manifest. A call whose audio cannot be read is still scored, from metadata and history
alone (the pre-answer model), and its reasons say so. ``DIR`` receives ``scores.csv``,
and for labelled calls ``metrics.json`` and ``report.md`` with plots. ``--prefix 2,5``
also scores every call on its first seconds only, as a live stream is scored
(``scores_prefix.csv``, and recall against seconds heard in the report).
``--cluster ADDRESS`` has the features extracted by a Dask cluster's workers
(:mod:`training.cluster`); the scores are the same.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import joblib
import numpy as np
import pandas as pd
import typer

from classifier.artifact import DEFAULT_MODEL_DIR, load_model, swap_in
from classifier.errors import InvalidParameterError
from classifier.scoring import SCORE_FIELDS, ScoringModel
from training.baselines import BASELINE_NOTES, Baselines
from training.features import PREFIX_COLUMN, extract_features, parse_prefixes, whole_calls
from training.parallel import CLUSTER_OPTION

SCORE_COLUMNS: tuple[str, ...] = ("call_id", *SCORE_FIELDS)
_SLICE_COLUMNS: tuple[str, ...] = ("meta_withheld", "meta_simless", "meta_hour", "hist_has_history")
BASELINES_FILE = "baselines.joblib"


def score_table(
    model: ScoringModel, table: pd.DataFrame, *, explain: bool = True, lang: str = "en"
) -> pd.DataFrame:
    """Scores, flags and reasons of every call of a feature table.

    Parameters
    ----------
    model : ScoringModel
    table : DataFrame
        From :func:`training.features.extract_features`; rows with a non-empty
        ``audio_error`` column are scored by the pre-answer model.
    explain : bool, keyword-only
        Compute reasons.
    lang : {"en", "id"}, keyword-only
        Language of the ``reasons`` column.

    Returns
    -------
    DataFrame, shape (n_calls, ...)
        ``call_id``, ``caller_id``, ``started_at``, ``label``, the four probabilities,
        ``flag``, ``reasons``, ``stage`` and the slice columns of the report.
    """
    if lang not in ("en", "id"):
        raise InvalidParameterError(f"lang is {lang!r}; expected en or id")
    n = len(table)
    failed = (
        table["audio_error"].fillna("").astype(str).to_numpy() != ""
        if "audio_error" in table
        else np.zeros(n, dtype=bool)
    )
    scores: list[Any] = [None] * n
    for stage, mask in (("call", ~failed), ("pre_answer", failed)):
        rows = np.flatnonzero(mask)
        if rows.size == 0:
            continue
        for i, s in zip(
            rows, model.score_frame(table.iloc[rows], stage=stage, explain=explain), strict=True
        ):
            scores[i] = s
    out = pd.DataFrame(
        {
            "call_id": table["call_id"].astype(str).to_numpy(),
            "caller_id": table["caller_id"].astype(str).to_numpy(),
            "started_at": table["started_at"].astype(str).to_numpy(),
            "label": table["label"].fillna("").astype(str).to_numpy(),
        }
    )
    flat = [s.flat(lang=lang) for s in scores]
    for field in SCORE_FIELDS:
        out[field] = [r[field] for r in flat]
    texts = list(out["reasons"])
    if failed.any():
        errors = table["audio_error"].astype(str).to_numpy()
        note = "audio unreadable, scored from history and metadata only: "
        if lang == "id":
            note = "audio tidak terbaca, dinilai dari riwayat dan metadata saja: "
        for i in np.flatnonzero(failed):
            texts[i] = f"! {note}{errors[i]}" + (f"; {texts[i]}" if texts[i] else "")
    out["reasons"] = texts
    out["stage"] = [s.stage for s in scores]
    for col in _SLICE_COLUMNS:
        out[col] = table[col].to_numpy()
    if PREFIX_COLUMN in table:
        out[PREFIX_COLUMN] = table[PREFIX_COLUMN].to_numpy()
    return out


def load_baselines(model_dir: Path) -> Baselines:
    """The baselines saved with a model, or unfitted rules when there are none."""
    path = model_dir / BASELINES_FILE
    if path.is_file():
        try:
            obj = joblib.load(path)
        except Exception:  # a damaged side file must not stop an evaluation
            obj = None
        if isinstance(obj, Baselines):
            return obj
    return Baselines()


def add_baselines(scored: pd.DataFrame, table: pd.DataFrame, baselines: Baselines) -> pd.DataFrame:
    """The scored table with every baseline's score columns added."""
    extra = baselines.scores(table.reset_index(drop=True))
    return pd.concat([scored.reset_index(drop=True), extra], axis=1)


def write_evaluation(
    out: Path,
    scored: pd.DataFrame,
    *,
    baselines: Baselines,
    title: str,
    card: dict[str, Any] | None,
    split: dict[str, Any] | None = None,
    prefix_scored: pd.DataFrame | None = None,
    prefixes: Sequence[float] = (),
) -> dict[str, Any]:
    """Write scores.csv, and metrics.json, report.md and plots, into ``out``.

    ``scored`` holds one row per whole call. With ``prefixes``, ``prefix_scored`` holds
    the scored rows of the same calls with their prefix rows (``prefix_s``):
    ``scores_prefix.csv`` lists them, and the metrics gain ``prefixes``, the flag
    figures after each number of seconds heard (:func:`training.prefix.prefix_metrics`).
    """
    from classifier.jsonable import jsonable
    from training.prefix import prefix_metrics
    from training.report import _DIGITS, compute_metrics, write_report

    out.mkdir(parents=True, exist_ok=True)
    scored.loc[:, list(SCORE_COLUMNS)].to_csv(out / "scores.csv", index=False)
    tasks = baselines.tasks()
    metrics = compute_metrics(scored, baselines=tasks)
    if prefixes and prefix_scored is not None:
        cols = ["call_id", PREFIX_COLUMN, *SCORE_FIELDS]
        prefix_scored.loc[:, cols].to_csv(out / "scores_prefix.csv", index=False)
        if metrics.get("labelled_calls"):
            metrics["prefixes"] = jsonable(prefix_metrics(prefix_scored, prefixes), digits=_DIGITS)
    write_report(
        out,
        scored,
        metrics,
        baselines=tasks,
        baseline_notes={k: BASELINE_NOTES[k] for k in tasks},
        title=title,
        model_card=card,
        split=split,
    )
    if not metrics.get("labelled_calls"):
        # metrics.json is for labelled calls only.
        (out / "metrics.json").unlink(missing_ok=True)
    return metrics


def _prepare_out(out: Path) -> Path:
    if out.exists() and not out.is_dir():
        raise InvalidParameterError(f"--out {out} is a file; expected a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))


def evaluate_manifest(
    manifest: Path,
    out: Path,
    *,
    model_dir: Path | None = None,
    n_jobs: int = 2,
    cache_dir: Path | None = None,
    timezone: str | None = None,
    lang: str = "en",
    progress: bool = True,
    prefixes: Sequence[float] = (),
    cluster: Any = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Score a manifest and write the evaluation folder (see the module docstring).

    With ``prefixes`` (seconds), every call is also scored on its first seconds, as a
    live stream would be at that moment, and the report gains the early-warning table
    and curve. ``cluster`` (a Dask scheduler's address or client) is as in
    :func:`training.features.extract_features`.

    Returns
    -------
    metrics : dict
        As written to metrics.json (``labelled_calls`` 0 when there are no labels).
    failures : DataFrame
        Calls whose audio failed (scored from metadata and history).
    """
    model_path = Path(model_dir) if model_dir is not None else DEFAULT_MODEL_DIR
    model = load_model(model_path)
    table, failures = extract_features(
        manifest,
        n_jobs=n_jobs,
        cache_dir=cache_dir,
        timezone=timezone,
        progress=progress,
        keep_failed=True,
        prefixes=prefixes,
        cluster=cluster,
    )
    rows = score_table(model, table, lang=lang)
    whole = whole_calls(table)
    baselines = load_baselines(model_path)
    calls = table.loc[whole].reset_index(drop=True)
    scored = add_baselines(rows.loc[whole].reset_index(drop=True), calls, baselines)
    failures = failures.drop_duplicates("call_id").reset_index(drop=True)
    staging = _prepare_out(out)
    try:
        metrics = write_evaluation(
            staging,
            scored,
            baselines=baselines,
            title=f"callsift evaluation of {Path(manifest).name} with model {model.version}",
            card=model.card,
            prefix_scored=rows if prefixes else None,
            prefixes=prefixes,
        )
        if len(failures):
            failures.to_csv(staging / "errors.csv", index=False)
        swap_in(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return metrics, failures


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{100 * float(v):.1f}%"


def evaluate_command(
    manifest: Annotated[Path, typer.Argument(help="manifest.csv, labelled or not")],
    out: Annotated[Path, typer.Option("--out", help="folder for scores, metrics and report")],
    model: Annotated[
        Path | None,
        typer.Option("--model", help="model folder (default: the model shipped in models/default)"),
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", help="worker processes")] = 2,
    cache: Annotated[
        Path | None, typer.Option("--cache", help="feature cache folder (joblib.Memory)")
    ] = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", help="centre time zone, e.g. Asia/Makassar")
    ] = None,
    lang: Annotated[str, typer.Option("--lang", help="language of reasons: en or id")] = "en",
    prefix: Annotated[
        list[str] | None,
        typer.Option(
            "--prefix",
            help=(
                "also score only the first seconds of each call, e.g. --prefix 5 or "
                "--prefix 2,5,10,20 (repeatable): recall against seconds heard"
            ),
        ),
    ] = None,
    cluster: Annotated[str | None, CLUSTER_OPTION] = None,
) -> None:
    """Score every call of a manifest; with labels, measure the model against the baselines."""
    cuts = parse_prefixes(",".join(prefix or []))
    metrics, failures = evaluate_manifest(
        manifest,
        out,
        model_dir=model,
        n_jobs=jobs,
        cache_dir=cache,
        timezone=timezone,
        lang=lang,
        prefixes=cuts,
        cluster=cluster,
    )
    typer.echo(f"scored {metrics.get('calls', 0)} calls: {out / 'scores.csv'}")
    if metrics.get("labelled_calls"):
        per = metrics.get("per_class", {})
        for cls in ("prank", "ghost"):
            auc = (per.get(cls) or {}).get("roc_auc")
            if auc is not None:
                typer.echo(f"{cls} ROC-AUC {auc:.3f}")
        flagged = ((metrics.get("flags") or {}).get("possible") or {}).get("emergency")
        if flagged is not None:
            typer.echo(f"emergency calls flagged: {flagged:.2%}")
        for key, view in (metrics.get("prefixes") or {}).items():
            heard = "whole call" if key == "whole" else f"first {key} s"
            typer.echo(
                f"{heard}: ghost recall {_pct(view.get('ghost_recall_possible'))}, prank recall "
                f"{_pct(view.get('prank_recall_possible'))}, emergency flagged "
                f"{_pct(view.get('emergency_flagged_possible'))}"
            )
        typer.echo(f"report: {out / 'report.md'}")
    else:
        typer.echo("no labelled calls: scores only (no metrics)")
    if len(failures):
        for _, f in failures.iterrows():
            typer.echo(f"audio failed: {f['call_id']}: {f['error']}", err=True)
        typer.echo(
            f"{len(failures)} call(s) had unreadable audio and were scored from history and "
            f"metadata only; listed in {out / 'errors.csv'}",
            err=True,
        )
