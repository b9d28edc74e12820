"""Evaluation: metrics of a scored test table, plots, and a Markdown report.

:func:`compute_metrics` measures the model and the baselines on the labelled calls of a
scored table (one row per call with ``p_<class>``, ``flag`` and baseline scores);
:func:`write_report` writes ``metrics.json``, ``report.md`` and PNG plots; and
:func:`flat_metrics` turns the nested metrics into ``a.b.c`` keys for MLflow.

The headline number is recall at a fixed emergency false-flag rate: the share of prank
(or ghost) calls caught by the lowest threshold that flags at most ``fpr_target`` of the
emergency calls. Flags are advice only; every call is answered.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from classifier.errors import InvalidParameterError
from classifier.formats import LABELS
from classifier.jsonable import jsonable
from classifier.model import FLAGGED_CLASSES, FLAGS, PROTECTED_CLASS
from training.plots import figure

__all__ = ["compute_metrics", "flat_metrics", "write_report"]

_TASKS: tuple[str, ...] = FLAGGED_CLASSES
_LEVELS: tuple[str, ...] = ("possible", "likely")
_PROBA = tuple(f"p_{c}" for c in LABELS)
_REQUIRED = ("label", *_PROBA, "flag")
_ECE_BINS = 10
_DIGITS = 6
_PLOTS = ("roc.png", "pr.png", "calibration.png", "confusion.png", "flags.png", "prefixes.png")
# Slice name -> (column, test on that column's values, human description).
_SLICES: tuple[tuple[str, str, Any, str], ...] = (
    ("withheld", "meta_withheld", lambda v: v == 1, "number withheld"),
    ("shown", "meta_withheld", lambda v: v == 0, "number shown"),
    ("simless", "meta_simless", lambda v: v == 1, "phone without SIM"),
    ("hour_00_06", "meta_hour", lambda v: (v >= 0) & (v < 6), "local hour 00-06"),
    ("hour_06_12", "meta_hour", lambda v: (v >= 6) & (v < 12), "local hour 06-12"),
    ("hour_12_18", "meta_hour", lambda v: (v >= 12) & (v < 18), "local hour 12-18"),
    ("hour_18_24", "meta_hour", lambda v: (v >= 18) & (v < 24), "local hour 18-24"),
    ("with_history", "hist_has_history", lambda v: v == 1, "caller has earlier calls"),
    ("without_history", "hist_has_history", lambda v: v == 0, "no earlier calls"),
)


# --------------------------------------------------------------------------- helpers


def _labels(scored: pd.DataFrame) -> np.ndarray:
    # A CSV round trip turns "" into NaN; both mean "unknown".
    raw = scored["label"].astype(object)
    return raw.where(raw.notna(), "").astype(str).str.strip().to_numpy(dtype=object)


def _fill_lowest(values: Any) -> np.ndarray:
    """Scores as floats with NaN replaced by a value below every real score."""
    s = np.asarray(values, dtype=float).copy()
    s[np.isinf(s) & (s > 0)] = np.finfo(float).max
    bad = ~np.isfinite(s)
    if bad.any():
        finite = s[~bad]
        s[bad] = (float(finite.min()) - 1.0) if finite.size else 0.0
    return s


def _share(mask: np.ndarray) -> float | None:
    return float(mask.mean()) if mask.size else None


def _binary_scores(y: np.ndarray, s: np.ndarray) -> dict[str, float | None]:
    """ROC-AUC and average precision of scores ``s`` for the boolean target ``y``."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    if y.size == 0 or y.all() or not y.any():
        return {"roc_auc": None, "pr_auc": None}
    return {
        "roc_auc": float(roc_auc_score(y, s)),
        "pr_auc": float(average_precision_score(y, s)),
    }


