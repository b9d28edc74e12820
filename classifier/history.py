"""Caller history, point in time, and call metadata features.

For a call at time ``t`` only the same caller's calls that started strictly before ``t``
count, and an earlier call's outcome counts only once it was known (its disposition
time). One pure function, :func:`history_features`, serves both the offline replay of
a manifest (:class:`HistoryReplay`) and the service's store, so training and serving
see the same numbers.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from classifier.errors import InvalidParameterError
from classifier.formats import LABELS

OUTCOMES: tuple[str, ...] = LABELS
SHORT_CALL_S = 10.0
NO_HISTORY_HOURS = 24.0 * 90  # "time since previous call" when there is none

HISTORY_FEATURES: tuple[str, ...] = (
    "hist_calls_1h",
    "hist_calls_24h",
    "hist_calls_7d",
    "hist_calls_30d",
    "hist_calls_total",
    "hist_prank",
    "hist_ghost",
    "hist_emergency",
    "hist_non_emergency",
    "hist_prank_7d",
    "hist_ghost_7d",
    "hist_unlabelled",
    "hist_hours_since_prev",
    "hist_short_share",
    "hist_has_history",
)
METADATA_FEATURES: tuple[str, ...] = (
    "meta_hour",
    "meta_hour_sin",
    "meta_hour_cos",
    "meta_dow",
    "meta_weekend",
    "meta_log_duration",
    "meta_withheld",
    "meta_simless",
)


@dataclass(frozen=True)
class PastCall:
    """One earlier call of a caller, as the history sees it.

    Attributes
    ----------
    started_at : datetime
        Timezone-aware start time.
    duration_s : float
        Call duration.
    label : str or None
        The disposition, once known.
    label_at : datetime or None
        When the disposition became known; None means "at the end of the call".
    weight : float
        1.0 normally; 0.0 for outcomes a supervisor cleared (redress), which then no
        longer count against the number.
    """

    started_at: datetime
    duration_s: float
    label: str | None = None
    label_at: datetime | None = None
    weight: float = 1.0

    def known_at(self) -> datetime:
        return self.label_at or self.started_at + timedelta(seconds=max(0.0, self.duration_s))


def _aware(t: datetime, name: str) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise InvalidParameterError(f"{name} {t.isoformat()} has no UTC offset; expected aware")
    return t


def history_features(past: Iterable[PastCall], *, at: datetime) -> dict[str, float]:
    """Features of a caller's history as known at time ``at``.

    Parameters
    ----------
    past : iterable of PastCall
        The caller's calls, in any order; calls starting at or after ``at`` are ignored.
    at : datetime, keyword-only
        The new call's start time (timezone-aware).

    Returns
    -------
    dict of str to float
        One value per name of :data:`HISTORY_FEATURES`.
    """
    at = _aware(at, "at")
    windows = {"1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}
    counts = dict.fromkeys(windows, 0)
    outcome = dict.fromkeys(OUTCOMES, 0.0)
    recent = {"prank": 0.0, "ghost": 0.0}
    total = 0
    short = 0
    unlabelled = 0
    last: datetime | None = None
    for call in past:
        start = _aware(call.started_at, "started_at")
        if start >= at:
            continue
        total += 1
        age = (at - start).total_seconds()
        for key, span in windows.items():
            if age <= span:
                counts[key] += 1
        if call.duration_s < SHORT_CALL_S:
            short += 1
        if last is None or start > last:
            last = start
        if call.label in OUTCOMES and call.known_at() <= at:
            outcome[call.label] += call.weight
            if call.label in recent and age <= windows["7d"]:
                recent[call.label] += call.weight
        else:
            unlabelled += 1
    hours = (
        NO_HISTORY_HOURS
        if last is None
        else min(NO_HISTORY_HOURS, (at - last).total_seconds() / 3600.0)
    )
    return {
        "hist_calls_1h": float(counts["1h"]),
        "hist_calls_24h": float(counts["24h"]),
        "hist_calls_7d": float(counts["7d"]),
        "hist_calls_30d": float(counts["30d"]),
        "hist_calls_total": float(total),
        "hist_prank": outcome["prank"],
        "hist_ghost": outcome["ghost"],
        "hist_emergency": outcome["emergency"],
        "hist_non_emergency": outcome["non_emergency"],
        "hist_prank_7d": recent["prank"],
        "hist_ghost_7d": recent["ghost"],
        "hist_unlabelled": float(unlabelled),
        "hist_hours_since_prev": float(hours),
        "hist_short_share": float(short / total) if total else 0.0,
        "hist_has_history": 1.0 if total else 0.0,
    }


def empty_history() -> dict[str, float]:
    """History features of a caller with no known past (withheld, or history unavailable)."""
    return history_features((), at=datetime(2000, 1, 1, tzinfo=ZoneInfo("UTC")))


class HistoryReplay:
    """Replay a stream of calls in time order, giving each call its point-in-time history.

    Withheld callers (empty ``caller_id``) never share a history.

    Examples
    --------
    >>> replay = HistoryReplay()
    >>> feats = replay.features("+6281234567890", at=t)   # before adding the call
    >>> replay.add("+6281234567890", PastCall(started_at=t, duration_s=12.0, label="prank"))
    """

    def __init__(self) -> None:
        self._calls: dict[str, list[PastCall]] = defaultdict(list)

    def features(self, caller_id: str, *, at: datetime) -> dict[str, float]:
        if not caller_id:
            return empty_history()
        return history_features(self._calls.get(caller_id, ()), at=at)

    def add(self, caller_id: str, call: PastCall) -> None:
        if caller_id:
            self._calls[caller_id].append(call)


def replay_history(
    caller_ids: Sequence[str],
    started_at: Sequence[datetime],
    durations_s: Sequence[float],
    labels: Sequence[str | None],
) -> list[dict[str, float]]:
    """Point-in-time history features for every call of a manifest, in input order.

    Calls are replayed in time order (ties keep input order); each call sees only the
    calls that started before it, with outcomes known by the end of each earlier call.

    Returns
    -------
    list of dict
        One dict per input call.
    """
    n = len(caller_ids)
    if not (len(started_at) == len(durations_s) == len(labels) == n):
        raise InvalidParameterError(
            "caller_ids, started_at, durations_s and labels must have the same length; got "
            f"{n}, {len(started_at)}, {len(durations_s)}, {len(labels)}"
        )
    order = sorted(range(n), key=lambda i: (_aware(started_at[i], "started_at"), i))
    replay = HistoryReplay()
    out: list[dict[str, float]] = [{} for _ in range(n)]
    for i in order:
        out[i] = replay.features(caller_ids[i], at=started_at[i])
        label = labels[i] or None
        replay.add(
            caller_ids[i],
            PastCall(started_at=started_at[i], duration_s=float(durations_s[i]), label=label),
        )
    return out


def resolve_timezone(name: str | None) -> tzinfo | None:
    """The centre's time zone from an IANA name (``Asia/Makassar``) or ``+08:00``.

    ``None`` keeps each call's own UTC offset.
    """
    if name is None or name == "":
        return None
    text = name.strip()
    if text[:1] in "+-" and ":" in text:
        from datetime import timezone

        sign = 1 if text[0] == "+" else -1
        hh, mm = text[1:].split(":", 1)
        try:
            return timezone(sign * timedelta(hours=int(hh), minutes=int(mm)))
        except ValueError as exc:
            raise InvalidParameterError(f"time zone {name!r} is not a valid offset") from exc
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidParameterError(
            f"unknown time zone {name!r}; expected an IANA name such as Asia/Makassar or +08:00"
        ) from exc


def metadata_features(
    *, caller_id: str, started_at: datetime, duration_s: float, timezone: tzinfo | None = None
) -> dict[str, float]:
    """Hour, weekday, duration and number-type features of one call.

    Parameters
    ----------
    caller_id : str, keyword-only
        E.164, ``simless:<id>`` or empty when withheld.
    started_at : datetime, keyword-only
        Timezone-aware start.
    duration_s : float, keyword-only
        Call duration (0 before the call is over; the pre-answer score uses 0).
    timezone : tzinfo or None, keyword-only
        The centre's time zone; None keeps the call's own offset.

    Returns
    -------
    dict of str to float
        One value per name of :data:`METADATA_FEATURES`.
    """
    local = _aware(started_at, "started_at")
    if timezone is not None:
        local = local.astimezone(timezone)
    hour = local.hour + local.minute / 60.0
    if not math.isfinite(duration_s) or duration_s < 0:
        raise InvalidParameterError(f"duration_s is {duration_s}; expected 0 or more seconds")
    return {
        "meta_hour": float(local.hour),
        "meta_hour_sin": math.sin(2 * math.pi * hour / 24.0),
        "meta_hour_cos": math.cos(2 * math.pi * hour / 24.0),
        "meta_dow": float(local.weekday()),
        "meta_weekend": 1.0 if local.weekday() >= 5 else 0.0,
        "meta_log_duration": math.log1p(duration_s),
        "meta_withheld": 1.0 if caller_id == "" else 0.0,
        "meta_simless": 1.0 if caller_id.startswith("simless:") else 0.0,
    }
