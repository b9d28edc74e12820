"""Simulate stage: a labelled 112 corpus that anyone can regenerate from a seed.

``callsift simulate --preset kendari-2025 --calls 500 --seed 7 --out corpus/`` writes
``corpus/manifest.csv`` and ``corpus/audio/``. The same seed gives the same corpus,
whatever the number of worker processes.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import soundfile as sf
import typer
from joblib import Parallel, delayed
from scipy.signal import resample_poly
from tqdm import tqdm

from classifier.errors import InvalidParameterError
from classifier.manifest import load_manifest, write_manifest
from training.simulator import sounds, voice
from training.simulator.population import CallPlan, plan_calls
from training.simulator.presets import PRESETS, get_preset
from training.simulator.render import RealClips, mix_recording, pick_file_format, render_call

EXTRA_COLUMNS: tuple[str, ...] = (
    "persona",
    "scenario",
    "topic",
    "background",
    "caller_kind",
    "language",
    "hangup_mid_sentence",
    "shift_id",
    "caller_voice",
    "taker_voice",
    "codec",
    "channel_severity",
    "file_format",
    "real_speech",
    "real_noise",
)
_BATCH = 8


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that determines a corpus."""

    preset: str
    n_calls: int
    seed: int
    speech_dir: Path | None = None
    noise_dir: Path | None = None


# Real clips are loaded once per worker process, not pickled with every batch.
_CLIP_CACHE: dict[tuple[str | None, str | None], RealClips] = {}


def _clips(speech_dir: Path | None, noise_dir: Path | None) -> RealClips:
    key = (str(speech_dir) if speech_dir else None, str(noise_dir) if noise_dir else None)
    if key not in _CLIP_CACHE:
        _CLIP_CACHE[key] = RealClips(
            speech=sounds.load_folder(speech_dir) if speech_dir else [],
            noise=sounds.load_folder(noise_dir) if noise_dir else [],
        )
    return _CLIP_CACHE[key]


def _shift_voice(seed: int, shift_id: str, language: str) -> voice.Voice:
    """One call-taker voice per shift, stable for a seed."""
    rng = np.random.default_rng([seed, zlib.crc32(shift_id.encode()), 7])
    kind = "adult_female" if rng.random() < 0.6 else "adult_male"
    person = voice.random_voice(rng, kind=kind, language="id")
    # The same person answers English-speaking callers in English.
    return dataclasses.replace(person, language=language)


