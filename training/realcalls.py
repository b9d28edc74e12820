"""Calls assembled from real recordings: the real-recording check set and real training calls.

One composer, two pools of files (``pool``): ``check`` builds the check set of issue 15
(``bench/real_checkset.py``) from held-out files and ``speech-nc/`` only; ``train``
builds training calls for the default recipe from the files training may use
(``training/real_holdout.json`` says which), never from ``speech-nc/``. The rest of
this docstring describes the check set; the training pool differs in its voices
(:func:`training.realcalls_sources.train_voices`) and in its handling sounds (see
:class:`~training.realcalls_audio.Library`).

The shipped model is trained on simulated calls only; this set measures it on calls
whose every sound is a real recording (``../shared/data``, option ``--data``):

- **who calls when**: the project's caller population model
  (:func:`training.simulator.population.plan_calls`: repeat pranksters, SIM-less
  handsets, pocket-dialing handsets, emergency-SOS bursts, withheld numbers, shifts)
  with Kendari's label shares, each class raised to at least ``--min-per-class`` calls,
  over three weeks. Only its metadata is used; no simulator audio.
- **callers**: Indonesian speakers of ``speech-nc/id_digits`` (12 of 16 speakers),
  utterances joined with pauses into turns; children (``caller_kind`` child) speak with
  held-out speakers of ``speech/children_en``; pranks add real laughter and breathing
  (ESC-50) and friends laughing.
- **call-takers**: the other 4 ``id_digits`` speakers (2 women, 2 men), one per shift:
  a 1.5-4 s greeting opens every call, questions between the caller's turns, and short
  "halo?" prompts every few seconds while the caller is silent.
- **ghost calls**: pocket dials (muffled real rubbing, taps and friction, muffled
  distant conversation and street / cafe / machine sound), open lines (street, cafe,
  machines, rain, wind, music or a radio newsreader from ``speech-nc/id_news``, distant
  talk), silent lines (line noise, sometimes a faint room) and SOS bursts of 3-8 s with
  only the greeting.
- **channel**: 8 kHz; 2/3 mono (both parties mixed), 1/3 stereo (call-taker left,
  caller right, ``caller_channel=right``); 1/3 G.711 mu-law WAV, the rest PCM 16;
  telephone band 300-3400 Hz, a little line noise; the call-taker louder than a pocket.

Every file outside ``speech-nc/`` that the set uses is listed in
``training/real_holdout.json`` (see its ``about``), which training must exclude; the
manifest's ``source_files`` column names the real files of each call for auditing.
``speech-nc`` is CC BY-NC-SA: measuring only; write the set outside the repository and
never train on it. The set is a pure function of (data folder, holdout list, seed,
calls, min-per-class): the same arguments give the same bytes.

This module assembles the calls (:class:`Renderer`) and builds the set (:func:`build`);
the files and voices are in :mod:`training.realcalls_sources`, the audio library and
its shaping in :mod:`training.realcalls_audio`.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from classifier.errors import InvalidParameterError
from classifier.manifest import OPTIONAL_COLUMNS, REQUIRED_COLUMNS
from training.realcalls_audio import (
    Library,
    at_level,
    cut_at_pause,
    fade,
    filt,
    loop,
    reverb,
    trim,
)
from training.realcalls_sources import (
    DEFAULT_DATA,
    HOLDOUT_PATH,
    LABELS,
    SR,
    TAKER_SPEAKERS,
    compute_holdout,
    is_held_out,
    load_holdout,
)
from training.simulator.render import _place

# The hold-out list and the library are imported from here by bench/real_checkset.py.
__all__ = [
    "DEFAULT_DATA",
    "HOLDOUT_PATH",
    "MANIFEST_COLUMNS",
    "TAKER_SPEAKERS",
    "Call",
    "Library",
    "Renderer",
    "build",
    "compute_holdout",
    "is_held_out",
    "load_holdout",
]

# ------------------------------------------------------------------------------ calls
_HEADROOM_S = 15


@dataclass
class Call:
    """Two tracks at 8 kHz and the real files that went into them."""

    n: int
    caller: np.ndarray = field(init=False)
    taker: np.ndarray = field(init=False)
    sources: set[str] = field(default_factory=set)
    parts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.caller = np.zeros(self.n)
        self.taker = np.zeros(self.n)


class Renderer:
    def __init__(self, lib: Library, seed: int) -> None:
        self.lib = lib
        self.seed = seed

    # speech ------------------------------------------------------------------------
    def utterance(self, files: Sequence[str], rng: np.random.Generator, call: Call) -> np.ndarray:
        f = files[int(rng.integers(0, len(files)))]
        call.sources.add(f.partition("@")[0])
        return trim(self.lib.load(f))

    def turn(
        self, files: Sequence[str], rng: np.random.Generator, call: Call, dur_s: float, dbfs: float
    ) -> np.ndarray:
        """A speaker's turn: utterances joined with short pauses, about ``dur_s`` long."""
        pieces: list[np.ndarray] = []
        total = 0
        while total < dur_s * SR * 0.8 or not pieces:
            u = self.utterance(files, rng, call)
            pieces.append(u)
            gap = np.zeros(int(rng.uniform(0.12, 0.45) * SR))
            pieces.append(gap)
            total += u.size + gap.size
        x = np.concatenate(pieces[:-1])
        if x.size > dur_s * SR * 1.3:
            x = cut_at_pause(x, dur_s)
        return at_level(x, dbfs)

    def greeting(self, files: Sequence[str], rng: np.random.Generator, call: Call) -> np.ndarray:
        u = self.utterance(files, rng, call)
        target = float(rng.uniform(1.5, 4.0))
        if u.size < target * SR:
            u = np.concatenate([u, np.zeros(int(0.15 * SR)), self.utterance(files, rng, call)])
        return cut_at_pause(u, target)

    def prompt(self, files: Sequence[str], rng: np.random.Generator, call: Call) -> np.ndarray:
        """A short "halo?" (0.4-1.2 s), now and then a longer "ini 112, ..." (1.5-3 s)."""
        u = self.utterance(files, rng, call)
        long = rng.random() < 0.25
        return cut_at_pause(u, float(rng.uniform(1.5, 3.0) if long else rng.uniform(0.4, 1.2)))

    # sounds ------------------------------------------------------------------------
    def bed(self, files: Sequence[str], rng: np.random.Generator, call: Call, n: int) -> np.ndarray:
        """``n`` samples of a real background (one or two files), levelled to 0 dBFS RMS."""
        k = 1 if rng.random() < 0.6 else 2
        out = np.zeros(n)
        for _ in range(k):
            f = files[int(rng.integers(0, len(files)))]
            call.sources.add(f)
            x = loop(self.lib.load(f), n, rng)
            r = float(np.sqrt(np.mean(x**2)))
            if r > 1e-9:
                out += x / r * (10 ** (rng.uniform(-4, 0) / 20))
        r = float(np.sqrt(np.mean(out**2)))
        return out / r if r > 1e-9 else out

    def events(
        self,
        files: Sequence[str],
        rng: np.random.Generator,
        call: Call,
        n: int,
        every: tuple[float, float],
        dbfs: tuple[float, float],
        rate: tuple[float, float] = (1.0, 1.0),
    ) -> np.ndarray:
        """Short real sounds scattered over ``n`` samples (playback rate varied)."""
        out = np.zeros(n)
        t = int(rng.uniform(0, every[1]) * SR)
        while t < n:
            f = files[int(rng.integers(0, len(files)))]
            call.sources.add(f)
            x = self.lib.load(f)
            r = float(rng.uniform(*rate))
            if abs(r - 1.0) > 0.02:
                up, down = 100, round(100 * r)
                x = resample_poly(x, up, down)
            _place(out, fade(at_level(x, float(rng.uniform(*dbfs))), 0.01), t)
            t += x.size + int(rng.uniform(*every) * SR)
        return out

    def rubbing(
        self,
        rng: np.random.Generator,
        call: Call,
        n: int,
        dbfs: float,
        pause: tuple[float, float] = (1.0, 10.0),
    ) -> np.ndarray:
        """A phone moving in a pocket or bag: episodes of real rubbing and friction (1-8 s)
        joined from short clips at varied rate and level, then quiet stretches (``pause``)."""
        out = np.zeros(n)
        t = int(rng.uniform(0, min(3.0, pause[1])) * SR)
        while t < n:
            end = min(n, t + int(rng.uniform(1.0, 8.0) * SR))
            while t < end:
                f = self.lib.rub[int(rng.integers(0, len(self.lib.rub)))]
                call.sources.add(f)
                x = self.lib.load(f)
                x = resample_poly(x, 100, round(100 * rng.uniform(0.6, 1.5)))
                x = fade(at_level(x, dbfs + float(rng.uniform(-8, 4))), 0.04)
                _place(out, x, t)
                t += max(int(0.1 * SR), x.size - int(rng.uniform(0.05, 0.3) * SR))
            t += int(rng.uniform(*pause) * SR)
        return out

    def rustle(self, rng: np.random.Generator, call: Call, n: int, dbfs: float) -> np.ndarray:
        """Continuous handling rustle: rubbing with short pauses under a slow level
        envelope (a walking person's pocket)."""
        x = self.rubbing(rng, call, n, dbfs, pause=(0.0, 1.2))
        knots = np.arange(0, n + 2 * SR, int(rng.uniform(0.8, 2.5) * SR))
        env_db = rng.uniform(-12, 0, knots.size)
        return x * 10 ** (np.interp(np.arange(n), knots, env_db) / 20)

    def distant_talk(
        self,
        rng: np.random.Generator,
        call: Call,
        n: int,
        dbfs: float,
        muffled: bool,
        radio: bool = False,
        near: bool = False,
    ) -> np.ndarray:
        """People talking away from the phone (or a radio newsreader): real speech,
        reverberant, low-passed."""
        out = np.zeros(n)
        voices = [self.lib.news] if radio else [self.lib.digits[s] for s in self.lib.callers]
        pick = [voices[int(rng.integers(0, len(voices)))] for _ in range(2)]
        t = int(rng.uniform(0, 4) * SR)
        while t < n:
            x = self.turn(
                pick[int(rng.integers(0, 2))],
                rng,
                call,
                float(rng.uniform(1.5, 6)),
                dbfs + float(rng.uniform(-4, 4)),
            )
            t = _place(out, x, t) + int(rng.uniform(0.3, 4.0) * SR)
        wet = float(rng.uniform(0.1, 0.3) if near else rng.uniform(0.5, 0.9))
        out = reverb(out, rng, float(rng.uniform(0.4, 0.9)), wet)
        if near:
            return out
        return filt(
            out, "low", float(rng.uniform(600, 1200) if muffled else rng.uniform(1800, 3000))
        )

    # the call ----------------------------------------------------------------------
    def taker_voice(self, shift_id: str) -> str:
        h = zlib.crc32(f"{self.seed}:{shift_id}".encode())
        return self.lib.takers[h % len(self.lib.takers)]

    def caller_voice(self, caller_id: str, call_id: str, kind: str) -> tuple[str, list[str]]:
        key = caller_id or call_id  # a withheld number is its own caller
        h = zlib.crc32(f"{self.seed}:{key}:{kind}".encode())
        if kind == "child":
            spk = sorted(self.lib.children)
            s = spk[h % len(spk)]
            return f"children_en/{s}", self.lib.children[s]
        # The first letter of an id_digits speaker is the sex; elderly callers are men or women.
        sexes = {"adult_female": "F", "adult_male": "M"}.get(kind, "FM")
        pool = [c for c in self.lib.callers if c[0] in sexes]
        s = pool[h % len(pool)]
        return f"{self.lib.voice_prefix}{s}", self.lib.digits[s]

    def render(
        self, plan: Any, duration_s: float, rng: np.random.Generator, mono: bool
    ) -> tuple[Call, dict[str, str]]:
        n = round(duration_s * SR)
        sc = plan.scenario
        label = plan.label
        talks = label in ("emergency", "non_emergency") or sc in (
            "fake_incident",
            "insult",
            "hoax_report",
            "silly_question",
        )
        # A conversation ends after its last words (unless the caller hangs up mid-
        # sentence): room for the last turn past the planned length.
        call = Call(n + (_HEADROOM_S * SR if talks else 0))
        taker = self.taker_voice(plan.shift_id)
        tfiles = self.lib.digits[taker]
        cname, cfiles = self.caller_voice(plan.caller_id, plan.call_id, plan.caller_kind)
        taker_db = float(rng.uniform(-22, -17))
        t = int(rng.uniform(0.2, 1.0) * SR)
        t = _place(call.taker, at_level(self.greeting(tfiles, rng, call), taker_db), t)
        t += int(rng.uniform(0.3, 1.5) * SR)
        uses_caller = False
        last = [t]  # end of the last words of a conversation
        first_end = [0]  # end of the caller's first turn, where it must be heard whole

        def prompts(
            t: int, until: int, gap: tuple[float, float] = (1.5, 5.0), most: int = 1000
        ) -> int:
            k = 0
            while t < until - int(0.8 * SR) and k < most:
                k += 1
                t = _place(
                    call.taker,
                    at_level(self.prompt(tfiles, rng, call), taker_db + float(rng.uniform(-2, 2))),
                    t,
                )
                if rng.random() < 0.3:  # "halo? ... halo?"
                    t += int(rng.uniform(0.5, 1.2) * SR)
                    t = _place(call.taker, at_level(self.prompt(tfiles, rng, call), taker_db), t)
                t += int(rng.uniform(*gap) * SR)
            return t

        # A genuine call holds its caller's first turn whole: one cut after the greeting
        # would be an SOS burst labelled emergency (as in the simulator's short reports).
        whole_first = label in ("emergency", "non_emergency")

        def conversation(t: int, level: float, pause: tuple[float, float], laugh: float) -> int:
            turns = 0
            while t < n - int(0.5 * SR) or (whole_first and turns == 0):
                turns += 1
                x = self.turn(
                    cfiles,
                    rng,
                    call,
                    float(rng.uniform(1.5, 7.0)),
                    level + float(rng.uniform(-3, 3)),
                )
                t = last[0] = _place(call.caller, x, t)
                if whole_first and turns == 1:
                    first_end[0] = t
                if rng.random() < laugh:
                    t += int(rng.uniform(0.0, 0.3) * SR)
                    lx = self.events(
                        self.lib.laughing,
                        rng,
                        call,
                        int(rng.uniform(0.8, 2.5) * SR),
                        (10, 10),
                        (level, level + 4),
                    )
                    t = last[0] = _place(call.caller, lx, t)
                t += int(rng.uniform(*pause) * SR)
                if t >= n or rng.random() < 0.2:
                    continue
                q = (
                    self.prompt(tfiles, rng, call)
                    if rng.random() < 0.4
                    else self.turn(tfiles, rng, call, float(rng.uniform(1.0, 3.0)), taker_db)
                )
                last[0] = _place(call.taker, at_level(q, taker_db), t)
                t = last[0] + int(rng.uniform(0.2, 0.9) * SR)
            return t

        if talks:
            uses_caller = True
            level = float(rng.uniform(-30, -20))
            pause = (0.3, 1.2)
            if sc == "distressed":
                level, pause = level + 5, (0.1, 0.6)
            if sc == "quiet_victim":
                t = prompts(t, t + int(rng.uniform(3, 10) * SR))
                level -= 12
            laugh = 0.6 if sc in ("fake_incident", "insult", "silly_question") else 0.0
            conversation(t, level, pause, laugh)
            bg_files = (
                self.lib.emergency_bg
                if label == "emergency"
                else self.lib.home_bg + self.lib.street
                if label == "non_emergency"
                else self.lib.music + self.lib.street + self.lib.home_bg
            )
            if rng.random() < 0.7:
                call.caller += self.bed(bg_files, rng, call, call.n) * 10 ** (
                    (level + float(rng.uniform(-22, -8))) / 20
                )
                call.parts.append("background")
            if label == "prank" and rng.random() < 0.5:
                call.caller += self.events(
                    self.lib.laughing, rng, call, call.n, (0.5, 4.0), (level - 14, level - 4)
                )
                call.parts.append("friends_laughing")
            if uses_caller and sc == "quiet_victim":
                call.parts.append("quiet")
            end = (
                max(n, first_end[0])
                if plan.hangup_mid_sentence
                else last[0] + int(rng.uniform(0.3, 1.5) * SR)
            )
            call.n = min(call.n, end)
            call.caller = call.caller[: call.n]
            call.taker = call.taker[: call.n]
        elif sc in ("giggle", "silent_prank"):
            level = float(rng.uniform(-30, -20))
            prompts(t, n)
            if sc == "giggle":
                call.caller += self.events(
                    self.lib.laughing, rng, call, n, (0.3, 3.0), (level - 4, level + 4)
                )
                call.parts.append("laughing")
                if rng.random() < 0.6:
                    x = self.turn(
                        self.lib.children[
                            sorted(self.lib.children)[
                                zlib.crc32(plan.call_id.encode()) % len(self.lib.children)
                            ]
                        ],
                        rng,
                        call,
                        float(rng.uniform(1.0, 3.0)),
                        level,
                    )
                    _place(call.caller, x, int(rng.uniform(0.3, 0.7) * n))
                    call.parts.append("child_speech")
            else:
                call.caller += self.events(
                    self.lib.breathing, rng, call, n, (0.0, 1.0), (level - 10, level - 4)
                )
                call.parts.append("breathing")
                if rng.random() < 0.5:
                    lx = self.events(
                        self.lib.laughing, rng, call, int(2.0 * SR), (10, 10), (level - 8, level)
                    )
                    _place(call.caller, lx, int(rng.uniform(0.2, 0.8) * n))
                    call.parts.append("giggle")
            if rng.random() < 0.5:
                call.caller += self.bed(self.lib.music + self.lib.home_bg, rng, call, n) * 10 ** (
                    (level + float(rng.uniform(-20, -8))) / 20
                )
                call.parts.append("background")
        else:
            self.ghost(plan, call, rng, t, prompts)
        meta = {
            "scenario": sc,
            "persona": plan.persona,
            "caller_kind": plan.caller_kind,
            "shift_id": plan.shift_id,
            "taker_speaker": f"{self.lib.voice_prefix}{taker}",
            "caller_speaker": cname if uses_caller or "child_speech" in call.parts else "",
        }
        return call, meta

    def ghost(self, plan: Any, call: Call, rng: np.random.Generator, t: int, prompts: Any) -> None:
        """Nobody speaks to the call-taker, who prompts every few seconds ("halo? ...
        halo? ... ini 112"), a few times, then listens to the open line."""
        n = call.n
        sc = plan.scenario
        lib = self.lib
        cutoff = float(rng.uniform(500, 1200))  # through cloth
        if sc == "sos_burst":
            # 3-8 s: only the greeting, then the handset hangs up; the handset is in a
            # hand or pocket, sometimes outdoors.
            u = rng.random()
            if u < 0.35:
                call.caller += filt(
                    self.rustle(rng, call, n, float(rng.uniform(-36, -24))), "low", cutoff
                )
                call.parts.append("rustle")
            elif u < 0.65:
                bed = self.bed(lib.street + lib.machine + lib.weather, rng, call, n)
                call.caller += bed * 10 ** (float(rng.uniform(-46, -32)) / 20)
                call.parts.append("ambient")
            return
        prompts(t, n, gap=(2.0, 7.0))
        if sc == "silent":
            if rng.random() < 0.4:
                call.caller += self.bed(lib.machine + lib.weather, rng, call, n) * 10 ** (
                    float(rng.uniform(-58, -46)) / 20
                )
                call.parts.append("faint_room")
            return
        muffled = sc == "pocket_dial"
        if muffled:
            rub = np.zeros(n)
            if rng.random() < 0.7:
                rub += self.rustle(rng, call, n, float(rng.uniform(-40, -28)))
                call.parts.append("rustle")
            rub += self.rubbing(rng, call, n, float(rng.uniform(-32, -18)))
            if rng.random() < 0.6:
                rub += self.events(
                    lib.taps + lib.knocks, rng, call, n, (2.0, 12.0), (-36, -22), (0.8, 1.25)
                )
            call.caller += filt(rub, "low", cutoff)
            call.parts.append("rubbing")
        if muffled and rng.random() < 0.5:
            # The handset's owner talking to someone: close, but through cloth.
            talk = self.distant_talk(rng, call, n, float(rng.uniform(-42, -28)), False, near=True)
            call.caller += filt(talk, "low", float(rng.uniform(1000, 2000)))
            call.parts.append("owner_talk")
        elif rng.random() < (0.5 if muffled else 0.7):
            call.caller += self.distant_talk(rng, call, n, float(rng.uniform(-50, -36)), muffled)
            call.parts.append("distant_talk")
        if rng.random() < (0.7 if muffled else 1.0):
            kind = str(rng.choice(["street", "machine", "weather", "music", "radio"]))
            if kind == "radio":
                bed = self.distant_talk(rng, call, n, 0.0, muffled, radio=True)
            else:
                files = {
                    "street": lib.street,
                    "machine": lib.machine,
                    "weather": lib.weather,
                    "music": lib.music,
                }[kind]
                bed = self.bed(files, rng, call, n)
            bed /= float(np.sqrt(np.mean(bed**2))) + 1e-12
            level = float(rng.uniform(-46, -30) if muffled else rng.uniform(-42, -24))
            bed = bed * 10 ** (level / 20)
            call.caller += filt(bed, "low", cutoff) if muffled else bed
            call.parts.append(kind)
        if not muffled and rng.random() < 0.4:
            call.caller += filt(
                self.rustle(rng, call, n, float(rng.uniform(-44, -32))), "low", cutoff
            )
            call.parts.append("rustle")


