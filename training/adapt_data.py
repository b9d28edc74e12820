"""Adapt stage, the centre's calls: reading them, checking them, splitting them.

:func:`read_centre` reads a centre's manifests and refuses what cannot be adapted on
(:func:`check_counts`, :func:`check_not_trained_on`); :func:`split_centre` splits the
calls by time and by caller for :mod:`training.adapt`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import classifier
from classifier.errors import InvalidManifestError, InvalidParameterError
from classifier.formats import LABELS
from classifier.history import resolve_timezone
from classifier.manifest import audio_source, load_manifest
from training.split import caller_keys

#: Fewest labelled calls, and fewest of each class below, a centre must give.
MIN_CALLS = 100
MIN_PER_CLASS = 10
#: The classes that need examples: the two flagged and the protected one.
NEEDED: tuple[str, ...] = ("emergency", "prank", "ghost")
#: The latest share of the centre's calls (in time) that validates the candidates.
VALIDATION_SHARE = 0.25

Say = Callable[[str], None]


def call_key(call_id: str, caller_id: str, started_at: str) -> str:
    """Short digest naming one call: its id, number and start (ids repeat across exports)."""
    text = f"{call_id}\x1f{caller_id}\x1f{started_at}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def frame_keys(frame: pd.DataFrame) -> list[str]:
    return [
        call_key(str(a), str(b), str(c))
        for a, b, c in zip(frame["call_id"], frame["caller_id"], frame["started_at"], strict=True)
    ]


def _lines(rows: pd.DataFrame, limit: int = 5) -> str:
    """``file line N (call_id X)`` of a few rows, and how many more."""
    shown = [
        f"{m} line {int(ln)} (call_id {c})"
        for m, ln, c in zip(
            rows["manifest"].head(limit),
            rows["line"].head(limit),
            rows["call_id"].head(limit),
            strict=True,
        )
    ]
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return "; ".join(shown) + more


def _offset(seconds: int) -> str:
    sign = "+" if seconds >= 0 else "-"
    s = abs(int(seconds))
    return f"{sign}{s // 3600:02d}:{s % 3600 // 60:02d}"


# --------------------------------------------------------------------------- input


def read_centre(manifests: Sequence[Path], *, timezone: str | None, warn: Say) -> pd.DataFrame:
    """Every call of the centre's manifests (unlabelled ones included), checked.

    Unknown labels and duplicate call ids within a manifest are refused by the manifest
    reader; a call id in two manifests is refused here. Unlabelled calls and started_at
    offsets that differ from ``timezone`` (or from each other) are warned about.

    Returns
    -------
    DataFrame
        The manifest columns plus ``manifest`` (its path), ``line`` (CSV line) and
        ``source`` (the manifest's position).
    """
    if not manifests:
        raise InvalidParameterError("no centre manifest given; expected one or more manifest.csv")
    tz = resolve_timezone(timezone)
    frames = []
    for k, path in enumerate(manifests):
        frame = load_manifest(path)
        frame = frame.assign(manifest=str(path), line=np.arange(len(frame)) + 2, source=str(k))
        frames.append(frame)
        _warn_offsets(frame, path, tz, timezone, warn)
        unlabelled = int((frame["label"] == "").sum())
        if unlabelled:
            warn(
                f"{path}: {unlabelled} of {len(frame)} calls have no label and are skipped "
                "(they still count in their callers' history)"
            )
    centre = pd.concat(frames, ignore_index=True)
    dup = centre[centre["call_id"].duplicated(keep=False)]
    if len(dup):
        ids = sorted(set(dup["call_id"]))
        raise InvalidManifestError(
            f"duplicate call ids across the centre's manifests: {len(ids)} id(s) in more than "
            f"one manifest ({_lines(dup)}); each call must be given once: merge the exports "
            "or remove the repeated calls"
        )
    return centre


def _warn_offsets(
    frame: pd.DataFrame, path: Path, tz: Any, timezone: str | None, warn: Say
) -> None:
    offsets = frame["utc_offset_s"].astype(int)
    if tz is not None:
        want = np.asarray(
            [int(t.tz_convert(tz).utcoffset().total_seconds()) for t in frame["started_at_utc"]]
        )
        other = frame[offsets.to_numpy() != want]
        if len(other):
            seen = ", ".join(sorted({_offset(o) for o in other["utc_offset_s"]}))
            warn(
                f"{path}: {len(other)} of {len(frame)} calls have a UTC offset ({seen}) other "
                f"than --timezone {timezone} ({_offset(int(want[0]))}): {_lines(other)}; their "
                f"hour and weekday are read in {timezone}: check the export's time zone"
            )
        return
    counts = offsets.value_counts()
    if len(counts) > 1:
        main = int(np.asarray(counts.index)[0])
        other = frame[offsets != main]
        seen = ", ".join(
            f"{_offset(int(o))} on {int(n)}"
            for o, n in zip(np.asarray(counts.index), counts.to_numpy(), strict=True)
        )
        warn(
            f"{path}: started_at offsets are mixed ({seen} calls): {_lines(other)}; each "
            "call's hour is read at its own offset: give --timezone with the centre's time "
            "zone to read them all in it"
        )


def check_counts(labels: pd.Series, *, where: str) -> None:
    """Refuse fewer than :data:`MIN_CALLS` labelled calls or :data:`MIN_PER_CLASS` of a
    needed class, saying how many there are of each and what is needed."""
    labels = labels[labels != ""]
    counts = {c: int((labels == c).sum()) for c in LABELS}
    short = [f"{c} {counts[c]}" for c in NEEDED if counts[c] < MIN_PER_CLASS]
    if len(labels) >= MIN_CALLS and not short:
        return
    have = ", ".join(f"{c} {n}" for c, n in counts.items())
    lack = []
    if len(labels) < MIN_CALLS:
        lack.append(f"{MIN_CALLS - len(labels)} more labelled calls")
    lack += [f"{MIN_PER_CLASS - counts[c]} more {c}" for c in NEEDED if counts[c] < MIN_PER_CLASS]
    raise InvalidParameterError(
        f"{where} hold {len(labels)} labelled calls ({have}); adapting needs at least "
        f"{MIN_CALLS} labelled calls with at least {MIN_PER_CLASS} each of "
        f"{', '.join(NEEDED)}: label {', '.join(lack)}"
    )


def _project_root() -> Path:
    return Path(classifier.__file__).resolve().parent.parent


def _base_manifest(path: str) -> Path | None:
    """A training manifest named on a base card, found here (relative names as given to
    ``callsift train``: from the working folder or the project root)."""
    p = Path(path)
    for candidate in [p] if p.is_absolute() else [Path.cwd() / p, _project_root() / p]:
        if candidate.is_file():
            return candidate.resolve()
    return None


def check_not_trained_on(centre: pd.DataFrame, card: dict[str, Any], *, warn: Say) -> None:
    """Refuse centre calls the base model learnt from, naming them.

    Compared: the call keys an adapted base lists on its card, and the calls (id, number
    and start, or the audio file) of every training manifest its card names that is on
    this machine.
    """
    data = card.get("training_data") or {}
    hit = np.zeros(len(centre), dtype=bool)
    keys = np.asarray(frame_keys(centre), dtype=object)
    listed = set(data.get("call_keys") or [])
    if listed:
        hit |= np.isin(keys, list(listed))
    missing = []
    audio = centre["audio_file"].astype(str).to_numpy()
    for name in data.get("manifests") or []:
        path = _base_manifest(str(name))
        if path is None:
            missing.append(str(name))
            continue
        try:
            rows = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (OSError, ValueError, pd.errors.ParserError):
            missing.append(str(name))
            continue
        if not {"call_id", "caller_id", "started_at", "audio_path"} <= set(rows.columns):
            continue
        hit |= np.isin(keys, frame_keys(rows))
        files = {audio_source(path, p) for p in rows["audio_path"] if p}  # as audio_file
        hit |= np.isin(audio, list(files))
    if hit.any():
        rows = centre[hit]
        raise InvalidParameterError(
            f"{int(hit.sum())} of the centre's {len(centre)} calls were used to train the base "
            f"model {card.get('version', '?')} (same call id, number and start, or the same "
            f"audio file): {_lines(rows)}; a model is never adapted or checked on calls it "
            "learnt from: remove them, or adapt another base"
        )
    if missing:
        warn(
            f"the base model's training manifests {', '.join(missing[:3])}"
            f"{' ...' if len(missing) > 3 else ''} are not on this machine: the centre's "
            "calls could not be checked against them"
        )


# --------------------------------------------------------------------------- split


def split_centre(calls: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Adapting and validation calls: by time and by caller.

    The validation calls are those at or after the time quantile ``1 -``
    :data:`VALIDATION_SHARE` (the latest quarter); the adapting calls are the earlier
    calls of callers with no call in the validation quarter (a withheld call is its own
    caller). Returns positions of both, earliest first, and a description.
    """
    when = pd.to_datetime(calls["started_at"], utc=True, format="ISO8601")
    ns = when.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    cut_ns = float(np.quantile(ns, 1.0 - VALIDATION_SHARE))
    late = ns >= cut_ns
    cut = pd.Timestamp(round(cut_ns), unit="ns", tz="UTC")
    keys = caller_keys(calls)
    seen_late = set(keys[late].tolist())
    shared = np.isin(keys, list(seen_late)) & ~late
    order = np.argsort(when.to_numpy(), kind="stable")
    train = np.asarray([i for i in order if not late[i] and not shared[i]], dtype=np.int64)
    val = np.asarray([i for i in order if late[i]], dtype=np.int64)
    description = {
        "method": (
            "by time (validation: the calls at or after the time quantile "
            f"{1 - VALIDATION_SHARE:g}) and by caller (earlier calls of a caller of the "
            "validation calls are left out; a withheld call is its own caller)"
        ),
        "time_cut": cut.isoformat(),
        "train_calls": int(train.size),
        "test_calls": int(val.size),
        "left_out_calls": int(shared.sum()),
        "callers_in_both": len(set(keys[train].tolist()) & seen_late),
        "train_period": _period(when.iloc[train]),
        "test_period": _period(when.iloc[val]),
    }
    return train, val, description


def _period(when: pd.Series) -> str:
    return "none" if when.empty else f"{when.min().isoformat()} to {when.max().isoformat()}"


def check_sides(calls: pd.DataFrame, train: np.ndarray, val: np.ndarray) -> None:
    labels = calls["label"].astype(str).to_numpy()
    t = {c: int((labels[train] == c).sum()) for c in LABELS}
    v = {c: int((labels[val] == c).sum()) for c in LABELS}
    lacking = [f"no {c} call on the adapting side" for c in NEEDED if t[c] == 0]
    if v["emergency"] == 0:
        lacking.append("no emergency call in the validation quarter")
    if v["prank"] + v["ghost"] == 0:
        lacking.append("no prank or ghost call in the validation quarter")
    if lacking:
        raise InvalidParameterError(
            f"the split of the centre's {len(calls)} labelled calls leaves {'; '.join(lacking)} "
            f"(adapting side {t}, validation quarter {v}; callers of the validation quarter "
            "have no call on the adapting side): label calls spread over a longer time"
        )


def rows_of(table: pd.DataFrame, calls: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """The rows (whole calls and their prefix rows) of the calls at ``positions``,
    in the order of ``positions``."""
    key = table["source"].astype(str) + "\x1f" + table["call_id"].astype(str)
    chosen = (calls["source"].astype(str) + "\x1f" + calls["call_id"].astype(str)).iloc[positions]
    rank = pd.Series(np.arange(len(chosen)), index=chosen.to_numpy())
    at = key.map(rank)
    rows = table[at.notna().to_numpy()].assign(_rank=at[at.notna()].to_numpy())
    return rows.sort_values("_rank", kind="stable").drop(columns="_rank").reset_index(drop=True)
