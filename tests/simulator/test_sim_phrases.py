"""Tests for training.simulator.phrases: what simulated callers and call-takers say."""

from __future__ import annotations

import re
import zlib
from collections import Counter
from typing import Any

import numpy as np
import pytest

from classifier.errors import InvalidParameterError
from training.simulator import phrasebank
from training.simulator import phrases as P
from training.simulator.templates import expand
from training.simulator.voice import Voice, synthesize

ALL_TOPICS = [(label, topic) for label in P.LABELS for topic in P._TOPICS[label]]
_FLOAT: Any = 2.0  # typed Any: the point is to pass the wrong type at run time
SPEAKABLE = re.compile(r"^[A-Za-z][A-Za-z ,.!?'\-]*$")


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _assert_speakable(text: str) -> None:
    """Text espeak can say: words only, no unfilled slots, no digits it would misread."""
    assert text and text == text.strip() and "  " not in text, repr(text)
    assert "{" not in text and "}" not in text and "|" not in text, repr(text)
    # The emergency number is spelled "satu satu dua"; "nomor 112" is a house number.
    assert not re.search(r"(?<!nomor )(?<!number )\b112\b", text) and "Jl." not in text, repr(text)
    # Digits are allowed only as house numbers / ages espeak reads correctly (< 1000).
    assert all(len(d) <= 3 for d in re.findall(r"\d+", text)), repr(text)
    assert SPEAKABLE.match(re.sub(r"\d", "", text).replace("...", ",")), repr(text)
    assert len(text) < 260, repr(text)


# --------------------------------------------------------------------------- topics


def test_pick_topic_covers_every_topic_with_sensible_weights() -> None:
    rng = _rng()
    for label in ("emergency", "non_emergency", "prank"):
        counts = Counter(P.pick_topic(rng, label=label) for _ in range(3000))
        assert set(counts) == set(P._TOPICS[label])
    assert P.pick_topic(rng, label="ghost") == "none"
    counts = Counter(P.pick_topic(rng, label="emergency") for _ in range(3000))
    # Road accidents and medical calls are the bulk of real 112 emergencies.
    assert counts["ambulance"] > counts["drugs"] * 2
    assert counts["traffic_accident"] > counts["riot"] * 2


def test_topic_tuples_match_the_brief() -> None:
    assert P.EMERGENCY_INCIDENTS == (
        "fire", "traffic_accident", "fallen_tree", "riot", "flood", "ambulance", "drugs",
        "security_disturbance",
    )  # fmt: skip
    assert P.NON_EMERGENCY_TOPICS == (
        "phone_locked", "no_signal", "pdam_water", "pln_power_cut", "street_light_out",
        "damaged_road", "information",
    )  # fmt: skip
    assert P.PRANK_KINDS == (
        "fake_incident", "insult", "giggle", "hoax_report", "silly_question", "silent_prank",
    )  # fmt: skip


# --------------------------------------------------------------------------- caller turns


@pytest.mark.parametrize("language", ["id", "en"])
@pytest.mark.parametrize(("label", "topic"), ALL_TOPICS)
def test_caller_turns_are_nonempty_and_speakable(label: str, topic: str, language: str) -> None:
    # crc32, not hash(): str hashes change from one process to the next.
    rng = _rng(zlib.crc32(f"{label}/{topic}/{language}".encode()) % 1000)
    for _ in range(40):
        turns = P.caller_turns(rng, label=label, topic=topic, language=language)
        if label == "ghost":
            assert turns == []
            continue
        assert 1 <= len(turns) <= 6
        for text in turns:
            _assert_speakable(text)


@pytest.mark.parametrize(("label", "topic"), ALL_TOPICS)
def test_n_turns_is_exact(label: str, topic: str) -> None:
    rng = _rng(3)
    for n in (1, 2, 3, 5, 8, 12):
        turns = P.caller_turns(rng, label=label, topic=topic, n_turns=n)
        assert len(turns) == (0 if label == "ghost" else n)


