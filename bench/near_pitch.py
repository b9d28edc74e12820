"""Is a crying baby read as the caller's pitch? (issue 15, session 13).

    .venv/bin/python bench/near_pitch.py /tmp/cs/rc15/manifest.csv ... --drop-db 10

On the mono emergency, non-emergency and prank calls of real check sets
(``bench/real_checkset.py build``), the caller's pitch features (``pitch_caller_hz``,
``pitch_caller_high_share``) as shipped, beside the same features read off the caller's
*near* frames only: the pitch frames of the other voice's stretches within ``--drop-db``
of their loudest tenth (a cry or a TV behind the caller is quieter than the caller). It
prints their medians by group (emergency calls with and without an infant cry behind,
pranks and non-emergency calls by caller kind) and the ROC-AUC of the high-pitch share
between children's pranks and emergency calls with a cry. Features are computed here,
without the cache, once per variant.

The near variant is an experiment, not the shipped feature: a model rebuilt with it
(session 13, docs/benchmarks.md) was not shipped.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from sklearn.metrics import roc_auc_score

import classifier.features.calls as calls
from classifier.features.pitch import pitch_stats
from classifier.voices import PITCH_FRAME, PITCH_HOP, speech_pitch_frames
from training.checkset_report import CRY_SOURCES
from training.features import extract_features

app = typer.Typer(add_completion=False)
_COLUMNS = ["pitch_caller_hz", "pitch_caller_high_share"]


def near_frames(y: np.ndarray, frames: np.ndarray, *, drop_db: float) -> np.ndarray:
    """The pitch frames ``frames`` within ``drop_db`` of their loudest tenth."""
    if frames.size == 0:
        return frames
    w = np.asarray(
        np.lib.stride_tricks.sliding_window_view(y, PITCH_FRAME)[::PITCH_HOP][frames],
        dtype=np.float64,
    )
    level = 10.0 * np.log10(np.einsum("ij,ij->i", w, w) / w.shape[1] + 1e-12)
    return frames[level >= np.percentile(level, 90) - drop_db]


@contextmanager
def near_caller_pitch(drop_db: float) -> Iterator[None]:
    """The features' caller pitch read off near frames only, for this block."""
    shipped = calls._caller_pitch

    def near(
        y: np.ndarray,
        ranges: np.ndarray,
        n_frames: int,
        pitch: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ) -> dict[str, float]:
        inside = np.zeros(n_frames, dtype=bool)
        for a, b in ranges:
            inside[int(a) : int(b)] = True
        frames = near_frames(y, speech_pitch_frames(inside, y.size), drop_db=drop_db)
        s = pitch_stats(pitch(y, frames[: calls.CALLER_PITCH_FRAMES]))
        return {
            "pitch_caller_hz": s["pitch_median_hz"],
            "pitch_caller_high_share": s["pitch_high_share"],
        }

    calls._caller_pitch = near
    try:
        yield
    finally:
        calls._caller_pitch = shipped


def _mono_calls(manifest: Path, folder: Path) -> tuple[Path, pd.DataFrame]:
    m = pd.read_csv(manifest)
    sub = m[(m["channels"] == "mono") & m["label"].isin(["emergency", "prank", "non_emergency"])]
    sub = sub.assign(audio_path=[str((manifest.parent / a).resolve()) for a in sub["audio_path"]])
    out = folder / f"{manifest.parent.name}.csv"
    sub.to_csv(out, index=False)
    return out, sub


@app.command()
def main(
    manifests: Annotated[list[Path], typer.Argument(help="real check set manifests")],
    drop_db: Annotated[
        float, typer.Option("--drop-db", help="near: within this of the loudest tenth")
    ] = 10.0,
) -> None:
    """Caller pitch as shipped and from near frames, by group of calls."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for manifest in manifests:
            path, sub = _mono_calls(manifest, Path(tmp))
            for variant in ("shipped", "near"):
                if variant == "near":
                    with near_caller_pitch(drop_db):
                        table, _ = extract_features(path, n_jobs=1, cache_dir=None, progress=False)
                else:
                    table, _ = extract_features(path, n_jobs=1, cache_dir=None, progress=False)
                t = table[["call_id", "label", *_COLUMNS]].merge(
                    sub[["call_id", "source_files", "caller_kind"]], on="call_id"
                )
                rows.append(t.assign(variant=variant))
    df = pd.concat(rows, ignore_index=True)
    cry = df["source_files"].fillna("").str.contains("|".join(CRY_SOURCES))
    kind = df["caller_kind"].astype(str).str.split("_").str[0]
    df["group"] = np.where(
        df["label"] == "emergency",
        np.where(cry, "emergency, cry behind", "emergency, no cry"),
        df["label"] + ": " + kind,
    )
    typer.echo(df.groupby(["group", "variant"])[_COLUMNS].median().round(2).unstack().to_string())
    for variant in ("shipped", "near"):
        d = df[
            (df["variant"] == variant) & df["group"].isin(["emergency, cry behind", "prank: child"])
        ]
        d = d.dropna(subset=["pitch_caller_high_share"])
        auc = roc_auc_score(d["group"] == "prank: child", d["pitch_caller_high_share"])
        typer.echo(
            f"{variant}: high-pitch share, children's pranks against emergency calls "
            f"with a cry: ROC-AUC {auc:.3f} ({len(d)} calls)"
        )


if __name__ == "__main__":
    app()
