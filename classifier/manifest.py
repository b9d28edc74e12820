"""The manifest: the one contract between the simulator, training, evaluation and a
centre's own export. The format is documented in ``docs/data-format.md``.

A manifest is a UTF-8 CSV file with one row per call. Audio paths are relative to the
manifest's folder (or absolute), or URLs fsspec opens (``s3://``, ``gs://``,
``http(s)://``, ``file://``; :mod:`classifier.remote`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import pandas as pd
import soundfile as sf

from classifier.callrow import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    ManifestRow,
    parse_timestamp,
    row_problems,
)
from classifier.errors import InvalidManifestError
from classifier.formats import (
    AUDIO_FORMATS,
    AUDIO_SUBTYPES,
    CALLER_CHANNELS,
    MIN_SAMPLE_RATE,
)


@dataclass(frozen=True)
class ManifestProblem:
    """One problem found in a manifest.

    Attributes
    ----------
    line : int
        Line of the CSV file (the header is line 1, the first call line 2); 0 for a
        problem of the whole file.
    column : str
        The column at fault, or ``""``.
    message : str
        What is wrong, stating what was expected.
    severity : str
        ``"error"`` (the row cannot be used) or ``"warning"`` (usable, but check it).
    call_id : str
        The row's call_id when it has one.
    """

    line: int
    column: str
    message: str
    severity: str = "error"
    call_id: str = ""

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        if self.call_id:
            where += f" (call_id {self.call_id})"
        col = f" [{self.column}]" if self.column else ""
        return f"{self.severity}: {where}{col}: {self.message}"


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.exists():
        raise InvalidManifestError(f"manifest {path} does not exist")
    if path.is_dir():
        raise InvalidManifestError(f"manifest {path} is a folder; expected a CSV file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            rows = [dict(r) for r in reader]
    except UnicodeDecodeError as exc:
        raise InvalidManifestError(f"manifest {path} is not UTF-8 text: {exc.reason}") from exc
    except csv.Error as exc:
        raise InvalidManifestError(f"manifest {path} is not valid CSV: {exc}") from exc
    return header, rows


def resolve_audio_path(manifest_path: Path, audio_path: str) -> Path:
    """Resolve a manifest's local ``audio_path`` against the manifest's folder (a
    ``file://`` URL to its path; other URLs: :func:`audio_source`)."""
    from classifier.remote import local_path

    p = Path(local_path(audio_path) or audio_path)
    return p if p.is_absolute() else manifest_path.parent / p


def audio_source(manifest_path: Path, audio_path: str, *, absolute: bool = True) -> str:
    """Where a manifest's ``audio_path`` is read from: the local path of a path or a
    ``file://`` URL (:func:`resolve_audio_path`; made absolute unless ``absolute`` is
    False), else the URL itself (``s3://``, ``http://``, ..., read by
    :func:`classifier.remote.read_url`)."""
    from classifier.remote import is_url, local_path

    if is_url(audio_path) and local_path(audio_path) is None:
        return audio_path
    local = resolve_audio_path(manifest_path, audio_path)
    return str(local.resolve() if absolute else local)


def _check_audio(source: str, caller_channel: str) -> list[tuple[str, str, str]]:
    """Return (column, message, severity) triples for one audio file or URL."""
    from classifier.remote import AudioSourceError, is_url, read_url, redact_url

    target: str | io.BytesIO
    if is_url(source):
        # The whole file is read (there is no header-only read over every backend):
        # validation of a manifest of URLs costs a download of each.
        try:
            target = io.BytesIO(read_url(source))
        except AudioSourceError as exc:
            return [("audio_path", str(exc), "error")]
        file = redact_url(source)
    else:
        path = Path(source)
        if not path.exists():
            return [("audio_path", f"audio file {path} does not exist", "error")]
        if not path.is_file():
            return [("audio_path", f"audio path {path} is not a file", "error")]
        target = file = str(path)
    try:
        info = sf.info(target)
    except Exception as exc:  # libsndfile raises several types for corrupt files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [("audio_path", f"audio file {file} is unreadable or not audio: {reason}", "error")]
    out: list[tuple[str, str, str]] = []
    if info.format not in AUDIO_FORMATS:
        out.append(
            (
                "audio_path",
                f"audio format {info.format} is not supported; expected one of "
                f"{', '.join(AUDIO_FORMATS)}",
                "error",
            )
        )
    if info.subtype not in AUDIO_SUBTYPES:
        out.append(
            (
                "audio_path",
                f"audio encoding {info.subtype} is not supported; expected one of "
                f"{', '.join(AUDIO_SUBTYPES)}",
                "error",
            )
        )
    if info.samplerate < MIN_SAMPLE_RATE:
        out.append(
            (
                "audio_path",
                f"sample rate is {info.samplerate} Hz; expected at least {MIN_SAMPLE_RATE} Hz",
                "error",
            )
        )
    if info.channels not in (1, 2):
        out.append(("audio_path", f"audio has {info.channels} channels; expected 1 or 2", "error"))
    if caller_channel in ("left", "right") and info.channels != 2:
        out.append(
            (
                "caller_channel",
                f"caller_channel is {caller_channel!r} but the audio has {info.channels} "
                "channel(s); expected a stereo file or caller_channel 'mix'",
                "error",
            )
        )
    if info.frames == 0:
        out.append(("audio_path", "audio file has no samples", "error"))
    return out


def validate_manifest(path: str | Path, *, check_audio: bool = True) -> list[ManifestProblem]:
    """Check a manifest against ``docs/data-format.md`` and report every problem.

    Nothing is dropped silently: each row with a problem is reported with its line.

    Parameters
    ----------
    path : str or Path
        The manifest CSV.
    check_audio : bool, keyword-only
        Also open every audio file's header (existence, format, rate, channels).

    Returns
    -------
    list of ManifestProblem
        Empty when the manifest is valid. Problems with ``severity == "warning"`` do
        not make the manifest invalid.

    Raises
    ------
    InvalidManifestError
        When the file itself cannot be read as CSV.
    """
    path = Path(path)
    header, rows = _read_rows(path)
    problems: list[ManifestProblem] = []
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if not header:
        return [ManifestProblem(0, "", "the file is empty; expected a CSV header line")]
    if missing:
        problems.append(
            ManifestProblem(
                1,
                "",
                f"missing required column(s) {', '.join(missing)}; "
                f"expected {', '.join(REQUIRED_COLUMNS)}",
            )
        )
        return problems
    dupes = [c for c in set(header) if header.count(c) > 1]
    if dupes:
        problems.append(ManifestProblem(1, "", f"duplicate column(s) {', '.join(sorted(dupes))}"))
    if not rows:
        problems.append(ManifestProblem(0, "", "the manifest has no calls (header only)"))
        return problems

    first_line: dict[str, int] = {}
    for i, row in enumerate(rows):
        line = i + 2
        if None in row:  # csv puts surplus fields under the None key
            problems.append(
                ManifestProblem(line, "", f"row has more fields than the header's {len(header)}")
            )
        call_id = (row.get("call_id") or "").strip()

        def add(
            column: str,
            message: str,
            severity: str = "error",
            *,
            _l: int = line,
            _c: str = call_id,
        ) -> None:
            problems.append(ManifestProblem(_l, column, message, severity, _c))

        cells = {c: row.get(c) or "" for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)}
        for column, message in row_problems(ManifestRow, cells):
            add(column, message)
        if call_id in first_line:
            add("call_id", f"duplicate call_id; first seen on line {first_line[call_id]}")
        elif call_id:
            first_line[call_id] = line

        channel = (row.get("caller_channel") or "").strip() or "mix"
        if channel not in CALLER_CHANNELS:
            add(
                "caller_channel",
                f"unknown caller_channel {channel!r}; expected one of {', '.join(CALLER_CHANNELS)}",
            )
            channel = "mix"

        audio_path = (row.get("audio_path") or "").strip()
        if audio_path and check_audio:
            for column, message, severity in _check_audio(
                audio_source(path, audio_path, absolute=False), channel
            ):
                add(column, message, severity)
    return problems


