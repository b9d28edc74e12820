"""Features stage: the feature table of a manifest, for training and evaluation.

``callsift features corpus/manifest.csv --out features.parquet`` extracts every call's
features in parallel with the same code the service uses. History features replay the
manifest in time order, so each call sees only the calls before it. A call whose audio
fails is reported with its error and left out; the others are written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from joblib import Memory

import classifier
from classifier.audio import CallAudio, load_audio
from classifier.errors import CallsiftError, InvalidParameterError
from classifier.features import FEATURE_NAMES, SR, audio_features, call_features
from classifier.history import replay_history, resolve_timezone
from classifier.manifest import load_manifest, parse_timestamp
from training.parallel import map_batches

_BATCH = 16
_ID_COLUMNS = ("call_id", "caller_id", "started_at", "label")


def _code_fingerprint() -> str:
    """Changes whenever the feature code changes, so a cache never serves stale features."""
    root = Path(classifier.__file__).parent
    h = hashlib.sha256()
    for name in ("audio.py", "vad.py", "features.py"):
        h.update((root / name).read_bytes())
    return h.hexdigest()[:16]


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _acoustic_keyed(digest: str, code: str, caller_channel: str, path: str) -> dict[str, float]:
    # digest and code are the cache key; path is ignored by the cache.
    return audio_features(load_audio(path, caller_channel=caller_channel))


@dataclass(frozen=True)
class _Job:
    index: int
    path: str
    caller_channel: str


def _run_batch(
    jobs: Sequence[_Job], cache_dir: str | None, code: str
) -> list[tuple[int, dict[str, float] | None, str]]:
    fn = _acoustic_keyed
    if cache_dir:
        fn = Memory(cache_dir, verbose=0).cache(_acoustic_keyed, ignore=["path"])
    out: list[tuple[int, dict[str, float] | None, str]] = []
    for job in jobs:
        try:
            digest = _file_digest(job.path) if cache_dir else ""
            out.append((job.index, fn(digest, code, job.caller_channel, job.path), ""))
        except CallsiftError as exc:
            out.append((job.index, None, str(exc)))
        except OSError as exc:
            out.append((job.index, None, f"cannot read {job.path}: {exc.strerror or exc}"))
    return out


def warm_numba_cache() -> None:
    """Compute the features of a synthetic call in this process, before any worker.

    librosa compiles its numba kernels on first use and caches them on disk; two fresh
    worker processes compiling and caching the same kernel at once crashed with a
    segmentation fault in a fresh checkout (seen in CI-like runs). Compiling once here
    leaves the workers a finished cache to load.
    """
    # Faint noise with voiced bursts (a 150 Hz harmonic tone), so pitch tracking runs too.
    t = np.arange(3 * SR) / SR
    voiced = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 8))
    bursts = ((t % 1.0) > 0.4) & ((t % 1.0) < 0.8)
    noise = np.random.default_rng(0).standard_normal(t.size)
    y = (0.2 * voiced * bursts + 0.002 * noise).astype(np.float32)
    audio_features(
        CallAudio(
            caller=y,
            other=None,
            sr=SR,
            original_sr=SR,
            original_channels=1,
            original_format="WAV",
            original_subtype="FLOAT",
            duration_s=3.0,
        )
    )


def extract_features(
    manifest: str | Path,
    *,
    n_jobs: int = 2,
    cache_dir: str | Path | None = None,
    timezone: str | None = None,
    progress: bool = True,
    keep_failed: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features of every call of a manifest.

    Parameters
    ----------
    manifest : str or Path
        A manifest of docs/data-format.md (labelled or not).
    n_jobs : int, keyword-only
        Worker processes for the audio features.
    cache_dir : path or None, keyword-only
        A joblib.Memory cache keyed by file content and feature code.
    timezone : str or None, keyword-only
        The centre's time zone (IANA name or ``+08:00``); None keeps each call's offset.
    progress : bool, keyword-only
        Show a progress bar.
    keep_failed : bool, keyword-only
        Keep calls whose audio failed in the table, with NaN acoustic features and their
        error in an ``audio_error`` column (empty for the others), so they can still be
        scored from metadata and history.

    Returns
    -------
    features : pandas.DataFrame
        One row per call that succeeded, in manifest order: ``call_id``, ``caller_id``,
        ``started_at``, ``label`` and every name of :data:`FEATURE_NAMES`.
    failures : pandas.DataFrame
        ``call_id``, ``audio_path`` and ``error`` of every call that failed.
    """
    if n_jobs < 1:
        raise InvalidParameterError(f"n_jobs is {n_jobs}; expected 1 or more")
    frame = load_manifest(manifest)
    tz = resolve_timezone(timezone)
    stamps = [parse_timestamp(s) for s in frame["started_at"]]
    history = replay_history(
        list(frame["caller_id"]), stamps, list(frame["duration_s"]), list(frame["label"])
    )
    jobs = [
        _Job(i, path, ch)
        for i, (path, ch) in enumerate(
            zip(frame["audio_file"], frame["caller_channel"], strict=True)
        )
    ]
    batches = [jobs[i : i + _BATCH] for i in range(0, len(jobs), _BATCH)]
    if n_jobs > 1:
        warm_numba_cache()
    code = _code_fingerprint()
    cache = str(cache_dir) if cache_dir else None
    results: dict[int, tuple[dict[str, float] | None, str]] = {}
    for done in map_batches(
        _run_batch, batches, cache, code, n_jobs=n_jobs, desc="features", progress=progress
    ):
        for index, feats, error in done:
            results[index] = (feats, error)

    rows: list[dict[str, object]] = []
    failures: list[dict[str, str]] = []
    for i in range(len(frame)):
        acoustic, error = results[i]
        rec = frame.iloc[i]
        if acoustic is None:
            failures.append(
                {"call_id": rec["call_id"], "audio_path": rec["audio_path"], "error": error}
            )
            if not keep_failed:
                continue
        feats = call_features(
            None,
            caller_id=rec["caller_id"],
            started_at=stamps[i],
            duration_s=float(rec["duration_s"]),
            history=history[i],
            timezone=tz,
            acoustic=acoustic,
        )
        extra = {"audio_error": error if acoustic is None else ""} if keep_failed else {}
        rows.append({**{c: rec[c] for c in _ID_COLUMNS}, **extra, **feats})
    columns = [*_ID_COLUMNS, *(["audio_error"] if keep_failed else []), *FEATURE_NAMES]
    table = pd.DataFrame(rows, columns=columns)
    table = table.astype(dict.fromkeys(FEATURE_NAMES, np.float64)).copy()  # consolidated
    return table, pd.DataFrame(failures, columns=["call_id", "audio_path", "error"])


def features_command(
    manifest: Annotated[Path, typer.Argument(help="manifest.csv")],
    out: Annotated[Path, typer.Option("--out", help="output .parquet file")],
    jobs: Annotated[int, typer.Option("--jobs", help="worker processes")] = 2,
    cache: Annotated[
        Path | None, typer.Option("--cache", help="cache folder (joblib.Memory)")
    ] = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", help="centre time zone, e.g. Asia/Makassar")
    ] = None,
) -> None:
    """Extract the features of every call of a manifest into a parquet file."""
    if out.suffix != ".parquet":
        raise InvalidParameterError(f"--out {out} should end in .parquet")
    table, failures = extract_features(manifest, n_jobs=jobs, cache_dir=cache, timezone=timezone)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out, index=False)
    typer.echo(f"wrote {len(table)} calls x {len(FEATURE_NAMES)} features to {out}")
    if len(failures):
        err_path = out.with_suffix(".errors.csv")
        failures.to_csv(err_path, index=False)
        for _, f in failures.iterrows():
            typer.echo(f"failed: {f['call_id']} ({f['audio_path']}): {f['error']}", err=True)
        typer.echo(f"{len(failures)} call(s) failed; listed in {err_path}", err=True)
        raise typer.Exit(1)