def _recall_at_fpr(
    labels: np.ndarray, s: np.ndarray, task: str, fpr_target: float
) -> dict[str, float | None] | None:
    """Recall of ``task`` at the lowest threshold flagging at most ``fpr_target`` of emergencies.

    Parameters
    ----------
    labels : ndarray of str, shape (n_calls,)
    s : ndarray of float, shape (n_calls,)
        Scores, higher = more likely ``task``; no NaN.
    task : str
    fpr_target : float

    Returns
    -------
    dict or None
        ``threshold``, ``recall`` (None when ``task`` is absent) and ``emergency_flagged``;
        None when there are no emergency calls.
    """
    emerg = s[labels == PROTECTED_CLASS]
    if emerg.size == 0:
        return None
    allowed = int(np.floor(fpr_target * emerg.size + 1e-9))
    ordered = np.sort(emerg)[::-1]
    scale = 10.0**_DIGITS
    if allowed >= ordered.size:
        threshold = math.floor(float(s.min()) * scale) / scale
    else:
        # Above the (allowed+1)-th highest emergency score, so ties never exceed the budget;
        # rounded up to the reported digits so the reported threshold reproduces the numbers.
        above = float(ordered[allowed])
        threshold = round(math.ceil(above * scale) / scale, _DIGITS)
        if threshold <= above:
            threshold = round(threshold + 1.0 / scale, _DIGITS)
    positives = s[labels == task]
    return {
        "threshold": threshold,
        "recall": _share(positives >= threshold),
        "emergency_flagged": float((emerg >= threshold).mean()),
    }