def load_manifest(path: str | Path, *, check_audio: bool = False) -> pd.DataFrame:
    """Read a valid manifest into a DataFrame, in file order.

    Parameters
    ----------
    path : str or Path
        The manifest CSV.
    check_audio : bool, keyword-only
        Also check every audio file's header.

    Returns
    -------
    pandas.DataFrame
        One row per call with every column of the file (metadata columns are kept as
        text), plus ``started_at_utc`` (tz-aware UTC Timestamp), ``utc_offset_s``
        (the call's UTC offset in seconds), ``audio_file`` (absolute path, or the URL
        of a recording not on this machine: :func:`audio_source`) and
        ``caller_channel`` (filled with ``"mix"`` where absent). ``duration_s`` is float;
        ``label`` is ``""`` when unknown.

    Raises
    ------
    InvalidManifestError
        Listing every error when the manifest is not valid.
    """
    path = Path(path)
    errors = [p for p in validate_manifest(path, check_audio=check_audio) if p.severity == "error"]
    if errors:
        shown = "\n".join(f"  {p}" for p in errors[:50])
        more = f"\n  ... and {len(errors) - 50} more" if len(errors) > 50 else ""
        raise InvalidManifestError(f"manifest {path} has {len(errors)} problem(s):\n{shown}{more}")
    _, rows = _read_rows(path)
    frame = pd.DataFrame(rows, dtype=str).fillna("")
    for col in frame.columns:
        frame[col] = frame[col].str.strip()
    if "caller_channel" not in frame.columns:
        frame["caller_channel"] = "mix"
    frame["caller_channel"] = frame["caller_channel"].replace("", "mix")
    stamps = [parse_timestamp(v) for v in frame["started_at"]]
    frame["started_at_utc"] = pd.to_datetime([s.timestamp() for s in stamps], unit="s", utc=True)
    frame["utc_offset_s"] = [int(s.utcoffset().total_seconds()) for s in stamps]  # type: ignore[union-attr]
    frame["duration_s"] = frame["duration_s"].astype(float)
    frame["audio_file"] = [audio_source(path, p) for p in frame["audio_path"]]
    return frame


