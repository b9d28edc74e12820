"""Synthesised caller and call-taker voices for the 112 call simulator.

Speech comes from espeak-ng, loaded through :mod:`ctypes` from the ``espeakng-loader``
wheel (no system espeak). Voices differ by espeak variant, pitch, pitch range, speaking
rate and a *formant shift* that we apply ourselves by resampling, because espeak's own
variants never sound like children.

Determinism
-----------
espeak-ng keeps synthesis state in C ``static`` variables (pitch flutter phase, glottal
phase, AGC, echo buffer) and seeds its noise generator from the clock, so the same text
rendered twice in one process is *not* bit-identical. :func:`synthesize` therefore
resets the library to its freshly loaded state (restoring a copy of its static memory,
or reloading it with ``dlclose`` + ``dlopen`` where that is not possible) and seeds the
noise generator from a hash of its arguments before every utterance, which makes it a
pure function of ``(text, voice, sr, rate_scale, pitch_offset)`` whatever ran before.

One noise source lives outside the library's memory: the ``klatt 6`` engine
(speechPlayer) draws its breath noise from the C library's process-wide ``rand()``,
which neither the reset nor espeak's own seed touches. Breathy ``klatt 6`` variants
(``Reed``) would otherwise depend on how many such utterances the process made before,
so ``srand`` is called with the same seed before every utterance too.
"""

from __future__ import annotations

import ctypes
import math
import mmap
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import signal

from classifier.errors import CallsiftError, InvalidParameterError
from classifier.threads import one_blas_thread

__all__ = [
    "KINDS",
    "LANGUAGES",
    "VARIANTS",
    "Voice",
    "pitch_track_hz",
    "random_voice",
    "synthesize",
    "whisper",
]

LANGUAGES: tuple[str, ...] = ("id", "en")
KINDS: tuple[str, ...] = ("adult_male", "adult_female", "child", "elderly")

# Variants per kind. Robotic, echo-heavy and whispering variants are left out on purpose:
# real callers do not sound like robots, and whispering is done by :func:`whisper`.
_MALE_VARIANTS: tuple[str, ...] = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8",
    "klatt", "klatt2", "klatt3", "klatt6",
    "Alex", "Andy", "Denis", "Diogo", "Gene", "Henrique", "Hugo", "Jacky", "Lee",
    "Mario", "Michael", "Mike", "Storm", "adam", "antonio", "benjamin", "boris",
    "david", "ed", "edward", "gustave", "ian", "iven3", "john", "kaukovalta",
    "marcelo", "max", "michel", "miguel", "mike2", "norbert", "pablo", "paul",
    "pedro", "quincy", "rob", "robert", "sandro", "travis", "victor", "Reed",
)  # fmt: skip
_FEMALE_VARIANTS: tuple[str, ...] = (
    "f1", "f2", "f3", "f4", "f5",
    "Andrea", "Annie", "aunty", "belinda", "linda", "steph", "steph3",
)  # fmt: skip
_CHILD_VARIANTS: tuple[str, ...] = (
    "f1", "f2", "f3", "f4", "f5", "Annie", "steph", "steph3",
)  # fmt: skip
_ELDERLY_VARIANTS: tuple[str, ...] = (
    "grandma", "grandpa", "m1", "f1", "aunty", "kaukovalta", "m4", "f4", "victor",
)  # fmt: skip

_VARIANTS_BY_KIND: dict[str, tuple[str, ...]] = {
    "adult_male": _MALE_VARIANTS,
    "adult_female": _FEMALE_VARIANTS,
    "child": _CHILD_VARIANTS,
    "elderly": _ELDERLY_VARIANTS,
}
VARIANTS: tuple[str, ...] = tuple(
    sorted({v for vs in _VARIANTS_BY_KIND.values() for v in vs}, key=str.lower)
)

# Share of callers per kind when random_voice(kind=None).
_KIND_PROBS: tuple[float, ...] = (0.40, 0.34, 0.13, 0.13)

