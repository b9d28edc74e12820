"""Drift seen in the service: the calls scored lately against the model's reference.

:class:`DriftMonitor` reads the calls of the last ``CALLSIFT_DRIFT_WINDOW_DAYS`` days that
the serving model scored from audio (their flags, scores and watched features, stored
with each score), compares them with the reference in the model's card
(:func:`classifier.drift.compare`) and adds the flag rates per local day. The result is
kept ``CALLSIFT_DRIFT_CACHE_S`` seconds and shared by ``GET /v1/model`` (its ``drift``)
and ``/metrics`` (:class:`DriftCollector`). Every worker reads the same database, so
every worker gives the same answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

import numpy as np
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from api.service import LoadedModel
from api.store import Store, StoreUnavailableError
from classifier.drift import FLAG_KINDS, MONITORED_FEATURES, SCORES, compare, flag_kind, thresholds
from classifier.errors import CallsiftError

logger = logging.getLogger("callsift.api.drift")

#: Statuses of a drift report, for the one-hot gauge.
STATUSES: tuple[str, ...] = ("ok", "warning", "insufficient_data", "no_reference", "unavailable")
#: Newest calls of the window read at most (a week of a large centre is far fewer).
MAX_CALLS = 50_000


class DriftMonitor:
    """Drift reports of the serving model, computed at most every ``cache_s`` seconds.

    Parameters
    ----------
    window_days : int
        Calls that started in the last this many days are compared.
    min_calls : int
        Fewer are not judged.
    cache_s : float
        A report is reused this long (per model version).
    tz : tzinfo or None
        The centre's time zone for the days; None uses each call's own UTC offset.
    """

    def __init__(
        self, *, window_days: int, min_calls: int, cache_s: float, tz: tzinfo | None = None
    ) -> None:
        self.window_days = window_days
        self.min_calls = min_calls
        self.cache_s = cache_s
        self.tz = tz
        self._lock = threading.Lock()
        self._cached: tuple[str, float, dict[str, Any]] | None = None

    def report(self, store: Store, loaded: LoadedModel) -> dict[str, Any]:
        """The drift of the calls ``loaded`` scored in the window (the ``drift`` of
        ``GET /v1/model``). A database that cannot be read gives status ``unavailable``,
        never an error."""
        with self._lock:  # one computation at a time; the others take its result
            cached = self._cached
            if (
                cached is not None
                and cached[0] == loaded.version
                and time.monotonic() - cached[1] < self.cache_s
            ):
                return cached[2]
            result = self._compute(store, loaded)
            if result["status"] != "unavailable":
                self._cached = (loaded.version, time.monotonic(), result)
            return result

    def _compute(self, store: Store, loaded: LoadedModel) -> dict[str, Any]:
        until = datetime.now(UTC)
        since = until - timedelta(days=self.window_days)
        base: dict[str, Any] = {
            "window_days": self.window_days,
            "since": since,
            "until": until,
            "model_version": loaded.version,
        }
        try:
            rows = store.drift_calls(
                model_version=loaded.version, since=since, until=until, limit=MAX_CALLS
            )
        except StoreUnavailableError as exc:
            logger.warning("drift not computed: %s", exc)
            return {
                **base,
                **_empty(self.min_calls),
                "status": "unavailable",
                "detail": "database unavailable: drift not computed; retry later",
            }
        features = {
            name: np.array(
                [_value((r["features"] or {}).get(name)) for r in rows], dtype=np.float64
            )
            for name in MONITORED_FEATURES
        }
        # Calls stored without their features (scored before this was kept) are left out
        # of the feature groups, not counted as missing values.
        with_features = np.array([r["features"] is not None for r in rows], dtype=bool)
        scores = {s: np.array([_value(r[s]) for r in rows], dtype=np.float64) for s in SCORES}
        flags = [r["flag"] for r in rows]
        reference = loaded.model.card.get("reference")
        try:
            result = compare(
                reference,
                features={k: v[with_features] for k, v in features.items()},
                scores=scores,
                flags=flags,
                min_calls=self.min_calls,
            )
        except CallsiftError as exc:
            return {**base, **_empty(self.min_calls), "status": "no_reference", "detail": str(exc)}
        detail = None
        if result["status"] == "no_reference":
            detail = (
                "the model card has no drift reference: models trained from now on carry "
                "one; add one to this model with `callsift model reference MODEL_DIR "
                "MANIFEST...`"
            )
        elif result["status"] == "insufficient_data":
            detail = (
                f"{len(rows)} calls scored by this model in the last {self.window_days} days; "
                f"drift is judged from {self.min_calls}"
            )
        elif with_features.sum() < len(rows):
            detail = (
                f"{len(rows) - int(with_features.sum())} of the {len(rows)} calls were stored "
                "without their features: the feature groups are judged on the others"
            )
        return {**base, **result, "detail": detail, "days": self._days(rows)}

    def _days(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        per: dict[str, dict[str, int]] = {}
        for r in rows:
            started: datetime = r["started_at"]
            tz = self.tz or timezone(timedelta(seconds=int(r["utc_offset_s"] or 0)))
            day = per.setdefault(
                started.astimezone(tz).date().isoformat(),
                {"calls": 0, **dict.fromkeys(FLAG_KINDS, 0)},
            )
            day["calls"] += 1
            kind = flag_kind(r["flag"])
            if kind is not None:
                day[kind] += 1
        return [
            {
                "day": d,
                "calls": c["calls"],
                **{k: round(c[k] / c["calls"], 6) for k in FLAG_KINDS},
            }
            for d, c in sorted(per.items())
        ]


def _value(v: Any) -> float:
    return float(v) if isinstance(v, int | float) else float("nan")


def _empty(min_calls: int) -> dict[str, Any]:
    return {
        "warning": None,
        "calls": 0,
        "min_calls": min_calls,
        "groups": [],
        "scores": [],
        "flag_rates": [],
        "thresholds": thresholds(min_calls),
        "days": [],
    }


class DriftCollector(Collector):
    """The drift report as Prometheus gauges, computed at scrape time (through the
    monitor's cache). Nothing is exported while no model serves; a failure is logged and
    leaves the other metrics alone."""

    def __init__(
        self, monitor: DriftMonitor, source: Callable[[], tuple[Store, LoadedModel | None]]
    ):
        self.monitor = monitor
        self.source = source

    def describe(self) -> list[Metric]:
        # Declared empty: the registry must not compute a report when this is registered.
        return []

    def collect(self) -> Iterator[Metric]:
        store, loaded = self.source()
        if loaded is None:
            return
        try:
            report = self.monitor.report(store, loaded)
        except Exception:  # the scrape must go on without the drift
            logger.exception("drift metrics not computed")
            return
        yield from drift_metrics(report)


def drift_metrics(report: dict[str, Any]) -> Iterator[Metric]:
    """The gauges of one drift report."""
    status = GaugeMetricFamily(
        "callsift_drift_status",
        "Drift of the serving model's recent calls: 1 for the current status.",
        labels=["status"],
    )
    for s in STATUSES:
        status.add_metric([s], 1.0 if report["status"] == s else 0.0)
    yield status
    calls = GaugeMetricFamily(
        "callsift_drift_calls",
        "Calls scored from audio by the serving model in the drift window.",
    )
    calls.add_metric([], float(report["calls"]))
    yield calls
    psi = GaugeMetricFamily(
        "callsift_drift_psi",
        "Population stability index of a feature group (its largest feature's) or score "
        "against the model's training reference, over the drift window (0.1 watch, 0.25 shift).",
        labels=["group"],
    )
    for g in report["groups"]:
        if g["psi"] is not None:
            psi.add_metric([g["group"]], float(g["psi"]))
    for s in report["scores"]:
        if s["psi"] is not None:
            psi.add_metric([s["score"]], float(s["psi"]))
    yield psi
    rate = GaugeMetricFamily(
        "callsift_flag_rate",
        "Share of the calls scored from audio by the serving model that were flagged, per "
        'local day of the drift window and over the whole window (day="window").',
        labels=["flag", "day"],
    )
    reference = GaugeMetricFamily(
        "callsift_flag_rate_reference",
        "Flag rate of the serving model on its held-out calls (the drift reference).",
        labels=["flag"],
    )
    for r in report["flag_rates"]:
        if r["rate"] is not None:
            rate.add_metric([r["flag"], "window"], float(r["rate"]))
        reference.add_metric([r["flag"]], float(r["reference"]))
    for d in report["days"]:
        for kind in FLAG_KINDS:
            rate.add_metric([kind, d["day"]], float(d[kind]))
    yield rate
    yield reference
