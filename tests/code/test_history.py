"""Point-in-time caller history and metadata features."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from classifier.errors import InvalidParameterError
from classifier.history import (
    HISTORY_FEATURES,
    METADATA_FEATURES,
    HistoryReplay,
    PastCall,
    history_features,
    metadata_features,
    replay_history,
    resolve_timezone,
)

WITA = timezone(timedelta(hours=8))
T0 = datetime(2025, 6, 2, 14, 0, tzinfo=WITA)


def _stream(seed: int, n: int = 300) -> tuple[list[str], list[datetime], list[float], list[str]]:
    rng = np.random.default_rng(seed)
    callers = [f"+62812000000{k:02d}" for k in range(12)] + ["", "simless:123456789012345"]
    ids = [str(rng.choice(callers)) for _ in range(n)]
    offsets = np.sort(rng.uniform(0, 30 * 86400, n))
    stamps = [T0 + timedelta(seconds=float(s)) for s in offsets]
    durations = list(rng.uniform(2, 200, n))
    labels = [
        str(rng.choice(["emergency", "non_emergency", "prank", "ghost", ""])) for _ in range(n)
    ]
    return ids, stamps, durations, labels


def test_offline_replay_equals_online_lookup_for_the_same_stream() -> None:
    """The manifest replay and a store lookup (all of a caller's rows) agree exactly."""
    ids, stamps, durations, labels = _stream(1)
    offline = replay_history(ids, stamps, durations, labels)
    for i in range(len(ids)):
        if not ids[i]:
            assert offline[i]["hist_calls_total"] == 0
            continue
        # Online: the store holds every row of this caller, later ones included.
        rows = [
            PastCall(started_at=stamps[j], duration_s=durations[j], label=labels[j] or None)
            for j in range(len(ids))
            if ids[j] == ids[i]
        ]
        assert history_features(rows, at=stamps[i]) == offline[i]


def test_only_calls_strictly_before_count_and_outcomes_once_known() -> None:
    past = [
        PastCall(started_at=T0 - timedelta(minutes=30), duration_s=20, label="prank"),
        PastCall(started_at=T0 - timedelta(days=2), duration_s=5, label="ghost"),
        PastCall(started_at=T0 - timedelta(days=20), duration_s=60, label="emergency"),
        PastCall(started_at=T0, duration_s=5, label="prank"),  # same instant: not before
        PastCall(started_at=T0 + timedelta(hours=1), duration_s=5, label="prank"),  # future
        # Disposition recorded after T0: its outcome is not known yet.
        PastCall(
            started_at=T0 - timedelta(minutes=5),
            duration_s=30,
            label="prank",
            label_at=T0 + timedelta(minutes=1),
        ),
    ]
    f = history_features(past, at=T0)
    assert set(f) == set(HISTORY_FEATURES)
    assert f["hist_calls_1h"] == 2
    assert f["hist_calls_24h"] == 2
    assert f["hist_calls_7d"] == 3
    assert f["hist_calls_30d"] == 4
    assert f["hist_prank"] == 1 and f["hist_ghost"] == 1 and f["hist_emergency"] == 1
    assert f["hist_unlabelled"] == 1
    assert f["hist_prank_7d"] == 1
    assert f["hist_hours_since_prev"] == pytest.approx(5 / 60)
    assert f["hist_short_share"] == pytest.approx(1 / 4)


def test_cleared_outcomes_no_longer_weigh() -> None:
    past = [
        PastCall(started_at=T0 - timedelta(days=1), duration_s=9, label="prank", weight=0.0),
        PastCall(started_at=T0 - timedelta(days=2), duration_s=9, label="prank"),
    ]
    f = history_features(past, at=T0)
    assert f["hist_prank"] == 1 and f["hist_calls_total"] == 2


def test_withheld_callers_share_no_history() -> None:
    replay = HistoryReplay()
    replay.add("", PastCall(started_at=T0 - timedelta(hours=1), duration_s=3, label="prank"))
    assert replay.features("", at=T0)["hist_calls_total"] == 0


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(InvalidParameterError, match="no UTC offset"):
        history_features([], at=datetime(2025, 6, 1))
    with pytest.raises(InvalidParameterError, match="same length"):
        replay_history(["a"], [T0, T0], [1.0], [""])


def test_metadata_uses_the_centre_time_zone() -> None:
    utc_call = datetime(2025, 6, 7, 10, 30, tzinfo=UTC)  # Saturday 18:30 in Kendari
    own = metadata_features(caller_id="", started_at=utc_call, duration_s=12.0)
    kendari = metadata_features(
        caller_id="simless:1",
        started_at=utc_call,
        duration_s=0.0,
        timezone=resolve_timezone("Asia/Makassar"),
    )
    assert set(own) == set(METADATA_FEATURES)
    assert own["meta_hour"] == 10 and kendari["meta_hour"] == 18
    assert kendari["meta_weekend"] == 1.0 and kendari["meta_dow"] == 5
    assert own["meta_withheld"] == 1.0 and kendari["meta_simless"] == 1.0
    assert resolve_timezone("+08:00") == WITA
    with pytest.raises(InvalidParameterError, match="unknown time zone"):
        resolve_timezone("Mars/Olympus")
    with pytest.raises(InvalidParameterError, match="expected 0 or more"):
        metadata_features(caller_id="", started_at=T0, duration_s=-1.0)
