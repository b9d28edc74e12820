"""Real recordings by the part they play in a call, for the training recipe (issue 15).

``callsift simulate --real-dir DIR`` (and ``build-default`` with the real folders) mixes
real sound into simulated calls by role: callers' and call-takers' speech, children,
laughter, handling sounds for pocket dials, backgrounds, music for a TV or radio, cries
and coughs. Which file plays which role is decided by its folder (:data:`ROLES`), in the
layout of the project's ``../shared/data`` (its README gives each folder's licence).

Never used: ``speech-nc/`` (non-commercial: measuring only), and every file of the
hold-out list (``training/real_holdout.json``): real recordings kept out of all training
and tuning so that the real-recording check set (``bench/real_checkset.py``) measures
something the model never heard.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from classifier.errors import InvalidParameterError
from training.simulator.recordings import load_clip

__all__ = [
    "HOLDOUT_PATH",
    "LICENCES",
    "ROLES",
    "RealBank",
    "held_out",
    "licence_of",
    "load_holdout",
    "role_files",
    "sources_card",
]

HOLDOUT_PATH = Path(__file__).resolve().parents[1] / "real_holdout.json"
_AUDIO = {".wav", ".flac", ".ogg"}

_ESC_AMBIENT = (
    "airplane car_horn chainsaw chirping_birds church_bells clock_alarm clock_tick cow "
    "crackling_fire crickets crow dog door_wood_creaks engine fireworks frog hand_saw "
    "helicopter hen insects pig pouring_water rain rooster sea_waves sheep siren "
    "thunderstorm toilet_flush train vacuum_cleaner washing_machine water_drops wind cat"
).split()
_ESC_HANDLING = (
    "footsteps door_wood_knock mouse_click keyboard_typing brushing_teeth clapping "
    "can_opening glass_breaking drinking_sipping"
).split()

#: Folder prefixes (relative to the data root) of each role.
_ESC_VOCAL = "crying_baby coughing sneezing breathing snoring".split()
ROLES: dict[str, tuple[str, ...]] = {
    "speech": ("speech/fsdd/", "speech/arctic/", "speech/p286"),
    "child": ("speech/children_en/",),
    "laughter": ("noise/esc50/laughing/",),
    "vocal": ("noise/infant_cry/", *(f"noise/esc50/{c}/" for c in _ESC_VOCAL)),
    "handling": (
        "noise/130921_",
        "noise/tap",
        "noise/friction",
        *(f"noise/esc50/{c}/" for c in _ESC_HANDLING),
    ),
    "ambient": (
        "noise/street_berlin/",
        "noise/misc/",
        "noise/doing_the_dishes",
        *(f"noise/esc50/{c}/" for c in _ESC_AMBIENT),
    ),
    "music": ("noise/music/",),
}
#: Licence and attribution of each folder (from the README of ``../shared/data``).
LICENCES: dict[str, str] = {
    "speech/fsdd/": (
        "Free Spoken Digit Dataset (Jakobovski/free-spoken-digit-dataset), CC BY-SA 4.0"
    ),
    "speech/arctic/": "CMU ARCTIC (via LCAV/pyroomacoustics examples), free licence",
    "speech/p286": "VCTK-derived (via iver56/audiomentations demo), CC BY 4.0",
    "speech/children_en/": "speechocean762, Apache-2.0",
    "noise/esc50/": (
        "ESC-50 clips, each CC0 or CC BY (authors per clip: "
        "noise/esc50/ESC50_LICENSE_attributions.txt)"
    ),
    "noise/infant_cry/": "Donate-a-cry corpus, ODbL / DbCL",
    "noise/street_berlin/": "Berlin Noise, CC BY 4.0",
    "noise/music/": (
        "librosa example data (CC BY 3.0 / public domain, see each .txt) and Asterisk "
        "hold music (CC BY-SA 3.0)"
    ),
    "noise/misc/": "freesound, CC0",
    "noise/doing_the_dishes": "Speech Commands background noise (via pyroomacoustics), CC BY 4.0",
    "noise/130921_": "audiomentations demo files, MIT",
    "noise/tap": "audiomentations demo files, MIT",
    "noise/friction": "audiomentations demo files, MIT",
}


def licence_of(rel: str) -> str:
    """The licence line of the folder holding ``rel``."""
    for prefix, text in LICENCES.items():
        if rel.startswith(prefix):
            return text
    return "unknown: see the README of the real-recordings folder"


def sources_card(sources: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Per folder: the roles it played, how many files, and its licence (for a model card)."""
    folders: dict[str, dict[str, Any]] = {}
    for role, files in sources.items():
        for rel in files:
            prefix = next((p for p in LICENCES if rel.startswith(p)), rel.rsplit("/", 1)[0])
            entry = folders.setdefault(
                prefix, {"folder": prefix, "roles": set(), "files": 0, "licence": licence_of(rel)}
            )
            entry["roles"].add(role)
            entry["files"] += 1
    return [{**e, "roles": sorted(e["roles"])} for _, e in sorted(folders.items())]


