"""Calls assembled from real recordings: the real-recording check set and real training calls.

One composer, two pools of files (``pool``): ``check`` builds the check set of issue 15
(``bench/real_checkset.py``) from held-out files and ``speech-nc/`` only; ``train``
builds training calls for the default recipe from the files training may use
(``training/real_holdout.json`` says which), never from ``speech-nc/``. The rest of
this docstring describes the check set; the training pool differs in its voices
(:func:`_train_voices`) and in its handling sounds (see :class:`Library`).

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
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
import tempfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from scipy.signal import butter, fftconvolve, resample_poly, sosfilt

from classifier.errors import InvalidParameterError
from classifier.manifest import OPTIONAL_COLUMNS, REQUIRED_COLUMNS
from training.simulator.realbank import HOLDOUT_PATH as REALBANK_HOLDOUT
from training.simulator.realbank import held_out
from training.simulator.render import _place

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
# One list for the check set and the training recipe (training/real_holdout.json).
HOLDOUT_PATH = REALBANK_HOLDOUT
SR = 8000
LABELS = ("emergency", "non_emergency", "prank", "ghost")

# id_digits speakers: call-takers (2 women, 2 men) apart from callers (the other 12).
TAKER_SPEAKERS = ("FSW", "FTT", "MMX", "MRS")
NC_DIGITS = "speech-nc/id_digits"
NC_NEWS = "speech-nc/id_news"

# ----------------------------------------------------------------------- hold-out list
# Deterministic split of the real files outside speech-nc: a fraction of speakers or
# files of each group, ranked by a salted SHA-256 of the name; small folders by hand
# (named below with what they hold).
HOLDOUT_SALT = "callsift-real-holdout-v1"
HOLDOUT_FRACTION = 0.3
HOLDOUT_BY_HAND: dict[str, tuple[str, ...]] = {
    # handling noises (pocket-dial material): 3 of 5, tap.wav and one tap stay trainable
    "noise": (
        "noise/130921_iPhone_rub_channel0_chunk83_aug2.wav",
        "noise/130921_laptopmic-dell_tap_channel0_chunk204_aug3.wav",
        "noise/friction0.wav",
    ),
    # windy street, people walking past, cars (1 of 4 street recordings)
    "noise/street_berlin": ("noise/street_berlin/A7B4879B-6791-4E01-B612-F8F60193BC66.flac",),
    # cafe chatter (1 of 3)
    "noise/misc": ("noise/misc/cafe.flac",),
    # jazz (TV-like), telephone hold music, string orchestra (3 of 10)
    "noise/music": (
        "noise/music/Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra).flac",
        "noise/music/Kevin_MacLeod_-_Vibe_Ace.flac",
        "noise/music/macroform-cold_day.flac",
    ),
}
_AUDIO_EXT = (".flac", ".wav")


def _rank(group: str, name: str) -> str:
    return hashlib.sha256(f"{HOLDOUT_SALT}:{group}:{name}".encode()).hexdigest()


def _take(group: str, names: Iterable[str], fraction: float = HOLDOUT_FRACTION) -> list[str]:
    """The held-out part of a group: round(fraction * n) names (at least 1 of 2 or more)."""
    names = sorted(set(names))
    k = round(fraction * len(names))
    if len(names) >= 2:
        k = max(k, 1)
    return sorted(sorted(names, key=lambda s: _rank(group, s))[:k])


def child_speaker(name: str) -> str:
    """Speaker of a ``speech/children_en`` file (``000260011.flac`` -> ``0026``), as in spk2age."""
    return f"{int(Path(name).name[:5]):04d}"


def compute_holdout(data: Path) -> dict[str, Any]:
    """The hold-out list for the data folder ``data`` (what ``holdout --write`` stores)."""
    data = Path(data)
    files: list[str] = []
    groups: dict[str, dict[str, int]] = {}

    def rel(p: Path) -> str:
        return p.relative_to(data).as_posix()

    children = sorted(p for p in (data / "speech/children_en").glob("*.flac"))
    speakers = _take("speech/children_en", (child_speaker(p.name) for p in children))
    chosen = [rel(p) for p in children if child_speaker(p.name) in set(speakers)]
    files += chosen
    groups["speech/children_en"] = {
        "speakers": len({child_speaker(p.name) for p in children}),
        "held_out_speakers": len(speakers),
        "files": len(children),
        "held_out_files": len(chosen),
    }
    for folder in sorted((data / "noise/esc50").iterdir()):
        if not folder.is_dir():
            continue
        clips = [rel(p) for p in sorted(folder.iterdir()) if p.suffix in _AUDIO_EXT]
        taken = _take(rel(folder), clips)
        files += taken
        groups[rel(folder)] = {"files": len(clips), "held_out_files": len(taken)}
    cries = [
        rel(p) for p in sorted((data / "noise/infant_cry").iterdir()) if p.suffix in _AUDIO_EXT
    ]
    taken = _take("noise/infant_cry", cries)
    files += taken
    groups["noise/infant_cry"] = {"files": len(cries), "held_out_files": len(taken)}
    for group, names in HOLDOUT_BY_HAND.items():
        folder = data / group
        present = [rel(p) for p in sorted(folder.iterdir()) if p.suffix in _AUDIO_EXT]
        missing = [n for n in names if n not in present]
        if missing:
            raise InvalidParameterError(f"hold-out files missing from {data}: {missing}")
        files += list(names)
        groups[group] = {"files": len(present), "held_out_files": len(names)}
    return {
        "about": HOLDOUT_ABOUT,
        "version": 1,
        "data_root": "../shared/data",
        "never_train": ["speech-nc/"],
        "speakers": {"speech/children_en": speakers},
        "groups": groups,
        "files": sorted(files),
    }


HOLDOUT_ABOUT = [
    "Real recordings kept out of all training and tuning: the real-recording check set",
    "(bench/real_checkset.py, issue 15) uses only these files plus speech-nc/.",
    "Format: 'files' lists every held-out file as a path relative to data_root",
    "(../shared/data from the project root), sorted. 'speakers' lists held-out speakers",
    "per folder: for speech/children_en the speaker is the first 5 digits of the file",
    "name as a 4-digit id (000260011.flac -> '0026', the ids of spk2age); exclude every",
    "file of these speakers, present or added later. 'never_train' lists folder",
    "prefixes that are never training material at all (speech-nc is CC BY-NC-SA:",
    "measuring only). 'groups' gives, per folder, how many files (and speakers) there",
    "are and how many are held out. A training recipe excludes a file when its relative",
    "path is in 'files', starts with a 'never_train' prefix, or belongs to a listed",
    "speaker. Rule: round(30%) of the speakers of speech/children_en, of the clips of",
    "each noise/esc50 class and of noise/infant_cry, ranked by SHA-256 of",
    "'callsift-real-holdout-v1:<group>:<name>'; by hand: 3 of 5 handling noises,",
    "1 of 4 street recordings, 1 of 3 noise/misc, 3 of 10 music tracks. Regenerate with",
    "'bench/real_checkset.py holdout --write'; '--check' compares with the data.",
]


def load_holdout(path: Path = HOLDOUT_PATH) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def is_held_out(rel: str, holdout: dict[str, Any]) -> bool:
    """Whether the real file ``rel`` (relative to the data root) may be used by the check
    set: the training recipe's own rule (:func:`training.simulator.realbank.held_out`)."""
    return held_out(rel, holdout)