def test_emergency_call_follows_report_location_closing() -> None:
    rng = _rng(4)
    for _ in range(50):
        turns = P.caller_turns(rng, label="emergency", topic="fire", n_turns=5)
        assert re.search(r"kebakar|terbakar|api|asap", turns[0], re.I), turns[0]
        closing = r"terima kasih|makasih|tunggu|cepat|petugas datang"
        assert re.search(closing, turns[-1], re.I), turns[-1]
        # Second turn answers "di mana lokasinya?"
        assert re.search(
            r"\b(di|dari|habis|jalan|dekat|depan|samping|lorong|gang|belakang|seberang|sebelah)\b",
            turns[1],
            re.I,
        ), turns[1]
        assert len(set(turns)) == len(turns), turns  # a caller does not repeat a sentence


def test_prank_kinds_have_their_markers() -> None:
    rng = _rng(5)

    def joined(kind: str) -> str:
        return " ".join(
            t for _ in range(60) for t in P.caller_turns(rng, label="prank", topic=kind)
        ).lower()

    laugh = re.compile(r"\b(ha|hi|he|ki|hu)(\s?\1){1,}|huaha")
    assert len(laugh.findall(joined("giggle"))) > 50
    assert len(laugh.findall(joined("fake_incident"))) > 20
    assert re.search(r"bodoh|bego|payah|lemot|jelek", joined("insult"))
    assert "?" in joined("silly_question")
    hoax = joined("hoax_report")
    assert re.search(r"bom|kebakaran|kecelakaan|maling|mayat|culik|ambulans|tawuran", hoax)
    assert len(laugh.findall(hoax)) == 0  # hoaxers sound serious
    silent = [
        t for _ in range(100) for t in P.caller_turns(rng, label="prank", topic="silent_prank")
    ]
    # Barely a word: a hum, a "halo", a giggle.
    assert max(len(re.sub(r"\b(h[aeiu]|ki)+\b", "", t).split()) for t in silent) <= 2


def test_variety_of_first_turns() -> None:
    rng = _rng(6)
    for label, minimum in (("emergency", 150), ("non_emergency", 120), ("prank", 110)):
        firsts = [
            P.caller_turns(rng, label=label, topic=P.pick_topic(rng, label=label))[0]
            for _ in range(200)
        ]
        assert len(set(firsts)) > minimum, (label, len(set(firsts)))


def test_caller_name_fits_caller_kind() -> None:
    rng = _rng(7)
    male = set(phrasebank.load("id").slots["name_m"])  # type: ignore[arg-type]
    female = set(phrasebank.load("id").slots["name_f"])  # type: ignore[arg-type]
    seen = 0
    for _ in range(300):
        for text in P.caller_turns(
            rng, label="emergency", topic="ambulance", n_turns=6, caller_kind="adult_female"
        ):
            match = re.match(r"(?:Nama saya|Saya) ([A-Z][a-z]+(?: [A-Z][a-z]+)*)", text)
            if match and match.group(1) in male | female:
                seen += 1
                assert match.group(1) in female, text
    assert seen > 20


def test_caller_keeps_one_honorific_per_call() -> None:
    rng = _rng(8)
    honorific = re.compile(r"\b(pak polisi|pak|bu|mas|mbak|bapak|ibu)\b")
    for topic in ("riot", "fire", "flood"):
        for _ in range(60):
            turns = P.caller_turns(rng, label="emergency", topic=topic, n_turns=6)
            # Family words are not honorifics: "ibu-ibu", "ibu saya".
            text = re.sub(r"ibu-ibu|(ibu|bapak) saya", "", " | ".join(turns).lower())
            assert len(set(honorific.findall(text))) <= 1, turns


# --------------------------------------------------------------------------- call-taker


