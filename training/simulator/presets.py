"""Call-centre presets: label shares, time zone and volume of the simulated 112 centre.

A preset fixes *what mix* of calls a centre receives and *how many per day*; the caller
population (:mod:`training.simulator.population`) decides who makes them and when.
Each preset names the published figures it is derived from; where a figure was not
published, the docstring and ``source`` say the value is an assumption.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from classifier.errors import InvalidParameterError
from classifier.formats import LABELS

__all__ = ["LABELS", "PRESETS", "Preset", "get_preset"]


@dataclass(frozen=True)
class Preset:
    """The call mix and volume of one emergency call centre.

    Parameters
    ----------
    name : str
        Short identifier, e.g. ``"kendari-2025"``.
    description : str
        One line for humans.
    source : str
        The published figures the preset comes from, in words, and which values are
        assumptions.
    label_shares : Mapping[str, float]
        Share of each of ``emergency``, ``non_emergency``, ``prank`` and ``ghost`` among
        the simulated calls; all four keys, each in [0, 1], summing to 1.
    utc_offset_hours : int
        Local time zone of the centre (WIB +7, WITA +8, WIT +9).
    calls_per_day : float
        Centre volume. A corpus of ``n_calls`` calls spans ``n_calls / calls_per_day``
        days, clamped to [7, 56] so that caller history spans weeks.
    english_share : float, default=0.08
        Share of calls in which the caller speaks English.
    stereo_share : float, default=0.3
        Share of recordings with caller and call-taker on separate channels.
    """

    name: str
    description: str
    source: str
    label_shares: Mapping[str, float]
    utc_offset_hours: int
    calls_per_day: float
    english_share: float = 0.08
    stereo_share: float = 0.3

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidParameterError(f"name must be a non-empty str, got {self.name!r}")
        shares = dict(self.label_shares)
        if set(shares) != set(LABELS):
            raise InvalidParameterError(
                f"label_shares must have exactly the keys {list(LABELS)}, got {sorted(shares)}"
            )
        for label, share in shares.items():
            if not (isinstance(share, int | float) and 0.0 <= share <= 1.0):
                raise InvalidParameterError(
                    f"label_shares[{label!r}] must be a number in [0, 1], got {share!r}"
                )
        total = math.fsum(shares.values())
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise InvalidParameterError(f"label_shares must sum to 1, got {total:.6f}")
        if (
            isinstance(self.utc_offset_hours, bool)
            or not isinstance(self.utc_offset_hours, int)
            or not -12 <= self.utc_offset_hours <= 14
        ):
            raise InvalidParameterError(
                f"utc_offset_hours must be an int in [-12, 14], got {self.utc_offset_hours!r}"
            )
        if not (
            isinstance(self.calls_per_day, int | float)
            and math.isfinite(self.calls_per_day)
            and self.calls_per_day > 0
        ):
            raise InvalidParameterError(
                f"calls_per_day must be a finite number > 0, got {self.calls_per_day!r}"
            )
        for field in ("english_share", "stereo_share"):
            value = getattr(self, field)
            if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
                raise InvalidParameterError(f"{field} must be in [0, 1], got {value!r}")
        # Read-only and in LABELS order, so a preset cannot be changed behind its users.
        ordered = {label: float(shares[label]) for label in LABELS}
        object.__setattr__(self, "label_shares", MappingProxyType(ordered))

    def __hash__(self) -> int:
        # The generated hash would fail on the mapping field.
        return hash((self.name, tuple(self.label_shares.items()), self.utc_offset_hours))


def _shares(emergency: float, non_emergency: float, prank: float, ghost: float) -> dict[str, float]:
    """Normalise four non-negative weights into label shares (exact counts stay exact)."""
    total = emergency + non_emergency + prank + ghost
    return {
        "emergency": emergency / total,
        "non_emergency": non_emergency / total,
        "prank": prank / total,
        "ghost": ghost / total,
    }


# Kendari 112, 1-21 June 2025: 5,982 calls in three weeks (5,982 / 21 ~ 285 a day). A
# third of the answered calls were prank or ghost and 2,522 were valid reports, so the
# answered calls were 2,522 / (2/3) = 3,783 and prank + ghost = 1,261, split evenly
# (630.5 each, 1/6 of answered calls). Only 99 of the valid reports needed a field team:
# emergency = 99 / 3,783 ~ 2.6 %, non_emergency = (2,522 - 99) / 3,783 ~ 64.1 %.
_KENDARI = Preset(
    name="kendari-2025",
    description="Kendari 112 (Southeast Sulawesi), June 2025: mostly information calls.",
    source=(
        "Kendari 112, 1-21 June 2025: 5,982 calls in three weeks (~285/day); a third of "
        "answered calls prank or ghost; of 2,522 valid reports 99 needed a field team. "
        "Answered = 2,522 / (2/3) = 3,783; prank = ghost = 630.5 / 3,783 = 1/6 each "
        "(even split assumed); emergency = 99 / 3,783 ~ 2.6 %; non_emergency = "
        "2,423 / 3,783 ~ 64.1 %."
    ),
    label_shares=_shares(99.0, 2522.0 - 99.0, 1261.0 / 2.0, 1261.0 / 2.0),
    utc_offset_hours=8,  # WITA
    calls_per_day=5982.0 / 21.0,
)

# Purworejo 112: 1,147 prank, 1,170 ghost, 455 information and 30 emergency calls out of
# 2,802. The period was not stated; we assume about a year, 2,802 / 365 ~ 7.7 calls/day.
_PURWOREJO = Preset(
    name="purworejo",
    description="Purworejo 112 (Central Java): prank and ghost calls dominate.",
    source=(
        "Purworejo 112: 1,147 prank, 1,170 ghost, 455 information (non_emergency) and "
        "30 emergency calls of 2,802. The period is an assumption (about a year: "
        "2,802 / 365 ~ 7.7 calls/day)."
    ),
    label_shares=_shares(30.0, 455.0, 1147.0, 1170.0),
    utc_offset_hours=7,  # WIB
    calls_per_day=2802.0 / 365.0,
)

# Jakarta 112, 2024: 23 % of calls were pranks. The other three shares (ghost 20 %,
# emergency 12 %, non_emergency 45 %) and the volume (~2,000/day) are assumptions.
_JAKARTA = Preset(
    name="jakarta-2024",
    description="Jakarta 112, 2024: a high-volume metropolitan centre.",
    source=(
        "Jakarta 112, 2024: 23 % prank calls. Ghost 20 %, emergency 12 % and "
        "non_emergency 45 % are assumptions, as is the volume of ~2,000 calls/day."
    ),
    label_shares=_shares(0.12, 0.45, 0.23, 0.20),
    utc_offset_hours=7,  # WIB
    calls_per_day=2000.0,
)

# Not a real centre: equal classes so that rare classes have numbers in training/tests.
_BALANCED = Preset(
    name="balanced",
    description="Equal shares of the four labels, for training and tests.",
    source="Not a real centre: 25 % of each label by construction; volume 300 calls/day.",
    label_shares=_shares(1.0, 1.0, 1.0, 1.0),
    utc_offset_hours=7,
    calls_per_day=300.0,
)

PRESETS: Mapping[str, Preset] = MappingProxyType(
    {p.name: p for p in (_KENDARI, _PURWOREJO, _JAKARTA, _BALANCED)}
)


def get_preset(name: str) -> Preset:
    """Return the preset called ``name``.

    Parameters
    ----------
    name : str
        One of the keys of :data:`PRESETS`.

    Returns
    -------
    Preset

    Raises
    ------
    InvalidParameterError
        If ``name`` is not a known preset; the message lists the valid names.
    """
    if not isinstance(name, str) or name not in PRESETS:
        raise InvalidParameterError(
            f"unknown preset {name!r}; expected one of: {', '.join(sorted(PRESETS))}"
        )
    return PRESETS[name]
