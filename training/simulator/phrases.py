"""The dialogue of a simulated 112 call: what the caller and the call-taker say, in turn.

The words come from the phrase banks (:mod:`training.simulator.phrasebank`, data files
``data/phrases_<language>.toml``) through the template engine
(:mod:`training.simulator.templates`); this module decides which banks a call draws from
and in which order: a report, its location and details, the call-taker's questions, the
prank that gives itself away, the silent line.

The text is written to be *spoken by espeak-ng*, not read: ``112`` is spelled
"satu satu dua", acronyms the way people say them, and commas / "..." mark the pauses of
a caller who is thinking or panicking.
"""

from __future__ import annotations

import re

import numpy as np

from classifier.errors import InvalidParameterError
from classifier.formats import LABELS
from training.simulator.phrasebank import (
    CALLER_KINDS,
    EMERGENCY_INCIDENTS,
    LANGUAGES,
    NON_EMERGENCY_TOPICS,
    PRANK_KINDS,
    load,
)
from training.simulator.templates import (
    HOAXABLE,
    Overrides,
    check_rng,
    expand,
    laughter_text,
    pick,
    say,
    tidy,
)

__all__ = [
    "EMERGENCY_INCIDENTS",
    "LABELS",
    "NON_EMERGENCY_TOPICS",
    "PRANK_KINDS",
    "background_talk",
    "call_taker_ghost_prompts",
    "call_taker_greeting",
    "call_taker_prompts",
    "caller_turns",
    "laughter_text",
    "pick_topic",
]

_TOPICS: dict[str, tuple[str, ...]] = {
    "emergency": EMERGENCY_INCIDENTS,
    "non_emergency": NON_EMERGENCY_TOPICS,
    "prank": PRANK_KINDS,
    "ghost": ("none",),
}
# Rough shares of real 112 traffic per topic (accidents and medical calls dominate).
_TOPIC_WEIGHTS: dict[str, tuple[float, ...]] = {
    "emergency": (0.15, 0.22, 0.08, 0.06, 0.08, 0.23, 0.05, 0.13),
    "non_emergency": (0.20, 0.12, 0.12, 0.16, 0.10, 0.10, 0.20),
    "prank": (0.22, 0.17, 0.20, 0.15, 0.18, 0.08),
    "ghost": (1.0,),
}

# --------------------------------------------------------------------------- validation


def _check_language(language: str) -> None:
    if language not in LANGUAGES:
        raise InvalidParameterError(f"language must be one of {LANGUAGES}, got {language!r}")


def _check_label(label: str) -> None:
    if label not in LABELS:
        raise InvalidParameterError(f"label must be one of {LABELS}, got {label!r}")


def _check_topic(label: str, topic: str) -> None:
    _check_label(label)
    if topic not in _TOPICS[label]:
        raise InvalidParameterError(
            f"topic for label {label!r} must be one of {_TOPICS[label]}, got {topic!r}"
        )