def _flag_masks(flags: np.ndarray, level: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Calls flagged at ``level`` and, per task, calls flagged for that task at ``level``."""
    if level == "possible":
        any_flag = flags != "none"
        per_task = {t: np.isin(flags, [f"possible_{t}", f"likely_{t}"]) for t in _TASKS}
    else:
        any_flag = np.char.startswith(flags.astype(str), "likely_")
        per_task = {t: flags == f"likely_{t}" for t in _TASKS}
    return any_flag, per_task


def _ece(y: np.ndarray, p: np.ndarray) -> float | None:
    """Expected calibration error over equal-width bins of ``p``."""
    if y.size == 0:
        return None
    bins = np.clip(np.floor(p * _ECE_BINS).astype(int), 0, _ECE_BINS - 1)
    err = 0.0
    for b in range(_ECE_BINS):
        m = bins == b
        if m.any():
            err += m.mean() * abs(float(p[m].mean()) - float(y[m].mean()))
    return float(err)


def _class_counts(labels: np.ndarray) -> dict[str, int]:
    return {c: int((labels == c).sum()) for c in LABELS}


def _check(scored: pd.DataFrame, baselines: Mapping[str, Mapping[str, str]]) -> None:
    missing = [c for c in _REQUIRED if c not in scored.columns]
    if missing:
        raise InvalidParameterError(
            f"scored table lacks columns {missing}; expected at least {list(_REQUIRED)}, "
            f"got {list(scored.columns)}"
        )
    for name, tasks in baselines.items():
        for task, col in tasks.items():
            if task not in _TASKS:
                raise InvalidParameterError(
                    f"baseline {name!r} addresses task {task!r}; expected one of {list(_TASKS)}"
                )
            if col not in scored.columns:
                raise InvalidParameterError(
                    f"baseline {name!r} column {col!r} for task {task!r} is not in the scored "
                    f"table (columns: {list(scored.columns)})"
                )


# --------------------------------------------------------------------------- metrics


def compute_metrics(
    scored: pd.DataFrame,
    *,
    baselines: dict[str, dict[str, str]],
    fpr_target: float = 0.01,
) -> dict[str, Any]:
    """Metrics of the model and the baselines on the labelled calls of a scored table.

    Parameters
    ----------
    scored : DataFrame, shape (n_calls, n_columns)
        One row per call: ``label`` ("" when unknown), ``p_emergency``,
        ``p_non_emergency``, ``p_prank``, ``p_ghost``, ``flag``, the slice columns
        (``meta_withheld``, ``meta_simless``, ``meta_hour``, ``hist_has_history``; a
        missing one leaves its slices out) and the baseline score columns.
    baselines : dict, keyword-only
        Baseline name to ``{task: column}`` with task ``prank`` or ``ghost``; higher
        scores mean more likely the task's class, NaN counts as the lowest score.
    fpr_target : float, keyword-only
        Largest share of emergency calls a threshold may flag, in (0, 1).

    Returns
    -------
    dict
        JSON-able (floats rounded to 6 digits, undefined values None): ``calls``,
        ``labelled_calls``, ``fpr_target``, ``class_counts``, ``per_class``,
        ``recall_at_fpr``, ``flags``, ``confusion``, ``flag_by_label``,
        ``calibration``, ``slices``, ``baselines`` and ``comparison``. Without any
        labelled call only ``{"labelled_calls": 0, "calls": n}``.

    Raises
    ------
    InvalidParameterError
        Missing columns, an unknown label or task, or ``fpr_target`` outside (0, 1).
    """
    if not 0.0 < fpr_target < 1.0:
        raise InvalidParameterError(f"fpr_target must be in (0, 1), got {fpr_target}")
    _check(scored, baselines)
    all_labels = _labels(scored)
    unknown = sorted(set(all_labels) - {"", *LABELS})
    if unknown:
        raise InvalidParameterError(
            f"labels {unknown} are not call outcomes; expected one of {list(LABELS)} or ''"
        )
    keep = all_labels != ""
    n_lab = int(keep.sum())
    if n_lab == 0:
        return {"labelled_calls": 0, "calls": len(scored)}

    table = scored.loc[keep].reset_index(drop=True)
    labels = all_labels[keep]
    proba = np.column_stack([_fill_lowest(table[c]) for c in _PROBA])
    flags = table["flag"].fillna("none").astype(str).to_numpy()

    per_class = {c: _binary_scores(labels == c, proba[:, i]) for i, c in enumerate(LABELS)}
    recall = {t: _recall_at_fpr(labels, proba[:, LABELS.index(t)], t, fpr_target) for t in _TASKS}

    flag_metrics: dict[str, Any] = {}
    for level in _LEVELS:
        any_flag, per_task = _flag_masks(flags, level)
        row: dict[str, Any] = {c: _share(any_flag[labels == c]) for c in LABELS}
        for t in _TASKS:
            row[f"{t}_recall"] = _share(per_task[t][labels == t])
        flag_metrics[level] = row
    flag_values = list(FLAGS) + sorted(set(flags) - set(FLAGS))
    flag_metrics["counts"] = {
        f: {c: int(((flags == f) & (labels == c)).sum()) for c in LABELS} for f in flag_values
    }
    flag_by_label = {
        c: {f: int(((flags == f) & (labels == c)).sum()) for f in flag_values} for c in LABELS
    }

    predicted = np.asarray(LABELS, dtype=object)[np.argmax(proba, axis=1)]
    matrix = [[int(((labels == t) & (predicted == p)).sum()) for p in LABELS] for t in LABELS]

    onehot = np.column_stack([(labels == c).astype(float) for c in LABELS])
    calibration = {
        "ece": {c: _ece(onehot[:, i], proba[:, i]) for i, c in enumerate(LABELS)},
        "brier": float(np.mean(np.sum((proba - onehot) ** 2, axis=1))),
    }

    slices: dict[str, Any] = {}
    for name, col, test, _ in _SLICES:
        if col not in table.columns:
            continue
        values = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=float)
        m = np.asarray(test(values), dtype=bool)
        lab = labels[m]
        possible, per_task = _flag_masks(flags[m], "possible")
        slices[name] = {
            "calls": int(m.sum()),
            "class_counts": _class_counts(lab),
            "prank_roc_auc": _binary_scores(lab == "prank", proba[m, LABELS.index("prank")])[
                "roc_auc"
            ],
            "ghost_roc_auc": _binary_scores(lab == "ghost", proba[m, LABELS.index("ghost")])[
                "roc_auc"
            ],
            "emergency_flagged": _share(possible[lab == PROTECTED_CLASS]),
            "prank_recall": _share(per_task["prank"][lab == "prank"]),
            "ghost_recall": _share(per_task["ghost"][lab == "ghost"]),
        }

    base_metrics: dict[str, Any] = {}
    comparison: list[dict[str, Any]] = []
    for name, tasks in baselines.items():
        base_metrics[name] = {}
        for task, col in tasks.items():
            s = _fill_lowest(table[col])
            entry: dict[str, Any] = {
                **_binary_scores(labels == task, s),
                "recall_at_fpr": _recall_at_fpr(labels, s, task, fpr_target),
            }
            base_metrics[name][task] = entry
            b_auc, m_auc = entry["roc_auc"], per_class[task]["roc_auc"]
            b_rec = (entry["recall_at_fpr"] or {}).get("recall")
            m_rec = (recall[task] or {}).get("recall")
            better = (
                b_auc is not None
                and m_auc is not None
                and b_rec is not None
                and m_rec is not None
                # Better ranking and no fewer calls caught at the same emergency budget.
                and m_auc > b_auc
                and m_rec >= b_rec
            )
            comparison.append(
                {
                    "baseline": name,
                    "task": task,
                    "baseline_roc_auc": b_auc,
                    "model_roc_auc": m_auc,
                    "baseline_recall_at_fpr": b_rec,
                    "model_recall_at_fpr": m_rec,
                    "model_better": bool(better),
                }
            )

    metrics = {
        "calls": len(scored),
        "labelled_calls": n_lab,
        "fpr_target": fpr_target,
        "class_counts": _class_counts(labels),
        "per_class": per_class,
        "recall_at_fpr": recall,
        "flags": flag_metrics,
        "confusion": {"labels": list(LABELS), "matrix": matrix},
        "flag_by_label": flag_by_label,
        "calibration": calibration,
        "slices": slices,
        "baselines": base_metrics,
        "comparison": comparison,
    }
    cleaned: dict[str, Any] = jsonable(metrics, digits=_DIGITS)
    return cleaned


def flat_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Numeric leaves of ``metrics`` as ``{"a.b.c": value}``, finite values only (for MLflow).

    List items are keyed by their position, or by their string fields when they are
    records (a comparison row becomes ``comparison.<baseline>.<task>.<field>``). Booleans
    become 0.0 or 1.0; strings and None are left out.
    """
    out: dict[str, float] = {}

    def key_part(k: Any) -> str:
        # MLflow accepts only letters, digits, and _ - . space /.
        return re.sub(r"[^A-Za-z0-9_\-. /]", "_", str(k))

    def walk(prefix: str, obj: Any) -> None:
        if isinstance(obj, Mapping):
            for k, v in obj.items():
                walk(f"{prefix}.{key_part(k)}" if prefix else key_part(k), v)
        elif isinstance(obj, list | tuple):
            for i, v in enumerate(obj):
                name = str(i)
                if isinstance(v, Mapping):
                    tags = [key_part(x) for x in v.values() if isinstance(x, str)]
                    name = ".".join(tags) or name
                walk(f"{prefix}.{name}" if prefix else name, v)
        elif isinstance(obj, bool | int | float | np.integer | np.floating | np.bool_):
            value = float(obj)
            if math.isfinite(value):
                out[prefix] = value

    walk("", metrics)
    return out


# --------------------------------------------------------------------------- plots


def _task_scores(
    table: pd.DataFrame, baselines: Mapping[str, Mapping[str, str]], task: str
) -> list[tuple[str, np.ndarray]]:
    """Model first, then each baseline addressing ``task``, as (legend name, scores)."""
    out = [("model", _fill_lowest(table[f"p_{task}"]))]
    for name, tasks in baselines.items():
        if task in tasks:
            out.append((name, _fill_lowest(table[tasks[task]])))
    return out


def _plot_curves(
    path: Path,
    table: pd.DataFrame,
    labels: np.ndarray,
    baselines: Mapping[str, Mapping[str, str]],
    *,
    kind: str,
    fpr_target: float,
) -> bool:
    """ROC (``kind="roc"``) or precision-recall curves for prank and ghost; False if undrawable."""
    from sklearn.metrics import (
        average_precision_score,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )

    drawable = [t for t in _TASKS if 0 < (labels == t).sum() < labels.size]
    if not drawable:
        return False
    fig, axes = figure(len(_TASKS))
    for ax, task in zip(axes, _TASKS, strict=True):
        y = labels == task
        ax.set_title(f"{task} vs rest")
        if task not in drawable:
            ax.text(0.5, 0.5, f"not enough labels for {task}", ha="center", va="center")
            ax.set_axis_off()
            continue
        for name, s in _task_scores(table, baselines, task):
            style = {"lw": 2.2, "color": "black"} if name == "model" else {"lw": 1.2}
            if kind == "roc":
                fpr, tpr, _ = roc_curve(y, s)
                ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, s):.3f})", **style)
            else:
                prec, rec, _ = precision_recall_curve(y, s)
                ap = average_precision_score(y, s)
                ax.step(rec, prec, where="post", label=f"{name} (AP {ap:.3f})", **style)
        if kind == "roc":
            ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
            ax.axvline(fpr_target, color="grey", ls=":", lw=1.2, label=f"FPR {fpr_target:g}")
            ax.set_xlabel("false positive rate (all other labelled calls)")
            ax.set_ylabel(f"true positive rate ({task} recall)")
        else:
            ax.axhline(float(y.mean()), color="grey", lw=0.8, ls="--", label="prevalence")
            ax.set_xlabel(f"recall ({task})")
            ax.set_ylabel("precision")
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right" if kind == "roc" else "lower left", fontsize=8)
    fig.savefig(path)
    return True


