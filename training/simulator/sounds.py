"""Procedural non-speech sounds for the 112 call simulator, plus real-recording mixing.

Every generator draws all its choices from the ``numpy.random.Generator`` it is given,
varies its parameters on every call (rates, spectra, levels, event timing), and
returns float32 mono audio of exactly ``round(duration_s * sr)`` samples, scaled to an
RMS of about 0.05 (the renderer sets the final level). Sounds are built from a few
vectorised passes (event templates scattered with ``np.bincount``, one or two IIR
filters over the whole signal), so a minute of any of them costs a few milliseconds.

:data:`BACKGROUNDS` maps background names to generators with the uniform signature
``(rng, *, duration_s, sr) -> ndarray``. :func:`load_folder` and :func:`excerpt` mix in
real recordings instead.

The signal-processing helpers are in :mod:`training.simulator.dsp`; outdoor and
indoor backgrounds in :mod:`~training.simulator.outdoor` and
:mod:`~training.simulator.indoor`; real recordings in :mod:`~training.simulator.recordings`.
This module holds the caller's own sounds and the line's, and re-exports the rest.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import scipy.fft
import scipy.ndimage
import scipy.signal

from classifier.errors import InvalidParameterError
from training.simulator import dsp
from training.simulator.indoor import crowd, kitchen, room_tone, tv_or_music
from training.simulator.outdoor import rain, siren, traffic, wind
from training.simulator.recordings import excerpt, load_folder

__all__ = [
    "BACKGROUNDS",
    "breathing",
    "comfort_noise",
    "crowd",
    "distant_talk",
    "excerpt",
    "footsteps",
    "kitchen",
    "laughter",
    "load_folder",
    "pocket_rustle",
    "rain",
    "reverb",
    "room_tone",
    "siren",
    "traffic",
    "tv_or_music",
    "wind",
]

# ============================================================================ laughter

# Formants (Hz) of the vowels laughs are made of: "ha", "he", "hi", "ho".
_LAUGH_VOWELS = {
    "a": (800.0, 1250.0, 2600.0),
    "e": (520.0, 1850.0, 2550.0),
    "i": (330.0, 2250.0, 2950.0),
    "o": (520.0, 950.0, 2500.0),
}


def laughter(
    rng: np.random.Generator,
    *,
    duration_s: float,
    sr: int = 8000,
    n_voices: int = 1,
    child: bool = False,
) -> np.ndarray:
    """Laughter: bouts of rhythmic voiced "ha-ha-ha" syllables with breathy onsets.

    Each voice laughs in bouts of 3-10 syllables at 3-6 syllables per second (slowing a
    little within a bout), f0 200-380 Hz for adults and 300-450 Hz for children,
    falling through each syllable and each bout, with jitter, shimmer, aspiration and
    an occasional gasping inhale after a bout. Several voices sound like friends
    laughing together; the first voice starts within 0.15 s.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice.
    duration_s : float, keyword-only
        Length in seconds.
    sr : int, keyword-only, default 8000
        Sample rate in Hz.
    n_voices : int, keyword-only, default 1
        Number of people laughing (1-8).
    child : bool, keyword-only, default False
        Children's voices (higher f0 and formants).

    Returns
    -------
    numpy.ndarray
        float32, shape (round(duration_s * sr),), RMS about 0.05.
    """
    dsp.check_rng(rng)
    n = dsp.n_samples(duration_s, sr)
    if isinstance(n_voices, bool) or not isinstance(n_voices, int | np.integer):
        raise InvalidParameterError(f"n_voices must be an integer, got {n_voices!r}")
    if not 1 <= n_voices <= 8:
        raise InvalidParameterError(f"n_voices must be in [1, 8], got {n_voices}")
    m = max(n, sr // 4)
    # One or two vowels per call (e.g. "ha" and "hi"); each bout uses one of them.
    names = list(_LAUGH_VOWELS)
    vowels = [names[i] for i in rng.choice(len(names), size=2, p=[0.55, 0.15, 0.15, 0.15])]
    p_second = 0.0 if rng.random() < 0.5 else 0.3
    scale = float(rng.uniform(1.15, 1.3)) if child else float(rng.uniform(0.95, 1.1))
    idx: list[list[np.ndarray]] = [[], []]
    wts: list[list[np.ndarray]] = [[], []]
    for v in range(int(n_voices)):
        gain = 1.0 if v == 0 else float(rng.uniform(0.3, 0.8))
        _laugh_voice(rng, idx, wts, m, sr, child=child, gain=gain, first=v == 0, p2=p_second)
    out = np.zeros(m, dtype=np.float32)
    nyq = 0.47 * sr
    tail = round(0.05 * sr)
    for b, vowel in enumerate(vowels):
        if not idx[b]:
            continue
        ix = np.concatenate(idx[b])
        lo, hi = int(ix.min()), min(m, int(ix.max()) + tail)
        src = np.bincount(ix - lo, weights=np.concatenate(wts[b]), minlength=hi - lo)
        f1, f2, f3 = (f * scale * float(rng.uniform(0.93, 1.07)) for f in _LAUGH_VOWELS[vowel])
        sos = np.vstack(
            [
                # Glottal roll-off (double pole at 0.86, -12 dB/oct) with lip
                # radiation (+6 dB/oct) ...
                np.array([[0.0196, -0.0186, 0.0, 1.0, -1.72, 0.7396]], dtype=np.float32),
                # ... through the vowel's first three formants.
                dsp.resonator_sos(min(f1, nyq), float(rng.uniform(80, 140)), sr),
                dsp.resonator_sos(min(f2, nyq), float(rng.uniform(100, 180)), sr),
                dsp.resonator_sos(min(f3, nyq), float(rng.uniform(150, 260)), sr),
            ]
        )
        out[lo:hi] += dsp.filt(sos, src[: hi - lo].astype(np.float32))
    return dsp.finish(out, n)


def _laugh_voice(
    rng: np.random.Generator,
    idx: list[list[np.ndarray]],
    wts: list[list[np.ndarray]],
    m: int,
    sr: int,
    *,
    child: bool,
    gain: float,
    first: bool,
    p2: float,
) -> None:
    """One person's laughter sources (glottal pulses + aspiration noise), appended as
    sample indices and weights to ``idx`` / ``wts`` of vowel bank 0 or 1."""
    f0_base = float(rng.uniform(300.0, 450.0) if child else rng.uniform(200.0, 380.0))
    rate_base = float(rng.uniform(3.3, 5.6))
    breathy = float(rng.uniform(0.05, 0.35))
    t = float(rng.uniform(0.0, 0.15)) if first else float(rng.uniform(0.0, 1.5))
    dur = m / sr
    on: list[np.ndarray] = []  # per syllable: onset (s)
    vd: list[np.ndarray] = []  # voiced duration (s)
    fs: list[np.ndarray] = []  # f0 at syllable start
    amp: list[np.ndarray] = []
    bank_of: list[np.ndarray] = []
    inhales: list[tuple[float, float]] = []
    while t < dur:
        k = int(rng.integers(3, 11))
        rate0 = min(6.0, max(3.0, rate_base * float(rng.uniform(0.85, 1.15))))
        slow = np.linspace(1.0, float(rng.uniform(0.8, 1.0)), k)
        rates = np.clip(rate0 * slow * rng.uniform(0.95, 1.05, size=k), 3.0, 6.0)
        periods = 1.0 / rates
        onsets = t + np.concatenate([[0.0], np.cumsum(periods[:-1])])
        peak = f0_base * float(rng.uniform(1.0, 1.3))
        f_start = peak * np.linspace(1.0, float(rng.uniform(0.75, 0.95)), k)
        a = np.linspace(1.0, float(rng.uniform(0.4, 0.9)), k) * rng.uniform(0.7, 1.0, size=k)
        on.append(onsets)
        vd.append(periods * rng.uniform(0.45, 0.7, size=k))
        fs.append(np.minimum(f_start * rng.uniform(0.97, 1.03, size=k), 650.0))
        amp.append(a * gain)
        bank_of.append(np.full(k, int(rng.random() < p2)))
        end = float(onsets[-1] + periods[-1])
        if rng.random() < 0.5:
            inhales.append((end + float(rng.uniform(0.0, 0.15)), float(rng.uniform(0.2, 0.45))))
            end += 0.5
        # Short pauses inside a fit of laughter, sometimes a longer one between fits.
        pause = rng.uniform(0.2, 1.5) if rng.random() < 0.75 else rng.uniform(1.5, 5.0)
        t = end + float(pause)
    if not on:
        return
    onset = np.concatenate(on)
    voiced = np.concatenate(vd)
    f_start = np.concatenate(fs)
    a_syl = np.concatenate(amp)
    bank = np.concatenate(bank_of)
    n_syl = onset.size
    aspir = rng.uniform(0.015, 0.045, size=n_syl)  # the "h" before voicing (s)

    # Glottal pulses, all syllables at once: pulse p of syllable j at time t_jp.
    max_pulses = int(np.ceil(float(np.max(voiced * f_start)) * 1.1)) + 2
    p = np.arange(max_pulses)[None, :]
    f_end_ratio = rng.uniform(0.8, 0.92, size=n_syl)[:, None]
    # f0 falls linearly through the syllable; periods jitter by ~1.5 %.
    frac = np.clip(p / np.maximum(voiced * f_start, 1.0)[:, None], 0.0, 1.0)
    f_inst = f_start[:, None] * (1.0 - (1.0 - f_end_ratio) * frac)
    periods_p = (1.0 / f_inst) * (1.0 + 0.015 * rng.standard_normal((n_syl, max_pulses)))
    t_rel = np.cumsum(periods_p, axis=1) - periods_p[:, :1]
    u = t_rel / voiced[:, None]
    # Syllable envelope: fast rise, decay towards the end; shimmer on each pulse.
    shape = (1.0 - np.exp(-u / 0.08)) * np.clip(1.0 - u, 0.0, 1.0) ** 1.2
    pulse_amp = a_syl[:, None] * shape * (1.0 + 0.12 * rng.standard_normal((n_syl, max_pulses)))
    pos_s = ((onset + aspir)[:, None] + t_rel) * sr
    i0 = np.floor(pos_s).astype(np.int64)
    w1 = pos_s - i0
    valid = (u < 1.0) & (i0 + 1 < m)
    # Each pulse is split over two samples (fractional position: no pitch quantising).
    for b in (0, 1):
        sel = valid & (bank[:, None] == b)
        if sel.any():
            idx[b] += [i0[sel], i0[sel] + 1]
            wts[b] += [pulse_amp[sel] * (1.0 - w1[sel]), pulse_amp[sel] * w1[sel]]

    # Aspiration: an "h" before voicing and breath noise into it, as 100 ms templates.
    length = round(0.1 * sr)
    tt = (np.arange(length, dtype=np.float32) / np.float32(sr))[None, :]
    asp = aspir.astype(np.float32)[:, None]
    h_part = np.minimum(tt / asp, 1.0) * np.exp(-np.maximum(tt - asp, 0.0) / np.float32(0.02))
    v_part = np.clip(1.0 - (tt - asp) / voiced.astype(np.float32)[:, None], 0.0, 1.0)
    v_part *= tt >= asp
    env = (h_part * np.float32(0.5) + np.float32(breathy) * v_part) * a_syl.astype(np.float32)[
        :, None
    ]
    # Second difference: high-passed noise, so the glottal roll-off does not dull it.
    raw = dsp.noise(rng, env.size + 2)
    env *= (raw[2:] - 2.0 * raw[1:-1] + raw[:-2]).reshape(env.shape) * np.float32(0.06)
    starts = np.round(onset * sr).astype(np.int64)
    t_idx = starts[:, None] + np.arange(length)[None, :]
    for b in (0, 1):
        sel = (bank == b)[:, None] & (t_idx < m)
        if sel.any():
            idx[b].append(t_idx[sel])
            wts[b].append(env[sel])

    # Gasping inhales after some bouts: breathy, higher noise.
    for start, length_s in inhales:
        s0 = round(start * sr)
        if s0 >= m:
            continue
        ln = min(round(length_s * sr), m - s0)
        e = np.sin(np.linspace(0.0, np.pi, ln, dtype=np.float32)) ** 2 * np.float32(0.25 * gain)
        r = dsp.noise(rng, ln + 2)
        idx[0].append(np.arange(s0, s0 + ln))
        wts[0].append((r[2:] - 2.0 * r[1:-1] + r[:-2]) * e * np.float32(0.06))


# ============================================================================ breathing


def breathing(rng: np.random.Generator, *, duration_s: float, sr: int = 8000) -> np.ndarray:
    """Soft breathing close to the phone: a noisy inhale and exhale every 3-5 s.

    Exhales are lower and louder (air puffs on the microphone), inhales quieter and
    hissier; breaths vary in length, level and colour, with the odd sniff.

    Parameters
    ----------
    rng : numpy.random.Generator
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
    m = max(n, sr // 4)
    out = np.zeros(m, dtype=np.float32)
    cycle = float(rng.uniform(3.0, 5.0))
    nasal = rng.random() < 0.4
    t = float(rng.uniform(0.0, 1.0)) * cycle * (0.3 if n < 2 * sr else 1.0)
    first = True
    while t < m / sr:
        period = cycle * float(rng.uniform(0.9, 1.1))
        t_in = float(rng.uniform(0.7, 1.4))
        t_out = min(float(rng.uniform(1.0, 2.0)), period - t_in - 0.2)
        level = float(rng.uniform(0.6, 1.0))
        if first and n < 2 * sr:
            t = 0.0  # short clips still contain a breath
        first = False
        phases = [(t, t_in, False), (t + t_in + float(rng.uniform(0.05, 0.3)), t_out, True)]
        if rng.random() < 0.08:  # a sniff
            phases.append((t + period * 0.8, float(rng.uniform(0.12, 0.25)), False))
        for start, length, exhale in phases:
            s0 = round(start * sr)
            if s0 >= m:
                continue
            ln = min(round(length * sr), m - s0)
            if ln < 8:
                continue
            u = np.linspace(0.0, 1.0, ln, dtype=np.float32)
            # Exhale: quick rise, long fall; inhale: smoother, swelling.
            env = (
                np.sin(np.pi * u**0.6) ** 2 * (1.0 - 0.5 * u)
                if exhale
                else np.abs(np.sin(np.pi * u)) ** 1.5
            )
            if exhale:
                lo, hi = float(rng.uniform(80, 200)), float(rng.uniform(900, 1800))
                g = level
            else:
                lo, hi = float(rng.uniform(500, 1000)), float(rng.uniform(2000, 3500))
                g = level * float(rng.uniform(0.35, 0.7))
            if nasal:
                lo, hi = max(lo, 300.0), min(hi, 1600.0)
            seg = (
                dsp.filt(dsp.band(2, lo, hi, sr), dsp.noise(rng, ln), dense=True)
                * env
                * np.float32(g)
            )
            if exhale and rng.random() < 0.6:
                # Breath puffs hitting the mic: low, bursty rumble.
                puff = (
                    dsp.filt(dsp.band(2, 0.0, 150.0, sr), dsp.noise(rng, ln), dense=True) * env**2
                )
                seg += puff * np.float32(g * float(rng.uniform(1.0, 3.0)))
            out[s0 : s0 + ln] += seg
        t += period
    return dsp.finish(out, n)


# ============================================================================ rustle


def pocket_rustle(rng: np.random.Generator, *, duration_s: float, sr: int = 8000) -> np.ndarray:
    """Fabric rubbing on a phone in a pocket or bag: muffled, bursty, with knocks.

    Alternates movement (crackly friction bursts swelling with the gait or gesture) and
    stillness (near silence, occasional micro-movements); thumps of the phone against
    a leg or keys and a few taps. Everything passes a steep low-pass (500-1400 Hz), so
    energy above 2 kHz is far below energy under it, as through cloth.

    Parameters
    ----------
    rng : numpy.random.Generator
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
    m = max(n, sr // 4)
    factor, nc = dsp.control_grid(m, sr)
    # Movement / stillness states at the 100 Hz control rate; short clips start moving.
    state = np.zeros(nc)
    t = 0
    moving = n < 3 * sr or rng.random() < 0.7
    while t < nc:
        length = int(100 * (rng.uniform(1.5, 8.0) if moving else rng.uniform(0.5, 10.0)))
        state[t : t + length] = 1.0 if moving else float(rng.uniform(0.0, 0.06))
        t += length
        moving = not moving
    state = scipy.ndimage.uniform_filter1d(state, 15)  # no clicks at state changes
    swell_hz = float(rng.uniform(0.5, 3.0))
    swell = np.exp(0.8 * dsp.slow_noise(rng, nc, cutoff=swell_hz))
    density = float(rng.uniform(40.0, 400.0))  # crackles per second while moving
    # Crackles: Poisson impulses whose rate follows the movement; heavy-tailed sizes.
    counts = rng.poisson(density / 100.0 * state * swell)
    frames = np.repeat(np.arange(nc), counts)
    pos = frames * factor + rng.integers(0, factor, size=frames.size)
    sizes = np.minimum(rng.pareto(2.5, size=frames.size) + 0.2, 10.0)
    keep = pos < m
    impulses = np.bincount(pos[keep], weights=sizes[keep], minlength=m)[:m]
    decay = math.exp(-1.0 / (float(rng.uniform(0.003, 0.02)) * sr))
    crackle = scipy.signal.lfilter(
        np.array([1.0 - decay], dtype=np.float32),
        np.array([1.0, -decay], dtype=np.float32),
        dsp.guard(impulses.astype(np.float32)),
    )
    rub = dsp.upsample(state * swell, factor, m) * np.float32(rng.uniform(0.1, 0.5))
    src = dsp.noise(rng, m) * (crackle * np.float32(rng.uniform(3.0, 8.0)) + rub)

    # Knocks against the body and keys: low thumps, a few sharper taps.
    n_thump = int(rng.poisson(rng.uniform(1.0, 8.0) * m / sr / 60.0 + (0.3 if n < 5 * sr else 0)))
    if n_thump:
        starts = rng.integers(0, m, size=n_thump)
        length = round(0.12 * sr)
        tt = np.arange(length)[None, :] / sr
        f = rng.uniform(60.0, 160.0, size=n_thump)[:, None]
        tau = rng.uniform(0.02, 0.05, size=n_thump)[:, None]
        a = rng.uniform(2.0, 6.0, size=n_thump)[:, None] * (dsp.rms_level(src) + 1e-3)
        tmpl = (a * np.sin(2 * np.pi * f * tt) * np.exp(-tt / tau)).astype(np.float32)
        dsp.scatter(m, starts, tmpl, out=src)
    n_tap = int(rng.poisson(rng.uniform(0.0, 4.0) * m / sr / 60.0))
    if n_tap:
        starts = rng.integers(0, m, size=n_tap)
        length = round(0.04 * sr)
        tt = np.arange(length)[None, :] / sr
        f = rng.uniform(300.0, 900.0, size=n_tap)[:, None]
        a = rng.uniform(1.0, 3.0, size=n_tap)[:, None] * (dsp.rms_level(src) + 1e-3)
        tmpl = (a * np.sin(2 * np.pi * f * tt) * np.exp(-tt / 0.008)).astype(np.float32)
        dsp.scatter(m, starts, tmpl, out=src)

    # Cloth over the microphone: a steep low-pass; a trace of the crackle still gets
    # through unmuffled (seams, the phone's own case), 24-34 dB down.
    cut = float(rng.uniform(550.0, 1300.0))
    out = dsp.filt(dsp.band(4, 0.0, cut, sr), src)
    leak = np.float32(
        10.0 ** (rng.uniform(-34.0, -24.0) / 20.0)
        * dsp.rms_level(out)
        / (dsp.rms_level(src) + 1e-12)
    )
    out += src * leak
    return dsp.finish(out, n)


# ============================================================================ footsteps


def footsteps(rng: np.random.Generator, *, duration_s: float, sr: int = 8000) -> np.ndarray:
    """Walking, heard from a phone in a pocket or hand: muffled low thumps.

    1.5-2.2 steps per second with ~3 % timing jitter and slow drift, a heel strike and
    a softer toe/flat contact per step, left/right level asymmetry, shoe scuffs on
    hard floors, sometimes a stop. Low-passed at 700-2000 Hz.

    Parameters
    ----------
    rng : numpy.random.Generator
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
    m = max(n, sr // 4)
    dur = m / sr
    rate = float(rng.uniform(1.55, 2.15))
    k = int(dur * rate * 1.2) + 4
    drift = 1.0 + 0.03 * dsp.slow_noise(rng, k, cutoff=0.05, rate=rate)
    periods = drift / rate * (1.0 + 0.03 * rng.standard_normal(k))
    times = float(rng.uniform(0.0, 0.5 / rate)) + np.concatenate([[0.0], np.cumsum(periods[:-1])])
    if dur > 12.0 and rng.random() < 0.25:
        # Stop for a moment (waiting at a crossing), then walk on.
        stop_at, stop_len = float(rng.uniform(0.3, 0.7)) * dur, float(rng.uniform(1.5, 4.0))
        times = np.where(times > stop_at, times + stop_len, times)
    times = times[times < dur]
    k = times.size
    side = np.where(np.arange(k) % 2 == 0, 1.0, float(rng.uniform(0.7, 0.95)))
    a = side * rng.uniform(0.6, 1.0, size=k)
    hard = rng.random() < 0.5

    length = round(0.18 * sr)
    tt = (np.arange(length, dtype=np.float32) / np.float32(sr))[None, :]
    # Body thump (through the leg and the phone's case) with a slight downward glide;
    # pitch, decay and the toe contact vary from step to step.
    f_heel = float(rng.uniform(70.0, 200.0)) * rng.uniform(0.9, 1.1, size=(k, 1))
    tau = float(rng.uniform(0.015, 0.04)) * rng.uniform(0.8, 1.2, size=(k, 1))
    glide = np.exp(-tt / np.float32(0.05)) * np.float32(0.25) + np.float32(1.0)
    heel = np.sin(2 * np.pi * f_heel * tt * glide) * np.exp(-tt / tau)
    toe_delay = float(rng.uniform(0.06, 0.12))
    tt2 = np.clip(tt - toe_delay, 0.0, None)
    toe = np.where(tt >= toe_delay, np.sin(2 * np.pi * f_heel * 1.3 * tt2), 0.0) * np.exp(
        -tt2 / (tau * 0.7)
    )
    toe *= rng.uniform(0.2, 0.6, size=(k, 1))
    # Impact click and shoe scuff: short noise bursts, louder on hard floors.
    noise = dsp.noise(rng, k * length).reshape(k, length)
    impact = np.exp(-tt / float(rng.uniform(0.003, 0.008))) * rng.uniform(0.3, 1.0, size=(k, 1))
    impact *= float(rng.uniform(0.8, 2.0) if hard else rng.uniform(0.3, 0.8))
    scuff_env = np.exp(-np.abs(tt - float(rng.uniform(0.02, 0.06))) / 0.015)
    scuff_env = scuff_env * rng.uniform(0.0, 1.0, size=(k, 1)) ** 2
    scuff_env *= float(rng.uniform(0.1, 0.4) if hard else rng.uniform(0.02, 0.1))
    tmpl = ((heel + toe + noise * (impact + scuff_env)) * a[:, None]).astype(np.float32)
    src = dsp.scatter(m, np.round(times * sr).astype(np.int64), tmpl)
    cut = float(rng.uniform(700.0, 1600.0) if hard else rng.uniform(450.0, 1000.0))
    sos = np.vstack([dsp.band(4, 0.0, cut, sr), dsp.band(1, 40.0, sr, sr)])
    return dsp.finish(dsp.filt(sos, src), n)


# ============================================================================ distant talk


def distant_talk(speech: np.ndarray, *, rng: np.random.Generator, sr: int = 8000) -> np.ndarray:
    """Make speech sound like people talking away from the phone.

    Low-passed at 800-1500 Hz (muffled), convolved with a reverberant room response
    (RT60 0.3-0.9 s, direct sound weaker than the reverberation), and 20-30 dB below
    the input level.

    Parameters
    ----------
    speech : numpy.ndarray
        Speech, float mono of shape (k,), at ``sr``.
    rng : numpy.random.Generator, keyword-only
        Source of every random choice.
    sr : int, keyword-only, default 8000
        Sample rate in Hz.

    Returns
    -------
    numpy.ndarray
        float32, shape (k + tail,), where the reverberant tail adds RT60 seconds;
        its RMS over the first k samples is 20-30 dB below the input's.
    """
    dsp.check_rng(rng)
    sr = dsp.check_sr(sr)
    x = dsp.check_audio(speech, "speech")
    if x.size == 0:
        return x.astype(np.float32)
    rms_in = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    sos = np.vstack(
        [dsp.band(2, 0.0, float(rng.uniform(800.0, 1500.0)), sr), dsp.band(1, 100.0, sr, sr)]
    )
    muffled = dsp.filt(sos, x)
    ir = dsp.reverb_ir(
        rng,
        sr,
        float(rng.uniform(0.3, 0.9)),
        float(rng.uniform(-8.0, 0.0)),
        predelay_s=float(rng.uniform(0.0, 0.02)),
    )
    wet = dsp.convolve(muffled, ir)
    head = wet[: x.size]
    rms_out = float(np.sqrt(np.mean(np.square(head, dtype=np.float64))))
    if rms_out < 1e-12:
        return wet.astype(np.float32)
    g = rms_in * 10.0 ** (float(rng.uniform(-30.0, -20.0)) / 20.0) / rms_out
    return (wet * np.float32(g)).astype(np.float32)


# ============================================================================ network


def comfort_noise(
    rng: np.random.Generator,
    *,
    duration_s: float,
    sr: int = 8000,
    level_db: float | None = None,
) -> np.ndarray:
    """Comfort noise as a VoIP/GSM decoder inserts in silence: faint, never zero.

    Spectrally shaped noise (random tilt and a broad bump, like a low-order LPC fit
    of the background) at -65..-50 dBFS, its level refreshed every 160 ms (SID
    updates) with a small random step and interpolated between updates.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice.
    duration_s : float, keyword-only
        Length in seconds.
    sr : int, keyword-only, default 8000
        Sample rate in Hz.
    level_db : float or None, keyword-only
        RMS level in dBFS, in [-100, -20]; drawn from [-65, -50] when None.

    Returns
    -------
    numpy.ndarray
        float32, shape (round(duration_s * sr),), RMS at ``level_db`` (not 0.05),
        no sample exactly zero.
    """
    dsp.check_rng(rng)
    n = dsp.n_samples(duration_s, sr)
    if level_db is None:
        level_db = float(rng.uniform(-65.0, -50.0))
    lv = float(level_db)
    if not (math.isfinite(lv) and -100.0 <= lv <= -20.0):
        raise InvalidParameterError(f"level_db must be in [-100, -20] dBFS, got {level_db!r}")
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    tilt = float(rng.uniform(-0.7, 0.5))  # one-pole colouring: <0 brighter, >0 darker
    sos = np.vstack(
        [
            np.array([[1.0, 0.0, 0.0, 1.0, -tilt, 0.0]], dtype=np.float32),
            dsp.peaking_sos(
                float(rng.uniform(300.0, 1500.0)), float(rng.uniform(0.0, 8.0)), 0.7, sr
            ),
        ]
    )
    out = dsp.filt(sos, dsp.noise(rng, n), dense=True)
    factor = max(1, round(0.16 * sr))
    steps = 10.0 ** (rng.normal(0.0, 0.75, size=n // factor + 2) / 20.0)
    dsp.mul_ramp(out, steps, factor)
    out *= np.float32(10.0 ** (lv / 20.0) / max(dsp.rms_level(out), 1e-12))
    if not out.all():
        out[out == 0.0] = np.float32(10.0 ** (lv / 20.0) * 0.01)
    return out


# ============================================================================ reverb


def reverb(
    x: np.ndarray,
    *,
    rng: np.random.Generator,
    sr: int = 8000,
    rt60_s: float,
    drr_db: float | None = None,
    tail: bool = False,
) -> np.ndarray:
    """Apply synthetic room reverberation.

    Convolves with a noise impulse response decaying exponentially (60 dB in
    ``rt60_s``; high frequencies decay faster) after a direct path and a few early
    reflections. The response has unit energy, so the level stays about the same.

    Parameters
    ----------
    x : numpy.ndarray
        Audio, float mono of shape (k,).
    rng : numpy.random.Generator, keyword-only
        Source of every random choice.
    sr : int, keyword-only, default 8000
        Sample rate in Hz.
    rt60_s : float, keyword-only
        Reverberation time in seconds, in [0.05, 3].
    drr_db : float or None, keyword-only
        Direct-to-reverberant energy ratio in dB, in [-20, 30] (low = far away);
        drawn from [-3, 6] when None.
    tail : bool, keyword-only, default False
        Keep the reverberant tail (output longer than the input).

    Returns
    -------
    numpy.ndarray
        float32, shape (k,), or (k + m - 1,) with the tail (m = IR length).
    """
    dsp.check_rng(rng)
    sr = dsp.check_sr(sr)
    a = dsp.check_audio(x, "x")
    rt = float(rt60_s)
    if not (math.isfinite(rt) and 0.05 <= rt <= 3.0):
        raise InvalidParameterError(f"rt60_s must be in [0.05, 3] seconds, got {rt60_s!r}")
    drr = float(rng.uniform(-3.0, 6.0)) if drr_db is None else float(drr_db)
    if not (math.isfinite(drr) and -20.0 <= drr <= 30.0):
        raise InvalidParameterError(f"drr_db must be in [-20, 30] dB, got {drr_db!r}")
    ir = dsp.reverb_ir(rng, sr, rt, drr)
    y = dsp.convolve(a, ir)
    return y if tail else y[: a.size]


# ============================================================================ registry


def _tv_music(rng: np.random.Generator, *, duration_s: float, sr: int = 8000) -> np.ndarray:
    return tv_or_music(rng, duration_s=duration_s, sr=sr)


def _crowd(rng: np.random.Generator, *, duration_s: float, sr: int = 8000) -> np.ndarray:
    return crowd(rng, duration_s=duration_s, sr=sr)


BACKGROUNDS: dict[str, Callable[..., np.ndarray]] = {
    "tv_music": _tv_music,
    "traffic": traffic,
    "wind": wind,
    "rain": rain,
    "crowd": _crowd,
    "siren": siren,
    "footsteps": footsteps,
    "room_tone": room_tone,
    "kitchen": kitchen,
}
"""Background generators by name, all called as ``f(rng, *, duration_s, sr)``."""
