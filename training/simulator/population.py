"""The caller population of a 112 centre over time: who calls, when, and with what label.

:func:`plan_calls` turns a :class:`~training.simulator.presets.Preset` into a list of
:class:`CallPlan` objects in chronological order. It renders no audio; the renderer turns
each plan into a recording.

The model has two steps.

1. **Labels to personas.** The exact label counts (largest-remainder rounding of the
   preset's shares) are split over caller *personas* with fixed shares per label
   (:data:`PERSONA_SHARES`): e.g. pranks come from repeat pranksters (children's
   phones), first-time pranksters, SIM-less handsets, withheld numbers and a few
   residents; ghost calls from pocket-dialing handsets, emergency-SOS auto-dial bursts,
   one-off residents, SIM-less handsets and withheld numbers. Repeat personas also make
   some real calls, so caller history is informative but never decisive.
2. **Personas to time.** Each persona's calls are scheduled with its own profile: one-off
   residents follow a daytime-heavy diurnal curve; repeat pranksters call in bursts after
   school and in the evening, more on weekends, during an active span of days; pocket
   dialers call at activity hours scattered over days; SOS handsets produce 3-6 short
   calls minutes apart; chronic callers spread many calls over the weeks around a
   personal habitual hour. A final pass makes sure no caller's calls overlap.

Everything random comes from the generator given to :func:`plan_calls`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

import numpy as np

from classifier.errors import InvalidParameterError
from training.simulator.callerids import imeis, phone_numbers
from training.simulator.presets import LABELS, Preset, get_preset

__all__ = [
    "CALLER_KINDS",
    "LABELS",
    "PERSONAS",
    "PERSONA_SHARES",
    "SCENARIOS",
    "CallPlan",
    "plan_calls",
]

PERSONAS: tuple[str, ...] = (
    "resident",
    "chronic_caller",
    "prankster",
    "first_time_prankster",
    "pocket_dialer",
    "sos_handset",
    "simless_prankster",
    "withheld",
)
CALLER_KINDS: tuple[str, ...] = ("adult_male", "adult_female", "child", "elderly")
SCENARIOS: Mapping[str, tuple[str, ...]] = {
    "emergency": ("report", "distressed", "quiet_victim", "short_report"),
    "non_emergency": ("inquiry", "complaint", "chronic"),
    "prank": ("fake_incident", "insult", "giggle", "hoax_report", "silly_question", "silent_prank"),
    "ghost": ("pocket_dial", "sos_burst", "open_line", "silent"),
}

# Which personas make each label's calls. Withheld numbers are a few percent of every
# label; real calls from prank numbers and pocket dialers keep history from being decisive.
PERSONA_SHARES: Mapping[str, Mapping[str, float]] = {
    "emergency": {
        "resident": 0.84,
        "prankster": 0.05,
        "pocket_dialer": 0.05,
        "chronic_caller": 0.03,
        "withheld": 0.03,
    },
    "non_emergency": {
        "resident": 0.73,
        "chronic_caller": 0.15,
        "pocket_dialer": 0.04,
        "prankster": 0.03,
        "withheld": 0.05,
    },
    "prank": {
        "prankster": 0.45,
        "first_time_prankster": 0.20,
        "simless_prankster": 0.20,
        "resident": 0.06,
        "chronic_caller": 0.04,
        "withheld": 0.05,
    },
    "ghost": {
        "pocket_dialer": 0.45,
        "sos_handset": 0.25,
        "resident": 0.20,
        "simless_prankster": 0.05,
        "withheld": 0.05,
    },
}

# Who holds the phone. Prank numbers and SIM-less handsets are mostly children's phones,
# drawn per call (siblings, a parent borrowing it); everyone else per caller.
_KIND_SHARES: Mapping[str, Mapping[str, float]] = {
    "resident": {"adult_male": 0.42, "adult_female": 0.40, "child": 0.06, "elderly": 0.12},
    "chronic_caller": {"adult_male": 0.35, "adult_female": 0.30, "child": 0.0, "elderly": 0.35},
    "prankster": {"adult_male": 0.09, "adult_female": 0.06, "child": 0.85, "elderly": 0.0},
    "first_time_prankster": {
        "adult_male": 0.30,
        "adult_female": 0.15,
        "child": 0.55,
        "elderly": 0.0,
    },
    "pocket_dialer": {"adult_male": 0.45, "adult_female": 0.45, "child": 0.0, "elderly": 0.10},
    "sos_handset": {"adult_male": 0.35, "adult_female": 0.40, "child": 0.10, "elderly": 0.15},
    "simless_prankster": {"adult_male": 0.12, "adult_female": 0.08, "child": 0.80, "elderly": 0.0},
    "withheld": {"adult_male": 0.45, "adult_female": 0.35, "child": 0.10, "elderly": 0.10},
}
_PER_CALL_KIND = frozenset({"prankster", "simless_prankster"})

_EMERGENCY_SCENARIOS = {
    "report": 0.70,
    "distressed": 0.15,
    "quiet_victim": 0.05,
    "short_report": 0.10,
}
_NON_EMERGENCY_SCENARIOS = {"inquiry": 0.60, "complaint": 0.40}
_CHRONIC_SCENARIOS = {"chronic": 0.80, "inquiry": 0.10, "complaint": 0.10}
# Children giggle, insult and ask silly questions; the convincing hoax is an adult's.
_CHILD_PRANK_SCENARIOS = {
    "giggle": 0.28,
    "insult": 0.18,
    "silly_question": 0.20,
    "fake_incident": 0.17,
    "silent_prank": 0.17,
}
_ADULT_PRANK_SCENARIOS = {
    "hoax_report": 0.35,
    "fake_incident": 0.25,
    "insult": 0.25,
    "silly_question": 0.10,
    "silent_prank": 0.05,
}
_GHOST_SCENARIOS: Mapping[str, Mapping[str, float]] = {
    "pocket_dialer": {"pocket_dial": 0.70, "open_line": 0.20, "silent": 0.10},
    "sos_handset": {"sos_burst": 1.0},
    "resident": {"pocket_dial": 0.40, "silent": 0.35, "open_line": 0.25},
    "simless_prankster": {"silent": 0.45, "pocket_dial": 0.35, "open_line": 0.20},
    "withheld": {"silent": 0.50, "pocket_dial": 0.30, "open_line": 0.20},
}

# Planned duration per scenario: lognormal (median s, sigma) clipped to [low, high] s.
# Centres report short pranks, many ghost calls under 10 s, a few long open lines, and
# emergency reports around a minute or two.
_DURATIONS: Mapping[str, tuple[float, float, float, float]] = {
    "report": (70.0, 0.50, 15.0, 600.0),
    "distressed": (55.0, 0.55, 10.0, 600.0),
    "quiet_victim": (100.0, 0.50, 20.0, 600.0),
    "short_report": (11.0, 0.40, 4.0, 19.5),
    "inquiry": (45.0, 0.55, 8.0, 600.0),
    "complaint": (70.0, 0.50, 10.0, 600.0),
    "chronic": (110.0, 0.60, 15.0, 600.0),
    "fake_incident": (25.0, 0.55, 4.0, 600.0),
    "insult": (11.0, 0.60, 2.0, 600.0),
    "giggle": (7.0, 0.60, 1.5, 600.0),
    "hoax_report": (70.0, 0.45, 20.0, 600.0),
    "silly_question": (14.0, 0.55, 3.0, 600.0),
    "silent_prank": (9.0, 0.60, 2.0, 600.0),
    "pocket_dial": (9.0, 1.00, 1.5, 600.0),
    "sos_burst": (7.0, 0.40, 3.0, 15.0),
    "open_line": (130.0, 0.70, 30.0, 600.0),
    # Call-takers keep saying "halo?" for a while before they hang up on dead air.
    "silent": (12.0, 0.70, 1.0, 600.0),
}
_HANGUP: Mapping[str, float] = {
    "report": 0.05,
    "distressed": 0.15,
    "quiet_victim": 0.25,
    "short_report": 0.60,
    "inquiry": 0.04,
    "complaint": 0.08,
    "chronic": 0.10,
    "fake_incident": 0.45,
    "insult": 0.55,
    "giggle": 0.60,
    "hoax_report": 0.20,
    "silly_question": 0.45,
    "silent_prank": 0.35,
    "pocket_dial": 0.30,
    "sos_burst": 0.50,
    "open_line": 0.30,
    "silent": 0.30,
}

# Relative call rate per local hour (00..23) on weekdays and weekends, and the weekend
# day's overall multiplier. Everything stays > 0 so that no hour is impossible.
_HOURLY: Mapping[str, tuple[tuple[float, ...], tuple[float, ...], float]] = {
    # Real calls: daytime-heavy, minimum 02-04, evening peak.
    "diurnal": (
        (0.30, 0.20, 0.15, 0.12, 0.13, 0.22, 0.45, 0.75, 0.95, 1.05, 1.10, 1.10,
         1.05, 1.00, 1.00, 1.05, 1.10, 1.15, 1.20, 1.20, 1.10, 0.90, 0.65, 0.45),
        (0.40, 0.28, 0.20, 0.15, 0.13, 0.18, 0.32, 0.55, 0.80, 1.00, 1.10, 1.15,
         1.10, 1.05, 1.05, 1.05, 1.10, 1.15, 1.20, 1.25, 1.15, 0.95, 0.75, 0.55),
        1.05,
    ),
    # Children's pranks: after school (13-17) and evenings (18-22); weekend mornings too.
    "prank": (
        (0.06, 0.03, 0.02, 0.01, 0.01, 0.02, 0.08, 0.15, 0.15, 0.18, 0.22, 0.28,
         0.50, 1.10, 1.40, 1.50, 1.40, 1.10, 1.20, 1.50, 1.55, 1.20, 0.55, 0.18),
        (0.10, 0.05, 0.02, 0.01, 0.01, 0.02, 0.08, 0.30, 0.70, 0.95, 1.10, 1.15,
         1.10, 1.25, 1.40, 1.45, 1.40, 1.15, 1.25, 1.50, 1.55, 1.30, 0.70, 0.25),
        1.5,
    ),
    # Handsets in pockets and bags: when people are up and moving.
    "activity": (
        (0.04, 0.02, 0.02, 0.02, 0.03, 0.15, 0.55, 0.95, 1.00, 0.85, 0.80, 0.80,
         0.90, 0.85, 0.80, 0.85, 1.00, 1.05, 0.95, 0.85, 0.70, 0.50, 0.25, 0.10),
        (0.06, 0.03, 0.02, 0.02, 0.02, 0.08, 0.30, 0.60, 0.85, 0.95, 1.00, 1.00,
         0.95, 0.90, 0.90, 0.95, 1.00, 1.00, 0.95, 0.90, 0.75, 0.55, 0.30, 0.12),
        1.0,
    ),
}  # fmt: skip
_LABEL_PROFILE = {
    "emergency": "diurnal",
    "non_emergency": "diurnal",
    "prank": "prank",
    "ghost": "activity",
}

_MIN_GAP_S = 10  # a caller's next call starts at least this long after the last one ended
_MAX_DAYS = 56
_MIN_DAYS = 7
_DEFAULT_START = date(2025, 6, 1)


@dataclass(frozen=True)
class CallPlan:
    """What one simulated call will be; the renderer turns it into a recording.

    Attributes
    ----------
    call_id : str
        ``"c000001"``, ``"c000002"``, ... in chronological order; unique.
    caller_id : str
        E.164 Indonesian mobile number (``"+62812..."``), ``"simless:<15 digits>"`` (a
        Luhn-valid IMEI-like id of a handset without a SIM card) or ``""`` (withheld).
    started_at : datetime
        Timezone-aware start in the centre's UTC offset, second resolution.
    label : str
        One of :data:`LABELS`.
    persona : str
        The caller's persona (:data:`PERSONAS`); a property of the number, not the call.
    scenario : str
        What happens in the call; one of ``SCENARIOS[label]``.
    duration_s : float
        Planned recording duration in seconds, in [1, 600].
    caller_kind : str
        One of :data:`CALLER_KINDS`.
    language : str
        ``"id"`` or ``"en"``; constant per caller.
    hangup_mid_sentence : bool
        The call ends while someone is still speaking.
    shift_id : str
        ``"<date>/<day|evening|night>"`` of the call-taker on duty; shifts are 07-15,
        15-23 and 23-07 local, and a night shift is named after the date it began.
    stereo : bool
        Caller and call-taker are on separate channels of the recording.
    caller_channel : str
        ``"mix"`` for mono recordings, else ``"left"`` (mostly) or ``"right"``.
    """

    call_id: str
    caller_id: str
    started_at: datetime
    label: str
    persona: str
    scenario: str
    duration_s: float
    caller_kind: str
    language: str
    hangup_mid_sentence: bool
    shift_id: str
    stereo: bool
    caller_channel: str


def plan_calls(
    preset: Preset | str,
    *,
    n_calls: int,
    seed: int | np.random.Generator,
    start: date | None = None,
) -> list[CallPlan]:
    """Plan ``n_calls`` calls to a 112 centre: who calls, when, with what label.

    Parameters
    ----------
    preset : Preset or str
        The centre, or the name of one of :data:`~training.simulator.presets.PRESETS`.
    n_calls : int
        Number of calls, > 0. Label counts are exact: the preset's shares rounded by
        largest remainder, with at least one call of every label whose share is > 0
        when ``n_calls >= 4``.
    seed : int or numpy.random.Generator
        Source of every random choice. The same seed (or generator state) gives an
        identical list.
    start : datetime.date, optional
        First local day of the window; default 2025-06-01. The window lasts
        ``ceil(n_calls / preset.calls_per_day)`` days, clamped to [7, 56].

    Returns
    -------
    list of CallPlan
        ``n_calls`` plans sorted by ``started_at`` (ids ``c000001``... in that order).
        A caller's calls never overlap; a few may start shortly after the window's end
        when a caller's calls had to be pushed apart.

    Raises
    ------
    InvalidParameterError
        If ``n_calls`` is not a positive int, ``preset`` is unknown, ``seed`` is neither
        an int nor a Generator, or ``start`` is not a date.
    """
    if isinstance(preset, str):
        preset = get_preset(preset)
    elif not isinstance(preset, Preset):
        raise InvalidParameterError(
            f"preset must be a Preset or a preset name, got {type(preset).__name__}"
        )
    if isinstance(n_calls, bool) or not isinstance(n_calls, int | np.integer) or n_calls <= 0:
        raise InvalidParameterError(f"n_calls must be a positive int, got {n_calls!r}")
    n_calls = int(n_calls)
    rng = _as_generator(seed)
    if start is None:
        start = _DEFAULT_START
    elif isinstance(start, datetime):
        start = start.date()
    elif not isinstance(start, date):
        raise InvalidParameterError(f"start must be a datetime.date, got {type(start).__name__}")

    n_days = int(np.clip(math.ceil(n_calls / preset.calls_per_day), _MIN_DAYS, _MAX_DAYS))
    clock = _Clock(start, n_days)
    label_counts = _split_exact(
        n_calls, np.array([preset.label_shares[label] for label in LABELS]), at_least_one=True
    )
    counts = _persona_counts(dict(zip(LABELS, label_counts.tolist(), strict=True)))
    pop = _build_callers(counts, rng)
    _assign_call_attributes(pop, rng)
    _schedule(pop, clock, rng)
    _separate_calls(pop)
    return _to_plans(pop, preset, clock, rng)


# --------------------------------------------------------------------------- helpers


def _as_generator(seed: int | np.random.Generator) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InvalidParameterError(
            f"seed must be a non-negative int or a numpy.random.Generator, got {seed!r}"
        )
    return np.random.default_rng(int(seed))


def _split_exact(n: int, shares: np.ndarray, *, at_least_one: bool) -> np.ndarray:
    """Split ``n`` into integer parts proportional to ``shares`` (largest remainder).

    With ``at_least_one``, every positive share gets at least one when ``n`` allows it,
    taken from the currently largest part.
    """
    shares = np.asarray(shares, dtype=np.float64)
    total = shares.sum()
    if n <= 0 or total <= 0:
        return np.zeros(len(shares), dtype=np.int64)
    exact = n * shares / total
    counts = np.floor(exact + 1e-9).astype(np.int64)
    remainder = exact - counts
    # Stable order so ties resolve to the earlier class, deterministically.
    for i in np.argsort(-remainder, kind="stable")[: n - int(counts.sum())]:
        counts[i] += 1
    if at_least_one and n >= int((shares > 0).sum()):
        for i in np.flatnonzero((shares > 0) & (counts == 0)):
            counts[int(np.argmax(counts))] -= 1
            counts[i] = 1
    return counts


def _persona_counts(label_counts: Mapping[str, int]) -> dict[tuple[str, str], int]:
    """Number of calls of each (label, persona), with the personas' consistency rules."""
    counts: dict[tuple[str, str], int] = {}
    for label in LABELS:
        table = PERSONA_SHARES[label]
        parts = _split_exact(label_counts[label], np.array(list(table.values())), at_least_one=True)
        for persona, k in zip(table, parts.tolist(), strict=True):
            counts[(label, persona)] = k

    def move(src: tuple[str, str], dst: tuple[str, str], k: int) -> None:
        k = min(k, counts[src])
        counts[src] -= k
        counts[dst] = counts.get(dst, 0) + k

    # SIM-less handsets are mostly prank phones: at most one ghost call per 4 pranks.
    excess = counts[("ghost", "simless_prankster")] - counts[("prank", "simless_prankster")] // 4
    move(("ghost", "simless_prankster"), ("ghost", "pocket_dialer"), excess)
    # An SOS burst needs at least 3 calls.
    if counts[("ghost", "sos_handset")] < 3:
        move(("ghost", "sos_handset"), ("ghost", "pocket_dialer"), 3)
    # Real calls from prank numbers and pocket dialers need such numbers to exist.
    if counts[("prank", "prankster")] == 0:
        for label in ("emergency", "non_emergency"):
            move((label, "prankster"), (label, "resident"), counts[(label, "prankster")])
    if counts[("ghost", "pocket_dialer")] == 0:
        for label in ("emergency", "non_emergency"):
            move((label, "pocket_dialer"), (label, "resident"), counts[(label, "pocket_dialer")])
    return {key: k for key, k in counts.items() if k > 0}


