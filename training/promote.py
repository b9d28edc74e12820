"""Promote stage: make the challenger the champion only when it is better on held-out calls.

``callsift promote eval/manifest.csv`` scores one labelled evaluation set with the
registered ``champion`` and ``challenger`` versions and moves the ``champion`` alias to
the challenger only if it flags no more emergency calls than the champion and catches
more prank and ghost calls in total. Flagging an emergency call costs the most, so the
first condition is never traded for the second. The decision and its reasons are
recorded as tags on the challenger's model version.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from classifier.errors import InvalidManifestError, InvalidParameterError
from classifier.formats import LABELS
from classifier.model import FLAGS
from training.registry import DEFAULT_MODEL_NAME

CHAMPION = "champion"
_PRANK_FLAGS = ("possible_prank", "likely_prank")
_GHOST_FLAGS = ("possible_ghost", "likely_ghost")
_TOTALS = ("emergency", "prank", "ghost")


@dataclass(frozen=True)
class Decision:
    """The outcome of comparing a challenger with the champion.

    Attributes
    ----------
    promote : bool
        Whether the challenger becomes (or, in a dry run, would become) the champion.
    reasons : list of str
        The comparison in words, with the numbers.
    champion, challenger : dict
        :func:`flag_counts` of each model on the evaluation calls; ``champion`` is empty
        when there is none.
    champion_version, challenger_version : str or None
        Registered versions compared, when known.
    """

    promote: bool
    reasons: list[str]
    champion: dict[str, float]
    challenger: dict[str, float]
    champion_version: str | None = None
    challenger_version: str | None = None


def _share(part: int, whole: int) -> float:
    return part / whole if whole else math.nan


def flag_counts(scored: pd.DataFrame) -> dict[str, float]:
    """Flag counts per true class on the labelled calls of a scored table.

    Parameters
    ----------
    scored : DataFrame, shape (n_calls, >= 2)
        With ``label`` (empty for unlabelled calls, which are skipped) and ``flag``.

    Returns
    -------
    dict
        ``calls``; per class ``emergency``, ``non_emergency``, ``prank``, ``ghost`` (calls);
        ``emergency_flagged`` and ``non_emergency_flagged`` (any flag);
        ``prank_caught`` (a prank flag), ``ghost_caught`` (a ghost flag), ``caught`` (both);
        and each of those divided by its class's calls as ``<name>_share`` (NaN when the
        class has no calls).

    Raises
    ------
    InvalidParameterError
        Missing columns, unknown labels or flags, or no labelled call.
    """
    missing = [c for c in ("label", "flag") if c not in scored.columns]
    if missing:
        raise InvalidParameterError(
            f"scored table lacks the column(s) {', '.join(missing)}; expected label and flag"
        )
    labels = scored["label"].fillna("").astype(str).str.strip()
    flags = scored["flag"].astype(str)
    unknown_labels = sorted(set(labels) - {*LABELS, ""})
    if unknown_labels:
        raise InvalidParameterError(
            f"unknown labels {unknown_labels}; expected labels from {', '.join(LABELS)}"
        )
    unknown_flags = sorted(set(flags) - set(FLAGS))
    if unknown_flags:
        raise InvalidParameterError(f"unknown flags {unknown_flags}; expected one of {FLAGS}")
    keep = labels != ""
    if not keep.any():
        raise InvalidParameterError(
            f"scored table holds no labelled call (of {len(scored)}); flags can only be "
            "counted against true labels"
        )
    labels, flags = labels[keep], flags[keep]
    n = {c: int((labels == c).sum()) for c in LABELS}
    flagged = flags != "none"
    counts = {
        "emergency_flagged": int((flagged & (labels == "emergency")).sum()),
        "non_emergency_flagged": int((flagged & (labels == "non_emergency")).sum()),
        "prank_caught": int((flags.isin(_PRANK_FLAGS) & (labels == "prank")).sum()),
        "ghost_caught": int((flags.isin(_GHOST_FLAGS) & (labels == "ghost")).sum()),
    }
    counts["caught"] = counts["prank_caught"] + counts["ghost_caught"]
    whole = {
        "emergency_flagged": n["emergency"],
        "non_emergency_flagged": n["non_emergency"],
        "prank_caught": n["prank"],
        "ghost_caught": n["ghost"],
        "caught": n["prank"] + n["ghost"],
    }
    out: dict[str, float] = {"calls": float(int(keep.sum()))}
    out.update({c: float(v) for c, v in n.items()})
    for key, value in counts.items():
        out[key] = float(value)
        out[f"{key}_share"] = _share(value, whole[key])
    return out


def _n(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _require(counts: dict[str, float], who: str) -> None:
    need = ("emergency", "emergency_flagged", "prank", "ghost", "prank_caught", "ghost_caught")
    missing = [k for k in need if k not in counts]
    if missing:
        raise InvalidParameterError(
            f"{who} counts lack {', '.join(missing)}; expected the output of flag_counts"
        )


def decide(champion: dict[str, float] | None, challenger: dict[str, float]) -> Decision:
    """Whether the challenger should replace the champion.

    Parameters
    ----------
    champion : dict or None
        :func:`flag_counts` of the champion; None when there is no champion yet.
    challenger : dict
        :func:`flag_counts` of the challenger, on the same calls.

    Returns
    -------
    Decision
        Promote only if the challenger flags no more emergency calls than the champion
        and catches more prank and ghost calls in total; without a champion, promote.

    Raises
    ------
    InvalidParameterError
        Counts missing, or counted on different calls.
    """
    _require(challenger, "challenger")
    e_ch = challenger["emergency_flagged"]
    c_ch = challenger["prank_caught"] + challenger["ghost_caught"]
    n_e = challenger["emergency"]
    n_c = challenger["prank"] + challenger["ghost"]
    if champion is None:
        return Decision(
            promote=True,
            reasons=[
                "no champion yet",
                f"challenger flags {_n(e_ch)} of {_n(n_e)} emergency calls and catches "
                f"{_n(c_ch)} of {_n(n_c)} prank and ghost calls: promoted",
            ],
            champion={},
            challenger=dict(challenger),
        )
    _require(champion, "champion")
    differ = [k for k in _TOTALS if champion[k] != challenger[k]]
    if differ:
        shown = ", ".join(f"{k} {_n(champion[k])} vs {_n(challenger[k])}" for k in differ)
        raise InvalidParameterError(
            f"champion and challenger were counted on different calls ({shown}); score both "
            "on the same evaluation set"
        )
    e_cp = champion["emergency_flagged"]
    c_cp = champion["prank_caught"] + champion["ghost_caught"]
    safe = e_ch <= e_cp
    better = c_ch > c_cp
    promote = safe and better
    verdict = "promoted" if promote else "not promoted"
    emergency = f"challenger flags {_n(e_ch)} of {_n(n_e)} emergency calls, champion {_n(e_cp)}"
    emergency += ": no more than the champion" if safe else f": more than the champion, {verdict}"
    caught = (
        f"challenger catches {_n(c_ch)} of {_n(n_c)} prank and ghost calls, champion {_n(c_cp)}"
    )
    caught += ": more than the champion" if better else f": not more than the champion, {verdict}"
    reasons = [emergency, caught]
    if promote:
        reasons.append("promoted: safer or as safe for emergency calls, and catches more")
    return Decision(
        promote=promote, reasons=reasons, champion=dict(champion), challenger=dict(challenger)
    )


def _check_labelled(eval_manifest: Path) -> None:
    from classifier.manifest import load_manifest

    frame = load_manifest(eval_manifest)
    labels = frame["label"].fillna("").astype(str)
    unlabelled = int((labels == "").sum())
    if unlabelled:
        raise InvalidManifestError(
            f"evaluation manifest {eval_manifest}: {unlabelled} of {len(frame)} calls have no "
            "label; promotion compares flags with true labels, so every call needs one"
        )
    if not (labels == "emergency").any():
        raise InvalidManifestError(
            f"evaluation manifest {eval_manifest} holds no emergency call; promotion must "
            "check that the challenger does not flag more of them"
        )
    if not labels.isin(("prank", "ghost")).any():
        raise InvalidManifestError(
            f"evaluation manifest {eval_manifest} holds no prank or ghost call; promotion "
            "must check that the challenger catches more of them"
        )


def _decide_and_record(
    challenger_scored: pd.DataFrame,
    champion_scored: pd.DataFrame | None,
    *,
    challenger_version: str,
    champion_version: str | None,
    tracking_uri: str,
    model_name: str,
    dry_run: bool,
    notes: tuple[str, ...] = (),
) -> Decision:
    """Decide from two scored tables; unless a dry run, move the alias and tag the version."""
    from training.registry import set_alias, set_version_tags

    decision = decide(
        flag_counts(champion_scored) if champion_scored is not None else None,
        flag_counts(challenger_scored),
    )
    decision = replace(
        decision,
        reasons=[*decision.reasons, *notes],
        champion_version=champion_version,
        challenger_version=challenger_version,
    )
    if dry_run:
        return decision
    if decision.promote:
        set_alias(CHAMPION, challenger_version, tracking_uri=tracking_uri, model_name=model_name)
    set_version_tags(
        challenger_version,
        {
            "promotion_decision": "promoted" if decision.promote else "not promoted",
            "promotion_reasons": "; ".join(decision.reasons),
            "promotion_champion": champion_version or "none",
        },
        tracking_uri=tracking_uri,
        model_name=model_name,
    )
    return decision


def promote(
    eval_manifest: Path,
    *,
    tracking_uri: str | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
    challenger: str = "challenger",
    n_jobs: int = 2,
    dry_run: bool = False,
    progress: bool = False,
) -> Decision:
    """Compare the challenger with the champion on labelled calls; promote it when better.

    Parameters
    ----------
    eval_manifest : Path
        A labelled manifest of calls neither model was trained on.
    tracking_uri : str or None, keyword-only
        See :func:`training.registry.resolve_tracking_uri`.
    model_name : str, keyword-only
        Registered model name.
    challenger : str, keyword-only
        Alias or version number of the candidate.
    n_jobs : int, keyword-only
        Worker processes for feature extraction.
    dry_run : bool, keyword-only
        Decide only: move no alias and record nothing.
    progress : bool, keyword-only
        Show a progress bar while extracting features.

    Returns
    -------
    Decision

    Raises
    ------
    InvalidManifestError
        The manifest is invalid, not fully labelled, or lacks emergency or prank/ghost
        calls.
    RegistryError
        Unknown challenger alias or version.
    ModelMismatchError
        A registered model this install cannot load.
    """
    from classifier.artifact import load_model
    from classifier.registry import download_model
    from training.evaluate import score_table
    from training.features import extract_features
    from training.registry import alias_version, resolve_tracking_uri, resolve_version

    uri = resolve_tracking_uri(tracking_uri)
    eval_manifest = Path(eval_manifest)
    _check_labelled(eval_manifest)
    chal_version = resolve_version(challenger, tracking_uri=uri, model_name=model_name)
    champ_version = alias_version(CHAMPION, tracking_uri=uri, model_name=model_name)
    if champ_version == chal_version:
        return Decision(
            promote=False,
            reasons=[f"version {chal_version} is already the champion; nothing to promote"],
            champion={},
            challenger={},
            champion_version=champ_version,
            challenger_version=chal_version,
        )
    table, failures = extract_features(
        eval_manifest, n_jobs=n_jobs, progress=progress, keep_failed=True
    )
    with tempfile.TemporaryDirectory(prefix="callsift-promote-") as tmp:
        models = {
            "challenger": load_model(
                download_model(
                    chal_version, tracking_uri=uri, model_name=model_name, dst=Path(tmp) / "c"
                )
            )
        }
        if champ_version is not None:
            models["champion"] = load_model(
                download_model(
                    champ_version, tracking_uri=uri, model_name=model_name, dst=Path(tmp) / "p"
                )
            )
    scored = {who: score_table(m, table, explain=False) for who, m in models.items()}
    notes: tuple[str, ...] = ()
    if len(failures):
        notes = (
            f"{len(failures)} of {len(table)} calls had unreadable audio and were scored "
            "from metadata and history only, by both models",
        )
    return _decide_and_record(
        scored["challenger"],
        scored.get("champion"),
        challenger_version=chal_version,
        champion_version=champ_version,
        tracking_uri=uri,
        model_name=model_name,
        dry_run=dry_run,
        notes=notes,
    )


def _count_line(counts: dict[str, float], flagged: str, total: str) -> str:
    if not counts:
        return "-"
    return f"{_n(counts[flagged])} of {_n(counts[total])}"


def promote_command(
    eval_manifest: Annotated[
        Path, typer.Argument(help="labelled manifest.csv of evaluation calls (not trained on)")
    ],
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            "--tracking-uri",
            help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlruns/mlflow.db)",
        ),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="registered model name")] = (
        DEFAULT_MODEL_NAME
    ),
    challenger: Annotated[
        str, typer.Option("--challenger", help="alias or version number of the candidate")
    ] = "challenger",
    jobs: Annotated[int, typer.Option("--jobs", help="worker processes")] = 2,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="decide and print; move no alias, record nothing")
    ] = False,
) -> None:
    """Promote the challenger to champion if it is better on labelled evaluation calls.

    Promoted only if it flags no more emergency calls than the champion.

    And only if it catches more prank and ghost calls in total than the champion.

    Exit code 0: promoted (with --dry-run: would be promoted); 1: not promoted; 2: error.
    """
    decision = promote(
        eval_manifest,
        tracking_uri=tracking_uri,
        model_name=name,
        challenger=challenger,
        n_jobs=jobs,
        dry_run=dry_run,
        progress=True,
    )
    champ = f"champion (version {decision.champion_version or 'none'})"
    chal = f"challenger (version {decision.challenger_version})"
    if decision.challenger:
        rows = [
            ("", champ, chal),
            *(
                (
                    label,
                    _count_line(decision.champion, flagged, total),
                    _count_line(decision.challenger, flagged, total),
                )
                for label, flagged, total in (
                    ("emergency calls flagged", "emergency_flagged", "emergency"),
                    ("non-emergency calls flagged", "non_emergency_flagged", "non_emergency"),
                    ("prank calls caught", "prank_caught", "prank"),
                    ("ghost calls caught", "ghost_caught", "ghost"),
                )
            ),
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for r in rows:
            typer.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)))
    if decision.promote:
        verdict = (
            f"would promote version {decision.challenger_version} (dry run: nothing changed)"
            if dry_run
            else f"promoted: version {decision.challenger_version} is now the champion"
        )
    else:
        verdict = f"not promoted: the champion stays version {decision.champion_version or 'none'}"
    typer.echo(verdict)
    for reason in decision.reasons:
        typer.echo(f"- {reason}")
    raise typer.Exit(0 if decision.promote else 1)
