"""The phrase template engine: fills ``{slots}`` from the phrase banks at random.

Template syntax: ``{name}`` draws from the slot or caller bank ``name``; ``{a|b|}`` picks
one of the inline alternatives (an empty alternative makes the text optional). Slot
values may contain further slots; they are filled innermost first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from classifier.errors import InvalidParameterError
from training.simulator.phrasebank import IntSlot, PhoneSlot, Slot, load

__all__ = [
    "HOAXABLE",
    "NO_OVERRIDES",
    "Overrides",
    "check_rng",
    "expand",
    "laughter_text",
    "pick",
    "say",
    "tidy",
]

Overrides = Mapping[str, tuple[str, ...]]
NO_OVERRIDES: Overrides = {}

# Hoaxes borrow the wording of real reports about these incidents ({report_any}, ...).
HOAXABLE: tuple[str, ...] = (
    "fire",
    "traffic_accident",
    "ambulance",
    "security_disturbance",
    "riot",
)

_SLOT_RE = re.compile(r"\{([^{}]*)\}")

# Syllables and their shares: mostly "ha", giggly "hi"/"he", a few "hu"/"ki".
_LAUGH_SYLLABLES: tuple[str, ...] = ("ha", "hi", "he", "hu", "ki")
_LAUGH_P: tuple[float, ...] = (0.45, 0.22, 0.2, 0.05, 0.08)


def check_rng(rng: object) -> None:
    """Refuse anything but a :class:`numpy.random.Generator`."""
    if not isinstance(rng, np.random.Generator):
        raise InvalidParameterError(
            f"rng must be a numpy.random.Generator, got {type(rng).__name__}"
        )


def pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    """One of ``options``, uniformly."""
    return options[int(rng.integers(len(options)))]


def _phone(rng: np.random.Generator, slot: PhoneSlot) -> str:
    # Indonesian mobile numbers: 08xx plus 7-9 digits, read digit by digit.
    digits = slot.digits
    n = int(rng.integers(7, 10))
    body = " ".join(digits[int(d)] for d in rng.integers(0, 10, size=n))
    second = digits[int(rng.choice([1, 2, 5, 7, 9]))]
    return f"{slot.prefix} {digits[8]} {second} {digits[int(rng.integers(1, 10))]} {body}"


def _integer(rng: np.random.Generator, slot: IntSlot) -> str:
    value = int(rng.integers(slot.lo, slot.hi + 1))
    # "112" in a sentence reads as the emergency number itself, never as a plate.
    return str(value + 1 if value == 112 else value)


def _draw(rng: np.random.Generator, slot: Slot) -> str:
    if isinstance(slot, PhoneSlot):
        return _phone(rng, slot)
    if isinstance(slot, IntSlot):
        return _integer(rng, slot)
    return pick(rng, slot)


def expand(
    rng: np.random.Generator, template: str, language: str, over: Overrides = NO_OVERRIDES
) -> str:
    """Fill every ``{slot}`` / ``{a|b}`` in ``template``, innermost first.

    ``over`` replaces slot option lists for one call (its honorific, its region).
    """
    phrases = load(language)
    slots, bank = phrases.slots, phrases.caller

    def repl(match: re.Match[str]) -> str:
        key = match.group(1)
        if "|" in key:
            return pick(rng, key.split("|"))
        if key in over:
            return pick(rng, over[key])
        if key == "laugh":
            return laughter_text(rng)
        if key in ("report_any", "detail_any"):
            # Hoaxes borrow the wording of real reports: only the caller's intent differs.
            stage = key.split("_")[0]
            return pick(rng, bank[f"{stage}.{pick(rng, HOAXABLE)}"])
        if key == "location_any":
            return pick(rng, bank["location"])
        if key in slots:
            return _draw(rng, slots[key])
        if key in bank:
            return pick(rng, bank[key])
        raise KeyError(f"unknown phrase slot {key!r}")  # the loader checks the banks: a bug

    text = template
    for _ in range(12):  # slots nest a few levels at most
        new = _SLOT_RE.sub(repl, text)
        if new == text:
            break
        text = new
    return tidy(text)


def tidy(text: str) -> str:
    """Collapse spaces, drop spaces before punctuation and doubled commas, capitalise."""
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,.!?])", r"\1", text)
    text = re.sub(r",\s*,", ",", text)
    text = re.sub(r"^[,\s]+", "", text)
    return text[:1].upper() + text[1:] if text else text


def say(
    rng: np.random.Generator,
    key: str,
    language: str,
    over: Overrides = NO_OVERRIDES,
    used: set[str] | None = None,
) -> str:
    """One sentence from caller bank ``key``; avoids sentences already in ``used`` if it can."""
    bank = load(language).caller
    text = ""
    for _ in range(6):
        text = expand(rng, pick(rng, bank[key]), language, over)
        if used is None or text not in used:
            break
    if used is not None:
        used.add(text)
    return text


def laughter_text(rng: np.random.Generator) -> str:
    """Laughter spelled so that espeak-ng says it, e.g. "hahaha", "hihihi, hahaha".

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every choice.

    Returns
    -------
    str
        One to three bursts of 2..7 repeated syllables ("ha", "hi", "he", "hu", "ki"),
        written together ("hahaha") or spaced ("ha ha ha"), sometimes a loud
        "huahahaha", with pauses between bursts.
    """
    check_rng(rng)
    bursts = []
    for _ in range(int(rng.integers(1, 4))):
        syllable = _LAUGH_SYLLABLES[int(rng.choice(len(_LAUGH_SYLLABLES), p=_LAUGH_P))]
        count = int(rng.integers(2, 8))
        if syllable == "ha" and rng.random() < 0.15:
            burst = "hua" + "ha" * (count - 1)
        else:
            burst = ("" if rng.random() < 0.75 else " ").join([syllable] * count)
        bursts.append(burst)
    text = bursts[0]
    for burst in bursts[1:]:
        text += pick(rng, (" ", ", ", "... ")) + burst
    return text
