"""Adapt stage, the report: ``adapt.md`` and the learning-curve figure."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def pct(v: Any) -> str:
    return "n/a" if v is None or not np.isfinite(float(v)) else f"{100 * float(v):.1f}%"


def _num(v: Any) -> str:
    return "n/a" if v is None or not np.isfinite(float(v)) else f"{float(v):.3f}"


def plot_curve(path: Path, curve: Sequence[dict[str, Any]], *, targets: dict[str, float]) -> None:
    """Recall, and emergency and non-emergency calls flagged, on the validation quarter
    against the number of the centre's calls adapted on; one colour per candidate recipe."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    sizes: set[int] = set()
    for k, name in enumerate(dict.fromkeys(p["candidate"] for p in curve)):
        pts = [p for p in curve if p["candidate"] == name and "caught_share" in p]
        if not pts:
            continue
        colour = f"C{k}"
        x = [p["centre_calls"] for p in pts]
        sizes.update(x)

        share = [p["emergency_flagged"] / max(p["emergency"], 1) for p in pts]
        lines = (
            (left, [p["caught_share"] for p in pts], "-", "prank and ghost"),
            (left, [p["ghost_recall"] for p in pts], ":", "ghost"),
            (left, [p["prank_recall"] for p in pts], "--", "prank"),
            (right, share, "-", "emergency"),
            (right, [p["non_emergency_flagged_share"] for p in pts], "--", "non-emergency"),
        )
        for ax, ys, style, label in lines:
            ax.plot(
                x,
                [100 * float(v) for v in ys],
                ls=style,
                marker="o",
                ms=4,
                color=colour,
                label=f"{name}: {label}",
            )
    right.axhline(100 * targets["possible"], color="red", lw=1, label="emergency budget")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks(sorted(sizes), [str(n) for n in sorted(sizes)])
        ax.minorticks_off()
        ax.set_xlabel("centre calls adapted on (earliest first)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    left.set_ylabel("flagged as such, validation quarter (%)")
    right.set_ylabel("flagged, validation quarter (%)")
    left.set_title("prank and ghost calls flagged (recall at the budget)")
    right.set_title("emergency and non-emergency calls flagged")
    fig.savefig(path)


def _non_emergency_lines(a: dict[str, Any], bound: dict[str, Any]) -> list[str]:
    """The non-emergency cap in words, with what it did on the centre's calls."""
    target = a.get("non_emergency_target")
    if target is None:
        return ["No cap on the share of non-emergency calls flagged.", ""]
    ne = bound.get("non_emergency") or {}
    done = (
        f" On the centre's {ne['calls']} non-emergency calls the emergency budget alone "
        f"flagged {ne['flagged_before']}; the thresholds written flag {ne['flagged']}."
        if ne
        else ""
    )
    return [
        f"Non-emergency calls: thresholds rise where needed so that at most {pct(target)} "
        "of the centre's non-emergency calls are flagged (`--non-emergency-target`), with "
        "the emergency budget's upper bound as margin"
        + (f" ({ne['allowed']} flags allowed)" if ne else "")
        + "; they never fall, so emergency calls keep their protection."
        + done,
        "",
    ]


def write_adapt_report(
    path: Path,
    *,
    card: dict[str, Any],
    candidates: Sequence[dict[str, Any]],
    curve: Sequence[dict[str, Any]],
    warnings: Sequence[str],
) -> None:
    """The adaptation in words and tables (``adapt.md``) beside ``learning_curve.png``."""
    a = card["adaptation"]
    base = card["adapted_from"]
    td = card["training_data"]
    split = card["split"]
    bound = a["bound"]["calls"]
    kept = a["bound"].get("kept_buckets") or []
    lines = [
        f"# callsift adaptation: {card['version']}",
        "",
        f"Adapted from **{base['version']}** ({base['model']}) on the centre's calls of "
        f"{', '.join(td['centre_manifests'])}.",
        "",
        "> Flags are advice for the call-taker: every call is answered and handled; a silent "
        "caller may be a victim who cannot speak.",
        "",
        "## The centre's calls",
        "",
        f"- labelled calls: {td['centre_labelled_calls']} "
        f"({', '.join(f'{k} {v}' for k, v in td['centre_class_counts'].items())}); "
        f"unlabelled, skipped: {td['unlabelled_skipped']}; unreadable audio: "
        f"{td['audio_failures']}",
        f"- split: {split['method']}",
        f"- adapting side: {split['train_calls']} calls, {split['train_period']} "
        f"({', '.join(f'{k} {v}' for k, v in td['train_class_counts'].items())})",
        f"- validation quarter: {split['test_calls']} calls, {split['test_period']} "
        f"({', '.join(f'{k} {v}' for k, v in td['test_class_counts'].items())})",
        f"- left out (earlier calls of validation callers): {split['left_out_calls']}; "
        f"callers on both sides: {split['callers_in_both']}",
        "",
    ]
    if warnings:
        lines += ["Warnings:", "", *[f"- {w}" for w in warnings], ""]
    lines += [
        "## Flag thresholds and their margin",
        "",
        f"Budget: at most {pct(a['budgets']['possible'])} of emergency calls flagged "
        f"`possible`, {pct(a['budgets']['likely'])} `likely`. Each candidate's thresholds are "
        "set on the adapting side's emergency calls so that the one-sided Clopper-Pearson "
        f"upper bound ({a['confidence']:.0%}) on the share flagged stays within the budget; "
        "when the calls are too few for that even with none flagged, none of them may be "
        "flagged (the threshold sits just above the highest emergency score). "
        f"Calibrators: {a.get('calibration', 'isotonic')}"
        + (
            " per class, which keeps the booster's order of each class's scores (isotonic "
            "steps fitted on a few hundred calls tie calls it ranks apart)."
            if a.get("calibration") == "sigmoid"
            else "."
        ),
        "",
        "The candidates below were fitted on the adapting side and measured on the "
        "validation quarter; the model written is the chosen recipe fitted again on all "
        f"{a.get('fitted_on_calls', td['centre_labelled_calls'])} of the centre's calls, so "
        "that every emergency call of the centre sets its thresholds.",
        "",
        "These thresholds are for whole calls. "
        + (
            f"Early scores (calls still going on; time buckets {', '.join(kept)} s) keep "
            "the calibration and thresholds of the model recalibrated, set on its far "
            "larger training calls: the centre's emergency calls in those buckets are too "
            "few to show the budget (299 for 1% at 95%)."
            if kept
            else "Every time bucket was recalibrated on the centre's calls."
        ),
        "",
        *_non_emergency_lines(a, bound),
        f"The model written, on the {bound['emergency_calls']} emergency calls (callers) "
        "it was set on:",
        "",
        "| level | flagged | allowed | upper bound | budget shown |",
        "|---|---|---|---|---|",
    ]
    for lv in ("possible", "likely"):
        b = bound[lv]
        lines.append(
            f"| {lv} | {b['flagged']} | {b['allowed']} | {pct(b['upper_bound'])} | "
            f"{'yes' if b['shown'] else 'no: too few emergency calls'} |"
        )
    lines += [
        "",
        "## Candidates on the validation quarter",
        "",
        "| candidate | ghost ROC-AUC | prank ROC-AUC | ghost flagged | prank flagged | "
        "emergency flagged | at any time heard | non-emergency flagged | within budget |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in candidates:
        mark = " **(chosen)**" if c["name"] == a["candidate"] else ""
        lines.append(
            f"| {c['name']}{mark} | {_num(c['ghost_roc_auc'])} | {_num(c['prank_roc_auc'])} | "
            f"{pct(c['ghost_recall'])} | {pct(c['prank_recall'])} | "
            f"{c['emergency_flagged']} of {c['emergency']} | "
            f"{c['emergency_flagged_any_time']} | {pct(c['non_emergency_flagged_share'])} | "
            f"{'yes' if c['within_budget'] else 'no'} |"
        )
    lines += [
        "",
        f"Chosen: **{a['candidate']}**. {a['reason']}",
        "",
        "## How much data is enough: learning curve",
        "",
        "Each candidate recipe adapted on the centre's earliest calls only (chronologically), "
        "measured on the same validation quarter.",
        "",
        "![learning curve](learning_curve.png)",
        "",
        "| candidate | centre calls | emergency among them | prank+ghost flagged | ghost | "
        "prank | emergency flagged (validation) | non-emergency flagged |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in curve:
        if "caught_share" not in p:
            lines.append(
                f"| {p['candidate']} | {p['centre_calls']} | {p['emergency_calls']} | "
                f"{p.get('note', '')} | | | | |"
            )
            continue
        lines.append(
            f"| {p['candidate']} | {p['centre_calls']} | {p['emergency_calls']} | "
            f"{pct(p['caught_share'])} | {pct(p['ghost_recall'])} | "
            f"{pct(p['prank_recall'])} | {p['emergency_flagged']} of {p['emergency']} | "
            f"{pct(p['non_emergency_flagged_share'])} |"
        )
    lines += [
        "",
        "The validation quarter holds few emergency calls: none flagged there does not show "
        "the budget (see the upper bound above); it only fails to contradict it.",
        "",
        "The model is a challenger: `callsift promote EVAL_MANIFEST` decides whether it "
        "replaces the champion.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