@dataclass
class _Population:
    """Column-wise working state: callers and their calls."""

    caller_persona: list[str]
    call_caller: np.ndarray  # (n,) int64: index into caller_persona
    call_label: np.ndarray  # (n,) <U: label
    call_group: np.ndarray  # (n,) int64: burst/session id within a caller, -1 if none
    call_kind: np.ndarray | None = None
    call_scenario: np.ndarray | None = None
    call_duration: np.ndarray | None = None
    call_hangup: np.ndarray | None = None
    call_time: np.ndarray | None = None  # (n,) int64 seconds since the window start


def _heavy_tailed_counts(
    n: int, n_callers: int, rng: np.random.Generator, *, base: int, tail: float
) -> np.ndarray:
    """Split ``n`` calls over ``n_callers`` callers, each at least ``base`` (if possible),
    the rest by Pareto weights (smaller ``tail`` -> a few callers make most calls)."""
    base = min(base, n // n_callers)
    # Stratified Pareto quantiles: the tail's shape varies less between seeds than with
    # independent draws, while who gets the big share stays random.
    u = (rng.permutation(n_callers) + rng.random(n_callers)) / n_callers
    u = np.minimum(u, 1.0 - 0.25 / n_callers)  # bound the single heaviest caller
    weights = (1.0 - u) ** (-1.0 / tail)
    return base + rng.multinomial(n - base * n_callers, weights / weights.sum())


def _resident_counts(n: int, rng: np.random.Generator) -> np.ndarray:
    """Most residents call once in the window; a few twice, very few three times."""
    sizes = rng.choice(np.array([1, 2, 3]), size=n, p=[0.88, 0.10, 0.02])
    cum = np.cumsum(sizes)
    m = int(np.searchsorted(cum, n)) + 1
    sizes = sizes[:m].copy()
    sizes[-1] -= int(cum[m - 1]) - n
    return sizes


def _build_callers(counts: Mapping[tuple[str, str], int], rng: np.random.Generator) -> _Population:
    """Create callers per persona and hand them their labelled calls."""
    personas: list[str] = []
    call_caller: list[np.ndarray] = []
    call_label: list[np.ndarray] = []
    call_group: list[np.ndarray] = []

    def add(persona: str, sizes: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> None:
        first = len(personas)
        personas.extend([persona] * len(sizes))
        call_caller.append(np.repeat(np.arange(first, first + len(sizes)), sizes))
        call_label.append(labels)
        call_group.append(groups)

    def labels_of(persona: str) -> np.ndarray:
        return np.array(
            [label for label in LABELS for _ in range(counts.get((label, persona), 0))],
            dtype="<U13",
        )

    # One-off callers; residents a few times. Labels are shuffled across them.
    for persona in ("resident", "first_time_prankster", "withheld"):
        labels = rng.permutation(labels_of(persona))
        if len(labels) == 0:
            continue
        sizes = (
            _resident_counts(len(labels), rng)
            if persona == "resident"
            else np.ones(len(labels), dtype=np.int64)
        )
        add(persona, sizes, labels, np.full(len(labels), -1))

    # Chronic callers: a few numbers, many calls each (heavy-tailed).
    labels = rng.permutation(labels_of("chronic_caller"))
    if len(labels):
        m = max(1, round(len(labels) / 25))
        add(
            "chronic_caller",
            _heavy_tailed_counts(len(labels), m, rng, base=3, tail=2.0),
            labels,
            np.full(len(labels), -1),
        )

    # Repeat pranksters and SIM-less handsets: heavy-tailed prank counts; their other
    # calls go to random numbers of the same persona. Pranks come first in each caller's
    # list so the scheduler can put a prank before any real call.
    for persona, calls_per_caller in (("prankster", 6.0), ("simless_prankster", 5.0)):
        n_pranks = counts.get(("prank", persona), 0)
        if n_pranks == 0:
            continue
        m = max(1, round(n_pranks / calls_per_caller))
        pranks = _heavy_tailed_counts(n_pranks, m, rng, base=2, tail=1.2)
        other_labels = [
            label
            for label in LABELS
            if label != "prank"
            for _ in range(counts.get((label, persona), 0))
        ]
        sizes, labels = _add_other_calls("prank", pranks, other_labels, rng)
        add(persona, sizes, labels, np.full(len(labels), -1))

    # Pocket-dialing handsets: repeat ghost calls; some also make real calls.
    n_ghost = counts.get(("ghost", "pocket_dialer"), 0)
    if n_ghost:
        m = max(1, round(n_ghost / 4))
        ghosts = _heavy_tailed_counts(n_ghost, m, rng, base=2, tail=2.0)
        other_labels = [
            label
            for label in ("emergency", "non_emergency")
            for _ in range(counts.get((label, "pocket_dialer"), 0))
        ]
        sizes, labels = _add_other_calls("ghost", ghosts, other_labels, rng)
        add("pocket_dialer", sizes, labels, np.full(len(labels), -1))

    # Emergency-SOS handsets: bursts of 3-6 calls; a handset mostly has one burst.
    n_sos = counts.get(("ghost", "sos_handset"), 0)
    if n_sos:
        bursts = _burst_sizes(n_sos, rng)
        n_handsets = max(1, round(len(bursts) / 1.4))
        owner = np.concatenate(
            [np.arange(n_handsets), rng.integers(0, n_handsets, size=len(bursts) - n_handsets)]
        )
        order = np.argsort(owner, kind="stable")
        sizes = np.bincount(owner, weights=bursts, minlength=n_handsets).astype(np.int64)
        groups = np.repeat(np.arange(len(bursts))[order], bursts[order])
        add("sos_handset", sizes, np.full(n_sos, "ghost", dtype="<U13"), groups)

    return _Population(
        caller_persona=personas,
        call_caller=np.concatenate(call_caller),
        call_label=np.concatenate(call_label),
        call_group=np.concatenate(call_group).astype(np.int64),
    )


def _add_other_calls(
    main_label: str, main_counts: np.ndarray, other_labels: list[str], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Give ``other_labels`` to random callers who make ``main_counts`` ``main_label`` calls.

    Returns the callers' call counts, shape (m,), and their calls' labels grouped by
    caller with each caller's ``main_label`` calls first, shape (sum,).
    """
    m = len(main_counts)
    owner = rng.integers(0, m, size=len(other_labels))
    all_owner = np.concatenate([np.repeat(np.arange(m), main_counts), owner])
    all_labels = np.array([main_label] * int(main_counts.sum()) + other_labels, dtype="<U13")
    # A stable sort keeps each caller's main calls ahead of their other calls.
    labels = all_labels[np.argsort(all_owner, kind="stable")]
    return main_counts + np.bincount(owner, minlength=m), labels


def _burst_sizes(n: int, rng: np.random.Generator) -> np.ndarray:
    """Split ``n >= 3`` calls into bursts of 3-6 calls (mean ~4.5)."""
    k = int(np.clip(round(n / 4.5), math.ceil(n / 6), n // 3))
    sizes = np.full(k, 3, dtype=np.int64)
    for _ in range(n - 3 * k):
        open_ = np.flatnonzero(sizes < 6)
        sizes[open_[rng.integers(0, len(open_))]] += 1
    return sizes


def _choice(rng: np.random.Generator, table: Mapping[str, float], size: int) -> np.ndarray:
    names = np.array(list(table), dtype="<U20")
    p = np.array(list(table.values()), dtype=np.float64)
    return names[rng.choice(len(names), size=size, p=p / p.sum())]


def _assign_call_attributes(pop: _Population, rng: np.random.Generator) -> None:
    """Caller kind, scenario, duration and hang-up of every call."""
    n = len(pop.call_label)
    persona = np.array(pop.caller_persona, dtype="<U20")
    call_persona = persona[pop.call_caller]

    caller_kind = np.empty(len(persona), dtype="<U12")
    kind = np.empty(n, dtype="<U12")
    for p in PERSONAS:
        callers = np.flatnonzero(persona == p)
        caller_kind[callers] = _choice(rng, _KIND_SHARES[p], len(callers))
    kind[:] = caller_kind[pop.call_caller]
    for p in sorted(_PER_CALL_KIND):
        calls = np.flatnonzero(call_persona == p)
        kind[calls] = _choice(rng, _KIND_SHARES[p], len(calls))

    scenario = np.empty(n, dtype="<U14")
    label = pop.call_label
    adult = kind != "child"
    groups: list[tuple[np.ndarray, Mapping[str, float]]] = [
        (label == "emergency", _EMERGENCY_SCENARIOS),
        ((label == "non_emergency") & (call_persona == "chronic_caller"), _CHRONIC_SCENARIOS),
        ((label == "non_emergency") & (call_persona != "chronic_caller"), _NON_EMERGENCY_SCENARIOS),
        ((label == "prank") & ~adult, _CHILD_PRANK_SCENARIOS),
        ((label == "prank") & adult, _ADULT_PRANK_SCENARIOS),
    ]
    groups += [((label == "ghost") & (call_persona == p), t) for p, t in _GHOST_SCENARIOS.items()]
    for mask, table in groups:
        idx = np.flatnonzero(mask)
        scenario[idx] = _choice(rng, table, len(idx))

    params = np.array([_DURATIONS[s] for s in scenario]).reshape(n, 4)
    median, sigma, low, high = params.T
    duration = median * np.exp(sigma * rng.standard_normal(n))
    # SOS auto-dials are cut off by the handset: roughly uniform 3-15 s.
    sos = scenario == "sos_burst"
    duration[sos] = rng.uniform(3.0, 15.0, size=int(sos.sum()))
    duration = np.round(np.clip(duration, low, high), 2)
    hangup = rng.random(n) < np.array([_HANGUP[s] for s in scenario])

    pop.call_kind = kind
    pop.call_scenario = scenario
    pop.call_duration = duration
    pop.call_hangup = hangup


class _Clock:
    """Hour-by-hour call-rate profiles over the window, and sampling from them."""

    def __init__(self, start: date, n_days: int) -> None:
        self.start = start
        self.n_days = n_days
        self.seconds = n_days * 86400
        weekend = np.array([(start + timedelta(days=d)).weekday() >= 5 for d in range(n_days)])
        self._cdf: dict[str, np.ndarray] = {}
        self.hourly: dict[str, np.ndarray] = {}
        for name, (weekday, weekend_w, weekend_factor) in _HOURLY.items():
            per_day = np.where(
                weekend[:, None],
                weekend_factor * np.asarray(weekend_w)[None, :],
                np.asarray(weekday)[None, :],
            )
            w = per_day.ravel()
            self.hourly[name] = np.asarray(weekday) / np.sum(weekday)
            self._cdf[name] = np.concatenate([[0.0], np.cumsum(w)]) / w.sum()
        self._hours = np.arange(n_days * 24 + 1, dtype=np.float64)

    def sample(
        self,
        profile: str,
        size: int,
        rng: np.random.Generator,
        *,
        low: float | np.ndarray = 0.0,
        high: float | np.ndarray | None = None,
    ) -> np.ndarray:
        """Draw ``size`` times (float seconds since the window start) in [low, high)."""
        cdf = self._cdf[profile]
        high = self.seconds if high is None else high
        c_low = np.interp(np.asarray(low) / 3600.0, self._hours, cdf)
        c_high = np.interp(np.asarray(high) / 3600.0, self._hours, cdf)
        u = c_low + (c_high - c_low) * rng.random(size)
        # The CDF is piecewise linear, so inverting it is uniform within each hour.
        t = np.interp(u, cdf, self._hours) * 3600.0
        return np.clip(t, low, np.maximum(np.asarray(high) - 1.0, low))


def _schedule(pop: _Population, clock: _Clock, rng: np.random.Generator) -> None:
    """Start time of every call, persona by persona."""
    assert pop.call_duration is not None
    n = len(pop.call_label)
    t = np.zeros(n, dtype=np.float64)
    persona = np.array(pop.caller_persona, dtype="<U20")
    call_persona = persona[pop.call_caller]
    label = pop.call_label
    duration = pop.call_duration

    # Independent calls: one-off personas and residents' repeat calls (kept apart later).
    independent = np.isin(call_persona, ["resident", "first_time_prankster", "withheld"])
    independent |= (call_persona == "pocket_dialer") & (label != "ghost")
    for lab in LABELS:
        idx = np.flatnonzero(independent & (label == lab))
        t[idx] = clock.sample(_LABEL_PROFILE[lab], len(idx), rng)
    # A SIM-less handset's ghost calls happen while children play with it.
    simless_ghost = np.flatnonzero((call_persona == "simless_prankster") & (label == "ghost"))
    t[simless_ghost] = clock.sample("prank", len(simless_ghost), rng)

    # Calls of each caller, in the order _build_callers listed them.
    order = np.argsort(pop.call_caller, kind="stable")
    bounds = np.searchsorted(pop.call_caller[order], np.arange(len(persona) + 1))
    days = clock.n_days

    for caller in np.flatnonzero(np.isin(persona, ["prankster", "simless_prankster"])):
        calls = order[bounds[caller] : bounds[caller + 1]]
        pranks = calls[label[calls] == "prank"]
        others = calls[(label[calls] != "prank") & (label[calls] != "ghost")]
        # Active for a phase of a few days up to the whole window. The phase may begin
        # before or end after the window (then it is cut), so that every day of the
        # window, edges included, is equally likely to be active.
        span = rng.uniform(min(days, 4), days) * 86400.0
        lo = rng.uniform(86400.0 - span, clock.seconds - 86400.0)
        hi = min(lo + span, float(clock.seconds))
        lo = max(lo, 0.0)
        sessions = _session_sizes(len(pranks), rng)
        starts = np.sort(clock.sample("prank", len(sessions), rng, low=lo, high=hi))
        gaps = np.exp(np.log(150.0) + rng.standard_normal(len(pranks)))
        gaps = np.clip(gaps, 20.0, 2400.0)
        # Within a session each prank starts a gap after the previous one ended.
        step = duration[pranks] + gaps
        before = np.cumsum(step) - step
        session = np.repeat(np.arange(len(sessions)), sessions)
        first_of_session = np.cumsum(sessions) - sessions
        t[pranks] = starts[session] + before - before[first_of_session][session]
        if len(others):
            # A real call from a prank number comes after its first prank.
            first = pranks[np.argmin(t[pranks])]
            first_end = t[first] + duration[first] + 1800.0
            low = min(first_end, clock.seconds - 3600.0)
            t[others] = clock.sample("diurnal", len(others), rng, low=low)

    chronic = np.flatnonzero(persona == "chronic_caller")
    # Each chronic caller has a habitual hour; calls scatter over the window's days.
    habit = clock.sample("diurnal", len(chronic), rng) % 86400.0
    for caller, h0 in zip(chronic, habit, strict=True):
        calls = order[bounds[caller] : bounds[caller + 1]]
        day = rng.integers(0, days, size=len(calls))
        tod = (h0 + rng.normal(0.0, 2.5 * 3600.0, size=len(calls))) % 86400.0
        t[calls] = day * 86400.0 + tod

    for caller in np.flatnonzero(persona == "pocket_dialer"):
        calls = order[bounds[caller] : bounds[caller + 1]]
        ghosts = calls[label[calls] == "ghost"]
        times = np.sort(clock.sample("activity", len(ghosts), rng))
        # A quarter of pocket dials redial within minutes of the previous one.
        redial = rng.random(len(ghosts)) < 0.25
        redial[0] = False
        after = rng.uniform(60.0, 900.0, size=len(ghosts))
        for r in np.flatnonzero(redial).tolist():
            times[r] = times[r - 1] + duration[ghosts[r - 1]] + after[r]
        t[ghosts] = times

    for caller in np.flatnonzero(persona == "sos_handset"):
        calls = order[bounds[caller] : bounds[caller + 1]]
        burst_ids = pop.call_group[calls]
        unique = np.unique(burst_ids)
        starts = np.sort(clock.sample("activity", len(unique), rng))
        for j in range(1, len(starts)):
            # Bursts of one handset are hours apart, so they stay separate bursts.
            starts[j] = max(starts[j], starts[j - 1] + 7200.0)
        for b, s in zip(unique, starts, strict=True):
            members = calls[burst_ids == b]
            # Each auto-dial starts 10 s to 3 min after the previous one ended.
            gaps = rng.uniform(10.0, 180.0, size=len(members))
            t[members] = s + np.concatenate([[0.0], np.cumsum(duration[members] + gaps)[:-1]])

    pop.call_time = np.floor(t).astype(np.int64)


def _session_sizes(n: int, rng: np.random.Generator) -> np.ndarray:
    """Split ``n`` pranks into sessions of geometric size (mean ~3.3)."""
    sizes: list[int] = []
    left = n
    while left > 0:
        size = min(left, int(rng.geometric(0.3)))
        sizes.append(size)
        left -= size
    return np.array(sizes, dtype=np.int64)


def _separate_calls(pop: _Population) -> None:
    """Push a caller's call later if it would start before their previous call ended."""
    assert pop.call_time is not None and pop.call_duration is not None
    t = pop.call_time
    order = np.lexsort((t, pop.call_caller))
    caller = pop.call_caller[order].tolist()
    times = t[order].tolist()
    ends = (pop.call_duration[order]).tolist()
    for i in range(1, len(order)):
        if caller[i] == caller[i - 1]:
            earliest = math.ceil(times[i - 1] + ends[i - 1]) + _MIN_GAP_S
            if times[i] < earliest:
                times[i] = earliest
    t[order] = np.asarray(times, dtype=np.int64)


def _languages(pop: _Population, english_share: float, rng: np.random.Generator) -> np.ndarray:
    """Per-caller language hitting ``english_share`` of calls as closely as callers allow.

    English speakers (tourists, expatriates) rarely run children's prank phones, so prank
    personas are less likely to be picked.
    """
    n_callers = len(pop.caller_persona)
    calls_per_caller = np.bincount(pop.call_caller, minlength=n_callers)
    weight = np.array([0.2 if "prank" in p else 1.0 for p in pop.caller_persona], dtype=np.float64)
    # Weighted random order (Efraimidis-Spirakis keys), then fill up to the target.
    keys = rng.random(n_callers) ** (1.0 / weight)
    target = round(english_share * len(pop.call_caller))
    english = np.zeros(n_callers, dtype=bool)
    acc = 0
    for i in np.argsort(-keys, kind="stable").tolist():
        if acc >= target:
            break
        if acc + calls_per_caller[i] <= target:
            english[i] = True
            acc += int(calls_per_caller[i])
    return np.where(english, "en", "id")


def _to_plans(
    pop: _Population, preset: Preset, clock: _Clock, rng: np.random.Generator
) -> list[CallPlan]:
    assert pop.call_time is not None and pop.call_kind is not None
    assert pop.call_scenario is not None and pop.call_duration is not None
    assert pop.call_hangup is not None
    n = len(pop.call_label)
    persona = pop.caller_persona
    n_callers = len(persona)

    caller_ids = np.full(n_callers, "", dtype=object)
    e164 = [i for i, p in enumerate(persona) if p not in ("withheld", "simless_prankster")]
    simless = [i for i, p in enumerate(persona) if p == "simless_prankster"]
    caller_ids[e164] = phone_numbers(len(e164), rng)
    caller_ids[simless] = ["simless:" + s for s in imeis(len(simless), rng)]
    language = _languages(pop, preset.english_share, rng)

    stereo = rng.random(n) < preset.stereo_share
    channel = np.where(stereo, np.where(rng.random(n) < 0.85, "left", "right"), "mix")

    tz = timezone(timedelta(hours=preset.utc_offset_hours))
    origin = datetime.combine(clock.start, time(0, 0), tzinfo=tz)
    order = np.lexsort((np.arange(n), pop.call_time))
    plans: list[CallPlan] = []
    width = max(6, len(str(n)))
    for rank, i in enumerate(order.tolist(), start=1):
        started = origin + timedelta(seconds=int(pop.call_time[i]))
        c = int(pop.call_caller[i])
        plans.append(
            CallPlan(
                call_id=f"c{rank:0{width}d}",
                caller_id=str(caller_ids[c]),
                started_at=started,
                label=str(pop.call_label[i]),
                persona=persona[c],
                scenario=str(pop.call_scenario[i]),
                duration_s=float(pop.call_duration[i]),
                caller_kind=str(pop.call_kind[i]),
                language=str(language[c]),
                hangup_mid_sentence=bool(pop.call_hangup[i]),
                shift_id=_shift_id(started),
                stereo=bool(stereo[i]),
                caller_channel=str(channel[i]),
            )
        )
    return plans


def _shift_id(local: datetime) -> str:
    """``"<date>/<shift>"``; the night shift (23-07) is named after the date it began."""
    hour = local.hour
    if hour < 7:
        return f"{(local.date() - timedelta(days=1)).isoformat()}/night"
    name = "day" if hour < 15 else "evening" if hour < 23 else "night"
    return f"{local.date().isoformat()}/{name}"
