"""Recorder codecs: does the model score the same calls alike when a recorder stored them
as GSM 6.10, IMA ADPCM or MP3 instead of PCM or G.711?

    .venv/bin/python bench/real_checkset.py build --out /tmp/rc15 --calls 480 --seed 15
    .venv/bin/python bench/codec_robustness.py --manifest /tmp/rc15/manifest.csv --work /tmp/codecs

Each call of the manifest is decoded as it is stored and written again in every codec
(mono calls only: GSM 6.10 in WAV is mono, and recorders that use it record one
channel), then ``callsift evaluate`` scores every copy with the same model. The table
compares, per codec, the ranking (ROC-AUC), the shares flagged at the shipped thresholds
and how far each call's probabilities moved from the copy as stored.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import soundfile as sf
import typer
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

#: name -> (container, encoding, extension); "stored" keeps the files as they are.
CODECS: dict[str, tuple[str, str, str]] = {
    "gsm610": ("WAV", "GSM610", "wav"),
    "ima_adpcm": ("WAV", "IMA_ADPCM", "wav"),
    "mp3": ("MP3", "MPEG_LAYER_III", "mp3"),
}

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])


def _copies(manifest: Path, work: Path, codecs: list[str]) -> dict[str, Path]:
    """Write every codec's copy of the manifest's mono calls; return codec -> manifest."""
    m = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    mono = m[m["caller_channel"].isin(["", "mix"])] if "caller_channel" in m else m
    base = manifest.parent
    out = {"stored": work / "stored" / "manifest.csv"}
    (work / "stored").mkdir(parents=True, exist_ok=True)
    stored = mono.copy()
    stored["audio_path"] = [str((base / p).resolve()) for p in mono["audio_path"]]
    stored.to_csv(out["stored"], index=False)
    for name in codecs:
        fmt, subtype, ext = CODECS[name]
        folder = work / name
        (folder / "audio").mkdir(parents=True, exist_ok=True)
        rows = stored.copy()
        paths = []
        for src, call_id in tqdm(
            zip(stored["audio_path"], stored["call_id"], strict=True),
            total=len(stored),
            desc=name,
        ):
            y, sr = sf.read(src, dtype="float32")
            dest = folder / "audio" / f"{call_id}.{ext}"
            sf.write(dest, np.clip(y, -1.0, 1.0), sr, format=fmt, subtype=subtype)
            paths.append(str(dest))
        rows["audio_path"] = paths
        out[name] = folder / "manifest.csv"
        rows.to_csv(out[name], index=False)
    return out


def evaluate_copy(
    manifest: Path, out: Path, model: Path | None, jobs: int, columns: tuple[str, ...]
) -> pd.DataFrame:
    """``callsift evaluate`` of a copy (unless its scores are there), each call's scores
    with the manifest's ``columns``. Shared with bench/line_robustness.py."""
    if not (out / "scores.csv").is_file():
        callsift = str(Path(sys.executable).parent / "callsift")
        cmd = [callsift, "evaluate", str(manifest), "--out", str(out)]
        cmd += ["--jobs", str(jobs)] + (["--model", str(model)] if model else [])
        subprocess.run(cmd, check=True)
    scores = pd.read_csv(out / "scores.csv", dtype={"call_id": str})
    m = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    return scores.merge(m[["call_id", *columns]], on="call_id", validate="1:1")


def compared(df: pd.DataFrame, ref: pd.DataFrame) -> dict[str, object]:
    """Ranking, shares flagged and probabilities moved of a copy's calls against the
    same calls as stored (both indexed by call_id, same order)."""
    row: dict[str, object] = {}
    for cls in ("ghost", "prank"):
        y = (df["label"] == cls).to_numpy()
        row[f"{cls} ROC-AUC"] = round(float(roc_auc_score(y, df[f"p_{cls}"])), 3)
    for label in ("ghost", "prank", "emergency", "non_emergency"):
        row[f"{label} flagged"] = f"{100 * _flagged(df, label):.1f}%"
    for cls in ("ghost", "prank"):
        moved = np.abs(df[f"p_{cls}"].to_numpy() - ref[f"p_{cls}"].to_numpy())
        row[f"p_{cls} moved, median / p95"] = (
            f"{np.median(moved):.3f} / {np.percentile(moved, 95):.3f}"
        )
    row["flag changed"] = int((df["flag"] != ref["flag"]).sum())
    return row


def write_table(rows: list[dict[str, object]], path: Path) -> None:
    """The rows as JSON at ``path``, and as a Markdown table on standard output."""
    path.write_text(json.dumps(rows, indent=1))
    header = list(rows[0])
    typer.echo("| " + " | ".join(header) + " |")
    typer.echo("|" + "---|" * len(header))
    for row in rows:
        typer.echo("| " + " | ".join(str(row[k]) for k in header) + " |")


def _flagged(df: pd.DataFrame, label: str) -> float:
    rows = df[df["label"] == label]
    return float((rows["flag"] != "none").mean()) if len(rows) else float("nan")


@app.command()
def main(
    manifest: Annotated[Path, typer.Option("--manifest", help="a labelled manifest")],
    work: Annotated[Path, typer.Option("--work", help="folder for the copies and scores")],
    model: Annotated[Path | None, typer.Option("--model", help="default: the shipped")] = None,
    jobs: Annotated[int, typer.Option("--jobs")] = 2,
    codecs: Annotated[str, typer.Option("--codecs")] = ",".join(CODECS),
) -> None:
    """Score the manifest's mono calls stored in each codec; print the comparison."""
    names = [c for c in codecs.split(",") if c]
    unknown = sorted(set(names) - set(CODECS))
    if unknown:
        raise typer.BadParameter(f"unknown codecs {unknown}; expected some of {list(CODECS)}")
    manifests = _copies(manifest, work, names)
    scores = {
        name: evaluate_copy(path, work / name / "eval", model, jobs, ("label", "duration_s"))
        for name, path in manifests.items()
    }
    ref = scores["stored"].set_index("call_id")
    rows = []
    for name, df in scores.items():
        df = df.set_index("call_id").loc[ref.index]
        row: dict[str, object] = {"copy": name, "calls": len(df), **compared(df, ref)}
        size = sum(Path(p).stat().st_size for p in pd.read_csv(manifests[name])["audio_path"])
        row["kbit/s"] = round(8 * size / 1000 / float(df["duration_s"].astype(float).sum()), 1)
        rows.append(row)
    write_table(rows, work / "codecs.json")


if __name__ == "__main__":
    app()
