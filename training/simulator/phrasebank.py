"""The simulator's phrase banks: TOML data files, read once and checked when read.

``data/phrases_<language>.toml`` holds every word the simulated callers and call-takers
say (see the file headers for the template syntax). :func:`load` parses a language's
file once per process and refuses a malformed one with a :class:`PhraseBankError` that
names the file, the key and the problem: a missing or empty bank, a value of the wrong
type, a ``{placeholder}`` that names no slot, unbalanced braces.

The topics (:data:`EMERGENCY_INCIDENTS`, ...) live here because the banks are keyed by
them: every incident needs its ``report.<incident>`` bank, and so on.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from classifier.errors import CallsiftError

__all__ = [
    "CALLER_KINDS",
    "EMERGENCY_INCIDENTS",
    "LANGUAGES",
    "NON_EMERGENCY_TOPICS",
    "PRANK_KINDS",
    "IntSlot",
    "PhoneSlot",
    "PhraseBank",
    "PhraseBankError",
    "load",
    "read",
]

EMERGENCY_INCIDENTS: tuple[str, ...] = (
    "fire",
    "traffic_accident",
    "fallen_tree",
    "riot",
    "flood",
    "ambulance",
    "drugs",
    "security_disturbance",
)
NON_EMERGENCY_TOPICS: tuple[str, ...] = (
    "phone_locked",
    "no_signal",
    "pdam_water",
    "pln_power_cut",
    "street_light_out",
    "damaged_road",
    "information",
)
PRANK_KINDS: tuple[str, ...] = (
    "fake_incident",
    "insult",
    "giggle",
    "hoax_report",
    "silly_question",
    "silent_prank",
)
LANGUAGES: tuple[str, ...] = ("id", "en")
CALLER_KINDS: tuple[str, ...] = ("adult_male", "adult_female", "child", "elderly")

DATA_DIR = Path(__file__).with_name("data")

# Placeholders the template engine fills itself rather than from a bank.
ENGINE_SLOTS: frozenset[str] = frozenset({"laugh", "report_any", "detail_any", "location_any"})
_SLOT_RE = re.compile(r"\{([^{}]*)\}")

Texts = tuple[str, ...]


class PhraseBankError(CallsiftError):
    """A phrase bank data file is missing, unreadable or malformed."""


@dataclass(frozen=True)
class IntSlot:
    """A slot drawn as an integer in ``[lo, hi]``, written in digits."""

    lo: int
    hi: int


@dataclass(frozen=True)
class PhoneSlot:
    """A slot drawn as an Indonesian mobile number read digit by digit."""

    prefix: str
    digits: Texts


Slot = Texts | IntSlot | PhoneSlot


@dataclass(frozen=True)
class PhraseBank:
    """Every phrase of one language, as read from its data file.

    Attributes
    ----------
    language : str
        ``"id"`` or ``"en"``.
    greetings : tuple of str
        How the call-taker answers; ``{tod}``, ``{ct_name}`` and ``{city}`` are filled.
    call_taker_names, cities : tuple of str
        What a greeting's ``{ct_name}`` and ``{city}`` draw from.
    background : tuple of str
        Everyday sentences for distant voices, TV and radio (caller-side templates).
    slots : mapping of str to slot
        Caller-side ``{slot}`` values: a tuple of templates, an :class:`IntSlot` or a
        :class:`PhoneSlot`.
    caller : mapping of str to tuple of str
        Caller templates by stage and topic (``report.fire``, ``detail.fire``, ...).
    caller_names : mapping of str to tuple of str
        The name a caller gives for themselves, by caller kind (may be empty).
    regions : mapping of str to mapping
        Per-call slot overrides by region (may be empty).
    call_taker : mapping of str to tuple of str
        Call-taker replies by stage; only ``{hon2}`` is filled.
    caller_honorifics : mapping of str to tuple of str
        How the call-taker addresses the caller, by caller kind.
    ghost : mapping of str to tuple of str
        ``open``, ``mid``, ``close`` prompts into a silent line and the ``tod`` words.
    """

    language: str
    greetings: Texts
    call_taker_names: Texts
    cities: Texts
    background: Texts
    slots: Mapping[str, Slot]
    caller: Mapping[str, Texts]
    caller_names: Mapping[str, Texts]
    regions: Mapping[str, Mapping[str, Texts]]
    call_taker: Mapping[str, Texts]
    caller_honorifics: Mapping[str, Texts]
    ghost: Mapping[str, Texts]


@functools.cache
def load(language: str) -> PhraseBank:
    """The phrase bank of ``language`` (``"id"`` or ``"en"``), read once per process.

    Raises
    ------
    PhraseBankError
        If the language has no data file or the file is malformed.
    """
    if language not in LANGUAGES:
        raise PhraseBankError(f"no phrase bank for language {language!r}; one of {LANGUAGES}")
    return read(DATA_DIR / f"phrases_{language}.toml", language=language)


def read(path: Path, *, language: str) -> PhraseBank:
    """Read and check one phrase bank file (uncached: :func:`load` is the usual way in).

    Parameters
    ----------
    path : pathlib.Path
        A ``phrases_<language>.toml`` file.
    language : str
        The language it holds, for the banks a language must have.

    Returns
    -------
    PhraseBank

    Raises
    ------
    PhraseBankError
        Naming the file, the key and the problem.
    """
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise PhraseBankError(f"{path}: cannot read the phrase bank: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PhraseBankError(f"{path}: not valid TOML: {exc}") from exc
    return _Checker(path).bank(doc, language)


class _Checker:
    """Turns a parsed file into a :class:`PhraseBank`, naming ``file: key: problem``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> PhraseBankError:
        return PhraseBankError(f"{self.path}: {key}: {problem}")

    def texts(self, key: str, value: object) -> Texts:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, f"must be a list of strings, got {_describe(value)}")
        if not value:
            raise self.fail(key, "empty bank: needs at least one phrase")
        return tuple(value)

    def table(self, key: str, value: object, *, optional: bool = False) -> dict[str, Any]:
        if value is None and optional:
            return {}
        if value is None:
            raise self.fail(key, "missing")
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table, got {_describe(value)}")
        return value

    def banks(self, key: str, value: object, *, optional: bool = False) -> dict[str, Texts]:
        table = self.table(key, value, optional=optional)
        return {k: self.texts(f"{key}.{k}", v) for k, v in table.items()}

    def slot(self, key: str, value: object) -> Slot:
        if isinstance(value, list):
            return self.texts(key, value)
        spec = self.table(key, value)
        kind = spec.get("kind")
        if kind == "int" and set(spec) == {"kind", "lo", "hi"}:
            lo, hi = spec["lo"], spec["hi"]
            if not (type(lo) is int and type(hi) is int and lo <= hi):
                raise self.fail(key, f"lo and hi must be integers, lo <= hi; got {lo!r}, {hi!r}")
            return IntSlot(lo=lo, hi=hi)
        if kind == "phone" and set(spec) == {"kind", "prefix", "digits"}:
            digits = self.texts(f"{key}.digits", spec["digits"])
            if len(digits) != 10 or not isinstance(spec["prefix"], str):
                raise self.fail(key, "a phone slot needs a prefix string and the 10 digit words")
            return PhoneSlot(prefix=spec["prefix"], digits=digits)
        raise self.fail(
            key,
            'a slot is a list of strings, {kind = "int", lo, hi} or '
            f'{{kind = "phone", prefix, digits}}; got {spec!r}',
        )

    def require(self, section: str, have: Mapping[str, object], keys: Iterable[str]) -> None:
        missing = [k for k in keys if k not in have]
        if missing:
            raise self.fail(section, f"missing bank(s) {', '.join(missing)}")

    def placeholders(self, key: str, texts: Iterable[str], allowed: Iterable[str]) -> None:
        allowed = frozenset(allowed)
        for text in texts:
            names = _placeholders(text)
            if names is None:
                raise self.fail(key, f"unbalanced braces in {text!r}")
            for name in names:
                if name not in allowed:
                    raise self.fail(key, f"unknown placeholder {{{name}}} in {text!r}")

    def bank(self, doc: dict[str, Any], language: str) -> PhraseBank:
        top = {
            k: self.texts(k, doc.get(k))
            for k in ("greetings", "call_taker_names", "cities", "background")
        }
        slot_table = self.table("slots", doc.get("slots"))
        slots = {k: self.slot(f"slots.{k}", v) for k, v in slot_table.items()}
        caller = self.banks("caller", doc.get("caller"))
        caller_names = self.banks("caller_names", doc.get("caller_names"), optional=True)
        regions = {
            name: self.banks(f"regions.{name}", table)
            for name, table in self.table("regions", doc.get("regions"), optional=True).items()
        }
        call_taker = self.banks("call_taker", doc.get("call_taker"))
        caller_honorifics = self.banks("caller_honorifics", doc.get("caller_honorifics"))
        ghost = self.banks("ghost", doc.get("ghost"))
        unknown = set(doc) - {*top, "slots", "caller", "caller_names", "regions", "call_taker",
                              "caller_honorifics", "ghost"}  # fmt: skip
        if unknown:
            raise self.fail(", ".join(sorted(unknown)), "unknown section")

        # The banks the dialogue reaches for by name.
        self.require("slots", slots, ("open", "open_short", "urg_tail", "hon", "own_name"))
        self.require("caller", caller, _caller_keys())
        self.require("call_taker", call_taker, _call_taker_keys())
        self.require("caller_honorifics", caller_honorifics, CALLER_KINDS)
        self.require("ghost", ghost, ("open", "mid", "close", "tod"))
        if caller_names:
            self.require("caller_names", caller_names, CALLER_KINDS)
        for name, over in regions.items():
            extra = set(over) - set(slots)
            if extra:
                raise self.fail(f"regions.{name}", f"overrides no slot named {sorted(extra)}")

        # Caller-side text is expanded with the slots and caller banks; the rest only
        # has the few placeholders its function fills.
        spoken = {*slots, *caller, *ENGINE_SLOTS}
        for k, slot in slots.items():
            if isinstance(slot, tuple):
                self.placeholders(f"slots.{k}", slot, spoken)
        sections: list[tuple[str, Mapping[str, Texts], Iterable[str]]] = [
            ("caller", caller, spoken),
            ("caller_names", caller_names, spoken),
            ("call_taker", call_taker, ("hon2",)),
            ("caller_honorifics", caller_honorifics, ()),
            ("ghost", ghost, ("hon2", "tod")),
        ]
        sections += [(f"regions.{name}", over, spoken) for name, over in regions.items()]
        for section, banks, allowed in sections:
            for k, texts in banks.items():
                self.placeholders(f"{section}.{k}", texts, allowed)
        self.placeholders("background", top["background"], spoken)
        self.placeholders("greetings", top["greetings"], ("tod", "ct_name", "city"))
        for k in ("call_taker_names", "cities"):
            self.placeholders(k, top[k], ())
        return PhraseBank(
            language=language,
            slots=slots,
            caller=caller,
            caller_names=caller_names,
            regions=regions,
            call_taker=call_taker,
            caller_honorifics=caller_honorifics,
            ghost=ghost,
            **top,
        )


