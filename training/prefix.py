"""Early warning: how well the model does after only the first seconds of each call.

A table with prefix rows (:func:`training.features.extract_features` with
``prefixes``) holds, for every call, its whole row and one row per prefix shorter than
the call. The *view at N seconds* is what a live stream has heard N seconds in: each
call's N-second prefix row, or its whole row when the call is no longer than N. On each
view this module measures, at the model's flag thresholds, the share of ghost and prank
calls flagged for their class and the share of emergency calls flagged at all, and
draws them against seconds heard.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from classifier.formats import LABELS
from classifier.model import FLAGGED_CLASSES, PROTECTED_CLASS
from training.features import PREFIX_COLUMN
from training.plots import figure

__all__ = ["WHOLE", "plot_prefix_curve", "prefix_metrics", "prefix_report_lines", "prefix_view"]

#: Key of the whole-call view in :func:`prefix_metrics`.
WHOLE = "whole"
PLOT_FILE = "prefixes.png"
_LEVELS = ("possible", "likely")


def prefix_view(table: pd.DataFrame, seconds: float | None) -> np.ndarray:
    """Row positions of the view at ``seconds`` heard (None: the whole calls).

    Parameters
    ----------
    table : DataFrame
        ``call_id`` and ``prefix_s`` (NaN on whole-call rows); a call's rows share its
        ``call_id``.
    seconds : float or None

    Returns
    -------
    ndarray of int, shape (n_calls,)
        One row per call, in the order of the whole-call rows.
    """
    whole = table[PREFIX_COLUMN].isna().to_numpy()
    ids = table["call_id"].astype(str).to_numpy()
    rows = np.flatnonzero(whole)
    if seconds is None:
        return rows
    cut = np.flatnonzero(np.isclose(table[PREFIX_COLUMN].to_numpy(dtype=float), seconds))
    at = dict(zip(ids[cut], cut, strict=True))
    return np.asarray([at.get(ids[i], i) for i in rows], dtype=np.int64)


def _share(mask: np.ndarray) -> float | None:
    return float(mask.mean()) if mask.size else None


def _view_metrics(labels: np.ndarray, flags: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    out: dict[str, Any] = {
        "calls": int(labels.size),
        "class_counts": {c: int((labels == c).sum()) for c in LABELS},
    }
    for level in _LEVELS:
        flagged = flags != "none" if level == "possible" else np.char.startswith(flags, "likely_")
        out[f"emergency_flagged_{level}"] = _share(flagged[labels == PROTECTED_CLASS])
        for cls in FLAGGED_CLASSES:
            names = [f"likely_{cls}"] + ([f"possible_{cls}"] if level == "possible" else [])
            out[f"{cls}_recall_{level}"] = _share(np.isin(flags, names)[labels == cls])
    for k, cls in enumerate(FLAGGED_CLASSES):
        y = labels == cls
        out[f"{cls}_roc_auc"] = (
            float(roc_auc_score(y, proba[:, k])) if 0 < y.sum() < y.size else None
        )
    return out


def prefix_metrics(scored: pd.DataFrame, prefixes: Sequence[float]) -> dict[str, Any]:
    """Flag figures of every view, from the prefix lengths to the whole call.

    Parameters
    ----------
    scored : DataFrame
        Scored rows (``label``, ``flag``, ``p_prank``, ``p_ghost``, ``call_id``,
        ``prefix_s``), as from :func:`training.evaluate.score_table` on a table with
        prefix rows; unlabelled calls are left out.
    prefixes : sequence of float
        Seconds heard of the views.

    Returns
    -------
    dict
        ``{"2": {...}, "5": {...}, ..., "whole": {...}}``; each view holds
        ``seconds`` (None for whole), ``calls``, ``class_counts``,
        ``emergency_flagged_{possible,likely}``, ``{ghost,prank}_recall_{possible,likely}``
        (a flag for that class at that level or stronger), ``{ghost,prank}_roc_auc`` and
        ``cut_calls`` (calls longer than ``seconds``, scored on their prefix).
    """
    labels_all = scored["label"].fillna("").astype(str).to_numpy(dtype=object)
    out: dict[str, Any] = {}
    for seconds in [*prefixes, None]:
        rows = prefix_view(scored, seconds)
        rows = rows[labels_all[rows] != ""]
        part = scored.iloc[rows]
        labels = labels_all[rows]
        flags = np.asarray(part["flag"].fillna("none").astype(str).to_numpy(), dtype=str)
        proba = part.loc[:, [f"p_{c}" for c in FLAGGED_CLASSES]].to_numpy(dtype=float)
        entry = _view_metrics(labels, flags, proba)
        entry["seconds"] = seconds
        entry["cut_calls"] = int(part[PREFIX_COLUMN].notna().sum())
        out[WHOLE if seconds is None else f"{seconds:g}"] = entry
    return out


def plot_prefix_curve(path: Path, metrics: Mapping[str, Any]) -> bool:
    """Recall (ghost, prank) and emergency share flagged against seconds heard.

    The whole-call view is drawn at the right end, past the longest prefix. Returns
    False when there is nothing to draw.
    """
    timed = [(float(v["seconds"]), v) for k, v in metrics.items() if k != WHOLE]
    if not timed:
        return False
    timed.sort(key=lambda t: t[0])
    whole = metrics.get(WHOLE)
    x_whole = timed[-1][0] * 1.6
    xs = [t for t, _ in timed] + ([x_whole] if whole else [])
    views = [v for _, v in timed] + ([whole] if whole else [])
    fig, axes = figure(width=7.0, height=5.0)
    ax = axes[0]
    series = (
        ("ghost_recall_possible", "ghost recall (ghost flag)", "tab:blue", "-"),
        ("prank_recall_possible", "prank recall (prank flag)", "tab:orange", "-"),
        ("ghost_recall_likely", "ghost recall (likely)", "tab:blue", ":"),
        ("prank_recall_likely", "prank recall (likely)", "tab:orange", ":"),
        ("emergency_flagged_possible", "emergency calls flagged", "tab:red", "-"),
    )
    for key, label, color, ls in series:
        ys = [math.nan if v.get(key) is None else float(v[key]) for v in views]
        ax.plot(xs, ys, marker="o", color=color, ls=ls, label=label)
    ax.set_xscale("log")
    ticks = [t for t, _ in timed]
    ax.set_xticks([*ticks, *([x_whole] if whole else [])])
    ax.set_xticklabels([f"{t:g} s" for t in ticks] + (["whole"] if whole else []))
    ax.minorticks_off()
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("seconds heard (log scale)")
    ax.set_ylabel("share of calls")
    ax.set_title("Early warning: flags after the first seconds")
    ax.grid(alpha=0.3)
    # Below the axes: the curves cross the whole plot area.
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)
    fig.savefig(path)
    return True


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{100.0 * float(v):.1f}%"


def _num(v: Any) -> str:
    return "n/a" if v is None else f"{float(v):.3f}"


def prefix_report_lines(metrics: Mapping[str, Any], *, plot: bool) -> list[str]:
    """The report section of :func:`prefix_metrics`: one table row per view."""
    header = (
        "| heard | calls (cut) | ghost recall | ghost recall, likely | prank recall | "
        "prank recall, likely | emergency flagged | emergency flagged, likely | "
        "ghost ROC-AUC | prank ROC-AUC |"
    )
    lines = [
        "## Early warning: the first seconds of each call",
        "",
        "Each row scores every call as heard after that many seconds (its first seconds; "
        "a call no longer than that, whole). Recall is the share of ghost (prank) calls "
        "flagged for that class at the model's thresholds, `possible` or stronger unless "
        "marked likely; emergency flagged is the share of emergency calls with any flag.",
        "",
        header,
        "|" + "---|" * 10,
    ]
    for key, v in metrics.items():
        heard = "whole call" if key == WHOLE else f"{key} s"
        lines.append(
            f"| {heard} | {v['calls']} ({v['cut_calls']}) | {_pct(v['ghost_recall_possible'])} "
            f"| {_pct(v['ghost_recall_likely'])} | {_pct(v['prank_recall_possible'])} "
            f"| {_pct(v['prank_recall_likely'])} | {_pct(v['emergency_flagged_possible'])} "
            f"| {_pct(v['emergency_flagged_likely'])} | {_num(v['ghost_roc_auc'])} "
            f"| {_num(v['prank_roc_auc'])} |"
        )
    lines.append("")
    if plot:
        lines += [f"![Recall and emergency calls flagged against seconds heard]({PLOT_FILE})", ""]
    return lines
