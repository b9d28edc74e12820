"""Simulate stage: a labelled 112 corpus that anyone can regenerate from a seed.

``callsift simulate --preset kendari-2025 --calls 500 --seed 7 --out corpus/`` writes
``corpus/manifest.csv`` and ``corpus/audio/``. The same seed gives the same corpus,
whatever the number of worker processes, and on a Dask cluster (``--cluster``), whose
workers send each call's file back for this process to write.
"""

from __future__ import annotations

import ctypes
import dataclasses
import io
import math
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import numpy as np
import soundfile as sf
import typer
from scipy.signal import resample_poly

from classifier.audio import wav_of_samples
from classifier.errors import InvalidParameterError
from classifier.threads import one_blas_thread
from training.parallel import CLUSTER_OPTION, map_batches
from training.simulator import channel as ch
from training.simulator import sounds, voice
from training.simulator.population import CallPlan, plan_calls
from training.simulator.presets import PRESETS, get_preset
from training.simulator.realbank import ROLES, RealBank
from training.simulator.render import RealClips, mix_recording, pick_file_format, render_call

if TYPE_CHECKING:
    from distributed import Client

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
_BATCH = 4  # calls per worker task: small, so the workers finish together
#: Seconds of planned audio per task on a cluster: about 2 s of work at the 9 one-minute
#: calls per second of one process (docs/benchmarks.md, "Simulator throughput").
CLUSTER_TASK_AUDIO_S = 1000.0


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that determines a corpus."""

    preset: str
    n_calls: int
    seed: int
    speech_dir: Path | None = None
    noise_dir: Path | None = None
    real_dir: Path | None = None


# Real clips are loaded once per worker process, not pickled with every batch.
_CLIP_CACHE: dict[tuple[str | None, ...], RealClips] = {}


def _clips(
    speech_dir: Path | None, noise_dir: Path | None, real_dir: Path | None = None
) -> RealClips:
    key = tuple(str(p) if p else None for p in (speech_dir, noise_dir, real_dir))
    if key not in _CLIP_CACHE:
        clips = RealClips(
            speech=sounds.load_folder(speech_dir) if speech_dir else [],
            noise=sounds.load_folder(noise_dir) if noise_dir else [],
        )
        if real_dir is not None:
            bank = RealBank.load(real_dir)
            clips = dataclasses.replace(
                clips,
                speech=clips.speech or bank.get("speech"),
                **{role: bank.get(role) for role in ROLES if role != "speech"},
            )
        _CLIP_CACHE[key] = clips
    return _CLIP_CACHE[key]


def _shift_voice(seed: int, shift_id: str, language: str) -> voice.Voice:
    """One call-taker voice per shift, stable for a seed."""
    rng = np.random.default_rng([seed, zlib.crc32(shift_id.encode()), 7])
    kind = "adult_female" if rng.random() < 0.6 else "adult_male"
    person = voice.random_voice(rng, kind=kind, language="id")
    # The same person answers English-speaking callers in English.
    return dataclasses.replace(person, language=language)


@dataclass(frozen=True)
class _Rendered:
    row: dict[str, str]
    rel: Path
    audio: np.ndarray
    rate: int
    fmt: str
    subtype: str


def _render_one(plan: CallPlan, index: int, cfg: SimulationConfig, out_dir: Path) -> dict[str, str]:
    r = _render(plan, index, cfg)
    _write_audio(out_dir / r.rel, r.audio, r.rate, fmt=r.fmt, subtype=r.subtype)
    return r.row


def _render(plan: CallPlan, index: int, cfg: SimulationConfig) -> _Rendered:
    rng = np.random.default_rng([cfg.seed, index, 1])
    clips = _clips(cfg.speech_dir, cfg.noise_dir, cfg.real_dir)
    taker_voice = _shift_voice(cfg.seed, plan.shift_id, plan.language)
    rendered = render_call(plan, rng=rng, taker_voice=taker_voice, clips=clips)
    audio = mix_recording(rendered, stereo=plan.stereo, caller_channel=plan.caller_channel, rng=rng)
    fmt_name, fmt, subtype, rate = pick_file_format(rng)
    if rate != 8000:
        audio = _upsample_2x(audio) if rate == 16000 else _resample(audio, rate)
    ext = "flac" if fmt == "FLAC" else "wav"
    rel = Path("audio") / f"{plan.call_id}.{ext}"
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
    return _Rendered(row, rel, audio, rate, fmt, subtype)


def _upsample_2x(x: np.ndarray) -> np.ndarray:
    """8 -> 16 kHz with libsoxr's high-quality filter (flat to 3.6 kHz, images more
    than 70 dB down), several times faster than a polyphase FIR in numpy; float32,
    shape (2 n,) or (2 n, channels)."""
    import soxr  # a librosa dependency; only 16 kHz files need it

    y = soxr.resample(np.ascontiguousarray(x, dtype=np.float32), 8000, 16000, quality="HQ")
    return np.clip(np.asarray(y, dtype=np.float32), -1.0, 1.0)


def _resample(x: np.ndarray, rate: int) -> np.ndarray:
    g = math.gcd(rate, 8000)
    y = resample_poly(x, rate // g, 8000 // g, axis=0).astype(np.float32)
    return np.clip(y, -1.0, 1.0)


def _to_pcm16(x: np.ndarray) -> np.ndarray:
    """Round full-scale +-1 float audio to 16-bit PCM (read back as value / 32768)."""
    a = np.asarray(x, dtype=np.float32) * np.float32(32768.0)
    np.clip(a, np.float32(-32768.0), np.float32(32767.0), out=a)
    return np.rint(a, out=a).astype(np.int16)


def _write_audio(
    path: Path | IO[bytes], audio: np.ndarray, rate: int, *, fmt: str, subtype: str
) -> None:
    """Write float audio of shape (n,) or (n, channels) in the stored encoding, to a file
    or a binary stream (the same bytes).

    G.711 WAV files are encoded here with the reference companding (libsndfile's own
    float to mu-law path is several times slower and maps faint noise to code zero);
    the header is the one libsndfile writes. Everything else goes through soundfile
    as 16-bit PCM.
    """
    if fmt == "WAV" and subtype in ("ULAW", "ALAW"):
        codes = ch.g711_encode(audio, law="mulaw" if subtype == "ULAW" else "alaw")
        channels = 1 if codes.ndim == 1 else codes.shape[1]
        blob = wav_of_samples(
            codes.tobytes(), encoding=subtype, sample_rate=rate, channels=channels
        )
        if isinstance(path, Path):
            path.write_bytes(blob)
        else:
            path.write(blob)
        return
    # FLAC is lossless at any level; the fastest level costs a little file size only.
    level = {"compression_level": 0.0} if fmt == "FLAC" else {}
    target = str(path) if isinstance(path, Path) else path
    sf.write(target, _to_pcm16(audio), rate, format=fmt, subtype=subtype, **level)


_MALLOC_TUNED: list[bool] = []


def _keep_freed_memory() -> None:
    """Let glibc reuse freed multi-megabyte buffers instead of unmapping them.

    A call allocates ~45 MB of short-lived arrays. By default glibc maps big blocks
    fresh and returns them on free, so every call page-faults them back in, which cost
    a fifth of the run time. Keeping up to 64 MB of freed heap (the working set of one
    call) and serving blocks up to 32 MB from it removes most of those faults. Done
    once per worker process; a no-op where glibc's ``mallopt`` is missing.
    """
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED.append(True)
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_top_pad, m_mmap_threshold = -2, -3  # malloc.h
    mallopt(m_mmap_threshold, 32 * 1024 * 1024)
    mallopt(m_top_pad, 64 * 1024 * 1024)


def _render_batch(
    items: Sequence[tuple[int, CallPlan]], cfg: SimulationConfig, out_dir: Path
) -> list[dict[str, str]]:
    _keep_freed_memory()
    # The products are small (resampling banks, spectral smoothing): BLAS threads only
    # add hand-off and spin-waiting against the other worker processes.
    with one_blas_thread():
        return [_render_one(plan, i, cfg, out_dir) for i, plan in items]


def _encode_batch(
    items: Sequence[tuple[int, CallPlan]], cfg: SimulationConfig
) -> list[tuple[int, dict[str, str], str, bytes]]:
    """A cluster task: each call's manifest row and file bytes, for the client to write
    (a task that runs twice, after its worker died, writes nothing twice)."""
    _keep_freed_memory()
    out = []
    with one_blas_thread():
        for i, plan in items:
            r = _render(plan, i, cfg)
            buf = io.BytesIO()
            _write_audio(buf, r.audio, r.rate, fmt=r.fmt, subtype=r.subtype)
            out.append((i, r.row, r.rel.as_posix(), buf.getvalue()))
    return out


def _render_on_cluster(
    cluster: Any, plans: list[CallPlan], cfg: SimulationConfig, work: Path, *, progress: bool
) -> list[dict[str, str]]:
    """The corpus rendered by a Dask cluster's workers; files written here, into ``work``."""
    from training.cluster import cut_by_work, map_on_cluster, require_shared, threads_of, using

    with using(cluster) as client:
        assert client is not None
        real = [p for p in (cfg.speech_dir, cfg.noise_dir, cfg.real_dir) if p is not None]
        require_shared(client, paths=real)
        items = list(enumerate(plans))
        batches = cut_by_work(
            items,
            [p.duration_s for p in plans],
            per_task=CLUSTER_TASK_AUDIO_S,
            threads=threads_of(client),
        )
        rows: dict[int, dict[str, str]] = {}
        for done in map_on_cluster(
            client,
            _encode_batch,
            batches,
            cfg,
            desc=f"simulate {cfg.preset}",
            progress=progress,
            after_loss="nothing was written (the corpus is written whole or not at all)",
        ):
            for i, row, rel, data in done:
                (work / rel).write_bytes(data)
                rows[i] = row
    return [rows[i] for i in range(len(plans))]


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
    real_dir: str | Path | None = None,
    n_jobs: int = 2,
    progress: bool = True,
    cluster: str | Client | None = None,
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
    real_dir : path or None, keyword-only
        The shared real recordings (``../shared/data``): each file mixed in by its role
        (:mod:`training.simulator.realbank`), never ``speech-nc/`` nor the hold-out list.
    n_jobs : int, keyword-only
        Worker processes.
    progress : bool, keyword-only
        Show a progress bar.
    cluster : str, distributed.Client or None, keyword-only
        A Dask scheduler's address (or a client of one): its workers render the calls
        (the real-audio folders on paths they share) and send each file back to be
        written here, instead of ``n_jobs`` local processes. The corpus is the same.

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
        real_dir=Path(real_dir).resolve() if real_dir else None,
    )
    for label, folder in (
        ("--speech-dir", cfg.speech_dir),
        ("--noise-dir", cfg.noise_dir),
        ("--real-dir", cfg.real_dir),
    ):
        if folder is not None and not folder.is_dir():
            raise InvalidParameterError(f"{label} {folder} is not a folder")
    _clips(cfg.speech_dir, cfg.noise_dir, cfg.real_dir)  # fail early on a folder without audio

    # pandas (via the manifest module) is imported here, not at module level, so that
    # worker processes that only render calls start faster.
    from classifier.manifest import write_manifest

    plans = plan_calls(spec, n_calls=cfg.n_calls, seed=cfg.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        (work / "audio").mkdir()
        rows: list[dict[str, str]] = []
        if cluster is None or (isinstance(cluster, str) and not cluster.strip()):
            for result in map_batches(
                _render_batch,
                list(_batches(plans)),
                cfg,
                work,
                n_jobs=n_jobs,
                desc=f"simulate {spec.name}",
                progress=progress,
            ):
                rows.extend(result)
        else:
            rows = _render_on_cluster(cluster, plans, cfg, work, progress=progress)
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
    real_dir: Annotated[
        Path | None,
        typer.Option(
            "--real-dir",
            help="the shared real recordings (speech/, noise/): each mixed in by its role",
        ),
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", help="worker processes")] = 2,
    cluster: Annotated[str | None, CLUSTER_OPTION] = None,
) -> None:
    """Simulate a labelled corpus of 112 calls: manifest.csv and audio/."""
    from classifier.manifest import load_manifest
    from training.data import summary_tables  # the summary is rich output, not needed otherwise

    manifest = simulate_corpus(
        out,
        preset=preset,
        n_calls=calls,
        seed=seed,
        speech_dir=speech_dir,
        noise_dir=noise_dir,
        real_dir=real_dir,
        n_jobs=jobs,
        cluster=cluster,
    )
    from rich.console import Console

    console = Console()
    for table in summary_tables(load_manifest(manifest)):
        console.print(table)
    console.print(f"wrote {manifest}")