def _caller_keys() -> list[str]:
    keys = ["location", "identity", "urgency", "closing.emergency", "ne_extra"]
    keys += ["closing.non_emergency"]
    keys += [f"{stage}.{t}" for t in EMERGENCY_INCIDENTS for stage in ("report", "detail")]
    keys += [f"{stage}.{t}" for t in NON_EMERGENCY_TOPICS for stage in ("request", "detail")]
    return keys + [f"prank.{k}.{part}" for k in PRANK_KINDS for part in ("open", "mid", "close")]


def _call_taker_keys() -> list[str]:
    keys = ["ack", "hon2", "ask_location", "calm", "ask_name", "close", "ne_ask", "ne_close"]
    keys += ["prank_react", "prank_close", "hello", "filler"]
    for incident in (*EMERGENCY_INCIDENTS, "generic"):
        keys += [f"ask_detail.{incident}", f"dispatch.{incident}", f"instruct.{incident}"]
    return keys + [f"ne_answer.{t}" for t in NON_EMERGENCY_TOPICS]


def _placeholders(text: str) -> list[str] | None:
    """The slot names ``text`` uses, innermost first; ``None`` if its braces do not pair.

    Inline alternatives (``{a|b}``) are not names.
    """
    names: list[str] = []

    def take(match: re.Match[str]) -> str:
        if "|" not in match.group(1):
            names.append(match.group(1))
        return ""

    while True:
        new = _SLOT_RE.sub(take, text)
        if new == text:
            break
        text = new
    return None if "{" in text or "}" in text else names


def _describe(value: object) -> str:
    return "nothing (missing)" if value is None else f"{type(value).__name__} {value!r}"[:80]