def test_greeting_depends_on_hour() -> None:
    rng = _rng(9)
    for _ in range(30):
        assert "pagi" in P.call_taker_greeting(rng, hour=8)
        assert "siang" in P.call_taker_greeting(rng, hour=13)
        assert "sore" in P.call_taker_greeting(rng, hour=16)
        night = P.call_taker_greeting(rng, hour=21)
        assert "malam" in night and "pagi" not in night
        assert "satu satu dua" in P.call_taker_greeting(rng, hour=10).lower()
    english = [P.call_taker_greeting(rng, hour=21, language="en") for _ in range(60)]
    assert any("evening" in g for g in english)
    assert not any("morning" in g for g in english)
    assert all("one one two" in g.lower() for g in english)
    assert len({P.call_taker_greeting(rng, hour=h) for h in range(24) for _ in range(5)}) > 40


@pytest.mark.parametrize(("label", "topic"), ALL_TOPICS)
def test_call_taker_prompts_count_and_text(label: str, topic: str) -> None:
    rng = _rng(10)
    for language in ("id", "en"):
        for n in (None, 1, 3, 9):
            prompts = P.call_taker_prompts(rng, label=label, topic=topic, language=language, n=n)
            assert len(prompts) == (6 if n is None else n)
            for text in prompts:
                _assert_speakable(text)


def test_emergency_prompts_ask_location_first_and_hoaxes_get_no_warnings() -> None:
    rng = _rng(11)
    warning = re.compile(r"main-main|bercanda|tutup|siapa ini|ini siapa|tercatat", re.I)
    for topic in ("fire", "ambulance"):
        prompts = P.call_taker_prompts(rng, label="emergency", topic=topic)
        assert re.search(r"lokasi|alamat|di mana|jalan apa|dekat apa", prompts[0], re.I)
    for _ in range(40):
        hoax = P.call_taker_prompts(rng, label="prank", topic="hoax_report")
        assert not any(warning.search(p) for p in hoax), hoax
    insult = [
        p for _ in range(20) for p in P.call_taker_prompts(rng, label="prank", topic="insult")
    ]
    assert sum(bool(warning.search(p)) for p in insult) > 20


def test_call_taker_honorific_follows_caller_kind() -> None:
    rng = _rng(12)
    for kind, forbidden in (
        ("adult_male", r"\b(bu|ibu|mbak|dik|adik)\b"),
        ("adult_female", r"\b(pak|bapak|mas|dik|adik)\b"),
        ("child", r"\b(pak|bapak|bu|ibu|mas|mbak)\b"),
    ):
        for topic in P.EMERGENCY_INCIDENTS:
            text = " ".join(
                P.call_taker_prompts(rng, label="emergency", topic=topic, n=8, caller_kind=kind)
            ).lower()
            assert not re.search(forbidden, text), (kind, text)


def test_ghost_prompts() -> None:
    rng = _rng(13)
    for language, close in (("id", "tutup"), ("en", "hang|ending")):
        for n in (1, 2, 3, 6, 10):
            prompts = P.call_taker_ghost_prompts(rng, language=language, n=n)
            assert len(prompts) == n
            assert re.search(r"halo|hello|satu satu dua|one one two", prompts[0], re.I)
            if n >= 2:
                assert re.search(close, prompts[-1], re.I)
            for text in prompts:
                _assert_speakable(text)
    six = P.call_taker_ghost_prompts(rng, n=6)
    assert len(set(six)) == 6  # no parrot loop within a call
    assert P.call_taker_prompts(rng, label="ghost", topic="none", n=4)[-1].lower().count("tutup")


def test_background_talk_is_everyday_not_emergency() -> None:
    rng = _rng(14)
    for language in ("id", "en"):
        talks = [P.background_talk(rng, language=language) for _ in range(300)]
        assert len(set(talks)) > 200
        for text in talks:
            assert text and "{" not in text
            assert not re.search(
                r"kebakaran|kecelakaan|ambulans|maling|help|fire|police", text, re.I
            )


def test_laughter_text() -> None:
    rng = _rng(15)
    laughs = [P.laughter_text(rng) for _ in range(500)]
    assert len(set(laughs)) > 200
    for text in laughs:
        assert re.fullmatch(r"[hakieu][hakieu ,.]*", text), text
        assert re.search(r"huaha|(ha|hi|he|hu|ki)(\s?(ha|hi|he|hu|ki)){1,}", text), text
    assert Counter(t[:2] for t in laughs).most_common(1)[0][0] == "ha"


