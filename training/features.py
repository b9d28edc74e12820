"""Features stage: the feature table of a manifest, for training and evaluation.

``callsift features corpus/manifest.csv --out features.parquet`` extracts every call's
features in parallel with the same code the service uses. History features replay the
manifest in time order, so each call sees only the calls before it. A call whose audio
fails is reported with its error and left out; the others are written. ``--cluster``
sends the calls to a Dask scheduler's workers instead (:mod:`training.cluster`); the
table is the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
from joblib import Memory

import classifier
from classifier.audio import CallAudio, load_audio
from classifier.errors import CallsiftError, InvalidParameterError
from classifier.features import (
    FEATURE_NAMES,
    SR,
    audio_features,
    call_features,
)
from classifier.history import replay_history, resolve_timezone
from classifier.remote import (
    check_settings,
    is_url,
    read_url,
    redact_url,
    sha256_hex,
    url_problem,
)
from classifier.streaming import warm_up
from classifier.threads import single_threaded_blas
from training.parallel import CLUSTER_OPTION

# The worker processes import this module to run _run_batch: what only the parent needs
# (pandas, the manifest reader, classifier.model and its scikit-learn, the progress bar)
# is imported where it is used, which takes about a second off each worker's start.
if TYPE_CHECKING:
    import pandas as pd
    from distributed import Client

#: Calls per worker task. Small tasks, longest calls first: the last task to finish is a
#: short one, so no worker idles for long at the end.
_BATCH = 4
#: Less audio than this (seconds, from the manifest) is featured in this process: each
#: worker takes seconds to start (imports, numba's cached kernels, librosa's lazy
#: imports), and two workers were slower than one process up to 46 min of audio and
#: faster from 1.8 h on the 2-core machine (docs/benchmarks.md, "Feature extraction
#: start-up").
WORKERS_FROM_S = 3600.0
#: Seconds of audio (whole calls and their prefixes) per task on a cluster: about 2 s of
#: work at the 0.5 ms per second of audio measured on one core (docs/benchmarks.md,
#: "Feature extraction start-up"), 5-6 s on a loaded machine; Dask's own cost per task
#: is a few milliseconds.
CLUSTER_TASK_AUDIO_S = 4000.0
_ID_COLUMNS = ("call_id", "caller_id", "started_at", "label")
#: Seconds heard of a prefix row; NaN on the row of the whole call.
PREFIX_COLUMN = "prefix_s"
#: The prefixes of the default recipe and of ``callsift features`` / ``train``.
DEFAULT_PREFIXES: tuple[float, ...] = (2.0, 5.0, 10.0, 20.0)
DEFAULT_PREFIXES_TEXT = ",".join(f"{p:g}" for p in DEFAULT_PREFIXES)
PREFIXES_OPTION = typer.Option(
    "--prefixes",
    help=(
        "also feature the first seconds of each call, e.g. 2,5,10,20 (rows with prefix_s); "
        "'none' for whole calls only"
    ),
)


def _code_fingerprint() -> str:
    """Changes whenever the feature code changes, so a cache never serves stale features."""
    root = Path(classifier.__file__).parent
    h = hashlib.sha256()
    for name in (
        "audio.py",
        "constants.py",
        "echo.py",
        "vad",
        "callstats.py",
        "voices.py",
        "features",
    ):
        path = root / name
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            h.update(file.read_bytes())
    return h.hexdigest()[:16]


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Decoded:
    """A call's audio, decoded on first use and kept: the whole call and its prefixes
    come from one decode (a prefix is the first samples of the whole call's), and a call
    whose every row is in the cache is not decoded at all.

    A URL (:mod:`classifier.remote`) is read here, in the process that features the
    call (a cluster's worker), once: for the cache key and for the decode.
    """

    def __init__(self, path: str, caller_channel: str) -> None:
        self.path = path
        self.caller_channel = caller_channel
        self._audio: CallAudio | None = None
        self._bytes: bytes | None = None

    def digest(self) -> str:
        """The cache key of the recording's content."""
        if not is_url(self.path):
            return _file_digest(self.path)
        # A URL's key is the SHA-256 of the bytes read, as a local file's: the same
        # recording shares its entries wherever it is kept, and a file replaced at the
        # same URL gets new ones. Not an ETag: it is no content hash on S3 multipart
        # uploads, differs between stores and web servers may give none. A hit still
        # reads the bytes (kept for the decode on a miss), but neither decodes nor
        # features them, which is most of the work.
        self._bytes = read_url(self.path)
        return sha256_hex(self._bytes)

    def get(self) -> CallAudio:
        if self._audio is None:
            if is_url(self.path):
                data = self._bytes if self._bytes is not None else read_url(self.path)
                self._bytes = None
                try:
                    self._audio = load_audio(data, caller_channel=self.caller_channel)
                except CallsiftError as exc:  # the decoder names "audio bytes": say which
                    raise type(exc)(f"{redact_url(self.path)}: {exc}") from None
            else:
                self._audio = load_audio(self.path, caller_channel=self.caller_channel)
        return self._audio


def _acoustic_keyed(
    digest: str, code: str, caller_channel: str, prefix_s: float | None, source: _Decoded
) -> dict[str, float]:
    # digest, code, channel and prefix are the cache key; source is ignored by the cache.
    audio = source.get()
    return audio_features(audio if prefix_s is None else audio.head(prefix_s))


@cache
def _start_extracting() -> None:
    """Once per process that extracts (each worker; this process when n_jobs is 1)."""
    single_threaded_blas()  # each worker process is one of n_jobs: one BLAS thread each
    # Under warm_up's lock: processes writing the same numba cache at once crashed with a
    # segmentation fault in a fresh checkout (seen in CI-like runs); with the lock the
    # first compiles (only when there is no disk cache yet) while the others wait, then
    # load. Warmed in the workers, not in the parent: with workers it extracts nothing.
    warm_up()


@dataclass(frozen=True)
class _Job:
    index: int
    path: str
    caller_channel: str
    prefixes: tuple[float, ...] = ()


#: A worker's result for one call: its index, its features as (prefix, features) pairs
#: (prefix None: the whole call; empty when the audio failed) and the error.
_Result = tuple[int, list[tuple[float | None, dict[str, float]]], str]


def _run_batch(jobs: Sequence[_Job], cache_dir: str | None, code: str) -> list[_Result]:
    _start_extracting()
    fn = _acoustic_keyed
    if cache_dir:
        fn = Memory(cache_dir, verbose=0).cache(_acoustic_keyed, ignore=["source"])
    out: list[_Result] = []
    for job in jobs:
        try:
            source = _Decoded(job.path, job.caller_channel)
            digest = source.digest() if cache_dir else ""
            whole = fn(digest, code, job.caller_channel, None, source)
            done: list[tuple[float | None, dict[str, float]]] = [(None, whole)]
            n = round(whole["audio_duration_s"] * SR)
            for p in job.prefixes:
                # A prefix as long as the call is the call itself: its whole row covers it.
                if round(p * SR) < n:
                    done.append((p, fn(digest, code, job.caller_channel, p, source)))
            out.append((job.index, done, ""))
        except CallsiftError as exc:
            out.append((job.index, [], str(exc)))
        except OSError as exc:
            shown = redact_url(job.path)
            out.append((job.index, [], f"cannot read {shown}: {exc.strerror or exc}"))
    return out


def parse_prefixes(text: str | Sequence[float] | None) -> tuple[float, ...]:
    """Prefix lengths from ``"2,5,10,20"`` (or a sequence); ``""``, ``"none"`` or None: none.

    Returns
    -------
    tuple of float
        Sorted, distinct lengths in seconds, each at least :data:`MIN_PREFIX_S`.
    """
    from classifier.model import check_prefixes

    if text is None:
        return ()
    if isinstance(text, str):
        parts = [t.strip() for t in text.replace(";", ",").split(",") if t.strip()]
        if [p.lower() for p in parts] in ([], ["none"]):
            return ()
        try:
            values = [float(p) for p in parts]
        except ValueError as exc:
            raise InvalidParameterError(
                f"prefixes {text!r}: expected seconds separated by commas, e.g. 2,5,10,20"
            ) from exc
    else:
        values = [float(v) for v in text]
    return check_prefixes(values)


def extract_features(
    manifest: str | Path,
    *,
    n_jobs: int = 2,
    cache_dir: str | Path | None = None,
    timezone: str | None = None,
    progress: bool = True,
    keep_failed: bool = False,
    prefixes: Sequence[float] = (),
    cluster: str | Client | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features of every call of a manifest.

    Parameters
    ----------
    manifest : str or Path
        A manifest of docs/data-format.md (labelled or not).
    n_jobs : int, keyword-only
        Worker processes for the audio features; a manifest of less than
        :data:`WORKERS_FROM_S` seconds of audio, or of one batch, runs in this process.
    cache_dir : path or None, keyword-only
        A joblib.Memory cache keyed by file content, feature code and prefix.
    timezone : str or None, keyword-only
        The centre's time zone (IANA name or ``+08:00``); None keeps each call's offset.
    progress : bool, keyword-only
        Show a progress bar.
    keep_failed : bool, keyword-only
        Keep calls whose audio failed in the table, with NaN acoustic features and their
        error in an ``audio_error`` column (empty for the others), so they can still be
        scored from metadata and history.
    prefixes : sequence of float, keyword-only
        Seconds heard: each call also gets one row per prefix shorter than the call,
        featured exactly as a live stream is at that moment (the first seconds of the
        recording, ``duration_s`` = seconds heard, the same caller history).
    cluster : str, distributed.Client or None, keyword-only
        A Dask scheduler's address (or a client of one): the calls are featured by its
        workers, in tasks of about :data:`CLUSTER_TASK_AUDIO_S` of audio, instead of
        ``n_jobs`` local processes; the audio and ``cache_dir`` must be on paths every
        worker shares (or the audio at URLs every worker reads, with the credentials in
        the workers' environment). The table is the same.

    Returns
    -------
    features : pandas.DataFrame
        One row per call that succeeded, in manifest order: ``call_id``, ``caller_id``,
        ``started_at``, ``label`` and every name of :data:`FEATURE_NAMES`. With
        ``prefixes``, a ``prefix_s`` column (NaN for the whole call), and each call's
        prefix rows follow its whole row, shortest first.
    failures : pandas.DataFrame
        ``call_id``, ``audio_path`` and ``error`` of every call that failed.
    """
    import pandas as pd

    from classifier.callrow import parse_timestamp
    from classifier.manifest import load_manifest
    from classifier.model import check_prefixes
    from training.parallel import map_batches

    if n_jobs < 1:
        raise InvalidParameterError(f"n_jobs is {n_jobs}; expected 1 or more")
    cuts = check_prefixes(prefixes)
    frame = load_manifest(manifest)
    tz = resolve_timezone(timezone)
    stamps = [parse_timestamp(s) for s in frame["started_at"]]
    history = replay_history(
        list(frame["caller_id"]), stamps, list(frame["duration_s"]), list(frame["label"])
    )
    # A URL that will not be read (scheme not allowed, credentials in it) fails here,
    # before any work: it is never sent to a worker, and its call is reported as one
    # whose audio failed.
    refused = {
        i: why
        for i, path in enumerate(frame["audio_file"])
        if is_url(path) and (why := url_problem(path))
    }
    if any(is_url(path) for path in frame["audio_file"]):
        check_settings()
    jobs = [
        _Job(i, path, ch, cuts)
        for i, (path, ch) in enumerate(
            zip(frame["audio_file"], frame["caller_channel"], strict=True)
        )
        if i not in refused
    ]
    # Longest calls first (the results are put back in manifest order below).
    seconds = list(frame["duration_s"])
    jobs.sort(key=lambda job: -seconds[job.index])
    batches = [jobs[i : i + _BATCH] for i in range(0, len(jobs), _BATCH)]
    if sum(seconds) < WORKERS_FROM_S:
        n_jobs = 1
    n_jobs = min(n_jobs, len(batches)) or 1
    code = _code_fingerprint()
    results: dict[int, list[tuple[float | None, dict[str, float] | None, str]]] = {
        i: [(None, None, why)] for i, why in refused.items()
    }
    if cluster is None or (isinstance(cluster, str) and not cluster.strip()):
        cache = str(cache_dir) if cache_dir else None
        stream = map_batches(
            _run_batch, batches, cache, code, n_jobs=n_jobs, desc="features", progress=progress
        )
        for done in stream:
            _collect(results, done)
    else:
        work = [seconds[j.index] + sum(min(p, seconds[j.index]) for p in cuts) for j in jobs]
        _on_cluster(results, cluster, jobs, work, cache_dir, code, progress=progress)

    rows: list[dict[str, object]] = []
    failures: list[dict[str, str]] = []
    for i in range(len(frame)):
        rec = frame.iloc[i]
        for prefix, acoustic, error in results[i]:
            if acoustic is None:
                failures.append(
                    {
                        "call_id": rec["call_id"],
                        "audio_path": redact_url(rec["audio_path"]),
                        "error": error,
                    }
                )
                if not keep_failed:
                    continue
            # A prefix row is the call as heard so far: its duration is the time heard.
            heard = (
                float(rec["duration_s"])
                if prefix is None or acoustic is None
                else acoustic["audio_duration_s"]
            )
            feats = call_features(
                None,
                caller_id=rec["caller_id"],
                started_at=stamps[i],
                duration_s=heard,
                history=history[i],
                timezone=tz,
                acoustic=acoustic,
                complete=prefix is None,
            )
            extra: dict[str, object] = {}
            if cuts:
                extra[PREFIX_COLUMN] = float("nan") if prefix is None else prefix
            if keep_failed:
                extra["audio_error"] = error if acoustic is None else ""
            rows.append({**{c: rec[c] for c in _ID_COLUMNS}, **extra, **feats})
    columns = [
        *_ID_COLUMNS,
        *([PREFIX_COLUMN] if cuts else []),
        *(["audio_error"] if keep_failed else []),
        *FEATURE_NAMES,
    ]
    table = pd.DataFrame(rows, columns=columns)
    types = dict.fromkeys((*FEATURE_NAMES, *([PREFIX_COLUMN] if cuts else [])), np.float64)
    table = table.astype(types).copy()  # consolidated
    return table, pd.DataFrame(failures, columns=["call_id", "audio_path", "error"])


def _collect(
    results: dict[int, list[tuple[float | None, dict[str, float] | None, str]]],
    done: Sequence[_Result],
) -> None:
    for index, parts, error in done:
        results[index] = [(p, f, "") for p, f in parts] if parts else [(None, None, error)]


def _lost(job: _Job, reason: str) -> _Result:
    return (job.index, [], f"not featured: {reason}")


def _on_cluster(
    results: dict[int, list[tuple[float | None, dict[str, float] | None, str]]],
    cluster: Any,
    jobs: Sequence[_Job],
    work: Sequence[float],
    cache_dir: str | Path | None,
    code: str,
    *,
    progress: bool,
) -> None:
    """The calls featured by a Dask cluster's workers, into ``results``."""
    from training.cluster import cut_by_work, map_on_cluster, require_shared, threads_of, using

    # Workers start elsewhere: every path they get is absolute.
    cache = str(Path(cache_dir).resolve()) if cache_dir else None
    with using(cluster) as client:
        assert client is not None
        # The audio folder, not a file: an unreadable file is a failed call, as locally.
        local = [j for j in jobs if not is_url(j.path)][:1]  # URLs are read by the workers
        require_shared(client, paths=[str(Path(j.path).parent) for j in local], folder=cache)
        batches = cut_by_work(jobs, work, per_task=CLUSTER_TASK_AUDIO_S, threads=threads_of(client))
        for done in map_on_cluster(
            client,
            _run_batch,
            batches,
            cache,
            code,
            desc="features",
            progress=progress,
            on_lost=_lost,
            after_loss=(
                f"the calls featured so far are in {cache}: the same command again does "
                "only the others"
                if cache
                else "nothing was kept (give --cache to resume a stopped run)"
            ),
        ):
            _collect(results, done)


def whole_calls(table: pd.DataFrame) -> np.ndarray:
    """Mask of the rows that stand for whole calls (all rows of a table without prefixes)."""
    if PREFIX_COLUMN not in table:
        return np.ones(len(table), dtype=bool)
    return np.asarray(table[PREFIX_COLUMN].isna().to_numpy(), dtype=bool)


def features_command(
    manifest: Annotated[Path, typer.Argument(help="manifest.csv")],
    out: Annotated[Path, typer.Option("--out", help="output .parquet file")],
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs", help="worker processes (less than 1 h of audio: this process alone)"
        ),
    ] = 2,
    cache: Annotated[
        Path | None, typer.Option("--cache", help="cache folder (joblib.Memory)")
    ] = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", help="centre time zone, e.g. Asia/Makassar")
    ] = None,
    prefixes: Annotated[str, PREFIXES_OPTION] = DEFAULT_PREFIXES_TEXT,
    cluster: Annotated[str | None, CLUSTER_OPTION] = None,
) -> None:
    """Extract the features of every call of a manifest into a parquet file."""
    if out.suffix != ".parquet":
        raise InvalidParameterError(f"--out {out} should end in .parquet")
    cuts = parse_prefixes(prefixes)
    table, failures = extract_features(
        manifest, n_jobs=jobs, cache_dir=cache, timezone=timezone, prefixes=cuts, cluster=cluster
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out, index=False)
    n_whole = int(whole_calls(table).sum())
    typer.echo(
        f"wrote {n_whole} calls x {len(FEATURE_NAMES)} features to {out}"
        + (f" (and {len(table) - n_whole} prefix rows)" if cuts else "")
    )
    if len(failures):
        err_path = out.with_suffix(".errors.csv")
        failures.to_csv(err_path, index=False)
        for _, f in failures.iterrows():
            typer.echo(f"failed: {f['call_id']} ({f['audio_path']}): {f['error']}", err=True)
        typer.echo(f"{len(failures)} call(s) failed; listed in {err_path}", err=True)
        raise typer.Exit(1)
