"""Real recordings for calls assembled from them: which files, whose voices.

The hold-out list (``training/real_holdout.json``) splits the real files outside
``speech-nc/`` between the check set and training, deterministically; the voices of the
training pool are made from the few trainable adult speakers (:func:`train_voices`).
:mod:`training.realcalls` assembles the calls; :mod:`training.realcalls_audio` loads
and shapes the audio.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from classifier.errors import InvalidParameterError
from training.simulator.realbank import HOLDOUT_PATH as REALBANK_HOLDOUT
from training.simulator.realbank import held_out

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
AUDIO_EXT = (".flac", ".wav")


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
        clips = [rel(p) for p in sorted(folder.iterdir()) if p.suffix in AUDIO_EXT]
        taken = _take(rel(folder), clips)
        files += taken
        groups[rel(folder)] = {"files": len(clips), "held_out_files": len(taken)}
    cries = [rel(p) for p in sorted((data / "noise/infant_cry").iterdir()) if p.suffix in AUDIO_EXT]
    taken = _take("noise/infant_cry", cries)
    files += taken
    groups["noise/infant_cry"] = {"files": len(cries), "held_out_files": len(taken)}
    for group, names in HOLDOUT_BY_HAND.items():
        folder = data / group
        present = [rel(p) for p in sorted(folder.iterdir()) if p.suffix in AUDIO_EXT]
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


def train_voices(
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