#: Most files loaded per role (taken evenly from the sorted list): memory and start-up.
MAX_PER_ROLE = 400


def load_holdout(path: Path = HOLDOUT_PATH) -> dict[str, Any]:
    """The hold-out list (see its ``about``)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidParameterError(f"hold-out list {path} cannot be read: {exc}") from exc
    if not isinstance(data, dict) or not {"files", "never_train"} <= set(data):
        raise InvalidParameterError(
            f"hold-out list {path} has no 'files' and 'never_train'; expected the format "
            "bench/real_checkset.py writes"
        )
    return data


def held_out(rel: str, holdout: dict[str, Any]) -> bool:
    """Whether the file at ``rel`` (relative to the data root) may not be trained on."""
    if any(rel.startswith(p) for p in holdout["never_train"]):
        return True
    if rel in set(holdout["files"]):
        return True
    speakers = holdout.get("speakers", {}).get("speech/children_en", [])
    if rel.startswith("speech/children_en/"):
        # 000260011.flac: speaker 0026 (the first five digits, as spk2age's four).
        return f"{int(Path(rel).name[:5]):04d}" in set(speakers)
    return False


def role_files(root: Path, holdout: dict[str, Any]) -> dict[str, list[str]]:
    """Trainable files of each role, relative to ``root``, sorted."""
    every = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in _AUDIO
    )
    out: dict[str, list[str]] = {}
    for role, prefixes in ROLES.items():
        out[role] = [r for r in every if r.startswith(prefixes) and not held_out(r, holdout)]
    return out


def _evenly(names: list[str], k: int) -> list[str]:
    if len(names) <= k:
        return names
    step = len(names) / k
    return [names[int(i * step)] for i in range(k)]


@dataclass
class RealBank:
    """Real clips by role, at 8 kHz, and the files they came from."""

    clips: dict[str, list[np.ndarray]] = field(default_factory=dict)
    sources: dict[str, list[str]] = field(default_factory=dict)

    def get(self, role: str) -> list[np.ndarray]:
        return self.clips.get(role, [])

    @classmethod
    def load(
        cls,
        root: Path,
        *,
        holdout: dict[str, Any] | None = None,
        sr: int = 8000,
        roles: Iterable[str] = tuple(ROLES),
    ) -> RealBank:
        """Load the trainable real recordings under ``root`` by role.

        Raises
        ------
        InvalidParameterError
            ``root`` missing, not a folder, or holding no readable audio of any role.
        """
        root = Path(root)
        if not root.is_dir():
            raise InvalidParameterError(
                f"real-audio folder {str(root)!r} does not exist or is not a folder; expected "
                "the shared real recordings (speech/, noise/)"
            )
        files = role_files(root, holdout if holdout is not None else load_holdout())
        bank = cls()
        for role in roles:
            kept: list[np.ndarray] = []
            used: list[str] = []
            for rel in _evenly(files.get(role, []), MAX_PER_ROLE):
                clip = load_clip(root / rel, sr=sr)
                if clip is not None:
                    kept.append(clip)
                    used.append(rel)
            bank.clips[role], bank.sources[role] = kept, used
        if not any(bank.clips.values()):
            raise InvalidParameterError(
                f"real-audio folder {str(root)!r} holds no readable audio in any of "
                f"{', '.join(sorted({p.split('/')[0] + '/' for ps in ROLES.values() for p in ps}))}"
            )
        return bank