# (low, high) inclusive draw ranges per kind: pitch, pitch range, rate (wpm), formant shift.
_PITCH: dict[str, tuple[int, int]] = {
    "adult_male": (35, 80),
    "adult_female": (20, 75),
    "child": (70, 99),
    "elderly": (25, 75),
}
_RANGE: dict[str, tuple[int, int]] = {
    "adult_male": (20, 85),
    "adult_female": (30, 95),
    "child": (50, 99),
    "elderly": (15, 70),
}
_RATE: dict[str, tuple[int, int]] = {
    "adult_male": (130, 230),
    "adult_female": (135, 235),
    "child": (160, 260),
    "elderly": (120, 180),
}
_SHIFT: dict[str, tuple[float, float]] = {
    "adult_male": (0.90, 1.06),
    "adult_female": (0.96, 1.10),
    "child": (1.15, 1.35),
    "elderly": (0.90, 1.02),
}

# espeak voice files addressed by path skip a ~2 ms scan of every voice file per load.
_LANGUAGE_FILES: dict[str, str] = {"id": "poz/id", "en": "gmw/en"}

_PEAK = 0.5
_MAX_TEXT_CHARS = 5000
_TRIM_MARGIN_S = 0.02  # kept before the first / after the last audible sample

# speak_lib.h constants.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_BUFFER_MS = 1000  # callback granularity; larger means fewer Python round trips
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_RATE, _ESPEAK_VOLUME, _ESPEAK_PITCH, _ESPEAK_RANGE = 1, 2, 3, 4
_ESPEAK_RATE_MIN, _ESPEAK_RATE_MAX = 80, 450


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker.

    Parameters
    ----------
    language : str
        ``"id"`` (Indonesian) or ``"en"`` (English).
    variant : str
        espeak-ng voice variant (one of :data:`VARIANTS`), e.g. ``"m3"``, ``"f2"``.
    pitch : int
        espeak base pitch, 0..99 (relative to the variant's own pitch band).
    pitch_range : int
        espeak intonation range, 0..99 (0 is monotone).
    rate : int
        Speaking rate in words per minute, 80..350.
    formant_shift : float
        Spectral scale factor applied by resampling: 1.0 adult, 1.15..1.35 children,
        below 1 deepens. Pitch moves with the formants; the rate does not.
    kind : str
        ``"adult_male"``, ``"adult_female"``, ``"child"`` or ``"elderly"``.
    """

    language: str
    variant: str
    pitch: int
    pitch_range: int
    rate: int
    formant_shift: float
    kind: str

    def __post_init__(self) -> None:
        if self.language not in LANGUAGES:
            raise InvalidParameterError(
                f"language must be one of {LANGUAGES}, got {self.language!r}"
            )
        if self.variant not in VARIANTS:
            raise InvalidParameterError(
                f"variant must be one of training.simulator.voice.VARIANTS, got {self.variant!r}"
            )
        if self.kind not in KINDS:
            raise InvalidParameterError(f"kind must be one of {KINDS}, got {self.kind!r}")
        for name, lo, hi in (("pitch", 0, 99), ("pitch_range", 0, 99), ("rate", 80, 350)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise InvalidParameterError(f"{name} must be an int, got {type(value).__name__}")
            if not lo <= value <= hi:
                raise InvalidParameterError(f"{name} must be in [{lo}, {hi}], got {value}")
        if not (math.isfinite(self.formant_shift) and 0.7 <= self.formant_shift <= 1.5):
            raise InvalidParameterError(
                f"formant_shift must be in [0.7, 1.5], got {self.formant_shift}"
            )

    def describe(self) -> str:
        """Short identifier for the manifest, e.g. ``"id+f3/p62/pr50/r175/fs1.25/child"``."""
        return (
            f"{self.language}+{self.variant}/p{self.pitch}/pr{self.pitch_range}"
            f"/r{self.rate}/fs{self.formant_shift:.2f}/{self.kind}"
        )


def random_voice(
    rng: np.random.Generator, *, kind: str | None = None, language: str = "id"
) -> Voice:
    """Draw a random speaker.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice.
    kind : str or None
        One of :data:`KINDS`; ``None`` draws it (40 % adult male, 34 % adult female,
        13 % child, 13 % elderly).
    language : str
        ``"id"`` or ``"en"``.

    Returns
    -------
    Voice
        Children get pitch 70..99 and formant shift 1.15..1.35 and speak faster;
        elderly speakers are slower, with flutter-heavy variants.
    """
    if not isinstance(rng, np.random.Generator):
        raise InvalidParameterError(
            f"rng must be a numpy.random.Generator, got {type(rng).__name__}"
        )
    if language not in LANGUAGES:
        raise InvalidParameterError(f"language must be one of {LANGUAGES}, got {language!r}")
    if kind is None:
        kind = KINDS[int(rng.choice(len(KINDS), p=_KIND_PROBS))]
    elif kind not in KINDS:
        raise InvalidParameterError(f"kind must be one of {KINDS} or None, got {kind!r}")
    variants = _VARIANTS_BY_KIND[kind]
    variant = variants[int(rng.integers(len(variants)))]
    pitch = int(rng.integers(_PITCH[kind][0], _PITCH[kind][1] + 1))
    pitch_range = int(rng.integers(_RANGE[kind][0], _RANGE[kind][1] + 1))
    rate = int(rng.integers(_RATE[kind][0], _RATE[kind][1] + 1))
    # Two decimals so describe() round-trips the value exactly.
    shift = round(float(rng.uniform(*_SHIFT[kind])), 2)
    return Voice(
        language=language,
        variant=variant,
        pitch=pitch,
        pitch_range=pitch_range,
        rate=rate,
        formant_shift=shift,
        kind=kind,
    )


# --------------------------------------------------------------------------- espeak engine

_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)

# ELF constants for locating the library's writable data.
_PT_LOAD, _PT_GNU_RELRO, _PF_W = 1, 0x6474E552, 2


class _DlInfo(ctypes.Structure):
    _fields_ = [
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    ]


def _writable_segment(path: str) -> tuple[int, int] | None:
    """(offset from the load base, size) of a shared library's writable, non-RELRO
    memory (``.got.plt``, ``.data``, ``.bss``), or None if the file is not a 64-bit
    little-endian ELF with exactly one writable segment."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:6] != b"\x7fELF\x02\x01":
            return None
        (phoff,) = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    writable: list[tuple[int, int]] = []
    relro_end = 0
    for i in range(phnum):
        p_type, p_flags, _, p_vaddr, _, _, p_memsz, _ = struct.unpack_from(
            "<IIQQQQQQ", table, i * phentsize
        )
        if p_type == _PT_LOAD and p_flags & _PF_W:
            writable.append((p_vaddr, p_vaddr + p_memsz))
        elif p_type == _PT_GNU_RELRO:
            relro_end = p_vaddr + p_memsz
    if len(writable) != 1:
        return None
    start, stop = writable[0]
    # The loader makes RELRO read-only up to the page boundary at or below its end.
    start = max(start, relro_end - relro_end % mmap.PAGESIZE)
    return (start, stop - start) if stop > start else None


def _already_loaded(path: str) -> bool:
    """Whether the shared library at ``path`` is already mapped into this process."""
    noload = getattr(os, "RTLD_NOLOAD", None)
    if noload is None:
        return True  # cannot tell: assume the worst
    try:
        handle = ctypes.CDLL(path, mode=noload | getattr(os, "RTLD_LAZY", 1))
    except OSError:
        return False
    import _ctypes

    _ctypes.dlclose(handle._handle)  # drop the reference the check took
    return True


def _libc_srand() -> Any:
    """The C library's ``srand`` (the one espeak's ``rand()`` calls draw from), or a
    no-op where it cannot be found; :meth:`_Espeak._reset_works` then tells whether
    synthesis is still reproducible."""
    try:
        srand = ctypes.CDLL(None).srand
    except (OSError, AttributeError, TypeError):
        return lambda seed: None
    srand.argtypes = [ctypes.c_uint]
    srand.restype = None
    return srand


class _Espeak:
    """One process-wide espeak-ng instance, reset to its freshly loaded state before
    every utterance."""

    def __init__(self) -> None:
        import espeakng_loader  # lazily: only processes that synthesise pay for it

        self.lib_path: str = espeakng_loader.get_library_path()
        self.data_path: str = espeakng_loader.get_data_path()
        self.lock = threading.Lock()
        self.sample_rate = 0
        self._lib: Any = None
        self._pristine: tuple[int, Any] | None = None  # (address, saved bytes)
        self._chunks: list[bytes] = []
        # The C side only holds a raw pointer: keep the callback object alive here.
        self._callback = _SynthCallback(self._on_audio)
        self._srand = _libc_srand()
        variant_dir = os.path.join(self.data_path, "voices", "!v")
        self.available_variants = frozenset(
            v for v in VARIANTS if os.path.isfile(os.path.join(variant_dir, v))
        )
        with self.lock:
            self._reload()
            if not self._reset_works():
                raise CallsiftError(
                    "espeak-ng could not be reset between utterances (is libespeak-ng also "
                    "loaded by another module, or the C library's srand missing?); "
                    "synthesis would not be reproducible"
                )

    def _on_audio(self, wav: int | None, n: int, events: Any) -> int:
        if n > 0 and wav:
            self._chunks.append(ctypes.string_at(wav, 2 * n))
        return 0  # 0 = continue synthesis

    def _reload(self) -> None:
        """Reset every C static that carries history, then initialise.

        espeak's history lives in its static variables (``.data``/``.bss``) and in heap
        blocks reachable only from them, which ``espeak_Terminate`` frees. Restoring a
        copy of that memory taken right after ``dlopen`` (the library has no static
        constructors) is the same as loading a fresh copy, without the ~0.5 ms and the
        page faults of ``dlclose`` + ``dlopen``; where the copy cannot be taken, the
        library is reloaded. :meth:`_reset_works` checks either way at start-up.
        """
        if self._lib is not None:
            self._lib.espeak_Terminate()  # frees the heap blocks and closes files
            if self._pristine is not None:
                address, saved = self._pristine
                ctypes.memmove(address, saved, len(saved))
            else:
                import _ctypes

                _ctypes.dlclose(self._lib._handle)
                self._lib = None
        if self._lib is None:
            self._lib = self._load()
        lib = self._lib
        sr = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, self.data_path.encode(), 0
        )
        if sr <= 0:
            raise CallsiftError(f"espeak-ng failed to initialise with data at {self.data_path}")
        lib.espeak_SetSynthCallback(self._callback)
        self.sample_rate = int(sr)

    def _load(self) -> Any:
        # Another copy already in the process (another module using espeak) would not
        # be in its freshly loaded state: no memory copy then, only reloads.
        fresh = not _already_loaded(self.lib_path)
        lib = ctypes.CDLL(self.lib_path)
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Terminate.argtypes = []
        lib.espeak_Terminate.restype = ctypes.c_int
        self._pristine = self._snapshot(lib) if fresh else None
        return lib

    def _snapshot(self, lib: Any) -> tuple[int, Any] | None:
        """Copy of the freshly loaded library's writable memory, or None."""
        try:
            segment = _writable_segment(self.lib_path)
            dladdr = ctypes.CDLL(None).dladdr
        except (OSError, AttributeError, struct.error):
            return None
        if segment is None:
            return None
        dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
        dladdr.restype = ctypes.c_int
        info = _DlInfo()
        symbol = ctypes.cast(lib.espeak_Initialize, ctypes.c_void_p).value
        if not dladdr(symbol, ctypes.byref(info)) or not info.dli_fbase:
            return None
        offset, size = segment
        address = int(info.dli_fbase) + offset
        saved = ctypes.create_string_buffer(size)
        ctypes.memmove(saved, address, size)
        return address, saved

    def _set_voice(self, language: str, variant: str) -> None:
        status = self._lib.espeak_SetVoiceByName(f"{_LANGUAGE_FILES[language]}+{variant}".encode())
        if status != 0:
            # Slower lookup by language name (scans all voice files) if the layout changed.
            status = self._lib.espeak_SetVoiceByName(f"{language}+{variant}".encode())
        if status != 0:
            raise CallsiftError(f"espeak-ng has no voice {language}+{variant} (status {status})")

    def _synth_locked(
        self,
        text: bytes,
        *,
        language: str,
        variant: str,
        rate: int,
        pitch: int,
        pitch_range: int,
        seed: int,
    ) -> np.ndarray:
        self._reload()
        lib = self._lib
        self._set_voice(language, variant)
        lib.espeak_SetParameter(_ESPEAK_RATE, rate, 0)
        lib.espeak_SetParameter(_ESPEAK_VOLUME, 100, 0)
        lib.espeak_SetParameter(_ESPEAK_PITCH, pitch, 0)
        lib.espeak_SetParameter(_ESPEAK_RANGE, pitch_range, 0)
        # Breathy variants draw noise from a clock-seeded generator; pin it.
        lib.espeak_ng_SetRandSeed(seed)
        # The klatt 6 engine (speechPlayer) draws breath noise from libc's rand(), a
        # process-wide generator outside espeak's memory: pin it as well, or Reed's
        # voice would depend on how many breathy klatt 6 utterances came before.
        self._srand(seed)
        self._chunks = []
        status = lib.espeak_Synth(
            text, len(text) + 1, 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None
        )
        chunks, self._chunks = self._chunks, []
        if status != 0:
            raise CallsiftError(f"espeak_Synth failed with status {status}")
        return np.frombuffer(b"".join(chunks), dtype=np.int16)

    def synth(
        self,
        text: bytes,
        *,
        language: str,
        variant: str,
        rate: int,
        pitch: int,
        pitch_range: int,
        seed: int,
    ) -> np.ndarray:
        """int16 samples at :attr:`sample_rate`."""
        with self.lock:
            return self._synth_locked(
                text,
                language=language,
                variant=variant,
                rate=rate,
                pitch=pitch,
                pitch_range=pitch_range,
                seed=seed,
            )

    def _reset_works(self) -> bool:
        """Same utterance twice, with other speech in between, must give the same samples.

        Checked for a plain variant and for ``Reed``, a breathy ``klatt 6`` variant whose
        noise comes from libc's ``rand()`` rather than from espeak's own generator.
        """
        kw: dict[str, Any] = {
            "language": "id",
            "rate": 175,
            "pitch": 50,
            "pitch_range": 50,
            "seed": 1,
        }
        variants = ["m1"] + (["Reed"] if "Reed" in self.available_variants else [])
        firsts = [self._synth_locked(b"halo pak", variant=v, **kw) for v in variants]
        for v in [*variants, "f2"]:
            self._synth_locked(b"satu dua tiga", variant=v, **kw)
        return all(
            np.array_equal(first, self._synth_locked(b"halo pak", variant=v, **kw))
            for v, first in zip(variants, firsts, strict=True)
        )


