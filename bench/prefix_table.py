"""Side-by-side early-warning table of evaluations made with ``callsift evaluate --prefix``.

    .venv/bin/python bench/prefix_table.py runs/prefix-bench/eval-whole \
        runs/prefix-bench/eval-prefix

Prints one Markdown row per evaluation folder and seconds heard: ghost and prank recall
at the model's flag thresholds (``possible`` or stronger, and ``likely``), the share of
emergency calls flagged, and ghost and prank ROC-AUC, from each folder's metrics.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _pct(v: Any, n: int | None = None) -> str:
    if v is None:
        return "n/a"
    text = f"{100 * float(v):.1f}%"
    return f"{text} ({round(float(v) * n)}/{n})" if n else text


def _num(v: Any) -> str:
    return "n/a" if v is None else f"{float(v):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evaluations", nargs="+", type=Path, help="evaluate --out folders")
    args = parser.parse_args()
    print(
        "| model | heard | ghost recall | ghost likely | prank recall | prank likely "
        "| emergency flagged | ghost ROC-AUC | prank ROC-AUC |"
    )
    print("|" + "---|" * 9)
    for folder in args.evaluations:
        metrics = json.loads((folder / "metrics.json").read_text())
        views = metrics.get("prefixes")
        if not views:
            raise SystemExit(f"{folder}: no prefix figures; run evaluate with --prefix")
        for key, v in views.items():
            heard = "whole" if key == "whole" else f"{key} s"
            n_emergency = (v.get("class_counts") or {}).get("emergency")
            print(
                f"| {folder.name} | {heard} | {_pct(v['ghost_recall_possible'])} "
                f"| {_pct(v['ghost_recall_likely'])} | {_pct(v['prank_recall_possible'])} "
                f"| {_pct(v['prank_recall_likely'])} "
                f"| {_pct(v['emergency_flagged_possible'], n_emergency)} "
                f"| {_num(v['ghost_roc_auc'])} | {_num(v['prank_roc_auc'])} |"
            )


if __name__ == "__main__":
    main()
