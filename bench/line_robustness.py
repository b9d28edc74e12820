"""Line impairments: does the model score the same calls alike through the faults real
telephone lines and recorders add (echo, lost packets, mains hum, clipping, a quiet
recording)?

    .venv/bin/python bench/real_checkset.py build --out /tmp/rc15 --calls 480 --seed 15
    .venv/bin/python bench/line_robustness.py --manifest /tmp/rc15/manifest.csv --work /tmp/lines

Every call of the manifest is decoded as stored, impaired, and written as 16-bit PCM WAV
at its own rate and channels (so the "stored" copy is the same PCM without the fault);
``callsift evaluate`` scores every copy with the same model. The table compares, per
impairment, the ranking (ROC-AUC), the shares flagged at the shipped thresholds and how
far each call's probabilities moved from the unimpaired copy. Impairments are seeded
per call, so a rerun writes the same files.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import soundfile as sf
import typer
from tqdm import tqdm

# Run as a script from the repository: its root, for the shared bench helpers.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.codec_robustness import compared, evaluate_copy, write_table

Impair = Callable[[np.ndarray, int, int, np.random.Generator], np.ndarray]


def _none(x: np.ndarray, sr: int, caller: int, rng: np.random.Generator) -> np.ndarray:
    return x


def _echo(x: np.ndarray, sr: int, caller: int, rng: np.random.Generator) -> np.ndarray:
    """Residual line echo: the call-taker's voice back in the caller's channel, 40-120 ms
    late and 20-30 dB down (what an echo canceller leaves), through a 2 ms path that
    decays (a handset's). Stereo calls only; a mono call already holds both sides."""
    if x.shape[1] != 2:
        return x
    delay = int(rng.uniform(0.04, 0.12) * sr)
    k = max(2, int(0.002 * sr))
    path = rng.standard_normal(k) * np.exp(-np.arange(k) / (k / 4))
    path *= 10 ** (-rng.uniform(20, 30) / 20) / np.sqrt(path @ path)
    out = x.copy()
    taker = np.convolve(x[:, 1 - caller], path)[: len(x) - delay]
    out[delay:, caller] += taker
    return out


def _packet_loss(x: np.ndarray, sr: int, caller: int, rng: np.random.Generator) -> np.ndarray:
    """5% of 20 ms packets lost, in bursts of 1-3, played as silence (no concealment)."""
    out = x.copy()
    hop = int(0.02 * sr)
    n = len(x) // hop
    k = 0
    while k < n:
        if rng.random() < 0.05 / 2:  # bursts average 2 packets
            burst = int(rng.integers(1, 4))
            out[k * hop : (k + burst) * hop] = 0.0
            k += burst
        k += 1
    return out


def _hum(x: np.ndarray, sr: int, caller: int, rng: np.random.Generator) -> np.ndarray:
    """Mains hum of an analog line or recorder: 50 Hz and its odd harmonics, -35 dB full
    scale in all (Indonesia's grid is 50 Hz)."""
    t = np.arange(len(x)) / sr
    phase = rng.uniform(0, 2 * np.pi)
    hum = sum(np.sin(2 * np.pi * 50 * h * t + phase * h) / h for h in (1, 3, 5, 7))
    hum *= 10 ** (-35 / 20) / np.max(np.abs(hum))
    return x + hum[:, None]


def _clipped(x: np.ndarray, sr: int, caller: int, rng: np.random.Generator) -> np.ndarray:
    """An overdriven input: +12 dB, then clipped at full scale."""
    return np.clip(x * 10 ** (12 / 20), -1.0, 1.0)


def _quiet(x: np.ndarray, sr: int, caller: int, rng: np.random.Generator) -> np.ndarray:
    """A recorder set 20 dB too low."""
    return x * 10 ** (-20 / 20)


IMPAIRMENTS: dict[str, Impair] = {
    "stored": _none,
    "echo": _echo,
    "packet_loss": _packet_loss,
    "hum": _hum,
    "clipped": _clipped,
    "quiet": _quiet,
}

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])


def _copies(manifest: Path, work: Path, names: list[str]) -> dict[str, Path]:
    """Write every impairment's copy of the manifest's calls; return name -> manifest."""
    m = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    base = manifest.parent
    out: dict[str, Path] = {}
    for name in names:
        folder = work / name
        target = folder / "manifest.csv"
        out[name] = target
        if target.is_file():
            continue
        (folder / "audio").mkdir(parents=True, exist_ok=True)
        rows = m.copy()
        paths = []
        for rel, call_id, side in tqdm(
            zip(m["audio_path"], m["call_id"], m["caller_channel"], strict=True),
            total=len(m),
            desc=name,
        ):
            x, sr = sf.read(base / rel, dtype="float64", always_2d=True)
            caller = 1 if side == "right" else 0
            rng = np.random.default_rng(zlib.crc32(f"{name}/{call_id}".encode()))
            y = IMPAIRMENTS[name](x, sr, caller, rng)
            dest = folder / "audio" / f"{call_id}.wav"
            sf.write(dest, np.clip(y, -1.0, 1.0), sr, subtype="PCM_16")
            paths.append(str(dest))
        rows["audio_path"] = paths
        rows.to_csv(target, index=False)
    return out


@app.command()
def main(
    manifest: Annotated[Path, typer.Option("--manifest", help="a labelled manifest")],
    work: Annotated[Path, typer.Option("--work", help="folder for the copies and scores")],
    model: Annotated[Path | None, typer.Option("--model", help="default: the shipped")] = None,
    jobs: Annotated[int, typer.Option("--jobs")] = 2,
    impairments: Annotated[str, typer.Option("--impairments")] = ",".join(IMPAIRMENTS),
) -> None:
    """Score the manifest's calls through each impairment; print the comparison."""
    names = [n for n in impairments.split(",") if n]
    unknown = sorted(set(names) - set(IMPAIRMENTS))
    if unknown:
        raise typer.BadParameter(
            f"unknown impairments {unknown}; expected some of {list(IMPAIRMENTS)}"
        )
    names = ["stored", *(n for n in names if n != "stored")]
    manifests = _copies(manifest, work, names)
    scores = {
        n: evaluate_copy(p, work / n / "eval", model, jobs, ("label", "channels"))
        for n, p in manifests.items()
    }
    ref = scores["stored"].set_index("call_id")
    # Echo is added to stereo calls only: beside it, the stored stereo calls.
    views = [(n, "all") for n in scores]
    if "echo" in scores:
        views.insert(views.index(("echo", "all")), ("stored", "stereo"))
        views[views.index(("echo", "all"))] = ("echo", "stereo")
    rows = []
    for name, subset in views:
        df = scores[name].set_index("call_id").loc[ref.index]
        part = df if subset == "all" else df[df["channels"] == subset]
        base = ref.loc[part.index]
        label = name if subset == "all" else f"{name}, {subset} calls"
        row: dict[str, object] = {"copy": label, "calls": len(part), **compared(part, base)}
        rows.append(row)
    write_table(rows, work / "lines.json")


if __name__ == "__main__":
    app()