_ENGINE: list[_Espeak] = []  # module-level holder; filled on first use in each process
_ENGINE_LOCK = threading.Lock()


def _engine() -> _Espeak:
    with _ENGINE_LOCK:
        if not _ENGINE:
            _ENGINE.append(_Espeak())
        return _ENGINE[0]


# --------------------------------------------------------------------------- DSP helpers


@lru_cache(maxsize=256)
def _resample_ratio(native_sr: int, sr: int, shift: float) -> tuple[int, int]:
    """(up, down) with up/down ~= sr / (native_sr * shift) within 0.2 % (a few cents of
    pitch), kept small so the polyphase filter bank stays small."""
    frac = Fraction(sr) / (Fraction(native_sr) * Fraction(shift).limit_denominator(200))
    frac = frac.limit_denominator(200)
    return frac.numerator, frac.denominator


def _resample_filter(up: int, down: int) -> np.ndarray:
    # Same design as scipy's resample_poly default, but shorter (6 vs 10 lobes per side).
    max_rate = max(up, down)
    half_len = 6 * max_rate
    return signal.firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 6.0))


@lru_cache(maxsize=128)
def _polyphase_bank(up: int, down: int) -> tuple[np.ndarray, int]:
    """Resampling by up/down as one matrix: each run of ``up`` outputs is a window of
    the input (``down`` samples further on for the next run) times this matrix.

    Returns the (window, up) float32 matrix and the window's start relative to the
    run's first input sample. Same result as ``resample_poly`` with
    :func:`_resample_filter`, but a matrix product is several times faster than
    ``upfirdn`` and the filter design is cached.
    """
    h = _resample_filter(up, down) * up  # zero-stuffing by `up` loses a factor `up`
    half = (h.size - 1) // 2
    # Output m sits at upsampled time t = m * down + half (the filter is centred);
    # for m = g * up + r it uses inputs g * down + k with 0 <= t - k * up < len(h).
    t = np.arange(up) * down + half
    k_hi = t // up
    k_lo = -(-(t - (h.size - 1)) // up)
    k0 = int(k_lo.min())
    bank = np.zeros((int(k_hi.max()) - k0 + 1, up), dtype=np.float32)
    for r in range(up):
        k = np.arange(int(k_lo[r]), int(k_hi[r]) + 1)
        bank[k - k0, r] = h[t[r] - k * up]
    bank.setflags(write=False)
    return bank, k0


def _resample(x: np.ndarray, up: int, down: int) -> np.ndarray:
    """float32 x resampled by up/down; shape (ceil(len(x) * up / down),)."""
    bank, k0 = _polyphase_bank(up, down)
    width = bank.shape[0]
    n_out = -(-x.size * up // down)
    runs = -(-n_out // up)
    lead = max(0, -k0)
    padded = np.zeros(max((runs - 1) * down + k0 + lead + width, x.size + lead), np.float32)
    padded[lead : lead + x.size] = x
    windows = np.lib.stride_tricks.sliding_window_view(padded, width)[k0 + lead :: down][:runs]
    # One BLAS thread whatever the process set: OpenBLAS rounds the rows at its threads'
    # split differently (AMD EPYC, Haswell kernels), so a voice differed between a fresh
    # process (two threads) and a service or feature process (one).
    with one_blas_thread():
        return (windows @ bank).ravel()[:n_out]


def _audible_bounds(x: np.ndarray, *, rel_threshold: float = 0.01) -> tuple[int, int]:
    """First and one past the last sample louder than ``rel_threshold`` of the peak."""
    thr = rel_threshold * max(float(x.max()), -float(x.min()))
    if np.issubdtype(x.dtype, np.integer):
        thr = math.floor(thr)  # |x| > thr for integers, without a float copy
    loud = (x > thr) | (x < -thr)
    return int(np.argmax(loud)), x.size - int(np.argmax(loud[::-1]))


def _check_audio(x: np.ndarray, name: str = "x") -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise InvalidParameterError(f"{name} must be 1-D mono audio, got shape {arr.shape}")
    if arr.size == 0:
        raise InvalidParameterError(f"{name} must not be empty")
    if not np.issubdtype(arr.dtype, np.floating):
        raise InvalidParameterError(f"{name} must be floating point, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise InvalidParameterError(f"{name} contains NaN or inf")
    return arr.astype(np.float32, copy=False)


def _check_sr(sr: int) -> None:
    if isinstance(sr, bool) or not isinstance(sr, int | np.integer) or not 4000 <= sr <= 48000:
        raise InvalidParameterError(f"sr must be an int in [4000, 48000], got {sr!r}")


# --------------------------------------------------------------------------- public API


def synthesize(
    text: str,
    *,
    voice: Voice,
    sr: int = 8000,
    rate_scale: float = 1.0,
    pitch_offset: int = 0,
) -> np.ndarray:
    """Speak ``text`` with ``voice``.

    Parameters
    ----------
    text : str
        Text to speak (UTF-8, at most 5000 characters, at least one letter or digit).
    voice : Voice
        Speaker, e.g. from :func:`random_voice`.
    sr : int
        Output sample rate in Hz.
    rate_scale : float
        Multiplies ``voice.rate`` (0.5..2.0); e.g. 1.2 for a panicking caller.
    pitch_offset : int
        Added to ``voice.pitch`` (-99..99), result clipped to 0..99.

    Returns
    -------
    numpy.ndarray
        float32, shape ``(n_samples,)``, peak 0.5, at most 50 ms of leading and
        trailing silence. Bit-identical for identical arguments.

    Raises
    ------
    InvalidParameterError
        Empty text, bad voice, or a parameter outside its range.
    """
    if not isinstance(text, str):
        raise InvalidParameterError(f"text must be a str, got {type(text).__name__}")
    if not any(ch.isalnum() for ch in text):
        raise InvalidParameterError(f"text must contain a letter or digit, got {text!r}")
    if len(text) > _MAX_TEXT_CHARS:
        raise InvalidParameterError(
            f"text must be at most {_MAX_TEXT_CHARS} characters, got {len(text)}"
        )
    if not isinstance(voice, Voice):
        raise InvalidParameterError(f"voice must be a Voice, got {type(voice).__name__}")
    _check_sr(sr)
    if not (isinstance(rate_scale, int | float) and 0.5 <= rate_scale <= 2.0):
        raise InvalidParameterError(f"rate_scale must be in [0.5, 2.0], got {rate_scale!r}")
    if (
        isinstance(pitch_offset, bool)
        or not isinstance(pitch_offset, int | np.integer)
        or not -99 <= pitch_offset <= 99
    ):
        raise InvalidParameterError(
            f"pitch_offset must be an int in [-99, 99], got {pitch_offset!r}"
        )

    engine = _engine()
    if voice.variant not in engine.available_variants:
        raise CallsiftError(f"espeak-ng data has no variant {voice.variant!r}")
    shift = float(voice.formant_shift)
    # Resampling by `shift` speeds speech up by `shift`, so ask espeak for a slower rate.
    rate = round(voice.rate * float(rate_scale) / shift)
    rate = min(max(int(rate), _ESPEAK_RATE_MIN), _ESPEAK_RATE_MAX)
    pitch = min(max(int(voice.pitch) + int(pitch_offset), 0), 99)
    encoded = " ".join(text.split()).encode("utf-8")
    seed = zlib.crc32(encoded + f"|{voice.describe()}|{rate}|{pitch}".encode())
    raw = engine.synth(
        encoded,
        language=voice.language,
        variant=voice.variant,
        rate=rate,
        pitch=pitch,
        pitch_range=voice.pitch_range,
        seed=seed,
    )
    if raw.size == 0 or (int(raw.max()) == 0 and int(raw.min()) == 0):
        raise InvalidParameterError(f"espeak-ng produced no audio for text {text!r}")

    native = engine.sample_rate
    start, stop = _audible_bounds(raw)
    margin = int(_TRIM_MARGIN_S * native)
    x = raw[max(0, start - margin) : stop + margin].astype(np.float32)
    x *= np.float32(1.0 / 32768.0)

    up, down = _resample_ratio(native, int(sr), round(shift, 4))
    y = _resample(x, up, down)
    start, stop = _audible_bounds(y)
    margin = int(_TRIM_MARGIN_S * sr)
    y = y[max(0, start - margin) : stop + margin]
    y *= np.float32(_PEAK / max(float(y.max()), -float(y.min())))
    return np.ascontiguousarray(y, dtype=np.float32)


def whisper(x: np.ndarray, *, rng: np.random.Generator, sr: int = 8000) -> np.ndarray:
    """Turn voiced speech into whisper-like speech.

    The short-time spectral envelope (cepstrally smoothed, so pitch harmonics are gone)
    is kept and imposed on white noise; energy below ~500 Hz is reduced as in real
    whispering, where the glottis does not vibrate.

    Parameters
    ----------
    x : numpy.ndarray
        float, shape ``(n_samples,)``, speech at ``sr``.
    rng : numpy.random.Generator
        Source of the noise excitation.
    sr : int
        Sample rate of ``x`` in Hz.

    Returns
    -------
    numpy.ndarray
        float32, shape ``(n_samples,)``, same peak level as ``x``. The caller decides
        how quietly the victim whispers.
    """
    arr = _check_audio(x)
    _check_sr(sr)
    if not isinstance(rng, np.random.Generator):
        raise InvalidParameterError(
            f"rng must be a numpy.random.Generator, got {type(rng).__name__}"
        )
    peak = float(np.max(np.abs(arr)))
    if peak == 0.0:
        return np.zeros_like(arr)

    n_fft = 1 << max(6, round(math.log2(0.032 * sr)))  # ~32 ms frames
    hop = n_fft // 2  # Hann at 50 % overlap reconstructs exactly and halves the cost
    noise = rng.standard_normal(arr.size).astype(np.float32)
    _, _, spec = signal.stft(arr, nperseg=n_fft, noverlap=n_fft - hop, boundary="even")
    _, _, noise_spec = signal.stft(noise, nperseg=n_fft, noverlap=n_fft - hop, boundary="even")

    # Cepstral liftering keeps quefrencies below 2 ms: the vocal-tract envelope survives,
    # harmonics of any f0 below 500 Hz do not.
    log_mag = np.log(np.abs(spec) + 1e-7)
    cep = np.fft.irfft(log_mag, n=n_fft, axis=0)
    n_keep = max(4, int(0.002 * sr))
    cep[n_keep : n_fft - n_keep + 1] = 0.0
    envelope = np.exp(np.fft.rfft(cep, axis=0).real)

    freqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    low_cut = np.minimum(1.0, (np.maximum(freqs, 1.0) / 500.0) ** 1.5)[:, None]
    # STFT of unit white noise has mean power sum(window**2); scale it to unit magnitude.
    out_spec = noise_spec * envelope * low_cut / np.sqrt(np.mean(np.abs(noise_spec) ** 2))
    _, y = signal.istft(out_spec, nperseg=n_fft, noverlap=n_fft - hop, boundary=True)
    y = np.asarray(y[: arr.size], dtype=np.float32)
    if y.size < arr.size:
        y = np.pad(y, (0, arr.size - y.size))
    y_peak = float(np.max(np.abs(y)))
    if y_peak > 0.0:
        y *= np.float32(peak / y_peak)
    return y


def pitch_track_hz(x: np.ndarray, *, sr: int = 8000) -> float:
    """Median fundamental frequency of the voiced frames, in Hz.

    Frames count as voiced when they are loud (RMS above 30 % of the loudest frame) and
    periodic (normalised autocorrelation at the YIN period above 0.5). Meant for tests
    and sanity checks, not for the feature pipeline.

    Parameters
    ----------
    x : numpy.ndarray
        float, shape ``(n_samples,)``.
    sr : int
        Sample rate in Hz.

    Returns
    -------
    float
        Median f0 in Hz, or ``nan`` when no frame is voiced.
    """
    import librosa  # lazily: heavy import

    arr = _check_audio(x)
    _check_sr(sr)
    frame = 1 << max(8, round(math.log2(0.064 * sr)))  # 64 ms: two periods at 60 Hz
    hop = frame // 4
    if arr.size < frame:
        return float("nan")
    f0 = librosa.yin(
        arr, fmin=50.0, fmax=800.0, sr=sr, frame_length=frame, hop_length=hop, center=False
    )
    frames = librosa.util.frame(arr, frame_length=frame, hop_length=hop)[:, : f0.size]
    frames = frames - frames.mean(axis=0, keepdims=True)
    rms = np.sqrt(np.mean(frames**2, axis=0))
    lag = np.clip(np.round(sr / f0).astype(int), 1, frame // 2)
    half = frame // 2
    idx = np.arange(half)
    a = frames[idx, :]
    b = np.take_along_axis(frames, idx[:, None] + lag[None, :], axis=0)
    corr = np.sum(a * b, axis=0) / (np.sqrt(np.sum(a**2, axis=0) * np.sum(b**2, axis=0)) + 1e-12)
    voiced = (rms > 0.3 * rms.max()) & (corr > 0.5)
    if not np.any(voiced):
        return float("nan")
    return float(np.median(f0[voiced]))
