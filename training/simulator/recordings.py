"""Real recordings for the 112 call simulator: load a folder of clips, cut excerpts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.signal

from classifier.errors import InvalidParameterError
from training.simulator import dsp

__all__ = ["excerpt", "load_clip", "load_folder"]

_AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def load_folder(path: Path, *, sr: int = 8000, max_files: int = 500) -> list[np.ndarray]:
    """Load real recordings (wav, flac, ogg) from a folder tree as mono clips at ``sr``.

    Files are taken in sorted path order (deterministic), at most ``max_files``
    readable ones; channels are averaged, the DC offset removed, and the rate
    converted with polyphase resampling. Unreadable, empty and all-zero (digital
    silence) files are skipped.

    Parameters
    ----------
    path : pathlib.Path
        Folder searched recursively.
    sr : int, keyword-only, default 8000
        Target sample rate in Hz.
    max_files : int, keyword-only, default 500
        Most clips to return (>= 1).

    Returns
    -------
    list of numpy.ndarray
        float32 arrays of shape (k,), at their recorded level.

    Raises
    ------
    InvalidParameterError
        If the folder does not exist or holds no readable audio.
    """
    sr = dsp.check_sr(sr)
    if isinstance(max_files, bool) or not isinstance(max_files, int) or max_files < 1:
        raise InvalidParameterError(f"max_files must be a positive integer, got {max_files!r}")
    folder = Path(path)
    if not folder.is_dir():
        raise InvalidParameterError(
            f"audio folder {str(folder)!r} does not exist or is not a folder"
        )
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in _AUDIO_SUFFIXES
    )
    clips: list[np.ndarray] = []
    for f in files:
        if len(clips) >= max_files:
            break
        clip = load_clip(f, sr=sr)
        if clip is not None:
            clips.append(clip)
    if not clips:
        raise InvalidParameterError(
            f"no readable audio (wav/flac/ogg with sound) found in folder {str(folder)!r}"
        )
    return clips


def load_clip(path: Path, *, sr: int = 8000) -> np.ndarray | None:
    """One real recording as a mono clip at ``sr`` (as :func:`load_folder` takes them).

    Channels averaged, the DC offset removed, the rate converted with polyphase
    resampling; None for a file that is unreadable, empty, not finite, shorter than
    50 ms or silent (digital zero).
    """
    import soundfile as sf  # lazily: only needed when real recordings are mixed in

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, ValueError, OSError, TypeError):
        return None  # soundfile.LibsndfileError derives from RuntimeError
    if data.size == 0 or rate <= 0:
        return None
    x = data.mean(axis=1)
    if not np.all(np.isfinite(x)):
        return None
    x = x - np.float32(np.mean(x))
    if int(rate) != sr:
        g = math.gcd(int(rate), sr)
        x = scipy.signal.resample_poly(x, sr // g, int(rate) // g).astype(np.float32)
    if x.size < sr // 20 or float(np.max(np.abs(x))) <= 1e-6:
        return None
    return x.astype(np.float32, copy=False)


def excerpt(
    clips: Sequence[np.ndarray],
    *,
    rng: np.random.Generator,
    duration_s: float,
    sr: int = 8000,
) -> np.ndarray:
    """A random stretch of real audio: random clips cropped and tiled with crossfades.

    Pieces start at random offsets in randomly chosen clips and join with short
    (10-40 ms) equal-power crossfades; each piece is levelled to the same RMS so a
    quiet and a loud recording do not jump, then the whole is scaled to RMS 0.05.

    Parameters
    ----------
    clips : sequence of numpy.ndarray
        Clips at ``sr`` (e.g. from :func:`load_folder`), each float mono of shape (k,).
    rng : numpy.random.Generator, keyword-only
        Source of every random choice.
    duration_s : float, keyword-only
        Length in seconds.
    sr : int, keyword-only, default 8000
        Sample rate in Hz.

    Returns
    -------
    numpy.ndarray
        float32, shape (round(duration_s * sr),), RMS about 0.05.
    """
    dsp.check_rng(rng)
    n = dsp.n_samples(duration_s, sr)
    if not clips:
        raise InvalidParameterError("clips must hold at least one audio clip, got none")
    pool = [dsp.check_audio(c, "clip") for c in clips]
    pool = [c for c in pool if c.size >= 16]
    if not pool:
        raise InvalidParameterError("clips must hold at least one clip of 16 samples or more")
    out = np.zeros(n, dtype=np.float32)
    pos = 0
    first = True
    while pos < n:
        c = pool[int(rng.integers(0, len(pool)))]
        fade = min(round(float(rng.uniform(0.01, 0.04)) * sr), c.size // 4)
        want = n - pos + (0 if first else fade)
        start = int(rng.integers(0, c.size - min(want, c.size) + 1))
        piece = c[start : start + want]
        r = float(np.sqrt(np.mean(np.square(piece, dtype=np.float64))))
        piece = piece * np.float32(1.0 / r) if r > 1e-9 else piece.copy()
        if first or fade == 0:
            k = min(piece.size, n - pos)
            out[pos : pos + k] = piece[:k]
            pos += k
        else:
            fade = min(fade, piece.size, pos)
            w = np.linspace(0.0, 1.0, fade + 2, dtype=np.float32)[1:-1]
            a = pos - fade
            out[a:pos] = out[a:pos] * np.sqrt(1.0 - w) + piece[:fade] * np.sqrt(w)
            k = min(piece.size - fade, n - pos)
            out[pos : pos + k] = piece[fade : fade + k]
            pos += k
            if k <= 0:
                pos += 1  # a degenerate piece; move on rather than loop forever
        first = False
    return dsp.finish(out, n)