def write_manifest(
    rows: Iterable[Mapping[str, object]], path: str | Path, *, extra_columns: Sequence[str] = ()
) -> Path:
    """Write calls to a manifest CSV with the standard columns first.

    Parameters
    ----------
    rows : iterable of mappings
        Each with at least the required columns.
    path : str or Path
        Where to write; the parent folder must exist.
    extra_columns : sequence of str, keyword-only
        Further metadata columns, written after the standard ones in this order.

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    columns = [*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, *extra_columns]
    with path.open("w", newline="", encoding="utf-8") as fh:
        write_manifest_rows(fh, rows, columns)
    return path


def write_manifest_rows(
    out: TextIO,
    rows: Iterable[Mapping[str, object]],
    columns: Sequence[str],
    *,
    lineterminator: str = "\r\n",
) -> None:
    """Write the header line and ``rows`` as manifest CSV, in ``columns``.

    Parameters
    ----------
    out : text file
        Opened with ``newline=""`` (or a ``StringIO``).
    rows : iterable of mappings
        A column a row lacks is written empty; a key not in ``columns`` is an error.
    columns : sequence of str
        The header, in order.
    lineterminator : str, keyword-only
        End of each line: the csv module's ``\r\n`` by default.
    """
    writer = csv.DictWriter(
        out, fieldnames=list(columns), extrasaction="raise", lineterminator=lineterminator
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row.get(c, "") for c in columns})