def _render_one(plan: CallPlan, index: int, cfg: SimulationConfig, out_dir: Path) -> dict[str, str]:
    rng = np.random.default_rng([cfg.seed, index, 1])
    clips = _clips(cfg.speech_dir, cfg.noise_dir)
    taker_voice = _shift_voice(cfg.seed, plan.shift_id, plan.language)
    rendered = render_call(plan, rng=rng, taker_voice=taker_voice, clips=clips)
    audio = mix_recording(rendered, stereo=plan.stereo, caller_channel=plan.caller_channel, rng=rng)
    fmt_name, fmt, subtype, rate = pick_file_format(rng)
    if rate != 8000:
        audio = resample_poly(audio, rate // 8000, 1, axis=0).astype(np.float32)
        audio = np.clip(audio, -1.0, 1.0)
    ext = "flac" if fmt == "FLAC" else "wav"
    rel = Path("audio") / f"{plan.call_id}.{ext}"
    sf.write(str(out_dir / rel), audio, rate, format=fmt, subtype=subtype)
    row: dict[str, str] = {
        "call_id": plan.call_id,
        "caller_id": plan.caller_id,
        "started_at": plan.started_at.isoformat(),
        "duration_s": f"{audio.shape[0] / rate:.2f}",
        "audio_path": rel.as_posix(),
        "label": plan.label,
        "caller_channel": plan.caller_channel,
        "persona": plan.persona,
        "caller_kind": plan.caller_kind,
        "language": plan.language,
        "hangup_mid_sentence": str(plan.hangup_mid_sentence).lower(),
        "shift_id": plan.shift_id,
        "file_format": fmt_name,
    }
    row.update(rendered.meta)
    return row


def _render_batch(
    items: Sequence[tuple[int, CallPlan]], cfg: SimulationConfig, out_dir: Path
) -> list[dict[str, str]]:
    return [_render_one(plan, i, cfg, out_dir) for i, plan in items]


def _batches(plans: list[CallPlan]) -> Iterator[list[tuple[int, CallPlan]]]:
    for start in range(0, len(plans), _BATCH):
        yield list(enumerate(plans[start : start + _BATCH], start=start))


def _check_out_dir(out: Path) -> None:
    if out.exists():
        if not out.is_dir():
            raise InvalidParameterError(f"output {out} exists and is not a folder")
        if any(out.iterdir()):
            raise InvalidParameterError(
                f"output folder {out} is not empty; expected a new or empty folder "
                "(nothing was overwritten)"
            )
    parent = out.parent if not out.exists() else out
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InvalidParameterError(f"output folder {out} is not writable")


def simulate_corpus(
    out: str | Path,
    *,
    preset: str,
    n_calls: int,
    seed: int,
    speech_dir: str | Path | None = None,
    noise_dir: str | Path | None = None,
    n_jobs: int = 2,
    progress: bool = True,
) -> Path:
    """Simulate a labelled corpus and write ``out/manifest.csv`` and ``out/audio/``.

    Parameters
    ----------
    out : str or Path
        A new or empty folder. The corpus is written beside it and moved in place at
        the end, so a failed run leaves nothing half-written.
    preset : str, keyword-only
        One of :data:`training.simulator.presets.PRESETS`.
    n_calls : int, keyword-only
        Number of calls, at least 1.
    seed : int, keyword-only
        The corpus is a pure function of (preset, n_calls, seed, real folders).
    speech_dir, noise_dir : path or None, keyword-only
        Folders of real recordings to mix in (for example ``../shared/data/speech``).
    n_jobs : int, keyword-only
        Worker processes.
    progress : bool, keyword-only
        Show a progress bar.

    Returns
    -------
    Path
        The manifest's path.

    Raises
    ------
    InvalidParameterError
        Unknown preset, ``n_calls < 1``, an unusable output folder, or a real-audio
        folder without readable audio.
    """
    if isinstance(n_calls, bool) or not isinstance(n_calls, int | np.integer) or n_calls < 1:
        raise InvalidParameterError(f"--calls is {n_calls}; expected a whole number of 1 or more")
    if n_jobs < 1:
        raise InvalidParameterError(f"n_jobs is {n_jobs}; expected 1 or more")
    spec = get_preset(preset)
    out = Path(out)
    _check_out_dir(out)
    cfg = SimulationConfig(
        preset=spec.name,
        n_calls=int(n_calls),
        seed=int(seed),
        speech_dir=Path(speech_dir).resolve() if speech_dir else None,
        noise_dir=Path(noise_dir).resolve() if noise_dir else None,
    )
    for label, folder in (("--speech-dir", cfg.speech_dir), ("--noise-dir", cfg.noise_dir)):
        if folder is not None and not folder.is_dir():
            raise InvalidParameterError(f"{label} {folder} is not a folder")
    _clips(cfg.speech_dir, cfg.noise_dir)  # fail early on a folder without audio

    plans = plan_calls(spec, n_calls=cfg.n_calls, seed=cfg.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        (work / "audio").mkdir()
        rows: list[dict[str, str]] = []
        bar = tqdm(
            total=len(plans), desc=f"simulate {spec.name}", unit="call", disable=not progress
        )
        with bar:
            if n_jobs == 1:
                for batch in _batches(plans):
                    rows.extend(_render_batch(batch, cfg, work))
                    bar.update(len(batch))
            else:
                parallel = Parallel(n_jobs=n_jobs, return_as="generator")
                for result in parallel(
                    delayed(_render_batch)(b, cfg, work) for b in _batches(plans)
                ):
                    rows.extend(result)
                    bar.update(len(result))
        write_manifest(rows, work / "manifest.csv", extra_columns=EXTRA_COLUMNS)
        if out.exists():
            out.rmdir()  # checked empty above
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out / "manifest.csv"


def simulate_command(
    out: Annotated[Path, typer.Option("--out", help="new or empty output folder")],
    preset: Annotated[
        str, typer.Option("--preset", help=f"one of: {', '.join(sorted(PRESETS))}")
    ] = "kendari-2025",
    calls: Annotated[int, typer.Option("--calls", help="number of calls")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="random seed")] = 0,
    speech_dir: Annotated[
        Path | None, typer.Option("--speech-dir", help="real speech recordings to mix in")
    ] = None,
    noise_dir: Annotated[
        Path | None, typer.Option("--noise-dir", help="real noise recordings to mix in")
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", help="worker processes")] = 2,
) -> None:
    """Simulate a labelled corpus of 112 calls: manifest.csv and audio/."""
    from training.data import summary_tables  # the summary is rich output, not needed otherwise

    manifest = simulate_corpus(
        out,
        preset=preset,
        n_calls=calls,
        seed=seed,
        speech_dir=speech_dir,
        noise_dir=noise_dir,
        n_jobs=jobs,
    )
    from rich.console import Console

    console = Console()
    for table in summary_tables(load_manifest(manifest)):
        console.print(table)
    console.print(f"wrote {manifest}")