# ----------------------------------------------------------------------------- voices
#: Which real files a build may use: the check set's (held out) or the training recipe's.
POOLS = ("check", "train")
#: Sex of the trainable CMU ARCTIC speakers (the folder holds two).
ARCTIC_SEX = {"aew": "M", "axb": "F"}


def _rate(key: str, lo: float, hi: float) -> float:
    """A playback rate in [lo, hi] fixed by ``key`` (two decimals)."""
    u = int(_rank("rate", key)[:8], 16) / 0xFFFFFFFF
    return round(lo + (hi - lo) * u, 2)


def _train_voices(
    fsdd: Sequence[str], arctic: Sequence[str], children: dict[str, list[str]]
) -> tuple[dict[str, list[str]], list[str], list[str], dict[str, list[str]]]:
    """Voices for calls made of trainable recordings: (voice -> files, call-taker voices,
    caller voices, children).

    The trainable adult speech is four men saying English digits (``speech/fsdd``) and
    two ARCTIC readers; a centre's callers are half women. Women's voices are children's
    read speech played 10-20% slower (``file@rate``): pitch and formants both fall, to an
    adult woman's range (children's F0 about 250-300 Hz, women's about 170-240 Hz). Men's
    voices are varied the same way (0.92 and 1.08 times). A voice's first letter is its
    sex (``M``/``F``), as in ``id_digits``. Call-takers and callers share no speaker, and
    the children kept as children share none with the slowed ones.
    """
    by: dict[str, list[str]] = {}
    for f in fsdd:
        by.setdefault(Path(f).stem.split("_")[1], []).append(f)
    for f in arctic:
        spk = Path(f).stem.split("_")[3] if Path(f).stem.count("_") >= 3 else ""
        if spk in ARCTIC_SEX:
            by.setdefault(f"arctic-{spk}", []).append(f)
    men = sorted(
        (s for s in by if ARCTIC_SEX.get(s.removeprefix("arctic-"), "M") == "M"),
        key=lambda s: _rank("voices", s),
    )
    women = [s for s in sorted(by) if s not in men]
    kids = sorted(children, key=lambda s: _rank("voices", s))
    voices: dict[str, list[str]] = {}
    takers: list[str] = []
    callers: list[str] = []
    if len(men) < 2 or len(kids) < 6:
        return voices, takers, callers, {}
    # One man and two women answer; the other speakers call.
    voices[f"M-taker-{men[0]}"] = by[men[0]]
    takers.append(f"M-taker-{men[0]}")
    for s in kids[:2]:
        r = _rate(s, 0.80, 0.90)
        name = f"F-taker-child{s}@{r}"
        voices[name] = [f"{f}@{r}" for f in children[s]]
        takers.append(name)
    for s in men[1:]:
        for r in (0.92, 1.0, 1.08):
            name = f"M-{s}@{r}"
            voices[name] = by[s] if r == 1.0 else [f"{f}@{r}" for f in by[s]]
            callers.append(name)
    for s in women:
        voices[f"F-{s}"] = by[s]
        callers.append(f"F-{s}")
    rest = kids[2:]
    for s in rest[1::2]:
        r = _rate(s, 0.80, 0.90)
        name = f"F-child{s}@{r}"
        voices[name] = [f"{f}@{r}" for f in children[s]]
        callers.append(name)
    return voices, takers, callers, {s: children[s] for s in rest[0::2]}