def _plot_calibration(path: Path, table: pd.DataFrame, labels: np.ndarray) -> bool:
    fig, axes = figure()
    ax = axes[0]
    edges = np.linspace(0.0, 1.0, _ECE_BINS + 1)
    for c in LABELS:
        p = _fill_lowest(table[f"p_{c}"])
        y = (labels == c).astype(float)
        bins = np.clip(np.digitize(p, edges[1:-1]), 0, _ECE_BINS - 1)
        xs = [float(p[bins == b].mean()) for b in range(_ECE_BINS) if (bins == b).any()]
        ys = [float(y[bins == b].mean()) for b in range(_ECE_BINS) if (bins == b).any()]
        ax.plot(xs, ys, marker="o", ms=4, label=c)
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8, label="perfect")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean predicted probability (bin)")
    ax.set_ylabel("observed share of the class")
    ax.set_title("Reliability (10 equal-width bins)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path)
    return True


def _plot_confusion(path: Path, matrix: Sequence[Sequence[int]]) -> bool:
    m = np.asarray(matrix, dtype=float)
    fig, axes = figure(width=5.5, height=5.0)
    ax = axes[0]
    im = ax.imshow(m, cmap="Blues")
    ticks = np.arange(len(LABELS))
    ax.set_xticks(ticks, LABELS, rotation=30, ha="right")
    ax.set_yticks(ticks, LABELS)
    ax.set_xlabel("predicted (highest probability)")
    ax.set_ylabel("true label")
    ax.set_title("Confusion matrix (counts)")
    top = m.max() if m.size else 0.0
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            dark = top > 0 and m[i, j] > top / 2
            ax.text(
                j,
                i,
                f"{int(m[i, j])}",
                ha="center",
                va="center",
                color="white" if dark else "black",
            )
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.savefig(path)
    return True


def _plot_flags(path: Path, flag_by_label: Mapping[str, Mapping[str, int]]) -> bool:
    present = [c for c in LABELS if sum(flag_by_label.get(c, {}).values()) > 0]
    if not present:
        return False
    flag_values: list[str] = []
    for c in present:
        flag_values += [f for f in flag_by_label[c] if f not in flag_values]
    fig, axes = figure(width=6.5)
    ax = axes[0]
    bottom = np.zeros(len(present))
    colours = {
        "none": "#d9d9d9",
        "possible_prank": "#fdae6b",
        "likely_prank": "#e6550d",
        "possible_ghost": "#9ecae1",
        "likely_ghost": "#3182bd",
    }
    for f in flag_values:
        counts = np.array([flag_by_label[c].get(f, 0) for c in present], dtype=float)
        ax.bar(present, counts, bottom=bottom, label=f, color=colours.get(f))
        bottom += counts
    ax.set_xlabel("true label")
    ax.set_ylabel("calls")
    ax.set_title("Flags raised, by true label")
    ax.legend(fontsize=8, title="flag")
    fig.savefig(path)
    return True


# --------------------------------------------------------------------------- report


def _num(v: Any, digits: int = 3) -> str:
    return "n/a" if v is None else f"{float(v):.{digits}f}"


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{100.0 * float(v):.1f}%"


def _cell(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = [
        "| " + " | ".join(_cell(h) for h in header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _bullets(obj: Any, indent: int = 0) -> list[str]:
    pad = "  " * indent
    lines: list[str] = []
    for k, v in obj.items():
        if isinstance(v, Mapping):
            lines.append(f"{pad}- {k}:")
            lines += _bullets(v, indent + 1)
        else:
            lines.append(f"{pad}- {k}: {v}")
    return lines


def _flatten_thresholds(obj: Any, prefix: str = "") -> list[str]:
    if isinstance(obj, Mapping):
        out: list[str] = []
        for k, v in obj.items():
            out += _flatten_thresholds(v, f"{prefix}{k} ")
        return out
    value = _num(obj, 4) if isinstance(obj, int | float) else str(obj)
    return [f"{prefix.strip()}: {value}"]


def _report_lines(
    metrics: Mapping[str, Any],
    *,
    baselines: Mapping[str, Mapping[str, str]],
    baseline_notes: Mapping[str, str],
    title: str,
    model_card: Mapping[str, Any] | None,
    split: Mapping[str, Any] | None,
    plots: Sequence[str],
) -> list[str]:
    target = float(metrics.get("fpr_target") or 0.01)
    rate = f"{100 * target:g}%"
    lines = [f"# {title}", ""]
    lines.append(
        "How to read: every number is measured on the labelled calls evaluated here; ROC-AUC and "
        "PR-AUC rank calls (1.0 is perfect, 0.5 is chance for ROC-AUC), recall at "
        f"{rate} is the share of prank or ghost calls caught while flagging at most {rate} of "
        "emergency calls, and lower calibration error is better."
    )
    lines += ["", "> Flags are advice; every call is answered.", ""]

    lines += [
        "## Data",
        "",
        f"- calls: {metrics.get('calls', 0)}",
        f"- labelled calls: {metrics.get('labelled_calls', 0)}",
    ]
    counts = metrics.get("class_counts") or {}
    for c in LABELS:
        if c in counts:
            lines.append(f"- {c}: {counts[c]}")
    lines.append("")

    if split:
        lines += ["## Train/test split", "", *_bullets(split), ""]

    if model_card:
        lines += ["## Model", ""]
        for key in ("name", "version", "created_at", "data_fingerprint"):
            if model_card.get(key) is not None:
                lines.append(f"- {key}: {model_card[key]}")
        if model_card.get("thresholds"):
            lines.append("- thresholds:")
            lines += [f"  - {t}" for t in _flatten_thresholds(model_card["thresholds"])]
        lines.append("")

    if not metrics.get("labelled_calls"):
        lines += [
            "## Results",
            "",
            "The manifest had no labels, so nothing could be measured and no plots were drawn. "
            "Label calls (emergency, non_emergency, prank, ghost) to evaluate a model.",
            "",
        ]
        return lines

    per_class = metrics.get("per_class") or {}
    ece = (metrics.get("calibration") or {}).get("ece") or {}
    recall = metrics.get("recall_at_fpr") or {}
    lines += ["## Headline", ""]
    rows = []
    for c in LABELS:
        pc = per_class.get(c) or {}
        r = recall.get(c) if c in _TASKS else None
        rows.append(
            [
                c,
                _num(pc.get("roc_auc")),
                _num(pc.get("pr_auc")),
                _pct(r.get("recall")) if r else "n/a",
                _num(r.get("threshold"), 4) if r else "n/a",
                _num(ece.get(c)),
            ]
        )
    lines += _table(
        [
            "class",
            "ROC-AUC",
            "PR-AUC",
            f"recall at {rate} emergency flagged",
            "threshold",
            "calibration error (ECE)",
        ],
        rows,
    )
    brier = (metrics.get("calibration") or {}).get("brier")
    lines += ["", f"Multi-class Brier score: {_num(brier)} (0 is perfect, 2 is worst).", ""]

    flags = metrics.get("flags") or {}
    rows = []
    for level in _LEVELS:
        f = flags.get(level) or {}
        rows.append(
            [
                level,
                _pct(f.get("emergency")),
                _pct(f.get("non_emergency")),
                _pct(f.get("prank_recall")),
                _pct(f.get("ghost_recall")),
            ]
        )
    lines += ["Flags as raised by the model's own thresholds (possible includes likely):", ""]
    lines += _table(
        ["level", "emergency flagged", "non-emergency flagged", "prank caught", "ghost caught"],
        rows,
    )
    lines.append("")

    comparison = metrics.get("comparison") or []
    if comparison:
        lines += ["## Baselines", ""]
        for name in baselines:
            note = baseline_notes.get(name, "")
            lines.append(f"- **{name}**" + (f": {note}" if note else ""))
        lines.append("")
        rows = [
            [
                r["baseline"],
                r["task"],
                _num(r.get("baseline_roc_auc")),
                _num(r.get("model_roc_auc")),
                _pct(r.get("baseline_recall_at_fpr")),
                _pct(r.get("model_recall_at_fpr")),
                "✓" if r.get("model_better") else "✗",
            ]
            for r in comparison
        ]
        lines += _table(
            [
                "baseline",
                "task",
                "baseline ROC-AUC",
                "model ROC-AUC",
                f"baseline recall at {rate}",
                f"model recall at {rate}",
                "model better",
            ],
            rows,
        )
        lines += [
            "",
            "Model better = higher ROC-AUC and at least the same recall at "
            f"{rate} emergency flagged (✗ also when either cannot be computed).",
            "",
        ]

    slices = metrics.get("slices") or {}
    if slices:
        lines += [
            "## Slices",
            "",
            "Flag shares at the possible level; `calls` counts labelled calls only.",
            "",
        ]
        described = {name: desc for name, _, _, desc in _SLICES}
        rows = []
        for name, s in slices.items():
            cc = s.get("class_counts") or {}
            rows.append(
                [
                    f"{name} ({described.get(name, name)})",
                    s.get("calls", 0),
                    " / ".join(str(cc.get(c, 0)) for c in LABELS),
                    _num(s.get("prank_roc_auc")),
                    _num(s.get("ghost_roc_auc")),
                    _pct(s.get("emergency_flagged")),
                    _pct(s.get("prank_recall")),
                    _pct(s.get("ghost_recall")),
                ]
            )
        lines += _table(
            [
                "slice",
                "calls",
                "emerg / non-emerg / prank / ghost",
                "prank ROC-AUC",
                "ghost ROC-AUC",
                "emergency flagged",
                "prank caught",
                "ghost caught",
            ],
            rows,
        )
        lines.append("")

    if metrics.get("prefixes"):
        from training.prefix import PLOT_FILE, prefix_report_lines

        lines += prefix_report_lines(metrics["prefixes"], plot=PLOT_FILE in plots)
    plots = [p for p in plots if p != "prefixes.png"]
    if plots:
        captions = {
            "roc.png": "ROC",
            "pr.png": "Precision-recall",
            "calibration.png": "Calibration",
            "confusion.png": "Confusion matrix",
            "flags.png": "Flags by true label",
        }
        lines += ["## Plots", ""]
        for p in plots:
            lines += [f"![{captions.get(p, p)}]({p})", ""]
    return lines


def write_report(
    out_dir: Path,
    scored: pd.DataFrame,
    metrics: dict[str, Any],
    *,
    baselines: dict[str, dict[str, str]],
    baseline_notes: dict[str, str],
    title: str,
    model_card: dict[str, Any] | None = None,
    split: dict[str, Any] | None = None,
) -> list[Path]:
    """Write ``metrics.json``, ``report.md`` and the plots into ``out_dir``.

    Parameters
    ----------
    out_dir : Path
        Created when missing. Plot files of an earlier report there that this one does
        not draw are removed, so the folder never mixes two evaluations.
    scored : DataFrame, shape (n_calls, n_columns)
        The table ``metrics`` was computed from (see :func:`compute_metrics`).
    metrics : dict
        From :func:`compute_metrics`.
    baselines : dict, keyword-only
        Baseline name to ``{task: column}``, as given to :func:`compute_metrics`.
    baseline_notes : dict, keyword-only
        Baseline name to a one-line description for the report.
    title : str, keyword-only
        Report title.
    model_card : dict or None, keyword-only
        Model card; its name, version, created_at, data_fingerprint and thresholds are shown.
    split : dict or None, keyword-only
        How train and test were split, shown as a bullet list.

    Returns
    -------
    list of Path
        The files written: metrics.json, report.md, then the PNGs.
    """
    from training.prefix import plot_prefix_curve

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    metrics_path = out / "metrics.json"
    metrics_path.write_text(
        json.dumps(jsonable(metrics, digits=_DIGITS), indent=2, allow_nan=False, ensure_ascii=False)
        + "\n",
        encoding="utf-8",
    )
    written.append(metrics_path)

    plots: list[str] = []
    if metrics.get("labelled_calls"):
        _check(scored, baselines)
        all_labels = _labels(scored)
        keep = all_labels != ""
        table = scored.loc[keep].reset_index(drop=True)
        labels = all_labels[keep]
        target = float(metrics.get("fpr_target") or 0.01)
        confusion = (metrics.get("confusion") or {}).get("matrix")
        attempts = {
            "roc.png": lambda p: _plot_curves(
                p, table, labels, baselines, kind="roc", fpr_target=target
            ),
            "pr.png": lambda p: _plot_curves(
                p, table, labels, baselines, kind="pr", fpr_target=target
            ),
            "calibration.png": lambda p: _plot_calibration(p, table, labels),
            "confusion.png": lambda p: confusion is not None and _plot_confusion(p, confusion),
            "flags.png": lambda p: _plot_flags(p, metrics.get("flag_by_label") or {}),
            "prefixes.png": lambda p: (
                bool(metrics.get("prefixes")) and plot_prefix_curve(p, metrics["prefixes"])
            ),
        }
        for name, draw in attempts.items():
            if table.empty:
                break
            if draw(out / name):
                plots.append(name)
    for name in _PLOTS:
        if name not in plots:
            (out / name).unlink(missing_ok=True)

    report_path = out / "report.md"
    report_path.write_text(
        "\n".join(
            _report_lines(
                metrics,
                baselines=baselines,
                baseline_notes=baseline_notes,
                title=title,
                model_card=model_card,
                split=split,
                plots=plots,
            )
        ).rstrip()
        + "\n",
        encoding="utf-8",
    )
    written.append(report_path)
    written += [out / p for p in plots]
    return written
