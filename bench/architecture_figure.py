"""Draw docs/img/architecture.png: callsift's data flow, each box naming its folder.

.venv/bin/python bench/architecture_figure.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

OUT = Path(__file__).resolve().parent.parent / "docs" / "img" / "architecture.png"

# (label, folder / module, x, y, colour): the loop a centre's calls go round.
STAGES = [
    ("simulate", "training/simulate.py\ntraining/simulator/", 0.0, 1.0, "#dbe9f6"),
    ("features", "training/features.py\nclassifier/features/", 1.0, 1.0, "#dbe9f6"),
    ("train", "training/train.py\nclassifier/model/", 2.0, 1.0, "#dbe9f6"),
    ("evaluate / promote", "training/evaluate.py\ntraining/promote.py", 3.0, 1.0, "#dbe9f6"),
    ("serve", "api/ (routers/, service.py,\nscoring_pool.py)", 3.0, 0.0, "#fde7c8"),
    ("review", "api/store/, api/web/\n(console)", 2.0, 0.0, "#fde7c8"),
    ("export", "GET /v1/export/labelled\napi/store/export.py", 1.0, 0.0, "#fde7c8"),
    ("adapt", "training/adapt.py", 0.0, 0.0, "#dbe9f6"),
]
ARROWS = [
    ("simulate", "features", "manifest, WAVs"),
    ("features", "train", "feature table"),
    ("train", "evaluate / promote", "model + MLflow run"),
    ("evaluate / promote", "serve", "champion"),
    ("serve", "review", "scores, flags"),
    ("review", "export", "reviewed calls"),
    ("export", "adapt", "centre manifest"),
    ("adapt", "evaluate / promote", "challenger"),
]


def main() -> None:
    fig, ax = plt.subplots(figsize=(15, 5.6))
    w, h = 0.9, 0.5
    where = {}
    for label, folder, x, y, colour in STAGES:
        x *= 1.35
        where[label] = (x, y)
        ax.add_patch(
            FancyBboxPatch(
                (x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02", fc=colour, ec="#444"
            )
        )
        ax.text(x, y + 0.1, label, ha="center", va="center", fontsize=12, weight="bold")
        ax.text(x, y - 0.08, folder, ha="center", va="center", fontsize=8.5, family="monospace")
    for a, b, what in ARROWS:
        (x0, y0), (x1, y1) = where[a], where[b]
        if y0 == y1:
            start = (x0 + np.sign(x1 - x0) * w / 2, y0)
            end = (x1 - np.sign(x1 - x0) * w / 2, y1)
            rad = 0.0
        else:
            dx = 0.0 if x0 == x1 else w / 3
            start = (x0 + dx, y0 - np.sign(y0 - y1) * h / 2)
            end = (x1 - dx, y1 + np.sign(y0 - y1) * h / 2)
            rad = 0.0
        ax.add_patch(
            FancyArrowPatch(
                start,
                end,
                arrowstyle="-|>",
                mutation_scale=14,
                color="#333",
                connectionstyle=f"arc3,rad={rad}",
            )
        )
        mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
        ax.text(
            mx + (0.04 if x0 == x1 else 0),
            my + 0.03,
            what,
            ha="left" if x0 == x1 else "center",
            va="bottom",
            fontsize=8,
            color="#333",
        )
    ax.text(
        1.5,
        -0.55,
        "classifier/ (audio, features, VAD, caller history, model, scoring, reasons) is the "
        "one core every box uses:\nthe same feature code in training and serving. "
        "callsift.py composes the training/ and api/ commands;\n"
        "models/default/ is the shipped model.",
        ha="center",
        va="center",
        fontsize=9.5,
    )
    ax.text(-0.45, 1.42, "training/ (offline, MLflow)", fontsize=10, color="#2a5d8f", weight="bold")
    ax.text(
        -0.45,
        -0.4,
        "api/ (the service, its database and console)",
        fontsize=10,
        color="#a05a00",
        weight="bold",
    )
    ax.set_xlim(-0.55, 4.65)
    ax.set_ylim(-0.75, 1.5)
    ax.axis("off")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110, bbox_inches="tight")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