def _check_count(name: str, value: int | None, *, lo: int, hi: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not lo <= value <= hi:
        raise InvalidParameterError(f"{name} must be None or an int in [{lo}, {hi}], got {value!r}")


def _check_caller_kind(caller_kind: str | None) -> None:
    if caller_kind is not None and caller_kind not in CALLER_KINDS:
        raise InvalidParameterError(
            f"caller_kind must be None or one of {CALLER_KINDS}, got {caller_kind!r}"
        )


# --------------------------------------------------------------------------- public API


def pick_topic(rng: np.random.Generator, *, label: str) -> str:
    """Draw the incident / topic / prank kind of a call.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the draw.
    label : str
        ``"emergency"``, ``"non_emergency"``, ``"prank"`` or ``"ghost"``.

    Returns
    -------
    str
        One of :data:`EMERGENCY_INCIDENTS`, :data:`NON_EMERGENCY_TOPICS` or
        :data:`PRANK_KINDS`, weighted by how often each occurs; ``"none"`` for ghost.
    """
    check_rng(rng)
    _check_label(label)
    topics = _TOPICS[label]
    return topics[int(rng.choice(len(topics), p=_TOPIC_WEIGHTS[label]))]


def _opener(template: str) -> str:
    # "Halo pak, pak polisi, ..." sounds wrong: no honorific opener before an honorific.
    return "{open_short}" if template.startswith(("{hon}", "{relative}")) else "{open}"


def _caller_overrides(
    rng: np.random.Generator, language: str, caller_kind: str | None
) -> dict[str, tuple[str, ...]]:
    """Per-call choices: how the caller addresses the call-taker, where they live, who
    they are (a woman does not introduce herself as "Budi")."""
    phrases = load(language)
    hon = phrases.slots["hon"]
    assert isinstance(hon, tuple)  # the loader keeps "hon" a list of words
    over: dict[str, tuple[str, ...]] = {"hon": (pick(rng, hon),)}
    # Regions and own names are Indonesian only: the English banks have neither.
    if phrases.regions:
        over.update(phrases.regions[pick(rng, tuple(phrases.regions))])
    if phrases.caller_names and caller_kind is not None:
        # Only the caller's own name: third parties ("rumah {name}") stay random.
        over["own_name"] = phrases.caller_names[caller_kind]
    return over


def _emergency_turns(
    rng: np.random.Generator,
    topic: str,
    language: str,
    n: int,
    over: Overrides,
    *,
    hoax: bool = False,
) -> list[str]:
    report = pick(rng, load(language).caller[f"report.{topic}"])
    opening = expand(rng, _opener(report) + report + "{urg_tail}", language, over)
    if n == 1:
        return [opening]
    middle_keys = ["location", f"detail.{topic}"]
    extras = [f"detail.{topic}", "identity", "urgency", f"detail.{topic}"]
    if hoax:
        extras = ["prank.hoax_report.mid", f"detail.{topic}", "urgency", "prank.hoax_report.mid"]
    middle_keys += [extras[int(i)] for i in rng.permutation(len(extras))]
    while len(middle_keys) < n - 2:
        middle_keys.append(pick(rng, (f"detail.{topic}", "urgency", "location")))
    closing_key = "prank.hoax_report.close" if hoax else "closing.emergency"
    used = {opening}
    turns = [opening] + [say(rng, k, language, over, used) for k in middle_keys[: n - 2]]
    return [*turns, say(rng, closing_key, language, over, used)]


def _scripted_turns(
    rng: np.random.Generator, prefix: str, language: str, n: int, over: Overrides
) -> list[str]:
    """Opening, ``n - 2`` middle turns and a closing from ``{prefix}.open/.mid/.close``."""
    used: set[str] = set()
    turns = [say(rng, f"{prefix}.open", language, over, used)]
    if n == 1:
        return turns
    turns += [say(rng, f"{prefix}.mid", language, over, used) for _ in range(n - 2)]
    return [*turns, say(rng, f"{prefix}.close", language, over, used)]


_DEFAULT_TURNS: dict[str, tuple[int, int]] = {
    "emergency": (3, 6),
    "non_emergency": (2, 4),
    "fake_incident": (2, 4),
    "insult": (1, 4),
    "giggle": (1, 3),
    "hoax_report": (3, 5),
    "silly_question": (1, 3),
    "silent_prank": (1, 2),
}


def caller_turns(
    rng: np.random.Generator,
    *,
    label: str,
    topic: str,
    language: str = "id",
    n_turns: int | None = None,
    caller_kind: str | None = None,
) -> list[str]:
    """The caller's successive utterances in one call.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every choice.
    label : str
        One of :data:`LABELS`.
    topic : str
        From :func:`pick_topic` for the same label (``"none"`` for ghost).
    language : str
        ``"id"`` or ``"en"``.
    n_turns : int or None
        Exact number of turns (1..30); ``None`` draws a typical number for the label.
    caller_kind : str or None
        The caller's :attr:`Voice.kind`, so that the name the caller gives fits the
        voice. ``None`` draws names freely.

    Returns
    -------
    list of str
        Non-empty utterances in call order. Emergency: report, location, details,
        closing. Non-emergency: request, details, closing. Prank: depends on the kind
        (laughter, mild insults, silly questions, or a hoax worded like a real report).
        Ghost: always ``[]``, the caller never speaks. Within a call the caller keeps
        one honorific for the call-taker and one region (streets, particles).
    """
    check_rng(rng)
    _check_topic(label, topic)
    _check_language(language)
    _check_count("n_turns", n_turns, lo=1, hi=30)
    _check_caller_kind(caller_kind)
    if label == "ghost":
        return []
    key = topic if label == "prank" else label
    lo, hi = _DEFAULT_TURNS[key]
    n = int(n_turns) if n_turns is not None else int(rng.integers(lo, hi + 1))
    over = _caller_overrides(rng, language, caller_kind)

    if label == "emergency":
        return _emergency_turns(rng, topic, language, n, over)
    if label == "non_emergency":
        request = pick(rng, load(language).caller[f"request.{topic}"])
        turns = [expand(rng, _opener(request) + request, language, over)]
        if n == 1:
            return turns
        used = set(turns)
        for i in range(n - 2):
            key = f"detail.{topic}" if i % 2 == 0 else "ne_extra"
            turns.append(say(rng, key, language, over, used))
        return [*turns, say(rng, "closing.non_emergency", language, over, used)]
    if topic == "hoax_report" and rng.random() < 0.5:
        # Half the hoaxes copy a real report's whole structure: only the intent differs.
        return _emergency_turns(rng, pick(rng, HOAXABLE), language, n, over, hoax=True)
    return _scripted_turns(rng, f"prank.{topic}", language, n, over)


def _time_of_day(rng: np.random.Generator, hour: int, language: str) -> str:
    if language == "en":
        if 4 <= hour < 12:
            return "morning"
        return "afternoon" if 12 <= hour < 18 else "evening"
    if hour < 4:
        # After midnight call-takers say either: "malam" (still night) or "pagi" (dini hari).
        return "malam" if rng.random() < 0.6 else "pagi"
    if hour < 11:
        return "pagi"
    if hour < 15:
        return "siang"
    return "sore" if hour < 18 else "malam"


def call_taker_greeting(rng: np.random.Generator, *, hour: int, language: str = "id") -> str:
    """How the call-taker answers.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every choice.
    hour : int
        Local hour of the call, 0..23. Indonesian: pagi 4..10, siang 11..14, sore 15..17,
        malam 18..3 (0..3 is malam or pagi at random, both are heard).
        English: morning 4..11, afternoon 12..17, evening otherwise.
    language : str
        ``"id"`` or ``"en"``.

    Returns
    -------
    str
        E.g. "Satu satu dua, selamat pagi, ada yang bisa dibantu?".
    """
    check_rng(rng)
    _check_language(language)
    if isinstance(hour, bool) or not isinstance(hour, int | np.integer) or not 0 <= hour <= 23:
        raise InvalidParameterError(f"hour must be an int in [0, 23], got {hour!r}")
    phrases = load(language)
    template = pick(rng, phrases.greetings)
    tod = _time_of_day(rng, int(hour), language)
    text = template.replace("{tod}", tod)
    text = text.replace("{ct_name}", pick(rng, phrases.call_taker_names))
    text = text.replace("{city}", pick(rng, phrases.cities))
    return tidy(text)


def _ct(
    rng: np.random.Generator,
    key: str,
    language: str,
    hon2: str,
    used: set[str],
    *,
    ack: bool = False,
) -> str:
    bank = load(language).call_taker
    text = ""
    for _ in range(6):
        text = pick(rng, bank[key])
        if ack and rng.random() < 0.6:
            text = f"{pick(rng, bank['ack'])}, {text}"
        # Call-taker text only uses {hon2}: one honorific for the caller, all call long.
        text = tidy(text.replace("{hon2}", hon2))
        if text not in used:
            break
    used.add(text)
    return text


def _caller_honorific(rng: np.random.Generator, language: str, caller_kind: str | None) -> str:
    table = load(language).caller_honorifics
    kind = caller_kind if caller_kind is not None else pick(rng, CALLER_KINDS)
    return pick(rng, table[kind])


def call_taker_prompts(
    rng: np.random.Generator,
    *,
    label: str,
    topic: str,
    language: str = "id",
    n: int | None = None,
    caller_kind: str | None = None,
) -> list[str]:
    """Call-taker replies to put between the caller's turns, in order.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every choice.
    label, topic : str
        As for :func:`caller_turns`. Hoax reports get the same prompts as real
        emergencies, because the call-taker cannot tell them apart.
    language : str
        ``"id"`` or ``"en"``.
    n : int or None
        Number of prompts (1..30); ``None`` gives 6. Ghost calls get
        :func:`call_taker_ghost_prompts`.
    caller_kind : str or None
        ``"adult_male"``, ``"adult_female"``, ``"child"`` or ``"elderly"`` (as
        :attr:`Voice.kind`): picks how the call-taker addresses the caller ("pak",
        "bu", "dik"). ``None`` draws one. The honorific stays the same for the call.

    Returns
    -------
    list of str
        ``n`` prompts. Emergency: location, details, name, dispatch, instructions,
        closing. Non-emergency: clarifying question, redirection, closing.
        Prank: normal questions first, then warnings and "saya tutup ya".
    """
    check_rng(rng)
    _check_topic(label, topic)
    _check_language(language)
    _check_count("n", n, lo=1, hi=30)
    _check_caller_kind(caller_kind)
    count = 6 if n is None else int(n)
    if label == "ghost":
        return call_taker_ghost_prompts(rng, language=language, n=count)

    hon2 = _caller_honorific(rng, language, caller_kind)
    incident = "generic" if topic == "hoax_report" else topic
    if label == "emergency" or topic == "hoax_report":
        keys = [
            "ask_location",
            f"ask_detail.{incident}",
            "calm",
            "ask_name",
            f"ask_detail.{incident}",
            f"dispatch.{incident}",
            f"instruct.{incident}",
        ]
        if rng.random() < 0.5:
            keys.remove("calm")
        closing = "close"
    elif label == "non_emergency":
        keys = ["ne_ask", f"ne_answer.{topic}", "ne_ask"]
        closing = "ne_close"
    elif topic == "fake_incident":
        # Sounds real at first: the call-taker asks the usual questions, then catches on.
        keys = ["ask_location", "ask_detail.generic", "prank_react"]
        closing = "prank_close"
    elif topic in ("giggle", "silent_prank"):
        keys = ["hello", "hello", "prank_react"]
        closing = "prank_close"
    else:
        keys = ["prank_react", "prank_react", "prank_react"]
        closing = "prank_close"
    while len(keys) < count - 1:
        keys.append("filler" if label != "prank" else "prank_react")
    keys = keys[: count - 1] if count > 1 else []
    used: set[str] = set()
    prompts = [
        _ct(rng, k, language, hon2, used, ack=k.startswith(("ask", "dispatch", "ne_answer")))
        for k in keys
    ]
    prompts.append(_ct(rng, closing, language, hon2, used))
    return prompts


def call_taker_ghost_prompts(
    rng: np.random.Generator, *, language: str = "id", n: int = 3
) -> list[str]:
    """What the call-taker says into a silent / pocket-dialled line.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every choice.
    language : str
        ``"id"`` or ``"en"``.
    n : int
        Number of prompts, 1..30.

    Returns
    -------
    list of str
        ``n`` prompts: an opening "halo?", repeated "halo? halo?" style checks,
        and (for ``n >= 2``) a closing "kalau tidak ada yang bicara saya tutup ya".
    """
    check_rng(rng)
    _check_language(language)
    _check_count("n", n, lo=1, hi=30)
    phrases = load(language)
    bank = phrases.ghost
    hon = phrases.call_taker["hon2"]

    def fill(text: str) -> str:
        text = re.sub(r"\{hon2\}", lambda _m: pick(rng, hon), text)
        # A {tod} word is drawn for every prompt, used or not: the draws stay in step.
        return tidy(text.replace("{tod}", pick(rng, bank["tod"])))

    prompts = [fill(pick(rng, bank["open"]))]
    if n == 1:
        return prompts
    mids = bank["mid"]
    order = [int(i) for i in rng.permutation(len(mids))]
    prompts += [fill(mids[order[i % len(order)]]) for i in range(n - 2)]
    prompts.append(fill(pick(rng, bank["close"])))
    return prompts


def background_talk(rng: np.random.Generator, *, language: str = "id") -> str:
    """Ordinary talk for distant voices, TV, radio or a crowd behind the caller.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every choice.
    language : str
        ``"id"`` or ``"en"``.

    Returns
    -------
    str
        One to three everyday sentences, unrelated to emergencies.
    """
    check_rng(rng)
    _check_language(language)
    bank = load(language).background
    n = int(rng.integers(1, 4))
    sentences = [expand(rng, pick(rng, bank), language) for _ in range(n)]
    return " ".join(s if s[-1] in ".!?" else s + "." for s in sentences)