# --------------------------------------------------------------------------- bank integrity


def test_every_template_in_every_bank_expands() -> None:
    rng = _rng(16)
    for language in ("id", "en"):
        bank = phrasebank.load(language).caller
        for templates in bank.values():
            for template in templates:
                for _ in range(3):
                    _assert_speakable(expand(rng, template, language))
        assert set(bank) >= {f"report.{t}" for t in P.EMERGENCY_INCIDENTS}
        assert set(bank) >= {f"request.{t}" for t in P.NON_EMERGENCY_TOPICS}
        assert set(bank) >= {f"prank.{k}.open" for k in P.PRANK_KINDS}


def test_phrases_are_spoken_by_espeak() -> None:
    rng = _rng(17)
    v = Voice(
        language="id", variant="f2", pitch=50, pitch_range=50, rate=180,
        formant_shift=1.0, kind="adult_female",
    )  # fmt: skip
    for label, topic in ALL_TOPICS[::3]:
        for text in P.caller_turns(rng, label=label, topic=topic)[:2]:
            y = synthesize(text, voice=v)
            assert y.size > 0.15 * 8000 and np.all(np.isfinite(y))


# --------------------------------------------------------------------------- determinism, errors


def test_same_seed_same_text() -> None:
    def run(seed: int) -> list[object]:
        rng = _rng(seed)
        out: list[object] = []
        for label, topic in ALL_TOPICS:
            out.append(P.caller_turns(rng, label=label, topic=topic))
            out.append(P.call_taker_prompts(rng, label=label, topic=topic))
        out += [P.call_taker_greeting(rng, hour=h) for h in range(24)]
        out += [P.call_taker_ghost_prompts(rng), P.background_talk(rng), P.laughter_text(rng)]
        out += [P.pick_topic(rng, label=label) for label in P.LABELS]
        return out

    assert run(42) == run(42)
    assert run(42) != run(43)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda r: P.pick_topic(r, label="fun"), "label"),
        (lambda r: P.caller_turns(r, label="emergency", topic="insult"), "topic"),
        (lambda r: P.caller_turns(r, label="ghost", topic="fire"), "topic"),
        (lambda r: P.caller_turns(r, label="prank", topic="giggle", language="jv"), "language"),
        (lambda r: P.caller_turns(r, label="prank", topic="giggle", n_turns=0), "n_turns"),
        (lambda r: P.caller_turns(r, label="prank", topic="giggle", n_turns=31), "n_turns"),
        (lambda r: P.caller_turns(r, label="prank", topic="giggle", n_turns=_FLOAT), "n_turns"),
        (lambda r: P.caller_turns(r, label="prank", topic="giggle", n_turns=True), "n_turns"),
        (lambda r: P.caller_turns(r, label="emergency", topic="fire", caller_kind="x"), "kind"),
        (lambda r: P.call_taker_greeting(r, hour=24), "hour"),
        (lambda r: P.call_taker_greeting(r, hour=-1), "hour"),
        (lambda r: P.call_taker_greeting(r, hour=8, language="fr"), "language"),
        (lambda r: P.call_taker_prompts(r, label="emergency", topic="flood", n=0), "n"),
        (lambda r: P.call_taker_prompts(r, label="prank", topic="none"), "topic"),
        (lambda r: P.call_taker_ghost_prompts(r, n=0), "n"),
        (lambda r: P.background_talk(r, language="de"), "language"),
    ],
)
def test_bad_input_raises(call: object, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        call(_rng())  # type: ignore[operator]


def test_non_generator_rng_is_rejected() -> None:
    for call in (
        lambda: P.pick_topic(np.random.RandomState(0), label="prank"),  # type: ignore[arg-type]
        lambda: P.laughter_text(0),  # type: ignore[arg-type]
        lambda: P.background_talk(None),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidParameterError, match="Generator"):
            call()