# ----------------------------------------------------------------------------- audio
class Library:
    """The real files a pool may use, by role, loaded lazily at 8 kHz mono.

    ``pool="check"``: the check set's material, the held-out files of the hold-out list
    and ``speech-nc/`` (measuring only). ``pool="train"``: the opposite, every file the
    training recipe may use (never ``speech-nc/``, never a held-out file or speaker), with
    voices made from the few trainable adult speakers (see :func:`_train_voices`).
    """

    def __init__(self, data: Path, holdout: dict[str, Any], pool: str = "check") -> None:
        if pool not in POOLS:
            raise ValueError(f"pool {pool!r}; expected one of {', '.join(POOLS)}")
        self.data = Path(data)
        self.pool = pool
        if not self.data.is_dir():
            raise InvalidParameterError(
                f"{self.data}: no such folder; expected the shared data folder"
            )
        if pool == "check" and not (self.data / NC_DIGITS).is_dir():
            raise InvalidParameterError(
                f"{self.data}: no {NC_DIGITS}; expected the shared data folder"
            )
        self.holdout = holdout
        if pool == "check":
            files = sorted(holdout["files"])
        else:
            files = sorted(
                p.relative_to(self.data).as_posix()
                for p in self.data.rglob("*")
                if p.is_file()
                and p.suffix in _AUDIO_EXT
                and not held_out(p.relative_to(self.data).as_posix(), holdout)
            )
        self.files = files

        def under(prefix: str, names: Sequence[str] | None = None) -> list[str]:
            out = [f for f in files if f.startswith(prefix + "/")]
            if names is not None:
                out = [f for f in out if any(f.startswith(f"{prefix}/{n}/") for n in names)]
            return out

        children: dict[str, list[str]] = {}
        for f in under("speech/children_en"):
            children.setdefault(child_speaker(f), []).append(f)
        if pool == "check":

            def nc(folder: str) -> list[str]:
                return sorted(
                    p.relative_to(self.data).as_posix() for p in (self.data / folder).glob("*.flac")
                )

            speakers = sorted(p.name for p in (self.data / NC_DIGITS).iterdir() if p.is_dir())
            self.digits = {s: nc(f"{NC_DIGITS}/{s}") for s in speakers}
            self.takers = [s for s in TAKER_SPEAKERS if s in self.digits]
            self.callers = [s for s in speakers if s not in TAKER_SPEAKERS]
            self.news = nc(NC_NEWS)
            self.voice_prefix = "id_digits/"
            self.children = children
        else:
            self.digits, self.takers, self.callers, self.children = _train_voices(
                under("speech/fsdd"), under("speech/arctic"), children
            )
            self.news = under("speech/arctic") + [
                f for f in files if f.startswith("speech/") and f.count("/") == 1
            ]
            self.voice_prefix = ""
        esc = "noise/esc50"
        self.laughing = under(esc, ["laughing"])
        self.breathing = under(esc, ["breathing"])
        self.crying = under(esc, ["crying_baby"]) + under("noise/infant_cry")
        self.handling = [f for f in files if f.startswith("noise/") and f.count("/") == 1]
        self.rub = [f for f in self.handling if "rub" in f or "friction" in f]
        self.taps = [f for f in self.handling if "tap" in f]
        if pool == "train":
            # The rub and friction recordings are all held out: scrubbing and steps,
            # played slowed and low-passed like the rest, stand in for a pocket.
            self.rub += under(esc, ["brushing_teeth", "footsteps"])
        self.knocks = under(esc, ["footsteps", "door_wood_knock", "mouse_click", "keyboard_typing"])
        self.street = (
            under("noise/street_berlin") + under("noise/misc") + under(esc, ["car_horn", "engine"])
        )
        self.machine = under(
            esc,
            [
                "engine",
                "vacuum_cleaner",
                "washing_machine",
                "hand_saw",
                "chainsaw",
                "clock_tick",
                "train",
                "helicopter",
            ],
        )
        self.weather = under(
            esc,
            ["rain", "wind", "thunderstorm", "sea_waves", "crickets", "insects", "chirping_birds"],
        )
        self.music = under("noise/music")
        self.emergency_bg = (
            under(
                esc,
                [
                    "siren",
                    "crackling_fire",
                    "car_horn",
                    "rain",
                    "wind",
                    "glass_breaking",
                    "dog",
                    "coughing",
                    "footsteps",
                ],
            )
            + self.crying
            + under("noise/street_berlin")
        )
        self.home_bg = (
            under(
                esc,
                [
                    "clock_tick",
                    "keyboard_typing",
                    "pouring_water",
                    "cat",
                    "hen",
                    "rooster",
                    "washing_machine",
                    "toilet_flush",
                    "rain",
                ],
            )
            + self.music
        )
        for name in ("takers", "callers", "news", "laughing", "rub", "taps", "street", "music"):
            if not getattr(self, name):
                raise InvalidParameterError(
                    f"no {name} recordings for the {pool} pool in {self.data} "
                    f"(hold-out list {HOLDOUT_PATH})"
                )
        if not self.children:
            raise InvalidParameterError(
                f"no children's speech for the {pool} pool in speech/children_en"
            )
        self._cache: dict[str, np.ndarray] = {}

    def load(self, rel: str) -> np.ndarray:
        """The file at ``rel`` (``path@rate``: played at ``rate`` times its speed)."""
        if rel not in self._cache:
            path, _, rate = rel.partition("@")
            if rate:
                x = self.load(path)
                x = resample_poly(x, 1000, round(1000 * float(rate)))
                x.setflags(write=False)
                self._cache[rel] = x
                return x
            x, sr = sf.read(str(self.data / path), dtype="float64", always_2d=True)
            x = x.mean(axis=1)
            if sr != SR:
                g = math.gcd(int(sr), SR)
                x = resample_poly(x, SR // g, int(sr) // g)
            x = x - x.mean()
            x.setflags(write=False)
            self._cache[rel] = x
        return self._cache[rel]


@lru_cache(maxsize=32)
def _sos(kind: str, lo: float, hi: float = 0.0, order: int = 4) -> np.ndarray:
    if kind == "band":
        return butter(order, [lo, hi], btype="band", fs=SR, output="sos")
    return butter(order, lo, btype=kind, fs=SR, output="sos")


def _filt(x: np.ndarray, kind: str, lo: float, hi: float = 0.0, order: int = 4) -> np.ndarray:
    return sosfilt(_sos(kind, float(lo), float(hi), order), x) if x.size else x


def _frame_db(x: np.ndarray, frame: int = 160) -> np.ndarray:
    n = x.size // frame
    if n == 0:
        return np.array([-120.0])
    e = np.mean(np.square(x[: n * frame].reshape(n, frame)), axis=1)
    return 10 * np.log10(e + 1e-12)


def _active_rms(x: np.ndarray) -> float:
    """RMS of the frames within 30 dB of the loudest: a speech or event level."""
    db = _frame_db(x)
    top = float(db.max())
    act = db[db > top - 30]
    return float(np.sqrt(np.mean(10 ** (act / 10))))


def _at(x: np.ndarray, dbfs: float) -> np.ndarray:
    r = _active_rms(x)
    return x * (10 ** (dbfs / 20) / r) if r > 1e-9 else x


def _trim(x: np.ndarray, margin_s: float = 0.06) -> np.ndarray:
    """Cut leading and trailing silence (frames 35 dB under the loudest)."""
    db = _frame_db(x)
    on = np.flatnonzero(db > db.max() - 35)
    if on.size == 0:
        return x
    m = int(margin_s * SR)
    return x[max(0, on[0] * 160 - m) : min(x.size, (on[-1] + 1) * 160 + m)]


def _fade(x: np.ndarray, s: float = 0.03) -> np.ndarray:
    n = min(int(s * SR), x.size // 2)
    if n:
        x = x.copy()
        ramp = np.linspace(0.0, 1.0, n)
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def _cut_at_pause(x: np.ndarray, target_s: float) -> np.ndarray:
    """The first ~target_s of speech, cut at the quietest frame near the target."""
    t = int(target_s * SR)
    if x.size <= t:
        return x
    db = _frame_db(x)
    lo, hi = max(1, int(0.75 * t) // 160), min(db.size, int(1.25 * t) // 160 + 1)
    k = lo + int(np.argmin(db[lo:hi])) if hi > lo else t // 160
    return _fade(x[: k * 160 + 80])


def _loop(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of ``x`` from a random offset, looped with 50 ms crossfades."""
    if x.size == 0:
        return np.zeros(n)
    out = np.zeros(n)
    xf = int(0.05 * SR)
    t = 0
    start = int(rng.integers(0, max(1, x.size - SR)))
    while t < n:
        piece = x[start:]
        if piece.size <= 2 * xf:
            piece = x
        piece = piece[: n - t + xf]
        w = np.ones(piece.size)
        k = min(xf, piece.size // 2)
        if t > 0 and k:
            w[:k] = np.linspace(0, 1, k)
        if k:
            w[-k:] = np.minimum(w[-k:], np.linspace(1, 0, k))
        end = min(n, t + piece.size)
        out[t:end] += (piece * w)[: end - t]
        t = end - k if end < n else n
        start = 0
    return out


def _reverb(x: np.ndarray, rng: np.random.Generator, rt60: float, wet: float) -> np.ndarray:
    """A far talker: exponentially decaying noise tail (synthetic room), mostly wet."""
    n = int(rt60 * SR)
    t = np.arange(n) / SR
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    ir[0] = 0.0
    ir /= np.sqrt(np.sum(ir**2)) + 1e-12
    y = fftconvolve(x, ir)[: x.size]
    return (1 - wet) * x + wet * y * (np.std(x) / (np.std(y) + 1e-12))


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
        return _trim(self.lib.load(f))

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
            x = _cut_at_pause(x, dur_s)
        return _at(x, dbfs)

    def greeting(self, files: Sequence[str], rng: np.random.Generator, call: Call) -> np.ndarray:
        u = self.utterance(files, rng, call)
        target = float(rng.uniform(1.5, 4.0))
        if u.size < target * SR:
            u = np.concatenate([u, np.zeros(int(0.15 * SR)), self.utterance(files, rng, call)])
        return _cut_at_pause(u, target)

    def prompt(self, files: Sequence[str], rng: np.random.Generator, call: Call) -> np.ndarray:
        """A short "halo?" (0.4-1.2 s), now and then a longer "ini 112, ..." (1.5-3 s)."""
        u = self.utterance(files, rng, call)
        long = rng.random() < 0.25
        return _cut_at_pause(u, float(rng.uniform(1.5, 3.0) if long else rng.uniform(0.4, 1.2)))

    # sounds ------------------------------------------------------------------------
    def bed(self, files: Sequence[str], rng: np.random.Generator, call: Call, n: int) -> np.ndarray:
        """``n`` samples of a real background (one or two files), levelled to 0 dBFS RMS."""
        k = 1 if rng.random() < 0.6 else 2
        out = np.zeros(n)
        for _ in range(k):
            f = files[int(rng.integers(0, len(files)))]
            call.sources.add(f)
            x = _loop(self.lib.load(f), n, rng)
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
            _place(out, _fade(_at(x, float(rng.uniform(*dbfs))), 0.01), t)
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
                x = _fade(_at(x, dbfs + float(rng.uniform(-8, 4))), 0.04)
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
        out = _reverb(out, rng, float(rng.uniform(0.4, 0.9)), wet)
        if near:
            return out
        return _filt(
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
        t = _place(call.taker, _at(self.greeting(tfiles, rng, call), taker_db), t)
        t += int(rng.uniform(0.3, 1.5) * SR)
        uses_caller = False
        last = [t]  # end of the last words of a conversation

        def prompts(
            t: int, until: int, gap: tuple[float, float] = (1.5, 5.0), most: int = 1000
        ) -> int:
            k = 0
            while t < until - int(0.8 * SR) and k < most:
                k += 1
                t = _place(
                    call.taker,
                    _at(self.prompt(tfiles, rng, call), taker_db + float(rng.uniform(-2, 2))),
                    t,
                )
                if rng.random() < 0.3:  # "halo? ... halo?"
                    t += int(rng.uniform(0.5, 1.2) * SR)
                    t = _place(call.taker, _at(self.prompt(tfiles, rng, call), taker_db), t)
                t += int(rng.uniform(*gap) * SR)
            return t

        def conversation(t: int, level: float, pause: tuple[float, float], laugh: float) -> int:
            while t < n - int(0.5 * SR):
                x = self.turn(
                    cfiles,
                    rng,
                    call,
                    float(rng.uniform(1.5, 7.0)),
                    level + float(rng.uniform(-3, 3)),
                )
                t = last[0] = _place(call.caller, x, t)
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
                last[0] = _place(call.taker, _at(q, taker_db), t)
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
            end = n if plan.hangup_mid_sentence else last[0] + int(rng.uniform(0.3, 1.5) * SR)
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
                call.caller += _filt(
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
            call.caller += _filt(rub, "low", cutoff)
            call.parts.append("rubbing")
        if muffled and rng.random() < 0.5:
            # The handset's owner talking to someone: close, but through cloth.
            talk = self.distant_talk(rng, call, n, float(rng.uniform(-42, -28)), False, near=True)
            call.caller += _filt(talk, "low", float(rng.uniform(1000, 2000)))
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
            call.caller += _filt(bed, "low", cutoff) if muffled else bed
            call.parts.append(kind)
        if not muffled and rng.random() < 0.4:
            call.caller += _filt(
                self.rustle(rng, call, n, float(rng.uniform(-44, -32))), "low", cutoff
            )
            call.parts.append("rustle")


def _line(x: np.ndarray, rng: np.random.Generator, noise_dbfs: float) -> np.ndarray:
    """Telephone band 300-3400 Hz and a little line noise."""
    y = _filt(x, "band", 300, 3400)
    noise = _filt(rng.standard_normal(x.size), "band", 200, 3600, 2)
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


# --------------------------------------------------------------------------- summary
def summary_tables(manifest: Path, evaluation: Path) -> str:
    """Markdown: ROC-AUC, share of each class flagged (any flag, own flag) and per
    scenario, whole calls and, when evaluated with --prefix, after N seconds heard."""
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    man = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    lines: list[str] = []
    views = [("whole", pd.read_csv(evaluation / "scores.csv"))]
    pre = evaluation / "scores_prefix.csv"
    if pre.exists():
        # A call no longer than the prefix counts with its whole-call score, as in
        # callsift evaluate's own early-warning table.
        p = pd.read_csv(pre)
        whole_rows = p[p["prefix_s"].isna()]
        for s in sorted(p["prefix_s"].dropna().unique()):
            cut = p[p["prefix_s"] == s]
            rest = whole_rows[~whole_rows["call_id"].isin(cut["call_id"])]
            views.append((f"{s:g} s", pd.concat([cut, rest])))
    lines.append(
        "| heard | ghost ROC-AUC | prank ROC-AUC | emergency flagged | non_emergency "
        "flagged | prank flagged | ghost flagged | prank as prank | ghost as ghost |"
    )
    lines.append("|" + "---|" * 9)
    rows = [(name, sc, "all") for name, sc in views]
    rows += [(name, sc, "mono") for name, sc in views]
    for name, sc, part in rows:
        d = man[["call_id", "label", "channels"]].merge(sc, on="call_id", how="inner")
        if part == "mono":
            d = d[d["channels"] == "mono"]
            name = f"{name}, mono only"
        flagged = d["flag"].astype(str) != "none"
        cells = []
        for cls in ("ghost", "prank"):
            y = (d["label"] == cls).to_numpy()
            cells.append(
                f"{roc_auc_score(y, d[f'p_{cls}']):.3f}" if 0 < y.sum() < y.size else "n/a"
            )
        for cls in LABELS:
            m = d["label"] == cls
            cells.append(f"{flagged[m].mean():.1%} ({int(flagged[m].sum())}/{int(m.sum())})")
        for cls in ("prank", "ghost"):
            m = d["label"] == cls
            own = d["flag"].astype(str).str.endswith(cls)
            cells.append(f"{own[m].mean():.1%}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    whole = man.merge(views[0][1], on="call_id")
    lines += [
        "",
        "| label | scenario | calls | flagged as its class | mean p(class) |",
        "|---|---|---|---|---|",
    ]
    for (lab, scn), g in whole[whole["label"].isin(["prank", "ghost"])].groupby(
        ["label", "scenario"]
    ):
        own = g["flag"].astype(str).str.endswith(str(lab))
        lines.append(
            f"| {lab} | {scn} | {len(g)} | {own.mean():.1%} | {g[f'p_{lab}'].mean():.2f} |"
        )
    lines += ["", "| channels | ghost calls | ghost flagged as ghost |", "|---|---|---|"]
    for ch, g in whole[whole["label"] == "ghost"].groupby("channels"):
        lines.append(
            f"| {ch} | {len(g)} | {g['flag'].astype(str).str.endswith('ghost').mean():.1%} |"
        )
    return "\n".join(lines)
