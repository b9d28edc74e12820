"""Real audio for calls assembled from recordings: the file library and the sound shaping.

:class:`Library` holds a pool's real files by role, loaded lazily at 8 kHz mono; the
functions below trim, level, loop, filter and reverberate them for
:mod:`training.realcalls`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from scipy.signal import butter, fftconvolve, resample_poly, sosfilt

from classifier.errors import InvalidParameterError
from training.realcalls_sources import (
    AUDIO_EXT,
    HOLDOUT_PATH,
    NC_DIGITS,
    NC_NEWS,
    POOLS,
    SR,
    TAKER_SPEAKERS,
    child_speaker,
    train_voices,
)
from training.simulator.realbank import held_out


# ----------------------------------------------------------------------------- audio
class Library:
    """The real files a pool may use, by role, loaded lazily at 8 kHz mono.

    ``pool="check"``: the check set's material, the held-out files of the hold-out list
    and ``speech-nc/`` (measuring only). ``pool="train"``: the opposite, every file the
    training recipe may use (never ``speech-nc/``, never a held-out file or speaker), with
    voices made from the few trainable adult speakers (see :func:`train_voices`).
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
                and p.suffix in AUDIO_EXT
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
            self.digits, self.takers, self.callers, self.children = train_voices(
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


def filt(x: np.ndarray, kind: str, lo: float, hi: float = 0.0, order: int = 4) -> np.ndarray:
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


def at_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    r = _active_rms(x)
    return x * (10 ** (dbfs / 20) / r) if r > 1e-9 else x


def trim(x: np.ndarray, margin_s: float = 0.06) -> np.ndarray:
    """Cut leading and trailing silence (frames 35 dB under the loudest)."""
    db = _frame_db(x)
    on = np.flatnonzero(db > db.max() - 35)
    if on.size == 0:
        return x
    m = int(margin_s * SR)
    return x[max(0, on[0] * 160 - m) : min(x.size, (on[-1] + 1) * 160 + m)]


def fade(x: np.ndarray, s: float = 0.03) -> np.ndarray:
    n = min(int(s * SR), x.size // 2)
    if n:
        x = x.copy()
        ramp = np.linspace(0.0, 1.0, n)
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def cut_at_pause(x: np.ndarray, target_s: float) -> np.ndarray:
    """The first ~target_s of speech, cut at the quietest frame near the target."""
    t = int(target_s * SR)
    if x.size <= t:
        return x
    db = _frame_db(x)
    lo, hi = max(1, int(0.75 * t) // 160), min(db.size, int(1.25 * t) // 160 + 1)
    k = lo + int(np.argmin(db[lo:hi])) if hi > lo else t // 160
    return fade(x[: k * 160 + 80])


def loop(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
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


def reverb(x: np.ndarray, rng: np.random.Generator, rt60: float, wet: float) -> np.ndarray:
    """A far talker: exponentially decaying noise tail (synthetic room), mostly wet."""
    n = int(rt60 * SR)
    t = np.arange(n) / SR
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    ir[0] = 0.0
    ir /= np.sqrt(np.sum(ir**2)) + 1e-12
    y = fftconvolve(x, ir)[: x.size]
    return (1 - wet) * x + wet * y * (np.std(x) / (np.std(y) + 1e-12))
