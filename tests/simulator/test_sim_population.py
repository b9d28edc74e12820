"""Tests of the simulated caller population: presets, label counts and realism rules."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from datetime import date, timedelta
from itertools import pairwise
from typing import Any

import numpy as np
import pytest

from classifier.errors import InvalidParameterError
from training.simulator.population import (
    CALLER_KINDS,
    LABELS,
    PERSONAS,
    SCENARIOS,
    CallPlan,
    plan_calls,
)
from training.simulator.presets import PRESETS, Preset, get_preset

E164 = re.compile(r"^\+628\d{8,11}$")
SIMLESS = re.compile(r"^simless:\d{15}$")


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def kendari() -> list[CallPlan]:
    return plan_calls("kendari-2025", n_calls=5000, seed=7)


@pytest.fixture(scope="module")
def balanced() -> list[CallPlan]:
    return plan_calls("balanced", n_calls=4000, seed=11)


@pytest.fixture(scope="module")
def balanced_long() -> list[CallPlan]:
    # 40 days: enough weekends and pranksters for weekly patterns to show through.
    return plan_calls("balanced", n_calls=12_000, seed=13)


def by_caller(plans: list[CallPlan]) -> dict[str, list[CallPlan]]:
    """Calls of each known number, in time order (withheld calls left out)."""
    out: dict[str, list[CallPlan]] = defaultdict(list)
    for p in plans:
        if p.caller_id:
            out[p.caller_id].append(p)
    return out


def local_hours(plans: list[CallPlan]) -> np.ndarray:
    return np.array([p.started_at.hour for p in plans])


def durations(plans: list[CallPlan]) -> np.ndarray:
    return np.array([p.duration_s for p in plans])


def gaps_s(calls: list[CallPlan]) -> np.ndarray:
    t = np.array([c.started_at.timestamp() for c in calls])
    return np.diff(t)


def sos_bursts(plans: list[CallPlan]) -> list[list[CallPlan]]:
    """SOS calls of each handset, cut into bursts wherever the gap exceeds 30 min."""
    bursts: list[list[CallPlan]] = []
    for calls in by_caller([p for p in plans if p.scenario == "sos_burst"]).values():
        current = [calls[0]]
        for prev, call in pairwise(calls):
            if (call.started_at - prev.started_at).total_seconds() > 1800:
                bursts.append(current)
                current = []
            current.append(call)
        bursts.append(current)
    return bursts


# ---------------------------------------------------------------------------- presets


def test_presets_follow_the_published_arithmetic() -> None:
    k = get_preset("kendari-2025").label_shares
    assert k["prank"] == pytest.approx(1 / 6) and k["ghost"] == pytest.approx(1 / 6)
    assert k["emergency"] == pytest.approx(99 / 3783, rel=1e-3)
    assert k["non_emergency"] == pytest.approx(2423 / 3783, rel=1e-3)
    assert get_preset("kendari-2025").utc_offset_hours == 8
    assert get_preset("kendari-2025").calls_per_day == pytest.approx(285, abs=1)
    assert get_preset("purworejo").calls_per_day == pytest.approx(7.7, abs=0.05)
    assert get_preset("jakarta-2024").label_shares["prank"] == pytest.approx(0.23)
    assert set(get_preset("balanced").label_shares.values()) == {0.25}
    for preset in PRESETS.values():
        assert math.fsum(preset.label_shares.values()) == pytest.approx(1.0)
        assert tuple(preset.label_shares) == LABELS
        assert preset.source and preset.description
        with pytest.raises(TypeError):
            preset.label_shares["prank"] = 0.5  # type: ignore[index]


def test_get_preset_unknown_lists_valid_names() -> None:
    with pytest.raises(InvalidParameterError, match="unknown preset 'x'") as info:
        get_preset("x")
    for name in PRESETS:
        assert name in str(info.value)
    with pytest.raises(InvalidParameterError, match="unknown preset"):
        plan_calls("nowhere", n_calls=10, seed=0)


def test_preset_validation() -> None:
    good: dict[str, Any] = dict(
        name="t",
        description="d",
        source="s",
        label_shares={"emergency": 0.5, "non_emergency": 0.5, "prank": 0.0, "ghost": 0.0},
        utc_offset_hours=7,
        calls_per_day=10.0,
    )
    Preset(**good)
    bad: list[dict[str, Any]] = [
        {"label_shares": {"emergency": 0.6, "non_emergency": 0.6, "prank": 0.0, "ghost": 0.0}},
        {"label_shares": {"emergency": 1.0}},
        {"calls_per_day": 0.0},
        {"utc_offset_hours": 20},
        {"stereo_share": 1.5},
    ]
    for change in bad:
        with pytest.raises(InvalidParameterError):
            Preset(**{**good, **change})


# --------------------------------------------------------- rule 11: counts, ids, seeds


@pytest.mark.parametrize(
    ("name", "n", "expected"),
    [
        ("purworejo", 2802, {"prank": 1147, "ghost": 1170, "non_emergency": 455, "emergency": 30}),
        ("balanced", 400, dict.fromkeys(LABELS, 100)),
        ("balanced", 4, dict.fromkeys(LABELS, 1)),
        (
            "jakarta-2024",
            1000,
            {"emergency": 120, "non_emergency": 450, "prank": 230, "ghost": 200},
        ),
        (
            "kendari-2025",
            3783,
            {"emergency": 99, "non_emergency": 2423, "prank": 631, "ghost": 630},
        ),
    ],
)
def test_exact_label_counts(name: str, n: int, expected: dict[str, int]) -> None:
    plans = plan_calls(name, n_calls=n, seed=3)
    assert len(plans) == n
    assert Counter(p.label for p in plans) == expected


def test_rare_classes_get_a_call_in_small_corpora() -> None:
    labels = Counter(p.label for p in plan_calls("kendari-2025", n_calls=20, seed=0))
    assert set(labels) == set(LABELS)
    assert len(plan_calls("kendari-2025", n_calls=1, seed=0)) == 1


def test_deterministic_for_a_seed() -> None:
    a = plan_calls("kendari-2025", n_calls=800, seed=5)
    b = plan_calls("kendari-2025", n_calls=800, seed=5)
    c = plan_calls("kendari-2025", n_calls=800, seed=6)
    g1 = plan_calls("kendari-2025", n_calls=800, seed=np.random.default_rng(5))
    assert a == b
    assert a == g1  # an int seed is the same as default_rng(seed)
    assert a != c
    assert [p.started_at for p in a] != [p.started_at for p in c]


def test_ids_sorted_unique_and_formats_valid(kendari: list[CallPlan]) -> None:
    ids = [p.call_id for p in kendari]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert ids[0] == "c000001" and ids[-1] == "c005000"
    times = [p.started_at for p in kendari]
    assert times == sorted(times)
    for p in kendari:
        assert p.caller_id == "" or E164.match(p.caller_id) or SIMLESS.match(p.caller_id)
        assert p.scenario in SCENARIOS[p.label]
        assert p.persona in PERSONAS and p.caller_kind in CALLER_KINDS
        assert p.language in ("id", "en")
        assert 1.0 <= p.duration_s <= 600.0
    # Real prefixes only: +62 8xx from the Indonesian mobile ranges.
    prefixes = {int(p.caller_id[3:6]) for p in kendari if p.caller_id.startswith("+")}
    allowed = {*range(811, 820), *range(821, 824), *range(851, 860), 877, 878, *range(895, 900)}
    assert prefixes <= allowed and len(prefixes) > 10
    # IMEI-like ids carry a valid Luhn check digit.
    for cid in {p.caller_id for p in kendari if p.caller_id.startswith("simless:")}:
        digits = [int(d) for d in cid[8:]]
        doubled = [2 * d for d in digits[1::2]]
        assert (sum(digits[0::2]) + sum(d // 10 + d % 10 for d in doubled)) % 10 == 0


def test_bad_input() -> None:
    for bad in (0, -3):
        with pytest.raises(InvalidParameterError, match=str(bad)):
            plan_calls("balanced", n_calls=bad, seed=0)
    with pytest.raises(InvalidParameterError, match="n_calls"):
        plan_calls("balanced", n_calls=2.5, seed=0)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="seed"):
        plan_calls("balanced", n_calls=5, seed="x")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="start"):
        plan_calls("balanced", n_calls=5, seed=0, start="2025-01-01")  # type: ignore[arg-type]


def test_plans_10000_calls() -> None:
    plans = plan_calls("kendari-2025", n_calls=10_000, seed=1)
    assert len(plans) == 10_000


# --------------------------------------------------------- rule 1: callers over weeks


def test_window_spans_weeks(kendari: list[CallPlan]) -> None:
    span = kendari[-1].started_at - kendari[0].started_at
    assert span >= timedelta(days=16)  # 5,000 / 285 -> 18 days
    small = plan_calls("balanced", n_calls=100, seed=2, start=date(2024, 1, 1))
    assert small[0].started_at.date() >= date(2024, 1, 1)
    assert small[-1].started_at - small[0].started_at >= timedelta(days=5)  # 7-day minimum
    assert len({p.started_at.date() for p in small}) >= 6
    big = plan_calls("purworejo", n_calls=2802, seed=2)
    assert big[-1].started_at - big[0].started_at >= timedelta(days=54)  # clamped to 56


def test_residents_call_rarely(kendari: list[CallPlan]) -> None:
    counts = np.array([len(c) for c in by_caller(kendari).values() if c[0].persona == "resident"])
    assert np.mean(counts == 1) >= 0.8
    assert np.mean(counts == 2) >= 0.03
    assert counts.max() <= 3


# ------------------------------------------------------------ rule 2: repeat pranksters


def test_repeat_pranksters_are_heavy_tailed_children(kendari: list[CallPlan]) -> None:
    pranks = [
        len([c for c in calls if c.label == "prank"])
        for calls in by_caller(kendari).values()
        if calls[0].persona == "prankster"
    ]
    counts = np.sort(np.array(pranks))[::-1]
    assert np.median(counts) >= 2
    assert counts[0] >= 4 * np.median(counts)
    top = counts[: max(1, len(counts) // 10)]
    assert top.sum() >= 0.25 * counts.sum()
    kinds = Counter(
        p.caller_kind for p in kendari if p.persona == "prankster" and p.label == "prank"
    )
    assert kinds["child"] / sum(kinds.values()) >= 0.7


def test_pranks_after_school_evenings_and_weekends(balanced_long: list[CallPlan]) -> None:
    pranks = [p for p in balanced_long if p.label == "prank"]
    emergencies = [p for p in balanced_long if p.label == "emergency"]

    def share_13_22(plans: list[CallPlan]) -> float:
        h = local_hours(plans)
        return float(np.mean((h >= 13) & (h < 22)))

    def weekend_share(plans: list[CallPlan]) -> float:
        return float(np.mean([p.started_at.weekday() >= 5 for p in plans]))

    assert share_13_22(pranks) >= share_13_22(emergencies) + 0.15
    assert share_13_22(pranks) >= 0.6
    # Measured ~0.42 against ~0.29 for emergencies; ~0.28 without a weekend effect.
    assert weekend_share(pranks) >= 2 / 7 + 0.07
    assert weekend_share(pranks) >= weekend_share(emergencies) + 0.07


def test_pranksters_call_in_bursts(kendari: list[CallPlan]) -> None:
    medians = [
        np.median(gaps_s([c for c in calls if c.label == "prank"]))
        for calls in by_caller(kendari).values()
        if calls[0].persona in ("prankster", "simless_prankster")
        and sum(c.label == "prank" for c in calls) >= 3
    ]
    assert len(medians) >= 20
    assert np.mean(np.array(medians) < 3600) >= 0.5


# ------------------------------------------------------------- rule 3: pocket dialers


def test_pocket_dialers_repeat_at_activity_hours_over_days(kendari: list[CallPlan]) -> None:
    dialers = {
        cid: [c for c in calls if c.label == "ghost"]
        for cid, calls in by_caller(kendari).items()
        if calls[0].persona == "pocket_dialer"
    }
    ghosts = [c for calls in dialers.values() for c in calls]
    h = local_hours(ghosts)
    assert np.mean((h >= 6) & (h < 22)) >= 0.85
    assert np.mean((h >= 1) & (h < 5)) <= 0.03
    repeaters = [calls for calls in dialers.values() if len(calls) >= 3]
    assert len(repeaters) >= 20
    days = [len({c.started_at.date() for c in calls}) for calls in repeaters]
    assert np.mean(np.array(days) >= 2) >= 0.8


# ------------------------------------------------------------------- rule 4: SOS bursts


def test_sos_bursts(kendari: list[CallPlan]) -> None:
    bursts = sos_bursts(kendari)
    assert len(bursts) >= 10
    sizes = np.array([len(b) for b in bursts])
    assert sizes.min() >= 3 and sizes.max() <= 6
    for burst in bursts:
        g = gaps_s(burst)
        assert np.all(g < 300) and np.all(g >= 10)
        assert all(c.label == "ghost" for c in burst)
    d = durations([c for b in bursts for c in b])
    assert d.min() >= 3.0 and d.max() <= 15.0


# -------------------------------------------------------------- rule 5: chronic callers


def test_chronic_callers_spread_over_weeks(kendari: list[CallPlan]) -> None:
    numbers = by_caller(kendari)
    heavy = [
        calls for calls in numbers.values() if sum(c.label == "non_emergency" for c in calls) >= 10
    ]
    assert 3 <= len(heavy) <= 0.02 * len(numbers)
    for calls in heavy:
        assert len({c.started_at.date() for c in calls}) >= 5
    chronic_scenarios = Counter(p.persona for p in kendari if p.scenario == "chronic")
    assert set(chronic_scenarios) == {"chronic_caller"}


# ----------------------------------------------------- rules 6-7: SIM-less and withheld


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_simless_handsets_mostly_prank(name: str) -> None:
    plans = plan_calls(name, n_calls=3000, seed=4)
    simless = [p for p in plans if p.caller_id.startswith("simless:")]
    labels = Counter(p.label for p in simless)
    assert len(simless) >= 30
    assert labels["prank"] / len(simless) >= 0.7
    assert labels["ghost"] >= 1


def test_withheld_numbers(kendari: list[CallPlan]) -> None:
    withheld = [p for p in kendari if p.caller_id == ""]
    assert 0.01 <= len(withheld) / len(kendari) <= 0.10
    assert len({p.label for p in withheld}) == 4


# ------------------------------------------------------ rule 8: history not decisive


def first_from_number(plans: list[CallPlan]) -> set[str]:
    """call_ids of calls from a number that had not called before."""
    return {calls[0].call_id for calls in by_caller(plans).values()}


def test_first_time_pranksters_exist(kendari: list[CallPlan]) -> None:
    firsts = first_from_number(kendari)
    pranks = [p for p in kendari if p.label == "prank"]
    assert np.mean([p.call_id in firsts for p in pranks]) >= 0.15


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_prank_numbers_later_make_real_calls(name: str) -> None:
    plans = plan_calls(name, n_calls=1000, seed=8)
    turned = 0
    for calls in by_caller(plans).values():
        first_prank = next((i for i, c in enumerate(calls) if c.label == "prank"), None)
        if first_prank is not None and any(
            c.label == "emergency" for c in calls[first_prank + 1 :]
        ):
            turned += 1
    assert turned >= 1


def test_real_calls_with_history(kendari: list[CallPlan]) -> None:
    firsts = first_from_number(kendari)
    real = [p for p in kendari if p.label in ("emergency", "non_emergency") and p.caller_id]
    with_history = np.mean([p.call_id not in firsts for p in real])
    assert 0.05 <= with_history <= 0.6
    pocket_real = [
        p
        for p in kendari
        if p.persona == "pocket_dialer" and p.label in ("emergency", "non_emergency")
    ]
    assert len(pocket_real) >= 5


# ----------------------------------------------------------------- rule 9: durations


def test_durations_as_centres_report(balanced: list[CallPlan], kendari: list[CallPlan]) -> None:
    for plans in (balanced, kendari):
        d = {label: durations([p for p in plans if p.label == label]) for label in LABELS}
        assert np.mean(d["ghost"] < 10) >= 0.4
        assert np.mean(d["ghost"] > 60) >= 0.05
        assert 8 <= np.median(d["prank"]) <= 30
        assert 40 <= np.median(d["emergency"]) <= 120
        assert 30 <= np.median(d["non_emergency"]) <= 90
        assert max(v.max() for v in d.values()) <= 600
        short = durations([p for p in plans if p.scenario == "short_report"])
        assert short.max() < 20
    hoax = durations([p for p in balanced if p.scenario == "hoax_report"])
    assert np.median(hoax) > 2 * np.median(durations([p for p in balanced if p.label == "prank"]))
    assert all(p.caller_kind != "child" for p in balanced if p.scenario == "hoax_report")


def test_hangups_common_in_pranks(balanced: list[CallPlan]) -> None:
    def rate(label: str) -> float:
        return float(np.mean([p.hangup_mid_sentence for p in balanced if p.label == label]))

    assert rate("prank") >= 0.3
    assert rate("prank") >= rate("emergency") + 0.2


def test_emergency_scenarios(balanced: list[CallPlan]) -> None:
    s = Counter(p.scenario for p in balanced if p.label == "emergency")
    total = sum(s.values())
    assert s["report"] / total >= 0.5
    assert 0.02 <= s["quiet_victim"] / total <= 0.09
    assert set(s) == set(SCENARIOS["emergency"])


# ------------------------------------------------------------------- rule 10: time


def test_real_calls_follow_a_daytime_curve(balanced: list[CallPlan]) -> None:
    real = [p for p in balanced if p.label in ("emergency", "non_emergency")]
    h = local_hours(real)
    night = np.mean((h >= 2) & (h < 5)) / 3
    day = np.mean((h >= 9) & (h < 20)) / 11
    assert 0 < night < 0.4 * day


def test_timestamps_are_local_and_realistic(kendari: list[CallPlan]) -> None:
    for p in kendari[:50]:
        offset = p.started_at.utcoffset()
        assert offset == timedelta(hours=8)
        assert p.started_at.microsecond == 0
    seconds = Counter(p.started_at.second for p in kendari)
    assert len(seconds) == 60
    assert len({p.started_at.minute for p in kendari}) == 60


def test_no_caller_overlaps_itself(kendari: list[CallPlan], balanced: list[CallPlan]) -> None:
    for plans in (kendari, balanced):
        for calls in by_caller(plans).values():
            for prev, call in pairwise(calls):
                end = prev.started_at + timedelta(seconds=prev.duration_s)
                assert call.started_at >= end


def test_shift_ids(kendari: list[CallPlan]) -> None:
    for p in kendari[::37]:
        day, shift = p.shift_id.split("/")
        h = p.started_at.hour
        if 7 <= h < 15:
            assert (shift, day) == ("day", p.started_at.date().isoformat())
        elif 15 <= h < 23:
            assert (shift, day) == ("evening", p.started_at.date().isoformat())
        elif h == 23:
            assert (shift, day) == ("night", p.started_at.date().isoformat())
        else:
            yesterday = (p.started_at.date() - timedelta(days=1)).isoformat()
            assert (shift, day) == ("night", yesterday)
    assert len({p.shift_id for p in kendari}) >= 3 * 17


# ------------------------------------------------------- rule 12: stereo and language


def test_stereo_and_language_shares(kendari: list[CallPlan]) -> None:
    stereo = np.array([p.stereo for p in kendari])
    assert abs(stereo.mean() - 0.3) <= 0.04
    for p in kendari:
        assert p.caller_channel == "mix" if not p.stereo else p.caller_channel in ("left", "right")
    channels = Counter(p.caller_channel for p in kendari if p.stereo)
    assert channels["left"] > 2 * channels["right"] > 0
    english = np.mean([p.language == "en" for p in kendari])
    assert abs(english - 0.08) <= 0.02
    for calls in by_caller(kendari).values():
        assert len({c.language for c in calls}) == 1
    custom = Preset(
        name="all-en",
        description="d",
        source="s",
        label_shares=dict.fromkeys(LABELS, 0.25),
        utc_offset_hours=7,
        calls_per_day=100.0,
        english_share=0.5,
        stereo_share=0.0,
    )
    plans = plan_calls(custom, n_calls=1000, seed=0)
    assert not any(p.stereo for p in plans)
    assert abs(np.mean([p.language == "en" for p in plans]) - 0.5) <= 0.05