def _line(x: np.ndarray, rng: np.random.Generator, noise_dbfs: float) -> np.ndarray:
    """Telephone band 300-3400 Hz and a little line noise."""
    y = filt(x, "band", 300, 3400)
    noise = filt(rng.standard_normal(x.size), "band", 200, 3600, 2)
    noise *= 10 ** (noise_dbfs / 20) / (float(np.std(noise)) + 1e-12)
    return y + noise


# -------------------------------------------------------------------------- the set
def _preset(n_calls: int, min_per_class: int) -> Any:
    """Kendari's label shares with every class raised to ``min_per_class`` calls (the
    rest taken from non-emergency), over three weeks."""
    from training.simulator.presets import PRESETS, Preset

    base = PRESETS["kendari-2025"]
    floor = min(min_per_class, n_calls // 4)
    counts = {k: max(floor, round(v * n_calls)) for k, v in base.label_shares.items()}
    counts["non_emergency"] = n_calls - sum(c for k, c in counts.items() if k != "non_emergency")
    if counts["non_emergency"] < floor:
        raise InvalidParameterError(
            f"--calls {n_calls} too few for {min_per_class} calls per class"
        )
    return Preset(
        name=f"kendari-2025-min{min_per_class}",
        description="Kendari 112 shares, each class at least min_per_class calls",
        source=base.source,
        label_shares={k: counts[k] / n_calls for k in LABELS},
        utc_offset_hours=base.utc_offset_hours,
        calls_per_day=n_calls / 21.0,
        english_share=0.0,
        stereo_share=1 / 3,
    )


def _duration(plan: Any, rng: np.random.Generator) -> float:
    """The recording's length: the plan's, with ghost calls as a centre records them
    (open lines 10-55 s, SOS bursts 3-8 s) and long calls capped at two minutes."""
    d = float(plan.duration_s)
    sc = plan.scenario
    if sc == "sos_burst":
        return float(rng.uniform(3.0, 8.0))
    if sc in ("pocket_dial", "open_line"):
        # 10-55 s; a planned length outside that is drawn again, log-uniformly.
        return d if 10.0 <= d <= 55.0 else float(np.exp(rng.uniform(np.log(10.0), np.log(55.0))))
    if sc == "silent":
        return float(np.clip(d, 3.0, 40.0))
    return float(np.clip(d, 2.0, 120.0))


MANIFEST_COLUMNS = (
    *REQUIRED_COLUMNS,
    *OPTIONAL_COLUMNS,
    "scenario",
    "persona",
    "caller_kind",
    "shift_id",
    "caller_speaker",
    "taker_speaker",
    "channels",
    "encoding",
    "background",
    "source_files",
)


def build(
    out: Path,
    *,
    data: Path,
    n_calls: int,
    seed: int,
    min_per_class: int = 60,
    holdout_path: Path = HOLDOUT_PATH,
    pool: str = "check",
    progress: bool = False,
) -> Path:
    """Write ``out/manifest.csv`` and ``out/audio/``; return the manifest's path.

    ``pool="check"`` (the check set) uses only held-out files and ``speech-nc/``;
    ``pool="train"`` only files the training recipe may use (see :class:`Library`).
    """
    from training.simulator.population import plan_calls

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise InvalidParameterError(f"{out} is not empty; expected a new or empty folder")
    holdout = load_holdout(holdout_path)
    lib = Library(Path(data), holdout, pool)
    renderer = Renderer(lib, seed)
    plans = plan_calls(
        _preset(n_calls, min_per_class), n_calls=n_calls, seed=seed, start=date(2025, 6, 2)
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        (work / "audio").mkdir()
        rows = []
        from tqdm import tqdm

        for i, plan in enumerate(
            tqdm(plans, desc=f"real-recording calls ({pool})", unit="call", disable=not progress)
        ):
            rng = np.random.default_rng([seed, i, 15])
            duration = _duration(plan, rng)
            stereo = rng.random() < 1 / 3
            ulaw = rng.random() < 1 / 3
            call, meta = renderer.render(plan, duration, rng, mono=not stereo)
            caller = _line(call.caller, rng, float(rng.uniform(-64, -54)))
            taker = _line(call.taker, rng, float(rng.uniform(-70, -64)))
            if stereo:
                audio = np.stack([taker, caller], axis=1)
            else:
                audio = caller + taker * 10 ** (float(rng.uniform(-4, 0)) / 20)
            audio = np.clip(audio, -1.0, 1.0)
            rel = f"audio/{plan.call_id}.wav"
            sf.write(str(work / rel), audio, SR, subtype="ULAW" if ulaw else "PCM_16", format="WAV")
            bad = [s for s in call.sources if is_held_out(s, holdout) != (pool == "check")]
            if bad:
                raise AssertionError(f"{plan.call_id} used files outside its {pool} pool: {bad}")
            rows.append(
                {
                    "call_id": plan.call_id,
                    "caller_id": plan.caller_id,
                    "started_at": plan.started_at.isoformat(),
                    "duration_s": f"{audio.shape[0] / SR:.2f}",
                    "audio_path": rel,
                    "label": plan.label,
                    "caller_channel": "right" if stereo else "mix",
                    **meta,
                    "channels": "stereo" if stereo else "mono",
                    "encoding": "ulaw" if ulaw else "pcm16",
                    "background": "+".join(call.parts),
                    "source_files": ";".join(sorted(call.sources)),
                }
            )
        with open(work / "manifest.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(MANIFEST_COLUMNS), lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
        if out.exists():
            out.rmdir()
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out / "manifest.csv"
